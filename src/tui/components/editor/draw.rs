//! The editor's drawing: line numbers, S-expression colouring, the
//! error line and its footer.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::{Editor, Token, tokenize};
use crate::tui::app::App;
use crate::tui::keymap::Scope;

impl Editor {
    pub fn draw(&self, frame: &mut Frame, app: &App) {
        let ed = self;
        let t = &app.theme;
        let area = frame.area();
        let dirty = if ed.dirty() { " [modified]" } else { "" };
        let title = Line::from(vec![
            Span::styled(format!(" {} ", ed.file), t.title()),
            Span::styled(
                format!("{dirty}  {}", crate::tui::ui::show_path(app, &ed.path)),
                t.muted(),
            ),
        ]);
        let cols = usize::from(area.width);
        frame.render_widget(
            Paragraph::new(crate::tui::ui::cut_line(title, cols)),
            Rect { height: 1, ..area },
        );

        let text_h = usize::from(area.height.saturating_sub(4));
        let lines = ed.textarea.lines();
        let (crow, ccol) = ed.cursor();
        let err_line = ed.error_line();
        let gutter = lines.len().to_string().len().max(3);
        // Keep the cursor visible even before update() has scrolled.
        let scroll = if crow < ed.scroll {
            crow
        } else if text_h > 0 && crow >= ed.scroll + text_h {
            crow + 1 - text_h
        } else {
            ed.scroll
        };
        // Columns left for text after the gutter; scroll sideways to the cursor.
        let text_w = usize::from(area.width).saturating_sub(gutter + 3).max(1);
        let hscroll = if ccol >= text_w { ccol + 1 - text_w } else { 0 };
        let mut out = Vec::with_capacity(text_h);
        for (i, line) in lines.iter().enumerate().skip(scroll).take(text_h) {
            let is_err = err_line == Some(i);
            let base = if is_err {
                t.base().bg(t.error_line_bg)
            } else {
                t.base()
            };
            let num_style = if is_err {
                t.error().add_modifier(Modifier::BOLD)
            } else {
                t.muted()
            };
            let mut spans = vec![Span::styled(format!("{:>gutter$} │ ", i + 1), num_style)];
            let mut col = 0usize;
            for (tok, text) in tokenize(line) {
                let style: Style = match tok {
                    Token::Paren => base.fg(t.syntax_paren),
                    Token::Key => base.fg(t.syntax_key).add_modifier(Modifier::BOLD),
                    Token::String => base.fg(t.syntax_string),
                    Token::Number => base.fg(t.syntax_number),
                    Token::Comment => base.fg(t.syntax_comment).add_modifier(Modifier::ITALIC),
                    Token::Plain => base,
                };
                // Split the token at the cursor so the cursor cell stands out.
                for ch in text.chars() {
                    if col >= hscroll {
                        let s = if i == crow && col == ccol {
                            style.add_modifier(Modifier::REVERSED)
                        } else {
                            style
                        };
                        spans.push(Span::styled(ch.to_string(), s));
                    }
                    col += 1;
                }
            }
            if i == crow && ccol >= col {
                spans.push(Span::styled(" ", base.add_modifier(Modifier::REVERSED)));
            }
            out.push(Line::from(spans).style(base));
        }
        frame.render_widget(
            Paragraph::new(out),
            Rect {
                y: area.y + 1,
                height: text_h as u16,
                ..area
            },
        );

        // Diagnostics: the first error (with line:col) or the warning count.
        let diag_area = Rect {
            y: area.y + area.height.saturating_sub(3),
            height: 1,
            ..area
        };
        let diag = match ed.diagnostics.error_lines().first() {
            // The hypervisor's own text: it checks it when it is saved.
            None if ed.native.is_some() => Line::from(Span::styled(
                " the hypervisor's definition: checked by it when saved",
                t.muted(),
            )),
            Some(e) => Line::from(Span::styled(
                format!(" ✘ {}", crate::tui::ui::one_line(e)),
                t.error(),
            )),
            None if !ed.preflight.is_empty() => Line::from(Span::styled(
                format!(" ⚠ {}", crate::tui::ui::one_line(&ed.preflight.join("; "))),
                t.warning(),
            )),
            None if !ed.diagnostics.warnings.is_empty() => Line::from(Span::styled(
                format!(
                    " ⚠ {}",
                    crate::tui::ui::one_line(&ed.diagnostics.warning_lines()[0])
                ),
                t.warning(),
            )),
            None => Line::from(Span::styled(" ✔ valid", t.ok())),
        };
        frame.render_widget(
            Paragraph::new(crate::tui::ui::cut_line(diag, cols)),
            diag_area,
        );
        let msg_area = Rect {
            y: area.y + area.height.saturating_sub(2),
            height: 1,
            ..area
        };
        let pos = format!("{}:{}", crow + 1, ccol + 1);
        let msg = ed.message.clone().unwrap_or_default();
        let mut spans = vec![Span::styled(format!(" {pos:<7}"), t.muted())];
        spans.extend(crate::tui::ui::one_line_in(
            app,
            &msg,
            usize::from(area.width).saturating_sub(9),
            t.warning(),
        ));
        frame.render_widget(Paragraph::new(Line::from(spans)), msg_area);
        crate::tui::ui::footer(
            frame,
            app,
            Scope::Editor,
            Rect {
                y: area.y + area.height.saturating_sub(1),
                height: 1,
                ..area
            },
        );
    }
}
