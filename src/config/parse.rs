//! S-expression tree → typed [`DomainConfig`], collecting every error and
//! warning with its position. Field handling is a registry keyed by field
//! name, as xend's `config_handlers`.

use std::collections::HashMap;
use std::path::Path;

use super::device::{Mac, Pci, Uname, Vbd, VbdMode, Vif, parse_pci_number, parse_vdev};
use super::error::{ConfigError, Diagnostics, shown, shown_quoted};
use super::types::{
    BackendRole, DeviceSpec, DomainConfig, HvmFlavor, HvmImage, Image, KernelImage, Policy,
};
use crate::sxp::{self, Node, Pos};

/// Read and parse a config file (a regular file of at most
/// [`MAX_CONFIG_BYTES`](super::MAX_CONFIG_BYTES); a FIFO or a device is
/// refused without reading). Warnings come back with the config.
pub fn load_file(path: &Path) -> Result<(DomainConfig, Diagnostics), ConfigError> {
    let text = crate::fsx::read_to_string_bounded(path, super::MAX_CONFIG_BYTES)?;
    parse_str(&text, &path.display().to_string())
}

/// Parse config text; `source` names it in messages (a file name or `<input>`).
pub fn parse_str(text: &str, source: &str) -> Result<(DomainConfig, Diagnostics), ConfigError> {
    let mut diags = Diagnostics::new(source);
    let node = match sxp::parse(text) {
        Ok(node) => node,
        Err(e) => {
            diags.error(e.pos, e.message);
            return Err(ConfigError::Invalid(diags));
        }
    };
    match from_node(&node, &mut diags) {
        Some(config) if diags.errors.is_empty() => Ok((config, diags)),
        _ => Err(ConfigError::Invalid(diags)),
    }
}

/// Fields of xend's `(domain …)` listing that describe a running domain,
/// not its configuration: dropped quietly when such a listing is loaded.
const RUNTIME_FIELDS: &[&str] = &[
    "domid",
    "id",
    "state",
    "shutdown_reason",
    "cpu_time",
    "online_vcpus",
    "up_time",
    "start_time",
    "console",
    "store_mfn",
    "console_mfn",
    "status",
];

fn example(field: &str) -> &'static str {
    match field {
        "name" => "(name web1)",
        "memory" => "(memory 256)",
        "maxmem" => "(maxmem 512)",
        "vcpus" => "(vcpus 2)",
        "cpu" => "(cpu 1)",
        "cpu_weight" => "(cpu_weight 256)",
        "uuid" => "(uuid 6a0e6c0e-4f4c-4c79-9d3f-1f1f3a7c2b11)",
        "bootloader" => "(bootloader /usr/bin/pygrub)",
        "on_poweroff" | "on_reboot" | "on_crash" => "(on_crash restart)",
        "kernel" => "(kernel /boot/vmlinuz)",
        "uname" => "(uname file:/srv/disk.img)",
        "dev" => "(dev xvda)",
        "mode" => "(mode w)",
        "mac" => "(mac 00:16:3e:00:00:01)",
        "bridge" => "(bridge xenbr0)",
        _ => "(FIELD VALUE)",
    }
}

/// The one atom value of `(field value)`, or an error naming the shape expected.
fn single<'a>(field: &'a Node, ctx: &str, d: &mut Diagnostics) -> Option<&'a str> {
    let name = field.name().unwrap_or("?");
    match field.children() {
        [value] => match value.atom() {
            Some(a) => Some(a),
            None => {
                d.error(
                    value.pos,
                    format!(
                        "{ctx}{name}: expected a single value, e.g. {}, got a list",
                        example(name)
                    ),
                );
                None
            }
        },
        [] => {
            d.error(
                field.pos,
                format!("{ctx}{name}: missing value, e.g. {}", example(name)),
            );
            None
        }
        [_, extra, ..] => {
            d.error(
                extra.pos,
                format!(
                    "{ctx}{name}: expected a single value, e.g. {}",
                    example(name)
                ),
            );
            None
        }
    }
}

fn value_pos(field: &Node) -> Pos {
    field.children().first().map_or(field.pos, |v| v.pos)
}

fn positive_mib(field: &Node, d: &mut Diagnostics) -> Option<u64> {
    let name = field.name().unwrap_or("memory");
    let v = single(field, "", d)?;
    match v.parse::<u64>() {
        Ok(n) if n > 0 && n <= 1 << 32 => Some(n),
        _ => {
            d.error(
                value_pos(field),
                format!(
                    "{name} must be a positive number of MiB, got {}",
                    shown_quoted(v)
                ),
            );
            None
        }
    }
}

fn ranged(field: &Node, lo: u32, hi: u32, what: &str, d: &mut Diagnostics) -> Option<u32> {
    let name = field.name().unwrap_or("?");
    let v = single(field, "", d)?;
    match v.parse::<u32>() {
        Ok(n) if (lo..=hi).contains(&n) => Some(n),
        _ => {
            d.error(
                value_pos(field),
                format!(
                    "{name} must be {what} from {lo} to {hi}, got {}",
                    shown_quoted(v)
                ),
            );
            None
        }
    }
}

/// Check a domain name by the config rules.
pub fn validate_name(name: &str) -> Result<(), String> {
    valid_name(name)
}

fn valid_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("name must not be empty".into());
    }
    if name.chars().count() > 64 {
        return Err(format!(
            "name must be at most 64 characters, got {}",
            name.chars().count()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || *c == '/')
    {
        return Err(format!(
            "name must not contain white space, control characters or '/', got {name:?} (has {c:?})"
        ));
    }
    if name.starts_with('-') {
        return Err(format!(
            "name must not start with '-' (the command line would take it for an option), got {name:?}"
        ));
    }
    if name.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!(
            "name must not be a number (domains are also addressed by id), got {name:?}"
        ));
    }
    Ok(())
}

/// Convert a parsed `(vm …)` (or xend's `(domain …)` listing) into a config.
/// Returns `None` when an error makes the config unusable; errors and
/// warnings are added to `d` either way.
pub fn from_node(node: &Node, d: &mut Diagnostics) -> Option<DomainConfig> {
    let head = node.name();
    match head {
        Some("vm") => {}
        Some("domain") => {
            // xend's listings nest the original config as (config (vm …)).
            if let Some(vm) = node
                .child_value("config")
                .filter(|c| c.name() == Some("vm"))
            {
                return from_node(vm, d);
            }
        }
        Some(other) => {
            d.error(
                node.pos,
                format!("expected (vm ...) at top level, got ({} ...)", shown(other)),
            );
            return None;
        }
        None => {
            d.error(node.pos, "expected (vm ...) at top level");
            return None;
        }
    }
    let listing = head == Some("domain");

    let mut b = Builder::default();
    let mut first_seen: HashMap<&str, Pos> = HashMap::new();
    for field in node.children() {
        let Some(name) = field.name() else {
            let got = field
                .atom()
                .map_or_else(|| "()".to_string(), |a| format!("'{}'", shown(a)));
            d.error(
                field.pos,
                format!("expected a (field value) list, got {got}"),
            );
            continue;
        };
        let repeatable = matches!(name, "device" | "backend");
        if !repeatable {
            if let Some(first) = first_seen.get(name) {
                d.error(
                    field.pos,
                    format!("duplicate field '{}' (first given at {first})", shown(name)),
                );
                continue;
            }
            first_seen.insert(name, field.pos);
        }
        match FIELD_HANDLERS.iter().find(|(n, _)| *n == name) {
            Some((_, handler)) => handler(&mut b, field, d),
            None if listing && RUNTIME_FIELDS.contains(&name) => {}
            None => {
                d.warn(
                    field.pos,
                    format!(
                        "unknown field '{}' (kept, but nothing uses it)",
                        shown(name)
                    ),
                );
                b.extra.push(field.to_value());
            }
        }
    }
    b.finish(node, d)
}

type FieldHandler = fn(&mut Builder, &Node, &mut Diagnostics);

/// Config-field handlers, keyed by field name (xend's `add_config_handler`).
const FIELD_HANDLERS: &[(&str, FieldHandler)] = &[
    ("name", |b, f, d| {
        if let Some(v) = single(f, "", d) {
            match valid_name(v) {
                Ok(()) => b.name = Some(v.to_string()),
                Err(e) => d.error(value_pos(f), e),
            }
        }
    }),
    ("uuid", |b, f, d| {
        if let Some(v) = single(f, "", d) {
            match uuid::Uuid::parse_str(v) {
                Ok(u) => b.uuid = Some(u),
                Err(_) => d.error(
                    value_pos(f),
                    format!(
                        "uuid must be a UUID like 6a0e6c0e-4f4c-4c79-9d3f-1f1f3a7c2b11, got {}",
                        shown_quoted(v)
                    ),
                ),
            }
        }
    }),
    ("memory", |b, f, d| b.memory = positive_mib(f, d)),
    ("maxmem", |b, f, d| {
        b.maxmem = positive_mib(f, d).map(|m| (m, f.pos))
    }),
    ("vcpus", |b, f, d| {
        b.vcpus = ranged(f, 1, super::MAX_VCPUS, "a number", d)
    }),
    ("cpu", |b, f, d| {
        // xend wrote -1 for "no pinning".
        if single(f, "", &mut Diagnostics::default()) == Some("-1") {
            return;
        }
        b.cpu = ranged(f, 0, 4095, "a CPU number", d);
    }),
    ("cpu_weight", |b, f, d| {
        b.cpu_weight = ranged(f, 1, 65535, "a number", d)
    }),
    ("bootloader", |b, f, d| {
        b.bootloader = single(f, "", d).map(str::to_string)
    }),
    ("on_poweroff", |b, f, d| b.on_poweroff = policy(f, d)),
    ("on_reboot", |b, f, d| b.on_reboot = policy(f, d)),
    ("on_crash", |b, f, d| b.on_crash = policy(f, d)),
    ("backend", |b, f, d| {
        match f.children().first().and_then(Node::name) {
            Some("blkif") => b.backends.push(BackendRole::Blkif),
            Some("netif") => b.backends.push(BackendRole::Netif),
            other => d.error(
                value_pos(f),
                format!(
                    "invalid backend type: {} (expected (backend (blkif)) or (backend (netif)))",
                    other.map_or_else(|| "(none)".to_string(), shown)
                ),
            ),
        }
    }),
    ("image", |b, f, d| {
        b.image_pos = Some(f.pos);
        b.image = image(f, d);
    }),
    ("device", |b, f, d| {
        if let Some(dev) = device(f, d) {
            b.devices
                .push((dev, f.children().first().map_or(f.pos, |c| c.pos)));
        }
    }),
    // Later xend kept these two at the top level; they belong to the HVM image.
    ("device_model", |b, f, d| {
        b.top_device_model = single(f, "", d).map(|v| (v.to_string(), f.pos))
    }),
    ("memmap", |b, f, d| {
        b.top_memmap = single(f, "", d).map(|v| (v.to_string(), f.pos))
    }),
];

fn policy(field: &Node, d: &mut Diagnostics) -> Option<Policy> {
    let name = field.name().unwrap_or("on_crash");
    let v = single(field, "", d)?;
    match v.parse::<Policy>() {
        Ok(p) => Some(p),
        Err(_) => {
            let all: Vec<&str> = Policy::ALL.iter().map(|p| p.as_str()).collect();
            d.error(
                value_pos(field),
                format!(
                    "{name}: unknown action '{}' (expected {})",
                    shown(v),
                    all.join(", ")
                ),
            );
            None
        }
    }
}

#[derive(Default)]
struct Builder {
    name: Option<String>,
    uuid: Option<uuid::Uuid>,
    memory: Option<u64>,
    maxmem: Option<(u64, Pos)>,
    vcpus: Option<u32>,
    cpu: Option<u32>,
    cpu_weight: Option<u32>,
    image: Option<Image>,
    image_pos: Option<Pos>,
    devices: Vec<(DeviceSpec, Pos)>,
    on_poweroff: Option<Policy>,
    on_reboot: Option<Policy>,
    on_crash: Option<Policy>,
    bootloader: Option<String>,
    backends: Vec<BackendRole>,
    top_device_model: Option<(String, Pos)>,
    top_memmap: Option<(String, Pos)>,
    extra: Vec<lexpr::Value>,
}

impl Builder {
    fn finish(self, node: &Node, d: &mut Diagnostics) -> Option<DomainConfig> {
        if self.name.is_none() && !d.errors.iter().any(|e| e.message.starts_with("name")) {
            d.error(node.pos, "missing name: add (name NAME)");
        }
        let mut image = match self.image {
            Some(image) => Some(image),
            None => {
                if self.image_pos.is_none() {
                    d.error(node.pos, "missing image: add (image (linux (kernel PATH)))");
                }
                None
            }
        };
        let memory = self.memory.unwrap_or(DomainConfig::DEFAULT_MEMORY_MIB);
        // Compare only with a memory value that was given and valid.
        let memory_ok =
            self.memory.is_some() || !d.errors.iter().any(|e| e.message.starts_with("memory"));
        if let Some((maxmem, pos)) = self.maxmem.filter(|(m, _)| memory_ok && *m < memory) {
            d.error(
                pos,
                format!("maxmem ({maxmem} MiB) must not be less than memory ({memory} MiB)"),
            );
        }
        let mut extra = self.extra;
        for (value, pos, which) in [
            (self.top_device_model, "device_model"),
            (self.top_memmap, "memmap"),
        ]
        .into_iter()
        .filter_map(|(v, which)| v.map(|(v, p)| (v, p, which)))
        {
            match image.as_mut() {
                Some(Image::Hvm(h)) => {
                    let slot = if which == "memmap" {
                        &mut h.memmap
                    } else {
                        &mut h.device_model
                    };
                    slot.get_or_insert(value);
                }
                _ => {
                    d.warn(
                        pos,
                        format!("{which} only applies to hvm images (kept, but nothing uses it)"),
                    );
                    extra.push(lexpr::Value::list(vec![
                        lexpr::Value::string(which),
                        lexpr::Value::string(value),
                    ]));
                }
            }
        }
        if let Some(img) = &image {
            let needs_kernel = !matches!(img, Image::Hvm(_)) && self.bootloader.is_none();
            if needs_kernel && img.boot().kernel.is_none() {
                d.error(
                    self.image_pos.unwrap_or(node.pos),
                    format!(
                        "{} image: missing kernel, e.g. (kernel /boot/vmlinuz)",
                        img.type_name()
                    ),
                );
            }
        }
        check_device_collisions(&self.devices, d);
        // xend refused these at build time; an operator wants to know at check time.
        for (dev, pos) in &self.devices {
            match dev {
                DeviceSpec::Vbd(_) if self.backends.contains(&BackendRole::Blkif) => {
                    d.error(*pos, "vbd: vbd in blkif backend domain");
                }
                DeviceSpec::Vif(_) if self.backends.contains(&BackendRole::Netif) => {
                    d.error(*pos, "vif: vif in netif backend domain");
                }
                _ => {}
            }
        }
        Some(DomainConfig {
            name: self.name?,
            uuid: self.uuid,
            memory,
            maxmem: self.maxmem.map(|(m, _)| m),
            vcpus: self.vcpus.unwrap_or(1),
            cpu: self.cpu,
            cpu_weight: self.cpu_weight,
            image: image?,
            devices: self.devices.into_iter().map(|(dev, _)| dev).collect(),
            on_poweroff: self.on_poweroff,
            on_reboot: self.on_reboot,
            on_crash: self.on_crash,
            bootloader: self.bootloader,
            backends: self.backends,
            extra,
        })
    }
}

fn check_device_collisions(devices: &[(DeviceSpec, Pos)], d: &mut Diagnostics) {
    let mut seen: HashMap<String, Pos> = HashMap::new();
    for (dev, pos) in devices {
        let key = match dev {
            DeviceSpec::Vbd(v) => format!("vbd: dev '{}'", v.dev),
            DeviceSpec::Vif(v) => match v.mac {
                Some(mac) => format!("vif: mac {mac}"),
                None => continue,
            },
            DeviceSpec::Pci(p) => format!("pci: device {p}"),
        };
        if let Some(first) = seen.get(&key) {
            d.error(*pos, format!("{key} is already used at {first}"));
        } else {
            seen.insert(key, *pos);
        }
    }
}

fn image(field: &Node, d: &mut Diagnostics) -> Option<Image> {
    let Some(spec) = field.children().first() else {
        d.error(
            field.pos,
            "image: missing image type, e.g. (image (linux (kernel /boot/vmlinuz)))",
        );
        return None;
    };
    if let Some(extra) = field.children().get(1) {
        d.error(
            extra.pos,
            "image: expected exactly one (TYPE ...) inside (image ...)",
        );
    }
    let Some(ty) = spec.name().or_else(|| spec.atom()) else {
        d.error(spec.pos, "image: missing image type");
        return None;
    };
    let flavor = match ty {
        "linux" | "plan9" => None,
        "hvm" => Some(HvmFlavor::Hvm),
        "vmx" => Some(HvmFlavor::Vmx),
        other => {
            d.error(
                spec.pos,
                format!(
                    "unknown image type: {} (expected linux, plan9, hvm or vmx)",
                    shown(other)
                ),
            );
            return None;
        }
    };
    let ctx = format!("{ty} image: ");
    let mut boot = KernelImage::default();
    let (mut device_model, mut memmap, mut vnc) = (None, None, None);
    let mut seen: HashMap<&str, Pos> = HashMap::new();
    for f in spec.children() {
        let Some(name) = f.name() else {
            d.error(f.pos, format!("{ctx}expected a (field value) list"));
            continue;
        };
        if let Some(first) = seen.insert(name, f.pos) {
            d.error(
                f.pos,
                format!(
                    "{ctx}duplicate field '{}' (first given at {first})",
                    shown(name)
                ),
            );
            continue;
        }
        let slot = match (name, flavor.is_some()) {
            ("kernel", _) => &mut boot.kernel,
            ("ramdisk", _) => &mut boot.ramdisk,
            ("root", _) => &mut boot.root,
            ("ip", _) => &mut boot.ip,
            ("args", _) => &mut boot.args,
            ("device_model", true) => &mut device_model,
            ("memmap", true) => &mut memmap,
            ("vnc", true) => {
                match single(f, &ctx, d) {
                    Some("0") => vnc = Some(false),
                    Some("1") => vnc = Some(true),
                    Some(v) => d.error(
                        value_pos(f),
                        format!("{ctx}vnc must be 0 or 1, got {}", shown_quoted(v)),
                    ),
                    None => {}
                }
                continue;
            }
            _ => {
                d.warn(
                    f.pos,
                    format!(
                        "{ctx}unknown field '{}' (kept, but nothing uses it)",
                        shown(name)
                    ),
                );
                boot.extra.push(f.to_value());
                continue;
            }
        };
        *slot = single(f, &ctx, d).map(str::to_string);
    }
    if let Some(path) = boot.kernel.as_deref().filter(|k| k.is_empty()) {
        d.error(
            spec.pos,
            format!("{ctx}kernel path must not be empty, got {path:?}"),
        );
    }
    Some(match (ty, flavor) {
        ("linux", _) => Image::Linux(boot),
        ("plan9", _) => Image::Plan9(boot),
        (_, Some(flavor)) => Image::Hvm(HvmImage {
            flavor,
            boot,
            device_model,
            memmap,
            vnc,
        }),
        _ => return None,
    })
}

/// Check a device built elsewhere (the CLI, the TUI's forms) against the
/// same rules as a config file, so nothing invalid reaches a stored config.
pub fn check_device(dev: &DeviceSpec) -> Result<(), String> {
    let text = crate::sxp::print_value(&super::emit::device_value(dev));
    let node = crate::sxp::parse(&text).map_err(|e| e.message)?;
    let mut d = Diagnostics::new("device");
    match device(&node, &mut d) {
        Some(_) if d.errors.is_empty() => Ok(()),
        _ => Err(d
            .errors
            .first()
            .map_or_else(|| "invalid device".to_string(), |e| e.message.clone())),
    }
}

fn device(field: &Node, d: &mut Diagnostics) -> Option<DeviceSpec> {
    let dev = match field.children() {
        [dev] if dev.name().is_some() => dev,
        _ => {
            d.error(
                field.pos,
                "invalid device: expected (device (vbd|vif|pci ...))",
            );
            return None;
        }
    };
    match dev.name() {
        Some("vbd") => vbd(dev, d).map(DeviceSpec::Vbd),
        Some("vif") => vif(dev, d).map(DeviceSpec::Vif),
        Some("pci") => pci(dev, d).map(DeviceSpec::Pci),
        other => {
            d.error(
                dev.pos,
                format!(
                    "unknown device type: {} (expected vbd, vif or pci)",
                    shown(other.unwrap_or(""))
                ),
            );
            None
        }
    }
}

/// Collect `(key value)` children of a device, flagging unknown keys.
/// Collect `(key value)` children of a device. Unknown keys are kept
/// (one canonical line each) when `extra` is given, else ignored; either
/// way with a warning.
fn device_fields<'a>(
    dev: &'a Node,
    kind: &str,
    known: &[&str],
    d: &mut Diagnostics,
    mut extra: Option<&mut Vec<String>>,
) -> HashMap<&'a str, &'a Node> {
    let mut out = HashMap::new();
    for f in dev.children() {
        match f.name() {
            Some(name) if known.contains(&name) => {
                if let Some(prev) = out.insert(name, f) {
                    d.error(
                        f.pos,
                        format!(
                            "{kind}: duplicate field '{name}' (first given at {})",
                            prev.pos
                        ),
                    );
                }
            }
            Some(name) => match extra.as_deref_mut() {
                Some(kept) => {
                    d.warn(
                        f.pos,
                        format!(
                            "{kind}: unknown field '{}' (kept, but nothing uses it)",
                            shown(name)
                        ),
                    );
                    kept.push(crate::sxp::print_value(&f.to_value()));
                }
                None => d.warn(
                    f.pos,
                    format!(
                        "{kind}: unknown field '{}' (ignored; expected {})",
                        shown(name),
                        known.join(", ")
                    ),
                ),
            },
            None => d.error(f.pos, format!("{kind}: expected a (field value) list")),
        }
    }
    out
}

fn vbd(dev: &Node, d: &mut Diagnostics) -> Option<Vbd> {
    let mut extra = Vec::new();
    let fields = device_fields(dev, "vbd", &["uname", "dev", "mode"], d, Some(&mut extra));
    let ctx = "vbd: ";
    let Some(uname_f) = fields.get("uname") else {
        d.error(
            dev.pos,
            "vbd: missing uname, e.g. (uname file:/srv/disk.img)",
        );
        return None;
    };
    let Some(dev_f) = fields.get("dev") else {
        d.error(dev.pos, "vbd: missing dev, e.g. (dev xvda)");
        return None;
    };
    let uname = single(uname_f, ctx, d)?;
    let uname = uname
        .parse::<Uname>()
        .map_err(|e| d.error(value_pos(uname_f), format!("{ctx}{e}")))
        .ok();
    let vdev = single(dev_f, ctx, d)?;
    let vdev = parse_vdev(vdev)
        .map_err(|e| d.error(value_pos(dev_f), format!("{ctx}{e}")))
        .ok();
    // xend's default mode was read-only.
    let mode = match fields.get("mode") {
        Some(m) => {
            let v = single(m, ctx, d)?;
            v.parse::<VbdMode>()
                .map_err(|e| d.error(value_pos(m), format!("{ctx}{e}")))
                .ok()?
        }
        None => VbdMode::ReadOnly,
    };
    Some(Vbd {
        uname: uname?,
        dev: vdev?,
        mode,
        extra,
    })
}

fn valid_bridge(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 15
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn vif(dev: &Node, d: &mut Diagnostics) -> Option<Vif> {
    let mut extra = Vec::new();
    let fields = device_fields(dev, "vif", &["mac", "bridge", "ip"], d, Some(&mut extra));
    let ctx = "vif: ";
    let mut ok = true;
    let mac = match fields.get("mac") {
        Some(f) => match single(f, ctx, d).map(str::parse::<Mac>) {
            Some(Ok(mac)) => Some(mac),
            Some(Err(e)) => {
                d.error(value_pos(f), format!("{ctx}{e}"));
                ok = false;
                None
            }
            None => {
                ok = false;
                None
            }
        },
        None => None,
    };
    let bridge = match fields.get("bridge") {
        Some(f) => match single(f, ctx, d) {
            Some(b) if valid_bridge(b) => Some(b.to_string()),
            Some(b) => {
                d.error(
                    value_pos(f),
                    format!(
                        "{ctx}invalid bridge name '{}' (1-15 letters, digits, '-', '_' or '.')",
                        shown(b)
                    ),
                );
                ok = false;
                None
            }
            None => {
                ok = false;
                None
            }
        },
        None => None,
    };
    let ip = match fields.get("ip") {
        Some(f) => match single(f, ctx, d) {
            Some(ip)
                if ip
                    .split_whitespace()
                    .all(|a| a.parse::<std::net::IpAddr>().is_ok()) =>
            {
                Some(ip.to_string())
            }
            Some(ip) => {
                d.error(
                    value_pos(f),
                    format!(
                        "{ctx}invalid ip '{}' (expected an IPv4 or IPv6 address)",
                        shown(ip)
                    ),
                );
                ok = false;
                None
            }
            None => {
                ok = false;
                None
            }
        },
        None => None,
    };
    ok.then_some(Vif {
        mac,
        bridge,
        ip,
        extra,
    })
}

fn pci(dev: &Node, d: &mut Diagnostics) -> Option<Pci> {
    // Later xend nested the address: (pci (dev (domain 0) (bus 1) (slot 0x13) (func 0))).
    let nested = dev
        .children_named("dev")
        .next()
        .filter(|f| f.children().first().is_some_and(|v| v.list().is_some()));
    let (addr, slot_key) = match nested {
        Some(n) => (n, "slot"),
        None => (dev, "dev"),
    };
    let known: &[&str] = if nested.is_some() {
        &["domain", "bus", "slot", "func"]
    } else {
        &["domain", "bus", "dev", "func"]
    };
    let fields = device_fields(addr, "pci", known, d, None);
    let mut get = |key: &str, max: u32, required: bool| -> Option<u32> {
        let Some(f) = fields.get(key) else {
            if required {
                d.error(addr.pos, format!("pci: missing {key}, e.g. ({key} 0x00)"));
            }
            return if required { None } else { Some(0) };
        };
        let v = single(f, "pci: ", d)?;
        match parse_pci_number(v) {
            Some(n) if n <= max => Some(n),
            Some(_) => {
                let hex = if max > 9 {
                    format!(" ({max:#x})")
                } else {
                    String::new()
                };
                d.error(
                    value_pos(f),
                    format!("pci: {key} must be from 0 to {max}{hex}, got {}", shown(v)),
                );
                None
            }
            None => {
                d.error(
                    value_pos(f),
                    format!(
                        "pci: invalid {key} '{}' (expected decimal or 0x hex)",
                        shown(v)
                    ),
                );
                None
            }
        }
    };
    let domain = get("domain", 0xffff, false);
    let bus = get("bus", 0xff, true);
    let slot = get(slot_key, 0x1f, true);
    let func = get("func", 7, true);
    Some(Pci {
        domain: u16::try_from(domain?).ok()?,
        bus: u8::try_from(bus?).ok()?,
        dev: u8::try_from(slot?).ok()?,
        func: u8::try_from(func?).ok()?,
    })
}
