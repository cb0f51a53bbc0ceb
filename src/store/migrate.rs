//! State dirs written by an older domus kept the engine's records in
//! `engine-HOST.json`; they are imported into the store once, timelines
//! included, and the file is renamed `*.migrated`.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};

use rusqlite::params;
use serde::Deserialize;

use super::journal::{DomainEvent, Source, SourceKind, Subject};
use super::records::{DomainRecord, Phase};
use super::{Store, StoreError, StoreResult};
use crate::backend::DomId;

#[derive(Deserialize)]
struct OldEntry {
    at_ns: u64,
    domid: Option<DomId>,
    event: DomainEvent,
}

#[derive(Deserialize)]
struct OldRecord {
    uuid: uuid::Uuid,
    name: String,
    config: String,
    source: Option<PathBuf>,
    domid: Option<DomId>,
    #[serde(default)]
    timeline: Vec<OldEntry>,
    last_restart_ns: Option<u64>,
    #[serde(default)]
    restarts: u32,
    handled_shutdown: Option<DomId>,
}

#[derive(Deserialize, Default)]
struct OldRecords {
    #[serde(default)]
    live: BTreeMap<uuid::Uuid, OldRecord>,
    #[serde(default)]
    retired: VecDeque<OldRecord>,
}

/// Import `engine-HOST.json` if it is there and not imported yet; returns
/// a note for the operator.
pub(super) fn import_engine_json(store: &Store, state_dir: &Path) -> StoreResult<Option<String>> {
    let file = state_dir.join(format!("engine-{}.json", store.host()));
    if !file.exists() {
        return Ok(None);
    }
    let flag = format!("imported:{}", store.host());
    let bytes = crate::fsx::read_bounded(&file, 256 << 20).map_err(|e| StoreError::Io {
        context: "reading",
        path: file.clone(),
        source: e.into(),
    })?;
    let old: OldRecords = match serde_json::from_slice(&bytes) {
        Ok(o) => o,
        Err(e) => {
            let to = file.with_extension("json.damaged");
            let _ = std::fs::rename(&file, &to);
            return Ok(Some(format!(
                "{} did not parse ({e}); moved to {} — its records are lost, domus rebuilds what it can from the backend",
                file.display(),
                to.display()
            )));
        }
    };
    let source = Source {
        kind: SourceKind::Repair,
        pid: Some(std::process::id()),
    };
    let imported = store.write(|tx| {
        let done = tx
            .conn
            .execute(
                "INSERT OR IGNORE INTO meta(key, value) VALUES (?1, '1')",
                params![flag],
            )
            .map_err(tx.err("migrating"))?;
        if done == 0 {
            return Ok(None);
        }
        let mut n = 0;
        let all = old
            .live
            .values()
            .map(|r| (r, Phase::Live))
            .chain(old.retired.iter().map(|r| (r, Phase::Gone)));
        for (old, phase) in all {
            let Ok((config, _)) = crate::config::parse_str(&old.config, "<record>") else {
                continue;
            };
            // A retired record and a live one may share a uuid (rebuilt).
            if phase == Phase::Gone && tx.record(old.uuid)?.is_some() {
                continue;
            }
            let first = old.timeline.first().map_or(0, |e| e.at_ns);
            let last = old.timeline.last().map_or(0, |e| e.at_ns);
            let mut rec = DomainRecord::new(old.uuid, config, first);
            rec.name = old.name.clone();
            rec.source = old.source.clone();
            rec.domid = if phase == Phase::Live {
                old.domid
            } else {
                None
            };
            rec.phase = phase;
            rec.last_restart_ns = old.last_restart_ns;
            rec.restarts = old.restarts;
            rec.handled_shutdown = old.handled_shutdown;
            if phase == Phase::Gone {
                rec.gone_ns = Some(last);
            }
            tx.put_record(&rec)?;
            for e in &old.timeline {
                let subject = Subject {
                    domid: e.domid,
                    uuid: Some(old.uuid),
                    name: Some(old.name.clone()),
                };
                tx.append(e.at_ns, &subject, source, &e.event)?;
            }
            n += 1;
        }
        Ok(Some(n))
    })?;
    let Some(n) = imported else {
        return Ok(None);
    };
    let to = file.with_extension("json.migrated");
    let _ = std::fs::rename(&file, &to);
    Ok(Some(format!(
        "imported {n} domain records from {} into the state store (the old file is now {})",
        file.display(),
        to.display()
    )))
}
