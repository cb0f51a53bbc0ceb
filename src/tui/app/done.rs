//! What the worker reports when an effect has run: the status line, the
//! Events tab, and the overlay that asked (it closes on success and shows
//! a failure with its input kept).

use std::path::{Path, PathBuf};

use super::{App, Level, Mode, Tab};
use crate::backend::ShutdownReason;
use crate::engine::PolicyEvent;
use crate::fleet::DomKey;
use crate::tui::action::{Done, Effect};

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// How a finished operation reads: "paused web1, web2".
fn past_tense(op: &str) -> &str {
    match op {
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
    }
}

impl App {
    pub(super) fn on_done(&mut self, done: Done) -> Vec<Effect> {
        let mut effects = vec![Effect::Refresh];
        match done {
            Done::Cancelled { domid, ops } => self.on_cancelled(domid, &ops),
            Done::Policies { events, repaired } => self.on_policies(events, repaired),
            Done::Ops { op, results } => self.on_ops(op, &results),
            Done::Built { name, result } => self.on_built(&name, result),
            Done::Attached { name, result } => self.on_attached(&name, result),
            Done::Detached { name, result } => match result {
                Ok(what) => self.announce(Level::Ok, format!("{name}: {what}")),
                Err(e) => self.log(Level::Error, format!("{name}: {e}")),
            },
            Done::Saved {
                path,
                text,
                result,
                then_build,
            } => effects.extend(self.on_saved(path, &text, result, then_build)),
            Done::Preflight { path, problems } => effects.extend(self.on_preflight(path, problems)),
            Done::Defined {
                key,
                name,
                text,
                result,
            } => self.on_defined(key, &name, &text, result),
            Done::Imported { from, result } => {
                self.on_imported(&from, result);
                effects.push(Effect::LoadLibrary);
            }
            Done::Deleted { path, result } => {
                let file = file_name(&path);
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

    fn on_cancelled(&mut self, domid: DomKey, ops: &[&str]) {
        let name = self.table.name_of(domid);
        let msg = if ops.is_empty() {
            format!("nothing waits on {name} (what has started runs to its end)")
        } else {
            format!(
                "cancelled on {name} before they started: {}",
                ops.join(", ")
            )
        };
        self.log(Level::Info, msg);
    }

    /// The policies this TUI applied itself (others' come through the
    /// journal).
    fn on_policies(&mut self, events: Vec<PolicyEvent>, repaired: Vec<String>) {
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

    /// One line for a bulk result; each failure also in the Events tab.
    fn on_ops(&mut self, op: &str, results: &[(String, Result<(), String>)]) {
        let failed: Vec<String> = results
            .iter()
            .filter_map(|(n, r)| r.as_ref().err().map(|e| format!("{n}: {e}")))
            .collect();
        let ok: Vec<&str> = results
            .iter()
            .filter(|(_, r)| r.is_ok())
            .map(|(n, _)| n.as_str())
            .collect();
        if results.len() > 1 {
            for (n, e) in results
                .iter()
                .filter_map(|(n, r)| Some((n, r.as_ref().err()?)))
            {
                self.push_event(Level::Error, format!("{op} {n} failed: {e}"));
            }
        }
        if failed.is_empty() {
            self.announce(Level::Ok, format!("{} {}", past_tense(op), ok.join(", ")));
        } else if ok.is_empty() {
            self.log(Level::Error, format!("{op} failed: {}", failed.join("; ")));
        } else {
            let msg = format!("{op}: {} ok; failed: {}", ok.join(", "), failed.join("; "));
            self.log(Level::Warn, msg);
        }
        self.table.tags.clear();
    }

    fn on_built(&mut self, name: &str, result: Result<DomKey, String>) {
        let from_editor = self.building_from_editor.take();
        match result {
            Ok(domid) => {
                let on = if self.hosts.is_fleet() {
                    format!(" on {}", self.hosts.name(domid.host))
                } else {
                    String::new()
                };
                self.announce(Level::Ok, format!("built {name} as domain {domid}{on}"));
                self.tab = Tab::Domains;
                if matches!(&self.mode, Mode::Editor(e) if Some(&e.path) == from_editor.as_ref()) {
                    self.mode = Mode::Normal;
                }
                self.select_after_refresh(domid);
            }
            Err(e) => {
                if let Mode::Editor(ed) = &mut self.mode {
                    ed.message = Some(e.clone());
                }
                self.log(Level::Error, e);
            }
        }
    }

    /// The form that asked closes on success and shows a failure, its
    /// input kept.
    fn on_attached(&mut self, name: &str, result: Result<String, String>) {
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

    /// Saved as typed, but said when it will not build.
    fn on_saved(
        &mut self,
        path: PathBuf,
        written: &str,
        result: Result<(), String>,
        then_build: bool,
    ) -> Vec<Effect> {
        let file = file_name(&path);
        let editor = match &mut self.mode {
            Mode::Editor(ed) if ed.path == path => Some(ed),
            _ => None,
        };
        if let Err(e) = result {
            if let Some(ed) = editor {
                ed.message = Some(format!("not saved: {e}"));
            }
            self.log(Level::Error, format!("saving {file} failed: {e}"));
            return Vec::new();
        }
        let mut broken = None;
        if let Some(ed) = editor {
            // What was written: text typed since stays unsaved.
            ed.saved_text = written.to_string();
            broken = ed
                .diagnostics
                .errors
                .first()
                .map(|d| format!("{}: {}", d.pos, d.message));
        }
        let (level, msg) = match &broken {
            Some(why) => (
                Level::Warn,
                format!("saved {file}; it will not build: {why}"),
            ),
            None => (Level::Ok, format!("saved {file}")),
        };
        if let Mode::Editor(ed) = &mut self.mode
            && ed.path == path
        {
            ed.message = Some(msg.clone());
        }
        self.log(level, msg);
        let mut effects = vec![Effect::ClearRecovery(path.clone()), Effect::LoadLibrary];
        if then_build {
            self.building_from_editor = Some(path.clone());
            effects.push(Effect::Build(self.current_host(), path));
        }
        effects
    }

    /// An edited definition the hypervisor took (or refused, saying why:
    /// the editor stays open on it).
    fn on_defined(&mut self, key: DomKey, name: &str, written: &str, result: Result<(), String>) {
        let editor = match &mut self.mode {
            Mode::Editor(ed) if ed.native == Some(key) => Some(ed),
            _ => None,
        };
        match result {
            Ok(()) => {
                let msg = format!("{name}: the hypervisor took the new definition");
                if let Some(ed) = editor {
                    ed.saved_text = written.to_string();
                    ed.message = Some(msg.clone());
                }
                self.log(Level::Ok, msg);
            }
            Err(e) => {
                let msg = format!("{name}: the definition was refused: {e}");
                if let Some(ed) = editor {
                    ed.message = Some(msg.clone());
                }
                self.log(Level::Error, msg);
            }
        }
    }

    /// Problems found before a build: shown once; Ctrl-B again builds.
    fn on_preflight(&mut self, path: PathBuf, problems: Vec<String>) -> Vec<Effect> {
        let Mode::Editor(ed) = &mut self.mode else {
            return Vec::new();
        };
        if ed.path != path {
            return Vec::new();
        }
        if problems.is_empty() || ed.build_anyway {
            ed.preflight.clear();
            let text = ed.text();
            return vec![Effect::SaveFile {
                path,
                text,
                then_build: true,
            }];
        }
        ed.message = Some(format!(
            "{} problem(s) found; Ctrl-B again builds anyway",
            problems.len()
        ));
        ed.preflight = problems;
        ed.build_anyway = true;
        Vec::new()
    }

    fn on_imported(&mut self, from: &Path, result: Result<(PathBuf, usize), String>) {
        let from = file_name(from);
        match result {
            Ok((to, 0)) => self.log(Level::Ok, format!("imported {from} as {}", file_name(&to))),
            Ok((to, n)) => self.log(
                Level::Warn,
                format!(
                    "imported {from} as {} ({n} warning(s): domus check {from} names them)",
                    file_name(&to)
                ),
            ),
            Err(e) => self.log(Level::Error, format!("importing {from} failed: {e}")),
        }
    }
}
