//! diffusers `UNetMidBlock2D` of the VAE: `resnet → attention → resnet`, where the attention is
//! single-head self-attention over all `h·w` positions (head dim = channels, scale `1/√C`),
//! GroupNorm in front, and a residual connection.

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::Tensor;

use super::layers::{key, GroupNorm};
use super::resnet2d::{ResnetBlock2D, EPS_2D};
use crate::model::attention::scaled_dot_product_attention;
use crate::model::load::TensorLoader;

/// `Attention(..., _from_deprecated_attn_block=True)` as the VAE mid block builds it.
#[derive(Module, Debug)]
#[allow(non_snake_case)]
pub struct Attention {
    pub group_norm: GroupNorm,
    pub to_q: Linear,
    pub to_k: Linear,
    pub to_v: Linear,
    /// `to_out.0`
    pub to_out_0: Linear,
}

fn linear(ld: &mut TensorLoader, prefix: &str, d_out: usize, d_in: usize) -> Linear {
    Linear {
        weight: Param::from_tensor(ld.linear_weight(&key(prefix, "weight"), d_out, d_in)),
        bias: Some(Param::from_tensor(ld.tensor(&key(prefix, "bias"), [d_out]))),
    }
}

impl Attention {
    pub fn load(ld: &mut TensorLoader, prefix: &str, channels: usize, groups: usize) -> Self {
        Attention {
            group_norm: GroupNorm::load(ld, &key(prefix, "group_norm"), channels, groups, EPS_2D),
            to_q: linear(ld, &key(prefix, "to_q"), channels, channels),
            to_k: linear(ld, &key(prefix, "to_k"), channels, channels),
            to_v: linear(ld, &key(prefix, "to_v"), channels, channels),
            to_out_0: linear(ld, &key(prefix, "to_out.0"), channels, channels),
        }
    }

    /// `x + to_out(softmax(q·kᵀ/√C)·v)` with q, k, v from the group-normed positions.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, c, h, w] = x.dims();
        let tokens = self.group_norm.forward(x.clone()).reshape([b, c, h * w]).swap_dims(1, 2); // [batch, h·w, c]
        let q = self.to_q.forward(tokens.clone()).unsqueeze_dim::<4>(1); // [batch, 1, h·w, c]
        let k = self.to_k.forward(tokens.clone()).unsqueeze_dim::<4>(1);
        let v = self.to_v.forward(tokens).unsqueeze_dim::<4>(1);
        let out = scaled_dot_product_attention(q, k, v, None, 1.0 / (c as f64).sqrt()); // [batch, 1, h·w, c]
        let out = self.to_out_0.forward(out.reshape([b, h * w, c])); // [batch, h·w, c]
        let out = out.swap_dims(1, 2).reshape([b, c, h, w]);
        out + x
    }
}

#[derive(Module, Debug)]
pub struct UNetMidBlock2D {
    /// `resnets.0` before and `resnets.1` after the attention.
    pub resnets: Vec<ResnetBlock2D>,
    /// Absent when `mid_block_add_attention` is false.
    pub attentions: Vec<Attention>,
}

impl UNetMidBlock2D {
    pub fn load(ld: &mut TensorLoader, prefix: &str, channels: usize, groups: usize, attention: bool) -> Self {
        let resnets = (0..2)
            .map(|i| ResnetBlock2D::load(ld, &key(prefix, &format!("resnets.{i}")), channels, channels, groups))
            .collect();
        let attentions = if attention {
            vec![Attention::load(ld, &key(prefix, "attentions.0"), channels, groups)]
        } else {
            Vec::new()
        };
        UNetMidBlock2D { resnets, attentions }
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut x = self.resnets[0].forward(x);
        for attention in &self.attentions {
            x = attention.forward(x);
        }
        self.resnets[1].forward(x)
    }
}
