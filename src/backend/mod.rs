//! The hypercall backend: one trait modelled on xend's `xc` calls, and its
//! implementations. The trait is synchronous: every backend call is a short
//! blocking operation (a hypercall, a QMP round trip, a file update), which
//! keeps backends simple to write and to test; async callers (the TUI) run
//! engine calls on a blocking thread.

mod console;
mod error;
pub mod libvirt;
mod netdev;
pub mod qemu;
pub mod select;
pub mod sim;
pub mod supervisor;
pub mod xen;

mod types;

pub use console::{ConsoleStream, ReadOutcome};
pub use error::{BackendError, BackendResult, CallKind, ToolFailure};
#[cfg(test)]
pub(crate) use types::test_info;
pub use types::{
    AttachedDevice, BackendKind, BootImage, Capabilities, Capability, CreateSpec, DomId,
    DomainInfo, DomainStats, HostInfo, IoCounters, NO_ID_BASE, NetCounters, ShutdownReason,
    StateFlags, VbdCounters, shown_id,
};

use std::path::Path;

use crate::config::{DeviceRef, DeviceSpec};

/// Start a program. One being replaced (a package upgrade; a test writing
/// its stand-in while another thread forks) is briefly "text file busy":
/// that is waited out rather than reported.
pub(crate) fn spawn(cmd: &mut std::process::Command) -> std::io::Result<std::process::Child> {
    let mut tries = 0;
    loop {
        match cmd.spawn() {
            Err(e) if e.raw_os_error() == Some(nix::libc::ETXTBSY) && tries < 20 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(25));
            }
            other => return other,
        }
    }
}

/// A hypervisor: what domus needs from Xen, QEMU/KVM or the simulator.
///
/// Calls a backend cannot make return [`BackendError::Unsupported`]; no call
/// panics. Domains are created paused and run only after `unpause`.
pub trait Hypervisor: Send + Sync {
    fn kind(&self) -> BackendKind;
    fn capabilities(&self) -> Capabilities;

    fn host_info(&self) -> BackendResult<HostInfo>;
    fn list_domains(&self) -> BackendResult<Vec<DomainInfo>>;
    fn domain_info(&self, domid: DomId) -> BackendResult<DomainInfo>;

    /// Create an empty, paused domain with its memory reserved.
    fn create_domain(&self, spec: &CreateSpec) -> BackendResult<DomId>;
    fn set_max_memory(&self, domid: DomId, kib: u64) -> BackendResult<()>;
    fn set_vcpus(&self, domid: DomId, vcpus: u32) -> BackendResult<()>;
    fn pin_vcpu(&self, domid: DomId, vcpu: u32, cpu: u32) -> BackendResult<()>;
    fn set_cpu_weight(&self, domid: DomId, weight: u32) -> BackendResult<()>;
    /// Load the boot image (kernel, ramdisk, command line, HVM memmap).
    fn build_image(&self, domid: DomId, image: &BootImage) -> BackendResult<()>;
    /// Start the HVM device model, where the backend has one of its own.
    fn start_device_model(&self, domid: DomId, image: &BootImage) -> BackendResult<()>;

    fn pause(&self, domid: DomId) -> BackendResult<()>;
    fn unpause(&self, domid: DomId) -> BackendResult<()>;
    /// Ask the guest to shut down for `reason`.
    fn shutdown(&self, domid: DomId, reason: ShutdownReason) -> BackendResult<()>;
    fn destroy(&self, domid: DomId) -> BackendResult<()>;
    fn rename(&self, domid: DomId, name: &str) -> BackendResult<()>;

    fn attach_device(&self, domid: DomId, device: &DeviceSpec) -> BackendResult<()>;
    fn detach_device(&self, domid: DomId, device: &DeviceRef) -> BackendResult<DeviceSpec>;
    fn set_memory_target(&self, domid: DomId, kib: u64) -> BackendResult<()>;

    /// A two-way byte stream to the domain's console.
    fn open_console(&self, domid: DomId) -> BackendResult<Box<dyn ConsoleStream>>;

    /// Save the domain's state to `path` (the domain is gone afterwards);
    /// `meta` is stored with it and handed back by `restore`.
    fn save(&self, domid: DomId, path: &Path, meta: &[u8]) -> BackendResult<()>;
    fn restore(&self, path: &Path) -> BackendResult<(DomId, Vec<u8>)>;
    /// Write a core dump of the domain's memory to `path`.
    fn core_dump(&self, domid: DomId, path: &Path) -> BackendResult<()>;

    /// Start a domain that is off from the hypervisor's own definition
    /// (another tool's libvirt domain): its new id, or `None` where the
    /// backend keeps no definitions of its own.
    fn start_native(&self, _domid: DomId) -> BackendResult<Option<DomId>> {
        Ok(None)
    }

    /// Replace a domain's definition with `text` in the hypervisor's own
    /// terms (libvirt's XML, which libvirt validates); for domains domus
    /// did not build.
    fn define_native(&self, _domid: DomId, _text: &str) -> BackendResult<()> {
        Err(BackendError::Invalid(
            "this backend has no description of its own to edit".into(),
        ))
    }

    /// Hand each lifecycle change the hypervisor reports by itself (a
    /// domain paused, resumed, stopped by its guest or another tool) to
    /// `sink`, from a thread of the backend's, for as long as the backend
    /// lives. `false`: this backend reports through per-domain
    /// supervisors (QEMU, Xen) or not at all.
    fn watch(&self, _sink: Box<dyn Fn(DomId, Notice) + Send>) -> BackendResult<bool> {
        Ok(false)
    }

    /// The hypervisor's own description of a domain, where it has one
    /// (libvirt's domain XML), shown read-only for domains domus did not
    /// build.
    fn native_description(&self, _domid: DomId) -> BackendResult<Option<String>> {
        Ok(None)
    }

    /// Whether the backend can still reach its hypervisor. A remote
    /// connection that is lost (its daemon stopped or restarted) says no,
    /// and the fleet opens it again; a local backend always can.
    fn connected(&self) -> bool {
        true
    }

    /// What opening the backend found and did that the operator should
    /// hear about (stale domain directories it removed, …).
    fn startup_notes(&self) -> Vec<String> {
        Vec::new()
    }

    /// The key this host's records and journal are kept under in the state
    /// store (the backend's name; a connection URI for remote hosts).
    fn host_key(&self) -> String {
        self.kind().as_str().to_string()
    }

    /// A uuid for a domain about to be built (random; the simulator's come
    /// from its seed, so its hosts stay reproducible).
    fn new_uuid(&self) -> BackendResult<uuid::Uuid> {
        Ok(uuid::Uuid::new_v4())
    }

    /// What changes by itself, for every domain: what a refresh tick reads.
    /// Backends that can answer without building whole views should.
    fn stats(&self) -> BackendResult<Vec<DomainStats>> {
        Ok(self.list_domains()?.iter().map(DomainStats::from).collect())
    }

    /// Each domain's I/O counters (with `Capability::IoStats`): read when
    /// they are shown, not on every tick.
    fn io_stats(&self) -> BackendResult<Vec<IoCounters>> {
        Ok(Vec::new())
    }

    /// The domain with this name, if any.
    fn lookup(&self, name: &str) -> BackendResult<Option<DomainInfo>> {
        Ok(self.list_domains()?.into_iter().find(|d| d.name == name))
    }

    /// The domains in the shut-down state, whose policies are due. Backends
    /// that can answer without listing every domain should.
    fn shut_down_domains(&self) -> BackendResult<Vec<DomainInfo>> {
        Ok(self
            .list_domains()?
            .into_iter()
            .filter(|d| d.flags.shutdown)
            .collect())
    }

    /// What it means when one of domus's domains is no longer listed and
    /// no domus operation removed it, as the backend sees it.
    fn vanish_cause(&self) -> String {
        "no longer on the hypervisor (removed outside domus)".into()
    }

    /// Whether domus built this domain (as opposed to Domain-0 or another
    /// toolstack's), for rebuilding lost records.
    fn built_by_domus(&self, info: &DomainInfo) -> bool {
        info.domid != 0
    }

    /// The file a domain's console output is logged to, where the backend
    /// keeps one (read without taking the console).
    fn console_log(&self, _domid: DomId) -> BackendResult<Option<std::path::PathBuf>> {
        Ok(None)
    }

    /// The boot image a domain runs, where the backend keeps it (for
    /// rebuilding a lost record).
    fn boot_image(&self, _domid: DomId) -> BackendResult<Option<BootImage>> {
        Ok(None)
    }

    /// Whether each domain has a supervisor process of its own (QEMU, Xen:
    /// one per domain, as `xl` keeps one) that reports what happens to it
    /// and applies its policies with no other domus running.
    fn supervised(&self) -> bool {
        false
    }

    /// The supervisor's loop (`domus supervise DOMID`): watch one domain
    /// until it is gone, handing what the hypervisor reports to `sink`.
    /// Returns when the domain is gone (after a final [`Notice::Gone`]), or
    /// at once when another supervisor already watches it.
    fn supervise(&self, _domid: DomId, _sink: &mut dyn FnMut(Notice)) -> BackendResult<()> {
        Err(BackendError::Unsupported {
            backend: self.kind(),
            call: CallKind::Supervise,
        })
    }
}

/// What the hypervisor reported about a domain without being asked.
#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    Paused,
    Resumed,
    ShutDown {
        reason: ShutdownReason,
        /// The guest did it (as opposed to the host or an operator).
        by_guest: bool,
    },
    /// The guest reset itself.
    Reset,
    /// A device left the domain (a hot-unplug completed).
    DeviceRemoved {
        id: String,
    },
    /// A shutdown request got no answer from the guest.
    ShutdownIgnored {
        seconds: u64,
    },
    /// The domain is gone. `cause` says how when the backend knows;
    /// `requested` when domus itself asked for it (a destroy).
    Gone {
        cause: String,
        requested: bool,
    },
}
