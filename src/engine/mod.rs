//! The lifecycle engine: a Rust re-thinking of xend's `XendDomainInfo` and
//! `image.py`. It owns the construction pipeline, state checks for every
//! request, shutdown policies, recovery of interrupted work and the host
//! journal, and talks to the hypervisor only through [`Hypervisor`] and to
//! its records only through the [`Store`]. It knows nothing of any UI or
//! any particular backend.
//!
//! Every operation that changes a domain runs as an *op*: its intent is
//! recorded before the backend is touched, and its outcome (record changes,
//! journal events) is committed in one transaction with the intent's
//! removal. See [`ops`] and [`recover`].

mod cache;
mod error;
pub mod handlers;
mod observe;
mod ops;
mod pipeline;
pub mod policy;
mod preflight;
mod recover;

pub use crate::store::{
    DomainEvent, DomainRecord, Intent, JournalEntry, JournalFilter, OpKind, Phase, Source,
    SourceKind,
};
pub use error::{EngineError, EngineResult, Stage, StageError};
pub use policy::{MIN_RESTART_INTERVAL_SECS, PolicyEvent, PolicyOutcome, policy_for};

use std::path::{Path, PathBuf};
use std::sync::Arc;

use self::cache::RecordCache;
use self::handlers::Registry;
use crate::backend::{BackendError, ConsoleStream, DomId, DomainInfo, HostInfo, Hypervisor};
use crate::clock::Clock;
use crate::config::{DeviceRef, DeviceSpec, DomainConfig};
use crate::store::Store;
use crate::store::journal::Subject;

/// A domain as the engine sees it: the hypervisor's view, what the engine
/// remembers when it built the domain, and what is being done to it.
#[derive(Debug, Clone)]
pub struct DomainView {
    pub info: DomainInfo,
    /// Shared with the engine's cache: a refresh of 10,000 domains copies
    /// no configs.
    pub record: Option<Arc<DomainRecord>>,
    /// Operations in flight on it, by any domus process.
    pub pending: Vec<Intent>,
}

impl DomainView {
    pub fn config(&self) -> Option<&DomainConfig> {
        self.record.as_ref().map(|r| &r.config)
    }
}

/// What start-up re-discovery found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecreateReport {
    /// Domains whose configs were re-attached: (name, domid).
    pub reattached: Vec<(String, DomId)>,
    /// Running domains domus did not build (Domain-0, or other tools').
    pub unmanaged: Vec<(String, DomId)>,
    /// Domains domus built that are no longer on the hypervisor.
    pub vanished: Vec<String>,
}

pub struct Engine {
    hv: Arc<dyn Hypervisor>,
    clock: Arc<dyn Clock>,
    store: Store,
    registry: Registry,
    dump_dir: PathBuf,
    actor: Source,
    cache: RecordCache,
    /// Console logs that outlive their domains (persistent engines only).
    archive: Option<crate::console::archive::Archive>,
    /// What opening the store found (a migration, a damaged store).
    notes: Vec<String>,
}

impl Engine {
    fn with_store(hv: Arc<dyn Hypervisor>, clock: Arc<dyn Clock>, store: Store) -> Self {
        Engine {
            hv,
            clock,
            store,
            registry: Registry::default(),
            dump_dir: std::env::temp_dir(),
            actor: Source::new(SourceKind::Cli),
            cache: RecordCache::default(),
            archive: None,
            notes: Vec::new(),
        }
    }

    /// An engine whose records live in memory (tests, benchmarks).
    pub fn in_memory(hv: Arc<dyn Hypervisor>, clock: Arc<dyn Clock>) -> EngineResult<Self> {
        let store = Store::memory(&hv.host_key())?;
        Ok(Self::with_store(hv, clock, store))
    }

    /// An engine whose records and journal persist in `state_dir`, shared
    /// with every other domus process on the same host. Older JSON records
    /// are imported; call [`Engine::start`] next.
    pub fn persistent(
        hv: Arc<dyn Hypervisor>,
        clock: Arc<dyn Clock>,
        state_dir: &Path,
    ) -> EngineResult<Self> {
        let mut store = Store::open(state_dir, &hv.host_key())?;
        store.migrate_json(state_dir)?;
        let notes = store.take_notes();
        let mut engine = Self::with_store(hv, clock, store);
        engine.dump_dir = state_dir.join("dumps");
        engine.archive = Some(crate::console::archive::Archive::in_state_dir(state_dir));
        engine.notes = notes;
        Ok(engine)
    }

    /// Who this process is in the journal (`cli` unless told otherwise).
    pub fn with_actor(mut self, kind: SourceKind) -> Self {
        self.actor = Source::new(kind);
        self
    }

    /// Record journal entries under this exact source (tests fix the pid so
    /// their snapshots do not change from run to run).
    pub fn with_source(mut self, source: Source) -> Self {
        self.actor = source;
        self
    }

    pub fn actor(&self) -> Source {
        self.actor
    }

    pub fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }

    pub fn hypervisor(&self) -> &Arc<dyn Hypervisor> {
        &self.hv
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn now_ns(&self) -> u64 {
        self.clock.now_ns()
    }

    pub fn host_info(&self) -> EngineResult<HostInfo> {
        Ok(self.hv.host_info()?)
    }

    /// Every domain on the hypervisor, with what the engine knows of it.
    /// Domains domus built that the hypervisor no longer has are recorded
    /// as vanished (unless an operation of some domus process is removing
    /// them right now).
    pub fn domains(&self) -> EngineResult<Vec<DomainView>> {
        // Records first, then the hypervisor: a domain built in between is
        // listed without its record for a moment, never taken for gone.
        let records = self.cache.live(&self.store)?;
        let intents = self.store.read(|tx| tx.intents())?;
        let infos = self.hv.list_domains()?;
        let present: std::collections::HashSet<uuid::Uuid> = infos.iter().map(|i| i.uuid).collect();
        let missing: Vec<&Arc<DomainRecord>> = records
            .values()
            .filter(|r| r.phase == Phase::Live)
            .filter(|r| !present.contains(&r.uuid))
            .filter(|r| !intents.iter().any(|i| i.uuid == Some(r.uuid)))
            .collect();
        if !missing.is_empty() {
            let cause = self.hv.vanish_cause();
            for rec in missing {
                // Asked once more, alone: gone is a strong word, and only
                // the backend saying "no such domain" earns it (a query
                // that failed says nothing).
                let still = match rec.domid.map(|d| self.hv.domain_info(d)) {
                    Some(Ok(i)) => i.uuid == rec.uuid,
                    Some(Err(BackendError::NoSuchDomain(_))) | None => false,
                    Some(Err(e)) => {
                        tracing::debug!(uuid = %rec.uuid, error = %e, "not calling a domain vanished: asking about it failed");
                        true
                    }
                };
                if !still {
                    self.vanish(rec.uuid, rec.domid, Some(cause.clone()))?;
                }
            }
        }
        Ok(infos
            .into_iter()
            .map(|info| {
                let record = records
                    .get(&info.uuid)
                    .filter(|r| r.domid == Some(info.domid) || r.phase == Phase::Building)
                    .map(Arc::clone);
                let pending = intents
                    .iter()
                    .filter(|i| {
                        i.uuid == Some(info.uuid)
                            || (i.uuid.is_none() && i.domid == Some(info.domid))
                    })
                    .cloned()
                    .collect();
                DomainView {
                    info,
                    record,
                    pending,
                }
            })
            .collect())
    }

    /// What changes by itself (CPU time, running or blocked), for every
    /// domain: the cheap read of a refresh tick.
    pub fn stats(&self) -> EngineResult<Vec<crate::backend::DomainStats>> {
        Ok(self.hv.stats()?)
    }

    /// Each domain's I/O counters, where the backend counts them.
    pub fn io_stats(&self) -> EngineResult<Vec<crate::backend::IoCounters>> {
        Ok(self.hv.io_stats()?)
    }

    /// Records of the domains the engine built that are live or building.
    pub fn live_records(&self) -> EngineResult<Vec<DomainRecord>> {
        Ok(self.store.read(|tx| tx.live_records())?)
    }

    /// Records of domains that are gone, newest first.
    pub fn gone(&self, limit: usize) -> EngineResult<Vec<DomainRecord>> {
        Ok(self.store.read(|tx| tx.gone_records(limit))?)
    }

    /// Gone domains worth showing: gone within `within_ns`, not dismissed,
    /// newest first, each with its last lifecycle event.
    pub fn gone_recent(
        &self,
        limit: usize,
        within_ns: u64,
    ) -> EngineResult<Vec<(DomainRecord, Option<JournalEntry>)>> {
        let now = self.now_ns();
        Ok(self.store.read(|tx| {
            let mut out = Vec::new();
            for rec in tx.gone_records(limit)? {
                if now.saturating_sub(rec.gone_ns.unwrap_or(0)) > within_ns
                    || tx.kv_get("dismissed", &rec.uuid.to_string())?.is_some()
                {
                    continue;
                }
                let last = tx
                    .journal(&JournalFilter {
                        uuid: Some(rec.uuid),
                        limit: Some(8),
                        ..Default::default()
                    })?
                    .into_iter()
                    .rev()
                    .find(|e| !e.event.is_op() && !e.event.is_console());
                out.push((rec, last));
            }
            Ok(out)
        })?)
    }

    /// Stop offering a gone domain in views of gone domains.
    pub fn dismiss(&self, uuid: uuid::Uuid) -> EngineResult<()> {
        Ok(self
            .store
            .write(|tx| tx.kv_set("dismissed", &uuid.to_string(), "1"))?)
    }

    /// The newest record of a gone domain called `name`.
    pub fn gone_by_name(&self, name: &str) -> EngineResult<Option<DomainRecord>> {
        Ok(self.store.read(|tx| tx.gone_by_name(name))?)
    }

    /// A domain's lifecycle events, oldest first.
    pub fn timeline(&self, uuid: uuid::Uuid) -> EngineResult<Vec<JournalEntry>> {
        Ok(self.store.read(|tx| {
            tx.journal(&JournalFilter {
                uuid: Some(uuid),
                ..Default::default()
            })
        })?)
    }

    /// Journal entries matching `filter`, oldest first.
    pub fn journal(&self, filter: &JournalFilter) -> EngineResult<Vec<JournalEntry>> {
        Ok(self.store.read(|tx| tx.journal(filter))?)
    }

    /// Operations in flight on this host.
    pub fn intents(&self) -> EngineResult<Vec<Intent>> {
        Ok(self.store.read(|tx| tx.intents())?)
    }

    /// Find a live domain by name or id.
    pub fn resolve(&self, dom: &str) -> EngineResult<DomainInfo> {
        let not_found = || EngineError::NoSuchDomain(dom.to_string());
        if let Ok(id) = dom.parse::<DomId>() {
            match self.hv.domain_info(id) {
                Ok(info) => return Ok(info),
                Err(BackendError::NoSuchDomain(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        // domus's own domains by their record: no listing needed.
        if let Some(domid) = self
            .store
            .read(|tx| tx.record_by_name(dom))?
            .and_then(|r| r.domid)
            && let Ok(info) = self.hv.domain_info(domid)
            && info.name == dom
        {
            return Ok(info);
        }
        self.hv.lookup(dom)?.ok_or_else(not_found)
    }

    pub fn view(&self, domid: DomId) -> EngineResult<DomainView> {
        let info = self.info(domid)?;
        let (record, pending) = self.store.read(|tx| {
            let record = tx.record_by_domid(domid)?.filter(|r| r.uuid == info.uuid);
            let pending = tx.intents_on(info.uuid)?;
            Ok((record, pending))
        })?;
        Ok(DomainView {
            info,
            record: record.map(Arc::new),
            pending,
        })
    }

    fn info(&self, domid: DomId) -> EngineResult<DomainInfo> {
        self.hv.domain_info(domid).map_err(|e| match e {
            BackendError::NoSuchDomain(d) => EngineError::NoSuchDomain(d.to_string()),
            e => e.into(),
        })
    }

    fn subject(info: &DomainInfo) -> Subject {
        Subject {
            domid: Some(info.domid),
            uuid: Some(info.uuid),
            name: Some(info.name.clone()),
        }
    }

    /// Append one event now, as this process.
    pub fn log(&self, info: &DomainInfo, event: DomainEvent) -> EngineResult<()> {
        let now = self.now_ns();
        let actor = self.actor;
        self.store.write(|tx| {
            tx.append(now, &Self::subject(info), actor, &event)
                .map(drop)
        })?;
        Ok(())
    }

    /// Open a two-way stream to the domain's console; the journal notes who
    /// has it.
    pub fn console(&self, domid: DomId) -> EngineResult<Box<dyn ConsoleStream>> {
        let info = self.info(domid)?;
        self.require(&info, "open the console of", !info.flags.dying)?;
        let stream = self.hv.open_console(domid)?;
        self.log(
            &info,
            DomainEvent::ConsoleOpened {
                pid: self.actor.pid.unwrap_or_else(std::process::id),
            },
        )?;
        Ok(stream)
    }

    /// Note that this process let go of a domain's console.
    pub fn console_closed(&self, domid: DomId) {
        if let Ok(info) = self.info(domid) {
            let _ = self.log(
                &info,
                DomainEvent::ConsoleClosed {
                    pid: self.actor.pid.unwrap_or_else(std::process::id),
                },
            );
        }
    }

    /// The console log of a domain, by name or id: a live domain's (where
    /// its backend keeps one), else the newest archived log of a domain
    /// that is gone. Returns the domain's name and the file.
    pub fn console_log(&self, dom: &str) -> EngineResult<(String, PathBuf)> {
        if let Ok(info) = self.resolve(dom) {
            if let Some(path) = self.hv.console_log(info.domid)? {
                return Ok((info.name, path));
            }
            return Err(EngineError::Invalid(format!(
                "{} keeps no console log on the {} backend",
                info.name,
                self.hv.kind()
            )));
        }
        let rec = self
            .gone_by_name(dom)?
            .ok_or_else(|| EngineError::NoSuchDomain(dom.to_string()))?;
        self.archive
            .as_ref()
            .and_then(|a| a.logs(rec.uuid).pop())
            .map(|(_, path)| (rec.name.clone(), path))
            .ok_or_else(|| {
                EngineError::Invalid(format!(
                    "{} is gone and no console log of it was kept",
                    rec.name
                ))
            })
    }

    /// The last `lines` lines of a domain's newest kept console log, as
    /// plain text (escape sequences and control characters removed).
    pub fn console_tail(&self, uuid: uuid::Uuid, lines: usize) -> Vec<String> {
        let Some((_, path)) = self.archive.as_ref().and_then(|a| a.logs(uuid).pop()) else {
            return Vec::new();
        };
        let Ok(bytes) = crate::fsx::read_bounded(&path, 64 << 20) else {
            return Vec::new();
        };
        let from = bytes.len().saturating_sub(64 * 1024);
        let mut clean = Vec::new();
        crate::console::EscapeFilter::new().feed(&bytes[from..], &mut clean);
        let text = String::from_utf8_lossy(&clean);
        let all: Vec<String> = text
            .lines()
            .map(|l| l.chars().filter(|c| !c.is_control()).collect::<String>())
            .filter(|l| !l.trim().is_empty())
            .collect();
        all[all.len().saturating_sub(lines)..].to_vec()
    }

    fn require(&self, info: &DomainInfo, op: &'static str, ok: bool) -> EngineResult<()> {
        if ok {
            Ok(())
        } else {
            Err(EngineError::InvalidState {
                name: info.name.clone(),
                state: info.lifecycle_word(),
                op,
            })
        }
    }

    /// Where `coredump-*` policies write core files.
    pub fn set_dump_dir(&mut self, dir: &Path) {
        self.dump_dir = dir.to_path_buf();
    }

    pub fn dump_dir(&self) -> &Path {
        &self.dump_dir
    }

    /// Re-discover the hypervisor's domains and re-attach their records
    /// (xend's *recreate*): which are domus's, which are not, and which of
    /// domus's are gone.
    pub fn recreate(&self) -> EngineResult<RecreateReport> {
        let before = self.live_records()?;
        let views = self.domains()?;
        let listed: std::collections::HashSet<uuid::Uuid> =
            views.iter().map(|v| v.info.uuid).collect();
        let mut report = RecreateReport::default();
        for v in &views {
            match &v.record {
                Some(_) => report.reattached.push((v.info.name.clone(), v.info.domid)),
                None => report.unmanaged.push((v.info.name.clone(), v.info.domid)),
            }
        }
        report.vanished = before
            .into_iter()
            .filter(|r| r.phase == Phase::Live)
            .filter(|r| !listed.contains(&r.uuid))
            .map(|r| r.name)
            .collect();
        Ok(report)
    }
}

/// A device another live domain already holds, as xl refuses: the same PCI
/// function, the same MAC, or the same disk where either side writes.
pub fn device_conflict(
    dev: &DeviceSpec,
    domains: &[DomainInfo],
    except: Option<DomId>,
) -> Option<String> {
    use crate::config::VbdMode;
    domains
        .iter()
        .filter(|d| Some(d.domid) != except)
        .find_map(|other| {
            other.devices.iter().find_map(|od| match (dev, od) {
                (DeviceSpec::Pci(a), DeviceSpec::Pci(b)) if a == b => Some(format!(
                    "PCI device {a} is already assigned to {} (id {})",
                    other.name, other.domid
                )),
                (DeviceSpec::Vif(a), DeviceSpec::Vif(b)) if a.mac.is_some() && a.mac == b.mac => {
                    Some(format!(
                        "MAC {} is already used by {} (id {})",
                        a.mac.map(|m| m.to_string()).unwrap_or_default(),
                        other.name,
                        other.domid
                    ))
                }
                (DeviceSpec::Vbd(a), DeviceSpec::Vbd(b))
                    if a.uname.identity() == b.uname.identity()
                        && (a.mode == VbdMode::ReadWrite || b.mode == VbdMode::ReadWrite) =>
                {
                    Some(format!(
                        "{} is already attached to {} (id {}) as {}",
                        a.uname, other.name, other.domid, b.dev
                    ))
                }
                _ => None,
            })
        })
}

/// How to name an attached device to the backend for detaching it.
pub fn device_ref(dev: &DeviceSpec, all: &[DeviceSpec]) -> DeviceRef {
    match dev {
        DeviceSpec::Vbd(v) => DeviceRef::Vbd(v.dev.clone()),
        DeviceSpec::Vif(v) => match v.mac {
            Some(mac) => DeviceRef::VifMac(mac),
            None => DeviceRef::VifIndex(
                all.iter()
                    .filter(|d| matches!(d, DeviceSpec::Vif(_)))
                    .position(|d| d == dev)
                    .unwrap_or(0),
            ),
        },
        DeviceSpec::Pci(p) => DeviceRef::Pci(*p),
    }
}
