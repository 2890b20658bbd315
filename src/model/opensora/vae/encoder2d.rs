//! diffusers VAE `Encoder`: `conv_in → DownEncoderBlock2D × n (the last without downsampling) →
//! UNetMidBlock2D → GroupNorm → SiLU → conv_out` (2·latent channels: mean and log-variance).

use burn::module::Module;
use burn::tensor::Tensor;

use super::config::AutoencoderKlConfig;
use super::layers::{key, silu, Conv2d, GroupNorm};
use super::mid_block::UNetMidBlock2D;
use super::resample2d::Downsample2D;
use super::resnet2d::{ResnetBlock2D, EPS_2D};
use crate::model::load::TensorLoader;

#[derive(Module, Debug)]
pub struct DownEncoderBlock2D {
    pub resnets: Vec<ResnetBlock2D>,
    /// `downsamplers.0`, absent in the last block.
    pub downsamplers: Vec<Downsample2D>,
}

impl DownEncoderBlock2D {
    pub fn forward(&self, mut x: Tensor<4>) -> Tensor<4> {
        for resnet in &self.resnets {
            x = resnet.forward(x);
        }
        for down in &self.downsamplers {
            x = down.forward(x);
        }
        x
    }
}

#[derive(Module, Debug)]
pub struct Encoder2D {
    pub conv_in: Conv2d,
    pub down_blocks: Vec<DownEncoderBlock2D>,
    pub mid_block: UNetMidBlock2D,
    pub conv_norm_out: GroupNorm,
    pub conv_out: Conv2d,
}

impl Encoder2D {
    pub fn load(ld: &mut TensorLoader, prefix: &str, cfg: &AutoencoderKlConfig) -> Self {
        let (channels, groups) = (&cfg.block_out_channels, cfg.norm_num_groups);
        let last = channels.len() - 1;
        let mut c_prev = channels[0];
        let down_blocks = channels
            .iter()
            .enumerate()
            .map(|(i, &c_out)| {
                let p = key(prefix, &format!("down_blocks.{i}"));
                let resnets = (0..cfg.layers_per_block)
                    .map(|j| {
                        let c_in = if j == 0 { c_prev } else { c_out };
                        ResnetBlock2D::load(ld, &key(&p, &format!("resnets.{j}")), c_in, c_out, groups)
                    })
                    .collect();
                c_prev = c_out;
                let downsamplers =
                    if i < last { vec![Downsample2D::load(ld, &key(&p, "downsamplers.0"), c_out)] } else { Vec::new() };
                DownEncoderBlock2D { resnets, downsamplers }
            })
            .collect();
        let c_last = channels[last];
        Encoder2D {
            conv_in: Conv2d::load(ld, &key(prefix, "conv_in"), channels[0], cfg.in_channels, 3, 1),
            down_blocks,
            mid_block: UNetMidBlock2D::load(ld, &key(prefix, "mid_block"), c_last, groups, cfg.mid_block_add_attention),
            conv_norm_out: GroupNorm::load(ld, &key(prefix, "conv_norm_out"), c_last, groups, EPS_2D),
            conv_out: Conv2d::load(ld, &key(prefix, "conv_out"), 2 * cfg.latent_channels, c_last, 3, 1),
        }
    }

    /// `[frames, in_channels, H, W]` → `[frames, 2·latent, h, w]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut x = self.conv_in.forward(x);
        for block in &self.down_blocks {
            x = block.forward(x);
        }
        let x = self.mid_block.forward(x);
        self.conv_out.forward(silu(self.conv_norm_out.forward(x)))
    }
}
