//! Carries out effects: every engine call and every file the TUI touches.
//! Runs on its own thread in the real loop and inline in tests.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use super::action::{Action, Done, Effect, HostPci, Snapshot};
use super::library;
use crate::backend::{ConsoleStream, ReadOutcome};
use crate::config::xl::parse_any as parse_str;
use crate::engine::Engine;
use crate::fleet::{DomKey, Fleet, HostId};

/// Where console reader threads deliver their bytes (real loop only).
pub type Sink = Arc<dyn Fn(Action) + Send + Sync>;

type SharedStream = Arc<Mutex<Box<dyn ConsoleStream>>>;

/// Carries out effects. Shared by the real loop's lanes (so every method
/// takes `&self`; the little state it keeps is behind locks) and run inline
/// by tests.
pub struct Worker {
    fleet: Arc<Fleet>,
    library_dir: PathBuf,
    recovery_dir: PathBuf,
    /// One lock per console: a write stuck on one guest's console holds
    /// up neither the others nor closing it.
    writers: Mutex<HashMap<DomKey, SharedStream>>,
    /// Readers polled inline (tests); the real loop gives each its own thread.
    readers: Mutex<HashMap<DomKey, Box<dyn ConsoleStream>>>,
    sink: Option<Sink>,
    /// Stop flags of the reader threads, one per open console.
    pumps: Mutex<HashMap<DomKey, Arc<AtomicBool>>>,
    pci_root: PathBuf,
    /// The pci.ids database to name devices from; `None`: Debian's places.
    pci_ids: Option<PathBuf>,
    /// Where the preferences go; `None` (tests): not kept.
    prefs_path: Option<PathBuf>,
    /// The newest journal entry already handed to the app, per host.
    journal_seq: Vec<AtomicI64>,
    /// The engine of each host whose hypervisor's events are being
    /// followed (a reconnected host's new engine is followed again).
    watching: Mutex<HashMap<HostId, std::sync::Weak<Engine>>>,
}

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// How many gone domains the TUI shows, and for how long.
const GONE_SHOWN: usize = 20;
const GONE_FOR_NS: u64 = 24 * 3600 * 1_000_000_000;
/// How much of a gone domain's console the details show.
const CONSOLE_TAIL_LINES: usize = 30;

impl Worker {
    /// A worker for one host.
    pub fn new(
        engine: Arc<Engine>,
        library_dir: PathBuf,
        recovery_dir: PathBuf,
        sink: Option<Sink>,
    ) -> Self {
        let fleet = Arc::new(Fleet::single("local", engine));
        Self::for_fleet(fleet, library_dir, recovery_dir, sink)
    }

    /// A worker for every host of a fleet.
    pub fn for_fleet(
        fleet: Arc<Fleet>,
        library_dir: PathBuf,
        recovery_dir: PathBuf,
        sink: Option<Sink>,
    ) -> Self {
        Worker {
            journal_seq: fleet.ids().map(|_| AtomicI64::new(0)).collect(),
            watching: Mutex::default(),
            fleet,
            library_dir,
            recovery_dir,
            writers: Mutex::default(),
            readers: Mutex::default(),
            sink,
            pumps: Mutex::default(),
            pci_root: PathBuf::from("/sys/bus/pci/devices"),
            prefs_path: None,
            pci_ids: None,
        }
    }

    /// Keep the TUI's preferences in this file.
    pub fn set_prefs_path(&mut self, path: PathBuf) {
        self.prefs_path = Some(path);
    }

    /// Read host PCI devices (and their names) from elsewhere (tests).
    pub fn set_pci_root(&mut self, root: PathBuf, ids: Option<PathBuf>) {
        self.pci_root = root;
        self.pci_ids = ids;
    }

    pub fn fleet(&self) -> &Arc<Fleet> {
        &self.fleet
    }

    /// A host's engine, or why it cannot be used now.
    fn on(&self, host: HostId) -> Result<Arc<Engine>, String> {
        self.fleet.engine(host).map_err(|e| e.short())
    }

    /// "web1", or "host:web1" in a fleet: what results call a domain.
    fn name(&self, key: DomKey) -> String {
        let name = self
            .on(key.host)
            .and_then(|e| e.view(key.domid).map_err(|x| x.to_string()))
            .map_or_else(|_| format!("domain {key}"), |v| v.info.name);
        if self.fleet.len() > 1 {
            format!("{}:{name}", self.fleet.name(key.host))
        } else {
            name
        }
    }

    /// Journal entries since the host's last snapshot (the newest few
    /// hundred at first).
    fn new_journal(&self, host: HostId, engine: &Engine) -> Vec<crate::engine::JournalEntry> {
        let Some(seq) = self.journal_seq.get(usize::from(host.0)) else {
            return Vec::new();
        };
        let after = seq.load(Ordering::Relaxed);
        let filter = crate::engine::JournalFilter {
            after: Some(after),
            limit: (after == 0).then_some(500),
            ..Default::default()
        };
        let entries = engine.journal(&filter).unwrap_or_default();
        if let Some(last) = entries.last() {
            // Only forward: two refreshes never hand out an entry twice.
            let prev = seq.fetch_max(last.seq, Ordering::Relaxed);
            return entries.into_iter().filter(|e| e.seq > prev).collect();
        }
        entries
    }

    /// Repair interrupted work (a process killed while this TUI runs, an
    /// operation of this one that panicked), then apply the policies of
    /// domains that shut down. Nothing to report, no action.
    fn policies(&self, host: HostId) -> Vec<Action> {
        let Ok(e) = self.on(host) else {
            // The refresh says the host is down.
            return Vec::new();
        };
        let repaired = match e.recover() {
            Ok(notes) => notes,
            Err(err) => vec![format!("repairing interrupted work failed: {err}")],
        };
        let events = match e.refresh() {
            Ok(events) => events,
            Err(err) => {
                return vec![Action::Done(Done::Error(format!(
                    "applying shutdown policies failed: {err}"
                )))];
            }
        };
        if events.is_empty() && repaired.is_empty() {
            return Vec::new();
        }
        vec![Action::Done(Done::Policies { events, repaired })]
    }

    /// A host's engine for a read, or what to tell the app instead: that
    /// it is down, or nothing while another lane is still opening it.
    fn reach(&self, host: HostId) -> Result<Arc<Engine>, Vec<Action>> {
        match self.fleet.engine(host) {
            Ok(e) => Ok(e),
            Err(crate::fleet::HostDown::Connecting { .. }) => Err(Vec::new()),
            Err(down) => Err(vec![Action::HostDown {
                host,
                why: down.short(),
            }]),
        }
    }

    /// Follow what the host's hypervisor reports by itself (libvirt's
    /// domain events): each is recorded in the journal as it happens,
    /// which wakes this TUI (and every other) through the store.
    fn follow_events(&self, host: HostId, e: &Arc<Engine>) {
        // Decided under the lock, registered without it: a daemon slow to
        // answer holds up no other host's refresh.
        {
            let mut watching = locked(&self.watching);
            if watching
                .get(&host)
                .and_then(std::sync::Weak::upgrade)
                .is_some_and(|w| Arc::ptr_eq(&w, e))
            {
                return;
            }
            watching.insert(host, Arc::downgrade(e));
        }
        let engine = Arc::downgrade(e);
        let sink = Box::new(move |domid, notice| {
            if let Some(e) = engine.upgrade()
                && let Err(err) = e.observe(domid, notice)
            {
                tracing::warn!(domid, error = %err, "recording a hypervisor event");
            }
        });
        if let Err(err) = e.hypervisor().watch(sink) {
            tracing::warn!(error = %err, "following the hypervisor's events");
            // Tried again with the next refresh.
            locked(&self.watching).remove(&host);
        }
    }

    /// A whole refresh of one host, or why it cannot be had.
    fn snapshot(&self, host: HostId) -> Vec<Action> {
        let e = match self.reach(host) {
            Ok(e) => e,
            Err(say) => return say,
        };
        self.follow_events(host, &e);
        let result = (|| -> Result<Snapshot, String> {
            Ok(Snapshot {
                host_id: host,
                at_ns: e.now_ns(),
                host: e.host_info().map_err(|x| x.to_string())?,
                capabilities: e.hypervisor().capabilities(),
                domains: e.domains().map_err(|x| x.to_string())?,
                journal: self.new_journal(host, &e),
                gone: e
                    .gone_recent(GONE_SHOWN, GONE_FOR_NS)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(record, last)| super::feed::GoneView {
                        host,
                        domid: last.as_ref().and_then(|l| l.domid),
                        record,
                        last,
                    })
                    .collect(),
            })
        })();
        vec![match result {
            Ok(s) => Action::Snapshot(Box::new(s)),
            Err(why) => self.failed(host, &e, why),
        }]
    }

    /// A read of a host failed: the host is down (and, when its connection
    /// is lost, opened again later).
    fn failed(&self, host: HostId, e: &Arc<Engine>, why: String) -> Action {
        if let Ok(m) = self.fleet.member(host) {
            m.check_lost(e, &why);
        }
        Action::HostDown { host, why }
    }

    /// The reads of one host: a whole refresh, the tick's cheap read, I/O
    /// counters, or its policies. Each host has lanes of its own.
    pub fn run_host(&self, host: HostId, effect: &Effect) -> Vec<Action> {
        let action = match effect {
            Effect::Refresh => return self.snapshot(host),
            Effect::Policies => return self.policies(host),
            // A failed read shows as "-" in the columns, not as an error
            // every second.
            Effect::IoStats => {
                let Ok(e) = self.on(host) else {
                    return Vec::new();
                };
                match e.io_stats() {
                    Ok(io) => Action::Io {
                        host,
                        at_ns: e.now_ns(),
                        io,
                    },
                    Err(_) => return Vec::new(),
                }
            }
            Effect::Stats => match self.reach(host) {
                Err(say) => return say,
                Ok(e) => match e.stats() {
                    Ok(stats) => Action::Stats {
                        host,
                        at_ns: e.now_ns(),
                        stats,
                    },
                    Err(err) => self.failed(host, &e, err.to_string()),
                },
            },
            _ => return Vec::new(),
        };
        vec![action]
    }

    /// Run `f` on each domain, on its own host; one result per domain.
    fn each(
        &self,
        op: &'static str,
        ids: &[DomKey],
        f: impl Fn(&Engine, crate::backend::DomId) -> Result<(), String>,
    ) -> Action {
        let results = ids
            .iter()
            .map(|d| {
                // Named before: a destroyed domain has no name after.
                let name = self.name(*d);
                (name, self.on(d.host).and_then(|e| f(&e, d.domid)))
            })
            .collect();
        Action::Done(Done::Ops { op, results })
    }

    pub fn run(&self, effect: Effect) -> Vec<Action> {
        if let Effect::RefreshHost(h) = effect {
            let mut out = self.run_host(h, &Effect::Policies);
            out.extend(self.run_host(h, &Effect::Refresh));
            return out;
        }
        if matches!(
            effect,
            Effect::Refresh | Effect::Policies | Effect::IoStats | Effect::Stats
        ) {
            return self
                .fleet
                .ids()
                .flat_map(|h| self.run_host(h, &effect))
                .collect();
        }
        // The one host the work is on, for work on one host (bulk work and
        // consoles find each domain's own; file work needs none).
        let host = match &effect {
            Effect::Save(d, _) | Effect::Attach(d, _) | Effect::Detach(d, _) => Some(d.host),
            Effect::Restore(h, _)
            | Effect::Build(h, _)
            | Effect::Create(h, _)
            | Effect::LoadTimeline(h, _)
            | Effect::Dismiss(h, _) => Some(*h),
            Effect::LoadNative(d) | Effect::EditNative(d) => Some(d.host),
            _ => None,
        };
        let e = match host.map(|h| (h, self.on(h))) {
            Some((_, Ok(e))) => Some(e),
            Some((h, Err(why))) => {
                let host = self.fleet.name(h);
                return vec![Action::Done(Done::Error(format!("host {host}: {why}")))];
            }
            None => None,
        };
        // Library checks use the first host if it is open now: file work
        // never waits for a host to answer.
        let first = || {
            self.fleet
                .member(HostId::default())
                .ok()
                .and_then(crate::fleet::Member::current)
        };
        let action = match effect {
            // Only the lanes hold work that waits; here nothing does.
            Effect::CancelQueued(_) => return Vec::new(),
            Effect::Refresh
            | Effect::RefreshHost(_)
            | Effect::Policies
            | Effect::IoStats
            | Effect::Stats => {
                return Vec::new();
            }
            Effect::Pause(ids) => {
                self.each("pause", &ids, |e, d| e.pause(d).map_err(|x| x.to_string()))
            }
            Effect::TogglePause(ids) => {
                // Each result names what happened to that domain.
                let results = ids
                    .iter()
                    .map(|k| {
                        let r = self.on(k.host).map(|e| {
                            let paused = e
                                .view(k.domid)
                                .map(|v| v.info.flags.paused)
                                .unwrap_or(false);
                            let (verb, r) = if paused {
                                ("unpaused", e.unpause(k.domid))
                            } else {
                                ("paused", e.pause(k.domid))
                            };
                            (verb, r.map_err(|x| x.to_string()))
                        });
                        match r {
                            Ok((verb, r)) => (format!("{verb} {}", self.name(*k)), r),
                            Err(why) => (self.name(*k), Err(why)),
                        }
                    })
                    .collect();
                Action::Done(Done::Ops {
                    op: "pause/unpause",
                    results,
                })
            }
            Effect::Save(d, path) => {
                let name = self.name(d);
                let result = self
                    .on(d.host)
                    .and_then(|e| e.save(d.domid, &path).map_err(|x| x.to_string()))
                    .map(|()| format!("saved to {}", path.display()));
                Action::Done(Done::Attached { name, result })
            }
            Effect::Restore(h, path) => {
                let Some(e) = e else { return Vec::new() };
                let result = e
                    .restore(&path)
                    .map(|d| DomKey::new(h, d))
                    .map_err(|x| x.to_string());
                let file = path
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default();
                // The domain's name, once it is back; the file's until then.
                let name = match &result {
                    Ok(d) => e
                        .view(d.domid)
                        .map(|v| v.info.name)
                        .unwrap_or_else(|_| file.clone()),
                    Err(_) => file,
                };
                Action::Done(Done::Built { name, result })
            }
            Effect::Unpause(ids) => self.each("unpause", &ids, |e, d| {
                e.unpause(d).map_err(|x| x.to_string())
            }),
            Effect::Destroy(ids) => self.each("destroy", &ids, |e, d| {
                e.destroy(d).map_err(|x| x.to_string())
            }),
            Effect::Start(ids) => self.each("start", &ids, |e, d| {
                e.start_domain(d).map(drop).map_err(|x| x.to_string())
            }),
            Effect::Shutdown(ids, reason) => {
                let op = match reason {
                    crate::backend::ShutdownReason::Reboot => "reboot",
                    crate::backend::ShutdownReason::Suspend => "suspend",
                    _ => "shutdown",
                };
                self.each(op, &ids, |e, d| {
                    e.shutdown(d, reason).map_err(|x| x.to_string())
                })
            }
            Effect::MemTarget(d, mib) => self.each("memory target", &[d], |e, d| {
                e.set_memory_target(d, mib).map_err(|x| x.to_string())
            }),
            Effect::Build(h, path) => {
                let Some(e) = e else { return Vec::new() };
                let file = path
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default();
                match crate::config::load_file(&path) {
                    Ok((config, _)) => {
                        let result = e
                            .create(&config, Some(&path))
                            .map(|d| DomKey::new(h, d))
                            .map_err(|x| x.to_string());
                        Action::Done(Done::Built {
                            name: config.name,
                            result,
                        })
                    }
                    Err(err) => Action::Done(Done::Built {
                        name: file,
                        result: Err(err.to_string()),
                    }),
                }
            }
            Effect::Create(h, config) => {
                let Some(e) = e else { return Vec::new() };
                let result = e
                    .create(&config, None)
                    .map(|d| DomKey::new(h, d))
                    .map_err(|x| x.to_string());
                Action::Done(Done::Built {
                    name: config.name.clone(),
                    result,
                })
            }
            Effect::Attach(d, dev) => {
                let Some(e) = e else { return Vec::new() };
                let result = e
                    .attach(d.domid, &dev)
                    .map(|x| match e.view(d.domid) {
                        Ok(v) => v.info.attached_text(&x),
                        Err(_) => format!("attached {x}"),
                    })
                    .map_err(|x| x.to_string());
                Action::Done(Done::Attached {
                    name: self.name(d),
                    result,
                })
            }
            Effect::Detach(d, r) => {
                let Some(e) = e else { return Vec::new() };
                let result = e
                    .detach(d.domid, &r)
                    .map(|x| format!("detached {x}"))
                    .map_err(|x| x.to_string());
                Action::Done(Done::Detached {
                    name: self.name(d),
                    result,
                })
            }
            Effect::OpenConsole(d) => return self.open_console(d),
            Effect::CloseConsole(d) => {
                self.close_console(d);
                return Vec::new();
            }
            Effect::ConsoleInput(d, bytes) => {
                if let Err(err) =
                    self.with_writer(d, |w| w.write(&bytes).map_err(|x| x.to_string()))
                {
                    locked(&self.writers).remove(&d);
                    return vec![Action::Done(Done::Error(format!(
                        "console of {}: {err}",
                        self.name(d)
                    )))];
                }
                // Tests see the guest's answer at once.
                return self.poll_consoles();
            }
            Effect::ConsoleResize(d, cols, rows) => {
                let _ = self.with_writer(d, |w| w.resize(cols, rows).map_err(|x| x.to_string()));
                return Vec::new();
            }
            Effect::Dismiss(_, uuid) => {
                let Some(e) = e else { return Vec::new() };
                if let Err(err) = e.dismiss(uuid) {
                    return vec![Action::Done(Done::Error(format!("dismissing: {err}")))];
                }
                return Vec::new();
            }
            Effect::EditNative(key) => {
                let Some(e) = e else { return Vec::new() };
                let name = self.name(key);
                let text = match e.hypervisor().native_description(key.domid) {
                    Ok(t) => t,
                    Err(err) => {
                        return vec![Action::Done(Done::Error(format!(
                            "reading the definition of {name}: {err}"
                        )))];
                    }
                };
                Action::NativeToEdit { key, name, text }
            }
            Effect::DefineNative { key, text } => {
                let name = self.name(key);
                let result = self.on(key.host).and_then(|e| {
                    e.hypervisor()
                        .define_native(key.domid, &text)
                        .map_err(|x| x.to_string())
                });
                Action::Done(Done::Defined {
                    key,
                    name,
                    text,
                    result,
                })
            }
            Effect::LoadNative(key) => {
                let Some(e) = e else { return Vec::new() };
                let text = e
                    .hypervisor()
                    .native_description(key.domid)
                    .unwrap_or_else(|err| Some(format!("<!-- not read: {err} -->")));
                Action::Native { key, text }
            }
            Effect::LoadTimeline(_, uuid) => {
                let Some(e) = e else { return Vec::new() };
                let entries = e.timeline(uuid).unwrap_or_default();
                let tail = e.console_tail(uuid, CONSOLE_TAIL_LINES);
                Action::Timeline {
                    uuid,
                    entries,
                    console_tail: tail,
                }
            }
            // Marked for the backend in use: plan9 is no valid config on QEMU.
            Effect::LoadLibrary => {
                let e = first();
                Action::Library(library::scan_with(&self.library_dir, |c| {
                    e.as_ref().and_then(|e| e.unbuildable(c).into_iter().next())
                }))
            }
            // Bounded reads of regular files only: a FIFO in the library
            // must not block the worker, nor /dev/zero fill its memory.
            Effect::OpenFile(path) => {
                match crate::fsx::read_to_string_bounded(&path, crate::config::MAX_CONFIG_BYTES) {
                    Ok(text) => {
                        let recovery = crate::fsx::read_to_string_bounded(
                            &self.recovery_path(&path),
                            crate::config::MAX_CONFIG_BYTES,
                        )
                        .ok()
                        .filter(|r| *r != text);
                        Action::FileOpened {
                            path,
                            text,
                            recovery,
                        }
                    }
                    // The message names the file.
                    Err(err) => Action::Done(Done::Error(err.to_string())),
                }
            }
            Effect::SaveFile {
                path,
                text,
                then_build,
            } => {
                let result = save_atomic(&path, &text).map_err(|x| x.to_string());
                Action::Done(Done::Saved {
                    path,
                    text,
                    result,
                    then_build,
                })
            }
            Effect::Preflight { path, text } => {
                let problems = match first() {
                    Some(e) => preflight(&e, &self.pci_root, &path, &text),
                    None => Vec::new(),
                };
                Action::Done(Done::Preflight { path, problems })
            }
            Effect::SavePrefs(prefs) => {
                if let Some(path) = &self.prefs_path
                    && let Err(e) = prefs.save(path)
                {
                    return vec![Action::Done(Done::Error(format!(
                        "cannot keep the preferences in {}: {e}",
                        path.display()
                    )))];
                }
                return Vec::new();
            }
            Effect::CloneConfig { from, to, name } => match crate::config::load_file(&from) {
                Ok((c, _)) => {
                    let file = from
                        .file_name()
                        .map(|f| f.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    Action::Cloned {
                        path: to,
                        text: library::clone_text(&c, &name, &file),
                    }
                }
                Err(e) => Action::Done(Done::Error(format!(
                    "cannot copy {}: {}",
                    from.display(),
                    e.to_string().lines().next().unwrap_or_default()
                ))),
            },
            Effect::ImportConfig(path) => {
                let result = library::import(&path, &self.library_dir, false)
                    .map(|i| (i.target, i.diagnostics.warnings.len()))
                    .map_err(|e| e.to_string());
                Action::Done(Done::Imported { from: path, result })
            }
            Effect::DeleteFile(path) => {
                let result = std::fs::remove_file(&path).map_err(|x| x.to_string());
                Action::Done(Done::Deleted { path, result })
            }
            Effect::WriteRecovery { path, text } => {
                let rp = self.recovery_path(&path);
                let _ = crate::fsx::ensure_private_dir(&self.recovery_dir);
                if let Err(err) = crate::fsx::write_atomic(&rp, text.as_bytes()) {
                    return vec![Action::Done(Done::Error(format!(
                        "cannot keep a recovery copy in {}: {err}",
                        rp.display()
                    )))];
                }
                return Vec::new();
            }
            Effect::ClearRecovery(path) => {
                let _ = std::fs::remove_file(self.recovery_path(&path));
                return Vec::new();
            }
            Effect::ScanPci => {
                let ids = self
                    .pci_ids
                    .as_ref()
                    .map_or_else(crate::tui::pci_names::load, |p| {
                        crate::tui::pci_names::read(p)
                    });
                Action::PciDevices(scan_pci(&self.pci_root, ids.as_deref()))
            }
            Effect::CompletePath(prefix) => Action::Completions(complete_uname(&prefix)),
        };
        vec![action]
    }

    fn recovery_path(&self, path: &Path) -> PathBuf {
        let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        self.recovery_dir
            .join(abs.to_string_lossy().replace('/', "%"))
    }

    /// Run `f` on the domain's console writer, opening one if needed.
    fn with_writer<T>(
        &self,
        d: DomKey,
        f: impl FnOnce(&mut Box<dyn ConsoleStream>) -> Result<T, String>,
    ) -> Result<T, String> {
        let existing = locked(&self.writers).get(&d).map(Arc::clone);
        let w = match existing {
            Some(w) => w,
            None => {
                // The writer half of a console the reader already opened
                // (and journalled): opened on the backend directly, with
                // no lock held.
                let fresh = self
                    .on(d.host)?
                    .hypervisor()
                    .open_console(d.domid)
                    .map_err(|x| x.to_string())?;
                Arc::clone(
                    locked(&self.writers)
                        .entry(d)
                        .or_insert_with(|| Arc::new(Mutex::new(fresh))),
                )
            }
        };
        let mut w = locked(&w);
        f(&mut w)
    }

    fn close_console(&self, d: DomKey) {
        let had = locked(&self.pumps)
            .remove(&d)
            .map(|stop| stop.store(true, Ordering::Relaxed));
        let read = locked(&self.readers).remove(&d);
        let wrote = locked(&self.writers).remove(&d);
        if (had.is_some() || read.is_some() || wrote.is_some())
            && let Ok(e) = self.on(d.host)
        {
            e.console_closed(d.domid);
        }
    }

    fn open_console(&self, d: DomKey) -> Vec<Action> {
        // A fresh stream replays the whole log into the fresh buffer.
        self.close_console(d);
        let stream = match self
            .on(d.host)
            .and_then(|e| e.console(d.domid).map_err(|x| x.to_string()))
        {
            Ok(s) => s,
            Err(err) => {
                return vec![
                    Action::Done(Done::Error(format!("console of {}: {err}", self.name(d)))),
                    Action::ConsoleFailed(d),
                ];
            }
        };
        // One session per domain (libvirt): the writer shares it.
        if let Some(w) = stream.writer() {
            locked(&self.writers).insert(d, Arc::new(Mutex::new(w)));
        }
        match &self.sink {
            Some(sink) => {
                let sink = Arc::clone(sink);
                let stop = Arc::new(AtomicBool::new(false));
                locked(&self.pumps).insert(d, Arc::clone(&stop));
                std::thread::spawn(move || pump(d, stream, sink, &stop));
                Vec::new()
            }
            None => {
                locked(&self.readers).insert(d, stream);
                self.poll_consoles()
            }
        }
    }

    /// Drain every inline console reader (tests).
    pub fn poll_consoles(&self) -> Vec<Action> {
        let mut out = Vec::new();
        let mut closed = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut readers = locked(&self.readers);
        for (d, stream) in readers.iter_mut() {
            let mut bytes = Vec::new();
            loop {
                match stream.read(&mut buf, Duration::ZERO) {
                    Ok(ReadOutcome::Data(n)) => bytes.extend_from_slice(&buf[..n]),
                    Ok(ReadOutcome::Idle) => break,
                    Ok(ReadOutcome::Closed) | Err(_) => {
                        closed.push(*d);
                        break;
                    }
                }
            }
            if !bytes.is_empty() {
                out.push(Action::ConsoleBytes(*d, bytes));
            }
        }
        for d in closed {
            readers.remove(&d);
            locked(&self.writers).remove(&d);
            out.push(Action::ConsoleClosed(d));
        }
        out
    }
}

/// Schema-aware checks before a build: memory, files, collisions, PCI.
fn preflight(engine: &Engine, pci_root: &Path, path: &Path, text: &str) -> Vec<String> {
    {
        let file = path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        let config = match parse_str(text, &file) {
            Ok((c, _)) => c,
            Err(err) => return vec![err.to_string()],
        };
        engine.preflight(&config, pci_root)
    }
}

/// Read a console in the background and hand its bytes to the loop.
fn pump(d: DomKey, mut stream: Box<dyn ConsoleStream>, sink: Sink, stop: &AtomicBool) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        match stream.read(&mut buf, Duration::from_millis(100)) {
            Ok(ReadOutcome::Data(n)) if !stop.load(Ordering::Relaxed) => {
                sink(Action::ConsoleBytes(d, buf[..n].to_vec()))
            }
            Ok(ReadOutcome::Data(_)) => return,
            Ok(ReadOutcome::Idle) => {}
            Ok(ReadOutcome::Closed) | Err(_) => {
                sink(Action::ConsoleClosed(d));
                return;
            }
        }
    }
}

/// Write a file so that a crash leaves either the old or the new text
/// (see [`crate::fsx::write_atomic`]: an unguessable temporary, never
/// through a link), creating the library directory if need be.
pub fn save_atomic(path: &Path, text: &str) -> Result<(), crate::fsx::FsxError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| crate::fsx::FsxError::Io {
            op: "create",
            path: dir.to_path_buf(),
            source,
        })?;
    }
    crate::fsx::write_atomic(path, text.as_bytes())
}

fn read_trim(p: &Path) -> String {
    std::fs::read_to_string(p)
        .map(|s| s.trim().trim_start_matches("0x").to_string())
        .unwrap_or_default()
}

pub fn scan_pci(root: &Path, ids: Option<&str>) -> Vec<HostPci> {
    let mut list: Vec<HostPci> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .map(|e| {
            let p = e.path();
            let (vendor, device) = (read_trim(&p.join("vendor")), read_trim(&p.join("device")));
            let (vendor_name, device_name) = ids
                .map(|db| crate::tui::pci_names::lookup(db, &vendor, &device))
                .unwrap_or((None, None));
            HostPci {
                bdf: e.file_name().to_string_lossy().into_owned(),
                vendor,
                device,
                class: read_trim(&p.join("class")),
                vendor_name,
                device_name,
                driver: std::fs::read_link(p.join("driver"))
                    .ok()
                    .and_then(|l| l.file_name().map(|n| n.to_string_lossy().into_owned())),
            }
        })
        .collect();
    list.sort_by(|a, b| a.bdf.cmp(&b.bdf));
    list
}

/// Complete `file:/pa` or `phy:/dev/sd` to matching paths.
pub fn complete_uname(prefix: &str) -> Vec<String> {
    let (kind, path) = prefix.split_once(':').unwrap_or(("file", prefix));
    let path = if path.is_empty() { "/" } else { path };
    let (dir, stem) = match path.rfind('/') {
        Some(i) => (&path[..=i], &path[i + 1..]),
        None => ("./", path),
    };
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.starts_with(stem) || (name.starts_with('.') && !stem.starts_with('.')) {
                return None;
            }
            let slash = if e.file_type().is_ok_and(|t| t.is_dir()) {
                "/"
            } else {
                ""
            };
            Some(format!("{kind}:{dir}{name}{slash}"))
        })
        .collect();
    out.sort();
    out.truncate(200);
    out
}
