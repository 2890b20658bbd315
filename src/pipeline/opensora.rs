//! Tora on the paper's own backbone, OpenSora 1.2 (text-to-video), as OpenSora's
//! `scripts/inference.py` runs it with Tora's motion guidance added:
//!
//! 1. **Text** — T5 encodes the prompt (with " aesthetic score: 6.5." appended, as OpenSora 1.2's
//!    inference config does) with its attention mask, padded to the STDiT3's `model_max_length`
//!    (300 for OpenSora 1.2); the unconditional branch is the model's learned null caption
//!    (OpenSora has no negative prompt). Not done: OpenSora's PixArt-style caption cleaning.
//! 2. **Conditioning** — the OpenSora VAE v1.2 encodes the motion clip `video_flow` to the flow
//!    latent `[1, 4, T', h, w]` the Trajectory Extractor reads.
//! 3. **Denoising** — rectified flow (timestep transform by resolution and length, CFG), STDiT3
//!    on `[z, z]` with captions `[y, y_null]`, TE/MGF guiding every temporal block inside the
//!    chosen step range.
//! 4. **Decoding** — the VAE decodes to `num_frames` frames, `(x + 1) / 2` clamped to [0, 1].
//!
//! The model folder holds `stdit3/` (OpenSora-STDiT-v3: `config.json` + safetensors), `vae/`
//! (OpenSora-VAE-v1.2, with the 2D VAE folder its config names) and T5 v1.1 XXL
//! (`text_encoder/` + `tokenizer/`, or `t5-v1_1-xxl/`), which may also be given separately.
//! Tora's TE/MGF weights for OpenSora were not released: `tora_motion.safetensors` in the folder
//! (or one given) is loaded when present; without it TE/MGF are zero-initialised, which makes the
//! run exactly plain OpenSora 1.2 — the trajectory then has no effect, and the run says so.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::{Bool, DType, Int, Tensor, TensorData};

use super::events::{Event, Generated, Phase, Progress};
use super::phases::{to_rgb_frames, PhaseClock};
use super::request::Settings;
use super::tora::ClipShape;
use super::PipelineError;
use crate::model::device::read_f32;
use crate::model::load::model_folder::opensora_t5_dir;
use crate::model::load::{read_config, ComponentDir, LoadError};
use crate::model::opensora::tora::ToraStdit3;
use crate::model::opensora::vae::OpenSoraVae;
use crate::model::opensora::Stdit3Config;
use crate::model::t5::T5TextEncoder;
use crate::model::ComputeDevice;
use crate::sampling::rflow::{Rflow, RflowConfig, VideoSize};
use crate::sampling::NoiseSource;

pub use crate::model::load::model_folder::{is_opensora_folder, OPENSORA_MOTION_WEIGHTS as MOTION_WEIGHTS_FILE};

/// The parts of an OpenSora 1.2 model folder.
#[derive(Debug, Clone)]
pub struct OpenSoraFiles {
    pub root: PathBuf,
    /// The folder holding T5 (encoder `config.json` + weights, and the tokenizer, or
    /// `text_encoder/` + `tokenizer/` below it).
    pub text_encoder: PathBuf,
    /// Tora's TE/MGF weights, when there are any.
    pub motion_weights: Option<PathBuf>,
}

impl OpenSoraFiles {
    /// Resolves the folder's parts; `text_encoder` / `motion_weights` override what is found in it.
    pub fn find(
        dir: &Path,
        text_encoder: Option<&Path>,
        motion_weights: Option<&Path>,
    ) -> Result<OpenSoraFiles, LoadError> {
        if !is_opensora_folder(dir) {
            return Err(LoadError::NotFound {
                path: dir.join("stdit3").join("config.json"),
                hint: " (an OpenSora 1.2 folder holds stdit3/ (hpcai-tech/OpenSora-STDiT-v3) and vae/ \
                       (hpcai-tech/OpenSora-VAE-v1.2))"
                    .into(),
            });
        }
        let text_encoder = match text_encoder {
            Some(p) => p.to_path_buf(),
            None => opensora_t5_dir(dir).ok_or_else(|| LoadError::NotFound {
                path: dir.join("t5-v1_1-xxl"),
                hint: " (OpenSora 1.2 reads captions with T5 v1.1 XXL (DeepFloyd/t5-v1_1-xxl): put it in \
                           t5-v1_1-xxl/ or text_encoder/ + tokenizer/, or pass --text-encoder DIR; the T5 of a \
                           CogVideoX/Tora download is the same model)"
                    .into(),
            })?,
        };
        let motion_weights = match motion_weights {
            Some(p) if p.is_file() => Some(p.to_path_buf()),
            Some(p) => return Err(LoadError::NotFound { path: p.into(), hint: " (Tora TE/MGF weights)".into() }),
            None => Some(dir.join(MOTION_WEIGHTS_FILE)).filter(|p| p.is_file()),
        };
        Ok(OpenSoraFiles { root: dir.to_path_buf(), text_encoder, motion_weights })
    }
}

/// The aesthetic score OpenSora 1.2's inference config asks for (`aes = 6.5`).
pub const AESTHETIC_SCORE: f32 = 6.5;

/// OpenSora 1.2 was trained with scores in the caption; its inference appends the wanted one
/// (`append_score_to_prompts`) unless the prompt already states one.
pub fn with_aesthetic_score(prompt: &str, score: f32) -> String {
    if prompt.contains("aesthetic score:") {
        prompt.to_string()
    } else {
        format!("{prompt} aesthetic score: {score:.1}.")
    }
}

/// What OpenSora 1.2 can make: sizes in multiples of 8 (the VAE's factor; STDiT3 pads odd latent
/// grids to its 2×2 patch, so its own 240p/360p sizes such as 424x240 and 640x360 work), and 1 frame
/// or 17 and more.
pub fn check_shape(shape: &ClipShape) -> Result<(), String> {
    let (w, h, t) = (shape.width, shape.height, shape.frames);
    if w == 0 || h == 0 || w % 8 != 0 || h % 8 != 0 {
        return Err(format!(
            "size {w}x{h}: OpenSora 1.2 needs width and height in multiples of 8 (e.g. 424x240, 640x360, 1280x720)"
        ));
    }
    // The timestep transform scales by sqrt(floor(frames / 17) · 5): 0 below 17 frames, where the
    // reference divides 0 by 0 (NaN timesteps). One frame is the image case (scale 1).
    if t != 1 && t < 17 {
        return Err(format!("{t} frames: OpenSora 1.2 makes 1 frame or 17 and more (its 2 s clips are 51 frames)"));
    }
    Ok(())
}

/// Runs OpenSora 1.2 (+ Tora's TE/MGF) text-to-video.
#[allow(clippy::too_many_arguments)]
pub fn generate(
    files: &OpenSoraFiles,
    settings: &Settings,
    shape: ClipShape,
    video_flow: Vec<f32>,
    device: &ComputeDevice,
    noise: &mut dyn NoiseSource,
    progress: &dyn Progress,
) -> Result<Generated, PipelineError> {
    settings.check()?;
    if settings.image.is_some() {
        return Err(PipelineError::Runtime(
            "image-to-video is not wired for OpenSora 1.2 here; use a Tora I2V (CogVideoX) model folder".into(),
        ));
    }
    check_shape(&shape).map_err(PipelineError::Runtime)?;
    let (w, h, t) = (shape.width, shape.height, shape.frames);
    let run_started = Instant::now();
    let mut reports = Vec::new();
    let failure: RefCell<Option<String>> = RefCell::new(None);
    let noise = RefCell::new(noise);
    // Draws standard-normal values; a failing source is remembered and reported after the call.
    let draw = |shape: &[usize]| -> Vec<f32> {
        let n: usize = shape.iter().product();
        match noise.borrow_mut().randn(shape) {
            Ok(v) if v.len() == n => v,
            Ok(v) => {
                failure.borrow_mut().get_or_insert(format!("noise source gave {} values for {shape:?}", v.len()));
                vec![0.0; n]
            }
            Err(e) => {
                failure.borrow_mut().get_or_insert(e.to_string());
                vec![0.0; n]
            }
        }
    };
    let check_failure = || match failure.borrow_mut().take() {
        Some(e) => Err(PipelineError::Runtime(e)),
        None => Ok(()),
    };

    // --- 1. Text ------------------------------------------------------------------------------
    let clock = PhaseClock::start(Phase::Text, "loading the T5 text encoder", progress)?;
    let stdit_config: Stdit3Config =
        read_config(&ComponentDir::find(&files.root, "stdit3", &["STDiT3"])?.config_path())?;
    let (y, caption_mask) = {
        let t5 = T5TextEncoder::load(&files.text_encoder, device)?;
        if t5.config.d_model != stdit_config.caption_channels {
            return Err(PipelineError::Load(LoadError::Config {
                path: files.text_encoder.join("config.json"),
                reason: format!(
                    "this T5 makes {}-wide captions, the STDiT3 reads {} (OpenSora 1.2 uses T5 v1.1 XXL, 4096)",
                    t5.config.d_model, stdit_config.caption_channels
                ),
            }));
        }
        let prompt = with_aesthetic_score(&settings.prompt, AESTHETIC_SCORE);
        let enc = t5.tokenizer.encode_batch(&[prompt.as_str()], stdit_config.model_max_length);
        let hidden = t5.encode_ids(&enc.input_ids, Some(&enc.attention_mask)); // [1, L, C]
        let mask: Vec<i64> = enc.attention_mask.concat();
        let l = mask.len();
        let mask = Tensor::<2, Int>::from_data(TensorData::new(mask, [1, l]), device.device());
        (hidden.unsqueeze_dim::<4>(1), mask) // [1, 1, L, C]
    }; // T5 released here
    clock.finish(progress, &mut reports);

    // --- 2. Conditioning: the motion clip through the VAE ------------------------------------------
    let clock = PhaseClock::start(Phase::Conditioning, "loading the OpenSora VAE", progress)?;
    let flow_latent = {
        let (vae, _) = OpenSoraVae::load(&files.root, device)?;
        // video_flow [T, 3, H, W] -> [1, 3, T, H, W]
        let flow = device.float_tensor::<4>(TensorData::new(video_flow, [t, 3, h, w]));
        let flow = flow.permute([1, 0, 2, 3]).unsqueeze::<5>();
        let mut vae_noise = |shape: &[usize]| -> Tensor<1> {
            let n: usize = shape.iter().product();
            device.float_tensor(TensorData::new(draw(shape), [n]))
        };
        vae.encode(flow, &mut vae_noise).map_err(|e| PipelineError::Runtime(e.to_string()))?
    }; // VAE released here
    check_failure()?;
    clock.finish(progress, &mut reports);

    // --- 3. Denoising -------------------------------------------------------------------------------
    let clock = PhaseClock::start(Phase::Denoising, "loading STDiT3", progress)?;
    let z = {
        let (model, _) = ToraStdit3::load(&files.root, files.motion_weights.as_deref(), device)?;
        if files.motion_weights.is_none() {
            progress.event(Event::Phase {
                phase: Phase::Denoising,
                detail: format!(
                    "no Tora motion weights ({MOTION_WEIGHTS_FILE}): plain OpenSora 1.2, the trajectory has no effect"
                ),
            });
        }
        let captions = Tensor::cat(vec![y, model.base.null_caption(1)], 0); // [y, y_null], cond first
        let fps = device.float_tensor::<1>(TensorData::new(vec![shape.fps], [1]));
        let rflow = Rflow::new(RflowConfig {
            num_sampling_steps: settings.steps,
            cfg_scale: settings.guidance_scale as f32,
            ..RflowConfig::default()
        });
        let size = VideoSize { height: h as f32, width: w as f32, num_frames: t as f32 };
        let timesteps = rflow.timesteps(size);
        let total = timesteps.len();
        // The TE's maps depend on the flow alone: computed once, at batch 1, for both CFG halves
        // of every step that takes the motion.
        let motion_steps = (0..total).any(|i| settings.motion.active_at(i, total));
        let features = if motion_steps {
            Some(model.motion_features(flow_latent.clone()).map_err(|e| PipelineError::Runtime(e.to_string()))?)
        } else {
            None
        };
        let [_, c, lt, lh, lw] = flow_latent.dims();
        let z0 = device.float_tensor::<5>(TensorData::new(draw(&[1, c, lt, lh, lw]), [1, c, lt, lh, lw]));
        check_failure()?;
        let step = RefCell::new(0usize);
        let mut call = |x: Tensor<5>, timestep: Tensor<1>, x_mask: Option<Tensor<2, Bool>>| -> Tensor<5> {
            let i = step.replace_with(|i| *i + 1);
            let dims = x.dims();
            if progress.cancelled() || failure.borrow().is_some() {
                return Tensor::zeros(dims, (device.device(), x.dtype()));
            }
            // The schedule's own value: no read-back from the device inside the loop.
            let step_t = timesteps.get(i).copied().unwrap_or_default();
            let motion = features.as_ref().filter(|_| settings.motion.active_at(i, total));
            let out = model
                .forward_guided(
                    x,
                    timestep,
                    captions.clone(),
                    Some(caption_mask.clone()),
                    x_mask,
                    fps.clone(),
                    h as f32,
                    w as f32,
                    motion,
                )
                .unwrap_or_else(|e| {
                    failure.borrow_mut().get_or_insert(e.to_string());
                    Tensor::zeros(dims, (device.device(), DType::F32))
                });
            progress.event(Event::Step { index: i, total, timestep: step_t.round() as i64, preview: None });
            out
        };
        let mut step_noise = |shape: &[usize]| -> Tensor<5> {
            let s: [usize; 5] = [shape[0], shape[1], shape[2], shape[3], shape[4]];
            device.float_tensor(TensorData::new(draw(shape), s))
        };
        let z =
            rflow.sample(&mut call, z0, size, None, &mut step_noise).map_err(|e| PipelineError::Runtime(e.to_string()));
        if progress.cancelled() {
            return Err(PipelineError::Cancelled);
        }
        check_failure()?;
        z?
    }; // STDiT3 released here
    clock.finish(progress, &mut reports);

    // --- 4. Decoding --------------------------------------------------------------------------------
    let clock = PhaseClock::start(Phase::Decoding, "loading the OpenSora VAE", progress)?;
    let frames = {
        let (vae, _) = OpenSoraVae::load(&files.root, device)?;
        progress.event(Event::Phase { phase: Phase::Decoding, detail: "decoding frames".into() });
        let video = vae.decode(z, t).map_err(|e| PipelineError::Runtime(e.to_string()))?; // [1, 3, T, H, W]
        let video = video.add_scalar(1.0).div_scalar(2.0).clamp(0.0, 1.0);
        let dims = video.dims().to_vec();
        let data = read_f32(video).unwrap_or_default();
        to_rgb_frames(&dims, &data, shape.fps)
    };
    clock.finish(progress, &mut reports);
    Ok(Generated { frames, phases: reports, elapsed: run_started.elapsed() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opensora_sizes_and_lengths() {
        let shape = |width, height, frames| ClipShape { width, height, frames, fps: 24.0 };
        for ok in [shape(424, 240, 51), shape(640, 360, 102), shape(1280, 720, 17), shape(256, 144, 1)] {
            assert_eq!(check_shape(&ok), Ok(()), "{ok:?}");
        }
        assert!(check_shape(&shape(420, 240, 51)).unwrap_err().contains("multiples of 8"));
        assert!(check_shape(&shape(640, 360, 9)).unwrap_err().contains("17 and more"));
    }

    #[test]
    fn the_aesthetic_score_is_appended_once() {
        assert_eq!(with_aesthetic_score("a kite", 6.5), "a kite aesthetic score: 6.5.");
        assert_eq!(with_aesthetic_score("a kite aesthetic score: 5.0.", 6.5), "a kite aesthetic score: 5.0.");
    }
}
