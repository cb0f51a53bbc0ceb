//! Screen geometry, shared by drawing and by mouse handling in `update`.

use ratatui::layout::Rect;

pub const HEADER: u16 = 4;

pub struct Main {
    pub header: Rect,
    pub body: Rect,
    pub status: Rect,
    pub footer: Rect,
}

pub fn main(area: Rect) -> Main {
    let h = area.height;
    let header_h = HEADER.min(h);
    let body_h = h.saturating_sub(header_h + 2);
    Main {
        header: Rect {
            height: header_h,
            ..area
        },
        body: Rect {
            y: area.y + header_h,
            height: body_h,
            ..area
        },
        status: Rect {
            y: area.y + header_h + body_h,
            height: h.saturating_sub(header_h + body_h).min(1),
            ..area
        },
        footer: Rect {
            y: area.y + h.saturating_sub(1),
            height: h.min(1),
            ..area
        },
    }
}

/// First screen row of table data and how many data rows fit: the body's
/// top border and the column header come first, its bottom border last.
pub fn table_rows(size: (u16, u16)) -> (u16, usize) {
    let m = main(Rect::new(0, 0, size.0, size.1));
    (m.body.y + 2, usize::from(m.body.height.saturating_sub(3)))
}

/// Rows and columns of the console view's terminal.
pub fn console_size(size: (u16, u16)) -> (u16, u16) {
    (size.1.saturating_sub(2).max(1), size.0.max(1))
}

/// First row of the editor's text and how many lines fit.
pub fn editor_rows(size: (u16, u16)) -> (u16, usize) {
    (1, usize::from(size.1.saturating_sub(4)))
}

/// The rectangle of a full-screen pop-up (details of a live or gone
/// domain): the screen less a margin.
pub fn overlay(area: Rect) -> Rect {
    centered(
        area,
        area.width.saturating_sub(4),
        area.height.saturating_sub(2),
    )
}

/// A centred rectangle of at most `w` × `h` inside `area`.
pub fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}
