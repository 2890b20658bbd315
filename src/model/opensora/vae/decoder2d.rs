//! diffusers VAE `Decoder`: `conv_in → UNetMidBlock2D → UpDecoderBlock2D × n (layers_per_block+1
//! resnets each; all but the last upsample ×2) → GroupNorm → SiLU → conv_out`.

use burn::module::Module;
use burn::tensor::Tensor;

use super::config::AutoencoderKlConfig;
use super::layers::{key, silu, Conv2d, GroupNorm};
use super::mid_block::UNetMidBlock2D;
use super::resample2d::Upsample2D;
use super::resnet2d::{ResnetBlock2D, EPS_2D};
use crate::model::load::TensorLoader;

#[derive(Module, Debug)]
pub struct UpDecoderBlock2D {
    pub resnets: Vec<ResnetBlock2D>,
    /// `upsamplers.0`, absent in the last block.
    pub upsamplers: Vec<Upsample2D>,
}

impl UpDecoderBlock2D {
    pub fn forward(&self, mut x: Tensor<4>) -> Tensor<4> {
        for resnet in &self.resnets {
            x = resnet.forward(x);
        }
        for up in &self.upsamplers {
            x = up.forward(x);
        }
        x
    }
}

#[derive(Module, Debug)]
pub struct Decoder2D {
    pub conv_in: Conv2d,
    pub mid_block: UNetMidBlock2D,
    pub up_blocks: Vec<UpDecoderBlock2D>,
    pub conv_norm_out: GroupNorm,
    pub conv_out: Conv2d,
}

impl Decoder2D {
    pub fn load(ld: &mut TensorLoader, prefix: &str, cfg: &AutoencoderKlConfig) -> Self {
        let groups = cfg.norm_num_groups;
        let reversed: Vec<usize> = cfg.block_out_channels.iter().rev().copied().collect();
        let last = reversed.len() - 1;
        let mut c_prev = reversed[0];
        let up_blocks = reversed
            .iter()
            .enumerate()
            .map(|(i, &c_out)| {
                let p = key(prefix, &format!("up_blocks.{i}"));
                let resnets = (0..cfg.layers_per_block + 1)
                    .map(|j| {
                        let c_in = if j == 0 { c_prev } else { c_out };
                        ResnetBlock2D::load(ld, &key(&p, &format!("resnets.{j}")), c_in, c_out, groups)
                    })
                    .collect();
                c_prev = c_out;
                let upsamplers =
                    if i < last { vec![Upsample2D::load(ld, &key(&p, "upsamplers.0"), c_out)] } else { Vec::new() };
                UpDecoderBlock2D { resnets, upsamplers }
            })
            .collect();
        let c_first = cfg.block_out_channels[0];
        Decoder2D {
            conv_in: Conv2d::load(ld, &key(prefix, "conv_in"), reversed[0], cfg.latent_channels, 3, 1),
            mid_block: UNetMidBlock2D::load(
                ld,
                &key(prefix, "mid_block"),
                reversed[0],
                groups,
                cfg.mid_block_add_attention,
            ),
            up_blocks,
            conv_norm_out: GroupNorm::load(ld, &key(prefix, "conv_norm_out"), c_first, groups, EPS_2D),
            conv_out: Conv2d::load(ld, &key(prefix, "conv_out"), cfg.out_channels, c_first, 3, 1),
        }
    }

    /// `[frames, latent, h, w]` → `[frames, out_channels, h·2ⁿ⁻¹, w·2ⁿ⁻¹]`.
    pub fn forward(&self, z: Tensor<4>) -> Tensor<4> {
        let mut x = self.mid_block.forward(self.conv_in.forward(z));
        for block in &self.up_blocks {
            x = block.forward(x);
        }
        self.conv_out.forward(silu(self.conv_norm_out.forward(x)))
    }
}
