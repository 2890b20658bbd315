//! Configs of the OpenSora VAE v1.2, deserialised from the real files (unknown fields ignored):
//! the `VideoAutoencoderPipeline` `config.json` of the VAE folder ([`OpenSoraVaeConfig`], with its
//! `vae_2d` / `vae_temporal` sub-configs) and the diffusers `AutoencoderKL` `config.json` that
//! `vae_2d.from_pretrained` names ([`AutoencoderKlConfig`]).

use serde::Deserialize;

/// OpenSora's hard-coded latent scale of the 2D VAE (its config's `scaling_factor` is not used).
pub const SPATIAL_SCALING_FACTOR: f64 = 0.18215;

/// `VideoAutoencoderPipelineConfig` (transformers `PretrainedConfig`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct OpenSoraVaeConfig {
    pub vae_2d: Vae2dConfig,
    pub vae_temporal: TemporalVaeConfig,
    /// Frames per temporal micro chunk (17 in the release); `None` encodes the whole clip at once.
    #[serde(default)]
    pub micro_frame_size: Option<usize>,
    /// Latent normalisation `z = (z_temporal − shift)/scale`: one value or one per channel. The
    /// checkpoint's `scale`/`shift` buffers take precedence when present (as when transformers
    /// loads the state dict).
    #[serde(default = "default_scale")]
    pub scale: ScaleShift,
    #[serde(default = "default_shift")]
    pub shift: ScaleShift,
    /// `true` makes `encode`/`decode` return training tuples and skip the normalisation; only
    /// `false` (inference) is supported.
    #[serde(default)]
    pub cal_loss: bool,
    #[serde(default)]
    pub model_type: Option<String>,
    #[serde(default)]
    pub architectures: Option<Vec<String>>,
}

fn default_scale() -> ScaleShift {
    ScaleShift::Scalar(1.0)
}
fn default_shift() -> ScaleShift {
    ScaleShift::Scalar(0.0)
}

/// A scalar or per-channel `scale` / `shift`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum ScaleShift {
    Scalar(f64),
    PerChannel(Vec<f64>),
}

impl ScaleShift {
    /// One value per latent channel.
    pub fn per_channel(&self, channels: usize) -> Result<Vec<f64>, String> {
        match self {
            ScaleShift::Scalar(v) => Ok(vec![*v; channels]),
            ScaleShift::PerChannel(v) if v.len() == channels => Ok(v.clone()),
            ScaleShift::PerChannel(v) => Err(format!("{} values for {channels} latent channels", v.len())),
        }
    }
}

/// `vae_2d`: OpenSora's `VideoAutoencoderKL` wrapper around a diffusers `AutoencoderKL`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Vae2dConfig {
    #[serde(rename = "type", default = "default_2d_type")]
    pub kind: String,
    /// A HF repo id (`PixArt-alpha/pixart_sigma_sdxlvae_T5_diffusers`) or a path; resolved
    /// against the model folder (see `OpenSoraVae::load`).
    pub from_pretrained: String,
    #[serde(default)]
    pub subfolder: Option<String>,
    /// Frames per 2D encode/decode call; `None` = all frames at once.
    #[serde(default)]
    pub micro_batch_size: Option<usize>,
}

fn default_2d_type() -> String {
    "VideoAutoencoderKL".into()
}

/// `vae_temporal`: `VAE_Temporal` with explicit arguments, or `VAE_Temporal_SD` (the release's
/// fixed sizes; only `num_groups` / `activation_fn` may be passed through).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TemporalVaeConfig {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub in_out_channels: Option<usize>,
    #[serde(default)]
    pub latent_embed_dim: Option<usize>,
    #[serde(default)]
    pub embed_dim: Option<usize>,
    #[serde(default)]
    pub filters: Option<usize>,
    #[serde(default)]
    pub num_res_blocks: Option<usize>,
    #[serde(default)]
    pub channel_multipliers: Option<Vec<usize>>,
    #[serde(default)]
    pub temporal_downsample: Option<Vec<bool>>,
    #[serde(default)]
    pub num_groups: Option<usize>,
    #[serde(default)]
    pub activation_fn: Option<String>,
}

/// The resolved `VAE_Temporal` constructor arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemporalArgs {
    pub in_out_channels: usize,
    pub latent_embed_dim: usize,
    pub embed_dim: usize,
    pub filters: usize,
    pub num_res_blocks: usize,
    pub channel_multipliers: Vec<usize>,
    pub temporal_downsample: Vec<bool>,
    pub num_groups: usize,
    /// `true` = swish (SiLU), `false` = ReLU.
    pub swish: bool,
}

impl TemporalArgs {
    /// `2^(number of true entries of temporal_downsample)`.
    pub fn time_downsample_factor(&self) -> usize {
        1 << self.temporal_downsample.iter().filter(|&&d| d).count()
    }

    /// Zero frames put in front of `frames` so that their count divides by the downsample factor.
    pub fn time_padding(&self, frames: usize) -> usize {
        let f = self.time_downsample_factor();
        (f - frames % f) % f
    }

    /// Latent frames of `frames` input frames (`VAE_Temporal.get_latent_size`).
    pub fn latent_frames(&self, frames: usize) -> usize {
        (frames + self.time_padding(frames)) / self.time_downsample_factor()
    }
}

impl TemporalVaeConfig {
    /// The constructor arguments, with `VAE_Temporal`'s defaults or `VAE_Temporal_SD`'s values.
    pub fn args(&self) -> Result<TemporalArgs, String> {
        let sd = match self.kind.as_str() {
            "VAE_Temporal" => false,
            "VAE_Temporal_SD" => true,
            other => {
                return Err(format!("vae_temporal type {other:?} is not supported (VAE_Temporal, VAE_Temporal_SD)"))
            }
        };
        if sd {
            // The factory passes these itself; Python would reject a second value.
            let fixed = [
                ("in_out_channels", self.in_out_channels.is_some()),
                ("latent_embed_dim", self.latent_embed_dim.is_some()),
                ("embed_dim", self.embed_dim.is_some()),
                ("filters", self.filters.is_some()),
                ("num_res_blocks", self.num_res_blocks.is_some()),
                ("channel_multipliers", self.channel_multipliers.is_some()),
                ("temporal_downsample", self.temporal_downsample.is_some()),
            ];
            if let Some((name, _)) = fixed.iter().find(|(_, given)| *given) {
                return Err(format!("VAE_Temporal_SD fixes {name}; it cannot be given"));
            }
        }
        let swish = match self.activation_fn.as_deref().unwrap_or("swish") {
            "swish" => true,
            "relu" => false,
            other => return Err(format!("vae_temporal activation_fn {other:?} is not supported (swish, relu)")),
        };
        let args = TemporalArgs {
            in_out_channels: self.in_out_channels.unwrap_or(4),
            latent_embed_dim: self.latent_embed_dim.unwrap_or(4),
            embed_dim: self.embed_dim.unwrap_or(4),
            filters: self.filters.unwrap_or(128),
            num_res_blocks: self.num_res_blocks.unwrap_or(4),
            channel_multipliers: self.channel_multipliers.clone().unwrap_or_else(|| vec![1, 2, 2, 4]),
            // VAE_Temporal's own default is (True, True, False); the SD factory passes (F, T, T).
            temporal_downsample: match (&self.temporal_downsample, sd) {
                (Some(td), _) => td.clone(),
                (None, true) => vec![false, true, true],
                (None, false) => vec![true, true, false],
            },
            num_groups: self.num_groups.unwrap_or(32),
            swish,
        };
        let blocks = args.channel_multipliers.len();
        if blocks == 0 || args.filters == 0 || args.num_groups == 0 {
            return Err("vae_temporal needs channel_multipliers, filters > 0 and num_groups > 0".into());
        }
        if args.temporal_downsample.len() + 1 < blocks {
            return Err(format!(
                "vae_temporal temporal_downsample has {} entries; {} blocks need {}",
                args.temporal_downsample.len(),
                blocks,
                blocks - 1
            ));
        }
        for m in &args.channel_multipliers {
            let c = args.filters * m;
            if c == 0 || c % args.num_groups != 0 {
                return Err(format!("vae_temporal: {c} channels do not split into {} groups", args.num_groups));
            }
        }
        // Only the first `blocks − 1` entries shape the network, but (as in the reference) the
        // time factor counts every entry.
        Ok(args)
    }
}

/// diffusers `AutoencoderKL` config (the fields its encoder/decoder use).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct AutoencoderKlConfig {
    #[serde(default = "default_three")]
    pub in_channels: usize,
    #[serde(default = "default_three")]
    pub out_channels: usize,
    #[serde(default = "default_down_types")]
    pub down_block_types: Vec<String>,
    #[serde(default = "default_up_types")]
    pub up_block_types: Vec<String>,
    #[serde(default = "default_block_out")]
    pub block_out_channels: Vec<usize>,
    #[serde(default = "default_one")]
    pub layers_per_block: usize,
    #[serde(default = "default_act")]
    pub act_fn: String,
    #[serde(default = "default_latent")]
    pub latent_channels: usize,
    #[serde(default = "default_groups")]
    pub norm_num_groups: usize,
    #[serde(default = "default_true")]
    pub use_quant_conv: bool,
    #[serde(default = "default_true")]
    pub use_post_quant_conv: bool,
    #[serde(default = "default_true")]
    pub mid_block_add_attention: bool,
    /// Informational: OpenSora ignores it and scales by [`SPATIAL_SCALING_FACTOR`].
    #[serde(default)]
    pub scaling_factor: Option<f64>,
    #[serde(rename = "_class_name", default)]
    pub class_name: Option<String>,
}

fn default_three() -> usize {
    3
}
fn default_one() -> usize {
    1
}
fn default_latent() -> usize {
    4
}
fn default_groups() -> usize {
    32
}
fn default_true() -> bool {
    true
}
fn default_act() -> String {
    "silu".into()
}
fn default_down_types() -> Vec<String> {
    vec!["DownEncoderBlock2D".into()]
}
fn default_up_types() -> Vec<String> {
    vec!["UpDecoderBlock2D".into()]
}
fn default_block_out() -> Vec<usize> {
    vec![64]
}

impl AutoencoderKlConfig {
    pub fn validate(&self) -> Result<(), String> {
        if let Some(class) = &self.class_name {
            if class != "AutoencoderKL" {
                return Err(format!("_class_name is {class:?}, expected \"AutoencoderKL\""));
            }
        }
        let n = self.block_out_channels.len();
        if n == 0 || self.down_block_types.len() != n || self.up_block_types.len() != n {
            return Err(format!(
                "block_out_channels ({n}), down_block_types ({}) and up_block_types ({}) must have one entry per block",
                self.down_block_types.len(),
                self.up_block_types.len()
            ));
        }
        if let Some(t) = self.down_block_types.iter().find(|t| *t != "DownEncoderBlock2D") {
            return Err(format!("down block type {t:?} is not supported (DownEncoderBlock2D)"));
        }
        if let Some(t) = self.up_block_types.iter().find(|t| *t != "UpDecoderBlock2D") {
            return Err(format!("up block type {t:?} is not supported (UpDecoderBlock2D)"));
        }
        if self.act_fn != "silu" && self.act_fn != "swish" {
            return Err(format!("act_fn {:?} is not supported (silu)", self.act_fn));
        }
        let groups = self.norm_num_groups;
        if groups == 0 || self.block_out_channels.iter().any(|&c| c == 0 || c % groups != 0) {
            return Err(format!("block_out_channels {:?} do not split into {groups} groups", self.block_out_channels));
        }
        if self.in_channels == 0 || self.out_channels == 0 || self.latent_channels == 0 {
            return Err("in_channels, out_channels and latent_channels must be positive".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_config_resolves_the_sd_temporal_vae() {
        let cfg: OpenSoraVaeConfig = serde_json::from_str(
            r#"{"micro_frame_size": 17, "scale": [3.85, 2.32, 2.33, 3.06], "shift": [-0.1, 0.34, 0.27, 0.98],
                "vae_2d": {"from_pretrained": "PixArt-alpha/pixart_sigma_sdxlvae_T5_diffusers",
                           "subfolder": "vae", "micro_batch_size": 4, "type": "VideoAutoencoderKL"},
                "vae_temporal": {"from_pretrained": null, "type": "VAE_Temporal_SD"}}"#,
        )
        .unwrap();
        let t = cfg.vae_temporal.args().unwrap();
        assert_eq!((t.filters, t.num_res_blocks, t.num_groups), (128, 4, 32));
        assert_eq!(t.temporal_downsample, vec![false, true, true]);
        assert_eq!(t.time_downsample_factor(), 4);
        assert_eq!(t.latent_frames(17), 5);
        assert_eq!(t.latent_frames(2), 1);
        assert_eq!(t.time_padding(5), 3);
        assert_eq!(cfg.scale.per_channel(4).unwrap()[3], 3.06);
        assert!(cfg.shift.per_channel(3).is_err());
    }

    #[test]
    fn sd_factory_rejects_fixed_arguments() {
        let t = TemporalVaeConfig {
            kind: "VAE_Temporal_SD".into(),
            in_out_channels: None,
            latent_embed_dim: None,
            embed_dim: None,
            filters: Some(16),
            num_res_blocks: None,
            channel_multipliers: None,
            temporal_downsample: None,
            num_groups: None,
            activation_fn: None,
        };
        assert!(t.args().unwrap_err().contains("filters"));
    }
}
