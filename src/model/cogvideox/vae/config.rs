//! `VaeConfig`: diffusers' `AutoencoderKLCogVideoX` `config.json` (unknown fields ignored, defaults as
//! diffusers' constructor).

use serde::Deserialize;

/// The `AutoencoderKLCogVideoX` constructor arguments the model uses.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct VaeConfig {
    #[serde(default = "default_in_channels")]
    pub in_channels: usize,
    #[serde(default = "default_in_channels")]
    pub out_channels: usize,
    #[serde(default = "default_down_blocks")]
    pub down_block_types: Vec<String>,
    #[serde(default = "default_up_blocks")]
    pub up_block_types: Vec<String>,
    #[serde(default = "default_block_out_channels")]
    pub block_out_channels: Vec<usize>,
    #[serde(default = "default_latent_channels")]
    pub latent_channels: usize,
    #[serde(default = "default_layers_per_block")]
    pub layers_per_block: usize,
    #[serde(default = "default_act_fn")]
    pub act_fn: String,
    #[serde(default = "default_norm_eps")]
    pub norm_eps: f64,
    #[serde(default = "default_norm_num_groups")]
    pub norm_num_groups: usize,
    #[serde(default = "default_temporal_compression_ratio")]
    pub temporal_compression_ratio: f64,
    /// Sets the tiling tile size (half of it), as diffusers does.
    #[serde(default = "default_sample_height")]
    pub sample_height: usize,
    #[serde(default = "default_sample_width")]
    pub sample_width: usize,
    #[serde(default = "default_scaling_factor")]
    pub scaling_factor: f64,
    #[serde(default)]
    pub shift_factor: Option<f64>,
    #[serde(default)]
    pub use_quant_conv: bool,
    #[serde(default)]
    pub use_post_quant_conv: bool,
    #[serde(default)]
    pub invert_scale_latents: bool,
}

fn default_in_channels() -> usize {
    3
}
fn default_down_blocks() -> Vec<String> {
    vec!["CogVideoXDownBlock3D".into(); 4]
}
fn default_up_blocks() -> Vec<String> {
    vec!["CogVideoXUpBlock3D".into(); 4]
}
fn default_block_out_channels() -> Vec<usize> {
    vec![128, 256, 256, 512]
}
fn default_latent_channels() -> usize {
    16
}
fn default_layers_per_block() -> usize {
    3
}
fn default_act_fn() -> String {
    "silu".into()
}
fn default_norm_eps() -> f64 {
    1e-6
}
fn default_norm_num_groups() -> usize {
    32
}
fn default_temporal_compression_ratio() -> f64 {
    4.0
}
fn default_sample_height() -> usize {
    480
}
fn default_sample_width() -> usize {
    720
}
fn default_scaling_factor() -> f64 {
    1.15258426
}

impl Default for VaeConfig {
    /// diffusers' constructor defaults (the CogVideoX-2B/5B VAE shape, scaling factor of 2B).
    fn default() -> Self {
        serde_json::from_str("{}").expect("every field has a default")
    }
}

impl VaeConfig {
    /// `int(log2(temporal_compression_ratio))`: how many of the first blocks also halve time.
    pub fn temporal_compress_level(&self) -> usize {
        self.temporal_compression_ratio.log2().floor().max(0.0) as usize
    }

    /// Spatial down-scaling factor, `2^(blocks - 1)`.
    pub fn spatial_ratio(&self) -> usize {
        1 << self.block_out_channels.len().saturating_sub(1)
    }

    /// Checks what the module builders rely on, naming the offending field.
    pub fn validate(&self) -> Result<(), String> {
        if self.block_out_channels.is_empty() {
            return Err("block_out_channels is empty".into());
        }
        if self.down_block_types.len() != self.block_out_channels.len()
            || self.up_block_types.len() != self.block_out_channels.len()
        {
            return Err(format!(
                "down_block_types ({}) / up_block_types ({}) must have one entry per block_out_channels ({})",
                self.down_block_types.len(),
                self.up_block_types.len(),
                self.block_out_channels.len()
            ));
        }
        if let Some(t) = self.down_block_types.iter().find(|t| *t != "CogVideoXDownBlock3D") {
            return Err(format!("down block type {t} is not supported (only CogVideoXDownBlock3D)"));
        }
        if let Some(t) = self.up_block_types.iter().find(|t| *t != "CogVideoXUpBlock3D") {
            return Err(format!("up block type {t} is not supported (only CogVideoXUpBlock3D)"));
        }
        if self.act_fn != "silu" && self.act_fn != "swish" {
            return Err(format!("act_fn {} is not supported (only silu)", self.act_fn));
        }
        let g = self.norm_num_groups;
        if g == 0 || self.block_out_channels.iter().any(|c| c % g != 0) {
            return Err(format!("norm_num_groups {g} does not divide every block_out_channels entry"));
        }
        if self.use_quant_conv || self.use_post_quant_conv {
            return Err("use_quant_conv / use_post_quant_conv are not supported (CogVideoX ships without)".into());
        }
        Ok(())
    }
}
