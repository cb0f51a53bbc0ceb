//! The host journal: every lifecycle event of every domain, in order, from
//! every domus process (CLI, TUI, supervisors) and from what the hypervisor
//! reported. Domain timelines, the TUI's Events tab and `domus events` are
//! all views of it.
//!
//! Retention: the newest [`KEEP_EVENTS`] events per host, and none older
//! than [`KEEP_DAYS`] days; pruned as it grows.

use std::fmt;
use std::path::PathBuf;

use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::{StoreError, StoreResult, Tx};
use crate::backend::{DomId, ShutdownReason};
use crate::config::Policy;

pub const KEEP_EVENTS: i64 = 100_000;
pub const KEEP_DAYS: u64 = 30;
/// Prune once every this many appends.
const PRUNE_EVERY: i64 = 1024;

/// Who wrote an event, or who caused it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// An operator at the TUI.
    Tui,
    /// A `domus` command.
    Cli,
    /// A domain's supervisor process, acting on its own (a policy).
    Supervisor,
    /// The guest did it (powered off, crashed, released a device).
    Guest,
    /// The hypervisor or something outside domus (`xl destroy`, a killed
    /// QEMU).
    Hypervisor,
    /// A domus process repairing what an interrupted one left.
    Repair,
}

impl SourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Tui => "tui",
            SourceKind::Cli => "cli",
            SourceKind::Supervisor => "supervisor",
            SourceKind::Guest => "guest",
            SourceKind::Hypervisor => "hypervisor",
            SourceKind::Repair => "repair",
        }
    }

    pub fn parse(s: &str) -> Option<SourceKind> {
        [
            SourceKind::Tui,
            SourceKind::Cli,
            SourceKind::Supervisor,
            SourceKind::Guest,
            SourceKind::Hypervisor,
            SourceKind::Repair,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// The source of an event: what caused it and which domus process (pid)
/// recorded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Source {
    pub kind: SourceKind,
    pub pid: Option<u32>,
}

impl Source {
    pub fn new(kind: SourceKind) -> Source {
        Source {
            kind,
            pid: Some(std::process::id()),
        }
    }

    /// The same process, recording something another party caused.
    pub fn as_kind(self, kind: SourceKind) -> Source {
        Source { kind, ..self }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.kind, self.pid) {
            (SourceKind::Guest | SourceKind::Hypervisor, _) | (_, None) => {
                f.write_str(self.kind.as_str())
            }
            (k, Some(pid)) => write!(f, "{} {pid}", k.as_str()),
        }
    }
}

/// A lifecycle event of a domain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum DomainEvent {
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
    /// The lifecycle state changed by itself or behind domus's back
    /// (letters as `xl list` prints them).
    StateChanged {
        from: String,
        to: String,
    },
    ShutdownRequested {
        reason: ShutdownReason,
    },
    ShutDown {
        reason: ShutdownReason,
    },
    /// The guest reset itself (QEMU's RESET without a shutdown).
    Reset,
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
    Vanished {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cause: Option<String>,
    },
    Destroyed,
    ConsoleOpened {
        pid: u32,
    },
    ConsoleClosed {
        pid: u32,
    },
    OpStarted {
        op: String,
    },
    OpFinished {
        op: String,
        ms: u64,
    },
    OpFailed {
        op: String,
        error: String,
    },
    /// What a domus process did about work an interrupted one left.
    Repaired {
        what: String,
    },
    Warning {
        message: String,
    },
}

impl DomainEvent {
    /// The event's kind as stored (`created`, `shut_down`, …).
    pub fn kind(&self) -> &'static str {
        use DomainEvent::*;
        match self {
            Created { .. } => "created",
            DeviceAttached { .. } => "device_attached",
            DeviceDetached { .. } => "device_detached",
            Paused => "paused",
            Unpaused => "unpaused",
            StateChanged { .. } => "state_changed",
            ShutdownRequested { .. } => "shutdown_requested",
            ShutDown { .. } => "shut_down",
            Reset => "reset",
            PolicyApplied { .. } => "policy_applied",
            Restarted { .. } => "restarted",
            RestartRefused { .. } => "restart_refused",
            RestartFailed { .. } => "restart_failed",
            Renamed { .. } => "renamed",
            CoreDumped { .. } => "core_dumped",
            MemoryTarget { .. } => "memory_target",
            Saved { .. } => "saved",
            Restored { .. } => "restored",
            Vanished { .. } => "vanished",
            Destroyed => "destroyed",
            ConsoleOpened { .. } => "console_opened",
            ConsoleClosed { .. } => "console_closed",
            OpStarted { .. } => "op_started",
            OpFinished { .. } => "op_finished",
            OpFailed { .. } => "op_failed",
            Repaired { .. } => "repaired",
            Warning { .. } => "warning",
        }
    }

    /// Worth announcing on the status line when someone else did it.
    pub fn is_important(&self) -> bool {
        use DomainEvent::*;
        match self {
            ShutDown { reason } => {
                matches!(reason, ShutdownReason::Crash | ShutdownReason::Watchdog)
            }
            RestartRefused { .. } | RestartFailed { .. } | Vanished { .. } | Repaired { .. } => {
                true
            }
            _ => false,
        }
    }

    /// Who has the console, which timelines may leave out.
    pub fn is_console(&self) -> bool {
        matches!(
            self,
            DomainEvent::ConsoleOpened { .. } | DomainEvent::ConsoleClosed { .. }
        )
    }

    /// Bookkeeping of operations, which views may fold away.
    pub fn is_op(&self) -> bool {
        matches!(
            self,
            DomainEvent::OpStarted { .. } | DomainEvent::OpFinished { .. }
        )
    }
}

impl fmt::Display for DomainEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use DomainEvent::*;
        match self {
            Created {
                image,
                memory_mib,
                vcpus,
            } => write!(f, "created ({image}, {memory_mib} MiB, {vcpus} vCPU)"),
            DeviceAttached { device } => write!(f, "device attached: {device}"),
            DeviceDetached { device } => write!(f, "device detached: {device}"),
            Paused => write!(f, "paused"),
            Unpaused => write!(f, "unpaused"),
            StateChanged { from, to } => write!(f, "state {from} -> {to}"),
            ShutdownRequested { reason } => write!(f, "shutdown requested ({reason})"),
            ShutDown { reason } => match reason {
                ShutdownReason::Crash => write!(f, "crashed"),
                r => write!(f, "shut down ({r})"),
            },
            Reset => write!(f, "the guest reset itself"),
            PolicyApplied { field, policy } => write!(f, "{field} policy applied: {policy}"),
            Restarted { new_domid } => write!(f, "restarted as domain {new_domid}"),
            RestartRefused { seconds_since_last } => write!(
                f,
                "restart refused: last restart was {seconds_since_last:.1} s ago (less than {} s); destroyed to stop a restart loop",
                crate::engine::MIN_RESTART_INTERVAL_SECS
            ),
            RestartFailed { error } => write!(f, "restart failed: {error}"),
            Renamed { from, to } => write!(f, "renamed {from} -> {to}"),
            CoreDumped { path } => write!(f, "core dumped to {}", path.display()),
            MemoryTarget { mib } => write!(f, "memory target set to {mib} MiB"),
            Saved { path } => write!(f, "saved to {}", path.display()),
            Restored { path } => write!(f, "restored from {}", path.display()),
            Vanished { cause: Some(c) } => write!(f, "vanished: {c}"),
            Vanished { cause: None } => write!(f, "vanished (no longer on the hypervisor)"),
            Destroyed => write!(f, "destroyed"),
            ConsoleOpened { pid } => write!(f, "console opened by pid {pid}"),
            ConsoleClosed { pid } => write!(f, "console closed by pid {pid}"),
            OpStarted { op } => write!(f, "{op} started"),
            OpFinished { op, ms } => write!(f, "{op} done ({ms} ms)"),
            OpFailed { op, error } => write!(f, "{op} failed: {error}"),
            Repaired { what } => write!(f, "repaired: {what}"),
            Warning { message } => write!(f, "warning: {message}"),
        }
    }
}

/// One line of the journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalEntry {
    pub seq: i64,
    pub at_ns: u64,
    pub host: String,
    pub domid: Option<DomId>,
    pub uuid: Option<uuid::Uuid>,
    pub name: Option<String>,
    pub source: Source,
    pub event: DomainEvent,
}

/// Which entries to read.
#[derive(Debug, Clone, Default)]
pub struct JournalFilter {
    /// Only entries after this sequence number.
    pub after: Option<i64>,
    pub uuid: Option<uuid::Uuid>,
    pub name: Option<String>,
    /// At most this many (the newest of them).
    pub limit: Option<usize>,
    /// Leave out the operations' own start and end entries (before the
    /// limit counts).
    pub skip_ops: bool,
}

/// The domain an event is about.
#[derive(Debug, Clone, Default)]
pub struct Subject {
    pub domid: Option<DomId>,
    pub uuid: Option<uuid::Uuid>,
    pub name: Option<String>,
}

impl Tx<'_> {
    /// Append an event; returns its sequence number.
    pub fn append(
        &self,
        at_ns: u64,
        subject: &Subject,
        source: Source,
        event: &DomainEvent,
    ) -> StoreResult<i64> {
        let body = serde_json::to_string(event).map_err(|e| StoreError::Corrupt {
            what: "event",
            message: e.to_string(),
        })?;
        self.conn
            .prepare_cached(
                "INSERT INTO events(host, at_ns, domid, uuid, name, source, pid, kind, body)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )
            .and_then(|mut st| {
                st.execute(params![
                    self.host,
                    i64::try_from(at_ns).unwrap_or(i64::MAX),
                    subject.domid,
                    subject.uuid.map(|u| u.to_string()),
                    subject.name,
                    source.kind.as_str(),
                    source.pid,
                    event.kind(),
                    body
                ])
            })
            .map_err(self.err("appending to the journal"))?;
        let seq = self.conn.last_insert_rowid();
        if seq % PRUNE_EVERY == 0 {
            self.prune(at_ns)?;
        }
        Ok(seq)
    }

    /// Drop what the retention no longer keeps.
    pub fn prune(&self, now_ns: u64) -> StoreResult<()> {
        let cutoff = now_ns.saturating_sub(KEEP_DAYS * 86_400 * crate::clock::NS_PER_SEC);
        self.conn
            .execute(
                "DELETE FROM events WHERE host = ?1 AND (at_ns < ?2 OR seq <= (
                    SELECT seq FROM events WHERE host = ?1 ORDER BY seq DESC LIMIT 1 OFFSET ?3))",
                params![
                    self.host,
                    i64::try_from(cutoff).unwrap_or(i64::MAX),
                    KEEP_EVENTS
                ],
            )
            .map_err(self.err("pruning the journal"))?;
        Ok(())
    }

    /// The newest sequence number of this host (0 when empty).
    pub fn last_seq(&self) -> StoreResult<i64> {
        self.conn
            .query_row(
                "SELECT MAX(seq) FROM events WHERE host = ?1",
                [self.host],
                |r| r.get::<_, Option<i64>>(0),
            )
            .map(Option::unwrap_or_default)
            .map_err(self.err("reading the journal"))
    }

    /// Entries matching `filter`, oldest first.
    pub fn journal(&self, filter: &JournalFilter) -> StoreResult<Vec<JournalEntry>> {
        let limit = filter
            .limit
            .and_then(|l| i64::try_from(l).ok())
            .unwrap_or(i64::MAX);
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT seq, at_ns, domid, uuid, name, source, pid, body FROM events
                 WHERE host = ?1 AND seq > ?2
                   AND (?3 IS NULL OR uuid = ?3)
                   AND (?4 IS NULL OR name = ?4)
                   AND (?6 = 0 OR json_extract(body, '$.event') NOT IN ('op_started', 'op_finished'))
                 ORDER BY seq DESC LIMIT ?5",
            )
            .map_err(self.err("reading the journal"))?;
        let rows = st
            .query_map(
                params![
                    self.host,
                    filter.after.unwrap_or(0),
                    filter.uuid.map(|u| u.to_string()),
                    filter.name,
                    limit,
                    filter.skip_ops
                ],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, Option<u32>>(2)?,
                        r.get::<_, Option<String>>(3)?,
                        r.get::<_, Option<String>>(4)?,
                        r.get::<_, String>(5)?,
                        r.get::<_, Option<u32>>(6)?,
                        r.get::<_, String>(7)?,
                    ))
                },
            )
            .map_err(self.err("reading the journal"))?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, at, domid, uuid, name, source, pid, body) =
                row.map_err(self.err("reading the journal"))?;
            // An event this build does not know (written by a newer domus)
            // is skipped rather than failing the whole view.
            let Ok(event) = serde_json::from_str::<DomainEvent>(&body) else {
                tracing::debug!(seq, body, "skipping an unknown journal event");
                continue;
            };
            out.push(JournalEntry {
                seq,
                at_ns: u64::try_from(at).unwrap_or(0),
                host: self.host.to_string(),
                domid,
                uuid: uuid.and_then(|u| u.parse().ok()),
                name,
                source: Source {
                    kind: SourceKind::parse(&source).unwrap_or(SourceKind::Hypervisor),
                    pid,
                },
                event,
            });
        }
        out.reverse();
        Ok(out)
    }

    /// The newest event of a domain, if any.
    pub fn last_event_of(&self, uuid: uuid::Uuid) -> StoreResult<Option<JournalEntry>> {
        let seq: Option<i64> = self
            .conn
            .query_row(
                "SELECT MAX(seq) FROM events WHERE host = ?1 AND uuid = ?2",
                params![self.host, uuid.to_string()],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.err("reading the journal"))?
            .flatten();
        let Some(seq) = seq else { return Ok(None) };
        Ok(self
            .journal(&JournalFilter {
                after: Some(seq - 1),
                uuid: Some(uuid),
                limit: Some(1),
                ..Default::default()
            })?
            .pop())
    }
}
