//! The editor's keys: save, build, undo/redo, close from the keymap
//! (`Scope::Editor`), the rest to the text area.

use crossterm::event::KeyEvent;

use super::{Editor, EditorEdit};
use crate::tui::action::Effect;
use crate::tui::components::KeyOutcome;
use crate::tui::keymap::{Command, Keymap, Scope};

const READ_ONLY: &str = "read-only: the editor cannot change files";

impl Editor {
    /// A key; `height` is the rows the text shows in.
    pub fn on_key(
        &mut self,
        key: KeyEvent,
        keys: &Keymap,
        read_only: bool,
        height: usize,
    ) -> KeyOutcome {
        match keys.lookup(&key, &[Scope::Editor], read_only) {
            Some(Command::EditorSave) if self.native.is_some() => {
                self.message = Some("giving it to the hypervisor to check and keep…".into());
                let key = self.native.unwrap_or_default();
                KeyOutcome::stay_with(vec![Effect::DefineNative {
                    key,
                    text: self.text(),
                }])
            }
            Some(Command::EditorSave) => {
                self.message = None;
                KeyOutcome::stay_with(vec![Effect::SaveFile {
                    path: self.path.clone(),
                    text: self.text(),
                    then_build: false,
                }])
            }
            Some(cmd @ (Command::EditorUndo | Command::EditorRedo | Command::EditorKillLine)) => {
                if read_only {
                    self.message = Some(READ_ONLY.into());
                    return KeyOutcome::stay();
                }
                let what = match cmd {
                    Command::EditorUndo => EditorEdit::Undo,
                    Command::EditorRedo => EditorEdit::Redo,
                    _ => EditorEdit::KillLine,
                };
                let changed = self.edit(what);
                self.edited(changed, height)
            }
            Some(Command::EditorBuild) if self.native.is_some() => {
                let save = keys
                    .key_for(Command::EditorSave)
                    .unwrap_or_else(|| "Ctrl-S".into());
                self.message = Some(format!(
                    "this is the hypervisor's definition: {save} gives it to the hypervisor (no build)"
                ));
                KeyOutcome::stay()
            }
            Some(Command::EditorBuild) => {
                if !self.diagnostics.errors.is_empty() {
                    self.message = Some("fix the errors before building".into());
                    return KeyOutcome::stay();
                }
                KeyOutcome::stay_with(vec![Effect::Preflight {
                    path: self.path.clone(),
                    text: self.text(),
                }])
            }
            Some(Command::EditorClose) => self.close(keys),
            _ if read_only => {
                self.message = Some(READ_ONLY.into());
                KeyOutcome::stay()
            }
            _ => {
                let changed = self.input(key);
                self.edited(changed, height)
            }
        }
    }

    /// Pasted text, at the cursor, as one edit.
    pub fn paste(&mut self, text: &str, height: usize) -> KeyOutcome {
        // Terminals send a pasted line break as CR (xterm, VTE, tmux).
        let text = text.replace("\r\n", "\n").replace('\r', "\n");
        let text: String = text
            .chars()
            .filter(|c| *c == '\n' || *c == '\t' || !c.is_control())
            .collect();
        let changed = self.changing(|t| {
            t.insert_str(&text);
        });
        self.edited(changed, height)
    }

    /// Close, unless there are unsaved changes: then the next Esc does.
    fn close(&mut self, keys: &Keymap) -> KeyOutcome {
        if self.dirty() && !self.confirm_discard {
            self.confirm_discard = true;
            let close = keys
                .key_for(Command::EditorClose)
                .unwrap_or_else(|| "Esc".into());
            let save = keys
                .key_for(Command::EditorSave)
                .unwrap_or_else(|| "Ctrl-S".into());
            self.message = Some(format!(
                "unsaved changes: {close} again discards them, {save} saves"
            ));
            return KeyOutcome::stay();
        }
        if self.native.is_some() {
            return KeyOutcome {
                close: true,
                effects: Vec::new(),
            };
        }
        let mut effects = vec![Effect::LoadLibrary];
        if !self.keep_recovery {
            effects.insert(0, Effect::ClearRecovery(self.path.clone()));
        }
        KeyOutcome {
            close: true,
            effects,
        }
    }

    /// After an edit: in view, and its recovery copy kept when the text
    /// changed.
    fn edited(&mut self, changed: bool, height: usize) -> KeyOutcome {
        self.scroll_into_view(height);
        if !changed {
            return KeyOutcome::stay();
        }
        // This session's edits are the copy now.
        self.keep_recovery = false;
        self.message = None;
        if self.native.is_some() {
            return KeyOutcome::stay();
        }
        KeyOutcome::stay_with(vec![Effect::WriteRecovery {
            path: self.path.clone(),
            text: self.text(),
        }])
    }
}
