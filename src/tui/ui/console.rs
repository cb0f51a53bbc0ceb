use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use tui_term::widget::PseudoTerminal;

use crate::backend::DomId;
use crate::tui::app::App;
use crate::tui::input::LineInput;
use crate::tui::keymap::Scope;

pub fn draw(frame: &mut Frame, app: &App, domid: DomId, search: Option<&LineInput>) {
    let t = &app.theme;
    let area = frame.area();
    let console = app.consoles.get(&domid);
    let name = match (app.table.row(domid), console) {
        (Some(r), _) => r.name.clone(),
        (None, Some(c)) if !c.name.is_empty() => c.name.clone(),
        _ => app.table.name_of(domid),
    };
    let mut title = vec![
        Span::styled(format!(" {name} "), t.title()),
        Span::styled(format!(" console · domain {domid} "), t.muted()),
    ];
    if let Some(c) = console {
        if c.scrolled() > 0 {
            title.push(Span::styled(
                format!(
                    " scrolled back {} lines · / search · Esc live ",
                    c.scrolled()
                ),
                t.warning(),
            ));
        }
        if c.closed {
            title.push(Span::styled(" the domain is gone ", t.error()));
        }
    }
    if let Some(info) = app.table.row(domid).map(|r| &r.view.info) {
        title.push(Span::styled(
            format!(" {} ", info.state_string()),
            t.state(info),
        ));
    }
    frame.render_widget(
        Paragraph::new(Line::from(title)).style(t.base()),
        Rect { height: 1, ..area },
    );
    let term_area = Rect {
        y: area.y + 1,
        height: area.height.saturating_sub(2),
        ..area
    };
    match console {
        Some(c) => {
            // Only cells from the parser are drawn: nothing the guest sends
            // reaches the host terminal as bytes.
            let widget = PseudoTerminal::new(c.parser.screen()).style(t.base());
            frame.render_widget(widget, term_area);
        }
        None => frame.render_widget(Paragraph::new(" connecting…").style(t.muted()), term_area),
    }
    let footer_area = Rect {
        y: area.y + area.height.saturating_sub(1),
        height: 1,
        ..area
    };
    match search {
        Some(input) => frame.render_widget(
            Paragraph::new(Line::from(vec![
                Span::styled(" search: ", t.key()),
                Span::styled(format!("{}▏", input.text), t.base()),
                Span::styled("  Enter find · Esc cancel", t.muted()),
            ])),
            footer_area,
        ),
        None => {
            let status = app
                .status
                .as_ref()
                .filter(|(l, _)| *l == crate::tui::app::Level::Warn);
            match status {
                Some((level, text)) => frame.render_widget(
                    Paragraph::new(Span::styled(
                        format!(" {}", crate::tui::ui::one_line(text)),
                        crate::tui::ui::level_style(app, *level),
                    )),
                    footer_area,
                ),
                None => crate::tui::ui::footer(frame, app, Scope::Console, footer_area),
            }
        }
    }
}
