//! `CogVideoXCausalConv3d`: a 3D convolution that only looks back in time.
//!
//! The time axis is padded on the front with `k_t - 1` frames: copies of the first frame for the
//! first frame batch, the previous batch's last `k_t - 1` (padded) input frames afterwards (the
//! "conv cache"), so decoding a video batch by batch equals one causal pass. Height and width are
//! zero-padded by `(k - 1) / 2` on both sides inside the convolution.

use burn::tensor::module::{conv2d, conv3d};
use burn::tensor::ops::ConvOptions;
use burn::tensor::Tensor;

use super::weights::WeightSource;

/// A plain 3D convolution's parameters (`<prefix>.weight` `[out, in, kt, kh, kw]`, `<prefix>.bias`).
#[derive(Debug, Clone)]
pub struct Conv3dParams {
    pub weight: Tensor<5>,
    pub bias: Tensor<1>,
}

impl Conv3dParams {
    pub fn load(loader: &mut impl WeightSource, prefix: &str, c_out: usize, c_in: usize, k: [usize; 3]) -> Self {
        Conv3dParams {
            weight: loader.tensor(&format!("{prefix}.weight"), [c_out, c_in, k[0], k[1], k[2]]),
            bias: loader.tensor(&format!("{prefix}.bias"), [c_out]),
        }
    }

    pub fn kernel(&self) -> [usize; 3] {
        let [_, _, kt, kh, kw] = self.weight.dims();
        [kt, kh, kw]
    }

    /// Unpadded in time, `padding` in height/width.                 // [b, c_out, t', h', w']
    pub fn forward(&self, x: Tensor<5>, padding: [usize; 3]) -> Tensor<5> {
        conv3d(x, self.weight.clone(), Some(self.bias.clone()), ConvOptions::new([1, 1, 1], padding, [1, 1, 1], 1))
    }
}

/// A 2D convolution applied to every frame (`<prefix>.weight` `[out, in, kh, kw]`).
#[derive(Debug, Clone)]
pub struct Conv2dParams {
    pub weight: Tensor<4>,
    pub bias: Tensor<1>,
}

impl Conv2dParams {
    pub fn load(loader: &mut impl WeightSource, prefix: &str, c_out: usize, c_in: usize, k: usize) -> Self {
        Conv2dParams {
            weight: loader.tensor(&format!("{prefix}.weight"), [c_out, c_in, k, k]),
            bias: loader.tensor(&format!("{prefix}.bias"), [c_out]),
        }
    }

    /// Per-frame convolution of `[b, c, t, h, w]`.                 // [b, c_out, t, h', w']
    pub fn forward_frames(&self, x: Tensor<5>, stride: usize, padding: usize) -> Tensor<5> {
        let [b, c, t, h, w] = x.dims();
        let frames = x.permute([0, 2, 1, 3, 4]).reshape([b * t, c, h, w]); // [b·t, c, h, w]
        let y = conv2d(
            frames,
            self.weight.clone(),
            Some(self.bias.clone()),
            ConvOptions::new([stride, stride], [padding, padding], [1, 1], 1),
        );
        let [_, c_out, h_out, w_out] = y.dims();
        y.reshape([b, t, c_out, h_out, w_out]).permute([0, 2, 1, 3, 4])
    }
}

/// Per-convolution time caches carried from one frame batch to the next. Causal convolutions
/// take slots in their (fixed) call order; [`ConvCache::rewind`] starts the next batch.
#[derive(Debug, Default)]
pub struct ConvCache {
    slots: Vec<Option<Tensor<5>>>,
    next: usize,
}

impl ConvCache {
    pub fn new() -> Self {
        ConvCache::default()
    }

    /// Back to the first slot, for the next frame batch of the same stream.
    pub fn rewind(&mut self) {
        self.next = 0;
    }

    fn slot(&mut self) -> &mut Option<Tensor<5>> {
        if self.next == self.slots.len() {
            self.slots.push(None);
        }
        self.next += 1;
        &mut self.slots[self.next - 1]
    }
}

/// `CogVideoXCausalConv3d` (pad mode "first": cached/first-frame time padding, zero spatial padding).
#[derive(Debug, Clone)]
pub struct CausalConv3d {
    pub conv: Conv3dParams,
}

impl CausalConv3d {
    pub fn load(loader: &mut impl WeightSource, prefix: &str, c_out: usize, c_in: usize, k: usize) -> Self {
        CausalConv3d { conv: Conv3dParams::load(loader, &format!("{prefix}.conv"), c_out, c_in, [k, k, k]) }
    }

    /// Values in the time-padded input it builds for `t` frames of `h`x`w` (batch 1): the
    /// largest tensor a convolution makes.
    pub fn padded_input_len(&self, t: usize, h: usize, w: usize) -> usize {
        let [_, c_in, kt, _, _] = self.conv.weight.dims();
        c_in * (t + kt - 1) * h * w
    }

    /// `x` `[b, c, t, h, w]` -> `[b, c_out, t, h, w]`; updates this conv's slot in `cache`.
    pub fn forward(&self, x: Tensor<5>, cache: &mut ConvCache) -> Tensor<5> {
        let [kt, kh, kw] = self.conv.kernel();
        let padding = [0, (kh - 1) / 2, (kw - 1) / 2];
        if kt == 1 {
            // No look-back: nothing to pad or carry.
            return self.conv.forward(x, padding);
        }
        let slot = cache.slot();
        let front = match slot.take() {
            Some(previous) => previous, // [b, c, kt-1, h, w] from the previous batch
            None => {
                let first = x.clone().narrow(2, 0, 1);
                Tensor::cat(vec![first; kt - 1], 2)
            }
        };
        let padded = Tensor::cat(vec![front, x], 2); // [b, c, kt-1+t, h, w]
        let t_padded = padded.dims()[2];
        *slot = Some(compact(padded.clone().narrow(2, t_padded - (kt - 1), kt - 1)));
        self.conv.forward(padded, padding)
    }
}

/// A copy of `t` in its own buffer: a narrowed view would keep the whole source tensor alive
/// while it waits in the cache. (`x·1` is exact; a view is never updated in place.)
pub fn compact<const D: usize>(t: Tensor<D>) -> Tensor<D> {
    t.mul_scalar(1.0)
}
