//! The help overlay: every scope's keys from the keymap in use (the
//! operator's overrides included) and the palette's commands. It scrolls
//! with the keys that scroll the details.

use crossterm::event::KeyEvent;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph};

use crate::tui::app::App;
use crate::tui::keymap::{self, Command, Keymap, Scope};
use crate::tui::ui::layout::centered;
use crate::tui::ui::overlays::popup;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Help {
    pub scroll: usize,
}

impl Help {
    /// A key; false when the help closes. `max` is the furthest it
    /// scrolls, `page` a page of lines.
    pub fn on_key(&mut self, key: &KeyEvent, keys: &Keymap, max: usize, page: usize) -> bool {
        let s = self.scroll;
        // Esc always closes the help, whatever the keys file says.
        if key.code == crossterm::event::KeyCode::Esc {
            return false;
        }
        self.scroll = match keys.lookup(key, &[Scope::Details, Scope::Global], false) {
            Some(Command::DetailsClose | Command::Help | Command::Quit) => return false,
            Some(Command::Down) => s + 1,
            Some(Command::Up) => s.saturating_sub(1),
            Some(Command::PageDown) => s + page,
            Some(Command::PageUp) => s.saturating_sub(page),
            Some(Command::Top) => 0,
            Some(Command::Bottom) => max,
            _ => s,
        }
        .min(max);
        true
    }

    pub fn draw(&self, frame: &mut Frame, app: &App, area: Rect) {
        help(frame, app, area, self.scroll)
    }
}

/// How far the help can scroll on a terminal of `size` (columns, rows):
/// the update clamps to it, so Up works at once after End or PgDn.
pub fn max_scroll(app: &App, size: (u16, u16)) -> usize {
    let area = Rect::new(0, 0, size.0, size.1);
    help_lines(app, help_width(area))
        .len()
        .saturating_sub(help_visible(area))
}

/// Columns inside the help's frame.
fn help_width(area: Rect) -> usize {
    usize::from(help_area(area).width.saturating_sub(2))
}

fn help_area(area: Rect) -> Rect {
    centered(area, 110, area.height.saturating_sub(2))
}

fn help_visible(area: Rect) -> usize {
    usize::from(help_area(area).height.saturating_sub(2))
}

fn help(frame: &mut Frame, app: &App, area: Rect, scroll: usize) {
    let lines = help_lines(app, help_width(area));
    let popup_area = help_area(area);
    let scroll = scroll.min(lines.len().saturating_sub(help_visible(area)));
    let lines: Vec<Line> = lines.into_iter().skip(scroll).collect();
    let title = if app.read_only {
        "Help (read-only mode) · Esc closes · ↑/↓ PgUp/PgDn scroll"
    } else {
        "Help · Esc closes · ↑/↓ PgUp/PgDn scroll"
    };
    frame.render_widget(Clear, popup_area);
    frame.render_widget(Paragraph::new(lines).block(popup(app, title)), popup_area);
}

/// One help entry: the keys (or the command) in a column, the text after
/// it wrapped to the width; keys wider than their column get a line of
/// their own, so they never run into the text.
fn help_entry(
    lines: &mut Vec<Line<'static>>,
    app: &App,
    keys: String,
    text: &str,
    column: usize,
    width: usize,
) {
    let t = &app.theme;
    let indent = " ".repeat(column + 3);
    let room = width.saturating_sub(column + 3).max(10);
    let wrapped = crate::tui::ui::wrap(text, room);
    if keys.chars().count() > column {
        lines.push(Line::from(Span::styled(format!("  {keys}"), t.key())));
        for w in wrapped {
            lines.push(Line::from(Span::styled(format!("{indent}{w}"), t.base())));
        }
        return;
    }
    for (i, w) in wrapped.into_iter().enumerate() {
        let lead = if i == 0 {
            Span::styled(format!("  {keys:<column$} "), t.key())
        } else {
            Span::raw(indent.clone())
        };
        lines.push(Line::from(vec![lead, Span::styled(w, t.base())]));
    }
}

fn help_lines(app: &App, width: usize) -> Vec<Line<'static>> {
    let t = &app.theme;
    let mut lines = Vec::new();
    for scope in [
        Scope::Global,
        Scope::Domains,
        Scope::Library,
        Scope::Gone,
        Scope::Console,
        Scope::Editor,
        Scope::Confirm,
        Scope::Picker,
        Scope::Shutdown,
        Scope::Details,
    ] {
        lines.push(Line::from(Span::styled(scope.title(), t.title())));
        for b in app
            .keys
            .bindings()
            .iter()
            .filter(|b| b.scope == scope && !(app.read_only && b.destructive))
            .filter(|b| !b.keys.is_empty())
        {
            let mut keys: Vec<String> = Vec::new();
            for label in b.keys.iter().map(keymap::key_label) {
                if !keys.contains(&label) {
                    keys.push(label);
                }
            }
            help_entry(&mut lines, app, keys.join(" "), b.help, 16, width);
        }
        lines.push(Line::from(""));
    }
    help_entry(
        &mut lines,
        app,
        "Your keys".into(),
        "Any key above can be changed in the keys file beside prefs.json: `domus keys` prints every binding in that file's form, and where it is",
        16,
        width,
    );
    lines.push(Line::from(""));
    lines.push(Line::from(Span::styled("Commands (:)", t.title())));
    // The synopses' column: as wide as most need, at most half the help.
    let column = (width / 2).clamp(16, 46);
    for (verb, args, help) in app.keys.palette_verbs(app.read_only) {
        help_entry(
            &mut lines,
            app,
            format!("{verb} {args}"),
            help,
            column,
            width,
        );
    }
    lines
}
