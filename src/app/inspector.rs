//! The inspector: clip settings, the image's fit, and the selected track and keyframe
//! (name, shape, timing, start/end, constant speed; position, time, hold, easing).

use eframe::egui;

use crate::flow::preview::FitMode;
use crate::trajectory::{Easing, PathShape, Timing, CANVAS_SIZE};

use super::StudioApp;

/// Output sizes offered (Tora/CogVideoX first).
const SIZES: [(u32, u32, &str); 6] = [
    (720, 480, "720x480 (Tora / CogVideoX)"),
    (480, 720, "480x720 (portrait)"),
    (1280, 720, "1280x720"),
    (1024, 576, "1024x576"),
    (640, 360, "640x360"),
    (512, 512, "512x512"),
];

impl StudioApp {
    pub(super) fn inspector(&mut self, ui: &mut egui::Ui) {
        egui::ScrollArea::vertical().auto_shrink([false, false]).show(ui, |ui| {
            self.clip_section(ui);
            ui.separator();
            self.track_section(ui);
            ui.separator();
            self.keyframe_section(ui);
            ui.separator();
            self.layer_inspector(ui);
        });
    }

    fn clip_section(&mut self, ui: &mut egui::Ui) {
        ui.heading("Clip");
        let current = format!("{}x{}", self.scene.width, self.scene.height);
        egui::ComboBox::from_label("size").selected_text(current).show_ui(ui, |ui| {
            for (w, h, label) in SIZES {
                if ui.selectable_label(self.scene.width == w && self.scene.height == h, label).clicked() {
                    (self.scene.width, self.scene.height) = (w, h);
                }
            }
        });
        ui.horizontal(|ui| {
            ui.label("frames");
            ui.add(egui::DragValue::new(&mut self.scene.frames).range(2..=400));
            ui.label("fps");
            ui.add(egui::DragValue::new(&mut self.scene.fps).range(1.0..=60.0).speed(0.1));
        });
        ui.horizontal(|ui| {
            ui.label("image");
            ui.selectable_value(&mut self.state.fit, FitMode::Crop, "crop")
                .on_hover_text("fill the frame, cut the overhang");
            ui.selectable_value(&mut self.state.fit, FitMode::Fit, "fit").on_hover_text("whole image, letterboxed");
        });
        ui.horizontal(|ui| {
            if ui.button("Open image...").clicked() {
                self.open_image_dialog();
            }
            if ui.add_enabled(self.background.is_set(), egui::Button::new("Clear")).clicked() {
                self.clear_image();
            }
        });
    }

    fn track_section(&mut self, ui: &mut egui::Ui) {
        let frames = self.scene.frames;
        let Some(index) = self.selection.track.filter(|&t| t < self.scene.tracks.len()) else {
            ui.weak("Select a track to edit it.");
            return;
        };
        let mut constant_speed = false;
        let track = &mut self.scene.tracks[index];
        ui.heading("Track");
        ui.add_enabled_ui(!track.locked, |ui| {
            ui.horizontal(|ui| {
                ui.label("name");
                ui.text_edit_singleline(&mut track.name);
            });
            ui.horizontal(|ui| {
                ui.label("path");
                ui.selectable_value(&mut track.shape, PathShape::Polyline, "polyline");
                ui.selectable_value(&mut track.shape, PathShape::Spline, "spline");
            });
            ui.horizontal(|ui| {
                ui.label("timing");
                ui.selectable_value(&mut track.timing, Timing::Timed, "timed");
                ui.selectable_value(&mut track.timing, Timing::Reference, "point file")
                    .on_hover_text("exactly Tora's point-file resampling: keyframe times and holds are ignored");
            });
            if track.timing == Timing::Timed {
                let last = frames.saturating_sub(1);
                ui.horizontal(|ui| {
                    ui.label("moves from frame");
                    ui.add(egui::DragValue::new(&mut track.start_frame).range(0..=last));
                    ui.label("to");
                    let mut end = track.last_frame(frames);
                    if ui.add(egui::DragValue::new(&mut end).range(0..=last)).changed() {
                        track.end_frame = if end == last { None } else { Some(end) };
                    }
                });
                if ui
                    .button("Constant speed")
                    .on_hover_text("re-time by arc length between the first and last keyframe")
                    .clicked()
                {
                    constant_speed = true;
                }
            }
        });
        if constant_speed {
            self.scene.tracks[index].retime_constant_speed();
        }
    }

    fn keyframe_section(&mut self, ui: &mut egui::Ui) {
        let frames = self.scene.frames;
        let (Some(t), Some(p)) = (self.selection.track, self.selection.point) else {
            ui.weak("Select a point (click it on the canvas or the timeline).");
            return;
        };
        let Some(track) = self.scene.tracks.get(t) else { return };
        if p >= track.points.len() {
            return;
        }
        let times = track.keyframe_times(frames);
        let is_last = p + 1 == track.points.len();
        let locked = track.locked;
        let timed = track.timing == Timing::Timed;
        let mut delete = false;
        let mut set_frame = None;
        ui.heading(format!("Point {} of {}", p + 1, track.points.len()));
        ui.add_enabled_ui(!locked, |ui| {
            let key = &mut self.scene.tracks[t].points[p];
            ui.horizontal(|ui| {
                ui.label("x");
                ui.add(egui::DragValue::new(&mut key.x).range(0.0..=CANVAS_SIZE).speed(0.5));
                ui.label("y");
                ui.add(egui::DragValue::new(&mut key.y).range(0.0..=CANVAS_SIZE).speed(0.5));
            });
            if timed {
                ui.horizontal(|ui| {
                    let mut fixed = key.frame.is_some();
                    if ui.checkbox(&mut fixed, "reached at frame").changed() {
                        key.frame = if fixed { Some(times[p].round()) } else { None };
                    }
                    let mut f = times[p];
                    if ui
                        .add_enabled(
                            fixed,
                            egui::DragValue::new(&mut f)
                                .range(0.0..=frames.saturating_sub(1) as f64)
                                .speed(0.2)
                                .max_decimals(1),
                        )
                        .changed()
                    {
                        set_frame = Some(f);
                    }
                });
                ui.horizontal(|ui| {
                    ui.label("hold (frames)");
                    ui.add(egui::DragValue::new(&mut key.hold).range(0..=frames));
                });
                if !is_last {
                    egui::ComboBox::from_label("easing to next").selected_text(key.easing.label()).show_ui(ui, |ui| {
                        for e in Easing::ALL {
                            ui.selectable_value(&mut key.easing, e, e.label());
                        }
                    });
                }
            }
            if ui.button("Delete point").clicked() {
                delete = true;
            }
        });
        if let Some(f) = set_frame {
            self.scene.tracks[t].set_keyframe_frame(p, f, frames);
        }
        if delete {
            self.delete_point(t, p);
        }
    }
}
