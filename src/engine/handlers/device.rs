//! Device handlers: vbd, vif and pci, each checked against the config and
//! attached the same way at build time and when hot-plugged later.

use crate::backend::{BackendResult, Capability, DomId, Hypervisor};
use crate::config::{BackendRole, DeviceSpec, DomainConfig, Mac};

pub trait DeviceHandler: Send + Sync {
    fn kind(&self) -> &'static str;

    /// The backend capability hot-plugging this device needs.
    fn capability(&self) -> Capability;

    /// Reject a device the domain cannot have.
    fn check(&self, _config: &DomainConfig, _dev: &DeviceSpec) -> Result<(), String> {
        Ok(())
    }

    /// Fill in what the config left open (a vif's MAC). `seed` is stable
    /// for the domain and `index` counts devices of this kind.
    fn prepare(&self, dev: &DeviceSpec, _seed: u64, _index: usize) -> DeviceSpec {
        dev.clone()
    }

    fn attach(&self, hv: &dyn Hypervisor, domid: DomId, dev: &DeviceSpec) -> BackendResult<()> {
        hv.attach_device(domid, dev)
    }
}

pub struct VbdHandler;

impl DeviceHandler for VbdHandler {
    fn kind(&self) -> &'static str {
        "vbd"
    }

    fn capability(&self) -> Capability {
        Capability::HotplugVbd
    }

    fn check(&self, config: &DomainConfig, _dev: &DeviceSpec) -> Result<(), String> {
        if config.is_backend(BackendRole::Blkif) {
            return Err("vbd: vbd in blkif backend domain".into());
        }
        Ok(())
    }
}

pub struct VifHandler;

impl DeviceHandler for VifHandler {
    fn kind(&self) -> &'static str {
        "vif"
    }

    fn capability(&self) -> Capability {
        Capability::HotplugVif
    }

    fn check(&self, config: &DomainConfig, _dev: &DeviceSpec) -> Result<(), String> {
        if config.is_backend(BackendRole::Netif) {
            return Err("vif: vif in netif backend domain".into());
        }
        Ok(())
    }

    fn prepare(&self, dev: &DeviceSpec, seed: u64, index: usize) -> DeviceSpec {
        match dev {
            DeviceSpec::Vif(v) if v.mac.is_none() => {
                let mut v = v.clone();
                let salt = seed ^ (index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
                v.mac = Some(Mac::xen_from_seed(crate::backend::sim::mix(salt)));
                DeviceSpec::Vif(v)
            }
            other => other.clone(),
        }
    }
}

pub struct PciHandler;

impl DeviceHandler for PciHandler {
    fn kind(&self) -> &'static str {
        "pci"
    }

    fn capability(&self) -> Capability {
        Capability::HotplugPci
    }
}
