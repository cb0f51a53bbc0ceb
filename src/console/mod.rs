//! Console byte handling shared by every front end.

pub mod archive;
mod filter;

pub use filter::EscapeFilter;

/// Written to the operator's terminal when `domus console` ends. The filter
/// lets none of these modes through; this undoes them anyway, in case a
/// terminal reads something in a way the filter did not foresee: mouse
/// reports (1000/1002/1003, encodings 1005/1006/1015), focus events,
/// bracketed paste, the alternate screen, the line-drawing charset (G0 back
/// to ASCII, SI back to G0), a hidden cursor, colours and the scroll region.
///
/// Leaving the alternate screen restores a saved cursor (xterm does so
/// even when not on it) and resetting the scroll region homes the cursor,
/// so each is bracketed by a cursor save that keeps the cursor where the
/// session left it.
pub const RESET_TERMINAL: &[u8] = b"\x1b7\x1b[?1049l\
\x1b7\x1b[r\x1b8\
\x1b[?1000l\x1b[?1002l\x1b[?1003l\x1b[?1005l\x1b[?1006l\x1b[?1015l\
\x1b[?1004l\x1b[?2004l\
\x1b(B\x0f\
\x1b[?25h\
\x1b[0m";
