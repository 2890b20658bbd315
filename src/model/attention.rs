//! The one scaled-dot-product attention every network uses:
//! `softmax(q·kᵀ·scale + bias) · v`, with the scores and softmax in f32.
//!
//! Two paths:
//! - **Fused** (GPU devices, no bias, the default `1/√d` scale: CogVideoX, STDiT3, the VAE's
//!   mid-block): one call of burn's `attention` per layer. burn's `autotune` picks its flash
//!   kernel there (f32 accumulators and softmax statistics, tensor cores where the compiler has
//!   them), which never materialises the scores. The queries are padded to a multiple of
//!   [`FUSED_QUERY_BLOCK`] so the kernel runs without its tail checks, and sliced back (padded
//!   query rows are zeros; each output row depends only on its own query, so nothing changes).
//! - **Blocked** (the CPU backend, a bias such as T5's position bias or OpenSora's caption mask,
//!   or a custom scale: burn's cubecl backends send those to their materialising fallback
//!   anyway): the queries are processed in blocks so that a block's score matrix
//!   (`batch · heads · block · k_len` f32 values) stays under [`score_budget_bytes`]: half the
//!   device's per-tensor limit on wgpu (the scores are one binding), [`CPU_SCORE_BUDGET_BYTES`]
//!   on the CPU backend; at 480×720×49 (17,776 tokens, 48 heads) a whole score matrix would be
//!   ~1.2 GB per head. In f32 each block runs through burn's `attention` op (the CPU backend
//!   tiles it flash-style), in f16 through the explicit f32-softmax path below.
//!
//! Softmax is per query row, so neither blocking nor padding the queries changes any arithmetic:
//! blocked == padded == unblocked (tested in `tests/suite/transformer.rs` and below).

use burn::tensor::activation::softmax;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{DType, Tensor};

use crate::model::device::{has_fused_attention, max_tensor_bytes_of};

/// The fused path pads the query count to a multiple of this: the flash kernels' query stage
/// (planes × tile rows) divides it on every device burn tunes for, so no tail is checked.
pub const FUSED_QUERY_BLOCK: usize = 128;

/// Largest score block (bytes of f32 scores) materialised at once on the CPU backend, which has
/// no per-tensor limit (bigger blocks gain nothing there).
pub const CPU_SCORE_BUDGET_BYTES: usize = 256 << 20;

/// The score block for a device whose largest tensor is `max_tensor_bytes` (`None`: no such
/// limit, the CPU backend): half of it, as the VAE's untiled passes keep (one f32 score block is
/// one wgpu binding; a full-limit allocation was refused on an H200). An H100/H200's 2 GiB limit
/// gives 1 GiB blocks (157 query rows per block at 49×480×720 with CFG instead of 39), lavapipe's
/// 128 MiB gives 64 MiB.
pub fn score_budget_bytes(max_tensor_bytes: Option<usize>) -> usize {
    match max_tensor_bytes {
        None => CPU_SCORE_BUDGET_BYTES,
        Some(limit) => (limit / 2).max(1),
    }
}

/// Query rows per block so that `batch · heads · rows · k_len` f32 scores fit `budget` (at least 1).
pub fn query_block(batch: usize, heads: usize, k_len: usize, budget: usize) -> usize {
    let row_bytes = (batch * heads * k_len * 4).max(1);
    (budget / row_bytes).max(1)
}

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
    let [b, h, _, dim] = q.dims();
    let device = q.device();
    if bias.is_none() && is_default_scale(scale, dim) && has_fused_attention(&device) {
        return fused_attention(q, k, v);
    }
    let k_len = k.dims()[2];
    let budget = score_budget_bytes(max_tensor_bytes_of(&device));
    scaled_dot_product_attention_blocked(q, k, v, bias, scale, query_block(b, h, k_len, budget))
}

/// Whether `scale` is the default `1/√dim` (to 1e-12): burn's fused kernels take no other.
fn is_default_scale(scale: f64, dim: usize) -> bool {
    let default = 1.0 / (dim as f64).sqrt();
    (scale - default).abs() <= 1e-12 * default
}

/// `softmax(q·kᵀ/√d)·v` in one call of burn's `attention` (its flash kernel on GPU devices), the
/// queries zero-padded to a multiple of [`FUSED_QUERY_BLOCK`] and the padding sliced off.
pub fn fused_attention(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>) -> Tensor<4> {
    let [b, h, q_len, dim] = q.dims();
    let padded_len = q_len.div_ceil(FUSED_QUERY_BLOCK) * FUSED_QUERY_BLOCK;
    let q = if padded_len == q_len {
        q
    } else {
        let pad = Tensor::<4>::zeros([b, h, padded_len - q_len, dim], (&q.device(), q.dtype()));
        Tensor::cat(vec![q, pad], 2)
    };
    let options = AttentionModuleOptions { scale: None, softcap: None, is_causal: false };
    let out = attention(q, k, v, None, None, options);
    if padded_len == q_len {
        out
    } else {
        out.narrow(2, 0, q_len)
    }
}

/// As [`scaled_dot_product_attention`] with an explicit query block size (`block` rows per step).
pub fn scaled_dot_product_attention_blocked(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    bias: Option<Tensor<4>>,
    scale: f64,
    block: usize,
) -> Tensor<4> {
    let [b, h, q_len, _] = q.dims();
    let k_len = k.dims()[2];
    let block = block.max(1);
    // The bias, expanded to its full extent and f32, so each block can take its rows.
    let bias = bias.map(|bias| {
        let bias = if bias.dtype() == DType::F32 { bias } else { bias.cast(DType::F32) };
        bias.expand([b, h, q_len, k_len])
    });
    if q_len <= block {
        return attend(q, k, v, bias, scale);
    }
    let mut outs = Vec::with_capacity(q_len.div_ceil(block));
    let mut start = 0;
    while start < q_len {
        let n = block.min(q_len - start);
        let q_blk = q.clone().narrow(2, start, n);
        let bias_blk = bias.clone().map(|bias| bias.narrow(2, start, n));
        outs.push(attend(q_blk, k.clone(), v.clone(), bias_blk, scale));
        start += n;
    }
    Tensor::cat(outs, 2)
}

/// One query block.
fn attend(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, bias: Option<Tensor<4>>, scale: f64) -> Tensor<4> {
    if q.dtype() == DType::F32 {
        // The default scale is left to the backend: cubecl backends only run their flash kernels
        // without a custom scale (with one they take the materialising fallback).
        let scale = if is_default_scale(scale, q.dims()[3]) { None } else { Some(scale) };
        let options = AttentionModuleOptions { scale, softcap: None, is_causal: false };
        attention(q, k, v, None, bias, options)
    } else {
        naive_attention(q, k, v, bias, scale)
    }
}

/// The textbook version: the whole score matrix, softmax in f32. The reference the blocked
/// version is tested against (and the f16 path).
pub fn naive_attention(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, bias: Option<Tensor<4>>, scale: f64) -> Tensor<4> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Distribution, TensorData};

    use crate::model::{ComputeDevice, Precision};
    use crate::Backend;

    fn max_diff(a: Tensor<4>, b: Tensor<4>) -> f32 {
        let a = a.into_data().try_to_vec::<f32>().expect("f32");
        let b = b.into_data().try_to_vec::<f32>().expect("f32");
        assert_eq!(a.len(), b.len());
        a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
    }

    #[test]
    fn score_blocks_follow_the_device_limit() {
        assert_eq!(score_budget_bytes(None), CPU_SCORE_BUDGET_BYTES);
        assert_eq!(score_budget_bytes(Some(128 << 20)), 64 << 20); // lavapipe
                                                                   // 49x480x720 with CFG: 226 text + 13·30·45 video tokens, 48 heads, batch 2
        let k_len = 226 + 13 * 30 * 45;
        assert_eq!(query_block(2, 48, k_len, CPU_SCORE_BUDGET_BYTES), 39);
        let h100 = score_budget_bytes(Some(i32::MAX as usize));
        assert_eq!(query_block(2, 48, k_len, h100), 157);
        assert!(2 * 48 * 157 * k_len * 4 <= i32::MAX as usize / 2);
        assert_eq!(query_block(2, 48, k_len, 1), 1);
        // the CPU device has no per-tensor limit
        let cpu = ComputeDevice::new(Backend::Cpu, Precision::F32).expect("cpu");
        assert_eq!(max_tensor_bytes_of(cpu.device()), None);
    }

    #[test]
    fn blocked_equals_naive_with_and_without_bias() {
        let dev = ComputeDevice::new(Backend::Cpu, Precision::F32).expect("cpu");
        let d = dev.device();
        let q = Tensor::<4>::random([2, 3, 37, 8], Distribution::Normal(0.0, 1.0), d);
        let k = Tensor::<4>::random([2, 3, 29, 8], Distribution::Normal(0.0, 1.0), d);
        let v = Tensor::<4>::random([2, 3, 29, 8], Distribution::Normal(0.0, 1.0), d);
        // mask the last 5 keys for batch 1, broadcast over heads and queries
        let mut mask = vec![0f32; 2 * 29];
        for x in &mut mask[29 + 24..] {
            *x = f32::NEG_INFINITY;
        }
        let bias = Tensor::<4>::from_data(TensorData::new(mask, [2, 1, 1, 29]), d);
        for bias in [None, Some(bias)] {
            let full = naive_attention(q.clone(), k.clone(), v.clone(), bias.clone(), 0.3);
            for block in [1, 4, 16, 37, 100] {
                let blk =
                    scaled_dot_product_attention_blocked(q.clone(), k.clone(), v.clone(), bias.clone(), 0.3, block);
                let e = max_diff(blk, full.clone());
                assert!(e < 1e-5, "block {block}: max |Δ| {e}");
            }
        }
    }
}
