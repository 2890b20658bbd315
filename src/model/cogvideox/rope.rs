//! CogVideoX's 3D rotary position embedding, computed exactly as the pipeline's
//! `_prepare_rotary_positional_embeddings` (CogVideoX 1.0: `grid_type="linspace"`) does, all in f32:
//!
//! - token grid `gh × gw` = `(H/8/p) × (W/8/p)`, base grid = `(sample_height/p) × (sample_width/p)`;
//! - crop region `get_resize_crop_region_for_grid` (Python `round`: half to even);
//! - positions `torch.linspace(start, stop·(n-1)/n, n)` (torch's two-sided linspace) per axis,
//!   time `linspace(0, T-1, T)`;
//! - head_dim split t:¼, h:⅜, w:⅜; `1/θ^(2i/dim)` with θ=10000; each angle's cos/sin repeated twice
//!   (interleaved pairs); token order (t, y, x).

use burn::tensor::{DType, Tensor, TensorData};

use super::TransformerConfig;
use crate::model::device::ComputeDevice;

/// The VAE's spatial down-sampling (8 for every CogVideoX VAE).
pub const VAE_SCALE_FACTOR_SPATIAL: usize = 8;
const THETA: f32 = 10000.0;

/// `cos`/`sin` tables `[F·gh·gw, head_dim]` for the video tokens.
#[derive(Debug, Clone)]
pub struct RotaryEmbedding {
    pub cos: Tensor<2>,
    pub sin: Tensor<2>,
    /// Token grid (frames, height, width) the tables were made for.
    pub grid: (usize, usize, usize),
}

/// The tables on the host (for checks and for building device tensors).
#[derive(Debug, Clone, PartialEq)]
pub struct RotaryTables {
    pub cos: Vec<f32>,
    pub sin: Vec<f32>,
    pub tokens: usize,
    pub head_dim: usize,
    pub crops_coords: ((i64, i64), (i64, i64)),
}

impl RotaryEmbedding {
    /// For an output of `height_px × width_px` pixels and `latent_frames` latent frames.
    pub fn for_output(
        config: &TransformerConfig,
        height_px: usize,
        width_px: usize,
        latent_frames: usize,
        device: &ComputeDevice,
    ) -> Self {
        let p = config.patch_size.max(1);
        let gh = height_px / (VAE_SCALE_FACTOR_SPATIAL * p);
        let gw = width_px / (VAE_SCALE_FACTOR_SPATIAL * p);
        Self::for_grid(config, latent_frames, gh, gw, device)
    }

    /// For a token grid of `frames × gh × gw`.
    pub fn for_grid(config: &TransformerConfig, frames: usize, gh: usize, gw: usize, device: &ComputeDevice) -> Self {
        let t = tables(config, frames, gh, gw);
        let shape = [t.tokens, t.head_dim];
        // Rotation runs in f32 (as the reference upcasts), whatever the compute dtype.
        let opts = (device.device(), DType::F32);
        RotaryEmbedding {
            cos: Tensor::from_data(TensorData::new(t.cos, shape), opts),
            sin: Tensor::from_data(TensorData::new(t.sin, shape), opts),
            grid: (frames, gh, gw),
        }
    }
}

/// Python's `round()` on a float: half to even.
fn round_half_even(x: f64) -> i64 {
    let r = x.round();
    if (x - x.trunc()).abs() == 0.5 {
        let f = x.floor();
        if (f as i64) % 2 == 0 {
            f as i64
        } else {
            f as i64 + 1
        }
    } else {
        r as i64
    }
}

/// `get_resize_crop_region_for_grid((h, w), tgt_width, tgt_height)`.
pub fn resize_crop_region(h: usize, w: usize, tw: usize, th: usize) -> ((i64, i64), (i64, i64)) {
    let (hf, wf, twf, thf) = (h as f64, w as f64, tw as f64, th as f64);
    let (rh, rw) = if hf / wf > thf / twf {
        (th as i64, round_half_even(thf / hf * wf))
    } else {
        (round_half_even(twf / wf * hf), tw as i64)
    };
    let top = round_half_even((th as i64 - rh) as f64 / 2.0);
    let left = round_half_even((tw as i64 - rw) as f64 / 2.0);
    ((top, left), (top + rh, left + rw))
}

/// `torch.linspace(start, end, n)` in f32: `start + i·step` for the first half, `end - (n-1-i)·step`
/// for the rest, with `step = (end - start) / (n - 1)`.
pub fn torch_linspace_f32(start: f64, end: f64, n: usize) -> Vec<f32> {
    let (s, e) = (start as f32, end as f32);
    if n == 1 {
        return vec![s];
    }
    let step = (e - s) / (n - 1) as f32;
    let half = n / 2;
    (0..n).map(|i| if i < half { s + step * i as f32 } else { e - step * (n - 1 - i) as f32 }).collect()
}

/// `get_1d_rotary_pos_embed(dim, pos, use_real=True)`: `[len(pos), dim]` cos and sin, pairs repeated.
fn rotary_1d(dim: usize, pos: &[f32]) -> (Vec<f32>, Vec<f32>) {
    // freqs = 1 / θ^(arange(0, dim, 2) / dim), f32
    let freqs: Vec<f32> = (0..dim).step_by(2).map(|i| 1.0 / THETA.powf(i as f32 / dim as f32)).collect();
    let mut cos = Vec::with_capacity(pos.len() * dim);
    let mut sin = Vec::with_capacity(pos.len() * dim);
    for &p in pos {
        for &f in &freqs {
            let a = p * f;
            let (s, c) = a.sin_cos();
            cos.extend([c, c]);
            sin.extend([s, s]);
        }
    }
    (cos, sin)
}

/// The host tables for a `frames × gh × gw` grid.
pub fn tables(config: &TransformerConfig, frames: usize, gh: usize, gw: usize) -> RotaryTables {
    let p = config.patch_size.max(1);
    let (base_w, base_h) = (config.sample_width / p, config.sample_height / p);
    let crops = resize_crop_region(gh, gw, base_w, base_h);
    let ((start_h, start_w), (stop_h, stop_w)) = crops;
    let grid_h = torch_linspace_f32(start_h as f64, (stop_h * (gh as i64 - 1)) as f64 / gh as f64, gh);
    let grid_w = torch_linspace_f32(start_w as f64, (stop_w * (gw as i64 - 1)) as f64 / gw as f64, gw);
    let grid_t = torch_linspace_f32(0.0, (frames * (frames.saturating_sub(1))) as f64 / frames as f64, frames);

    let d = config.attention_head_dim;
    let (dim_t, dim_h, dim_w) = (d / 4, d / 8 * 3, d / 8 * 3);
    let (t_cos, t_sin) = rotary_1d(dim_t, &grid_t);
    let (h_cos, h_sin) = rotary_1d(dim_h, &grid_h);
    let (w_cos, w_sin) = rotary_1d(dim_w, &grid_w);

    let tokens = frames * gh * gw;
    let width = dim_t + dim_h + dim_w;
    let mut cos = Vec::with_capacity(tokens * width);
    let mut sin = Vec::with_capacity(tokens * width);
    for t in 0..frames {
        for y in 0..gh {
            for x in 0..gw {
                cos.extend_from_slice(&t_cos[t * dim_t..(t + 1) * dim_t]);
                cos.extend_from_slice(&h_cos[y * dim_h..(y + 1) * dim_h]);
                cos.extend_from_slice(&w_cos[x * dim_w..(x + 1) * dim_w]);
                sin.extend_from_slice(&t_sin[t * dim_t..(t + 1) * dim_t]);
                sin.extend_from_slice(&h_sin[y * dim_h..(y + 1) * dim_h]);
                sin.extend_from_slice(&w_sin[x * dim_w..(x + 1) * dim_w]);
            }
        }
    }
    RotaryTables { cos, sin, tokens, head_dim: width, crops_coords: crops }
}

/// Rotates `x` `[batch, heads, tokens, head_dim]` by the tables `[tokens, head_dim]` on pairs
/// `(x₂ᵢ, x₂ᵢ₊₁)`: `x·cos + (−x₂ᵢ₊₁, x₂ᵢ)·sin`, in f32.
pub fn apply_rotary(x: Tensor<4>, rotary: &RotaryEmbedding) -> Tensor<4> {
    let dtype = x.dtype();
    let x = if dtype == DType::F32 { x } else { x.cast(DType::F32) };
    let [b, h, n, d] = x.dims();
    let pairs: Tensor<5> = x.clone().reshape([b, h, n, d / 2, 2]);
    let real = pairs.clone().narrow(4, 0, 1);
    let imag = pairs.narrow(4, 1, 1);
    let rotated = Tensor::cat(vec![imag.neg(), real], 4).reshape([b, h, n, d]);
    let cos = rotary.cos.clone().unsqueeze::<4>();
    let sin = rotary.sin.clone().unsqueeze::<4>();
    let out = x * cos + rotated * sin;
    if dtype == DType::F32 {
        out
    } else {
        out.cast(dtype)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_round_is_half_to_even() {
        assert_eq!(round_half_even(4.5), 4);
        assert_eq!(round_half_even(5.5), 6);
        assert_eq!(round_half_even(-0.5), 0);
        assert_eq!(round_half_even(2.4), 2);
        assert_eq!(round_half_even(2.6), 3);
    }

    #[test]
    fn crop_region_of_the_t2v_fixture() {
        // 2×3 token grid in a 3×5 base grid: height 3, width round(3/2·3) = round(4.5) = 4
        assert_eq!(resize_crop_region(2, 3, 5, 3), ((0, 0), (3, 4)));
        // CogVideoX-5B at 480×720: 30×45 tokens in the 30×45 base grid -> identity
        assert_eq!(resize_crop_region(30, 45, 45, 30), ((0, 0), (30, 45)));
    }

    #[test]
    fn linspace_matches_torch_two_sided() {
        assert_eq!(torch_linspace_f32(0.0, 4.0, 5), vec![0.0, 1.0, 2.0, 3.0, 4.0]);
        assert_eq!(torch_linspace_f32(3.0, 3.0, 1), vec![3.0]);
    }
}
