//! Device descriptions shared by configs, the engine and the backends.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::error::shown;

/// Where a virtual block device's data lives on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnameKind {
    /// A host block device (`phy:/dev/sdb`).
    Phy,
    /// A disk image file (`file:/srv/web1.img`).
    File,
    /// A disk image served by blktap (`tap:aio:/x.img`, `tap:qcow2:/x.qcow2`,
    /// `tap2:tapdisk:vhd:/x.vhd`): an image file in the driver's format.
    Tap,
    /// A block script's device (`nbd:HOST PORT`, `iscsi:…`, `drbd:RES`).
    Script,
    /// No medium: an empty CD drive (`(dev hdc:cdrom)` with no uname).
    Empty,
}

/// The tap drivers xend knew (blktap 1 and 2).
const TAP_DRIVERS: &[&str] = &[
    "aio", "sync", "vmdk", "ram", "qcow", "qcow2", "vhd", "remus", "ioemu",
];

/// The block scripts a uname may name (`/etc/xen/scripts/block-NAME`).
const BLOCK_SCRIPTS: &[&str] = &["nbd", "iscsi", "drbd", "enbd"];

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Uname {
    pub kind: UnameKind,
    pub path: String,
    /// A tap disk's driver (`aio`, `qcow2` …) or the block script's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// What came before the path as written (`tap2:tapdisk:aio`), so the
    /// config is written back as it was read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

impl Uname {
    pub fn new(kind: UnameKind, path: impl Into<String>) -> Uname {
        Uname {
            kind,
            path: path.into(),
            driver: None,
            prefix: None,
        }
    }

    /// No medium (an empty CD drive).
    pub fn empty() -> Uname {
        Uname::new(UnameKind::Empty, "")
    }

    pub fn is_empty(&self) -> bool {
        self.kind == UnameKind::Empty
    }

    /// A file on the host holding the disk (file or tap).
    pub fn is_image_file(&self) -> bool {
        matches!(self.kind, UnameKind::File | UnameKind::Tap)
    }

    /// The image format a tap driver names, as xl calls it (`raw`,
    /// `qcow`, `qcow2`, `vhd`, `vmdk`); `None` where the file says.
    pub fn format(&self) -> Option<&'static str> {
        if self.kind != UnameKind::Tap {
            return None;
        }
        Some(match self.driver.as_deref() {
            Some("qcow") => "qcow",
            Some("qcow2") => "qcow2",
            Some("vhd") => "vhd",
            Some("vmdk") => "vmdk",
            _ => "raw",
        })
    }
}

/// A path as a config may give it: no NUL, newline or other control
/// character; `//` and `/./` folded.
fn clean_path(s: &str, what: &str, whole: &str) -> Result<String, String> {
    if let Some(c) = s.chars().find(|c| c.is_control()) {
        return Err(format!(
            "invalid uname '{}': its {what} holds a control character (U+{:04X})",
            shown(whole),
            u32::from(c)
        ));
    }
    let mut out = String::with_capacity(s.len());
    if s.starts_with('/') {
        out.push('/');
    }
    for part in s.split('/').filter(|p| !p.is_empty() && *p != ".") {
        if !out.is_empty() && !out.ends_with('/') {
            out.push('/');
        }
        out.push_str(part);
    }
    Ok(out)
}

impl FromStr for Uname {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "invalid uname '{}' (expected phy:/dev/NAME, file:/PATH, tap:DRIVER:/PATH or a block script such as nbd:HOST PORT)",
                shown(s)
            )
        };
        if s.is_empty() {
            return Ok(Uname::empty());
        }
        let (kind, rest) = s.split_once(':').ok_or_else(bad)?;
        let absolute = |path: &str| -> Result<String, String> {
            let p = clean_path(path, "path", s)?;
            if p.starts_with('/') && p.len() > 1 {
                Ok(p)
            } else {
                Err(bad())
            }
        };
        match kind {
            "phy" => {
                // xend accepted `phy:sdb`, meaning /dev/sdb.
                let full = if rest.starts_with('/') {
                    rest.to_string()
                } else if !rest.is_empty() {
                    format!("/dev/{rest}")
                } else {
                    return Err(bad());
                };
                if full.split('/').any(|p| p == "..") {
                    return Err(format!(
                        "invalid uname '{}': a phy: device path must not hold '..'",
                        shown(s)
                    ));
                }
                Ok(Uname::new(UnameKind::Phy, absolute(&full)?))
            }
            "file" => Ok(Uname::new(UnameKind::File, absolute(rest)?)),
            "tap" | "tap2" => {
                // tap:[tapdisk:|ioemu:]DRIVER:PATH
                let mut parts = rest.splitn(3, ':');
                let mut prefix = kind.to_string();
                let mut first = parts.next().unwrap_or("");
                let mut tail = rest;
                if matches!(first, "tapdisk" | "ioemu") {
                    prefix = format!("{prefix}:{first}");
                    tail = rest.split_once(':').map_or("", |(_, t)| t);
                    first = tail.split(':').next().unwrap_or("");
                }
                let (driver, path) = tail.split_once(':').ok_or_else(bad)?;
                if !TAP_DRIVERS.contains(&driver) {
                    return Err(format!(
                        "invalid uname '{}': unknown tap driver '{}' (expected one of {})",
                        shown(s),
                        shown(first),
                        TAP_DRIVERS.join(", ")
                    ));
                }
                Ok(Uname {
                    kind: UnameKind::Tap,
                    path: absolute(path)?,
                    driver: Some(driver.to_string()),
                    prefix: Some(format!("{prefix}:{driver}")),
                })
            }
            script if BLOCK_SCRIPTS.contains(&script) => {
                let params = clean_path(rest, "parameters", s)?;
                if params.is_empty() {
                    return Err(bad());
                }
                Ok(Uname {
                    kind: UnameKind::Script,
                    path: rest.to_string(),
                    driver: Some(script.to_string()),
                    prefix: Some(script.to_string()),
                })
            }
            _ => Err(bad()),
        }
    }
}

impl Uname {
    /// The file a uname names, for telling whether two name the same disk:
    /// links resolved when it exists (`file:/srv/x.img`, `file:/srv//x.img`
    /// and a symlink to it are one disk), else the path with `//` and `/./`
    /// folded. The kind does not count: `phy:` and `file:` of one path are
    /// one file. An empty drive names nothing (an empty key).
    pub fn identity(&self) -> String {
        match self.kind {
            UnameKind::Empty => return String::new(),
            UnameKind::Script => {
                return format!("{}:{}", self.driver.as_deref().unwrap_or(""), self.path);
            }
            _ => {}
        }
        if let Ok(real) = std::fs::canonicalize(&self.path) {
            return real.display().to_string();
        }
        let mut out = String::with_capacity(self.path.len());
        for part in self.path.split('/') {
            if part.is_empty() || part == "." {
                continue;
            }
            out.push('/');
            out.push_str(part);
        }
        if out.is_empty() {
            out.push('/');
        }
        out
    }
}

impl fmt::Display for Uname {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match (self.kind, &self.prefix) {
            (UnameKind::Empty, _) => return Ok(()),
            (_, Some(p)) => p.as_str(),
            (UnameKind::Phy, None) => "phy",
            (UnameKind::File, None) => "file",
            (UnameKind::Tap, None) => "tap:aio",
            (UnameKind::Script, None) => self.driver.as_deref().unwrap_or("nbd"),
        };
        write!(f, "{kind}:{}", self.path)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VbdMode {
    #[serde(rename = "r")]
    ReadOnly,
    #[serde(rename = "w")]
    ReadWrite,
    /// `w!`: writable, with the check that no other domain writes it off
    /// (a disk shared on purpose, e.g. by a cluster file system).
    #[serde(rename = "w!")]
    Shared,
}

impl VbdMode {
    pub fn writable(self) -> bool {
        matches!(self, VbdMode::ReadWrite | VbdMode::Shared)
    }
}

impl FromStr for VbdMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "r" => Ok(VbdMode::ReadOnly),
            "w" => Ok(VbdMode::ReadWrite),
            "w!" => Ok(VbdMode::Shared),
            _ => Err(format!("invalid mode '{}' (expected r, w or w!)", shown(s))),
        }
    }
}

impl fmt::Display for VbdMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            VbdMode::ReadOnly => "r",
            VbdMode::ReadWrite => "w",
            VbdMode::Shared => "w!",
        })
    }
}

/// A virtual block device: `(vbd (uname file:/x.img) (dev xvda) (mode w))`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Vbd {
    pub uname: Uname,
    /// Guest device name, e.g. `xvda` (stored without `/dev/`).
    pub dev: String,
    pub mode: VbdMode,
    /// A CD-ROM drive (`(dev hdc:cdrom)`): read-only, its medium may be
    /// absent.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cdrom: bool,
    /// Fields no handler knows (`(backend 0)` …), one canonical line each,
    /// kept so that a rebuild loses nothing.
    #[serde(default)]
    pub extra: Vec<String>,
}

impl Vbd {
    /// The `dev` as written back: `hdc:cdrom` for a CD drive.
    pub fn dev_text(&self) -> String {
        if self.cdrom {
            format!("{}:cdrom", self.dev)
        } else {
            self.dev.clone()
        }
    }
}

/// Check a guest block device name (`xvda`, `hdb`, `sdc1`, `vda`).
pub fn parse_vdev(s: &str) -> Result<String, String> {
    // xend's HVM forms `ioemu:hda` and `hdc:cdrom` name the same disks.
    let name = s.strip_prefix("ioemu:").unwrap_or(s);
    let name = name
        .strip_suffix(":cdrom")
        .or_else(|| name.strip_suffix(":disk"))
        .unwrap_or(name);
    let name = name.strip_prefix("/dev/").unwrap_or(name);
    let prefix = ["xvd", "hd", "sd", "vd"]
        .into_iter()
        .find(|p| name.starts_with(p));
    let ok = prefix.is_some_and(|p| {
        let rest = &name[p.len()..];
        let letters = rest.chars().take_while(char::is_ascii_lowercase).count();
        (1..=3).contains(&letters)
            && rest.len() - letters <= 2
            && rest[letters..].chars().all(|c| c.is_ascii_digit())
    });
    if ok {
        Ok(name.to_string())
    } else {
        Err(format!(
            "invalid dev '{}' (expected a guest disk name such as xvda, hdb or sdc)",
            shown(s)
        ))
    }
}

/// Linux block major/minor numbers for a guest disk name, as the guest's
/// `/proc/partitions` shows them.
pub fn vdev_numbers(dev: &str) -> (u32, u32) {
    let (major, prefix, per_disk) = if dev.starts_with("xvd") {
        (202, 3, 16)
    } else if dev.starts_with("hd") {
        (3, 2, 64)
    } else if dev.starts_with("vd") {
        (254, 2, 16)
    } else {
        (8, 2, 16)
    };
    let rest = dev.get(prefix..).unwrap_or("");
    let letters: String = rest.chars().take_while(char::is_ascii_lowercase).collect();
    let index = letters
        .bytes()
        .fold(0u32, |acc, b| acc * 26 + u32::from(b - b'a') + 1)
        .saturating_sub(1);
    let part: u32 = rest[letters.len()..].parse().unwrap_or(0);
    (major, index * per_disk + part)
}

/// An Ethernet MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// A MAC in Xen's OUI 00:16:3e, its low three bytes derived from `seed`.
    pub fn xen_from_seed(seed: u64) -> Mac {
        let b = seed.to_le_bytes();
        // Clear the top bit of the fourth byte as xend did (0x00–0x7f).
        Mac([0x00, 0x16, 0x3e, b[0] & 0x7f, b[1], b[2]])
    }
}

impl FromStr for Mac {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "invalid mac '{}' (expected six hex pairs, e.g. 00:16:3e:01:02:03)",
                shown(s)
            )
        };
        let parts: Vec<&str> = s.split([':', '-']).collect();
        if parts.len() != 6 {
            return Err(bad());
        }
        let mut mac = [0u8; 6];
        for (byte, part) in mac.iter_mut().zip(parts) {
            if part.len() != 2 {
                return Err(bad());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        }
        if mac[0] & 1 == 1 {
            return Err(format!(
                "invalid mac '{}': a multicast address cannot be a vif's",
                shown(s)
            ));
        }
        if mac == [0; 6] {
            return Err("invalid mac '00:00:00:00:00:00': no interface can have it".into());
        }
        Ok(Mac(mac))
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl Serialize for Mac {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Mac {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A virtual network interface.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Vif {
    /// `None` in a config means "pick a fresh one at build time".
    pub mac: Option<Mac>,
    pub bridge: Option<String>,
    pub ip: Option<String>,
    /// Fields no handler knows (`(script vif-bridge)` …), kept verbatim.
    #[serde(default)]
    pub extra: Vec<String>,
}

/// A host PCI device passed through to the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Pci {
    pub domain: u16,
    pub bus: u8,
    pub dev: u8,
    pub func: u8,
}

impl fmt::Display for Pci {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{:x}",
            self.domain, self.bus, self.dev, self.func
        )
    }
}

impl Pci {
    /// Parse a BDF: `0000:00:1f.2` or `00:1f.2`.
    pub fn parse_bdf(s: &str) -> Result<Pci, String> {
        let bad = || {
            format!(
                "invalid PCI address '{}' (expected [DDDD:]BB:DD.F)",
                shown(s)
            )
        };
        let (rest, func) = s.rsplit_once('.').ok_or_else(bad)?;
        let parts: Vec<&str> = rest.split(':').collect();
        let (domain, bus, dev) = match parts.as_slice() {
            [d, b, s] => (*d, *b, *s),
            [b, s] => ("0", *b, *s),
            _ => return Err(bad()),
        };
        let hex = |x: &str| u32::from_str_radix(x, 16).map_err(|_| bad());
        let pci = Pci {
            domain: u16::try_from(hex(domain)?).map_err(|_| bad())?,
            bus: u8::try_from(hex(bus)?).map_err(|_| bad())?,
            dev: u8::try_from(hex(dev)?).map_err(|_| bad())?,
            func: u8::try_from(hex(func)?).map_err(|_| bad())?,
        };
        if pci.dev > 31 || pci.func > 7 {
            return Err(bad());
        }
        Ok(pci)
    }
}

/// xend's `parse_pci`: decimal, or hex with a `0x` prefix.
pub fn parse_pci_number(s: &str) -> Option<u32> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

/// How an operator names an attached device to detach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceRef {
    /// A vbd by its guest device name (`xvdb`).
    Vbd(String),
    /// A vif by MAC.
    VifMac(Mac),
    /// A vif by index among the domain's vifs (`vif0`, `eth1`).
    VifIndex(usize),
    Pci(Pci),
}

impl FromStr for DeviceRef {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if let Ok(mac) = s.parse::<Mac>() {
            return Ok(DeviceRef::VifMac(mac));
        }
        for prefix in ["vif", "eth"] {
            if let Some(n) = s.strip_prefix(prefix).and_then(|n| n.parse().ok()) {
                return Ok(DeviceRef::VifIndex(n));
            }
        }
        if let Ok(pci) = Pci::parse_bdf(s) {
            return Ok(DeviceRef::Pci(pci));
        }
        if let Ok(dev) = parse_vdev(s) {
            return Ok(DeviceRef::Vbd(dev));
        }
        Err(format!(
            "unknown device '{}' (expected a vbd name like xvdb, a vif MAC or vifN, or a PCI address like 00:1f.2)",
            shown(s)
        ))
    }
}

impl DeviceRef {
    /// The position of the device this names among a domain's devices.
    pub fn position_in<'a>(
        &self,
        devices: impl IntoIterator<Item = &'a super::DeviceSpec>,
    ) -> Option<usize> {
        use super::DeviceSpec;
        let mut vif_n = 0;
        devices.into_iter().position(|d| match (d, self) {
            (DeviceSpec::Vbd(v), DeviceRef::Vbd(name)) => &v.dev == name,
            (DeviceSpec::Vif(v), DeviceRef::VifMac(mac)) => v.mac == Some(*mac),
            (DeviceSpec::Vif(_), DeviceRef::VifIndex(i)) => {
                vif_n += 1;
                vif_n - 1 == *i
            }
            (DeviceSpec::Pci(p), DeviceRef::Pci(q)) => p == q,
            _ => false,
        })
    }
}

impl fmt::Display for DeviceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceRef::Vbd(d) => write!(f, "{d}"),
            DeviceRef::VifMac(m) => write!(f, "{m}"),
            DeviceRef::VifIndex(i) => write!(f, "vif{i}"),
            DeviceRef::Pci(p) => write!(f, "{p}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vdev_numbers_match_linux() {
        assert_eq!(vdev_numbers("xvda"), (202, 0));
        assert_eq!(vdev_numbers("xvdb"), (202, 16));
        assert_eq!(vdev_numbers("xvda1"), (202, 1));
        assert_eq!(vdev_numbers("hdb"), (3, 64));
        assert_eq!(vdev_numbers("sdc"), (8, 32));
    }

    #[test]
    fn device_refs() {
        assert_eq!("xvdb".parse(), Ok(DeviceRef::Vbd("xvdb".into())));
        assert_eq!("vif1".parse(), Ok(DeviceRef::VifIndex(1)));
        assert_eq!(
            "00:1f.2".parse(),
            Ok(DeviceRef::Pci(Pci {
                domain: 0,
                bus: 0,
                dev: 0x1f,
                func: 2
            }))
        );
        assert!(matches!(
            "00:16:3e:00:00:01".parse(),
            Ok(DeviceRef::VifMac(_))
        ));
        assert!("bogus!".parse::<DeviceRef>().is_err());
    }

    #[test]
    fn uname_forms() {
        assert_eq!(
            "phy:sdb".parse::<Uname>().map(|u| u.to_string()),
            Ok("phy:/dev/sdb".into())
        );
        assert!("file:relative.img".parse::<Uname>().is_err());
        assert!("smb:x".parse::<Uname>().is_err());
        assert!("phy:../../etc/shadow".parse::<Uname>().is_err());
        assert!("file:/srv/a\nb.img".parse::<Uname>().is_err());
        let u = |s: &str| s.parse::<Uname>().unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(u("file:/srv//x/./a.img").path, "/srv/x/a.img");
        // blktap disks: the driver says the format; written back as read.
        let t = u("tap2:tapdisk:qcow2:/srv/a.qcow2");
        assert_eq!((t.kind, t.format()), (UnameKind::Tap, Some("qcow2")));
        assert_eq!(t.to_string(), "tap2:tapdisk:qcow2:/srv/a.qcow2");
        assert_eq!(u("tap:aio:/srv/a.img").format(), Some("raw"));
        assert!("tap:bogus:/srv/a.img".parse::<Uname>().is_err());
        // A block script's parameters may hold spaces.
        let n = u("nbd:134.100.233.115 20004");
        assert_eq!(
            (n.kind, n.to_string().as_str()),
            (UnameKind::Script, "nbd:134.100.233.115 20004")
        );
        assert!(u("").is_empty());
    }

    #[test]
    fn a_mac_no_interface_can_have_is_refused() {
        assert!("00:00:00:00:00:00".parse::<Mac>().is_err());
        assert!("01:16:3e:00:00:01".parse::<Mac>().is_err(), "multicast");
        assert!("00:16:3e:00:00:01".parse::<Mac>().is_ok());
    }

    #[test]
    fn one_file_has_one_identity_whatever_the_uname_says() {
        let u = |s: &str| s.parse::<Uname>().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            u("file:/no/such//dir/./x.img").identity(),
            u("phy:/no/such/dir/x.img").identity()
        );
        assert_ne!(
            u("file:/no/such/a.img").identity(),
            u("file:/no/such/b.img").identity()
        );
    }
}
