//! Operations as transactions that survive the process: [`Engine::run_op`]
//! records the intent (with an `op_started` event) before the backend is
//! touched, lets the operation advance its stage as it goes, and commits
//! the outcome — record changes, events, the intent's removal and an
//! `op_finished` event — in one transaction. A failure is journalled with
//! its error. An owner that dies leaves the intent for `recover`.

use std::cell::{Cell, RefCell};
use std::path::Path;
use std::time::Instant;

use super::{Engine, EngineError, EngineResult};
use crate::backend::{BackendError, DomId, DomainInfo, ShutdownReason};
use crate::config::{DeviceRef, DeviceSpec, DomainConfig};
use crate::store::journal::Subject;
use crate::store::{DomainEvent, DomainRecord, Intent, OpKind, Owner, Phase, StoreResult, Tx};

/// An operation in flight.
pub(super) struct Op<'e> {
    engine: &'e Engine,
    pub id: i64,
    pub kind: OpKind,
    subject: RefCell<Subject>,
    started: Instant,
    done: Cell<bool>,
}

/// A test hook: `DOMUS_KILL_AT=OP:STAGE` makes this process kill itself
/// with SIGKILL when an operation reaches that stage, so tests can show
/// that every interruption is repaired. Documented in the README.
fn kill_point(op: OpKind, stage: &str) {
    if let Ok(spec) = std::env::var("DOMUS_KILL_AT")
        && spec
            .split(',')
            .any(|s| s.split_once(':') == Some((op.as_str(), stage)))
    {
        tracing::warn!(%op, stage, "DOMUS_KILL_AT: killing this process");
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    }
}

impl<'e> Op<'e> {
    /// Record how far the operation got (and the domid once known).
    pub fn stage(&self, stage: &str, domid: Option<DomId>) -> EngineResult<()> {
        self.engine
            .store
            .write(|tx| tx.advance_intent(self.id, stage, domid))?;
        kill_point(self.kind, stage);
        Ok(())
    }

    /// The domain the operation is about, once it exists (a build).
    pub fn set_domid(&self, domid: DomId) {
        self.subject.borrow_mut().domid = Some(domid);
    }

    /// Commit the outcome: `f`'s changes, the intent's removal and an
    /// `op_finished` event, in one transaction.
    pub fn commit(
        &self,
        f: impl FnOnce(&Tx<'_>, &Subject, u64) -> StoreResult<()>,
    ) -> EngineResult<()> {
        let now = self.engine.now_ns();
        let subject = self.subject.borrow().clone();
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let actor = self.engine.actor;
        self.engine.store.write(|tx| {
            f(tx, &subject, now)?;
            tx.delete_intent(self.id)?;
            tx.append(
                now,
                &subject,
                actor,
                &DomainEvent::OpFinished {
                    op: self.kind.to_string(),
                    ms,
                },
            )?;
            Ok(())
        })?;
        kill_point(self.kind, "committed");
        self.done.set(true);
        Ok(())
    }

    /// End the operation with `result`: committed (if the body did not
    /// commit itself) or failed, with `undo` in the failure's transaction.
    pub fn finish<T>(
        &self,
        result: EngineResult<T>,
        undo: impl FnOnce(&Tx<'_>) -> StoreResult<()>,
    ) -> EngineResult<T> {
        match result {
            Ok(v) => {
                if !self.done.get() {
                    self.commit(|_, _, _| Ok(()))?;
                }
                Ok(v)
            }
            Err(e) => {
                if !self.done.get() {
                    self.fail(&e, undo);
                }
                Err(e)
            }
        }
    }

    fn fail(&self, error: &EngineError, undo: impl FnOnce(&Tx<'_>) -> StoreResult<()>) {
        let now = self.engine.now_ns();
        let subject = self.subject.borrow().clone();
        let actor = self.engine.actor;
        let result = self.engine.store.write(|tx| {
            undo(tx)?;
            tx.delete_intent(self.id)?;
            tx.append(
                now,
                &subject,
                actor,
                &DomainEvent::OpFailed {
                    op: self.kind.to_string(),
                    error: error.to_string(),
                },
            )?;
            Ok(())
        });
        if let Err(e) = result {
            tracing::error!(op = %self.kind, error = %e, "recording a failed operation");
        }
        self.done.set(true);
    }
}

/// An operation dropped unfinished (a panic inside it) gives its intent
/// up: left owned by this still-running process it would block claims and
/// vanish detection until the process exits. Given up, the next recovery
/// (any domus process, or this TUI's next policy pass) repairs it.
impl Drop for Op<'_> {
    fn drop(&mut self) {
        if self.done.get() {
            return;
        }
        let me = Owner::me(self.engine.actor.kind);
        let nobody = Owner {
            pid: 0,
            start: 0,
            kind: me.kind,
        };
        if let Err(e) = self
            .engine
            .store
            .write(|tx| tx.reown_intent(self.id, me, nobody))
        {
            tracing::error!(op = %self.kind, error = %e, "giving up an unfinished operation");
        }
    }
}

impl Engine {
    /// Run an operation: intent first, then `body`, then the outcome.
    /// `setup` runs in the intent's transaction (reserving a name, …);
    /// `undo` in the failure's.
    pub(super) fn run_op<T>(
        &self,
        kind: OpKind,
        subject: Subject,
        detail: Option<String>,
        setup: impl FnOnce(&Tx<'_>) -> StoreResult<()>,
        undo: impl FnOnce(&Tx<'_>) -> StoreResult<()>,
        body: impl FnOnce(&Op<'_>) -> EngineResult<T>,
    ) -> EngineResult<T> {
        let now = self.now_ns();
        let intent = self.intent(kind, &subject, detail, now);
        let actor = self.actor;
        let id = self.store.write(|tx| {
            setup(tx)?;
            let id = tx.insert_intent(&intent)?;
            tx.append(
                now,
                &subject,
                actor,
                &DomainEvent::OpStarted {
                    op: kind.to_string(),
                },
            )?;
            Ok(id)
        })?;
        let op = self.op_for(id, kind, subject);
        kill_point(kind, "started");
        op.finish(body(&op), undo)
    }

    /// A new intent of this process.
    pub(super) fn intent(
        &self,
        kind: OpKind,
        subject: &Subject,
        detail: Option<String>,
        now: u64,
    ) -> Intent {
        Intent {
            id: 0,
            op: kind,
            uuid: subject.uuid,
            name: subject.name.clone(),
            domid: subject.domid,
            stage: "started".into(),
            owner: Owner::me(self.actor.kind),
            started_ns: now,
            detail,
        }
    }

    /// The operation of an intent already recorded (with id `id`).
    pub(super) fn op_for(&self, id: i64, kind: OpKind, subject: Subject) -> Op<'_> {
        Op {
            engine: self,
            id,
            kind,
            subject: RefCell::new(subject),
            started: Instant::now(),
            done: Cell::new(false),
        }
    }

    /// An operation on one existing domain, with nothing to reserve or undo.
    pub(super) fn domain_op<T>(
        &self,
        kind: OpKind,
        info: &DomainInfo,
        detail: Option<String>,
        body: impl FnOnce(&Op<'_>) -> EngineResult<T>,
    ) -> EngineResult<T> {
        self.run_op(
            kind,
            Self::subject(info),
            detail,
            |_| Ok(()),
            |_| Ok(()),
            body,
        )
    }

    /// Change the live record of `domid` (if domus built it) in `tx`.
    pub(super) fn update_record(
        tx: &Tx<'_>,
        domid: DomId,
        f: impl FnOnce(&mut DomainRecord),
    ) -> StoreResult<()> {
        if let Some(mut rec) = tx.record_by_domid(domid)? {
            f(&mut rec);
            tx.put_record(&rec)?;
        }
        Ok(())
    }

    /// Build a domain from a config; on any failure nothing is left behind.
    pub fn create(&self, config: &DomainConfig, source: Option<&Path>) -> EngineResult<DomId> {
        crate::config::validate_name(&config.name).map_err(EngineError::Invalid)?;
        // The uuid is fixed before anything is built, so an interrupted
        // build can be found on the hypervisor and undone.
        let uuid = match config.uuid {
            Some(u) => u,
            None => self.hv.new_uuid()?,
        };
        let now = self.now_ns();
        let subject = Subject {
            domid: None,
            uuid: Some(uuid),
            name: Some(config.name.clone()),
        };
        // A gone record with the same uuid (a config with a fixed uuid,
        // rebuilt) is brought back, keeping its history. Read and reserved
        // in the intent's transaction, so two builds of one uuid cannot
        // both pass.
        let previous: RefCell<Option<DomainRecord>> = RefCell::new(None);
        let building: RefCell<Option<DomainRecord>> = RefCell::new(None);
        let result = self.run_op(
            OpKind::Create,
            subject,
            source.map(|s| s.display().to_string()),
            |tx| {
                let prev = tx.record(uuid)?;
                if let Some(p) = prev.as_ref().filter(|p| p.is_live()) {
                    return Err(crate::store::StoreError::UuidTaken {
                        uuid,
                        name: p.name.clone(),
                        domid: p.domid,
                    });
                }
                let mut b = prev
                    .clone()
                    .unwrap_or_else(|| DomainRecord::new(uuid, config.clone(), now));
                b.name = config.name.clone();
                b.config = config.clone();
                b.phase = Phase::Building;
                b.domid = None;
                // gone_ns stays until the build commits: it tells a repair
                // that this record had a life before and goes back to gone.
                if let Some(s) = source {
                    b.source = Some(s.to_path_buf());
                }
                tx.put_record(&b)?;
                *previous.borrow_mut() = prev;
                *building.borrow_mut() = Some(b);
                Ok(())
            },
            |tx| match &*previous.borrow() {
                Some(p) => tx.put_record(p).map(drop),
                None => tx.delete_record(uuid),
            },
            |op| {
                let (domid, devices) = self.construct(config, Some(uuid), Some(op))?;
                op.set_domid(domid);
                let base = building.borrow().clone();
                let recorded = (|| -> EngineResult<()> {
                    op.stage("record", Some(domid))?;
                    let info = self.info(domid)?;
                    let mut rec =
                        base.unwrap_or_else(|| DomainRecord::new(uuid, config.clone(), now));
                    rec.config.devices = devices.clone();
                    rec.config.uuid = config.uuid;
                    rec.domid = Some(domid);
                    rec.phase = Phase::Live;
                    rec.gone_ns = None;
                    rec.state = Some(info.lifecycle_word().to_string());
                    rec.handled_shutdown = None;
                    // A fresh build is not a restart: the loop guard starts over.
                    rec.last_restart_ns = None;
                    rec.restarts = 0;
                    let actor = self.actor;
                    op.commit(|tx, subject, now| {
                        tx.put_record(&rec)?;
                        created_events(tx, now, subject, actor, config, &devices)
                    })
                })();
                // Built but not recorded (the store failed): nothing may
                // stay behind without a record.
                if let Err(e) = recorded {
                    if let Err(d) = self.hv.destroy(domid) {
                        tracing::error!(domid, error = %d, "destroying a domain whose record failed");
                    }
                    return Err(e);
                }
                Ok(domid)
            },
        );
        match result {
            Err(EngineError::Store(
                e @ (crate::store::StoreError::NameTaken { .. }
                | crate::store::StoreError::UuidTaken { .. }),
            )) => Err(EngineError::Construct {
                name: config.name.clone(),
                stage: super::Stage::Validate,
                source: super::StageError::Invalid(e.to_string()),
                rolled_back: None,
                rollback_error: None,
            }),
            other => other,
        }
    }

    pub fn pause(&self, domid: DomId) -> EngineResult<()> {
        let info = self.info(domid)?;
        if domid == 0 {
            return Err(EngineError::Domain0("paused"));
        }
        self.require(&info, "pause", info.is_active())?;
        self.domain_op(OpKind::Pause, &info, None, |op| {
            self.hv.pause(domid)?;
            let actor = self.actor;
            op.commit(|tx, s, now| {
                Self::update_record(tx, domid, |r| r.state = Some("paused".into()))?;
                tx.append(now, s, actor, &DomainEvent::Paused).map(drop)
            })
        })
    }

    pub fn unpause(&self, domid: DomId) -> EngineResult<()> {
        let info = self.info(domid)?;
        self.require(
            &info,
            "unpause",
            info.flags.paused && !info.flags.shutdown && !info.flags.dying,
        )?;
        self.domain_op(OpKind::Unpause, &info, None, |op| {
            self.hv.unpause(domid)?;
            let actor = self.actor;
            op.commit(|tx, s, now| {
                Self::update_record(tx, domid, |r| r.state = Some("running".into()))?;
                tx.append(now, s, actor, &DomainEvent::Unpaused).map(drop)
            })
        })
    }

    /// Ask the guest to shut down; its `on_*` policy runs when it has.
    pub fn shutdown(&self, domid: DomId, reason: ShutdownReason) -> EngineResult<()> {
        let info = self.info(domid)?;
        if domid == 0 {
            return Err(EngineError::Domain0("shut down from here"));
        }
        self.require(&info, "shut down", info.is_active())?;
        self.domain_op(OpKind::Shutdown, &info, Some(reason.to_string()), |op| {
            self.hv.shutdown(domid, reason)?;
            let actor = self.actor;
            op.commit(|tx, s, now| {
                tx.append(now, s, actor, &DomainEvent::ShutdownRequested { reason })
                    .map(drop)
            })
        })
    }

    /// Destroy a domain at once, releasing its devices and memory.
    pub fn destroy(&self, domid: DomId) -> EngineResult<()> {
        if domid == 0 {
            return Err(EngineError::Domain0("destroyed"));
        }
        let info = self.info(domid)?;
        self.domain_op(OpKind::Destroy, &info, None, |op| {
            self.teardown(&info)?;
            let actor = self.actor;
            op.commit(|tx, s, now| retire(tx, s, now, actor, DomainEvent::Destroyed))
        })
    }

    /// Let a domain's image handler clean up and destroy it on the backend
    /// (gone already counts as done). Devices go with the domain, as with
    /// `xl destroy`: unplugging each first would wait on a guest that may
    /// never answer (20 s a device on QEMU).
    pub(super) fn teardown(&self, info: &DomainInfo) -> EngineResult<()> {
        let domid = info.domid;
        let image_type = self
            .store
            .read(|tx| tx.record_by_domid(domid))?
            .map(|r| r.config.image.type_name());
        if let Some(h) = image_type.and_then(|t| self.registry.image(t)) {
            h.destroy(self.hv.as_ref(), domid);
        }
        match self.hv.destroy(domid) {
            Ok(()) | Err(BackendError::NoSuchDomain(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Detach every device of a domain, newest first (xend's
    /// `release_devices`); failures are logged, not fatal.
    pub(super) fn release_devices(&self, info: &DomainInfo) {
        for dev in info.devices.iter().rev() {
            let r = super::device_ref(dev, &info.devices);
            if let Err(e) = self.hv.detach_device(info.domid, &r) {
                tracing::debug!(domid = info.domid, device = %dev, error = %e, "releasing a device failed");
            }
        }
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
        let record = self.store.read(|tx| tx.record_by_domid(domid))?;
        if let Some(rec) = &record {
            handler
                .check(&rec.config, dev)
                .map_err(EngineError::Invalid)?;
        }
        let index = info
            .devices
            .iter()
            .filter(|d| d.type_name() == dev.type_name())
            .count();
        let seed = info.uuid.as_u64_pair().0 ^ self.now_ns();
        let dev = handler.prepare(dev, seed, index);
        crate::config::check_device(&dev).map_err(EngineError::Invalid)?;
        // Checked and reserved (in the domain's record) in the intent's
        // transaction: two attaches of one disk or MAC cannot both pass.
        let uuid = info.uuid;
        let result = self.run_op(
            OpKind::Attach,
            Self::subject(&info),
            Some(dev.to_string()),
            |tx| {
                if let Some(message) = conflict_in(tx, &dev, Some(uuid))? {
                    return Err(crate::store::StoreError::DeviceTaken { message });
                }
                if let Some(mut r) = tx.record_by_domid(domid)?.filter(|r| r.uuid == uuid) {
                    // The domain's own devices: the same disk name, MAC or
                    // PCI function, or the same disk writable twice.
                    if let Some(have) = r.config.devices.iter().find(|d| same_in_domain(d, &dev)) {
                        return Err(crate::store::StoreError::DeviceTaken {
                            message: format!("{} already has {have}", info.name),
                        });
                    }
                    r.config.devices.push(dev.clone());
                    tx.put_record(&r)?;
                }
                Ok(())
            },
            |tx| {
                if let Some(mut r) = tx.record_by_domid(domid)?.filter(|r| r.uuid == uuid)
                    && let Some(i) = r.config.devices.iter().rposition(|d| d == &dev)
                {
                    r.config.devices.remove(i);
                    tx.put_record(&r)?;
                }
                Ok(())
            },
            |op| {
                handler.attach(self.hv.as_ref(), domid, &dev)?;
                let actor = self.actor;
                op.commit(|tx, s, now| {
                    tx.append(
                        now,
                        s,
                        actor,
                        &DomainEvent::DeviceAttached {
                            device: dev.to_string(),
                        },
                    )
                    .map(drop)
                })?;
                Ok(dev.clone())
            },
        );
        match result {
            Err(EngineError::Store(crate::store::StoreError::DeviceTaken { message })) => {
                Err(EngineError::Invalid(message))
            }
            other => other,
        }
    }

    /// Which other domain holds a device: domus's own (from the device
    /// index) and, where the backend reports devices, any other.
    pub(super) fn device_conflict(
        &self,
        dev: &DeviceSpec,
        owner: Option<uuid::Uuid>,
    ) -> EngineResult<Option<String>> {
        Ok(self.store.read(|tx| conflict_in(tx, dev, owner))?)
    }
}

/// Whether a domain that has `have` may not also get `dev`.
fn same_in_domain(have: &DeviceSpec, dev: &DeviceSpec) -> bool {
    match (have, dev) {
        (DeviceSpec::Vbd(a), DeviceSpec::Vbd(b)) => {
            a.dev == b.dev
                || (!a.uname.is_empty()
                    && a.uname.identity() == b.uname.identity()
                    && (a.mode.writable() || b.mode.writable()))
        }
        (DeviceSpec::Vif(a), DeviceSpec::Vif(b)) => a.mac.is_some() && a.mac == b.mac,
        (DeviceSpec::Pci(a), DeviceSpec::Pci(b)) => a == b,
        _ => false,
    }
}

/// Which other domain domus built holds a device, read in `tx`.
fn conflict_in(
    tx: &Tx<'_>,
    dev: &DeviceSpec,
    owner: Option<uuid::Uuid>,
) -> StoreResult<Option<String>> {
    let key = crate::store::DeviceKey::of(dev);
    if key.key.is_empty() {
        return Ok(None);
    }
    let users = tx.device_users(&key, owner)?;
    let clash = users.into_iter().find(|u| match dev {
        DeviceSpec::Vbd(v) => u.writable || v.mode == crate::config::VbdMode::ReadWrite,
        _ => true,
    });
    Ok(clash.map(|u| {
        let id = u
            .domid
            .map(|d| format!("id {d}"))
            .unwrap_or_else(|| "being built".into());
        match dev {
            DeviceSpec::Pci(p) => {
                format!("PCI device {p} is already assigned to {} ({id})", u.name)
            }
            DeviceSpec::Vif(v) => format!(
                "MAC {} is already used by {} ({id})",
                v.mac.map(|m| m.to_string()).unwrap_or_default(),
                u.name
            ),
            DeviceSpec::Vbd(v) => format!(
                "{} is already attached to {} ({id}) as {}",
                v.uname, u.name, u.label
            ),
        }
    }))
}

impl Engine {
    pub fn detach(&self, domid: DomId, dev: &DeviceRef) -> EngineResult<DeviceSpec> {
        if domid == 0 {
            return Err(EngineError::Domain0("relieved of devices from here"));
        }
        let info = self.info(domid)?;
        self.require(
            &info,
            "detach a device from",
            !info.flags.shutdown && !info.flags.dying,
        )?;
        self.domain_op(OpKind::Detach, &info, Some(dev.to_string()), |op| {
            let removed = self.hv.detach_device(domid, dev)?;
            let actor = self.actor;
            op.commit(|tx, s, now| {
                Self::update_record(tx, domid, |r| {
                    if let Some(i) = r.config.devices.iter().position(|d| *d == removed) {
                        r.config.devices.remove(i);
                    }
                })?;
                tx.append(
                    now,
                    s,
                    actor,
                    &DomainEvent::DeviceDetached {
                        device: removed.to_string(),
                    },
                )
                .map(drop)
            })?;
            Ok(removed)
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
        self.domain_op(
            OpKind::MemoryTarget,
            &info,
            Some(format!("{mib} MiB")),
            |op| {
                self.hv.set_memory_target(domid, kib)?;
                let actor = self.actor;
                op.commit(|tx, s, now| {
                    tx.append(now, s, actor, &DomainEvent::MemoryTarget { mib })
                        .map(drop)
                })
            },
        )
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
        // Never over an existing file (or through a link), whichever
        // backend writes it, and from the CLI or the TUI alike.
        if std::fs::symlink_metadata(path).is_ok() {
            return Err(EngineError::Invalid(
                crate::fsx::FsxError::Exists {
                    path: path.to_path_buf(),
                }
                .to_string(),
            ));
        }
        let config = self
            .store
            .read(|tx| tx.record_by_domid(domid))?
            .map(|r| r.config.to_sxp_string())
            .unwrap_or_default();
        self.domain_op(
            OpKind::Save,
            &info,
            Some(path.display().to_string()),
            |op| {
                self.hv.save(domid, path, config.as_bytes())?;
                // The image holds the guest's memory: owner-only, whatever
                // the backend wrote it with.
                if let Err(e) = crate::fsx::restrict_file(path) {
                    tracing::warn!(error = %e, "making the save image private");
                }
                let actor = self.actor;
                op.commit(|tx, s, now| {
                    retire(
                        tx,
                        s,
                        now,
                        actor,
                        DomainEvent::Saved {
                            path: path.to_path_buf(),
                        },
                    )
                })
            },
        )
    }

    /// Restore a saved domain and let it run.
    pub fn restore(&self, path: &Path) -> EngineResult<DomId> {
        let subject = Subject::default();
        self.run_op(
            OpKind::Restore,
            subject,
            Some(path.display().to_string()),
            |_| Ok(()),
            |_| Ok(()),
            |op| {
                let (domid, meta) = self.hv.restore(path)?;
                let adopted = (|| -> EngineResult<()> {
                    op.stage("restored", Some(domid))?;
                    self.hv.unpause(domid)?;
                    let info = self.info(domid)?;
                    let text = String::from_utf8_lossy(&meta);
                    let config = crate::config::parse_str(&text, "<saved config>")
                        .ok()
                        .map(|(c, _)| c);
                    let now = self.now_ns();
                    let actor = self.actor;
                    let previous = self.store.read(|tx| tx.record(info.uuid))?;
                    op.commit(|tx, s, now2| {
                        let s = Subject {
                            domid: Some(domid),
                            uuid: Some(info.uuid),
                            name: Some(info.name.clone()),
                        }
                        .or(s);
                        if let Some(config) = config {
                            let mut rec = previous.clone().unwrap_or_else(|| {
                                DomainRecord::new(info.uuid, config.clone(), now)
                            });
                            rec.config = config;
                            rec.config.devices = info.devices.clone();
                            rec.name = info.name.clone();
                            rec.domid = Some(domid);
                            rec.phase = Phase::Live;
                            rec.gone_ns = None;
                            rec.handled_shutdown = None;
                            rec.state = Some("running".into());
                            tx.put_record(&rec)?;
                        }
                        tx.append(
                            now2,
                            &s,
                            actor,
                            &DomainEvent::Restored {
                                path: path.to_path_buf(),
                            },
                        )
                        .map(drop)
                    })
                })();
                if let Err(e) = adopted {
                    let _ = self.hv.destroy(domid);
                    return Err(e);
                }
                Ok(domid)
            },
        )
    }
}

impl Subject {
    /// This subject, with what it lacks taken from `other`.
    fn or(self, other: &Subject) -> Subject {
        Subject {
            domid: self.domid.or(other.domid),
            uuid: self.uuid.or(other.uuid),
            name: self.name.or_else(|| other.name.clone()),
        }
    }
}

/// The events of a fresh build: created, then each device.
pub(super) fn created_events(
    tx: &Tx<'_>,
    now: u64,
    subject: &Subject,
    actor: crate::store::Source,
    config: &DomainConfig,
    devices: &[DeviceSpec],
) -> StoreResult<()> {
    tx.append(
        now,
        subject,
        actor,
        &DomainEvent::Created {
            image: config.image.type_name().into(),
            memory_mib: config.memory,
            vcpus: config.vcpus,
        },
    )?;
    for d in devices {
        tx.append(
            now,
            subject,
            actor,
            &DomainEvent::DeviceAttached {
                device: d.to_string(),
            },
        )?;
    }
    Ok(())
}

/// Record a domain's last event and mark its record gone.
pub(super) fn retire(
    tx: &Tx<'_>,
    subject: &Subject,
    now: u64,
    source: crate::store::Source,
    event: DomainEvent,
) -> StoreResult<()> {
    tx.append(now, subject, source, &event)?;
    // By uuid, but only the incarnation the subject names: a restart keeps
    // the uuid, and a destroy of the old domain must not retire the new.
    let rec = match (subject.uuid, subject.domid) {
        (Some(u), d) => tx
            .record(u)?
            .filter(|r| r.is_live() && (d.is_none() || r.domid.is_none() || r.domid == d)),
        (None, Some(d)) => tx.record_by_domid(d)?,
        _ => None,
    };
    if let Some(mut rec) = rec {
        rec.phase = Phase::Gone;
        rec.domid = None;
        rec.gone_ns = Some(now);
        rec.state = Some("gone".into());
        tx.put_record(&rec)?;
        tx.prune_gone()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Source, SourceKind, Store};

    /// A destroy of a domain that a restart (same uuid) has replaced in the
    /// meantime retires nothing: the new incarnation stays live.
    #[test]
    fn retiring_an_old_incarnation_leaves_the_new_one_live() {
        let store = Store::memory("sim").unwrap_or_else(|e| panic!("{e}"));
        let uuid = uuid::Uuid::from_u128(7);
        let mut rec = DomainRecord::new(uuid, DomainConfig::new_linux("web", "/k"), 1);
        rec.phase = Phase::Live;
        rec.domid = Some(9);
        let source = Source::new(SourceKind::Cli);
        let old = Subject {
            domid: Some(5),
            uuid: Some(uuid),
            name: Some("web".into()),
        };
        let new = Subject {
            domid: Some(9),
            ..old.clone()
        };
        let live = |store: &Store| {
            store
                .read(|tx| tx.record(uuid))
                .unwrap_or_else(|e| panic!("{e}"))
                .is_some_and(|r| r.is_live())
        };
        store
            .write(|tx| {
                tx.put_record(&rec)?;
                retire(tx, &old, 2, source, DomainEvent::Destroyed)
            })
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(live(&store), "the restarted domain was retired");
        store
            .write(|tx| retire(tx, &new, 3, source, DomainEvent::Destroyed))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!live(&store), "its own destroy retires it");
    }

    /// An operation that panics gives its intent up, and the next
    /// recovery (here, in the same process: the TUI's next pass) clears it.
    #[test]
    fn a_panicking_operation_leaves_its_intent_to_recovery() {
        use crate::backend::Hypervisor;
        use crate::backend::sim::SimHypervisor;
        use crate::clock::ManualClock;
        let clock = ManualClock::new(1);
        let hv: std::sync::Arc<dyn Hypervisor> =
            std::sync::Arc::new(SimHypervisor::in_memory(clock.clone()));
        let engine = Engine::in_memory(hv, clock).unwrap_or_else(|e| panic!("{e}"));
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = engine.run_op(
                OpKind::Pause,
                Subject::default(),
                None,
                |_| Ok(()),
                |_| Ok(()),
                |_| -> EngineResult<()> { panic!("a bug in an operation") },
            );
        }));
        assert!(panicked.is_err());
        let intents = engine
            .store
            .read(|tx| tx.intents())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(intents.len(), 1);
        assert!(!intents[0].owner.alive(), "still owned by a live process");
        let notes = engine.recover().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(notes.len(), 1, "{notes:?}");
        let left = engine
            .store
            .read(|tx| tx.intents())
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(left.is_empty(), "{left:?}");
    }
}
