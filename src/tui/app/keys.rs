//! Keys and the mouse: a key goes to the open overlay's component (or, in
//! normal mode, through the keymap to a command); each arm hands over and
//! turns the component's answer into the next mode.

use crossterm::event::{KeyEvent, KeyEventKind, MouseButton, MouseEvent, MouseEventKind};

use super::{App, Level, Mode, Tab};
use crate::backend::ShutdownReason;
use crate::fleet::DomKey;
use crate::tui::action::Effect;
use crate::tui::components::confirm::Answer;
use crate::tui::components::console_view::{ConsoleKey, ConsoleView};
use crate::tui::components::details::{Details, DetailsKey};
use crate::tui::components::device_form::{DeviceForm, next_vdev};
use crate::tui::components::memory_form::MemoryKey;
use crate::tui::components::name_prompt::{NameKey, NamePrompt};
use crate::tui::components::palette::{Palette, PaletteKey};
use crate::tui::components::picker::{Pick, Picker};
use crate::tui::editor::Editor;
use crate::tui::input::LineInput;
use crate::tui::keymap::{Command, Scope};
use crate::tui::ui::layout;

type Next = (Mode, Vec<Effect>);

fn stay(mode: Mode) -> Next {
    (mode, Vec::new())
}

fn close() -> Next {
    (Mode::Normal, Vec::new())
}

impl App {
    pub(super) fn on_key(&mut self, key: KeyEvent) -> Vec<Effect> {
        if key.kind == KeyEventKind::Release {
            return Vec::new();
        }
        let mode = std::mem::replace(&mut self.mode, Mode::Normal);
        let (mode, effects) = self.key_in_mode(mode, key);
        // A handler that opened another overlay itself keeps it.
        if matches!(self.mode, Mode::Normal) {
            self.mode = mode;
        }
        effects
    }

    /// Pasted text goes into the text the operator is typing (one line of
    /// it: a newline would submit) or to a guest's console; anywhere else
    /// it is refused, never run as keys.
    pub(super) fn on_paste(&mut self, text: &str) -> Vec<Effect> {
        /// More is not a line anyone types.
        const MAX: usize = 4096;
        let line: String = text
            .chars()
            .take_while(|c| *c != '\n' && *c != '\r')
            .filter(|c| !c.is_control())
            .take(MAX)
            .collect();
        // A field holds a line, not a document: what goes past this is
        // not typed.
        const FIELD: usize = 1024;
        let into = |input: &mut LineInput| {
            let room = FIELD.saturating_sub(input.text.chars().count());
            for c in line.chars().take(room) {
                input.insert(c);
            }
        };
        match &mut self.mode {
            Mode::Filter(input) => {
                into(input);
                let text = input.text.clone();
                self.table.set_filter(&text);
            }
            Mode::Palette(p) => into(&mut p.input),
            // A number: what typing would keep of the paste (digits).
            Mode::Memory(f) => {
                for c in line.chars().filter(char::is_ascii_digit).take(12) {
                    f.input.insert(c);
                }
            }
            Mode::NewConfig(p) => into(&mut p.input),
            Mode::Form(f) => f.paste(&line),
            Mode::Console(v) if v.search.is_some() => {
                if let Some(input) = v.search.as_mut() {
                    into(input);
                }
            }
            // The guest gets what was pasted, as a terminal would send it.
            Mode::Console(v) if !self.read_only => {
                let bytes: Vec<u8> = text.bytes().take(1 << 16).collect();
                return vec![Effect::ConsoleInput(v.domid, bytes)];
            }
            Mode::Editor(ed) if !self.read_only => {
                let (_, height) = layout::editor_rows(self.size);
                return ed.paste(text, height).effects;
            }
            _ => self.announce(
                Level::Info,
                "paste ignored here: it goes into a text field, the editor or a console",
            ),
        }
        Vec::new()
    }

    /// Hand a key to the mode's component; the mode to stay in and the
    /// effects come back.
    fn key_in_mode(&mut self, mode: Mode, key: KeyEvent) -> Next {
        match mode {
            Mode::Normal => (Mode::Normal, self.normal_key(&key)),
            Mode::Filter(input) => self.filter_key(input, &key),
            Mode::Palette(p) => self.palette_key(p, &key),
            Mode::Help(mut help) => {
                let max = crate::tui::components::help::max_scroll(self, self.size);
                let page = usize::from(self.size.1.saturating_sub(6)).max(1);
                match help.on_key(&key, &self.keys, max, page) {
                    true => stay(Mode::Help(help)),
                    false => close(),
                }
            }
            Mode::Details(d) => self.details_key(d, &key),
            Mode::GoneDetails(uuid) => match self.keys.lookup(&key, &[Scope::Details], false) {
                Some(Command::DetailsClose) => {
                    self.feed.details = None;
                    close()
                }
                _ => stay(Mode::GoneDetails(uuid)),
            },
            Mode::Console(view) => self.console_key(view, &key),
            Mode::Confirm(c) => match c.on_key(&key, &self.keys) {
                Some(Answer::Yes) => (Mode::Normal, self.confirmed(c.pending)),
                Some(Answer::No) => {
                    self.announce(Level::Info, "cancelled");
                    close()
                }
                None => stay(Mode::Confirm(c)),
            },
            Mode::Shutdown(picker, targets) => self.shutdown_key(picker, targets, &key),
            Mode::Detach(mut picker, domid) => match picker.on_key(&key, &self.keys) {
                Pick::Chosen => match picker.chosen() {
                    Some(r) => (Mode::Normal, vec![Effect::Detach(domid, r.clone())]),
                    None => close(),
                },
                Pick::Cancelled => close(),
                Pick::Stay => stay(Mode::Detach(picker, domid)),
            },
            Mode::Memory(mut form) => match form.on_key(&key) {
                MemoryKey::Cancel => close(),
                MemoryKey::Set(mib) => {
                    // Above the maximum QEMU or Xen would refuse it: said
                    // here, with the form kept.
                    // Known only for domains domus built: others' maximum
                    // is left to the backend to judge.
                    let max = self
                        .table
                        .row(form.domid)
                        .filter(|r| r.view.record.is_some())
                        .map_or(u64::MAX, |r| r.view.info.max_memory_kib / 1024);
                    if mib > max {
                        self.log(
                            Level::Error,
                            format!("{mib} MiB is above the maximum, {max} MiB"),
                        );
                        return stay(Mode::Memory(form));
                    }
                    self.mem_target(form.domid, mib)
                }
                MemoryKey::Invalid(why) => {
                    self.log(Level::Error, why);
                    stay(Mode::Memory(form))
                }
                MemoryKey::Stay => stay(Mode::Memory(form)),
            },
            Mode::Form(form) => self.form_key(form, key),
            Mode::NewConfig(prompt) => self.name_key(prompt, &key),
            Mode::Editor(mut ed) => {
                let (_, height) = layout::editor_rows(self.size);
                let out = ed.on_key(key, &self.keys, self.read_only, height);
                let mode = if out.close {
                    Mode::Normal
                } else {
                    Mode::Editor(ed)
                };
                (mode, out.effects)
            }
            // Esc keeps the recovery copy (a reflex must not lose the
            // edits): the file opens as saved, the copy is offered again.
            Mode::Recover(r) if key.code == crossterm::event::KeyCode::Esc => {
                let mut ed = r.saved();
                ed.keep_recovery = true;
                ed.message =
                    Some("the unsaved edits are kept: close and open again to recover them".into());
                stay(Mode::Editor(Box::new(ed)))
            }
            Mode::Recover(r) => match self.keys.lookup(&key, &[Scope::Confirm], false) {
                Some(Command::ConfirmYes) => stay(Mode::Editor(Box::new(r.recovered()))),
                Some(Command::ConfirmNo) => {
                    let effects = vec![Effect::ClearRecovery(r.path.clone())];
                    (Mode::Editor(Box::new(r.saved())), effects)
                }
                _ => stay(Mode::Recover(r)),
            },
            Mode::Themes(picker) => self.themes_key(picker, &key),
        }
    }

    fn normal_key(&mut self, key: &KeyEvent) -> Vec<Effect> {
        let scopes = [self.tab.scope(), Scope::Global];
        match self.keys.lookup(key, &scopes, self.read_only) {
            Some(cmd) => self.command(cmd),
            None if self.read_only && self.keys.lookup(key, &scopes, false).is_some() => {
                self.announce(Level::Warn, "read-only mode: that action is not available");
                Vec::new()
            }
            None => Vec::new(),
        }
    }

    /// The filter applies as it is typed; Enter keeps it, Esc clears it.
    fn filter_key(&mut self, mut input: LineInput, key: &KeyEvent) -> Next {
        match key.code {
            crossterm::event::KeyCode::Esc => {
                self.table.set_filter("");
                close()
            }
            crossterm::event::KeyCode::Enter => close(),
            _ => {
                input.handle(key);
                self.table.set_filter(&input.text);
                stay(Mode::Filter(input))
            }
        }
    }

    fn palette_key(&mut self, mut p: Palette, key: &KeyEvent) -> Next {
        match p.on_key(key, || self.palette_candidates()) {
            PaletteKey::Stay => stay(Mode::Palette(p)),
            PaletteKey::Close => close(),
            PaletteKey::Run(line) => (Mode::Normal, self.run_palette(&line)),
        }
    }

    fn details_key(&mut self, mut d: Details, key: &KeyEvent) -> Next {
        let max = d.max_back(self, self.size);
        let page = usize::from(self.size.1 / 2).max(1);
        match d.on_key(key, &self.keys, max, page) {
            DetailsKey::Close => {
                self.feed.details = None;
                close()
            }
            DetailsKey::Console => (Mode::Normal, self.open_console(d.domid)),
            DetailsKey::Stay => stay(Mode::Details(d)),
        }
    }

    fn console_key(&mut self, mut view: ConsoleView, key: &KeyEvent) -> Next {
        let domid = view.domid;
        let page = (layout::console_size(self.size).0.max(2) - 1) as isize;
        let buffer = self.consoles.get_mut(&domid);
        match view.on_key(key, buffer, &self.keys, self.read_only, page) {
            ConsoleKey::Stay => stay(Mode::Console(view)),
            ConsoleKey::Detach => (Mode::Normal, vec![Effect::CloseConsole(domid)]),
            ConsoleKey::Send(bytes) => (
                Mode::Console(view),
                vec![Effect::ConsoleInput(domid, bytes)],
            ),
            ConsoleKey::Say(level, text) => {
                self.announce(level, text);
                stay(Mode::Console(view))
            }
            // The domain is gone: its successor of the same name (after a
            // restart), else stay on what it left.
            ConsoleKey::Reopen => match self.successor(domid) {
                Some(next) => (Mode::Normal, self.open_console(next)),
                None => stay(Mode::Console(view)),
            },
        }
    }

    /// The domain that took over a gone one's name (a restart).
    pub fn successor(&self, domid: DomKey) -> Option<DomKey> {
        // The row is gone: the console's buffer kept the name.
        let name = match self.consoles.get(&domid) {
            Some(c) if !c.name.is_empty() => c.name.clone(),
            _ => self.table.name_of(domid),
        };
        self.table
            .rows
            .iter()
            .find(|r| r.host == domid.host && r.name == name && r.key() != domid)
            .map(super::super::table::Row::key)
    }

    fn shutdown_key(
        &mut self,
        mut picker: Picker<ShutdownReason>,
        targets: Vec<DomKey>,
        key: &KeyEvent,
    ) -> Next {
        let hot = match self.keys.lookup(key, &[Scope::Shutdown], self.read_only) {
            Some(Command::ShutPoweroff) => Some(ShutdownReason::Poweroff),
            Some(Command::ShutReboot) => Some(ShutdownReason::Reboot),
            Some(Command::ShutSuspend) => Some(ShutdownReason::Suspend),
            _ => None,
        };
        // A letter for a reason this backend lacks does nothing but say
        // so; it must never run another reason.
        let pick = match hot.map(|r| (r, picker.items.iter().position(|(_, x)| *x == r))) {
            Some((_, Some(i))) => {
                picker.selected = i;
                Pick::Chosen
            }
            Some((r, None)) => {
                self.announce(Level::Error, format!("{r} is not offered by this backend"));
                Pick::Stay
            }
            None => picker.on_key(key, &self.keys),
        };
        match pick {
            Pick::Chosen => {
                let reason = picker.chosen().copied().unwrap_or(ShutdownReason::Poweroff);
                (Mode::Normal, vec![Effect::Shutdown(targets, reason)])
            }
            Pick::Cancelled => close(),
            Pick::Stay => stay(Mode::Shutdown(picker, targets)),
        }
    }

    fn form_key(&mut self, mut form: Box<DeviceForm>, key: KeyEvent) -> Next {
        let seed = self.now_ns ^ u64::from(form.domid.domid);
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

    /// A new config's name: a template for this backend, or a copy.
    fn name_key(&mut self, mut prompt: NamePrompt, key: &KeyEvent) -> Next {
        let name = match prompt.on_key(key) {
            NameKey::Cancel => return close(),
            NameKey::Stay => return stay(Mode::NewConfig(prompt)),
            NameKey::Submit(name) => name,
        };
        if let Err(why) = crate::config::validate_name(&name) {
            prompt.error = Some(format!("'{name}': {why}"));
            return stay(Mode::NewConfig(prompt));
        }
        let path = self.library.dir.join(format!("{name}.sxp"));
        if self.library.entries.iter().any(|e| e.path == path) {
            prompt.error = Some(format!(
                "{name}.sxp already exists: choose another name (Esc, then e edits it)"
            ));
            return stay(Mode::NewConfig(prompt));
        }
        if let Some(from) = prompt.from {
            let effects = vec![Effect::CloneConfig {
                from,
                to: path,
                name,
            }];
            return (Mode::Normal, effects);
        }
        let backend = self.host().map(|h| h.backend);
        let text = crate::tui::library::template_for(&name, backend);
        stay(Mode::Editor(Box::new(Editor::new(path, &text, ""))))
    }

    /// Moving through the themes shows each; Esc goes back.
    fn themes_key(&mut self, mut picker: Picker<usize>, key: &KeyEvent) -> Next {
        let pick = picker.on_key(key, &self.keys);
        let highlighted = picker.chosen().and_then(|i| self.themes.get(*i)).cloned();
        if pick == Pick::Cancelled {
            self.theme = self.theme_before.clone();
            return close();
        }
        if let Some(t) = highlighted {
            self.theme = t;
        }
        match pick {
            Pick::Stay => stay(Mode::Themes(picker)),
            _ => close(),
        }
    }

    pub(super) fn on_mouse(&mut self, m: MouseEvent) -> Vec<Effect> {
        if !matches!(self.mode, Mode::Normal) || self.tab != Tab::Domains {
            return Vec::new();
        }
        let (top, height) = layout::table_rows(self.size);
        match m.kind {
            MouseEventKind::ScrollDown => self.table.move_by(3),
            MouseEventKind::ScrollUp => self.table.move_by(-3),
            // The header row: sort by the clicked column.
            MouseEventKind::Down(MouseButton::Left) if m.row + 1 == top => {
                let mut x = 1u16;
                for (col, w) in self.columns_in(self.size.0) {
                    if m.column >= x && m.column < x + w + 1 {
                        self.table.sort_by(col);
                        break;
                    }
                    x += w + 1;
                }
            }
            MouseEventKind::Down(MouseButton::Left)
                if m.row >= top && usize::from(m.row - top) < height =>
            {
                let idx = self.table.offset + usize::from(m.row - top);
                if idx < self.table.order.len() {
                    self.table.select(idx);
                }
            }
            _ => {}
        }
        self.table.scroll_into_view(height);
        Vec::new()
    }
}
