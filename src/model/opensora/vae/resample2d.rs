//! diffusers `Downsample2D` (encoder: zero-pad right and bottom by one, then a stride-2 3×3 conv)
//! and `Upsample2D` (decoder: nearest-neighbour ×2, then a 3×3 conv).

use burn::module::Module;
use burn::tensor::ops::PadMode;
use burn::tensor::Tensor;

use super::layers::{key, Conv2d};
use crate::model::load::TensorLoader;

/// `downsamplers.0` of a `DownEncoderBlock2D` (`downsample_padding = 0`).
#[derive(Module, Debug)]
pub struct Downsample2D {
    pub conv: Conv2d,
}

impl Downsample2D {
    pub fn load(ld: &mut TensorLoader, prefix: &str, channels: usize) -> Self {
        Downsample2D { conv: Conv2d::load(ld, &key(prefix, "conv"), channels, channels, 3, 2).unpadded() }
    }

    /// `[batch, c, h, w]` → `[batch, c, ⌊(h−1)/2⌋+1, ⌊(w−1)/2⌋+1]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        // F.pad(x, (0, 1, 0, 1)): one zero column on the right, one zero row at the bottom.
        let x = x.pad([(0, 1), (0, 1)], PadMode::Constant(0.0));
        self.conv.forward(x)
    }

    /// Output size of one side of length `n` (`None` where the conv would have nothing to read).
    pub fn output_len(n: usize) -> Option<usize> {
        (n >= 2).then(|| (n - 2) / 2 + 1)
    }
}

/// `upsamplers.0` of an `UpDecoderBlock2D`.
#[derive(Module, Debug)]
pub struct Upsample2D {
    pub conv: Conv2d,
}

impl Upsample2D {
    pub fn load(ld: &mut TensorLoader, prefix: &str, channels: usize) -> Self {
        Upsample2D { conv: Conv2d::load(ld, &key(prefix, "conv"), channels, channels, 3, 1) }
    }

    /// `[batch, c, h, w]` → `[batch, c, 2h, 2w]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.conv.forward(nearest_x2(x))
    }
}

/// `F.interpolate(x, scale_factor=2, mode="nearest")`: every pixel repeated into a 2×2 block,
/// written as a broadcast so it is exact on every backend.
pub fn nearest_x2(x: Tensor<4>) -> Tensor<4> {
    let [b, c, h, w] = x.dims();
    x.reshape([b * c, h, 1, w, 1]) // [batch·c, h, 1, w, 1]
        .expand([b * c, h, 2, w, 2])
        .reshape([b, c, 2 * h, 2 * w])
}
