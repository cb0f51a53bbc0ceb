//! Typed config → S-expression value, in canonical field order.

use lexpr::Value;

use super::device::{Pci, Vbd, Vif};
use super::types::{DeviceSpec, DomainConfig, Image, KernelImage, OtherDevice};

fn s(text: impl AsRef<str>) -> Value {
    Value::string(text.as_ref())
}

fn field(name: &str, value: impl AsRef<str>) -> Value {
    Value::list(vec![s(name), s(value)])
}

fn list(name: &str, items: Vec<Value>) -> Value {
    let mut all = Vec::with_capacity(items.len() + 1);
    all.push(s(name));
    all.extend(items);
    Value::list(all)
}

fn kernel_fields(k: &KernelImage, out: &mut Vec<Value>) {
    let pairs = [
        ("kernel", &k.kernel),
        ("ramdisk", &k.ramdisk),
        ("root", &k.root),
        ("ip", &k.ip),
        ("args", &k.args),
    ];
    for (name, value) in pairs {
        if let Some(v) = value {
            out.push(field(name, v));
        }
    }
}

fn image_value(image: &Image) -> Value {
    let mut fields = Vec::new();
    kernel_fields(image.boot(), &mut fields);
    if let Image::Hvm(h) = image {
        if let Some(dm) = &h.device_model {
            fields.push(field("device_model", dm));
        }
        if let Some(mm) = &h.memmap {
            fields.push(field("memmap", mm));
        }
        if let Some(vnc) = h.vnc {
            fields.push(field("vnc", if vnc { "1" } else { "0" }));
        }
        if let Some(l) = &h.loader {
            fields.push(field("loader", l));
        }
        if let Some(b) = &h.boot_order {
            fields.push(field("boot", b));
        }
    }
    fields.extend(image.boot().extra.iter().cloned());
    list("image", vec![list(image.type_name(), fields)])
}

/// Kept unknown fields, back as values (each was printed by us).
fn extras(kept: &[String]) -> impl Iterator<Item = Value> + '_ {
    kept.iter()
        .filter_map(|t| crate::sxp::parse(t).ok().map(|n| n.to_value()))
}

pub fn vbd_value(v: &Vbd) -> Value {
    let mut fields = Vec::new();
    if !v.uname.is_empty() {
        fields.push(field("uname", v.uname.to_string()));
    }
    fields.push(field("dev", v.dev_text()));
    fields.push(field("mode", v.mode.to_string()));
    fields.extend(extras(&v.extra));
    list("vbd", fields)
}

pub fn vif_value(v: &Vif) -> Value {
    let mut fields = Vec::new();
    if let Some(mac) = v.mac {
        fields.push(field("mac", mac.to_string()));
    }
    if let Some(b) = &v.bridge {
        fields.push(field("bridge", b));
    }
    if let Some(ip) = &v.ip {
        fields.push(field("ip", ip));
    }
    fields.extend(extras(&v.extra));
    list("vif", fields)
}

pub fn pci_value(p: &Pci) -> Value {
    let mut fields = Vec::new();
    if p.domain != 0 {
        fields.push(field("domain", format!("0x{:04x}", p.domain)));
    }
    fields.push(field("bus", format!("0x{:02x}", p.bus)));
    fields.push(field("dev", format!("0x{:02x}", p.dev)));
    fields.push(field("func", format!("0x{:x}", p.func)));
    list("pci", fields)
}

fn other_value(o: &OtherDevice) -> Value {
    match o {
        OtherDevice::Vfb(v) => {
            let mut fields = Vec::new();
            if v.vnc {
                fields.push(field("vnc", "1"));
            }
            if v.sdl {
                fields.push(field("sdl", "1"));
            }
            for (k, val) in &v.settings {
                fields.push(field(k, val));
            }
            list("device", vec![list("vfb", fields)])
        }
        OtherDevice::Vkbd => list("device", vec![list("vkbd", vec![])]),
        OtherDevice::Console { protocol } => list(
            "device",
            vec![list(
                "console",
                protocol.iter().map(|p| field("protocol", p)).collect(),
            )],
        ),
    }
}

pub fn device_value(d: &DeviceSpec) -> Value {
    let inner = match d {
        DeviceSpec::Vbd(v) => vbd_value(v),
        DeviceSpec::Vif(v) => vif_value(v),
        DeviceSpec::Pci(p) => pci_value(p),
    };
    list("device", vec![inner])
}

impl DomainConfig {
    /// The config as an S-expression value: `(vm (name …) …)`.
    pub fn to_value(&self) -> Value {
        let mut f = vec![field("name", &self.name)];
        if let Some(uuid) = self.uuid {
            f.push(field("uuid", uuid.to_string()));
        }
        f.push(field("memory", self.memory.to_string()));
        if let Some(m) = self.maxmem {
            f.push(field("maxmem", m.to_string()));
        }
        f.push(field("vcpus", self.vcpus.to_string()));
        if let Some(n) = self.vcpus_online {
            let mask = (1u128 << n.min(127)) - 1;
            f.push(field("vcpu_avail", mask.to_string()));
        }
        if let Some(c) = self.cpu {
            f.push(field("cpu", c.to_string()));
        }
        if let Some(w) = self.cpu_weight {
            f.push(field("cpu_weight", w.to_string()));
        }
        if let Some(b) = &self.bootloader {
            f.push(field("bootloader", b));
        }
        if let Some(a) = &self.bootloader_args {
            f.push(field("bootloader_args", a));
        }
        for role in &self.backends {
            f.push(list("backend", vec![list(role.as_str(), vec![])]));
        }
        f.push(image_value(&self.image));
        f.extend(self.devices.iter().map(device_value));
        f.extend(self.other_devices.iter().map(other_value));
        let policies = [
            ("on_poweroff", self.on_poweroff),
            ("on_reboot", self.on_reboot),
            ("on_crash", self.on_crash),
        ];
        for (name, policy) in policies {
            if let Some(p) = policy {
                f.push(field(name, p.as_str()));
            }
        }
        f.extend(self.extra.iter().cloned());
        list("vm", f)
    }
}
