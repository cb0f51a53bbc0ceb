//! Guest console output is untrusted. Passed to a host terminal as is, it
//! could set the window title, write the clipboard (OSC 52), or make the
//! terminal answer with text that lands in a shell. The filter drops every
//! OSC, DCS, APC, PM and SOS string, the window-manipulation CSI (`t`), the
//! CSIs that make the terminal answer (status, attribute and mode queries)
//! and UTF-8 encoded C1 controls (U+0080–U+009F, which some terminals obey
//! as 8-bit CSI/OSC), and passes ordinary text, colours and cursor control.

/// A CSI (parameters and final byte) that makes the terminal answer on its
/// input: device status and cursor position reports (`n`), device
/// attributes (`c`), mode reports (`$p`), the terminal's version (`>q`) and
/// keyboard-protocol queries (`?u`). An answer is typed text: it would reach
/// the guest, or the host's shell once the console has been left.
fn is_query(csi: &[u8]) -> bool {
    let (Some(&last), first) = (csi.last(), csi.first().copied()) else {
        return false;
    };
    let params = &csi[..csi.len() - 1];
    match last {
        b'n' | b'c' => true,
        b'p' => params.contains(&b'$'),
        b'q' => first == Some(b'>'),
        b'u' => first == Some(b'?'),
        _ => false,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum State {
    #[default]
    Ground,
    /// Saw 0xC2, the first byte of a UTF-8 encoded C1 control.
    C2,
    Escape,
    Csi,
    /// Inside a dropped string; `osc` strings may also end with BEL.
    Str {
        osc: bool,
    },
    /// Saw ESC inside a dropped string: `\` ends it.
    StrEscape {
        osc: bool,
    },
}

/// A streaming filter: feed it chunks in order; sequences may span chunks.
#[derive(Debug, Default)]
pub struct EscapeFilter {
    state: State,
    csi: Vec<u8>,
    dropped: u64,
}

const MAX_CSI: usize = 64;

impl EscapeFilter {
    pub fn new() -> Self {
        Self::default()
    }

    /// How many escape sequences have been dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Filter `input`, appending what is safe to `out`.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) {
        for &b in input {
            self.state = match self.state {
                State::Ground => match b {
                    0x1b => State::Escape,
                    0xc2 => State::C2,
                    _ => {
                        out.push(b);
                        State::Ground
                    }
                },
                State::C2 => {
                    if (0x80..=0x9f).contains(&b) {
                        self.dropped += 1;
                        State::Ground
                    } else if b == 0x1b {
                        out.push(0xc2);
                        State::Escape
                    } else {
                        out.extend_from_slice(&[0xc2, b]);
                        State::Ground
                    }
                }
                State::Escape => match b {
                    // ESC ESC: the first one starts nothing; look at the next.
                    0x1b => State::Escape,
                    // CAN and SUB cancel a sequence.
                    0x18 | 0x1a => State::Ground,
                    b']' => State::Str { osc: true },
                    b'P' | b'_' | b'^' | b'X' => State::Str { osc: false },
                    b'[' => {
                        self.csi.clear();
                        State::Csi
                    }
                    _ => {
                        out.extend_from_slice(&[0x1b, b]);
                        State::Ground
                    }
                },
                State::Csi if b == 0x1b => {
                    // ESC aborts the CSI and may start something else.
                    self.dropped += 1;
                    State::Escape
                }
                State::Csi if b == 0x18 || b == 0x1a => {
                    self.dropped += 1;
                    State::Ground
                }
                State::Csi => {
                    self.csi.push(b);
                    if (0x40..=0x7e).contains(&b) {
                        if b == b't' || is_query(&self.csi) {
                            self.dropped += 1;
                        } else {
                            out.extend_from_slice(b"\x1b[");
                            out.extend_from_slice(&self.csi);
                        }
                        State::Ground
                    } else if self.csi.len() > MAX_CSI {
                        // Not a sane CSI: drop it rather than buffer forever.
                        self.dropped += 1;
                        State::Ground
                    } else {
                        State::Csi
                    }
                }
                State::Str { osc } => match b {
                    0x07 if osc => {
                        self.dropped += 1;
                        State::Ground
                    }
                    0x1b => State::StrEscape { osc },
                    _ => State::Str { osc },
                },
                State::StrEscape { osc } => {
                    if b == b'\\' {
                        self.dropped += 1;
                        State::Ground
                    } else {
                        State::Str { osc }
                    }
                }
            };
        }
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

    #[test]
    fn drops_title_clipboard_and_dcs_keeps_text_and_colour() {
        let input: &[u8] = b"a\x1b]0;pwned\x07b\x1b]52;c;ZXZpbA==\x1b\\c\x1bP+q544e\x1b\\d\x1b[31mred\x1b[0m\x1b[8;100;200te";
        assert_eq!(run(&[input]), b"abcd\x1b[31mred\x1b[0me".to_vec());
    }

    #[test]
    fn queries_the_terminal_would_answer_are_dropped() {
        // busybox's shell asks for the cursor position (ESC[6n) at every
        // prompt; the answer would be typed into whatever has the input.
        let input: &[u8] = b"a\x1b[6nb\x1b[5nc\x1b[cd\x1b[>0ce\x1b[?25$pf\x1b[>qg\x1b[?uh";
        assert_eq!(run(&[input]), b"abcdefgh".to_vec());
        // Look-alikes that only draw are kept: cursor style, restore cursor.
        let keep: &[u8] = b"\x1b[2 qx\x1b[uy\x1b[1;2Hz";
        assert_eq!(run(&[keep]), keep.to_vec());
    }

    #[test]
    fn nested_escapes_cannot_smuggle_an_osc() {
        // ESC ESC ] … and ESC [ ESC ] … must not leave an OSC behind.
        for input in [
            &b"a\x1b\x1b]0;title\x07b"[..],
            b"a\x1b[\x1b]52;c;ZXZpbA==\x07b",
            b"a\x1b[1;\x1b]2;t\x1b\\b",
            b"a\xc2\x9d0;title\x07b",
            b"a\xc2\x9b31mb",
        ] {
            let out = run(&[input]);
            assert!(
                !out.windows(2).any(|w| w == b"\x1b]"),
                "{input:?} -> {out:?}"
            );
            assert!(
                !out.windows(2)
                    .any(|w| w[0] == 0xc2 && (0x80..=0x9f).contains(&w[1])),
                "{input:?} -> {out:?}"
            );
            assert!(
                out.starts_with(b"a") && out.ends_with(b"b"),
                "{input:?} -> {out:?}"
            );
        }
        // Ordinary UTF-8 with a 0xC2 lead byte still passes.
        assert_eq!(run(&["°C é".as_bytes()]), "°C é".as_bytes().to_vec());
    }

    #[test]
    fn sequences_split_across_chunks() {
        assert_eq!(
            run(&[b"x\x1b", b"]2;ti", b"tle\x1b", b"\\y"]),
            b"xy".to_vec()
        );
        assert_eq!(run(&[b"\x1b[", b"1;1", b"H"]), b"\x1b[1;1H".to_vec());
    }
}
