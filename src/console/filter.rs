//! Guest console output is untrusted. Passed to a host terminal as is, it
//! could set the window title, write the clipboard (OSC 52), make the
//! terminal answer with text that lands in a shell, or leave it in modes
//! (mouse tracking, bracketed paste, the alternate screen, the line-drawing
//! charset) that outlive the session.
//!
//! The filter is an allow-list, not a deny-list: terminals keep growing
//! sequences, and a list of the bad ones is never finished (an adversarial
//! pass found a dozen a deny-list let through). Only these reach the output:
//!
//! - text as valid UTF-8, without the C1 code points U+0080–U+009F (some
//!   terminals obey them as 8-bit CSI/OSC); invalid bytes, raw 8-bit C1
//!   among them, are dropped;
//! - the C0 controls BS, HT, LF and CR (not BEL, ENQ, SO, SI, …);
//! - SGR (`CSI … m`, digits, `;` and `:` only);
//! - cursor movement within the screen: ``CSI n A/B/C/D/E/F/G/d/e/a/` ``,
//!   `CSI r;c H/f`, `ESC 7`, `ESC 8`, bare `CSI s` and `CSI u`, `ESC D`,
//!   `ESC E`, `ESC M`;
//! - erase and edit: `CSI n J/K` (0–2: `CSI 3 J` would wipe the operator's
//!   own scrollback), `CSI n X/P/@/L/M`;
//! - the scroll region `CSI t;b r` and scrolling `CSI n S/T`.
//!
//! Everything else is dropped whole: every OSC/DCS/APC/PM/SOS string up to
//! its terminator, every other CSI (any private marker `<=>?`, intermediate
//! byte or parameter above 9999), every other ESC sequence (charset
//! designations, `ESC Z`, `ESC c`, keypad modes, …).

/// Longest CSI parameter string buffered; a longer CSI is dropped whole.
/// Room for an SGR with two 24-bit colours and a few attributes.
const MAX_PARAMS: usize = 64;
/// Largest numeric parameter passed: no screen is this big, and a huge
/// count only makes a terminal loop.
const MAX_NUMBER: u32 = 9999;

const ESC: u8 = 0x1b;

/// Bytes that pass as they are from the ground state: printable ASCII and
/// BS, HT, LF, CR.
const PLAIN: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0x20;
    while b < 0x7f {
        t[b] = true;
        b += 1;
    }
    t[0x08] = true;
    t[0x09] = true;
    t[0x0a] = true;
    t[0x0d] = true;
    t
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum State {
    #[default]
    Ground,
    /// Inside a UTF-8 character: `need` more bytes, the next one in
    /// `lo..=hi` (so overlong forms and surrogates are refused early).
    Utf8 {
        need: u8,
        lo: u8,
        hi: u8,
    },
    Escape,
    /// `ESC` and intermediate bytes (`ESC ( 0`, `ESC # 8`, …): dropped at
    /// the final byte.
    EscIntermediate,
    Csi,
    /// A CSI already too long to keep: consumed to its final byte.
    CsiTooLong,
    /// Inside a dropped string; `osc` strings may also end with BEL.
    Str {
        osc: bool,
    },
    /// ESC inside a dropped string: `\` ends it, anything else ends it and
    /// starts a new escape sequence.
    StrEscape {
        osc: bool,
    },
}

/// A streaming filter: feed it chunks in order; sequences and UTF-8
/// characters may span chunks. Memory is bounded: at most `MAX_PARAMS`
/// bytes of a pending CSI and 4 of a UTF-8 character are held.
#[derive(Debug, Default)]
pub struct EscapeFilter {
    state: State,
    /// The pending UTF-8 character's bytes so far.
    utf8: [u8; 4],
    utf8_len: usize,
    /// The pending CSI's parameter and intermediate bytes.
    csi: Vec<u8>,
    dropped: u64,
}

impl EscapeFilter {
    pub fn new() -> Self {
        Self::default()
    }

    /// How many sequences, control characters and invalid bytes have been
    /// dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Filter `input`, appending what is allowed to `out`.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) {
        out.reserve(input.len());
        let mut i = 0;
        while i < input.len() {
            if self.state == State::Ground {
                // Printable ASCII and line controls are nearly all of a
                // console: copy them in runs.
                let run = input[i..]
                    .iter()
                    .position(|&b| !PLAIN[usize::from(b)])
                    .unwrap_or(input.len() - i);
                out.extend_from_slice(&input[i..i + run]);
                i += run;
                if i == input.len() {
                    break;
                }
            }
            if self.step(input[i], out) {
                i += 1;
            }
        }
    }

    /// One byte through the state machine. Returns false when the byte
    /// ended a sequence without belonging to it and must be looked at
    /// again in the new state (which is then Ground or Escape, so this
    /// cannot repeat forever).
    fn step(&mut self, b: u8, out: &mut Vec<u8>) -> bool {
        match self.state {
            State::Ground => self.ground(b, out),
            State::Utf8 { need, lo, hi } => {
                if !(lo..=hi).contains(&b) {
                    self.drop_to(State::Ground);
                    return false;
                }
                self.utf8[self.utf8_len] = b;
                self.utf8_len += 1;
                if need > 1 {
                    self.state = State::Utf8 {
                        need: need - 1,
                        lo: 0x80,
                        hi: 0xbf,
                    };
                } else if self.utf8[0] == 0xc2 && b <= 0x9f {
                    // U+0080–U+009F: a C1 control in UTF-8 clothing.
                    self.drop_to(State::Ground);
                } else {
                    out.extend_from_slice(&self.utf8[..self.utf8_len]);
                    self.state = State::Ground;
                }
            }
            State::Escape => match b {
                b'[' => {
                    self.csi.clear();
                    self.state = State::Csi;
                }
                b']' => self.state = State::Str { osc: true },
                b'P' | b'X' | b'^' | b'_' => self.state = State::Str { osc: false },
                // Save/restore cursor, index, next line, reverse index.
                b'7' | b'8' | b'D' | b'E' | b'M' => {
                    out.extend_from_slice(&[ESC, b]);
                    self.state = State::Ground;
                }
                0x20..=0x2f => self.state = State::EscIntermediate,
                _ => return self.inside_sequence(b, out),
            },
            State::EscIntermediate => match b {
                0x20..=0x2f => {}
                _ => return self.inside_sequence(b, out),
            },
            State::Csi | State::CsiTooLong => match b {
                0x20..=0x3f => {
                    if self.state == State::Csi && self.csi.len() < MAX_PARAMS {
                        self.csi.push(b);
                    } else {
                        self.state = State::CsiTooLong;
                    }
                }
                0x40..=0x7e if self.state == State::Csi && csi_allowed(&self.csi, b) => {
                    out.extend_from_slice(&[ESC, b'[']);
                    out.extend_from_slice(&self.csi);
                    out.push(b);
                    self.state = State::Ground;
                }
                _ => return self.inside_sequence(b, out),
            },
            State::Str { osc } => match b {
                0x07 if osc => self.drop_to(State::Ground),
                ESC => self.state = State::StrEscape { osc },
                // CAN and SUB cancel any sequence.
                0x18 | 0x1a => self.drop_to(State::Ground),
                _ => {}
            },
            State::StrEscape { .. } => {
                if b == b'\\' {
                    self.drop_to(State::Ground);
                } else {
                    self.drop_to(State::Escape);
                    return false;
                }
            }
        }
        true
    }

    fn ground(&mut self, b: u8, out: &mut Vec<u8>) {
        // The second byte's range per lead byte, from RFC 3629's grammar.
        let (need, lo, hi) = match b {
            0x08 | 0x09 | 0x0a | 0x0d | 0x20..=0x7e => {
                out.push(b);
                return;
            }
            ESC => {
                self.state = State::Escape;
                return;
            }
            0xc2..=0xdf => (1, 0x80, 0xbf),
            0xe0 => (2, 0xa0, 0xbf),
            0xe1..=0xec | 0xee | 0xef => (2, 0x80, 0xbf),
            0xed => (2, 0x80, 0x9f),
            0xf0 => (3, 0x90, 0xbf),
            0xf1..=0xf3 => (3, 0x80, 0xbf),
            0xf4 => (3, 0x80, 0x8f),
            // Other C0 controls, DEL, lone continuation bytes (raw 8-bit
            // C1 among them) and bytes that never start a character.
            _ => {
                self.dropped += 1;
                return;
            }
        };
        self.utf8[0] = b;
        self.utf8_len = 1;
        self.state = State::Utf8 { need, lo, hi };
    }

    /// A byte that is not part of the escape sequence's grammar at this
    /// point: end the sequence (dropped) the way a terminal would.
    fn inside_sequence(&mut self, b: u8, out: &mut Vec<u8>) -> bool {
        match b {
            // A new ESC abandons the sequence and starts another.
            ESC => self.drop_to(State::Escape),
            // CAN and SUB cancel it.
            0x18 | 0x1a => self.drop_to(State::Ground),
            // Other C0 controls act without ending the sequence.
            0x00..=0x1f => {
                if matches!(b, 0x08 | 0x09 | 0x0a | 0x0d) {
                    out.push(b);
                } else {
                    self.dropped += 1;
                }
            }
            // DEL is ignored inside sequences.
            0x7f => {}
            // A final byte of a sequence that is not allowed.
            0x30..=0x7e => self.drop_to(State::Ground),
            // Not ASCII: the sequence is malformed; the byte is text.
            _ => {
                self.drop_to(State::Ground);
                return false;
            }
        }
        true
    }

    fn drop_to(&mut self, state: State) {
        self.dropped += 1;
        self.state = state;
    }
}

/// Whether `ESC [ params fin` is on the allow-list. `params` holds every
/// byte between `[` and the final byte, so private markers and
/// intermediates show up here as bytes that are not digits or separators.
fn csi_allowed(params: &[u8], fin: u8) -> bool {
    let sgr = fin == b'm';
    if !params
        .iter()
        .all(|&b| b.is_ascii_digit() || b == b';' || (sgr && b == b':'))
    {
        return false;
    }
    // Count the parameters and check each value; J and K need the first.
    let mut count = 0;
    let mut first = 0;
    if !params.is_empty() {
        for p in params.split(|&b| b == b';' || b == b':') {
            // At most MAX_PARAMS digits: no overflow with saturating steps.
            let v = p.iter().fold(0u32, |acc, d| {
                acc.saturating_mul(10).saturating_add(u32::from(d - b'0'))
            });
            if v > MAX_NUMBER {
                return false;
            }
            if count == 0 {
                first = v;
            }
            count += 1;
        }
    }
    match fin {
        b'm' => true,
        // Cursor movement, edits and scrolling: one count each. `CSI … T`
        // with more is xterm's mouse highlight tracking.
        b'A' | b'B' | b'C' | b'D' | b'E' | b'F' | b'G' | b'd' | b'e' | b'a' | b'`' | b'X'
        | b'P' | b'@' | b'L' | b'M' | b'S' | b'T' => count <= 1,
        b'H' | b'f' | b'r' => count <= 2,
        b'J' | b'K' => count <= 1 && first <= 2,
        // With parameters, `s` sets left/right margins.
        b's' | b'u' => count == 0,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(chunks: &[&[u8]]) -> Vec<u8> {
        let mut f = EscapeFilter::new();
        let mut out = Vec::new();
        for c in chunks {
            f.feed(c, &mut out);
        }
        out
    }

    fn one(input: &[u8]) -> Vec<u8> {
        run(&[input])
    }

    /// Each input byte as its own chunk.
    fn bytewise(input: &[u8]) -> Vec<u8> {
        let chunks: Vec<&[u8]> = input.chunks(1).collect();
        run(&chunks)
    }

    const ALLOWED: &[&[u8]] = &[
        b"\x1b[m",
        b"\x1b[0m",
        b"\x1b[1;31m",
        b"\x1b[38;5;208m",
        b"\x1b[38;2;255;128;0;48;2;0;0;0m",
        b"\x1b[38:2::255:128:0m",
        b"\x1b[A",
        b"\x1b[3A",
        b"\x1b[2B",
        b"\x1b[10C",
        b"\x1b[4D",
        b"\x1b[E",
        b"\x1b[2F",
        b"\x1b[5G",
        b"\x1b[H",
        b"\x1b[1;1H",
        b"\x1b[24;80H",
        b"\x1b[;5H",
        b"\x1b[3;4f",
        b"\x1b[7d",
        b"\x1b[2e",
        b"\x1b[3a",
        b"\x1b[9`",
        b"\x1b7",
        b"\x1b8",
        b"\x1b[s",
        b"\x1b[u",
        b"\x1bD",
        b"\x1bE",
        b"\x1bM",
        b"\x1b[J",
        b"\x1b[0J",
        b"\x1b[1J",
        b"\x1b[2J",
        b"\x1b[K",
        b"\x1b[1K",
        b"\x1b[2K",
        b"\x1b[5X",
        b"\x1b[2P",
        b"\x1b[3@",
        b"\x1b[L",
        b"\x1b[2M",
        b"\x1b[r",
        b"\x1b[2;20r",
        b"\x1b[S",
        b"\x1b[3T",
        b"\x1b[9999A",
        b"\x08\t\n\r",
    ];

    /// Sequences that must vanish whole, each with what the adversarial
    /// pass (or plain reasoning) says they would do.
    const DROPPED: &[&[u8]] = &[
        b"\x1bZ",            // DECID: the terminal answers
        b"\x1b[0x",          // DECREQTPARM: answers
        b"\x1b[1$u",         // DECRQTSR: answers
        b"\x1b[?1m",         // private SGR
        b"\x1b[>4m",         // xterm modifyOtherKeys
        b"\x1b[>4;2m",       // ditto, with a value
        b"\x05",             // ENQ: answerback
        b"\x07",             // BEL
        b"\x0e",             // SO: line-drawing charset G1
        b"\x0f",             // SI
        b"\x0b\x0c\x00\x7f", // VT, FF, NUL, DEL
        b"\x9b",             // raw 8-bit CSI
        b"\x9d",             // raw 8-bit OSC
        b"\xc2\x9b",         // U+009B, CSI in UTF-8
        b"\xc2\x90",         // U+0090, DCS in UTF-8
        b"\x1b[?1000h",      // mouse tracking
        b"\x1b[?1002h",
        b"\x1b[?1003h",
        b"\x1b[?1005h",
        b"\x1b[?1006h",
        b"\x1b[?1015h",
        b"\x1b[?1004h", // focus events
        b"\x1b[?2004h", // bracketed paste
        b"\x1b[?1049h", // alternate screen
        b"\x1b[?47h",
        b"\x1b[?1047h",
        b"\x1b[?25l", // hidden cursor
        b"\x1b[?1h",  // application cursor keys
        b"\x1b[4h",   // insert mode
        b"\x1b(0",    // line drawing into G0
        b"\x1b)0",    // line drawing into G1
        b"\x1b(B",    // any designation
        b"\x1b#8",    // DECALN: fills the screen with E
        b"\x1bc",     // full reset
        b"\x1b=",     // keypad application mode
        b"\x1b>",     // keypad numeric mode
        b"\x1bN",     // SS2
        b"\x1b\\",    // a stray ST
        b"\x1b[6n",   // cursor position report
        b"\x1b[5n",   // status report
        b"\x1b[c",    // device attributes
        b"\x1b[>0c",
        b"\x1b[=c",
        b"\x1b[?25$p",      // mode report
        b"\x1b[>q",         // terminal version
        b"\x1b[?u",         // keyboard protocol query
        b"\x1b[>1u",        // keyboard protocol push
        b"\x1b[<u",         // keyboard protocol pop
        b"\x1b[=1;1u",      // keyboard protocol set
        b"\x1b[1;2u",       // `u` takes no parameters here
        b"\x1b[1;80s",      // left/right margins
        b"\x1b[8;100;200t", // window manipulation
        b"\x1b[2 q",        // cursor style (intermediate)
        b"\x1b[0\"q",       // DECSCA
        b"\x1b[!p",         // soft reset
        b"\x1b[3J",         // wipes the operator's scrollback
        b"\x1b[1;2J",       // two parameters
        b"\x1b[5;5;5;5;5T", // mouse highlight tracking
        b"\x1b[1;2;3H",     // three coordinates
        b"\x1b[1;2A",       // two counts
        b"\x1b[10000A",     // a count too big
        b"\x1b[99999;99999H",
        b"\x1b[4294967296A",       // past u32
        b"\x1b[1:2A",              // `:` only in SGR
        b"\x1b[2b",                // REP: not on the list
        b"\x1b[5I",                // tab forward: not on the list
        b"\x1b]0;title\x07",       // OSC title, BEL-terminated
        b"\x1b]2;title\x1b\\",     // OSC title, ST-terminated
        b"\x1b]52;c;ZXZpbA==\x07", // clipboard write
        b"\x1bP+q544e\x1b\\",      // DCS: XTGETTCAP
        b"\x1b_payload\x1b\\",     // APC
        b"\x1b^privacy\x1b\\",     // PM
        b"\x1bXstring\x1b\\",      // SOS
    ];

    #[test]
    fn allowed_sequences_pass_unchanged() {
        for &seq in ALLOWED {
            let input = [b"<", seq, b">"].concat();
            assert_eq!(one(&input), input, "{:?}", String::from_utf8_lossy(seq));
            assert_eq!(bytewise(&input), input, "{seq:?} byte by byte");
        }
    }

    #[test]
    fn forbidden_sequences_are_dropped_whole() {
        for &seq in DROPPED {
            let input = [b"<", seq, b">"].concat();
            assert_eq!(one(&input), b"<>", "{:?}", String::from_utf8_lossy(seq));
            assert_eq!(bytewise(&input), b"<>", "{seq:?} byte by byte");
            let mut f = EscapeFilter::new();
            f.feed(&input, &mut Vec::new());
            assert!(f.dropped() > 0, "{seq:?} counted");
        }
    }

    #[test]
    fn the_old_mixed_stream_keeps_text_and_colour() {
        let input: &[u8] = b"a\x1b]0;pwned\x07b\x1b]52;c;ZXZpbA==\x1b\\c\x1bP+q544e\x1b\\d\x1b[31mred\x1b[0m\x1b[8;100;200te";
        assert_eq!(one(input), b"abcd\x1b[31mred\x1b[0me");
    }

    #[test]
    fn nested_escapes_cannot_smuggle_an_osc() {
        for input in [
            &b"a\x1b\x1b]0;title\x07b"[..],
            b"a\x1b[\x1b]52;c;ZXZpbA==\x07b",
            b"a\x1b[1;\x1b]2;t\x1b\\b",
            b"a\x1b(\x1b]2;t\x07b",
            b"a\xc2\x9d0;title\x07b",
            b"a\xc2\x9b31mb",
            b"a\x9b31mb",
            b"a\x1b]0;t\x1b\x1b]0;u\x07b",
        ] {
            let out = one(input);
            assert!(
                !out.windows(2).any(|w| w == b"\x1b]"),
                "{input:?} -> {out:?}"
            );
            assert!(std::str::from_utf8(&out).is_ok(), "{input:?} -> {out:?}");
            assert!(
                out.starts_with(b"a") && out.ends_with(b"b"),
                "{input:?} -> {out:?}"
            );
        }
    }

    #[test]
    fn an_interrupted_sequence_gives_way_to_the_next() {
        // ESC inside a sequence starts a new one; CAN cancels.
        assert_eq!(one(b"\x1b[12\x1b[31mx"), b"\x1b[31mx");
        assert_eq!(one(b"\x1b(\x1b7x"), b"\x1b7x");
        assert_eq!(one(b"\x1b]0;t\x1b[1mx"), b"\x1b[1mx");
        assert_eq!(one(b"\x1b[1\x18x"), b"x");
        assert_eq!(one(b"\x1b]0;t\x1ax"), b"x");
        // C0 controls inside a sequence act, as a terminal's would.
        assert_eq!(one(b"\x1b[1\r\x07;2H"), b"\r\x1b[1;2H");
        // Non-ASCII ends a sequence and is text.
        assert_eq!(one("\x1b[1é".as_bytes()), "é".as_bytes());
        assert_eq!(one("\x1bé".as_bytes()), "é".as_bytes());
    }

    #[test]
    fn utf8_is_kept_whole_and_invalid_bytes_are_dropped() {
        let text = "°C é ✓ 𝄞 ß";
        assert_eq!(one(text.as_bytes()), text.as_bytes());
        assert_eq!(bytewise(text.as_bytes()), text.as_bytes());
        for (input, want) in [
            (&b"a\x80b"[..], &b"ab"[..]),       // lone continuation
            (b"a\xc3b", b"ab"),                 // truncated
            (b"a\xc0\xafb", b"ab"),             // overlong '/'
            (b"a\xe0\x80\xafb", b"ab"),         // overlong, 3 bytes
            (b"a\xed\xa0\x80b", b"ab"),         // surrogate
            (b"a\xf4\x90\x80\x80b", b"ab"),     // above U+10FFFF
            (b"a\xf8\x88\x80\x80\x80b", b"ab"), // 5-byte form
            (b"a\xff\xfeb", b"ab"),
            (b"a\xe2\x9c\x1b[1mb", b"a\x1b[1mb"), // cut by ESC
            (b"\xe2\x9c\x93\xc2\xa0\xc2\x85", "✓\u{a0}".as_bytes()), // NEL dropped
        ] {
            assert_eq!(one(input), want, "{input:?}");
            assert_eq!(bytewise(input), want, "{input:?} byte by byte");
        }
    }

    #[test]
    fn sequences_and_characters_split_across_chunks() {
        assert_eq!(run(&[b"x\x1b", b"]2;ti", b"tle\x1b", b"\\y"]), b"xy");
        assert_eq!(run(&[b"\x1b[", b"1;1", b"H"]), b"\x1b[1;1H");
        assert_eq!(run(&[b"\x1b[?", b"1049", b"h"]), b"");
        assert_eq!(run(&[b"\x1b(", b"0q"]), b"q");
        assert_eq!(run(&[b"a\xe2", b"\x9c", b"\x93b"]), "a✓b".as_bytes());
        assert_eq!(run(&[b"a\xc2", b"\x9bb"]), b"ab");
        assert_eq!(run(&[b"\xf0\x9d", b"\x84\x9e"]), "𝄞".as_bytes());
    }

    #[test]
    fn an_overlong_sequence_is_dropped_whole_with_bounded_memory() {
        let mut input = b"a\x1b[".to_vec();
        input.extend(std::iter::repeat_n(b'1', 10_000));
        input.extend_from_slice(b"mb");
        let mut f = EscapeFilter::new();
        let mut out = Vec::new();
        for c in input.chunks(100) {
            f.feed(c, &mut out);
            assert!(f.csi.len() <= MAX_PARAMS);
        }
        assert_eq!(out, b"ab");
        // Within the cap, a long SGR passes.
        let sgr = [b"\x1b[", "1;".repeat(31).as_bytes(), b"1m"].concat();
        assert_eq!(one(&sgr), sgr);
    }

    /// What may follow ESC in the output, written independently of the
    /// filter's state machine.
    fn allowed_escape() -> regex::bytes::Regex {
        regex::bytes::Regex::new(
            r"(?-u)^\x1b(?:[78DEM]|\[(?:[0-9;:]*m|[0-9]*[ABCDEFGdea`XP@LMST]|[0-9]*(?:;[0-9]*)?[Hfr]|0*[012]?[JK]|[su]))",
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn check_output(out: &[u8], re: &regex::bytes::Regex) -> Result<(), String> {
        let text = std::str::from_utf8(out).map_err(|e| format!("not UTF-8: {e}"))?;
        if let Some(c) = text.chars().find(|c| ('\u{80}'..='\u{9f}').contains(c)) {
            return Err(format!("C1 {c:?}"));
        }
        for (i, &b) in out.iter().enumerate() {
            match b {
                ESC if !re.is_match(&out[i..]) => {
                    return Err(format!("ESC at {i}: {:?}", &out[i..]));
                }
                0x00..=0x1f if !matches!(b, 0x08 | 0x09 | 0x0a | 0x0d | ESC) => {
                    return Err(format!("control {b:#x} at {i}"));
                }
                0x7f => return Err(format!("DEL at {i}")),
                _ => {}
            }
        }
        Ok(())
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        /// Bytes biased towards what builds escape sequences.
        fn piece() -> impl Strategy<Value = Vec<u8>> {
            prop_oneof![
                prop::sample::select(vec![
                    &b"\x1b"[..],
                    b"\x1b[",
                    b"\x1b[?",
                    b"\x1b]",
                    b"\x1b(",
                    b"[",
                    b"]",
                    b"?",
                    b">",
                    b"=",
                    b"<",
                    b";",
                    b":",
                    b"$",
                    b" ",
                    b"(",
                    b")",
                    b"#",
                    b"\\",
                    b"\x07",
                    b"\x18",
                    b"\x9b",
                    b"\x9c",
                    b"\xc2",
                    b"\xe2\x9c",
                    b"\x0e",
                    b"\x0f",
                    b"\x05",
                    b"\r\n",
                    b"1",
                    b"0",
                    b"1049",
                    b"99999",
                    b"h",
                    b"l",
                    b"m",
                    b"H",
                    b"J",
                    b"u",
                    b"x",
                ])
                .prop_map(<[u8]>::to_vec),
                any::<u8>().prop_map(|b| vec![b]),
                (0x40u8..0x7f).prop_map(|b| vec![b]),
                "[a-z°é✓]{1,4}".prop_map(String::into_bytes),
            ]
        }

        fn stream() -> impl Strategy<Value = (Vec<u8>, Vec<usize>)> {
            (
                prop::collection::vec(piece(), 0..200).prop_map(|v| v.concat()),
                prop::collection::vec(1usize..20, 1..20),
            )
        }

        proptest! {
            #[test]
            fn output_holds_only_allowed_sequences((input, cuts) in stream()) {
                let re = allowed_escape();
                let whole = one(&input);
                prop_assert_eq!(check_output(&whole, &re), Ok(()));
                // The same bytes in other chunks give the same output.
                let mut chunks = Vec::new();
                let mut rest = &input[..];
                for &n in cuts.iter().cycle() {
                    if rest.is_empty() {
                        break;
                    }
                    let (a, b) = rest.split_at(n.min(rest.len()));
                    chunks.push(a);
                    rest = b;
                }
                prop_assert_eq!(&run(&chunks), &whole);
                // What passed once passes again unchanged.
                prop_assert_eq!(one(&whole), whole);
            }
        }
    }
}
