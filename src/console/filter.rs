//! Guest console output is untrusted. Passed to a host terminal as is, it
//! could set the window title, write the clipboard (OSC 52), or make the
//! terminal answer with text that lands in a shell. The filter drops every
//! OSC, DCS, APC, PM and SOS string and the window-manipulation CSI (`t`),
//! and passes ordinary text, colours and cursor control through.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum State {
    #[default]
    Ground,
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
                State::Ground => {
                    if b == 0x1b {
                        State::Escape
                    } else {
                        out.push(b);
                        State::Ground
                    }
                }
                State::Escape => match b {
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
                State::Csi => {
                    self.csi.push(b);
                    if (0x40..=0x7e).contains(&b) {
                        if b == b't' {
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
    fn sequences_split_across_chunks() {
        assert_eq!(
            run(&[b"x\x1b", b"]2;ti", b"tle\x1b", b"\\y"]),
            b"xy".to_vec()
        );
        assert_eq!(run(&[b"\x1b[", b"1;1", b"H"]), b"\x1b[1;1H".to_vec());
    }
}
