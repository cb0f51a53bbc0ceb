//! `domus events [DOM] [--follow] [--json]`: the host journal, as `virsh
//! event --loop` shows libvirt's events (xl has none) — every lifecycle
//! event from any domus process, the guests and the hypervisor, with its
//! source and cause.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use super::CliResult;
use super::list::sanitize;
use crate::backend::DomId;
use crate::clock::format_utc;
use crate::engine::{Engine, JournalEntry, JournalFilter};
use crate::store::follow::Changes;

pub struct EventsArgs<'a> {
    pub domain: Option<&'a str>,
    pub follow: bool,
    pub json: bool,
    pub all: bool,
    pub limit: usize,
}

#[derive(Serialize)]
struct JsonEntry<'a> {
    time: String,
    #[serde(flatten)]
    entry: &'a JournalEntry,
}

/// One entry as a line of text: time, domain, source, event.
pub fn text_line(e: &JournalEntry) -> String {
    let ms = e.at_ns / 1_000_000 % 1000;
    let dom = match (&e.name, e.domid) {
        (Some(n), Some(d)) => format!("{} [{d}]", sanitize(n)),
        (Some(n), None) => sanitize(n),
        (None, Some(d)) => format!("[{d}]"),
        (None, None) => "-".into(),
    };
    format!(
        "{}.{ms:03} {dom} {}: {}",
        format_utc(e.at_ns),
        e.source,
        sanitize(&e.event.to_string())
    )
}

fn shown(e: &JournalEntry, all: bool) -> bool {
    all || !e.event.is_op()
}

/// Print entries; `Ok(false)` once the reader has gone (a closed pipe).
fn print(entries: &[JournalEntry], args: &EventsArgs<'_>) -> CliResult<bool> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for e in entries.iter().filter(|e| shown(e, args.all)) {
        let line = if args.json {
            serde_json::to_string(&JsonEntry {
                time: format_utc(e.at_ns),
                entry: e,
            })?
        } else {
            text_line(e)
        };
        if writeln!(out, "{line}").is_err() {
            return Ok(false);
        }
    }
    Ok(out.flush().is_ok())
}

/// Which entries `DOM` means: a domain id names the live domain (by its
/// uuid, all its history); a name names every incarnation that had it,
/// gone ones included.
fn filter_for(engine: &Engine, dom: Option<&str>) -> CliResult<JournalFilter> {
    Ok(match dom {
        None => JournalFilter::default(),
        Some(d) if d.parse::<DomId>().is_ok() => JournalFilter {
            uuid: Some(engine.resolve(d)?.uuid),
            ..Default::default()
        },
        Some(name) => JournalFilter {
            name: Some(name.to_string()),
            ..Default::default()
        },
    })
}

pub fn run(engine: &Engine, state_dir: &Path, args: &EventsArgs<'_>) -> CliResult<()> {
    let base = filter_for(engine, args.domain)?;
    // Watch before reading, so nothing committed in between is missed.
    let changes = args.follow.then(|| Changes::watch(state_dir));
    let history = engine.journal(&JournalFilter {
        limit: Some(args.limit),
        skip_ops: !args.all,
        ..base.clone()
    })?;
    let mut after = match history.last() {
        Some(e) => e.seq,
        None => engine.store().read(|tx| tx.last_seq())?,
    };
    if !print(&history, args)? {
        return Ok(());
    }
    let Some(changes) = changes else {
        return Ok(());
    };
    loop {
        // Woken by any commit; the timeout only guards a lost wake-up.
        changes.wait(Duration::from_secs(5));
        let new = engine.journal(&JournalFilter {
            after: Some(after),
            ..base.clone()
        })?;
        if let Some(last) = new.last() {
            after = last.seq;
        }
        if !print(&new, args)? {
            return Ok(());
        }
    }
}
