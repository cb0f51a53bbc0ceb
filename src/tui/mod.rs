//! The terminal UI: actions in, state, a pure draw function out.
//!
//! ```text
//! keys/mouse ─▶ keymap ─▶ Action ─▶ App::update ─▶ Effect ─▶ Worker ─▶ Engine
//!                           ▲                                  │
//! frame ◀── ui::draw(&App) ◀┴───────── Action (results, snapshots, console bytes)
//! ```

pub mod action;
pub mod app;
pub mod complete;
pub mod components;
pub mod console;
pub mod feed;
pub mod hosts;
pub mod input;
pub mod keymap;
pub mod lanes;
pub mod library;
pub mod op;
pub mod pci_names;
pub mod prefs;
mod run;
pub mod table;
pub mod testing;
pub mod theme;
pub mod ui;
pub mod worker;

pub use components::editor;
pub use run::{TuiOptions, run};
