//! `CogVideoXResnetBlock3D` (no time embedding, no dropout at inference):
//! `x + conv2(silu(norm2(conv1(silu(norm1(x))))))`, the skip projected by a 1×1×1 conv when the
//! channel count changes. Decoder blocks use the latent-conditioned spatial norm.

use burn::tensor::activation::silu;
use burn::tensor::Tensor;

use super::causal_conv::{CausalConv3d, Conv3dParams, ConvCache};
use super::group_norm::GroupNorm3d;
use super::spatial_norm::SpatialNorm3d;
use super::weights::WeightSource;

/// `norm1`/`norm2`: plain group norm (encoder) or spatial norm (decoder).
// A few dozen per model, built once: the size difference of the variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum BlockNorm {
    Group(GroupNorm3d),
    Spatial(SpatialNorm3d),
}

impl BlockNorm {
    fn load(
        loader: &mut impl WeightSource,
        prefix: &str,
        channels: usize,
        groups: usize,
        eps: f64,
        spatial_norm_dim: Option<usize>,
    ) -> Self {
        match spatial_norm_dim {
            None => BlockNorm::Group(GroupNorm3d::load(loader, prefix, channels, groups, eps)),
            Some(z) => BlockNorm::Spatial(SpatialNorm3d::load(loader, prefix, channels, z, groups)),
        }
    }

    fn forward(&self, x: Tensor<5>, zq: Option<&Tensor<5>>, cache: &mut ConvCache) -> Tensor<5> {
        match (self, zq) {
            (BlockNorm::Group(n), _) => n.forward(x),
            (BlockNorm::Spatial(n), Some(zq)) => n.forward(x, zq.clone(), cache),
            (BlockNorm::Spatial(_), None) => unreachable!("decoder blocks are always given the latent"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ResnetBlock3d {
    pub norm1: BlockNorm,
    pub conv1: CausalConv3d,
    pub norm2: BlockNorm,
    pub conv2: CausalConv3d,
    /// `CogVideoXSafeConv3d` 1×1×1 when `in != out`.
    pub conv_shortcut: Option<Conv3dParams>,
}

/// What every resnet block of one encoder/decoder shares.
#[derive(Debug, Clone, Copy)]
pub struct ResnetSpec {
    pub groups: usize,
    pub eps: f64,
    /// `Some(latent_channels)` in the decoder.
    pub spatial_norm_dim: Option<usize>,
}

impl ResnetBlock3d {
    pub fn load(loader: &mut impl WeightSource, prefix: &str, c_in: usize, c_out: usize, spec: ResnetSpec) -> Self {
        let ResnetSpec { groups, eps, spatial_norm_dim } = spec;
        ResnetBlock3d {
            norm1: BlockNorm::load(loader, &format!("{prefix}.norm1"), c_in, groups, eps, spatial_norm_dim),
            conv1: CausalConv3d::load(loader, &format!("{prefix}.conv1"), c_out, c_in, 3),
            norm2: BlockNorm::load(loader, &format!("{prefix}.norm2"), c_out, groups, eps, spatial_norm_dim),
            conv2: CausalConv3d::load(loader, &format!("{prefix}.conv2"), c_out, c_out, 3),
            conv_shortcut: (c_in != c_out)
                .then(|| Conv3dParams::load(loader, &format!("{prefix}.conv_shortcut"), c_out, c_in, [1, 1, 1])),
        }
    }

    /// Values in the largest tensor it makes for `t` frames of `h`x`w` (a conv's padded input;
    /// norms and the skip make tensors no larger).
    pub fn largest_tensor_len(&self, t: usize, h: usize, w: usize) -> usize {
        self.conv1.padded_input_len(t, h, w).max(self.conv2.padded_input_len(t, h, w))
    }

    /// `x` `[b, c_in, t, h, w]` -> `[b, c_out, t, h, w]`.
    pub fn forward(&self, x: Tensor<5>, zq: Option<&Tensor<5>>, cache: &mut ConvCache) -> Tensor<5> {
        let h = silu(self.norm1.forward(x.clone(), zq, cache));
        let h = self.conv1.forward(h, cache);
        let h = silu(self.norm2.forward(h, zq, cache));
        let h = self.conv2.forward(h, cache);
        let skip = match &self.conv_shortcut {
            Some(conv) => conv.forward(x, [0, 0, 0]),
            None => x,
        };
        h.add(skip)
    }
}
