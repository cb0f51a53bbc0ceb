//! The config editor: ratatui-textarea does the editing; validation runs on
//! every change and the drawing (line numbers, S-expression colouring, the
//! error line) is ours.

mod draw;
mod keys;

use std::path::PathBuf;

use crossterm::event::KeyEvent;
use ratatui_textarea::TextArea;

use crate::config::Diagnostics;
use crate::config::xl::parse_any as parse_str;

pub struct Editor {
    pub path: PathBuf,
    pub file: String,
    pub textarea: TextArea<'static>,
    pub saved_text: String,
    pub diagnostics: Diagnostics,
    /// Schema-aware problems from the last pre-build check.
    pub preflight: Vec<String>,
    /// Set once the operator has seen the preflight problems: Ctrl-B again builds.
    pub build_anyway: bool,
    /// Esc pressed with unsaved changes: the next Esc discards.
    pub confirm_discard: bool,
    pub scroll: usize,
    pub message: Option<String>,
    /// An earlier session's recovery copy stays until a save or an edit
    /// replaces it (the operator put off the question with Esc).
    pub keep_recovery: bool,
    /// Editing a domain's definition in the hypervisor's own terms
    /// (libvirt's XML), not a file: a save gives it to the hypervisor,
    /// which validates it; no build, no recovery copy.
    pub native: Option<crate::fleet::DomKey>,
}

/// Edits the editor makes by command rather than by the text area's own
/// keys, so the keymap (and the help) names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EditorEdit {
    Undo,
    Redo,
    KillLine,
}

impl Editor {
    pub fn new(path: PathBuf, text: &str, saved_text: &str) -> Self {
        let file = path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        let mut ed = Editor {
            path,
            file,
            textarea: TextArea::new(if lines.is_empty() {
                vec![String::new()]
            } else {
                lines
            }),
            saved_text: saved_text.to_string(),
            diagnostics: Diagnostics::default(),
            preflight: Vec::new(),
            build_anyway: false,
            confirm_discard: false,
            scroll: 0,
            message: None,
            keep_recovery: false,
            native: None,
        };
        ed.validate();
        ed
    }

    /// Edit a domain's definition as the hypervisor describes it; `label`
    /// names it in the title (it is no file).
    pub fn native(key: crate::fleet::DomKey, label: &str, text: &str) -> Self {
        let mut ed = Editor::new(PathBuf::from(label), text, text);
        ed.native = Some(key);
        ed.diagnostics = Diagnostics::default();
        ed
    }

    pub fn text(&self) -> String {
        let mut t = self.textarea.lines().join("\n");
        t.push('\n');
        t
    }

    pub fn dirty(&self) -> bool {
        self.text() != self.saved_text
    }

    pub fn validate(&mut self) {
        // The hypervisor checks its own definitions when they are saved.
        if self.native.is_some() {
            return;
        }
        self.diagnostics = match parse_str(&self.text(), &self.file) {
            Ok((_, d)) => d,
            Err(e) => e.diagnostics().cloned().unwrap_or_else(|| {
                let mut d = Diagnostics::new(&self.file);
                d.error(Default::default(), e.to_string());
                d
            }),
        };
    }

    /// Undo, redo, or delete to the start of the line; true if the text
    /// changed.
    pub fn edit(&mut self, what: EditorEdit) -> bool {
        self.changing(|t| {
            let _ = match what {
                EditorEdit::Undo => t.undo(),
                EditorEdit::Redo => t.redo(),
                EditorEdit::KillLine => t.delete_line_by_head(),
            };
        })
    }

    /// Feed a key to the text area; true if the text changed.
    pub fn input(&mut self, key: KeyEvent) -> bool {
        self.changing(|t| {
            let _ = t.input(key);
        })
    }

    /// Run an edit; when it changed the text, what was checked of the old
    /// text no longer holds.
    fn changing(&mut self, f: impl FnOnce(&mut TextArea<'static>)) -> bool {
        let before = self.textarea.lines().to_vec();
        f(&mut self.textarea);
        let changed = self.textarea.lines() != before.as_slice();
        if changed {
            self.confirm_discard = false;
            self.build_anyway = false;
            self.preflight.clear();
            self.validate();
        }
        changed
    }

    pub fn cursor(&self) -> (usize, usize) {
        let c = self.textarea.cursor();
        (c.0, c.1)
    }

    /// The 0-based line of the first error, if any.
    pub fn error_line(&self) -> Option<usize> {
        self.diagnostics
            .errors
            .first()
            .map(|e| (e.pos.line as usize).saturating_sub(1))
    }

    pub fn scroll_into_view(&mut self, height: usize) {
        let (row, _) = self.cursor();
        if row < self.scroll {
            self.scroll = row;
        } else if height > 0 && row >= self.scroll + height {
            self.scroll = row + 1 - height;
        }
    }
}

/// A token class for colouring S-expressions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Token {
    Paren,
    Key,
    String,
    Number,
    Comment,
    Plain,
}

/// Split one line into coloured runs. A word right after `(` is a key.
/// Strings may span lines in principle; configs keep them on one line, and
/// a line-local highlighter stays fast on huge files.
pub fn tokenize(line: &str) -> Vec<(Token, &str)> {
    let mut out = Vec::new();
    let bytes = line.as_bytes();
    let mut i = 0;
    let mut after_paren = false;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        match c {
            b'(' | b')' => {
                i += 1;
                after_paren = c == b'(';
                out.push((Token::Paren, &line[start..i]));
                continue;
            }
            b'#' => {
                out.push((Token::Comment, &line[start..]));
                break;
            }
            b'"' | b'\'' => {
                i += 1;
                while i < bytes.len() && bytes[i] != c {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i = (i + 1).min(bytes.len());
                out.push((Token::String, &line[start..i]));
            }
            b' ' | b'\t' => {
                while i < bytes.len() && (bytes[i] == b' ' || bytes[i] == b'\t') {
                    i += 1;
                }
                out.push((Token::Plain, &line[start..i]));
                continue;
            }
            _ => {
                while i < bytes.len() && !b" \t()\"'#".contains(&bytes[i]) {
                    i += 1;
                }
                let word = &line[start..i];
                let kind = if after_paren {
                    Token::Key
                } else if word.parse::<f64>().is_ok() || word.starts_with("0x") {
                    Token::Number
                } else {
                    Token::Plain
                };
                out.push((kind, word));
            }
        }
        after_paren = false;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        let t = tokenize("(memory 256) (args \"a b\") # note");
        let kinds: Vec<Token> = t
            .iter()
            .filter(|(_, s)| !s.trim().is_empty())
            .map(|(k, _)| *k)
            .collect();
        use Token::*;
        assert_eq!(
            kinds,
            [
                Paren, Key, Number, Paren, Paren, Key, String, Paren, Comment
            ]
        );
        // Multi-byte text never splits a character.
        assert_eq!(tokenize("(name \"é→\")").len(), 5);
    }
}
