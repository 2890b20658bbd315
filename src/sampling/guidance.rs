//! Classifier-free guidance with CogVideoX's dynamic scale schedule.

use burn::tensor::Tensor;

use super::SamplingError;

/// The per-step guidance scale of CogVideoX's `use_dynamic_cfg`, exactly as the reference computes
/// it in Python floats: `1 + s·(1 − cos(π·((n − t)/n)⁵))/2`, with `t` the integer timestep (not
/// the step index). For t ≫ n the base is a large negative number, so the values look arbitrary
/// (e.g. 4.76, 1.94, 1.09, 1.01 for s = 6, n = 4); reproduced here bit for bit (same libm calls).
pub fn dynamic_guidance_scales(guidance_scale: f64, num_inference_steps: usize, timesteps: &[i64]) -> Vec<f64> {
    let n = num_inference_steps as f64;
    timesteps
        .iter()
        .map(|&t| {
            let base = (num_inference_steps as i64 - t) as f64 / n;
            1.0 + guidance_scale * ((1.0 - (std::f64::consts::PI * base.powf(5.0)).cos()) / 2.0)
        })
        .collect()
}

/// The guidance scale of every step: the dynamic schedule, or `guidance_scale` throughout.
pub fn guidance_scales(guidance_scale: f64, use_dynamic_cfg: bool, timesteps: &[i64]) -> Vec<f64> {
    if use_dynamic_cfg {
        dynamic_guidance_scales(guidance_scale, timesteps.len(), timesteps)
    } else {
        vec![guidance_scale; timesteps.len()]
    }
}

/// `u + g·(c − u)` on a CFG batch `[uncond; cond]` (uncond first, as CogVideoX/Tora batch it), with
/// `g` cast to f32 as torch does with a Python float. `[2·batch, ...]` -> `[batch, ...]`
pub fn apply_guidance(noise_pred: Tensor<5>, guidance_scale: f64) -> Result<Tensor<5>, SamplingError> {
    let batch = noise_pred.dims()[0];
    if batch == 0 || batch % 2 != 0 {
        return Err(SamplingError::GuidanceBatch { batch });
    }
    let half = batch / 2;
    let uncond = noise_pred.clone().narrow(0, 0, half);
    let cond = noise_pred.narrow(0, half, half);
    Ok(uncond.clone().add(cond.sub(uncond).mul_scalar(guidance_scale as f32)))
}
