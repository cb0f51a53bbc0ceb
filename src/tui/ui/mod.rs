//! Drawing: a pure function of the app state and its theme. Nothing here
//! does IO or changes state.

mod console;
mod editor;
mod header;
pub mod layout;
mod overlays;
pub mod tables;

use ratatui::Frame;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};

use super::app::{App, Level, Mode};
use super::keymap::{self, Scope};

pub fn draw(frame: &mut Frame, app: &App) {
    let area = frame.area();
    let t = &app.theme;
    frame.render_widget(Block::default().style(t.base()), area);
    match &app.mode {
        Mode::Console { domid, search } => {
            return console::draw(frame, app, *domid, search.as_ref());
        }
        Mode::Editor(ed) => return editor::draw(frame, app, ed),
        Mode::Recover { path, .. } => {
            let file = path
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            return overlays::recover(frame, app, &file);
        }
        _ => {}
    }
    let m = layout::main(area);
    header::draw(frame, app, m.header);
    match app.tab {
        super::app::Tab::Domains => tables::domains(frame, app, m.body),
        super::app::Tab::Library => tables::library(frame, app, m.body),
        super::app::Tab::Events => tables::events(frame, app, m.body),
    }
    status_line(frame, app, m.status);
    footer(frame, app, app.tab.scope(), m.footer);
    overlays::draw(frame, app, area);
}

pub fn level_style(app: &App, level: Level) -> Style {
    let t = &app.theme;
    match level {
        Level::Info => t.base(),
        Level::Ok => t.ok(),
        Level::Warn => t.warning(),
        Level::Error => t.error(),
    }
}

fn status_line(frame: &mut Frame, app: &App, area: ratatui::layout::Rect) {
    let line = match (&app.mode, &app.status) {
        (Mode::Filter(input), _) => Line::from(vec![
            Span::styled(" / ", app.theme.key()),
            Span::styled(input.text.clone(), app.theme.base()),
            Span::styled("▏", app.theme.key()),
            Span::styled(
                match &app.table.filter_error {
                    Some(e) => format!("  regex: {e} (matching as text)"),
                    None => "  Enter keeps, Esc clears".into(),
                },
                app.theme.muted(),
            ),
        ]),
        (Mode::Palette(input), _) => {
            let word = input.text.split_whitespace().next().unwrap_or("");
            let hint = keymap::palette_verbs(app.read_only)
                .into_iter()
                .filter(|(v, _, _)| v.starts_with(word))
                .map(|(v, a, _)| {
                    if a.is_empty() {
                        v.to_string()
                    } else {
                        format!("{v} {a}")
                    }
                })
                .take(4)
                .collect::<Vec<_>>()
                .join(" · ");
            Line::from(vec![
                Span::styled(" : ", app.theme.key()),
                Span::styled(input.text.clone(), app.theme.base()),
                Span::styled("▏", app.theme.key()),
                Span::styled(format!("  {hint}"), app.theme.muted()),
            ])
        }
        (_, Some((level, text))) => Line::from(Span::styled(
            format!(" {}", one_line(text)),
            level_style(app, *level),
        )),
        (_, None) => Line::from(""),
    };
    frame.render_widget(Paragraph::new(line), area);
}

/// A path as the operator knows it: relative to the config library's
/// parent when inside it (`domains/web1.sxp`), else in full.
pub fn show_path(app: &App, path: &std::path::Path) -> String {
    let lib = &app.library.dir;
    match (path.strip_prefix(lib), lib.file_name()) {
        (Ok(rel), Some(name)) => format!("{}/{}", name.to_string_lossy(), rel.display()),
        _ => path.display().to_string(),
    }
}

/// Guest- and engine-provided text on one line, without control characters.
pub fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

pub fn footer(frame: &mut Frame, app: &App, scope: Scope, area: ratatui::layout::Rect) {
    let mut spans = Vec::new();
    if app.read_only {
        spans.push(Span::styled(
            " READ-ONLY ",
            app.theme
                .warning()
                .add_modifier(ratatui::style::Modifier::REVERSED),
        ));
    }
    // Whole hints only: one cut in half reads as a different key.
    let mut used = spans
        .iter()
        .map(|s| s.content.chars().count())
        .sum::<usize>();
    for (key, hint) in keymap::hints(scope, app.read_only) {
        let (k, h) = (format!(" {key}"), format!(" {hint}"));
        let w = k.chars().count() + h.chars().count();
        if used + w > usize::from(area.width) {
            break;
        }
        used += w;
        spans.push(Span::styled(k, app.theme.key()));
        spans.push(Span::styled(h, app.theme.muted()));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}
