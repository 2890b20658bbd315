//! `CogVideoXSpatialNorm3D`: the decoder's group norm, modulated by the latent it decodes
//! (`norm(f) · conv_y(zq) + conv_b(zq)`, zq resized to f's frames and pixels).

use burn::tensor::Tensor;

use super::causal_conv::{CausalConv3d, ConvCache};
use super::group_norm::GroupNorm3d;
use super::nearest::resize_thw;
use super::weights::WeightSource;

#[derive(Debug, Clone)]
pub struct SpatialNorm3d {
    pub norm_layer: GroupNorm3d,
    pub conv_y: CausalConv3d,
    pub conv_b: CausalConv3d,
}

impl SpatialNorm3d {
    /// diffusers hard-codes eps 1e-6 here (not `norm_eps`).
    pub fn load(
        loader: &mut impl WeightSource,
        prefix: &str,
        f_channels: usize,
        zq_channels: usize,
        groups: usize,
    ) -> Self {
        SpatialNorm3d {
            norm_layer: GroupNorm3d::load(loader, &format!("{prefix}.norm_layer"), f_channels, groups, 1e-6),
            conv_y: CausalConv3d::load(loader, &format!("{prefix}.conv_y"), f_channels, zq_channels, 1),
            conv_b: CausalConv3d::load(loader, &format!("{prefix}.conv_b"), f_channels, zq_channels, 1),
        }
    }

    /// `f` `[b, c, t, h, w]`, `zq` `[b, z, t_z, h_z, w_z]` (this frame batch's latent).
    ///
    /// diffusers resizes `zq` to `f`'s size and then runs the 1×1×1 `conv_y`/`conv_b` there. A
    /// 1×1×1 convolution acts on each position alone and a nearest resize only repeats positions,
    /// so the two commute exactly: the convolutions run at latent resolution (1/64 of the
    /// positions at the decoder's top level) and their outputs are resized.
    pub fn forward(&self, f: Tensor<5>, zq: Tensor<5>, cache: &mut ConvCache) -> Tensor<5> {
        let [_, _, t, h, w] = f.dims();
        // Normalise first and fold each modulation in as soon as it exists: at most one
        // frame-sized temporary besides f and the result (memory peak of the decoder).
        let normed = self.norm_layer.forward(f);
        let scale = resize_to_frames(self.conv_y.forward(zq.clone(), cache), [t, h, w]);
        let normed = normed.mul(scale);
        normed.add(resize_to_frames(self.conv_b.forward(zq, cache), [t, h, w]))
    }
}

/// diffusers' resize of the latent to a feature map of `t` frames: an odd frame count > 1 means
/// "first frame + pairs", so the first latent frame maps to the first frame alone and the rest
/// are stretched over the others; otherwise one nearest resize.
fn resize_to_frames(x: Tensor<5>, [t, h, w]: [usize; 3]) -> Tensor<5> {
    let t_z = x.dims()[2];
    if t > 1 && t % 2 == 1 && t_z > 1 {
        let first = resize_thw(x.clone().narrow(2, 0, 1), [1, h, w]);
        let rest = resize_thw(x.narrow(2, 1, t_z - 1), [t - 1, h, w]);
        Tensor::cat(vec![first, rest], 2)
    } else {
        resize_thw(x, [t, h, w])
    }
}
