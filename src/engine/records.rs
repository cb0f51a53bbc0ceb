//! What the engine remembers about the domains it built: their configs
//! (so policies and start-up re-discovery can rebuild them) and a timeline
//! of lifecycle events. Shared between processes like the sim host.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::error::{EngineError, EngineResult};
use crate::backend::{DomId, ShutdownReason};
use crate::config::Policy;
use crate::persist::JsonFile;

const TIMELINE_CAP: usize = 256;
const RETIRED_CAP: usize = 64;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum TimelineEvent {
    Created {
        image: String,
        memory_mib: u64,
        vcpus: u32,
    },
    DeviceAttached {
        device: String,
    },
    DeviceDetached {
        device: String,
    },
    Paused,
    Unpaused,
    ShutdownRequested {
        reason: ShutdownReason,
    },
    ShutDown {
        reason: ShutdownReason,
    },
    PolicyApplied {
        field: String,
        policy: Policy,
    },
    Restarted {
        new_domid: DomId,
    },
    RestartRefused {
        seconds_since_last: f64,
    },
    RestartFailed {
        error: String,
    },
    Renamed {
        from: String,
        to: String,
    },
    CoreDumped {
        path: PathBuf,
    },
    MemoryTarget {
        mib: u64,
    },
    Saved {
        path: PathBuf,
    },
    Restored {
        path: PathBuf,
    },
    Recreated,
    Vanished,
    Destroyed,
    Warning {
        message: String,
    },
}

impl fmt::Display for TimelineEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use TimelineEvent::*;
        match self {
            Created {
                image,
                memory_mib,
                vcpus,
            } => {
                write!(f, "created ({image}, {memory_mib} MiB, {vcpus} vCPU)")
            }
            DeviceAttached { device } => write!(f, "device attached: {device}"),
            DeviceDetached { device } => write!(f, "device detached: {device}"),
            Paused => write!(f, "paused"),
            Unpaused => write!(f, "unpaused"),
            ShutdownRequested { reason } => write!(f, "shutdown requested ({reason})"),
            ShutDown { reason } => write!(f, "shut down ({reason})"),
            PolicyApplied { field, policy } => write!(f, "{field} policy applied: {policy}"),
            Restarted { new_domid } => write!(f, "restarted as domain {new_domid}"),
            RestartRefused { seconds_since_last } => write!(
                f,
                "restart refused: last restart was {seconds_since_last:.1} s ago (less than {} s); destroyed to stop a restart loop",
                super::policy::MIN_RESTART_INTERVAL_SECS
            ),
            RestartFailed { error } => write!(f, "restart failed: {error}"),
            Renamed { from, to } => write!(f, "renamed {from} -> {to}"),
            CoreDumped { path } => write!(f, "core dumped to {}", path.display()),
            MemoryTarget { mib } => write!(f, "memory target set to {mib} MiB"),
            Saved { path } => write!(f, "saved to {}", path.display()),
            Restored { path } => write!(f, "restored from {}", path.display()),
            Recreated => write!(f, "re-discovered at start-up"),
            Vanished => write!(f, "vanished (no longer on the hypervisor)"),
            Destroyed => write!(f, "destroyed"),
            Warning { message } => write!(f, "warning: {message}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineEntry {
    pub at_ns: u64,
    pub domid: Option<DomId>,
    pub event: TimelineEvent,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DomainRecord {
    pub uuid: uuid::Uuid,
    pub name: String,
    /// The config in canonical sxp form.
    pub config: String,
    pub source: Option<PathBuf>,
    /// The live incarnation, if any.
    pub domid: Option<DomId>,
    pub timeline: Vec<TimelineEntry>,
    pub last_restart_ns: Option<u64>,
    pub restarts: u32,
    /// The domid whose shutdown has been handled (so it is handled once).
    pub handled_shutdown: Option<DomId>,
    /// When a process claimed that shutdown; cleared once its policy ran.
    /// A claim left by a process that died is taken over after a while.
    #[serde(default)]
    pub claim_ns: Option<u64>,
}

impl DomainRecord {
    pub fn push(&mut self, at_ns: u64, domid: Option<DomId>, event: TimelineEvent) {
        self.timeline.push(TimelineEntry {
            at_ns,
            domid,
            event,
        });
        if self.timeline.len() > TIMELINE_CAP {
            let excess = self.timeline.len() - TIMELINE_CAP;
            self.timeline.drain(..excess);
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Records {
    pub live: BTreeMap<uuid::Uuid, DomainRecord>,
    /// Records of domains that are gone, newest last, for the events view.
    pub retired: VecDeque<DomainRecord>,
}

impl Records {
    pub fn by_domid(&mut self, domid: DomId) -> Option<&mut DomainRecord> {
        self.live.values_mut().find(|r| r.domid == Some(domid))
    }

    pub fn retire(&mut self, uuid: &uuid::Uuid) {
        if let Some(mut r) = self.live.remove(uuid) {
            r.domid = None;
            self.retired.push_back(r);
            while self.retired.len() > RETIRED_CAP {
                self.retired.pop_front();
            }
        }
    }
}

pub enum RecordStore {
    Memory(Mutex<Records>),
    Disk(JsonFile),
}

impl RecordStore {
    pub fn memory() -> Self {
        RecordStore::Memory(Mutex::new(Records::default()))
    }

    pub fn disk(path: &Path) -> Self {
        RecordStore::Disk(JsonFile::new(path))
    }

    pub fn read<R>(&self, f: impl FnOnce(&Records) -> R) -> EngineResult<R> {
        match self {
            RecordStore::Memory(m) => {
                let m = m
                    .lock()
                    .map_err(|_| EngineError::Invalid("record lock poisoned".into()))?;
                Ok(f(&m))
            }
            RecordStore::Disk(file) => {
                let _lock = file.lock(false)?;
                let records: Records = file.load()?.unwrap_or_default();
                Ok(f(&records))
            }
        }
    }

    pub fn write<R>(&self, f: impl FnOnce(&mut Records) -> R) -> EngineResult<R> {
        match self {
            RecordStore::Memory(m) => {
                let mut m = m
                    .lock()
                    .map_err(|_| EngineError::Invalid("record lock poisoned".into()))?;
                Ok(f(&mut m))
            }
            RecordStore::Disk(file) => {
                let _lock = file.lock(true)?;
                let (mut records, before) = match file.load_raw::<Records>()? {
                    Some((r, bytes)) => (r, Some(bytes)),
                    None => (Records::default(), None),
                };
                let r = f(&mut records);
                file.save_if_changed(&records, before.as_deref())?;
                Ok(r)
            }
        }
    }
}
