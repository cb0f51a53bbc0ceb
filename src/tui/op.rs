//! An operation with its arguments: what a key, a `:` command or a bulk
//! action asks for. A key fills in the selected (or tagged) domains, the
//! palette its words; `App::dispatch` runs them all, with the same state
//! checks and the same questions.

use std::path::PathBuf;

use crate::backend::ShutdownReason;
use crate::config::{DeviceRef, DeviceSpec};
use crate::fleet::DomKey;

use super::keymap::Command;

#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Quit,
    /// Switch theme; none: the picker.
    Theme(Option<String>),
    /// A new library config; the name typed so far.
    New(String),
    /// Build a library config (by name) or a file.
    Create(String),
    Console(DomKey),
    Edit(DomKey),
    /// Pause, or unpause the paused (the `p` key).
    TogglePause(Vec<DomKey>),
    /// Pause only (`:pause`, as `domus pause`): a paused domain is refused.
    Pause(Vec<DomKey>),
    Unpause(Vec<DomKey>),
    Start(Vec<DomKey>),
    /// Shut down; no reason: the menu.
    Shutdown(Vec<DomKey>, Option<ShutdownReason>),
    /// Destroy, after the question.
    Destroy(Vec<DomKey>),
    Cancel(Vec<DomKey>),
    /// Hot-plug; no device: the form.
    Attach(DomKey, Option<DeviceSpec>),
    /// Unplug; no device: the list.
    Detach(DomKey, Option<DeviceRef>),
    /// A memory target in MiB; none: the form.
    MemTarget(DomKey, Option<u64>),
    Save(DomKey, PathBuf),
    Restore(PathBuf),
}

impl Op {
    /// The keymap command whose state rules (`App::why_not`) apply.
    pub fn command(&self) -> Command {
        match self {
            Op::Quit => Command::Quit,
            Op::Theme(_) => Command::Theme,
            Op::New(_) => Command::LibNew,
            Op::Create(_) => Command::LibBuild,
            Op::Console(_) => Command::Console,
            Op::Edit(_) => Command::Edit,
            Op::TogglePause(_) | Op::Pause(_) => Command::Pause,
            Op::Unpause(_) => Command::Unpause,
            Op::Start(_) => Command::Start,
            Op::Shutdown(..) => Command::Shutdown,
            Op::Destroy(_) => Command::Destroy,
            Op::Cancel(_) => Command::CancelQueued,
            Op::Attach(..) => Command::Attach,
            Op::Detach(..) => Command::Detach,
            Op::MemTarget(..) => Command::MemTarget,
            Op::Save(..) => Command::Save,
            Op::Restore(_) => Command::Restore,
        }
    }

    /// The domains it acts on.
    pub fn targets(&self) -> Vec<DomKey> {
        match self {
            Op::Console(d)
            | Op::Edit(d)
            | Op::Attach(d, _)
            | Op::Detach(d, _)
            | Op::MemTarget(d, _)
            | Op::Save(d, _) => vec![*d],
            Op::TogglePause(v)
            | Op::Pause(v)
            | Op::Unpause(v)
            | Op::Start(v)
            | Op::Shutdown(v, _)
            | Op::Destroy(v)
            | Op::Cancel(v) => v.clone(),
            Op::Quit | Op::Theme(_) | Op::New(_) | Op::Create(_) | Op::Restore(_) => Vec::new(),
        }
    }
}
