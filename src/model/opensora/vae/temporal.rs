//! OpenSora's `VAE_Temporal` (MAGVIT-style, time only: every conv is a [`CausalConv3d`] and space
//! is never resampled). Encoder: `conv_in → (ResBlocks, stride-2 time conv where
//! temporal_downsample says so) per block → ResBlocks → GroupNorm → act → 1×1×1 conv`;
//! `quant_conv` → mean/log-variance. Decoder mirrors it, upsampling time by a conv to 2× channels
//! followed by depth-to-time (`B (C ts) T H W -> B C (T ts) H W`). `encode` pads the clip in front
//! with zero frames to a multiple of the time factor; `decode` drops that many frames again.
//! GroupNorms use PyTorch's default eps 1e-5.

use burn::module::Module;
use burn::tensor::ops::PadMode;
use burn::tensor::Tensor;

use super::causal_conv::CausalConv3d;
use super::config::TemporalArgs;
use super::gaussian::DiagonalGaussian;
use super::layers::{key, silu, GroupNorm};
use crate::model::load::TensorLoader;

const EPS_TEMPORAL: f64 = 1e-5;

/// `swish` (SiLU) or `relu`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Activation {
    pub swish: bool,
}

impl Activation {
    fn apply(self, x: Tensor<5>) -> Tensor<5> {
        if self.swish {
            silu(x)
        } else {
            burn::tensor::activation::relu(x)
        }
    }
}

/// `ResBlock`: `conv2(act(norm2(conv1(act(norm1(x)))))) + residual`, convs without bias; a
/// 1×1×1 `conv3` projects the residual when the channel count changes.
#[derive(Module, Debug)]
pub struct ResBlock {
    pub norm1: GroupNorm,
    pub conv1: CausalConv3d,
    pub norm2: GroupNorm,
    pub conv2: CausalConv3d,
    pub conv3: Option<CausalConv3d>,
    #[module(skip)]
    pub act: Activation,
}

impl ResBlock {
    fn load(ld: &mut TensorLoader, prefix: &str, c_in: usize, c_out: usize, args: &TemporalArgs) -> Self {
        let g = args.num_groups;
        ResBlock {
            norm1: GroupNorm::load(ld, &key(prefix, "norm1"), c_in, g, EPS_TEMPORAL),
            conv1: CausalConv3d::load(ld, &key(prefix, "conv1"), c_out, c_in, 3, 1, false),
            norm2: GroupNorm::load(ld, &key(prefix, "norm2"), c_out, g, EPS_TEMPORAL),
            conv2: CausalConv3d::load(ld, &key(prefix, "conv2"), c_out, c_out, 3, 1, false),
            conv3: (c_in != c_out).then(|| CausalConv3d::load(ld, &key(prefix, "conv3"), c_out, c_in, 1, 1, false)),
            act: Activation { swish: args.swish },
        }
    }

    /// `[batch, c_in, t, h, w]` → `[batch, c_out, t, h, w]`.
    pub fn forward(&self, x: Tensor<5>) -> Tensor<5> {
        let h = self.conv1.forward(self.act.apply(self.norm1.forward(x.clone())));
        let h = self.conv2.forward(self.act.apply(self.norm2.forward(h)));
        let residual = match &self.conv3 {
            Some(conv) => conv.forward(x),
            None => x,
        };
        h + residual
    }
}

fn res_stack(blocks: &[ResBlock], mut x: Tensor<5>) -> Tensor<5> {
    for block in blocks {
        x = block.forward(x);
    }
    x
}

/// The temporal `Encoder`.
#[derive(Module, Debug)]
pub struct TemporalEncoder {
    pub conv_in: CausalConv3d,
    /// `block_res_blocks.i.j`
    pub block_res_blocks: Vec<Vec<ResBlock>>,
    /// `conv_blocks.i` for i < blocks−1: a stride-2 time conv, or `None` (the reference's Identity).
    pub conv_blocks: Vec<Option<CausalConv3d>>,
    pub res_blocks: Vec<ResBlock>,
    pub norm1: GroupNorm,
    pub conv2: CausalConv3d,
    #[module(skip)]
    pub act: Activation,
}

impl TemporalEncoder {
    fn load(ld: &mut TensorLoader, prefix: &str, args: &TemporalArgs) -> Self {
        let blocks = args.channel_multipliers.len();
        let mut c_prev = args.filters;
        let mut c = args.filters;
        let mut block_res_blocks = Vec::with_capacity(blocks);
        let mut conv_blocks = Vec::with_capacity(blocks.saturating_sub(1));
        for i in 0..blocks {
            c = args.filters * args.channel_multipliers[i];
            let items = (0..args.num_res_blocks)
                .map(|j| {
                    let block = ResBlock::load(ld, &key(prefix, &format!("block_res_blocks.{i}.{j}")), c_prev, c, args);
                    c_prev = c;
                    block
                })
                .collect();
            block_res_blocks.push(items);
            if i + 1 < blocks {
                let conv = args.temporal_downsample[i]
                    .then(|| CausalConv3d::load(ld, &key(prefix, &format!("conv_blocks.{i}")), c, c_prev, 3, 2, true));
                conv_blocks.push(conv);
                c_prev = c;
            }
        }
        let res_blocks = (0..args.num_res_blocks)
            .map(|j| {
                let block = ResBlock::load(ld, &key(prefix, &format!("res_blocks.{j}")), c_prev, c, args);
                c_prev = c;
                block
            })
            .collect();
        TemporalEncoder {
            conv_in: CausalConv3d::load(ld, &key(prefix, "conv_in"), args.filters, args.in_out_channels, 3, 1, false),
            block_res_blocks,
            conv_blocks,
            res_blocks,
            norm1: GroupNorm::load(ld, &key(prefix, "norm1"), c_prev, args.num_groups, EPS_TEMPORAL),
            conv2: CausalConv3d::load(ld, &key(prefix, "conv2"), 2 * args.latent_embed_dim, c_prev, 1, 1, true),
            act: Activation { swish: args.swish },
        }
    }

    /// `[batch, in_out, t, h, w]` → `[batch, 2·latent_embed, t/factor, h, w]`.
    pub fn forward(&self, x: Tensor<5>) -> Tensor<5> {
        let mut x = self.conv_in.forward(x);
        for (i, blocks) in self.block_res_blocks.iter().enumerate() {
            x = res_stack(blocks, x);
            if let Some(Some(conv)) = self.conv_blocks.get(i) {
                x = conv.forward(x);
            }
        }
        let x = res_stack(&self.res_blocks, x);
        self.conv2.forward(self.act.apply(self.norm1.forward(x)))
    }
}

/// The temporal `Decoder`.
#[derive(Module, Debug)]
pub struct TemporalDecoder {
    pub conv1: CausalConv3d,
    pub res_blocks: Vec<ResBlock>,
    /// `block_res_blocks.i.j`, run from the last block to the first.
    pub block_res_blocks: Vec<Vec<ResBlock>>,
    /// `conv_blocks.i` (i < blocks−1) ahead of block i's output: a time conv to 2× channels, then
    /// depth-to-time; `None` = Identity.
    pub conv_blocks: Vec<Option<CausalConv3d>>,
    pub norm1: GroupNorm,
    pub conv_out: CausalConv3d,
    #[module(skip)]
    pub act: Activation,
}

impl TemporalDecoder {
    fn load(ld: &mut TensorLoader, prefix: &str, args: &TemporalArgs) -> Self {
        let blocks = args.channel_multipliers.len();
        let c_top = args.filters * args.channel_multipliers[blocks - 1];
        let conv1 = CausalConv3d::load(ld, &key(prefix, "conv1"), c_top, args.latent_embed_dim, 3, 1, true);
        let res_blocks = (0..args.num_res_blocks)
            .map(|j| ResBlock::load(ld, &key(prefix, &format!("res_blocks.{j}")), c_top, c_top, args))
            .collect();
        let mut c_prev = c_top;
        let mut c = c_top;
        let mut block_res_blocks: Vec<Vec<ResBlock>> = (0..blocks).map(|_| Vec::new()).collect();
        let mut conv_blocks: Vec<Option<CausalConv3d>> = (0..blocks.saturating_sub(1)).map(|_| None).collect();
        for i in (0..blocks).rev() {
            c = args.filters * args.channel_multipliers[i];
            block_res_blocks[i] = (0..args.num_res_blocks)
                .map(|j| {
                    let block = ResBlock::load(ld, &key(prefix, &format!("block_res_blocks.{i}.{j}")), c_prev, c, args);
                    c_prev = c;
                    block
                })
                .collect();
            if i > 0 && args.temporal_downsample[i - 1] {
                let p = key(prefix, &format!("conv_blocks.{}", i - 1));
                conv_blocks[i - 1] = Some(CausalConv3d::load(ld, &p, 2 * c_prev, c_prev, 3, 1, true));
            }
        }
        TemporalDecoder {
            conv1,
            res_blocks,
            block_res_blocks,
            conv_blocks,
            norm1: GroupNorm::load(ld, &key(prefix, "norm1"), c_prev, args.num_groups, EPS_TEMPORAL),
            conv_out: CausalConv3d::load(ld, &key(prefix, "conv_out"), args.in_out_channels, c, 3, 1, true),
            act: Activation { swish: args.swish },
        }
    }

    /// `[batch, latent_embed, t, h, w]` → `[batch, in_out, t·factor, h, w]`.
    pub fn forward(&self, z: Tensor<5>) -> Tensor<5> {
        let mut x = res_stack(&self.res_blocks, self.conv1.forward(z));
        for i in (0..self.block_res_blocks.len()).rev() {
            x = res_stack(&self.block_res_blocks[i], x);
            if i > 0 {
                if let Some(conv) = &self.conv_blocks[i - 1] {
                    x = depth_to_time(conv.forward(x));
                }
            }
        }
        self.conv_out.forward(self.act.apply(self.norm1.forward(x)))
    }
}

/// `rearrange("B (C ts) T H W -> B C (T ts) H W", ts=2)`: channel `2c + s` becomes frame `2t + s`.
fn depth_to_time(x: Tensor<5>) -> Tensor<5> {
    let [b, c2, t, h, w] = x.dims();
    let c = c2 / 2;
    x.reshape([b, c, 2, t, h * w]) // [batch, c, ts, t, h·w]
        .swap_dims(2, 3) // [batch, c, t, ts, h·w]
        .reshape([b, c, 2 * t, h, w])
}

/// `VAE_Temporal`.
#[derive(Module, Debug)]
pub struct VaeTemporal {
    pub encoder: TemporalEncoder,
    pub decoder: TemporalDecoder,
    pub quant_conv: CausalConv3d,
    pub post_quant_conv: CausalConv3d,
    #[module(skip)]
    pub args: TemporalArgs,
}

impl VaeTemporal {
    /// Every tensor under `prefix` (`temporal_vae` in the OpenSora checkpoint).
    pub fn load(ld: &mut TensorLoader, prefix: &str, args: &TemporalArgs) -> Self {
        let (latent, embed) = (args.latent_embed_dim, args.embed_dim);
        VaeTemporal {
            encoder: TemporalEncoder::load(ld, &key(prefix, "encoder"), args),
            decoder: TemporalDecoder::load(ld, &key(prefix, "decoder"), args),
            quant_conv: CausalConv3d::load(ld, &key(prefix, "quant_conv"), 2 * embed, 2 * latent, 1, 1, true),
            post_quant_conv: CausalConv3d::load(ld, &key(prefix, "post_quant_conv"), latent, embed, 1, 1, true),
            args: args.clone(),
        }
    }

    /// The posterior of `x` `[batch, in_out, t, h, w]` over `[batch, embed, latent_frames(t), h, w]`.
    pub fn encode(&self, x: Tensor<5>) -> DiagonalGaussian<5> {
        let pad = self.args.time_padding(x.dims()[2]);
        let x = if pad > 0 { x.pad([(pad, 0), (0, 0), (0, 0)], PadMode::Constant(0.0)) } else { x };
        DiagonalGaussian::from_moments(self.quant_conv.forward(self.encoder.forward(x)))
    }

    /// `z` `[batch, embed, t, h, w]` → `[batch, in_out, t·factor − time_padding(num_frames), h, w]`.
    pub fn decode(&self, z: Tensor<5>, num_frames: usize) -> Tensor<5> {
        let x = self.decoder.forward(self.post_quant_conv.forward(z));
        let drop = self.args.time_padding(num_frames);
        if drop == 0 {
            return x;
        }
        let t = x.dims()[2];
        x.narrow(2, drop, t - drop)
    }
}
