//! `CogVideoXDownsample3D`: optional time halving (average of frame pairs; an odd batch keeps its
//! first frame as is), then a per-frame 3×3 stride-2 conv after zero-padding right and bottom by 1.

use burn::tensor::ops::PadMode;
use burn::tensor::Tensor;

use super::causal_conv::Conv2dParams;
use super::weights::WeightSource;

#[derive(Debug, Clone)]
pub struct Downsample3d {
    pub conv: Conv2dParams,
    pub compress_time: bool,
}

impl Downsample3d {
    pub fn load(loader: &mut impl WeightSource, prefix: &str, channels: usize, compress_time: bool) -> Self {
        Downsample3d {
            conv: Conv2dParams::load(loader, &format!("{prefix}.conv"), channels, channels, 3),
            compress_time,
        }
    }

    /// `(t', h', w')` of [`Self::forward`] for `(t, h, w)`.
    pub fn output_size(&self, t: usize, h: usize, w: usize) -> (usize, usize, usize) {
        let t = match (self.compress_time, t % 2) {
            (false, _) => t,
            (true, 1) => 1 + (t - 1) / 2,
            (true, _) => t / 2,
        };
        (t, (h - 1) / 2 + 1, (w - 1) / 2 + 1)
    }

    /// `[b, c, t, h, w]` -> `[b, c, t', (h-1)/2+1, (w-1)/2+1]`.
    pub fn forward(&self, x: Tensor<5>) -> Tensor<5> {
        let x = if self.compress_time { halve_time(x) } else { x };
        let x = x.pad([(0, 1), (0, 1)], PadMode::Constant(0.0)); // [b, c, t', h+1, w+1]
        self.conv.forward_frames(x, 2, 0)
    }
}

/// `avg_pool1d(k=2, s=2)` over time; with an odd count the first frame passes through alone.
fn halve_time(x: Tensor<5>) -> Tensor<5> {
    let [b, c, t, h, w] = x.dims();
    let pairs = |x: Tensor<5>| {
        let n = x.dims()[2] / 2;
        // (a + b) / 2 per pair; a trailing unpaired frame is dropped, as avg_pool1d does.
        let x = x.narrow(2, 0, 2 * n).reshape([b, c, n, 2, h * w]);
        let a = x.clone().narrow(3, 0, 1);
        let second = x.narrow(3, 1, 1);
        a.add(second).div_scalar(2.0).reshape([b, c, n, h, w])
    };
    if t % 2 == 1 {
        let first = x.clone().narrow(2, 0, 1);
        if t == 1 {
            return first;
        }
        Tensor::cat(vec![first, pairs(x.narrow(2, 1, t - 1))], 2)
    } else {
        pairs(x)
    }
}
