//! Image handlers: xend's `ImageHandler` hierarchy (linux, plan9, vmx/HVM).

use crate::backend::{BackendResult, BootImage, Capability, DomId, Hypervisor};
use crate::config::{DomainConfig, Image};

/// Configure → memory needed → build → device model → destroy.
pub trait ImageHandler: Send + Sync {
    fn ostype(&self) -> &'static str;

    fn aliases(&self) -> &'static [&'static str] {
        &[]
    }

    /// The backend capability this image type needs.
    fn capability(&self) -> Capability;

    /// Turn the config into what the backend builds from (xend's
    /// `configure`), or say what is wrong with it.
    fn configure(&self, config: &DomainConfig) -> Result<BootImage, String> {
        let boot = config.image.boot();
        if boot.kernel.is_none() && config.bootloader.is_none() {
            return Err(format!("{} image: missing kernel", self.ostype()));
        }
        Ok(BootImage {
            ostype: self.ostype().into(),
            kernel: boot.kernel.clone(),
            ramdisk: boot.ramdisk.clone(),
            cmdline: boot.cmdline(),
            memmap: None,
            device_model: None,
            // A PV display (a vfb) is the only one a PV guest has.
            vnc: config
                .other_devices
                .iter()
                .any(|d| matches!(d, crate::config::OtherDevice::Vfb(v) if v.vnc)),
            // A bootloader (pygrub) finds the kernel on the guest's disk.
            boot_from_disk: boot.kernel.is_none(),
            boot_order: None,
            loader: None,
            bootloader: config.bootloader.clone(),
            bootloader_args: config.bootloader_args.clone(),
        })
    }

    /// Memory in KiB the domain needs for `mem_mib` of guest memory.
    fn memory_kib(&self, mem_mib: u64) -> u64 {
        mem_mib * 1024
    }

    fn build(&self, hv: &dyn Hypervisor, domid: DomId, image: &BootImage) -> BackendResult<()> {
        hv.build_image(domid, image)
    }

    /// Start the device model, for image types that need one.
    fn create_device_model(
        &self,
        _hv: &dyn Hypervisor,
        _domid: DomId,
        _image: &BootImage,
    ) -> BackendResult<()> {
        Ok(())
    }

    /// Extra clean-up when the domain is destroyed.
    fn destroy(&self, _hv: &dyn Hypervisor, _domid: DomId) {}
}

pub struct LinuxImageHandler;

impl ImageHandler for LinuxImageHandler {
    fn ostype(&self) -> &'static str {
        "linux"
    }

    fn capability(&self) -> Capability {
        Capability::ImageLinux
    }
}

pub struct Plan9ImageHandler;

impl ImageHandler for Plan9ImageHandler {
    fn ostype(&self) -> &'static str {
        "plan9"
    }

    fn capability(&self) -> Capability {
        Capability::ImagePlan9
    }
}

/// Memory for 1:1 page tables in physical mode, in KiB: one page for the
/// PGD plus one PTE page per 4 MiB (xend's `getPageTableSize`).
pub fn pgtable_kib(mem_mib: u64) -> u64 {
    (1 + ((mem_mib + 3) >> 2)) * 4
}

pub struct HvmImageHandler;

impl ImageHandler for HvmImageHandler {
    fn ostype(&self) -> &'static str {
        "hvm"
    }

    fn aliases(&self) -> &'static [&'static str] {
        &["vmx"]
    }

    fn capability(&self) -> Capability {
        Capability::ImageHvm
    }

    fn configure(&self, config: &DomainConfig) -> Result<BootImage, String> {
        let Image::Hvm(hvm) = &config.image else {
            return Err("hvm handler given a non-hvm image".into());
        };
        config.boot_target()?;
        Ok(BootImage {
            ostype: "hvm".into(),
            kernel: hvm.boot.kernel.clone(),
            ramdisk: hvm.boot.ramdisk.clone(),
            cmdline: hvm.boot.cmdline(),
            memmap: hvm.memmap.clone(),
            device_model: hvm.device_model.clone(),
            vnc: hvm.vnc.unwrap_or(false),
            boot_from_disk: hvm.boot.kernel.is_none(),
            boot_order: hvm.boot_order.clone(),
            loader: hvm.loader.clone(),
            bootloader: None,
            bootloader_args: None,
        })
    }

    fn memory_kib(&self, mem_mib: u64) -> u64 {
        mem_mib * 1024 + pgtable_kib(mem_mib)
    }

    fn create_device_model(
        &self,
        hv: &dyn Hypervisor,
        domid: DomId,
        image: &BootImage,
    ) -> BackendResult<()> {
        hv.start_device_model(domid, image)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hvm_page_table_memory_matches_xend() {
        assert_eq!(pgtable_kib(256), (1 + 64) * 4);
        assert_eq!(pgtable_kib(1), 8);
        assert_eq!(HvmImageHandler.memory_kib(256), 256 * 1024 + 260);
        assert_eq!(LinuxImageHandler.memory_kib(256), 256 * 1024);
    }
}
