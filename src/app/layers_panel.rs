//! Regions and the camera layer in the panels: one row each in the tracks panel, their settings
//! in the inspector (a region's sample count N, timing; the camera's pan, zoom, rotation, frames,
//! easing, density) and one lane each in the timeline. Edits go through `set_region` /
//! `set_camera`, so a bad value is reported and changes nothing.

use eframe::egui::{self, Color32, Rect, Stroke};

use crate::trajectory::{Easing, MAX_CAMERA_DENSITY, MAX_REGION_SAMPLES};

use super::region_tool::LayerEditing;
use super::{StudioApp, Tool};

/// A timeline lane of a region (`region: Some`) or the camera (`None`).
struct Lane {
    name: String,
    colour: [u8; 3],
    /// First and last frame of the motion.
    range: (f64, f64),
    keyframes: Vec<f64>,
    region: Option<usize>,
}

impl StudioApp {
    /// Rows for the regions and the camera, above the track list.
    pub(super) fn layer_rows(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            if ui.button("+ Region").on_hover_text("lasso an object on the image, then click its path").clicked() {
                self.set_tool(Tool::Lasso);
            }
            if ui
                .add_enabled(self.scene.camera.is_none(), egui::Button::new("+ Camera"))
                .on_hover_text("camera motion over the whole frame: pan, zoom, rotate")
                .clicked()
            {
                self.add_camera();
            }
        });
        let selected = self.selected_region();
        let mut select = None;
        let mut delete = None;
        for (index, region) in self.scene.regions.iter_mut().enumerate() {
            ui.horizontal(|ui| {
                ui.color_edit_button_srgb(&mut region.path.colour);
                let label = format!("{} (region, {} pts)", region.path.name, region.samples);
                if ui.selectable_label(selected == Some(index), label).clicked() {
                    select = Some(index);
                }
            });
            ui.horizontal(|ui| {
                ui.checkbox(&mut region.path.visible, "show");
                ui.checkbox(&mut region.path.locked, "lock");
                if ui.add(egui::Button::new("Delete").small()).clicked() {
                    delete = Some(index);
                }
            });
        }
        let mut remove_camera = false;
        if self.scene.camera.is_some() {
            ui.horizontal(|ui| {
                if ui.selectable_label(self.layers.camera && self.selection.track.is_none(), "camera layer").clicked() {
                    self.selection = super::Selection::default();
                    self.layers = LayerEditing { region: None, camera: true, drawing_path: None };
                }
                if ui.add(egui::Button::new("Delete").small()).clicked() {
                    remove_camera = true;
                }
            });
        }
        if let Some(i) = select {
            self.select_region(Some(i));
        }
        if let Some(i) = delete {
            self.delete_region(i);
        }
        if remove_camera {
            self.scene.camera = None;
            self.layers.camera = false;
        }
        if !self.scene.regions.is_empty() || self.scene.camera.is_some() {
            ui.separator();
        }
    }

    /// The selected region's or the camera's settings.
    pub(super) fn layer_inspector(&mut self, ui: &mut egui::Ui) {
        if let Some(index) = self.selected_region() {
            self.region_section(ui, index);
        } else if self.layers.camera && self.selection.track.is_none() {
            self.camera_section(ui);
        }
    }

    fn region_section(&mut self, ui: &mut egui::Ui, index: usize) {
        let frames = self.scene.frames;
        let last = frames.saturating_sub(1);
        let mut region = self.scene.regions[index].clone();
        ui.heading("Region");
        ui.add_enabled_ui(!region.path.locked, |ui| {
            ui.horizontal(|ui| {
                ui.label("name");
                ui.text_edit_singleline(&mut region.path.name);
            });
            ui.horizontal(|ui| {
                ui.label("points (N)");
                ui.add(egui::Slider::new(&mut region.samples, 1..=MAX_REGION_SAMPLES).logarithmic(true))
                    .on_hover_text("how many tracks the region becomes: points spread evenly inside it");
            });
            ui.horizontal(|ui| {
                ui.label("moves from frame");
                ui.add(egui::DragValue::new(&mut region.path.start_frame).range(0..=last));
                ui.label("to");
                let mut end = region.path.last_frame(frames);
                if ui.add(egui::DragValue::new(&mut end).range(0..=last)).changed() {
                    region.path.end_frame = if end == last { None } else { Some(end) };
                }
            });
            if let Some(first) = region.path.points.first_mut() {
                let easing = egui::ComboBox::from_label("easing of the first move");
                easing.selected_text(first.easing.label()).show_ui(ui, |ui| {
                    for e in Easing::ALL {
                        ui.selectable_value(&mut first.easing, e, e.label());
                    }
                });
            }
            ui.label(format!(
                "path: {} point(s); click on the canvas with the Lasso tool to add more",
                region.path.points.len()
            ));
            ui.horizontal(|ui| {
                if ui.button("Extend path").on_hover_text("the next clicks (Lasso tool) add path points").clicked() {
                    self.set_tool(Tool::Lasso);
                    self.layers.drawing_path = Some(index);
                }
                if region.path.points.len() > 1 && ui.button("Remove last point").clicked() {
                    region.path.points.pop();
                }
            });
        });
        if region != self.scene.regions[index] {
            self.set_region(index, region);
        }
    }

    fn camera_section(&mut self, ui: &mut egui::Ui) {
        let Some(mut camera) = self.scene.camera.clone() else { return };
        let last = self.scene.frames.saturating_sub(1);
        ui.heading("Camera");
        ui.horizontal(|ui| {
            ui.label("pan");
            ui.add(egui::DragValue::new(&mut camera.pan_direction).range(-360.0..=360.0).suffix("°"))
                .on_hover_text("direction the camera moves: 0 right, 90 down");
            ui.add(egui::DragValue::new(&mut camera.pan_distance).range(0.0..=256.0).speed(0.5))
                .on_hover_text("distance in canvas units (256 = one frame width)");
        });
        ui.horizontal(|ui| {
            ui.label("zoom");
            ui.add(egui::DragValue::new(&mut camera.zoom).range(0.0..=8.0).speed(0.01).max_decimals(3))
                .on_hover_text("factor at the end: above 1 zooms in, below 1 zooms out");
            ui.label("rotate");
            ui.add(egui::DragValue::new(&mut camera.rotate).range(-180.0..=180.0).suffix("°"));
        });
        ui.horizontal(|ui| {
            ui.label("frames");
            ui.add(egui::DragValue::new(&mut camera.start_frame).range(0..=last));
            ui.label("to");
            let mut end = camera.end_frame.unwrap_or(last).min(last);
            if ui.add(egui::DragValue::new(&mut end).range(0..=last)).changed() {
                camera.end_frame = if end == last { None } else { Some(end) };
            }
        });
        egui::ComboBox::from_label("camera easing").selected_text(camera.easing.label()).show_ui(ui, |ui| {
            for e in Easing::ALL {
                ui.selectable_value(&mut camera.easing, e, e.label());
            }
        });
        ui.horizontal(|ui| {
            ui.label("grid");
            ui.add(egui::Slider::new(&mut camera.density, 2..=MAX_CAMERA_DENSITY))
                .on_hover_text("grid points per side; points carried out of the frame are dropped");
        });
        if Some(&camera) != self.scene.camera.as_ref() {
            self.set_camera(Some(camera));
        }
    }

    /// One lane per region (its motion range and path keyframes) and one for the camera.
    pub(super) fn layer_lanes(&mut self, ui: &mut egui::Ui, name_width: f32, lane_height: f32) {
        let frames = self.scene.frames;
        let last = frames.saturating_sub(1).max(1) as f32;
        let mut lanes: Vec<Lane> = self
            .scene
            .regions
            .iter()
            .enumerate()
            .map(|(i, r)| Lane {
                name: r.path.name.clone(),
                colour: r.path.colour,
                range: (r.path.start_frame as f64, r.path.last_frame(frames) as f64),
                keyframes: r.path.keyframe_times(frames),
                region: Some(i),
            })
            .collect();
        if let Some(c) = &self.scene.camera {
            let end = c.end_frame.unwrap_or(frames - 1).min(frames - 1) as f64;
            lanes.push(Lane {
                name: "camera".into(),
                colour: crate::trajectory::CAMERA_COLOUR,
                range: (c.start_frame as f64, end),
                keyframes: Vec::new(),
                region: None,
            });
        }
        for Lane { name, colour: c, range: (start, end), keyframes: times, region } in lanes {
            ui.horizontal(|ui| {
                let colour = Color32::from_rgb(c[0], c[1], c[2]);
                let selected = match region {
                    Some(r) => self.selected_region() == Some(r),
                    None => self.layers.camera && self.selection.track.is_none(),
                };
                let label = egui::RichText::new(&name).color(colour);
                if ui
                    .add_sized([name_width, lane_height], egui::Button::selectable(selected, label).truncate())
                    .clicked()
                {
                    match region {
                        Some(r) => self.select_region(Some(r)),
                        None => {
                            self.selection = super::Selection::default();
                            self.layers = LayerEditing { region: None, camera: true, drawing_path: None };
                        }
                    }
                }
                let (lane, _) = ui
                    .allocate_exact_size(egui::vec2(ui.available_width().max(60.0), lane_height), egui::Sense::hover());
                let painter = ui.painter_at(lane.expand(2.0));
                painter.rect_filled(lane, 3.0, ui.visuals().extreme_bg_color);
                let x = |f: f64| lane.min.x + 5.0 + (f as f32 / last) * (lane.width() - 10.0);
                let y = lane.center().y;
                painter.rect_filled(
                    Rect::from_x_y_ranges(x(start)..=x(end), (y - 3.0)..=(y + 3.0)),
                    2.0,
                    colour.gamma_multiply(0.35),
                );
                for t in times {
                    painter.circle(egui::pos2(x(t), y), 4.0, colour, Stroke::new(1.0, Color32::from_black_alpha(200)));
                }
                let now = x(self.playback.frame as f64);
                painter.line_segment(
                    [egui::pos2(now, lane.min.y), egui::pos2(now, lane.max.y)],
                    Stroke::new(1.0, Color32::WHITE),
                );
            });
        }
    }
}
