//! xend's S-expression dialect: a reader that keeps positions, a canonical
//! printer, and query helpers in the spirit of xend's `sxp` module.
//!
//! The dialect is not Lisp: every atom is a string until a handler
//! interprets it, strings may be quoted with `"` or `'`, `#` starts a comment.
//! `lexpr::Value` is the position-free value type; [`Node`] is the parsed,
//! positioned tree used wherever an error must name a line and column.

mod node;
mod printer;
mod reader;

pub use node::{Node, NodeKind, Pos};
pub use printer::{is_plain_atom, print_atom, print_pretty, print_value};
pub use reader::{MAX_ITEMS, ParseError, ReadWarning, parse, parse_all, parse_with_warnings};
