//! What domus records about each QEMU domain, in `domain.json` inside the
//! domain's directory: the facts QEMU cannot be asked for (the domid domus
//! allocated, the config's memory target, which root port each hot-plugged
//! device sits on), so any domus process can pick a domain up again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::launch::{DomainDir, ROOT_PORTS};
use crate::backend::{BackendError, BackendResult, BootImage, DomId, ShutdownReason};
use crate::config::DeviceSpec;
use crate::persist::{JsonFile, LockGuard};

/// When a record file last changed: (ctime s, ctime ns, inode).
pub type Stamp = (i64, i64, u64);

/// A device as plugged into QEMU.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plugged {
    pub spec: DeviceSpec,
    /// The `device_add` id.
    pub qdev: String,
    /// The `blockdev-add` node or `netdev_add` id, where there is one.
    pub backend: Option<String>,
    /// The root port (`rpN`) it sits on.
    pub port: u32,
    /// A tap interface domus created for it (removed on detach).
    #[serde(default)]
    pub tap: Option<String>,
    /// How the device reaches the host, for the operator (`user-mode
    /// networking`, `tap domus5.0 on br0`).
    #[serde(default)]
    pub note: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Created by domus, no QEMU yet (the pipeline has not built the image).
    Building,
    /// QEMU runs.
    Launched,
}

/// The guest's run state as the supervisor (and domus's own pause and
/// unpause) last recorded it from QEMU's events, so listing a domain needs
/// no QMP round trip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum RunState {
    Paused,
    Running,
    Shutdown { reason: ShutdownReason },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DomainMeta {
    pub domid: DomId,
    pub name: String,
    pub uuid: uuid::Uuid,
    pub phase: Phase,
    /// The balloon target.
    pub memory_kib: u64,
    /// What QEMU gets with `-m`.
    pub max_memory_kib: u64,
    pub vcpus: u32,
    pub accel: String,
    pub created_ns: u64,
    pub image: Option<BootImage>,
    #[serde(default)]
    pub devices: Vec<Plugged>,
    #[serde(default)]
    pub qemu_pid: Option<i32>,
    /// Host thread ids of the vCPUs, for CPU time.
    #[serde(default)]
    pub vcpu_threads: Vec<i32>,
    #[serde(default)]
    pub cpu_weight: Option<u32>,
    #[serde(default)]
    pub pins: BTreeMap<u32, u32>,
    /// Bumped for every device, so qdev ids are never reused.
    #[serde(default)]
    pub next_device: u32,
    /// `None` until first recorded (a domain launched by an older domus):
    /// then QEMU is asked.
    #[serde(default)]
    pub run_state: Option<RunState>,
    /// The operator asked for a reboot: the guest's next clean poweroff is
    /// that reboot.
    #[serde(default)]
    pub reboot_requested: bool,
    /// The console log (in the state dir's archive); `None`: the domain
    /// directory's `console.log` (an older domus).
    #[serde(default)]
    pub console_log: Option<PathBuf>,
    /// The process building the domain (pid, start time) while it is
    /// `Building`: an unfinished build whose builder still runs is left
    /// alone; one whose builder died is removed at once.
    #[serde(default)]
    pub builder: Option<(u32, u64)>,
    /// vCPUs online at start when fewer than `vcpus` (xend's
    /// `vcpu_avail`); the rest are present, not started.
    #[serde(default)]
    pub vcpus_online: Option<u32>,
}

/// The last domid handed out: a counter pushed this far (by hand, or a
/// damaged file) gives an error, not an overflow.
const LAST_DOMID: DomId = DomId::MAX - 1;

/// This process, as a builder.
pub fn this_builder() -> Option<(u32, u64)> {
    let pid = std::process::id();
    crate::store::start_time(pid).map(|start| (pid, start))
}

impl DomainMeta {
    pub fn console_log(&self, dir: &DomainDir) -> PathBuf {
        self.console_log
            .clone()
            .unwrap_or_else(|| dir.console_log())
    }
}

impl DomainMeta {
    /// The lowest root port no device sits on.
    pub fn free_port(&self) -> Option<u32> {
        (1..=ROOT_PORTS).find(|p| self.devices.iter().all(|d| d.port != *p))
    }
}

/// The runtime directory: one sub-directory per domain plus the domid
/// counter. Domids only grow, as Xen's do, so a stale id never names a new
/// domain.
#[derive(Debug, Clone)]
pub struct Runtime {
    pub root: PathBuf,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Counter {
    next_domid: DomId,
}

fn persist_err(e: crate::persist::PersistError) -> BackendError {
    BackendError::data("a QEMU domain's record", e)
}

impl Runtime {
    pub fn new(root: &Path) -> BackendResult<Runtime> {
        crate::fsx::ensure_private_dir(root).map_err(|e| {
            BackendError::io(format!("runtime directory {}", root.display()), e.into())
        })?;
        Ok(Runtime {
            root: root.to_path_buf(),
        })
    }

    pub fn dir(&self, domid: DomId) -> DomainDir {
        DomainDir::new(&self.root, domid)
    }

    fn meta_file(&self, domid: DomId) -> JsonFile {
        JsonFile::new(&self.dir(domid).dir.join("domain.json"))
    }

    /// Allocate the next domid (never 0: that is Domain-0's), at least
    /// `min` (one above any domid the state store has seen: the counter
    /// here may have been edited or lost).
    pub fn allocate_domid(&self, min: DomId) -> BackendResult<DomId> {
        let file = JsonFile::new(&self.root.join("next-domid.json"));
        let _lock = file.lock(true).map_err(persist_err)?;
        let mut counter: Counter = file.load().map_err(persist_err)?.unwrap_or_default();
        // Never backwards, and never an id whose directory is still there.
        let above = self.domids().last().map_or(1, |d| d.saturating_add(1));
        let mut domid = counter.next_domid.max(1).max(min).max(above);
        while domid <= LAST_DOMID && self.dir(domid).dir.exists() {
            domid += 1;
        }
        if domid > LAST_DOMID {
            return Err(BackendError::Start {
                what: "a domain".into(),
                why: format!(
                    "no domain id left (ids only grow, and stop at {LAST_DOMID}; remove {} to start again from 1)",
                    self.root.join("next-domid.json").display()
                ),
            });
        }
        counter.next_domid = domid + 1;
        file.save(&counter).map_err(persist_err)?;
        Ok(domid)
    }

    /// Every domid with a directory, in order.
    pub fn domids(&self) -> Vec<DomId> {
        let mut ids: Vec<DomId> = std::fs::read_dir(&self.root)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
            .collect();
        ids.sort_unstable();
        ids
    }

    /// The records of every domain in the runtime directory.
    pub fn all(&self) -> Vec<DomainMeta> {
        self.domids()
            .into_iter()
            .filter_map(|d| self.load(d).ok())
            .collect()
    }

    pub fn load(&self, domid: DomId) -> BackendResult<DomainMeta> {
        let file = self.meta_file(domid);
        if !file.path().exists() {
            return Err(BackendError::NoSuchDomain(domid));
        }
        let _lock = file.lock(false).map_err(persist_err)?;
        file.load()
            .map_err(persist_err)?
            .ok_or(BackendError::NoSuchDomain(domid))
    }

    /// When a domain's record last changed (records are replaced whole, so
    /// a new one is a new file with a new change time).
    pub fn stamp(&self, domid: DomId) -> Option<Stamp> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(self.meta_file(domid).path()).ok()?;
        Some((m.ctime(), m.ctime_nsec(), m.ino()))
    }

    pub fn store(&self, meta: &DomainMeta) -> BackendResult<()> {
        let file = self.meta_file(meta.domid);
        let _lock = file.lock(true).map_err(persist_err)?;
        file.save(meta).map_err(persist_err)
    }

    /// Change a domain's record under its lock.
    pub fn update<T>(
        &self,
        domid: DomId,
        f: impl FnOnce(&mut DomainMeta) -> BackendResult<T>,
    ) -> BackendResult<T> {
        let file = self.meta_file(domid);
        if !file.path().exists() {
            return Err(BackendError::NoSuchDomain(domid));
        }
        let _lock = file.lock(true).map_err(persist_err)?;
        let mut meta: DomainMeta = file
            .load()
            .map_err(persist_err)?
            .ok_or(BackendError::NoSuchDomain(domid))?;
        let out = f(&mut meta)?;
        file.save(&meta).map_err(persist_err)?;
        Ok(out)
    }

    /// Hold a domain's lock across a longer operation (a hot-plug), so two
    /// processes never pick the same root port.
    pub fn lock(&self, domid: DomId) -> BackendResult<LockGuard> {
        self.meta_file(domid).lock(true).map_err(persist_err)
    }

    /// Load and store without taking the lock (the caller holds it).
    pub fn load_unlocked(&self, domid: DomId) -> BackendResult<DomainMeta> {
        self.meta_file(domid)
            .load()
            .map_err(persist_err)?
            .ok_or(BackendError::NoSuchDomain(domid))
    }

    pub fn store_unlocked(&self, meta: &DomainMeta) -> BackendResult<()> {
        self.meta_file(meta.domid).save(meta).map_err(persist_err)
    }

    /// Create a new domain's directory with its record already in it: it
    /// is made under a temporary name and renamed into place, so another
    /// process never sees a domain directory without a record.
    pub fn create(&self, meta: &DomainMeta) -> BackendResult<()> {
        let tmp = self.root.join(format!(".new-{}-{}", meta.domid, meta.uuid));
        crate::fsx::ensure_private_dir(&tmp)
            .map_err(|e| BackendError::io(format!("creating {}", tmp.display()), e.into()))?;
        let made = JsonFile::new(&tmp.join("domain.json"))
            .save(meta)
            .map_err(persist_err)
            .and_then(|()| {
                std::fs::rename(&tmp, self.dir(meta.domid).dir)
                    .map_err(|e| BackendError::io(format!("creating domain {}", meta.domid), e))
            });
        if made.is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        made
    }

    /// Leftovers of creations that died before renaming their directory
    /// into place (older than `age`).
    pub fn remove_stale_new(&self, age: std::time::Duration) {
        for e in std::fs::read_dir(&self.root)
            .into_iter()
            .flatten()
            .flatten()
        {
            let stale = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|t| t > age);
            if e.file_name().to_string_lossy().starts_with(".new-") && stale {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }

    pub fn remove(&self, domid: DomId) -> BackendResult<()> {
        let dir = self.dir(domid).dir;
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(BackendError::io(format!("removing {}", dir.display()), e)),
        }
    }
}
