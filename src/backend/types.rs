use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::config::DeviceSpec;

pub type DomId = u32;

/// Ids at or above this are not the hypervisor's: a domain that is off
/// has none (libvirt's defined domains), and is shown as `-`.
pub const NO_ID_BASE: DomId = 0x4000_0000;

/// How an id is shown: `-` for a domain that has none.
pub fn shown_id(domid: DomId) -> String {
    if domid >= NO_ID_BASE {
        "-".into()
    } else {
        domid.to_string()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    Sim,
    Qemu,
    Xen,
    /// Any hypervisor libvirt drives, through a connection URI.
    Libvirt,
}

impl BackendKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Sim => "sim",
            BackendKind::Qemu => "qemu",
            BackendKind::Xen => "xen",
            BackendKind::Libvirt => "libvirt",
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Xen's shutdown reason codes (0 poweroff … 5 soft_reset).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShutdownReason {
    Poweroff,
    Reboot,
    Suspend,
    Crash,
    Watchdog,
    SoftReset,
}

impl ShutdownReason {
    pub fn code(self) -> u8 {
        match self {
            ShutdownReason::Poweroff => 0,
            ShutdownReason::Reboot => 1,
            ShutdownReason::Suspend => 2,
            ShutdownReason::Crash => 3,
            ShutdownReason::Watchdog => 4,
            ShutdownReason::SoftReset => 5,
        }
    }

    /// The reason whose name (as displayed) is `s`.
    pub fn from_name(s: &str) -> Option<Self> {
        (0..=5)
            .filter_map(Self::from_code)
            .find(|r| r.to_string() == s)
    }

    pub fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            0 => ShutdownReason::Poweroff,
            1 => ShutdownReason::Reboot,
            2 => ShutdownReason::Suspend,
            3 => ShutdownReason::Crash,
            4 => ShutdownReason::Watchdog,
            5 => ShutdownReason::SoftReset,
            _ => return None,
        })
    }

    /// The letter `xl list` prints in the fifth state column (`-rscwS`).
    pub fn letter(self) -> char {
        b"-rscwS"[usize::from(self.code())] as char
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ShutdownReason::Poweroff => "poweroff",
            ShutdownReason::Reboot => "reboot",
            ShutdownReason::Suspend => "suspend",
            ShutdownReason::Crash => "crash",
            ShutdownReason::Watchdog => "watchdog",
            ShutdownReason::SoftReset => "soft_reset",
        }
    }
}

impl fmt::Display for ShutdownReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The hypervisor's state flags for a domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StateFlags {
    pub running: bool,
    pub blocked: bool,
    pub paused: bool,
    pub shutdown: bool,
    pub dying: bool,
}

/// A device as the backend has it attached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachedDevice {
    pub spec: DeviceSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DomainInfo {
    pub domid: DomId,
    pub name: String,
    pub uuid: uuid::Uuid,
    pub memory_kib: u64,
    pub max_memory_kib: u64,
    pub vcpus: u32,
    pub flags: StateFlags,
    pub shutdown_reason: Option<ShutdownReason>,
    pub cpu_time_ns: u64,
    pub vcpu_time_ns: Vec<u64>,
    pub devices: Vec<DeviceSpec>,
    /// When the domain was created, for uptime.
    #[serde(default)]
    pub start_ns: Option<u64>,
    /// What the operator should know about how the backend runs the
    /// domain (e.g. a vif on user-mode networking because its bridge is
    /// missing).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl DomainInfo {
    /// The six-letter state exactly as `xl list` prints it: `r-----`,
    /// `--p---`, `---sc-` (crashed), `---s--` (powered off), `-----d`.
    pub fn state_string(&self) -> String {
        let f = self.flags;
        let reason = if f.shutdown {
            self.shutdown_reason.map_or('?', ShutdownReason::letter)
        } else {
            '-'
        };
        [
            if f.running { 'r' } else { '-' },
            if f.blocked { 'b' } else { '-' },
            if f.paused { 'p' } else { '-' },
            if f.shutdown { 's' } else { '-' },
            reason,
            if f.dying { 'd' } else { '-' },
        ]
        .iter()
        .collect()
    }

    pub fn is_crashed(&self) -> bool {
        self.flags.shutdown && self.shutdown_reason == Some(ShutdownReason::Crash)
    }

    /// A short word for the state, for messages.
    pub fn state_word(&self) -> &'static str {
        let f = self.flags;
        if f.dying {
            "dying"
        } else if self.is_crashed() {
            "crashed"
        } else if f.shutdown {
            "shut down"
        } else if f.paused {
            "paused"
        } else if f.running {
            "running"
        } else {
            "blocked"
        }
    }

    /// The lifecycle state in one word, where running and blocked (both
    /// merely scheduling) count as running: for messages about requests.
    pub fn lifecycle_word(&self) -> &'static str {
        if self.is_active() {
            "running"
        } else {
            self.state_word()
        }
    }

    /// Running or blocked: alive and scheduled.
    pub fn is_active(&self) -> bool {
        let f = self.flags;
        !f.paused && !f.shutdown && !f.dying
    }

    /// The backend's note about one device (notes read `DEVICE: note`).
    pub fn note_for(&self, dev: &DeviceSpec) -> Option<&str> {
        let prefix = format!("{dev}: ");
        self.notes.iter().find_map(|n| n.strip_prefix(&prefix))
    }

    /// "attached DEV", plus the backend's note about it (a vif on
    /// user-mode networking because its bridge is missing).
    pub fn attached_text(&self, dev: &DeviceSpec) -> String {
        match self.note_for(dev) {
            Some(n) => format!("attached {dev} ({n})"),
            None => format!("attached {dev}"),
        }
    }

    pub fn memory_mib(&self) -> u64 {
        self.memory_kib / 1024
    }
}

/// What changes by itself from one moment to the next (CPU time, whether
/// a vCPU is on a CPU right now): read cheaply at every refresh tick, while
/// the rest of a domain's view is read again only when something happened.
#[derive(Debug, Clone, PartialEq)]
pub struct DomainStats {
    pub domid: DomId,
    pub flags: StateFlags,
    pub shutdown_reason: Option<ShutdownReason>,
    pub cpu_time_ns: u64,
    pub memory_kib: u64,
}

impl From<&DomainInfo> for DomainStats {
    fn from(i: &DomainInfo) -> Self {
        DomainStats {
            domid: i.domid,
            flags: i.flags,
            shutdown_reason: i.shutdown_reason,
            cpu_time_ns: i.cpu_time_ns,
            memory_kib: i.memory_kib,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostInfo {
    pub hostname: String,
    pub backend: BackendKind,
    /// The hypervisor's version string (Xen's, QEMU's, or the simulator's).
    pub version: String,
    /// Acceleration in use, where the backend has a choice (`kvm`, `tcg`).
    pub accel: Option<String>,
    pub cpus: u32,
    pub total_kib: u64,
    pub free_kib: u64,
}

/// What `create_domain` needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateSpec {
    pub name: String,
    /// `None`: the backend picks one.
    pub uuid: Option<uuid::Uuid>,
    pub memory_kib: u64,
    pub vcpus: u32,
    /// vCPUs online at start, when fewer than `vcpus`.
    #[serde(default)]
    pub vcpus_online: Option<u32>,
    /// The boot image, for toolstacks that build domain and image in one
    /// step (Xen's `xl create`); the others take it in `build_image`.
    #[serde(default)]
    pub image: Option<BootImage>,
    /// The lowest domid the backend may hand out, where it chooses domids
    /// itself: one above any the store has seen, so domids never go
    /// backwards even when a backend's own counter was rolled back.
    #[serde(default)]
    pub min_domid: DomId,
}

/// What an image handler hands the backend to build a domain.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BootImage {
    /// `linux`, `plan9` or `hvm`.
    pub ostype: String,
    pub kernel: Option<String>,
    pub ramdisk: Option<String>,
    pub cmdline: String,
    pub memmap: Option<String>,
    pub device_model: Option<String>,
    pub vnc: bool,
    /// The guest boots from its first disk (HVM without a kernel).
    pub boot_from_disk: bool,
    /// Where the firmware looks, in order: `c` the first disk, `d` the
    /// first CD drive, `n` the network (xend's `boot`); `None`: `c`.
    #[serde(default)]
    pub boot_order: Option<String>,
    /// The HVM firmware xend named (`hvmloader`), for toolstacks that
    /// choose one.
    #[serde(default)]
    pub loader: Option<String>,
    /// A PV bootloader (pygrub) and its arguments, for toolstacks that run
    /// one.
    #[serde(default)]
    pub bootloader: Option<String>,
    #[serde(default)]
    pub bootloader_args: Option<String>,
}

impl BootImage {
    /// Where in the boot order the first device of a class comes (`c`
    /// disk, `d` CD drive, `n` network), when the guest boots from
    /// devices at all.
    pub fn boot_index(&self, class: char) -> Option<usize> {
        if !self.boot_from_disk {
            return None;
        }
        self.boot_order.as_deref().unwrap_or("c").find(class)
    }
}

/// Things a backend can do; the UI offers only the actions whose
/// capability is present.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Capability {
    Pause,
    Shutdown,
    Reboot,
    Suspend,
    HotplugVbd,
    HotplugVif,
    HotplugPci,
    MemoryTarget,
    Console,
    ConsoleResize,
    SaveRestore,
    CoreDump,
    Rename,
    ImageLinux,
    ImagePlan9,
    ImageHvm,
    /// Runs a PV bootloader (pygrub) to find the kernel.
    Bootloader,
    /// Describes each domain in its own terms (libvirt's XML), which can
    /// be shown and edited for domains domus did not build.
    NativeConfig,
    /// Opens the kernels, disks and PCI functions a config names on this
    /// host (the simulator only models them).
    HostFiles,
    /// Counts each domain's network and block I/O (`Hypervisor::io_stats`).
    IoStats,
}

/// A domain's network traffic since it was built, as the guest sees it
/// (xentop's NETTX/NETRX): bytes it sent and received.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetCounters {
    pub tx_bytes: u64,
    pub rx_bytes: u64,
}

/// A domain's block I/O since it was built (xentop's VBD_RD/VBD_WR, in
/// bytes and requests).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VbdCounters {
    pub rd_bytes: u64,
    pub wr_bytes: u64,
    pub rd_reqs: u64,
    pub wr_reqs: u64,
}

/// What a backend could count of one domain's I/O: a part it cannot
/// measure (a vif on user-mode networking has no counters) is `None`, not
/// zero.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IoCounters {
    pub domid: DomId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net: Option<NetCounters>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vbd: Option<VbdCounters>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities(pub BTreeSet<Capability>);

impl Capabilities {
    pub fn of(caps: &[Capability]) -> Self {
        Capabilities(caps.iter().copied().collect())
    }

    pub fn has(&self, cap: Capability) -> bool {
        self.0.contains(&cap)
    }
}

/// A bare domain with the given state, for unit tests across the crate.
#[cfg(test)]
pub(crate) fn test_info(flags: StateFlags, reason: Option<ShutdownReason>) -> DomainInfo {
    DomainInfo {
        domid: 1,
        name: "d".into(),
        uuid: uuid::Uuid::nil(),
        memory_kib: 0,
        max_memory_kib: 0,
        vcpus: 1,
        flags,
        shutdown_reason: reason,
        cpu_time_ns: 0,
        vcpu_time_ns: vec![],
        devices: vec![],
        start_ns: None,
        notes: vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_letters_for_every_state() {
        let f = StateFlags::default;
        let cases = [
            (
                StateFlags {
                    running: true,
                    ..f()
                },
                None,
                "r-----",
                "running",
            ),
            (
                StateFlags {
                    blocked: true,
                    ..f()
                },
                None,
                "-b----",
                "blocked",
            ),
            (
                StateFlags {
                    paused: true,
                    ..f()
                },
                None,
                "--p---",
                "paused",
            ),
            (
                StateFlags {
                    shutdown: true,
                    ..f()
                },
                Some(ShutdownReason::Poweroff),
                "---s--",
                "shut down",
            ),
            (
                StateFlags {
                    shutdown: true,
                    ..f()
                },
                Some(ShutdownReason::Reboot),
                "---sr-",
                "shut down",
            ),
            (
                StateFlags {
                    shutdown: true,
                    ..f()
                },
                Some(ShutdownReason::Suspend),
                "---ss-",
                "shut down",
            ),
            (
                StateFlags {
                    shutdown: true,
                    ..f()
                },
                Some(ShutdownReason::Crash),
                "---sc-",
                "crashed",
            ),
            (
                StateFlags {
                    shutdown: true,
                    ..f()
                },
                Some(ShutdownReason::Watchdog),
                "---sw-",
                "shut down",
            ),
            (
                StateFlags {
                    shutdown: true,
                    ..f()
                },
                Some(ShutdownReason::SoftReset),
                "---sS-",
                "shut down",
            ),
            (StateFlags { dying: true, ..f() }, None, "-----d", "dying"),
            (
                StateFlags {
                    paused: true,
                    blocked: true,
                    ..f()
                },
                None,
                "-bp---",
                "paused",
            ),
        ];
        for (flags, reason, letters, word) in cases {
            let i = test_info(flags, reason);
            assert_eq!(i.state_string(), letters);
            assert_eq!(i.state_word(), word, "{letters}");
        }
    }

    #[test]
    fn reason_codes_round_trip() {
        for code in 0..6 {
            assert_eq!(
                ShutdownReason::from_code(code).map(ShutdownReason::code),
                Some(code)
            );
        }
        assert_eq!(ShutdownReason::from_code(6), None);
    }
}
