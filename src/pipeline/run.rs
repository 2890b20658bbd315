//! A [`GenerateRequest`] end to end: scene -> motion clip, first frame -> tensor, seeded noise,
//! then the model run. The studio's worker and the `generate` command both call [`run_request`].

use std::path::Path;

use image::imageops::FilterType;

use super::events::Generated;
use super::events::Progress;
use super::opensora;
use super::request::{Family, GenerateRequest};
use super::tora::{self, ClipShape, Conditioning};
use super::PipelineError;
use crate::flow;
use crate::model::ComputeDevice;
use crate::sampling::SeededNoise;

pub fn run_request(request: &GenerateRequest, progress: &dyn Progress) -> Result<Generated, PipelineError> {
    request.settings.check()?;
    let scene = &request.scene;
    scene.validate()?;
    let shape = ClipShape {
        width: scene.width as usize,
        height: scene.height as usize,
        frames: scene.frames as usize,
        fps: scene.fps,
    };
    let family = request.family.unwrap_or_else(|| Family::detect(&request.model_dir));
    if family == Family::OpenSora {
        let extras = &request.extras;
        let files = opensora::OpenSoraFiles::find(
            &request.model_dir,
            extras.text_encoder.as_deref(),
            extras.motion_weights.as_deref(),
        )?;
        let field = flow::scene_motion_field(scene)?;
        let device = ComputeDevice::new(request.backend, request.precision)?;
        let mut noise = SeededNoise::new(request.settings.seed);
        return opensora::generate(&files, &request.settings, shape, field.video_flow(), &device, &mut noise, progress);
    }
    tora::check_model(&request.model_dir, &shape, request.settings.image.is_some())?;
    let field = flow::scene_motion_field(scene)?;
    let image = match &request.settings.image {
        Some(path) => Some(load_first_frame(path, shape.width as u32, shape.height as u32)?),
        None => None,
    };
    let device = ComputeDevice::new(request.backend, request.precision)?;
    let mut noise = SeededNoise::new(request.settings.seed);
    let conditioning = Conditioning { video_flow: field.video_flow(), image, latents_init: None };
    tora::generate(&request.model_dir, &request.settings, shape, conditioning, &device, &mut noise, progress, None)
}

/// The I2V first frame: scaled to cover `width × height` (keeping its aspect), centre-cropped,
/// as `[3, H, W]` in [-1, 1] (`2·(u8/255) − 1`, the reference's preprocessing).
pub fn load_first_frame(path: &Path, width: u32, height: u32) -> Result<Vec<f32>, PipelineError> {
    let fail = |reason: String| PipelineError::Image { path: path.into(), reason };
    let img = image::open(path).map_err(|e| fail(format!("{e} (use a PNG or JPEG photo)")))?;
    let (iw, ih) = (img.width(), img.height());
    if iw < 2 || ih < 2 {
        return Err(fail(format!("the image is only {iw}x{ih} pixels")));
    }
    let rgb = if (iw, ih) == (width, height) {
        img.to_rgb8()
    } else {
        let scale = (width as f64 / iw as f64).max(height as f64 / ih as f64);
        let (sw, sh) =
            (((iw as f64 * scale).ceil() as u32).max(width), ((ih as f64 * scale).ceil() as u32).max(height));
        let resized = img.resize_exact(sw, sh, FilterType::Lanczos3).to_rgb8();
        image::imageops::crop_imm(&resized, (sw - width) / 2, (sh - height) / 2, width, height).to_image()
    };
    let (w, h) = (width as usize, height as usize);
    let mut out = vec![0f32; 3 * h * w];
    for (i, px) in rgb.pixels().enumerate() {
        for c in 0..3 {
            out[c * h * w + i] = 2.0 * (px[c] as f32 / 255.0) - 1.0;
        }
    }
    Ok(out)
}
