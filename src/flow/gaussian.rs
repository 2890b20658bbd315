//! The reference's Gaussian filter, exploited for sparsity.
//!
//! `cv2.filter2D(frame, -1, K)` with `K[a,b] = exp(-((a-49)^2 + (b-49)^2) / 200)` (99x99, sigma 10,
//! centre 1) and BORDER_REFLECT_101. The kernel is separable and the input is a few splats per
//! frame, so each splat adds `v * wy[y] * wx[x]`, where `wy[y]` sums the 1-D kernel over every
//! offset whose reflected row lands on the splat's row. Computed in f64 (the exact filter the
//! fixtures' `flow_rgb_f64conv` uses), stored as f32 like the reference, only inside the kernels'
//! boxes ([`FlowField`]).

use rayon::prelude::*;

use super::field::{row_spans, FlowField, FrameFlow, RowSpan, Support};
use super::{ClipSize, SparseFlow};

/// Half-width of the 99-tap kernel.
pub const KERNEL_RADIUS: usize = 49;
const SIGMA: f64 = 10.0;

/// 1-D kernel tap at offset `d` (centre 1).
pub fn kernel_tap(d: i64) -> f64 {
    (-((d * d) as f64) / (2.0 * SIGMA * SIGMA)).exp()
}

/// Weights along an axis of length `len` for a splat at `s`:
/// `w[i] = sum of tap(d) over |d| <= 49 with reflect101(i + d) == s`.
/// Returns the first index with a weight and the weights from there on.
pub fn axis_weights(len: usize, s: usize) -> (usize, Vec<f64>) {
    let r = KERNEL_RADIUS as i64;
    if len == 1 {
        // Reflect-101 on a single pixel maps everything onto it.
        return (0, vec![(-r..=r).map(kernel_tap).sum()]);
    }
    let n = len as i64;
    let period = 2 * (n - 1);
    // Virtual positions p (unreflected) that reflect onto s: s + k*period and -s + k*period.
    let mut images: Vec<i64> = Vec::new();
    let k_max = (r + n) / period + 2;
    for k in -k_max..=k_max {
        for p in [s as i64 + k * period, -(s as i64) + k * period] {
            if p >= -r && p <= n - 1 + r && !images.contains(&p) {
                images.push(p);
            }
        }
    }
    images.sort_unstable();
    let lo = images.iter().map(|&p| (p - r).max(0)).min().unwrap_or(0);
    let hi = images.iter().map(|&p| (p + r).min(n - 1)).max().unwrap_or(0);
    let mut w = vec![0.0; (hi - lo + 1) as usize];
    for &p in &images {
        for i in (p - r).max(0)..=(p + r).min(n - 1) {
            w[(i - lo) as usize] += kernel_tap(p - i);
        }
    }
    (lo as usize, w)
}

/// Filters every frame of the sparse flow (frame 0 stays zero: it has no splats).
pub fn gaussian_filter(sparse: &SparseFlow) -> FlowField {
    let size = sparse.size;
    let (frames, boxes): (Vec<FrameFlow>, Vec<Vec<Support>>) = sparse
        .frames
        .par_iter()
        // One f64 accumulator per worker thread, reused across frames (kept all-zero between uses).
        .map_init(Vec::new, |scratch, splats| filter_frame(splats, size, scratch))
        .unzip();
    FlowField { size, frames, boxes }
}

/// `(first index, weights)` of a kernel along one axis (what [`axis_weights`] returns).
type AxisWeights = (usize, Vec<f64>);

/// Filters one frame; returns its flow and each splat's rectangle.
fn filter_frame(splats: &[super::Splat], size: ClipSize, acc: &mut Vec<f64>) -> (FrameFlow, Vec<Support>) {
    if splats.is_empty() {
        return (FrameFlow::default(), Vec::new());
    }
    let weights: Vec<(AxisWeights, AxisWeights)> =
        splats.iter().map(|s| (axis_weights(size.height, s.y), axis_weights(size.width, s.x))).collect();
    let boxes: Vec<Support> = weights
        .iter()
        .map(|((wy0, wy), (wx0, wx))| Support { y0: *wy0, y1: wy0 + wy.len(), x0: *wx0, x1: wx0 + wx.len() })
        .collect();
    // The accumulator covers the boxes' bounding rectangle.
    let Support { y0, y1, x0, x1 } = Support::bounding(&boxes);
    let bw = x1 - x0;
    // `acc` is all zeros on entry; only the kernels' boxes get touched and re-zeroed below.
    if acc.len() < (y1 - y0) * bw * 2 {
        acc.resize((y1 - y0) * bw * 2, 0.0);
    }
    for (splat, ((wy0, wy), (wx0, wx))) in splats.iter().zip(&weights) {
        let (dx, dy) = (splat.dx as f64, splat.dy as f64);
        for (j, &wyv) in wy.iter().enumerate() {
            let row = (wy0 + j - y0) * bw;
            for (i, &wxv) in wx.iter().enumerate() {
                let k = wyv * wxv;
                let a = (row + wx0 + i - x0) * 2;
                acc[a] += dx * k;
                acc[a + 1] += dy * k;
            }
        }
    }
    // Each pixel of the union once, in span order (overlapping boxes hold the summed value).
    let spans = row_spans(&boxes);
    let mut values = Vec::with_capacity(spans.iter().map(RowSpan::len).sum());
    for s in &spans {
        let row = &mut acc[((s.y - y0) * bw + s.x0 - x0) * 2..((s.y - y0) * bw + s.x1 - x0) * 2];
        values.extend(row.chunks_exact(2).map(|v| [v[0] as f32, v[1] as f32]));
        row.fill(0.0);
    }
    (FrameFlow { spans, values }, boxes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct reflect-101 correlation, for checking the image-sum shortcut.
    fn reflect101(mut p: i64, n: i64) -> i64 {
        if n == 1 {
            return 0;
        }
        loop {
            if p < 0 {
                p = -p;
            } else if p >= n {
                p = 2 * n - p - 2;
            } else {
                return p;
            }
        }
    }

    #[test]
    fn axis_weights_match_direct_reflection_including_repeated_reflection() {
        for n in [1usize, 2, 5, 40, 48, 100, 481] {
            for s in [0, n / 3, n - 1] {
                let (lo, w) = axis_weights(n, s);
                for i in 0..n {
                    let direct: f64 =
                        (-49i64..=49).filter(|d| reflect101(i as i64 + d, n as i64) == s as i64).map(kernel_tap).sum();
                    let ours = if i >= lo && i < lo + w.len() { w[i - lo] } else { 0.0 };
                    assert!((ours - direct).abs() <= 1e-12 * direct.max(1.0), "n={n} s={s} i={i}: {ours} vs {direct}");
                }
            }
        }
    }
}
