//! Operations in flight. Before an operation touches the backend, domus
//! records its intent (what, on which domain, how far it got, and which
//! process owns it). When the owner finishes, the intent goes in the same
//! transaction as the operation's record changes and journal events. An
//! intent whose owner died is found by the next domus process, which
//! finishes or rolls it back (see the engine's `recover`).

use std::fmt;

use rusqlite::{OptionalExtension, Row, params};

use super::journal::SourceKind;
use super::{StoreError, StoreResult, Tx};
use crate::backend::DomId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpKind {
    Create,
    Restore,
    Destroy,
    Pause,
    Unpause,
    Shutdown,
    Attach,
    Detach,
    MemoryTarget,
    Save,
    /// Handling a shutdown: the domain's on_poweroff/on_reboot/on_crash.
    Policy,
}

impl OpKind {
    const ALL: [OpKind; 11] = [
        OpKind::Create,
        OpKind::Restore,
        OpKind::Destroy,
        OpKind::Pause,
        OpKind::Unpause,
        OpKind::Shutdown,
        OpKind::Attach,
        OpKind::Detach,
        OpKind::MemoryTarget,
        OpKind::Save,
        OpKind::Policy,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OpKind::Create => "create",
            OpKind::Restore => "restore",
            OpKind::Destroy => "destroy",
            OpKind::Pause => "pause",
            OpKind::Unpause => "unpause",
            OpKind::Shutdown => "shutdown",
            OpKind::Attach => "attach",
            OpKind::Detach => "detach",
            OpKind::MemoryTarget => "mem-set",
            OpKind::Save => "save",
            OpKind::Policy => "policy",
        }
    }

    pub fn parse(s: &str) -> Option<OpKind> {
        OpKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Whether the domain may be gone when this operation ends normally.
    pub fn ends_domain(self) -> bool {
        matches!(self, OpKind::Destroy | OpKind::Save | OpKind::Policy)
    }
}

impl fmt::Display for OpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The process that owns an intent: its pid and start time (so a reused
/// pid is not taken for the owner).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pub pid: u32,
    pub start: u64,
    pub kind: SourceKind,
}

impl Owner {
    pub fn me(kind: SourceKind) -> Owner {
        let pid = std::process::id();
        Owner {
            pid,
            start: start_time(pid).unwrap_or(0),
            kind,
        }
    }

    /// Whether the owning process still runs.
    pub fn alive(&self) -> bool {
        start_time(self.pid).is_some_and(|s| s == self.start)
    }
}

/// A process's start time in clock ticks since boot (`/proc/PID/stat`
/// field 22); `None` when it does not exist or is a zombie.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: fields
    // are counted after its last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    // `rest` starts at field 3 (state); field 22 is 19 further on.
    fields.nth(18)?.parse().ok()
}

#[derive(Debug, Clone, PartialEq)]
pub struct Intent {
    pub id: i64,
    pub op: OpKind,
    pub uuid: Option<uuid::Uuid>,
    pub name: Option<String>,
    pub domid: Option<DomId>,
    /// How far it got (a construction stage, `backend`, …).
    pub stage: String,
    pub owner: Owner,
    pub started_ns: u64,
    /// Operation details (the device being attached, the save path, …).
    pub detail: Option<String>,
}

const COLUMNS: &str =
    "id, op, uuid, name, domid, stage, owner_pid, owner_start, owner_kind, started_ns, detail";

impl Tx<'_> {
    fn intent_from_row(r: &Row<'_>) -> rusqlite::Result<Intent> {
        let op: String = r.get(1)?;
        let kind: String = r.get(8)?;
        Ok(Intent {
            id: r.get(0)?,
            op: OpKind::parse(&op).unwrap_or(OpKind::Policy),
            uuid: r.get::<_, Option<String>>(2)?.and_then(|u| u.parse().ok()),
            name: r.get(3)?,
            domid: r.get(4)?,
            stage: r.get(5)?,
            owner: Owner {
                pid: r.get(6)?,
                start: u64::try_from(r.get::<_, i64>(7)?).unwrap_or(0),
                kind: SourceKind::parse(&kind).unwrap_or(SourceKind::Cli),
            },
            started_ns: u64::try_from(r.get::<_, i64>(9)?).unwrap_or(0),
            detail: r.get(10)?,
        })
    }

    pub fn insert_intent(&self, intent: &Intent) -> StoreResult<i64> {
        self.conn
            .prepare_cached(
                "INSERT INTO intents(host, op, uuid, name, domid, stage, owner_pid, owner_start,
                    owner_kind, started_ns, detail)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )
            .and_then(|mut st| {
                st.execute(params![
                    self.host,
                    intent.op.as_str(),
                    intent.uuid.map(|u| u.to_string()),
                    intent.name,
                    intent.domid,
                    intent.stage,
                    intent.owner.pid,
                    i64::try_from(intent.owner.start).unwrap_or(0),
                    intent.owner.kind.as_str(),
                    i64::try_from(intent.started_ns).unwrap_or(i64::MAX),
                    intent.detail
                ])
            })
            .map_err(self.err("recording an intent"))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Record how far an intent got, and the domid once known.
    pub fn advance_intent(&self, id: i64, stage: &str, domid: Option<DomId>) -> StoreResult<()> {
        self.conn
            .prepare_cached(
                "UPDATE intents SET stage = ?2, domid = COALESCE(?3, domid) WHERE id = ?1",
            )
            .and_then(|mut st| st.execute(params![id, stage, domid]))
            .map_err(self.err("updating an intent"))?;
        Ok(())
    }

    /// Take over an intent from its (dead) owner; false when another
    /// process took it first.
    pub fn reown_intent(&self, id: i64, from: Owner, to: Owner) -> StoreResult<bool> {
        let n = self
            .conn
            .execute(
                "UPDATE intents SET owner_pid = ?4, owner_start = ?5, owner_kind = ?6
                 WHERE id = ?1 AND owner_pid = ?2 AND owner_start = ?3",
                params![
                    id,
                    from.pid,
                    i64::try_from(from.start).unwrap_or(0),
                    to.pid,
                    i64::try_from(to.start).unwrap_or(0),
                    to.kind.as_str()
                ],
            )
            .map_err(self.err("taking over an intent"))?;
        Ok(n == 1)
    }

    pub fn delete_intent(&self, id: i64) -> StoreResult<()> {
        self.conn
            .prepare_cached("DELETE FROM intents WHERE id = ?1")
            .and_then(|mut st| st.execute([id]))
            .map_err(self.err("removing an intent"))?;
        Ok(())
    }

    pub fn intent(&self, id: i64) -> StoreResult<Option<Intent>> {
        let q = format!("SELECT {COLUMNS} FROM intents WHERE id = ?1");
        self.conn
            .query_row(&q, [id], Self::intent_from_row)
            .optional()
            .map_err(self.err("reading intents"))
    }

    /// Every intent of this host, oldest first.
    pub fn intents(&self) -> StoreResult<Vec<Intent>> {
        let q = format!("SELECT {COLUMNS} FROM intents WHERE host = ?1 ORDER BY id");
        let mut st = self
            .conn
            .prepare_cached(&q)
            .map_err(self.err("reading intents"))?;
        let rows = st
            .query_map([self.host], Self::intent_from_row)
            .map_err(self.err("reading intents"))?;
        rows.collect::<Result<_, _>>()
            .map_err(self.err("reading intents"))
    }

    /// Intents in flight on one domain (by uuid).
    pub fn intents_on(&self, uuid: uuid::Uuid) -> StoreResult<Vec<Intent>> {
        let q = format!("SELECT {COLUMNS} FROM intents WHERE host = ?1 AND uuid = ?2 ORDER BY id");
        let mut st = self
            .conn
            .prepare_cached(&q)
            .map_err(self.err("reading intents"))?;
        let rows = st
            .query_map(params![self.host, uuid.to_string()], Self::intent_from_row)
            .map_err(self.err("reading intents"))?;
        rows.collect::<Result<_, _>>()
            .map_err(self.err("reading intents"))
    }
}

impl From<std::num::TryFromIntError> for StoreError {
    fn from(e: std::num::TryFromIntError) -> Self {
        StoreError::Corrupt {
            what: "number",
            message: e.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_made_up_one_is_not() {
        let me = Owner::me(SourceKind::Cli);
        assert!(me.start > 0, "start time read from /proc");
        assert!(me.alive());
        let dead = Owner {
            pid: u32::MAX - 7,
            start: 1,
            kind: SourceKind::Cli,
        };
        assert!(!dead.alive());
    }

    #[test]
    fn a_reused_pid_is_not_the_owner() {
        // pid 1 exists, but not with this start time.
        let impostor = Owner {
            pid: 1,
            start: u64::MAX,
            kind: SourceKind::Cli,
        };
        assert!(!impostor.alive());
    }
}
