//! `CogVideoXDDIMScheduler`: deterministic DDIM (η = 0) on the same schedule as the DPM scheduler.

use burn::tensor::Tensor;

use super::schedule::{inference_timesteps, NoiseSchedule};
use super::{
    check_shapes, predict_original, NoiseSource, PredictionType, SamplingError, SchedulerConfig, StepOutput,
    StepTimesteps,
};
use crate::model::ComputeDevice;

/// The DDIM scheduler for one run of `num_inference_steps` steps.
#[derive(Debug, Clone)]
pub struct DdimScheduler {
    schedule: NoiseSchedule,
    prediction: PredictionType,
    num_train_timesteps: usize,
    num_inference_steps: usize,
    timesteps: Vec<i64>,
}

impl DdimScheduler {
    pub fn new(config: &SchedulerConfig, num_inference_steps: usize) -> Result<Self, SamplingError> {
        Ok(DdimScheduler {
            schedule: NoiseSchedule::new(config),
            prediction: config.prediction_type,
            num_train_timesteps: config.num_train_timesteps,
            num_inference_steps,
            timesteps: inference_timesteps(config, num_inference_steps)?,
        })
    }

    /// The timesteps of the run, highest first.
    pub fn timesteps(&self) -> &[i64] {
        &self.timesteps
    }

    pub fn schedule(&self) -> &NoiseSchedule {
        &self.schedule
    }

    pub fn init_noise_sigma(&self) -> f64 {
        1.0
    }

    /// The timesteps step `index` uses (no look-back: DDIM is single-step).
    pub fn step_timesteps(&self, index: usize) -> Result<StepTimesteps, SamplingError> {
        let len = self.timesteps.len();
        let &timestep = self.timesteps.get(index).ok_or(SamplingError::StepIndex { index, len })?;
        Ok(StepTimesteps {
            timestep,
            timestep_back: None,
            prev_timestep: timestep - (self.num_train_timesteps / self.num_inference_steps) as i64,
        })
    }

    /// `(a_t, b_t)` of `x_prev = a_t·x + b_t·x₀`: `a_t = √((1−ᾱ_prev)/(1−ᾱ_t))`, `b_t = √ᾱ_prev − √ᾱ_t·a_t`.
    pub fn coefficients(&self, index: usize) -> Result<(f64, f64), SamplingError> {
        let ts = self.step_timesteps(index)?;
        let alpha_prod_t = self.schedule.alpha_cumprod(ts.timestep);
        let alpha_prod_t_prev = self.schedule.alpha_cumprod(ts.prev_timestep);
        let a_t = ((1.0 - alpha_prod_t_prev) / (1.0 - alpha_prod_t)).sqrt();
        let b_t = alpha_prod_t_prev.sqrt() - alpha_prod_t.sqrt() * a_t;
        Ok((a_t, b_t))
    }

    /// One denoising step from `timesteps()[timestep_index]`. DDIM with η = 0 draws no noise; the
    /// source is taken so both schedulers are called the same way.
    pub fn step(
        &mut self,
        model_output: Tensor<5>,
        timestep_index: usize,
        sample: Tensor<5>,
        _noise: &mut dyn NoiseSource,
        _device: &ComputeDevice,
    ) -> Result<StepOutput, SamplingError> {
        check_shapes(&model_output, &sample)?;
        let ts = self.step_timesteps(timestep_index)?;
        let (a_t, b_t) = self.coefficients(timestep_index)?;
        let alpha_prod_t = self.schedule.alpha_cumprod(ts.timestep);
        // [batch, frames, channels, h, w]
        let x0 = predict_original(self.prediction, alpha_prod_t, model_output, sample.clone());
        let prev_sample = sample.mul_scalar(a_t as f32).add(x0.clone().mul_scalar(b_t as f32));
        Ok(StepOutput { prev_sample, pred_original_sample: x0 })
    }
}
