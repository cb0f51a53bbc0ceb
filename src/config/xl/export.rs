//! A domus config as xl.cfg: the writer `domus export` uses and the Xen
//! backend builds its domains' configs with.

use super::disk;
use crate::config::{DeviceSpec, DomainConfig, Image, OtherDevice, Pci, Vif};

/// Whether xl.cfg can hold `s` as written: its escapes cover `\n \r \t
/// \a \b \v \f`, no other control character.
pub fn writable(s: &str) -> bool {
    !s.chars().any(|c| {
        c.is_control() && !matches!(c, '\n' | '\r' | '\t' | '\x07' | '\x08' | '\x0b' | '\x0c')
    })
}

/// An xl string literal: `"…"` with xl's escapes for what needs one; a
/// control character xl has no escape for becomes `?` (see [`writable`]).
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0b' => out.push_str("\\v"),
            '\x0c' => out.push_str("\\f"),
            c if c.is_control() => out.push('?'),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// xl.cfg text, one `key = value` per line.
#[derive(Debug, Default)]
pub struct Writer {
    out: String,
    /// Keys whose values held what xl.cfg cannot (written with `?`).
    pub lossy: Vec<String>,
}

impl Writer {
    pub fn comment(&mut self, text: &str) {
        for line in text.lines() {
            self.out.push_str("# ");
            self.out.push_str(line);
            self.out.push('\n');
        }
    }

    pub fn string(&mut self, key: &str, v: &str) {
        if !writable(v) {
            self.lossy.push(key.to_string());
        }
        self.raw(key, &quote(v));
    }

    pub fn number(&mut self, key: &str, n: u64) {
        self.raw(key, &n.to_string());
    }

    /// A list of strings, one per line when there are several.
    pub fn list(&mut self, key: &str, items: &[String]) {
        if !items.iter().all(|i| writable(i)) {
            self.lossy.push(key.to_string());
        }
        let quoted: Vec<String> = items.iter().map(|i| quote(i)).collect();
        let v = if quoted.len() <= 1 {
            format!("[{}]", quoted.join(""))
        } else {
            format!("[\n    {},\n]", quoted.join(",\n    "))
        };
        self.raw(key, &v);
    }

    fn raw(&mut self, key: &str, v: &str) {
        self.out.push_str(key);
        self.out.push_str(" = ");
        self.out.push_str(v);
        self.out.push('\n');
    }

    pub fn finish(self) -> String {
        self.out
    }
}

/// A vif as xl's NETSPEC.
pub fn nic_spec(v: &Vif) -> String {
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
    for e in &v.extra {
        // xend's `(script …)`, `(model …)`, `(rate …)` kept from a config.
        if let Ok(node) = crate::sxp::parse(e)
            && let Some(k) = node.name()
            && matches!(
                k,
                "script" | "model" | "rate" | "vifname" | "type" | "backend"
            )
            && let Some(val) = node.children().first().and_then(crate::sxp::Node::atom)
        {
            let val = if k == "script" {
                val.rsplit('/').next().unwrap_or(val)
            } else {
                val
            };
            if !val.contains(',') {
                a.push(format!("{k}={val}"));
            }
        }
    }
    a.join(",")
}

/// Why a vif cannot be written whole as a NETSPEC (a ',' in a value would
/// start another setting).
fn nic_loss(v: &Vif) -> Option<String> {
    let comma = v.bridge.iter().chain(v.ip.iter()).any(|x| x.contains(','))
        || v.extra.iter().any(|e| {
            crate::sxp::parse(e)
                .ok()
                .and_then(|n| {
                    n.children()
                        .first()
                        .and_then(crate::sxp::Node::atom)
                        .map(|a| a.contains(','))
                })
                .unwrap_or(false)
        });
    comma.then(|| {
        "a vif: xl's vif spec cannot hold a ',' in a value (that setting is left out)".to_string()
    })
}

pub fn pci_spec(p: &Pci) -> String {
    p.to_string()
}

/// The config as xl.cfg, and what of it xl.cfg cannot say.
pub fn to_xl(c: &DomainConfig) -> (String, Vec<String>) {
    let mut w = Writer::default();
    let mut lost = Vec::new();
    w.string("name", &c.name);
    if let Some(u) = c.uuid {
        w.string("uuid", &u.to_string());
    }
    let boot = c.image.boot();
    match &c.image {
        Image::Linux(_) => w.string("type", "pv"),
        Image::Hvm(_) => w.string("type", "hvm"),
        Image::Plan9(_) => {
            w.string("type", "pv");
            lost.push("a plan9 image: xl builds it as pv".into());
        }
    }
    w.number("memory", c.memory);
    if let Some(m) = c.maxmem {
        w.number("maxmem", m);
    }
    match c.vcpus_online.filter(|n| *n < c.vcpus) {
        Some(n) => {
            w.number("vcpus", u64::from(n));
            w.number("maxvcpus", u64::from(c.vcpus));
        }
        None => w.number("vcpus", u64::from(c.vcpus)),
    }
    if let Some(cpu) = c.cpu {
        lost.push(format!(
            "cpu {cpu} pins vCPU 0 only; written as cpus = \"{cpu}\", which pins every vCPU"
        ));
        w.string("cpus", &cpu.to_string());
    }
    if let Some(wt) = c.cpu_weight {
        w.number("cpu_weight", u64::from(wt));
    }
    if let Some(k) = &boot.kernel {
        w.string("kernel", k);
    }
    if let Some(r) = &boot.ramdisk {
        w.string("ramdisk", r);
    }
    let cmdline = boot.cmdline();
    if !cmdline.is_empty() {
        w.string("cmdline", &cmdline);
    }
    if let Image::Hvm(h) = &c.image {
        w.string("boot", h.boot_order());
        if let Some(vnc) = h.vnc {
            w.number("vnc", u64::from(vnc));
        }
        if let Some(dm) = &h.device_model {
            lost.push(format!("device_model {dm}: xl ignores it"));
        }
        if h.loader.is_some() {
            lost.push("the HVM loader: xl picks its own firmware".into());
        }
    }
    if let Some(b) = &c.bootloader {
        w.string("bootloader", b);
    }
    if let Some(a) = &c.bootloader_args {
        let args: Vec<String> = a.split_whitespace().map(str::to_string).collect();
        w.list("bootloader_args", &args);
    }
    // Always written, as domus applies them (xend's defaults differed).
    w.string("on_poweroff", c.poweroff_policy().as_str());
    w.string("on_reboot", c.reboot_policy().as_str());
    w.string("on_crash", c.crash_policy().as_str());
    let mut disks = Vec::new();
    let mut vifs = Vec::new();
    let mut pcis = Vec::new();
    for d in &c.devices {
        match d {
            DeviceSpec::Vbd(v) => {
                if v.mode == crate::config::VbdMode::Shared {
                    lost.push(format!("vbd {}: mode w! is plain rw in xl", v.dev));
                }
                for e in &v.extra {
                    if !e.starts_with("(backend ") {
                        lost.push(format!("vbd {} setting {e}: xl has no such setting", v.dev));
                    }
                }
                disks.push(disk::format(v));
            }
            DeviceSpec::Vif(v) => {
                if let Some(l) = nic_loss(v) {
                    lost.push(l);
                }
                for e in &v.extra {
                    let known = crate::sxp::parse(e)
                        .ok()
                        .and_then(|n| n.name().map(str::to_string));
                    if !known.as_deref().is_some_and(|k| {
                        matches!(
                            k,
                            "script" | "model" | "rate" | "vifname" | "type" | "backend"
                        )
                    }) {
                        lost.push(format!("vif setting {e}: xl has no such setting"));
                    }
                }
                vifs.push(nic_spec(v));
            }
            DeviceSpec::Pci(p) => pcis.push(pci_spec(p)),
        }
    }
    if !disks.is_empty() {
        w.list("disk", &disks);
    }
    if !vifs.is_empty() {
        w.list("vif", &vifs);
    }
    if !pcis.is_empty() {
        w.list("pci", &pcis);
    }
    let mut vfbs = Vec::new();
    let has_vfb = c
        .other_devices
        .iter()
        .any(|o| matches!(o, OtherDevice::Vfb(_)));
    for o in &c.other_devices {
        match o {
            OtherDevice::Vfb(v) => {
                let mut parts = Vec::new();
                if v.vnc {
                    parts.push("vnc=1".to_string());
                }
                if v.sdl {
                    parts.push("sdl=1".to_string());
                }
                for (k, val) in &v.settings {
                    if val.contains(',') {
                        lost.push(format!(
                            "vfb {k}: xl's vfb spec cannot hold a ',' in a value"
                        ));
                    } else {
                        parts.push(format!("{k}={val}"));
                    }
                }
                vfbs.push(parts.join(","));
            }
            // xl pairs a keyboard with each vfb.
            OtherDevice::Vkbd if !has_vfb => {
                lost.push("a vkbd without a vfb: xl adds one only with a vfb".into());
            }
            // xl makes the console itself.
            OtherDevice::Vkbd | OtherDevice::Console { .. } => {}
        }
    }
    if !vfbs.is_empty() {
        w.list("vfb", &vfbs);
    }
    // xend settings kept from the source, under their xl names where xl
    // has the same setting.
    let hvm_extra = matches!(c.image, Image::Hvm(_)).then_some(&boot.extra);
    if !matches!(c.image, Image::Hvm(_)) {
        for v in &boot.extra {
            lost.push(format!(
                "image setting {}: xl has no such setting",
                crate::sxp::print_value(v)
            ));
        }
    }
    for v in c.extra.iter().chain(hvm_extra.into_iter().flatten()) {
        let Some(items) = v.list_iter().map(|i| i.collect::<Vec<_>>()) else {
            continue;
        };
        let Some(key) = items
            .first()
            .and_then(|k| k.as_symbol().or_else(|| k.as_str()))
        else {
            continue;
        };
        let xl_key = match key {
            "cpu_cap" => "cap",
            "pool_name" => "pool",
            k if XL_SAME.contains(&k) => k,
            other => {
                lost.push(format!("{other}: xl has no such setting"));
                continue;
            }
        };
        let values: Vec<String> = items[1..]
            .iter()
            .filter_map(|x| {
                x.as_str()
                    .map(str::to_string)
                    .or_else(|| x.as_symbol().map(str::to_string))
                    .or_else(|| x.as_i64().map(|n| n.to_string()))
                    .or_else(|| x.as_u64().map(|n| n.to_string()))
            })
            .collect();
        match values.as_slice() {
            [one] if one.parse::<u64>().is_ok() && !XL_STRINGS.contains(&xl_key) => {
                w.raw(xl_key, one)
            }
            [one] => w.string(xl_key, one),
            _ => lost.push(format!("{key}: its value has no xl form")),
        }
    }
    for role in &c.backends {
        lost.push(format!(
            "backend role {}: xl has no such setting",
            role.as_str()
        ));
    }
    for key in std::mem::take(&mut w.lossy) {
        lost.push(format!(
            "{key}: a control character xl.cfg has no escape for (written as '?')"
        ));
    }
    (w.finish(), lost)
}

/// xend settings xl reads under the same name.
const XL_SAME: &[&str] = &[
    "cpus",
    "shadow_memory",
    "localtime",
    "rtc_timeoffset",
    "keymap",
    "serial",
    "usb",
    "usbdevice",
    "soundhw",
    "videoram",
    "hap",
    "oos",
    "nestedhvm",
    "nomigrate",
    "acpi",
    "apic",
    "pae",
    "hpet",
    "viridian",
    "stdvga",
    "nographic",
    "vpt_align",
    "xen_platform_pci",
    "pci_msitranslate",
    "pci_power_mgmt",
    "vnclisten",
    "vncdisplay",
    "vncunused",
    "vncpasswd",
    "sdl",
    "opengl",
    "display",
    "xauthority",
    "timer_mode",
    "tsc_mode",
];

/// Settings xl wants as strings even when they look like numbers.
const XL_STRINGS: &[&str] = &[
    "cpus",
    "keymap",
    "serial",
    "usbdevice",
    "soundhw",
    "vncpasswd",
    "vnclisten",
];
