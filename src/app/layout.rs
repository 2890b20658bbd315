//! How the studio's panels share the window, and where they sat in the last frame.
//!
//! A resizable egui panel remembers the width its contents *used*, not the width it was given, so
//! any widget that asks for a few points more than the panel has (a text field sized from the
//! available width plus a button beside it) widens the panel on every frame until the canvas is
//! pushed off the window (issue 16). Here the side panels take bounded widths, their contents are
//! fenced into exactly that width, and each frame's rectangles are kept so tests can check that
//! the layout holds still.

use eframe::egui::{self, Rect};

/// No side panel takes more than this share of the window, so the canvas keeps at least half.
const SIDE_PANEL_MAX_SHARE: f32 = 0.25;

/// A side panel's width bounds: `(default, min)` in points; the maximum follows the window.
#[derive(Debug, Clone, Copy)]
pub struct SideWidth {
    pub default: f32,
    pub min: f32,
}

/// The track list: wide enough for a track row (colour, show, lock, Up, Down, Delete).
pub const TRACKS_WIDTH: SideWidth = SideWidth { default: 290.0, min: 200.0 };
/// The tabbed panel on the right.
pub const INSPECTOR_WIDTH: SideWidth = SideWidth { default: 320.0, min: 240.0 };

/// The left or right panel `id`, resizable between its bounds and a quarter of `window_width`.
pub fn side_panel(left: bool, id: &'static str, width: SideWidth, window_width: f32) -> egui::Panel {
    let panel = if left { egui::Panel::left(id) } else { egui::Panel::right(id) };
    let max = (window_width * SIDE_PANEL_MAX_SHARE).max(width.min);
    panel.resizable(true).default_size(width.default.min(max)).size_range(width.min..=max)
}

/// Runs `add_contents` in exactly the space `ui` has left and claims exactly that space, so a
/// widget wider than the panel is clipped instead of widening the panel.
pub fn fenced<R>(ui: &mut egui::Ui, add_contents: impl FnOnce(&mut egui::Ui) -> R) -> R {
    let rect = ui.available_rect_before_wrap();
    let mut inner = ui.new_child(egui::UiBuilder::new().max_rect(rect).layout(*ui.layout()));
    inner.shrink_clip_rect(rect);
    let result = add_contents(&mut inner);
    ui.advance_cursor_after_rect(rect);
    result
}

/// The outer rectangles of the studio's panels in the last frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PanelRects {
    /// The tracks list on the left.
    pub tracks: Rect,
    /// The tabbed panel on the right (Clip, Generate, Takes, Models).
    pub inspector: Rect,
    /// The timeline along the bottom.
    pub timeline: Rect,
    /// The central panel holding the canvas.
    pub canvas: Rect,
}

impl Default for PanelRects {
    fn default() -> Self {
        PanelRects { tracks: Rect::NOTHING, inspector: Rect::NOTHING, timeline: Rect::NOTHING, canvas: Rect::NOTHING }
    }
}
