//! The prompt for a new config's name (`n`), or for a copy's (`N`).
//! Whether the name is free is the app's to say: it knows the library.

use std::path::PathBuf;

use crossterm::event::{KeyCode, KeyEvent};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};

use crate::tui::app::App;
use crate::tui::input::LineInput;
use crate::tui::ui::layout::centered;
use crate::tui::ui::overlays::frame_popup;

#[derive(Debug, Clone)]
pub struct NamePrompt {
    pub input: LineInput,
    /// A copy of this config; `None`: a new one from the template.
    pub from: Option<PathBuf>,
    /// Why the last name was refused, shown under it until the next key.
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameKey {
    Stay,
    Cancel,
    /// The name typed, trimmed.
    Submit(String),
}

impl NamePrompt {
    pub fn new(name: &str, from: Option<PathBuf>) -> Self {
        NamePrompt {
            input: LineInput::new(name.to_string()),
            from,
            error: None,
        }
    }

    pub fn on_key(&mut self, key: &KeyEvent) -> NameKey {
        match key.code {
            KeyCode::Esc => NameKey::Cancel,
            KeyCode::Enter => NameKey::Submit(self.input.text.trim().to_string()),
            _ => {
                self.input.handle(key);
                self.error = None;
                NameKey::Stay
            }
        }
    }

    pub fn draw(&self, frame: &mut Frame, app: &App, area: Rect) {
        let ask = match &self.from {
            Some(p) => format!(
                " Name of the copy of {} (the file is NAME.sxp):",
                p.file_name()
                    .map(|f| f.to_string_lossy())
                    .unwrap_or_default()
            ),
            None => " Name of the new domain (the file is NAME.sxp):".to_string(),
        };
        let mut lines = vec![
            Line::from(ask),
            Line::from(vec![
                Span::raw(" "),
                Span::styled(format!("{}▏", self.input.text), app.theme.key()),
            ]),
        ];
        // The reason in full, wrapped inside the box.
        if let Some(why) = &self.error {
            for l in crate::tui::ui::wrap_indented(
                &format!("✘ {}", crate::tui::ui::one_line(why)),
                1,
                54,
            ) {
                lines.push(Line::from(Span::styled(l, app.theme.error())));
            }
        }
        lines.push(Line::from(Span::styled(
            " Enter opens the editor · Esc cancel",
            app.theme.muted(),
        )));
        let h = lines.len() as u16 + 2;
        frame_popup(frame, app, centered(area, 56, h), "New config", lines);
    }
}
