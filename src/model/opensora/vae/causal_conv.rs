//! OpenSora's `CausalConv3d`: zero-pad `dilation·(k_t−1) + (1−stride_t)` frames in front (none
//! behind, so frame t never sees later frames), `k/2` on each side in space, then an unpadded
//! `nn.Conv3d` with stride `(stride_t, 1, 1)`. (Its `pad_mode` is "constant" in every use.)

use burn::module::{Module, Param};
use burn::tensor::module::conv3d;
use burn::tensor::ops::{ConvOptions, PadMode};
use burn::tensor::Tensor;

use super::layers::key;
use crate::model::load::TensorLoader;

/// The `nn.Conv3d` inside (`.conv`).
#[derive(Module, Debug)]
pub struct Conv3d {
    /// `[out, in, k_t, k_h, k_w]`
    pub weight: Param<Tensor<5>>,
    /// `[out]`
    pub bias: Option<Param<Tensor<1>>>,
}

#[derive(Module, Debug)]
pub struct CausalConv3d {
    pub conv: Conv3d,
    #[module(skip)]
    pub stride_t: usize,
    /// Zero frames in front.
    #[module(skip)]
    pub time_pad: usize,
    /// Zero rows/columns on each side.
    #[module(skip)]
    pub space_pad: [usize; 2],
}

impl CausalConv3d {
    /// `prefix.conv.weight` `[c_out, c_in, k, k, k]` (+ `prefix.conv.bias` when `bias`).
    pub fn load(
        ld: &mut TensorLoader,
        prefix: &str,
        c_out: usize,
        c_in: usize,
        k: usize,
        stride_t: usize,
        bias: bool,
    ) -> Self {
        let p = key(prefix, "conv");
        let weight = Param::from_tensor(ld.tensor(&key(&p, "weight"), [c_out, c_in, k, k, k]));
        let bias = bias.then(|| Param::from_tensor(ld.tensor(&key(&p, "bias"), [c_out])));
        CausalConv3d {
            conv: Conv3d { weight, bias },
            stride_t,
            // dilation 1: (k − 1) + (1 − stride); k ≥ stride in every use (k = 1 has stride 1).
            time_pad: k.saturating_sub(stride_t),
            space_pad: [k / 2, k / 2],
        }
    }

    /// `[batch, c_in, t, h, w]` → `[batch, c_out, ⌊(t + time_pad − k)/stride⌋ + 1, h, w]`.
    pub fn forward(&self, x: Tensor<5>) -> Tensor<5> {
        let [ph, pw] = self.space_pad;
        let x = if self.time_pad + ph + pw > 0 {
            x.pad([(self.time_pad, 0), (ph, ph), (pw, pw)], PadMode::Constant(0.0))
        } else {
            x
        };
        let options = ConvOptions::new([self.stride_t, 1, 1], [0, 0, 0], [1, 1, 1], 1);
        conv3d(x, self.conv.weight.val(), self.conv.bias.as_ref().map(Param::val), options)
    }
}
