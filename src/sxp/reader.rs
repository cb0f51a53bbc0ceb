use super::node::{Node, NodeKind, Pos};

/// A syntax error with the position it was found at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{pos}: {message}")]
pub struct ParseError {
    pub pos: Pos,
    pub message: String,
}

/// Something the reader accepted as xend did but that may not mean what
/// it looks like (an unknown escape, a hex letter in `\x`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadWarning {
    pub pos: Pos,
    pub message: String,
}

/// Parse exactly one S-expression (comments and white space around it allowed).
pub fn parse(text: &str) -> Result<Node, ParseError> {
    parse_with_warnings(text).map(|(n, _)| n)
}

/// [`parse`], with what the reader warns about.
pub fn parse_with_warnings(text: &str) -> Result<(Node, Vec<ReadWarning>), ParseError> {
    let mut reader = Reader::new(text);
    reader.skip_blank();
    if reader.peek().is_none() {
        return Err(reader.error_here("empty config: expected (vm ...)"));
    }
    let node = reader.node()?;
    reader.skip_blank();
    if let (Some(word), Some(_)) = (node.atom(), reader.peek()) {
        // Stray text before the config: say so where it is.
        return Err(ParseError {
            pos: node.pos,
            message: format!(
                "unexpected text \"{}\" before the config (expected it to start with '(')",
                crate::fsx::excerpt(word, 60)
            ),
        });
    }
    if reader.peek().is_some() {
        return Err(reader.error_here(
            "unexpected text after the end of the first expression (one config per file)",
        ));
    }
    Ok((node, reader.warnings))
}

/// Parse every top-level S-expression in the text.
pub fn parse_all(text: &str) -> Result<Vec<Node>, ParseError> {
    let mut reader = Reader::new(text);
    let mut nodes = Vec::new();
    loop {
        reader.skip_blank();
        if reader.peek().is_none() {
            return Ok(nodes);
        }
        nodes.push(reader.node()?);
    }
}

/// Characters that end an atom in xend's dialect besides white space, `(`,
/// `)` and `#`. As in xend's `sxp.py` they only *end* one: at the start of
/// a token they begin a new atom (`[e]` reads as `[e` and `]`).
fn is_separator(c: char) -> bool {
    matches!(c, '{' | '}' | '<' | '>' | '[' | ']' | ';')
}

/// What ends a bare atom.
fn ends_atom(c: char) -> bool {
    c.is_whitespace() || matches!(c, '(' | ')' | '#') || is_separator(c) || c.is_control()
}

/// Deeper nesting than any config needs; the limit keeps a hostile file
/// from exhausting the stack.
const MAX_DEPTH: usize = 256;

/// More items in one list than any config needs: a wider list is refused,
/// so nothing built from it (a linked list, its drop) grows without bound.
pub const MAX_ITEMS: usize = 4096;

struct Reader<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    line: u32,
    col: u32,
    depth: usize,
    warnings: Vec<ReadWarning>,
}

impl<'a> Reader<'a> {
    fn new(text: &'a str) -> Self {
        Reader {
            chars: text.chars().peekable(),
            line: 1,
            col: 1,
            depth: 0,
            warnings: Vec::new(),
        }
    }

    fn pos(&self) -> Pos {
        Pos {
            line: self.line,
            col: self.col,
        }
    }

    fn peek(&mut self) -> Option<char> {
        self.chars.peek().copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.chars.next()?;
        if c == '\n' {
            self.line += 1;
            self.col = 1;
        } else {
            self.col += 1;
        }
        Some(c)
    }

    fn error_here(&self, message: impl Into<String>) -> ParseError {
        ParseError {
            pos: self.pos(),
            message: message.into(),
        }
    }

    fn warn(&mut self, pos: Pos, message: String) {
        self.warnings.push(ReadWarning { pos, message });
    }

    /// Skip white space and `#` comments.
    fn skip_blank(&mut self) {
        while let Some(c) = self.peek() {
            if c.is_whitespace() {
                self.bump();
            } else if c == '#' {
                while let Some(c) = self.bump() {
                    if c == '\n' {
                        break;
                    }
                }
            } else {
                break;
            }
        }
    }

    fn node(&mut self) -> Result<Node, ParseError> {
        let pos = self.pos();
        match self.peek() {
            Some('(') => self.list(pos),
            Some(q @ ('"' | '\'')) => {
                self.bump();
                let s = self.quoted(q, pos)?;
                Ok(Node {
                    pos,
                    kind: NodeKind::Atom(s),
                })
            }
            Some(')') => Err(self.error_here("unexpected ')' with no matching '('")),
            Some(c) if c.is_control() => Err(self.error_here(format!(
                "unexpected control character U+{:04X}",
                u32::from(c)
            ))),
            Some(_) => Ok(Node {
                pos,
                kind: NodeKind::Atom(self.bare_atom()),
            }),
            None => Err(self.error_here("unexpected end of file")),
        }
    }

    fn list(&mut self, open: Pos) -> Result<Node, ParseError> {
        if self.depth >= MAX_DEPTH {
            return Err(self.error_here(format!("lists nested deeper than {MAX_DEPTH} levels")));
        }
        self.depth += 1;
        let result = self.list_items(open);
        self.depth -= 1;
        result
    }

    fn list_items(&mut self, open: Pos) -> Result<Node, ParseError> {
        self.bump();
        let mut items = Vec::new();
        loop {
            self.skip_blank();
            match self.peek() {
                None => {
                    // Point at the '(' itself: that is where the operator looks.
                    return Err(ParseError {
                        pos: open,
                        message: "'(' is never closed (the file ends first)".into(),
                    });
                }
                Some(')') => {
                    self.bump();
                    return Ok(Node {
                        pos: open,
                        kind: NodeKind::List(items),
                    });
                }
                Some(_) if items.len() >= MAX_ITEMS => {
                    return Err(ParseError {
                        pos: open,
                        message: format!(
                            "a list of more than {MAX_ITEMS} items (no config needs so many)"
                        ),
                    });
                }
                Some(_) => items.push(self.node()?),
            }
        }
    }

    /// A bare atom: its first character is anything that starts a token
    /// (a separator included); it ends before white space, a parenthesis,
    /// `#` or a separator. Quotes inside it are literal, as in xend.
    fn bare_atom(&mut self) -> String {
        let mut s = String::new();
        if let Some(first) = self.bump() {
            s.push(first);
        }
        while let Some(c) = self.peek() {
            if ends_atom(c) {
                break;
            }
            s.push(c);
            self.bump();
        }
        s
    }

    fn quoted(&mut self, quote: char, open: Pos) -> Result<String, ParseError> {
        let mut s = String::new();
        loop {
            let esc_pos = self.pos();
            match self.bump() {
                None => {
                    return Err(ParseError {
                        pos: open,
                        message: "unterminated string: no closing quote".into(),
                    });
                }
                Some(c) if c == quote => return Ok(s),
                Some('\\') => self.escape(esc_pos, &mut s)?,
                Some(c) => s.push(c),
            }
        }
    }

    /// One escape after `\`, as xend's `sxp.py` read it, quirks included.
    fn escape(&mut self, pos: Pos, s: &mut String) -> Result<(), ParseError> {
        let bad = |what: String| ParseError {
            pos,
            message: format!("invalid escape {what} in string"),
        };
        let c = self
            .bump()
            .ok_or_else(|| bad("'\\' at end of file".into()))?;
        let decoded = match c {
            'n' => '\n',
            't' => '\t',
            'r' => '\r',
            'b' => '\u{8}',
            'f' => '\u{c}',
            'v' => '\u{b}',
            'a' => '\u{7}',
            '\\' | '\'' | '"' => c,
            'x' => {
                let mut code = 0u32;
                let mut letter = false;
                for _ in 0..2 {
                    let Some(d) = self.peek().filter(char::is_ascii_hexdigit) else {
                        // xend crashed here; an error is kinder.
                        return Err(bad("'\\x' (expected two hex digits)".into()));
                    };
                    self.bump();
                    // xend counted the letters a-f as 0-5 (a bug every xend
                    // config was read with): kept, and said.
                    let v = match d.to_digit(10) {
                        Some(v) => v,
                        None => {
                            letter = true;
                            u32::from(d.to_ascii_lowercase() as u8 - b'a')
                        }
                    };
                    code = code * 16 + v;
                }
                let ch = char::from_u32(code).unwrap_or('\u{fffd}');
                if letter {
                    self.warn(
                        pos,
                        format!(
                            "a hex escape with a letter reads as xend read it ({}), not as its hex value; write an octal escape to be sure",
                            shown_char(ch)
                        ),
                    );
                }
                ch
            }
            '0'..='7' => {
                let mut code = c.to_digit(8).unwrap_or(0);
                for _ in 0..2 {
                    match self.peek().and_then(|d| d.to_digit(8)) {
                        Some(d) => {
                            self.bump();
                            code = code * 8 + d;
                        }
                        None => break,
                    }
                }
                if code > 0xff {
                    return Err(bad(format!("'\\{code:o}' (octal escapes stop at \\377)")));
                }
                char::from_u32(code).unwrap_or('\u{fffd}')
            }
            other => {
                // xend kept the backslash and dropped the character.
                self.warn(
                    pos,
                    format!(
                        "unknown escape '\\{}' reads as a lone backslash, as xend read it (the {} is dropped); write '\\\\' for a backslash",
                        shown_char(other),
                        shown_char(other)
                    ),
                );
                '\\'
            }
        };
        s.push(decoded);
        Ok(())
    }
}

/// A character as a message may show it: printable as itself, else its
/// code point (no raw newline or escape in a one-line message).
fn shown_char(c: char) -> String {
    if c.is_control() {
        format!("U+{:04X}", u32::from(c))
    } else {
        c.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn atom(s: &str) -> String {
        parse(s)
            .map(|n| n.atom().unwrap_or_default().to_string())
            .unwrap_or_else(|e| e.to_string())
    }

    #[test]
    fn atoms_and_quotes() {
        assert_eq!(atom("web1"), "web1");
        assert_eq!(atom("'pv test'"), "pv test");
        assert_eq!(atom(r#""a\tb\x41\101\'""#), "a\tbAA'");
        assert_eq!(atom("phy:/dev/sdb"), "phy:/dev/sdb");
    }

    #[test]
    fn positions_are_one_based_line_and_column() {
        let n = parse("# comment\n(vm\n  (name web1))").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(n.pos, Pos { line: 2, col: 1 });
        let name = &n.children()[0];
        assert_eq!(name.pos, Pos { line: 3, col: 3 });
        assert_eq!(name.children()[0].pos, Pos { line: 3, col: 9 });
    }

    #[test]
    fn attributes_are_skipped_by_children_and_readable() {
        let n =
            parse("(vif (@ (id eth0)) (mac 00:16:3e:00:00:01))").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(n.attribute("id"), Some("eth0"));
        assert_eq!(n.children().len(), 1);
        assert_eq!(
            n.child_value("mac").and_then(Node::atom),
            Some("00:16:3e:00:00:01")
        );
    }

    fn atoms(s: &str) -> Vec<String> {
        parse(s)
            .unwrap_or_else(|e| panic!("{e}"))
            .list()
            .unwrap_or_default()
            .iter()
            .map(|n| n.atom().unwrap_or("()").to_string())
            .collect()
    }

    /// Tokens as xend's reader split them (checked against sxp.py).
    #[test]
    fn separators_end_atoms_and_start_new_ones() {
        assert_eq!(
            atoms("(a;b c{d} [e])"),
            ["a", ";b", "c", "{d", "}", "[e", "]"]
        );
        assert_eq!(atoms("(abc\"def\" w!)"), ["abc\"def\"", "w!"]);
        assert_eq!(atoms("(a#b\n c)"), ["a", "c"]);
    }

    /// xend's escapes, quirks included, with a warning where the text
    /// does not mean what it looks like.
    #[test]
    fn escapes_read_as_xend_read_them() {
        let read = |s: &str| parse_with_warnings(s).unwrap_or_else(|e| panic!("{e}"));
        let (n, w) = read(r#""a\qb""#);
        assert_eq!(n.atom(), Some("a\\b"));
        assert_eq!(w.len(), 1);
        assert!(!w[0].message.contains('\n'));
        let (n, w) = read("\"x\\\ny\"");
        assert_eq!(n.atom(), Some("x\\y"));
        assert!(w[0].message.contains("U+000A"), "{w:?}");
        assert_eq!(read(r#""\x41""#).0.atom(), Some("A"));
        let (n, w) = read(r#""\x4a""#);
        assert_eq!(n.atom(), Some("@"));
        assert_eq!(w.len(), 1);
        assert_eq!(read(r#""\101x\1""#).0.atom(), Some("Ax\u{1}"));
        assert!(read(r#""a\tb""#).1.is_empty());
    }

    #[test]
    fn a_list_too_wide_is_an_error_not_a_crash() {
        let text = format!("(vm {})", "x ".repeat(100_000));
        let err = parse(&text).err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("1:1: a list of more than 4096 items (no config needs so many)")
        );
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let text = "(".repeat(100_000);
        let err = parse(&text).err().map(|e| e.message);
        assert_eq!(err.as_deref(), Some("lists nested deeper than 256 levels"));
    }

    #[test]
    fn stray_text_before_the_config_is_placed_where_it_is() {
        let err = parse("oops\n(vm\n (name a))").err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("1:1: unexpected text \"oops\" before the config (expected it to start with '(')")
        );
    }

    #[test]
    fn errors_name_the_position() {
        assert_eq!(
            parse("(vm\n (name web1)").unwrap_err().to_string(),
            "1:1: '(' is never closed (the file ends first)"
        );
        assert_eq!(
            parse("(vm))").unwrap_err().to_string(),
            "1:5: unexpected text after the end of the first expression (one config per file)"
        );
        assert_eq!(
            parse("(vm (name \"x))").unwrap_err().to_string(),
            "1:11: unterminated string: no closing quote"
        );
        assert_eq!(
            parse("(a \"\\777\")").unwrap_err().to_string(),
            "1:5: invalid escape '\\777' (octal escapes stop at \\377) in string"
        );
        assert_eq!(
            parse("(a \"\\x4g\")").unwrap_err().to_string(),
            "1:5: invalid escape '\\x' (expected two hex digits) in string"
        );
    }
}
