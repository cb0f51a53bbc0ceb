//! The app's state and `update`: the only place state changes. `update`
//! turns an [`Action`] into state changes and a list of [`Effect`]s for the
//! runtime to carry out; it does no IO itself.

mod commands;
mod done;
mod inputs;
mod keys;
mod ops;
mod rules;

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;

use super::action::{Action, Effect, Snapshot};
use super::components::confirm::Confirm;
use super::components::console_view::ConsoleView;
use super::components::details::Details;
use super::components::device_form::DeviceForm;
use super::components::help::Help;
use super::components::memory_form::MemoryForm;
use super::components::name_prompt::NamePrompt;
use super::components::palette::Palette;
use super::components::picker::Picker;
use super::console::ConsoleBuffer;
use super::editor::Editor;
use super::feed::{DetailTimeline, Feed};
use super::input::LineInput;
use super::keymap::{Command, Keymap, Scope};
use super::library::Library;
use super::table::DomainTable;
use super::theme::Theme;
use super::ui::layout;
use crate::backend::{Capability, HostInfo, ShutdownReason};
use crate::config::DeviceRef;
use crate::engine::{DomainEvent, JournalEntry};
use crate::fleet::{DomKey, HostId};

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

pub enum Mode {
    Normal,
    Filter(LineInput),
    Palette(Palette),
    Help(Help),
    Details(Details),
    /// The details of a domain that is gone.
    GoneDetails(uuid::Uuid),
    Console(ConsoleView),
    Confirm(Confirm),
    Shutdown(Picker<ShutdownReason>, Vec<DomKey>),
    Form(Box<DeviceForm>),
    Detach(Picker<DeviceRef>, DomKey),
    Memory(MemoryForm),
    /// A new config's name; with a source: a copy of that config.
    NewConfig(NamePrompt),
    Editor(Box<Editor>),
    /// Unsaved edits from an earlier session: recover them or not.
    Recover(Recover),
    /// The theme picker; moving previews each theme.
    Themes(Picker<usize>),
}

/// A file with a recovery copy of unsaved edits.
pub struct Recover {
    pub path: PathBuf,
    /// The file as saved.
    pub text: String,
    /// The edits.
    pub recovery: String,
}

impl Recover {
    fn recovered(self) -> Editor {
        Editor::new(self.path, &self.recovery, &self.text)
    }

    fn saved(self) -> Editor {
        Editor::new(self.path, &self.text, &self.text)
    }
}

pub struct App {
    /// The keymap in use: the defaults with the operator's overrides.
    pub keys: Keymap,
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
    /// Every host of the fleet (one, usually).
    pub hosts: super::hosts::Hosts,
    pub table: DomainTable,
    pub library: Library,
    pub events: VecDeque<LogLine>,
    pub events_selected: usize,
    /// The newest journal entries (every domus process's), oldest first.
    pub journal: VecDeque<JournalEntry>,
    /// What the TUI follows of the journal beyond the table.
    pub feed: Feed,
    /// Operations waiting their turn on each domain (the lanes say).
    pub queued: HashMap<DomKey, Vec<&'static str>>,
    /// This process, to tell its own journal entries from others'.
    pub pid: u32,
    pub status: Option<(Level, String)>,
    pub consoles: HashMap<DomKey, ConsoleBuffer>,
    pub size: (u16, u16),
    pub now_ns: u64,
    pub loaded: bool,
    pub quit: bool,
    /// Build from the editor: the file whose build should close the editor.
    building_from_editor: Option<PathBuf>,
    /// A domain to select once a snapshot shows it (after a build).
    pending_select: Option<DomKey>,
    /// The theme before the picker opened, for Esc.
    theme_before: Theme,
    /// When the status line was set: routine news waits behind a recent error.
    pub status_at: u64,
    /// The Events tab holds the status line's text (a cut one points
    /// there).
    pub status_logged: bool,
    ticks: u64,
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
            keys: Keymap::default(),
            library_scan_pending: false,
            library_rescan: false,
            prefs_kept: crate::tui::prefs::Prefs::default(),
            theme_before: theme.clone(),
            status_at: 0,
            status_logged: false,
            theme,
            themes,
            read_only,
            tab: Tab::Domains,
            mode: Mode::Normal,
            hosts: super::hosts::Hosts::default(),
            table: DomainTable::with_hosts(vec!["local".into()]),
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
        // The newest word wins the status line; the Events tab keeps all.
        self.status = Some((level, text.clone()));
        self.status_at = self.now_ns;
        self.status_logged = true;
        self.push_event(level, text);
    }

    /// Show on the status line only: the outcome of an operation that the
    /// journal (and so the Events tab) records anyway.
    fn announce(&mut self, level: Level, text: impl Into<String>) {
        self.status = Some((level, text.into()));
        self.status_at = self.now_ns;
        self.status_logged = false;
    }

    /// [`announce`](Self::announce) a journal entry: the Events tab has it.
    fn announce_logged(&mut self, level: Level, text: impl Into<String>) {
        self.announce(level, text);
        self.status_logged = true;
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

    /// Refresh ticks so far (what a host's silence is counted in).
    pub fn ticks(&self) -> u64 {
        self.ticks
    }

    /// Name the fleet's hosts (in `HostId` order); one host by default.
    pub fn set_hosts(&mut self, names: &[String]) {
        self.hosts = super::hosts::Hosts(
            names
                .iter()
                .map(|n| super::hosts::HostView::named(n))
                .collect(),
        );
        self.table.host_names = names.to_vec();
    }

    /// The host commands without a domain go to: the selected domain's
    /// (or the first).
    pub fn current_host(&self) -> HostId {
        self.table
            .selected_row()
            .map_or(HostId::default(), |r| r.host)
    }

    /// What the current host reported of itself.
    pub fn host(&self) -> Option<&HostInfo> {
        self.hosts
            .get(self.current_host())
            .and_then(|h| h.info.as_ref())
    }

    /// Whether the current host's backend can.
    fn can(&self, cap: Capability) -> bool {
        self.hosts.caps(self.current_host()).has(cap)
    }

    /// Whether any host counts I/O.
    fn any_io(&self) -> bool {
        self.hosts
            .iter()
            .any(|(_, h)| h.caps.has(Capability::IoStats))
    }

    /// "web1", or "host:web1" in a fleet: what messages call a domain.
    pub fn label(&self, key: DomKey) -> String {
        let name = self.table.name_of(key);
        if self.hosts.is_fleet() {
            format!("{}:{name}", self.hosts.name(key.host))
        } else {
            name
        }
    }

    /// The operator's choices as they are now.
    pub fn prefs(&self) -> crate::tui::prefs::Prefs {
        crate::tui::prefs::Prefs {
            theme: Some(self.theme.name.clone()),
            sort: Some(self.table.column().title().to_string()),
            descending: self.table.descending,
            // A host filter belongs to this fleet: not kept for the next
            // session, which may have other hosts.
            filter: if self.table.filter.contains("host:") {
                self.table
                    .filter
                    .split_whitespace()
                    .filter(|w| !w.starts_with("host:"))
                    .collect::<Vec<_>>()
                    .join(" ")
            } else {
                self.table.filter.clone()
            },
        }
    }

    /// The table's columns on a terminal `width` wide: with the I/O ones
    /// where the backend counts I/O.
    pub fn columns_in(&self, width: u16) -> Vec<(crate::tui::table::Column, u16)> {
        crate::tui::table::columns_for(
            width,
            self.any_io(),
            self.table.io_first,
            self.hosts.is_fleet().then(|| {
                // The longest name, a space before it, within reason.
                let longest = self
                    .hosts
                    .iter()
                    .map(|(_, h)| h.name.chars().count())
                    .max()
                    .unwrap_or(4);
                (longest as u16 + 2).clamp(6, 26)
            }),
        )
    }

    /// Whether I/O is on screen, in a column or a domain's details (then
    /// its counters are read).
    pub fn io_shown(&self) -> bool {
        self.any_io()
            && self.tab == Tab::Domains
            && (matches!(self.mode, Mode::Details(_))
                || self.columns_in(self.size.0).iter().any(|(c, _)| c.is_io()))
    }

    /// Say what the keys file did, a few lines at most (a file of
    /// garbage must not flood the Events tab): `domus keys` lists all.
    pub fn key_notes(&mut self, notes: &crate::tui::keymap::overrides::KeyNotes) {
        const SHOWN: usize = 5;
        let all: Vec<&String> = notes.problems.iter().chain(&notes.moved).collect();
        for n in all.iter().take(SHOWN) {
            self.log(Level::Warn, n.as_str());
        }
        if all.len() > SHOWN {
            let msg = format!(
                "keys file: {} more note(s); domus keys lists them all",
                all.len() - SHOWN
            );
            self.log(Level::Warn, msg);
        }
        if !notes.problems.is_empty() {
            let msg = format!(
                "keys file: {} line(s) not used; domus keys lists them",
                notes.problems.len()
            );
            self.log(Level::Error, msg);
        }
    }

    /// Take saved preferences (at start): they become what is kept. A
    /// saved theme or column that no longer exists is said, not dropped
    /// silently.
    pub fn apply_prefs(&mut self, p: &crate::tui::prefs::Prefs, theme_given: bool) {
        if let Some(name) = p.theme.as_ref().filter(|_| !theme_given) {
            match self.themes.iter().find(|t| t.name == *name) {
                Some(t) => self.theme = t.clone(),
                None => self.log(
                    Level::Warn,
                    format!(
                        "the saved theme '{}' is not installed; using {}",
                        crate::fsx::excerpt(name, 40),
                        self.theme.name
                    ),
                ),
            }
        }
        if let Some(col) = &p.sort
            && !self.table.set_sort(col, p.descending)
        {
            let msg = format!(
                "the saved sort column '{}' does not exist; sorting by {}",
                crate::fsx::excerpt(col, 40),
                self.table.column().title()
            );
            self.log(Level::Warn, msg);
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
            Action::Paste(text) => self.on_paste(&text),
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
            Action::ConsoleBytes(domid, bytes) => self.on_console_bytes(domid, &bytes),
            Action::ConsoleClosed(domid) => {
                if let Some(c) = self.consoles.get_mut(&domid) {
                    c.closed = true;
                }
                Vec::new()
            }
            Action::ConsoleFailed(domid) => self.on_console_failed(domid),
            Action::Library(entries) => self.on_library(entries),
            Action::FileOpened {
                path,
                text,
                recovery,
            } => {
                self.mode = match recovery {
                    Some(recovery) => Mode::Recover(Recover {
                        path,
                        text,
                        recovery,
                    }),
                    None => Mode::Editor(Box::new(Editor::new(path, &text, &text))),
                };
                Vec::new()
            }
            Action::PciDevices(list) => {
                if let Mode::Form(f) = &mut self.mode {
                    f.pci = list;
                }
                Vec::new()
            }
            Action::Completions(list) => {
                if let Mode::Form(form) = &mut self.mode {
                    form.take_completions(list);
                }
                Vec::new()
            }
            Action::StoreChanged => vec![Effect::Refresh],
            Action::LibraryChanged => self.on_library_changed(),
            Action::Cloned { path, text } => {
                self.mode = Mode::Editor(Box::new(Editor::new(path, &text, "")));
                Vec::new()
            }
            Action::Tick => self.on_tick(),
            Action::Io { host, at_ns, io } => {
                self.table.apply_io(host, &io, at_ns);
                Vec::new()
            }
            Action::Stats { host, at_ns, stats } => {
                self.answered(host, false);
                self.on_stats(host, at_ns, &stats)
            }
            Action::NativeToEdit { key, name, text } => {
                match text {
                    Some(text) => {
                        let label = format!("{name} (the hypervisor's definition)");
                        self.mode = Mode::Editor(Box::new(Editor::native(key, &label, &text)));
                    }
                    None => self.log(
                        Level::Error,
                        format!("{name} was not built by domus: no config to edit"),
                    ),
                }
                Vec::new()
            }
            Action::Native { key, text } => {
                if let Mode::Details(d) = &mut self.mode
                    && d.domid == key
                {
                    d.native = text.map(|t| t.lines().map(crate::tui::ui::one_line).collect());
                }
                Vec::new()
            }
            Action::HostDown { host, why } => {
                self.on_host_down(host, why);
                Vec::new()
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

    /// A host answered; a whole refresh (`whole`) says it is up again (a
    /// tick's cheap read may succeed where the refresh does not).
    fn answered(&mut self, host: HostId, whole: bool) {
        let tick = self.ticks;
        if let Some(h) = self.hosts.get_mut(host) {
            h.answered_tick = tick;
            if whole {
                h.down = None;
            }
        }
    }

    /// A host could not be read: said once when it goes down (its rows stay,
    /// shown as not current, until it answers again).
    fn on_host_down(&mut self, host: HostId, why: String) {
        let Some(h) = self.hosts.get_mut(host) else {
            return;
        };
        let was_up = h.down.is_none();
        h.down = Some(why.clone());
        if was_up {
            let text = if self.hosts.is_fleet() {
                format!("host {}: {why}", self.hosts.name(host))
            } else {
                format!("refresh failed: {why}")
            };
            self.log(Level::Error, text);
        }
    }

    fn on_snapshot(&mut self, s: Snapshot) {
        let first = !self.loaded;
        let host = s.host_id;
        // Each host's first answer brings its history, not news.
        let host_first = self.hosts.get(host).is_some_and(|h| h.info.is_none());
        self.answered(host, true);
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
        if let Some(h) = self.hosts.get_mut(host) {
            h.info = Some(s.host);
            h.caps = s.capabilities;
        }
        self.table.update(host, s.domains, s.at_ns);
        if let Some(d) = self.pending_select
            && let Some(pos) = self
                .table
                .order
                .iter()
                .position(|i| self.table.rows[*i].key() == d)
        {
            self.table.select(pos);
            self.pending_select = None;
        }
        // Each host's gone domains, newest first across the fleet.
        self.feed.gone.retain(|g| g.host != host);
        self.feed.gone.extend(s.gone);
        self.feed
            .gone
            .sort_by_key(|g| std::cmp::Reverse(g.last.as_ref().map_or(0, |l| l.at_ns)));
        self.feed.gone_selected = self
            .feed
            .gone_selected
            .min(self.feed.gone.len().saturating_sub(1));
        // Every process's events, in the Events tab; the important ones
        // others caused on the status line.
        let pid = self.pid;
        let fleet = self
            .hosts
            .is_fleet()
            .then(|| self.hosts.name(host).to_string());
        for e in s.journal.iter().filter(|e| super::feed::shown(e, pid)) {
            let mut line = LogLine::from_journal(e);
            if let Some(h) = &fleet {
                line.who = format!("{h}: {}", line.who);
            }
            self.push_line(line);
        }
        if first || host_first {
            // History arrived after what this TUI said at start: in time
            // order (the sort is stable), the selection on the newest.
            self.events.make_contiguous().sort_by_key(|e| e.at_ns);
            self.events_selected = self.events.len().saturating_sub(1);
        }
        // The first snapshot brings history: it goes to the Events tab,
        // not on the status line as news.
        let announced = self.feed.take(&s.journal, self.pid);
        for e in announced.into_iter().filter(|_| !first && !host_first) {
            let who = match &fleet {
                Some(h) => format!("{h}:{}", super::feed::subject(&e)),
                None => super::feed::subject(&e),
            };
            self.announce_logged(Level::Warn, format!("{who}: {} ({})", e.event, e.source));
        }
        let live: Vec<uuid::Uuid> = self.table.rows.iter().map(|r| r.view.info.uuid).collect();
        self.feed.retain_live(&live);
        for p in self.feed.timed_out(self.now_ns) {
            let key = self
                .keys
                .key_for(Command::Destroy)
                .unwrap_or_else(|| "d".into());
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
        // Details of a domain another process destroyed would take keys
        // while showing nothing: they close, saying why.
        if let Mode::Details(d) = &self.mode
            && self.table.row(d.domid).is_none()
        {
            let gone = d.domid;
            self.mode = Mode::Normal;
            self.feed.details = None;
            let tab = self
                .keys
                .key_for(Command::TabGone)
                .unwrap_or_else(|| "4".into());
            self.announce(
                Level::Info,
                format!("domain {gone} is gone; its details closed ({tab}: Gone keeps it)"),
            );
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

    /// Open the details' timeline: the whole of it is loaded, then
    /// followed live.
    fn load_timeline(&mut self, host: HostId, uuid: uuid::Uuid) -> Vec<Effect> {
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
        vec![Effect::LoadTimeline(host, uuid)]
    }

    fn select_after_refresh(&mut self, domid: DomKey) {
        // The new domain arrives with the next snapshot; select it by its
        // position once it is there, else keep the current selection.
        self.table.tags.clear();
        self.pending_select = Some(domid);
    }
}
