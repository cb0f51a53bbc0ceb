use super::node::{Node, NodeKind, Pos};

/// A syntax error with the position it was found at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{pos}: {message}")]
pub struct ParseError {
    pub pos: Pos,
    pub message: String,
}

/// Parse exactly one S-expression (comments and white space around it allowed).
pub fn parse(text: &str) -> Result<Node, ParseError> {
    let mut reader = Reader::new(text);
    reader.skip_blank();
    if reader.peek().is_none() {
        return Err(reader.error_here("empty config: expected (vm ...)"));
    }
    let node = reader.node()?;
    reader.skip_blank();
    if reader.peek().is_some() {
        return Err(reader.error_here(
            "unexpected text after the end of the first expression (one config per file)",
        ));
    }
    Ok(node)
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

/// Characters that end an atom in xend's dialect (besides white space).
fn is_delimiter(c: char) -> bool {
    matches!(
        c,
        '(' | ')' | '{' | '}' | '<' | '>' | '[' | ']' | '!' | ';' | '#' | '"' | '\''
    )
}

/// Deeper nesting than any config needs; the limit keeps a hostile file
/// from exhausting the stack.
const MAX_DEPTH: usize = 256;

struct Reader<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    line: u32,
    col: u32,
    depth: usize,
}

impl<'a> Reader<'a> {
    fn new(text: &'a str) -> Self {
        Reader {
            chars: text.chars().peekable(),
            line: 1,
            col: 1,
            depth: 0,
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
            Some(c) if is_delimiter(c) => Err(self.error_here(format!(
                "unexpected character '{c}' (lists use parentheses; quote atoms that contain it)"
            ))),
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
                Some(_) => items.push(self.node()?),
            }
        }
    }

    fn bare_atom(&mut self) -> String {
        let mut s = String::new();
        while let Some(c) = self.peek() {
            if c.is_whitespace() || is_delimiter(c) || c.is_control() {
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
                Some('\\') => s.push(self.escape(esc_pos)?),
                Some(c) => s.push(c),
            }
        }
    }

    fn escape(&mut self, pos: Pos) -> Result<char, ParseError> {
        let bad = |what: String| ParseError {
            pos,
            message: format!("invalid escape {what} in string"),
        };
        let c = self
            .bump()
            .ok_or_else(|| bad("'\\' at end of file".into()))?;
        Ok(match c {
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
                for _ in 0..2 {
                    let d = self
                        .peek()
                        .and_then(|d| d.to_digit(16))
                        .ok_or_else(|| bad("'\\x' (expected two hex digits)".into()))?;
                    self.bump();
                    code = code * 16 + d;
                }
                char::from_u32(code).ok_or_else(|| bad(format!("'\\x{code:02x}'")))?
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
                char::from_u32(code).ok_or_else(|| bad(format!("'\\{code:o}'")))?
            }
            other => return Err(bad(format!("'\\{other}'"))),
        })
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

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let text = "(".repeat(100_000);
        let err = parse(&text).err().map(|e| e.message);
        assert_eq!(err.as_deref(), Some("lists nested deeper than 256 levels"));
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
            parse("(vm [x])").unwrap_err().to_string(),
            "1:5: unexpected character '[' (lists use parentheses; quote atoms that contain it)"
        );
        assert_eq!(
            parse("(a \"\\q\")").unwrap_err().to_string(),
            "1:5: invalid escape '\\q' in string"
        );
    }
}
