//! A list to pick one item from (the shutdown menu, the detach list):
//! its state, its keys (the keymap's `Scope::Picker`: ↑/k, ↓/j, Enter,
//! Esc) and its drawing.

use crossterm::event::KeyEvent;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};

use crate::tui::app::App;
use crate::tui::keymap::{self, Command, Scope};
use crate::tui::ui::layout::centered;
use crate::tui::ui::overlays::frame_popup;

#[derive(Debug, Clone)]
pub struct Picker<T> {
    pub title: String,
    pub items: Vec<(String, T)>,
    pub selected: usize,
}

/// What a key did to the picker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    /// Moved, or nothing: it stays open.
    Stay,
    Chosen,
    Cancelled,
}

impl<T> Picker<T> {
    pub fn on_key(&mut self, key: &KeyEvent, keys: &keymap::Keymap) -> Pick {
        match keys.lookup(key, &[Scope::Picker], false) {
            Some(Command::PickUp) => self.selected = self.selected.saturating_sub(1),
            Some(Command::PickDown) => {
                self.selected = (self.selected + 1).min(self.items.len().saturating_sub(1))
            }
            Some(Command::PickChoose) => return Pick::Chosen,
            Some(Command::PickCancel) => return Pick::Cancelled,
            _ => {}
        }
        Pick::Stay
    }

    pub fn chosen(&self) -> Option<&T> {
        self.items.get(self.selected).map(|(_, t)| t)
    }

    /// The list as a pop-up, with `hint` (its keys) below it.
    pub fn draw(&self, frame: &mut Frame, app: &App, area: Rect, hint: &str) {
        let chars = |s: &str| s.chars().count();
        let wanted = self
            .items
            .iter()
            .map(|(l, _)| chars(l))
            .max()
            .unwrap_or(10)
            .max(chars(hint))
            .max(chars(&self.title))
            + 6;
        // Inside the screen's frame, never over it.
        let w = wanted.min(usize::from(area.width.saturating_sub(4)));
        let inner = w.saturating_sub(4);
        let mut lines: Vec<Line> = self
            .items
            .iter()
            .enumerate()
            .map(|(i, (label, _))| {
                let style = if i == self.selected {
                    app.theme.selection()
                } else {
                    app.theme.base()
                };
                let label = crate::tui::ui::cut_words(label, inner);
                Line::from(Span::styled(format!(" {label} "), style))
            })
            .collect();
        lines.push(Line::from(""));
        lines.push(Line::from(Span::styled(
            format!(" {}", crate::tui::ui::cut_words(hint, inner)),
            app.theme.muted(),
        )));
        let w = w as u16;
        let h = lines.len() as u16 + 2;
        let title = crate::tui::ui::tables::ellipsize(&self.title, inner);
        frame_popup(frame, app, centered(area, w, h), &title, lines);
    }
}
