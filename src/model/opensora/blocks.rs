//! STDiT3's layers (OpenSora 1.2 `opensora/models/layers/blocks.py` and `STDiT3Block`):
//! self-attention with q/k RMSNorm (and RoPE in temporal blocks), the block-diagonal caption
//! cross-attention, timm's `Mlp`, the t2i-modulated block and the final layer.

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::{Bool, Tensor};

use super::embeddings::RopeTables;
use super::tora::MotionFuser;
use crate::model::attention::scaled_dot_product_attention;

/// LayerNorm eps of `norm1`, `norm2` and the final norm (all without affine parameters).
pub const LAYER_NORM_EPS: f64 = 1e-6;
/// LlamaRMSNorm eps of the q/k norms.
pub const QK_NORM_EPS: f64 = 1e-6;

/// `nn.LayerNorm(C, eps=1e-6, elementwise_affine=False)` over the last axis.
pub fn layer_norm(x: Tensor<3>) -> Tensor<3> {
    let (var, mean) = x.clone().var_mean_bias(2); // [batch, tokens, 1]
    (x - mean) / var.add_scalar(LAYER_NORM_EPS).sqrt()
}

/// `t2i_modulate`: `x·(1 + scale) + shift`, `shift`/`scale` `[batch, 1, C]`.
pub fn t2i_modulate(x: Tensor<3>, shift: Tensor<3>, scale: Tensor<3>) -> Tensor<3> {
    x * scale.add_scalar(1.0) + shift
}

/// `nn.GELU(approximate="tanh")`: `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`.
pub fn gelu_tanh<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let x3 = x.clone().powi_scalar(3);
    let inner = (x.clone() + x3.mul_scalar(0.044715)).mul_scalar((2.0f64 / std::f64::consts::PI).sqrt());
    x.mul_scalar(0.5) * inner.tanh().add_scalar(1.0)
}

/// `t_mask_select`: per frame, `x` where `x_mask` is true, else `masked` (the t = 0 variant).
/// `x`, `masked` `[B, (T S), C]`, `x_mask` `[B, T]`.
pub fn t_mask_select(x_mask: &Tensor<2, Bool>, x: Tensor<3>, masked: Tensor<3>, frames: usize) -> Tensor<3> {
    let [b, n, c] = x.dims();
    let s = n / frames;
    let mask = x_mask.clone().reshape([b, frames, 1, 1]).expand([b, frames, s, c]);
    masked.reshape([b, frames, s, c]).mask_where(mask, x.reshape([b, frames, s, c])).reshape([b, n, c])
}

/// `LlamaRMSNorm(head_dim)`: `w · x / sqrt(mean(x²) + eps)` over the last axis (f32).
#[derive(Module, Debug)]
pub struct RmsNorm {
    pub weight: Param<Tensor<1>>,
}

impl RmsNorm {
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let variance = x.clone().square().mean_dim(3); // [batch, heads, tokens, 1]
        let x = x * variance.add_scalar(QK_NORM_EPS).sqrt().recip();
        let d = self.weight.dims()[0];
        x * self.weight.val().reshape([1, 1, 1, d])
    }
}

/// timm `Mlp`: `fc2(GELU-tanh(fc1(x)))`.
#[derive(Module, Debug)]
pub struct Mlp {
    pub fc1: Linear,
    pub fc2: Linear,
}

impl Mlp {
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        self.fc2.forward(gelu_tanh(self.fc1.forward(x)))
    }
}

/// Self-attention (`Attention`): fused `qkv`, optional per-head RMSNorm on q and k, then RoPE
/// (temporal blocks), softmax(q·kᵀ/√d)·v, `proj`.
#[derive(Module, Debug)]
pub struct Attention {
    pub qkv: Linear,
    pub q_norm: Option<RmsNorm>,
    pub k_norm: Option<RmsNorm>,
    pub proj: Linear,
    #[module(skip)]
    pub num_heads: usize,
}

impl Attention {
    /// `x` `[batch, tokens, C]` → `[batch, tokens, C]`.
    pub fn forward(&self, x: Tensor<3>, rope: Option<&RopeTables>) -> Tensor<3> {
        let [b, n, c] = x.dims();
        let (h, d) = (self.num_heads, c / self.num_heads);
        let qkv = self.qkv.forward(x).reshape([b, n, 3, h, d]);
        // [batch, heads, tokens, head_dim]
        let part = |i: usize| qkv.clone().narrow(2, i, 1).reshape([b, n, h, d]).swap_dims(1, 2);
        let (mut q, mut k, v) = (part(0), part(1), part(2));
        if let Some(norm) = &self.q_norm {
            q = norm.forward(q);
        }
        if let Some(norm) = &self.k_norm {
            k = norm.forward(k);
        }
        if let Some(rope) = rope {
            q = rope.apply(q);
            k = rope.apply(k);
        }
        let out = scaled_dot_product_attention(q, k, v, None, (d as f64).powf(-0.5));
        self.proj.forward(out.swap_dims(1, 2).reshape([b, n, c]))
    }
}

/// The caption tokens every block's cross-attention reads, and which of them each sample sees.
#[derive(Debug, Clone)]
pub struct Captions {
    /// Projected captions `[B, L, C]` (one row per sample; a `[1, L, C]` set is shared).
    pub tokens: Tensor<3>,
    /// Additive bias `[B, 1, 1, L]`: 0 for the sample's valid tokens, −∞ (f32::MIN) for its
    /// padding. This is the reference's block-diagonal mask over packed tokens, per sample.
    pub bias: Option<Tensor<4>>,
}

/// `MultiHeadCrossAttention`: image tokens (queries) attend to caption tokens.
#[derive(Module, Debug)]
pub struct MultiHeadCrossAttention {
    pub q_linear: Linear,
    pub kv_linear: Linear,
    pub proj: Linear,
    #[module(skip)]
    pub num_heads: usize,
}

impl MultiHeadCrossAttention {
    /// `x` `[B, N, C]` → `[B, N, C]`.
    pub fn forward(&self, x: Tensor<3>, captions: &Captions) -> Tensor<3> {
        let [b, n, c] = x.dims();
        let (h, d) = (self.num_heads, c / self.num_heads);
        let q = self.q_linear.forward(x).reshape([b, n, h, d]).swap_dims(1, 2); // [B, heads, N, d]
        let [bk, l, _] = captions.tokens.dims();
        let kv = self.kv_linear.forward(captions.tokens.clone()).reshape([bk, l, 2, h, d]);
        // [B, heads, L, d] (a shared caption set is broadcast over the batch)
        let part = |i: usize| {
            let t = kv.clone().narrow(2, i, 1).reshape([bk, l, h, d]).swap_dims(1, 2);
            if bk == b {
                t
            } else {
                t.expand([b, h, l, d])
            }
        };
        let (k, v) = (part(0), part(1));
        let out = scaled_dot_product_attention(q, k, v, captions.bias.clone(), (d as f64).powf(-0.5));
        self.proj.forward(out.swap_dims(1, 2).reshape([b, n, c]))
    }
}

/// The six modulation vectors of a block, each `[B, 1, C]`.
struct Modulation {
    shift_msa: Tensor<3>,
    scale_msa: Tensor<3>,
    gate_msa: Tensor<3>,
    shift_mlp: Tensor<3>,
    scale_mlp: Tensor<3>,
    gate_mlp: Tensor<3>,
}

impl Modulation {
    /// `scale_shift_table[None] + t.reshape(B, 6, C)`, chunked along the 6.
    fn new(table: Tensor<2>, t: Tensor<2>) -> Self {
        let [b, six_c] = t.dims();
        let c = six_c / 6;
        let m = table.unsqueeze::<3>() + t.reshape([b, 6, c]); // [B, 6, C]
        let mut parts = m.chunk(6, 1).into_iter();
        let mut next = || parts.next().expect("six chunks");
        Modulation {
            shift_msa: next(),
            scale_msa: next(),
            gate_msa: next(),
            shift_mlp: next(),
            scale_mlp: next(),
            gate_mlp: next(),
        }
    }
}

/// Per-call context shared by every block.
pub struct BlockContext<'a> {
    /// `t_block(t)` `[B, 6C]`.
    pub t_mlp: Tensor<2>,
    /// `t_block(t0)` for t = 0 (only with `x_mask`).
    pub t0_mlp: Option<Tensor<2>>,
    /// `[B, T]`: frames whose flag is false use the t = 0 modulation.
    pub x_mask: Option<Tensor<2, Bool>>,
    pub captions: &'a Captions,
    /// Latent patch grid `(T, H', W')`; `S = H'·W'` tokens per frame.
    pub grid: (usize, usize, usize),
    /// RoPE over the T frames (temporal blocks).
    pub rope: &'a RopeTables,
    /// Tora's motion guidance, applied in temporal blocks.
    pub motion: Option<&'a dyn MotionFuser>,
}

/// `STDiT3Block`: spatial (attention over the S tokens of a frame) or temporal (over the T frames
/// of a token, with RoPE), each followed by caption cross-attention and an MLP.
#[derive(Module, Debug)]
pub struct Stdit3Block {
    pub attn: Attention,
    pub cross_attn: MultiHeadCrossAttention,
    pub mlp: Mlp,
    /// `[6, C]`
    pub scale_shift_table: Param<Tensor<2>>,
    #[module(skip)]
    pub temporal: bool,
    /// Index among the blocks of its kind (the motion feature a temporal block receives).
    #[module(skip)]
    pub index: usize,
}

impl Stdit3Block {
    /// `x` `[B, (T S), C]` → same.
    pub fn forward(&self, x: Tensor<3>, ctx: &BlockContext) -> Tensor<3> {
        let [b, n, c] = x.dims();
        let (t, hp, wp) = ctx.grid;
        let s = n / t;
        let table = self.scale_shift_table.val();
        let m = Modulation::new(table.clone(), ctx.t_mlp.clone());
        // With x_mask: the same quantities under the t = 0 modulation, selected per frame.
        let masked = match (&ctx.x_mask, &ctx.t0_mlp) {
            (Some(mask), Some(t0)) => Some((mask, Modulation::new(table, t0.clone()))),
            _ => None,
        };

        // modulate (attention)
        let norm1 = layer_norm(x.clone());
        let mut x_m = t2i_modulate(norm1.clone(), m.shift_msa, m.scale_msa);
        if let Some((mask, m0)) = &masked {
            let x_m_zero = t2i_modulate(norm1, m0.shift_msa.clone(), m0.scale_msa.clone());
            x_m = t_mask_select(mask, x_m, x_m_zero, t);
        }

        // attention
        let x_m = if self.temporal {
            // Tora: motion guidance on the modulated tokens before the temporal attention.
            let x_m = match ctx.motion {
                Some(motion) => {
                    let h = x_m.reshape([b * t, hp, wp, c]).permute([0, 3, 1, 2]); // [(B T), C, H', W']
                    motion.fuse(self.index, h).permute([0, 2, 3, 1]).reshape([b, n, c])
                }
                None => x_m,
            };
            let seq = x_m.reshape([b, t, s, c]).swap_dims(1, 2).reshape([b * s, t, c]); // [(B S), T, C]
            let out = self.attn.forward(seq, Some(ctx.rope));
            out.reshape([b, s, t, c]).swap_dims(1, 2).reshape([b, n, c])
        } else {
            let seq = x_m.reshape([b * t, s, c]); // [(B T), S, C]
            self.attn.forward(seq, None).reshape([b, n, c])
        };

        // gate, residual
        let mut x_m_s = m.gate_msa * x_m.clone();
        if let Some((mask, m0)) = &masked {
            let x_m_s_zero = m0.gate_msa.clone() * x_m;
            x_m_s = t_mask_select(mask, x_m_s, x_m_s_zero, t);
        }
        let x = x + x_m_s;

        // cross attention
        let x = x.clone() + self.cross_attn.forward(x, ctx.captions);

        // modulate (MLP)
        let norm2 = layer_norm(x.clone());
        let mut x_m = t2i_modulate(norm2.clone(), m.shift_mlp, m.scale_mlp);
        if let Some((mask, m0)) = &masked {
            let x_m_zero = t2i_modulate(norm2, m0.shift_mlp.clone(), m0.scale_mlp.clone());
            x_m = t_mask_select(mask, x_m, x_m_zero, t);
        }
        let x_m = self.mlp.forward(x_m);
        let mut x_m_s = m.gate_mlp * x_m.clone();
        if let Some((mask, m0)) = &masked {
            let x_m_s_zero = m0.gate_mlp.clone() * x_m;
            x_m_s = t_mask_select(mask, x_m_s, x_m_s_zero, t);
        }
        x + x_m_s
    }
}

/// `T2IFinalLayer`: `scale_shift_table[2] + t` → shift, scale; modulated LayerNorm; `linear`.
#[derive(Module, Debug)]
pub struct T2IFinalLayer {
    pub linear: Linear,
    /// `[2, C]`
    pub scale_shift_table: Param<Tensor<2>>,
}

impl T2IFinalLayer {
    /// `x` `[B, N, C]`, `t`/`t0` `[B, C]` → `[B, N, patch·out]`.
    pub fn forward(
        &self,
        x: Tensor<3>,
        t: Tensor<2>,
        mask: Option<(&Tensor<2, Bool>, Tensor<2>)>,
        frames: usize,
    ) -> Tensor<3> {
        let table = self.scale_shift_table.val().unsqueeze::<3>(); // [1, 2, C]
        let shift_scale = |t: Tensor<2>| {
            let [b, c] = t.dims();
            let m = table.clone() + t.reshape([b, 1, c]); // [B, 2, C]
            (m.clone().narrow(1, 0, 1), m.narrow(1, 1, 1))
        };
        let (shift, scale) = shift_scale(t);
        let mut x = t2i_modulate(layer_norm(x), shift, scale);
        if let Some((x_mask, t0)) = mask {
            let (shift0, scale0) = shift_scale(t0);
            // As the reference: the t = 0 branch normalises the already-modulated x.
            let x_zero = t2i_modulate(layer_norm(x.clone()), shift0, scale0);
            x = t_mask_select(x_mask, x, x_zero, frames);
        }
        self.linear.forward(x)
    }
}
