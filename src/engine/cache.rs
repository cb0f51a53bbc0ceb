//! The live records, kept in memory between refreshes and brought up to
//! date by the store's counters: a refresh reads only the records written
//! since the last one, so a view of 10,000 domains does not parse 10,000
//! configs every second.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::EngineResult;
use crate::store::{DomainRecord, Store};

pub type LiveRecords = Arc<HashMap<uuid::Uuid, Arc<DomainRecord>>>;

#[derive(Default)]
pub struct RecordCache(Mutex<Inner>);

#[derive(Default)]
struct Inner {
    /// `None` until the first load.
    stamp: Option<(i64, i64)>,
    live: LiveRecords,
}

impl RecordCache {
    /// The records of live and building domains, by uuid.
    pub fn live(&self, store: &Store) -> EngineResult<LiveRecords> {
        let mut inner = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let (rev, deletes) = store.read(|tx| Ok((tx.counter("rev")?, tx.counter("deletes")?)))?;
        match inner.stamp {
            Some((r, d)) if r == rev && d == deletes => {}
            Some((r, d)) if d == deletes => {
                let (changed, _) = store.read(|tx| tx.records_since(r))?;
                let map = Arc::make_mut(&mut inner.live);
                for rec in changed {
                    if rec.is_live() {
                        map.insert(rec.uuid, Arc::new(rec));
                    } else {
                        map.remove(&rec.uuid);
                    }
                }
            }
            _ => {
                let all = store.read(|tx| tx.live_records())?;
                inner.live = Arc::new(all.into_iter().map(|r| (r.uuid, Arc::new(r))).collect());
            }
        }
        inner.stamp = Some((rev, deletes));
        Ok(Arc::clone(&inner.live))
    }
}
