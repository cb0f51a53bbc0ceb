//! Everything that can change the app's state arrives as an [`Action`];
//! everything the app asks of the outside world leaves as an [`Effect`].

use std::path::PathBuf;

use crossterm::event::{KeyEvent, MouseEvent};

use super::library::LibraryEntry;
use crate::backend::{Capabilities, HostInfo, ShutdownReason};
use crate::config::{DeviceRef, DeviceSpec, DomainConfig};
use crate::engine::{DomainView, JournalEntry, PolicyEvent};
use crate::fleet::{DomKey, HostId};

/// One poll of the engine: what the table, header and events log show.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Whose: each host of a fleet answers on its own.
    pub host_id: HostId,
    pub at_ns: u64,
    pub host: HostInfo,
    pub capabilities: Capabilities,
    pub domains: Vec<DomainView>,
    /// Journal entries written since the previous snapshot.
    pub journal: Vec<JournalEntry>,
    /// Recently gone domains, newest first.
    pub gone: Vec<super::feed::GoneView>,
}

/// A PCI device on the host, for the attach form's picker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPci {
    pub bdf: String,
    pub vendor: String,
    pub device: String,
    pub class: String,
    /// From pci.ids, where the host has it.
    pub vendor_name: Option<String>,
    pub device_name: Option<String>,
    /// The driver bound now (`vfio-pci` is what passthrough needs).
    pub driver: Option<String>,
}

#[derive(Debug, Clone)]
pub enum Done {
    /// Operations dropped before they started.
    Cancelled {
        domid: DomKey,
        ops: Vec<&'static str>,
    },
    /// Policies this TUI applied and interrupted work it repaired.
    Policies {
        events: Vec<PolicyEvent>,
        repaired: Vec<String>,
    },
    /// One result per domain for a (bulk) operation.
    Ops {
        op: &'static str,
        results: Vec<(String, Result<(), String>)>,
    },
    Built {
        name: String,
        result: Result<DomKey, String>,
    },
    Attached {
        name: String,
        result: Result<String, String>,
    },
    Detached {
        name: String,
        result: Result<String, String>,
    },
    Saved {
        path: PathBuf,
        /// What was written (the editor may have more by now).
        text: String,
        result: Result<(), String>,
        then_build: bool,
    },
    /// Problems found before a build from the editor; empty means none.
    Preflight {
        path: PathBuf,
        problems: Vec<String>,
    },
    Imported {
        from: PathBuf,
        /// The new file and its warnings, or why not.
        result: Result<(PathBuf, usize), String>,
    },
    Deleted {
        path: PathBuf,
        result: Result<(), String>,
    },
    /// An edited definition given to the hypervisor.
    Defined {
        key: DomKey,
        name: String,
        /// What was given (the editor may have more by now).
        text: String,
        result: Result<(), String>,
    },
    Error(String),
}

#[derive(Debug, Clone)]
pub enum Action {
    Key(KeyEvent),
    /// Text pasted into the terminal (bracketed paste): typed into the
    /// input that has the focus, never run as keys.
    Paste(String),
    Mouse(MouseEvent),
    Resize(u16, u16),
    Snapshot(Box<Snapshot>),
    Done(Done),
    ConsoleBytes(DomKey, Vec<u8>),
    ConsoleClosed(DomKey),
    /// The console could not be opened (the reason went to the status line).
    ConsoleFailed(DomKey),
    Library(Vec<LibraryEntry>),
    FileOpened {
        path: PathBuf,
        text: String,
        /// Unsaved edits from a previous session that differ from the file.
        recovery: Option<String>,
    },
    PciDevices(Vec<HostPci>),
    Completions(Vec<String>),
    /// Some domus process committed to the state store: refresh.
    StoreChanged,
    /// A file in the config library appeared, changed or went.
    LibraryChanged,
    /// A copy of a config to edit, not yet saved.
    Cloned {
        path: PathBuf,
        text: String,
    },
    /// The operations waiting their turn on a domain (none: the list is
    /// empty again).
    Queued {
        domid: DomKey,
        ops: Vec<&'static str>,
    },
    /// The refresh tick (`--delay`).
    Tick,
    /// A domain's description in the hypervisor's own terms (`None`: the
    /// backend has none).
    Native {
        key: DomKey,
        text: Option<String>,
    },
    /// The same, to edit (`None`: nothing to edit).
    NativeToEdit {
        key: DomKey,
        name: String,
        text: Option<String>,
    },
    /// A host could not be read (its refresh failed, or it is
    /// unreachable and will be tried again).
    HostDown {
        host: HostId,
        why: String,
    },
    /// I/O counters, read at `at_ns`.
    Io {
        host: HostId,
        at_ns: u64,
        io: Vec<crate::backend::IoCounters>,
    },
    /// What changed by itself since the last look (a tick's cheap read).
    Stats {
        host: HostId,
        at_ns: u64,
        stats: Vec<crate::backend::DomainStats>,
    },
    /// A domain's whole timeline (and, when it is gone, its console's
    /// last lines), for the details.
    Timeline {
        uuid: uuid::Uuid,
        entries: Vec<JournalEntry>,
        console_tail: Vec<String>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Read every domain's view again (after an event, or now and then).
    Refresh,
    /// The same, of one host (what its tick's read showed changed).
    RefreshHost(HostId),
    /// Read only what changes by itself (CPU time, running or blocked).
    Stats,
    /// Read the I/O counters (while an I/O column is shown).
    IoStats,
    /// Drop the operations still waiting their turn on these domains.
    CancelQueued(Vec<DomKey>),
    /// Apply the policies of domains that shut down, and repair what
    /// interrupted domus processes left (a restart's build never holds up
    /// a refresh: this has a lane of its own).
    Policies,
    Pause(Vec<DomKey>),
    /// Pause the running ones, unpause the paused ones.
    TogglePause(Vec<DomKey>),
    Save(DomKey, PathBuf),
    Restore(HostId, PathBuf),
    Unpause(Vec<DomKey>),
    Shutdown(Vec<DomKey>, ShutdownReason),
    Destroy(Vec<DomKey>),
    /// Build shut-down domains again from their configs.
    Start(Vec<DomKey>),
    /// Build from a config file on a host.
    Build(HostId, PathBuf),
    Create(HostId, Box<DomainConfig>),
    Attach(DomKey, DeviceSpec),
    Detach(DomKey, DeviceRef),
    MemTarget(DomKey, u64),
    OpenConsole(DomKey),
    /// The operator left the console view: let go of the stream, so another
    /// process (`domus console`) may attach; reopening replays the log.
    CloseConsole(DomKey),
    ConsoleInput(DomKey, Vec<u8>),
    ConsoleResize(DomKey, u16, u16),
    LoadLibrary,
    OpenFile(PathBuf),
    SaveFile {
        path: PathBuf,
        text: String,
        then_build: bool,
    },
    /// Check a config against the host before building it from the editor.
    Preflight {
        path: PathBuf,
        text: String,
    },
    DeleteFile(PathBuf),
    /// `domus import` for one library file.
    ImportConfig(PathBuf),
    /// Read `from` and open a copy named `name` (to be saved at `to`).
    CloneConfig {
        from: PathBuf,
        to: PathBuf,
        name: String,
    },
    /// Keep the operator's choices (theme, sort, filter) for next time.
    SavePrefs(super::prefs::Prefs),
    WriteRecovery {
        path: PathBuf,
        text: String,
    },
    ClearRecovery(PathBuf),
    ScanPci,
    CompletePath(String),
    LoadTimeline(HostId, uuid::Uuid),
    /// The hypervisor's own description of a domain (libvirt's XML).
    LoadNative(DomKey),
    /// The same, to edit it.
    EditNative(DomKey),
    /// Replace a domain's definition with edited text (libvirt validates).
    DefineNative {
        key: DomKey,
        text: String,
    },
    /// Stop showing a gone domain.
    Dismiss(HostId, uuid::Uuid),
}
