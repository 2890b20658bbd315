//! `nn.GroupNorm` over `[b, c, t, h, w]`: statistics per (batch, group) over the group's channels
//! and all of time, height and width together — so they depend on which frames are in the batch.

use burn::tensor::Tensor;

use super::weights::WeightSource;
use crate::model::cogvideox::layers::in_f32;

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

    /// `(x - mean) / sqrt(var + eps) · γ + β`, biased variance, per group. Under f16 the
    /// statistics and the normalisation run in f32: a group holds up to ~10⁸ values (a frame
    /// batch at 480x720), far past what an f16 sum or mean keeps.
    pub fn forward(&self, x: Tensor<5>) -> Tensor<5> {
        let [b, c, t, h, w] = x.dims();
        let (g, eps) = (self.groups, self.eps);
        let grouped = x.reshape([b, g, (c / g) * t * h * w]); // [b, groups, elements]
        let normed = in_f32(grouped, |grouped| {
            let mean = grouped.clone().mean_dim(2); // [b, groups, 1]
            let centred = grouped.sub(mean);
            let var = centred.clone().square().mean_dim(2); // [b, groups, 1]
            centred.mul(var.add_scalar(eps).sqrt().recip())
        });
        let normed = normed.reshape([b, c, t, h, w]);
        let gamma = self.weight.clone().reshape([1, c, 1, 1, 1]);
        let beta = self.bias.clone().reshape([1, c, 1, 1, 1]);
        normed.mul(gamma).add(beta)
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::{DType, Device, Tensor, TensorData};

    use super::GroupNorm3d;

    /// Decoder activations reach the hundreds (and beyond): their squares overflow f16 (max
    /// 65504), so an f16 variance is `inf` and the normalised values collapse to 0. The
    /// statistics must be taken in f32 and only the result stored in f16.
    #[test]
    fn f16_input_with_large_values_normalises_like_f32() {
        let device = Device::flex();
        let (c, t, h, w) = (4, 2, 3, 5);
        let values: Vec<f32> = (0..c * t * h * w).map(|i| 300.0 * (((i * 37) % 23) as f32 - 11.0)).collect();
        let x = Tensor::<5>::from_data(TensorData::new(values, [1, c, t, h, w]), (&device, DType::F32));
        let norm = |dtype: DType| GroupNorm3d {
            weight: Tensor::<1>::ones([c], (&device, dtype)),
            bias: Tensor::<1>::zeros([c], (&device, dtype)),
            groups: 2,
            eps: 1e-6,
        };
        let reference = norm(DType::F32).forward(x.clone()).into_data().to_vec::<f32>().unwrap();
        let half = norm(DType::F16).forward(x.cast(DType::F16));
        assert_eq!(half.dtype(), DType::F16, "the result stays in the compute dtype");
        let half = half.cast(DType::F32).into_data().to_vec::<f32>().unwrap();
        let err = reference.iter().zip(&half).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        // Normalised values are O(1); f16 stores them to ~5e-4 relative.
        assert!(err < 5e-3, "max |f16 - f32| = {err} (f16 statistics overflowed?)");
    }
}
