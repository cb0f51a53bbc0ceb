//! domus: a console manager for virtual-machine domains.
//!
//! Layers, bottom up: [`sxp`] (xend's S-expression dialect), [`config`]
//! (typed domain configs), [`backend`] (the hypercall interface and its
//! implementations), [`engine`] (the lifecycle engine carried over from
//! xend's `XendDomainInfo`), [`console`] (console byte handling) and [`cli`];
//! [`fsx`] holds the file operations every layer uses for its own files
//! and for the input it reads.

pub mod backend;
pub mod cli;
pub mod clock;
pub mod config;
pub mod console;
pub mod engine;
pub mod fleet;
pub mod fsx;
pub mod paths;
pub mod persist;
pub mod store;
pub mod sxp;
pub mod tui;
