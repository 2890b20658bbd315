//! The status bar: frame, cursor position (output pixels and 256 canvas), the tool's hint, the
//! motion field's source, and the latest message.

use eframe::egui;

use crate::trajectory::CANVAS_SIZE;

use super::notices::Level;
use super::StudioApp;

impl StudioApp {
    pub(super) fn status_bar(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            ui.label(format!("frame {}/{}", self.playback.frame, self.scene.frames.saturating_sub(1)));
            ui.separator();
            match self.cursor.filter(|c| c.iter().all(|v| (0.0..=CANVAS_SIZE).contains(v))) {
                Some([x, y]) => {
                    let px = x / CANVAS_SIZE * self.scene.width as f64;
                    let py = y / CANVAS_SIZE * self.scene.height as f64;
                    ui.label(format!("{px:.0}, {py:.0} px  |  {x:.1}, {y:.1} canvas"));
                }
                None => {
                    ui.weak("cursor outside the frame");
                }
            }
            ui.separator();
            ui.weak(self.state.tool.hint());
            ui.separator();
            ui.label(self.flow.status());
            if let Some(notice) = self.notices.last() {
                ui.separator();
                let colour = match notice.level {
                    Level::Error => egui::Color32::from_rgb(235, 90, 90),
                    Level::Warning => egui::Color32::from_rgb(235, 180, 60),
                    Level::Info => ui.visuals().text_color(),
                };
                ui.colored_label(colour, &notice.text);
            }
        });
    }
}
