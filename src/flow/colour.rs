//! torchvision's `flow_to_image`, reproduced in f32: one maximum norm for the whole clip,
//! the 55-colour Middlebury wheel, `floor(255 * c)`.

use rayon::prelude::*;

use super::atan2::{sleef_atan2f, Atan2Variant};
use super::{buffer, ClipSize, FlowField};

/// Entries per segment of the Middlebury colour wheel: RY, YG, GC, CB, BM, MR.
const SEGMENTS: [usize; 6] = [15, 6, 4, 11, 13, 6];
pub const WHEEL_LEN: usize = 55;

/// The colour wheel `[55][r, g, b]`, entries `floor(255 * i / n)` as torchvision builds it.
pub fn colour_wheel() -> [[f32; 3]; WHEEL_LEN] {
    let mut wheel = [[0.0f32; 3]; WHEEL_LEN];
    let ramp = |i: usize, n: usize| (255.0 * i as f32 / n as f32).floor();
    let mut col = 0;
    for (segment, &n) in SEGMENTS.iter().enumerate() {
        for i in 0..n {
            let (up, down) = (ramp(i, n), 255.0 - ramp(i, n));
            wheel[col + i] = match segment {
                0 => [255.0, up, 0.0],   // red -> yellow
                1 => [down, 255.0, 0.0], // yellow -> green
                2 => [0.0, 255.0, up],   // green -> cyan
                3 => [0.0, down, 255.0], // cyan -> blue
                4 => [up, 0.0, 255.0],   // blue -> magenta
                _ => [255.0, 0.0, down], // magenta -> red
            };
        }
        col += n;
    }
    wheel
}

/// Flow colours `[T, 3, H, W]`.
#[derive(Debug, Clone)]
pub struct FlowRgb {
    pub size: ClipSize,
    pub data: Vec<u8>,
    /// The clip's maximum flow norm the colours were normalised by.
    pub max_norm: f32,
}

impl FlowRgb {
    pub fn at(&self, t: usize, c: usize, y: usize, x: usize) -> u8 {
        self.data[((t * 3 + c) * self.size.height + y) * self.size.width + x]
    }

    /// One frame as interleaved RGB rows (for PNG export and display).
    pub fn frame_rgb8(&self, t: usize) -> Vec<u8> {
        let n = self.size.pixels();
        let planes = &self.data[t * 3 * n..(t + 1) * 3 * n];
        (0..n).flat_map(|i| [planes[i], planes[n + i], planes[2 * n + i]]).collect()
    }
}

/// The wheel in [0, 1] (`wheel / 255`, the division torchvision makes per pixel, done once).
pub fn unit_wheel(wheel: &[[f32; 3]; WHEEL_LEN]) -> [[f32; 3]; WHEEL_LEN] {
    wheel.map(|c| c.map(|v| v / 255.0))
}

/// Colour of one flow vector already divided by `max_norm + eps`, exactly as torchvision's
/// `_normalized_flow_to_image` computes it in f32 (`unit` = [`unit_wheel`]), with SLEEF's
/// `atan2f` (the shared definition, see [`super::atan2`]).
#[inline]
pub fn wheel_colour(unit: &[[f32; 3]; WHEEL_LEN], u: f32, v: f32) -> [u8; 3] {
    wheel_colour_with(unit, u, v, sleef_atan2f)
}

/// [`wheel_colour`] with the given `atan2(y, x)`.
#[inline(always)]
pub fn wheel_colour_with(unit: &[[f32; 3]; WHEEL_LEN], u: f32, v: f32, atan2: impl Fn(f32, f32) -> f32) -> [u8; 3] {
    shade(unit, (u * u + v * v).sqrt(), atan2(-v, -u))
}

/// The colour of a flow vector from its normalised length and its angle `atan2(-v, -u)`.
#[inline(always)]
fn shade(unit: &[[f32; 3]; WHEEL_LEN], norm: f32, angle: f32) -> [u8; 3] {
    let a = angle / std::f32::consts::PI;
    let fk = (a + 1.0) / 2.0 * (WHEEL_LEN - 1) as f32;
    let k0 = (floor(fk) as usize).min(WHEEL_LEN - 1);
    let k1 = if k0 + 1 == WHEEL_LEN { 0 } else { k0 + 1 };
    let f = fk - k0 as f32;
    let (c0, c1) = (unit[k0], unit[k1]);
    let mut out = [0u8; 3];
    for c in 0..3 {
        let col = (1.0 - f) * c0[c] + f * c1[c];
        let col = 1.0 - norm * (1.0 - col);
        out[c] = floor(255.0 * col) as u8;
    }
    out
}

/// The colours torchvision's `flow_to_image` may have given the flow vector `(dx, dy)` of a
/// clip normalised by `denom`: one per [`Atan2Variant`] torch may have used for it, each with
/// the correctly rounded norm and with the norm one ULP either side (torch's CPU `sqrt` goes
/// through MKL's `vsSqrt` where torch is built with MKL, which is not correctly rounded: it
/// differs from IEEE's on 14% of inputs, by an ULP). Zero flow is white.
pub fn reference_colours(unit: &[[f32; 3]; WHEEL_LEN], denom: f32, dx: f32, dy: f32) -> [[u8; 3]; 9] {
    if dx == 0.0 && dy == 0.0 {
        return [[255; 3]; 9];
    }
    let (u, v) = (dx / denom, dy / denom);
    let norm = (u * u + v * v).sqrt();
    let norms = [norm, f32::from_bits(norm.to_bits().saturating_sub(1)), f32::from_bits(norm.to_bits() + 1)];
    let angles = Atan2Variant::ALL.map(|variant| variant.eval(-v, -u));
    std::array::from_fn(|i| shade(unit, norms[i % 3], angles[i / 3]))
}

/// [`wheel_colour`] of `flow / denom` for a run of pixels, into the three colour planes.
///
/// The same operations in the same order, arranged in passes over small batches so that all
/// but the table lookups run several lanes at a time (SSE2/AVX2 division, square root, min/max,
/// truncation and FMA are IEEE-exact, like the scalar ones). On x86-64 CPUs with AVX2 and FMA
/// (checked at run time) the batches are compiled for them, so SLEEF's fused multiply-adds are
/// single instructions; elsewhere they are libm `fmaf` calls (same bits, slower). Zero flow
/// needs no special case: its norm is 0, which gives white.
pub fn colour_run(
    unit: &[[f32; 3]; WHEEL_LEN],
    denom: f32,
    flow: &[[f32; 2]],
    r: &mut [u8],
    g: &mut [u8],
    b: &mut [u8],
) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has the features the function is compiled for (just checked).
        return unsafe { colour_run_avx2_fma(unit, denom, flow, r, g, b) };
    }
    colour_run_batched(unit, denom, flow, r, g, b)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn colour_run_avx2_fma(
    unit: &[[f32; 3]; WHEEL_LEN],
    denom: f32,
    flow: &[[f32; 2]],
    r: &mut [u8],
    g: &mut [u8],
    b: &mut [u8],
) {
    colour_run_batched(unit, denom, flow, r, g, b)
}

#[inline(always)]
fn colour_run_batched(
    unit: &[[f32; 3]; WHEEL_LEN],
    denom: f32,
    flow: &[[f32; 2]],
    r: &mut [u8],
    g: &mut [u8],
    b: &mut [u8],
) {
    const BATCH: usize = 64;
    let (mut u, mut v, mut norm) = ([0.0f32; BATCH], [0.0f32; BATCH], [0.0f32; BATCH]);
    let mut k0 = [0usize; BATCH];
    let mut ends = [[0.0f32; BATCH]; 6]; // c0 then c1 per channel
    let mut start = 0;
    for values in flow.chunks(BATCH) {
        let n = values.len();
        for (i, &[dx, dy]) in values.iter().enumerate() {
            u[i] = dx / denom;
            v[i] = dy / denom;
        }
        for i in 0..n {
            norm[i] = (u[i] * u[i] + v[i] * v[i]).sqrt();
        }
        for i in 0..n {
            u[i] = sleef_atan2f(-v[i], -u[i]) / std::f32::consts::PI; // u := a
        }
        for i in 0..n {
            let fk = (u[i] + 1.0) / 2.0 * (WHEEL_LEN - 1) as f32;
            let k = floor(fk).clamp(0.0, (WHEEL_LEN - 1) as f32);
            k0[i] = k as usize;
            v[i] = fk - k; // v := f
        }
        for i in 0..n {
            let (c0, c1) = (unit[k0[i]], unit[if k0[i] + 1 == WHEEL_LEN { 0 } else { k0[i] + 1 }]);
            for c in 0..3 {
                ends[c][i] = c0[c];
                ends[3 + c][i] = c1[c];
            }
        }
        for (c, plane) in [&mut *r, &mut *g, &mut *b].into_iter().enumerate() {
            let (c0, c1) = (&ends[c], &ends[3 + c]);
            for (i, out) in plane[start..start + n].iter_mut().enumerate() {
                let col = (1.0 - v[i]) * c0[i] + v[i] * c1[i];
                let col = 1.0 - norm[i] * (1.0 - col);
                *out = level(255.0 * col);
            }
        }
        start += n;
    }
}

/// `floor(x) as u8` (saturating, NaN -> 0) in operations that vectorise.
#[inline(always)]
fn level(x: f32) -> u8 {
    floor(x).clamp(0.0, 255.0) as i32 as u8
}

/// `f32::floor` without the library call the baseline x86-64 target makes of it (no SSE4.1);
/// exact for |x| < 2^31, which covers the wheel index and colour levels.
#[inline(always)]
fn floor(x: f32) -> f32 {
    let t = x as i32 as f32;
    if t > x {
        t - 1.0
    } else {
        t
    }
}

/// `flow_to_image` over the whole clip. Pixels outside each frame's kernel boxes have exactly
/// zero flow, which always maps to white (norm 0), so only the stored spans are evaluated.
pub fn flow_to_rgb(flow: &FlowField) -> FlowRgb {
    let size = flow.size;
    let max_norm = flow.max_norm();
    let denom = max_norm + f32::EPSILON;
    let unit = unit_wheel(&colour_wheel());
    let (n, w) = (size.pixels(), size.width);
    // Zeroed pages come free from the allocator; each worker whitens its own frames, so the page
    // faults of this 50 MB buffer are spread over the threads instead of one memset.
    let mut data: Vec<u8> = buffer::zeroed(size.frames * 3 * n);
    if n > 0 {
        data.par_chunks_mut(3 * n).zip(&flow.frames).for_each(|(planes, frame)| {
            planes.fill(255);
            let (r, rest) = planes.split_at_mut(n);
            let (g, b) = rest.split_at_mut(n);
            for span in &frame.spans {
                let at = span.y * w + span.x0..span.y * w + span.x1;
                colour_run(&unit, denom, frame.span_values(span), &mut r[at.clone()], &mut g[at.clone()], &mut b[at]);
            }
        });
    }
    FlowRgb { size, data, max_norm }
}

/// The model input from flow colours: `f32(rgb) / (255/2) - 1` (true division, as the reference).
pub fn video_flow_from_rgb(rgb: &[u8]) -> Vec<f32> {
    // 256 possible inputs: look them up instead of dividing 50M times.
    let lut: [f32; 256] = std::array::from_fn(|c| c as f32 / 127.5f32 - 1.0);
    let mut out: Vec<f32> = buffer::zeroed(rgb.len());
    out.par_chunks_mut(1 << 16).zip(rgb.par_chunks(1 << 16)).for_each(|(o, i)| {
        for (o, &c) in o.iter_mut().zip(i) {
            *o = lut[c as usize];
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wheel_matches_middlebury_landmarks() {
        let w = colour_wheel();
        assert_eq!(w[0], [255.0, 0.0, 0.0]);
        assert_eq!(w[15], [255.0, 255.0, 0.0]);
        assert_eq!(w[21], [0.0, 255.0, 0.0]);
        assert_eq!(w[25], [0.0, 255.0, 255.0]);
        assert_eq!(w[36], [0.0, 0.0, 255.0]);
        assert_eq!(w[49], [255.0, 0.0, 255.0]);
        assert_eq!(w[54], [255.0, 0.0, 43.0]); // 255 - floor(255*5/6)
    }

    #[test]
    fn rightward_flow_is_red_and_zero_flow_is_white() {
        let w = colour_wheel();
        // u=1, v=+0: atan2(-0, -1) = -pi -> a = -1 -> wheel entry 0 (red), the reference's side of the cut.
        let w = unit_wheel(&w);
        assert_eq!(wheel_colour(&w, 1.0, 0.0), [255, 0, 0]);
        assert_eq!(wheel_colour(&w, 0.0, 0.0), [255, 255, 255]);
        assert_eq!(video_flow_from_rgb(&[0, 255]), vec![-1.0, 1.0]);
    }

    #[test]
    fn batched_colours_equal_the_per_pixel_definition() {
        let unit = unit_wheel(&colour_wheel());
        // A spread of directions and lengths, exact zeros, axis-aligned vectors and signed zeros.
        let mut flow: Vec<[f32; 2]> = (0..1000)
            .map(|i| {
                let t = i as f32 * 0.37;
                let len = (i % 17) as f32 / 16.0 * 3.0;
                [len * t.cos(), len * t.sin()]
            })
            .collect();
        flow.extend([[0.0, 0.0], [-0.0, 0.0], [2.5, 0.0], [-2.5, 0.0], [0.0, 3.0], [0.0, -3.0], [-0.0, -1.0]]);
        let denom = 3.0 + f32::EPSILON;
        let (mut r, mut g, mut b) = (vec![0u8; flow.len()], vec![0u8; flow.len()], vec![0u8; flow.len()]);
        colour_run(&unit, denom, &flow, &mut r, &mut g, &mut b);
        for (i, &[dx, dy]) in flow.iter().enumerate() {
            let expected = if dx == 0.0 && dy == 0.0 { [255; 3] } else { wheel_colour(&unit, dx / denom, dy / denom) };
            assert_eq!([r[i], g[i], b[i]], expected, "pixel {i}: flow ({dx}, {dy})");
        }
    }
}
