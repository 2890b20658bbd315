//! The menu bar (File, Edit, Presets, View) and the tool bar (tools, flow overlay, preview).

use eframe::egui;

use crate::trajectory::presets::Preset;

use super::{StudioApp, Tool};

impl StudioApp {
    pub(super) fn menu_bar(&mut self, ui: &mut egui::Ui) {
        egui::MenuBar::new().ui(ui, |ui| {
            ui.menu_button("File", |ui| {
                if ui.button("New project").clicked() {
                    self.new_project();
                    ui.close();
                }
                if ui.button("Open project...   Ctrl+O").clicked() {
                    self.open_dialog();
                    ui.close();
                }
                ui.menu_button("Open recent", |ui| {
                    let recent = self.state.recent_files.clone();
                    if recent.is_empty() {
                        ui.weak("none yet");
                    }
                    for path in recent {
                        if ui.button(path.display().to_string()).clicked() {
                            self.open_project(&path);
                            ui.close();
                        }
                    }
                });
                if ui.button("Save   Ctrl+S").clicked() {
                    self.save();
                    ui.close();
                }
                if ui.button("Save as...   Ctrl+Shift+S").clicked() {
                    self.save_as();
                    ui.close();
                }
                ui.separator();
                if ui.button("Open image...").clicked() {
                    self.open_image_dialog();
                    ui.close();
                }
                if ui.button("Import Tora point files...").clicked() {
                    self.import_dialog();
                    ui.close();
                }
                if ui.button("Export Tora point files...").clicked() {
                    self.export_dialog();
                    ui.close();
                }
                ui.separator();
                if ui.button("Quit").clicked() {
                    ui.ctx().send_viewport_cmd(egui::ViewportCommand::Close);
                }
            });
            ui.menu_button("Edit", |ui| {
                if ui.add_enabled(self.history.can_undo(), egui::Button::new("Undo   Ctrl+Z")).clicked() {
                    self.undo();
                    ui.close();
                }
                if ui.add_enabled(self.history.can_redo(), egui::Button::new("Redo   Ctrl+Shift+Z")).clicked() {
                    self.redo();
                    ui.close();
                }
                ui.separator();
                if ui.button("Delete point   Del").clicked() {
                    self.delete_selected_point();
                    ui.close();
                }
                let selected = self.selection.track;
                if ui.add_enabled(selected.is_some(), egui::Button::new("Constant speed")).clicked() {
                    if let Some(t) = selected.and_then(|t| self.scene.tracks.get_mut(t)) {
                        t.retime_constant_speed();
                    }
                    ui.close();
                }
            });
            ui.menu_button("Presets", |ui| {
                let centre =
                    self.cursor.filter(|c| c.iter().all(|v| (0.0..=256.0).contains(v))).unwrap_or([128.0, 128.0]);
                for preset in Preset::ALL {
                    if ui.button(preset.label()).clicked() {
                        self.add_preset(preset, centre);
                        ui.close();
                    }
                }
            });
            ui.menu_button("View", |ui| {
                if ui.button("Reset zoom").clicked() {
                    self.view.reset();
                    ui.close();
                }
                ui.checkbox(&mut self.state.show_flow, "Motion field overlay");
                ui.checkbox(&mut self.state.show_preview, "Motion preview");
            });
            if let Some(path) = &self.project_path {
                let unsaved = self.saved_scene.as_ref() != Some(&self.scene);
                ui.weak(format!("{}{}", path.display(), if unsaved { " (unsaved)" } else { "" }));
            }
        });
    }

    pub(super) fn toolbar(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            for tool in Tool::ALL {
                let key = match tool {
                    Tool::Select => "V",
                    Tool::Polyline => "P",
                    Tool::Spline => "S",
                    Tool::Freehand => "F",
                    Tool::Anchor => "A",
                    Tool::MoveTrack => "M",
                    Tool::Lasso => "L",
                };
                if ui
                    .selectable_label(self.state.tool == tool, tool.label())
                    .on_hover_text(format!("{} ({key})", tool.hint()))
                    .clicked()
                {
                    self.set_tool(tool);
                }
            }
            ui.separator();
            ui.checkbox(&mut self.state.show_flow, "Motion field")
                .on_hover_text("the exact model input (video_flow) for the current frame");
            ui.add_enabled(
                self.state.show_flow,
                egui::Slider::new(&mut self.state.flow_blend, 0.0..=1.0).text("image / flow"),
            );
            ui.separator();
            ui.checkbox(&mut self.state.show_preview, "Motion preview")
                .on_hover_text("the image warped along the tracks: a quick preview, not model output");
            ui.separator();
            if ui.button("Reset zoom").clicked() {
                self.view.reset();
            }
        });
    }
}
