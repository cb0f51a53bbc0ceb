//! The console view: a guest's terminal, full screen. Its keys (detach,
//! scroll back, search, everything else typed to the guest) and its
//! drawing live here; the bytes the guest sends reach the screen only
//! through the vt100 parser's cells.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use tui_term::widget::PseudoTerminal;

use crate::fleet::DomKey;
use crate::tui::app::{App, Level};
use crate::tui::console::ConsoleBuffer;
use crate::tui::input::LineInput;
use crate::tui::keymap::{Command, Keymap, Scope};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleView {
    pub domid: DomKey,
    /// The search being typed (while scrolled back).
    pub search: Option<LineInput>,
}

/// What a key in the console asks of the app.
#[derive(Debug, PartialEq, Eq)]
pub enum ConsoleKey {
    Stay,
    /// Back to the table.
    Detach,
    /// The domain is gone and Enter was pressed: its successor's console.
    Reopen,
    /// Bytes for the guest.
    Send(Vec<u8>),
    /// A line for the status bar.
    Say(Level, String),
}

/// Bytes a key sends to a guest terminal.
pub fn key_bytes(key: &KeyEvent) -> Vec<u8> {
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    match key.code {
        KeyCode::Char(c) if ctrl && c.is_ascii_alphabetic() => {
            vec![(c.to_ascii_lowercase() as u8) & 0x1f]
        }
        KeyCode::Char(c) => c.to_string().into_bytes(),
        KeyCode::Enter => b"\r".to_vec(),
        KeyCode::Backspace => vec![0x7f],
        KeyCode::Tab => b"\t".to_vec(),
        KeyCode::Esc => vec![0x1b],
        KeyCode::Up => b"\x1b[A".to_vec(),
        KeyCode::Down => b"\x1b[B".to_vec(),
        KeyCode::Right => b"\x1b[C".to_vec(),
        KeyCode::Left => b"\x1b[D".to_vec(),
        KeyCode::Home => b"\x1b[H".to_vec(),
        KeyCode::End => b"\x1b[F".to_vec(),
        KeyCode::Delete => b"\x1b[3~".to_vec(),
        KeyCode::PageUp => b"\x1b[5~".to_vec(),
        KeyCode::PageDown => b"\x1b[6~".to_vec(),
        _ => Vec::new(),
    }
}

impl ConsoleView {
    pub fn new(domid: DomKey) -> Self {
        ConsoleView {
            domid,
            search: None,
        }
    }

    /// A key, with the domain's console buffer (if it has one) and a page
    /// of scrolling in lines.
    pub fn on_key(
        &mut self,
        key: &KeyEvent,
        buffer: Option<&mut ConsoleBuffer>,
        keys: &Keymap,
        read_only: bool,
        page: isize,
    ) -> ConsoleKey {
        if let Some(input) = &mut self.search {
            return match key.code {
                KeyCode::Esc => {
                    self.search = None;
                    ConsoleKey::Stay
                }
                // A later search's outcome replaces an earlier one's.
                KeyCode::Enter => {
                    let text = input.text.clone();
                    self.search = None;
                    if buffer.is_some_and(|c| c.search(&text)) {
                        ConsoleKey::Say(Level::Info, format!("found: {text}"))
                    } else {
                        ConsoleKey::Say(Level::Warn, format!("not found: {text}"))
                    }
                }
                _ => {
                    input.handle(key);
                    ConsoleKey::Stay
                }
            };
        }
        let closed = buffer.as_ref().is_some_and(|c| c.closed);
        if closed && key.code == KeyCode::Enter {
            return ConsoleKey::Reopen;
        }
        let scrolled = buffer.as_ref().is_some_and(|c| c.scrolled() > 0);
        let scroll = |buffer: Option<&mut ConsoleBuffer>, by: isize| {
            if let Some(c) = buffer {
                c.scroll(by);
            }
            ConsoleKey::Stay
        };
        match keys.lookup(key, &[Scope::Console], read_only) {
            Some(Command::ConsoleDetach) => ConsoleKey::Detach,
            Some(Command::ScrollUp) => scroll(buffer, page),
            Some(Command::ScrollDown) => scroll(buffer, -page),
            Some(Command::ConsoleSearch) if scrolled => {
                self.search = Some(LineInput::default());
                ConsoleKey::Stay
            }
            _ if scrolled && key.code == KeyCode::Esc => scroll(buffer, isize::MIN / 2),
            _ if read_only => {
                ConsoleKey::Say(Level::Warn, "read-only: console input is disabled".into())
            }
            _ => {
                // Typing returns to the live screen, as terminals do.
                if scrolled {
                    scroll(buffer, isize::MIN / 2);
                }
                let bytes = key_bytes(key);
                if bytes.is_empty() {
                    ConsoleKey::Stay
                } else {
                    ConsoleKey::Send(bytes)
                }
            }
        }
    }

    pub fn draw(&self, frame: &mut Frame, app: &App) {
        let (domid, search) = (self.domid, self.search.as_ref());
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
                // A restart policy built it again: say where it went.
                let gone = match app.successor(domid) {
                    Some(next) => format!(" restarted as domain {next} · Enter follows it "),
                    None => " the domain is gone ".to_string(),
                };
                title.push(Span::styled(gone, t.error()));
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
                        Paragraph::new(Line::from(crate::tui::ui::one_line_in(
                            app,
                            text,
                            usize::from(footer_area.width),
                            crate::tui::ui::level_style(app, *level),
                        ))),
                        footer_area,
                    ),
                    None => crate::tui::ui::footer(frame, app, Scope::Console, footer_area),
                }
            }
        }
    }
}
