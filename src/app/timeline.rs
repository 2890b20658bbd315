//! The timeline: frame scrubber and play, one lane per track with its keyframes at the frames
//! they are reached (drag them in time), its motion range and its holds.

use eframe::egui::{self, Color32, Pos2, Rect, Sense, Stroke};

use crate::trajectory::{reference_canvas_points, Scene, Timing, Track};

use super::canvas::Gesture;
use super::{Selection, StudioApp};

const NAME_WIDTH: f32 = 110.0;
const LANE_HEIGHT: f32 = 20.0;
const HANDLE_RADIUS: f32 = 5.0;

/// Where the lanes were drawn last frame (for hit tests and the tests' pointer positions).
#[derive(Debug, Default, Clone)]
pub struct TimelineLayout {
    lanes: Vec<(usize, Rect)>,
}

impl TimelineLayout {
    fn lane(&self, track: usize) -> Option<Rect> {
        self.lanes.iter().find(|(t, _)| *t == track).map(|(_, r)| *r)
    }

    pub fn frame_pos(&self, track: usize, frame: f64, frames: u32) -> Option<Pos2> {
        let lane = self.lane(track)?;
        Some(egui::pos2(frame_x(lane, frame, frames), lane.center().y))
    }

    pub fn keyframe_pos(&self, scene: &Scene, track: usize, point: usize) -> Option<Pos2> {
        let t = scene.tracks.get(track)?;
        let time = keyframe_display_times(t, scene.frames).get(point).copied().flatten()?;
        self.frame_pos(track, time, scene.frames)
    }
}

fn frame_x(lane: Rect, frame: f64, frames: u32) -> f32 {
    let last = frames.saturating_sub(1).max(1) as f32;
    lane.min.x + HANDLE_RADIUS + (frame as f32 / last) * (lane.width() - 2.0 * HANDLE_RADIUS)
}

fn x_frame(lane: Rect, x: f32, frames: u32) -> f64 {
    let last = frames.saturating_sub(1).max(1) as f32;
    (((x - lane.min.x - HANDLE_RADIUS) / (lane.width() - 2.0 * HANDLE_RADIUS)) * last) as f64
}

/// When each keyframe is reached. Timed tracks: as the sampler places them. Reference tracks
/// (Tora point files): the frame at which Tora's resampling shows each original point, `None`
/// for points it drops.
pub fn keyframe_display_times(track: &Track, frames: u32) -> Vec<Option<f64>> {
    match track.timing {
        Timing::Timed => track.keyframe_times(frames).into_iter().map(Some).collect(),
        Timing::Reference => {
            let resampled = reference_canvas_points(&track.name, &track.integer_points(), frames).unwrap_or_default();
            let mut next = 0;
            track
                .integer_points()
                .iter()
                .map(|p| {
                    let found = resampled[next.min(resampled.len())..].iter().position(|q| q == p).map(|i| i + next);
                    if let Some(f) = found {
                        next = f + 1;
                    }
                    found.map(|f| f as f64)
                })
                .collect()
        }
    }
}

impl StudioApp {
    pub(super) fn timeline_ui(&mut self, ui: &mut egui::Ui) {
        let frames = self.scene.frames;
        let last = frames.saturating_sub(1) as usize;
        ui.horizontal(|ui| {
            let label = if self.playback.playing { "Pause" } else { "Play" };
            if ui.button(label).on_hover_text("Space").clicked() {
                self.playback.playing = !self.playback.playing;
            }
            if ui.button("|<").on_hover_text("first frame").clicked() {
                self.playback.frame = 0;
            }
            ui.add(egui::Slider::new(&mut self.playback.frame, 0..=last).text(format!("frame of {frames}")));
            ui.separator();
            ui.label(format!("{:.1} s at {} fps", frames as f32 / self.scene.fps, self.scene.fps));
        });
        ui.separator();
        self.timeline.lanes.clear();
        egui::ScrollArea::vertical().auto_shrink([false, false]).show(ui, |ui| {
            for index in 0..self.scene.tracks.len() {
                self.lane_ui(ui, index);
            }
            self.layer_lanes(ui, NAME_WIDTH, LANE_HEIGHT);
            if !self.scene.has_motion() {
                ui.weak("No tracks yet: pick the Polyline or Freehand tool and draw on the canvas.");
            }
        });
    }

    fn lane_ui(&mut self, ui: &mut egui::Ui, index: usize) {
        let frames = self.scene.frames;
        ui.horizontal(|ui| {
            let track = &self.scene.tracks[index];
            let name = egui::RichText::new(&track.name).color(Color32::from_rgb(
                track.colour[0],
                track.colour[1],
                track.colour[2],
            ));
            let selected = self.selection.track == Some(index);
            if ui.add_sized([NAME_WIDTH, LANE_HEIGHT], egui::Button::selectable(selected, name).truncate()).clicked() {
                self.selection = Selection { track: Some(index), point: None };
            }
            let (lane, response) = ui
                .allocate_exact_size(egui::vec2(ui.available_width().max(60.0), LANE_HEIGHT), Sense::click_and_drag());
            self.timeline.lanes.push((index, lane));
            self.paint_lane(ui, index, lane);
            self.lane_input(ui, index, lane, &response);
            let _ = frames;
        });
    }

    fn paint_lane(&self, ui: &egui::Ui, index: usize, lane: Rect) {
        let frames = self.scene.frames;
        let track = &self.scene.tracks[index];
        let painter = ui.painter_at(lane.expand(2.0));
        let c = Color32::from_rgb(track.colour[0], track.colour[1], track.colour[2]);
        painter.rect_filled(lane, 3.0, ui.visuals().extreme_bg_color);
        let times = keyframe_display_times(track, frames);
        let y = lane.center().y;
        if track.timing == Timing::Timed {
            let start = track.start_frame as f64;
            let end = track.last_frame(frames) as f64;
            let band =
                Rect::from_x_y_ranges(frame_x(lane, start, frames)..=frame_x(lane, end, frames), (y - 3.0)..=(y + 3.0));
            painter.rect_filled(band, 2.0, c.gamma_multiply(0.35));
            for (k, t) in track.points.iter().zip(&times) {
                if let (Some(t), true) = (t, k.hold > 0) {
                    let hold = Rect::from_x_y_ranges(
                        frame_x(lane, *t, frames)..=frame_x(lane, t + k.hold as f64, frames),
                        (y - 6.0)..=(y + 6.0),
                    );
                    painter.rect_filled(hold, 2.0, c.gamma_multiply(0.6));
                }
            }
        }
        for (pi, t) in times.iter().enumerate() {
            let Some(t) = t else { continue };
            let at = egui::pos2(frame_x(lane, *t, frames), y);
            let selected = self.selection.track == Some(index) && self.selection.point == Some(pi);
            let r = if selected { HANDLE_RADIUS + 1.5 } else { HANDLE_RADIUS };
            let diamond = vec![
                at + egui::vec2(0.0, -r),
                at + egui::vec2(r, 0.0),
                at + egui::vec2(0.0, r),
                at + egui::vec2(-r, 0.0),
            ];
            let fill = if track.timing == Timing::Reference { c.gamma_multiply(0.5) } else { c };
            let explicitly_timed = track.points.get(pi).is_some_and(|k| k.frame.is_some());
            let outline = if selected {
                Color32::WHITE
            } else if explicitly_timed {
                Color32::from_gray(230)
            } else {
                Color32::from_black_alpha(200)
            };
            painter.add(egui::Shape::convex_polygon(diamond, fill, Stroke::new(1.0, outline)));
        }
        let playhead = frame_x(lane, self.playback.frame as f64, frames);
        painter.line_segment(
            [egui::pos2(playhead, lane.min.y), egui::pos2(playhead, lane.max.y)],
            Stroke::new(1.5, Color32::from_rgb(255, 210, 80)),
        );
    }

    fn lane_input(&mut self, ui: &egui::Ui, index: usize, lane: Rect, response: &egui::Response) {
        let frames = self.scene.frames;
        let last = frames.saturating_sub(1) as f64;
        if response.drag_started_by(egui::PointerButton::Primary) {
            let origin = ui.input(|i| i.pointer.press_origin()).or(response.interact_pointer_pos());
            let track = &self.scene.tracks[index];
            let hit = origin.and_then(|o| {
                keyframe_display_times(track, frames)
                    .iter()
                    .enumerate()
                    .filter_map(|(pi, t)| t.map(|t| (pi, (frame_x(lane, t, frames) - o.x).abs())))
                    .filter(|(_, d)| *d <= HANDLE_RADIUS + 2.0)
                    .min_by(|a, b| a.1.total_cmp(&b.1))
                    .map(|(pi, _)| pi)
            });
            match hit {
                Some(point) if track.timing == Timing::Timed && !track.locked => {
                    self.selection = Selection { track: Some(index), point: Some(point) };
                    self.gesture = Gesture::Retime { track: index, point };
                }
                Some(_) if track.locked => self.notices.warn(format!("track '{}' is locked", track.name)),
                Some(_) => self.notices.warn("reference-timed tracks (imported point files) follow Tora's own timing; switch the track to timed to retime it"),
                None => {}
            }
        }
        if let (Gesture::Retime { track, point }, true) = (&self.gesture, response.dragged() || response.drag_stopped())
        {
            let (track, point) = (*track, *point);
            if track == index {
                if let Some(x) = response.interact_pointer_pos().map(|p| p.x) {
                    let frame = x_frame(lane, x, frames).round().clamp(0.0, last);
                    if let Some(t) = self.scene.tracks.get_mut(track) {
                        t.set_keyframe_frame(point, frame, frames);
                    }
                    self.playback.frame = frame as usize;
                }
            }
        }
        if response.drag_stopped() && matches!(self.gesture, Gesture::Retime { .. }) {
            self.gesture = Gesture::None;
        }
        // Click or drag on empty lane: scrub.
        if response.clicked() || (response.dragged() && matches!(self.gesture, Gesture::None)) {
            if let Some(x) = response.interact_pointer_pos().map(|p| p.x) {
                self.playback.frame = x_frame(lane, x, frames).round().clamp(0.0, last) as usize;
            }
            if response.clicked() {
                self.selection.track = Some(index);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trajectory::Keyframe;

    #[test]
    fn reference_tracks_show_when_tora_reaches_each_point() {
        // 3 points over 5 frames: Tora in-fills one point per segment.
        let t = Track::from_reference_points("r", [0, 0, 0], &[[0, 0], [10, 0], [20, 0]]);
        assert_eq!(keyframe_display_times(&t, 5), vec![Some(0.0), Some(2.0), Some(4.0)]);
        let timed = Track::new("t", [0, 0, 0], vec![Keyframe::at(0.0, 0.0), Keyframe::at(5.0, 0.0)]);
        assert_eq!(keyframe_display_times(&timed, 9), vec![Some(0.0), Some(8.0)]);
    }
}
