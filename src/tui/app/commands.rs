//! A key's command in normal mode: moving, sorting and tabs here; what
//! acts on domains becomes an [`Op`] for the dispatcher; the library's
//! commands act on its selected file.

use super::{App, Level, Mode, Tab};
use crate::tui::action::Effect;
use crate::tui::components::confirm::{Confirm, Pending};
use crate::tui::components::details::Details;
use crate::tui::components::name_prompt::NamePrompt;
use crate::tui::input::LineInput;
use crate::tui::keymap::Command;
use crate::tui::op::Op;
use crate::tui::table::Column;
use crate::tui::ui::layout;

impl App {
    pub(super) fn command(&mut self, cmd: Command) -> Vec<Effect> {
        if let Some(why) = self.why_not(cmd) {
            self.announce(Level::Info, why);
            return Vec::new();
        }
        if let Some(op) = self.op_for(cmd) {
            return self.dispatch(op);
        }
        match cmd {
            Command::Help => self.mode = Mode::Help(Default::default()),
            Command::Palette => self.mode = Mode::Palette(Default::default()),
            Command::Filter => self.mode = Mode::Filter(LineInput::new(self.table.filter.clone())),
            Command::NextTab | Command::PrevTab | Command::TabDomains | Command::TabEvents => {
                self.switch_tab(cmd)
            }
            Command::TabGone => self.tab = Tab::Gone,
            Command::TabLibrary => {
                self.tab = Tab::Library;
                // Files copied in by hand show when the tab is opened.
                return vec![Effect::LoadLibrary];
            }
            Command::Up
            | Command::Down
            | Command::PageUp
            | Command::PageDown
            | Command::Top
            | Command::Bottom => self.move_selection(cmd),
            Command::SortNext | Command::SortPrev => self.cycle_sort(cmd == Command::SortNext),
            Command::SortReverse => self.table.reverse(),
            Command::IoColumns if !self.can(crate::backend::Capability::IoStats) => {
                self.announce(Level::Info, "this backend does not count I/O");
            }
            Command::IoColumns => {
                self.table.io_first = !self.table.io_first;
                if self.io_shown() {
                    return vec![Effect::IoStats];
                }
            }
            Command::Tag => {
                self.table.toggle_tag();
                self.table.move_by(1);
                self.table.scroll_into_view(layout::table_rows(self.size).1);
            }
            Command::Details => return self.open_details(),
            Command::Dismiss => return self.dismiss_gone(),
            Command::LibClone | Command::LibBuild | Command::LibDelete | Command::LibImport => {
                return self.library_command(cmd);
            }
            Command::Edit => {
                return self
                    .library
                    .selected_entry()
                    .map(|e| vec![Effect::OpenFile(e.path.clone())])
                    .unwrap_or_default();
            }
            // The overlays' own keys, handled where they are open.
            _ => {}
        }
        Vec::new()
    }

    /// What a key's command does to the selected (or tagged) domains.
    fn op_for(&self, cmd: Command) -> Option<Op> {
        let targets = || self.table.targets();
        let selected = || self.table.selected_domid();
        Some(match cmd {
            Command::Quit => Op::Quit,
            Command::Theme => Op::Theme(None),
            Command::LibNew => Op::New(String::new()),
            Command::Pause => Op::TogglePause(targets()),
            Command::Unpause => Op::Unpause(targets()),
            Command::Start => Op::Start(
                targets()
                    .into_iter()
                    .filter(|d| {
                        self.table
                            .row(*d)
                            .is_some_and(|r| r.view.info.flags.shutdown)
                    })
                    .collect(),
            ),
            Command::Shutdown => Op::Shutdown(targets(), None),
            Command::Destroy => Op::Destroy(targets()),
            Command::CancelQueued => Op::Cancel(targets()),
            Command::Console => Op::Console(selected()?),
            Command::Edit if self.tab == Tab::Domains => Op::Edit(selected()?),
            Command::Attach => Op::Attach(selected()?, None),
            Command::Detach => Op::Detach(selected()?, None),
            Command::MemTarget => Op::MemTarget(selected()?, None),
            _ => return None,
        })
    }

    fn switch_tab(&mut self, cmd: Command) {
        let n = Tab::ALL.len();
        let i = Tab::ALL.iter().position(|t| *t == self.tab).unwrap_or(0);
        self.tab = match cmd {
            Command::NextTab => Tab::ALL[(i + 1) % n],
            Command::PrevTab => Tab::ALL[(i + n - 1) % n],
            Command::TabEvents => Tab::Events,
            _ => Tab::Domains,
        };
    }

    /// Up, down, a page, the ends: in whichever list the tab shows.
    fn move_selection(&mut self, cmd: Command) {
        let (_, height) = layout::table_rows(self.size);
        let page = height.max(1) as isize;
        let delta = match cmd {
            Command::Up => -1,
            Command::Down => 1,
            Command::PageUp => -page,
            Command::PageDown => page,
            Command::Top => isize::MIN / 2,
            _ => isize::MAX / 2,
        };
        let step = |at: usize, len: usize| {
            (at as isize + delta).clamp(0, (len as isize - 1).max(0)) as usize
        };
        match self.tab {
            Tab::Domains => {
                self.table.move_by(delta);
                self.table.scroll_into_view(height);
            }
            Tab::Library => {
                self.library.selected = step(self.library.selected, self.library.entries.len())
            }
            Tab::Gone => {
                self.feed.gone_selected = step(self.feed.gone_selected, self.feed.gone.len())
            }
            Tab::Events => self.events_selected = step(self.events_selected, self.events.len()),
        }
    }

    /// Only columns on screen: a sort by a hidden one shows nowhere.
    fn cycle_sort(&mut self, forward: bool) {
        let shown: Vec<Column> = self
            .columns_in(self.size.0)
            .into_iter()
            .map(|(c, _)| c)
            .collect();
        for _ in 0..Column::ALL.len() {
            self.table.cycle_sort(forward);
            if shown.contains(&self.table.column()) {
                break;
            }
        }
    }

    fn open_details(&mut self) -> Vec<Effect> {
        if self.tab == Tab::Gone {
            let Some((host, uuid)) = self.feed.selected_gone().map(|g| (g.host, g.record.uuid))
            else {
                return Vec::new();
            };
            self.mode = Mode::GoneDetails(uuid);
            return self.load_timeline(host, uuid);
        }
        let Some(row) = self.table.selected_row() else {
            return Vec::new();
        };
        let (d, uuid, foreign) = (row.key(), row.view.info.uuid, row.view.record.is_none());
        self.mode = Mode::Details(Details::new(d));
        let mut effects = self.load_timeline(d.host, uuid);
        // Another tool's domain: its own description is what there is.
        if foreign {
            effects.push(Effect::LoadNative(d));
        }
        effects
    }

    fn dismiss_gone(&mut self) -> Vec<Effect> {
        let Some((host, uuid)) = self.feed.selected_gone().map(|g| (g.host, g.record.uuid)) else {
            return Vec::new();
        };
        self.feed.gone.retain(|x| x.record.uuid != uuid);
        self.feed.gone_selected = self
            .feed
            .gone_selected
            .min(self.feed.gone.len().saturating_sub(1));
        vec![Effect::Dismiss(host, uuid)]
    }

    /// Copy, build, delete or import the selected library file.
    fn library_command(&mut self, cmd: Command) -> Vec<Effect> {
        let Some(e) = self.library.selected_entry() else {
            return Vec::new();
        };
        let (file, path) = (e.file.clone(), e.path.clone());
        let broken = e.status.as_ref().err().cloned();
        let base = e.name.clone().unwrap_or_default();
        let xl = e.dialect == crate::config::xl::Dialect::Xl;
        match (cmd, broken) {
            (Command::LibClone, Some(why)) => {
                self.log(Level::Error, format!("{file} does not read: {why}"))
            }
            // Logged: the Events tab holds what the line cuts.
            (Command::LibBuild, Some(why)) => {
                self.log(Level::Error, format!("{file} is not valid: {why}"))
            }
            (Command::LibClone, None) => {
                let prompt = NamePrompt::new(&format!("{base}-copy"), Some(path));
                self.mode = Mode::NewConfig(prompt);
            }
            (Command::LibBuild, None) => return vec![Effect::Build(self.current_host(), path)],
            (Command::LibDelete, _) => {
                self.mode = Mode::Confirm(Confirm {
                    title: "Delete".into(),
                    message: format!(
                        "Delete {file}?\nThe file is removed; running domains are not affected."
                    ),
                    pending: Pending::DeleteFile(path),
                });
            }
            (_, _) if xl => {
                return vec![Effect::ImportConfig(path)];
            }
            _ => self.log(
                Level::Info,
                format!("{file} is already a domus config (i imports xl.cfg files)"),
            ),
        }
        Vec::new()
    }
}
