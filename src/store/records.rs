//! What domus remembers about the domains it built. The config is typed in
//! memory and kept as canonical sxp text in the database (the format's own
//! stable spelling, parsed back on load). A device index beside it answers
//! "who holds this disk, MAC or PCI function?" without reading every record.

use std::path::PathBuf;

use rusqlite::{Row, params};

use super::{StoreError, StoreResult, Tx};
use crate::backend::DomId;
use crate::config::{DeviceSpec, DomainConfig, VbdMode};

/// How many records of gone domains a host keeps (their timelines stay in
/// the journal under its own retention).
pub const KEEP_GONE: i64 = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// An operation is building it: the name is taken, the domain may or
    /// may not exist on the hypervisor yet.
    Building,
    Live,
    Gone,
}

impl Phase {
    fn as_str(self) -> &'static str {
        match self {
            Phase::Building => "building",
            Phase::Live => "live",
            Phase::Gone => "gone",
        }
    }

    fn parse(s: &str) -> Phase {
        match s {
            "building" => Phase::Building,
            "live" => Phase::Live,
            _ => Phase::Gone,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct DomainRecord {
    pub uuid: uuid::Uuid,
    pub name: String,
    pub config: DomainConfig,
    /// The file the domain was built from.
    pub source: Option<PathBuf>,
    /// The live incarnation, if any.
    pub domid: Option<DomId>,
    pub phase: Phase,
    /// The lifecycle state last recorded (`running`, `paused`, `shutdown`,
    /// …), so an observer writes a state change once.
    pub state: Option<String>,
    pub last_restart_ns: Option<u64>,
    pub restarts: u32,
    /// The domid whose shutdown has been handled (so it is handled once).
    pub handled_shutdown: Option<DomId>,
    /// What domus could not know (a config rebuilt from the running
    /// domain after its record was lost).
    pub note: Option<String>,
    pub created_ns: u64,
    pub gone_ns: Option<u64>,
    /// Bumped on every write, so readers can fetch only what changed.
    pub rev: i64,
    /// The stored config text when this build could not read it: written
    /// back as it was, never replaced by the stand-in `config`.
    pub unreadable_config: Option<String>,
}

impl DomainRecord {
    pub fn new(uuid: uuid::Uuid, config: DomainConfig, now_ns: u64) -> Self {
        DomainRecord {
            uuid,
            name: config.name.clone(),
            config,
            source: None,
            domid: None,
            phase: Phase::Building,
            state: None,
            last_restart_ns: None,
            restarts: 0,
            handled_shutdown: None,
            note: None,
            created_ns: now_ns,
            gone_ns: None,
            rev: 0,
            unreadable_config: None,
        }
    }

    pub fn is_live(&self) -> bool {
        self.phase != Phase::Gone
    }
}

/// A device as the index keys it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceKey {
    pub kind: &'static str,
    pub key: String,
    pub writable: bool,
}

impl DeviceKey {
    pub fn of(dev: &DeviceSpec) -> DeviceKey {
        match dev {
            DeviceSpec::Vbd(v) => DeviceKey {
                kind: "vbd",
                key: v.uname.identity(),
                writable: v.mode == VbdMode::ReadWrite,
            },
            DeviceSpec::Vif(v) => DeviceKey {
                kind: "vif",
                // A vif without a MAC collides with nothing.
                key: v.mac.map(|m| m.to_string()).unwrap_or_default(),
                writable: true,
            },
            DeviceSpec::Pci(p) => DeviceKey {
                kind: "pci",
                key: p.to_string(),
                writable: true,
            },
        }
    }
}

/// A live domain holding a device.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceUser {
    pub uuid: uuid::Uuid,
    pub name: String,
    pub domid: Option<DomId>,
    pub writable: bool,
    /// The device as that domain has it (`xvdb`, a MAC, a BDF).
    pub label: String,
}

const COLUMNS: &str = "uuid, name, domid, phase, config, source, state, last_restart_ns,
    restarts, handled_shutdown, note, created_ns, gone_ns, rev";

fn ns(v: Option<i64>) -> Option<u64> {
    v.and_then(|x| u64::try_from(x).ok())
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Tx<'_> {
    fn record_from_row(&self, r: &Row<'_>) -> rusqlite::Result<DomainRecord> {
        let uuid: String = r.get(0)?;
        let name: String = r.get(1)?;
        let text: String = r.get(4)?;
        let mut note: Option<String> = r.get(10)?;
        let mut unreadable_config = None;
        let config = match crate::config::parse_str(&text, "<record>") {
            Ok((c, _)) => c,
            Err(e) => {
                unreadable_config = Some(text.clone());
                // Written by another build whose dialect this one no
                // longer reads: keep the record, say what is missing.
                tracing::warn!(%name, error = %e, "a stored config does not parse");
                note = Some(format!(
                    "stored config unreadable ({e}); policies use xl's defaults"
                ));
                DomainConfig::new_linux(name.clone(), "")
            }
        };
        Ok(DomainRecord {
            uuid: uuid.parse().unwrap_or_default(),
            name,
            config,
            domid: r.get(2)?,
            phase: Phase::parse(&r.get::<_, String>(3)?),
            source: r.get::<_, Option<String>>(5)?.map(PathBuf::from),
            state: r.get(6)?,
            last_restart_ns: ns(r.get(7)?),
            restarts: r.get(8)?,
            handled_shutdown: r.get(9)?,
            note,
            created_ns: ns(r.get(11)?).unwrap_or(0),
            gone_ns: ns(r.get(12)?),
            rev: r.get(13)?,
            unreadable_config,
        })
    }

    fn records_where(
        &self,
        clause: &str,
        args: &[&dyn rusqlite::ToSql],
    ) -> StoreResult<Vec<DomainRecord>> {
        let q = format!("SELECT {COLUMNS} FROM domains WHERE host = ?1 AND {clause}");
        let mut st = self
            .conn
            .prepare_cached(&q)
            .map_err(self.err("reading records"))?;
        let mut params: Vec<&dyn rusqlite::ToSql> = vec![&self.host];
        params.extend_from_slice(args);
        let rows = st
            .query_map(params.as_slice(), |r| self.record_from_row(r))
            .map_err(self.err("reading records"))?;
        rows.collect::<Result<_, _>>()
            .map_err(self.err("reading records"))
    }

    pub fn record(&self, uuid: uuid::Uuid) -> StoreResult<Option<DomainRecord>> {
        Ok(self.records_where("uuid = ?2", &[&uuid.to_string()])?.pop())
    }

    /// The live (or building) record of a domid.
    pub fn record_by_domid(&self, domid: DomId) -> StoreResult<Option<DomainRecord>> {
        Ok(self
            .records_where("domid = ?2 AND phase != 'gone'", &[&domid])?
            .pop())
    }

    /// The live (or building) record of a name.
    pub fn record_by_name(&self, name: &str) -> StoreResult<Option<DomainRecord>> {
        Ok(self
            .records_where("name = ?2 AND phase != 'gone'", &[&name])?
            .pop())
    }

    /// Records of domains that are live or being built.
    pub fn live_records(&self) -> StoreResult<Vec<DomainRecord>> {
        self.records_where("phase != 'gone' ORDER BY domid", &[])
    }

    /// Records of gone domains, newest first.
    pub fn gone_records(&self, limit: usize) -> StoreResult<Vec<DomainRecord>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.records_where("phase = 'gone' ORDER BY gone_ns DESC LIMIT ?2", &[&limit])
    }

    /// The newest record of a gone domain with this name.
    pub fn gone_by_name(&self, name: &str) -> StoreResult<Option<DomainRecord>> {
        Ok(self
            .records_where(
                "phase = 'gone' AND name = ?2 ORDER BY gone_ns DESC LIMIT 1",
                &[&name],
            )?
            .pop())
    }

    /// Records written after `rev` (any phase), and the newest rev.
    pub fn records_since(&self, rev: i64) -> StoreResult<(Vec<DomainRecord>, i64)> {
        let recs = self.records_where("rev > ?2 ORDER BY rev", &[&rev])?;
        let top = recs.iter().map(|r| r.rev).max().unwrap_or(rev);
        Ok((recs, top))
    }

    /// Insert or replace a record (and its device index). A second live
    /// record with the same name is refused.
    pub fn put_record(&self, rec: &DomainRecord) -> StoreResult<i64> {
        let rev = self.bump("rev")?;
        if let Some(d) = rec.domid {
            self.raise("max_domid", i64::from(d))?;
        }
        let text = match &rec.unreadable_config {
            Some(raw) => raw.clone(),
            None => {
                let text = rec.config.to_sxp_string();
                // What is stored must read back: a config the reader refuses
                // (a MAC twice) would come back as a stand-in. (A build's
                // record is checked by its validate stage, right after.)
                if rec.phase != Phase::Building
                    && let Err(e) = crate::config::parse_str(&text, "<record>")
                {
                    return Err(StoreError::Corrupt {
                        what: "config (refused before writing)",
                        message: e.to_string().lines().next().unwrap_or_default().to_string(),
                    });
                }
                text
            }
        };
        let result = self
            .conn
            .prepare_cached(
                // An upsert on the key: `OR REPLACE` would delete another
                // row that clashes on the live-name index instead of failing.
                "INSERT INTO domains(host, uuid, name, domid, phase, config, source,
                    state, last_restart_ns, restarts, handled_shutdown, note, created_ns, gone_ns, rev)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)
                 ON CONFLICT(host, uuid) DO UPDATE SET name = excluded.name,
                    domid = excluded.domid, phase = excluded.phase, config = excluded.config,
                    source = excluded.source, state = excluded.state,
                    last_restart_ns = excluded.last_restart_ns, restarts = excluded.restarts,
                    handled_shutdown = excluded.handled_shutdown, note = excluded.note,
                    created_ns = excluded.created_ns, gone_ns = excluded.gone_ns, rev = excluded.rev",
            )
            .and_then(|mut st| {
                st.execute(params![
                    self.host,
                    rec.uuid.to_string(),
                    rec.name,
                    rec.domid,
                    rec.phase.as_str(),
                    text,
                    rec.source.as_ref().map(|p| p.display().to_string()),
                    rec.state,
                    rec.last_restart_ns.map(to_i64),
                    rec.restarts,
                    rec.handled_shutdown,
                    rec.note,
                    to_i64(rec.created_ns),
                    rec.gone_ns.map(to_i64),
                    rev
                ])
            });
        match result {
            Ok(_) => {}
            Err(rusqlite::Error::SqliteFailure(f, _))
                if f.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                let other = self.record_by_name(&rec.name)?;
                return Err(StoreError::NameTaken {
                    name: rec.name.clone(),
                    domid: other.and_then(|o| o.domid),
                });
            }
            Err(e) => return Err(self.err("writing a record")(e)),
        }
        self.index_devices(rec)?;
        Ok(rev)
    }

    fn index_devices(&self, rec: &DomainRecord) -> StoreResult<()> {
        let uuid = rec.uuid.to_string();
        self.conn
            .execute(
                "DELETE FROM devices WHERE host = ?1 AND uuid = ?2",
                params![self.host, uuid],
            )
            .map_err(self.err("indexing devices"))?;
        if !rec.is_live() {
            return Ok(());
        }
        let mut st = self
            .conn
            .prepare_cached(
                "INSERT INTO devices(host, uuid, kind, key, writable, label) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .map_err(self.err("indexing devices"))?;
        for dev in &rec.config.devices {
            let k = DeviceKey::of(dev);
            if k.key.is_empty() {
                continue;
            }
            st.execute(params![
                self.host,
                uuid,
                k.kind,
                k.key,
                k.writable,
                device_label(dev)
            ])
            .map_err(self.err("indexing devices"))?;
        }
        Ok(())
    }

    pub fn delete_record(&self, uuid: uuid::Uuid) -> StoreResult<()> {
        let u = uuid.to_string();
        for q in [
            "DELETE FROM domains WHERE host = ?1 AND uuid = ?2",
            "DELETE FROM devices WHERE host = ?1 AND uuid = ?2",
        ] {
            self.conn
                .execute(q, params![self.host, u])
                .map_err(self.err("deleting a record"))?;
        }
        // Readers that cache records must notice a deletion too.
        self.bump("deletes")?;
        Ok(())
    }

    /// Live domains (other than `except`) that hold the device `key`.
    pub fn device_users(
        &self,
        key: &DeviceKey,
        except: Option<uuid::Uuid>,
    ) -> StoreResult<Vec<DeviceUser>> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT d.uuid, d.name, d.domid, v.writable, v.label FROM devices v
                 JOIN domains d ON d.host = v.host AND d.uuid = v.uuid
                 WHERE v.host = ?1 AND v.kind = ?2 AND v.key = ?3 AND d.phase != 'gone'",
            )
            .map_err(self.err("reading the device index"))?;
        let rows = st
            .query_map(params![self.host, key.kind, key.key], |r| {
                Ok(DeviceUser {
                    uuid: r.get::<_, String>(0)?.parse().unwrap_or_default(),
                    name: r.get(1)?,
                    domid: r.get(2)?,
                    writable: r.get(3)?,
                    label: r.get(4)?,
                })
            })
            .map_err(self.err("reading the device index"))?;
        let users: Vec<DeviceUser> = rows
            .collect::<Result<_, _>>()
            .map_err(self.err("reading the device index"))?;
        Ok(users
            .into_iter()
            .filter(|u| Some(u.uuid) != except)
            .collect())
    }

    /// Keep only the newest [`KEEP_GONE`] records of gone domains.
    pub fn prune_gone(&self) -> StoreResult<()> {
        self.conn
            .execute(
                "DELETE FROM domains WHERE host = ?1 AND phase = 'gone' AND uuid IN (
                    SELECT uuid FROM domains WHERE host = ?1 AND phase = 'gone'
                    ORDER BY gone_ns DESC LIMIT -1 OFFSET ?2)",
                params![self.host, KEEP_GONE],
            )
            .map_err(self.err("pruning records"))?;
        Ok(())
    }

    /// The highest domid any record of this host has had, for backends
    /// whose domids must never go backwards (kept as a counter, so asking
    /// costs the same with 10 or 10,000 domains).
    pub fn max_domid(&self) -> StoreResult<Option<DomId>> {
        let m = self.counter("max_domid")?;
        Ok((m > 0).then(|| DomId::try_from(m).unwrap_or(DomId::MAX)))
    }
}

fn device_label(dev: &DeviceSpec) -> String {
    match dev {
        DeviceSpec::Vbd(v) => v.dev.clone(),
        DeviceSpec::Vif(v) => v.mac.map(|m| m.to_string()).unwrap_or_default(),
        DeviceSpec::Pci(p) => p.to_string(),
    }
}
