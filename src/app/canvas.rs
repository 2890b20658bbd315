//! The canvas: the output frame (image, motion preview, flow overlay) with the tracks drawn on
//! it, and the drawing tools — where a click, drag or stroke becomes a keyframe edit.

use eframe::egui::{self, Color32, Pos2, Rect, Sense, Stroke, Vec2};

use crate::trajectory::{
    clamp_to_canvas, freehand_keyframes, Keyframe, PathShape, StrokeSample, Timing, Track, CANVAS_SIZE,
};

use super::preview::PREVIEW_LABEL;
use super::{Selection, StudioApp, Tool};

/// Pointer distance (screen points) within which a keyframe handle is hit.
const HIT_RADIUS: f32 = 9.0;
/// Freehand samples closer than this (canvas units) are merged.
const STROKE_SPACING: f64 = 3.0;

/// A pointer gesture in progress on the canvas.
#[derive(Debug, Clone, Default)]
pub enum Gesture {
    #[default]
    None,
    DragPoint {
        track: usize,
        point: usize,
    },
    MoveTrack {
        track: usize,
        last: [f64; 2],
    },
    Stroke {
        samples: Vec<StrokeSample>,
    },
    /// Dragging a keyframe in time on the timeline.
    Retime {
        track: usize,
        point: usize,
    },
    /// Outlining a region with the lasso (canvas units).
    Lasso {
        points: Vec<[f64; 2]>,
    },
    /// Moving a whole region (outline and path) with the Move tool.
    MoveRegion {
        region: usize,
        last: [f64; 2],
    },
}

/// Zoom and pan of the canvas, and where the output frame was last drawn.
#[derive(Debug, Clone, Copy)]
pub struct CanvasView {
    pub zoom: f32,
    pub pan: Vec2,
    frame_rect: Option<Rect>,
}

impl Default for CanvasView {
    fn default() -> Self {
        CanvasView { zoom: 1.0, pan: Vec2::ZERO, frame_rect: None }
    }
}

impl CanvasView {
    pub fn frame_rect(&self) -> Option<Rect> {
        self.frame_rect
    }

    pub fn reset(&mut self) {
        self.zoom = 1.0;
        self.pan = Vec2::ZERO;
    }

    /// The output frame (aspect `width:height`) fitted into `available`, then zoomed and panned.
    fn layout(&self, available: Rect, width: u32, height: u32) -> Rect {
        let aspect = width as f32 / height.max(1) as f32;
        let room = available.shrink(12.0);
        let fit_w = room.width().min(room.height() * aspect).max(16.0);
        let size = egui::vec2(fit_w, fit_w / aspect) * self.zoom;
        Rect::from_center_size(room.center() + self.pan, size)
    }
}

/// Canvas units -> screen.
pub fn to_screen(frame: Rect, p: [f64; 2]) -> Pos2 {
    egui::pos2(
        frame.min.x + (p[0] / CANVAS_SIZE) as f32 * frame.width(),
        frame.min.y + (p[1] / CANVAS_SIZE) as f32 * frame.height(),
    )
}

/// Screen -> canvas units (not clamped).
pub fn to_canvas(frame: Rect, p: Pos2) -> [f64; 2] {
    [
        ((p.x - frame.min.x) / frame.width()) as f64 * CANVAS_SIZE,
        ((p.y - frame.min.y) / frame.height()) as f64 * CANVAS_SIZE,
    ]
}

fn colour(c: [u8; 3]) -> Color32 {
    Color32::from_rgb(c[0], c[1], c[2])
}

/// The curve a track follows, densely sampled (canvas units), for drawing.
fn path_for_display(track: &Track) -> Vec<[f64; 2]> {
    match (track.timing, track.shape) {
        (Timing::Timed, PathShape::Spline) if track.points.len() > 2 => {
            // Timing does not change the curve's shape: sample it finely.
            track.canvas_positions(track.points.len() as u32 * 12).unwrap_or_default()
        }
        _ => track.points.iter().map(|k| [k.x, k.y]).collect(),
    }
}

impl StudioApp {
    pub(super) fn canvas(&mut self, ui: &mut egui::Ui) {
        let available = ui.available_rect_before_wrap();
        let response = ui.allocate_rect(available, Sense::click_and_drag());
        let frame_rect = self.view.layout(available, self.scene.width, self.scene.height);
        self.view.frame_rect = Some(frame_rect);
        let painter = ui.painter_at(available);
        painter.rect_filled(available, 0.0, Color32::from_gray(24));

        self.paint_frame_content(ui, frame_rect);
        self.paint_tracks(&painter, frame_rect);

        self.cursor = response.hover_pos().map(|p| to_canvas(frame_rect, p));
        self.zoom_and_pan(ui, &response, frame_rect);
        self.handle_canvas_input(ui, &response, frame_rect);
    }

    /// Image (or motion preview), then the live flow overlay, inside the output frame.
    fn paint_frame_content(&mut self, ui: &mut egui::Ui, frame_rect: Rect) {
        let painter = ui.painter_at(ui.clip_rect());
        let (w, h, fit) = (self.scene.width, self.scene.height, self.state.fit);
        let uv = Rect::from_min_max(egui::pos2(0.0, 0.0), egui::pos2(1.0, 1.0));
        let frame = self.playback.frame;
        let mut showing_preview = false;
        if self.state.show_preview {
            let points = super::flow_overlay::flow_input(&self.scene)
                .map(|t| t.into_iter().map(|t| t.points).collect::<Vec<_>>());
            let version = self.background_version;
            if let (Some(image), Ok(points)) = (self.background.fitted(w, h, fit).cloned(), points) {
                let id = self.preview.texture(ui.ctx(), &image, version, &points, frame);
                painter.image(id, frame_rect, uv, Color32::WHITE);
                showing_preview = true;
            }
        }
        if !showing_preview {
            match self.background.texture(ui.ctx(), w, h, fit) {
                Some(id) => {
                    painter.image(id, frame_rect, uv, Color32::WHITE);
                }
                None => {
                    painter.rect_filled(frame_rect, 0.0, Color32::from_gray(48));
                }
            }
        }
        if self.state.show_flow {
            self.flow.update(ui.ctx(), &self.scene, self.render_state.as_ref());
            if self.state.flow_blend > 0.0 {
                let clipped = ui.new_child(egui::UiBuilder::new().max_rect(frame_rect));
                let mut clipped = clipped;
                clipped.set_clip_rect(frame_rect.intersect(ui.clip_rect()));
                self.flow.paint(&clipped, frame_rect, frame, self.state.flow_blend, self.render_state.as_ref());
            }
            if self.flow.is_computing() {
                ui.ctx().request_repaint_after(std::time::Duration::from_millis(100));
            }
        }
        painter.rect_stroke(frame_rect, 0.0, Stroke::new(1.0, Color32::from_gray(120)), egui::StrokeKind::Outside);
        if showing_preview {
            let at = frame_rect.left_top() + egui::vec2(8.0, 8.0);
            let galley = painter.layout_no_wrap(PREVIEW_LABEL.into(), egui::FontId::proportional(14.0), Color32::WHITE);
            painter.rect_filled(
                Rect::from_min_size(at, galley.size()).expand(4.0),
                3.0,
                Color32::from_black_alpha(170),
            );
            painter.galley(at, galley, Color32::WHITE);
        } else if self.state.show_preview {
            painter.text(
                frame_rect.left_top() + egui::vec2(8.0, 8.0),
                egui::Align2::LEFT_TOP,
                "Open an image to preview motion",
                egui::FontId::proportional(14.0),
                Color32::WHITE,
            );
        }
    }

    fn paint_tracks(&self, painter: &egui::Painter, frame_rect: Rect) {
        let frames = self.scene.frames;
        for (ti, track) in self.scene.tracks.iter().enumerate() {
            if !track.visible || track.points.is_empty() {
                continue;
            }
            let selected = self.selection.track == Some(ti);
            let c = colour(track.colour);
            let path: Vec<Pos2> = path_for_display(track).into_iter().map(|p| to_screen(frame_rect, p)).collect();
            let width = if selected { 3.0 } else { 2.0 };
            painter.add(egui::Shape::line(path, Stroke::new(width + 2.0, Color32::from_black_alpha(120))));
            let path: Vec<Pos2> = path_for_display(track).into_iter().map(|p| to_screen(frame_rect, p)).collect();
            painter.add(egui::Shape::line(path, Stroke::new(width, c)));
            let positions = track.canvas_positions(frames).unwrap_or_default();
            // One tick per frame shows the speed along the path.
            for p in &positions {
                painter.circle_filled(to_screen(frame_rect, *p), 1.5, c.gamma_multiply(0.8));
            }
            for (pi, k) in track.points.iter().enumerate() {
                let at = to_screen(frame_rect, [k.x, k.y]);
                let is_selected = selected && self.selection.point == Some(pi);
                let radius = if track.points.len() == 1 {
                    6.0
                } else if is_selected {
                    5.5
                } else {
                    4.0
                };
                painter.circle(
                    at,
                    radius,
                    if is_selected { Color32::WHITE } else { c },
                    Stroke::new(1.5, Color32::from_black_alpha(200)),
                );
                if k.hold > 0 {
                    painter.circle_stroke(at, radius + 3.0, Stroke::new(1.0, c));
                }
            }
            if track.points.len() == 1 {
                // A static anchor: a pin cross.
                let at = to_screen(frame_rect, [track.points[0].x, track.points[0].y]);
                painter.line_segment([at - egui::vec2(9.0, 0.0), at + egui::vec2(9.0, 0.0)], Stroke::new(1.5, c));
                painter.line_segment([at - egui::vec2(0.0, 9.0), at + egui::vec2(0.0, 9.0)], Stroke::new(1.5, c));
            }
            if let Some(now) = positions.get(self.playback.frame) {
                let at = to_screen(frame_rect, *now);
                painter.circle_stroke(at, 8.0, Stroke::new(2.5, Color32::WHITE));
                painter.circle_stroke(at, 8.0, Stroke::new(1.5, c));
            }
            if track.locked {
                if let Some(first) = track.points.first() {
                    painter.text(
                        to_screen(frame_rect, [first.x, first.y]) + egui::vec2(8.0, -14.0),
                        egui::Align2::LEFT_BOTTOM,
                        "locked",
                        egui::FontId::proportional(11.0),
                        c,
                    );
                }
            }
        }
        if let super::Gesture::Stroke { samples } = &self.gesture {
            let pts: Vec<Pos2> = samples.iter().map(|s| to_screen(frame_rect, [s.x, s.y])).collect();
            painter.add(egui::Shape::line(pts, Stroke::new(2.0, colour(self.scene.next_colour()))));
        }
        self.paint_layers(painter, frame_rect);
    }

    fn zoom_and_pan(&mut self, ui: &egui::Ui, response: &egui::Response, frame_rect: Rect) {
        if response.hovered() {
            let (scroll, zoom_delta, pointer) =
                ui.input(|i| (i.smooth_scroll_delta.y, i.zoom_delta(), i.pointer.hover_pos()));
            let factor = zoom_delta * (scroll * 0.0015).exp();
            if (factor - 1.0).abs() > 1e-4 {
                let new_zoom = (self.view.zoom * factor).clamp(0.2, 16.0);
                // Keep the point under the pointer where it is.
                if let Some(p) = pointer {
                    let centre = frame_rect.center();
                    let k = new_zoom / self.view.zoom;
                    self.view.pan += (p - centre) * (1.0 - k);
                }
                self.view.zoom = new_zoom;
            }
        }
        if response.dragged_by(egui::PointerButton::Middle) {
            self.view.pan += response.drag_delta();
        }
    }

    /// The keyframe whose handle is under `pos`: (track, point), editable tracks only.
    fn hit_point(&self, frame_rect: Rect, pos: Pos2) -> Option<(usize, usize)> {
        let mut best: Option<(usize, usize, f32)> = None;
        for (ti, track) in self.scene.tracks.iter().enumerate() {
            if !track.visible || track.locked {
                continue;
            }
            for (pi, k) in track.points.iter().enumerate() {
                let d = to_screen(frame_rect, [k.x, k.y]).distance(pos);
                // Ties go to the selected track, then to the later (topmost) one.
                let better = best.is_none_or(|(bt, _, bd)| {
                    d < bd - 0.01
                        || (d <= bd + 0.01 && (self.selection.track == Some(ti) || self.selection.track != Some(bt)))
                });
                if d <= HIT_RADIUS && better {
                    best = Some((ti, pi, d));
                }
            }
        }
        best.map(|(t, p, _)| (t, p))
    }

    /// The visible, unlocked track whose path passes under `pos`.
    fn hit_track(&self, frame_rect: Rect, pos: Pos2) -> Option<usize> {
        let mut best: Option<(usize, f32)> = None;
        for (ti, track) in self.scene.tracks.iter().enumerate() {
            if !track.visible || track.locked {
                continue;
            }
            let path: Vec<Pos2> = path_for_display(track).into_iter().map(|p| to_screen(frame_rect, p)).collect();
            let d = match path.len() {
                0 => continue,
                1 => path[0].distance(pos),
                _ => path.windows(2).map(|w| segment_distance(pos, w[0], w[1])).fold(f32::INFINITY, f32::min),
            };
            if d <= HIT_RADIUS && best.is_none_or(|(_, bd)| d < bd) {
                best = Some((ti, d));
            }
        }
        best.map(|(t, _)| t)
    }

    /// Clamps a canvas position onto the canvas, warning when it had to.
    fn clamped(&mut self, p: [f64; 2]) -> [f64; 2] {
        let (c, was_clamped) = clamp_to_canvas(p[0], p[1]);
        if was_clamped {
            self.notices.warn("a point was clamped to the border of the frame");
        }
        c
    }

    fn handle_canvas_input(&mut self, ui: &egui::Ui, response: &egui::Response, frame_rect: Rect) {
        let (press_origin, press_time, now, shift) =
            ui.input(|i| (i.pointer.press_origin(), i.pointer.press_start_time(), i.time, i.modifiers.shift));
        let pointer = response.interact_pointer_pos();

        if response.drag_started_by(egui::PointerButton::Primary) {
            let origin = press_origin.or(pointer);
            if let Some(origin) = origin {
                self.begin_gesture(frame_rect, origin, press_time.unwrap_or(now));
            }
        }
        if response.dragged_by(egui::PointerButton::Primary) {
            if let Some(p) = pointer {
                self.continue_gesture(frame_rect, p, now);
            }
        }
        if response.drag_stopped() {
            if let Some(p) = pointer {
                self.continue_gesture(frame_rect, p, now);
            }
            self.finish_gesture();
        }
        if response.clicked() {
            if let Some(p) = pointer {
                self.click(frame_rect, p, shift);
            }
        }
        if response.secondary_clicked() {
            if let Some((t, p)) = pointer.and_then(|p| self.hit_point(frame_rect, p)) {
                self.delete_point(t, p);
            }
        }
    }

    fn begin_gesture(&mut self, frame_rect: Rect, origin: Pos2, time: f64) {
        let at = to_canvas(frame_rect, origin);
        self.gesture = match self.state.tool {
            Tool::Select | Tool::Polyline | Tool::Spline | Tool::Anchor => match self.hit_point(frame_rect, origin) {
                Some((track, point)) => {
                    self.selection = Selection { track: Some(track), point: Some(point) };
                    super::Gesture::DragPoint { track, point }
                }
                None => super::Gesture::None,
            },
            Tool::MoveTrack => {
                let hit =
                    self.hit_point(frame_rect, origin).map(|(t, _)| t).or_else(|| self.hit_track(frame_rect, origin));
                match (hit, self.region_at(at)) {
                    (Some(track), _) => {
                        self.selection = Selection { track: Some(track), point: None };
                        super::Gesture::MoveTrack { track, last: at }
                    }
                    (None, Some(region)) => {
                        self.select_region(Some(region));
                        super::Gesture::MoveRegion { region, last: at }
                    }
                    (None, None) => super::Gesture::None,
                }
            }
            Tool::Freehand => super::Gesture::Stroke { samples: vec![StrokeSample { x: at[0], y: at[1], time }] },
            Tool::Lasso => self.begin_lasso(at),
        };
    }

    fn continue_gesture(&mut self, frame_rect: Rect, pos: Pos2, time: f64) {
        let at = to_canvas(frame_rect, pos);
        match self.gesture.clone() {
            super::Gesture::DragPoint { track, point } => {
                let [x, y] = self.clamped(at);
                if let Some(k) = self.scene.tracks.get_mut(track).and_then(|t| t.points.get_mut(point)) {
                    (k.x, k.y) = (x, y);
                }
            }
            super::Gesture::MoveTrack { track, last } => {
                let limited =
                    self.scene.tracks.get_mut(track).is_some_and(|t| t.translate(at[0] - last[0], at[1] - last[1]));
                if limited {
                    self.notices.warn("the track was stopped at the border of the frame");
                }
                self.gesture = super::Gesture::MoveTrack { track, last: at };
            }
            super::Gesture::Stroke { mut samples } => {
                if samples.last().is_none_or(|s| (s.x, s.y) != (at[0], at[1])) {
                    samples.push(StrokeSample { x: at[0], y: at[1], time });
                }
                self.gesture = super::Gesture::Stroke { samples };
            }
            super::Gesture::Lasso { points } => self.gesture = self.extend_lasso(points, at),
            super::Gesture::MoveRegion { region, last } => {
                self.move_region(region, [at[0] - last[0], at[1] - last[1]]);
                self.gesture = super::Gesture::MoveRegion { region, last: at };
            }
            super::Gesture::Retime { .. } | super::Gesture::None => {}
        }
    }

    fn finish_gesture(&mut self) {
        let gesture = std::mem::take(&mut self.gesture);
        if let super::Gesture::Lasso { points } = gesture {
            self.finish_lasso(points);
        } else if let super::Gesture::Stroke { samples } = gesture {
            let last = self.scene.frames.saturating_sub(1) as f64;
            if samples.iter().any(|s| !(0.0..=CANVAS_SIZE).contains(&s.x) || !(0.0..=CANVAS_SIZE).contains(&s.y)) {
                self.notices.warn("the stroke left the frame; its points were clamped to the border");
            }
            let keys = freehand_keyframes(&samples, STROKE_SPACING, 0.0, last);
            if keys.len() >= 2 {
                let name = format!("stroke {}", self.scene.tracks.len() + 1);
                self.scene.tracks.push(Track::new(name, self.scene.next_colour(), keys));
                self.selection = Selection { track: Some(self.scene.tracks.len() - 1), point: None };
            }
        }
        self.gesture = super::Gesture::None;
    }

    fn click(&mut self, frame_rect: Rect, pos: Pos2, shift: bool) {
        let at = to_canvas(frame_rect, pos);
        match self.state.tool {
            Tool::Select | Tool::MoveTrack => {
                if shift {
                    self.insert_on_selected(at);
                } else if let Some((track, point)) = self.hit_point(frame_rect, pos) {
                    self.selection = Selection { track: Some(track), point: Some(point) };
                } else if let Some(track) = self.hit_track(frame_rect, pos) {
                    self.selection = Selection { track: Some(track), point: None };
                } else {
                    self.selection = Selection::default();
                }
            }
            Tool::Polyline | Tool::Spline => {
                if shift {
                    self.insert_on_selected(at);
                    return;
                }
                let [x, y] = self.clamped(at);
                let shape = if self.state.tool == Tool::Spline { PathShape::Spline } else { PathShape::Polyline };
                let target = self.drawing.filter(|&t| self.scene.tracks.get(t).is_some_and(|t| !t.locked));
                match target {
                    Some(t) => {
                        let track = &mut self.scene.tracks[t];
                        track.points.push(Keyframe::at(x, y));
                        if track.points.len() <= 1 {
                            track.shape = shape;
                        }
                        self.selection = Selection { track: Some(t), point: Some(track.points.len() - 1) };
                    }
                    None => self.drawing = Some(self.start_drawn_track(Keyframe::at(x, y), shape)),
                }
            }
            Tool::Anchor => {
                let [x, y] = self.clamped(at);
                let index = self.start_drawn_track(Keyframe::at(x, y), PathShape::Polyline);
                self.scene.tracks[index].name = format!("anchor {}", index + 1);
            }
            Tool::Freehand => {}
            Tool::Lasso => self.lasso_click(frame_rect, pos),
        }
    }

    /// Shift-click: a new keyframe on the selected track's nearest segment.
    fn insert_on_selected(&mut self, at: [f64; 2]) {
        let at = self.clamped(at);
        let Some(t) = self.selection.track else {
            self.notices.warn("select a track first: shift-click inserts a point into the selected track");
            return;
        };
        match self.scene.tracks.get_mut(t) {
            Some(track) if !track.locked => {
                let p = track.insert_point(at);
                self.selection = Selection { track: Some(t), point: Some(p) };
            }
            Some(track) => {
                let name = track.name.clone();
                self.notices.warn(format!("track '{name}' is locked"));
            }
            None => {}
        }
    }
}

fn segment_distance(p: Pos2, a: Pos2, b: Pos2) -> f32 {
    let ab = b - a;
    let len2 = ab.length_sq();
    let u = if len2 > 0.0 { ((p - a).dot(ab) / len2).clamp(0.0, 1.0) } else { 0.0 };
    p.distance(a + ab * u)
}
