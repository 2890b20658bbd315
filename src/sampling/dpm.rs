//! `CogVideoXDPMScheduler`: DPM-Solver++(2M) in its stochastic (SDE) form, as CogVideoX and Tora
//! sample. Each step draws fresh noise; from the second step on it also uses the previous step's
//! x₀ estimate (kept here) for a second-order correction.

use burn::tensor::Tensor;

use super::schedule::{inference_timesteps, NoiseSchedule};
use super::{
    check_shapes, draw_noise, predict_original, NoiseSource, PredictionType, SamplingError, SchedulerConfig,
    StepOutput, StepTimesteps,
};
use crate::model::ComputeDevice;

/// The step's scalar coefficients, in f64 (cast to f32 where they meet the latents).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DpmCoefficients {
    pub alpha_prod_t: f64,
    pub alpha_prod_t_prev: f64,
    /// `h = λ(ᾱ_prev) − λ(ᾱ_t)`, `λ(ᾱ) = ln √(ᾱ/(1−ᾱ))` (log-SNR / 2).
    pub h: f64,
    /// `√((1−ᾱ_prev)/(1−ᾱ_t))·e^(−h)`: weight of the current sample.
    pub mult1: f64,
    /// `expm1(−2h)·√ᾱ_prev`: weight of x₀ (or of the corrected D), subtracted.
    pub mult2: f64,
    /// `√(1−ᾱ_prev)·√(1−e^(−2h))`: weight of the fresh noise.
    pub mult_noise: f64,
    /// `(1 + 1/(2r), 1/(2r))` with `r = (λ(ᾱ_t) − λ(ᾱ_back))/h`, when there is a look-back timestep.
    pub multistep: Option<(f64, f64)>,
}

impl DpmCoefficients {
    /// diffusers' `get_variables` + `get_mult` + the noise weight. IEEE ±inf flows through on
    /// purpose: at t = 999 ᾱ_t = 0 (λ = −∞) and after the last step ᾱ_prev = 1 (λ = +∞).
    pub fn new(alpha_prod_t: f64, alpha_prod_t_prev: f64, alpha_prod_t_back: Option<f64>) -> Self {
        let lambda = |a: f64| (a / (1.0 - a)).sqrt().ln();
        let (lamb, lamb_next) = (lambda(alpha_prod_t), lambda(alpha_prod_t_prev));
        let h = lamb_next - lamb;
        let mult1 = ((1.0 - alpha_prod_t_prev) / (1.0 - alpha_prod_t)).sqrt() * (-h).exp();
        let mult2 = (-2.0 * h).exp_m1() * alpha_prod_t_prev.sqrt();
        let mult_noise = (1.0 - alpha_prod_t_prev).sqrt() * (1.0 - (-2.0 * h).exp()).sqrt();
        let multistep = alpha_prod_t_back.map(|back| {
            let r = (lamb - lambda(back)) / h;
            (1.0 + 1.0 / (2.0 * r), 1.0 / (2.0 * r))
        });
        DpmCoefficients { alpha_prod_t, alpha_prod_t_prev, h, mult1, mult2, mult_noise, multistep }
    }
}

/// The DPM scheduler for one run of `num_inference_steps` steps.
#[derive(Debug, Clone)]
pub struct DpmScheduler {
    schedule: NoiseSchedule,
    prediction: PredictionType,
    num_train_timesteps: usize,
    num_inference_steps: usize,
    timesteps: Vec<i64>,
    /// The previous step's x₀ estimate (the multistep memory). `[batch, frames, channels, h, w]`
    old_pred_original_sample: Option<Tensor<5>>,
}

impl DpmScheduler {
    pub fn new(config: &SchedulerConfig, num_inference_steps: usize) -> Result<Self, SamplingError> {
        Ok(DpmScheduler {
            schedule: NoiseSchedule::new(config),
            prediction: config.prediction_type,
            num_train_timesteps: config.num_train_timesteps,
            num_inference_steps,
            timesteps: inference_timesteps(config, num_inference_steps)?,
            old_pred_original_sample: None,
        })
    }

    /// The timesteps of the run, highest first (the model is called at each).
    pub fn timesteps(&self) -> &[i64] {
        &self.timesteps
    }

    pub fn schedule(&self) -> &NoiseSchedule {
        &self.schedule
    }

    /// The initial latents' scale (1 for these schedulers).
    pub fn init_noise_sigma(&self) -> f64 {
        1.0
    }

    /// Forgets the multistep memory (a new run starts; step 0 does this too).
    pub fn reset(&mut self) {
        self.old_pred_original_sample = None;
    }

    /// The timesteps step `index` uses.
    pub fn step_timesteps(&self, index: usize) -> Result<StepTimesteps, SamplingError> {
        let len = self.timesteps.len();
        let &timestep = self.timesteps.get(index).ok_or(SamplingError::StepIndex { index, len })?;
        Ok(StepTimesteps {
            timestep,
            timestep_back: index.checked_sub(1).map(|i| self.timesteps[i]),
            prev_timestep: timestep - (self.num_train_timesteps / self.num_inference_steps) as i64,
        })
    }

    /// The coefficients of step `index` (with the look-back when `index > 0`).
    pub fn coefficients(&self, index: usize) -> Result<DpmCoefficients, SamplingError> {
        let ts = self.step_timesteps(index)?;
        let s = &self.schedule;
        Ok(DpmCoefficients::new(
            s.alpha_cumprod(ts.timestep),
            s.alpha_cumprod(ts.prev_timestep),
            ts.timestep_back.map(|t| s.alpha_cumprod(t)),
        ))
    }

    /// One denoising step from `timesteps()[timestep_index]`. Draws one noise tensor on the first
    /// and the last step and two on the others (the first of the two is drawn but unused, as the
    /// reference does — it keeps the random stream in step with the reference's).
    pub fn step(
        &mut self,
        model_output: Tensor<5>,
        timestep_index: usize,
        sample: Tensor<5>,
        noise: &mut dyn NoiseSource,
        device: &ComputeDevice,
    ) -> Result<StepOutput, SamplingError> {
        check_shapes(&model_output, &sample)?;
        if timestep_index == 0 {
            self.reset();
        }
        let ts = self.step_timesteps(timestep_index)?;
        let c = self.coefficients(timestep_index)?;
        // [batch, frames, channels, h, w]
        let x0 = predict_original(self.prediction, c.alpha_prod_t, model_output, sample.clone());
        let noise_first = draw_noise(noise, &sample, device)?;
        let (m1, m2, sigma) = (c.mult1 as f32, c.mult2 as f32, c.mult_noise as f32);

        let first_order = |denoised: Tensor<5>, eps: Tensor<5>| {
            // x_prev = m1·x − m2·x₀ + σ·z
            sample.clone().mul_scalar(m1).sub(denoised.mul_scalar(m2)).add(eps.mul_scalar(sigma))
        };
        let prev_sample = match (self.old_pred_original_sample.take(), c.multistep) {
            (Some(old_x0), Some((m3, m4))) if ts.prev_timestep >= 0 => {
                // D = (1 + 1/(2r))·x₀ − 1/(2r)·x₀_old, then the same update with a second draw.
                let d = x0.clone().mul_scalar(m3 as f32).sub(old_x0.mul_scalar(m4 as f32));
                let noise_second = draw_noise(noise, &sample, device)?;
                first_order(d, noise_second)
            }
            _ => first_order(x0.clone(), noise_first),
        };
        self.old_pred_original_sample = Some(x0.clone());
        Ok(StepOutput { prev_sample, pred_original_sample: x0 })
    }
}
