//! PyTorch `F.interpolate(mode="nearest")` as index selection: output index `i` reads input
//! `min(floor(i · (in / out)), in - 1)` with the scale in f32, as torch computes it.

use burn::tensor::{Int, Tensor, TensorData};

/// Source indices of torch's nearest resize from `n_in` to `n_out` elements.
pub fn nearest_indices(n_in: usize, n_out: usize) -> Vec<i64> {
    let scale = n_in as f32 / n_out as f32;
    (0..n_out).map(|i| ((i as f32 * scale).floor() as usize).min(n_in - 1) as i64).collect()
}

/// Nearest resize of axis `dim` to `n_out` (no-op when the size already matches).
pub fn resize_axis<const D: usize>(x: Tensor<D>, dim: usize, n_out: usize) -> Tensor<D> {
    let n_in = x.dims()[dim];
    if n_in == n_out {
        return x;
    }
    let idx = nearest_indices(n_in, n_out);
    let device = x.device();
    let idx = Tensor::<1, Int>::from_data(TensorData::new(idx, [n_out]), &device);
    x.select(dim, idx)
}

/// Nearest resize of `[b, c, t, h, w]` to `(t, h, w)` (`F.interpolate(x, size=...)`).
pub fn resize_thw(x: Tensor<5>, size: [usize; 3]) -> Tensor<5> {
    let x = resize_axis(x, 2, size[0]);
    let x = resize_axis(x, 3, size[1]);
    resize_axis(x, 4, size[2])
}
