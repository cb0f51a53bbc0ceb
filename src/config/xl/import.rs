//! An xl.cfg (or an xm config of plain assignments) as a domus config.
//! Every key is either carried, kept as xend's own setting (which domus
//! keeps and writes back but does not act on), or reported as not carried,
//! at its file:line:col. What would make domus build a different domain
//! than xl would (a PVH guest, a disk format domus cannot open) is an error.

use std::str::FromStr;

use lexpr::Value as Sx;

use super::disk;
use super::syntax::{Setting, Value, XlFile};
use crate::config::parse::{XEND_IMAGE_KEPT, XEND_KEPT};
use crate::config::{
    DeviceSpec, Diagnostics, DomainConfig, HvmImage, Image, KernelImage, Mac, OtherDevice, Pci,
    Policy, Vfb, Vif,
};
use crate::sxp::Pos;

/// xl keys with another name in xend.
const RENAMED: &[(&str, &str)] = &[("cap", "cpu_cap"), ("pool", "pool_name")];

/// The display keys xl reads both at the top level and in `vfb` strings.
const DISPLAY_KEYS: &[&str] = &[
    "vnc",
    "vnclisten",
    "vncpasswd",
    "vncdisplay",
    "vncunused",
    "keymap",
    "sdl",
    "opengl",
    "display",
    "xauthority",
];

/// Keys handled below by name.
const CARRIED: &[&str] = &[
    "name",
    "uuid",
    "type",
    "builder",
    "memory",
    "maxmem",
    "vcpus",
    "maxvcpus",
    "cpu_weight",
    "kernel",
    "ramdisk",
    "cmdline",
    "root",
    "extra",
    "bootloader",
    "bootloader_args",
    "boot",
    "on_poweroff",
    "on_reboot",
    "on_crash",
    "disk",
    "vif",
    "pci",
    "vfb",
    "device_model",
];

/// xl's `strtol(…, 0)`: decimal, `0x` hex, a leading `0` octal.
fn number(v: &Value) -> Result<u64, String> {
    let text = v.as_atom().ok_or("expected a number, found a list")?.trim();
    let parsed = if let Some(h) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        u64::from_str_radix(h, 16).ok()
    } else if text.len() > 1 && text.starts_with('0') {
        u64::from_str_radix(&text[1..], 8).ok()
    } else {
        text.parse().ok()
    };
    parsed.ok_or_else(|| {
        format!(
            "expected a number, found {}",
            crate::config::error::shown_quoted(text)
        )
    })
}

fn string(v: &Value) -> Result<String, String> {
    v.as_atom()
        .map(str::to_string)
        .ok_or_else(|| "expected a string, found a list".to_string())
}

/// A list of strings; one string stands for a list of one (xl allows it
/// for `serial`, `usbdevice`, `bootloader_args`).
fn strings(v: &Value) -> Result<Vec<(String, Pos)>, String> {
    match v {
        Value::Atom { text, pos, .. } => Ok(vec![(text.clone(), *pos)]),
        Value::List { items, .. } => items
            .iter()
            .map(|i| {
                i.as_atom()
                    .map(|t| (t.to_string(), i.pos()))
                    .ok_or_else(|| "expected a list of strings, found a nested list".to_string())
            })
            .collect(),
    }
}

/// An xl value as xend's setting `(key value…)`.
fn as_xend(key: &str, v: &Value) -> Sx {
    let mut items = vec![Sx::string(key)];
    match v {
        Value::Atom { text, .. } => items.push(Sx::string(text.as_str())),
        Value::List { items: l, .. } => {
            items.extend(l.iter().filter_map(Value::as_atom).map(Sx::string));
        }
    }
    Sx::list(items)
}

fn truthy(v: &Value) -> bool {
    number(v).is_ok_and(|n| n != 0)
}

/// `mac=…,bridge=…` (xl-network-configuration(5)).
fn nic(spec: &str, pos: Pos, d: &mut Diagnostics) -> Option<Vif> {
    let mut vif = Vif {
        mac: None,
        bridge: None,
        ip: None,
        extra: Vec::new(),
    };
    let mut kept = Vec::new();
    for token in spec.split(',') {
        let token = token.trim_start();
        if token.is_empty() {
            continue;
        }
        let Some((k, v)) = token.split_once('=') else {
            d.warn(
                pos,
                format!(
                    "vif: {} is not KEY=VALUE (skipped, as xl does)",
                    crate::config::error::shown_quoted(token)
                ),
            );
            continue;
        };
        match k {
            "mac" => match Mac::from_str(v) {
                Ok(m) => vif.mac = Some(m),
                Err(e) => {
                    d.error(pos, format!("vif: {e}"));
                    return None;
                }
            },
            "bridge" => vif.bridge = Some(v.to_string()),
            "ip" => vif.ip = Some(v.to_string()),
            "type" if v == "netfront" => {
                d.error(pos, "vif: type=netfront is refused by xl (use type=vif)");
                return None;
            }
            // xend's vif knew these: kept as its settings (the sxp
            // reader says so when the config is read back).
            "script" | "model" | "rate" | "vifname" | "type" | "backend" => {
                kept.push(k);
                vif.extra.push(crate::sxp::print_value(&Sx::list(vec![
                    Sx::string(k),
                    Sx::string(v),
                ])));
            }
            other => d.warn(
                pos,
                format!("vif: {other}= is not carried (domus has no equivalent)"),
            ),
        }
    }
    if !kept.is_empty() {
        d.warn(
            pos,
            format!(
                "vif: xend settings kept as written (domus does not use them): {}",
                kept.join(", ")
            ),
        );
    }
    Some(vif)
}

/// `[DDDD:]BB:SS.F[@VSLOT][,key=value…]` (xl-pci-configuration(5)).
fn pci(spec: &str, pos: Pos, d: &mut Diagnostics) -> Option<Pci> {
    let mut parts = spec.split(',');
    let first = parts.next().unwrap_or("").trim();
    let first = first.strip_prefix("bdf=").unwrap_or(first);
    let (bdf, vslot) = match first.split_once('@') {
        Some((b, v)) => (b, Some(v)),
        None => (first, None),
    };
    if bdf.ends_with(".*") {
        d.error(
            pos,
            format!(
                "pci {bdf}: every function of a device (.*) is not carried; list each function"
            ),
        );
        return None;
    }
    let p = match Pci::parse_bdf(bdf) {
        Ok(p) => p,
        Err(e) => {
            d.error(pos, format!("pci: {e}"));
            return None;
        }
    };
    let opts: Vec<&str> = parts.map(str::trim).filter(|o| !o.is_empty()).collect();
    if vslot.is_some() || !opts.is_empty() {
        d.warn(
            pos,
            format!("pci {p}: its options are not carried (domus's backends use their defaults)"),
        );
    }
    Some(p)
}

/// One `vfb` string: `vnc=1,vnclisten=…`. A token without `=` ends the
/// string, as in xl.
fn vfb(spec: &str, pos: Pos, d: &mut Diagnostics) -> Vfb {
    let mut v = Vfb::default();
    for token in spec.split(',') {
        let token = token.trim_start();
        let Some((k, val)) = token.split_once('=') else {
            if !token.is_empty() {
                d.warn(
                    pos,
                    format!(
                        "vfb: reading stopped at {} (not KEY=VALUE), as xl does",
                        crate::config::error::shown_quoted(token)
                    ),
                );
            }
            break;
        };
        match k {
            "vnc" => v.vnc = val != "0",
            "sdl" => v.sdl = val != "0",
            "type" => {
                d.warn(
                    pos,
                    "vfb: type= is xend's; xl ignores it (write vnc=1 or sdl=1)",
                );
            }
            k if DISPLAY_KEYS.contains(&k) => v.settings.push((k.to_string(), val.to_string())),
            other => d.warn(pos, format!("vfb: {other}= is not carried")),
        }
    }
    v
}

struct Reader<'a> {
    file: &'a XlFile,
    d: &'a mut Diagnostics,
}

impl Reader<'_> {
    fn get(&self, key: &str) -> Option<&Setting> {
        self.file.get(key)
    }

    fn num(&mut self, key: &str) -> Option<u64> {
        let s = self.get(key)?;
        match number(&s.value) {
            Ok(n) => Some(n),
            Err(e) => {
                let pos = s.value.pos();
                self.d.error(pos, format!("{key}: {e}"));
                None
            }
        }
    }

    fn text(&mut self, key: &str) -> Option<String> {
        let s = self.get(key)?;
        match string(&s.value) {
            Ok(t) => Some(t),
            Err(e) => {
                let pos = s.value.pos();
                self.d.error(pos, format!("{key}: {e}"));
                None
            }
        }
    }

    fn list(&mut self, key: &str) -> Vec<(String, Pos)> {
        let Some(s) = self.get(key) else {
            return Vec::new();
        };
        match strings(&s.value) {
            Ok(l) => l,
            Err(e) => {
                let pos = s.value.pos();
                self.d.error(pos, format!("{key}: {e}"));
                Vec::new()
            }
        }
    }

    fn u32(&mut self, key: &str) -> Option<u32> {
        let n = self.num(key)?;
        match u32::try_from(n) {
            Ok(n) => Some(n),
            Err(_) => {
                let pos = self
                    .get(key)
                    .map_or(Pos { line: 1, col: 1 }, |s| s.value.pos());
                self.d.error(pos, format!("{key}: {n} is too large"));
                None
            }
        }
    }
}

/// Build the config; `None` when an error makes it unusable (the errors
/// are in `d`).
pub fn convert(file: &XlFile, d: &mut Diagnostics) -> Option<(DomainConfig, Vec<Pos>)> {
    let mut r = Reader { file, d };
    let errors_before = r.d.errors.len();
    let name = match r.get("name") {
        None => {
            r.d.error(Pos { line: 1, col: 1 }, "no name = \"…\" (xl requires one)");
            String::new()
        }
        Some(s) => {
            let pos = s.value.pos();
            match string(&s.value).and_then(|n| crate::config::validate_name(&n).map(|()| n)) {
                Ok(n) => n,
                Err(e) => {
                    r.d.error(pos, format!("name: {e}"));
                    String::new()
                }
            }
        }
    };
    let uuid = r
        .text("uuid")
        .and_then(|u| match uuid::Uuid::parse_str(&u) {
            Ok(u) => Some(u),
            Err(e) => {
                let pos = r
                    .get("uuid")
                    .map_or(Pos { line: 1, col: 1 }, |s| s.value.pos());
                r.d.error(pos, format!("uuid: {e}"));
                None
            }
        });

    // The image type: `type`, else the deprecated `builder`.
    let ty = r.text("type");
    let builder = r.text("builder");
    let hvm = match (ty.as_deref(), builder.as_deref()) {
        (Some("hvm"), _) => true,
        (Some("pv"), _) | (None, None) => false,
        (Some("pvh"), _) => {
            let pos = r
                .get("type")
                .map_or(Pos { line: 1, col: 1 }, |s| s.value.pos());
            r.d.error(pos, "type pvh: domus builds pv (linux) and hvm domains");
            false
        }
        (Some(other), _) => {
            let pos = r
                .get("type")
                .map_or(Pos { line: 1, col: 1 }, |s| s.value.pos());
            r.d.error(
                pos,
                format!(
                    "type {}: expected pv or hvm",
                    crate::config::error::shown_quoted(other)
                ),
            );
            false
        }
        (None, Some(b)) if !b.is_empty() && "hvm".starts_with(b) => true,
        // xl takes a prefix of `generic`; xm's configs say `linux`.
        (None, Some(b)) if b == "linux" || (!b.is_empty() && "generic".starts_with(b)) => false,
        (None, Some(b)) => {
            let pos = r
                .get("builder")
                .map_or(Pos { line: 1, col: 1 }, |s| s.value.pos());
            r.d.error(
                pos,
                format!(
                    "builder {}: expected hvm, generic or linux",
                    crate::config::error::shown_quoted(b)
                ),
            );
            false
        }
    };
    if let (Some(t), Some(b)) = (&ty, &builder)
        && (t == "hvm") != (!b.is_empty() && "hvm".starts_with(b.as_str()))
    {
        let pos = r
            .get("builder")
            .map_or(Pos { line: 1, col: 1 }, |s| s.value.pos());
        r.d.error(pos, format!("builder {b} conflicts with type {t}"));
    }

    let memory = r.num("memory").unwrap_or(DomainConfig::DEFAULT_MEMORY_MIB);
    let maxmem = r.num("maxmem").filter(|m| *m != memory);
    let online = r.u32("vcpus");
    let max = r.u32("maxvcpus");
    let at = |r: &Reader<'_>, key: &str| {
        r.get(key)
            .map_or(Pos { line: 1, col: 1 }, |s| s.value.pos())
    };
    if let (Some(n), Some(m)) = (online, max)
        && m < n
    {
        let pos = at(&r, "maxvcpus");
        r.d.error(
            pos,
            format!("maxvcpus {m} is below vcpus {n} (xl refuses it too)"),
        );
    }
    for (key, v) in [("vcpus", online), ("maxvcpus", max)] {
        if let Some(v) = v
            && !(1..=crate::config::MAX_VCPUS).contains(&v)
        {
            let pos = at(&r, key);
            r.d.error(
                pos,
                format!("{key} must be 1 to {}, got {v}", crate::config::MAX_VCPUS),
            );
        }
    }
    if memory == 0 {
        let pos = at(&r, "memory");
        r.d.error(pos, "memory must be a positive number of MiB");
    }
    if let Some(m) = maxmem
        && m < memory
    {
        let pos = at(&r, "maxmem");
        r.d.error(pos, format!("maxmem {m} is below memory {memory}"));
    }
    let (vcpus, vcpus_online) = match (online, max) {
        (Some(n), Some(m)) if m > n => (m, Some(n.max(1))),
        (Some(n), Some(m)) => (n.max(m), None),
        (Some(n), None) => (n, None),
        (None, Some(m)) => (m, Some(1)),
        (None, None) => (1, None),
    };
    let cpu_weight = r.u32("cpu_weight");
    if let Some(w) = cpu_weight
        && !(1..=65535).contains(&w)
    {
        let pos = at(&r, "cpu_weight");
        r.d.error(pos, format!("cpu_weight must be 1 to 65535, got {w}"));
    }

    // The kernel command line: `cmdline` whole, else `root=` + `extra`.
    let cmdline = r.text("cmdline");
    let root = r.text("root");
    let extra = r.text("extra");
    if cmdline.is_some()
        && (root.is_some() || extra.is_some())
        && let Some(s) = r.get("cmdline")
    {
        let pos = s.pos;
        r.d.warn(
            pos,
            "cmdline is set, so root and extra are ignored (as xl does)",
        );
    }
    let mut kernel = KernelImage {
        kernel: r.text("kernel").filter(|k| !k.is_empty()),
        ramdisk: r.text("ramdisk").filter(|k| !k.is_empty()),
        ..Default::default()
    };
    match cmdline {
        Some(c) => kernel.args = Some(c).filter(|c| !c.is_empty()),
        None => {
            kernel.root = root.filter(|r| !r.is_empty());
            kernel.args = extra.filter(|e| !e.is_empty());
        }
    }
    let bootloader = r.text("bootloader").filter(|b| !b.is_empty());
    let bootloader_args = {
        let args = r.list("bootloader_args");
        for (a, pos) in &args {
            if a.contains(char::is_whitespace) {
                r.d.warn(*pos, format!("bootloader_args: {} holds a space; domus keeps the arguments as one string, split at spaces", crate::config::error::shown_quoted(a)));
            }
        }
        let joined: Vec<String> = args.into_iter().map(|(a, _)| a).collect();
        Some(joined.join(" ")).filter(|j| !j.is_empty())
    };

    let mut devices = Vec::new();
    let mut dev_pos: Vec<Pos> = Vec::new();
    let mut other_devices = Vec::new();
    for (spec, pos) in r.list("disk") {
        match disk::parse(&spec) {
            Ok(ds) => {
                for x in ds.dropped {
                    r.d.warn(pos, format!("disk: {x} is not carried"));
                }
                devices.push(DeviceSpec::Vbd(ds.vbd));
                dev_pos.push(pos);
            }
            Err(e) => r.d.error(
                pos,
                format!("disk {}: {e}", crate::config::error::shown_quoted(&spec)),
            ),
        }
    }
    for (spec, pos) in r.list("vif") {
        if let Some(v) = nic(&spec, pos, r.d) {
            devices.push(DeviceSpec::Vif(v));
            dev_pos.push(pos);
        }
    }
    for (spec, pos) in r.list("pci") {
        if let Some(p) = pci(&spec, pos, r.d) {
            devices.push(DeviceSpec::Pci(p));
            dev_pos.push(pos);
        }
    }
    for (spec, pos) in r.list("vfb") {
        let v = vfb(&spec, pos, r.d);
        other_devices.push(OtherDevice::Vfb(v));
        // xl pairs every vfb with a keyboard.
        other_devices.push(OtherDevice::Vkbd);
    }
    for (i, (dev, pos)) in devices.iter().zip(&dev_pos).enumerate() {
        if let Err(e) = crate::config::check_device(dev) {
            r.d.error(*pos, e);
        }
        // The same disk name, MAC or PCI function twice.
        let same = devices[..i].iter().position(|x| match (x, dev) {
            (DeviceSpec::Vbd(a), DeviceSpec::Vbd(b)) => a.dev == b.dev,
            (DeviceSpec::Vif(a), DeviceSpec::Vif(b)) => a.mac.is_some() && a.mac == b.mac,
            (DeviceSpec::Pci(a), DeviceSpec::Pci(b)) => a == b,
            _ => false,
        });
        if let Some(j) = same {
            r.d.error(
                *pos,
                format!("{dev} is given twice (first at {})", dev_pos[j]),
            );
        }
    }

    // What xl reads that domus keeps as xend's settings, and what it drops.
    let mut top_extra = Vec::new();
    let mut image_extra = Vec::new();
    let mut kept = Vec::new();
    let mut pv_display = Vfb::default();
    for s in &file.settings {
        let key = s.key.as_str();
        if CARRIED.contains(&key) || (hvm && key == "vnc") {
            continue;
        }
        let xend = RENAMED
            .iter()
            .find(|(x, _)| *x == key)
            .map_or(key, |(_, n)| n);
        if !hvm && DISPLAY_KEYS.contains(&key) {
            // xl builds a PV domain's vfb from the top-level keys.
            match key {
                "vnc" => pv_display.vnc = truthy(&s.value),
                "sdl" => pv_display.sdl = truthy(&s.value),
                _ => {
                    if let Some(v) = s.value.as_atom() {
                        pv_display.settings.push((key.to_string(), v.to_string()));
                    }
                }
            }
        } else if XEND_KEPT.contains(&xend) {
            top_extra.push(as_xend(xend, &s.value));
            kept.push((key, s.pos));
        } else if hvm && XEND_IMAGE_KEPT.contains(&xend) {
            image_extra.push(as_xend(xend, &s.value));
            kept.push((key, s.pos));
        } else if matches!(key, "on_watchdog" | "on_soft_reset") {
            r.d.warn(
                s.pos,
                format!("{key} is not carried (domus applies on_poweroff, on_reboot and on_crash)"),
            );
        } else {
            r.d.warn(
                s.pos,
                format!("{key} is not carried (domus has no equivalent)"),
            );
        }
    }
    if let Some((_, pos)) = kept.first() {
        let names: Vec<&str> = kept.iter().map(|(k, _)| *k).collect();
        r.d.warn(
            *pos,
            format!(
                "xend settings kept as written (domus does not use them): {}",
                names.join(", ")
            ),
        );
    }
    if !hvm && (pv_display.vnc || pv_display.sdl) {
        other_devices.push(OtherDevice::Vfb(pv_display));
        other_devices.push(OtherDevice::Vkbd);
    }

    let image = if hvm {
        let boot_order = r.text("boot").filter(|b| !b.is_empty());
        if let Some(b) = &boot_order
            && let Some(bad) = b.chars().find(|c| !matches!(c, 'a' | 'c' | 'd' | 'n'))
        {
            let pos = r
                .get("boot")
                .map_or(Pos { line: 1, col: 1 }, |s| s.value.pos());
            r.d.error(
                pos,
                format!("boot: '{bad}' is no boot device (c disk, d CD-ROM, n network)"),
            );
        }
        let mut loader = None;
        if kernel
            .kernel
            .as_deref()
            .is_some_and(|k| k.rsplit('/').next() == Some("hvmloader"))
        {
            loader = kernel.kernel.take();
        }
        let vnc = r.get("vnc").map(|s| truthy(&s.value));
        let device_model = r.text("device_model").filter(|m| !m.is_empty());
        kernel.extra = image_extra;
        Image::Hvm(HvmImage {
            boot: kernel,
            device_model,
            vnc,
            loader,
            // xl's default is `cd`.
            boot_order: Some(boot_order.unwrap_or_else(|| "cd".into())),
            ..Default::default()
        })
    } else {
        if let Some(s) = r.get("boot") {
            let pos = s.pos;
            r.d.warn(pos, "boot is for hvm domains; not carried");
        }
        if let Some(s) = r.get("device_model") {
            let pos = s.pos;
            r.d.warn(pos, "device_model is for hvm domains; not carried");
        }
        Image::Linux(kernel)
    };

    let policy = |r: &mut Reader<'_>, key: &str, default: Policy| -> Option<Policy> {
        let Some(text) = r.text(key) else {
            return Some(default);
        };
        match Policy::from_str(&text) {
            Ok(p) => Some(p),
            Err(_) => {
                let pos = r
                    .get(key)
                    .map_or(Pos { line: 1, col: 1 }, |s| s.value.pos());
                r.d.error(
                    pos,
                    format!(
                        "{key} {}: expected one of destroy, restart, rename-restart, preserve, coredump-destroy, coredump-restart",
                        crate::config::error::shown_quoted(&text)
                    ),
                );
                None
            }
        }
    };
    // xl's defaults, written out: xend's on_crash default differs.
    let on_poweroff = policy(&mut r, "on_poweroff", Policy::Destroy);
    let on_reboot = policy(&mut r, "on_reboot", Policy::Restart);
    let on_crash = policy(&mut r, "on_crash", Policy::Destroy);

    if r.d.errors.len() > errors_before {
        return None;
    }
    Some((
        DomainConfig {
            name,
            uuid,
            memory,
            maxmem,
            vcpus: vcpus.max(1),
            vcpus_online,
            cpu: None,
            cpu_weight,
            image,
            devices,
            on_poweroff,
            on_reboot,
            on_crash,
            bootloader,
            bootloader_args,
            backends: Vec::new(),
            other_devices,
            extra: top_extra,
        },
        dev_pos,
    ))
}
