//! Small layers with PyTorch's numerics, shared by the CogVideoX transformer and Tora's TE/MGF:
//! `nn.Linear`, `nn.LayerNorm`, `nn.GroupNorm`, `nn.BatchNorm2d` (eval), `nn.Conv2d`, `nn.Conv1d`.
//!
//! Every layer is built through a [`WeightSource`], so the same constructor serves a real
//! checkpoint ([`TensorLoader`]) and random weights for timing ([`RandomWeights`]).

use burn::module::Param;
use burn::nn::Linear;
use burn::tensor::module::{conv1d, conv2d};
use burn::tensor::ops::ConvOptions;
use burn::tensor::{DType, Distribution, Tensor};

use crate::model::device::ComputeDevice;
use crate::model::load::TensorLoader;

/// Where a model's tensors come from, by checkpoint key.
pub trait WeightSource {
    /// Tensor `key` with the expected shape.
    fn tensor<const D: usize>(&mut self, key: &str, shape: [usize; D]) -> Tensor<D>;
    /// A PyTorch `nn.Linear` weight stored `[out, in]`, delivered `[in, out]`.
    fn linear_weight(&mut self, key: &str, d_out: usize, d_in: usize) -> Tensor<2>;
    /// Key `key` exists in the source but the model does not use it (e.g. BatchNorm's
    /// `num_batches_tracked`).
    fn skip(&mut self, key: &str);
}

impl WeightSource for TensorLoader<'_> {
    fn tensor<const D: usize>(&mut self, key: &str, shape: [usize; D]) -> Tensor<D> {
        TensorLoader::tensor(self, key, shape)
    }
    fn linear_weight(&mut self, key: &str, d_out: usize, d_in: usize) -> Tensor<2> {
        TensorLoader::linear_weight(self, key, d_out, d_in)
    }
    fn skip(&mut self, key: &str) {
        self.ignore_prefix(key);
    }
}

/// Random weights (uniform in ±1/√fan_in, norms' scales near 1, variances positive) for timing
/// runs: the numbers are meaningless, the shapes and the work are those of the real model.
pub struct RandomWeights {
    device: ComputeDevice,
}

impl RandomWeights {
    pub fn new(device: &ComputeDevice) -> Self {
        RandomWeights { device: device.clone() }
    }
}

impl WeightSource for RandomWeights {
    fn tensor<const D: usize>(&mut self, key: &str, shape: [usize; D]) -> Tensor<D> {
        let opts = (self.device.device(), self.device.dtype());
        let fan_in: usize = if D > 1 { shape[1..].iter().product() } else { 1 };
        let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
        let is_scale = D == 1 && (key.ends_with("norm.weight") || key.contains("bn") || key.contains("norm_"));
        if key.ends_with("running_var") {
            Tensor::random(shape, Distribution::Uniform(0.5, 1.5), opts)
        } else if is_scale && key.ends_with(".weight") {
            Tensor::random(shape, Distribution::Uniform(0.9, 1.1), opts)
        } else {
            Tensor::random(shape, Distribution::Uniform(-bound, bound), opts)
        }
    }
    fn linear_weight(&mut self, _key: &str, d_out: usize, d_in: usize) -> Tensor<2> {
        let bound = 1.0 / (d_in.max(1) as f64).sqrt();
        Tensor::random([d_in, d_out], Distribution::Uniform(-bound, bound), (self.device.device(), self.device.dtype()))
    }
    fn skip(&mut self, _key: &str) {}
}

/// `nn.Linear` (burn's `Linear` holds the weight `[in, out]`).
pub fn linear(src: &mut impl WeightSource, key: &str, d_out: usize, d_in: usize, bias: bool) -> Linear {
    Linear {
        weight: Param::from_tensor(src.linear_weight(&format!("{key}.weight"), d_out, d_in)),
        bias: bias.then(|| Param::from_tensor(src.tensor(&format!("{key}.bias"), [d_out]))),
    }
}

/// Runs `f` in f32 and casts back (norms and softmax statistics stay in f32 under f16).
fn in_f32<const D: usize>(x: Tensor<D>, f: impl FnOnce(Tensor<D>) -> Tensor<D>) -> Tensor<D> {
    let dtype = x.dtype();
    if dtype == DType::F32 {
        f(x)
    } else {
        f(x.cast(DType::F32)).cast(dtype)
    }
}

/// `nn.LayerNorm` over the last dimension (biased variance, optional affine).
#[derive(Debug, Clone)]
pub struct LayerNorm {
    pub weight: Option<Tensor<1>>,
    pub bias: Option<Tensor<1>>,
    pub eps: f64,
}

impl LayerNorm {
    pub fn load(src: &mut impl WeightSource, key: &str, dim: usize, eps: f64, affine: bool) -> Self {
        LayerNorm {
            weight: affine.then(|| src.tensor(&format!("{key}.weight"), [dim])),
            bias: affine.then(|| src.tensor(&format!("{key}.bias"), [dim])),
            eps,
        }
    }

    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let eps = self.eps;
        let x = in_f32(x, |x| {
            let mean = x.clone().mean_dim(D - 1);
            let centred = x - mean;
            let var = centred.clone().square().mean_dim(D - 1);
            centred / var.add_scalar(eps).sqrt()
        });
        let x = match &self.weight {
            Some(w) => x * w.clone().unsqueeze::<D>(),
            None => x,
        };
        match &self.bias {
            Some(b) => x + b.clone().unsqueeze::<D>(),
            None => x,
        }
    }
}

/// `nn.GroupNorm` on `[N, C, H, W]` (statistics over each group's channels and pixels).
#[derive(Debug, Clone)]
pub struct GroupNorm {
    pub weight: Tensor<1>,
    pub bias: Tensor<1>,
    pub groups: usize,
    pub eps: f64,
}

impl GroupNorm {
    pub fn load(src: &mut impl WeightSource, key: &str, groups: usize, channels: usize, eps: f64) -> Self {
        GroupNorm {
            weight: src.tensor(&format!("{key}.weight"), [channels]),
            bias: src.tensor(&format!("{key}.bias"), [channels]),
            groups,
            eps,
        }
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [n, c, h, w] = x.dims();
        let (g, eps) = (self.groups, self.eps);
        let x = in_f32(x, |x| {
            let x = x.reshape([n, g, (c / g) * h * w]); // [N, groups, members]
            let mean = x.clone().mean_dim(2);
            let centred = x - mean;
            let var = centred.clone().square().mean_dim(2);
            (centred / var.add_scalar(eps).sqrt()).reshape([n, c, h, w])
        });
        x * self.weight.clone().reshape([1, c, 1, 1]) + self.bias.clone().reshape([1, c, 1, 1])
    }
}

/// `nn.BatchNorm2d` in eval mode: `(x - running_mean) / √(running_var + eps) · weight + bias`.
#[derive(Debug, Clone)]
pub struct BatchNorm2d {
    pub weight: Tensor<1>,
    pub bias: Tensor<1>,
    pub running_mean: Tensor<1>,
    pub running_var: Tensor<1>,
    pub eps: f64,
}

impl BatchNorm2d {
    pub fn load(src: &mut impl WeightSource, key: &str, channels: usize, eps: f64) -> Self {
        let bn = BatchNorm2d {
            weight: src.tensor(&format!("{key}.weight"), [channels]),
            bias: src.tensor(&format!("{key}.bias"), [channels]),
            running_mean: src.tensor(&format!("{key}.running_mean"), [channels]),
            running_var: src.tensor(&format!("{key}.running_var"), [channels]),
            eps,
        };
        // A training counter (i64); inference never reads it.
        src.skip(&format!("{key}.num_batches_tracked"));
        bn
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let c = x.dims()[1];
        let per_channel = |t: &Tensor<1>| t.clone().reshape([1, c, 1, 1]);
        let std = per_channel(&self.running_var).add_scalar(self.eps).sqrt();
        (x - per_channel(&self.running_mean)) / std * per_channel(&self.weight) + per_channel(&self.bias)
    }
}

/// `nn.Conv2d` with stride `stride`, zero padding `padding` (square kernels).
#[derive(Debug, Clone)]
pub struct Conv2d {
    /// `[out, in, k, k]`
    pub weight: Tensor<4>,
    pub bias: Option<Tensor<1>>,
    pub stride: usize,
    pub padding: usize,
}

impl Conv2d {
    #[allow(clippy::too_many_arguments)]
    pub fn load(
        src: &mut impl WeightSource,
        key: &str,
        c_in: usize,
        c_out: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        bias: bool,
    ) -> Self {
        Conv2d {
            weight: src.tensor(&format!("{key}.weight"), [c_out, c_in, kernel, kernel]),
            bias: bias.then(|| src.tensor(&format!("{key}.bias"), [c_out])),
            stride,
            padding,
        }
    }

    /// `[N, C_in, H, W]` -> `[N, C_out, H', W']`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let (s, p) = (self.stride, self.padding);
        conv2d(x, self.weight.clone(), self.bias.clone(), ConvOptions::new([s, s], [p, p], [1, 1], 1))
    }
}

/// `nn.Conv1d` (stride 1) whose padding replicates the edge samples (`padding_mode="replicate"`).
#[derive(Debug, Clone)]
pub struct ReplicateConv1d {
    /// `[out, in, k]`
    pub weight: Tensor<3>,
    pub bias: Tensor<1>,
    pub padding: usize,
}

impl ReplicateConv1d {
    pub fn load(src: &mut impl WeightSource, key: &str, c_in: usize, c_out: usize, kernel: usize) -> Self {
        ReplicateConv1d {
            weight: src.tensor(&format!("{key}.weight"), [c_out, c_in, kernel]),
            bias: src.tensor(&format!("{key}.bias"), [c_out]),
            padding: kernel / 2,
        }
    }

    /// `[N, C_in, L]` -> `[N, C_out, L]`
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let len = x.dims()[2];
        let p = self.padding;
        let x = if p == 0 {
            x
        } else {
            // [first × p, x, last × p] along the sequence
            let first = x.clone().narrow(2, 0, 1).repeat_dim(2, p);
            let last = x.clone().narrow(2, len - 1, 1).repeat_dim(2, p);
            Tensor::cat(vec![first, x, last], 2)
        };
        conv1d(x, self.weight.clone(), Some(self.bias.clone()), ConvOptions::new([1], [0], [1], 1))
    }
}
