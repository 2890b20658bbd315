//! diffusers `ResnetBlock2D` as the VAE uses it (no time embedding, pre-norm, output scale 1):
//! `out = shortcut(x) + conv2(SiLU(norm2(conv1(SiLU(norm1(x))))))`.

use burn::module::Module;
use burn::tensor::Tensor;

use super::layers::{key, silu, Conv2d, GroupNorm};
use crate::model::load::TensorLoader;

/// The VAE's GroupNorm epsilon (`resnet_eps`).
pub const EPS_2D: f64 = 1e-6;

#[derive(Module, Debug)]
pub struct ResnetBlock2D {
    pub norm1: GroupNorm,
    pub conv1: Conv2d,
    pub norm2: GroupNorm,
    pub conv2: Conv2d,
    /// 1×1 projection when the channel count changes.
    pub conv_shortcut: Option<Conv2d>,
}

impl ResnetBlock2D {
    pub fn load(ld: &mut TensorLoader, prefix: &str, c_in: usize, c_out: usize, groups: usize) -> Self {
        ResnetBlock2D {
            norm1: GroupNorm::load(ld, &key(prefix, "norm1"), c_in, groups, EPS_2D),
            conv1: Conv2d::load(ld, &key(prefix, "conv1"), c_out, c_in, 3, 1),
            norm2: GroupNorm::load(ld, &key(prefix, "norm2"), c_out, groups, EPS_2D),
            conv2: Conv2d::load(ld, &key(prefix, "conv2"), c_out, c_out, 3, 1),
            conv_shortcut: (c_in != c_out).then(|| Conv2d::load(ld, &key(prefix, "conv_shortcut"), c_out, c_in, 1, 1)),
        }
    }

    /// `[batch, c_in, h, w]` → `[batch, c_out, h, w]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let h = self.conv1.forward(silu(self.norm1.forward(x.clone())));
        let h = self.conv2.forward(silu(self.norm2.forward(h)));
        let shortcut = match &self.conv_shortcut {
            Some(conv) => conv.forward(x),
            None => x,
        };
        shortcut + h
    }
}
