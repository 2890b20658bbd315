//! `nn.GroupNorm` over `[b, c, t, h, w]`: statistics per (batch, group) over the group's channels
//! and all of time, height and width together — so they depend on which frames are in the batch.

use burn::tensor::Tensor;

use super::weights::WeightSource;

#[derive(Debug, Clone)]
pub struct GroupNorm3d {
    pub weight: Tensor<1>,
    pub bias: Tensor<1>,
    pub groups: usize,
    pub eps: f64,
}

impl GroupNorm3d {
    pub fn load(loader: &mut impl WeightSource, prefix: &str, channels: usize, groups: usize, eps: f64) -> Self {
        GroupNorm3d {
            weight: loader.tensor(&format!("{prefix}.weight"), [channels]),
            bias: loader.tensor(&format!("{prefix}.bias"), [channels]),
            groups,
            eps,
        }
    }

    /// `(x - mean) / sqrt(var + eps) · γ + β`, biased variance, per group.
    pub fn forward(&self, x: Tensor<5>) -> Tensor<5> {
        let [b, c, t, h, w] = x.dims();
        let g = self.groups;
        let grouped = x.reshape([b, g, (c / g) * t * h * w]); // [b, groups, elements]
        let mean = grouped.clone().mean_dim(2); // [b, groups, 1]
        let centred = grouped.sub(mean);
        let var = centred.clone().square().mean_dim(2); // [b, groups, 1]
        let normed = centred.mul(var.add_scalar(self.eps).sqrt().recip());
        let normed = normed.reshape([b, c, t, h, w]);
        let gamma = self.weight.clone().reshape([1, c, 1, 1, 1]);
        let beta = self.bias.clone().reshape([1, c, 1, 1, 1]);
        normed.mul(gamma).add(beta)
    }
}
