use std::fmt;
use std::path::PathBuf;

use crate::sxp::Pos;

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
            message: message.into(),
        });
    }

    pub fn warn(&mut self, pos: Pos, message: impl Into<String>) {
        self.warnings.push(Diagnostic {
            pos,
            message: message.into(),
        });
    }

    /// Each error as `source:line:col: message`, one per line.
    pub fn error_lines(&self) -> Vec<String> {
        self.errors
            .iter()
            .map(|d| format!("{}:{}: {}", self.source, d.pos, d.message))
            .collect()
    }

    pub fn warning_lines(&self) -> Vec<String> {
        self.warnings
            .iter()
            .map(|d| format!("{}:{}: warning: {}", self.source, d.pos, d.message))
            .collect()
    }
}

/// A config that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}", .0.error_lines().join("\n"))]
    Invalid(Diagnostics),
}

impl ConfigError {
    /// The diagnostics, when the config was read but is invalid.
    pub fn diagnostics(&self) -> Option<&Diagnostics> {
        match self {
            ConfigError::Invalid(d) => Some(d),
            ConfigError::Io { .. } => None,
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.pos, self.message)
    }
}
