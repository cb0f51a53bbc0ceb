//! A domus domain as libvirt domain XML: what `virDomainCreateXML` gets for
//! a domain built from a domus config, and what `virDomainAttachDevice`
//! gets for a hot-plugged vbd, vif or PCI function. Every text and
//! attribute is escaped; names that cannot be said are refused, not
//! mangled.

use crate::backend::{BootImage, CreateSpec};
use crate::config::{DeviceSpec, Policy, UnameKind, VbdMode};

/// Why a domus domain or device has no libvirt form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    #[error("{0} is not supported by the libvirt backend")]
    Unsupported(String),
    #[error("disk name {0}: expected xvdX, hdX, sdX or vdX (a whole disk, not a partition)")]
    DiskName(String),
}

/// Text or an attribute value for XML.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// The guest's disk name for libvirt's virtio bus: `xvdb`, `hdb`, `sdb`
/// and `vdb` are all `vdb` (domus's names are xend's; QEMU's guests see
/// virtio disks).
pub fn virtio_name(dev: &str) -> Result<String, XmlError> {
    let dev = dev.split(':').next().unwrap_or(dev);
    let letters = ["xvd", "hd", "sd", "vd"]
        .iter()
        .find_map(|p| dev.strip_prefix(p))
        .filter(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_lowercase()))
        .ok_or_else(|| XmlError::DiskName(dev.to_string()))?;
    Ok(format!("vd{letters}"))
}

/// What libvirt does when the guest powers off, reboots or crashes. The
/// QEMU driver takes `destroy` and `restart` for all three, and `preserve`
/// and the core dumps only on a crash; what it lacks is `destroy` here and
/// domus's engine applies it (so `preserve` on poweroff keeps the record,
/// as xend's did, though libvirt lets a transient domain go).
pub fn lifecycle(on_poweroff: Policy, on_reboot: Policy, on_crash: Policy) -> String {
    let plain = |p: Policy| match p {
        Policy::Restart | Policy::RenameRestart => "restart",
        _ => "destroy",
    };
    let crash = match on_crash {
        Policy::Restart | Policy::RenameRestart => "restart",
        Policy::Preserve => "preserve",
        Policy::CoredumpDestroy => "coredump-destroy",
        Policy::CoredumpRestart => "coredump-restart",
        Policy::Destroy => "destroy",
    };
    format!(
        "  <on_poweroff>{}</on_poweroff>\n  <on_reboot>{}</on_reboot>\n  <on_crash>{crash}</on_crash>\n",
        plain(on_poweroff),
        plain(on_reboot)
    )
}

/// The domain: `virt_type` is `kvm` or `qemu` (TCG), as the CPU allows.
/// Linux boots its kernel directly, with the serial console domus reads;
/// HVM boots by its boot order. q35 with free PCIe root ports, so the
/// devices domus attaches after (and later) have somewhere to go.
pub fn domain(
    spec: &CreateSpec,
    image: &BootImage,
    virt_type: &str,
    policies: (Policy, Policy, Policy),
) -> Result<String, XmlError> {
    if image.ostype == "plan9" {
        return Err(XmlError::Unsupported("a plan9 image".into()));
    }
    if image.bootloader.is_some() {
        return Err(XmlError::Unsupported("a PV bootloader (pygrub)".into()));
    }
    let mut x = format!("<domain type='{}'>\n", escape(virt_type));
    x.push_str(&format!("  <name>{}</name>\n", escape(&spec.name)));
    if let Some(u) = spec.uuid {
        x.push_str(&format!("  <uuid>{u}</uuid>\n"));
    }
    x.push_str(&format!(
        "  <memory unit='KiB'>{}</memory>\n  <currentMemory unit='KiB'>{}</currentMemory>\n",
        spec.memory_kib, spec.memory_kib
    ));
    let vcpus = spec.vcpus.max(1);
    match spec.vcpus_online.filter(|n| *n >= 1 && *n < vcpus) {
        Some(n) => x.push_str(&format!("  <vcpu current='{n}'>{vcpus}</vcpu>\n")),
        None => x.push_str(&format!("  <vcpu>{vcpus}</vcpu>\n")),
    }
    x.push_str("  <os>\n    <type arch='x86_64' machine='q35'>hvm</type>\n");
    if let Some(loader) = &image.loader {
        x.push_str(&format!("    <loader>{}</loader>\n", escape(loader)));
    }
    match &image.kernel {
        Some(k) => {
            x.push_str(&format!("    <kernel>{}</kernel>\n", escape(k)));
            if let Some(r) = &image.ramdisk {
                x.push_str(&format!("    <initrd>{}</initrd>\n", escape(r)));
            }
            // The console domus reads is the first serial port.
            let cmdline = format!("{} console=ttyS0", image.cmdline)
                .trim()
                .to_string();
            x.push_str(&format!("    <cmdline>{}</cmdline>\n", escape(&cmdline)));
        }
        None => {
            for c in image.boot_order.as_deref().unwrap_or("c").chars() {
                let dev = match c {
                    'c' => "hd",
                    'd' => "cdrom",
                    'n' => "network",
                    _ => continue,
                };
                x.push_str(&format!("    <boot dev='{dev}'/>\n"));
            }
        }
    }
    x.push_str("  </os>\n  <features><acpi/></features>\n");
    x.push_str(&lifecycle(policies.0, policies.1, policies.2));
    x.push_str("  <devices>\n    <controller type='pci' index='0' model='pcie-root'/>\n");
    for _ in 0..8 {
        x.push_str("    <controller type='pci' model='pcie-root-port'/>\n");
    }
    x.push_str(
        "    <serial type='pty'><target port='0'/></serial>\n    <console type='pty'><target type='serial' port='0'/></console>\n    <memballoon model='virtio'/>\n    <panic model='isa'/>\n",
    );
    x.push_str("  </devices>\n</domain>\n");
    Ok(x)
}

/// One device, for `virDomainAttachDeviceFlags` (and the detach, which
/// libvirt matches by it).
pub fn device(dev: &DeviceSpec) -> Result<String, XmlError> {
    match dev {
        DeviceSpec::Vbd(v) => {
            let kind = match v.uname.kind {
                UnameKind::Phy => "block",
                UnameKind::File | UnameKind::Tap | UnameKind::Empty => "file",
                UnameKind::Script => {
                    return Err(XmlError::Unsupported(format!(
                        "a block script's disk ({})",
                        v.uname
                    )));
                }
            };
            let what = if v.cdrom { "cdrom" } else { "disk" };
            let format = v.uname.format().unwrap_or("raw");
            let mut x = format!("<disk type='{kind}' device='{what}'>\n");
            x.push_str(&format!(
                "  <driver name='qemu' type='{}'/>\n",
                escape(format)
            ));
            if !v.uname.is_empty() {
                let attr = if kind == "block" { "dev" } else { "file" };
                x.push_str(&format!("  <source {attr}='{}'/>\n", escape(&v.uname.path)));
            }
            let (target, bus) = if v.cdrom {
                (virtio_name(&v.dev)?.replacen("vd", "sd", 1), "sata")
            } else {
                (virtio_name(&v.dev)?, "virtio")
            };
            x.push_str(&format!("  <target dev='{target}' bus='{bus}'/>\n"));
            if v.mode == VbdMode::ReadOnly || v.cdrom {
                x.push_str("  <readonly/>\n");
            }
            if v.mode == VbdMode::Shared {
                x.push_str("  <shareable/>\n");
            }
            x.push_str("</disk>\n");
            Ok(x)
        }
        DeviceSpec::Vif(v) => {
            // On the named bridge; without one, user-mode networking, as
            // domus's QEMU backend does (no libvirt network needs to exist).
            let mut x = match &v.bridge {
                Some(b) => format!(
                    "<interface type='bridge'>\n  <source bridge='{}'/>\n",
                    escape(b)
                ),
                None => "<interface type='user'>\n".into(),
            };
            if let Some(m) = &v.mac {
                x.push_str(&format!("  <mac address='{m}'/>\n"));
            }
            x.push_str("  <model type='virtio'/>\n</interface>\n");
            Ok(x)
        }
        DeviceSpec::Pci(p) => Ok(format!(
            "<hostdev mode='subsystem' type='pci' managed='yes'>\n  <source>\n    <address domain='0x{:04x}' bus='0x{:02x}' slot='0x{:02x}' function='0x{:x}'/>\n  </source>\n</hostdev>\n",
            p.domain, p.bus, p.dev, p.func
        )),
    }
}

/// The `<target dev='…'/>` of each `element` (`disk`, `interface`) in
/// the domain XML libvirt gives (`virDomainGetXMLDesc`): the names its
/// statistics calls take (`vda`, `vnet0`).
pub fn targets(domain_xml: &str, element: &str) -> Vec<String> {
    let open = format!("<{element} ");
    let close = format!("</{element}>");
    let mut out = Vec::new();
    let mut rest = domain_xml;
    while let Some(at) = rest.find(&open) {
        let body = &rest[at..];
        let end = body.find(&close).map_or(body.len(), |e| e + close.len());
        let block = &body[..end];
        if let Some(t) = block.find("<target dev=") {
            let value = &block[t + "<target dev=".len()..];
            if let Some(q) = value.chars().next().filter(|c| *c == '\'' || *c == '"') {
                let value = &value[1..];
                if let Some(stop) = value.find(q) {
                    out.push(value[..stop].to_string());
                }
            }
        }
        rest = &body[end..];
    }
    out
}

/// XML's five entities, back to text.
pub fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// The text of the first `<element>…</element>` (no attributes) or
/// `<element …>…</element>`.
fn text_of(xml: &str, element: &str) -> Option<String> {
    let start = [format!("<{element}>"), format!("<{element} ")]
        .iter()
        .filter_map(|o| xml.find(o.as_str()))
        .min()?;
    let body = &xml[start..];
    let open_end = body.find('>')? + 1;
    if body[..open_end].ends_with("/>") {
        return Some(String::new());
    }
    let close = body.find(&format!("</{element}>"))?;
    (close >= open_end).then(|| unescape(body[open_end..close].trim()))
}

/// How a domain boots, from its XML: a kernel booted directly (what domus
/// builds for linux configs), else HVM from its disks.
pub fn boot_image(domain_xml: &str) -> Option<BootImage> {
    let os = text_of(domain_xml, "os")?;
    let kernel = text_of(&os, "kernel").filter(|k| !k.is_empty());
    Some(BootImage {
        ostype: if kernel.is_some() { "linux" } else { "hvm" }.into(),
        boot_from_disk: kernel.is_none(),
        ramdisk: text_of(&os, "initrd").filter(|k| !k.is_empty()),
        cmdline: text_of(&os, "cmdline").unwrap_or_default(),
        kernel,
        memmap: None,
        device_model: None,
        vnc: false,
        boot_order: None,
        loader: None,
        bootloader: None,
        bootloader_args: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_boot_image_is_read_back_from_the_xml() {
        let x = "<domain><os><type arch='x86_64' machine='q35'>hvm</type><kernel>/k/vm&amp;linuz</kernel>\
                 <initrd>/k/initrd</initrd><cmdline>console=ttyS0 quiet</cmdline></os><devices/></domain>";
        let b = boot_image(x).unwrap_or_else(|| panic!("none"));
        assert_eq!(b.ostype, "linux");
        assert_eq!(b.kernel.as_deref(), Some("/k/vm&linuz"));
        assert_eq!(b.ramdisk.as_deref(), Some("/k/initrd"));
        assert_eq!(b.cmdline, "console=ttyS0 quiet");
        let h = boot_image("<domain><os><type>hvm</type><boot dev='hd'/></os></domain>")
            .unwrap_or_else(|| panic!("none"));
        assert_eq!(h.ostype, "hvm");
        assert!(h.boot_from_disk && h.kernel.is_none());
        assert!(boot_image("<domain/>").is_none());
    }

    #[test]
    fn targets_are_read_from_libvirts_xml() {
        let x = "<domain><devices><disk type='file' device='disk'><source file='/a'/><target dev='vda' bus='virtio'/></disk>\
                 <interface type='bridge'><mac address='52:54:00:00:00:01'/><target dev='vnet3'/></interface>\
                 <disk type='file' device='cdrom'><target dev=\"sdc\" bus='sata'/></disk></devices></domain>";
        assert_eq!(targets(x, "disk"), vec!["vda", "sdc"]);
        assert_eq!(targets(x, "interface"), vec!["vnet3"]);
        assert!(targets("<disk ", "disk").is_empty());
    }

    #[test]
    fn names_and_text_are_escaped_and_disks_named_for_virtio() {
        assert_eq!(escape("a<b>&'\""), "a&lt;b&gt;&amp;&apos;&quot;");
        assert_eq!(virtio_name("xvdb"), Ok("vdb".into()));
        assert_eq!(virtio_name("hdc:cdrom"), Ok("vdc".into()));
        assert_eq!(virtio_name("sdaa"), Ok("vdaa".into()));
        assert!(virtio_name("xvda1").is_err());
        assert!(virtio_name("nvme0n1").is_err());
    }

    #[test]
    fn policies_map_onto_what_the_qemu_driver_takes() {
        let x = lifecycle(Policy::Preserve, Policy::Restart, Policy::CoredumpRestart);
        assert!(x.contains("<on_poweroff>destroy</on_poweroff>"), "{x}");
        assert!(x.contains("<on_reboot>restart</on_reboot>"), "{x}");
        assert!(x.contains("<on_crash>coredump-restart</on_crash>"), "{x}");
    }
}
