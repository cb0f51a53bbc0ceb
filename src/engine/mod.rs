//! The lifecycle engine: a Rust re-thinking of xend's `XendDomainInfo` and
//! `image.py`. It owns the construction pipeline, state checks for every
//! request, shutdown policies, start-up re-discovery and per-domain
//! timelines, and talks to the hypervisor only through [`Hypervisor`].
//! It knows nothing of any UI or any particular backend.

mod error;
pub mod handlers;
mod pipeline;
pub mod policy;
mod records;

pub use error::{EngineError, EngineResult, Stage, StageError};
pub use policy::{MIN_RESTART_INTERVAL_SECS, PolicyEvent, PolicyOutcome, policy_for};
pub use records::{DomainRecord, Records, TimelineEntry, TimelineEvent};

use std::path::{Path, PathBuf};
use std::sync::Arc;

use self::handlers::Registry;
use self::records::RecordStore;
use crate::backend::{
    BackendError, ConsoleStream, DomId, DomainInfo, HostInfo, Hypervisor, ShutdownReason,
};
use crate::clock::Clock;
use crate::config::{DeviceRef, DeviceSpec, DomainConfig};

/// A domain as the engine sees it: the hypervisor's view plus what the
/// engine remembers (config, timeline) when it built the domain.
#[derive(Debug, Clone)]
pub struct DomainView {
    pub info: DomainInfo,
    pub record: Option<DomainRecord>,
}

impl DomainView {
    pub fn config(&self) -> Option<DomainConfig> {
        let r = self.record.as_ref()?;
        crate::config::parse_str(&r.config, "<record>")
            .ok()
            .map(|(c, _)| c)
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
    records: RecordStore,
    registry: Registry,
    dump_dir: PathBuf,
}

impl Engine {
    /// An engine whose records live in memory (tests, benchmarks).
    pub fn in_memory(hv: Arc<dyn Hypervisor>, clock: Arc<dyn Clock>) -> Self {
        Engine {
            hv,
            clock,
            records: RecordStore::memory(),
            registry: Registry::default(),
            dump_dir: std::env::temp_dir(),
        }
    }

    /// An engine whose records persist in `state_dir`, shared with other
    /// domus processes on the same backend.
    pub fn persistent(hv: Arc<dyn Hypervisor>, clock: Arc<dyn Clock>, state_dir: &Path) -> Self {
        let file = state_dir.join(format!("engine-{}.json", hv.kind()));
        Engine {
            hv,
            clock,
            records: RecordStore::disk(&file),
            registry: Registry::default(),
            dump_dir: state_dir.join("dumps"),
        }
    }

    pub fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }

    pub fn hypervisor(&self) -> &Arc<dyn Hypervisor> {
        &self.hv
    }

    pub fn now_ns(&self) -> u64 {
        self.clock.now_ns()
    }

    pub fn host_info(&self) -> EngineResult<HostInfo> {
        Ok(self.hv.host_info()?)
    }

    /// Every domain on the hypervisor, with what the engine knows of it.
    pub fn domains(&self) -> EngineResult<Vec<DomainView>> {
        let infos = self.hv.list_domains()?;
        self.records.read(|r| {
            infos
                .into_iter()
                .map(|info| {
                    let record = r
                        .live
                        .get(&info.uuid)
                        .filter(|rec| rec.domid == Some(info.domid))
                        .cloned();
                    DomainView { info, record }
                })
                .collect()
        })
    }

    /// Records of the live domains the engine built.
    pub fn live_records(&self) -> EngineResult<Vec<DomainRecord>> {
        self.records.read(|r| r.live.values().cloned().collect())
    }

    /// Records of domains that are gone (newest last), for an events view.
    pub fn retired(&self) -> EngineResult<Vec<DomainRecord>> {
        self.records.read(|r| r.retired.iter().cloned().collect())
    }

    /// Find a domain by name or id.
    pub fn resolve(&self, dom: &str) -> EngineResult<DomainInfo> {
        let infos = self.hv.list_domains()?;
        let by_id = dom.parse::<DomId>().ok();
        infos
            .into_iter()
            .find(|d| Some(d.domid) == by_id || d.name == dom)
            .ok_or_else(|| EngineError::NoSuchDomain(dom.to_string()))
    }

    pub fn view(&self, domid: DomId) -> EngineResult<DomainView> {
        let info = self.info(domid)?;
        let record = self.records.read(|r| {
            r.live
                .get(&info.uuid)
                .filter(|rec| rec.domid == Some(domid))
                .cloned()
        })?;
        Ok(DomainView { info, record })
    }

    fn info(&self, domid: DomId) -> EngineResult<DomainInfo> {
        self.hv.domain_info(domid).map_err(|e| match e {
            BackendError::NoSuchDomain(d) => EngineError::NoSuchDomain(d.to_string()),
            e => e.into(),
        })
    }

    /// Append a timeline event to the record of the domain `domid`.
    fn note(&self, domid: DomId, event: TimelineEvent) -> EngineResult<()> {
        let now = self.now_ns();
        self.records.write(|r| {
            if let Some(rec) = r.by_domid(domid) {
                rec.push(now, Some(domid), event);
            }
        })
    }

    /// Build a domain from a config; on any failure nothing is left behind.
    pub fn create(&self, config: &DomainConfig, source: Option<&Path>) -> EngineResult<DomId> {
        let (domid, devices) = self.construct(config, None)?;
        if let Err(e) = self.adopt_new(config, source, domid, &devices, None, None) {
            // Without a record nobody could apply its policies: undo the build.
            let _ = self.hv.destroy(domid);
            return Err(e);
        }
        Ok(domid)
    }

    /// Record a freshly built domain (a new record, or the existing one for
    /// its uuid when this is a restart or a rebuild of the same config).
    fn adopt_new(
        &self,
        config: &DomainConfig,
        source: Option<&Path>,
        domid: DomId,
        devices: &[DeviceSpec],
        restarted_from: Option<DomId>,
        restored_from: Option<&Path>,
    ) -> EngineResult<()> {
        let info = self.info(domid)?;
        let now = self.now_ns();
        let mut stored = config.clone();
        stored.devices = devices.to_vec();
        let text = stored.to_sxp_string();
        self.records.write(|r| {
            let rec = match r.live.remove(&info.uuid) {
                Some(rec) => rec,
                None => match r.retired.iter().rposition(|x| x.uuid == info.uuid) {
                    Some(i) => r
                        .retired
                        .remove(i)
                        .unwrap_or_else(|| new_record(&info, config)),
                    None => new_record(&info, config),
                },
            };
            let mut rec = rec;
            rec.name = config.name.clone();
            rec.config = text;
            if let Some(s) = source {
                rec.source = Some(s.to_path_buf());
            }
            rec.domid = Some(domid);
            rec.handled_shutdown = None;
            rec.claim_ns = None;
            match restarted_from {
                Some(old) => {
                    rec.push(
                        now,
                        Some(old),
                        TimelineEvent::Restarted { new_domid: domid },
                    );
                    rec.last_restart_ns = Some(now);
                    rec.restarts += 1;
                }
                // A fresh build is not a restart: the loop guard starts over.
                None => {
                    rec.last_restart_ns = None;
                    rec.restarts = 0;
                }
            }
            if let Some(path) = restored_from {
                rec.push(
                    now,
                    Some(domid),
                    TimelineEvent::Restored {
                        path: path.to_path_buf(),
                    },
                );
            } else {
                rec.push(
                    now,
                    Some(domid),
                    TimelineEvent::Created {
                        image: config.image.type_name().into(),
                        memory_mib: config.memory,
                        vcpus: config.vcpus,
                    },
                );
                for d in devices {
                    rec.push(
                        now,
                        Some(domid),
                        TimelineEvent::DeviceAttached {
                            device: d.to_string(),
                        },
                    );
                }
            }
            r.live.insert(info.uuid, rec);
        })
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

    pub fn pause(&self, domid: DomId) -> EngineResult<()> {
        let info = self.info(domid)?;
        if domid == 0 {
            return Err(EngineError::Domain0("paused"));
        }
        self.require(&info, "pause", info.is_active())?;
        self.hv.pause(domid)?;
        self.note(domid, TimelineEvent::Paused)
    }

    pub fn unpause(&self, domid: DomId) -> EngineResult<()> {
        let info = self.info(domid)?;
        self.require(
            &info,
            "unpause",
            info.flags.paused && !info.flags.shutdown && !info.flags.dying,
        )?;
        self.hv.unpause(domid)?;
        self.note(domid, TimelineEvent::Unpaused)
    }

    /// Ask the guest to shut down; its `on_*` policy runs when it has.
    pub fn shutdown(&self, domid: DomId, reason: ShutdownReason) -> EngineResult<()> {
        let info = self.info(domid)?;
        if domid == 0 {
            return Err(EngineError::Domain0("shut down from here"));
        }
        self.require(&info, "shut down", info.is_active())?;
        self.hv.shutdown(domid, reason)?;
        self.note(domid, TimelineEvent::ShutdownRequested { reason })
    }

    /// Destroy a domain at once, releasing its devices and memory.
    pub fn destroy(&self, domid: DomId) -> EngineResult<()> {
        if domid == 0 {
            return Err(EngineError::Domain0("destroyed"));
        }
        let info = self.info(domid)?;
        self.destroy_info(&info)
    }

    fn destroy_info(&self, info: &DomainInfo) -> EngineResult<()> {
        let domid = info.domid;
        self.release_devices(info);
        // The image type comes from the stored config; the caller already
        // has the hypervisor's view, so no second query.
        let image_type = self
            .records
            .read(|r| {
                r.live
                    .values()
                    .find(|x| x.domid == Some(domid))
                    .map(|x| x.config.clone())
            })?
            .and_then(|text| crate::config::parse_str(&text, "<record>").ok())
            .map_or_else(
                || "linux".to_string(),
                |(c, _)| c.image.type_name().to_string(),
            );
        if let Some(h) = self.registry.image(&image_type) {
            h.destroy(self.hv.as_ref(), domid);
        }
        self.hv.destroy(domid)?;
        self.retire_with(domid, TimelineEvent::Destroyed)
    }

    /// Detach every device of a domain, newest first (xend's
    /// `release_devices`); failures are logged, not fatal.
    fn release_devices(&self, info: &DomainInfo) {
        for dev in info.devices.iter().rev() {
            let r = device_ref(dev, &info.devices);
            if let Err(e) = self.hv.detach_device(info.domid, &r) {
                tracing::debug!(domid = info.domid, device = %dev, error = %e, "releasing a device failed");
            }
        }
    }

    /// Record the domain's last event and move its record to the retired ones.
    fn retire_with(&self, domid: DomId, event: TimelineEvent) -> EngineResult<()> {
        let now = self.now_ns();
        self.records.write(|r| {
            let uuid = r.by_domid(domid).map(|rec| {
                rec.push(now, Some(domid), event);
                rec.uuid
            });
            if let Some(u) = uuid {
                r.retire(&u);
            }
        })
    }

    /// Hot-plug a device; a vif without a MAC gets a fresh one.
    pub fn attach(&self, domid: DomId, dev: &DeviceSpec) -> EngineResult<DeviceSpec> {
        let info = self.info(domid)?;
        if domid == 0 {
            return Err(EngineError::Domain0("given devices from here"));
        }
        self.require(
            &info,
            "attach a device to",
            !info.flags.shutdown && !info.flags.dying,
        )?;
        let handler = self.registry.device(dev).ok_or_else(|| {
            EngineError::Invalid(format!("unknown device type: {}", dev.type_name()))
        })?;
        if !self.hv.capabilities().has(handler.capability()) {
            return Err(BackendError::Unsupported {
                backend: self.hv.kind(),
                call: crate::backend::CallKind::AttachDevice,
            }
            .into());
        }
        if let Some(config) = self.view(domid)?.config() {
            handler.check(&config, dev).map_err(EngineError::Invalid)?;
        }
        let index = info
            .devices
            .iter()
            .filter(|d| d.type_name() == dev.type_name())
            .count();
        let seed = info.uuid.as_u64_pair().0 ^ self.now_ns();
        let dev = handler.prepare(dev, seed, index);
        crate::config::check_device(&dev).map_err(EngineError::Invalid)?;
        if let Some(conflict) = device_conflict(&dev, &self.hv.list_domains()?, Some(domid)) {
            return Err(EngineError::Invalid(conflict));
        }
        handler.attach(self.hv.as_ref(), domid, &dev)?;
        self.update_config(domid, |c| c.devices.push(dev.clone()))?;
        self.note(
            domid,
            TimelineEvent::DeviceAttached {
                device: dev.to_string(),
            },
        )?;
        Ok(dev)
    }

    pub fn detach(&self, domid: DomId, dev: &DeviceRef) -> EngineResult<DeviceSpec> {
        if domid == 0 {
            return Err(EngineError::Domain0("given devices from here"));
        }
        let info = self.info(domid)?;
        self.require(
            &info,
            "detach a device from",
            !info.flags.shutdown && !info.flags.dying,
        )?;
        let removed = self.hv.detach_device(domid, dev)?;
        self.update_config(domid, |c| {
            if let Some(i) = c.devices.iter().position(|d| *d == removed) {
                c.devices.remove(i);
            }
        })?;
        self.note(
            domid,
            TimelineEvent::DeviceDetached {
                device: removed.to_string(),
            },
        )?;
        Ok(removed)
    }

    /// Keep the stored config in step with hot-plugged devices, so a
    /// restart rebuilds the domain as it is now.
    fn update_config(&self, domid: DomId, f: impl FnOnce(&mut DomainConfig)) -> EngineResult<()> {
        self.records.write(|r| {
            if let Some(rec) = r.by_domid(domid)
                && let Ok((mut c, _)) = crate::config::parse_str(&rec.config, "<record>")
            {
                f(&mut c);
                rec.config = c.to_sxp_string();
            }
        })
    }

    pub fn set_memory_target(&self, domid: DomId, mib: u64) -> EngineResult<()> {
        let info = self.info(domid)?;
        self.require(
            &info,
            "set the memory of",
            !info.flags.shutdown && !info.flags.dying,
        )?;
        if mib == 0 {
            return Err(EngineError::Invalid(
                "memory target must be at least 1 MiB".into(),
            ));
        }
        let kib = mib
            .checked_mul(1024)
            .ok_or_else(|| EngineError::Invalid(format!("memory target {mib} MiB is too large")))?;
        self.hv.set_memory_target(domid, kib)?;
        self.note(domid, TimelineEvent::MemoryTarget { mib })
    }

    pub fn console(&self, domid: DomId) -> EngineResult<Box<dyn ConsoleStream>> {
        let info = self.info(domid)?;
        self.require(&info, "open the console of", !info.flags.dying)?;
        Ok(self.hv.open_console(domid)?)
    }

    /// Save a domain to a file (it is gone afterwards, as `xl save`).
    pub fn save(&self, domid: DomId, path: &Path) -> EngineResult<()> {
        if domid == 0 {
            return Err(EngineError::Domain0("saved"));
        }
        let info = self.info(domid)?;
        let suspended = info.shutdown_reason == Some(ShutdownReason::Suspend);
        self.require(
            &info,
            "save",
            (!info.flags.shutdown || suspended) && !info.flags.dying,
        )?;
        let config = self
            .view(domid)?
            .record
            .map(|r| r.config)
            .unwrap_or_default();
        self.hv.save(domid, path, config.as_bytes())?;
        self.retire_with(
            domid,
            TimelineEvent::Saved {
                path: path.to_path_buf(),
            },
        )
    }

    /// Restore a saved domain and let it run.
    pub fn restore(&self, path: &Path) -> EngineResult<DomId> {
        let (domid, meta) = self.hv.restore(path)?;
        let result = (|| -> EngineResult<()> {
            self.hv.unpause(domid)?;
            let text = String::from_utf8_lossy(&meta);
            if let Ok((config, _)) = crate::config::parse_str(&text, "<saved config>") {
                let info = self.info(domid)?;
                self.adopt_new(&config, None, domid, &info.devices, None, Some(path))?;
            }
            Ok(())
        })();
        if let Err(e) = result {
            let _ = self.hv.destroy(domid);
            return Err(e);
        }
        Ok(domid)
    }

    /// Re-discover running domains at start-up and re-attach their configs
    /// (xend's *recreate*).
    pub fn recreate(&self) -> EngineResult<RecreateReport> {
        let infos = self.hv.list_domains()?;
        let now = self.now_ns();
        self.records.write(|r| {
            let mut report = RecreateReport::default();
            for info in &infos {
                match r.live.get_mut(&info.uuid) {
                    Some(rec) => {
                        if rec.domid != Some(info.domid) {
                            rec.domid = Some(info.domid);
                            rec.push(now, Some(info.domid), TimelineEvent::Recreated);
                        }
                        report.reattached.push((info.name.clone(), info.domid));
                    }
                    None => report.unmanaged.push((info.name.clone(), info.domid)),
                }
            }
            let gone: Vec<uuid::Uuid> = r
                .live
                .values()
                .filter(|rec| !infos.iter().any(|i| i.uuid == rec.uuid))
                .map(|rec| rec.uuid)
                .collect();
            for u in gone {
                if let Some(rec) = r.live.get_mut(&u) {
                    report.vanished.push(rec.name.clone());
                    let domid = rec.domid;
                    rec.push(now, domid, TimelineEvent::Vanished);
                }
                r.retire(&u);
            }
            report
        })
    }

    /// Where `coredump-*` policies write core files.
    pub fn set_dump_dir(&mut self, dir: &Path) {
        self.dump_dir = dir.to_path_buf();
    }

    pub fn dump_dir(&self) -> &Path {
        &self.dump_dir
    }
}

fn new_record(info: &DomainInfo, config: &DomainConfig) -> DomainRecord {
    DomainRecord {
        uuid: info.uuid,
        name: config.name.clone(),
        config: String::new(),
        source: None,
        domid: Some(info.domid),
        timeline: Vec::new(),
        last_restart_ns: None,
        restarts: 0,
        handled_shutdown: None,
        claim_ns: None,
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
                    if a.uname == b.uname
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
