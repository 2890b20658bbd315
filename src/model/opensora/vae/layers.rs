//! The small pieces both halves of the VAE use: 2-D convolution, GroupNorm (PyTorch's numerics:
//! biased variance over each group, in f32), SiLU, and a loader shorthand for prefixed keys.

use burn::module::{Module, Param};
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{DType, Tensor};

use crate::model::load::TensorLoader;

/// `prefix.name`, or `name` when the prefix is empty.
pub fn key(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

/// `nn.Conv2d` with zero padding `padding` on every side.
#[derive(Module, Debug)]
pub struct Conv2d {
    /// `[out, in, k, k]`
    pub weight: Param<Tensor<4>>,
    /// `[out]`
    pub bias: Option<Param<Tensor<1>>>,
    #[module(skip)]
    pub stride: usize,
    #[module(skip)]
    pub padding: usize,
}

impl Conv2d {
    /// `prefix.weight` `[c_out, c_in, k, k]` and `prefix.bias` `[c_out]`.
    pub fn load(ld: &mut TensorLoader, prefix: &str, c_out: usize, c_in: usize, k: usize, stride: usize) -> Self {
        Conv2d {
            weight: Param::from_tensor(ld.tensor(&key(prefix, "weight"), [c_out, c_in, k, k])),
            bias: Some(Param::from_tensor(ld.tensor(&key(prefix, "bias"), [c_out]))),
            stride,
            padding: k / 2,
        }
    }

    /// The same convolution without padding (the caller pads).
    pub fn unpadded(self) -> Self {
        Conv2d { padding: 0, ..self }
    }

    /// `[batch, c_in, h, w]` → `[batch, c_out, h', w']`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let options = ConvOptions::new([self.stride; 2], [self.padding; 2], [1, 1], 1);
        conv2d(x, self.weight.val(), self.bias.as_ref().map(Param::val), options)
    }
}

/// `nn.GroupNorm(num_groups, channels, eps)` with affine weight and bias.
#[derive(Module, Debug)]
pub struct GroupNorm {
    /// `[channels]`
    pub weight: Param<Tensor<1>>,
    /// `[channels]`
    pub bias: Param<Tensor<1>>,
    #[module(skip)]
    pub num_groups: usize,
    #[module(skip)]
    pub eps: f64,
}

impl GroupNorm {
    pub fn load(ld: &mut TensorLoader, prefix: &str, channels: usize, num_groups: usize, eps: f64) -> Self {
        GroupNorm {
            weight: Param::from_tensor(ld.tensor(&key(prefix, "weight"), [channels])),
            bias: Param::from_tensor(ld.tensor(&key(prefix, "bias"), [channels])),
            num_groups,
            eps,
        }
    }

    /// `x` `[batch, channels, ...]`: each group of `channels / num_groups` channels is normalised
    /// over its channels and all positions, then scaled and shifted per channel.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let dims = x.dims();
        let (b, c, g) = (dims[0], dims[1], self.num_groups);
        let dtype = x.dtype();
        let per_group = dims.iter().skip(1).product::<usize>() / g;
        let x = x.reshape([b, g, per_group]); // [batch, groups, channels/groups · positions]
        let x = if dtype == DType::F32 { x } else { x.cast(DType::F32) };
        let mean = x.clone().mean_dim(2); // [batch, groups, 1]
        let centred = x - mean;
        let var = centred.clone().square().mean_dim(2); // biased, as torch
        let x = centred / var.add_scalar(self.eps).sqrt();
        let x = if dtype == DType::F32 { x } else { x.cast(dtype) };
        let mut affine = [1usize; D];
        affine[1] = c;
        let x = x.reshape(dims);
        x * self.weight.val().reshape(affine) + self.bias.val().reshape(affine)
    }
}

/// `x · sigmoid(x)`.
pub fn silu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    burn::tensor::activation::silu(x)
}
