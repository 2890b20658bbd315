//! Shows the model-free motion preview (`flow::preview`): the image warped along the tracks
//! for the current frame, cached until the motion, the frame or the image changes.

use eframe::egui;

use crate::flow::preview::{default_sigma, preview_frame, RgbaFrame};
use crate::trajectory::FramePoints;

use super::background::colour_image;

/// Label drawn over the canvas so nobody mistakes the preview for model output.
pub const PREVIEW_LABEL: &str = "PREVIEW - image warped along the tracks, not model output";

#[derive(Default)]
pub struct MotionPreview {
    key: Option<(Vec<FramePoints>, usize, u64)>,
    texture: Option<egui::TextureHandle>,
}

impl MotionPreview {
    /// The preview texture of `frame`; `image_version` changes whenever the image does.
    pub fn texture(
        &mut self,
        ctx: &egui::Context,
        image: &RgbaFrame,
        image_version: u64,
        points: &[FramePoints],
        frame: usize,
    ) -> egui::TextureId {
        let fresh = self.key.as_ref().is_some_and(|(p, f, v)| p == points && *f == frame && *v == image_version);
        if !fresh || self.texture.is_none() {
            let warped = preview_frame(image, points, frame, default_sigma(image.width, image.height));
            let colours = colour_image(&warped);
            match &mut self.texture {
                Some(t) => t.set(colours, egui::TextureOptions::LINEAR),
                None => self.texture = Some(ctx.load_texture("motion preview", colours, egui::TextureOptions::LINEAR)),
            }
            self.key = Some((points.to_vec(), frame, image_version));
        }
        match &self.texture {
            Some(t) => t.id(),
            None => egui::TextureId::default(),
        }
    }
}
