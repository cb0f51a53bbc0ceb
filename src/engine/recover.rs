//! Repairs every domus process makes when it starts: operations whose
//! owner died are finished or rolled back (one line each, and a `repaired`
//! event in the journal), and records lost with the store are rebuilt from
//! what the backend still knows.

use super::ops::{created_events, retire};
use super::{Engine, EngineResult, Phase};
use crate::backend::{BackendError, BootImage, DomId, DomainInfo, ShutdownReason};
use crate::config::Policy;
use crate::config::{DomainConfig, HvmFlavor, HvmImage, Image, KernelImage};
use crate::store::journal::Subject;
use crate::store::{DomainEvent, DomainRecord, Intent, OpKind, Owner, SourceKind};

impl Engine {
    /// Everything a process does before its first command: repair what
    /// interrupted processes left, rebuild lost records. Returns one line
    /// per thing repaired, for the operator.
    pub fn start(&self) -> EngineResult<Vec<String>> {
        let mut notes = self.notes.clone();
        notes.extend(self.recover()?);
        notes.extend(self.rebuild_lost()?);
        self.prune_console_logs()?;
        Ok(notes)
    }

    /// Apply the console logs' retention, at most once an hour.
    fn prune_console_logs(&self) -> EngineResult<()> {
        const EVERY_NS: u64 = 3600 * crate::clock::NS_PER_SEC;
        let Some(archive) = &self.archive else {
            return Ok(());
        };
        let now = self.now_ns();
        if !self.store.due("prune-consoles", now, EVERY_NS)? {
            return Ok(());
        }
        let live: Vec<(uuid::Uuid, DomId)> = self
            .live_records()?
            .into_iter()
            .filter_map(|r| Some((r.uuid, r.domid?)))
            .collect();
        archive.prune(&live, now);
        Ok(())
    }

    /// Finish or roll back the operations whose owner is dead.
    pub fn recover(&self) -> EngineResult<Vec<String>> {
        let dead: Vec<Intent> = self
            .store
            .read(|tx| tx.intents())?
            .into_iter()
            .filter(|i| !i.owner.alive())
            .collect();
        let me = Owner::me(SourceKind::Repair);
        let mut notes = Vec::new();
        for intent in dead {
            // Exactly one process repairs each; if it dies too, the next
            // one finds the intent owned by a dead process again.
            if !self
                .store
                .write(|tx| tx.reown_intent(intent.id, intent.owner, me))?
            {
                continue;
            }
            let what = match self.repair(&intent) {
                Ok(w) => w,
                Err(e) => {
                    tracing::error!(id = intent.id, error = %e, "repairing an interrupted operation");
                    format!(
                        "could not repair the interrupted {} of {}: {e}",
                        intent.op,
                        intent.name.as_deref().unwrap_or("a domain")
                    )
                }
            };
            let now = self.now_ns();
            let source = self.actor.as_kind(SourceKind::Repair);
            let subject = Subject {
                domid: intent.domid,
                uuid: intent.uuid,
                name: intent.name.clone(),
            };
            self.store.write(|tx| {
                tx.append(
                    now,
                    &subject,
                    source,
                    &DomainEvent::OpFailed {
                        op: intent.op.to_string(),
                        error: format!(
                            "interrupted: domus process {} died at stage '{}'",
                            intent.owner.pid, intent.stage
                        ),
                    },
                )?;
                tx.append(
                    now,
                    &subject,
                    source,
                    &DomainEvent::Repaired { what: what.clone() },
                )?;
                tx.delete_intent(intent.id)
            })?;
            tracing::warn!("repaired: {what}");
            notes.push(format!("repaired: {what}"));
        }
        Ok(notes)
    }

    /// The domain an intent was about, if the hypervisor still has it.
    fn find(
        &self,
        domid: Option<DomId>,
        uuid: Option<uuid::Uuid>,
    ) -> EngineResult<Option<DomainInfo>> {
        if let Some(d) = domid {
            match self.hv.domain_info(d) {
                Ok(info) if uuid.is_none_or(|u| u == info.uuid) => return Ok(Some(info)),
                Ok(_) | Err(BackendError::NoSuchDomain(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        match uuid {
            Some(u) => Ok(self.hv.list_domains()?.into_iter().find(|i| i.uuid == u)),
            None => Ok(None),
        }
    }

    fn repair(&self, intent: &Intent) -> EngineResult<String> {
        let name = intent.name.clone().unwrap_or_else(|| "a domain".into());
        let why = format!(
            "domus process {} died at stage '{}'",
            intent.owner.pid, intent.stage
        );
        let found = self.find(intent.domid, intent.uuid)?;
        let source = self.actor.as_kind(SourceKind::Repair);
        let record = match intent.uuid {
            Some(u) => self.store.read(|tx| tx.record(u))?,
            None => None,
        };
        match intent.op {
            OpKind::Create | OpKind::Restore => {
                let built = intent.stage == "record";
                match (found, record) {
                    (Some(info), Some(rec)) if built && rec.phase == Phase::Building => {
                        let mut rec = rec;
                        rec.domid = Some(info.domid);
                        rec.phase = Phase::Live;
                        rec.config.devices = info.devices.clone();
                        rec.state = Some(Self::record_state(&info));
                        let now = self.now_ns();
                        let config = rec.config.clone();
                        self.store.write(|tx| {
                            tx.put_record(&rec)?;
                            created_events(
                                tx,
                                now,
                                &Self::subject(&info),
                                source,
                                &config,
                                &info.devices,
                            )
                        })?;
                        Ok(format!(
                            "finished the interrupted {} of {name} ({why} after building it): it is domain {}",
                            intent.op, info.domid
                        ))
                    }
                    (found, record) => {
                        let undone = match &found {
                            Some(info) => {
                                self.teardown(info)?;
                                format!("partial domain {} destroyed", info.domid)
                            }
                            None => "nothing had been built".to_string(),
                        };
                        if let Some(rec) = record.filter(|r| r.phase == Phase::Building) {
                            self.store.write(|tx| {
                                // A record brought back from the gone ones
                                // (it kept its gone time) goes back.
                                if rec.gone_ns.is_some() {
                                    let mut r = rec.clone();
                                    r.phase = Phase::Gone;
                                    r.domid = None;
                                    r.state = Some("gone".into());
                                    tx.put_record(&r).map(drop)
                                } else {
                                    tx.delete_record(rec.uuid)
                                }
                            })?;
                        }
                        Ok(format!(
                            "rolled back the interrupted {} of {name} ({why}): {undone}",
                            intent.op
                        ))
                    }
                }
            }
            OpKind::Destroy => {
                if let Some(info) = &found {
                    self.teardown(info)?;
                }
                self.retire_now(intent, DomainEvent::Destroyed)?;
                Ok(format!(
                    "finished the interrupted destroy of {name} ({why})"
                ))
            }
            OpKind::Save => {
                let path = intent.detail.clone().unwrap_or_default();
                match found {
                    Some(info) => Ok(format!(
                        "the interrupted save of {name} ({why}) left it {}; {path} may be incomplete",
                        info.state_word()
                    )),
                    None => {
                        self.retire_now(
                            intent,
                            DomainEvent::Saved {
                                path: path.clone().into(),
                            },
                        )?;
                        Ok(format!(
                            "the save of {name} was interrupted after the domain stopped ({why}); check {path} before restoring it"
                        ))
                    }
                }
            }
            OpKind::Attach | OpKind::Detach => {
                if let (Some(info), Some(mut rec)) = (found, record.filter(|r| r.is_live())) {
                    rec.config.devices = info.devices.clone();
                    self.store.write(|tx| tx.put_record(&rec).map(drop))?;
                }
                Ok(format!(
                    "the interrupted {} of {} on {name} ({why}): the record now lists the devices the domain has",
                    intent.op,
                    intent.detail.as_deref().unwrap_or("a device")
                ))
            }
            OpKind::Policy => self.repair_policy(intent, found, record, &name, &why),
            OpKind::Pause | OpKind::Unpause | OpKind::Shutdown | OpKind::MemoryTarget => Ok(
                format!("cleared the interrupted {} of {name} ({why})", intent.op),
            ),
        }
    }

    /// A shutdown policy that was interrupted: applied again when the
    /// shut-down domain is still there; otherwise any half-built new
    /// incarnation is destroyed and the domain recorded as gone.
    fn repair_policy(
        &self,
        intent: &Intent,
        found: Option<DomainInfo>,
        record: Option<DomainRecord>,
        name: &str,
        why: &str,
    ) -> EngineResult<String> {
        let Some(rec) = record.filter(|r| r.phase == Phase::Live) else {
            return Ok(format!("cleared the interrupted policy of {name} ({why})"));
        };
        let old = rec
            .domid
            .and_then(|d| self.hv.domain_info(d).ok())
            .filter(|o| o.uuid == rec.uuid);
        // A rename-restart that renamed the old domain (on the hypervisor,
        // in its record or both) is not applied again: that would rename
        // the kept domain once more.
        if let Some(orig) = intent.name.as_deref()
            && (rec.name != orig || old.as_ref().is_some_and(|o| o.name != orig))
        {
            return self.repair_rename_restart(orig, rec, old, why);
        }
        if let Some(old) = old.filter(|o| o.flags.shutdown) {
            let mut r = rec.clone();
            r.handled_shutdown = None;
            self.store.write(|tx| tx.put_record(&r).map(drop))?;
            return Ok(format!(
                "the shutdown policy of {name} was interrupted ({why}); it is applied again to domain {}",
                old.domid
            ));
        }
        let partial = found.filter(|f| Some(f.domid) != rec.domid);
        if let Some(p) = &partial {
            self.teardown(p)?;
        }
        // The policy the claim was for (its reason is the intent's detail).
        let policy = intent
            .detail
            .as_deref()
            .and_then(ShutdownReason::from_name)
            .map(|r| super::policy::policy_for(&rec.config, r).1);
        let restarting = policy.is_none_or(|p| {
            matches!(
                p,
                Policy::Restart | Policy::CoredumpRestart | Policy::RenameRestart
            )
        });
        if !restarting && partial.is_none() {
            self.retire_now(intent, DomainEvent::Destroyed)?;
            return Ok(format!(
                "finished the interrupted shutdown policy of {name} ({why}): it is gone"
            ));
        }
        self.retire_now(
            intent,
            DomainEvent::RestartFailed {
                error: format!("interrupted ({why})"),
            },
        )?;
        Ok(format!(
            "the restart of {name} was interrupted ({why}){}; it is gone — create it again",
            partial
                .map(|p| format!(": partial domain {} destroyed", p.domid))
                .unwrap_or_default()
        ))
    }

    /// The rename-restart of `orig` stopped after the old domain was
    /// renamed: the old one stays kept (with its new name in its record),
    /// a half-built new one is destroyed and its record dropped.
    fn repair_rename_restart(
        &self,
        orig: &str,
        mut kept: DomainRecord,
        old: Option<DomainInfo>,
        why: &str,
    ) -> EngineResult<String> {
        if let Some(o) = &old {
            kept.name = o.name.clone();
            kept.config.name = o.name.clone();
        }
        kept.config.devices.clear();
        let kept_name = kept.name.clone();
        let new = self
            .store
            .read(|tx| tx.record_by_name(orig))?
            .filter(|r| r.uuid != kept.uuid && r.phase == Phase::Building);
        let partial = match &new {
            Some(n) => self.find(n.domid, Some(n.uuid))?,
            None => None,
        };
        if let Some(p) = &partial {
            self.teardown(p)?;
        }
        self.store.write(|tx| {
            tx.put_record(&kept)?;
            match &new {
                Some(n) => tx.delete_record(n.uuid),
                None => Ok(()),
            }
        })?;
        Ok(format!(
            "the rename-restart of {orig} was interrupted ({why}) after the old domain was kept as {kept_name}; the new one was not built{} — create {orig} again",
            partial
                .map(|p| format!(" (partial domain {} destroyed)", p.domid))
                .unwrap_or_default()
        ))
    }

    fn retire_now(&self, intent: &Intent, event: DomainEvent) -> EngineResult<()> {
        let now = self.now_ns();
        let source = self.actor.as_kind(SourceKind::Repair);
        let subject = Subject {
            domid: intent.domid,
            uuid: intent.uuid,
            name: intent.name.clone(),
        };
        self.store
            .write(|tx| retire(tx, &subject, now, source, event))?;
        Ok(())
    }

    /// The first time this store sees the host (a new store, or one that
    /// replaced a lost or damaged one): give every domain domus built a
    /// record again, rebuilt from what the backend knows.
    fn rebuild_lost(&self) -> EngineResult<Vec<String>> {
        if !self.store.first_sight()? {
            return Ok(Vec::new());
        }
        let rebuilt = self.rebuild_records();
        if rebuilt.is_err()
            && let Err(e) = self.store.unsee()
        {
            tracing::error!(error = %e, "marking the lost records for another rebuild");
        }
        rebuilt
    }

    fn rebuild_records(&self) -> EngineResult<Vec<String>> {
        let live = self.cache.live(&self.store)?;
        let mut rebuilt = Vec::new();
        for info in self.hv.list_domains()? {
            if !self.hv.built_by_domus(&info) || live.contains_key(&info.uuid) {
                continue;
            }
            let image = self.hv.boot_image(info.domid).unwrap_or(None);
            let known = image.is_some();
            let mut rec = DomainRecord::new(info.uuid, reconstruct(&info, image), self.now_ns());
            rec.domid = Some(info.domid);
            rec.phase = Phase::Live;
            rec.state = Some(Self::record_state(&info));
            rec.note = Some(format!(
                "config rebuilt from the running domain after its record was lost{}; restart policies are xl's defaults",
                if known {
                    ""
                } else {
                    " (its boot image is unknown)"
                }
            ));
            let now = self.now_ns();
            let source = self.actor.as_kind(SourceKind::Repair);
            let what = format!(
                "rebuilt the lost record of {} (id {}) from the backend: name, uuid, memory, vCPUs, devices{}",
                info.name,
                info.domid,
                if known { ", boot image" } else { "" }
            );
            let written = self.store.write(|tx| {
                tx.put_record(&rec)?;
                tx.append(
                    now,
                    &Self::subject(&info),
                    source,
                    &DomainEvent::Repaired { what: what.clone() },
                )
                .map(drop)
            });
            // A record that cannot be rebuilt (its config would not be
            // valid) leaves that domain without one; it must not stop the
            // command, nor the others' rebuild.
            match written {
                Ok(()) => rebuilt.push(format!("repaired: {what}")),
                Err(e) => rebuilt.push(format!(
                    "{} (id {}) was built by domus but its record cannot be rebuilt: {e}",
                    info.name, info.domid
                )),
            }
        }
        Ok(rebuilt)
    }
}

/// A config that builds the domain as it runs now, from the backend's view.
fn reconstruct(info: &DomainInfo, image: Option<BootImage>) -> DomainConfig {
    let mut c = DomainConfig::new_linux(info.name.clone(), "");
    c.uuid = Some(info.uuid);
    c.memory = (info.memory_kib / 1024).max(1);
    let max = info.max_memory_kib / 1024;
    c.maxmem = (max > c.memory).then_some(max);
    c.vcpus = info.vcpus.max(1);
    c.devices = info.devices.clone();
    let boot = |b: &BootImage| KernelImage {
        kernel: b.kernel.clone(),
        ramdisk: b.ramdisk.clone(),
        args: Some(b.cmdline.clone()).filter(|s| !s.is_empty()),
        ..Default::default()
    };
    c.image = match image {
        Some(b) if b.ostype == "hvm" => Image::Hvm(HvmImage {
            flavor: HvmFlavor::Hvm,
            boot: boot(&b),
            device_model: b.device_model.clone(),
            memmap: b.memmap.clone(),
            vnc: Some(b.vnc),
            ..Default::default()
        }),
        Some(b) if b.ostype == "plan9" => Image::Plan9(boot(&b)),
        Some(b) => Image::Linux(boot(&b)),
        None => Image::Linux(KernelImage::default()),
    };
    c
}
