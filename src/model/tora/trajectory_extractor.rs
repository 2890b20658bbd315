//! Tora's Trajectory Extractor (TE): the flow latent -> one motion feature map per DiT layer.
//!
//! As `tora.traj_module.TrajExtractor` is built by `ToraTransformer3DModel` (128 channels for
//! every layer, two residual blocks per layer, no down-sampling, no `in_conv`/`skep`):
//!
//! ```text
//! x [B, 16, F, h, w]  --zero-pad h, w to even-->  patchify (1×2×2) -> [(B·F), 16·4, h/2, w/2]
//! conv_in (3×3)                                      -> [(B·F), 128, h/2, w/2]
//! per layer i, blocks 2i and 2i+1:  x = x + block2(relu(bn2(block1(relu(bn1(x))))))
//! feature_i = x after layer i's two blocks
//! ```
//!
//! Keys: `traj_extractor.conv_in.*`, `traj_extractor.body.{j}.{bn1,block1,bn2,block2}.*`.

use burn::tensor::activation::relu;
use burn::tensor::Tensor;

use crate::model::cogvideox::layers::{BatchNorm2d, Conv2d, WeightSource};

/// Feature channels of every TE layer (hard-wired in `ToraTransformer3DModel`).
pub const TE_CHANNELS: usize = 128;
/// Spatial patch of the TE's patchify (hard-wired to 2).
pub const TE_PATCH: usize = 2;
/// Residual blocks per DiT layer.
pub const TE_BLOCKS_PER_LAYER: usize = 2;
/// BatchNorm2d's default eps.
const BN_EPS: f64 = 1e-5;

/// `ResnetBlock(sk=True, down=False)` with equal in/out channels: a pre-activation residual block.
#[derive(Debug, Clone)]
pub struct ResnetBlock {
    pub bn1: BatchNorm2d,
    pub block1: Conv2d,
    pub bn2: BatchNorm2d,
    pub block2: Conv2d,
}

impl ResnetBlock {
    fn load(src: &mut impl WeightSource, key: &str, channels: usize) -> Self {
        ResnetBlock {
            bn1: BatchNorm2d::load(src, &format!("{key}.bn1"), channels, BN_EPS),
            block1: Conv2d::load(src, &format!("{key}.block1"), channels, channels, 3, 1, 1, true),
            bn2: BatchNorm2d::load(src, &format!("{key}.bn2"), channels, BN_EPS),
            block2: Conv2d::load(src, &format!("{key}.block2"), channels, channels, 3, 1, 1, true),
        }
    }

    /// `[N, C, H, W]` -> same
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let h = self.block1.forward(relu(self.bn1.forward(x.clone())));
        let h = self.block2.forward(relu(self.bn2.forward(h)));
        h + x
    }
}

#[derive(Debug, Clone)]
pub struct TrajExtractor {
    pub conv_in: Conv2d,
    /// `num_layers · 2` blocks.
    pub body: Vec<ResnetBlock>,
    /// Temporal patch (1 for CogVideoX 1.0: `patch_size_t` None).
    pub patch_t: usize,
    /// Input (flow latent) channels.
    pub in_channels: usize,
}

impl TrajExtractor {
    /// `prefix` is e.g. `traj_extractor`; one feature map per DiT layer (`num_layers`).
    pub fn load(
        src: &mut impl WeightSource,
        prefix: &str,
        num_layers: usize,
        in_channels: usize,
        patch_t: usize,
    ) -> Self {
        let c_in = in_channels * patch_t * TE_PATCH * TE_PATCH;
        let conv_in = Conv2d::load(src, &format!("{prefix}.conv_in"), c_in, TE_CHANNELS, 3, 1, 1, true);
        let body = (0..num_layers * TE_BLOCKS_PER_LAYER)
            .map(|j| ResnetBlock::load(src, &format!("{prefix}.body.{j}"), TE_CHANNELS))
            .collect();
        TrajExtractor { conv_in, body, patch_t, in_channels }
    }

    pub fn num_layers(&self) -> usize {
        self.body.len() / TE_BLOCKS_PER_LAYER
    }

    /// `x` `[B, C, F, h, w]` (channels before frames) -> `num_layers` maps `[(B·F'), 128, ⌈h/2⌉, ⌈w/2⌉]`.
    pub fn forward(&self, x: Tensor<5>) -> Vec<Tensor<4>> {
        let mut x = self.stem(x);
        let mut features = Vec::with_capacity(self.num_layers());
        for i in 0..self.num_layers() {
            x = self.layer(i, x);
            features.push(x.clone());
        }
        features
    }

    /// Patchify + `conv_in`: the state before layer 0.
    pub fn stem(&self, x: Tensor<5>) -> Tensor<4> {
        self.conv_in.forward(patchify(x, self.patch_t, TE_PATCH))
    }

    /// Layer `i`'s two blocks on the previous layer's map (= `feature_{i-1}`, or the stem): gives
    /// `feature_i`. Lets the transformer stream the features instead of holding all of them.
    pub fn layer(&self, i: usize, x: Tensor<4>) -> Tensor<4> {
        let blocks = &self.body[i * TE_BLOCKS_PER_LAYER..(i + 1) * TE_BLOCKS_PER_LAYER];
        blocks.iter().fold(x, |x, block| block.forward(x))
    }
}

/// Zero-pads `[B, C, F, h, w]` at the end of F, h, w to multiples of the patch, then
/// `B C (F pt) (h p) (w p) -> (B F) (C pt p p) h w` (channel index `((c·pt + t)·p + dy)·p + dx`).
pub fn patchify(x: Tensor<5>, pt: usize, p: usize) -> Tensor<4> {
    let [b, c, f, h, w] = x.dims();
    let pad = |n: usize, k: usize| (k - n % k) % k;
    let (pf, ph, pw) = (pad(f, pt), pad(h, p), pad(w, p));
    let x = if pf + ph + pw > 0 {
        x.pad([(0, 0), (0, 0), (0, pf), (0, ph), (0, pw)], burn::tensor::ops::PadMode::Constant(0.0))
    } else {
        x
    };
    let (f, h, w) = ((f + pf) / pt, (h + ph) / p, (w + pw) / p);
    // [B, C, F, pt, h, p, w, p] -> [B, F, C, pt, p(dy), p(dx), h, w]
    let x: Tensor<8> = x.reshape([b, c, f, pt, h, p, w, p]);
    let x = x.permute([0, 2, 1, 3, 5, 7, 4, 6]);
    x.reshape([b * f, c * pt * p * p, h, w])
}
