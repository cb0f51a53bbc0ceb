//! What the hypervisor reports by itself: a supervisor (or any watcher)
//! hands each [`Notice`] to [`Engine::observe`], which records it in the
//! journal once — a change an operation of some domus process is making
//! right now is that operation's to record — and applies shutdown policies.

use super::ops::retire;
use super::policy::shutdown_state;
use super::{Engine, EngineResult, PolicyEvent};
use crate::backend::{DomId, DomainInfo, Notice, ShutdownReason};
use crate::store::journal::Subject;
use crate::store::{DomainEvent, OpKind, SourceKind};

impl Engine {
    /// Record what the hypervisor reported about `domid`, and act on it.
    pub fn observe(&self, domid: DomId, notice: Notice) -> EngineResult<Option<PolicyEvent>> {
        tracing::debug!(domid, ?notice, "observed");
        match notice {
            Notice::Paused => self.state_seen(domid, "paused", OpKind::Pause),
            Notice::Resumed => self.state_seen(domid, "running", OpKind::Unpause),
            Notice::ShutDown { reason, .. } => {
                let info = match self.hv.domain_info(domid) {
                    Ok(i) => i,
                    Err(_) => return Ok(None),
                };
                if !info.flags.shutdown {
                    // The backend has not caught up yet; the next look will.
                    tracing::debug!(domid, %reason, "shutdown reported before the state shows it");
                    return Ok(None);
                }
                self.handle_shutdown(&info)
            }
            Notice::Reset => self.note_seen(domid, DomainEvent::Reset, SourceKind::Guest),
            Notice::DeviceRemoved { id } => {
                if self.busy_with(domid, &[OpKind::Detach, OpKind::Destroy])? {
                    return Ok(None);
                }
                self.note_seen(
                    domid,
                    DomainEvent::Warning {
                        message: format!("device {id} left the domain"),
                    },
                    SourceKind::Guest,
                )
            }
            Notice::ShutdownIgnored { seconds } => self.note_seen(
                domid,
                DomainEvent::Warning {
                    message: format!(
                        "the guest did not answer the shutdown request within {seconds} s; destroy it, or try again once it has booted"
                    ),
                },
                SourceKind::Guest,
            ),
            Notice::Gone { cause, requested } => {
                if !requested {
                    self.vanish_domid(domid, Some(cause))?;
                }
                Ok(None)
            }
        }
    }

    /// Whether an operation of a live domus process is at work on `domid`.
    fn busy_with(&self, domid: DomId, ops: &[OpKind]) -> EngineResult<bool> {
        Ok(self.store.read(|tx| {
            let Some(rec) = tx.record_by_domid(domid)? else {
                return Ok(false);
            };
            Ok(tx
                .intents_on(rec.uuid)?
                .iter()
                .any(|i| ops.contains(&i.op) && i.owner.alive()))
        })?)
    }

    fn note_seen(
        &self,
        domid: DomId,
        event: DomainEvent,
        kind: SourceKind,
    ) -> EngineResult<Option<PolicyEvent>> {
        let now = self.now_ns();
        let source = self.actor.as_kind(kind);
        self.store.write(|tx| {
            let subject = match tx.record_by_domid(domid)? {
                Some(r) => Subject {
                    domid: Some(domid),
                    uuid: Some(r.uuid),
                    name: Some(r.name),
                },
                None => Subject {
                    domid: Some(domid),
                    ..Default::default()
                },
            };
            tx.append(now, &subject, source, &event).map(drop)
        })?;
        Ok(None)
    }

    /// A state change seen by a watcher: recorded unless the record says
    /// so already or the operation making it will record it.
    fn state_seen(
        &self,
        domid: DomId,
        state: &str,
        op: OpKind,
    ) -> EngineResult<Option<PolicyEvent>> {
        let now = self.now_ns();
        let source = self.actor.as_kind(SourceKind::Hypervisor);
        self.store.write(|tx| {
            let Some(mut rec) = tx.record_by_domid(domid)? else {
                return Ok(());
            };
            let busy = tx
                .intents_on(rec.uuid)?
                .iter()
                .any(|i| i.op == op && i.owner.alive());
            let from = rec.state.clone().unwrap_or_else(|| "unknown".into());
            if busy || from == state || from.starts_with("shutdown") {
                return Ok(());
            }
            rec.state = Some(state.to_string());
            tx.put_record(&rec)?;
            let subject = Subject {
                domid: Some(domid),
                uuid: Some(rec.uuid),
                name: Some(rec.name.clone()),
            };
            tx.append(
                now,
                &subject,
                source,
                &DomainEvent::StateChanged {
                    from,
                    to: state.to_string(),
                },
            )
            .map(drop)
        })?;
        Ok(None)
    }

    /// A domain domus built is no longer on the hypervisor, and no domus
    /// operation removed it: record that it vanished (once).
    pub(super) fn vanish(
        &self,
        uuid: uuid::Uuid,
        domid: Option<DomId>,
        cause: Option<String>,
    ) -> EngineResult<bool> {
        let now = self.now_ns();
        let source = self.actor.as_kind(SourceKind::Hypervisor);
        Ok(self.store.write(|tx| {
            // Looked at again under the write lock: an operation that
            // removed it has committed or still holds its intent.
            let Some(rec) = tx.record(uuid)?.filter(|r| r.phase == super::Phase::Live) else {
                return Ok(false);
            };
            if domid.is_some() && rec.domid != domid {
                return Ok(false);
            }
            if !tx.intents_on(uuid)?.is_empty() {
                return Ok(false);
            }
            let subject = Subject {
                domid: rec.domid,
                uuid: Some(uuid),
                name: Some(rec.name.clone()),
            };
            retire(
                tx,
                &subject,
                now,
                source,
                DomainEvent::Vanished {
                    cause: cause.clone(),
                },
            )?;
            Ok(true)
        })?)
    }

    fn vanish_domid(&self, domid: DomId, cause: Option<String>) -> EngineResult<bool> {
        match self.store.read(|tx| tx.record_by_domid(domid))? {
            Some(rec) => self.vanish(rec.uuid, Some(domid), cause),
            None => Ok(false),
        }
    }

    /// The state word a record keeps for a domain as the hypervisor shows it.
    pub fn record_state(info: &DomainInfo) -> String {
        if info.flags.shutdown {
            shutdown_state(info.shutdown_reason.unwrap_or(ShutdownReason::Poweroff))
        } else if info.flags.paused {
            "paused".into()
        } else {
            "running".into()
        }
    }
}
