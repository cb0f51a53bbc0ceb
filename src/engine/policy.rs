//! What happens when a domain shuts down: its `on_poweroff`, `on_reboot` or
//! `on_crash` policy. Whoever sees the shutdown first (a supervisor, the
//! TUI, any CLI call) claims it in the store — an intent of kind `policy`
//! — and applies it, exactly once per shutdown. A claim whose owner died is
//! taken over at once.

use std::path::PathBuf;

use super::ops::{Op, retire};
use super::{Engine, EngineError, EngineResult, Phase};
use crate::backend::{BackendError, DomId, DomainInfo, ShutdownReason};
use crate::clock::NS_PER_SEC;
use crate::config::{DomainConfig, Policy};
use crate::store::journal::Subject;
use crate::store::{DomainEvent, DomainRecord, OpKind, SourceKind};

/// xend refused to restart a domain restarted less than this long ago.
pub const MIN_RESTART_INTERVAL_SECS: u64 = 20;

#[derive(Debug, Clone, PartialEq)]
pub enum PolicyOutcome {
    Destroyed,
    Preserved,
    Restarted {
        new_domid: DomId,
    },
    RestartRefused {
        seconds_since_last: f64,
    },
    RestartFailed {
        error: String,
    },
    /// Applying the policy failed; the domain is left as it is.
    Failed {
        error: String,
    },
}

/// A shutdown the engine noticed and what it did about it.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyEvent {
    pub name: String,
    pub domid: DomId,
    pub reason: ShutdownReason,
    /// The config field that chose the policy (`on_crash` …).
    pub field: &'static str,
    pub policy: Policy,
    pub outcome: PolicyOutcome,
    pub core_dump: Option<PathBuf>,
}

impl std::fmt::Display for PolicyEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.reason == ShutdownReason::Suspend {
            return write!(
                f,
                "{} (domain {}) suspended; kept for save",
                self.name, self.domid
            );
        }
        write!(
            f,
            "{} (domain {}) shut down ({}); {} {}: ",
            self.name, self.domid, self.reason, self.field, self.policy
        )?;
        match &self.outcome {
            PolicyOutcome::Destroyed => write!(f, "destroyed"),
            PolicyOutcome::Preserved => write!(f, "preserved"),
            PolicyOutcome::Restarted { new_domid } => write!(f, "restarted as domain {new_domid}"),
            PolicyOutcome::RestartRefused { seconds_since_last } => write!(
                f,
                "restart refused, last restart {seconds_since_last:.1} s ago (< {MIN_RESTART_INTERVAL_SECS} s); destroyed"
            ),
            PolicyOutcome::RestartFailed { error } => write!(f, "restart failed: {error}"),
            PolicyOutcome::Failed { error } => write!(f, "failed: {error}"),
        }?;
        if let Some(p) = &self.core_dump {
            write!(f, " (core dumped to {})", p.display())?;
        }
        Ok(())
    }
}

/// The policy for a shutdown reason. Suspend leaves the domain for `save`;
/// a watchdog firing counts as a crash, a soft reset as a reboot.
pub fn policy_for(config: &DomainConfig, reason: ShutdownReason) -> (&'static str, Policy) {
    match reason {
        ShutdownReason::Poweroff => ("on_poweroff", config.poweroff_policy()),
        ShutdownReason::Reboot | ShutdownReason::SoftReset => ("on_reboot", config.reboot_policy()),
        ShutdownReason::Crash | ShutdownReason::Watchdog => ("on_crash", config.crash_policy()),
        ShutdownReason::Suspend => ("suspend", Policy::Preserve),
    }
}

/// What claiming a shutdown found.
enum Claim {
    /// Not domus's domain, or handled already, or being handled by a live
    /// process.
    Nothing,
    Mine {
        id: i64,
        record: Box<DomainRecord>,
    },
}

impl Engine {
    /// Look for domains that have shut down and apply their policies.
    pub fn refresh(&self) -> EngineResult<Vec<PolicyEvent>> {
        let mut events = Vec::new();
        for info in self.hv.shut_down_domains()? {
            if let Some(e) = self.handle_or_report(&info) {
                events.push(e);
            }
        }
        Ok(events)
    }

    /// Apply the policy of one domain if it has shut down.
    pub fn refresh_one(&self, domid: DomId) -> EngineResult<Option<PolicyEvent>> {
        match self.hv.domain_info(domid) {
            Ok(info) if info.flags.shutdown => Ok(self.handle_or_report(&info)),
            Ok(_) | Err(BackendError::NoSuchDomain(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// One domain's failure must not stop the others' policies: a failure
    /// becomes an event of its own.
    fn handle_or_report(&self, info: &DomainInfo) -> Option<PolicyEvent> {
        match self.handle_shutdown(info) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(domid = info.domid, error = %e, "applying a shutdown policy failed");
                Some(PolicyEvent {
                    name: info.name.clone(),
                    domid: info.domid,
                    reason: info.shutdown_reason.unwrap_or(ShutdownReason::Poweroff),
                    field: "policy",
                    policy: Policy::Preserve,
                    outcome: PolicyOutcome::Failed {
                        error: e.to_string(),
                    },
                    core_dump: None,
                })
            }
        }
    }

    /// Claim the shutdown of `info` and apply its policy; `None` when
    /// someone else has (or it is not domus's domain).
    pub fn handle_shutdown(&self, info: &DomainInfo) -> EngineResult<Option<PolicyEvent>> {
        let domid = info.domid;
        let reason = info.shutdown_reason.unwrap_or(ShutdownReason::Poweroff);
        let Claim::Mine { id, record } = self.claim(info, reason)? else {
            return Ok(None);
        };
        let op = self.op_for(id, OpKind::Policy, Self::subject(info));
        let (field, policy) = policy_for(&record.config, reason);
        let mut event = PolicyEvent {
            name: info.name.clone(),
            domid,
            reason,
            field,
            policy,
            outcome: PolicyOutcome::Preserved,
            core_dump: None,
        };
        let result = self.apply(&op, info, &record, &mut event);
        match op.finish(result, |_| Ok(())) {
            Ok(()) => Ok(Some(event)),
            Err(e) => {
                event.outcome = PolicyOutcome::Failed {
                    error: e.to_string(),
                };
                Ok(Some(event))
            }
        }
    }

    /// Build a shut-down domain again from its config, as its `restart`
    /// policy would (same uuid, a new domid): how an operator starts a
    /// domain whose policy preserved it.
    pub fn start_domain(&self, domid: DomId) -> EngineResult<DomId> {
        let info = self.info(domid)?;
        if info.shutdown_reason == Some(ShutdownReason::Suspend) {
            // Its memory is still there: a fresh boot would lose it.
            return Err(EngineError::InvalidState {
                name: info.name.clone(),
                state: "suspended (domus save keeps its state; destroy drops it)",
                op: "start",
            });
        }
        if !info.flags.shutdown {
            return Err(EngineError::InvalidState {
                name: info.name.clone(),
                state: if info.flags.paused {
                    "paused"
                } else {
                    "running"
                },
                op: "start",
            });
        }
        let record = self
            .store
            .read(|tx| tx.record_by_domid(domid))?
            .filter(|r| r.uuid == info.uuid);
        let Some(record) = record else {
            // Another tool's domain: the hypervisor's own definition
            // starts it, where it keeps one (libvirt).
            return match self.hv.start_native(domid)? {
                Some(new) => Ok(new),
                None => Err(EngineError::Invalid(format!(
                    "{} has no config with domus (it was not built by domus)",
                    info.name
                ))),
            };
        };
        let outcome = self.domain_op(OpKind::Policy, &info, Some("start".into()), |op| {
            self.rebuild(op, &info, &record, false, false)
        })?;
        match outcome {
            PolicyOutcome::Restarted { new_domid } => Ok(new_domid),
            PolicyOutcome::RestartFailed { error } => Err(EngineError::Invalid(format!(
                "starting {name} failed: {error}; the shut-down domain is gone, its config kept \
                 (domus export {name} --format sxp > {name}.sxp, then domus create {name}.sxp)",
                name = info.name
            ))),
            other => Err(EngineError::Invalid(format!(
                "starting {}: {other:?}",
                info.name
            ))),
        }
    }

    /// Claim a shutdown in one transaction: mark it handled, record the
    /// intent and the `shut_down` event. A claim left by a dead process is
    /// taken over.
    fn claim(&self, info: &DomainInfo, reason: ShutdownReason) -> EngineResult<Claim> {
        let domid = info.domid;
        let now = self.now_ns();
        let subject = Self::subject(info);
        let intent = self.intent(OpKind::Policy, &subject, Some(reason.to_string()), now);
        let actor = self.actor;
        Ok(self.store.write(|tx| {
            let Some(mut rec) = tx.record_by_domid(domid)?.filter(|r| r.uuid == info.uuid) else {
                return Ok(Claim::Nothing);
            };
            if rec.phase != Phase::Live {
                return Ok(Claim::Nothing);
            }
            let claims: Vec<_> = tx
                .intents_on(rec.uuid)?
                .into_iter()
                .filter(|i| i.op == OpKind::Policy || i.op.ends_domain())
                .collect();
            if claims.iter().any(|i| i.owner.alive()) {
                return Ok(Claim::Nothing);
            }
            if rec.handled_shutdown == Some(domid) {
                if claims.is_empty() {
                    return Ok(Claim::Nothing);
                }
                for dead in &claims {
                    tx.delete_intent(dead.id)?;
                }
                tx.append(
                    now,
                    &subject,
                    actor,
                    &DomainEvent::Warning {
                        message: format!(
                            "taking over a policy left unfinished by domus process {} (it died)",
                            claims[0].owner.pid
                        ),
                    },
                )?;
            } else {
                tx.append(
                    now,
                    &subject,
                    actor.as_kind(SourceKind::Guest),
                    &DomainEvent::ShutDown { reason },
                )?;
            }
            rec.handled_shutdown = Some(domid);
            rec.state = Some(shutdown_state(reason));
            tx.put_record(&rec)?;
            let id = tx.insert_intent(&intent)?;
            tx.append(
                now,
                &subject,
                actor,
                &DomainEvent::OpStarted {
                    op: OpKind::Policy.to_string(),
                },
            )?;
            Ok(Claim::Mine {
                id,
                record: Box::new(rec),
            })
        })?)
    }

    fn apply(
        &self,
        op: &Op<'_>,
        info: &DomainInfo,
        record: &DomainRecord,
        event: &mut PolicyEvent,
    ) -> EngineResult<()> {
        let (field, policy) = (event.field, event.policy);
        let actor = self.actor;
        let applied = DomainEvent::PolicyApplied {
            field: field.to_string(),
            policy,
        };
        if matches!(policy, Policy::CoredumpDestroy | Policy::CoredumpRestart) {
            event.core_dump = self.core_dump(info);
        }
        match policy {
            Policy::Preserve => {
                op.commit(|tx, s, now| tx.append(now, s, actor, &applied).map(drop))?;
            }
            Policy::Destroy | Policy::CoredumpDestroy => {
                self.teardown(info)?;
                op.commit(|tx, s, now| {
                    tx.append(now, s, actor, &applied)?;
                    retire(tx, s, now, actor, DomainEvent::Destroyed)
                })?;
                event.outcome = PolicyOutcome::Destroyed;
            }
            Policy::Restart | Policy::CoredumpRestart | Policy::RenameRestart => {
                let now = self.now_ns();
                if let Some(last) = record.last_restart_ns {
                    let since = now.saturating_sub(last);
                    if since < MIN_RESTART_INTERVAL_SECS * NS_PER_SEC {
                        let seconds_since_last = since as f64 / NS_PER_SEC as f64;
                        tracing::warn!(domain = %info.name, seconds_since_last, "restarting too fast; not restarting");
                        self.teardown(info)?;
                        op.commit(|tx, s, now| {
                            tx.append(now, s, actor, &applied)?;
                            tx.append(
                                now,
                                s,
                                actor,
                                &DomainEvent::RestartRefused { seconds_since_last },
                            )?;
                            retire(tx, s, now, actor, DomainEvent::Destroyed)
                        })?;
                        event.outcome = PolicyOutcome::RestartRefused { seconds_since_last };
                        return Ok(());
                    }
                }
                let applied_now = self.store.write(|tx| {
                    tx.append(now, &Self::subject(info), actor, &applied)
                        .map(drop)
                });
                applied_now?;
                event.outcome = self.restart(op, info, record, policy == Policy::RenameRestart)?;
            }
        }
        Ok(())
    }

    fn core_dump(&self, info: &DomainInfo) -> Option<PathBuf> {
        let path = self
            .dump_dir
            .join(format!("{}.{}.core", info.name, info.domid));
        let result = crate::fsx::ensure_private_dir(&self.dump_dir)
            .map_err(|e| e.to_string())
            .and_then(|()| {
                self.hv
                    .core_dump(info.domid, &path)
                    .map_err(|e| e.to_string())
            })
            // A core holds the guest's memory: owner-only.
            .and_then(|()| crate::fsx::restrict_file(&path).map_err(|e| e.to_string()));
        let event = match &result {
            Ok(()) => DomainEvent::CoreDumped { path: path.clone() },
            Err(e) => DomainEvent::Warning {
                message: format!("core dump failed: {e}"),
            },
        };
        let _ = self.log(info, event);
        result.ok().map(|()| path)
    }

    /// Build the domain again from its stored config. `rename` keeps the
    /// old domain, renamed, for inspection (rename-restart) and gives the
    /// new one a fresh uuid.
    fn restart(
        &self,
        op: &Op<'_>,
        info: &DomainInfo,
        record: &DomainRecord,
        rename: bool,
    ) -> EngineResult<PolicyOutcome> {
        self.rebuild(op, info, record, rename, true)
    }

    /// [`Self::restart`]; `by_policy` false: an operator's start, which the
    /// restart-loop guard does not count.
    fn rebuild(
        &self,
        op: &Op<'_>,
        info: &DomainInfo,
        record: &DomainRecord,
        rename: bool,
        by_policy: bool,
    ) -> EngineResult<PolicyOutcome> {
        let old = info.domid;
        let actor = self.actor;
        let mut config = record.config.clone();
        let new_uuid = if rename {
            let to = format!("{}-{}", info.name, old);
            if let Err(e) = self.hv.rename(old, &to) {
                let error = format!("renaming the old domain failed: {e}");
                op.commit(|tx, s, now| {
                    tx.append(
                        now,
                        s,
                        actor,
                        &DomainEvent::RestartFailed {
                            error: error.clone(),
                        },
                    )
                    .map(drop)
                })?;
                return Ok(PolicyOutcome::RestartFailed { error });
            }
            // The kept domain is for inspection; its devices go to the new one.
            self.release_devices(info);
            let new_uuid = self.hv.new_uuid()?;
            let now = self.now_ns();
            let mut kept = record.clone();
            kept.name = to.clone();
            kept.config.name = to.clone();
            kept.config.devices.clear();
            let mut building = DomainRecord::new(new_uuid, record.config.clone(), now);
            building.config.uuid = None;
            building.source = record.source.clone();
            self.store.write(|tx| {
                tx.append(
                    now,
                    &Self::subject(info),
                    actor,
                    &DomainEvent::Renamed {
                        from: info.name.clone(),
                        to: to.clone(),
                    },
                )?;
                tx.put_record(&kept)?;
                tx.put_record(&building).map(drop)
            })?;
            op.stage("renamed", None)?;
            config.uuid = None;
            new_uuid
        } else {
            self.teardown(info)?;
            self.log(info, DomainEvent::Destroyed)?;
            op.stage("old domain destroyed", None)?;
            record.uuid
        };
        match self.construct(&config, Some(new_uuid), Some(op)) {
            Ok((new_domid, devices)) => {
                op.commit(|tx, s, now| {
                    let mut rec = tx
                        .record(new_uuid)?
                        .unwrap_or_else(|| DomainRecord::new(new_uuid, config.clone(), now));
                    rec.config.devices = devices.clone();
                    rec.domid = Some(new_domid);
                    rec.phase = Phase::Live;
                    rec.handled_shutdown = None;
                    rec.state = Some("running".into());
                    if by_policy {
                        rec.last_restart_ns = Some(now);
                        rec.restarts += 1;
                    }
                    tx.put_record(&rec)?;
                    tx.append(now, s, actor, &DomainEvent::Restarted { new_domid })?;
                    let new_subject = Subject {
                        domid: Some(new_domid),
                        uuid: Some(new_uuid),
                        name: Some(rec.name.clone()),
                    };
                    super::ops::created_events(tx, now, &new_subject, actor, &config, &devices)
                })?;
                Ok(PolicyOutcome::Restarted { new_domid })
            }
            Err(e) => {
                let error = e.to_string();
                op.commit(|tx, s, now| {
                    tx.append(
                        now,
                        s,
                        actor,
                        &DomainEvent::RestartFailed {
                            error: error.clone(),
                        },
                    )?;
                    if rename {
                        tx.delete_record(new_uuid)
                    } else {
                        retire(tx, s, now, actor, DomainEvent::Destroyed)
                    }
                })?;
                Ok(PolicyOutcome::RestartFailed { error })
            }
        }
    }
}

/// The record state of a shut-down domain.
pub(super) fn shutdown_state(reason: ShutdownReason) -> String {
    format!("shutdown:{reason}")
}

impl From<crate::store::StoreError> for EngineError {
    fn from(e: crate::store::StoreError) -> Self {
        EngineError::Store(e)
    }
}
