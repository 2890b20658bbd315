//! Tora on the CogVideoX backbone, text-to-video and image-to-video, as the reference pipelines
//! (`ToraPipeline`, `ToraImageToVideoPipeline`) run it:
//!
//! 1. **Text** — T5 encodes `[negative, prompt]` (uncond first; only the prompt without CFG).
//! 2. **Conditioning** — the VAE encodes the motion clip `video_flow` (and, for I2V, the first
//!    frame); `flow_latents = scaling · sample(...)`; I2V `image_latents` = scaled image latent
//!    in frame 0, zeros after. The preview map is fitted while the VAE is loaded.
//! 3. **Denoising** — per step: transformer on `cat([x, x])` (I2V: `cat([x, image_latents])` on
//!    the channel axis) with the flow latents inside the chosen step range; guidance
//!    `u + g·(c − u)` with the dynamic schedule; the DPM step.
//! 4. **Decoding** — `frames = clamp(decode(x / scaling)/2 + 0.5, 0, 1)`.
//!
//! Each model is loaded when its phase starts and dropped when it ends. Every random tensor is
//! drawn from the caller's [`NoiseSource`] in the reference's order (I2V: image-latent noise,
//! flow-latent noise; T2V: flow-latent noise; then the initial latents unless given; then the
//! scheduler's draws), so a recorded run replays exactly.

use std::path::Path;
use std::time::Instant;

use burn::tensor::{Tensor, TensorData};

use super::events::{Event, Generated, Phase, Progress};
use super::latent_preview::{pool_rgb, LatentToRgb};
use super::phases::{to_rgb_frames, PhaseClock};
use super::request::{ModelLimits, Settings};
use super::PipelineError;
use crate::model::cogvideox::vae::AutoencoderKLCogVideoX;
use crate::model::cogvideox::{rope::RotaryEmbedding, ModelSource, TransformerConfig};
use crate::model::device::read_f32;
use crate::model::t5::COGVIDEOX_MAX_SEQUENCE_LENGTH;
use crate::model::ComputeDevice;
use crate::sampling::{apply_guidance, guidance_scales, DpmScheduler, NoiseSource};

/// Receives named intermediate tensors (for parity checks); `None` in normal runs.
pub trait Trace {
    fn record(&mut self, name: &str, shape: &[usize], data: Vec<f32>);
}

/// Output size of a run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClipShape {
    pub width: usize,
    pub height: usize,
    pub frames: usize,
    pub fps: f32,
}

/// The conditioning a run starts from.
pub struct Conditioning {
    /// The motion clip `[T, 3, H, W]` in [-1, 1] (the flow procedure's `video_flow`).
    pub video_flow: Vec<f32>,
    /// I2V: the first frame `[3, H, W]` in [-1, 1].
    pub image: Option<Vec<f32>>,
    /// Initial latents `[1, F, C, h, w]`; drawn from the noise source when `None`.
    pub latents_init: Option<Vec<f32>>,
}

/// What the model folder allows, read from the transformer's config.
pub fn limits(config: &TransformerConfig) -> ModelLimits {
    let image_conditioned = config.in_channels == 2 * config.out_channels();
    // SAT semantics never add the learned table, so only diffusers semantics fix the grid.
    let fixed_grid = (config.use_learned_positional_embeddings && config.add_learned_pos_embedding).then(|| {
        // The learned table covers exactly the sample grid (frames from sample_frames).
        let frames = (config.sample_frames - 1) / config.temporal_compression_ratio + 1;
        (frames, config.sample_height, config.sample_width)
    });
    ModelLimits {
        spatial_scale: 8,
        temporal_scale: 4,
        latent_frame_step: 2,
        patch_size: config.patch_size,
        image_conditioned,
        fixed_grid,
    }
}

/// Checks a request against the model folder's transformer config, and that its checkpoint files
/// are what they should be, before anything is loaded.
pub fn check_model(model_dir: &Path, shape: &ClipShape, has_image: bool) -> Result<TransformerConfig, PipelineError> {
    check_source(&ModelSource::open(model_dir)?, shape, has_image)
}

fn check_source(source: &ModelSource, shape: &ClipShape, has_image: bool) -> Result<TransformerConfig, PipelineError> {
    let config = source.transformer_config()?;
    limits(&config).check(shape.width as u32, shape.height as u32, shape.frames as u32, has_image)?;
    // A wrong checkpoint file is named now, not minutes later when its phase loads it.
    source.check_checkpoint_files()?;
    Ok(config)
}

fn host(t: Tensor<5>) -> (Vec<usize>, Vec<f32>) {
    let dims = t.dims().to_vec();
    let data = read_f32(t).unwrap_or_default();
    (dims, data)
}

fn noise_tensor(
    noise: &mut dyn NoiseSource,
    shape: [usize; 5],
    device: &ComputeDevice,
) -> Result<Tensor<5>, PipelineError> {
    let values = noise.randn(&shape).map_err(crate::sampling::SamplingError::from)?;
    Ok(device.float_tensor(TensorData::new(values, shape)))
}

/// Runs Tora end to end. `model_dir` is a diffusers Tora pipeline folder or Tora's SAT tree.
#[allow(clippy::too_many_arguments)]
pub fn generate(
    model_dir: &Path,
    settings: &Settings,
    shape: ClipShape,
    conditioning: Conditioning,
    device: &ComputeDevice,
    noise: &mut dyn NoiseSource,
    progress: &dyn Progress,
    trace: Option<&mut dyn Trace>,
) -> Result<Generated, PipelineError> {
    let source = ModelSource::open(model_dir)?;
    generate_from(&source, settings, shape, conditioning, device, noise, progress, trace)
}

/// [`generate`] on an opened [`ModelSource`] (e.g. a SAT tree run with diffusers semantics).
#[allow(clippy::too_many_arguments)]
pub fn generate_from(
    source: &ModelSource,
    settings: &Settings,
    shape: ClipShape,
    conditioning: Conditioning,
    device: &ComputeDevice,
    noise: &mut dyn NoiseSource,
    progress: &dyn Progress,
    mut trace: Option<&mut dyn Trace>,
) -> Result<Generated, PipelineError> {
    settings.check()?;
    check_source(source, &shape, conditioning.image.is_some())?;
    let run_started = Instant::now();
    let mut reports = Vec::new();
    let (w, h, t) = (shape.width, shape.height, shape.frames);
    let (lh, lw, lf) = (h / 8, w / 8, (t - 1) / 4 + 1);
    let do_cfg = settings.guidance_scale > 1.0;

    // --- 1. Text -------------------------------------------------------------------------------
    let clock = PhaseClock::start(Phase::Text, "loading the T5 text encoder", progress)?;
    let prompt_embeds = {
        let t5 = source.load_t5(device)?;
        let mut prompts = Vec::new();
        if do_cfg {
            prompts.push(settings.negative_prompt.clone());
        }
        prompts.push(settings.prompt.clone());
        let (enc, hidden) = t5.encode_prompts(&prompts, COGVIDEOX_MAX_SEQUENCE_LENGTH);
        if let Some(tr) = trace.as_deref_mut() {
            let dims = hidden.dims();
            let data = read_f32(hidden.clone()).unwrap_or_default();
            let per = dims[1] * dims[2];
            let last = dims[0] - 1;
            tr.record("prompt_embeds", &[1, dims[1], dims[2]], data[last * per..].to_vec());
            if do_cfg {
                tr.record("negative_prompt_embeds", &[1, dims[1], dims[2]], data[..per].to_vec());
            }
            let ids = |row: &Vec<i64>| row.iter().map(|&v| v as f32).collect::<Vec<f32>>();
            tr.record("input_ids", &[1, enc.input_ids[last].len()], ids(&enc.input_ids[last]));
            if do_cfg {
                tr.record("negative_input_ids", &[1, enc.input_ids[0].len()], ids(&enc.input_ids[0]));
            }
        }
        hidden
    }; // T5 released here
    clock.finish(progress, &mut reports);

    // --- 2. Conditioning: the motion (and the first frame) through the VAE -----------------------
    let clock = PhaseClock::start(Phase::Conditioning, "loading the VAE", progress)?;
    let (flow_latents, image_latents, preview_map, scaling) = {
        let vae = source.load_vae(device)?;
        let scaling = vae.scaling_factor() as f32;
        let image_latents = match &conditioning.image {
            Some(image) => {
                let img = device.float_tensor::<5>(TensorData::new(image.clone(), [1, 3, 1, h, w]));
                let dist = vae.encode(img);
                let eps = noise_tensor(noise, [1, 16, 1, lh, lw], device)?;
                // [1, 16, 1, h, w] -> [1, 1, 16, h, w], scaled; zeros for the other frames
                let first = dist.sample(eps).permute([0, 2, 1, 3, 4]).mul_scalar(scaling);
                let rest = Tensor::<5>::zeros([1, lf - 1, 16, lh, lw], (device.device(), first.dtype()));
                Some(Tensor::cat(vec![first, rest], 1))
            }
            None => None,
        };
        // video_flow [T, 3, H, W] -> [1, 3, T, H, W]
        let flow = device.float_tensor::<4>(TensorData::new(conditioning.video_flow.clone(), [t, 3, h, w]));
        let flow = flow.permute([1, 0, 2, 3]).unsqueeze::<5>();
        let dist = vae.encode(flow);
        let eps = noise_tensor(noise, [1, 16, lf, lh, lw], device)?;
        let flow_latents = dist.sample(eps).mul_scalar(scaling).permute([0, 2, 1, 3, 4]); // [1, F, 16, h, w]
        progress.event(Event::Phase { phase: Phase::Conditioning, detail: "fitting the live preview".into() });
        let preview_map = fit_preview(&vae, &flow_latents, image_latents.as_ref(), scaling, device);
        (flow_latents, image_latents, preview_map, scaling)
    }; // VAE released here
    if let Some(tr) = trace.as_deref_mut() {
        let (d, v) = host(flow_latents.clone());
        tr.record("flow_latents", &d, v);
        if let Some(il) = &image_latents {
            let (d, v) = host(il.clone());
            tr.record("image_latents", &d, v);
        }
    }
    clock.finish(progress, &mut reports);

    // --- 3. Denoising -------------------------------------------------------------------------------
    let clock = PhaseClock::start(Phase::Denoising, "loading the transformer", progress)?;
    let latents = {
        let (mut transformer, config) = source.load_transformer(device)?;
        transformer.motion_strength = settings.motion.strength;
        let scheduler_config = source.scheduler_config()?.for_tora();
        let mut scheduler = DpmScheduler::new(&scheduler_config, settings.steps)?;
        let timesteps = scheduler.timesteps().to_vec();
        let scales = guidance_scales(settings.guidance_scale, settings.use_dynamic_cfg, &timesteps);
        if let Some(tr) = trace.as_deref_mut() {
            tr.record("timesteps", &[timesteps.len()], timesteps.iter().map(|&v| v as f32).collect());
        }
        let rotary =
            config.use_rotary_positional_embeddings.then(|| RotaryEmbedding::for_output(&config, h, w, lf, device));
        let latent_shape = [1, lf, 16, lh, lw];
        let mut x = match &conditioning.latents_init {
            Some(v) => device.float_tensor::<5>(TensorData::new(v.clone(), latent_shape)),
            None => noise_tensor(noise, latent_shape, device)?,
        }
        .mul_scalar(scheduler.init_noise_sigma() as f32);
        let batch = if do_cfg { 2 } else { 1 };
        let text = prompt_embeds;
        let total = timesteps.len();
        // The TE's maps depend on the flow alone: computed once, at batch 1, for every step that
        // takes the motion (both CFG halves share them).
        let motion_steps = (0..total).any(|i| settings.motion.active_at(i, total));
        let features = motion_steps.then(|| transformer.flow_features(flow_latents));
        let previews = preview_map.filter(|_| progress.wants_previews());
        for (i, &step_t) in timesteps.iter().enumerate() {
            if progress.cancelled() {
                return Err(PipelineError::Cancelled);
            }
            let mut input = Tensor::cat(vec![x.clone(); batch], 0);
            if let Some(il) = &image_latents {
                input = Tensor::cat(vec![input, Tensor::cat(vec![il.clone(); batch], 0)], 2);
            }
            let motion = features.as_ref().filter(|_| settings.motion.active_at(i, total));
            let timestep = device.float_tensor::<1>(TensorData::new(vec![step_t as f32; batch], [batch]));
            let noise_pred = transformer.forward_guided(input, text.clone(), timestep, motion, rotary.as_ref(), None);
            if let Some(tr) = trace.as_deref_mut() {
                let (d, v) = host(noise_pred.clone());
                tr.record(&format!("noise_pred_step{i}"), &d, v);
            }
            let guided = if do_cfg { apply_guidance(noise_pred, scales[i])? } else { noise_pred };
            let out = scheduler.step(guided, i, x, noise, device)?;
            x = out.prev_sample;
            if let Some(tr) = trace.as_deref_mut() {
                let (d, v) = host(x.clone());
                tr.record(&format!("latents_step{i}"), &d, v);
            }
            // The step's only read-back (a sync point on a GPU), and only when someone shows it.
            let preview = previews.as_ref().map(|map| {
                let (_, v) = host(out.pred_original_sample.clone().div_scalar(scaling));
                map.preview(&v, lf, lh, lw)
            });
            progress.event(Event::Step { index: i, total, timestep: step_t, preview });
        }
        x
    }; // transformer released here
    clock.finish(progress, &mut reports);

    // --- 4. Decoding --------------------------------------------------------------------------------
    let clock = PhaseClock::start(Phase::Decoding, "loading the VAE", progress)?;
    let frames = {
        let vae = source.load_vae(device)?;
        if progress.cancelled() {
            return Err(PipelineError::Cancelled);
        }
        progress.event(Event::Phase { phase: Phase::Decoding, detail: "decoding frames".into() });
        // [1, F, 16, h, w] -> [1, 16, F, h, w], unscaled
        let z = latents.permute([0, 2, 1, 3, 4]).mul_scalar(1.0 / scaling);
        let video = vae.decode(z); // [1, 3, T, H, W] in [-1, 1]
        let video = video.div_scalar(2.0).add_scalar(0.5).clamp(0.0, 1.0);
        let (dims, data) = host(video);
        if let Some(tr) = trace {
            // The reference's output layout: [1, T, H, W, 3].
            let (tt, hh, ww) = (dims[2], dims[3], dims[4]);
            let mut out = vec![0f32; data.len()];
            for f in 0..tt {
                for c in 0..3 {
                    for p in 0..hh * ww {
                        out[(f * hh * ww + p) * 3 + c] = data[(c * tt + f) * hh * ww + p];
                    }
                }
            }
            tr.record("frames", &[1, tt, hh, ww, 3], out);
        }
        to_rgb_frames(&dims, &data, shape.fps)
    };
    clock.finish(progress, &mut reports);
    Ok(Generated { frames, phases: reports, elapsed: run_started.elapsed() })
}

/// Fits the latent->RGB preview map to this VAE: decodes one small latent frame made of the run's
/// own latents (the motion latents and, for I2V, the image latent), pools the decoded pixels to
/// latent resolution and solves for the linear map. Cheap: one 1-frame decode at ≤ 16×16 latents.
fn fit_preview(
    vae: &AutoencoderKLCogVideoX,
    flow_latents: &Tensor<5>,
    image_latents: Option<&Tensor<5>>,
    scaling: f32,
    device: &ComputeDevice,
) -> Option<LatentToRgb> {
    let [_, _, c, lh, lw] = flow_latents.dims();
    let (ph, pw) = (lh.min(16), lw.min(16));
    let source = image_latents.unwrap_or(flow_latents);
    // one latent frame [1, c, 1, ph, pw], unscaled as the decoder expects
    let probe = source.clone().narrow(1, 0, 1).narrow(3, 0, ph).narrow(4, 0, pw).permute([0, 2, 1, 3, 4]);
    let probe = probe.div_scalar(scaling);
    let decoded = vae.decode(probe.clone()); // [1, 3, 1, 8·ph, 8·pw]
    let (_, pixels) = host(decoded);
    let pooled = pool_rgb(&pixels, 8 * ph, 8 * pw, 8); // [3, ph·pw]
    let (_, lat) = host(probe); // [1, c, 1, ph, pw] = channel-major
    let _ = device;
    LatentToRgb::fit(&lat, &pooled, c)
}
