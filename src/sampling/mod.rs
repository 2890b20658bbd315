//! Samplers: CogVideoX's DPM and DDIM schedulers, rectified flow, classifier-free guidance, and the
//! injectable noise source every random draw goes through.
//!
//! The schedulers reproduce diffusers' `CogVideoXDPMScheduler` / `CogVideoXDDIMScheduler`: the
//! schedule (ᾱ) and every step coefficient are computed in f64, then each coefficient is cast to
//! f32 and multiplies the f32 latents one product at a time, left to right, as torch does with a
//! 0-dim f64 tensor times an f32 tensor.

pub mod config;
pub mod ddim;
pub mod dpm;
pub mod guidance;
pub mod noise;
// OpenSora 1.2's rectified flow.
pub mod rflow;
pub mod schedule;

use std::path::PathBuf;

use burn::tensor::{Tensor, TensorData};

pub use config::{BetaSchedule, PredictionType, SchedulerConfig, TimestepSpacing};
pub use ddim::DdimScheduler;
pub use dpm::DpmScheduler;
pub use guidance::{apply_guidance, dynamic_guidance_scales, guidance_scales};
pub use noise::{NoiseError, NoiseSource, RecordedNoise, RecordingNoise, ReplayNoise, SeededNoise};
pub use schedule::NoiseSchedule;

use crate::model::ComputeDevice;

#[derive(Debug, thiserror::Error)]
pub enum SamplingError {
    #[error("{path}: cannot read the scheduler config: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: not a usable scheduler config: {reason}")]
    Config { path: PathBuf, reason: String },
    #[error("{requested} inference steps requested; the scheduler allows 1 to {max} (its num_train_timesteps)")]
    Steps { requested: usize, max: usize },
    #[error("step index {index} is past the end of the {len}-step schedule")]
    StepIndex { index: usize, len: usize },
    #[error("model output has shape {output:?} but the sample has shape {sample:?}")]
    Shape { output: Vec<usize>, sample: Vec<usize> },
    #[error("guidance needs a batch of [uncond, cond] halves, got batch {batch}")]
    GuidanceBatch { batch: usize },
    #[error(transparent)]
    Noise(#[from] NoiseError),
}

/// What one scheduler step returns.
#[derive(Debug, Clone)]
pub struct StepOutput {
    /// The latents at the next (lower-noise) timestep. `[batch, frames, channels, h, w]`
    pub prev_sample: Tensor<5>,
    /// The step's estimate of the clean latents x₀. `[batch, frames, channels, h, w]`
    pub pred_original_sample: Tensor<5>,
}

/// The timesteps one step works with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepTimesteps {
    /// The current timestep t.
    pub timestep: i64,
    /// The previous schedule entry (the multistep look-back), none on the first step.
    pub timestep_back: Option<i64>,
    /// `t − num_train_timesteps / num_inference_steps` (negative after the last step). This is
    /// not always the next schedule entry: for 3 trailing steps, t = 666 steps to 333, not 332.
    pub prev_timestep: i64,
}

/// `x₀` from the model output at ᾱ_t, per the config's prediction type.
fn predict_original(
    prediction: PredictionType,
    alpha_prod_t: f64,
    model_output: Tensor<5>,
    sample: Tensor<5>,
) -> Tensor<5> {
    let beta_prod_t = 1.0 - alpha_prod_t;
    match prediction {
        // x₀ = (x − √(1−ᾱ)·ε) / √ᾱ
        PredictionType::Epsilon => {
            sample.sub(model_output.mul_scalar(beta_prod_t.sqrt() as f32)).div_scalar(alpha_prod_t.sqrt() as f32)
        }
        PredictionType::Sample => model_output,
        // x₀ = √ᾱ·x − √(1−ᾱ)·v
        PredictionType::VPrediction => {
            sample.mul_scalar(alpha_prod_t.sqrt() as f32).sub(model_output.mul_scalar(beta_prod_t.sqrt() as f32))
        }
    }
}

/// A fresh N(0,1) tensor shaped like `like`, drawn from `noise`, in `like`'s dtype on `device`.
fn draw_noise(noise: &mut dyn NoiseSource, like: &Tensor<5>, device: &ComputeDevice) -> Result<Tensor<5>, NoiseError> {
    let shape = like.dims().to_vec();
    let values = noise.randn(&shape)?;
    Ok(Tensor::from_data(TensorData::new(values, shape), (device.device(), like.dtype())))
}

fn check_shapes(model_output: &Tensor<5>, sample: &Tensor<5>) -> Result<(), SamplingError> {
    if model_output.dims() != sample.dims() {
        return Err(SamplingError::Shape { output: model_output.dims().to_vec(), sample: sample.dims().to_vec() });
    }
    Ok(())
}
