//! STDiT3's input embeddings: the 3D patch embedding, the timestep / fps sinusoid MLPs, the
//! caption projection, the 2D sin-cos position embedding and the temporal RoPE tables.
//!
//! The sinusoids are evaluated on the host in f32 with the reference's operation order (its
//! arguments reach ~1000 rad, where a GPU `sin` would not be accurate enough), then uploaded.

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::activation::silu;
use burn::tensor::ops::PadMode;
use burn::tensor::{Tensor, TensorData};

use super::blocks::Mlp;

/// Width of the timestep / fps sinusoid (`frequency_embedding_size`).
pub const FREQUENCY_EMBEDDING_SIZE: usize = 256;

/// f32 `exp`, `sin`, `cos` correctly rounded (evaluated in f64): torch's vectorised f32 kernels
/// are within an ulp of these.
fn exp32(x: f32) -> f32 {
    (x as f64).exp() as f32
}
fn sin32(x: f32) -> f32 {
    (x as f64).sin() as f32
}
fn cos32(x: f32) -> f32 {
    (x as f64).cos() as f32
}

/// `TimestepEmbedder.timestep_embedding(t, dim)`: `[cos(t·f), sin(t·f)]` with
/// `f_i = exp(−ln(10000)·i/half)`, all in f32. Returns `[t.len(), dim]` row-major.
pub fn timestep_sinusoid(t: &[f32], dim: usize) -> Vec<f32> {
    let half = dim / 2;
    let neg_log = -(10000f64.ln()) as f32;
    let freqs: Vec<f32> = (0..half).map(|i| exp32(neg_log * i as f32 / half as f32)).collect();
    let mut out = Vec::with_capacity(t.len() * dim);
    for &ti in t {
        let args: Vec<f32> = freqs.iter().map(|&f| ti * f).collect();
        out.extend(args.iter().map(|&a| cos32(a)));
        out.extend(args.iter().map(|&a| sin32(a)));
        if dim % 2 == 1 {
            out.push(0.0);
        }
    }
    out
}

/// `TimestepEmbedder` (and `SizeEmbedder`, the same network for fps):
/// sinusoid(256) → Linear → SiLU → Linear. Keys `mlp.0`, `mlp.2`.
#[derive(Module, Debug)]
pub struct TimestepEmbedder {
    /// `mlp.0` `[256 → hidden]`
    pub mlp_0: Linear,
    /// `mlp.2` `[hidden → hidden]`
    pub mlp_2: Linear,
}

impl TimestepEmbedder {
    /// `t` (host values, one per sample) → `[batch, hidden]`.
    pub fn forward(&self, t: &[f32]) -> Tensor<2> {
        let weight = self.mlp_0.weight.val();
        let (device, dtype) = (weight.device(), weight.dtype());
        let [freq_dim, _] = weight.dims();
        let data = TensorData::new(timestep_sinusoid(t, freq_dim), [t.len(), freq_dim]);
        let freq = Tensor::<2>::from_data(data, (&device, dtype)); // [batch, 256]
        self.mlp_2.forward(silu(self.mlp_0.forward(freq)))
    }
}

/// `PatchEmbed3D`: a Conv3d with kernel = stride = patch, after zero-padding T, H, W at the end
/// to multiples of the patch. Key `proj.{weight,bias}`.
#[derive(Module, Debug)]
pub struct PatchEmbed3D {
    pub proj: Conv3dPatch,
}

/// The patch convolution's parameters: `weight` `[hidden, in, pt, ph, pw]`, `bias` `[hidden]`.
#[derive(Module, Debug)]
pub struct Conv3dPatch {
    pub weight: Param<Tensor<5>>,
    pub bias: Param<Tensor<1>>,
}

impl PatchEmbed3D {
    /// `x` `[B, C, T, H, W]` → tokens `[B, (T' H' W'), hidden]` ordered frame, row, column.
    pub fn forward(&self, x: Tensor<5>) -> Tensor<3> {
        let weight = self.proj.weight.val();
        let [hidden, c_in, pt, ph, pw] = weight.dims();
        let [b, c, t, h, w] = x.dims();
        let pad = |n: usize, p: usize| (p - n % p) % p;
        let (pad_t, pad_h, pad_w) = (pad(t, pt), pad(h, ph), pad(w, pw));
        let x = if pad_t + pad_h + pad_w > 0 {
            x.pad([(0, pad_t), (0, pad_h), (0, pad_w)], PadMode::Constant(0.0))
        } else {
            x
        };
        let (nt, nh, nw) = ((t + pad_t) / pt, (h + pad_h) / ph, (w + pad_w) / pw);
        debug_assert_eq!(c, c_in);
        // Each patch flattened as (c, kt, kh, kw), the conv weight's own order.
        let patches = x
            .reshape([b, c, nt, pt, nh, ph, nw, pw])
            .permute([0, 2, 4, 6, 1, 3, 5, 7]) // [b, nt, nh, nw, c, pt, ph, pw]
            .reshape([b, nt * nh * nw, c * pt * ph * pw]);
        let kernel = weight.reshape([hidden, c_in * pt * ph * pw]).transpose(); // [c pt ph pw, hidden]
        patches.matmul(kernel.unsqueeze::<3>()) + self.proj.bias.val().reshape([1, 1, hidden])
    }
}

/// `CaptionEmbedder`: timm `Mlp` (`y_proj.fc1`, GELU-tanh, `y_proj.fc2`) from T5 width to hidden,
/// plus the null caption `y_embedding` `[model_max_length, caption_channels]` used for CFG.
#[derive(Module, Debug)]
pub struct CaptionEmbedder {
    pub y_proj: Mlp,
    pub y_embedding: Param<Tensor<2>>,
}

impl CaptionEmbedder {
    /// `y` `[B, 1, L, C_cap]` → `[B, L, hidden]`.
    pub fn forward(&self, y: Tensor<4>) -> Tensor<3> {
        let [b, _, l, c] = y.dims();
        self.y_proj.forward(y.reshape([b, l, c]))
    }

    /// `T5Encoder.null(n)`: the learned null caption repeated, `[n, 1, L, C_cap]`.
    pub fn null(&self, n: usize) -> Tensor<4> {
        let [l, c] = self.y_embedding.dims();
        self.y_embedding.val().reshape([1, 1, l, c]).repeat_dim(0, n)
    }
}

/// `PositionEmbedding2D(hidden)(h, w, scale, base_size)` in f32, `[h·w, hidden]` row-major:
/// per token (row r, column c) `[sin(x·f), cos(x·f), sin(y·f), cos(y·f)]` with the column
/// coordinate x first, `x = f32(c)/scale · base_size/w`, `y = f32(r)/scale · base_size/h`,
/// `f_i = 1/10000^(2i/(hidden/2))`.
pub fn position_embedding_2d(hidden: usize, h: usize, w: usize, scale: f64, base_size: usize) -> Vec<f32> {
    let half = hidden / 2;
    let inv_freq: Vec<f32> = (0..half)
        .step_by(2)
        .map(|i| {
            let e = i as f32 / half as f32;
            1.0f32 / (10000f64.powf(e as f64) as f32)
        })
        .collect();
    let scale = scale as f32;
    let grid = |n: usize| -> Vec<f32> {
        let stretch = (base_size as f64 / n as f64) as f32;
        (0..n).map(|i| (i as f32 / scale) * stretch).collect()
    };
    let (gx, gy) = (grid(w), grid(h));
    let quarter = inv_freq.len();
    let mut out = Vec::with_capacity(h * w * hidden);
    for &y in &gy {
        for &x in &gx {
            for coord in [x, y] {
                let args: Vec<f32> = inv_freq.iter().map(|&f| coord * f).collect();
                out.extend(args.iter().map(|&a| sin32(a)));
                out.extend(args.iter().map(|&a| cos32(a)));
            }
        }
    }
    debug_assert_eq!(out.len(), h * w * 4 * quarter);
    out
}

/// STDiT3's `scale` and `base_size` for the position embedding: `sqrt(height·width)/input_sq_size`
/// (in f64, as Python computes it from the pixel size) and `round(sqrt(S))` with Python's
/// round-half-to-even, `S` = patch tokens per frame.
pub fn position_scale(height: f32, width: f32, input_sq_size: usize, tokens_per_frame: usize) -> (f64, usize) {
    let scale = (height as f64 * width as f64).sqrt() / input_sq_size as f64;
    let base_size = (tokens_per_frame as f64).sqrt().round_ties_even() as usize;
    (scale, base_size)
}

/// rotary_embedding_torch's `RotaryEmbedding` as STDiT3 uses it (`rotate_queries_or_keys` over
/// the frame axis, positions `0..T`): key `rope.freqs` `[head_dim/2]`.
#[derive(Module, Debug)]
pub struct RotaryEmbedding {
    pub freqs: Param<Tensor<1>>,
}

/// RoPE `cos`/`sin` tables `[1, 1, T, head_dim]`, each frequency repeated for its pair.
#[derive(Debug, Clone)]
pub struct RopeTables {
    pub cos: Tensor<4>,
    pub sin: Tensor<4>,
}

impl RotaryEmbedding {
    /// Tables for positions `0..len` (host f32: `pos·freq`, then cos/sin).
    pub fn tables(&self, len: usize) -> RopeTables {
        let freqs = self.freqs.val();
        let (device, dtype) = (freqs.device(), freqs.dtype());
        let host: Vec<f32> = freqs.into_data().convert::<f32>().try_to_vec().unwrap_or_default();
        let dim = host.len() * 2;
        let mut cos = Vec::with_capacity(len * dim);
        let mut sin = Vec::with_capacity(len * dim);
        for pos in 0..len {
            for &f in &host {
                let a = pos as f32 * f;
                // '... n -> ... (n r)', r = 2: interleaved pairs share a frequency.
                cos.extend([cos32(a); 2]);
                sin.extend([sin32(a); 2]);
            }
        }
        let upload = |v: Vec<f32>| Tensor::<4>::from_data(TensorData::new(v, [1, 1, len, dim]), (&device, dtype));
        RopeTables { cos: upload(cos), sin: upload(sin) }
    }
}

impl RopeTables {
    /// `apply_rotary_emb`: `t·cos + rotate_half(t)·sin` with interleaved pairs,
    /// `rotate_half([a, b]) = [−b, a]`. `t` `[batch, heads, T, head_dim]`.
    pub fn apply(&self, t: Tensor<4>) -> Tensor<4> {
        let [b, h, n, d] = t.dims();
        let pairs = t.clone().reshape([b, h, n, d / 2, 2]);
        let even = pairs.clone().narrow(4, 0, 1);
        let odd = pairs.narrow(4, 1, 1);
        let rotated = Tensor::cat(vec![odd.neg(), even], 4).reshape([b, h, n, d]);
        t * self.cos.clone() + rotated * self.sin.clone()
    }
}
