//! The state store: one embedded SQLite database per state directory
//! (`STATE/domus.db`), shared by every domus process on the host — CLI,
//! TUI and supervisors. It holds, per host (`sim`, `qemu`, `xen`, …):
//!
//! - **records** of the domains domus built (typed configs, policies'
//!   bookkeeping), including those still being built and those gone;
//! - **intents**: operations in flight with their owner's pid, so that
//!   whoever finds one whose owner died can finish or roll it back;
//! - the **journal**: every lifecycle event, in order, from every process.
//!
//! Why SQLite (through `rusqlite`, bundled): transactions span several
//! records and the journal at once; WAL mode lets readers run beside one
//! writer and survives a `kill -9` at any point; the cost of an operation
//! does not grow with the number of domains (indexed rows instead of
//! rewriting whole JSON files); and `BEGIN IMMEDIATE` gives one lock order
//! for every process. A writer never holds a transaction across a backend
//! call: intents make long operations visible and recoverable instead.

pub mod follow;
mod intents;
pub mod journal;
mod migrate;
mod records;

pub use intents::{Intent, OpKind, Owner, start_time};
pub use journal::{DomainEvent, JournalEntry, JournalFilter, Source, SourceKind};
pub use records::{DeviceKey, DomainRecord, Phase};

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};

/// The schema this build writes. Older databases are upgraded on open.
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta(
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS domains(
    host TEXT NOT NULL,
    uuid TEXT NOT NULL,
    name TEXT NOT NULL,
    domid INTEGER,
    phase TEXT NOT NULL,
    config TEXT NOT NULL,
    source TEXT,
    state TEXT,
    last_restart_ns INTEGER,
    restarts INTEGER NOT NULL DEFAULT 0,
    handled_shutdown INTEGER,
    note TEXT,
    created_ns INTEGER NOT NULL,
    gone_ns INTEGER,
    rev INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY(host, uuid)
);
CREATE UNIQUE INDEX IF NOT EXISTS domains_live_name ON domains(host, name) WHERE phase != 'gone';
CREATE INDEX IF NOT EXISTS domains_domid ON domains(host, domid) WHERE phase != 'gone';
CREATE INDEX IF NOT EXISTS domains_gone ON domains(host, gone_ns) WHERE phase = 'gone';
CREATE INDEX IF NOT EXISTS domains_rev ON domains(host, rev);
CREATE TABLE IF NOT EXISTS devices(
    host TEXT NOT NULL,
    uuid TEXT NOT NULL,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    writable INTEGER NOT NULL,
    label TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS devices_key ON devices(host, kind, key);
CREATE INDEX IF NOT EXISTS devices_uuid ON devices(host, uuid);
CREATE TABLE IF NOT EXISTS intents(
    id INTEGER PRIMARY KEY,
    host TEXT NOT NULL,
    op TEXT NOT NULL,
    uuid TEXT,
    name TEXT,
    domid INTEGER,
    stage TEXT NOT NULL,
    owner_pid INTEGER NOT NULL,
    owner_start INTEGER NOT NULL,
    owner_kind TEXT NOT NULL,
    started_ns INTEGER NOT NULL,
    detail TEXT
);
CREATE INDEX IF NOT EXISTS intents_host ON intents(host, uuid);
CREATE TABLE IF NOT EXISTS events(
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    host TEXT NOT NULL,
    at_ns INTEGER NOT NULL,
    domid INTEGER,
    uuid TEXT,
    name TEXT,
    source TEXT NOT NULL,
    pid INTEGER,
    kind TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_uuid ON events(host, uuid, seq);
CREATE INDEX IF NOT EXISTS events_name ON events(host, name, seq);
CREATE TABLE IF NOT EXISTS kv(
    host TEXT NOT NULL,
    ns TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY(host, ns, key)
);
";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state store {path}: {context}: {source}")]
    Sqlite {
        path: PathBuf,
        context: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    #[error(
        "state store {path} is damaged ({reason}); domus moved it to {moved_to} and starts a new one"
    )]
    Damaged {
        path: PathBuf,
        reason: String,
        moved_to: PathBuf,
    },
    #[error(
        "state store {path} was written by a newer domus (schema {found}; this one reads up to {SCHEMA_VERSION})"
    )]
    TooNew { path: PathBuf, found: i64 },
    #[error("a domain named {name} already exists{}", .domid.map(|d| format!(" (id {d})")).unwrap_or_else(|| " (it is being built)".into()))]
    NameTaken { name: String, domid: Option<u32> },
    #[error("uuid {uuid} is already used by {name}{}", .domid.map(|d| format!(" (id {d})")).unwrap_or_default())]
    UuidTaken {
        uuid: uuid::Uuid,
        name: String,
        domid: Option<u32>,
    },
    /// A device another domain holds (the message says which).
    #[error("{message}")]
    DeviceTaken { message: String },
    #[error("{context} {path}: {source}")]
    Io {
        context: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("stored {what} does not parse: {message}")]
    Corrupt { what: &'static str, message: String },
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A handle on the store for one host. Cheap operations only: every
/// transaction is short, and none spans a backend call.
pub struct Store {
    conn: Mutex<Connection>,
    host: String,
    path: PathBuf,
    /// What opening found and repaired, for the operator.
    notes: Vec<String>,
}

/// How long a writer waits for another process's transaction.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

fn sql(path: &Path, context: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    let path = path.to_path_buf();
    move |source| StoreError::Sqlite {
        path,
        context,
        source,
    }
}

impl Store {
    /// Open (or create) `STATE/domus.db` for `host`. A database that does
    /// not open is moved aside and reported, never silently replaced.
    pub fn open(state_dir: &Path, host: &str) -> StoreResult<Store> {
        let path = state_dir.join("domus.db");
        let existed = path.exists();
        let mut notes = Vec::new();
        let conn = match Self::connect(&path) {
            Ok(c) => c,
            Err(e) if existed && is_damage(&e) => {
                let moved_to = move_aside(&path)?;
                let damaged = StoreError::Damaged {
                    path: path.clone(),
                    reason: e.to_string(),
                    moved_to,
                };
                tracing::error!("{damaged}");
                notes.push(damaged.to_string());
                Self::connect(&path)?
            }
            Err(e) => return Err(e),
        };
        let store = Store {
            conn: Mutex::new(conn),
            host: host.to_string(),
            path: path.clone(),
            notes,
        };
        store.set_meta_if_absent("created_ns", &crate::clock::wall_ns().to_string())?;
        Ok(store)
    }

    /// A private in-memory store (tests, benchmarks).
    pub fn memory(host: &str) -> StoreResult<Store> {
        let path = PathBuf::from(":memory:");
        let conn = Connection::open_in_memory().map_err(sql(&path, "opening"))?;
        conn.execute_batch(SCHEMA)
            .map_err(sql(&path, "creating the schema"))?;
        let store = Store {
            conn: Mutex::new(conn),
            host: host.to_string(),
            path,
            notes: Vec::new(),
        };
        store.set_meta_if_absent("schema_version", &SCHEMA_VERSION.to_string())?;
        Ok(store)
    }

    fn connect(path: &Path) -> StoreResult<Connection> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
                context: "creating",
                path: dir.to_path_buf(),
                source,
            })?;
        }
        // Refuse to open a database through a symlink someone planted.
        if let Ok(m) = std::fs::symlink_metadata(path)
            && m.file_type().is_symlink()
        {
            return Err(StoreError::Io {
                context: "refusing a symlink at",
                path: path.to_path_buf(),
                source: std::io::Error::other("the state store must be a regular file"),
            });
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_NOFOLLOW;
        // SQLite creates its files (db, -wal, -shm) with the process umask.
        let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
        let opened = Connection::open_with_flags(real_parent(path), flags);
        nix::sys::stat::umask(old);
        let conn = opened.map_err(sql(path, "opening"))?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(sql(path, "setting the busy timeout"))?;
        wal(&conn).map_err(sql(path, "switching to WAL"))?;
        // WAL + NORMAL survives a process crash at any point; only a power
        // loss may lose the newest transactions.
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(sql(path, "setting synchronous"))?;
        let found: Option<i64> = conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'schema_version'",
                [],
                |r| r.get::<_, String>(0),
            )
            .optional()
            .ok()
            .flatten()
            .and_then(|v| v.parse().ok());
        if let Some(found) = found.filter(|v| *v > SCHEMA_VERSION) {
            return Err(StoreError::TooNew {
                path: path.to_path_buf(),
                found,
            });
        }
        conn.execute_batch(SCHEMA)
            .map_err(sql(path, "creating the schema"))?;
        if found != Some(SCHEMA_VERSION) {
            // Written only when it changes: opening must not wake followers.
            conn.execute(
                "INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?1)",
                params![SCHEMA_VERSION.to_string()],
            )
            .map_err(sql(path, "recording the schema version"))?;
        }
        // No integrity scan on open: its cost grows with the store, and a
        // damaged file already fails above (SQLite reads its header and
        // schema); damage found later is reported by the query that meets it.
        Ok(conn)
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What opening found: a damaged store moved aside, a migration.
    pub fn take_notes(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notes)
    }

    /// Whether this host's domains have never been reconciled with this
    /// store (a new or re-created store): their records may need rebuilding
    /// from the backend. Marks the host as seen.
    pub fn first_sight(&self) -> StoreResult<bool> {
        if self.read(|tx| tx.counter("seen"))? > 0 {
            return Ok(false);
        }
        self.write(|tx| {
            let seen = tx.counter("seen")?;
            if seen == 0 {
                tx.bump("seen")?;
            }
            Ok(seen == 0)
        })
    }

    /// Forget that the host was seen: the rebuild that followed
    /// [`Store::first_sight`] failed, and the next process tries again.
    pub fn unsee(&self) -> StoreResult<()> {
        let k = format!("{}:seen", self.host);
        self.write(|tx| {
            tx.conn
                .execute("DELETE FROM meta WHERE key = ?1", [k])
                .map_err(tx.err("counting"))?;
            Ok(())
        })
    }

    /// Whether a periodic chore named `what` is due (last done more than
    /// `every_ns` ago); marks it done now when it is.
    pub fn due(&self, what: &str, now_ns: u64, every_ns: u64) -> StoreResult<bool> {
        let key = format!("{}:last:{what}", self.host);
        let last = |tx: &Tx<'_>| -> StoreResult<u64> {
            Ok(tx
                .conn
                .query_row("SELECT value FROM meta WHERE key = ?1", [&key], |r| {
                    r.get::<_, String>(0)
                })
                .optional()
                .map_err(tx.err("reading meta"))?
                .and_then(|v| v.parse().ok())
                .unwrap_or(0))
        };
        if now_ns.saturating_sub(self.read(|tx| last(tx))?) < every_ns {
            return Ok(false);
        }
        self.write(|tx| {
            if now_ns.saturating_sub(last(tx)?) < every_ns {
                return Ok(false);
            }
            tx.conn
                .execute(
                    "INSERT OR REPLACE INTO meta(key, value) VALUES (?1, ?2)",
                    params![key, now_ns.to_string()],
                )
                .map_err(tx.err("writing meta"))?;
            Ok(true)
        })
    }

    fn set_meta_if_absent(&self, key: &str, value: &str) -> StoreResult<()> {
        let present = self.read(|tx| {
            tx.conn
                .query_row("SELECT 1 FROM meta WHERE key = ?1", [key], |_| Ok(()))
                .optional()
                .map_err(tx.err("reading meta"))
        })?;
        if present.is_some() {
            return Ok(());
        }
        self.write(|tx| {
            tx.conn
                .execute(
                    "INSERT OR IGNORE INTO meta(key, value) VALUES (?1, ?2)",
                    params![key, value],
                )
                .map_err(tx.err("writing meta"))?;
            Ok(())
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves the connection usable:
        // SQLite rolls back the unfinished transaction on the next BEGIN.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Run `f` in a write transaction (`BEGIN IMMEDIATE`: the one lock
    /// order for every domus process); its changes are kept only if it
    /// returns `Ok`.
    pub fn write<R>(&self, f: impl FnOnce(&Tx<'_>) -> StoreResult<R>) -> StoreResult<R> {
        let mut conn = self.lock();
        let t = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql(&self.path, "starting a transaction"))?;
        let tx = Tx {
            conn: &t,
            host: &self.host,
            path: &self.path,
        };
        let out = f(&tx)?;
        t.commit().map_err(sql(&self.path, "committing"))?;
        Ok(out)
    }

    /// Run `f` on a consistent snapshot, without taking the write lock.
    pub fn read<R>(&self, f: impl FnOnce(&Tx<'_>) -> StoreResult<R>) -> StoreResult<R> {
        let mut conn = self.lock();
        let t = conn
            .transaction_with_behavior(TransactionBehavior::Deferred)
            .map_err(sql(&self.path, "starting a read"))?;
        let tx = Tx {
            conn: &t,
            host: &self.host,
            path: &self.path,
        };
        let out = f(&tx)?;
        t.finish().map_err(sql(&self.path, "ending a read"))?;
        Ok(out)
    }

    /// Import the JSON records of an older domus (`engine-HOST.json`), once.
    pub fn migrate_json(&mut self, state_dir: &Path) -> StoreResult<()> {
        if let Some(note) = migrate::import_engine_json(self, state_dir)? {
            self.notes.push(note);
        }
        Ok(())
    }
}

/// A transaction on the store, scoped to one host.
pub struct Tx<'a> {
    conn: &'a rusqlite::Transaction<'a>,
    host: &'a str,
    path: &'a Path,
}

impl Tx<'_> {
    fn err(&self, context: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
        sql(self.path, context)
    }

    pub fn host(&self) -> &str {
        self.host
    }

    /// A backend's own small record (`kv` table), as JSON text.
    pub fn kv_get(&self, ns: &str, key: &str) -> StoreResult<Option<String>> {
        self.conn
            .query_row(
                "SELECT value FROM kv WHERE host = ?1 AND ns = ?2 AND key = ?3",
                params![self.host, ns, key],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.err("reading kv"))
    }

    pub fn kv_set(&self, ns: &str, key: &str, value: &str) -> StoreResult<()> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO kv(host, ns, key, value) VALUES (?1, ?2, ?3, ?4)",
                params![self.host, ns, key, value],
            )
            .map_err(self.err("writing kv"))?;
        Ok(())
    }

    pub fn kv_delete(&self, ns: &str, key: &str) -> StoreResult<()> {
        self.conn
            .execute(
                "DELETE FROM kv WHERE host = ?1 AND ns = ?2 AND key = ?3",
                params![self.host, ns, key],
            )
            .map_err(self.err("deleting kv"))?;
        Ok(())
    }

    /// Every `(key, value)` of a kv namespace.
    pub fn kv_all(&self, ns: &str) -> StoreResult<Vec<(String, String)>> {
        let mut st = self
            .conn
            .prepare_cached("SELECT key, value FROM kv WHERE host = ?1 AND ns = ?2 ORDER BY key")
            .map_err(self.err("reading kv"))?;
        let rows = st
            .query_map(params![self.host, ns], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(self.err("reading kv"))?;
        rows.collect::<Result<_, _>>()
            .map_err(self.err("reading kv"))
    }

    /// A per-host counter's value (0 before its first bump).
    pub fn counter(&self, key: &str) -> StoreResult<i64> {
        let k = format!("{}:{key}", self.host);
        let v: Option<String> = self
            .conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [k], |r| r.get(0))
            .optional()
            .map_err(self.err("counting"))?;
        Ok(v.and_then(|v| v.parse().ok()).unwrap_or(0))
    }

    /// Raise a per-host counter to `value` if it is below.
    fn raise(&self, key: &str, value: i64) -> StoreResult<()> {
        let k = format!("{}:{key}", self.host);
        self.conn
            .execute(
                "INSERT INTO meta(key, value) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET value = MAX(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER))",
                params![k, value.to_string()],
            )
            .map_err(self.err("counting"))?;
        Ok(())
    }

    /// The next value of a per-host counter that only grows.
    fn bump(&self, key: &str) -> StoreResult<i64> {
        let k = format!("{}:{key}", self.host);
        self.conn
            .execute(
                "INSERT INTO meta(key, value) VALUES (?1, '1')
                 ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1",
                params![k],
            )
            .map_err(self.err("counting"))?;
        let v: String = self
            .conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [k], |r| r.get(0))
            .map_err(self.err("counting"))?;
        v.parse().map_err(|_| StoreError::Corrupt {
            what: "counter",
            message: v,
        })
    }
}

/// `path` with its directory resolved: SQLite's `NOFOLLOW` refuses a
/// symbolic link anywhere in the path, and a home directory reached
/// through one (`/home` → `/var/home`) is ordinary. The directory itself
/// was checked (not a link, ours) before; the file stays unfollowed.
pub fn real_parent(path: &Path) -> PathBuf {
    match (path.parent(), path.file_name()) {
        (Some(dir), Some(name)) => std::fs::canonicalize(dir)
            .map(|d| d.join(name))
            .unwrap_or_else(|_| path.to_path_buf()),
        _ => path.to_path_buf(),
    }
}

/// Put a database in WAL mode. Two processes opening a new database at
/// once can find it locked for the switch even with a busy timeout (SQLite
/// does not always wait on it there): wait a little and try again.
pub fn wal(conn: &Connection) -> rusqlite::Result<()> {
    let mut tries = 0;
    loop {
        let mode: rusqlite::Result<String> =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0));
        match mode {
            Ok(_) => return Ok(()),
            Err(rusqlite::Error::SqliteFailure(f, _))
                if f.code == rusqlite::ErrorCode::DatabaseBusy && tries < 200 =>
            {
                tries += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(e),
        }
    }
}

fn is_damage(e: &StoreError) -> bool {
    match e {
        StoreError::Sqlite {
            source: rusqlite::Error::SqliteFailure(f, _),
            ..
        } => matches!(
            f.code,
            rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase
        ),
        _ => false,
    }
}

/// Move a damaged database (and its WAL) aside, keeping it for inspection.
fn move_aside(path: &Path) -> StoreResult<PathBuf> {
    let stamp = crate::clock::wall_ns() / 1_000_000_000;
    let to = path.with_extension(format!("db.damaged-{stamp}"));
    std::fs::rename(path, &to).map_err(|source| StoreError::Io {
        context: "moving aside",
        path: path.to_path_buf(),
        source,
    })?;
    for ext in ["db-wal", "db-shm"] {
        let side = path.with_extension(ext);
        if side.exists() {
            let _ = std::fs::rename(&side, to.with_extension(format!("{ext}.damaged-{stamp}")));
        }
    }
    Ok(to)
}

#[cfg(test)]
mod tests;
