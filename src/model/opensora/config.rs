//! `Stdit3Config`, deserialised straight from OpenSora's `STDiT3Config` `config.json` (as
//! written by `save_pretrained`, e.g. hpcai-tech/OpenSora-STDiT-v3); unknown fields ignored,
//! defaults those of the Python class (STDiT3-XL/2).

use serde::Deserialize;

/// The fields of OpenSora 1.2's `STDiT3Config` the forward pass uses.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Stdit3Config {
    /// Positional-embedding scale reference: `scale = sqrt(height·width) / input_sq_size`.
    #[serde(default = "default_input_sq_size")]
    pub input_sq_size: usize,
    /// Latent channels (the VAE's 4).
    #[serde(default = "default_in_channels")]
    pub in_channels: usize,
    /// `[t, h, w]` patch of the 3D patch embedding.
    #[serde(default = "default_patch_size")]
    pub patch_size: [usize; 3],
    #[serde(default = "default_hidden_size")]
    pub hidden_size: usize,
    /// Number of spatial blocks (and as many temporal blocks).
    #[serde(default = "default_depth")]
    pub depth: usize,
    #[serde(default = "default_num_heads")]
    pub num_heads: usize,
    #[serde(default = "default_mlp_ratio")]
    pub mlp_ratio: f64,
    /// Doubles the output channels (velocity + the unused learned variance).
    #[serde(default = "default_true")]
    pub pred_sigma: bool,
    /// T5 width.
    #[serde(default = "default_caption_channels")]
    pub caption_channels: usize,
    /// Caption tokens (rows of the null embedding `y_embedder.y_embedding`).
    #[serde(default = "default_model_max_length")]
    pub model_max_length: usize,
    /// LlamaRMSNorm on q and k of the self-attention.
    #[serde(default = "default_true")]
    pub qk_norm: bool,
    /// The caller passes already-embedded, packed captions (not supported: refused at load).
    #[serde(default)]
    pub skip_y_embedder: bool,
    #[serde(default)]
    pub model_type: Option<String>,
}

fn default_input_sq_size() -> usize {
    512
}
fn default_in_channels() -> usize {
    4
}
fn default_patch_size() -> [usize; 3] {
    [1, 2, 2]
}
fn default_hidden_size() -> usize {
    1152
}
fn default_depth() -> usize {
    28
}
fn default_num_heads() -> usize {
    16
}
fn default_mlp_ratio() -> f64 {
    4.0
}
fn default_true() -> bool {
    true
}
fn default_caption_channels() -> usize {
    4096
}
fn default_model_max_length() -> usize {
    300
}

impl Stdit3Config {
    /// Output channels of the final layer: `2·in` with `pred_sigma`, else `in`.
    pub fn out_channels(&self) -> usize {
        if self.pred_sigma {
            self.in_channels * 2
        } else {
            self.in_channels
        }
    }

    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_heads.max(1)
    }

    /// timm's `Mlp` hidden width `int(hidden · mlp_ratio)`.
    pub fn mlp_hidden(&self) -> usize {
        (self.hidden_size as f64 * self.mlp_ratio) as usize
    }

    pub fn validate(&self) -> Result<(), String> {
        if let Some(t) = &self.model_type {
            if t != "STDiT3" {
                return Err(format!("model_type is {t:?}, expected \"STDiT3\""));
            }
        }
        for (name, v) in [
            ("in_channels", self.in_channels),
            ("hidden_size", self.hidden_size),
            ("num_heads", self.num_heads),
            ("caption_channels", self.caption_channels),
            ("model_max_length", self.model_max_length),
            ("input_sq_size", self.input_sq_size),
        ] {
            if v == 0 {
                return Err(format!("{name} must be positive"));
            }
        }
        if self.patch_size.contains(&0) {
            return Err(format!("patch_size {:?} has a zero entry", self.patch_size));
        }
        if self.hidden_size % self.num_heads != 0 {
            return Err(format!("hidden_size {} is not a multiple of num_heads {}", self.hidden_size, self.num_heads));
        }
        // PositionEmbedding2D splits the width in four (sin/cos × x/y); RoPE rotates pairs.
        if self.hidden_size % 4 != 0 {
            return Err(format!("hidden_size {} is not a multiple of 4", self.hidden_size));
        }
        if self.head_dim() % 2 != 0 {
            return Err(format!("head dim {} is odd (RoPE rotates pairs)", self.head_dim()));
        }
        if !(self.mlp_ratio.is_finite() && self.mlp_ratio > 0.0) {
            return Err(format!("mlp_ratio {} must be positive", self.mlp_ratio));
        }
        if self.skip_y_embedder {
            return Err("skip_y_embedder = true (pre-embedded captions) is not supported".into());
        }
        Ok(())
    }
}
