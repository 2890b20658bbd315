//! `CogVideoXDecoder3D`: conv_in, a two-resnet mid block, up blocks (`layers_per_block + 1`
//! resnets + upsampler; the first `log2(temporal_compression_ratio)` also double time), spatial
//! norm, SiLU, conv_out. Every norm is conditioned on this frame batch's latent. One call = one
//! frame batch.
//!
//! Keys: `decoder.conv_in.conv.*`, `decoder.mid_block.resnets.{0,1}.*`,
//! `decoder.up_blocks.{i}.resnets.{j}.*`, `decoder.up_blocks.{i}.upsamplers.0.conv.*`,
//! `decoder.norm_out.{norm_layer,conv_y.conv,conv_b.conv}.*`, `decoder.conv_out.conv.*`.

use burn::tensor::activation::silu;
use burn::tensor::Tensor;

use super::causal_conv::{CausalConv3d, ConvCache};
use super::config::VaeConfig;
use super::resnet::{ResnetBlock3d, ResnetSpec};
use super::spatial_norm::SpatialNorm3d;
use super::upsample::Upsample3d;
use super::weights::WeightSource;

#[derive(Debug, Clone)]
pub struct UpBlock3d {
    pub resnets: Vec<ResnetBlock3d>,
    pub upsamplers: Option<Upsample3d>,
}

#[derive(Debug, Clone)]
pub struct Decoder3d {
    pub conv_in: CausalConv3d,
    pub mid_block: Vec<ResnetBlock3d>,
    pub up_blocks: Vec<UpBlock3d>,
    pub norm_out: SpatialNorm3d,
    pub conv_out: CausalConv3d,
}

impl Decoder3d {
    pub fn load(loader: &mut impl WeightSource, prefix: &str, cfg: &VaeConfig) -> Self {
        let ch: Vec<usize> = cfg.block_out_channels.iter().rev().copied().collect();
        let z = cfg.latent_channels;
        let spec = ResnetSpec { groups: cfg.norm_num_groups, eps: cfg.norm_eps, spatial_norm_dim: Some(z) };
        let conv_in = CausalConv3d::load(loader, &format!("{prefix}.conv_in"), ch[0], z, 3);
        let mid_block = (0..2)
            .map(|j| ResnetBlock3d::load(loader, &format!("{prefix}.mid_block.resnets.{j}"), ch[0], ch[0], spec))
            .collect();
        let mut up_blocks = Vec::new();
        let mut c_prev = ch[0];
        for (i, &c) in ch.iter().enumerate() {
            let p = format!("{prefix}.up_blocks.{i}");
            let resnets = (0..cfg.layers_per_block + 1)
                .map(|j| {
                    let c_in = if j == 0 { c_prev } else { c };
                    ResnetBlock3d::load(loader, &format!("{p}.resnets.{j}"), c_in, c, spec)
                })
                .collect();
            let last = i + 1 == ch.len();
            let compress_time = i < cfg.temporal_compress_level();
            let upsamplers = (!last).then(|| Upsample3d::load(loader, &format!("{p}.upsamplers.0"), c, compress_time));
            up_blocks.push(UpBlock3d { resnets, upsamplers });
            c_prev = c;
        }
        let c_last = ch[ch.len() - 1];
        Decoder3d {
            conv_in,
            mid_block,
            up_blocks,
            norm_out: SpatialNorm3d::load(loader, &format!("{prefix}.norm_out"), c_last, z, cfg.norm_num_groups),
            conv_out: CausalConv3d::load(loader, &format!("{prefix}.conv_out"), cfg.out_channels, c_last, 3),
        }
    }

    /// Values in the largest tensor one frame batch of `f` latent frames of `h`x`w` makes
    /// (batch 1), following [`Self::forward`]'s shapes: a conv's time-padded input or an
    /// upsampler's output, at the last (full) resolution.
    pub fn largest_tensor_len(&self, f: usize, h: usize, w: usize) -> usize {
        let (mut t, mut h, mut w) = (f, h, w);
        let mut largest = self.conv_in.padded_input_len(t, h, w);
        for resnet in &self.mid_block {
            largest = largest.max(resnet.largest_tensor_len(t, h, w));
        }
        for block in &self.up_blocks {
            for resnet in &block.resnets {
                largest = largest.max(resnet.largest_tensor_len(t, h, w));
            }
            if let Some(up) = &block.upsamplers {
                let channels = up.conv.weight.dims()[0];
                (t, h, w) = (up.output_frames(t), 2 * h, 2 * w);
                largest = largest.max(channels * t * h * w);
            }
        }
        largest.max(self.conv_out.padded_input_len(t, h, w))
    }

    /// One latent frame batch `[b, latent, f, h, w]` -> frames `[b, 3, t, H, W]`, carrying `cache`.
    pub fn forward(&self, z: Tensor<5>, cache: &mut ConvCache) -> Tensor<5> {
        cache.rewind();
        let mut h = self.conv_in.forward(z.clone(), cache);
        for resnet in &self.mid_block {
            h = resnet.forward(h, Some(&z), cache);
        }
        for block in &self.up_blocks {
            for resnet in &block.resnets {
                h = resnet.forward(h, Some(&z), cache);
            }
            if let Some(up) = &block.upsamplers {
                h = up.forward(h);
            }
        }
        let h = silu(self.norm_out.forward(h, z, cache));
        self.conv_out.forward(h, cache)
    }
}
