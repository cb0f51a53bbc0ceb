//! The app's state and `update`: the only place state changes. `update`
//! turns an [`Action`] into state changes and a list of [`Effect`]s for the
//! runtime to carry out; it does no IO itself.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::path::PathBuf;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers, MouseButton, MouseEvent, MouseEventKind};

use super::action::{Action, Done, Effect, Snapshot};
use super::components::confirm::{Answer, Confirm, Pending};
use super::components::details::{Details, DetailsKey};
use super::components::device_form::DeviceForm;
use super::components::memory_form::{MemoryForm, MemoryKey};
use super::components::name_prompt::{NameKey, NamePrompt};
use super::components::picker::{Pick, Picker};
use super::console::ConsoleBuffer;
use super::editor::Editor;
use super::feed::{DetailTimeline, Feed};
use super::input::LineInput;
use super::keymap::{self, Command, Scope};
use super::library::{self, Library};
use super::table::DomainTable;
use super::theme::Theme;
use super::ui::layout;
use crate::backend::{Capabilities, Capability, DomId, HostInfo, ShutdownReason};
use crate::config::device_args::parse_device_args;
use crate::config::{DeviceRef, DeviceSpec};
use crate::engine::{DomainEvent, JournalEntry, device_ref};

const EVENTS_CAP: usize = 500;
/// Every this many ticks the whole view is read again.
const FULL_REFRESH_EVERY: u64 = 60;
/// How often (in ticks) the TUI looks whether another process's operation
/// in flight was left by a process that died.
const CHECK_OTHERS_EVERY: u64 = 5;
/// How many journal entries the app keeps for timelines.
const JOURNAL_CAP: usize = 5000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    Domains,
    Library,
    Events,
    Gone,
}

impl Tab {
    pub const ALL: [Tab; 4] = [Tab::Domains, Tab::Library, Tab::Events, Tab::Gone];

    pub fn title(self) -> &'static str {
        match self {
            Tab::Domains => "Domains",
            Tab::Library => "Library",
            Tab::Events => "Events",
            Tab::Gone => "Gone",
        }
    }

    pub fn scope(self) -> Scope {
        match self {
            Tab::Domains => Scope::Domains,
            Tab::Library => Scope::Library,
            Tab::Events => Scope::Events,
            Tab::Gone => Scope::Gone,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Ok,
    Warn,
    Error,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    pub at_ns: u64,
    pub level: Level,
    /// Whose line: "web1 [3] · cli 1234" for a journal entry, empty for
    /// this TUI's own messages.
    pub who: String,
    pub text: String,
}

impl LogLine {
    /// A journal entry as an Events line.
    pub fn from_journal(e: &JournalEntry) -> LogLine {
        let level = match &e.event {
            DomainEvent::OpFailed { .. } | DomainEvent::RestartFailed { .. } => Level::Error,
            ev if ev.is_important() => Level::Warn,
            DomainEvent::Warning { .. } => Level::Warn,
            DomainEvent::Created { .. } | DomainEvent::Restarted { .. } => Level::Ok,
            _ => Level::Info,
        };
        let subject = super::feed::subject(e);
        let who = if subject.is_empty() {
            e.source.to_string()
        } else {
            format!("{subject} · {}", e.source)
        };
        LogLine {
            at_ns: e.at_ns,
            level,
            who,
            text: e.event.to_string(),
        }
    }
}

/// Below these (MiB) a memory target asks first: a guest's kernel starts
/// killing processes, and a starved Domain-0 takes the host's toolstack
/// with it.
const LOW_GUEST_MIB: u64 = 64;
const LOW_DOM0_MIB: u64 = 512;

pub enum Mode {
    Normal,
    Filter(LineInput),
    Palette(LineInput),
    Help(usize),
    Details(Details),
    /// The details of a domain that is gone.
    GoneDetails(uuid::Uuid),
    Console {
        domid: DomId,
        search: Option<LineInput>,
    },
    Confirm(Confirm),
    Shutdown(Picker<ShutdownReason>, Vec<DomId>),
    Form(Box<DeviceForm>),
    Detach(Picker<DeviceRef>, DomId),
    Memory(MemoryForm),
    /// A new config's name; with a source: a copy of that config.
    NewConfig(NamePrompt),
    Editor(Box<Editor>),
    Recover {
        path: PathBuf,
        text: String,
        recovery: String,
    },
    /// The theme picker; moving previews each theme.
    Themes(Picker<usize>),
}

pub struct App {
    /// A library scan is under way (file events wait for it).
    library_scan_pending: bool,
    /// Files changed during that scan: one more scan after it.
    library_rescan: bool,
    /// The preferences as last kept: a change makes a `SavePrefs`.
    pub prefs_kept: crate::tui::prefs::Prefs,
    pub theme: Theme,
    pub themes: Vec<Theme>,
    pub read_only: bool,
    pub tab: Tab,
    pub mode: Mode,
    pub host: Option<HostInfo>,
    pub caps: Capabilities,
    pub table: DomainTable,
    pub library: Library,
    pub events: VecDeque<LogLine>,
    pub events_selected: usize,
    /// The newest journal entries (every domus process's), oldest first.
    pub journal: VecDeque<JournalEntry>,
    /// What the TUI follows of the journal beyond the table.
    pub feed: Feed,
    /// Operations waiting their turn on each domain (the lanes say).
    pub queued: HashMap<DomId, Vec<&'static str>>,
    /// This process, to tell its own journal entries from others'.
    pub pid: u32,
    pub status: Option<(Level, String)>,
    pub consoles: HashMap<DomId, ConsoleBuffer>,
    pub size: (u16, u16),
    pub now_ns: u64,
    pub loaded: bool,
    pub quit: bool,
    /// Build from the editor: the file whose build should close the editor.
    building_from_editor: Option<PathBuf>,
    /// A domain to select once a snapshot shows it (after a build).
    pending_select: Option<DomId>,
    /// The theme before the picker opened, for Esc.
    theme_before: Theme,
    /// When the status line was set: routine news waits behind a recent error.
    pub status_at: u64,
    ticks: u64,
}

/// Bytes a key sends to a guest terminal.
pub fn key_bytes(key: &KeyEvent) -> Vec<u8> {
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    match key.code {
        KeyCode::Char(c) if ctrl && c.is_ascii_alphabetic() => {
            vec![(c.to_ascii_lowercase() as u8) & 0x1f]
        }
        KeyCode::Char(c) => c.to_string().into_bytes(),
        KeyCode::Enter => b"\r".to_vec(),
        KeyCode::Backspace => vec![0x7f],
        KeyCode::Tab => b"\t".to_vec(),
        KeyCode::Esc => vec![0x1b],
        KeyCode::Up => b"\x1b[A".to_vec(),
        KeyCode::Down => b"\x1b[B".to_vec(),
        KeyCode::Right => b"\x1b[C".to_vec(),
        KeyCode::Left => b"\x1b[D".to_vec(),
        KeyCode::Home => b"\x1b[H".to_vec(),
        KeyCode::End => b"\x1b[F".to_vec(),
        KeyCode::Delete => b"\x1b[3~".to_vec(),
        KeyCode::PageUp => b"\x1b[5~".to_vec(),
        KeyCode::PageDown => b"\x1b[6~".to_vec(),
        _ => Vec::new(),
    }
}

fn next_vdev(devices: &[DeviceSpec]) -> String {
    let used: BTreeSet<&str> = devices
        .iter()
        .filter_map(|d| match d {
            DeviceSpec::Vbd(v) => Some(v.dev.as_str()),
            _ => None,
        })
        .collect();
    ('a'..='z')
        .map(|c| format!("xvd{c}"))
        .find(|n| !used.contains(n.as_str()))
        .unwrap_or_else(|| "xvdz".into())
}

impl App {
    pub fn new(
        theme: Theme,
        themes: Vec<Theme>,
        read_only: bool,
        config_dir: PathBuf,
        size: (u16, u16),
    ) -> Self {
        App {
            library_scan_pending: false,
            library_rescan: false,
            prefs_kept: crate::tui::prefs::Prefs::default(),
            theme_before: theme.clone(),
            status_at: 0,
            theme,
            themes,
            read_only,
            tab: Tab::Domains,
            mode: Mode::Normal,
            host: None,
            caps: Capabilities::default(),
            table: DomainTable::default(),
            library: Library {
                dir: config_dir,
                ..Default::default()
            },
            events: VecDeque::new(),
            events_selected: 0,
            journal: VecDeque::new(),
            feed: Feed::default(),
            queued: HashMap::new(),
            pid: std::process::id(),
            status: None,
            consoles: HashMap::new(),
            size,
            now_ns: 0,
            loaded: false,
            quit: false,
            building_from_editor: None,
            pending_select: None,
            ticks: 0,
        }
    }

    /// What the runtime should do first.
    pub fn init() -> Vec<Effect> {
        vec![Effect::Refresh, Effect::LoadLibrary]
    }

    pub fn log(&mut self, level: Level, text: impl Into<String>) {
        let text = text.into();
        // A problem of the last seconds is not hidden by chatter; a newer
        // result (success or failure) replaces it.
        let recent_problem = matches!(self.status, Some((Level::Error | Level::Warn, _)))
            && self.now_ns.saturating_sub(self.status_at) < 5_000_000_000;
        if !(recent_problem && level == Level::Info) {
            self.status = Some((level, text.clone()));
            self.status_at = self.now_ns;
        }
        self.push_event(level, text);
    }

    /// Show on the status line only: the outcome of an operation that the
    /// journal (and so the Events tab) records anyway.
    fn announce(&mut self, level: Level, text: impl Into<String>) {
        self.status = Some((level, text.into()));
        self.status_at = self.now_ns;
    }

    /// Add to the Events log. A selection on the newest line follows new
    /// lines (like `tail -f`); one further up stays on its line.
    fn push_event(&mut self, level: Level, text: String) {
        self.push_line(LogLine {
            at_ns: self.now_ns,
            level,
            who: String::new(),
            text,
        });
    }

    fn push_line(&mut self, line: LogLine) {
        let following = self.events_selected + 1 >= self.events.len();
        self.events.push_back(line);
        while self.events.len() > EVENTS_CAP {
            self.events.pop_front();
            self.events_selected = self.events_selected.saturating_sub(1);
        }
        if following {
            self.events_selected = self.events.len() - 1;
        }
    }

    /// Whether another process has an operation in flight on a domain.
    fn others_at_work(&self) -> bool {
        self.table
            .rows
            .iter()
            .any(|r| r.view.pending.iter().any(|i| i.owner.pid != self.pid))
    }

    fn can(&self, cap: Capability) -> bool {
        self.caps.has(cap)
    }

    /// The operator's choices as they are now.
    pub fn prefs(&self) -> crate::tui::prefs::Prefs {
        crate::tui::prefs::Prefs {
            theme: Some(self.theme.name.clone()),
            sort: Some(self.table.column().title().to_string()),
            descending: self.table.descending,
            filter: self.table.filter.clone(),
        }
    }

    /// Take saved preferences (at start): they become what is kept.
    pub fn apply_prefs(&mut self, p: &crate::tui::prefs::Prefs, theme_given: bool) {
        if !theme_given
            && let Some(t) = p
                .theme
                .as_ref()
                .and_then(|n| self.themes.iter().find(|t| t.name == *n))
        {
            self.theme = t.clone();
        }
        if let Some(col) = &p.sort {
            self.table.set_sort(col, p.descending);
        }
        self.table.set_filter(&p.filter);
        self.prefs_kept = self.prefs();
    }

    pub fn update(&mut self, action: Action) -> Vec<Effect> {
        let mut effects = self.update_inner(action);
        // Outside the filter prompt (typing changes it on every key).
        if !matches!(self.mode, Mode::Filter(_)) {
            let now = self.prefs();
            if now != self.prefs_kept {
                self.prefs_kept = now.clone();
                effects.push(Effect::SavePrefs(now));
            }
        }
        effects
    }

    fn update_inner(&mut self, action: Action) -> Vec<Effect> {
        match action {
            Action::Key(key) => self.on_key(key),
            Action::Mouse(m) => self.on_mouse(m),
            Action::Resize(w, h) => {
                self.size = (w, h);
                self.resize_consoles()
            }
            Action::Snapshot(s) => {
                self.on_snapshot(*s);
                Vec::new()
            }
            Action::Done(done) => self.on_done(done),
            Action::Queued { domid, ops } => {
                if ops.is_empty() {
                    self.queued.remove(&domid);
                } else {
                    self.queued.insert(domid, ops);
                }
                Vec::new()
            }
            Action::ConsoleBytes(domid, bytes) => {
                let (rows, cols) = layout::console_size(self.size);
                self.consoles
                    .entry(domid)
                    .or_insert_with(|| ConsoleBuffer::new(rows, cols))
                    .feed(&bytes);
                Vec::new()
            }
            Action::ConsoleClosed(domid) => {
                if let Some(c) = self.consoles.get_mut(&domid) {
                    c.closed = true;
                }
                Vec::new()
            }
            Action::ConsoleFailed(domid) => {
                // Nothing to show; `c` tries again.
                self.consoles.remove(&domid);
                if matches!(self.mode, Mode::Console { domid: d, .. } if d == domid) {
                    self.mode = Mode::Normal;
                }
                Vec::new()
            }
            Action::Library(entries) => {
                self.library.entries = entries;
                self.library.selected = self
                    .library
                    .selected
                    .min(self.library.entries.len().saturating_sub(1));
                self.library_scan_pending = false;
                if std::mem::take(&mut self.library_rescan) {
                    self.library_scan_pending = true;
                    return vec![Effect::LoadLibrary];
                }
                Vec::new()
            }
            Action::FileOpened {
                path,
                text,
                recovery,
            } => {
                match recovery {
                    Some(recovery) => {
                        self.mode = Mode::Recover {
                            path,
                            text,
                            recovery,
                        }
                    }
                    None => self.mode = Mode::Editor(Box::new(Editor::new(path, &text, &text))),
                }
                Vec::new()
            }
            Action::PciDevices(list) => {
                if let Mode::Form(f) = &mut self.mode {
                    f.pci = list;
                }
                Vec::new()
            }
            Action::Completions(list) => self.on_completions(list),
            Action::StoreChanged => vec![Effect::Refresh],
            // A burst of file events (2000 files copied in) is one scan at
            // a time, not one per event.
            Action::LibraryChanged if self.library_scan_pending => {
                self.library_rescan = true;
                Vec::new()
            }
            Action::LibraryChanged => {
                self.library_scan_pending = true;
                vec![Effect::LoadLibrary]
            }
            Action::Cloned { path, text } => {
                self.mode = Mode::Editor(Box::new(Editor::new(path, &text, "")));
                Vec::new()
            }
            Action::Tick => {
                // Most ticks read only what changes by itself; now and then
                // a whole refresh catches what no event announced.
                self.ticks += 1;
                if !self.loaded || self.ticks.is_multiple_of(FULL_REFRESH_EVERY) {
                    vec![Effect::Refresh]
                } else if self.ticks.is_multiple_of(CHECK_OTHERS_EVERY) && self.others_at_work() {
                    // Another process's operation in flight: if it died, its
                    // repair should not wait for the next whole refresh.
                    vec![Effect::Stats, Effect::Policies]
                } else {
                    vec![Effect::Stats]
                }
            }
            Action::Stats { at_ns, stats } => {
                if !self.loaded {
                    return vec![Effect::Refresh];
                }
                self.now_ns = at_ns;
                let changed = self.table.apply_stats(&stats, at_ns);
                let (_, h) = layout::table_rows(self.size);
                self.table.scroll_into_view(h);
                if changed {
                    vec![Effect::Refresh]
                } else {
                    Vec::new()
                }
            }
            Action::Timeline {
                uuid,
                entries,
                console_tail,
            } => {
                if let Some(d) = self.feed.details.as_mut().filter(|d| d.uuid == uuid) {
                    // Entries that arrived live meanwhile are in `entries` too.
                    d.entries = entries;
                    d.console_tail = console_tail;
                    d.loaded = true;
                }
                Vec::new()
            }
        }
    }

    fn on_snapshot(&mut self, s: Snapshot) {
        self.now_ns = s.at_ns;
        if !self.loaded {
            // What was said before the clock was first read happened at
            // start-up: give it that time rather than none.
            for e in self.events.iter_mut().filter(|e| e.at_ns == 0) {
                e.at_ns = s.at_ns;
            }
            if self.status_at == 0 {
                self.status_at = s.at_ns;
            }
        }
        self.loaded = true;
        self.host = Some(s.host);
        self.caps = s.capabilities;
        self.table.update(s.domains, s.at_ns);
        if let Some(d) = self.pending_select
            && let Some(pos) = self
                .table
                .order
                .iter()
                .position(|i| self.table.rows[*i].view.info.domid == d)
        {
            self.table.selected = pos;
            self.pending_select = None;
        }
        self.feed.gone = s.gone;
        self.feed.gone_selected = self
            .feed
            .gone_selected
            .min(self.feed.gone.len().saturating_sub(1));
        // Every process's events, in the Events tab; the important ones
        // others caused on the status line.
        let pid = self.pid;
        for e in s.journal.iter().filter(|e| super::feed::shown(e, pid)) {
            self.push_line(LogLine::from_journal(e));
        }
        for e in self.feed.take(&s.journal, self.pid) {
            let who = super::feed::subject(&e);
            self.announce(Level::Warn, format!("{who}: {} ({})", e.event, e.source));
        }
        let live: Vec<uuid::Uuid> = self.table.rows.iter().map(|r| r.view.info.uuid).collect();
        self.feed.retain_live(&live);
        for p in self.feed.timed_out(self.now_ns) {
            let key = keymap::key_for(Command::Destroy).unwrap_or_else(|| "d".into());
            self.announce(
                Level::Warn,
                format!(
                    "{} has not shut down {} s after the request: select it and press {key} to destroy it",
                    p.name,
                    super::feed::SHUTDOWN_TIMEOUT_NS / 1_000_000_000
                ),
            );
        }
        self.journal.extend(s.journal);
        while self.journal.len() > JOURNAL_CAP {
            self.journal.pop_front();
        }
        let (_, h) = layout::table_rows(self.size);
        self.table.scroll_into_view(h);
    }

    fn resize_consoles(&mut self) -> Vec<Effect> {
        let (rows, cols) = layout::console_size(self.size);
        let mut effects = Vec::new();
        for (domid, c) in &mut self.consoles {
            c.resize(rows, cols);
            effects.push(Effect::ConsoleResize(*domid, cols, rows));
        }
        let (_, h) = layout::table_rows(self.size);
        self.table.scroll_into_view(h);
        effects
    }

    fn on_done(&mut self, done: Done) -> Vec<Effect> {
        let mut effects = vec![Effect::Refresh];
        match done {
            Done::Cancelled { domid, ops } => {
                let name = self.table.name_of(domid);
                if ops.is_empty() {
                    self.log(
                        Level::Info,
                        format!("nothing waits on {name} (what has started runs to its end)"),
                    );
                } else {
                    self.log(
                        Level::Info,
                        format!(
                            "cancelled on {name} before they started: {}",
                            ops.join(", ")
                        ),
                    );
                }
            }
            Done::Policies { events, repaired } => {
                // The policies this TUI applied itself (others' come
                // through the journal).
                for ev in events {
                    let level = if ev.reason == ShutdownReason::Crash {
                        Level::Warn
                    } else {
                        Level::Info
                    };
                    self.announce(level, ev.to_string());
                }
                for note in repaired {
                    self.announce(Level::Warn, note);
                }
            }
            Done::Ops { op, results } => {
                let failed: Vec<String> = results
                    .iter()
                    .filter_map(|(n, r)| r.as_ref().err().map(|e| format!("{n}: {e}")))
                    .collect();
                let ok: Vec<&str> = results
                    .iter()
                    .filter(|(_, r)| r.is_ok())
                    .map(|(n, _)| n.as_str())
                    .collect();
                for (n, r) in results.iter().filter(|_| results.len() > 1) {
                    if let Err(e) = r {
                        self.push_event(Level::Error, format!("{op} {n} failed: {e}"));
                    }
                }
                let done = match op {
                    "pause" => "paused",
                    "pause/unpause" => "done:",
                    "unpause" => "unpaused",
                    "destroy" => "destroyed",
                    "start" => "started",
                    "shutdown" => "asked to shut down:",
                    "reboot" => "asked to reboot:",
                    "suspend" => "asked to suspend:",
                    "memory target" => "memory target set:",
                    other => other,
                };
                if failed.is_empty() {
                    self.announce(Level::Ok, format!("{done} {}", ok.join(", ")));
                } else if ok.is_empty() {
                    self.log(Level::Error, format!("{op} failed: {}", failed.join("; ")));
                } else {
                    self.log(
                        Level::Warn,
                        format!("{op}: {} ok; failed: {}", ok.join(", "), failed.join("; ")),
                    );
                }
                self.table.tags.clear();
            }
            Done::Built { name, result } => match result {
                Ok(domid) => {
                    self.announce(Level::Ok, format!("built {name} as domain {domid}"));
                    self.tab = Tab::Domains;
                    if matches!(&self.mode, Mode::Editor(e) if Some(&e.path) == self.building_from_editor.as_ref())
                    {
                        self.mode = Mode::Normal;
                    }
                    self.building_from_editor = None;
                    self.select_after_refresh(domid);
                }
                Err(e) => {
                    self.building_from_editor = None;
                    if let Mode::Editor(ed) = &mut self.mode {
                        ed.message = Some(e.clone());
                    }
                    self.log(Level::Error, e);
                }
            },
            Done::Attached { name, result } => {
                // The form that asked closes on success and shows a
                // failure, its input kept.
                let asked = matches!(&self.mode, Mode::Form(f) if f.pending && f.name == name);
                match result {
                    Ok(what) => {
                        if asked {
                            self.mode = Mode::Normal;
                        }
                        self.announce(Level::Ok, format!("{name}: {what}"));
                    }
                    Err(e) => {
                        if let Mode::Form(f) = &mut self.mode
                            && asked
                        {
                            f.pending = false;
                            f.failure = Some(e.clone());
                        }
                        self.log(Level::Error, format!("{name}: {e}"));
                    }
                }
            }
            Done::Detached { name, result } => match result {
                Ok(what) => self.announce(Level::Ok, format!("{name}: {what}")),
                Err(e) => self.log(Level::Error, format!("{name}: {e}")),
            },
            Done::Saved {
                path,
                result,
                then_build,
            } => {
                let file = path
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default();
                match result {
                    Ok(()) => {
                        // Saved as typed, but said when it will not build.
                        let mut broken = None;
                        if let Mode::Editor(ed) = &mut self.mode
                            && ed.path == path
                        {
                            ed.saved_text = ed.text();
                            broken = ed
                                .diagnostics
                                .errors
                                .first()
                                .map(|d| format!("{}: {}", d.pos, d.message));
                            ed.message = Some(match &broken {
                                Some(why) => format!("saved {file}; it will not build: {why}"),
                                None => format!("saved {file}"),
                            });
                        }
                        match broken {
                            Some(why) => self.log(
                                Level::Warn,
                                format!("saved {file}; it will not build: {why}"),
                            ),
                            None => self.log(Level::Ok, format!("saved {file}")),
                        }
                        effects.push(Effect::ClearRecovery(path.clone()));
                        effects.push(Effect::LoadLibrary);
                        if then_build {
                            self.building_from_editor = Some(path.clone());
                            effects.push(Effect::Build(path));
                        }
                    }
                    Err(e) => {
                        if let Mode::Editor(ed) = &mut self.mode {
                            ed.message = Some(format!("not saved: {e}"));
                        }
                        self.log(Level::Error, format!("saving {file} failed: {e}"));
                    }
                }
            }
            Done::Preflight { path, problems } => {
                if let Mode::Editor(ed) = &mut self.mode
                    && ed.path == path
                {
                    if problems.is_empty() || ed.build_anyway {
                        ed.preflight.clear();
                        effects.push(Effect::SaveFile {
                            path,
                            text: ed.text(),
                            then_build: true,
                        });
                    } else {
                        ed.message = Some(format!(
                            "{} problem(s) found; Ctrl-B again builds anyway",
                            problems.len()
                        ));
                        ed.preflight = problems;
                        ed.build_anyway = true;
                    }
                }
            }
            Done::Imported { from, result } => {
                let name = |p: &std::path::Path| {
                    p.file_name()
                        .map(|f| f.to_string_lossy().into_owned())
                        .unwrap_or_default()
                };
                match result {
                    Ok((to, 0)) => self.log(
                        Level::Ok,
                        format!("imported {} as {}", name(&from), name(&to)),
                    ),
                    Ok((to, n)) => self.log(
                        Level::Warn,
                        format!(
                            "imported {} as {} ({n} warning(s): domus check {} names them)",
                            name(&from),
                            name(&to),
                            name(&from)
                        ),
                    ),
                    Err(e) => self.log(
                        Level::Error,
                        format!("importing {} failed: {e}", name(&from)),
                    ),
                }
                effects.push(Effect::LoadLibrary);
            }
            Done::Deleted { path, result } => {
                let file = path
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default();
                match result {
                    Ok(()) => self.log(Level::Ok, format!("deleted {file}")),
                    Err(e) => self.log(Level::Error, format!("deleting {file} failed: {e}")),
                }
                effects.push(Effect::LoadLibrary);
            }
            Done::Error(e) => self.log(Level::Error, e),
        }
        effects
    }

    /// Open the details' timeline: the whole of it is loaded, then
    /// followed live.
    fn load_timeline(&mut self, uuid: uuid::Uuid) -> Vec<Effect> {
        let entries = self
            .journal
            .iter()
            .filter(|e| e.uuid == Some(uuid))
            .cloned()
            .collect();
        self.feed.details = Some(DetailTimeline {
            uuid,
            entries,
            console_tail: Vec::new(),
            loaded: false,
        });
        vec![Effect::LoadTimeline(uuid)]
    }

    fn select_after_refresh(&mut self, domid: DomId) {
        // The new domain arrives with the next snapshot; select it by its
        // position once it is there, else keep the current selection.
        self.table.tags.clear();
        self.pending_select = Some(domid);
    }

    fn scopes(&self) -> Vec<Scope> {
        vec![self.tab.scope(), Scope::Global]
    }

    fn on_key(&mut self, key: KeyEvent) -> Vec<Effect> {
        if key.kind == crossterm::event::KeyEventKind::Release {
            return Vec::new();
        }
        let mode = std::mem::replace(&mut self.mode, Mode::Normal);
        let (mode, effects) = self.key_in_mode(mode, key);
        if matches!(self.mode, Mode::Normal) {
            self.mode = mode;
        }
        effects
    }

    /// Handle a key in a mode; returns the mode to stay in (unless the
    /// handler already set another) and the effects.
    fn key_in_mode(&mut self, mode: Mode, key: KeyEvent) -> (Mode, Vec<Effect>) {
        let esc = key.code == KeyCode::Esc;
        let enter = key.code == KeyCode::Enter;
        match mode {
            Mode::Normal => {
                let effects = match keymap::lookup(&key, &self.scopes(), self.read_only) {
                    Some(cmd) => self.command(cmd),
                    None if self.read_only
                        && keymap::lookup(&key, &self.scopes(), false).is_some() =>
                    {
                        self.announce(Level::Warn, "read-only mode: that action is not available");
                        Vec::new()
                    }
                    None => Vec::new(),
                };
                (Mode::Normal, effects)
            }
            Mode::Filter(mut input) => {
                if esc {
                    self.table.set_filter("");
                    return (Mode::Normal, Vec::new());
                }
                if enter {
                    return (Mode::Normal, Vec::new());
                }
                input.handle(&key);
                self.table.set_filter(&input.text);
                (Mode::Filter(input), Vec::new())
            }
            Mode::Palette(mut input) => {
                if esc {
                    return (Mode::Normal, Vec::new());
                }
                if enter {
                    return (Mode::Normal, self.run_palette(&input.text));
                }
                if key.code == KeyCode::Tab {
                    if let Some(text) =
                        crate::tui::complete::complete(&input.text, &self.palette_candidates())
                    {
                        input = LineInput::new(text);
                    }
                    return (Mode::Palette(input), Vec::new());
                }
                input.handle(&key);
                (Mode::Palette(input), Vec::new())
            }
            Mode::Help(scroll) => {
                let max = crate::tui::ui::overlays::help_max_scroll(self, self.size);
                let page = usize::from(self.size.1.saturating_sub(6)).max(1);
                let to = match key.code {
                    KeyCode::Esc | KeyCode::Char('q') | KeyCode::Char('?') => {
                        return (Mode::Normal, Vec::new());
                    }
                    KeyCode::Down | KeyCode::Char('j') => scroll + 1,
                    KeyCode::Up | KeyCode::Char('k') => scroll.saturating_sub(1),
                    KeyCode::PageDown | KeyCode::Char(' ') => scroll + page,
                    KeyCode::PageUp => scroll.saturating_sub(page),
                    KeyCode::Home | KeyCode::Char('g') => 0,
                    KeyCode::End | KeyCode::Char('G') => max,
                    _ => scroll,
                };
                (Mode::Help(to.min(max)), Vec::new())
            }
            Mode::Details(mut d) => {
                let entries = self.table.row(d.domid).map_or(0, |r| {
                    crate::tui::ui::overlays::timeline_len(self, r.view.info.uuid)
                });
                let page = usize::from(self.size.1 / 2).max(1);
                match d.on_key(&key, entries, page) {
                    DetailsKey::Close => {
                        self.feed.details = None;
                        (Mode::Normal, Vec::new())
                    }
                    DetailsKey::Console => (Mode::Normal, self.open_console(d.domid)),
                    DetailsKey::Stay => (Mode::Details(d), Vec::new()),
                }
            }
            Mode::GoneDetails(uuid) => match key.code {
                KeyCode::Esc | KeyCode::Enter | KeyCode::Char('q') => {
                    self.feed.details = None;
                    (Mode::Normal, Vec::new())
                }
                _ => (Mode::GoneDetails(uuid), Vec::new()),
            },
            Mode::Console { domid, search } => self.console_key(domid, search, key),
            Mode::Confirm(c) => match c.on_key(&key) {
                Some(Answer::Yes) => (Mode::Normal, self.confirmed(c.pending)),
                Some(Answer::No) => {
                    self.announce(Level::Info, "cancelled");
                    (Mode::Normal, Vec::new())
                }
                None => (Mode::Confirm(c), Vec::new()),
            },
            Mode::Shutdown(mut picker, targets) => {
                let hot = match keymap::lookup(&key, &[Scope::Shutdown], self.read_only) {
                    Some(Command::ShutPoweroff) => Some(ShutdownReason::Poweroff),
                    Some(Command::ShutReboot) => Some(ShutdownReason::Reboot),
                    Some(Command::ShutSuspend) => Some(ShutdownReason::Suspend),
                    _ => None,
                };
                // A letter for a reason this backend lacks does nothing
                // but say so; it must never run another reason.
                let hot = match hot {
                    Some(r) => match picker.items.iter().position(|(_, x)| *x == r) {
                        Some(i) => {
                            picker.selected = i;
                            true
                        }
                        None => {
                            self.announce(
                                Level::Error,
                                format!("{r} is not offered by this backend"),
                            );
                            false
                        }
                    },
                    None => false,
                };
                let pick = if hot {
                    Pick::Chosen
                } else {
                    picker.on_key(&key)
                };
                match pick {
                    Pick::Chosen => {
                        let reason = picker.chosen().copied().unwrap_or(ShutdownReason::Poweroff);
                        (Mode::Normal, vec![Effect::Shutdown(targets, reason)])
                    }
                    Pick::Cancelled => (Mode::Normal, Vec::new()),
                    Pick::Stay => (Mode::Shutdown(picker, targets), Vec::new()),
                }
            }
            Mode::Detach(mut picker, domid) => match picker.on_key(&key) {
                Pick::Chosen => match picker.chosen() {
                    Some(r) => (Mode::Normal, vec![Effect::Detach(domid, r.clone())]),
                    None => (Mode::Normal, Vec::new()),
                },
                Pick::Cancelled => (Mode::Normal, Vec::new()),
                Pick::Stay => (Mode::Detach(picker, domid), Vec::new()),
            },
            Mode::Memory(mut form) => match form.on_key(&key) {
                MemoryKey::Cancel => (Mode::Normal, Vec::new()),
                MemoryKey::Set(mib) => self.mem_target(form.domid, mib),
                MemoryKey::Invalid(why) => {
                    self.log(Level::Error, why);
                    (Mode::Memory(form), Vec::new())
                }
                MemoryKey::Stay => (Mode::Memory(form), Vec::new()),
            },
            Mode::Form(form) => self.form_key(form, key),
            Mode::NewConfig(mut prompt) => {
                let name = match prompt.on_key(&key) {
                    NameKey::Cancel => return (Mode::Normal, Vec::new()),
                    NameKey::Stay => return (Mode::NewConfig(prompt), Vec::new()),
                    NameKey::Submit(name) => name,
                };
                if let Err(why) = crate::config::validate_name(&name) {
                    self.announce(Level::Error, format!("'{name}': {why}"));
                    return (Mode::NewConfig(prompt), Vec::new());
                }
                let path = self.library.dir.join(format!("{name}.sxp"));
                if self.library.entries.iter().any(|e| e.path == path) {
                    self.log(
                        Level::Error,
                        format!("{name}.sxp already exists; press e to edit it"),
                    );
                    return (Mode::NewConfig(prompt), Vec::new());
                }
                if let Some(from) = prompt.from {
                    return (
                        Mode::Normal,
                        vec![Effect::CloneConfig {
                            from,
                            to: path,
                            name,
                        }],
                    );
                }
                let backend = self.host.as_ref().map(|h| h.backend);
                let text = library::template_for(&name, backend);
                (
                    Mode::Editor(Box::new(Editor::new(path, &text, ""))),
                    Vec::new(),
                )
            }
            Mode::Editor(ed) => self.editor_key(ed, key),
            Mode::Recover {
                path,
                text,
                recovery,
            } => match key.code {
                KeyCode::Char('y') | KeyCode::Enter => {
                    let ed = Editor::new(path, &recovery, &text);
                    (Mode::Editor(Box::new(ed)), Vec::new())
                }
                KeyCode::Char('n') | KeyCode::Esc => {
                    let effects = vec![Effect::ClearRecovery(path.clone())];
                    (
                        Mode::Editor(Box::new(Editor::new(path, &text, &text))),
                        effects,
                    )
                }
                _ => (
                    Mode::Recover {
                        path,
                        text,
                        recovery,
                    },
                    Vec::new(),
                ),
            },
            Mode::Themes(mut picker) => {
                let pick = picker.on_key(&key);
                let highlighted = picker.chosen().and_then(|i| self.themes.get(*i)).cloned();
                match pick {
                    Pick::Cancelled => {
                        self.theme = self.theme_before.clone();
                        (Mode::Normal, Vec::new())
                    }
                    Pick::Chosen => {
                        if let Some(t) = highlighted {
                            self.theme = t;
                        }
                        (Mode::Normal, Vec::new())
                    }
                    Pick::Stay => {
                        if let Some(t) = highlighted {
                            self.theme = t;
                        }
                        (Mode::Themes(picker), Vec::new())
                    }
                }
            }
        }
    }

    fn console_key(
        &mut self,
        domid: DomId,
        search: Option<LineInput>,
        key: KeyEvent,
    ) -> (Mode, Vec<Effect>) {
        if let Some(mut input) = search {
            match key.code {
                KeyCode::Esc => {
                    return (
                        Mode::Console {
                            domid,
                            search: None,
                        },
                        Vec::new(),
                    );
                }
                KeyCode::Enter => {
                    let found = self
                        .consoles
                        .get_mut(&domid)
                        .is_some_and(|c| c.search(&input.text));
                    // A later search's outcome replaces an earlier one's.
                    if found {
                        self.announce(Level::Info, format!("found: {}", input.text));
                    } else {
                        self.announce(Level::Warn, format!("not found: {}", input.text));
                    }
                    return (
                        Mode::Console {
                            domid,
                            search: None,
                        },
                        Vec::new(),
                    );
                }
                _ => {
                    input.handle(&key);
                    return (
                        Mode::Console {
                            domid,
                            search: Some(input),
                        },
                        Vec::new(),
                    );
                }
            }
        }
        let closed = self.consoles.get(&domid).is_some_and(|c| c.closed);
        if closed && key.code == KeyCode::Enter {
            let name = self.table.name_of(domid);
            if let Some(next) = self
                .table
                .rows
                .iter()
                .find(|r| r.name == name && r.view.info.domid != domid)
            {
                let next = next.view.info.domid;
                return (Mode::Normal, self.open_console(next));
            }
        }
        let page = (layout::console_size(self.size).0.max(2) - 1) as isize;
        let scrolled = self.consoles.get(&domid).is_some_and(|c| c.scrolled() > 0);
        match keymap::lookup(&key, &[Scope::Console], self.read_only) {
            Some(Command::ConsoleDetach) => (Mode::Normal, vec![Effect::CloseConsole(domid)]),
            Some(Command::ScrollUp) => {
                if let Some(c) = self.consoles.get_mut(&domid) {
                    c.scroll(page);
                }
                (
                    Mode::Console {
                        domid,
                        search: None,
                    },
                    Vec::new(),
                )
            }
            Some(Command::ScrollDown) => {
                if let Some(c) = self.consoles.get_mut(&domid) {
                    c.scroll(-page);
                }
                (
                    Mode::Console {
                        domid,
                        search: None,
                    },
                    Vec::new(),
                )
            }
            Some(Command::ConsoleSearch) if scrolled => (
                Mode::Console {
                    domid,
                    search: Some(LineInput::default()),
                },
                Vec::new(),
            ),
            _ if scrolled && key.code == KeyCode::Esc => {
                if let Some(c) = self.consoles.get_mut(&domid) {
                    c.scroll(isize::MIN / 2);
                }
                (
                    Mode::Console {
                        domid,
                        search: None,
                    },
                    Vec::new(),
                )
            }
            _ if self.read_only => {
                self.announce(Level::Warn, "read-only: console input is disabled");
                (
                    Mode::Console {
                        domid,
                        search: None,
                    },
                    Vec::new(),
                )
            }
            _ => {
                // Typing returns to the live screen, as terminals do.
                if let Some(c) = self.consoles.get_mut(&domid)
                    && c.scrolled() > 0
                {
                    c.scroll(isize::MIN / 2);
                }
                let bytes = key_bytes(&key);
                let effects = if bytes.is_empty() {
                    Vec::new()
                } else {
                    vec![Effect::ConsoleInput(domid, bytes)]
                };
                (
                    Mode::Console {
                        domid,
                        search: None,
                    },
                    effects,
                )
            }
        }
    }

    fn form_key(&mut self, mut form: Box<DeviceForm>, key: KeyEvent) -> (Mode, Vec<Effect>) {
        let seed = self.now_ns ^ u64::from(form.domid);
        let next = self
            .table
            .row(form.domid)
            .map(|r| next_vdev(&r.view.info.devices))
            .unwrap_or_else(|| "xvdb".into());
        let out = form.on_key(key, &next, seed);
        let mode = if out.close {
            Mode::Normal
        } else {
            Mode::Form(form)
        };
        (mode, out.effects)
    }

    fn on_completions(&mut self, list: Vec<String>) -> Vec<Effect> {
        if let Mode::Form(form) = &mut self.mode
            && let Some(f) = form.fields.first_mut()
        {
            if let [only] = list.as_slice() {
                f.input = LineInput::new(only.clone());
                form.completions.clear();
            } else if let Some(common) = common_prefix(&list) {
                if common.len() > f.input.text.len() {
                    f.input = LineInput::new(common);
                }
                form.completions = list;
            } else {
                form.completions = list;
            }
        }
        Vec::new()
    }

    fn editor_key(&mut self, mut ed: Box<Editor>, key: KeyEvent) -> (Mode, Vec<Effect>) {
        let (_, height) = layout::editor_rows(self.size);
        match keymap::lookup(&key, &[Scope::Editor], self.read_only) {
            Some(Command::EditorSave) => {
                ed.message = None;
                let effects = vec![Effect::SaveFile {
                    path: ed.path.clone(),
                    text: ed.text(),
                    then_build: false,
                }];
                return (Mode::Editor(ed), effects);
            }
            Some(cmd @ (Command::EditorUndo | Command::EditorRedo | Command::EditorKillLine)) => {
                if self.read_only {
                    ed.message = Some("read-only: the editor cannot change files".into());
                    return (Mode::Editor(ed), Vec::new());
                }
                let what = match cmd {
                    Command::EditorUndo => crate::tui::editor::EditorEdit::Undo,
                    Command::EditorRedo => crate::tui::editor::EditorEdit::Redo,
                    _ => crate::tui::editor::EditorEdit::KillLine,
                };
                let changed = ed.edit(what);
                return edited(ed, changed, height);
            }
            Some(Command::EditorBuild) => {
                if !ed.diagnostics.errors.is_empty() {
                    ed.message = Some("fix the errors before building".into());
                    return (Mode::Editor(ed), Vec::new());
                }
                let effects = vec![Effect::Preflight {
                    path: ed.path.clone(),
                    text: ed.text(),
                }];
                return (Mode::Editor(ed), effects);
            }
            Some(Command::EditorClose) => {
                if ed.dirty() && !ed.confirm_discard {
                    ed.confirm_discard = true;
                    ed.message =
                        Some("unsaved changes: Esc again discards them, Ctrl-S saves".into());
                    return (Mode::Editor(ed), Vec::new());
                }
                let effects = vec![Effect::ClearRecovery(ed.path.clone()), Effect::LoadLibrary];
                return (Mode::Normal, effects);
            }
            _ => {}
        }
        if self.read_only {
            ed.message = Some("read-only: the editor cannot change files".into());
            return (Mode::Editor(ed), Vec::new());
        }
        let changed = ed.input(key);
        edited(ed, changed, height)
    }

    fn on_mouse(&mut self, m: MouseEvent) -> Vec<Effect> {
        if !matches!(self.mode, Mode::Normal) || self.tab != Tab::Domains {
            return Vec::new();
        }
        let (top, height) = layout::table_rows(self.size);
        match m.kind {
            MouseEventKind::ScrollDown => self.table.move_by(3),
            MouseEventKind::ScrollUp => self.table.move_by(-3),
            MouseEventKind::Down(MouseButton::Left) => {
                if m.row + 1 == top {
                    // The header row: sort by the clicked column.
                    let mut x = 1u16;
                    for (col, w) in crate::tui::table::visible_columns(self.size.0) {
                        if m.column >= x && m.column < x + w + 1 {
                            self.table.sort_by(col);
                            break;
                        }
                        x += w + 1;
                    }
                } else if m.row >= top && usize::from(m.row - top) < height {
                    let idx = self.table.offset + usize::from(m.row - top);
                    if idx < self.table.order.len() {
                        self.table.selected = idx;
                    }
                }
            }
            _ => {}
        }
        self.table.scroll_into_view(height);
        Vec::new()
    }

    /// What the palette's Tab completes from.
    fn palette_candidates(&self) -> crate::tui::complete::Candidates {
        let mut library = Vec::new();
        for e in &self.library.entries {
            if let Some(stem) = e.path.file_stem() {
                library.push(stem.to_string_lossy().into_owned());
            }
            library.extend(e.name.clone());
        }
        crate::tui::complete::Candidates {
            verbs: keymap::palette_verbs(self.read_only)
                .into_iter()
                .map(|(v, a, _)| (v, a))
                .collect(),
            domains: self.table.rows.iter().map(|r| r.name.clone()).collect(),
            library,
            themes: self.themes.iter().map(|t| t.name.clone()).collect(),
        }
    }

    /// Why `cmd` does not fit the selected (or tagged) domains' state, if
    /// it does not: the footer leaves it out and the key says so.
    pub fn why_not(&self, cmd: Command) -> Option<String> {
        if self.tab != Tab::Domains {
            return None;
        }
        let rows: Vec<&crate::tui::table::Row> = self
            .table
            .targets()
            .iter()
            .filter_map(|d| self.table.row(*d))
            .collect();
        let domain_cmd = matches!(
            cmd,
            Command::Pause
                | Command::Shutdown
                | Command::Destroy
                | Command::Start
                | Command::Attach
                | Command::Detach
                | Command::MemTarget
                | Command::Console
                | Command::Edit
        );
        let Some(first) = rows.first() else {
            return domain_cmd.then(|| "no domain is selected".to_string());
        };
        let fits =
            |f: &dyn Fn(&crate::backend::DomainInfo) -> bool| rows.iter().any(|r| f(&r.view.info));
        let live = |i: &crate::backend::DomainInfo| !i.flags.shutdown && !i.flags.dying;
        let state = |i: &crate::backend::DomainInfo| {
            if i.flags.shutdown {
                "shut down"
            } else if i.flags.dying {
                "dying"
            } else if i.flags.paused {
                "paused"
            } else {
                "running"
            }
        };
        let ok = match cmd {
            Command::Pause | Command::Attach | Command::MemTarget => {
                fits(&|i| live(i) && i.domid != 0) || cmd == Command::MemTarget && fits(&live)
            }
            Command::Detach => fits(&|i| live(i) && !i.devices.is_empty()),
            // A paused guest cannot answer the button.
            Command::Shutdown => fits(&|i| live(i) && !i.flags.paused && i.domid != 0),
            Command::Start => fits(&|i| i.flags.shutdown),
            Command::Destroy | Command::Console => fits(&|i| i.domid != 0),
            Command::Edit => rows.iter().any(|r| r.view.record.is_some()),
            _ => true,
        };
        (!ok).then(|| {
            let i = &first.view.info;
            if i.domid == 0 && rows.len() == 1 {
                return match cmd {
                    Command::Pause => "Domain-0 cannot be paused".into(),
                    Command::Shutdown => "Domain-0 cannot be shut down".into(),
                    Command::Destroy => "Domain-0 cannot be destroyed".into(),
                    Command::Start => "Domain-0 cannot be started".into(),
                    Command::Console => "Domain-0's console is this host's terminal".into(),
                    Command::Edit => "Domain-0 has no config with domus".into(),
                    _ => "Domain-0 cannot be given devices from here".into(),
                };
            }
            let what = match cmd {
                Command::Start => "start (it is not shut down)".to_string(),
                Command::Edit => format!("edit: {} has no config with domus", first.name),
                _ if i.flags.shutdown => {
                    format!(
                        "that: {} is shut down (S starts it again, d destroys it)",
                        first.name
                    )
                }
                _ => format!("that: {} is {}", first.name, state(i)),
            };
            format!("not offered for {what}")
        })
    }

    fn command(&mut self, cmd: Command) -> Vec<Effect> {
        let (_, height) = layout::table_rows(self.size);
        let page = height.max(1) as isize;
        if let Some(why) = self.why_not(cmd) {
            self.announce(Level::Info, why);
            return Vec::new();
        }
        match cmd {
            Command::Quit => self.quit = true,
            Command::Help => self.mode = Mode::Help(0),
            Command::Palette => self.mode = Mode::Palette(LineInput::default()),
            Command::Theme => {
                let cur = self
                    .themes
                    .iter()
                    .position(|t| t.name == self.theme.name)
                    .unwrap_or(0);
                // Esc goes back to the theme in use now, however it was chosen.
                self.theme_before = self.theme.clone();
                self.mode = Mode::Themes(Picker {
                    title: "Theme".into(),
                    items: self
                        .themes
                        .iter()
                        .enumerate()
                        .map(|(i, t)| (t.name.clone(), i))
                        .collect(),
                    selected: cur,
                });
            }
            Command::NextTab => {
                let i = Tab::ALL.iter().position(|t| *t == self.tab).unwrap_or(0);
                self.tab = Tab::ALL[(i + 1) % Tab::ALL.len()];
            }
            Command::PrevTab => {
                let n = Tab::ALL.len();
                let i = Tab::ALL.iter().position(|t| *t == self.tab).unwrap_or(0);
                self.tab = Tab::ALL[(i + n - 1) % n];
            }
            Command::TabDomains => self.tab = Tab::Domains,
            Command::TabLibrary => {
                self.tab = Tab::Library;
                // Files copied in by hand show when the tab is opened.
                return vec![Effect::LoadLibrary];
            }
            Command::TabEvents => self.tab = Tab::Events,
            Command::TabGone => self.tab = Tab::Gone,
            Command::Up
            | Command::Down
            | Command::PageUp
            | Command::PageDown
            | Command::Top
            | Command::Bottom => {
                let delta = match cmd {
                    Command::Up => -1,
                    Command::Down => 1,
                    Command::PageUp => -page,
                    Command::PageDown => page,
                    Command::Top => isize::MIN / 2,
                    _ => isize::MAX / 2,
                };
                match self.tab {
                    Tab::Domains => {
                        self.table.move_by(delta);
                        self.table.scroll_into_view(height);
                    }
                    Tab::Library => {
                        let n = self.library.entries.len() as isize;
                        self.library.selected = (self.library.selected as isize + delta)
                            .clamp(0, (n - 1).max(0))
                            as usize;
                    }
                    Tab::Gone => {
                        let n = self.feed.gone.len() as isize;
                        self.feed.gone_selected = (self.feed.gone_selected as isize + delta)
                            .clamp(0, (n - 1).max(0))
                            as usize;
                    }
                    Tab::Events => {
                        let n = self.events.len() as isize;
                        self.events_selected = (self.events_selected as isize + delta)
                            .clamp(0, (n - 1).max(0))
                            as usize;
                    }
                }
            }
            // Only columns on screen: a sort by a hidden one shows nowhere.
            Command::SortNext | Command::SortPrev => {
                let shown: Vec<crate::tui::table::Column> =
                    crate::tui::table::visible_columns(self.size.0)
                        .into_iter()
                        .map(|(c, _)| c)
                        .collect();
                for _ in 0..crate::tui::table::Column::ALL.len() {
                    self.table.cycle_sort(cmd == Command::SortNext);
                    if shown.contains(&self.table.column()) {
                        break;
                    }
                }
            }
            Command::SortReverse => self.table.reverse(),
            Command::Filter => self.mode = Mode::Filter(LineInput::new(self.table.filter.clone())),
            Command::Tag => {
                self.table.toggle_tag();
                self.table.move_by(1);
                self.table.scroll_into_view(height);
            }
            Command::Details => match self.tab {
                Tab::Gone => {
                    if let Some(g) = self.feed.selected_gone() {
                        let uuid = g.record.uuid;
                        self.mode = Mode::GoneDetails(uuid);
                        return self.load_timeline(uuid);
                    }
                }
                _ => {
                    if let Some(row) = self.table.selected_row() {
                        let (d, uuid) = (row.view.info.domid, row.view.info.uuid);
                        self.mode = Mode::Details(Details::new(d));
                        return self.load_timeline(uuid);
                    }
                }
            },
            Command::Dismiss => {
                if let Some(g) = self.feed.selected_gone() {
                    let uuid = g.record.uuid;
                    self.feed.gone.retain(|x| x.record.uuid != uuid);
                    self.feed.gone_selected = self
                        .feed
                        .gone_selected
                        .min(self.feed.gone.len().saturating_sub(1));
                    return vec![Effect::Dismiss(uuid)];
                }
            }
            Command::Console => {
                if let Some(d) = self.table.selected_domid() {
                    return self.open_console(d);
                }
            }
            Command::Edit => return self.edit_selected(),
            Command::Pause => return self.pause_toggle(),
            Command::Start => {
                let targets: Vec<DomId> = self
                    .table
                    .targets()
                    .into_iter()
                    .filter(|d| {
                        self.table
                            .row(*d)
                            .is_some_and(|r| r.view.info.flags.shutdown)
                    })
                    .collect();
                if !targets.is_empty() {
                    return vec![Effect::Start(targets)];
                }
            }
            Command::CancelQueued => return self.cancel_queued(self.table.targets()),
            Command::Shutdown => {
                let targets = self.guest_targets("shut down");
                if !targets.is_empty() {
                    let mut items = vec![("poweroff".to_string(), ShutdownReason::Poweroff)];
                    if self.can(Capability::Reboot) {
                        items.push(("reboot".into(), ShutdownReason::Reboot));
                    }
                    if self.can(Capability::Suspend) {
                        items.push(("suspend".into(), ShutdownReason::Suspend));
                    }
                    let names: Vec<String> =
                        targets.iter().map(|d| self.table.name_of(*d)).collect();
                    self.mode = Mode::Shutdown(
                        Picker {
                            title: format!("Shut down {}", names.join(", ")),
                            items,
                            selected: 0,
                        },
                        targets,
                    );
                }
            }
            // One confirmation, for the key and the palette alike.
            Command::Destroy => {
                let targets = self.guest_targets("destroyed");
                if !targets.is_empty() {
                    self.confirm_destroy(targets);
                }
            }
            Command::Attach => {
                if let Some(row) = self.table.selected_row() {
                    let info = &row.view.info;
                    if info.domid == 0 {
                        self.log(Level::Error, "devices are attached to guests, not Domain-0");
                    } else {
                        let form = DeviceForm::new(
                            info.domid,
                            row.name.clone(),
                            next_vdev(&info.devices),
                            self.now_ns ^ u64::from(info.domid),
                        );
                        self.mode = Mode::Form(Box::new(form));
                    }
                }
            }
            Command::Detach => {
                if let Some(row) = self.table.selected_row() {
                    let info = &row.view.info;
                    if info.devices.is_empty() {
                        let msg = format!("{} has no devices", row.name);
                        self.announce(Level::Info, msg);
                    } else {
                        let items = info
                            .devices
                            .iter()
                            .map(|d| (d.to_string(), device_ref(d, &info.devices)))
                            .collect();
                        self.mode = Mode::Detach(
                            Picker {
                                title: format!("Detach from {}", row.name),
                                items,
                                selected: 0,
                            },
                            info.domid,
                        );
                    }
                }
            }
            Command::MemTarget => {
                if let Some(row) = self.table.selected_row() {
                    let info = &row.view.info;
                    self.mode = Mode::Memory(MemoryForm::new(info.domid, info.memory_kib / 1024));
                }
            }
            Command::LibNew => self.mode = Mode::NewConfig(NamePrompt::new("", None)),
            Command::LibClone => {
                if let Some(e) = self.library.selected_entry() {
                    if let Err(why) = &e.status {
                        self.log(Level::Error, format!("{} does not read: {why}", e.file));
                    } else {
                        let base = e.name.clone().unwrap_or_default();
                        self.mode = Mode::NewConfig(NamePrompt::new(
                            &format!("{base}-copy"),
                            Some(e.path.clone()),
                        ));
                    }
                }
            }
            Command::LibBuild => {
                if let Some(e) = self.library.selected_entry() {
                    if let Err(err) = &e.status {
                        // Logged: the Events tab holds what the line cuts.
                        let msg = format!("{} is not valid: {err}", e.file);
                        self.log(Level::Error, msg);
                    } else {
                        return vec![Effect::Build(e.path.clone())];
                    }
                }
            }
            Command::LibDelete => {
                if let Some(e) = self.library.selected_entry() {
                    self.mode = Mode::Confirm(Confirm {
                        title: "Delete".into(),
                        message: format!(
                            "Delete {}?\nThe file is removed; running domains are not affected.",
                            e.file
                        ),
                        pending: Pending::DeleteFile(e.path.clone()),
                    });
                }
            }
            Command::LibImport => match self.library.selected_entry() {
                Some(e) if e.dialect == crate::config::xl::Dialect::Xl => {
                    return vec![Effect::ImportConfig(e.path.clone())];
                }
                Some(e) => self.log(
                    Level::Info,
                    format!(
                        "{} is already a domus config (i imports xl.cfg files)",
                        e.file
                    ),
                ),
                None => {}
            },
            Command::ConsoleDetach
            | Command::ScrollUp
            | Command::ScrollDown
            | Command::ConsoleSearch
            | Command::ConfirmYes
            | Command::ConfirmNo
            | Command::DetailsClose
            | Command::PickUp
            | Command::PickDown
            | Command::PickChoose
            | Command::PickCancel
            | Command::ShutPoweroff
            | Command::ShutReboot
            | Command::ShutSuspend
            | Command::EditorSave
            | Command::EditorUndo
            | Command::EditorRedo
            | Command::EditorKillLine
            | Command::EditorBuild
            | Command::EditorClose => {}
        }
        Vec::new()
    }

    fn confirm_destroy(&mut self, targets: Vec<DomId>) {
        let mut names: Vec<String> = targets
            .iter()
            .take(5)
            .map(|d| {
                format!(
                    "{} (domain {d})",
                    crate::tui::ui::tables::ellipsize(&self.table.name_of(*d), 30)
                )
            })
            .collect();
        if targets.len() > 5 {
            names.push(format!("and {} more", targets.len() - 5));
        }
        self.mode = Mode::Confirm(Confirm {
            title: "Destroy".into(),
            message: format!(
                "Destroy {}?\nThe guest stops at once, without shutting down.",
                names.join(",\n  ")
            ),
            pending: Pending::Destroy(targets),
        });
    }

    /// Set a memory target, asking first when it is low enough to hurt.
    fn mem_target(&self, domid: DomId, mib: u64) -> (Mode, Vec<Effect>) {
        let low = if domid == 0 {
            LOW_DOM0_MIB
        } else {
            LOW_GUEST_MIB
        };
        if mib >= low {
            return (Mode::Normal, vec![Effect::MemTarget(domid, mib)]);
        }
        let name = self.table.name_of(domid);
        let why = if domid == 0 {
            "Domain-0 runs the toolstack and the backends of every guest;\nstarved, it can take them all down."
        } else {
            "The guest's kernel may start killing processes\nwhen it has to give the memory back."
        };
        let mode = Mode::Confirm(Confirm {
            title: "Memory target".into(),
            message: format!("Set {name}'s memory target to {mib} MiB (below {low})?\n{why}"),
            pending: Pending::MemTarget(domid, mib),
        });
        (mode, Vec::new())
    }

    /// Selected/tagged domains, minus Domain-0 (with a message).
    fn guest_targets(&mut self, what: &str) -> Vec<DomId> {
        let mut targets = self.table.targets();
        if targets.contains(&0) {
            targets.retain(|d| *d != 0);
            self.log(Level::Error, format!("Domain-0 cannot be {what}"));
        }
        targets
    }

    /// Drop what waits on these domains; say so when nothing does.
    fn cancel_queued(&mut self, targets: Vec<DomId>) -> Vec<Effect> {
        let waiting: Vec<DomId> = targets
            .iter()
            .copied()
            .filter(|d| self.queued.contains_key(d))
            .collect();
        if waiting.is_empty() {
            let names: Vec<String> = targets.iter().map(|d| self.table.name_of(*d)).collect();
            self.log(
                Level::Info,
                format!(
                    "nothing waits on {} (what has started runs to its end)",
                    names.join(", ")
                ),
            );
            return Vec::new();
        }
        vec![Effect::CancelQueued(waiting)]
    }

    fn pause_toggle(&mut self) -> Vec<Effect> {
        let targets = self.guest_targets("paused");
        if targets.is_empty() {
            return Vec::new();
        }
        vec![Effect::TogglePause(targets)]
    }

    fn open_console(&mut self, domid: DomId) -> Vec<Effect> {
        if domid == 0 {
            self.log(Level::Error, "Domain-0's console is this host's terminal");
            return Vec::new();
        }
        if !self.can(Capability::Console) {
            self.log(Level::Error, "this backend has no consoles");
            return Vec::new();
        }
        self.mode = Mode::Console {
            domid,
            search: None,
        };
        // Every open starts a fresh buffer and stream: the backend replays
        // the console from the domain's start.
        let (rows, cols) = layout::console_size(self.size);
        let mut buffer = ConsoleBuffer::new(rows, cols);
        buffer.name = self.table.name_of(domid);
        self.consoles.insert(domid, buffer);
        vec![
            Effect::OpenConsole(domid),
            Effect::ConsoleResize(domid, cols, rows),
        ]
    }

    fn edit_selected(&mut self) -> Vec<Effect> {
        match self.tab {
            Tab::Library => self
                .library
                .selected_entry()
                .map(|e| vec![Effect::OpenFile(e.path.clone())])
                .unwrap_or_default(),
            _ => {
                let Some(row) = self.table.selected_row() else {
                    return Vec::new();
                };
                match &row.view.record {
                    None => {
                        self.log(
                            Level::Error,
                            format!("{} was not built by domus: no config to edit", row.name),
                        );
                        Vec::new()
                    }
                    Some(rec) => match &rec.source {
                        Some(src) => vec![Effect::OpenFile(src.clone())],
                        None => {
                            let path = self.library.dir.join(format!("{}.sxp", rec.name));
                            let text = rec.config.to_sxp_string();
                            self.mode = Mode::Editor(Box::new(Editor::new(path, &text, "")));
                            Vec::new()
                        }
                    },
                }
            }
        }
    }

    fn confirmed(&mut self, pending: Pending) -> Vec<Effect> {
        match pending {
            Pending::Destroy(targets) => vec![Effect::Destroy(targets)],
            Pending::DeleteFile(path) => vec![Effect::DeleteFile(path)],
            Pending::MemTarget(domid, mib) => vec![Effect::MemTarget(domid, mib)],
        }
    }

    fn resolve(&self, dom: &str) -> Option<DomId> {
        let by_id = dom.parse::<DomId>().ok();
        self.table
            .rows
            .iter()
            .find(|r| Some(r.view.info.domid) == by_id || r.view.info.name == dom)
            .map(|r| r.view.info.domid)
    }

    /// Run a `:` command: the CLI's verbs over the same effects.
    fn run_palette(&mut self, line: &str) -> Vec<Effect> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some((&verb, args)) = words.split_first() else {
            return Vec::new();
        };
        let allowed = keymap::palette_verbs(self.read_only);
        if !allowed.iter().any(|(v, _, _)| *v == verb) {
            let known = keymap::palette_verbs(false);
            let msg = if known.iter().any(|(v, _, _)| *v == verb) {
                format!("{verb} is not available in read-only mode")
            } else {
                format!("unknown command '{verb}' (Tab completes; ? lists keys and commands)")
            };
            self.log(Level::Error, msg);
            return Vec::new();
        }
        let need_dom = |app: &mut App| -> Option<DomId> {
            let Some(dom) = args.first() else {
                app.log(Level::Error, format!("{verb} needs a domain name or id"));
                return None;
            };
            let found = app.resolve(dom);
            if found.is_none() {
                app.log(Level::Error, format!("no domain {dom}"));
            }
            found
        };
        match verb {
            "quit" => self.quit = true,
            "theme" => match args
                .first()
                .and_then(|n| self.themes.iter().find(|t| t.name == *n))
            {
                Some(t) => self.theme = t.clone(),
                None => {
                    let names: Vec<&str> = self.themes.iter().map(|t| t.name.as_str()).collect();
                    let msg = match args.first() {
                        Some(n) => format!("no theme {n}; themes: {}", names.join(", ")),
                        None => format!("theme NAME, one of: {}", names.join(", ")),
                    };
                    self.log(Level::Error, msg);
                }
            },
            "create" => {
                let Some(what) = args.first() else {
                    self.log(Level::Error, "create needs a library config name or a file");
                    return Vec::new();
                };
                let path = match self.library.find(what) {
                    Some(e) => e.path.clone(),
                    None => PathBuf::from(what),
                };
                return vec![Effect::Build(path)];
            }
            "new" => {
                self.mode =
                    Mode::NewConfig(NamePrompt::new(args.first().copied().unwrap_or(""), None));
            }
            "console" => {
                if let Some(d) = need_dom(self) {
                    return self.open_console(d);
                }
            }
            "edit" => {
                if let Some(d) = need_dom(self) {
                    if let Some(pos) = self
                        .table
                        .order
                        .iter()
                        .position(|i| self.table.rows[*i].view.info.domid == d)
                    {
                        self.table.selected = pos;
                    }
                    self.tab = Tab::Domains;
                    return self.edit_selected();
                }
            }
            "pause" | "unpause" | "destroy" => {
                if let Some(d) = need_dom(self) {
                    if d == 0 {
                        self.log(Level::Error, format!("Domain-0 cannot be {verb}d"));
                        return Vec::new();
                    }
                    return match verb {
                        // As the key: pause, or unpause a paused domain.
                        "pause" => vec![Effect::TogglePause(vec![d])],
                        "unpause" => vec![Effect::Unpause(vec![d])],
                        _ => {
                            self.confirm_destroy(vec![d]);
                            Vec::new()
                        }
                    };
                }
            }
            "start" => {
                if let Some(d) = need_dom(self) {
                    return vec![Effect::Start(vec![d])];
                }
            }
            "cancel" => {
                if let Some(d) = need_dom(self) {
                    return self.cancel_queued(vec![d]);
                }
            }
            "shutdown" => {
                if let Some(d) = need_dom(self) {
                    let reason = match args.get(1).copied() {
                        None | Some("poweroff") => ShutdownReason::Poweroff,
                        Some("reboot") => ShutdownReason::Reboot,
                        Some("suspend") => ShutdownReason::Suspend,
                        Some(other) => {
                            self.log(
                                Level::Error,
                                format!("unknown shutdown '{other}' (poweroff, reboot, suspend)"),
                            );
                            return Vec::new();
                        }
                    };
                    return vec![Effect::Shutdown(vec![d], reason)];
                }
            }
            "attach" => {
                if let Some(d) = need_dom(self) {
                    let Some(kind) = args.get(1) else {
                        self.log(Level::Error, "attach DOM vbd|vif|pci ARGS…");
                        return Vec::new();
                    };
                    let rest: Vec<String> = args[2..].iter().map(|s| s.to_string()).collect();
                    match parse_device_args(kind, &rest) {
                        Ok(dev) => return vec![Effect::Attach(d, dev)],
                        Err(e) => self.log(Level::Error, e),
                    }
                }
            }
            "detach" => {
                if let Some(d) = need_dom(self) {
                    match args.get(1).map(|s| s.parse::<DeviceRef>()) {
                        Some(Ok(r)) => return vec![Effect::Detach(d, r)],
                        Some(Err(e)) => self.log(Level::Error, e),
                        None => self.log(Level::Error, "detach DOM DEVICE"),
                    }
                }
            }
            "save" => {
                if let Some(d) = need_dom(self) {
                    match args.get(1) {
                        Some(file) => return vec![Effect::Save(d, PathBuf::from(file))],
                        None => self.log(Level::Error, "save DOM FILE"),
                    }
                }
            }
            "restore" => match args.first() {
                Some(file) => return vec![Effect::Restore(PathBuf::from(file))],
                None => self.log(Level::Error, "restore FILE"),
            },
            "mem-set" => {
                if let Some(d) = need_dom(self) {
                    match args
                        .get(1)
                        .and_then(|m| m.parse::<u64>().ok())
                        .filter(|m| *m > 0)
                    {
                        Some(mib) => {
                            let (mode, effects) = self.mem_target(d, mib);
                            self.mode = mode;
                            return effects;
                        }
                        None => self.log(Level::Error, "mem-set DOM MIB"),
                    }
                }
            }
            _ => {}
        }
        Vec::new()
    }
}

/// The editor after an edit: in view, and its recovery copy kept when the
/// text changed.
fn edited(mut ed: Box<Editor>, changed: bool, height: usize) -> (Mode, Vec<Effect>) {
    ed.scroll_into_view(height);
    let effects = if changed {
        ed.message = None;
        vec![Effect::WriteRecovery {
            path: ed.path.clone(),
            text: ed.text(),
        }]
    } else {
        Vec::new()
    };
    (Mode::Editor(ed), effects)
}

fn common_prefix(list: &[String]) -> Option<String> {
    let first = list.first()?;
    let mut len = first.len();
    for s in &list[1..] {
        len = len.min(
            first
                .bytes()
                .zip(s.bytes())
                .take_while(|(a, b)| a == b)
                .count(),
        );
    }
    while !first.is_char_boundary(len) {
        len -= 1;
    }
    Some(first[..len].to_string())
}
