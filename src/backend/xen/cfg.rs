//! What libxl takes: an `xl.cfg` for the domain (built paused, devices
//! hot-plugged afterwards like every later attach) and xl's device specs.

use crate::backend::{BackendError, BackendResult, BootImage, CreateSpec};
use crate::config::{UnameKind, Vbd, VbdMode, Vif};

/// An `xl.cfg` string value; xl's config syntax has no escape for `"` or a
/// newline, so those are refused rather than mangled.
fn quoted(what: &str, v: &str) -> BackendResult<String> {
    if v.contains('"') || v.contains('\n') || v.contains('\\') {
        return Err(BackendError::Invalid(format!(
            "{what} {v:?}: xl configs cannot hold '\"', '\\' or newlines"
        )));
    }
    Ok(format!("\"{v}\""))
}

/// The domain's `xl.cfg`. Shutdown actions are `preserve`: domus's engine
/// applies the config's policies itself, as xend did.
pub fn xl_cfg(spec: &CreateSpec, max_kib: u64, image: &BootImage) -> BackendResult<String> {
    let mut out = String::new();
    let mut line = |k: &str, v: String| {
        out.push_str(k);
        out.push_str(" = ");
        out.push_str(&v);
        out.push('\n');
    };
    line("name", quoted("name", &spec.name)?);
    if let Some(u) = spec.uuid {
        line("uuid", quoted("uuid", &u.to_string())?);
    }
    match image.ostype.as_str() {
        "linux" => line("type", quoted("type", "pv")?),
        "hvm" => line("type", quoted("type", "hvm")?),
        other => {
            return Err(BackendError::UnsupportedFeature {
                backend: crate::backend::BackendKind::Xen,
                what: format!("{other} images"),
                why: "Xen builds linux (PV) and hvm guests".into(),
            });
        }
    }
    match &image.kernel {
        Some(k) => line("kernel", quoted("kernel", k)?),
        None if image.ostype == "hvm" => line("boot", quoted("boot", "c")?),
        None => line("bootloader", quoted("bootloader", "pygrub")?),
    }
    if let Some(r) = &image.ramdisk {
        line("ramdisk", quoted("ramdisk", r)?);
    }
    let mut cmdline = image.cmdline.clone();
    if image.ostype == "linux" && !cmdline.contains("console=") {
        // The PV console is the domain's console.
        cmdline = format!("{cmdline} console=hvc0").trim().to_string();
    }
    if !cmdline.is_empty() && image.kernel.is_some() {
        line("extra", quoted("extra", &cmdline)?);
    }
    line("memory", spec.memory_kib.div_ceil(1024).to_string());
    line(
        "maxmem",
        max_kib.max(spec.memory_kib).div_ceil(1024).to_string(),
    );
    line("vcpus", spec.vcpus.max(1).to_string());
    for action in ["on_poweroff", "on_reboot", "on_crash", "on_watchdog"] {
        line(action, quoted(action, "preserve")?);
    }
    Ok(out)
}

/// `xl block-attach`'s disk spec (`target=` must come last).
pub fn disk_spec(v: &Vbd, qcow2: bool) -> String {
    let access = match v.mode {
        VbdMode::ReadOnly => "ro",
        VbdMode::ReadWrite => "rw",
    };
    let format = if qcow2 { "qcow2" } else { "raw" };
    let kind = match v.uname.kind {
        UnameKind::Phy => ",script=block",
        UnameKind::File => "",
    };
    format!(
        "format={format},vdev={},access={access}{kind},target={}",
        v.dev, v.uname.path
    )
}

/// `xl network-attach`'s arguments.
pub fn nic_args(v: &Vif) -> Vec<String> {
    let mut a = Vec::new();
    if let Some(m) = v.mac {
        a.push(format!("mac={m}"));
    }
    if let Some(b) = &v.bridge {
        a.push(format!("bridge={b}"));
    }
    if let Some(ip) = &v.ip {
        a.push(format!("ip={ip}"));
    }
    a
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
        }
    }

    fn spec(name: &str) -> CreateSpec {
        CreateSpec {
            name: name.into(),
            uuid: None,
            memory_kib: 128 * 1024,
            vcpus: 2,
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
