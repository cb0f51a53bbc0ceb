//! The question asked before a destructive action: one for the `d` key,
//! the palette and bulk destroys alike. Its keys are the keymap's
//! (`Scope::Confirm`), so the help lists them.

use std::path::PathBuf;

use crossterm::event::KeyEvent;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};

use crate::fleet::DomKey;
use crate::tui::app::App;
use crate::tui::keymap::{self, Command, Scope};
use crate::tui::ui::layout::centered;
use crate::tui::ui::overlays::frame_popup;

/// What a yes does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pending {
    Destroy(Vec<DomKey>),
    DeleteFile(PathBuf),
    MemTarget(DomKey, u64),
}

#[derive(Debug, Clone)]
pub struct Confirm {
    pub title: String,
    pub message: String,
    pub pending: Pending,
}

/// The answer a key gives, if it gives one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Yes,
    No,
}

impl Confirm {
    pub fn on_key(&self, key: &KeyEvent, keys: &keymap::Keymap) -> Option<Answer> {
        match keys.lookup(key, &[Scope::Confirm], false) {
            Some(Command::ConfirmYes) => Some(Answer::Yes),
            Some(Command::ConfirmNo) => Some(Answer::No),
            _ => None,
        }
    }

    pub fn draw(&self, frame: &mut Frame, app: &App, area: Rect) {
        let t = &app.theme;
        let mut lines: Vec<Line> = self
            .message
            .lines()
            .map(|l| Line::from(format!(" {l}")))
            .collect();
        lines.push(Line::from(""));
        // Every key of each answer (y, n/Esc), the capitals left out.
        let mut keys = vec![Span::raw(" ")];
        for b in app
            .keys
            .bindings()
            .iter()
            .filter(|b| b.scope == Scope::Confirm)
        {
            let labels: Vec<String> = b
                .keys
                .iter()
                .map(keymap::key_label)
                .filter(|l| !(l.len() == 1 && l.chars().all(|c| c.is_ascii_uppercase())))
                .collect();
            keys.push(Span::styled(labels.join("/"), t.key()));
            keys.push(Span::raw(format!(" {}   ", b.hint)));
        }
        lines.push(Line::from(keys));
        let h = lines.len() as u16 + 2;
        frame_popup(frame, app, centered(area, 64, h), &self.title, lines);
    }
}
