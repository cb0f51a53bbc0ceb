use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::device::{Pci, Vbd, Vif};

/// What to do when a domain shuts down for a given reason (`on_poweroff` …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    Destroy,
    Restart,
    RenameRestart,
    Preserve,
    CoredumpDestroy,
    CoredumpRestart,
}

impl Policy {
    pub const ALL: [Policy; 6] = [
        Policy::Destroy,
        Policy::Restart,
        Policy::RenameRestart,
        Policy::Preserve,
        Policy::CoredumpDestroy,
        Policy::CoredumpRestart,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Destroy => "destroy",
            Policy::Restart => "restart",
            Policy::RenameRestart => "rename-restart",
            Policy::Preserve => "preserve",
            Policy::CoredumpDestroy => "coredump-destroy",
            Policy::CoredumpRestart => "coredump-restart",
        }
    }

    pub fn restarts(self) -> bool {
        matches!(
            self,
            Policy::Restart | Policy::RenameRestart | Policy::CoredumpRestart
        )
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyParseError(pub String);

impl FromStr for Policy {
    type Err = PolicyParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Policy::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| PolicyParseError(s.to_string()))
    }
}

/// A kernel and its boot parameters, shared by every image type.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct KernelImage {
    pub kernel: Option<String>,
    pub ramdisk: Option<String>,
    pub root: Option<String>,
    pub ip: Option<String>,
    pub args: Option<String>,
    /// Image fields no handler knows (xend HVM configs carry many), kept verbatim.
    pub extra: Vec<lexpr::Value>,
}

impl KernelImage {
    /// The kernel command line, assembled as xend's `ImageHandler.configure`
    /// did: ` ip=…`, ` root=…`, then the free-form args.
    pub fn cmdline(&self) -> String {
        let mut cmdline = String::new();
        if let Some(ip) = &self.ip {
            cmdline.push_str(" ip=");
            cmdline.push_str(ip);
        }
        if let Some(root) = &self.root {
            cmdline.push_str(" root=");
            cmdline.push_str(root);
        }
        if let Some(args) = &self.args {
            cmdline.push(' ');
            cmdline.push_str(args);
        }
        cmdline.trim_start().to_string()
    }
}

/// `hvm` (libxl's name) and `vmx` (xend's) are the same image type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HvmFlavor {
    #[default]
    Hvm,
    Vmx,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct HvmImage {
    pub flavor: HvmFlavor,
    pub boot: KernelImage,
    pub device_model: Option<String>,
    pub memmap: Option<String>,
    pub vnc: Option<bool>,
    /// The firmware (xend's `loader`, or a `kernel` that is hvmloader).
    pub loader: Option<String>,
    /// Where the firmware looks for something to boot, in order: `c` the
    /// first disk, `d` the first CD drive, `n` the network (xend's `boot`).
    pub boot_order: Option<String>,
}

impl HvmImage {
    /// The boot order in effect: as given, else the first disk (xm's `c`).
    pub fn boot_order(&self) -> &str {
        self.boot_order.as_deref().unwrap_or("c")
    }
}

/// The guest image: which image handler builds the domain.
#[derive(Debug, Clone, PartialEq)]
pub enum Image {
    Linux(KernelImage),
    Plan9(KernelImage),
    Hvm(HvmImage),
}

impl Image {
    /// The image type as written in configs.
    pub fn type_name(&self) -> &'static str {
        match self {
            Image::Linux(_) => "linux",
            Image::Plan9(_) => "plan9",
            Image::Hvm(h) => match h.flavor {
                HvmFlavor::Hvm => "hvm",
                HvmFlavor::Vmx => "vmx",
            },
        }
    }

    pub fn boot(&self) -> &KernelImage {
        match self {
            Image::Linux(k) | Image::Plan9(k) => k,
            Image::Hvm(h) => &h.boot,
        }
    }
}

/// The domain may serve a device class to others (`(backend (blkif))`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendRole {
    Blkif,
    Netif,
}

impl BackendRole {
    pub fn as_str(self) -> &'static str {
        match self {
            BackendRole::Blkif => "blkif",
            BackendRole::Netif => "netif",
        }
    }
}

/// A display device as xend kept it: `(vfb (vnc 1) (vnclisten 0.0.0.0))`
/// (or xend's legacy `(type vnc)`), its settings as written.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Vfb {
    pub vnc: bool,
    pub sdl: bool,
    /// `vnclisten`, `vncdisplay`, `vncunused`, `vncpasswd`, `keymap`,
    /// `display`, `xauthority`, `opengl`: name and value as written.
    pub settings: Vec<(String, String)>,
}

impl Vfb {
    pub fn setting(&self, key: &str) -> Option<&str> {
        self.settings
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Devices a config may carry that are not hot-plugged: kept, shown and
/// written back; backends use what they can (a vfb's VNC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OtherDevice {
    Vfb(Vfb),
    /// A paravirtual keyboard (paired with a vfb).
    Vkbd,
    /// A paravirtual console; xend made one per domain by itself.
    Console {
        protocol: Option<String>,
    },
}

impl fmt::Display for OtherDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OtherDevice::Vfb(v) => {
                write!(f, "vfb")?;
                if v.vnc {
                    write!(f, " vnc")?;
                }
                if v.sdl {
                    write!(f, " sdl")?;
                }
                for (k, val) in &v.settings {
                    write!(f, " {k}={val}")?;
                }
                Ok(())
            }
            OtherDevice::Vkbd => write!(f, "vkbd"),
            OtherDevice::Console { protocol } => {
                write!(f, "console")?;
                if let Some(p) = protocol {
                    write!(f, " {p}")?;
                }
                Ok(())
            }
        }
    }
}

/// One `(device …)` entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum DeviceSpec {
    Vbd(Vbd),
    Vif(Vif),
    Pci(Pci),
}

impl DeviceSpec {
    pub fn type_name(&self) -> &'static str {
        match self {
            DeviceSpec::Vbd(_) => "vbd",
            DeviceSpec::Vif(_) => "vif",
            DeviceSpec::Pci(_) => "pci",
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Vbd(v) if v.uname.is_empty() => {
                write!(f, "vbd {} (no media)", v.dev_text())
            }
            DeviceSpec::Vbd(v) => write!(f, "vbd {} {} ({})", v.dev_text(), v.uname, v.mode),
            DeviceSpec::Vif(v) => {
                write!(f, "vif")?;
                if let Some(mac) = v.mac {
                    write!(f, " {mac}")?;
                }
                if let Some(b) = &v.bridge {
                    write!(f, " bridge={b}")?;
                }
                if let Some(ip) = &v.ip {
                    write!(f, " ip={ip}")?;
                }
                Ok(())
            }
            DeviceSpec::Pci(p) => write!(f, "pci {p}"),
        }
    }
}

/// A domain configuration: what `(vm …)` says, typed.
#[derive(Debug, Clone, PartialEq)]
pub struct DomainConfig {
    pub name: String,
    pub uuid: Option<uuid::Uuid>,
    /// MiB. xend's default was 128.
    pub memory: u64,
    /// MiB; the ceiling a balloon may grow to.
    pub maxmem: Option<u64>,
    pub vcpus: u32,
    /// vCPUs online at start, when fewer than `vcpus` (xend's `vcpu_avail`
    /// mask, counted); the rest can be brought online later.
    pub vcpus_online: Option<u32>,
    /// Physical CPU to pin vCPU 0 to (xend's `cpu`).
    pub cpu: Option<u32>,
    pub cpu_weight: Option<u32>,
    pub image: Image,
    pub devices: Vec<DeviceSpec>,
    pub on_poweroff: Option<Policy>,
    pub on_reboot: Option<Policy>,
    pub on_crash: Option<Policy>,
    pub bootloader: Option<String>,
    /// Arguments for the bootloader, one string as xend kept it.
    pub bootloader_args: Option<String>,
    pub backends: Vec<BackendRole>,
    /// vfb, vkbd, console: kept and shown.
    pub other_devices: Vec<OtherDevice>,
    /// Fields no handler knows, kept verbatim so a round trip loses nothing.
    pub extra: Vec<lexpr::Value>,
}

impl DomainConfig {
    pub const DEFAULT_MEMORY_MIB: u64 = 128;

    /// A minimal linux config, for templates and tests.
    pub fn new_linux(name: impl Into<String>, kernel: impl Into<String>) -> Self {
        DomainConfig {
            name: name.into(),
            uuid: None,
            memory: Self::DEFAULT_MEMORY_MIB,
            maxmem: None,
            vcpus: 1,
            vcpus_online: None,
            cpu: None,
            cpu_weight: None,
            image: Image::Linux(KernelImage {
                kernel: Some(kernel.into()),
                ..Default::default()
            }),
            devices: Vec::new(),
            on_poweroff: None,
            on_reboot: None,
            on_crash: None,
            bootloader: None,
            bootloader_args: None,
            backends: Vec::new(),
            other_devices: Vec::new(),
            extra: Vec::new(),
        }
    }

    /// What an HVM domain boots: its kernel, or the first device of the
    /// classes its boot order names that it has (`c` a disk, `d` a CD drive
    /// with a disc, `n` a network card). An error says why there is none.
    pub fn boot_target(&self) -> Result<(), String> {
        let Image::Hvm(h) = &self.image else {
            return Ok(());
        };
        if h.boot.kernel.is_some() {
            return Ok(());
        }
        let has = |class: char| {
            self.devices.iter().any(|d| match (class, d) {
                ('c', DeviceSpec::Vbd(v)) => !v.cdrom,
                ('d', DeviceSpec::Vbd(v)) => v.cdrom && !v.uname.is_empty(),
                ('n', DeviceSpec::Vif(_)) => true,
                _ => false,
            })
        };
        let order = h.boot_order();
        if order.chars().any(has) {
            return Ok(());
        }
        let what: Vec<&str> = order
            .chars()
            .filter_map(|c| match c {
                'c' => Some("no disk"),
                'd' => Some("no CD drive with a disc"),
                'n' => Some("no network card"),
                _ => None,
            })
            .collect();
        Err(format!(
            "{} image: nothing to boot: boot order '{order}' finds {} (give a kernel, or the device the boot order names)",
            self.image.type_name(),
            if what.is_empty() {
                "nothing it knows".to_string()
            } else {
                what.join(", ")
            }
        ))
    }

    /// vCPUs online at start.
    pub fn online_vcpus(&self) -> u32 {
        self.vcpus_online
            .unwrap_or(self.vcpus)
            .clamp(1, self.vcpus.max(1))
    }

    /// The effective policies, with xl's defaults (destroy / restart / destroy).
    pub fn poweroff_policy(&self) -> Policy {
        self.on_poweroff.unwrap_or(Policy::Destroy)
    }

    pub fn reboot_policy(&self) -> Policy {
        self.on_reboot.unwrap_or(Policy::Restart)
    }

    pub fn crash_policy(&self) -> Policy {
        self.on_crash.unwrap_or(Policy::Destroy)
    }

    pub fn maxmem_or_memory(&self) -> u64 {
        self.maxmem.unwrap_or(self.memory).max(self.memory)
    }

    pub fn is_backend(&self, role: BackendRole) -> bool {
        self.backends.contains(&role)
    }

    /// Counts of (vbd, vif, pci) devices.
    pub fn device_counts(&self) -> (usize, usize, usize) {
        count_devices(&self.devices)
    }

    /// The canonical S-expression text.
    pub fn to_sxp_string(&self) -> String {
        crate::sxp::print_pretty(&self.to_value())
    }
}

pub fn count_devices(devices: &[DeviceSpec]) -> (usize, usize, usize) {
    devices.iter().fold((0, 0, 0), |(b, n, p), d| match d {
        DeviceSpec::Vbd(_) => (b + 1, n, p),
        DeviceSpec::Vif(_) => (b, n + 1, p),
        DeviceSpec::Pci(_) => (b, n, p + 1),
    })
}
