use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::tui::app::{App, Mode, Tab};

fn gib(kib: u64) -> String {
    format!("{:.1} GiB", kib as f64 / (1024.0 * 1024.0))
}

pub fn draw(frame: &mut Frame, app: &App, area: Rect) {
    let t = &app.theme;
    let mut lines = Vec::new();
    match &app.host {
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
            // xentop's summary line.
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
            lines.push(Line::from(Span::styled(
                format!(
                    " {} domain{}: {running} running, {blocked} blocked, {paused} paused, {crashed} crashed, {dying} dying, {shutdown} shutdown",
                    rows.len(),
                    if rows.len() == 1 { "" } else { "s" }
                ),
                t.base(),
            )));
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
