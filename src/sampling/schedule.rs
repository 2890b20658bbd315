//! The noise schedule (ᾱ per training timestep) and the inference timesteps, reproducing
//! diffusers' arithmetic: f64 for `scaled_linear` (CogVideoX), torch's f32 for the other betas,
//! numpy's `arange`/`linspace`/`round` (half to even) for the timestep spacings.

use super::config::{BetaSchedule, SchedulerConfig, TimestepSpacing};
use super::SamplingError;

/// ᾱ (`alphas_cumprod`) for every training timestep, and the ᾱ used "after" the last step.
#[derive(Debug, Clone, PartialEq)]
pub struct NoiseSchedule {
    pub alphas_cumprod: Vec<f64>,
    /// `1.0` with `set_alpha_to_one`, else `ᾱ[0]`.
    pub final_alpha_cumprod: f64,
}

impl NoiseSchedule {
    pub fn new(config: &SchedulerConfig) -> Self {
        let n = config.num_train_timesteps;
        // diffusers keeps `scaled_linear` in f64 and every other schedule in torch's f32; `round`
        // mimics the f32 tensors (an f64 result of f32 operands rounded once = the f32 result).
        let (betas, round): (Vec<f64>, fn(f64) -> f64) = match (&config.trained_betas, config.beta_schedule) {
            (Some(betas), _) => (betas.iter().map(|&b| to_f32(b)).collect(), to_f32),
            (None, BetaSchedule::ScaledLinear) => {
                let roots = torch_linspace(config.beta_start.sqrt(), config.beta_end.sqrt(), n);
                (roots.iter().map(|r| r * r).collect(), identity)
            }
            (None, BetaSchedule::Linear) => {
                let betas = torch_linspace(to_f32(config.beta_start), to_f32(config.beta_end), n);
                (betas.into_iter().map(to_f32).collect(), to_f32)
            }
            (None, BetaSchedule::SquaredcosCapV2) => (betas_for_alpha_bar(n).into_iter().map(to_f32).collect(), to_f32),
        };
        // ᾱ_t = Π (1 − β_i), left to right like torch.cumprod's CPU kernel, which accumulates in
        // f64 even for f32 tensors and rounds each stored entry.
        let mut product = 1.0;
        let mut alphas_cumprod: Vec<f64> = betas
            .iter()
            .map(|&beta| {
                product *= round(1.0 - beta);
                round(product)
            })
            .collect();
        let s = config.snr_shift_scale;
        for a in &mut alphas_cumprod {
            *a = round(*a / round(round(s) + round(round(1.0 - s) * *a)));
        }
        if config.rescale_betas_zero_snr {
            rescale_zero_terminal_snr(&mut alphas_cumprod, round);
        }
        let final_alpha_cumprod = if config.set_alpha_to_one { 1.0 } else { alphas_cumprod[0] };
        NoiseSchedule { alphas_cumprod, final_alpha_cumprod }
    }

    /// ᾱ at a training timestep, or the final ᾱ for a negative one (the step after the last).
    pub fn alpha_cumprod(&self, timestep: i64) -> f64 {
        if timestep < 0 {
            self.final_alpha_cumprod
        } else {
            self.alphas_cumprod[timestep as usize]
        }
    }
}

fn identity(x: f64) -> f64 {
    x
}

fn to_f32(x: f64) -> f64 {
    x as f32 as f64
}

/// `torch.linspace(start, end, steps)` (CPU kernel): `start + i·step` for the first half,
/// `end − (steps−1−i)·step` for the second, so both ends are exact.
pub fn torch_linspace(start: f64, end: f64, steps: usize) -> Vec<f64> {
    if steps == 1 {
        return vec![start];
    }
    let step = (end - start) / (steps - 1) as f64;
    let halfway = steps / 2;
    (0..steps)
        .map(|i| if i < halfway { start + step * i as f64 } else { end - step * (steps - 1 - i) as f64 })
        .collect()
}

/// Improved DDPM's cosine schedule: `β_i = min(1 − ᾱ(t₂)/ᾱ(t₁), 0.999)`, `ᾱ(t) = cos²((t+0.008)/1.008·π/2)`.
fn betas_for_alpha_bar(n: usize) -> Vec<f64> {
    let alpha_bar = |t: f64| ((t + 0.008) / 1.008 * std::f64::consts::PI / 2.0).cos().powi(2);
    (0..n)
        .map(|i| {
            let (t1, t2) = (i as f64 / n as f64, (i + 1) as f64 / n as f64);
            (1.0 - alpha_bar(t2) / alpha_bar(t1)).min(0.999)
        })
        .collect()
}

/// Zero terminal SNR (Lin et al. 2023, Algorithm 1) on ᾱ: shift √ᾱ so its last entry is 0 and
/// scale it so the first is unchanged. The last ᾱ comes out exactly 0.
pub fn rescale_zero_terminal_snr(alphas_cumprod: &mut [f64], round: fn(f64) -> f64) {
    let (Some(&first), Some(&last)) = (alphas_cumprod.first(), alphas_cumprod.last()) else { return };
    let (sqrt_0, sqrt_t) = (round(first.sqrt()), round(last.sqrt()));
    let scale = round(sqrt_0 / round(sqrt_0 - sqrt_t));
    for a in alphas_cumprod.iter_mut() {
        let shifted = round(round(round(a.sqrt()) - sqrt_t) * scale);
        *a = round(shifted * shifted);
    }
}

/// The `num_inference_steps` timesteps, highest first, as diffusers' `set_timesteps` picks them.
pub fn inference_timesteps(config: &SchedulerConfig, num_inference_steps: usize) -> Result<Vec<i64>, SamplingError> {
    let train = config.num_train_timesteps;
    if num_inference_steps == 0 || num_inference_steps > train {
        return Err(SamplingError::Steps { requested: num_inference_steps, max: train });
    }
    let n = num_inference_steps;
    let timesteps = match config.timestep_spacing {
        TimestepSpacing::Linspace => {
            numpy_linspace(0.0, (train - 1) as f64, n).iter().rev().map(|v| v.round_ties_even() as i64).collect()
        }
        TimestepSpacing::Leading => {
            let ratio = (train / n) as i64;
            (0..n as i64).rev().map(|i| i * ratio + config.steps_offset).collect()
        }
        TimestepSpacing::Trailing => {
            let ratio = train as f64 / n as f64;
            // For some n (61, ...) numpy's arange overshoots by one entry of ~−6e-13, which diffusers
            // turns into a timestep −1 (a 62nd model call at ᾱ[−1] = 0); that entry is dropped here.
            numpy_arange(train as f64, 0.0, -ratio)
                .iter()
                .map(|v| v.round_ties_even() as i64 - 1)
                .filter(|&t| t >= 0)
                .collect()
        }
    };
    Ok(timesteps)
}

/// `numpy.arange(start, stop, step)` for floats: length `ceil((stop − start)/step)`, then
/// `start + i·Δ` with `Δ = (start + step) − start` (numpy's fill), which is not always `step`.
pub fn numpy_arange(start: f64, stop: f64, step: f64) -> Vec<f64> {
    let len = ((stop - start) / step).ceil();
    if len.is_nan() || len <= 0.0 {
        return Vec::new();
    }
    let len = len as usize;
    let delta = (start + step) - start;
    (0..len)
        .map(|i| match i {
            0 => start,
            1 => start + step,
            _ => start + i as f64 * delta,
        })
        .collect()
}

/// `numpy.linspace(start, stop, num)` (endpoint included): `i·step + start`, last entry exactly `stop`.
pub fn numpy_linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    if num == 1 {
        return vec![start];
    }
    let step = (stop - start) / (num - 1) as f64;
    let mut out: Vec<f64> = (0..num).map(|i| i as f64 * step + start).collect();
    if let Some(last) = out.last_mut() {
        *last = stop;
    }
    out
}
