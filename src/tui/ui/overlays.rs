//! Pop-ups drawn over the main screen.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

use super::layout::centered;
use crate::clock::format_utc;
use crate::tui::app::{App, Mode};

pub(crate) fn popup<'a>(app: &App, title: &str) -> Block<'a> {
    Block::default()
        .borders(Borders::ALL)
        .border_style(app.theme.border().fg(app.theme.accent))
        .title(Span::styled(format!(" {title} "), app.theme.title()))
        .style(app.theme.base())
}

pub(crate) fn frame_popup(
    frame: &mut Frame,
    app: &App,
    area: Rect,
    title: &str,
    lines: Vec<Line<'_>>,
) {
    frame.render_widget(Clear, area);
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(popup(app, title)),
        area,
    );
}

pub fn draw(frame: &mut Frame, app: &App, area: Rect) {
    match &app.mode {
        Mode::Help(h) => h.draw(frame, app, area),
        Mode::Details(d) => d.draw(frame, app, area),
        Mode::GoneDetails(uuid) => gone_details(frame, app, area, *uuid),
        Mode::Confirm(c) => c.draw(frame, app, area),
        Mode::Shutdown(p, _) => {
            // Hints only for the reasons on offer.
            let mut hint: Vec<String> = p
                .items
                .iter()
                .map(|(label, _)| format!("{} {label}", label.chars().next().unwrap_or(' ')))
                .collect();
            hint.push("Esc cancel".into());
            p.draw(frame, app, area, &hint.join(" · "))
        }
        Mode::Detach(p, _) => p.draw(frame, app, area, "Enter detach · Esc cancel"),
        Mode::Memory(form) => form.draw(frame, app, area),
        Mode::NewConfig(prompt) => prompt.draw(frame, app, area),
        Mode::Form(form) => form.draw(frame, app, area),
        Mode::Themes(p) => p.draw(frame, app, area, "Enter keep · Esc back"),
        _ => {}
    }
}

/// How many timeline entries the details of `uuid` have (for scrolling).
pub fn timeline_len(app: &App, uuid: uuid::Uuid) -> usize {
    timeline_of(app, uuid).len()
}

pub fn recover(frame: &mut Frame, app: &App, file: &str) {
    let area = frame.area();
    let lines = vec![
        Line::from(format!(
            " {file} has unsaved edits from an earlier session."
        )),
        Line::from(" Recover them?"),
        Line::from(""),
        Line::from(vec![
            Span::styled(" y", app.theme.key()),
            Span::raw(" recover the edits   "),
            Span::styled("n", app.theme.key()),
            Span::raw(" open the file as saved (drops them)"),
        ]),
    ];
    frame_popup(frame, app, centered(area, 70, 6), "Recover edits", lines);
}

/// A domain's timeline for the details: the whole of it once loaded, with
/// what has happened since; the bookkeeping of operations and consoles
/// left out.
pub(crate) fn timeline_of(app: &App, uuid: uuid::Uuid) -> Vec<&crate::engine::JournalEntry> {
    let keep = |e: &&crate::engine::JournalEntry| !e.event.is_op() && !e.event.is_console();
    match app.feed.details.as_ref().filter(|d| d.uuid == uuid) {
        Some(d) => d.entries.iter().filter(keep).collect(),
        None => app
            .journal
            .iter()
            .filter(|e| e.uuid == Some(uuid))
            .filter(keep)
            .collect(),
    }
}

pub(crate) fn timeline_line<'a>(app: &App, e: &crate::engine::JournalEntry) -> Line<'a> {
    let t = &app.theme;
    let dom = e.domid.map_or_else(String::new, |d| format!("[{d}] "));
    // Who did it, unless it was this TUI.
    let who = if e.source.pid == Some(app.pid) && e.source.kind == crate::engine::SourceKind::Tui {
        String::new()
    } else {
        format!(" ({})", e.source)
    };
    Line::from(vec![
        Span::styled(format!("   {} ", format_utc(e.at_ns)), t.muted()),
        Span::raw(format!(
            "{dom}{}",
            crate::tui::ui::one_line(&e.event.to_string())
        )),
        Span::styled(who, t.muted()),
    ])
}

/// A gone domain: its config summary, timeline, and its console's last
/// lines (the oops that explains a crash).
fn gone_details(frame: &mut Frame, app: &App, area: Rect, uuid: uuid::Uuid) {
    let t = &app.theme;
    let popup_area = crate::tui::ui::layout::overlay(area);
    let Some(g) = app.feed.gone.iter().find(|g| g.record.uuid == uuid) else {
        frame_popup(
            frame,
            app,
            centered(area, 40, 3),
            "Details",
            vec![Line::from(" no longer listed")],
        );
        return;
    };
    let rec = &g.record;
    let c = &rec.config;
    let mut lines = vec![
        Line::from(vec![
            Span::styled(
                format!(" {} ", crate::tui::table::clean(&rec.name)),
                t.title(),
            ),
            Span::styled(
                format!(" gone {}", rec.gone_ns.map_or_else(String::new, format_utc)),
                t.muted(),
            ),
        ]),
        Line::from(format!(
            " uuid {} · {} image · {} MiB · {} vCPU",
            rec.uuid,
            c.image.type_name(),
            c.memory,
            c.vcpus
        )),
    ];
    lines.push(Line::from(""));
    lines.push(Line::from(Span::styled(" Timeline", t.title())));
    let timeline = timeline_of(app, uuid);
    let tail = app
        .feed
        .details
        .as_ref()
        .filter(|d| d.uuid == uuid)
        .map(|d| d.console_tail.as_slice())
        .unwrap_or(&[]);
    let inner_h = usize::from(popup_area.height.saturating_sub(2));
    let console_room = tail.len().min(inner_h / 3);
    let room = inner_h.saturating_sub(lines.len() + console_room + 3);
    for e in timeline.iter().skip(timeline.len().saturating_sub(room)) {
        lines.push(timeline_line(app, e));
    }
    lines.push(Line::from(""));
    lines.push(Line::from(Span::styled(" Console (last lines)", t.title())));
    if tail.is_empty() {
        lines.push(Line::from(Span::styled(
            "   no console log was kept",
            t.muted(),
        )));
    }
    for l in &tail[tail.len() - console_room..] {
        lines.push(Line::from(Span::raw(format!("   {l}"))));
    }
    let inner = usize::from(popup_area.width.saturating_sub(2));
    let lines: Vec<Line> = lines
        .into_iter()
        .map(|l| crate::tui::ui::cut_line(l, inner))
        .collect();
    frame.render_widget(Clear, popup_area);
    frame.render_widget(
        Paragraph::new(lines).block(popup(app, "Gone · Esc closes")),
        popup_area,
    );
}
