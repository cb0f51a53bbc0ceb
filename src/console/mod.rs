//! Console byte handling shared by every front end.

mod filter;

pub use filter::EscapeFilter;
