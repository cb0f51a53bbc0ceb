//! The one dispatcher: an [`Op`] from a key, the palette or a bulk action
//! is checked against the domains' state, then run, or opens the form,
//! list or question it needs.

use super::{App, Level, Mode};
use crate::backend::{Capability, ShutdownReason};
use crate::fleet::{DomKey, HostId};
use crate::tui::action::Effect;
use crate::tui::components::confirm::{Confirm, Pending};
use crate::tui::components::device_form::{DeviceForm, next_vdev};
use crate::tui::components::memory_form::MemoryForm;
use crate::tui::components::name_prompt::NamePrompt;
use crate::tui::components::picker::Picker;
use crate::tui::console::ConsoleBuffer;
use crate::tui::editor::Editor;
use crate::tui::op::Op;
use crate::tui::ui::layout;

/// Below these (MiB) a memory target asks first: a guest's kernel starts
/// killing processes, and a starved Domain-0 takes the host's toolstack
/// with it.
const LOW_GUEST_MIB: u64 = 64;
const LOW_DOM0_MIB: u64 = 512;

impl App {
    /// Run an operation: the state rules first (the same for a key and a
    /// `:` line), then its effects or the overlay it needs.
    pub(super) fn dispatch(&mut self, op: Op) -> Vec<Effect> {
        let targets = op.targets();
        if !targets.is_empty()
            && let Some(why) = self.why_not_for(op.command(), &targets)
        {
            self.announce(Level::Info, why);
            return Vec::new();
        }
        match op {
            Op::Quit => self.quit = true,
            Op::Theme(name) => self.switch_theme(name),
            Op::New(name) => self.mode = Mode::NewConfig(NamePrompt::new(&name, None)),
            Op::Create(what) => {
                let path = match self.library.find(&what) {
                    Some(e) => e.path.clone(),
                    None => std::path::PathBuf::from(what),
                };
                return vec![Effect::Build(self.current_host(), path)];
            }
            Op::Console(d) => return self.open_console(d),
            Op::Edit(d) => return self.edit_domain(d),
            Op::TogglePause(t) => return self.on_guests(t, "paused", Effect::TogglePause),
            Op::Pause(t) => {
                let paused: Vec<String> = t
                    .iter()
                    .filter(|d| {
                        self.table
                            .row(**d)
                            .is_some_and(|r| r.view.info.flags.paused)
                    })
                    .map(|d| self.table.name_of(*d))
                    .collect();
                if !paused.is_empty() {
                    let names = paused.join(", ");
                    self.announce(
                        Level::Info,
                        format!("{names} is paused already (:unpause {names} resumes it)"),
                    );
                    return Vec::new();
                }
                return self.on_guests(t, "paused", Effect::TogglePause);
            }
            Op::Unpause(t) => return self.on_guests(t, "unpaused", Effect::Unpause),
            Op::Start(t) => return vec![Effect::Start(t)],
            Op::Shutdown(t, None) => self.shutdown_menu(t),
            Op::Shutdown(t, Some(r)) => {
                return self.on_guests(t, "shut down", |t| Effect::Shutdown(t, r));
            }
            Op::Destroy(t) => {
                let t = self.guest_targets(t, "destroyed");
                if !t.is_empty() {
                    self.confirm_destroy(t);
                }
            }
            Op::Cancel(t) => return self.cancel_queued(t),
            Op::Attach(d, None) => self.attach_form(d),
            Op::Attach(d, Some(dev)) => return vec![Effect::Attach(d, dev)],
            Op::Detach(d, None) => self.detach_list(d),
            Op::Detach(d, Some(r)) => return vec![Effect::Detach(d, r)],
            Op::MemTarget(d, None) => {
                if let Some(row) = self.table.row(d) {
                    let mib = row.view.info.memory_kib / 1024;
                    self.mode = Mode::Memory(MemoryForm::new(d, mib));
                }
            }
            Op::MemTarget(d, Some(mib)) => {
                let (mode, effects) = self.mem_target(d, mib);
                self.mode = mode;
                return effects;
            }
            Op::Save(d, file) => return vec![Effect::Save(d, file)],
            Op::Restore(file) => return vec![Effect::Restore(self.current_host(), file)],
        }
        Vec::new()
    }

    /// The effect for these domains, Domain-0 left out (with a message).
    fn on_guests(
        &mut self,
        targets: Vec<DomKey>,
        what: &str,
        effect: impl FnOnce(Vec<DomKey>) -> Effect,
    ) -> Vec<Effect> {
        let targets = self.guest_targets(targets, what);
        if targets.is_empty() {
            return Vec::new();
        }
        vec![effect(targets)]
    }

    /// The domains minus Domain-0, said when it was among them.
    fn guest_targets(&mut self, mut targets: Vec<DomKey>, what: &str) -> Vec<DomKey> {
        if targets.iter().any(DomKey::is_dom0) {
            targets.retain(|d| !d.is_dom0());
            self.log(Level::Error, format!("Domain-0 cannot be {what}"));
        }
        targets
    }

    fn switch_theme(&mut self, name: Option<String>) {
        let Some(name) = name else {
            let cur = self
                .themes
                .iter()
                .position(|t| t.name == self.theme.name)
                .unwrap_or(0);
            // Esc goes back to the theme in use now, however it was chosen.
            self.theme_before = self.theme.clone();
            let items = self
                .themes
                .iter()
                .enumerate()
                .map(|(i, t)| (t.name.clone(), i))
                .collect();
            self.mode = Mode::Themes(Picker {
                title: "Theme".into(),
                items,
                selected: cur,
            });
            return;
        };
        match self.themes.iter().find(|t| t.name == name) {
            Some(t) => self.theme = t.clone(),
            None => {
                let names: Vec<&str> = self.themes.iter().map(|t| t.name.as_str()).collect();
                let msg = format!("no theme {name}; themes: {}", names.join(", "));
                self.log(Level::Error, msg);
            }
        }
    }

    fn shutdown_menu(&mut self, targets: Vec<DomKey>) {
        let targets = self.guest_targets(targets, "shut down");
        if targets.is_empty() {
            return;
        }
        let mut items = vec![("poweroff".to_string(), ShutdownReason::Poweroff)];
        if self.can(Capability::Reboot) {
            items.push(("reboot".into(), ShutdownReason::Reboot));
        }
        if self.can(Capability::Suspend) {
            items.push(("suspend".into(), ShutdownReason::Suspend));
        }
        let names: Vec<String> = targets.iter().map(|d| self.table.name_of(*d)).collect();
        let picker = Picker {
            title: format!("Shut down {}", names.join(", ")),
            items,
            selected: 0,
        };
        self.mode = Mode::Shutdown(picker, targets);
    }

    /// One confirmation, for the key, the palette and bulk destroys alike.
    fn confirm_destroy(&mut self, targets: Vec<DomKey>) {
        let mut names: Vec<String> = targets
            .iter()
            .take(5)
            .map(|d| {
                // Whole where the dialog has room: here the name matters most.
                let name = crate::tui::ui::tables::ellipsize(&self.table.name_of(*d), 40);
                let id = crate::backend::shown_id(d.domid);
                if self.hosts.is_fleet() {
                    format!("{name} (domain {id} on {})", self.hosts.name(d.host))
                } else {
                    format!("{name} (domain {id})")
                }
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

    fn attach_form(&mut self, domid: DomKey) {
        if let Some(row) = self.table.row(domid) {
            let info = &row.view.info;
            let form = DeviceForm::new(
                domid,
                row.name.clone(),
                next_vdev(&info.devices),
                self.now_ns ^ u64::from(domid.domid),
            );
            self.mode = Mode::Form(Box::new(form));
        }
    }

    fn detach_list(&mut self, domid: DomKey) {
        let Some(row) = self.table.row(domid) else {
            return;
        };
        let info = &row.view.info;
        let items = info
            .devices
            .iter()
            .map(|d| (d.to_string(), crate::engine::device_ref(d, &info.devices)))
            .collect();
        let picker = Picker {
            title: format!("Detach from {}", row.name),
            items,
            selected: 0,
        };
        self.mode = Mode::Detach(picker, domid);
    }

    /// Set a memory target, asking first when it is low enough to hurt.
    pub(super) fn mem_target(&self, domid: DomKey, mib: u64) -> (Mode, Vec<Effect>) {
        let low = if domid.is_dom0() {
            LOW_DOM0_MIB
        } else {
            LOW_GUEST_MIB
        };
        if mib >= low {
            return (Mode::Normal, vec![Effect::MemTarget(domid, mib)]);
        }
        let name = self.table.name_of(domid);
        let why = if domid.is_dom0() {
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

    /// Drop what waits on these domains; say so when nothing does.
    fn cancel_queued(&mut self, targets: Vec<DomKey>) -> Vec<Effect> {
        let waiting: Vec<DomKey> = targets
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

    pub(super) fn open_console(&mut self, domid: DomKey) -> Vec<Effect> {
        if domid.is_dom0() {
            self.log(Level::Error, "Domain-0's console is this host's terminal");
            return Vec::new();
        }
        if !self.hosts.caps(domid.host).has(Capability::Console) {
            self.log(Level::Error, "this backend has no consoles");
            return Vec::new();
        }
        self.mode = Mode::Console(crate::tui::components::console_view::ConsoleView::new(
            domid,
        ));
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

    /// Edit a domain's config: the file it was built from, else its
    /// stored config as a new library file.
    fn edit_domain(&mut self, domid: DomKey) -> Vec<Effect> {
        if let Some(pos) = self
            .table
            .order
            .iter()
            .position(|i| self.table.rows[*i].key() == domid)
        {
            self.table.select(pos);
        }
        self.tab = super::Tab::Domains;
        let Some(row) = self.table.row(domid) else {
            return Vec::new();
        };
        let Some(rec) = &row.view.record else {
            // Another tool's domain: its definition, where the hypervisor
            // has one of its own (libvirt's XML).
            return vec![Effect::EditNative(domid)];
        };
        match &rec.source {
            Some(src) => vec![Effect::OpenFile(src.clone())],
            None => {
                let path = self.library.dir.join(format!("{}.sxp", rec.name));
                let text = rec.config.to_sxp_string();
                self.mode = Mode::Editor(Box::new(Editor::new(path, &text, "")));
                Vec::new()
            }
        }
    }

    /// A yes to a question.
    pub(super) fn confirmed(&mut self, pending: Pending) -> Vec<Effect> {
        match pending {
            Pending::Destroy(targets) => vec![Effect::Destroy(targets)],
            Pending::DeleteFile(path) => vec![Effect::DeleteFile(path)],
            Pending::MemTarget(domid, mib) => vec![Effect::MemTarget(domid, mib)],
        }
    }

    /// A domain by id or name, `HOST:DOMAIN` in a fleet; a bare one must
    /// be on one host only (as the CLI has it).
    pub(super) fn resolve(&self, dom: &str) -> Result<DomKey, String> {
        let whole = dom;
        let (host, dom) = match dom.split_once(':') {
            Some((h, d)) if self.hosts.is_fleet() => {
                let Some((h, _)) = self.hosts.iter().find(|(_, v)| v.name == h) else {
                    return Err(format!("no host {h}"));
                };
                (Some(h), d)
            }
            _ => (None, dom),
        };
        let on = |h: HostId| {
            // An id first, as the CLI resolves: a domain may be named "5".
            let rows = self.table.rows.iter().filter(move |r| r.host == h);
            dom.parse::<crate::backend::DomId>()
                .ok()
                .and_then(|id| rows.clone().find(|r| r.view.info.domid == id))
                .or_else(|| rows.clone().find(|r| r.view.info.name == dom))
                .map(super::super::table::Row::key)
        };
        if let Some(h) = host {
            return on(h).ok_or_else(|| format!("no domain {whole}"));
        }
        let found: Vec<DomKey> = self.hosts.iter().filter_map(|(h, _)| on(h)).collect();
        match found.as_slice() {
            [one] => Ok(*one),
            [] => Err(format!("no domain {whole}")),
            many => Err(format!(
                "{whole} is on {} hosts: name one as HOST:{whole} ({})",
                many.len(),
                many.iter()
                    .map(|k| self.hosts.name(k.host))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }

    /// Run a `:` line through the same dispatcher as the keys.
    pub(super) fn run_palette(&mut self, line: &str) -> Vec<Effect> {
        let parsed =
            crate::tui::components::palette::parse(line, &self.keys, self.read_only, &|d| {
                self.resolve(d)
            });
        match parsed {
            Ok(Some(op)) => self.dispatch(op),
            Ok(None) => Vec::new(),
            Err(e) => {
                self.log(Level::Error, e);
                Vec::new()
            }
        }
    }

    /// What the palette's Tab completes from.
    pub(super) fn palette_candidates(&self) -> crate::tui::complete::Candidates {
        let mut library = Vec::new();
        for e in &self.library.entries {
            if let Some(stem) = e.path.file_stem() {
                library.push(stem.to_string_lossy().into_owned());
            }
            library.extend(e.name.clone());
        }
        crate::tui::complete::Candidates {
            verbs: self
                .keys
                .palette_verbs(self.read_only)
                .into_iter()
                .map(|(v, a, _)| (v, a))
                .collect(),
            domains: self.table.rows.iter().map(|r| r.name.clone()).collect(),
            library,
            themes: self.themes.iter().map(|t| t.name.clone()).collect(),
        }
    }
}
