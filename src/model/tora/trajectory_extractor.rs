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

/// How a TE is shaped: Tora's CogVideoX release fixes all but the input; the OpenSora variant
/// follows STDiT3's patch and reads the rest from its weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TeSizes {
    /// Flow-latent channels (CogVideoX VAE: 16; OpenSora VAE v1.2: 4).
    pub in_channels: usize,
    /// Patchify `(pt, ph, pw)`, the backbone's patch (CogVideoX 1.0: 1×2×2).
    pub patch: [usize; 3],
    /// Feature channels of every layer (128).
    pub features: usize,
    /// Residual blocks per backbone layer (2).
    pub blocks_per_layer: usize,
    /// Backbone layers fed (DiT blocks; STDiT3 temporal blocks).
    pub layers: usize,
}

impl TeSizes {
    /// Tora's CogVideoX TE (`ToraTransformer3DModel`).
    pub fn cogvideox(in_channels: usize, patch_t: usize, layers: usize) -> Self {
        TeSizes {
            in_channels,
            patch: [patch_t, TE_PATCH, TE_PATCH],
            features: TE_CHANNELS,
            blocks_per_layer: TE_BLOCKS_PER_LAYER,
            layers,
        }
    }
}

#[derive(Debug, Clone)]
pub struct TrajExtractor {
    pub conv_in: Conv2d,
    /// `layers · blocks_per_layer` blocks.
    pub body: Vec<ResnetBlock>,
    pub sizes: TeSizes,
}

impl TrajExtractor {
    /// `prefix` is e.g. `traj_extractor`; one feature map per backbone layer.
    pub fn load(src: &mut impl WeightSource, prefix: &str, sizes: TeSizes) -> Self {
        let [pt, ph, pw] = sizes.patch;
        let (c_in, f) = (sizes.in_channels * pt * ph * pw, sizes.features);
        let conv_in = Conv2d::load(src, &format!("{prefix}.conv_in"), c_in, f, 3, 1, 1, true);
        let body = (0..sizes.layers * sizes.blocks_per_layer)
            .map(|j| ResnetBlock::load(src, &format!("{prefix}.body.{j}"), f))
            .collect();
        TrajExtractor { conv_in, body, sizes }
    }

    pub fn num_layers(&self) -> usize {
        self.sizes.layers
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
        self.conv_in.forward(patchify(x, self.sizes.patch))
    }

    /// Layer `i`'s blocks on the previous layer's map (= `feature_{i-1}`, or the stem): gives
    /// `feature_i`. Lets the transformer stream the features instead of holding all of them.
    pub fn layer(&self, i: usize, x: Tensor<4>) -> Tensor<4> {
        let n = self.sizes.blocks_per_layer;
        self.body[i * n..(i + 1) * n].iter().fold(x, |x, block| block.forward(x))
    }
}

/// Zero-pads `[B, C, F, h, w]` at the end of F, h, w to multiples of the patch, then
/// `B C (F pt) (h ph) (w pw) -> (B F) (C pt ph pw) h w` (channel index `((c·pt + t)·ph + dy)·pw + dx`).
pub fn patchify(x: Tensor<5>, [pt, p_h, p_w]: [usize; 3]) -> Tensor<4> {
    let [b, c, f, h, w] = x.dims();
    let pad = |n: usize, k: usize| (k - n % k) % k;
    let (pf, ph, pw) = (pad(f, pt), pad(h, p_h), pad(w, p_w));
    let x = if pf + ph + pw > 0 {
        x.pad([(0, 0), (0, 0), (0, pf), (0, ph), (0, pw)], burn::tensor::ops::PadMode::Constant(0.0))
    } else {
        x
    };
    let (f, h, w) = ((f + pf) / pt, (h + ph) / p_h, (w + pw) / p_w);
    // [B, C, F, pt, h, ph, w, pw] -> [B, F, C, pt, ph(dy), pw(dx), h, w]
    let x: Tensor<8> = x.reshape([b, c, f, pt, h, p_h, w, p_w]);
    let x = x.permute([0, 2, 1, 3, 5, 7, 4, 6]);
    x.reshape([b * f, c * pt * p_h * p_w, h, w])
}
