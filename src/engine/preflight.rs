//! What `create` would refuse, found before anything is built: the TUI's
//! Ctrl-B pre-check and `domus check --host` ask the same questions.

use std::path::Path;

use super::Engine;
use crate::config::{DeviceSpec, DomainConfig, UnameKind};

impl Engine {
    /// Why this backend cannot build `config` at all, whatever the host
    /// holds (the image type, a bootloader, nothing to boot): the library's
    /// validity marks and the start of [`Self::preflight`].
    pub fn unbuildable(&self, config: &DomainConfig) -> Vec<String> {
        let mut problems = Vec::new();
        let type_name = config.image.type_name();
        let caps = self.hv.capabilities();
        // The backend's kind, not host_info: the library asks this for
        // every config it lists.
        let backend = self.hv.kind();
        match self.registry.image(type_name) {
            None => problems.push(format!("domus builds no {type_name} images")),
            Some(h) => {
                if !caps.has(h.capability()) {
                    problems.push(format!(
                        "the {backend} backend does not build {type_name} images"
                    ));
                }
                if let Err(e) = h.configure(config) {
                    problems.push(e);
                }
            }
        }
        if let Some(b) = &config.bootloader
            && !caps.has(crate::backend::Capability::Bootloader)
        {
            problems.push(format!(
                "the bootloader {b} runs in Xen's toolstack; the {backend} backend boots a kernel or a disk"
            ));
        }
        problems
    }

    /// Every problem building `config` on this host would meet; `pci_root`
    /// is where the host's PCI functions are listed (`/sys/bus/pci/devices`).
    pub fn preflight(&self, config: &DomainConfig, pci_root: &Path) -> Vec<String> {
        let mut problems = self.unbuildable(config);
        let host = self.host_info().ok();
        // The simulator builds from paths it never opens.
        let files = self
            .hv
            .capabilities()
            .has(crate::backend::Capability::HostFiles);
        let boot = config.image.boot();
        for (what, path) in [("kernel", &boot.kernel), ("ramdisk", &boot.ramdisk)] {
            if files
                && let Some(p) = path
                && !Path::new(p).is_file()
            {
                problems.push(format!("{what} {p} does not exist"));
            }
        }
        if let Some(host) = &host {
            let need = config.memory * 1024;
            if need > host.free_kib {
                problems.push(format!(
                    "needs {} MiB, the host has {} MiB free",
                    config.memory,
                    host.free_kib / 1024
                ));
            }
            if let Some(cpu) = config.cpu
                && cpu >= host.cpus
            {
                problems.push(format!(
                    "cpu {cpu}: the host has CPUs 0 to {}",
                    host.cpus.saturating_sub(1)
                ));
            }
        }
        let domains = self.domains().unwrap_or_default();
        if let Some(d) = domains.iter().find(|d| d.info.name == config.name) {
            problems.push(format!(
                "a domain named {} is already running (id {})",
                config.name, d.info.domid
            ));
        }
        if let Some(uuid) = config.uuid
            && let Some(d) = domains.iter().find(|d| d.info.uuid == uuid)
        {
            problems.push(format!(
                "uuid {uuid} is already used by {} (id {})",
                d.info.name, d.info.domid
            ));
        }
        for dev in &config.devices {
            match dev {
                DeviceSpec::Vbd(v) => {
                    let checkable = matches!(
                        v.uname.kind,
                        UnameKind::File | UnameKind::Phy | UnameKind::Tap
                    );
                    if files && checkable && !Path::new(&v.uname.path).exists() {
                        let what = if v.uname.is_image_file() {
                            "file"
                        } else {
                            "device"
                        };
                        problems.push(format!("{}: {what} {} does not exist", v.dev, v.uname.path));
                    }
                    if v.uname.is_empty() {
                        continue;
                    }
                    for other in &domains {
                        for od in &other.info.devices {
                            if let DeviceSpec::Vbd(ov) = od
                                && ov.uname.identity() == v.uname.identity()
                                && (ov.mode == crate::config::VbdMode::ReadWrite
                                    || v.mode == crate::config::VbdMode::ReadWrite)
                            {
                                problems.push(format!(
                                    "{} is already attached to {} as {}",
                                    v.uname, other.info.name, ov.dev
                                ));
                            }
                        }
                    }
                }
                DeviceSpec::Vif(v) => {
                    if let Some(mac) = v.mac {
                        for other in &domains {
                            if other
                                .info
                                .devices
                                .iter()
                                .any(|od| matches!(od, DeviceSpec::Vif(ov) if ov.mac == Some(mac)))
                            {
                                problems.push(format!(
                                    "MAC {mac} is already used by {}",
                                    other.info.name
                                ));
                            }
                        }
                    }
                }
                DeviceSpec::Pci(p) => {
                    if files && !pci_root.join(p.to_string()).exists() {
                        problems.push(format!("PCI device {p} does not exist on this host"));
                    }
                }
            }
        }
        problems
    }
}
