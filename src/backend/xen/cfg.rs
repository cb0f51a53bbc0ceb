//! What libxl takes: an `xl.cfg` for the domain (built paused, devices
//! hot-plugged afterwards like every later attach) and xl's device specs.

use crate::backend::{BackendError, BackendResult, BootImage, CreateSpec};
use crate::config::{UnameKind, Vbd, Vif};

use crate::config::xl::Writer;

/// A value for `xl.cfg`: libxlu of older Xen releases reads no escapes, so
/// a `"`, `\\` or newline is refused rather than trusted to one.
fn plain(what: &str, v: &str) -> BackendResult<()> {
    if v.contains('"') || v.contains('\n') || v.contains('\\') {
        return Err(BackendError::Invalid(format!(
            "{what} {v:?}: xl configs cannot hold '\"', '\\' or newlines"
        )));
    }
    Ok(())
}

/// The domain's `xl.cfg`, written with the writer `domus export` uses.
/// Shutdown actions are `preserve`: domus's engine applies the config's
/// policies itself, as xend did.
pub fn xl_cfg(spec: &CreateSpec, max_kib: u64, image: &BootImage) -> BackendResult<String> {
    let mut w = Writer::default();
    let string = |w: &mut Writer, k: &str, v: &str| -> BackendResult<()> {
        plain(k, v)?;
        w.string(k, v);
        Ok(())
    };
    string(&mut w, "name", &spec.name)?;
    if let Some(u) = spec.uuid {
        string(&mut w, "uuid", &u.to_string())?;
    }
    match image.ostype.as_str() {
        "linux" => string(&mut w, "type", "pv")?,
        "hvm" => string(&mut w, "type", "hvm")?,
        other => {
            return Err(BackendError::UnsupportedFeature {
                backend: crate::backend::BackendKind::Xen,
                what: format!("{other} images"),
                why: "Xen builds linux (PV) and hvm guests".into(),
            });
        }
    }
    match &image.kernel {
        Some(k) => string(&mut w, "kernel", k)?,
        None if image.ostype == "hvm" => {
            // xl's boot letters are xend's (c disk, d CD-ROM, n network);
            // xl has no floppy.
            let order: String = image
                .boot_order
                .as_deref()
                .unwrap_or("c")
                .chars()
                .filter(|c| matches!(c, 'c' | 'd' | 'n'))
                .collect();
            let order = if order.is_empty() {
                "c".to_string()
            } else {
                order
            };
            string(&mut w, "boot", &order)?;
        }
        None => {
            string(
                &mut w,
                "bootloader",
                image.bootloader.as_deref().unwrap_or("pygrub"),
            )?;
            if let Some(args) = &image.bootloader_args {
                // xl wants a list; xend kept one string, split at spaces.
                let items: Vec<String> = args.split_whitespace().map(str::to_string).collect();
                for a in &items {
                    plain("bootloader_args", a)?;
                }
                w.list("bootloader_args", &items);
            }
        }
    }
    if let Some(r) = &image.ramdisk {
        string(&mut w, "ramdisk", r)?;
    }
    let mut cmdline = image.cmdline.clone();
    if image.ostype == "linux" && !cmdline.contains("console=") {
        // The PV console is the domain's console.
        cmdline = format!("{cmdline} console=hvc0").trim().to_string();
    }
    if !cmdline.is_empty() && image.kernel.is_some() {
        string(&mut w, "extra", &cmdline)?;
    }
    w.number("memory", spec.memory_kib.div_ceil(1024));
    w.number("maxmem", max_kib.max(spec.memory_kib).div_ceil(1024));
    match spec.vcpus_online.filter(|n| *n < spec.vcpus) {
        Some(online) => {
            w.number("vcpus", u64::from(online.max(1)));
            w.number("maxvcpus", u64::from(spec.vcpus));
        }
        None => w.number("vcpus", u64::from(spec.vcpus.max(1))),
    }
    for action in ["on_poweroff", "on_reboot", "on_crash", "on_watchdog"] {
        string(&mut w, action, "preserve")?;
    }
    Ok(w.finish())
}

/// `xl block-attach`'s disk spec, as `domus export` writes it; `qcow2`:
/// the file's first bytes say qcow2 where the uname names no format.
pub fn disk_spec(v: &Vbd, qcow2: bool) -> String {
    if qcow2 && v.uname.format().is_none() && v.uname.kind == UnameKind::File {
        let mut v = v.clone();
        v.uname.kind = UnameKind::Tap;
        v.uname.driver = Some("qcow2".into());
        return crate::config::xl::disk_spec(&v);
    }
    crate::config::xl::disk_spec(v)
}

/// `xl network-attach`'s arguments: the NETSPEC's parts.
pub fn nic_args(v: &Vif) -> Vec<String> {
    crate::config::xl::nic_spec(v)
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> BootImage {
        BootImage {
            ostype: "linux".into(),
            kernel: Some("/boot/vmlinuz".into()),
            ramdisk: Some("/boot/initrd".into()),
            cmdline: "root=/dev/xvda1 quiet".into(),
            memmap: None,
            device_model: None,
            vnc: false,
            boot_from_disk: false,
            ..Default::default()
        }
    }

    fn spec(name: &str) -> CreateSpec {
        CreateSpec {
            name: name.into(),
            uuid: None,
            memory_kib: 128 * 1024,
            vcpus: 2,
            vcpus_online: None,
            image: None,
            min_domid: 1,
        }
    }

    #[test]
    fn pv_config() {
        let cfg = xl_cfg(&spec("web1"), 256 * 1024, &image()).unwrap_or_default();
        for want in [
            "name = \"web1\"",
            "type = \"pv\"",
            "kernel = \"/boot/vmlinuz\"",
            "ramdisk = \"/boot/initrd\"",
            "extra = \"root=/dev/xvda1 quiet console=hvc0\"",
            "memory = 128",
            "maxmem = 256",
            "vcpus = 2",
            "on_crash = \"preserve\"",
        ] {
            assert!(cfg.contains(want), "{want} missing from:\n{cfg}");
        }
    }

    #[test]
    fn quotes_are_refused_not_mangled() {
        let err = xl_cfg(&spec("a\"b"), 0, &image())
            .err()
            .map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("cannot hold")));
    }

    #[test]
    fn plan9_is_unsupported() {
        let mut i = image();
        i.ostype = "plan9".into();
        let err = xl_cfg(&spec("p"), 0, &i).err().map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("not supported by the xen backend")));
    }
}
