use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::tui::app::{App, Mode, Tab};

fn gib(kib: u64) -> String {
    format!("{:.1} GiB", kib as f64 / (1024.0 * 1024.0))
}

/// xentop's summary line, over every host.
fn summary(app: &App) -> Line<'static> {
    let rows = &app.table.rows;
    let count = |f: &dyn Fn(&crate::backend::DomainInfo) -> bool| {
        rows.iter().filter(|r| f(&r.view.info)).count()
    };
    let running = count(&|i| i.flags.running);
    let blocked = count(&|i| i.flags.blocked);
    let paused = count(&|i| i.flags.paused);
    let crashed = count(&|i| i.is_crashed());
    let dying = count(&|i| i.flags.dying);
    let shutdown = count(&|i| i.flags.shutdown && !i.is_crashed());
    Line::from(Span::styled(
        format!(
            " {} domain{}: {running} running, {blocked} blocked, {paused} paused, {crashed} crashed, {dying} dying, {shutdown} shutdown",
            rows.len(),
            if rows.len() == 1 { "" } else { "s" }
        ),
        app.theme.base(),
    ))
}

/// A fleet's header: every host and how it answers; the current host's
/// figures; the summary over all.
fn fleet_lines(app: &App, lines: &mut Vec<Line<'static>>) {
    use crate::tui::hosts::Reach;
    let t = &app.theme;
    let tick = app.ticks();
    let mut spans = vec![Span::styled(" domus ", t.title()), Span::raw(" ")];
    for (i, (_, h)) in app.hosts.iter().enumerate() {
        if i > 0 {
            spans.push(Span::styled(" · ", t.muted()));
        }
        let (note, style) = match h.reach(tick) {
            Reach::Up => (
                String::new(),
                t.base().add_modifier(ratatui::style::Modifier::BOLD),
            ),
            Reach::Connecting => (" connecting…".to_string(), t.muted()),
            Reach::Slow(n) => (format!(" not answering {n} s"), t.warning()),
            Reach::Down(_) => (" unreachable".to_string(), t.error()),
        };
        spans.push(Span::styled(format!("{}{note}", h.name), style));
    }
    lines.push(Line::from(spans));
    let cur = app.current_host();
    let host = app.hosts.get(cur);
    let name = app.hosts.name(cur).to_string();
    let line = match (
        host.map(|h| h.reach(tick)),
        host.and_then(|h| h.info.as_ref()),
    ) {
        (Some(Reach::Down(why)), _) => Line::from(Span::styled(
            format!(" {name}: unreachable: {}", crate::tui::ui::one_line(&why)),
            t.error(),
        )),
        (_, Some(h)) => Line::from(vec![
            Span::styled(format!(" {name}: "), t.base()),
            Span::styled(
                format!(
                    "{} · {} backend · {} CPUs · {} used / {} total",
                    h.hostname,
                    h.backend,
                    h.cpus,
                    gib(h.total_kib.saturating_sub(h.free_kib)),
                    gib(h.total_kib)
                ),
                t.muted(),
            ),
        ]),
        _ => Line::from(Span::styled(format!(" {name}: connecting…"), t.muted())),
    };
    lines.push(line);
    lines.push(summary(app));
}

pub fn draw(frame: &mut Frame, app: &App, area: Rect) {
    let t = &app.theme;
    let mut lines = Vec::new();
    if app.hosts.is_fleet() {
        fleet_lines(app, &mut lines);
    }
    match app.host().filter(|_| !app.hosts.is_fleet()) {
        None if app.hosts.is_fleet() => {}
        None => {
            lines.push(Line::from(Span::styled(
                " domus  connecting to the hypervisor…",
                t.title(),
            )));
            lines.push(Line::from(""));
            lines.push(Line::from(""));
        }
        Some(h) => {
            let accel = h
                .accel
                .as_deref()
                .map(|a| format!(" · {a}"))
                .unwrap_or_default();
            // Whole parts only, the least useful left out first when the
            // terminal is narrow (the version string is the longest).
            let room = usize::from(area.width);
            let head = format!(" domus  {} ", h.hostname);
            let backend = format!("· {} backend{accel}", h.backend);
            let cpus = format!(" · {} CPUs", h.cpus);
            let version = format!(" · {}", h.version);
            let fits = |x: &str| head.chars().count() + x.chars().count() <= room;
            let rest = [
                format!("{backend}{version}{cpus}"),
                format!("{backend}{cpus}"),
                backend.clone(),
            ]
            .into_iter()
            .find(|x| fits(x))
            .unwrap_or(backend);
            lines.push(Line::from(vec![
                Span::styled(" domus ", t.title()),
                Span::styled(
                    format!(" {} ", h.hostname),
                    t.base().add_modifier(ratatui::style::Modifier::BOLD),
                ),
                Span::styled(rest, t.muted()),
            ]));
            let used = h.total_kib.saturating_sub(h.free_kib);
            let text = format!(
                " {} used / {} total · {} free",
                gib(used),
                gib(h.total_kib),
                gib(h.free_kib)
            );
            // The gauge gives way to the figures.
            let width = 30usize.min(room.saturating_sub(5 + text.chars().count()));
            let filled = if h.total_kib == 0 {
                0
            } else {
                (used as f64 / h.total_kib as f64 * width as f64).round() as usize
            };
            lines.push(Line::from(vec![
                Span::styled(" Mem ", t.base()),
                Span::styled("█".repeat(filled.min(width)), t.base().fg(t.gauge_used)),
                Span::styled(
                    "░".repeat(width - filled.min(width)),
                    t.base().fg(t.gauge_free),
                ),
                Span::styled(text, t.base()),
            ]));
            lines.push(summary(app));
        }
    }
    let mut tabs = vec![Span::raw(" ")];
    for (i, tab) in Tab::ALL.iter().enumerate() {
        let label = format!(" {} {} ", i + 1, tab.title());
        let style = if *tab == app.tab {
            t.selection()
        } else {
            t.muted()
        };
        tabs.push(Span::styled(label, style));
        tabs.push(Span::raw(" "));
    }
    if app.tab == Tab::Domains {
        let col = app.table.column();
        let arrow = if app.table.descending { "▼" } else { "▲" };
        tabs.push(Span::styled(
            format!("  sort: {} {arrow}", col.title()),
            t.muted(),
        ));
        let editing = matches!(app.mode, Mode::Filter(_));
        if !app.table.filter.is_empty() || editing {
            tabs.push(Span::styled(
                format!("  filter: {}", app.table.filter),
                t.warning(),
            ));
        }
        if !app.table.tags.is_empty() {
            tabs.push(Span::styled(
                format!("  tagged: {}", app.table.tags.len()),
                t.base().fg(t.tagged),
            ));
        }
    }
    tabs.push(Span::styled(format!("  theme: {}", t.name), t.muted()));
    lines.push(Line::from(tabs));
    // A narrow terminal cuts after a word with …, never mid-word.
    let cols = usize::from(area.width);
    let lines: Vec<Line> = lines
        .into_iter()
        .map(|l| crate::tui::ui::cut_line(l, cols))
        .collect();
    frame.render_widget(Paragraph::new(lines), area);
}
