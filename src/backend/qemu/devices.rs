//! Hot-plug over QMP. Every device sits on its own PCIe root port (q35's
//! root bus takes no hot-plug): a vbd is a `blockdev-add` node plus a
//! `virtio-blk-pci`, a vif a `netdev_add` plus a `virtio-net-pci`, a PCI
//! device a `vfio-pci`. Devices from the config go the same way during
//! construction, while the domain is still paused.

use std::io::Read;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use super::meta::{DomainMeta, Plugged};
use super::qmp::Qmp;
use crate::backend::{BackendError, BackendResult};
use crate::config::{DeviceRef, DeviceSpec, Pci, UnameKind, Vbd, VbdMode, Vif};

const CMD: Duration = Duration::from_secs(10);
/// How long a guest gets to let go of an unplugged device (Linux's pciehp
/// waits 5 s for the attention button before it acts).
const UNPLUG: Duration = Duration::from_secs(20);

fn qmp_err(source: super::qmp::QmpError) -> BackendError {
    BackendError::Qmp {
        domid: None,
        source: Box::new(source),
    }
}

/// The first 4 bytes decide: qcow2 images start with `QFI\xfb`.
fn detect_format(path: &Path) -> BackendResult<&'static str> {
    let mut f = std::fs::File::open(path)
        .map_err(|e| BackendError::io(format!("cannot open {}", path.display()), e))?;
    if f.metadata().is_ok_and(|m| m.is_dir()) {
        return Err(BackendError::Invalid(format!(
            "{} is a directory, not a disk image",
            path.display()
        )));
    }
    let mut magic = [0u8; 4];
    let n = f.read(&mut magic).unwrap_or(0);
    Ok(if n == 4 && magic == *b"QFI\xfb" {
        "qcow2"
    } else {
        "raw"
    })
}

/// Plug `spec` into a running (or paused) QEMU; `meta` is updated.
pub fn attach(qmp: &mut Qmp, meta: &mut DomainMeta, spec: &DeviceSpec) -> BackendResult<()> {
    if let Some(x) = meta.devices.iter().find(|p| same_device(&p.spec, spec)) {
        return Err(BackendError::Invalid(format!(
            "domain {} already has {}",
            meta.domid, x.spec
        )));
    }
    if let DeviceSpec::Vbd(v) = spec
        && let Some(DeviceSpec::Vbd(x)) = meta
            .devices
            .iter()
            .map(|p| &p.spec)
            .find(|x| matches!(x, DeviceSpec::Vbd(x) if x.uname.path == v.uname.path))
    {
        return Err(BackendError::Invalid(format!(
            "vbd {}: {} is already attached to domain {} as {}",
            v.dev, v.uname.path, meta.domid, x.dev
        )));
    }
    let port = meta.free_port().ok_or_else(|| {
        BackendError::Invalid(format!(
            "domain {} has no free PCIe root port left ({} hot-plugged devices at most)",
            meta.domid,
            super::launch::ROOT_PORTS
        ))
    })?;
    let n = meta.next_device;
    let plugged = match spec {
        DeviceSpec::Vbd(v) => attach_vbd(qmp, meta, v, n, port)?,
        DeviceSpec::Vif(v) => attach_vif(qmp, meta, v, n, port)?,
        DeviceSpec::Pci(p) => attach_pci(qmp, p, n, port)?,
    };
    meta.next_device = n + 1;
    meta.devices.push(Plugged {
        spec: spec.clone(),
        ..plugged
    });
    Ok(())
}

/// Plug a device back exactly as it was (same id, same root port): the
/// other half of a migration stream expects it there.
pub fn replug(qmp: &mut Qmp, meta: &mut DomainMeta, p: &Plugged) -> BackendResult<()> {
    let n: u32 = p
        .qdev
        .trim_start_matches(|c: char| c.is_ascii_alphabetic())
        .parse()
        .map_err(|_| BackendError::Invalid(format!("unexpected device id {}", p.qdev)))?;
    let plugged = match &p.spec {
        DeviceSpec::Vbd(v) => attach_vbd(qmp, meta, v, n, p.port)?,
        DeviceSpec::Vif(v) => attach_vif(qmp, meta, v, n, p.port)?,
        DeviceSpec::Pci(x) => attach_pci(qmp, x, n, p.port)?,
    };
    meta.next_device = meta.next_device.max(n + 1);
    meta.devices.push(plugged);
    Ok(())
}

fn same_device(a: &DeviceSpec, b: &DeviceSpec) -> bool {
    match (a, b) {
        (DeviceSpec::Vbd(a), DeviceSpec::Vbd(b)) => a.dev == b.dev,
        (DeviceSpec::Vif(a), DeviceSpec::Vif(b)) => a.mac.is_some() && a.mac == b.mac,
        (DeviceSpec::Pci(a), DeviceSpec::Pci(b)) => a == b,
        _ => false,
    }
}

/// `device_add`, undoing `undo` (the backend half) when it fails.
fn device_add(qmp: &mut Qmp, args: Value, undo: Option<(&str, Value)>) -> BackendResult<()> {
    if let Err(e) = qmp.execute("device_add", args, CMD) {
        if let Some((cmd, a)) = undo {
            let _ = qmp.execute(cmd, a, CMD);
        }
        return Err(qmp_err(e));
    }
    Ok(())
}

fn attach_vbd(
    qmp: &mut Qmp,
    meta: &DomainMeta,
    v: &Vbd,
    n: u32,
    port: u32,
) -> BackendResult<Plugged> {
    let file_driver = match v.uname.kind {
        UnameKind::File | UnameKind::Tap => Some("file"),
        UnameKind::Phy => Some("host_device"),
        UnameKind::Empty if v.cdrom => None,
        UnameKind::Empty | UnameKind::Script => {
            return Err(BackendError::Invalid(format!(
                "vbd {}: {} is not a disk the qemu backend can open (block scripts run in Xen's hotplug scripts)",
                v.dev, v.uname
            )));
        }
    };
    let node = format!("vbd{n}-node");
    let qdev = format!("vbd{n}");
    let backend = match file_driver {
        Some(file_driver) => {
            let path = Path::new(&v.uname.path);
            // A tap names its format (xend's `tap:qcow2:`); otherwise the
            // file's first bytes say.
            let format = match v.uname.format() {
                Some(f) => qemu_format(f),
                None => detect_format(path)
                    .map_err(|e| BackendError::Invalid(format!("vbd {}: {e}", v.dev)))?,
            };
            let mut file = json!({ "driver": file_driver, "filename": v.uname.path });
            if v.mode == VbdMode::Shared {
                // `w!`: shared on purpose, so QEMU's image lock must not
                // refuse the second writer.
                file["locking"] = json!("off");
            }
            qmp.execute(
                "blockdev-add",
                json!({
                    "driver": format,
                    "node-name": node,
                    "read-only": !v.mode.writable() || v.cdrom,
                    "file": file,
                }),
                CMD,
            )
            .map_err(|e| BackendError::Invalid(format!("vbd {}: {e}", v.dev)))?;
            Some(node.clone())
        }
        None => None,
    };
    let undo = backend
        .as_ref()
        .map(|b| ("blockdev-del", json!({ "node-name": b })));
    let image = meta.image.as_ref();
    let first_of_class = !meta
        .devices
        .iter()
        .any(|p| matches!(&p.spec, DeviceSpec::Vbd(x) if x.cdrom == v.cdrom));
    let bootindex = image
        .and_then(|i| i.boot_index(if v.cdrom { 'd' } else { 'c' }))
        .filter(|_| first_of_class);
    if v.cdrom {
        // A CD drive is a SCSI CD on its own virtio-scsi controller (q35's
        // AHCI takes no hot-plug); removing the controller removes both.
        device_add(
            qmp,
            json!({ "driver": "virtio-scsi-pci", "id": qdev, "bus": format!("rp{port}") }),
            undo.clone(),
        )
        .map_err(|e| BackendError::Invalid(format!("vbd {}: {e}", v.dev)))?;
        let mut cd = json!({
            "driver": "scsi-cd",
            "id": format!("{qdev}-cd"),
            "bus": format!("{qdev}.0"),
            "serial": v.dev,
        });
        if let Some(b) = &backend {
            cd["drive"] = json!(b);
        }
        if let Some(i) = bootindex {
            cd["bootindex"] = json!(i);
        }
        if let Err(e) = qmp.execute("device_add", cd, CMD) {
            let _ = qmp.execute("device_del", json!({ "id": qdev }), CMD);
            if let Some((cmd, a)) = undo {
                let _ = qmp.execute(cmd, a, CMD);
            }
            return Err(BackendError::Invalid(format!(
                "vbd {}: {}",
                v.dev,
                qmp_err(e)
            )));
        }
    } else {
        let mut dev = json!({
            "driver": "virtio-blk-pci",
            "id": qdev,
            "drive": node,
            "bus": format!("rp{port}"),
            // The guest finds the disk by its xend name in /dev/disk/by-id.
            "serial": v.dev,
        });
        if let Some(i) = bootindex {
            dev["bootindex"] = json!(i);
        }
        device_add(qmp, dev, undo)
            .map_err(|e| BackendError::Invalid(format!("vbd {}: {e}", v.dev)))?;
    }
    Ok(Plugged {
        spec: DeviceSpec::Vbd(v.clone()),
        qdev,
        backend,
        port,
        tap: None,
        note: v.cdrom.then(|| {
            if v.uname.is_empty() {
                "CD drive, no media".to_string()
            } else {
                "CD drive".to_string()
            }
        }),
    })
}

/// QEMU's block driver for an image format as xl names it.
fn qemu_format(xl: &str) -> &'static str {
    match xl {
        "qcow" => "qcow",
        "qcow2" => "qcow2",
        "vhd" => "vpc",
        "vmdk" => "vmdk",
        _ => "raw",
    }
}

/// A tap of this name that no process holds is what a domain killed
/// with `kill -9` left (its QEMU never deleted it): it would make every
/// later domain of this id fail ("Device or resource busy"), so it goes.
/// A tap some QEMU holds (of a domain another state dir runs) has its
/// carrier up and stays.
fn remove_stale_tap(sys_net: &Path, name: &str) {
    let dev = sys_net.join(name);
    let is_tap = dev.join("tun_flags").exists();
    // Only a carrier read as down is free: an interface that is admin-down
    // cannot say (EINVAL), and is left alone.
    let free = std::fs::read_to_string(dev.join("carrier")).is_ok_and(|c| c.trim() == "0");
    if is_tap && free {
        tracing::info!(tap = name, "removing a tap left by a domain that is gone");
        let _ = ip(&["link", "del", "dev", name]);
    }
}

/// Whether domus may put a tap on `bridge`: it exists and domus is root.
fn usable_bridge(bridge: &str) -> Result<(), String> {
    if bridge.contains('/') || bridge.is_empty() {
        return Err(format!("{bridge:?} is not a bridge name"));
    }
    if !Path::new("/sys/class/net")
        .join(bridge)
        .join("bridge")
        .exists()
    {
        return Err(format!("there is no bridge {bridge} on this host"));
    }
    if !nix::unistd::geteuid().is_root() {
        return Err("creating a tap needs root".into());
    }
    Ok(())
}

fn ip(args: &[&str]) -> BackendResult<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| BackendError::io("running ip", e))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(BackendError::Tool {
            command: format!("ip {}", args.join(" ")),
            failure: crate::backend::ToolFailure::Refused,
            message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

fn attach_vif(
    qmp: &mut Qmp,
    meta: &DomainMeta,
    v: &Vif,
    n: u32,
    port: u32,
) -> BackendResult<Plugged> {
    let domid = meta.domid;
    let first_vif = !meta
        .devices
        .iter()
        .any(|p| matches!(p.spec, DeviceSpec::Vif(_)));
    let bootindex = meta
        .image
        .as_ref()
        .and_then(|i| i.boot_index('n'))
        .filter(|_| first_vif);
    let net = format!("vif{n}-net");
    let qdev = format!("vif{n}");
    let mut tap = None;
    let note;
    let netdev = match v.bridge.as_deref().map(|b| (b, usable_bridge(b))) {
        Some((bridge, Ok(()))) => {
            let name = format!("dm{domid}.{n}");
            remove_stale_tap(Path::new("/sys/class/net"), &name);
            ip(&["tuntap", "add", "dev", &name, "mode", "tap"])?;
            if let Err(e) = ip(&["link", "set", "dev", &name, "master", bridge, "up"]) {
                let _ = ip(&["link", "del", "dev", &name]);
                return Err(e);
            }
            note = format!("tap {name} on bridge {bridge}");
            tap = Some(name.clone());
            json!({ "type": "tap", "id": net, "ifname": name, "script": "no", "downscript": "no" })
        }
        Some((bridge, Err(why))) => {
            note = format!("user-mode networking: bridge {bridge} not used ({why})");
            json!({ "type": "user", "id": net })
        }
        None => {
            note = "user-mode networking (no bridge given)".to_string();
            json!({ "type": "user", "id": net })
        }
    };
    let remove_tap = |tap: &Option<String>| {
        if let Some(t) = tap {
            let _ = ip(&["link", "del", "dev", t]);
        }
    };
    if let Err(e) = qmp.execute("netdev_add", netdev, CMD) {
        remove_tap(&tap);
        return Err(BackendError::Invalid(format!("vif: {}", qmp_err(e))));
    }
    let mut dev = json!({
        "driver": "virtio-net-pci",
        "id": qdev,
        "netdev": net,
        "bus": format!("rp{port}"),
    });
    if let Some(mac) = v.mac {
        dev["mac"] = json!(mac.to_string());
    }
    if let Some(i) = bootindex {
        dev["bootindex"] = json!(i);
    }
    if let Err(e) = device_add(qmp, dev, Some(("netdev_del", json!({ "id": net })))) {
        remove_tap(&tap);
        return Err(BackendError::Invalid(format!("vif: {e}")));
    }
    tracing::info!(domid, %note, "vif attached");
    Ok(Plugged {
        spec: DeviceSpec::Vif(v.clone()),
        qdev,
        backend: Some(net),
        port,
        tap,
        note: Some(note),
    })
}

/// Why `pci` cannot be passed through, in the operator's terms.
pub fn vfio_problem(pci: &Pci) -> Option<String> {
    let dev = Path::new("/sys/bus/pci/devices").join(pci.to_string());
    if !dev.exists() {
        return Some(format!("there is no PCI device {pci} on this host"));
    }
    let driver = std::fs::read_link(dev.join("driver"))
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
    if driver.as_deref() != Some("vfio-pci") {
        let now = driver.map_or("no driver".to_string(), |d| format!("driver {d}"));
        return Some(format!(
            "PCI device {pci} is bound to {now}, not vfio-pci (bind it with driverctl set-override {pci} vfio-pci)"
        ));
    }
    let groups = std::fs::read_dir("/sys/kernel/iommu_groups")
        .map(|d| d.count())
        .unwrap_or(0);
    if groups == 0 {
        return Some("this host has no IOMMU enabled (intel_iommu=on or amd_iommu=on)".into());
    }
    None
}

fn attach_pci(qmp: &mut Qmp, p: &Pci, n: u32, port: u32) -> BackendResult<Plugged> {
    if let Some(why) = vfio_problem(p) {
        return Err(BackendError::Invalid(format!("pci {p}: {why}")));
    }
    let qdev = format!("pci{n}");
    device_add(
        qmp,
        json!({ "driver": "vfio-pci", "id": qdev, "host": p.to_string(), "bus": format!("rp{port}") }),
        None,
    )
    .map_err(|e| BackendError::Invalid(format!("pci {p}: {e}")))?;
    Ok(Plugged {
        spec: DeviceSpec::Pci(*p),
        qdev,
        backend: None,
        port,
        tap: None,
        note: None,
    })
}

/// Which plugged device `r` names.
pub fn find(meta: &DomainMeta, r: &DeviceRef) -> Option<usize> {
    r.position_in(meta.devices.iter().map(|p| &p.spec))
}

/// Unplug: `device_del`, wait until the guest lets go (`DEVICE_DELETED`
/// naming the device; QEMU also sends one without a name), then remove the
/// backend half. `guest_running` false skips the wait for a guest that
/// cannot answer (shut down), where QEMU removes the device at once.
pub fn detach(qmp: &mut Qmp, p: &Plugged) -> BackendResult<()> {
    let id = p.qdev.clone();
    qmp.execute("device_del", json!({ "id": id }), CMD)
        .map_err(qmp_err)?;
    qmp.wait_event(
        "DEVICE_DELETED",
        |d| d.get("device").and_then(Value::as_str) == Some(id.as_str()),
        UNPLUG,
    )
    .map_err(|_| {
        BackendError::Guest(format!(
            "the guest did not release {} within {} s (is it running an OS with PCIe hot-plug?)",
            p.spec,
            UNPLUG.as_secs()
        ))
    })?;
    release_backend(qmp, p);
    Ok(())
}

/// Remove a device's host half once the guest side is gone.
pub fn release_backend(qmp: &mut Qmp, p: &Plugged) {
    if let Some(b) = &p.backend {
        let (cmd, args) = match p.spec {
            DeviceSpec::Vbd(_) => ("blockdev-del", json!({ "node-name": b })),
            _ => ("netdev_del", json!({ "id": b })),
        };
        if let Err(e) = qmp.execute(cmd, args, CMD) {
            tracing::warn!(device = %p.spec, error = %e, "releasing the device's backend");
        }
    }
    remove_tap(p);
}

pub fn remove_tap(p: &Plugged) {
    if let Some(t) = &p.tap
        && let Err(e) = ip(&["link", "del", "dev", t])
    {
        tracing::warn!(tap = %t, error = %e, "removing a tap");
    }
}
