//! One console per domain: a vt100 parser owned by the app state (no lock
//! shared with any reader thread) plus plain-text lines for searching the
//! scrollback. Guest bytes only ever reach the parser; what is drawn comes
//! from its cells, so no guest escape sequence reaches the host terminal.
//! Before the parser they go through the same allow-list as `domus
//! console`, so both front ends agree on what a guest may do (and the
//! parser never enters a mode a guest should not set).

use std::collections::VecDeque;

use crate::console::EscapeFilter;

pub const SCROLLBACK: usize = 5000;
/// Bytes of recent output kept for redrawing after a resize.
const RAW_KEEP: usize = 1 << 20;

/// Where the plain-text copy is inside an escape sequence. Filtered bytes
/// hold no strings (OSC, DCS, …), only CSI and two-byte ESC sequences.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Strip {
    Text,
    Esc,
    Csi,
}

pub struct ConsoleBuffer {
    pub parser: vt100::Parser,
    /// Plain text of completed lines (escape sequences dropped), for search.
    pub lines: VecDeque<String>,
    partial: Vec<u8>,
    strip: Strip,
    filter: EscapeFilter,
    /// The filter's output for one `feed`, kept to reuse its allocation.
    filtered: Vec<u8>,
    /// The newest filtered output, replayed into a fresh parser on resize:
    /// a vt100 grid that shrinks loses its bottom rows otherwise.
    raw: VecDeque<u8>,
    /// Guest bytes received, before filtering.
    pub bytes: u64,
    pub closed: bool,
    /// The domain's name when the console was opened: kept for the title
    /// once the domain is gone.
    pub name: String,
}

impl ConsoleBuffer {
    pub fn new(rows: u16, cols: u16) -> Self {
        ConsoleBuffer {
            parser: vt100::Parser::new(rows.max(1), cols.max(1), SCROLLBACK),
            lines: VecDeque::new(),
            partial: Vec::new(),
            strip: Strip::Text,
            filter: EscapeFilter::new(),
            filtered: Vec::new(),
            raw: VecDeque::new(),
            bytes: 0,
            closed: false,
            name: String::new(),
        }
    }

    pub fn feed(&mut self, bytes: &[u8]) {
        self.bytes += bytes.len() as u64;
        let mut filtered = std::mem::take(&mut self.filtered);
        // In slices, so what the filter wrote is still in cache when the
        // parser reads it (a 1 MiB batch in one piece measured ~10% slower).
        for slice in bytes.chunks(16 * 1024) {
            filtered.clear();
            self.filter.feed(slice, &mut filtered);
            self.take(&filtered);
        }
        self.filtered = filtered;
    }

    /// Filtered bytes into the parser, the replay buffer and the search copy.
    fn take(&mut self, bytes: &[u8]) {
        self.parser.process(bytes);
        self.raw.extend(bytes);
        if self.raw.len() > RAW_KEEP {
            let excess = self.raw.len() - RAW_KEEP;
            self.raw.drain(..excess);
        }
        // The search copy, in one pass over the bytes: text kept, escape
        // sequences and control characters dropped. Runs of plain text are
        // copied whole; only the bytes around them go through the machine.
        let mut i = 0;
        while i < bytes.len() {
            if self.strip == Strip::Text {
                let run = bytes[i..]
                    .iter()
                    .position(|&b| b < 0x20 || b == 0x7f)
                    .unwrap_or(bytes.len() - i);
                self.partial.extend_from_slice(&bytes[i..i + run]);
                i += run;
                if i == bytes.len() {
                    break;
                }
            }
            let b = bytes[i];
            i += 1;
            self.strip = match (self.strip, b) {
                (Strip::Text, 0x1b) => Strip::Esc,
                (Strip::Text, b'\n') => {
                    let line = String::from_utf8_lossy(&self.partial).into_owned();
                    self.partial.clear();
                    self.lines.push_back(line);
                    if self.lines.len() > SCROLLBACK {
                        self.lines.pop_front();
                    }
                    Strip::Text
                }
                (Strip::Text, 0x08) => {
                    self.partial.pop();
                    Strip::Text
                }
                (Strip::Text, _) => Strip::Text,
                (Strip::Esc, b'[') => Strip::Csi,
                (Strip::Esc, _) => Strip::Text,
                (Strip::Csi, 0x40..=0x7e) => Strip::Text,
                (Strip::Csi, _) => Strip::Csi,
            };
        }
        // A guest that never sends a newline must not grow this forever.
        if self.partial.len() > 64 * 1024 {
            self.partial.drain(..32 * 1024);
        }
    }

    pub fn resize(&mut self, rows: u16, cols: u16) {
        if self.parser.screen().size() == (rows.max(1), cols.max(1)) {
            return;
        }
        let mut parser = vt100::Parser::new(rows.max(1), cols.max(1), SCROLLBACK);
        let (a, b) = self.raw.as_slices();
        parser.process(a);
        parser.process(b);
        self.parser = parser;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parser_sees_only_what_the_filter_allows() {
        let mut c = ConsoleBuffer::new(5, 40);
        for chunk in b"\x1b[?1049h\x1b[?25l\x1b[?1000h\x1b[?2004h\x1b(0qq\x0eqq\x0f\x1b]0;t\x07\x1b[31mred\x1b[0m\r\n".chunks(3) {
            c.feed(chunk);
        }
        let screen = c.parser.screen();
        assert!(!screen.alternate_screen());
        assert!(!screen.hide_cursor());
        assert!(!screen.bracketed_paste());
        assert_eq!(screen.mouse_protocol_mode(), vt100::MouseProtocolMode::None);
        // `q` stays `q`: no line-drawing charset.
        assert!(
            screen.contents().starts_with("qqqqred"),
            "{}",
            screen.contents()
        );
        assert_eq!(c.lines.back().map(String::as_str), Some("qqqqred"));
        assert_eq!(
            screen.cell(0, 4).map(|x| x.fgcolor()),
            Some(vt100::Color::Idx(1))
        );
    }

    #[test]
    fn search_and_resize_work_on_filtered_output() {
        let mut c = ConsoleBuffer::new(5, 40);
        for i in 0..20 {
            c.feed(format!("line \x1b[1mnumber\x1b[0m {i}\x1b]2;x\x07\r\n").as_bytes());
        }
        assert_eq!(c.lines.get(3).map(String::as_str), Some("line number 3"));
        assert!(c.search("NUMBER 3"));
        assert!(c.scrolled() > 0);
        c.resize(3, 20);
        assert!(c.parser.screen().contents().contains("line number 19"));
    }
}
