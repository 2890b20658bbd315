//! diffusers `AutoencoderKL` (the SDXL-style 2D VAE OpenSora runs on every frame):
//! `encode`: `quant_conv(Encoder(x))` → posterior; `decode`: `Decoder(post_quant_conv(z))`.
//! Tiling and slicing are off in the reference, so neither exists here.

use burn::module::Module;
use burn::tensor::Tensor;

use super::config::AutoencoderKlConfig;
use super::decoder2d::Decoder2D;
use super::encoder2d::Encoder2D;
use super::gaussian::DiagonalGaussian;
use super::layers::{key, Conv2d};
use super::resample2d::Downsample2D;
use crate::model::load::TensorLoader;

#[derive(Module, Debug)]
pub struct AutoencoderKL {
    pub encoder: Encoder2D,
    pub decoder: Decoder2D,
    /// 1×1 conv on the moments (`use_quant_conv`).
    pub quant_conv: Option<Conv2d>,
    /// 1×1 conv on the latents (`use_post_quant_conv`).
    pub post_quant_conv: Option<Conv2d>,
    /// Number of ×2 down/upsamplings (3 for the SDXL VAE: 8× space).
    #[module(skip)]
    pub num_resamples: usize,
    #[module(skip)]
    pub in_channels: usize,
    #[module(skip)]
    pub latent_channels: usize,
}

impl AutoencoderKL {
    /// Every tensor under `prefix` (`""` for a diffusers folder, `spatial_vae.module` inside the
    /// OpenSora checkpoint).
    pub fn load(ld: &mut TensorLoader, prefix: &str, cfg: &AutoencoderKlConfig) -> Self {
        let latent = cfg.latent_channels;
        AutoencoderKL {
            encoder: Encoder2D::load(ld, &key(prefix, "encoder"), cfg),
            decoder: Decoder2D::load(ld, &key(prefix, "decoder"), cfg),
            quant_conv: cfg
                .use_quant_conv
                .then(|| Conv2d::load(ld, &key(prefix, "quant_conv"), 2 * latent, 2 * latent, 1, 1)),
            post_quant_conv: cfg
                .use_post_quant_conv
                .then(|| Conv2d::load(ld, &key(prefix, "post_quant_conv"), latent, latent, 1, 1)),
            num_resamples: cfg.block_out_channels.len() - 1,
            in_channels: cfg.in_channels,
            latent_channels: latent,
        }
    }

    /// The posterior of `x` `[frames, in_channels, H, W]`, over `[frames, latent, h, w]`.
    pub fn encode(&self, x: Tensor<4>) -> DiagonalGaussian<4> {
        let moments = self.encoder.forward(x);
        let moments = match &self.quant_conv {
            Some(conv) => conv.forward(moments),
            None => moments,
        };
        DiagonalGaussian::from_moments(moments)
    }

    /// `[frames, latent, h, w]` → `[frames, out_channels, H, W]`.
    pub fn decode(&self, z: Tensor<4>) -> Tensor<4> {
        let z = match &self.post_quant_conv {
            Some(conv) => conv.forward(z),
            None => z,
        };
        self.decoder.forward(z)
    }

    /// Latent side length of an input side of `n` pixels, `None` if the encoder cannot take it.
    pub fn latent_len(&self, n: usize) -> Option<usize> {
        (0..self.num_resamples).try_fold(n, |len, _| Downsample2D::output_len(len))
    }
}
