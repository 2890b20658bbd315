//! The T5 (v1.1) encoder stack, as transformers' `T5EncoderModel`.
//!
//! Field names mirror the checkpoint key paths; PyTorch's `layer.0` / `layer.1` module list of a
//! block becomes the fields `layer_0` / `layer_1`:
//!
//! ```text
//! shared.weight                                                  T5EncoderModel.shared
//! encoder.block.{i}.layer.0.layer_norm.weight                    .encoder.block[i].layer_0.layer_norm
//! encoder.block.{i}.layer.0.SelfAttention.{q,k,v,o}.weight       .encoder.block[i].layer_0.SelfAttention.{q,k,v,o}
//! encoder.block.0.layer.0.SelfAttention.relative_attention_bias  (block 0 only)
//! encoder.block.{i}.layer.1.layer_norm.weight                    .encoder.block[i].layer_1.layer_norm
//! encoder.block.{i}.layer.1.DenseReluDense.{wi_0,wi_1,wo}.weight .encoder.block[i].layer_1.DenseReluDense
//! encoder.final_layer_norm.weight                                .encoder.final_layer_norm
//! ```
//!
//! Per block: `h += SelfAttention(RMSNorm(h), bias)`, `h += FFN(RMSNorm(h))`; then a final
//! RMSNorm. Attention is unscaled (T5 folds `1/√d_kv` into the initialisation) and every layer
//! adds the same relative-position bias, computed by block 0's bucket embedding.
#![allow(non_snake_case)]

use std::path::Path;

use burn::module::{Module, Param};
use burn::nn::{Embedding, Linear};
use burn::tensor::activation::softmax;
use burn::tensor::{DType, Int, Tensor, TensorData};

use super::config::{Activation, T5Config};
use crate::model::device::ComputeDevice;
use crate::model::load::{read_config, Checkpoint, ComponentDir, LoadError, TensorLoader};

/// Largest finite f16, and transformers' clamp when an f16 activation overflowed.
const F16_MAX: f64 = 65504.0;

/// `T5LayerNorm`: RMS norm without mean subtraction or bias; the variance is taken in f32.
#[derive(Module, Debug)]
pub struct T5LayerNorm {
    pub weight: Param<Tensor<1>>,
    #[module(skip)]
    pub eps: f64,
}

impl T5LayerNorm {
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let dtype = x.dtype();
        let x = if dtype == DType::F32 { x } else { x.cast(DType::F32) };
        // variance = mean(x²) over the model dim, in f32            // [batch, tokens, 1]
        let variance = x.clone().square().mean_dim(2);
        let x = x * variance.add_scalar(self.eps).sqrt().recip();
        let x = if dtype == DType::F32 { x } else { x.cast(dtype) };
        x * self.weight.val().unsqueeze::<3>()
    }
}

/// `T5Attention` (encoder self-attention). `relative_attention_bias` only in block 0.
#[derive(Module, Debug)]
pub struct T5Attention {
    pub q: Linear,
    pub k: Linear,
    pub v: Linear,
    pub o: Linear,
    /// `[num_buckets, num_heads]`
    pub relative_attention_bias: Option<Embedding>,
    #[module(skip)]
    pub n_heads: usize,
    #[module(skip)]
    pub d_kv: usize,
}

impl T5Attention {
    /// `x`: `[batch, tokens, d_model]`; `bias`: `[1|batch, heads, tokens, tokens]` in f32.
    pub fn forward(&self, x: Tensor<3>, bias: Tensor<4>) -> Tensor<3> {
        let [b, l, _] = x.dims();
        let (h, dk) = (self.n_heads, self.d_kv);
        let dtype = x.dtype();
        let heads = |t: Tensor<3>| t.reshape([b, l, h, dk]).swap_dims(1, 2); // [batch, heads, tokens, d_kv]
        let q = heads(self.q.forward(x.clone()));
        let k = heads(self.k.forward(x.clone()));
        let v = heads(self.v.forward(x));
        // scores = q·kᵀ + bias (no 1/√d_kv)                          // [batch, heads, tokens, tokens]
        let scores = q.matmul(k.swap_dims(2, 3));
        let scores = if dtype == DType::F32 { scores } else { scores.cast(DType::F32) };
        let bias = if bias.dims()[0] == b { bias } else { bias.expand([b, h, l, l]) };
        let weights = softmax(scores + bias, 3);
        let weights = if dtype == DType::F32 { weights } else { weights.cast(dtype) };
        let out = weights.matmul(v); // [batch, heads, tokens, d_kv]
        self.o.forward(out.swap_dims(1, 2).reshape([b, l, h * dk]))
    }

    /// Relative-position bias of block 0, `[1, heads, q_len, k_len]`, f32.
    pub fn position_bias(
        &self,
        len: usize,
        num_buckets: usize,
        max_distance: usize,
        device: &ComputeDevice,
    ) -> Option<Tensor<4>> {
        let table = self.relative_attention_bias.as_ref()?;
        let buckets: Vec<i64> = (0..len)
            .flat_map(|q| {
                (0..len).map(move |k| relative_position_bucket(k as i64 - q as i64, num_buckets, max_distance))
            })
            .collect();
        let idx = Tensor::<1, Int>::from_data(TensorData::new(buckets, [len * len]), device.device());
        let values = table.weight.val().select(0, idx); // [q*k, heads]
        let values = values.reshape([len, len, self.n_heads]).permute([2, 0, 1]).unsqueeze::<4>(); // [1, heads, q, k]
        Some(if values.dtype() == DType::F32 { values } else { values.cast(DType::F32) })
    }
}

/// transformers' `_relative_position_bucket(memory - query, bidirectional=True)`, with the same
/// f32 arithmetic (`log(f32(rp)/max_exact) / f32(log(max_distance/max_exact)) * (nb-max_exact)`,
/// truncated toward zero), so bucket boundaries land exactly where the reference puts them.
pub fn relative_position_bucket(relative_position: i64, num_buckets: usize, max_distance: usize) -> i64 {
    let num_buckets = (num_buckets / 2) as i64;
    let mut bucket = if relative_position > 0 { num_buckets } else { 0 };
    let rp = relative_position.abs();
    let max_exact = num_buckets / 2;
    if rp < max_exact {
        return bucket + rp;
    }
    let log_ratio = (rp as f32 / max_exact as f32).ln();
    let denom = (max_distance as f64 / max_exact as f64).ln() as f32;
    let large = max_exact + ((log_ratio / denom) * (num_buckets - max_exact) as f32) as i64;
    bucket += large.min(num_buckets - 1);
    bucket
}

/// `T5LayerSelfAttention`: pre-norm self-attention with a residual.
#[derive(Module, Debug)]
pub struct T5LayerSelfAttention {
    pub SelfAttention: T5Attention,
    pub layer_norm: T5LayerNorm,
}

/// `T5DenseGatedActDense` (v1.1: `wi_0`, `wi_1`) or `T5DenseActDense` (`wi`).
#[derive(Module, Debug)]
pub struct T5DenseActDense {
    pub wi: Option<Linear>,
    pub wi_0: Option<Linear>,
    pub wi_1: Option<Linear>,
    pub wo: Linear,
    #[module(skip)]
    pub activation: ActivationKind,
}

/// A `Module`-friendly copy of [`Activation`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActivationKind(pub Activation);

impl T5DenseActDense {
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let h = match (&self.wi, &self.wi_0, &self.wi_1) {
            // gated: act(wi_0·x) ⊙ (wi_1·x)                           // [batch, tokens, d_ff]
            (_, Some(wi_0), Some(wi_1)) => activate(self.activation.0, wi_0.forward(x.clone())) * wi_1.forward(x),
            (Some(wi), _, _) => activate(self.activation.0, wi.forward(x)),
            _ => unreachable!("constructed with wi or wi_0+wi_1"),
        };
        self.wo.forward(h)
    }
}

fn activate(act: Activation, x: Tensor<3>) -> Tensor<3> {
    match act {
        Activation::GeluNew => {
            // 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))
            let x3 = x.clone() * x.clone() * x.clone();
            let inner = (x.clone() + x3.mul_scalar(0.044715)).mul_scalar((2.0f64 / std::f64::consts::PI).sqrt());
            x.mul_scalar(0.5) * inner.tanh().add_scalar(1.0)
        }
        Activation::Gelu => burn::tensor::activation::gelu(x),
        Activation::Relu => burn::tensor::activation::relu(x),
        Activation::Silu => burn::tensor::activation::silu(x),
    }
}

/// `T5LayerFF`: pre-norm feed-forward with a residual.
#[derive(Module, Debug)]
pub struct T5LayerFF {
    pub DenseReluDense: T5DenseActDense,
    pub layer_norm: T5LayerNorm,
}

/// `T5Block` (encoder: self-attention then feed-forward).
#[derive(Module, Debug)]
pub struct T5Block {
    /// `layer.0`
    pub layer_0: T5LayerSelfAttention,
    /// `layer.1`
    pub layer_1: T5LayerFF,
}

impl T5Block {
    pub fn forward(&self, h: Tensor<3>, bias: Tensor<4>, half: bool) -> Tensor<3> {
        let attn = &self.layer_0;
        let h = h.clone() + attn.SelfAttention.forward(attn.layer_norm.forward(h), bias);
        let h = if half { clamp_f16(h) } else { h };
        let ff = &self.layer_1;
        let h = h.clone() + ff.DenseReluDense.forward(ff.layer_norm.forward(h));
        if half {
            clamp_f16(h)
        } else {
            h
        }
    }
}

/// transformers' fp16 guard: clamp to ±(max − 1000) if anything overflowed, else ±max.
fn clamp_f16(h: Tensor<3>) -> Tensor<3> {
    let overflowed = h.clone().abs().max().cast(DType::F32).into_scalar::<f32>().is_infinite();
    let c = if overflowed { F16_MAX - 1000.0 } else { F16_MAX };
    h.clamp(-c, c)
}

/// `T5Stack` used as encoder.
#[derive(Module, Debug)]
pub struct T5Stack {
    pub block: Vec<T5Block>,
    pub final_layer_norm: T5LayerNorm,
}

/// `T5EncoderModel`: token embedding (`shared`, tied with `encoder.embed_tokens`) + encoder stack.
#[derive(Module, Debug)]
pub struct T5EncoderModel {
    pub shared: Embedding,
    pub encoder: T5Stack,
    #[module(skip)]
    pub num_buckets: usize,
    #[module(skip)]
    pub max_distance: usize,
}

impl T5EncoderModel {
    /// Loads config and weights from a pipeline folder (its `text_encoder/`) or the
    /// `text_encoder` folder itself.
    pub fn load(dir: &Path, device: &ComputeDevice) -> Result<(Self, T5Config), LoadError> {
        let component = ComponentDir::find(dir, "text_encoder", &["T5EncoderModel", "T5ForConditionalGeneration"])?;
        let config_path = component.config_path();
        let config: T5Config = read_config(&config_path)?;
        config.validate().map_err(|reason| LoadError::Config { path: config_path.clone(), reason })?;
        let ckpt = Checkpoint::open_dir(&component.dir)?;
        let model = Self::from_checkpoint(&config, &ckpt, device)?;
        Ok((model, config))
    }

    /// Builds the encoder from an opened checkpoint; every missing / mismatched / unexpected key
    /// is reported in one [`LoadError::Keys`].
    pub fn from_checkpoint(config: &T5Config, ckpt: &Checkpoint, device: &ComputeDevice) -> Result<Self, LoadError> {
        let (activation, gated) =
            config.feed_forward().map_err(|reason| LoadError::Config { path: ckpt.source().into(), reason })?;
        let mut ld = TensorLoader::new(ckpt, device);
        // A full T5 checkpoint also holds the decoder and LM head; the encoder ignores them.
        ld.ignore_prefix("decoder.");
        ld.ignore_prefix("lm_head.");
        let (d, inner, ff, eps) = (config.d_model, config.inner_dim(), config.d_ff, config.layer_norm_epsilon);

        // Tied embedding: stored as `shared.weight` (and/or `encoder.embed_tokens.weight`).
        let shared_key = ld.first_present(&["shared.weight", "encoder.embed_tokens.weight"]);
        let shared = Embedding { weight: Param::from_tensor(ld.tensor(shared_key, [config.vocab_size, d])) };
        if shared_key == "shared.weight" && ckpt.contains("encoder.embed_tokens.weight") {
            ld.ignore_prefix("encoder.embed_tokens.weight");
        }

        let linear = |ld: &mut TensorLoader, key: String, d_out: usize, d_in: usize| Linear {
            weight: Param::from_tensor(ld.linear_weight(&format!("{key}.weight"), d_out, d_in)),
            bias: None,
        };
        let norm = |ld: &mut TensorLoader, key: String| T5LayerNorm {
            weight: Param::from_tensor(ld.tensor(&format!("{key}.weight"), [d])),
            eps,
        };

        let mut block = Vec::with_capacity(config.num_layers);
        for i in 0..config.num_layers {
            let p = format!("encoder.block.{i}.layer");
            let a = format!("{p}.0.SelfAttention");
            let relative_attention_bias = (i == 0).then(|| Embedding {
                weight: Param::from_tensor(ld.tensor(
                    &format!("{a}.relative_attention_bias.weight"),
                    [config.relative_attention_num_buckets, config.num_heads],
                )),
            });
            let SelfAttention = T5Attention {
                q: linear(&mut ld, format!("{a}.q"), inner, d),
                k: linear(&mut ld, format!("{a}.k"), inner, d),
                v: linear(&mut ld, format!("{a}.v"), inner, d),
                o: linear(&mut ld, format!("{a}.o"), d, inner),
                relative_attention_bias,
                n_heads: config.num_heads,
                d_kv: config.d_kv,
            };
            let layer_0 =
                T5LayerSelfAttention { SelfAttention, layer_norm: norm(&mut ld, format!("{p}.0.layer_norm")) };
            let f = format!("{p}.1.DenseReluDense");
            let DenseReluDense = if gated {
                T5DenseActDense {
                    wi: None,
                    wi_0: Some(linear(&mut ld, format!("{f}.wi_0"), ff, d)),
                    wi_1: Some(linear(&mut ld, format!("{f}.wi_1"), ff, d)),
                    wo: linear(&mut ld, format!("{f}.wo"), d, ff),
                    activation: ActivationKind(activation),
                }
            } else {
                T5DenseActDense {
                    wi: Some(linear(&mut ld, format!("{f}.wi"), ff, d)),
                    wi_0: None,
                    wi_1: None,
                    wo: linear(&mut ld, format!("{f}.wo"), d, ff),
                    activation: ActivationKind(activation),
                }
            };
            let layer_1 = T5LayerFF { DenseReluDense, layer_norm: norm(&mut ld, format!("{p}.1.layer_norm")) };
            block.push(T5Block { layer_0, layer_1 });
        }
        let final_layer_norm = norm(&mut ld, "encoder.final_layer_norm".into());
        ld.finish()?;
        Ok(T5EncoderModel {
            shared,
            encoder: T5Stack { block, final_layer_norm },
            num_buckets: config.relative_attention_num_buckets,
            max_distance: config.relative_attention_max_distance,
        })
    }

    /// `last_hidden_state` `[batch, tokens, d_model]` for `input_ids` `[batch, tokens]`.
    /// `attention_mask` (`[batch, tokens]`, 1 = attend) is optional: CogVideoX calls the encoder
    /// without it, so padding tokens are attended to.
    pub fn forward(
        &self,
        input_ids: Tensor<2, Int>,
        attention_mask: Option<Tensor<2>>,
        device: &ComputeDevice,
    ) -> Tensor<3> {
        let [b, l] = input_ids.dims();
        let mut h = self.shared.forward(input_ids); // [batch, tokens, d_model]
        let first = &self.encoder.block[0].layer_0.SelfAttention;
        let mut bias = first
            .position_bias(l, self.num_buckets, self.max_distance, device)
            .unwrap_or_else(|| Tensor::zeros([1, 1, l, l], (device.device(), DType::F32))); // [1, heads, q, k]
        if let Some(mask) = attention_mask {
            // (1 − mask)·finfo(f32).min, broadcast over heads and queries   // [batch, 1, 1, k]
            let mask = mask.cast(DType::F32).neg().add_scalar(1.0).mul_scalar(f32::MIN).reshape([b, 1, 1, l]);
            let heads = bias.dims()[1];
            bias = bias.expand([b, heads, l, l]) + mask.expand([b, heads, l, l]);
            // [batch, heads, q, k]
        }
        let half = device.is_half();
        for block in &self.encoder.block {
            h = block.forward(h, bias.clone(), half);
        }
        self.encoder.final_layer_norm.forward(h)
    }
}
