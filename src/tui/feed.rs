//! What the TUI follows of the host journal beyond the table: lines for
//! the Events tab from every domus process, the guests and the hypervisor;
//! the announcements worth the status line; shutdown requests still
//! unanswered (shown on their row, and a destroy offered when they time
//! out); the full timeline shown in the details; and recently gone domains.

use std::collections::HashMap;

use crate::backend::DomId;
use crate::backend::ShutdownReason;
use crate::engine::{DomainEvent, DomainRecord, JournalEntry, SourceKind};
use crate::fleet::HostId;

/// After this long without the guest shutting down, the TUI offers to
/// destroy it.
pub const SHUTDOWN_TIMEOUT_NS: u64 = 60 * 1_000_000_000;

/// A domain that is gone, with how it ended.
#[derive(Debug, Clone)]
pub struct GoneView {
    pub record: DomainRecord,
    /// Its last lifecycle event (destroyed, vanished, …).
    pub last: Option<JournalEntry>,
    /// The host it was on.
    pub host: HostId,
    /// Its last domid.
    pub domid: Option<DomId>,
}

/// A shutdown request the guest has not answered yet.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingShutdown {
    pub name: String,
    pub domid: Option<DomId>,
    pub reason: ShutdownReason,
    pub at_ns: u64,
    /// The operator has been offered a destroy already.
    pub warned: bool,
}

/// The details' timeline of one domain, loaded whole when they open and
/// followed live.
#[derive(Debug, Clone, Default)]
pub struct DetailTimeline {
    pub uuid: uuid::Uuid,
    pub entries: Vec<JournalEntry>,
    pub console_tail: Vec<String>,
    pub loaded: bool,
}

#[derive(Debug, Default)]
pub struct Feed {
    pub shutdowns: HashMap<uuid::Uuid, PendingShutdown>,
    pub details: Option<DetailTimeline>,
    pub gone: Vec<GoneView>,
    pub gone_selected: usize,
}

/// "web1 [3]", or what the entry knows of its domain.
pub fn subject(e: &JournalEntry) -> String {
    let name = e.name.as_deref().map(crate::tui::table::clean);
    match (name, e.domid) {
        (Some(n), Some(d)) => format!("{n} [{d}]"),
        (Some(n), None) => n,
        (None, Some(d)) => format!("[{d}]"),
        (None, None) => String::new(),
    }
}

/// Whether this entry should be a line of the Events tab. The operation
/// bookkeeping is folded away; this TUI's own failures are shown once, from
/// its own result (which says more about what was asked).
pub fn shown(e: &JournalEntry, own_pid: u32) -> bool {
    if e.event.is_op() {
        return false;
    }
    let own = e.source.pid == Some(own_pid) && e.source.kind == SourceKind::Tui;
    !(own && matches!(e.event, DomainEvent::OpFailed { .. }))
}

impl Feed {
    /// Take the newest journal entries in: follow shutdown requests and the
    /// open details. Returns the entries worth announcing on the status
    /// line (important, and not this process's doing).
    pub fn take(&mut self, entries: &[JournalEntry], own_pid: u32) -> Vec<JournalEntry> {
        let mut announce = Vec::new();
        for e in entries {
            if let Some(uuid) = e.uuid {
                self.follow_shutdown(uuid, e);
                if let Some(d) = self.details.as_mut().filter(|d| d.uuid == uuid)
                    && !d.entries.iter().any(|x| x.seq == e.seq)
                {
                    d.entries.push(e.clone());
                }
            }
            if e.event.is_important() && e.source.pid != Some(own_pid) {
                announce.push(e.clone());
            }
        }
        announce
    }

    fn follow_shutdown(&mut self, uuid: uuid::Uuid, e: &JournalEntry) {
        match &e.event {
            DomainEvent::ShutdownRequested { reason } => {
                self.shutdowns.insert(
                    uuid,
                    PendingShutdown {
                        name: e.name.clone().unwrap_or_default(),
                        domid: e.domid,
                        reason: *reason,
                        at_ns: e.at_ns,
                        warned: false,
                    },
                );
            }
            DomainEvent::ShutDown { .. }
            | DomainEvent::Destroyed
            | DomainEvent::Vanished { .. }
            | DomainEvent::Saved { .. }
            | DomainEvent::Restarted { .. } => {
                self.shutdowns.remove(&uuid);
            }
            _ => {}
        }
    }

    /// Shutdown requests that have just passed the timeout (each once).
    pub fn timed_out(&mut self, now_ns: u64) -> Vec<PendingShutdown> {
        let mut out = Vec::new();
        for p in self.shutdowns.values_mut() {
            if !p.warned && now_ns.saturating_sub(p.at_ns) > SHUTDOWN_TIMEOUT_NS {
                p.warned = true;
                out.push(p.clone());
            }
        }
        out
    }

    /// Forget requests of domains that are no longer there.
    pub fn retain_live(&mut self, live: &[uuid::Uuid]) {
        self.shutdowns.retain(|u, _| live.contains(u));
    }

    pub fn selected_gone(&self) -> Option<&GoneView> {
        self.gone.get(self.gone_selected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Source;

    fn entry(seq: i64, at: u64, event: DomainEvent, pid: u32) -> JournalEntry {
        JournalEntry {
            seq,
            at_ns: at,
            host: "sim".into(),
            domid: Some(3),
            uuid: Some(uuid::Uuid::nil()),
            name: Some("web1".into()),
            source: Source {
                kind: SourceKind::Cli,
                pid: Some(pid),
            },
            event,
        }
    }

    #[test]
    fn an_unanswered_shutdown_times_out_once_and_an_answer_clears_it() {
        let mut f = Feed::default();
        let req = DomainEvent::ShutdownRequested {
            reason: ShutdownReason::Poweroff,
        };
        f.take(&[entry(1, 0, req.clone(), 9)], 1);
        assert!(f.timed_out(SHUTDOWN_TIMEOUT_NS / 2).is_empty());
        assert_eq!(f.timed_out(SHUTDOWN_TIMEOUT_NS + 1).len(), 1);
        assert!(f.timed_out(SHUTDOWN_TIMEOUT_NS * 2).is_empty(), "once");
        f.take(&[entry(2, 0, req, 9)], 1);
        f.take(
            &[entry(
                3,
                1,
                DomainEvent::ShutDown {
                    reason: ShutdownReason::Poweroff,
                },
                9,
            )],
            1,
        );
        assert!(f.shutdowns.is_empty());
    }

    #[test]
    fn others_crashes_are_announced_and_own_failures_shown_once() {
        let mut f = Feed::default();
        let crash = entry(
            1,
            0,
            DomainEvent::ShutDown {
                reason: ShutdownReason::Crash,
            },
            9,
        );
        assert_eq!(f.take(std::slice::from_ref(&crash), 1).len(), 1);
        assert!(f.take(&[crash], 9).is_empty(), "not one's own");
        let mut own = entry(
            2,
            0,
            DomainEvent::OpFailed {
                op: "pause".into(),
                error: "x".into(),
            },
            1,
        );
        own.source.kind = SourceKind::Tui;
        assert!(!shown(&own, 1));
        assert!(shown(&own, 2));
    }
}
