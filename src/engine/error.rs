use std::fmt;

use crate::backend::{BackendError, DomId};
use crate::config::ConfigError;
use crate::persist::PersistError;

/// The construction pipeline's stages, in order (xend's `construct`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stage {
    Validate,
    CheckResources,
    CreateDomain,
    BuildImage,
    CreateDevices,
    DeviceModel,
    ConfigureFields,
    Unpause,
}

impl Stage {
    pub const ALL: [Stage; 8] = [
        Stage::Validate,
        Stage::CheckResources,
        Stage::CreateDomain,
        Stage::BuildImage,
        Stage::CreateDevices,
        Stage::DeviceModel,
        Stage::ConfigureFields,
        Stage::Unpause,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Validate => "validate",
            Stage::CheckResources => "check resources",
            Stage::CreateDomain => "create domain",
            Stage::BuildImage => "build image",
            Stage::CreateDevices => "create devices",
            Stage::DeviceModel => "device model",
            Stage::ConfigureFields => "configure fields",
            Stage::Unpause => "unpause",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a stage failed.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error("{0}")]
    Invalid(String),
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("no domain {0}")]
    NoSuchDomain(String),
    #[error("cannot {op} {name}: it is {state}")]
    InvalidState {
        name: String,
        state: &'static str,
        op: &'static str,
    },
    #[error("Domain-0 cannot be {0}")]
    Domain0(&'static str),
    #[error("building {name} failed at stage '{stage}': {source}{}", rollback_note(.rolled_back, .rollback_error))]
    Construct {
        name: String,
        stage: Stage,
        #[source]
        source: StageError,
        /// The domid of the partial domain that was destroyed, if one was created.
        rolled_back: Option<DomId>,
        rollback_error: Option<String>,
    },
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error(transparent)]
    Persist(#[from] PersistError),
    #[error(transparent)]
    Store(crate::store::StoreError),
    #[error("{0}")]
    Invalid(String),
}

fn rollback_note(rolled_back: &Option<DomId>, rollback_error: &Option<String>) -> String {
    match (rolled_back, rollback_error) {
        (Some(d), None) => format!(" (partial domain {d} destroyed)"),
        (Some(d), Some(e)) => format!(" (destroying partial domain {d} also failed: {e})"),
        (None, _) => String::new(),
    }
}

impl EngineError {
    /// The stage a construction failed at, if this is a construction error.
    pub fn stage(&self) -> Option<Stage> {
        match self {
            EngineError::Construct { stage, .. } => Some(*stage),
            _ => None,
        }
    }
}

pub type EngineResult<T> = Result<T, EngineError>;
