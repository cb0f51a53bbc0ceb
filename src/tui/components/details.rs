//! A domain's details: its state, config summary, devices, notes, the
//! whole timeline (followed live, scrolled back with the keymap's
//! `Scope::Details` keys) and a CPU sparkline.

use crossterm::event::KeyEvent;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph, Sparkline};

use crate::clock::NS_PER_SEC;
use crate::fleet::DomKey;
use crate::tui::app::App;
use crate::tui::keymap::{self, Command, Scope};
use crate::tui::ui::layout::centered;
use crate::tui::ui::overlays::{frame_popup, popup, timeline_line, timeline_of};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Details {
    pub domid: DomKey,
    /// Timeline entries scrolled back from the newest (in the native view:
    /// lines from the top).
    pub back: usize,
    /// The hypervisor's own description (libvirt's XML), when it has one.
    pub native: Option<Vec<String>>,
    /// Showing it instead of the summary and timeline.
    pub showing_native: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DetailsKey {
    Stay,
    Close,
    Console,
}

/// The domain's I/O: rates and totals since it was built, where counted
/// (read while the I/O columns are shown).
fn io_line(row: &crate::tui::table::Row) -> Option<String> {
    use crate::tui::ui::tables::bytes_human as h;
    let (total, _) = row.cpu.io.as_ref()?;
    let r = &row.cpu.io_rates;
    let per_s = |x: Option<f64>| x.map_or_else(|| "-".to_string(), |v| format!("{}/s", h(v)));
    let mut parts = Vec::new();
    if let Some(n) = total.net {
        parts.push(format!(
            "net tx {} rx {} (total {} / {})",
            per_s(r.net_tx),
            per_s(r.net_rx),
            h(n.tx_bytes as f64),
            h(n.rx_bytes as f64)
        ));
    }
    if let Some(v) = total.vbd {
        let reqs = |x: Option<f64>| x.map_or_else(String::new, |v| format!(" {v:.0} req/s"));
        parts.push(format!(
            "disk rd {}{} wr {}{} (total {} / {})",
            per_s(r.vbd_rd),
            reqs(r.vbd_rd_reqs),
            per_s(r.vbd_wr),
            reqs(r.vbd_wr_reqs),
            h(v.rd_bytes as f64),
            h(v.wr_bytes as f64)
        ));
    }
    (!parts.is_empty()).then(|| format!(" I/O {}", parts.join(" · ")))
}

impl Details {
    pub fn new(domid: DomKey) -> Self {
        Details {
            domid,
            back: 0,
            native: None,
            showing_native: false,
        }
    }

    /// `max`: the furthest back the timeline can scroll on this screen
    /// ([`Details::max_back`]); `page`: a screenful.
    pub fn on_key(
        &mut self,
        key: &KeyEvent,
        keys: &keymap::Keymap,
        max: usize,
        page: usize,
    ) -> DetailsKey {
        let command = keys.lookup(key, &[Scope::Details], false);
        if command == Some(Command::DetailsNative) {
            self.showing_native = !self.showing_native && self.native.is_some();
            self.back = 0;
            return DetailsKey::Stay;
        }
        if self.showing_native {
            // From the top: down goes on into the text.
            let max = self
                .native
                .as_ref()
                .map_or(0, Vec::len)
                .saturating_sub(page);
            self.back = match command {
                Some(Command::DetailsClose) => return DetailsKey::Close,
                Some(Command::Console) => return DetailsKey::Console,
                Some(Command::Up) => self.back.saturating_sub(1),
                Some(Command::Down) => self.back + 1,
                Some(Command::PageUp) => self.back.saturating_sub(page),
                Some(Command::PageDown) => self.back + page,
                Some(Command::Top) => 0,
                Some(Command::Bottom) => max,
                _ => self.back,
            }
            .min(max);
            return DetailsKey::Stay;
        }
        self.back = match command {
            Some(Command::DetailsClose) => return DetailsKey::Close,
            Some(Command::Console) => return DetailsKey::Console,
            Some(Command::Up) => self.back + 1,
            Some(Command::Down) => self.back.saturating_sub(1),
            Some(Command::PageUp) => self.back + page,
            Some(Command::PageDown) => self.back.saturating_sub(page),
            Some(Command::Top) => max,
            Some(Command::Bottom) => 0,
            _ => self.back,
        }
        .min(max);
        DetailsKey::Stay
    }

    /// Everything above the timeline's entries, and the inner width.
    fn header(
        &self,
        app: &App,
        row: &crate::tui::table::Row,
        popup_area: Rect,
    ) -> (Vec<Line<'static>>, usize) {
        let t = &app.theme;
        let area = popup_area;
        let info = &row.view.info;
        let inner = usize::from(popup_area.width.saturating_sub(2));
        // In a fleet, which host's.
        let on = if app.hosts.is_fleet() {
            format!(" on {}", app.hosts.name(row.host))
        } else {
            String::new()
        };
        let state = format!(
            " domain {}{on}  {} ({})",
            row.key(),
            info.state_string(),
            info.state_word()
        );
        // The state is never cut: a long name gives way.
        let name = crate::tui::ui::tables::ellipsize(
            &row.name,
            inner.saturating_sub(state.chars().count() + 3).max(8),
        );
        let mut lines = vec![Line::from(vec![
            Span::styled(format!(" {name} "), t.title()),
            Span::styled(format!(" domain {}{on}  ", row.key()), t.muted()),
            Span::styled(info.state_string(), t.state(info)),
            Span::styled(format!(" ({})", info.state_word()), t.state(info)),
        ])];
        let uuid = format!(" uuid {}", info.uuid);
        let sizes = format!(
            " {} MiB (max {} MiB) · {} vCPU · CPU {:.1} s",
            info.memory_kib / 1024,
            info.max_memory_kib / 1024,
            info.vcpus,
            info.cpu_time_ns as f64 / NS_PER_SEC as f64
        );
        // One line where it fits, else the uuid on its own.
        if uuid.chars().count() + 2 + sizes.chars().count() <= inner {
            lines.push(Line::from(format!("{uuid} ·{sizes}")));
        } else {
            lines.push(Line::from(uuid));
            lines.push(Line::from(sizes));
        }
        if let Some(io) = io_line(row) {
            lines.push(Line::from(io));
        }
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
        (lines, inner)
    }

    /// The hypervisor's description, read-only, scrolled from the top.
    fn draw_native(&self, frame: &mut Frame, app: &App, row: &crate::tui::table::Row, area: Rect) {
        let t = &app.theme;
        let inner = usize::from(area.width.saturating_sub(2));
        let room = usize::from(area.height.saturating_sub(3));
        let text = self.native.as_deref().unwrap_or_default();
        let mut lines = vec![Line::from(Span::styled(
            format!(
                " {} · the hypervisor's own description, read-only (change it with its tool, e.g. virsh edit)",
                row.name
            ),
            t.muted(),
        ))];
        let start = self.back.min(text.len());
        lines.extend(
            text[start..]
                .iter()
                .take(room)
                .map(|l| Line::from(format!(" {l}"))),
        );
        let key = |c: Command, d: &str| app.keys.key_for(c).unwrap_or_else(|| d.into());
        let title = format!(
            "Details · {} back · {} closes · ↑/↓ PgUp/PgDn scroll · {}/{} lines",
            key(Command::DetailsNative, "x"),
            key(Command::DetailsClose, "Esc"),
            (start + room).min(text.len()),
            text.len()
        );
        let lines: Vec<Line> = lines
            .into_iter()
            .map(|l| crate::tui::ui::cut_line(l, inner))
            .collect();
        frame.render_widget(Clear, area);
        frame.render_widget(Paragraph::new(lines).block(popup(app, &title)), area);
    }

    /// The furthest back the timeline scrolls on a terminal of `size`: as
    /// far as the drawing can show, so every key moves what is seen.
    pub fn max_back(&self, app: &App, size: (u16, u16)) -> usize {
        let area = Rect::new(0, 0, size.0, size.1);
        let popup_area = crate::tui::ui::layout::overlay(area);
        let Some(row) = app.table.row(self.domid) else {
            return 0;
        };
        let (lines, _) = self.header(app, row, popup_area);
        let room = usize::from(popup_area.height.saturating_sub(2)).saturating_sub(lines.len() + 4);
        timeline_of(app, row.view.info.uuid)
            .len()
            .saturating_sub(room)
    }

    pub fn draw(&self, frame: &mut Frame, app: &App, area: Rect) {
        let (domid, back) = (self.domid, self.back);
        let t = &app.theme;
        let popup_area = crate::tui::ui::layout::overlay(area);
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
        if self.showing_native {
            self.draw_native(frame, app, row, popup_area);
            return;
        }
        let (mut lines, inner) = self.header(app, row, popup_area);
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
        // The keys in use (the operator may have changed them).
        let key = |c: Command, default: &str| app.keys.key_for(c).unwrap_or_else(|| default.into());
        let close = key(Command::DetailsClose, "Esc");
        let console = match app
            .keys
            .bindings()
            .iter()
            .find(|b| b.scope == Scope::Details && b.command == Command::Console)
        {
            Some(b) => b.keys.first().map(keymap::key_label).unwrap_or_default(),
            None => "c".into(),
        };
        let native = match (&self.native, app.keys.key_for(Command::DetailsNative)) {
            (Some(_), Some(k)) => format!(" · {k} XML"),
            _ => String::new(),
        };
        let title = if timeline.len() > room {
            format!(
                "Details · {close} closes · {console} console{native} · ↑/↓ PgUp/PgDn the timeline"
            )
        } else {
            format!("Details · {close} closes · {console} console{native}")
        };
        frame.render_widget(Clear, popup_area);
        let lines: Vec<Line> = lines
            .into_iter()
            .map(|l| crate::tui::ui::cut_line(l, inner))
            .collect();
        frame.render_widget(Paragraph::new(lines).block(popup(app, &title)), popup_area);
        // The sparklines need the pop-up's last two inner rows.
        if popup_area.height < 6 {
            return;
        }
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
        // With I/O counted: CPU on the left half, I/O on the right.
        let io: Vec<u64> = app
            .table
            .row(domid)
            .map(|r| r.cpu.io_history.iter().copied().collect())
            .unwrap_or_default();
        // Side by side only where both labels have room.
        let spark_area = if io.is_empty() || spark_area.width < 90 {
            spark_area
        } else {
            let half = spark_area.width / 2;
            let io_area = Rect {
                x: spark_area.x + half + 1,
                width: spark_area.width.saturating_sub(half + 1),
                ..spark_area
            };
            let now = io.last().copied().unwrap_or(0) as f64;
            frame.render_widget(
                Paragraph::new(Span::styled(
                    format!(
                        "I/O {}/s (net and disk, last {} samples)",
                        crate::tui::ui::tables::bytes_human(now),
                        io.len()
                    ),
                    t.muted(),
                )),
                Rect {
                    height: 1,
                    ..io_area
                },
            );
            frame.render_widget(
                Sparkline::default()
                    .data(&io)
                    .max(io.iter().copied().max().unwrap_or(1).max(1))
                    .style(t.base().fg(t.sparkline)),
                Rect {
                    y: io_area.y + 1,
                    height: 1,
                    ..io_area
                },
            );
            Rect {
                width: half,
                ..spark_area
            }
        };
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
}
