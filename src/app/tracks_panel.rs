//! The track list: add, select, rename (in the inspector), colour, show/hide, lock, reorder,
//! delete. Any number of tracks.

use eframe::egui;

use super::{Selection, StudioApp};

enum RowAction {
    Select(usize),
    MoveUp(usize),
    MoveDown(usize),
    Delete(usize),
}

impl StudioApp {
    pub(super) fn tracks_panel(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            ui.heading("Tracks");
            if ui.button("+ New").on_hover_text("a new track; click on the canvas to add its points").clicked() {
                self.add_track();
            }
        });
        ui.separator();
        self.layer_rows(ui);
        let mut action = None;
        let count = self.scene.tracks.len();
        egui::ScrollArea::vertical().auto_shrink([false, false]).show(ui, |ui| {
            for index in 0..count {
                let selected = self.selection.track == Some(index);
                let track = &mut self.scene.tracks[index];
                egui::Frame::new()
                    .fill(if selected {
                        ui.visuals().selection.bg_fill.gamma_multiply(0.4)
                    } else {
                        egui::Color32::TRANSPARENT
                    })
                    .inner_margin(4.0)
                    .corner_radius(4.0)
                    .show(ui, |ui| {
                        ui.horizontal(|ui| {
                            ui.color_edit_button_srgb(&mut track.colour);
                            let label = format!("{} ({} pt)", track.name, track.points.len());
                            if ui.selectable_label(selected, label).clicked() {
                                action = Some(RowAction::Select(index));
                            }
                        });
                        ui.horizontal(|ui| {
                            ui.checkbox(&mut track.visible, "show");
                            ui.checkbox(&mut track.locked, "lock");
                            if ui.add_enabled(index > 0, egui::Button::new("Up").small()).clicked() {
                                action = Some(RowAction::MoveUp(index));
                            }
                            if ui.add_enabled(index + 1 < count, egui::Button::new("Down").small()).clicked() {
                                action = Some(RowAction::MoveDown(index));
                            }
                            if ui.add(egui::Button::new("Delete").small()).clicked() {
                                action = Some(RowAction::Delete(index));
                            }
                        });
                    });
            }
        });
        match action {
            Some(RowAction::Select(i)) => self.selection = Selection { track: Some(i), point: None },
            Some(RowAction::MoveUp(i)) => self.swap_tracks(i - 1, i),
            Some(RowAction::MoveDown(i)) => self.swap_tracks(i, i + 1),
            Some(RowAction::Delete(i)) => self.delete_track(i),
            None => {}
        }
    }

    fn swap_tracks(&mut self, a: usize, b: usize) {
        if b < self.scene.tracks.len() {
            self.scene.tracks.swap(a, b);
            let follow = |t: usize| {
                if t == a {
                    b
                } else if t == b {
                    a
                } else {
                    t
                }
            };
            self.selection.track = self.selection.track.map(follow);
            self.drawing = self.drawing.map(follow);
        }
    }
}
