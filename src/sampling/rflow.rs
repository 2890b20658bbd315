//! OpenSora 1.2's rectified-flow sampler (`RFLOW.sample`, `opensora/schedulers/rf` at v1.2.0):
//! uniform timesteps `t_i = (1 − i/n)·1000`, optionally transformed by resolution and length,
//! classifier-free guidance on a cond-first batch, Euler steps `z += v·dt/1000`, and the
//! conditioning-frame mask path (per-frame noise schedule, frames kept at their given latent).
//!
//! All timestep arithmetic is f32 in the reference's order, so the tables match it bit for bit.

use burn::tensor::{Bool, Tensor, TensorData};

/// `RFLOW(...)` settings. Default: OpenSora 1.2 inference (30 steps, CFG 7, transform on).
#[derive(Debug, Clone, PartialEq)]
pub struct RflowConfig {
    pub num_sampling_steps: usize,
    /// Training timesteps (the time axis is `[0, num_timesteps]`).
    pub num_timesteps: usize,
    pub cfg_scale: f32,
    /// Round the uniform timesteps to integers (before any transform).
    pub use_discrete_timesteps: bool,
    /// `timestep_transform` by resolution and frame count.
    pub use_timestep_transform: bool,
    /// `transform_scale` (1 in v1.2).
    pub transform_scale: f32,
}

impl Default for RflowConfig {
    fn default() -> Self {
        RflowConfig {
            num_sampling_steps: 30,
            num_timesteps: 1000,
            cfg_scale: 7.0,
            use_discrete_timesteps: false,
            use_timestep_transform: true,
            transform_scale: 1.0,
        }
    }
}

/// What the timestep transform reads: the pixel size and frame count of the video
/// (`additional_args` `height`, `width`, `num_frames`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VideoSize {
    pub height: f32,
    pub width: f32,
    pub num_frames: f32,
}

/// Why sampling could not start.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RflowError {
    #[error("rflow: {0}")]
    Input(String),
}

/// The rectified-flow sampler.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Rflow {
    pub config: RflowConfig,
}

/// `timestep_transform(t, {height, width, num_frames}, base_resolution=512², base_num_frames=1)`,
/// in f32: `ratio = sqrt(H·W/512²) · sqrt(F') · scale` with `F' = 1` for a single frame, else
/// `floor(F/17)·5` (the VAE's temporal reduction); `t' = ratio·t / (1 + (ratio − 1)·t)` on
/// `t / num_timesteps`, scaled back.
pub fn timestep_transform(t: f32, size: VideoSize, scale: f32, num_timesteps: usize) -> f32 {
    let n = num_timesteps as f32;
    let t = t / n;
    let resolution = size.height * size.width;
    let ratio_space = (resolution / (512.0f32 * 512.0)).sqrt();
    let frames = if size.num_frames == 1.0 { 1.0 } else { (size.num_frames / 17.0).floor() * 5.0 };
    let ratio_time = (frames / 1.0f32).sqrt();
    let ratio = ratio_space * ratio_time * scale;
    let new_t = ratio * t / (1.0 + (ratio - 1.0) * t);
    new_t * n
}

impl Rflow {
    pub fn new(config: RflowConfig) -> Self {
        Rflow { config }
    }

    /// The sampling timesteps for a video of `size` (f32, the values the model receives).
    pub fn timesteps(&self, size: VideoSize) -> Vec<f32> {
        let c = &self.config;
        let n = c.num_sampling_steps;
        (0..n)
            .map(|i| {
                // Python: (1.0 - i / n) * num_timesteps in f64, stored as an f32 tensor.
                let t = (1.0 - i as f64 / n as f64) * c.num_timesteps as f64;
                let t = if c.use_discrete_timesteps { t.round_ties_even() as f32 } else { t as f32 };
                if c.use_timestep_transform {
                    timestep_transform(t, size, c.transform_scale, c.num_timesteps)
                } else {
                    t
                }
            })
            .collect()
    }

    /// `add_noise(x0, noise, t)`: `tp·x0 + (1 − tp)·noise`, `tp = 1 − t/num_timesteps`.
    pub fn add_noise(&self, x0: Tensor<5>, noise: Tensor<5>, t: f32) -> Tensor<5> {
        let tp = 1.0f32 - t / self.config.num_timesteps as f32;
        x0.mul_scalar(tp) + noise.mul_scalar(1.0f32 - tp)
    }

    /// Samples from `z` (`[B, C, T, h, w]`, the initial noise, with any conditioning frames'
    /// latents in place).
    ///
    /// - `model(z_in, t, x_mask)`: the network on the CFG batch — `z_in` `[2B, C, T, h, w]`
    ///   (`[z, z]`), `t` `[2B]`, `x_mask` `[2B, T]` (with `mask`) — returning `[2B, C', T, h, w]`
    ///   whose first `C` channels are the velocity; its first half is the conditional branch
    ///   (captions `[y, y_null]`, cond first);
    /// - `mask` `[B, T]` (f32): 1 = generate the frame, 0 = keep it (conditioning frame). With a
    ///   mask, one noise tensor of `z`'s shape is drawn every step, as the reference does;
    /// - `noise(shape)`: the injectable noise source (standard normal).
    pub fn sample(
        &self,
        model: &mut dyn FnMut(Tensor<5>, Tensor<1>, Option<Tensor<2, Bool>>) -> Tensor<5>,
        z: Tensor<5>,
        size: VideoSize,
        mask: Option<Tensor<2>>,
        noise: &mut dyn FnMut(&[usize]) -> Tensor<5>,
    ) -> Result<Tensor<5>, RflowError> {
        let [b, c, frames, h, w] = z.dims();
        if let Some(m) = &mask {
            if m.dims() != [b, frames] {
                return Err(RflowError::Input(format!("mask is {:?}, expected [{b}, {frames}]", m.dims())));
            }
        }
        let device = z.device();
        let steps = self.timesteps(size);
        let num_timesteps = self.config.num_timesteps as f32;
        let guidance = self.config.cfg_scale;
        // Frames already noised: those generated from the start.
        let mut noise_added = mask.as_ref().map(|m| m.clone().equal_elem(1.0));
        let per_frame = |m: Tensor<2, Bool>| m.reshape([b, 1, frames, 1, 1]).expand([b, c, frames, h, w]);
        let mut z = z;
        for (i, &t) in steps.iter().enumerate() {
            // Conditioning-frame mask: which frames follow the schedule at this t.
            let mut keep = None;
            let mut x_mask = None;
            if let (Some(mask), Some(added)) = (&mask, &noise_added) {
                let mask_t = mask.clone().mul_scalar(num_timesteps);
                let x0 = z.clone();
                let x_noise = self.add_noise(x0.clone(), noise(&[b, c, frames, h, w]), t);
                let upper = mask_t.greater_equal_elem(t); // [B, T]
                x_mask = Some(upper.clone().repeat_dim(0, 2)); // [2B, T]
                let add_noise_now = upper.clone().bool_and(added.clone().bool_not());
                z = x0.clone().mask_where(per_frame(add_noise_now), x_noise);
                noise_added = Some(upper.clone());
                keep = Some((upper, x0));
            }

            // Classifier-free guidance on [z, z].
            let z_in = Tensor::cat(vec![z.clone(), z.clone()], 0);
            let t_in = Tensor::<1>::from_data(TensorData::new(vec![t; 2 * b], [2 * b]), (&device, z.dtype()));
            let pred = model(z_in, t_in, x_mask).narrow(1, 0, c); // [2B, C, T, h, w]
            let cond = pred.clone().narrow(0, 0, b);
            let uncond = pred.narrow(0, b, b);
            let v = uncond.clone() + (cond - uncond).mul_scalar(guidance);

            // Euler step.
            let dt = match steps.get(i + 1) {
                Some(&next) => t - next,
                None => t,
            } / num_timesteps;
            z = z + v.mul_scalar(dt);

            if let Some((upper, x0)) = keep {
                z = x0.mask_where(per_frame(upper), z);
            }
        }
        Ok(z)
    }
}
