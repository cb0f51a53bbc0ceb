//! One console per domain: a vt100 parser owned by the app state (no lock
//! shared with any reader thread) plus plain-text lines for searching the
//! scrollback. Guest bytes only ever reach the parser; what is drawn comes
//! from its cells, so no guest escape sequence reaches the host terminal.

use std::collections::VecDeque;

pub const SCROLLBACK: usize = 5000;

pub struct ConsoleBuffer {
    pub parser: vt100::Parser,
    /// Plain text of completed lines (escape sequences dropped), for search.
    pub lines: VecDeque<String>,
    partial: String,
    escape: crate::console::EscapeFilter,
    pub bytes: u64,
    pub closed: bool,
}

impl ConsoleBuffer {
    pub fn new(rows: u16, cols: u16) -> Self {
        ConsoleBuffer {
            parser: vt100::Parser::new(rows.max(1), cols.max(1), SCROLLBACK),
            lines: VecDeque::new(),
            partial: String::new(),
            escape: crate::console::EscapeFilter::new(),
            bytes: 0,
            closed: false,
        }
    }

    pub fn feed(&mut self, bytes: &[u8]) {
        self.bytes += bytes.len() as u64;
        self.parser.process(bytes);
        // The search copy: drop escape sequences and control characters.
        let mut safe = Vec::with_capacity(bytes.len());
        self.escape.feed(bytes, &mut safe);
        let mut in_csi = false;
        for ch in String::from_utf8_lossy(&safe).chars() {
            if in_csi {
                in_csi = !('@'..='~').contains(&ch);
                continue;
            }
            match ch {
                '\u{1b}' => in_csi = true,
                '\n' => {
                    let line = std::mem::take(&mut self.partial);
                    self.lines.push_back(line);
                    if self.lines.len() > SCROLLBACK {
                        self.lines.pop_front();
                    }
                }
                '\u{8}' => {
                    self.partial.pop();
                }
                c if c.is_control() => {}
                c => self.partial.push(c),
            }
        }
    }

    pub fn resize(&mut self, rows: u16, cols: u16) {
        self.parser.screen_mut().set_size(rows.max(1), cols.max(1));
    }

    /// Scroll so that the newest line matching `needle` is on screen.
    /// Returns false when nothing matches.
    pub fn search(&mut self, needle: &str) -> bool {
        let needle = needle.to_lowercase();
        let total = self.lines.len() + 1;
        let Some(idx) = self
            .lines
            .iter()
            .rposition(|l| l.to_lowercase().contains(&needle))
        else {
            return false;
        };
        let rows = usize::from(self.parser.screen().size().0);
        // Lines below the match; put the match near the top of the screen.
        let below = total - idx;
        self.parser
            .screen_mut()
            .set_scrollback(below.saturating_sub(rows / 3));
        true
    }

    pub fn scroll(&mut self, delta: isize) {
        let cur = self.parser.screen().scrollback() as isize;
        self.parser
            .screen_mut()
            .set_scrollback((cur + delta).max(0) as usize);
    }

    pub fn scrolled(&self) -> usize {
        self.parser.screen().scrollback()
    }
}
