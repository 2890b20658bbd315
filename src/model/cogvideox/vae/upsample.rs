//! `CogVideoXUpsample3D`: nearest ×2 in height and width — and in time when compressing, except
//! that the first frame of an odd batch (and a lone frame) is not repeated — then a per-frame
//! 3×3 conv (padding 1). Nearest-then-conv, no transposed convolution (as the reference).

use burn::tensor::Tensor;

use super::causal_conv::Conv2dParams;
use super::nearest::resize_thw;
use super::weights::WeightSource;

#[derive(Debug, Clone)]
pub struct Upsample3d {
    pub conv: Conv2dParams,
    pub compress_time: bool,
}

impl Upsample3d {
    pub fn load(loader: &mut impl WeightSource, prefix: &str, channels: usize, compress_time: bool) -> Self {
        Upsample3d { conv: Conv2dParams::load(loader, &format!("{prefix}.conv"), channels, channels, 3), compress_time }
    }

    /// t' of [`Self::forward`]: t, 2t, or 2t-1 for an odd batch (its first frame not repeated).
    pub fn output_frames(&self, t: usize) -> usize {
        match (self.compress_time && t > 1, t % 2) {
            (false, _) => t,
            (true, 1) => 2 * t - 1,
            (true, _) => 2 * t,
        }
    }

    /// `[b, c, t, h, w]` -> `[b, c, t', 2h, 2w]`, t' = t, 2t or 2t-1 (odd batch).
    pub fn forward(&self, x: Tensor<5>) -> Tensor<5> {
        let [_, _, t, h, w] = x.dims();
        let x = if self.compress_time && t > 1 {
            if t % 2 == 1 {
                let first = resize_thw(x.clone().narrow(2, 0, 1), [1, 2 * h, 2 * w]);
                let rest = resize_thw(x.narrow(2, 1, t - 1), [2 * (t - 1), 2 * h, 2 * w]);
                Tensor::cat(vec![first, rest], 2)
            } else {
                resize_thw(x, [2 * t, 2 * h, 2 * w])
            }
        } else {
            resize_thw(x, [t, 2 * h, 2 * w])
        };
        self.conv.forward_frames(x, 1, 1)
    }
}
