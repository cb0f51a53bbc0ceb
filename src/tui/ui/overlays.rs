//! Pop-ups drawn over the main screen.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Sparkline, Wrap};

use super::layout::centered;
use crate::clock::{NS_PER_SEC, format_utc};
use crate::tui::app::{App, Mode};
use crate::tui::keymap::{self, BINDINGS, Scope};

fn popup<'a>(app: &App, title: &str) -> Block<'a> {
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
        Mode::Help(scroll) => help(frame, app, area, *scroll),
        Mode::Details(domid, back) => details(frame, app, area, *domid, *back),
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

/// How far the help can scroll on a terminal of `size` (columns, rows):
/// the update clamps to it, so Up works at once after End or PgDn.
pub fn help_max_scroll(app: &App, size: (u16, u16)) -> usize {
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
        Scope::Console,
        Scope::Editor,
        Scope::Confirm,
        Scope::Picker,
        Scope::Shutdown,
    ] {
        lines.push(Line::from(Span::styled(scope.title(), t.title())));
        for b in BINDINGS
            .iter()
            .filter(|b| b.scope == scope && !(app.read_only && b.destructive))
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
    lines.push(Line::from(Span::styled("Commands (:)", t.title())));
    // The synopses' column: as wide as most need, at most half the help.
    let column = (width / 2).clamp(16, 46);
    for (verb, args, help) in keymap::palette_verbs(app.read_only) {
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

/// How many timeline entries the details of `uuid` have (for scrolling).
pub fn timeline_len(app: &App, uuid: uuid::Uuid) -> usize {
    timeline_of(app, uuid).len()
}

fn details(frame: &mut Frame, app: &App, area: Rect, domid: u32, back: usize) {
    let t = &app.theme;
    let popup_area = centered(
        area,
        area.width.saturating_sub(4),
        area.height.saturating_sub(2),
    );
    let Some(row) = app.table.row(domid) else {
        frame_popup(
            frame,
            app,
            centered(area, 40, 3),
            "Details",
            vec![Line::from(" the domain is gone")],
        );
        return;
    };
    let info = &row.view.info;
    let mut lines = vec![
        Line::from(vec![
            Span::styled(format!(" {} ", row.name), t.title()),
            Span::styled(format!(" domain {}  ", info.domid), t.muted()),
            Span::styled(info.state_string(), t.state(info)),
            Span::styled(format!(" ({})", info.state_word()), t.state(info)),
        ]),
        Line::from(format!(
            " uuid {} · {} MiB (max {} MiB) · {} vCPU · CPU {:.1} s",
            info.uuid,
            info.memory_kib / 1024,
            info.max_memory_kib / 1024,
            info.vcpus,
            info.cpu_time_ns as f64 / NS_PER_SEC as f64
        )),
    ];
    let config = row.view.config();
    if let Some(c) = &config {
        let boot = c.image.boot();
        // What boots the guest: a kernel, a bootloader, or the firmware's
        // boot order.
        let how = match (&c.image, &c.bootloader, &boot.kernel) {
            (crate::config::Image::Hvm(h), _, None) => {
                let order: Vec<&str> = h
                    .boot_order()
                    .chars()
                    .filter_map(|x| match x {
                        'c' => Some("disk"),
                        'd' => Some("CD"),
                        'n' => Some("network"),
                        _ => None,
                    })
                    .collect();
                format!("boots from {}", order.join(", then "))
            }
            (_, Some(b), None) => format!(
                "bootloader {}{}",
                crate::tui::ui::one_line(b),
                c.bootloader_args
                    .as_deref()
                    .map_or(String::new(), |a| format!(
                        " {}",
                        crate::tui::ui::one_line(a)
                    ))
            ),
            (_, _, k) => format!(
                "kernel {} · cmdline \"{}\"",
                k.as_deref().unwrap_or("-"),
                crate::tui::ui::one_line(&boot.cmdline())
            ),
        };
        lines.push(Line::from(format!(
            " image {} · {how}",
            c.image.type_name()
        )));
        lines.push(Line::from(format!(
            " on_poweroff {} · on_reboot {} · on_crash {}",
            c.poweroff_policy(),
            c.reboot_policy(),
            c.crash_policy()
        )));
        if let Some(src) = row.view.record.as_ref().and_then(|r| r.source.as_ref()) {
            lines.push(Line::from(Span::styled(
                format!(" config file {}", crate::tui::ui::show_path(app, src)),
                t.muted(),
            )));
        }
    } else {
        lines.push(Line::from(Span::styled(
            " not built by domus: no config",
            t.muted(),
        )));
    }
    lines.push(Line::from(""));
    lines.push(Line::from(Span::styled(" Devices", t.title())));
    if info.devices.is_empty() {
        lines.push(Line::from(Span::styled("   none", t.muted())));
    }
    for d in &info.devices {
        lines.push(Line::from(format!("   {d}")));
    }
    // Wrapped at words under their label, never cut.
    let room = usize::from(area.width).saturating_sub(16);
    for n in &info.notes {
        for (i, part) in crate::tui::ui::wrap(&crate::tui::ui::one_line(n), room)
            .into_iter()
            .enumerate()
        {
            let lead = if i == 0 { "   note: " } else { "         " };
            lines.push(Line::from(Span::styled(format!("{lead}{part}"), t.muted())));
        }
    }
    lines.push(Line::from(""));
    lines.push(Line::from(Span::styled(" Timeline", t.title())));
    let uuid = row.view.info.uuid;
    let timeline = timeline_of(app, uuid);
    let inner_h = usize::from(popup_area.height.saturating_sub(2));
    let room = inner_h.saturating_sub(lines.len() + 4);
    if timeline.is_empty() {
        lines.push(Line::from(Span::styled("   nothing recorded", t.muted())));
    }
    // The newest entries that fit, or older ones scrolled back to.
    let back = back.min(timeline.len().saturating_sub(room));
    let end = timeline.len() - back;
    for e in &timeline[end.saturating_sub(room)..end] {
        lines.push(timeline_line(app, e));
    }
    let title = if timeline.len() > room {
        "Details · Esc closes · c console · ↑/↓ PgUp/PgDn the timeline"
    } else {
        "Details · Esc closes · c console"
    };
    frame.render_widget(Clear, popup_area);
    frame.render_widget(Paragraph::new(lines).block(popup(app, title)), popup_area);
    // The CPU sparkline along the bottom of the pop-up.
    let history: Vec<u64> = app
        .table
        .row(domid)
        .map(|r| r.cpu.history.iter().copied().collect())
        .unwrap_or_default();
    let spark_area = Rect {
        x: popup_area.x + 2,
        y: popup_area.y + popup_area.height.saturating_sub(3),
        width: popup_area.width.saturating_sub(4),
        height: 2,
    };
    let pct = app.table.row(domid).map_or(0.0, |r| r.cpu.pct);
    frame.render_widget(
        Paragraph::new(Span::styled(
            format!("CPU {pct:.1} % (last {} samples)", history.len()),
            t.muted(),
        )),
        Rect {
            height: 1,
            ..spark_area
        },
    );
    frame.render_widget(
        Sparkline::default()
            .data(&history)
            .max(100.max(history.iter().copied().max().unwrap_or(0)))
            .style(t.base().fg(t.sparkline)),
        Rect {
            y: spark_area.y + 1,
            height: 1,
            ..spark_area
        },
    );
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
fn timeline_of(app: &App, uuid: uuid::Uuid) -> Vec<&crate::engine::JournalEntry> {
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

fn timeline_line<'a>(app: &App, e: &crate::engine::JournalEntry) -> Line<'a> {
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
    let popup_area = centered(
        area,
        area.width.saturating_sub(4),
        area.height.saturating_sub(2),
    );
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
    frame.render_widget(Clear, popup_area);
    frame.render_widget(
        Paragraph::new(lines).block(popup(app, "Gone · Esc closes")),
        popup_area,
    );
}
