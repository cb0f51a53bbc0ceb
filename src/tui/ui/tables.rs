use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table};

use crate::clock::{NS_PER_SEC, format_utc};
use crate::tui::app::App;
use crate::tui::table::Column;

fn block<'a>(app: &App, title: String) -> Block<'a> {
    Block::default()
        .borders(Borders::ALL)
        .border_style(app.theme.border())
        .title(Span::styled(format!(" {title} "), app.theme.title()))
        .style(app.theme.base())
}

/// A muted one-line note inside an empty table.
fn empty_note(frame: &mut Frame, app: &App, area: Rect, text: impl Into<String>) {
    let at = Rect {
        x: area.x + 2,
        y: area.y + 2,
        width: area.width.saturating_sub(4),
        height: 1,
    };
    frame.render_widget(Paragraph::new(text.into()).style(app.theme.muted()), at);
}

/// Cut text to `width` characters, marking the cut with an ellipsis.
pub fn ellipsize(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        return s.to_string();
    }
    let mut out: String = s.chars().take(width.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Bytes (per second) as xentop's columns show them, in 1024s: `512`,
/// `12.0K`, `1.5M`.
pub fn bytes_human(b: f64) -> String {
    const UNITS: [&str; 5] = ["", "K", "M", "G", "T"];
    let mut v = b.max(0.0);
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}{}", UNITS[unit])
    }
}

/// A rate, right-aligned; `-` where the backend does not count it.
fn rate_cell<'a>(rate: Option<f64>) -> Cell<'a> {
    Cell::from(format!(
        "{:>9}",
        rate.map_or_else(|| "-".to_string(), bytes_human)
    ))
}

pub fn uptime(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}d {h:02}:{m:02}")
    } else {
        format!("{h}:{m:02}:{s:02}")
    }
}

fn devices_cell(counts: (usize, usize, usize)) -> String {
    let (b, n, p) = counts;
    if b + n + p == 0 {
        return "-".into();
    }
    let mut parts = Vec::new();
    if b > 0 {
        parts.push(format!("{b} vbd"));
    }
    if n > 0 {
        parts.push(format!("{n} vif"));
    }
    if p > 0 {
        parts.push(format!("{p} pci"));
    }
    parts.join(" ")
}

/// What is being done to a domain right now, by any domus process: an
/// operation in flight, or a shutdown the guest has not answered yet.
pub fn pending_of(app: &App, row: &crate::tui::table::Row) -> Option<(String, u64, bool)> {
    let now = app.now_ns;
    if let Some(p) = row.view.pending.first() {
        let secs = now.saturating_sub(p.started_ns) / NS_PER_SEC;
        return Some((p.op.to_string(), secs, false));
    }
    let s = app.feed.shutdowns.get(&row.view.info.uuid)?;
    if row.view.info.flags.shutdown {
        return None;
    }
    let secs = now.saturating_sub(s.at_ns) / NS_PER_SEC;
    let late = now.saturating_sub(s.at_ns) > crate::tui::feed::SHUTDOWN_TIMEOUT_NS;
    Some((s.reason.to_string(), secs, late))
}

/// What waits its turn on a domain in this TUI (`+2 queued`).
fn queued_tag(app: &App, row: &crate::tui::table::Row) -> Option<String> {
    let ops = app.queued.get(&row.key())?;
    Some(match ops.as_slice() {
        [one] => format!("{one} queued"),
        many => format!("+{} queued", many.len()),
    })
}

/// The name, then what is pending on it (`web1 shutdown… 12s +1 queued`).
fn name_cell<'a>(app: &App, row: &crate::tui::table::Row, width: usize) -> Cell<'a> {
    let queued = queued_tag(app, row);
    let (tag, late) = match (pending_of(app, row), queued) {
        (None, None) => return Cell::from(ellipsize(&row.name, width)),
        (Some((op, secs, late)), None) => (format!(" {op}… {secs}s"), late),
        (Some((op, secs, late)), Some(q)) => (format!(" {op}… {secs}s {q}"), late),
        (None, Some(q)) => (format!(" {q}"), false),
    };
    let name_w = width.saturating_sub(tag.chars().count()).max(4);
    let style = if late {
        app.theme.warning()
    } else {
        app.theme.muted()
    };
    Cell::from(Line::from(vec![
        Span::raw(ellipsize(&row.name, name_w)),
        Span::styled(ellipsize(&tag, width.saturating_sub(name_w)), style),
    ]))
}

pub fn domains(frame: &mut Frame, app: &App, area: Rect) {
    let t = &app.theme;
    let tbl = &app.table;
    let title = if tbl.order.len() == tbl.rows.len() {
        format!("Domains ({})", tbl.rows.len())
    } else {
        format!("Domains ({} of {})", tbl.order.len(), tbl.rows.len())
    };
    let height = usize::from(area.height.saturating_sub(3));
    if !app.loaded {
        frame.render_widget(
            Paragraph::new(" loading…")
                .style(t.muted())
                .block(block(app, title)),
            area,
        );
        return;
    }
    let sort_col = tbl.column();
    let columns = app.columns_in(area.width);
    let header = Row::new(columns.iter().map(|(c, _)| {
        let mut label = c.title().to_string();
        if *c == sort_col {
            label.push(if tbl.descending { '▼' } else { '▲' });
        }
        // Numbers are right-aligned; so are their headings.
        let numeric = !matches!(
            c,
            Column::Name | Column::State | Column::Devices | Column::Host
        );
        if numeric {
            label = format!("{label:>w$}", w = usize::from(c.width()));
        } else if *c == Column::Host {
            // Over the names, which start a cell in.
            label.insert(0, ' ');
        }

        Cell::from(label).style(t.base().fg(t.accent).add_modifier(Modifier::BOLD))
    }));
    // Only the visible rows are built: 10,000 domains cost what a screenful does.
    let start = tbl.offset.min(tbl.order.len());
    let end = (start + height).min(tbl.order.len());
    let tick = app.ticks();
    let stale = |h| {
        app.hosts.get(h).is_some_and(|v| {
            !matches!(
                v.reach(tick),
                crate::tui::hosts::Reach::Up | crate::tui::hosts::Reach::Connecting
            )
        })
    };
    let rows = tbl.order[start..end].iter().enumerate().map(|(i, &idx)| {
        let row = &tbl.rows[idx];
        let info = &row.view.info;
        let pct = row.cpu.pct;
        let tagged = tbl.tags.contains(&row.key());
        let mark = if tagged { "*" } else { " " };
        let cells: Vec<Cell> = columns
            .iter()
            .map(|(c, w)| match c {
                Column::Id => {
                    Cell::from(format!("{mark}{:>4}", crate::backend::shown_id(info.domid)))
                }
                Column::Name => name_cell(app, row, usize::from(*w)),
                // Only the colour: the row keeps its background. On the
                // selected row the selection's own colours win (a state
                // colour on the selection bar can be unreadable: cyan on
                // high-contrast yellow).
                Column::State if start + i == tbl.selected => Cell::from(info.state_string())
                    .style(t.selection().add_modifier(Modifier::BOLD)),
                Column::State => Cell::from(info.state_string())
                    .style(ratatui::style::Style::default().fg(t.state(info).fg.unwrap_or(t.fg))),
                Column::CpuTime => Cell::from(format!(
                    "{:>9.1}",
                    info.cpu_time_ns as f64 / NS_PER_SEC as f64
                )),
                Column::CpuPct => Cell::from(format!("{pct:>6.1}")),
                Column::Mem => Cell::from(format!("{:>8}", info.memory_kib / 1024)),
                Column::Vcpus => Cell::from(format!("{:>5}", info.vcpus)),
                Column::Uptime => Cell::from(format!(
                    "{:>10}",
                    tbl.uptime_secs(info).map_or("-".into(), uptime)
                )),
                Column::Devices => Cell::from(devices_cell(row.devices)),
                Column::NetTx => rate_cell(row.cpu.io_rates.net_tx),
                Column::NetRx => rate_cell(row.cpu.io_rates.net_rx),
                Column::VbdRd => rate_cell(row.cpu.io_rates.vbd_rd),
                Column::VbdWr => rate_cell(row.cpu.io_rates.vbd_wr),
                // A host that does not answer marks its rows: what they
                // show is its last answer.
                Column::Host => Cell::from(format!(
                    " {}",
                    ellipsize(
                        &format!(
                            "{}{}",
                            app.hosts.name(row.host),
                            if stale(row.host) { "!" } else { "" }
                        ),
                        usize::from(w.saturating_sub(1)),
                    )
                )),
            })
            .collect();
        let mut style = t.base();
        if stale(row.host) {
            style = t.muted();
        }
        if tagged {
            style = style.fg(t.tagged);
        }
        if start + i == tbl.selected {
            style = t.selection();
        }
        Row::new(cells).style(style)
    });
    let widths: Vec<Constraint> = columns
        .iter()
        .map(|(_, w)| Constraint::Length(*w))
        .collect();
    let table = Table::new(rows, widths)
        .header(header)
        .column_spacing(1)
        .flex(ratatui::layout::Flex::Start)
        .block(block(app, title));
    frame.render_widget(table, area);
    if tbl.order.is_empty() && !tbl.rows.is_empty() {
        empty_note(
            frame,
            app,
            area,
            format!("no domain matches '{}'", tbl.filter),
        );
    }
}

pub fn library(frame: &mut Frame, app: &App, area: Rect) {
    let t = &app.theme;
    let lib = &app.library;
    // In a fleet a build goes to the selected domain's host: say which.
    let on = if app.hosts.is_fleet() {
        format!(
            " · builds on {} (the selected domain's host)",
            app.hosts.name(app.current_host())
        )
    } else {
        String::new()
    };
    let title = format!(
        "Library · {} ({}){on}",
        lib.dir
            .file_name()
            .map(|f| f.to_string_lossy())
            .unwrap_or_default(),
        lib.entries.len()
    );
    let height = usize::from(area.height.saturating_sub(3));
    let offset = lib.selected.saturating_sub(height.saturating_sub(1));
    let header = Row::new(
        ["", "FILE", "DOMAIN", "STATUS"]
            .map(|h| Cell::from(h).style(t.base().fg(t.accent).add_modifier(Modifier::BOLD))),
    );
    let rows = lib
        .entries
        .iter()
        .enumerate()
        .skip(offset)
        .take(height)
        .map(|(i, e)| {
            let (mark, mark_style, mut status) = match &e.status {
                Ok(0) => ("✔", t.ok(), "valid".to_string()),
                Ok(n) => ("✔", t.warning(), format!("valid, {n} warning(s)")),
                Err(err) => ("✘", t.error(), crate::tui::ui::one_line(err)),
            };
            if e.dialect == crate::config::xl::Dialect::Xl {
                let imported = e
                    .name
                    .as_ref()
                    .is_some_and(|n| lib.entries.iter().any(|o| o.file == format!("{n}.sxp")));
                status = match (&e.status, imported) {
                    (Ok(_), false) => format!("xl.cfg · i imports · {status}"),
                    (Ok(_), true) => format!(
                        "xl.cfg · imported as {}.sxp · {status}",
                        e.name.as_deref().unwrap_or("")
                    ),
                    (Err(_), _) => format!("xl.cfg · {status}"),
                };
            }
            let style = if i == lib.selected {
                t.selection()
            } else {
                t.base()
            };
            Row::new(vec![
                Cell::from(mark).style(mark_style),
                // Names on one line, cut with '…' to their columns.
                Cell::from(ellipsize(&crate::tui::ui::one_line(&e.file), 24)),
                Cell::from(ellipsize(
                    &crate::tui::table::clean(e.name.as_deref().unwrap_or_default()),
                    20,
                )),
                // Cut with '…' (Enter on a config that is not valid logs
                // the whole reason to Events).
                Cell::from(ellipsize(
                    &status,
                    usize::from(area.width).saturating_sub(2 + 2 + 24 + 20 + 3),
                )),
            ])
            .style(style)
        });
    let widths = [
        Constraint::Length(2),
        Constraint::Length(24),
        Constraint::Length(20),
        Constraint::Min(10),
    ];
    frame.render_widget(
        Table::new(rows, widths)
            .header(header)
            .block(block(app, title)),
        area,
    );
    if lib.entries.is_empty() {
        empty_note(frame, app, area, "no configs yet: press n to start one");
    }
}

pub fn events(frame: &mut Frame, app: &App, area: Rect) {
    let t = &app.theme;
    let n = app.events.len();
    let title = if n == 0 {
        "Events (0)".to_string()
    } else {
        format!("Events ({}/{n})", app.events_selected.min(n - 1) + 1)
    };
    if n == 0 {
        frame.render_widget(
            Paragraph::new(Line::from(Span::styled(
                " nothing has happened yet",
                t.muted(),
            )))
            .block(block(app, title)),
            area,
        );
        return;
    }
    let width = usize::from(area.width.saturating_sub(2));
    let height = usize::from(area.height.saturating_sub(2));
    // Each event's lines: its time, then its text wrapped under itself, so
    // a long error is read in full here when the status line cut it.
    let rows_of = |i: usize| -> Vec<Line<'static>> {
        let e = &app.events[i];
        let stamp = if e.at_ns == 0 {
            // Before the first engine poll the clock is not known yet.
            " —                   ".to_string()
        } else {
            format!(" {} ", format_utc(e.at_ns))
        };
        let indent = " ".repeat(stamp.chars().count());
        let text = if e.who.is_empty() {
            crate::tui::ui::one_line(&e.text)
        } else {
            format!(
                "{}: {}",
                crate::tui::ui::one_line(&e.who),
                crate::tui::ui::one_line(&e.text)
            )
        };
        let wrapped = crate::tui::ui::wrap(&text, width.saturating_sub(indent.len()).max(8));
        let style = crate::tui::ui::level_style(app, e.level);
        let selected = i == app.events_selected;
        wrapped
            .into_iter()
            .enumerate()
            .map(|(k, part)| {
                let lead = if k == 0 {
                    stamp.clone()
                } else {
                    indent.clone()
                };
                let line = Line::from(vec![
                    Span::styled(lead, t.muted()),
                    Span::styled(part, style),
                ]);
                if selected {
                    line.style(t.selection())
                } else {
                    line
                }
            })
            .collect()
    };
    // The selected event and as many before it as fit (it sits at the
    // bottom, like a followed log), then later ones below when there is room.
    let sel = app.events_selected.min(n - 1);
    let mut before: Vec<Vec<Line>> = Vec::new();
    let mut used = 0;
    for i in (0..=sel).rev() {
        let r = rows_of(i);
        if used + r.len() > height && !before.is_empty() {
            break;
        }
        used += r.len();
        before.push(r);
    }
    let mut lines: Vec<Line> = before.into_iter().rev().flatten().collect();
    for i in sel + 1..n {
        if lines.len() >= height {
            break;
        }
        lines.extend(rows_of(i));
    }
    // The selected event may be taller than the view: show its start.
    lines.truncate(height.max(1));
    frame.render_widget(Paragraph::new(lines).block(block(app, title)), area);
}

/// The Gone tab: domains that went recently, how, and when.
pub fn gone(frame: &mut Frame, app: &App, area: Rect) {
    let t = &app.theme;
    let list = &app.feed.gone;
    let title = format!("Gone ({})", list.len());
    if list.is_empty() {
        frame.render_widget(
            Paragraph::new(Line::from(Span::styled(
                " no domain has gone in the last day",
                t.muted(),
            )))
            .block(block(app, title)),
            area,
        );
        return;
    }
    let height = usize::from(area.height.saturating_sub(3));
    let sel = app.feed.gone_selected.min(list.len() - 1);
    let offset = sel.saturating_sub(height.saturating_sub(1));
    let header = Row::new(
        ["ID", "NAME", "WHEN", "HOW IT ENDED"]
            .map(|h| Cell::from(h).style(t.base().fg(t.accent).add_modifier(Modifier::BOLD))),
    );
    let rows = list
        .iter()
        .enumerate()
        .skip(offset)
        .take(height)
        .map(|(i, g)| {
            let how = g.last.as_ref().map_or_else(
                || "gone".to_string(),
                |e| {
                    format!(
                        "{} ({})",
                        crate::tui::ui::one_line(&e.event.to_string()),
                        e.source
                    )
                },
            );
            let style = if i == sel { t.selection() } else { t.muted() };
            Row::new(vec![
                Cell::from(g.domid.map_or("-".into(), |d| format!("{d:>4}"))),
                Cell::from(ellipsize(&crate::tui::table::clean(&g.record.name), 20)),
                Cell::from(g.record.gone_ns.map_or("-".into(), format_utc)),
                Cell::from(how),
            ])
            .style(style)
        });
    let widths = [
        Constraint::Length(5),
        Constraint::Length(20),
        Constraint::Length(20),
        Constraint::Min(10),
    ];
    frame.render_widget(
        Table::new(rows, widths)
            .header(header)
            .column_spacing(1)
            .block(block(app, title)),
        area,
    );
}
