//! Where the simulated host lives: an SQLite database (`STATE/sim/host.db`,
//! or in memory for tests and benchmarks), one row per domain, shared by
//! every domus process so a `domus create` in one and a `domus list` in
//! another see one host. A call reads and writes only the rows it needs, so
//! its cost does not grow with the number of domains. Console output lives
//! beside it (files, or memory).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};

use super::model::{HostState, STATE_FORMAT, SimDomain};
use crate::backend::{BackendError, BackendResult, DomId};
use crate::console::archive::Archive;

/// Console logs are trimmed to the newest half once they pass this size.
const CONSOLE_CAP: usize = 1 << 20;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS host(
    id INTEGER PRIMARY KEY CHECK (id = 1),
    data TEXT NOT NULL,
    rev INTEGER NOT NULL DEFAULT 0,
    deletes INTEGER NOT NULL DEFAULT 0,
    used_kib INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS domains(
    domid INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    uuid TEXT NOT NULL UNIQUE,
    memory_kib INTEGER NOT NULL,
    shutdown INTEGER NOT NULL,
    rev INTEGER NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS domains_shutdown ON domains(shutdown) WHERE shutdown = 1;
CREATE INDEX IF NOT EXISTS domains_rev ON domains(rev);
";

/// Console output produced inside a transaction, written when it commits.
#[derive(Default)]
pub struct ConsoleOut {
    pub appends: Vec<(DomId, Vec<u8>)>,
    pub removals: Vec<(DomId, uuid::Uuid)>,
}

impl ConsoleOut {
    pub fn push(&mut self, domid: DomId, bytes: impl AsRef<[u8]>) {
        let bytes = bytes.as_ref();
        match self.appends.last_mut() {
            Some((d, buf)) if *d == domid => buf.extend_from_slice(bytes),
            _ => self.appends.push((domid, bytes.to_vec())),
        }
    }
}

enum Consoles {
    Memory(Mutex<HashMap<DomId, Vec<u8>>>),
    Disk(PathBuf, Option<Archive>),
}

/// The domains as last read, kept while nothing changes.
#[derive(Default)]
struct Cache {
    stamp: Option<(i64, i64)>,
    domains: Arc<Vec<SimDomain>>,
}

pub struct Store {
    conn: Mutex<Connection>,
    path: PathBuf,
    consoles: Consoles,
    cache: Mutex<Cache>,
}

fn db_err(path: &Path, context: &'static str) -> impl FnOnce(rusqlite::Error) -> BackendError {
    let context = format!("sim host {}: {context}", path.display());
    move |e| BackendError::io(context, std::io::Error::other(e))
}

fn json_err(e: serde_json::Error) -> BackendError {
    BackendError::io("sim host: a stored domain", std::io::Error::other(e))
}

fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> BackendError {
    let context = context.into();
    move |e| BackendError::io(context, e)
}

fn trim(buf: &mut Vec<u8>) {
    if buf.len() > CONSOLE_CAP {
        let cut = buf.len() - CONSOLE_CAP / 2;
        buf.drain(..cut);
    }
}

/// A transaction on the simulated host.
pub struct SimTx<'a> {
    conn: &'a rusqlite::Transaction<'a>,
    path: &'a Path,
    /// The host's facts; written back at commit when changed.
    pub host: HostState,
}

impl SimTx<'_> {
    fn err(&self, context: &'static str) -> impl FnOnce(rusqlite::Error) -> BackendError {
        db_err(self.path, context)
    }

    pub fn domain(&self, domid: DomId) -> BackendResult<Option<SimDomain>> {
        let data: Option<String> = self
            .conn
            .prepare_cached("SELECT data FROM domains WHERE domid = ?1")
            .and_then(|mut st| st.query_row([domid], |r| r.get(0)).optional())
            .map_err(self.err("reading a domain"))?;
        data.map(|d| serde_json::from_str(&d).map_err(json_err))
            .transpose()
    }

    pub fn put(&self, d: &SimDomain) -> BackendResult<()> {
        let data = serde_json::to_string(d).map_err(json_err)?;
        let rev = self.bump("rev")?;
        // The host's memory in use, kept as a sum so asking for it costs
        // the same with 10 or 10,000 domains.
        let old = self.memory_of(d.domid)?;
        self.add_used(
            i64::try_from(d.memory_kib)
                .unwrap_or(i64::MAX)
                .saturating_sub(old),
        )?;
        self.conn
            .prepare_cached(
                // An upsert on the domid: `OR REPLACE` would silently delete
                // another domain that clashes on name or uuid.
                "INSERT INTO domains(domid, name, uuid, memory_kib, shutdown, rev, data)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT(domid) DO UPDATE SET name = excluded.name, uuid = excluded.uuid,
                    memory_kib = excluded.memory_kib, shutdown = excluded.shutdown,
                    rev = excluded.rev, data = excluded.data",
            )
            .and_then(|mut st| {
                st.execute(params![
                    d.domid,
                    d.name,
                    d.uuid.to_string(),
                    i64::try_from(d.memory_kib).unwrap_or(i64::MAX),
                    d.shutdown.is_some(),
                    rev,
                    data
                ])
            })
            .map_err(self.err("writing a domain"))?;
        Ok(())
    }

    fn memory_of(&self, domid: DomId) -> BackendResult<i64> {
        Ok(self
            .conn
            .prepare_cached("SELECT memory_kib FROM domains WHERE domid = ?1")
            .and_then(|mut st| st.query_row([domid], |r| r.get(0)).optional())
            .map_err(self.err("reading a domain"))?
            .unwrap_or(0))
    }

    fn add_used(&self, delta: i64) -> BackendResult<()> {
        if delta != 0 {
            self.conn
                .prepare_cached("UPDATE host SET used_kib = used_kib + ?1 WHERE id = 1")
                .and_then(|mut st| st.execute([delta]))
                .map_err(self.err("adding up memory"))?;
        }
        Ok(())
    }

    pub fn remove(&self, domid: DomId) -> BackendResult<bool> {
        let old = self.memory_of(domid)?;
        self.add_used(old.saturating_neg())?;
        let n = self
            .conn
            .prepare_cached("DELETE FROM domains WHERE domid = ?1")
            .and_then(|mut st| st.execute([domid]))
            .map_err(self.err("removing a domain"))?;
        self.bump("deletes")?;
        Ok(n > 0)
    }

    fn bump(&self, column: &'static str) -> BackendResult<i64> {
        let q = match column {
            "rev" => "UPDATE host SET rev = rev + 1 WHERE id = 1 RETURNING rev",
            _ => "UPDATE host SET deletes = deletes + 1 WHERE id = 1 RETURNING deletes",
        };
        self.conn
            .prepare_cached(q)
            .and_then(|mut st| st.query_row([], |r| r.get(0)))
            .map_err(self.err("counting"))
    }

    fn lookup(&self, column: &'static str, value: &str) -> BackendResult<Option<DomId>> {
        let q = match column {
            "name" => "SELECT domid FROM domains WHERE name = ?1",
            _ => "SELECT domid FROM domains WHERE uuid = ?1",
        };
        self.conn
            .prepare_cached(q)
            .and_then(|mut st| st.query_row([value], |r| r.get(0)).optional())
            .map_err(self.err("looking a domain up"))
    }

    pub fn domid_by_name(&self, name: &str) -> BackendResult<Option<DomId>> {
        self.lookup("name", name)
    }

    pub fn domid_by_uuid(&self, uuid: &uuid::Uuid) -> BackendResult<Option<DomId>> {
        self.lookup("uuid", &uuid.to_string())
    }

    pub fn used_kib(&self) -> BackendResult<u64> {
        let used: i64 = self
            .conn
            .prepare_cached("SELECT used_kib FROM host WHERE id = 1")
            .and_then(|mut st| st.query_row([], |r| r.get(0)))
            .map_err(self.err("adding up memory"))?;
        Ok(u64::try_from(used).unwrap_or(0))
    }

    pub fn free_kib(&self) -> BackendResult<u64> {
        Ok(self.host.total_kib.saturating_sub(self.used_kib()?))
    }

    /// One above the highest domid in use (a new domid must exceed it even
    /// if the host's counter was rolled back by hand).
    pub fn above_max_domid(&self) -> BackendResult<DomId> {
        let max: Option<DomId> = self
            .conn
            .prepare_cached("SELECT MAX(domid) FROM domains")
            .and_then(|mut st| st.query_row([], |r| r.get(0)))
            .map_err(self.err("reading domids"))?;
        Ok(max.map_or(1, |m| m.saturating_add(1)))
    }

    fn rows(&self, q: &str, args: impl rusqlite::Params) -> BackendResult<Vec<SimDomain>> {
        let mut st = self
            .conn
            .prepare_cached(q)
            .map_err(self.err("reading domains"))?;
        let rows = st
            .query_map(args, |r| r.get::<_, String>(0))
            .map_err(self.err("reading domains"))?;
        let mut out = Vec::new();
        for row in rows {
            let data = row.map_err(self.err("reading domains"))?;
            out.push(serde_json::from_str(&data).map_err(json_err)?);
        }
        Ok(out)
    }

    pub fn shut_down(&self) -> BackendResult<Vec<SimDomain>> {
        self.rows(
            "SELECT data FROM domains WHERE shutdown = 1 ORDER BY domid",
            [],
        )
    }

    fn stamp(&self) -> BackendResult<(i64, i64)> {
        self.conn
            .prepare_cached("SELECT rev, deletes FROM host WHERE id = 1")
            .and_then(|mut st| st.query_row([], |r| Ok((r.get(0)?, r.get(1)?))))
            .map_err(self.err("reading the host"))
    }
}

impl Store {
    pub fn memory() -> BackendResult<Self> {
        let path = PathBuf::from(":memory:");
        let conn = Connection::open_in_memory().map_err(db_err(&path, "opening"))?;
        Self::with(conn, path, Consoles::Memory(Mutex::new(HashMap::new())))
    }

    pub fn disk(dir: &Path, archive: Option<Archive>) -> BackendResult<Self> {
        let console = dir.join("console");
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&console)
            .map_err(io_err(format!(
                "creating sim state directory {}",
                dir.display()
            )))?;
        let path = dir.join("host.db");
        let old = dir.join("host.json");
        if old.exists() && !path.exists() {
            // The one-file format of older builds is not carried over: the
            // simulated host starts afresh (its domains were simulated).
            let moved = dir.join("host.json.old");
            let _ = std::fs::rename(&old, &moved);
            tracing::warn!(
                "the simulated host in {} predates this build; starting a fresh one (old file kept as {})",
                old.display(),
                moved.display()
            );
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_NOFOLLOW;
        let umask = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
        let opened = Connection::open_with_flags(crate::store::real_parent(&path), flags);
        nix::sys::stat::umask(umask);
        let conn = opened.map_err(db_err(&path, "opening"))?;
        conn.busy_timeout(Duration::from_secs(30))
            .map_err(db_err(&path, "setting the busy timeout"))?;
        crate::store::wal(&conn).map_err(db_err(&path, "switching to WAL"))?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(db_err(&path, "setting synchronous"))?;
        Self::with(conn, path, Consoles::Disk(console, archive))
    }

    fn with(conn: Connection, path: PathBuf, consoles: Consoles) -> BackendResult<Self> {
        conn.execute_batch(SCHEMA)
            .map_err(db_err(&path, "creating the schema"))?;
        // A host made before the memory sum was kept gets it now.
        let has_sum = conn.prepare("SELECT used_kib FROM host LIMIT 0").is_ok();
        if !has_sum {
            conn.execute_batch(
                "ALTER TABLE host ADD COLUMN used_kib INTEGER NOT NULL DEFAULT 0;
                 UPDATE host SET used_kib = (SELECT COALESCE(SUM(memory_kib), 0) FROM domains);",
            )
            .map_err(db_err(&path, "adding the memory sum"))?;
        }
        Ok(Store {
            conn: Mutex::new(conn),
            path,
            consoles,
            cache: Mutex::new(Cache::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn load_host(
        conn: &rusqlite::Transaction<'_>,
        path: &Path,
    ) -> BackendResult<Option<HostState>> {
        let data: Option<String> = conn
            .query_row("SELECT data FROM host WHERE id = 1", [], |r| r.get(0))
            .optional()
            .map_err(db_err(path, "reading the host"))?;
        let Some(data) = data else { return Ok(None) };
        let host: HostState = serde_json::from_str(&data).map_err(json_err)?;
        if host.format != STATE_FORMAT {
            return Err(BackendError::Invalid(format!(
                "{} has state format {}, this domus reads format {}",
                path.display(),
                host.format,
                STATE_FORMAT
            )));
        }
        Ok(Some(host))
    }

    /// Run `f` as a transaction: its changes and console output are kept
    /// only if it succeeds. `init` boots a host when there is none yet.
    pub fn write<R>(
        &self,
        init: &dyn Fn() -> (HostState, SimDomain),
        f: impl FnOnce(&mut SimTx<'_>, &mut ConsoleOut) -> BackendResult<R>,
    ) -> BackendResult<R> {
        let mut out = ConsoleOut::default();
        let r = {
            let mut conn = self.lock();
            let t = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db_err(&self.path, "starting a transaction"))?;
            let host = match Self::load_host(&t, &self.path)? {
                Some(h) => h,
                None => {
                    let (host, dom0) = init();
                    let data = serde_json::to_string(&host).map_err(json_err)?;
                    t.execute("INSERT INTO host(id, data) VALUES (1, ?1)", [data])
                        .map_err(db_err(&self.path, "booting the host"))?;
                    let tx = SimTx {
                        conn: &t,
                        path: &self.path,
                        host: host.clone(),
                    };
                    tx.put(&dom0)?;
                    host
                }
            };
            let before = host.clone();
            let mut tx = SimTx {
                conn: &t,
                path: &self.path,
                host,
            };
            let r = f(&mut tx, &mut out)?;
            if tx.host != before {
                let data = serde_json::to_string(&tx.host).map_err(json_err)?;
                t.execute("UPDATE host SET data = ?1 WHERE id = 1", [data])
                    .map_err(db_err(&self.path, "writing the host"))?;
            }
            t.commit().map_err(db_err(&self.path, "committing"))?;
            r
        };
        self.apply_console(out)?;
        Ok(r)
    }

    /// Run `f` on a consistent view of the host.
    pub fn read<R>(
        &self,
        init: &dyn Fn() -> (HostState, SimDomain),
        f: impl FnOnce(&SimTx<'_>) -> BackendResult<R>,
    ) -> BackendResult<R> {
        {
            let mut conn = self.lock();
            let t = conn
                .transaction_with_behavior(TransactionBehavior::Deferred)
                .map_err(db_err(&self.path, "starting a read"))?;
            if let Some(host) = Self::load_host(&t, &self.path)? {
                let tx = SimTx {
                    conn: &t,
                    path: &self.path,
                    host,
                };
                return f(&tx);
            }
        }
        // No host yet: boot it, then read.
        self.write(init, |tx, _| f(tx))
    }

    /// Every domain, re-read only when some process changed the host.
    pub fn domains(
        &self,
        init: &dyn Fn() -> (HostState, SimDomain),
    ) -> BackendResult<(HostState, Arc<Vec<SimDomain>>)> {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let (host, stamp, fresh) = self.read(init, |tx| {
            let stamp = tx.stamp()?;
            let fresh = match cache.stamp {
                Some(s) if s == stamp => None,
                Some((rev, deletes)) if deletes == stamp.1 => Some((
                    false,
                    tx.rows("SELECT data FROM domains WHERE rev > ?1", [rev])?,
                )),
                _ => Some((
                    true,
                    tx.rows("SELECT data FROM domains ORDER BY domid", [])?,
                )),
            };
            Ok((tx.host.clone(), stamp, fresh))
        })?;
        match fresh {
            None => {}
            Some((true, all)) => cache.domains = Arc::new(all),
            Some((false, changed)) => {
                let list = Arc::make_mut(&mut cache.domains);
                for d in changed {
                    match list.binary_search_by_key(&d.domid, |x| x.domid) {
                        Ok(i) => list[i] = d,
                        Err(i) => list.insert(i, d),
                    }
                }
            }
        }
        cache.stamp = Some(stamp);
        Ok((host, Arc::clone(&cache.domains)))
    }

    fn apply_console(&self, out: ConsoleOut) -> BackendResult<()> {
        match &self.consoles {
            Consoles::Memory(m) => {
                let mut m = m.lock().unwrap_or_else(|p| p.into_inner());
                for (domid, _) in out.removals {
                    m.remove(&domid);
                }
                for (domid, bytes) in out.appends {
                    let buf = m.entry(domid).or_default();
                    buf.extend_from_slice(&bytes);
                    trim(buf);
                }
            }
            Consoles::Disk(dir, archive) => {
                for (domid, uuid) in out.removals {
                    let log = console_path(dir, domid);
                    // The log outlives the domain in domus's archive.
                    if let Some(a) = archive
                        && let Err(e) = a.keep(uuid, domid, &log)
                    {
                        tracing::warn!(domid, error = %e, "keeping a console log");
                    }
                    let _ = std::fs::remove_file(log);
                }
                for (domid, bytes) in out.appends {
                    append_console(&console_path(dir, domid), &bytes)?;
                }
            }
        }
        Ok(())
    }

    /// Console bytes from `offset` on, and the offset after them. An offset
    /// past the end (the log was trimmed) starts again from the beginning.
    pub fn console_read(&self, domid: DomId, offset: u64) -> BackendResult<(Vec<u8>, u64)> {
        match &self.consoles {
            Consoles::Memory(m) => {
                let m = m.lock().unwrap_or_else(|p| p.into_inner());
                let buf = m.get(&domid).map(Vec::as_slice).unwrap_or(&[]);
                let start = usize::try_from(offset).unwrap_or(usize::MAX);
                let start = if start > buf.len() { 0 } else { start };
                Ok((buf[start..].to_vec(), buf.len() as u64))
            }
            Consoles::Disk(dir, _) => {
                let path = console_path(dir, domid);
                let mut file = match File::open(&path) {
                    Ok(f) => f,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        return Ok((Vec::new(), offset));
                    }
                    Err(e) => {
                        return Err(BackendError::io(format!("reading {}", path.display()), e));
                    }
                };
                let len = file.metadata().map_err(io_err("console log"))?.len();
                let start = if offset > len { 0 } else { offset };
                file.seek(SeekFrom::Start(start))
                    .map_err(io_err("console log"))?;
                let mut bytes = Vec::new();
                file.read_to_end(&mut bytes)
                    .map_err(io_err("console log"))?;
                let end = start + bytes.len() as u64;
                Ok((bytes, end))
            }
        }
    }

    /// Where a domain's console log is kept, when it is a file.
    pub fn console_file(&self, domid: DomId) -> Option<PathBuf> {
        match &self.consoles {
            Consoles::Disk(dir, _) => Some(console_path(dir, domid)),
            Consoles::Memory(_) => None,
        }
    }
}

fn console_path(dir: &Path, domid: DomId) -> PathBuf {
    dir.join(format!("{domid}.log"))
}

fn append_console(path: &Path, bytes: &[u8]) -> BackendResult<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
        .map_err(io_err(format!("opening {}", path.display())))?;
    file.write_all(bytes)
        .map_err(io_err(format!("writing {}", path.display())))?;
    let len = file.metadata().map_err(io_err("console log"))?.len();
    if len as usize > CONSOLE_CAP {
        let mut buf = std::fs::read(path).map_err(io_err("console log"))?;
        trim(&mut buf);
        crate::fsx::write_atomic(path, &buf)
            .map_err(|e| BackendError::io("console log", e.into()))?;
    }
    Ok(())
}

use std::os::unix::fs::DirBuilderExt;
