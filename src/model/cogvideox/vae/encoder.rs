//! `CogVideoXEncoder3D`: conv_in, down blocks (resnets + downsampler; the first
//! `log2(temporal_compression_ratio)` also halve time), a two-resnet mid block, group norm, SiLU,
//! conv_out to `2 · latent_channels` (mean and log-variance). One call = one frame batch.
//!
//! Keys: `encoder.conv_in.conv.*`, `encoder.down_blocks.{i}.resnets.{j}.*`,
//! `encoder.down_blocks.{i}.downsamplers.0.conv.*`, `encoder.mid_block.resnets.{0,1}.*`,
//! `encoder.norm_out.*`, `encoder.conv_out.conv.*`.

use burn::tensor::activation::silu;
use burn::tensor::Tensor;

use super::causal_conv::{CausalConv3d, ConvCache};
use super::config::VaeConfig;
use super::downsample::Downsample3d;
use super::group_norm::GroupNorm3d;
use super::resnet::{ResnetBlock3d, ResnetSpec};
use super::weights::WeightSource;

#[derive(Debug, Clone)]
pub struct DownBlock3d {
    pub resnets: Vec<ResnetBlock3d>,
    pub downsamplers: Option<Downsample3d>,
}

#[derive(Debug, Clone)]
pub struct Encoder3d {
    pub conv_in: CausalConv3d,
    pub down_blocks: Vec<DownBlock3d>,
    pub mid_block: Vec<ResnetBlock3d>,
    pub norm_out: GroupNorm3d,
    pub conv_out: CausalConv3d,
}

impl Encoder3d {
    pub fn load(loader: &mut impl WeightSource, prefix: &str, cfg: &VaeConfig) -> Self {
        let ch = &cfg.block_out_channels;
        let spec = ResnetSpec { groups: cfg.norm_num_groups, eps: cfg.norm_eps, spatial_norm_dim: None };
        let conv_in = CausalConv3d::load(loader, &format!("{prefix}.conv_in"), ch[0], cfg.in_channels, 3);
        let mut down_blocks = Vec::new();
        let mut c_prev = ch[0];
        for (i, &c) in ch.iter().enumerate() {
            let p = format!("{prefix}.down_blocks.{i}");
            let resnets = (0..cfg.layers_per_block)
                .map(|j| {
                    let c_in = if j == 0 { c_prev } else { c };
                    ResnetBlock3d::load(loader, &format!("{p}.resnets.{j}"), c_in, c, spec)
                })
                .collect();
            let last = i + 1 == ch.len();
            let compress_time = i < cfg.temporal_compress_level();
            let downsamplers =
                (!last).then(|| Downsample3d::load(loader, &format!("{p}.downsamplers.0"), c, compress_time));
            down_blocks.push(DownBlock3d { resnets, downsamplers });
            c_prev = c;
        }
        let c_mid = ch[ch.len() - 1];
        let mid_block = (0..2)
            .map(|j| ResnetBlock3d::load(loader, &format!("{prefix}.mid_block.resnets.{j}"), c_mid, c_mid, spec))
            .collect();
        Encoder3d {
            conv_in,
            down_blocks,
            mid_block,
            norm_out: GroupNorm3d::load(loader, &format!("{prefix}.norm_out"), c_mid, cfg.norm_num_groups, 1e-6),
            conv_out: CausalConv3d::load(loader, &format!("{prefix}.conv_out"), 2 * cfg.latent_channels, c_mid, 3),
        }
    }

    /// Values in the largest tensor one frame batch of `t` frames of `h`x`w` makes (batch 1),
    /// following [`Self::forward`]'s shapes: a conv's time-padded input (at full resolution,
    /// the first down block's), or a downsampler's padded input.
    pub fn largest_tensor_len(&self, t: usize, h: usize, w: usize) -> usize {
        let (mut t, mut h, mut w) = (t, h, w);
        let mut largest = self.conv_in.padded_input_len(t, h, w);
        for block in &self.down_blocks {
            for resnet in &block.resnets {
                largest = largest.max(resnet.largest_tensor_len(t, h, w));
            }
            if let Some(down) = &block.downsamplers {
                let channels = down.conv.weight.dims()[1];
                let (t_out, h_out, w_out) = down.output_size(t, h, w);
                largest = largest.max(channels * t_out * (h + 1) * (w + 1));
                (t, h, w) = (t_out, h_out, w_out);
            }
        }
        for resnet in &self.mid_block {
            largest = largest.max(resnet.largest_tensor_len(t, h, w));
        }
        largest.max(self.conv_out.padded_input_len(t, h, w))
    }

    /// One frame batch `[b, 3, t, H, W]` -> `[b, 2·latent, t', h, w]`, carrying `cache`.
    pub fn forward(&self, x: Tensor<5>, cache: &mut ConvCache) -> Tensor<5> {
        cache.rewind();
        let mut h = self.conv_in.forward(x, cache);
        for block in &self.down_blocks {
            for resnet in &block.resnets {
                h = resnet.forward(h, None, cache);
            }
            if let Some(down) = &block.downsamplers {
                h = down.forward(h);
            }
        }
        for resnet in &self.mid_block {
            h = resnet.forward(h, None, cache);
        }
        let h = silu(self.norm_out.forward(h));
        self.conv_out.forward(h, cache)
    }
}
