//! `nn.GroupNorm` over `[b, c, t, h, w]`: statistics per (batch, group) over the group's channels
//! and all of time, height and width together — so they depend on which frames are in the batch.
//! Under f16 the statistics are taken in f32 (the policy for every norm).

use burn::tensor::{DType, Tensor};

use super::weights::WeightSource;

/// Largest f32 slice the f16 path upcasts at once (256 MiB): far below wgpu's 2 GiB buffer
/// limit, which a whole-group f32 copy at 480x720 exceeds.
const F32_SLICE_ELEMENTS: usize = 1 << 26;

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
        let grouped = x.reshape([b, self.groups, (c / self.groups) * t * h * w]); // [b, groups, elements]
        let normed = if grouped.dtype() == DType::F32 {
            let mean = grouped.clone().mean_dim(2); // [b, groups, 1]
            let centred = grouped.sub(mean);
            let var = centred.clone().square().mean_dim(2); // [b, groups, 1]
            centred.mul(var.add_scalar(self.eps).sqrt().recip())
        } else {
            let dtype = grouped.dtype();
            let (mean, inv_std) = f32_statistics(&grouped, self.eps, F32_SLICE_ELEMENTS);
            grouped.sub(mean.cast(dtype)).mul(inv_std.cast(dtype))
        };
        let normed = normed.reshape([b, c, t, h, w]);
        let gamma = self.weight.clone().reshape([1, c, 1, 1, 1]);
        let beta = self.bias.clone().reshape([1, c, 1, 1, 1]);
        normed.mul(gamma).add(beta)
    }
}

/// Mean and `1/sqrt(var + eps)` of each group `[b, g, n]` (f16), in f32 (`[b, g, 1]` each).
/// Decoder activations reach the hundreds: their squares overflow f16 (max 65504). The two
/// passes (mean, then squared deviations) upcast one slice of at most `slice_elements` at a time.
fn f32_statistics(grouped: &Tensor<3>, eps: f64, slice_elements: usize) -> (Tensor<3>, Tensor<3>) {
    let [b, g, n] = grouped.dims();
    let slice = (slice_elements / (b * g)).clamp(1, n);
    let slices = || (0..n).step_by(slice).map(|at| grouped.clone().narrow(2, at, slice.min(n - at)).cast(DType::F32));
    let sum_over = |parts: &mut dyn Iterator<Item = Tensor<3>>| {
        parts.map(|p| p.sum_dim(2)).reduce(|a, p| a.add(p)).expect("a group has elements")
    };
    let mean = sum_over(&mut slices()).div_scalar(n as f64); // [b, g, 1]
    let var = sum_over(&mut slices().map(|p| p.sub(mean.clone()).square())).div_scalar(n as f64);
    (mean, var.add_scalar(eps).sqrt().recip())
}

#[cfg(test)]
mod tests {
    use burn::tensor::{DType, Device, Tensor, TensorData};

    use super::{f32_statistics, GroupNorm3d};

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
        let reference = norm(DType::F32).forward(x.clone()).into_data().try_to_vec::<f32>().unwrap();
        let half = norm(DType::F16).forward(x.cast(DType::F16));
        assert_eq!(half.dtype(), DType::F16, "the result stays in the compute dtype");
        let half = half.cast(DType::F32).into_data().try_to_vec::<f32>().unwrap();
        let err = reference.iter().zip(&half).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        // Normalised values are O(1); f16 stores them to ~5e-4 relative.
        assert!(err < 5e-3, "max |f16 - f32| = {err} (f16 statistics overflowed?)");
    }

    /// Statistics summed slice by slice equal the one-slice result (up to f32 summation order).
    #[test]
    fn sliced_statistics_match_whole() {
        let device = Device::flex();
        let values: Vec<f32> = (0..2 * 3 * 50).map(|i| ((i * 53) % 31) as f32 * 40.0 - 600.0).collect();
        let x = Tensor::<3>::from_data(TensorData::new(values, [2, 3, 50]), (&device, DType::F32)).cast(DType::F16);
        let host = |t: Tensor<3>| t.into_data().try_to_vec::<f32>().unwrap();
        let (mean, inv_std) = f32_statistics(&x, 1e-6, usize::MAX);
        for slice in [6, 7, 60] {
            let (m, s) = f32_statistics(&x, 1e-6, slice);
            for (a, b) in host(m).iter().zip(host(mean.clone())).chain(host(s).iter().zip(host(inv_std.clone()))) {
                assert!((a - b).abs() <= 1e-5 * b.abs(), "slice {slice}: {a} vs {b}");
            }
        }
    }
}
