//! The one scaled-dot-product attention every network uses:
//! `softmax(q·kᵀ·scale + bias) · v`, with the scores and softmax in f32.
//!
//! (This first version materialises the whole score matrix; the memory-bounded version keeps
//! this signature.)

use burn::tensor::activation::softmax;
use burn::tensor::{DType, Tensor};

/// `q` `[batch, heads, q_len, dim]`, `k`/`v` `[batch, heads, k_len, dim]`; `bias` (added to the
/// scores, e.g. `-inf` for masked keys) broadcastable to `[batch, heads, q_len, k_len]`.
/// Returns `[batch, heads, q_len, dim]` in `q`'s dtype.
pub fn scaled_dot_product_attention(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    bias: Option<Tensor<4>>,
    scale: f64,
) -> Tensor<4> {
    let dtype = q.dtype();
    let scores = q.matmul(k.swap_dims(2, 3)); // [batch, heads, q_len, k_len]
    let scores = if dtype == DType::F32 { scores } else { scores.cast(DType::F32) };
    let scores = scores.mul_scalar(scale);
    let scores = match bias {
        Some(bias) => {
            let dims = scores.dims();
            scores + bias.cast(DType::F32).expand(dims)
        }
        None => scores,
    };
    let weights = softmax(scores, 3);
    let weights = if dtype == DType::F32 { weights } else { weights.cast(dtype) };
    weights.matmul(v)
}
