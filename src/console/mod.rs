//! Console byte handling shared by every front end.

pub mod archive;
mod filter;

pub use filter::EscapeFilter;
