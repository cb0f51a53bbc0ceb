//! Drawing: a pure function of the app state and its theme. Nothing here
//! does IO or changes state.

mod header;
pub mod layout;
pub mod overlays;
pub mod tables;

use ratatui::Frame;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

use super::app::{App, Level, Mode};
use super::keymap::{self, Scope};

pub fn draw(frame: &mut Frame, app: &App) {
    let area = frame.area();
    let t = &app.theme;
    frame.render_widget(Block::default().style(t.base()), area);
    match &app.mode {
        Mode::Console(view) => return view.draw(frame, app),
        Mode::Editor(ed) => return ed.draw(frame, app),
        Mode::Recover(r) => {
            let file = r
                .path
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
        super::app::Tab::Gone => tables::gone(frame, app, m.body),
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
            Span::styled(
                tail(&input.text, usize::from(area.width).saturating_sub(8)),
                app.theme.base(),
            ),
            Span::styled("▏", app.theme.key()),
            Span::styled(
                match &app.table.filter_error {
                    Some(e) => format!("  regex: {e} (matching as text)"),
                    None => "  Enter keeps, Esc clears".into(),
                },
                app.theme.muted(),
            ),
        ]),
        (Mode::Palette(p), _) => p.line(app),
        // Messages expire: results after 15 s, problems after a minute
        // (the Events tab keeps them all).
        (_, Some((level, _)))
            if app.now_ns.saturating_sub(app.status_at)
                > match level {
                    Level::Info | Level::Ok => 15,
                    Level::Warn | Level::Error => 60,
                } * 1_000_000_000 =>
        {
            Line::from("")
        }
        (_, Some((level, said))) => Line::from(one_line_in(
            app,
            said,
            usize::from(area.width),
            level_style(app, *level),
        )),
        (_, None) => Line::from(""),
    };
    frame.render_widget(Paragraph::new(line), area);
}

/// The one rule for a message on a line too short for it (status line,
/// editor): cut after a whole word, then `…` and, when the Events tab
/// holds the whole text, where to find it.
pub fn one_line_in(
    app: &App,
    said: &str,
    room: usize,
    style: ratatui::style::Style,
) -> Vec<Span<'static>> {
    let text = format!(" {}", one_line(said));
    if text.width() <= room {
        return vec![Span::styled(text, style)];
    }
    // Where the Events tab holds the whole text: the status line's (when
    // it was logged), or one of this TUI's last lines.
    let logged = app.status.as_ref().is_some_and(|(_, s)| s == said) && app.status_logged
        || app.events.iter().rev().take(8).any(|e| e.text == said);
    let more = match app.keys.key_for(keymap::Command::TabEvents) {
        Some(k) if logged => format!("… ({k}: Events)"),
        _ => "…".to_string(),
    };
    let cut = fit_words(&text, room.saturating_sub(more.width()));
    vec![
        Span::styled(cut, style),
        Span::styled(more, app.theme.muted()),
    ]
}

/// [`fit`], ending after a whole word when one ends in its last third.
pub fn fit_words(text: &str, cols: usize) -> String {
    let cut = fit(text, cols);
    if cut.len() == text.len() {
        return cut;
    }
    match cut.rfind(' ') {
        Some(i) if i > 0 && cut[..i].width() * 3 >= cols * 2 => cut[..i].to_string(),
        _ => cut,
    }
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

/// The end of `text` in `cols` columns (where the cursor of an input
/// is), its start given way to `…`.
pub fn tail(text: &str, cols: usize) -> String {
    if text.width() <= cols {
        return text.to_string();
    }
    let mut used = 1;
    let mut start = text.len();
    for (i, c) in text.char_indices().rev() {
        used += c.width().unwrap_or(0);
        if used > cols {
            break;
        }
        start = i;
    }
    format!("…{}", &text[start..])
}

/// A styled line in `cols` columns: whole, or its text cut after a word
/// with `…` (the span styles kept), never mid-word without a mark.
pub fn cut_line(line: Line<'_>, cols: usize) -> Line<'static> {
    let width: usize = line.spans.iter().map(|s| s.content.width()).sum();
    let owned = |spans: Vec<Span<'_>>| {
        Line::from(
            spans
                .into_iter()
                .map(|s| Span::styled(s.content.into_owned(), s.style))
                .collect::<Vec<_>>(),
        )
    };
    if width <= cols {
        return owned(line.spans).style(line.style);
    }
    let mut room = cols.saturating_sub(1);
    let mut out = Vec::new();
    for s in line.spans {
        let w = s.content.width();
        if w <= room {
            room -= w;
            out.push(Span::styled(s.content.into_owned(), s.style));
            continue;
        }
        out.push(Span::styled(
            format!("{}…", fit_words(&s.content, room)),
            s.style,
        ));
        room = 0;
        break;
    }
    if room > 0 || out.is_empty() {
        out.push(Span::raw("…"));
    }
    Line::from(out).style(line.style)
}

/// `text` in `cols` columns: whole, or cut after a word with `…`.
pub fn cut_words(text: &str, cols: usize) -> String {
    if text.width() <= cols {
        return text.to_string();
    }
    format!("{}…", fit_words(text, cols.saturating_sub(1)))
}

/// `text` wrapped to `cols` columns, every line after `indent`.
pub fn wrap_indented(text: &str, indent: usize, cols: usize) -> Vec<String> {
    let pad = " ".repeat(indent);
    wrap(text, cols.saturating_sub(indent))
        .into_iter()
        .map(|l| format!("{pad}{l}"))
        .collect()
}

/// The longest start of `text` that is at most `cols` columns wide.
pub fn fit(text: &str, cols: usize) -> String {
    let mut used = 0;
    text.chars()
        .take_while(|c| {
            used += c.width().unwrap_or(0);
            used <= cols
        })
        .collect()
}

/// `text` in lines of at most `cols` columns, broken at spaces where it
/// can be and inside a word only when the word alone is too wide.
pub fn wrap(text: &str, cols: usize) -> Vec<String> {
    let cols = cols.max(1);
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        let sep = usize::from(!line.is_empty());
        if line.width() + sep + word.width() <= cols {
            if sep == 1 {
                line.push(' ');
            }
            line.push_str(word);
            continue;
        }
        if !line.is_empty() {
            lines.push(std::mem::take(&mut line));
        }
        let mut rest = word;
        while rest.width() > cols {
            let head = fit(rest, cols);
            // A character wider than the whole line still has to go somewhere.
            let head = if head.is_empty() {
                rest.chars().take(1).collect()
            } else {
                head
            };
            rest = &rest[head.len()..];
            lines.push(head);
        }
        line.push_str(rest);
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines
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
    // What fits the selection: no pause for a shut-down domain, start for
    // one; `p` reads unpause on a paused one.
    let hints: Vec<(String, String)> = app
        .keys
        .hints_of(scope, app.read_only)
        .into_iter()
        .filter(|(cmd, _, _)| app.why_not(*cmd).is_none())
        .map(|(cmd, key, hint)| {
            let paused = app
                .table
                .selected_row()
                .is_some_and(|r| r.view.info.flags.paused);
            let hint = if cmd == keymap::Command::Pause && paused {
                "unpause"
            } else {
                hint
            };
            (key, hint.to_string())
        })
        .collect();
    // When they do not all fit, the last place says where the rest are.
    let more = app
        .keys
        .key_for(keymap::Command::Help)
        .map(|k| format!(" … {k} all keys"));
    let room = usize::from(area.width);
    for (i, (key, hint)) in hints.iter().enumerate() {
        let (k, h) = (format!(" {key}"), format!(" {hint}"));
        let w = k.chars().count() + h.chars().count();
        let last = i + 1 == hints.len();
        let reserve = if last {
            0
        } else {
            more.as_ref().map_or(0, |m| m.chars().count())
        };
        if used + w + reserve > room {
            if let Some(m) = &more {
                spans.push(Span::styled(m.clone(), app.theme.muted()));
            }
            break;
        }
        used += w;
        spans.push(Span::styled(k, app.theme.key()));
        spans.push(Span::styled(h, app.theme.muted()));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_breaks_at_spaces_and_splits_only_overlong_words() {
        assert_eq!(
            wrap("the quick brown fox jumps", 10),
            ["the quick", "brown fox", "jumps"]
        );
        assert_eq!(
            wrap("abcdefghijklmnop xy", 6),
            ["abcdef", "ghijkl", "mnop", "xy"]
        );
        assert_eq!(wrap("", 5), [""]);
        // Wide characters count two columns.
        assert_eq!(wrap("日本語テキスト", 6), ["日本語", "テキス", "ト"]);
        for line in wrap(&"word ".repeat(50), 17) {
            assert!(line.width() <= 17, "{line:?}");
        }
    }

    #[test]
    fn fit_keeps_whole_characters_within_the_columns() {
        assert_eq!(fit("hello", 3), "hel");
        assert_eq!(fit("日本語", 5), "日本");
        assert_eq!(fit("hi", 10), "hi");
    }
}
