//! What a generation is asked to do, and the checks that turn an impossible request into a
//! clear message before any model is loaded.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::model::Precision;
use crate::trajectory::Scene;
use crate::Backend;

/// When and how strongly the trajectory steers the denoising.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MotionGuidance {
    /// Multiplies the Motion-guidance Fuser's contribution (1 = Tora as trained, 0 = no motion).
    pub strength: f32,
    /// Fraction of the steps (0..1) at which the flow starts being injected.
    pub start: f32,
    /// Fraction of the steps (0..1) after which it stops.
    pub end: f32,
}

impl Default for MotionGuidance {
    fn default() -> Self {
        MotionGuidance { strength: 1.0, start: 0.0, end: 1.0 }
    }
}

impl MotionGuidance {
    /// Whether step `index` of `total` gets the flow.
    pub fn active_at(&self, index: usize, total: usize) -> bool {
        if self.strength == 0.0 || total == 0 {
            return false;
        }
        let at = index as f32 / total as f32;
        at >= self.start && at < self.end.max(self.start)
    }
}

/// The user-facing settings of one take (saved with it, re-openable).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    pub prompt: String,
    #[serde(default)]
    pub negative_prompt: String,
    pub steps: usize,
    pub guidance_scale: f64,
    #[serde(default = "yes")]
    pub use_dynamic_cfg: bool,
    pub seed: u64,
    #[serde(default)]
    pub motion: MotionGuidance,
    /// Image-to-video: the first frame (resized/cropped to the output size).
    #[serde(default)]
    pub image: Option<PathBuf>,
}

fn yes() -> bool {
    true
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            prompt: String::new(),
            negative_prompt: String::new(),
            steps: 50,
            guidance_scale: 6.0,
            use_dynamic_cfg: true,
            seed: 42,
            motion: MotionGuidance::default(),
            image: None,
        }
    }
}

/// A whole request: model, settings, the scene (tracks, size, frames, fps) and where to run.
#[derive(Debug, Clone)]
pub struct GenerateRequest {
    pub model_dir: PathBuf,
    pub settings: Settings,
    pub scene: Scene,
    pub backend: Backend,
    pub precision: Precision,
    /// The backbone; `None` = told by what the model folder holds.
    pub family: Option<Family>,
    /// Parts that may live outside the model folder (OpenSora: T5, Tora's TE/MGF weights).
    pub extras: ModelExtras,
}

/// Which backbone Tora runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Family {
    /// CogVideoX-5B: Tora's released weights (diffusers folder or SAT tree), T2V and I2V.
    #[value(name = "cogvideox")]
    CogVideoX,
    /// OpenSora 1.2 (STDiT3 + VAE v1.2), the paper's own backbone, T2V.
    #[value(name = "opensora")]
    OpenSora,
}

impl Family {
    /// Tells the family by the folder's content (a STDiT3 config means OpenSora).
    pub fn detect(model_dir: &std::path::Path) -> Family {
        if super::opensora::is_opensora_folder(model_dir) {
            Family::OpenSora
        } else {
            Family::CogVideoX
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Family::CogVideoX => "CogVideoX",
            Family::OpenSora => "OpenSora 1.2",
        }
    }
}

/// Model parts given apart from the model folder.
#[derive(Debug, Clone, Default)]
pub struct ModelExtras {
    /// A T5 folder (OpenSora folders often come without one; the CogVideoX/Tora T5 is the same model).
    pub text_encoder: Option<PathBuf>,
    /// Tora's TE/MGF weights for STDiT3 (a safetensors file).
    pub motion_weights: Option<PathBuf>,
}

/// The shape facts of a loaded model family that decide which sizes it can make.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelLimits {
    /// Pixels per latent pixel (8 for CogVideoX's VAE).
    pub spatial_scale: usize,
    /// Video frames per latent frame (4), with one extra leading frame.
    pub temporal_scale: usize,
    /// Latent frame counts allowed after the first, in steps of this (2 for CogVideoX: its VAE
    /// decodes latents in batches of two after an odd leading batch, so an even latent count
    /// decodes to 4 frames per latent — 13 frames would come back as 16). Frames = 1 + 8k.
    pub latent_frame_step: usize,
    /// Latent pixels per transformer token side (2).
    pub patch_size: usize,
    /// Whether the transformer takes image latents (I2V).
    pub image_conditioned: bool,
    /// A learned positional embedding only fits one latent grid `(frames, height, width)`.
    pub fixed_grid: Option<(usize, usize, usize)>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RequestError {
    #[error("size {width}x{height}: width and height must be multiples of {multiple} for this model (e.g. 720x480)")]
    Size { width: u32, height: u32, multiple: usize },
    #[error("{frames} frames: this model makes {period}k+1 frames (e.g. 49, 41, 9); try {suggestion}")]
    Frames { frames: u32, period: u32, suggestion: u32 },
    #[error("this is an image-to-video model: choose a first-frame image")]
    ImageRequired,
    #[error("this is a text-to-video model: it cannot take a first-frame image (use an I2V model folder)")]
    ImageNotSupported,
    #[error("this model's learned positional embedding fixes the output to {width}x{height} and {frames} frames")]
    FixedGrid { width: usize, height: usize, frames: usize },
    #[error("{0}")]
    Settings(String),
}

impl ModelLimits {
    /// Checks output size, frame count and image conditioning against the model.
    pub fn check(&self, width: u32, height: u32, frames: u32, has_image: bool) -> Result<(), RequestError> {
        let multiple = self.spatial_scale * self.patch_size;
        if width == 0 || height == 0 || width as usize % multiple != 0 || height as usize % multiple != 0 {
            return Err(RequestError::Size { width, height, multiple });
        }
        let period = (self.temporal_scale * self.latent_frame_step.max(1)) as u32;
        if frames < 1 || (frames - 1) % period != 0 {
            let suggestion = ((frames.max(1) - 1) / period) * period + 1;
            return Err(RequestError::Frames { frames, period, suggestion: suggestion.max(period + 1) });
        }
        match (self.image_conditioned, has_image) {
            (true, false) => return Err(RequestError::ImageRequired),
            (false, true) => return Err(RequestError::ImageNotSupported),
            _ => {}
        }
        if let Some((f, h, w)) = self.fixed_grid {
            let latent = (
                ((frames - 1) / self.temporal_scale as u32 + 1) as usize,
                height as usize / self.spatial_scale,
                width as usize / self.spatial_scale,
            );
            if latent != (f, h, w) {
                return Err(RequestError::FixedGrid {
                    width: w * self.spatial_scale,
                    height: h * self.spatial_scale,
                    frames: (f - 1) * self.temporal_scale + 1,
                });
            }
        }
        Ok(())
    }
}

impl Settings {
    pub fn check(&self) -> Result<(), RequestError> {
        if self.steps == 0 {
            return Err(RequestError::Settings("steps must be at least 1".into()));
        }
        if !(self.guidance_scale.is_finite() && self.guidance_scale >= 0.0) {
            return Err(RequestError::Settings(format!("guidance {} must be a number ≥ 0", self.guidance_scale)));
        }
        let m = self.motion;
        if !(0.0..=1.0).contains(&m.start) || !(0.0..=1.0).contains(&m.end) || m.start > m.end {
            return Err(RequestError::Settings(format!(
                "trajectory range {}..{} must lie in 0..1 with start ≤ end",
                m.start, m.end
            )));
        }
        if !(m.strength.is_finite() && m.strength >= 0.0) {
            return Err(RequestError::Settings(format!("trajectory strength {} must be ≥ 0", m.strength)));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cogvideox(i2v: bool) -> ModelLimits {
        ModelLimits {
            spatial_scale: 8,
            temporal_scale: 4,
            latent_frame_step: 2,
            patch_size: 2,
            image_conditioned: i2v,
            fixed_grid: None,
        }
    }

    #[test]
    fn accepts_the_reference_size() {
        assert_eq!(cogvideox(false).check(720, 480, 49, false), Ok(()));
    }

    #[test]
    fn rejects_odd_sizes_and_frame_counts_with_a_suggestion() {
        assert!(matches!(cogvideox(false).check(721, 480, 49, false), Err(RequestError::Size { .. })));
        assert_eq!(
            cogvideox(false).check(720, 480, 50, false),
            Err(RequestError::Frames { frames: 50, period: 8, suggestion: 49 })
        );
        // 4k+1 with an even latent count: the VAE would return 16 frames for 13.
        assert_eq!(
            cogvideox(false).check(720, 480, 13, false),
            Err(RequestError::Frames { frames: 13, period: 8, suggestion: 9 })
        );
        assert_eq!(cogvideox(false).check(720, 480, 9, false), Ok(()));
    }

    #[test]
    fn image_conditioning_must_match_the_model() {
        assert_eq!(cogvideox(true).check(720, 480, 49, false), Err(RequestError::ImageRequired));
        assert_eq!(cogvideox(false).check(720, 480, 49, true), Err(RequestError::ImageNotSupported));
    }

    #[test]
    fn learned_positional_embedding_fixes_the_grid() {
        let limits = ModelLimits { fixed_grid: Some((13, 60, 90)), ..cogvideox(true) };
        assert_eq!(limits.check(720, 480, 49, true), Ok(()));
        assert_eq!(
            limits.check(480, 480, 49, true),
            Err(RequestError::FixedGrid { width: 720, height: 480, frames: 49 })
        );
    }

    #[test]
    fn motion_range_selects_steps() {
        let m = MotionGuidance { strength: 1.0, start: 0.0, end: 0.5 };
        let active: Vec<bool> = (0..4).map(|i| m.active_at(i, 4)).collect();
        assert_eq!(active, [true, true, false, false]);
        let off = MotionGuidance { strength: 0.0, ..m };
        assert!(!off.active_at(0, 4));
    }
}
