//! The lasso tool and how regions and the camera layer look on the canvas. A drag with the lasso
//! outlines an object; the clicks that follow give it a path, exactly like a polyline track.
//! Bad outlines (too few points, no area, off the image) are refused with a notice.

use eframe::egui::{self, Color32, Pos2, Rect, Stroke};

use crate::trajectory::{clamp_to_canvas, CameraLayer, Keyframe, Region, CANVAS_SIZE};

use super::canvas::{to_canvas, to_screen, Gesture};
use super::{Selection, StudioApp};

/// Lasso samples closer than this (canvas units) are merged.
const LASSO_SPACING: f64 = 2.0;

/// Which layer object (region or camera) is selected, and what the lasso is doing.
#[derive(Debug, Default, Clone)]
pub struct LayerEditing {
    /// The selected region (tracks are selected through `Selection`).
    pub region: Option<usize>,
    /// The camera layer is selected.
    pub camera: bool,
    /// The region whose path the lasso tool's clicks extend (right after its outline was drawn).
    pub drawing_path: Option<usize>,
}

fn colour(c: [u8; 3]) -> Color32 {
    Color32::from_rgb(c[0], c[1], c[2])
}

impl StudioApp {
    /// The selected region, if its index is still valid and no track is selected.
    pub(super) fn selected_region(&self) -> Option<usize> {
        self.layers.region.filter(|&r| r < self.scene.regions.len() && self.selection.track.is_none())
    }

    pub(super) fn select_region(&mut self, region: Option<usize>) {
        self.selection = Selection::default();
        self.layers = super::region_tool::LayerEditing { region, camera: false, drawing_path: None };
    }

    pub(super) fn begin_lasso(&mut self, at: [f64; 2]) -> Gesture {
        self.layers.drawing_path = None;
        Gesture::Lasso { points: vec![at] }
    }

    pub(super) fn extend_lasso(&mut self, mut points: Vec<[f64; 2]>, at: [f64; 2]) -> Gesture {
        let far = points.last().is_none_or(|p| (p[0] - at[0]).hypot(p[1] - at[1]) >= LASSO_SPACING);
        if far {
            points.push(at);
        }
        Gesture::Lasso { points }
    }

    /// Turns a finished lasso into a region: refused (with the reason) when it lies off the
    /// image or encloses nothing; parts outside the image are clamped to its border.
    pub(super) fn finish_lasso(&mut self, points: Vec<[f64; 2]>) -> bool {
        let name = format!("region {}", self.scene.regions.len() + 1);
        let colour = self.scene.next_colour();
        let on_image = |p: &[f64; 2]| p.iter().all(|v| (0.0..=CANVAS_SIZE).contains(v));
        let outline: Vec<[f64; 2]> = if points.iter().any(on_image) {
            if !points.iter().all(on_image) {
                self.notices.warn("the lasso left the image; its outline was clamped to the border");
            }
            points.iter().map(|p| clamp_to_canvas(p[0], p[1]).0).collect()
        } else {
            points
        };
        let region = Region::new(name, colour, outline);
        if let Err(e) = region.validate() {
            self.notices.error(format!("No region added: {e}"));
            return false;
        }
        self.scene.regions.push(region);
        let index = self.scene.regions.len() - 1;
        self.select_region(Some(index));
        self.layers.drawing_path = Some(index);
        true
    }

    /// A click with the lasso tool: the next point of the region being given a path, else
    /// selects the region under the pointer.
    pub(super) fn lasso_click(&mut self, frame_rect: Rect, pos: Pos2) {
        let at = to_canvas(frame_rect, pos);
        let target = self.layers.drawing_path.filter(|&r| self.scene.regions.get(r).is_some_and(|r| !r.path.locked));
        if let Some(r) = target {
            let (p, clamped) = clamp_to_canvas(at[0], at[1]);
            if clamped {
                self.notices.warn("a point was clamped to the border of the frame");
            }
            self.scene.regions[r].path.points.push(Keyframe::at(p[0], p[1]));
            return;
        }
        let hit = (0..self.scene.regions.len()).rev().find(|&r| {
            let region = &self.scene.regions[r];
            region.path.visible && region.contains(at)
        });
        self.select_region(hit);
    }

    /// The topmost visible, unlocked region containing canvas point `at`.
    pub(super) fn region_at(&self, at: [f64; 2]) -> Option<usize> {
        (0..self.scene.regions.len()).rev().find(|&r| {
            let region = &self.scene.regions[r];
            region.path.visible && !region.path.locked && region.contains(at)
        })
    }

    /// Moves a region's outline and path by `d` (canvas units), stopping at the image border.
    pub(super) fn move_region(&mut self, index: usize, d: [f64; 2]) {
        let Some(region) = self.scene.regions.get_mut(index) else { return };
        let points: Vec<[f64; 2]> =
            region.outline.iter().copied().chain(region.path.points.iter().map(|k| [k.x, k.y])).collect();
        let limit = |axis: usize, want: f64| {
            let lo = points.iter().map(|p| p[axis]).fold(f64::MAX, f64::min);
            let hi = points.iter().map(|p| p[axis]).fold(f64::MIN, f64::max);
            want.clamp(-lo, CANVAS_SIZE - hi)
        };
        let (dx, dy) = (limit(0, d[0]), limit(1, d[1]));
        if (dx, dy) != (d[0], d[1]) {
            self.notices.warn("the region was stopped at the border of the image");
        }
        region.translate(dx, dy);
    }

    /// Replaces the camera layer after checking it; a bad one is reported and nothing changes.
    pub fn set_camera(&mut self, camera: Option<CameraLayer>) -> bool {
        let (frames, width, height) = (self.scene.frames, self.scene.width, self.scene.height);
        if let Some(Err(e)) = camera.as_ref().map(|c| c.expand(frames, width, height)) {
            self.notices.error(format!("Camera not changed: {e}"));
            return false;
        }
        self.scene.camera = camera;
        true
    }

    /// Adds the default camera layer (a gentle push-in) and selects it.
    pub fn add_camera(&mut self) -> bool {
        if self.scene.camera.is_some() {
            self.notices.info("the scene already has a camera layer; edit it in the inspector");
        } else if !self.set_camera(Some(CameraLayer::default())) {
            return false;
        }
        self.selection = Selection::default();
        self.layers = LayerEditing { region: None, camera: true, drawing_path: None };
        true
    }

    /// Replaces region `index` after checking it; a bad edit is reported and nothing changes.
    pub fn set_region(&mut self, index: usize, region: Region) -> bool {
        if let Err(e) = region.validate().and_then(|_| region.expand(self.scene.frames).map(|_| ())) {
            self.notices.error(format!("Region not changed: {e}"));
            return false;
        }
        match self.scene.regions.get_mut(index) {
            Some(r) => {
                *r = region;
                true
            }
            None => false,
        }
    }

    pub fn delete_region(&mut self, index: usize) {
        if index < self.scene.regions.len() {
            self.scene.regions.remove(index);
            self.layers = LayerEditing::default();
        }
    }

    /// Regions (outline, sample points, path, where they are now), the camera grid's motion,
    /// and a lasso in progress.
    pub(super) fn paint_layers(&self, painter: &egui::Painter, frame_rect: Rect) {
        let frames = self.scene.frames;
        let frame = self.playback.frame;
        let selected = self.selected_region();
        for (ri, region) in self.scene.regions.iter().enumerate() {
            if !region.path.visible {
                continue;
            }
            let c = colour(region.path.colour);
            let is_selected = selected == Some(ri);
            let outline: Vec<Pos2> = region.outline.iter().map(|p| to_screen(frame_rect, *p)).collect();
            let width = if is_selected { 2.5 } else { 1.5 };
            painter.add(egui::Shape::closed_line(
                outline.clone(),
                Stroke::new(width + 2.0, Color32::from_black_alpha(110)),
            ));
            painter.add(egui::Shape::closed_line(outline, Stroke::new(width, c)));
            for s in region.sample_points() {
                painter.circle_filled(to_screen(frame_rect, s), 2.0, c);
            }
            let path: Vec<Pos2> = region.path.points.iter().map(|k| to_screen(frame_rect, [k.x, k.y])).collect();
            painter.add(egui::Shape::line(path.clone(), Stroke::new(2.0, c)));
            for at in path {
                painter.circle(at, 4.0, c, Stroke::new(1.5, Color32::from_black_alpha(200)));
            }
            // The outline where the region is at the current frame.
            if let Ok(positions) = region.path.canvas_positions(frames) {
                if let (Some(now), Some(start)) = (positions.get(frame), positions.first()) {
                    let d = [now[0] - start[0], now[1] - start[1]];
                    if d != [0.0, 0.0] {
                        let moved: Vec<Pos2> =
                            region.outline.iter().map(|p| to_screen(frame_rect, [p[0] + d[0], p[1] + d[1]])).collect();
                        painter.add(egui::Shape::closed_line(moved, Stroke::new(1.0, c.gamma_multiply(0.7))));
                    }
                }
            }
        }
        if let Some(camera) = &self.scene.camera {
            let grey = colour(crate::trajectory::CAMERA_COLOUR);
            let tracks = camera.expand(frames, self.scene.width, self.scene.height).unwrap_or_default();
            for t in &tracks {
                let (Some(first), Some(now)) = (t.points.first(), t.points.get(frame)) else { continue };
                let (a, b) = (to_screen(frame_rect, [first.x, first.y]), to_screen(frame_rect, [now.x, now.y]));
                painter.line_segment([a, b], Stroke::new(1.0, grey.gamma_multiply(0.8)));
                painter.circle_filled(b, 2.5, grey);
            }
        }
        if let Gesture::Lasso { points } = &self.gesture {
            let pts: Vec<Pos2> = points.iter().map(|p| to_screen(frame_rect, *p)).collect();
            painter.add(egui::Shape::closed_line(pts, Stroke::new(1.5, Color32::WHITE)));
        }
    }
}
