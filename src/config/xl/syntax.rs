//! xl.cfg's file syntax, as libxlu's lexer and grammar read it:
//! `KEY = VALUE` or `KEY += VALUE` statements ended by a newline or `;`,
//! values a quoted string, a number or a `[ … ]` list (over several lines,
//! nested, trailing comma allowed), `#` comments. Keys are lower case.
//! Nothing here recurses: lists are built on an explicit stack.

use crate::sxp::Pos;

/// Lists nest at most this deep (xl's own configs nest one level).
const MAX_DEPTH: usize = 16;
/// Items in one list at most.
const MAX_ITEMS: usize = 4096;
/// Statements in one file at most.
const MAX_SETTINGS: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// A quoted string, or a number (`number`: written bare; xl keeps it as
    /// text and converts when used).
    Atom {
        text: String,
        number: bool,
        pos: Pos,
    },
    List {
        items: Vec<Value>,
        pos: Pos,
    },
}

impl Value {
    pub fn pos(&self) -> Pos {
        match self {
            Value::Atom { pos, .. } | Value::List { pos, .. } => *pos,
        }
    }

    pub fn as_atom(&self) -> Option<&str> {
        match self {
            Value::Atom { text, .. } => Some(text),
            Value::List { .. } => None,
        }
    }
}

/// One assignment; a key assigned again replaces it (xl: the last wins).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub key: String,
    pub pos: Pos,
    pub value: Value,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct XlFile {
    /// In file order, each key once (where it was last assigned).
    pub settings: Vec<Setting>,
}

impl XlFile {
    pub fn get(&self, key: &str) -> Option<&Setting> {
        self.settings.iter().find(|s| s.key == key)
    }
}

/// Why the text is not an xl.cfg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub pos: Pos,
    pub message: String,
    /// Python was seen (`import`, calls, `%`, …): xm ran such files.
    pub python: bool,
}

/// Statement starts that only a Python program has.
const PYTHON_WORDS: &[&str] = &[
    "import", "from", "def", "if", "elif", "else", "for", "while", "try", "except", "class",
    "print", "exec", "global", "with", "return", "del", "assert", "lambda",
];

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Key(String),
    Str(String),
    Num(String),
    Eq,
    PlusEq,
    Open,
    Close,
    Comma,
    End,
}

struct Lexer<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    line: u32,
    col: u32,
    /// Python-only characters seen outside strings.
    python_chars: bool,
}

impl Lexer<'_> {
    fn pos(&self) -> Pos {
        Pos {
            line: self.line,
            col: self.col,
        }
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

    fn err(&self, pos: Pos, message: String) -> SyntaxError {
        SyntaxError {
            pos,
            message,
            python: self.python_chars,
        }
    }

    /// The next token and where it starts; `None` at the end.
    fn next(&mut self) -> Result<Option<(Tok, Pos)>, SyntaxError> {
        loop {
            let pos = self.pos();
            let Some(&c) = self.chars.peek() else {
                return Ok(None);
            };
            let tok = match c {
                ' ' | '\t' | '\r' => {
                    self.bump();
                    continue;
                }
                '#' => {
                    while self.chars.peek().is_some_and(|c| *c != '\n') {
                        self.bump();
                    }
                    continue;
                }
                '\n' | ';' => {
                    self.bump();
                    Tok::End
                }
                '=' => {
                    self.bump();
                    Tok::Eq
                }
                '[' => {
                    self.bump();
                    Tok::Open
                }
                ']' => {
                    self.bump();
                    Tok::Close
                }
                ',' => {
                    self.bump();
                    Tok::Comma
                }
                '+' => {
                    self.bump();
                    if self.chars.peek() == Some(&'=') {
                        self.bump();
                        Tok::PlusEq
                    } else {
                        self.python_chars = true;
                        return Err(self.err(pos, "'+' outside a string".into()));
                    }
                }
                '"' | '\'' => Tok::Str(self.string(c, pos)?),
                '0'..='9' => {
                    let mut s = String::new();
                    while let Some(&d) = self.chars.peek() {
                        if d.is_ascii_digit() || ('a'..='f').contains(&d) || d == 'x' {
                            s.push(d);
                            self.bump();
                        } else {
                            break;
                        }
                    }
                    if matches!(self.chars.peek(), Some('.' | 'L')) {
                        self.python_chars = true;
                    }
                    Tok::Num(s)
                }
                // Words in any case: the parser says that keys are lower
                // case, or that `True` is Python.
                'a'..='z' | 'A'..='Z' | '_' => {
                    let mut s = String::new();
                    while let Some(&d) = self.chars.peek() {
                        if d.is_ascii_alphanumeric() || d == '_' || d == '.' {
                            s.push(d);
                            self.bump();
                        } else {
                            break;
                        }
                    }
                    if s.contains('.') {
                        self.python_chars = true;
                    }
                    Tok::Key(s)
                }
                other => {
                    if "-.():%{}()*/\\".contains(other) {
                        self.python_chars = true;
                    }
                    return Err(self.err(pos, format!("unexpected {}", describe(other))));
                }
            };
            return Ok(Some((tok, pos)));
        }
    }

    /// A string on one line, with xl's escapes.
    fn string(&mut self, quote: char, pos: Pos) -> Result<String, SyntaxError> {
        self.bump();
        let mut s = String::new();
        loop {
            let here = self.pos();
            match self.bump() {
                None | Some('\n') => {
                    return Err(self.err(
                        pos,
                        format!("unterminated string (expected a closing {quote} on this line)"),
                    ));
                }
                Some(c) if c == quote => {
                    if self.chars.peek().is_some_and(|c| *c == '"' || *c == '\'') {
                        // Adjacent literals are Python's concatenation.
                        self.python_chars = true;
                    }
                    return Ok(s);
                }
                Some('\\') => {
                    let c = self.bump();
                    s.push(match c {
                        Some('"') => '"',
                        Some('\'') => '\'',
                        Some('\\') => '\\',
                        Some('a') => '\x07',
                        Some('b') => '\x08',
                        Some('f') => '\x0c',
                        Some('n') => '\n',
                        Some('r') => '\r',
                        Some('t') => '\t',
                        Some('v') => '\x0b',
                        other => {
                            return Err(self.err(
                                here,
                                format!(
                                    "unknown escape \\{} (xl knows \\\" \\' \\\\ \\a \\b \\f \\n \\r \\t \\v)",
                                    other.map_or(String::new(), String::from)
                                ),
                            ));
                        }
                    });
                }
                Some(c) => s.push(c),
            }
        }
    }
}

fn describe(c: char) -> String {
    // Invisible or direction-changing characters are named, never shown.
    let invisible =
        matches!(c as u32, 0x200b..=0x200f | 0x202a..=0x202e | 0x2066..=0x2069 | 0xfeff);
    if c.is_control() || invisible || c.is_whitespace() {
        format!("character U+{:04X}", c as u32)
    } else {
        format!("'{c}'")
    }
}

fn describe_tok(t: &Option<(Tok, Pos)>) -> String {
    match t.as_ref().map(|(t, _)| t) {
        None => "the end of the file".into(),
        Some(Tok::Key(k)) => format!("the word {}", crate::config::error::shown(k)),
        Some(Tok::Str(_)) => "a string".into(),
        Some(Tok::Num(n)) => format!("the number {}", crate::config::error::shown(n)),
        Some(Tok::Eq) => "'='".into(),
        Some(Tok::PlusEq) => "'+='".into(),
        Some(Tok::Open) => "'['".into(),
        Some(Tok::Close) => "']'".into(),
        Some(Tok::Comma) => "','".into(),
        Some(Tok::End) => "the end of the line".into(),
    }
}

/// Read an xl.cfg.
pub fn parse(text: &str) -> Result<XlFile, SyntaxError> {
    let mut lx = Lexer {
        chars: text.chars().peekable(),
        line: 1,
        col: 1,
        python_chars: false,
    };
    let mut file = XlFile::default();
    let mut count = 0usize;
    loop {
        let Some((tok, pos)) = lx.next()? else {
            return Ok(file);
        };
        let key = match tok {
            Tok::End => continue,
            Tok::Key(k)
                if k.starts_with(|c: char| c.is_ascii_lowercase())
                    && !k.chars().any(|c| c.is_ascii_uppercase()) =>
            {
                k
            }
            Tok::Key(k) if !k.contains('.') => {
                return Err(lx.err(
                    pos,
                    format!(
                        "{}: xl.cfg keys are lower case letters, digits, '_' and '.', starting with a letter",
                        crate::config::error::shown(&k)
                    ),
                ));
            }
            Tok::Key(k) => k,
            other => {
                return Err(lx.err(
                    pos,
                    format!(
                        "expected a setting (KEY = VALUE), found {}",
                        describe_tok(&Some((other, pos)))
                    ),
                ));
            }
        };
        let op = lx.next()?;
        let append = match op.as_ref().map(|(t, _)| t) {
            Some(Tok::Eq) => false,
            Some(Tok::PlusEq) => true,
            _ => {
                let python = lx.python_chars
                    || PYTHON_WORDS.contains(&key.as_str())
                    || matches!(op, Some((Tok::Key(_), _)));
                return Err(SyntaxError {
                    pos: op.as_ref().map_or(pos, |(_, p)| *p),
                    message: format!("expected '=' after {key}, found {}", describe_tok(&op)),
                    python,
                });
            }
        };
        let value = value(&mut lx)?;
        match lx.next()? {
            None | Some((Tok::End, _)) => {}
            t => {
                let mut e = lx.err(
                    t.as_ref().map_or(pos, |(_, p)| *p),
                    format!(
                        "expected the end of the line after {key}'s value, found {}",
                        describe_tok(&t)
                    ),
                );
                // A second literal or a word after a value: Python's
                // implicit concatenation, `x if c else y`, …
                e.python |= matches!(t, Some((Tok::Str(_) | Tok::Key(_), _)));
                return Err(e);
            }
        }
        count += 1;
        if count > MAX_SETTINGS {
            return Err(lx.err(pos, format!("more than {MAX_SETTINGS} settings")));
        }
        let old = file.settings.iter().position(|s| s.key == key);
        let value = match (append, old.map(|i| file.settings.remove(i))) {
            (true, Some(prev)) => {
                concat(prev.value, value, pos, &key).map_err(|m| lx.err(pos, m))?
            }
            (_, _) => value,
        };
        file.settings.push(Setting { key, pos, value });
    }
}

/// `KEY += VALUE`: strings join, lists extend.
fn concat(prev: Value, add: Value, pos: Pos, key: &str) -> Result<Value, String> {
    match (prev, add) {
        (
            Value::Atom {
                text: a,
                number: false,
                pos: p,
            },
            Value::Atom {
                text: b,
                number: false,
                ..
            },
        ) => Ok(Value::Atom {
            text: a + &b,
            number: false,
            pos: p,
        }),
        (Value::List { mut items, pos: p }, Value::List { items: more, .. }) => {
            items.extend(more);
            if items.len() > MAX_ITEMS {
                return Err(format!("{key}: more than {MAX_ITEMS} items"));
            }
            Ok(Value::List { items, pos: p })
        }
        _ => Err(format!(
            "{key} += at {pos}: xl adds a string to a string or a list to a list"
        )),
    }
}

/// One value; lists on an explicit stack.
fn value(lx: &mut Lexer<'_>) -> Result<Value, SyntaxError> {
    // Open lists: their items, where each began, and whether an item may
    // come next (after '[' or ',').
    let mut stack: Vec<(Vec<Value>, Pos, bool)> = Vec::new();
    loop {
        let t = lx.next()?;
        let done = match t {
            Some((Tok::End, _)) if !stack.is_empty() => continue,
            Some((Tok::Str(s), pos)) => Some(Value::Atom {
                text: s,
                number: false,
                pos,
            }),
            Some((Tok::Num(n), pos)) => Some(Value::Atom {
                text: n,
                number: true,
                pos,
            }),
            Some((Tok::Open, pos)) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(lx.err(pos, format!("lists nested deeper than {MAX_DEPTH}")));
                }
                if let Some(top) = stack.last()
                    && !top.2
                {
                    return Err(lx.err(pos, "expected ',' or ']' before '['".into()));
                }
                stack.push((Vec::new(), pos, true));
                None
            }
            Some((Tok::Close, pos)) if !stack.is_empty() => {
                let Some((items, start, _)) = stack.pop() else {
                    continue;
                };
                let _ = pos;
                Some(Value::List { items, pos: start })
            }
            Some((Tok::Comma, pos)) if !stack.is_empty() => {
                if let Some(top) = stack.last_mut() {
                    if top.2 {
                        return Err(lx.err(pos, "expected a value before ','".into()));
                    }
                    top.2 = true;
                }
                None
            }
            t => {
                let pos = t.as_ref().map_or(lx.pos(), |(_, p)| *p);
                let message = match &t {
                    // Most often a string without its quotes; a Python
                    // name shows itself by other signs (`.`, `%`, calls).
                    Some((Tok::Key(word), _))
                        if matches!(word.as_str(), "True" | "False" | "None") =>
                    {
                        let mut e =
                            lx.err(pos, format!("found Python's {word}; xl.cfg writes 1 or 0"));
                        e.python = true;
                        return Err(e);
                    }
                    Some((Tok::Key(word), _)) => format!(
                        "found the bare word {}: xl.cfg strings are quoted (\"{}\")",
                        crate::config::error::shown(word),
                        crate::config::error::shown(word)
                    ),
                    _ => format!(
                        "expected a value (a quoted string, a number or a [list]), found {}",
                        describe_tok(&t)
                    ),
                };
                return Err(lx.err(pos, message));
            }
        };
        if let Some(v) = done {
            match stack.last_mut() {
                None => return Ok(v),
                Some(top) => {
                    if !top.2 {
                        return Err(lx.err(v.pos(), "expected ',' or ']' between items".into()));
                    }
                    if top.0.len() >= MAX_ITEMS {
                        return Err(
                            lx.err(v.pos(), format!("more than {MAX_ITEMS} items in a list"))
                        );
                    }
                    top.0.push(v);
                    top.2 = false;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn atom(f: &XlFile, k: &str) -> Option<String> {
        f.get(k).and_then(|s| s.value.as_atom()).map(str::to_string)
    }

    #[test]
    fn settings_lists_comments_and_last_wins() {
        let f = parse(
            "# a guest\nname = \"web\" # trailing\nmemory=512; vcpus = 2\n\
             disk = [ 'phy:/dev/vg/web,xvda,w',\n  '/srv/d.img,raw,xvdb,rw', ]\n\
             memory = 1024\nextra = \"a\"\nextra += ' b'\nvif=[]\nx=[[\"1\"],[]]",
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(atom(&f, "name").as_deref(), Some("web"));
        assert_eq!(atom(&f, "memory").as_deref(), Some("1024"));
        assert_eq!(atom(&f, "extra").as_deref(), Some("a b"));
        assert_eq!(
            f.get("memory").map(|s| s.pos),
            Some(Pos { line: 6, col: 1 })
        );
        match f.get("disk").map(|s| &s.value) {
            Some(Value::List { items, .. }) => assert_eq!(items.len(), 2),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn escapes_and_errors_have_positions() {
        let f = parse(r#"a = "q\"\\\t""#).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(atom(&f, "a").as_deref(), Some("q\"\\\t"));
        let e = parse("a = \"x\\q\"")
            .err()
            .unwrap_or_else(|| panic!("accepted"));
        assert_eq!(e.pos, Pos { line: 1, col: 7 });
        let e = parse("name = 'a\nb'")
            .err()
            .unwrap_or_else(|| panic!("accepted"));
        assert!(e.message.contains("unterminated"), "{e:?}");
        let e = parse("Name = 'a'")
            .err()
            .unwrap_or_else(|| panic!("accepted"));
        assert!(e.message.contains("lower case"), "{e:?}");
        let e = parse("a = [1 2]")
            .err()
            .unwrap_or_else(|| panic!("accepted"));
        assert_eq!(e.pos, Pos { line: 1, col: 8 });
    }

    #[test]
    fn python_is_recognised() {
        for text in [
            "import os\nname = 'x'",
            "name = \"VM%d\" % vmid",
            "vnc = True",
            "memory = 128 + 64",
            "arch = os.uname()[4]",
            "if vmid == 1:\n  memory = 64",
            "name = 'a' 'b'",
        ] {
            let e = parse(text)
                .err()
                .unwrap_or_else(|| panic!("accepted {text:?}"));
            assert!(e.python, "{text:?} not taken for Python: {e:?}");
        }
        let e = parse("name = 'x'\nmemory = ")
            .err()
            .unwrap_or_else(|| panic!("accepted"));
        assert!(!e.python, "{e:?}");
    }

    #[test]
    fn deep_nesting_and_huge_lists_are_refused_not_a_crash() {
        let deep = format!("a = {}", "[".repeat(100_000));
        assert!(parse(&deep).is_err());
        let wide = format!("a = [{}]", "1,".repeat(10_000));
        assert!(parse(&wide).is_err());
    }
}
