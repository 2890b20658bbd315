//! `TransformerConfig`: the `config.json` of diffusers' `CogVideoXTransformer3DModel` /
//! Tora's `ToraTransformer3DModel` (unknown fields ignored, defaults as the diffusers class),
//! plus two run-time switches a SAT checkpoint loader sets.

use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TransformerConfig {
    #[serde(default = "d_heads")]
    pub num_attention_heads: usize,
    #[serde(default = "d_head_dim")]
    pub attention_head_dim: usize,
    #[serde(default = "d_16")]
    pub in_channels: usize,
    #[serde(default)]
    pub out_channels: Option<usize>,
    #[serde(default = "d_true")]
    pub flip_sin_to_cos: bool,
    #[serde(default)]
    pub freq_shift: i64,
    #[serde(default = "d_time_embed")]
    pub time_embed_dim: usize,
    /// CogVideoX 1.5 I2V only ("ofs" embedding); `null` elsewhere.
    #[serde(default)]
    pub ofs_embed_dim: Option<usize>,
    #[serde(default = "d_text_embed")]
    pub text_embed_dim: usize,
    #[serde(default = "d_layers")]
    pub num_layers: usize,
    #[serde(default = "d_true")]
    pub attention_bias: bool,
    #[serde(default = "d_sample_width")]
    pub sample_width: usize,
    #[serde(default = "d_sample_height")]
    pub sample_height: usize,
    #[serde(default = "d_sample_frames")]
    pub sample_frames: usize,
    #[serde(default = "d_patch")]
    pub patch_size: usize,
    /// CogVideoX 1.5 temporal patch; `null` for 1.0 (Tora).
    #[serde(default)]
    pub patch_size_t: Option<usize>,
    #[serde(default = "d_temporal_ratio")]
    pub temporal_compression_ratio: usize,
    #[serde(default = "d_text_len")]
    pub max_text_seq_length: usize,
    #[serde(default = "d_gelu")]
    pub activation_fn: String,
    #[serde(default = "d_silu")]
    pub timestep_activation_fn: String,
    #[serde(default = "d_true")]
    pub norm_elementwise_affine: bool,
    #[serde(default = "d_eps")]
    pub norm_eps: f64,
    #[serde(default = "d_spatial_scale")]
    pub spatial_interpolation_scale: f64,
    #[serde(default = "d_one")]
    pub temporal_interpolation_scale: f64,
    #[serde(default)]
    pub use_rotary_positional_embeddings: bool,
    #[serde(default)]
    pub use_learned_positional_embeddings: bool,
    #[serde(default = "d_true")]
    pub patch_bias: bool,

    /// Run-time switch (not in `config.json`): add the learned positional embedding
    /// (`patch_embed.pos_embedding`) when the config has one. `true` = diffusers (default);
    /// Tora's SAT code loads the embedding but never adds it, so a SAT loader sets `false`.
    #[serde(skip, default = "d_true")]
    pub add_learned_pos_embedding: bool,
    /// Run-time switch (not in `config.json`): eps of the final adaptive LayerNorm (`norm_out`).
    /// `None` = `norm_eps` (diffusers); SAT hard-codes 1e-6, so a SAT loader sets `Some(1e-6)`.
    #[serde(skip)]
    pub final_norm_eps: Option<f64>,
}

impl TransformerConfig {
    /// Attention width: heads · head_dim.
    pub fn inner_dim(&self) -> usize {
        self.num_attention_heads * self.attention_head_dim
    }

    /// `out_channels` (diffusers default 16, whatever `in_channels` is).
    pub fn out_channels(&self) -> usize {
        self.out_channels.unwrap_or(16)
    }

    /// Whether the learned positional embedding is part of the weights.
    pub fn has_pos_embedding_weights(&self) -> bool {
        self.use_learned_positional_embeddings
    }

    /// Why this config cannot be run, if it cannot.
    pub fn validate(&self) -> Result<(), String> {
        if self.patch_size_t.is_some() {
            return Err("CogVideoX 1.5 (patch_size_t set) is not supported; Tora sits on CogVideoX 1.0".into());
        }
        if self.activation_fn != "gelu-approximate" {
            return Err(format!("activation_fn {:?} is not supported (gelu-approximate only)", self.activation_fn));
        }
        if self.timestep_activation_fn != "silu" {
            return Err(format!(
                "timestep_activation_fn {:?} is not supported (silu only)",
                self.timestep_activation_fn
            ));
        }
        if self.num_attention_heads == 0 || self.attention_head_dim == 0 || self.num_layers == 0 {
            return Err("heads, head dim and layers must be positive".into());
        }
        if self.attention_head_dim % 8 != 0 && self.use_rotary_positional_embeddings {
            return Err(format!("attention_head_dim {} must be a multiple of 8 for 3D RoPE", self.attention_head_dim));
        }
        if self.inner_dim() % 32 != 0 || self.inner_dim() % 4 != 0 {
            return Err(format!("inner dim {} must be a multiple of 32 (MGF GroupNorm)", self.inner_dim()));
        }
        if self.patch_size == 0 || self.temporal_compression_ratio == 0 {
            return Err("patch_size and temporal_compression_ratio must be positive".into());
        }
        if !self.use_rotary_positional_embeddings && self.use_learned_positional_embeddings {
            return Err("learned positional embeddings without rotary ones exist in no CogVideoX checkpoint".into());
        }
        Ok(())
    }
}

fn d_heads() -> usize {
    30
}
fn d_head_dim() -> usize {
    64
}
fn d_16() -> usize {
    16
}
fn d_true() -> bool {
    true
}
fn d_time_embed() -> usize {
    512
}
fn d_text_embed() -> usize {
    4096
}
fn d_layers() -> usize {
    30
}
fn d_sample_width() -> usize {
    90
}
fn d_sample_height() -> usize {
    60
}
fn d_sample_frames() -> usize {
    49
}
fn d_patch() -> usize {
    2
}
fn d_temporal_ratio() -> usize {
    4
}
fn d_text_len() -> usize {
    226
}
fn d_gelu() -> String {
    "gelu-approximate".into()
}
fn d_silu() -> String {
    "silu".into()
}
fn d_eps() -> f64 {
    1e-5
}
fn d_spatial_scale() -> f64 {
    1.875
}
fn d_one() -> f64 {
    1.0
}
