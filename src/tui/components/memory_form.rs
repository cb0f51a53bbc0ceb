//! The memory-target prompt: MiB for a domain's balloon, digits only.
//! What a low target asks first stays the app's (it knows the floors).

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};

use crate::fleet::DomKey;
use crate::tui::app::App;
use crate::tui::input::LineInput;
use crate::tui::ui::layout::centered;
use crate::tui::ui::overlays::frame_popup;

#[derive(Debug, Clone)]
pub struct MemoryForm {
    pub domid: DomKey,
    pub input: LineInput,
}

/// What a key did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemoryKey {
    Stay,
    Cancel,
    /// A target in MiB to set.
    Set(u64),
    /// Enter on something that is no positive number.
    Invalid(String),
}

impl MemoryForm {
    pub fn new(domid: DomKey, current_mib: u64) -> Self {
        MemoryForm {
            domid,
            input: LineInput::new(current_mib.to_string()),
        }
    }

    pub fn on_key(&mut self, key: &KeyEvent) -> MemoryKey {
        match key.code {
            KeyCode::Esc => MemoryKey::Cancel,
            KeyCode::Enter => match self.input.text.trim().parse::<u64>() {
                Ok(mib) if mib > 0 => MemoryKey::Set(mib),
                _ => MemoryKey::Invalid(format!(
                    "memory target must be a positive number of MiB, got {:?}",
                    self.input.text
                )),
            },
            // Digits only; editing keys (Ctrl-U, Ctrl-A, …) still work.
            KeyCode::Char(c)
                if !c.is_ascii_digit() && !key.modifiers.contains(KeyModifiers::CONTROL) =>
            {
                MemoryKey::Stay
            }
            _ => {
                self.input.handle(key);
                MemoryKey::Stay
            }
        }
    }

    pub fn draw(&self, frame: &mut Frame, app: &App, area: Rect) {
        let max = app
            .table
            .row(self.domid)
            .map_or(0, |r| r.view.info.max_memory_kib / 1024);
        // The box is 50 wide: a long name is cut, not wrapped under it.
        let tail = format!(" · maximum {max} MiB");
        let name = crate::tui::ui::tables::ellipsize(
            &app.table.name_of(self.domid),
            47usize.saturating_sub(tail.chars().count()),
        );
        let lines = vec![
            Line::from(format!(" {name}{tail}")),
            Line::from(vec![
                Span::raw(" target MiB: "),
                Span::styled(format!("{}▏", self.input.text), app.theme.key()),
            ]),
            Line::from(Span::styled(" Enter set · Esc cancel", app.theme.muted())),
        ];
        frame_popup(frame, app, centered(area, 50, 5), "Memory target", lines);
    }
}
