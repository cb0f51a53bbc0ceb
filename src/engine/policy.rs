//! What happens when a domain shuts down: its `on_poweroff`, `on_reboot` or
//! `on_crash` policy. Whoever looks first (the TUI's tick, any CLI call)
//! applies it, exactly once per shutdown, under the record lock.

use std::path::PathBuf;

use super::records::TimelineEvent;
use super::{Engine, EngineResult};
use crate::backend::{DomId, DomainInfo, ShutdownReason};
use crate::clock::NS_PER_SEC;
use crate::config::{DomainConfig, Policy};

/// A policy claim older than this belongs to a process that died.
pub const STALE_CLAIM_SECS: u64 = 60;

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

impl Engine {
    /// Look for domains that have shut down and apply their policies.
    pub fn refresh(&self) -> EngineResult<Vec<PolicyEvent>> {
        let mut events = Vec::new();
        for info in self.hv.list_domains()? {
            if !info.flags.shutdown {
                continue;
            }
            // One domain's failure must not stop the others' policies.
            match self.handle_shutdown(&info) {
                Ok(Some(event)) => events.push(event),
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(domid = info.domid, error = %e, "applying a shutdown policy failed");
                    let _ = self.note(
                        info.domid,
                        TimelineEvent::Warning {
                            message: format!("policy failed: {e}"),
                        },
                    );
                    events.push(PolicyEvent {
                        name: info.name.clone(),
                        domid: info.domid,
                        reason: info.shutdown_reason.unwrap_or(ShutdownReason::Poweroff),
                        field: "policy",
                        policy: Policy::Preserve,
                        outcome: PolicyOutcome::Failed {
                            error: e.to_string(),
                        },
                        core_dump: None,
                    });
                }
            }
        }
        Ok(events)
    }

    fn handle_shutdown(&self, info: &DomainInfo) -> EngineResult<Option<PolicyEvent>> {
        let mut claimed = false;
        let result = self.claim_and_apply(info, &mut claimed);
        // Done (or failed): release our claim either way, so a preserved
        // domain is not taken for an abandoned claim later.
        if claimed {
            let domid = info.domid;
            self.records.write(|r| {
                if let Some(rec) = r.by_domid(domid) {
                    rec.claim_ns = None;
                }
            })?;
        }
        result
    }

    fn claim_and_apply(
        &self,
        info: &DomainInfo,
        claimed_here: &mut bool,
    ) -> EngineResult<Option<PolicyEvent>> {
        let domid = info.domid;
        let reason = info.shutdown_reason.unwrap_or(ShutdownReason::Poweroff);
        let now = self.now_ns();
        // Claim the shutdown so that only one process handles it.
        let claimed = self.records.write(|r| {
            let rec = r.by_domid(domid)?;
            if rec.handled_shutdown == Some(domid) {
                let stale = rec
                    .claim_ns
                    .is_some_and(|c| now.saturating_sub(c) > STALE_CLAIM_SECS * NS_PER_SEC);
                if !stale {
                    return None;
                }
                rec.push(
                    now,
                    Some(domid),
                    TimelineEvent::Warning {
                        message: "taking over a policy left unfinished by another domus process"
                            .into(),
                    },
                );
            }
            rec.handled_shutdown = Some(domid);
            rec.claim_ns = Some(now);
            rec.push(now, Some(domid), TimelineEvent::ShutDown { reason });
            Some((rec.config.clone(), rec.last_restart_ns, rec.uuid))
        })?;
        let Some((config_text, last_restart_ns, uuid)) = claimed else {
            return Ok(None);
        };
        *claimed_here = true;
        let config = match crate::config::parse_str(&config_text, "<record>") {
            Ok((c, _)) => c,
            Err(e) => {
                tracing::error!(domid, error = %e, "stored config no longer parses; preserving domain");
                return Ok(None);
            }
        };
        let (field, policy) = policy_for(&config, reason);
        self.note(
            domid,
            TimelineEvent::PolicyApplied {
                field: field.to_string(),
                policy,
            },
        )?;
        let mut event = PolicyEvent {
            name: info.name.clone(),
            domid,
            reason,
            field,
            policy,
            outcome: PolicyOutcome::Preserved,
            core_dump: None,
        };
        if matches!(policy, Policy::CoredumpDestroy | Policy::CoredumpRestart) {
            event.core_dump = self.core_dump(info);
        }
        event.outcome = match policy {
            Policy::Preserve => PolicyOutcome::Preserved,
            Policy::Destroy | Policy::CoredumpDestroy => {
                self.destroy_info(info)?;
                PolicyOutcome::Destroyed
            }
            Policy::Restart | Policy::CoredumpRestart | Policy::RenameRestart => {
                if let Some(last) = last_restart_ns {
                    let since = now.saturating_sub(last);
                    if since < MIN_RESTART_INTERVAL_SECS * NS_PER_SEC {
                        let seconds_since_last = since as f64 / NS_PER_SEC as f64;
                        self.note(domid, TimelineEvent::RestartRefused { seconds_since_last })?;
                        tracing::warn!(domain = %info.name, seconds_since_last, "restarting too fast; not restarting");
                        self.destroy_info(info)?;
                        event.outcome = PolicyOutcome::RestartRefused { seconds_since_last };
                        return Ok(Some(event));
                    }
                }
                self.restart(info, &config, uuid, policy == Policy::RenameRestart)?
            }
        };
        Ok(Some(event))
    }

    fn core_dump(&self, info: &DomainInfo) -> Option<PathBuf> {
        let path = self
            .dump_dir
            .join(format!("{}.{}.core", info.name, info.domid));
        let result = std::fs::create_dir_all(&self.dump_dir)
            .map_err(|e| e.to_string())
            .and_then(|()| {
                self.hv
                    .core_dump(info.domid, &path)
                    .map_err(|e| e.to_string())
            });
        match result {
            Ok(()) => {
                let _ = self.note(info.domid, TimelineEvent::CoreDumped { path: path.clone() });
                Some(path)
            }
            Err(e) => {
                let _ = self.note(
                    info.domid,
                    TimelineEvent::Warning {
                        message: format!("core dump failed: {e}"),
                    },
                );
                None
            }
        }
    }

    /// Build the domain again from its stored config. `rename` keeps the
    /// old domain, renamed, for inspection (rename-restart).
    fn restart(
        &self,
        info: &DomainInfo,
        config: &DomainConfig,
        uuid: uuid::Uuid,
        rename: bool,
    ) -> EngineResult<PolicyOutcome> {
        let old = info.domid;
        let keep_uuid = if rename {
            let to = format!("{}-{}", info.name, old);
            if let Err(e) = self.hv.rename(old, &to) {
                let error = format!("renaming the old domain failed: {e}");
                self.note(
                    old,
                    TimelineEvent::RestartFailed {
                        error: error.clone(),
                    },
                )?;
                return Ok(PolicyOutcome::RestartFailed { error });
            }
            let now = self.now_ns();
            self.records.write(|r| {
                if let Some(rec) = r.by_domid(old) {
                    rec.push(
                        now,
                        Some(old),
                        TimelineEvent::Renamed {
                            from: info.name.clone(),
                            to: to.clone(),
                        },
                    );
                    rec.name = to.clone();
                }
            })?;
            // The kept domain is for inspection; its devices go to the new one.
            self.release_devices(info);
            None
        } else {
            self.destroy_info(info)?;
            Some(uuid)
        };
        // A renamed predecessor keeps its uuid, so the new domain needs another.
        let mut config = config.clone();
        if rename {
            config.uuid = None;
        }
        let config = &config;
        match self.construct(config, keep_uuid) {
            Ok((new_domid, devices)) => {
                self.adopt_new(config, None, new_domid, &devices, Some(old), None)?;
                Ok(PolicyOutcome::Restarted { new_domid })
            }
            Err(e) => {
                let error = e.to_string();
                let now = self.now_ns();
                self.records.write(|r| {
                    let rec = r
                        .live
                        .values_mut()
                        .find(|x| x.uuid == uuid)
                        .or_else(|| r.retired.iter_mut().rev().find(|x| x.uuid == uuid));
                    if let Some(rec) = rec {
                        rec.push(
                            now,
                            Some(old),
                            TimelineEvent::RestartFailed {
                                error: error.clone(),
                            },
                        );
                    }
                })?;
                Ok(PolicyOutcome::RestartFailed { error })
            }
        }
    }
}
