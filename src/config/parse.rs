//! S-expression tree → typed [`DomainConfig`], collecting every error and
//! warning with its position. Field handling is a registry keyed by field
//! name, as xend's `config_handlers`.

use std::collections::HashMap;
use std::path::Path;

use super::device::{Mac, Pci, Uname, Vbd, VbdMode, Vif, parse_pci_number, parse_vdev};
use super::error::{ConfigError, Diagnostics, shown, shown_quoted};
use super::types::{
    BackendRole, DeviceSpec, DomainConfig, HvmFlavor, HvmImage, Image, KernelImage, OtherDevice,
    Policy, Vfb,
};
use crate::sxp::{self, Node, Pos};

/// Read and parse a config file (a regular file of at most
/// [`MAX_CONFIG_BYTES`](super::MAX_CONFIG_BYTES); a FIFO or a device is
/// refused without reading). Warnings come back with the config.
pub fn load_file(path: &Path) -> Result<(DomainConfig, Diagnostics), ConfigError> {
    load_file_as(path).map(|(c, d, _)| (c, d))
}

/// [`load_file`], and the dialect the file was read as (`check` says it).
pub fn load_file_as(
    path: &Path,
) -> Result<(DomainConfig, Diagnostics, super::xl::Dialect), ConfigError> {
    let text = crate::fsx::read_to_string_bounded(path, super::MAX_CONFIG_BYTES)?;
    // Editors on other systems start a file with a byte-order mark.
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let dialect = super::xl::detect(text);
    // An xl.cfg (the operator's /etc/xen/*.cfg) is read as such.
    super::xl::parse_any(text, &path.display().to_string()).map(|(c, d)| (c, d, dialect))
}

/// Parse config text; `source` names it in messages (a file name or `<input>`).
pub fn parse_str(text: &str, source: &str) -> Result<(DomainConfig, Diagnostics), ConfigError> {
    let mut diags = Diagnostics::new(source);
    let node = match sxp::parse_with_warnings(text) {
        Ok((node, warnings)) => {
            for w in warnings {
                diags.warn(w.pos, w.message);
            }
            node
        }
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

/// Characters that change how a name reads without showing: bidi
/// overrides and marks, zero-width ones.
fn invisible(c: char) -> bool {
    matches!(
        u32::from(c),
        0x061C | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x2064 | 0x2066..=0x2069 | 0xFEFF
    )
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
    if let Some(c) = name.chars().find(|c| invisible(*c)) {
        return Err(format!(
            "name must not contain invisible or direction-changing characters (it would read as another name), got {name:?} (has U+{:04X})",
            u32::from(c)
        ));
    }
    if name == "." || name == ".." {
        return Err(format!("name must not be {name:?}"));
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

/// Top-level fields xend knew that domus keeps as written without using
/// them: said once, not once each.
pub(super) const XEND_KEPT: &[&str] = &[
    "cpu_cap",
    "cpus",
    "shadow_memory",
    "description",
    "on_xend_start",
    "on_xend_stop",
    "s3_integrity",
    "pool_name",
    "features",
    "localtime",
    "security",
    "security_label",
    "superpages",
    "memory_sharing",
    "cpuid",
    "cpuid_check",
    "machine_address_size",
    "suppress_spurious_page_faults",
    "target",
];

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

    let mut b = Builder {
        listing,
        ..Builder::default()
    };
    let mut first_seen: HashMap<&str, Pos> = HashMap::new();
    let mut kept: Vec<(&str, Pos)> = Vec::new();
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
            None if XEND_KEPT.contains(&name) => {
                kept.push((name, field.pos));
                b.extra.push(field.to_value());
            }
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
    if let Some((_, first)) = kept.first() {
        let names: Vec<&str> = kept.iter().map(|(n, _)| *n).collect();
        d.warn(
            *first,
            format!(
                "xend settings kept as written (domus does not use them): {}",
                names.join(", ")
            ),
        );
    }
    b.finish(node, d)
}

type FieldHandler = fn(&mut Builder, &Node, &mut Diagnostics);

/// The one value of `(field value)`, where an empty `(field )` (as xend's
/// listings wrote an empty string) means the field is not set.
fn optional<'a>(field: &'a Node, ctx: &str, d: &mut Diagnostics) -> Option<&'a str> {
    if field.children().is_empty() {
        return None;
    }
    single(field, ctx, d).filter(|v| !v.is_empty())
}

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
    ("vcpu_avail", |b, f, d| {
        if let Some(v) = single(f, "", d) {
            match v.parse::<u128>() {
                Ok(mask) if mask > 0 => b.vcpu_avail = Some((mask, f.pos)),
                _ => d.error(
                    value_pos(f),
                    format!(
                        "vcpu_avail must be a bit mask of the vCPUs online at start (e.g. 3 for vCPUs 0 and 1), got {}",
                        shown_quoted(v)
                    ),
                ),
            }
        }
    }),
    ("cpu", |b, f, d| {
        // xend wrote -1 for "no pinning".
        if single(f, "", &mut Diagnostics::default()) == Some("-1") {
            return;
        }
        b.cpu = ranged(f, 0, 4095, "a CPU number", d);
    }),
    ("cpu_weight", |b, f, d| {
        // Xen 3.0.3 and older wrote the weight as a float, 1.0 being the
        // default weight (256 since): scaled to today's.
        if let Some(v) = single(f, "", &mut Diagnostics::default())
            && v.contains('.')
            && let Ok(w) = v.parse::<f64>()
            && w > 0.0
            && w <= 255.0
        {
            let weight = ((w * 256.0).round() as u32).clamp(1, 65535);
            d.warn(
                value_pos(f),
                format!(
                    "cpu_weight {} read as {weight} (older xend wrote a float, 1.0 being the default weight, 256 today)",
                    shown(v)
                ),
            );
            b.cpu_weight = Some(weight);
            return;
        }
        b.cpu_weight = ranged(f, 1, 65535, "a number", d)
    }),
    ("bootloader", |b, f, d| {
        b.bootloader_given = true;
        b.bootloader = optional(f, "", d).map(str::to_string);
    }),
    ("bootloader_args", |b, f, d| {
        b.bootloader_args = optional(f, "", d).map(str::to_string);
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
        if let Some((image, cdrom)) = image(f, d, b.listing) {
            b.image = Some(image);
            if let Some(cd) = cdrom {
                b.devices.push((DeviceSpec::Vbd(cd), f.pos));
            }
        }
    }),
    ("device", |b, f, d| {
        let pos = f.children().first().map_or(f.pos, |c| c.pos);
        match device(f, d, b.listing) {
            Parsed::Devices(devs) => b.devices.extend(devs.into_iter().map(|dev| (dev, pos))),
            Parsed::Other(other) => b.other_devices.push(other),
            Parsed::Kept => b.extra.push(f.to_value()),
            Parsed::Dropped => {}
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
    /// Reading xend's `(domain …)` listing: its runtime fields are skipped.
    listing: bool,
    name: Option<String>,
    uuid: Option<uuid::Uuid>,
    memory: Option<u64>,
    maxmem: Option<(u64, Pos)>,
    vcpus: Option<u32>,
    vcpu_avail: Option<(u128, Pos)>,
    cpu: Option<u32>,
    cpu_weight: Option<u32>,
    image: Option<Image>,
    image_pos: Option<Pos>,
    devices: Vec<(DeviceSpec, Pos)>,
    on_poweroff: Option<Policy>,
    on_reboot: Option<Policy>,
    on_crash: Option<Policy>,
    bootloader: Option<String>,
    /// `(bootloader …)` was there, perhaps empty (xend: pygrub then).
    bootloader_given: bool,
    bootloader_args: Option<String>,
    backends: Vec<BackendRole>,
    other_devices: Vec<OtherDevice>,
    top_device_model: Option<(String, Pos)>,
    top_memmap: Option<(String, Pos)>,
    extra: Vec<lexpr::Value>,
}

impl Builder {
    fn finish(self, node: &Node, d: &mut Diagnostics) -> Option<DomainConfig> {
        if self.name.is_none() && !d.errors.iter().any(|e| e.message.starts_with("name")) {
            d.error(node.pos, "missing name: add (name NAME)");
        }
        let mut bootloader = self.bootloader;
        let mut image = match self.image {
            Some(image) => Some(image),
            // A PV domain its bootloader boots needs no image (xend).
            None if self.image_pos.is_none() && self.bootloader_given => {
                Some(Image::Linux(KernelImage::default()))
            }
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
            let pv = !matches!(img, Image::Hvm(_));
            // xend booted a PV domain with an empty bootloader and no
            // kernel through pygrub.
            if pv && bootloader.is_none() && self.bootloader_given && img.boot().kernel.is_none() {
                d.warn(
                    node.pos,
                    "an empty bootloader and no kernel: booted with pygrub, as xend did",
                );
                bootloader = Some("pygrub".into());
            }
            let needs_kernel = pv && bootloader.is_none();
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
        let vcpus = self.vcpus.unwrap_or(1);
        let vcpus_online = self.vcpu_avail.and_then(|(mask, pos)| {
            let within = mask & 1u128.checked_shl(vcpus).map_or(u128::MAX, |b| b - 1);
            let online = within.count_ones();
            if within != mask || within != 1u128.checked_shl(online).map_or(u128::MAX, |b| b - 1) {
                d.warn(
                    pos,
                    format!(
                        "vcpu_avail {mask}: domus brings the first {} vCPUs online at start (a mask names which; only how many is kept)",
                        online.max(1)
                    ),
                );
            }
            (online < vcpus).then_some(online.max(1))
        });
        Some(DomainConfig {
            name: self.name?,
            uuid: self.uuid,
            memory,
            maxmem: self.maxmem.map(|(m, _)| m),
            vcpus,
            vcpus_online,
            cpu: self.cpu,
            cpu_weight: self.cpu_weight,
            image: image?,
            devices: self.devices.into_iter().map(|(dev, _)| dev).collect(),
            on_poweroff: self.on_poweroff,
            on_reboot: self.on_reboot,
            on_crash: self.on_crash,
            bootloader,
            bootloader_args: self.bootloader_args,
            backends: self.backends,
            other_devices: self.other_devices,
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

/// Image settings xend knew that domus keeps as written without using
/// them (mostly HVM platform settings for qemu-dm): said once per image.
pub(super) const XEND_IMAGE_KEPT: &[&str] = &[
    "acpi",
    "apic",
    "isa",
    "localtime",
    "monitor",
    "monitor_path",
    "nographic",
    "nomigrate",
    "pae",
    "rtc_timeoffset",
    "sdl",
    "opengl",
    "stdvga",
    "videoram",
    "usb",
    "usbdevice",
    "hpet",
    "vncconsole",
    "vncdisplay",
    "vncunused",
    "vnclisten",
    "vncpasswd",
    "timer_mode",
    "tsc_mode",
    "vpt_align",
    "viridian",
    "vhpt",
    "hap",
    "nestedhvm",
    "xen_extended_power_mgmt",
    "pci_msitranslate",
    "pci_power_mgmt",
    "xen_platform_pci",
    "gfx_passthru",
    "oos",
    "display",
    "fda",
    "fdb",
    "keymap",
    "parallel",
    "serial",
    "soundhw",
    "xauthority",
    "guest_os_type",
    "superpages",
    "machine_address_size",
    "suppress_spurious_page_faults",
    "ne2000",
    "audio",
    "enable_audio",
    "vncviewer",
];

/// What only a listing's image holds (the running kernel's ELF notes, the
/// passed-through devices as xend found them): dropped quietly there.
const LISTING_IMAGE_FIELDS: &[&str] = &["notes", "pci", "vcpus"];

/// Whether an HVM `kernel` is xend's firmware loader rather than a kernel.
fn is_hvmloader(path: &str) -> bool {
    Path::new(path)
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("hvmloader"))
}

/// The image, and the CD drive an old xend HVM image named with `cdrom`.
fn image(field: &Node, d: &mut Diagnostics, listing: bool) -> Option<(Image, Option<Vbd>)> {
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
    let hvm = flavor.is_some();
    let ctx = format!("{ty} image: ");
    let mut boot = KernelImage::default();
    let mut h = HvmImage::default();
    let mut cdrom = None;
    let mut kept: Vec<(&str, Pos)> = Vec::new();
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
        let slot = match (name, hvm) {
            ("kernel", _) => &mut boot.kernel,
            ("ramdisk", _) => &mut boot.ramdisk,
            ("root", _) => &mut boot.root,
            ("ip", _) => &mut boot.ip,
            ("args", _) => &mut boot.args,
            ("device_model", true) => &mut h.device_model,
            ("memmap", true) => &mut h.memmap,
            ("loader", true) => &mut h.loader,
            ("boot", true) => {
                if let Some(order) = optional(f, &ctx, d) {
                    if order
                        .chars()
                        .all(|c| matches!(c, 'a' | 'b' | 'c' | 'd' | 'n'))
                    {
                        h.boot_order = Some(order.to_string());
                    } else {
                        d.error(
                            value_pos(f),
                            format!(
                                "{ctx}boot must be letters from c (disk), d (CD-ROM), n (network), a (floppy), in order, got {}",
                                shown_quoted(order)
                            ),
                        );
                    }
                }
                continue;
            }
            ("cdrom", true) => {
                // Xen 3.0.2's HVM image named its CD image here; later
                // ones made it a disk `hdc:cdrom`.
                if let Some(path) = optional(f, &ctx, d) {
                    match format!("file:{path}").parse::<Uname>() {
                        Ok(uname) => {
                            cdrom = Some(Vbd {
                                uname,
                                dev: "hdc".into(),
                                mode: VbdMode::ReadOnly,
                                cdrom: true,
                                extra: Vec::new(),
                            })
                        }
                        Err(e) => d.error(value_pos(f), format!("{ctx}cdrom: {e}")),
                    }
                }
                continue;
            }
            ("vnc", true) => {
                match optional(f, &ctx, d) {
                    Some("0") => h.vnc = Some(false),
                    Some("1") => h.vnc = Some(true),
                    Some(v) => d.error(
                        value_pos(f),
                        format!("{ctx}vnc must be 0 or 1, got {}", shown_quoted(v)),
                    ),
                    None => {}
                }
                continue;
            }
            _ if listing && LISTING_IMAGE_FIELDS.contains(&name) => continue,
            // xm wrote the domain's vCPUs into an HVM image too.
            ("vcpus", true) => continue,
            _ if XEND_IMAGE_KEPT.contains(&name) => {
                kept.push((name, f.pos));
                boot.extra.push(f.to_value());
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
        *slot = optional(f, &ctx, d).map(str::to_string);
        for value in [slot.as_deref()].into_iter().flatten() {
            if value.contains(['\0', '\n', '\r']) {
                d.error(
                    value_pos(f),
                    format!("{ctx}{name} must not hold a NUL or a line break"),
                );
            }
        }
    }
    if let Some((_, first)) = kept.first() {
        let names: Vec<&str> = kept.iter().map(|(n, _)| *n).collect();
        d.warn(
            *first,
            format!(
                "{ctx}xend settings kept as written (domus does not use them): {}",
                names.join(", ")
            ),
        );
    }
    if hvm {
        // xend's HVM `kernel` was the firmware (hvmloader) unless a loader
        // was given: then it is a kernel to boot directly.
        if h.loader.is_none()
            && let Some(k) = boot.kernel.take_if(|k| is_hvmloader(k))
        {
            h.loader = Some(k);
        }
    }
    let image = match (ty, flavor) {
        ("linux", _) => Image::Linux(boot),
        ("plan9", _) => Image::Plan9(boot),
        (_, Some(flavor)) => Image::Hvm(HvmImage { flavor, boot, ..h }),
        _ => return None,
    };
    Some((image, cdrom))
}

/// Check a device built elsewhere (the CLI, the TUI's forms) against the
/// same rules as a config file, so nothing invalid reaches a stored config.
pub fn check_device(dev: &DeviceSpec) -> Result<(), String> {
    let text = crate::sxp::print_value(&super::emit::device_value(dev));
    let node = crate::sxp::parse(&text).map_err(|e| e.message)?;
    let mut d = Diagnostics::new("device");
    match device(&node, &mut d, false) {
        Parsed::Devices(_) if d.errors.is_empty() => Ok(()),
        _ => Err(d
            .errors
            .first()
            .map_or_else(|| "invalid device".to_string(), |e| e.message.clone())),
    }
}

/// What a `(device …)` entry gave.
enum Parsed {
    /// One device, or several (a `pci` entry lists every function).
    Devices(Vec<DeviceSpec>),
    Other(OtherDevice),
    /// A device class domus does not know: kept as written, with a warning.
    Kept,
    /// Nothing to keep (an error was reported, or a listing's runtime-only
    /// device).
    Dropped,
}

/// Device classes xend had that domus keeps without using.
const XEND_DEVICE_KEPT: &[&str] = &["vif2", "ioports", "irq", "vscsi", "vusb", "vtpm"];

fn device(field: &Node, d: &mut Diagnostics, listing: bool) -> Parsed {
    let dev = match field.children() {
        [dev] if dev.name().is_some() => dev,
        _ => {
            d.error(
                field.pos,
                "invalid device: expected (device (vbd|vif|pci ...))",
            );
            return Parsed::Dropped;
        }
    };
    let one = |x: Option<DeviceSpec>| x.map_or(Parsed::Dropped, |x| Parsed::Devices(vec![x]));
    match dev.name() {
        // blktap's classes are disks like any other (their uname says tap:).
        Some("vbd" | "tap" | "tap2") => one(vbd(dev, d, listing).map(DeviceSpec::Vbd)),
        Some("vif") => one(vif(dev, d, listing).map(DeviceSpec::Vif)),
        Some("pci") => pci_devices(dev, d),
        Some("vfb") => {
            vfb(dev, d, listing).map_or(Parsed::Dropped, |v| Parsed::Other(OtherDevice::Vfb(v)))
        }
        Some("vkbd") => Parsed::Other(OtherDevice::Vkbd),
        Some("console") => Parsed::Other(OtherDevice::Console {
            protocol: dev
                .child_value("protocol")
                .and_then(Node::atom)
                .filter(|p| !p.is_empty())
                .map(str::to_string),
        }),
        Some(kind) if XEND_DEVICE_KEPT.contains(&kind) => {
            d.warn(
                dev.pos,
                format!("device type {kind} is kept as written, but domus does not build it"),
            );
            Parsed::Kept
        }
        other => {
            d.error(
                dev.pos,
                format!(
                    "unknown device type: {} (expected vbd, tap, vif, pci, vfb, vkbd or console)",
                    shown(other.unwrap_or(""))
                ),
            );
            Parsed::Dropped
        }
    }
}

/// Fields of a device in a listing that describe the running device, not
/// its configuration.
const LISTING_DEVICE_FIELDS: &[&str] = &[
    "backend", "uuid", "VDI", "devid", "location", "driver", "protocol", "bootable", "handle",
    "state",
];

fn vfb(dev: &Node, d: &mut Diagnostics, listing: bool) -> Option<Vfb> {
    const KNOWN: &[&str] = &[
        "vnclisten",
        "vncdisplay",
        "vncunused",
        "vncpasswd",
        "keymap",
        "display",
        "xauthority",
        "opengl",
    ];
    let mut v = Vfb::default();
    for f in dev.children() {
        let Some(name) = f.name() else {
            d.error(f.pos, "vfb: expected a (field value) list");
            continue;
        };
        let value = optional(f, "vfb: ", d);
        match (name, value) {
            ("type", Some("vnc")) | ("vnc", Some("1")) => v.vnc = true,
            ("type", Some("sdl")) | ("sdl", Some("1")) => v.sdl = true,
            ("vnc" | "sdl", _) => {}
            (k, Some(val)) if KNOWN.contains(&k) => {
                v.settings.push((k.to_string(), val.to_string()))
            }
            (k, _) if KNOWN.contains(&k) => {}
            (k, _) if listing && (LISTING_DEVICE_FIELDS.contains(&k) || k == "other_config") => {}
            (k, _) => d.warn(
                f.pos,
                format!(
                    "vfb: unknown field '{}' (ignored; expected vnc, sdl, {})",
                    shown(k),
                    KNOWN.join(", ")
                ),
            ),
        }
    }
    Some(v)
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
    listing: bool,
) -> HashMap<&'a str, &'a Node> {
    let mut out = HashMap::new();
    let mut settings: Vec<(&str, crate::sxp::Pos)> = Vec::new();
    for f in dev.children() {
        match f.name() {
            Some(name) if listing && LISTING_DEVICE_FIELDS.contains(&name) => {}
            Some(name) if XEND_DEVICE_SETTINGS.contains(&name) && extra.is_some() => {
                settings.push((name, f.pos));
                if let Some(kept) = extra.as_deref_mut() {
                    kept.push(crate::sxp::print_value(&f.to_value()));
                }
            }
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
    if let Some((_, pos)) = settings.first() {
        let names: Vec<&str> = settings.iter().map(|(n, _)| *n).collect();
        d.warn(
            *pos,
            format!(
                "{kind}: xend settings kept as written (domus does not use them): {}",
                names.join(", ")
            ),
        );
    }
    out
}

/// Device settings xend knew that domus keeps and writes back unused
/// (the vif's hotplug script, NIC model, rate limit, …).
pub(super) const XEND_DEVICE_SETTINGS: &[&str] = &[
    "script", "model", "rate", "vifname", "type", "accel", "backend", "policy", "label",
];

fn vbd(dev: &Node, d: &mut Diagnostics, listing: bool) -> Option<Vbd> {
    let mut extra = Vec::new();
    let fields = device_fields(
        dev,
        "vbd",
        &["uname", "dev", "mode"],
        d,
        Some(&mut extra),
        listing,
    );
    let ctx = "vbd: ";
    let Some(dev_f) = fields.get("dev") else {
        d.error(dev.pos, "vbd: missing dev, e.g. (dev xvda)");
        return None;
    };
    let dev_text = single(dev_f, ctx, d)?;
    // `hdc:cdrom` is a CD drive; `xvda:disk` (as listings say) a disk.
    let cdrom = dev_text.ends_with(":cdrom");
    let vdev = parse_vdev(dev_text)
        .map_err(|e| d.error(value_pos(dev_f), format!("{ctx}{e}")))
        .ok();
    let uname = match fields
        .get("uname")
        .and_then(|f| optional(f, ctx, d).map(|u| (f, u)))
    {
        Some((f, u)) => u
            .parse::<Uname>()
            .map_err(|e| d.error(value_pos(f), format!("{ctx}{e}")))
            .ok(),
        // A CD drive may be empty; any other disk needs something behind it.
        None if cdrom => Some(Uname::empty()),
        None => {
            d.error(
                dev.pos,
                "vbd: missing uname, e.g. (uname file:/srv/disk.img) (only a CD drive, (dev hdc:cdrom), may be empty)",
            );
            return None;
        }
    };
    // xend's default mode was read-only.
    let mut mode = match fields
        .get("mode")
        .and_then(|m| optional(m, ctx, d).map(|v| (m, v)))
    {
        Some((m, v)) => v
            .parse::<VbdMode>()
            .map_err(|e| d.error(value_pos(m), format!("{ctx}{e}")))
            .ok()?,
        None => VbdMode::ReadOnly,
    };
    if cdrom && mode.writable() {
        d.warn(
            dev_f.pos,
            format!("{ctx}a CD drive is read-only (mode {mode} ignored)"),
        );
        mode = VbdMode::ReadOnly;
    }
    Some(Vbd {
        uname: uname?,
        dev: vdev?,
        mode,
        cdrom,
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

fn vif(dev: &Node, d: &mut Diagnostics, listing: bool) -> Option<Vif> {
    let mut extra = Vec::new();
    let fields = device_fields(
        dev,
        "vif",
        &["mac", "bridge", "ip"],
        d,
        Some(&mut extra),
        listing,
    );
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

/// A `(pci …)` entry: xend put every passed-through function in one, as
/// `(dev …)` children (older ones gave one flat address).
fn pci_devices(dev: &Node, d: &mut Diagnostics) -> Parsed {
    let nested: Vec<&Node> = dev
        .children_named("dev")
        .filter(|f| f.children().first().is_some_and(|v| v.list().is_some()))
        .collect();
    if nested.is_empty() {
        return pci_address(dev, "dev", &["domain", "bus", "dev", "func"], d)
            .map_or(Parsed::Dropped, |p| {
                Parsed::Devices(vec![DeviceSpec::Pci(p)])
            });
    }
    let mut out = Vec::new();
    for n in nested {
        // vdevfn/vslot/key/uuid/opts: where xend put it and how; domus's
        // backends place and configure it themselves.
        if let Some(p) = pci_address(
            n,
            "slot",
            &[
                "domain",
                "bus",
                "slot",
                "func",
                "vdevfn",
                "vslot",
                "vslt",
                "requested_vslot",
                "key",
                "uuid",
                "opts",
                "state",
            ],
            d,
        ) {
            if let Some(o) = n.children_named("opts").next() {
                d.warn(
                    o.pos,
                    format!(
                        "pci {p}: its options are not carried (domus's backends use their defaults)"
                    ),
                );
            }
            out.push(DeviceSpec::Pci(p));
        }
    }
    if out.is_empty() {
        Parsed::Dropped
    } else {
        Parsed::Devices(out)
    }
}

fn pci_address(addr: &Node, slot_key: &str, known: &[&str], d: &mut Diagnostics) -> Option<Pci> {
    let fields = device_fields(addr, "pci", known, d, None, false);
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
