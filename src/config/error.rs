use std::fmt;

use crate::fsx::{self, FsxError};
use crate::sxp::Pos;

/// At most this many characters of a value from the config are quoted in
/// a message: an 8 MB atom must not make an 8 MB line.
pub const QUOTE_CHARS: usize = 60;

/// A message longer than this (whatever it quotes) is cut: the last guard
/// for one short line per problem.
const MAX_MESSAGE_CHARS: usize = 400;

/// A value from the config, for a message: as written when short, else a
/// one-line excerpt with the full length.
pub(crate) fn shown(v: &str) -> String {
    fsx::excerpt(v, QUOTE_CHARS)
}

/// [`shown`] in double quotes, exactly as `{:?}` prints a short value.
pub(crate) fn shown_quoted(v: &str) -> String {
    match v.char_indices().nth(QUOTE_CHARS) {
        None => format!("{v:?}"),
        Some((cut, _)) => format!("{:?}… ({} characters)", &v[..cut], v.chars().count()),
    }
}

fn bounded(message: String) -> String {
    if message.chars().count() > MAX_MESSAGE_CHARS || message.chars().any(char::is_control) {
        fsx::excerpt(&message, MAX_MESSAGE_CHARS)
    } else {
        message
    }
}

/// One problem found in a config, at a position in its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub pos: Pos,
    pub message: String,
}

/// Every error and warning found in one config source.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics {
    /// Shown in front of every position; `<input>` for text with no file.
    pub source: String,
    pub errors: Vec<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
}

impl Diagnostics {
    pub fn new(source: impl Into<String>) -> Self {
        Diagnostics {
            source: source.into(),
            ..Default::default()
        }
    }

    pub fn error(&mut self, pos: Pos, message: impl Into<String>) {
        self.errors.push(Diagnostic {
            pos,
            message: bounded(message.into()),
        });
    }

    pub fn warn(&mut self, pos: Pos, message: impl Into<String>) {
        self.warnings.push(Diagnostic {
            pos,
            message: bounded(message.into()),
        });
    }

    /// Each error as `source:line:col: message`, one per line.
    pub fn error_lines(&self) -> Vec<String> {
        self.errors
            .iter()
            .map(|d| format!("{}:{}: {}", self.source, d.pos, d.message))
            .collect()
    }

    /// Each warning, in file order.
    pub fn warning_lines(&self) -> Vec<String> {
        let mut sorted: Vec<&Diagnostic> = self.warnings.iter().collect();
        sorted.sort_by_key(|d| d.pos);
        sorted
            .into_iter()
            .map(|d| format!("{}:{}: warning: {}", self.source, d.pos, d.message))
            .collect()
    }
}

/// A config that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read: missing, not a regular file (a FIFO,
    /// a device), too large, not UTF-8. The message names the file.
    #[error(transparent)]
    Read(#[from] FsxError),
    #[error("{}", .0.error_lines().join("\n"))]
    Invalid(Diagnostics),
}

impl ConfigError {
    /// The diagnostics, when the config was read but is invalid.
    pub fn diagnostics(&self) -> Option<&Diagnostics> {
        match self {
            ConfigError::Invalid(d) => Some(d),
            ConfigError::Read(_) => None,
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.pos, self.message)
    }
}
