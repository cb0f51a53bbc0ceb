//! Views and overlays that own their state, their keys and their drawing,
//! as gitui's components do: the app hands a component its key and gets
//! back whether it stays open and the effects to run; drawing is a pure
//! function of the component (and the theme). `App::update` still does no
//! IO. The app (`app/`) holds what is shared between them: the table, the
//! library, the journal, the status line.

pub mod confirm;
pub mod console_view;
pub mod details;
pub mod device_form;
pub mod editor;
pub mod help;
pub mod memory_form;
pub mod name_prompt;
pub mod palette;
pub mod picker;

use super::action::Effect;

/// What a component's key asks of the app.
#[derive(Debug, Default)]
pub struct KeyOutcome {
    /// The component closes.
    pub close: bool,
    pub effects: Vec<Effect>,
}

impl KeyOutcome {
    pub fn stay() -> Self {
        KeyOutcome::default()
    }

    pub fn stay_with(effects: Vec<Effect>) -> Self {
        KeyOutcome {
            close: false,
            effects,
        }
    }

    pub fn close() -> Self {
        KeyOutcome {
            close: true,
            effects: Vec::new(),
        }
    }
}
