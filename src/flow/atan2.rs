//! `atan2` as torch computes it inside torchvision's `flow_to_image`, defined once so that the CPU
//! and GPU colour paths give the same bits for every input.
//!
//! torch's CPU `atan2` (ATen `atan2_kernel` through `vectorized_loop`) runs SLEEF's `atan2f` u10
//! (≤ 1 ULP; the AVX2 and AVX-512 builds use FMA) over blocks of 16 or 32 elements and the
//! platform libm's scalar `atan2f` on the remainder of each thread's range, so which pixel gets
//! which depends on the machine and the thread count. The two differ by an ULP of the angle at
//! some inputs, and one ULP can move `floor(255 * c)` by a level: the reference is ambiguous
//! there. Our colour paths all use [`sleef_atan2f`] (the bulk of the reference's elements;
//! `shaders/flow_colour.wgsl` repeats it operation for operation); `verify` accepts a reference
//! colour that any [`Atan2Variant`] explains.

use std::f32::consts::{FRAC_PI_2, FRAC_PI_4, PI};

/// The `atan2f` implementations torch's CPU `atan2` may have used for a given element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Atan2Variant {
    /// SLEEF `Sleef_atan2f8_u10` / `Sleef_atan2f16_u10` (FMA), the vectorised main loop.
    SleefU10,
    /// The platform libm's scalar `atan2f` (loop tails; glibc up to 2.40 on Linux).
    Libm,
    /// The correctly rounded `atan2f` of newer libms (glibc 2.41+, CORE-MATH), taken as the
    /// f64 `atan2` rounded to f32.
    CorrectlyRounded,
}

impl Atan2Variant {
    pub const ALL: [Atan2Variant; 3] = [Atan2Variant::SleefU10, Atan2Variant::Libm, Atan2Variant::CorrectlyRounded];

    pub fn eval(self, y: f32, x: f32) -> f32 {
        match self {
            Atan2Variant::SleefU10 => sleef_atan2f(y, x),
            Atan2Variant::Libm => y.atan2(x),
            Atan2Variant::CorrectlyRounded => (y as f64).atan2(x as f64) as f32,
        }
    }
}

/// A value as an unevaluated sum `x + y` (SLEEF's `vfloat2`), `|y|` below half an ULP of `x`.
#[derive(Clone, Copy)]
struct Df {
    x: f32,
    y: f32,
}

/// `a * b + c` rounded once. Inside a function compiled with the `fma` target feature this is
/// one instruction; elsewhere a libm call (correct, slower).
#[inline(always)]
fn fma(a: f32, b: f32, c: f32) -> f32 {
    a.mul_add(b, c)
}

/// `x` with its sign flipped where `s` is negative (SLEEF's `mulsign`: a sign-bit xor).
#[inline(always)]
fn mulsign(x: f32, s: f32) -> f32 {
    f32::from_bits(x.to_bits() ^ (s.to_bits() & 0x8000_0000))
}

#[inline(always)]
fn df_div(n: Df, d: Df) -> Df {
    let t = 1.0 / d.x;
    let x = n.x * t;
    let u = fma(t, n.x, -x);
    let y = fma(-d.y, t, fma(-d.x, t, 1.0));
    Df { x, y: fma(x, y, fma(n.y, t, u)) }
}

#[inline(always)]
fn df_squ(a: Df) -> Df {
    let x = a.x * a.x;
    Df { x, y: fma(a.x + a.x, a.y, fma(a.x, a.x, -x)) }
}

#[inline(always)]
fn df_normalize(t: Df) -> Df {
    let x = t.x + t.y;
    Df { x, y: (t.x - x) + t.y }
}

#[inline(always)]
fn df_add_ff(a: f32, b: f32) -> Df {
    let x = a + b;
    Df { x, y: (a - x) + b }
}

#[inline(always)]
fn df_add_f_df(a: f32, b: Df) -> Df {
    let x = a + b.x;
    Df { x, y: ((a - x) + b.x) + b.y }
}

#[inline(always)]
fn df_add_df_df(a: Df, b: Df) -> Df {
    let x = a.x + b.x;
    Df { x, y: (((a.x - x) + b.x) + a.y) + b.y }
}

#[inline(always)]
fn df_mul(a: Df, b: Df) -> Df {
    let x = a.x * b.x;
    Df { x, y: fma(a.x, b.y, fma(a.y, b.x, fma(a.x, b.x, -x))) }
}

#[inline(always)]
fn df_mul_f(a: Df, b: f32) -> Df {
    let x = a.x * b;
    Df { x, y: fma(a.y, b, fma(a.x, b, -x)) }
}

/// SLEEF's `atan2kf_u1` for `y >= 0`: the angle as a double-float.
#[inline(always)]
#[allow(clippy::excessive_precision)]
fn atan2k(y: f32, x: f32) -> Df {
    let negative = x < 0.0;
    let mut q: i32 = if negative { -2 } else { 0 };
    // A sign-bit flip of both halves, as SLEEF's xor (the low half 0 becomes -0).
    let x = if negative { Df { x: -x, y: -0.0 } } else { Df { x, y: 0.0 } };
    let y = Df { x: y, y: 0.0 };
    let swap = x.x < y.x;
    if swap {
        q += 1;
    }
    let (s, t) = if swap { (Df { x: -x.x, y: -x.y }, y) } else { (y, x) };

    let s = df_div(s, t);
    let t = df_normalize(df_squ(s));
    let mut u = -0.001_763_979_089_446_365_833_282_47_f32;
    u = fma(u, t.x, 0.010_790_090_076_625_347_137_451_2);
    u = fma(u, t.x, -0.030_956_460_162_997_245_788_574_2);
    u = fma(u, t.x, 0.057_736_508_548_259_735_107_421_9);
    u = fma(u, t.x, -0.083_895_072_340_965_270_996_093_8);
    u = fma(u, t.x, 0.109_463_557_600_975_036_621_094);
    u = fma(u, t.x, -0.142_626_821_994_781_494_140_625);
    u = fma(u, t.x, 0.199_983_194_470_405_578_613_281);

    let t = df_mul(t, df_add_ff(-0.333_332_866_430_282_592_773_438, u * t.x));
    let t = df_mul(s, df_add_f_df(1.0, t));
    let half_pi = Df { x: 1.570_796_370_506_286_621_1, y: -4.371_138_828_673_792_886_5e-8 };
    df_add_df_df(df_mul_f(half_pi, q as f32), t)
}

/// SLEEF's `xatan2f_u1` (exported as `Sleef_atan2f*_u10`), one lane: the shared definition of
/// `atan2` for our flow colours. Signed zeros follow IEEE (`atan2(-0, -1) = -pi`).
#[inline(always)]
pub fn sleef_atan2f(y: f32, x: f32) -> f32 {
    // Tiny |x| (below 2^-124 or so) is scaled up first; SLEEF's threshold, nexttoward(1/FLT_MAX, 1).
    let (y, x) = if x.abs() < f32::from_bits(0x0020_0001) { (y * 16_777_216.0, x * 16_777_216.0) } else { (y, x) };
    let d = atan2k(y.abs(), x);
    let mut r = mulsign(d.x + d.y, x);
    if x.is_infinite() || x == 0.0 {
        r = FRAC_PI_2 - if x.is_infinite() { mulsign(FRAC_PI_2, x) } else { 0.0 };
    }
    if y.is_infinite() {
        r = FRAC_PI_2 - if x.is_infinite() { mulsign(FRAC_PI_4, x) } else { 0.0 };
    }
    if y == 0.0 {
        r = if x.is_sign_negative() { PI } else { 0.0 };
    }
    if x.is_nan() || y.is_nan() {
        f32::NAN
    } else {
        mulsign(r, y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::excessive_precision)] // SLEEF's constant as its source writes it
    fn the_scaling_threshold_is_sleefs() {
        assert_eq!(f32::from_bits(0x0020_0001), 2.938_737_278_354_183_094_7e-39_f32);
    }

    #[test]
    fn special_values_follow_ieee() {
        assert_eq!(sleef_atan2f(-0.0, -1.0), -PI);
        assert_eq!(sleef_atan2f(0.0, -1.0), PI);
        assert_eq!(sleef_atan2f(0.0, 1.0).to_bits(), 0.0f32.to_bits());
        assert_eq!(sleef_atan2f(-0.0, 1.0).to_bits(), (-0.0f32).to_bits());
        assert_eq!(sleef_atan2f(1.0, 0.0), FRAC_PI_2);
        assert_eq!(sleef_atan2f(-1.0, -0.0), -FRAC_PI_2);
        // One ULP below the nearest f32 to pi/4: SLEEF's u10 value, which torch returns too.
        assert_eq!(sleef_atan2f(1.0, 1.0), f32::from_bits(FRAC_PI_4.to_bits() - 1));
        assert_eq!(sleef_atan2f(-0.0, -0.0), -PI);
        assert!(sleef_atan2f(f32::NAN, 1.0).is_nan());
    }

    /// `(y, x, torch's vectorised atan2, torch's scalar atan2)` as f32 bits, recorded from
    /// torch 2.15 on an AVX-512 CPU (AVX2 gave the same; `ATEN_CPU_CAPABILITY=default` gave the
    /// scalar column, which is glibc 2.36's `atan2f`): inputs where the two disagree, the first
    /// eight also where SLEEF is not the correctly rounded angle. Of 4M random inputs the port
    /// matched torch's vectorised result on every one; glibc's differed on 14%.
    const TORCH: [(u32, u32, u32, u32); 16] = [
        (0xbb7fc67f, 0x3b65721e, 0xbf56f08f, 0xbf56f08e),
        (0xba33465b, 0x3a4e81de, 0xbf37054f, 0xbf370550),
        (0xbb4c5bb5, 0x3b6afd17, 0xbf373e31, 0xbf373e32),
        (0xbf215069, 0x3f253063, 0xbf46061d, 0xbf46061e),
        (0x3cf6dab1, 0x3ce0a070, 0x3f551f35, 0x3f551f34),
        (0xbdd76bc3, 0x3db55e82, 0xbf5efa49, 0xbf5efa48),
        (0x3ab0a7a7, 0x3ad3b26a, 0x3f320655, 0x3f320656),
        (0x3c3d3140, 0x3c522a93, 0x3f3ba120, 0x3f3ba121),
        (0x3dea9191, 0xbd725218, 0x40030b7b, 0x40030b7a),
        (0x379c0a72, 0x3983f24c, 0x3d971953, 0x3d971952),
        (0xb84f600c, 0x3baa1a0e, 0xbc1c0b0d, 0xbc1c0b0e),
        (0xbf648865, 0xbe490c9c, 0xbfe4c5bd, 0xbfe4c5bc),
        (0x3a092fe0, 0x397401af, 0x3f938191, 0x3f938192),
        (0xbadbbd61, 0x3d360ae0, 0xbd1a6ed7, 0xbd1a6ed6),
        (0xbb456181, 0xb9991d1e, 0xbfd56f55, 0xbfd56f54),
        (0x3bd2ec91, 0xbb22e7aa, 0x3ff83bc0, 0x3ff83bbf),
    ];

    #[test]
    fn matches_torchs_vectorised_atan2_where_libm_does_not() {
        for (y, x, vectorised, scalar) in TORCH {
            let (y, x) = (f32::from_bits(y), f32::from_bits(x));
            assert_eq!(sleef_atan2f(y, x).to_bits(), vectorised, "atan2({y:e}, {x:e})");
            assert_eq!(Atan2Variant::SleefU10.eval(y, x).to_bits(), vectorised);
            assert_ne!(scalar, vectorised);
        }
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        if TORCH.iter().all(|&(y, x, _, scalar)| f32::from_bits(y).atan2(f32::from_bits(x)).to_bits() == scalar) {
            eprintln!("this libm's atan2f is glibc's of the recording: the Libm variant gives torch's scalar column");
        }
    }

    /// SLEEF's u10 promise: within one ULP of the true angle (measured against f64 `atan2`).
    #[test]
    fn within_one_ulp_of_the_exact_angle() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..200_000 {
            let bits = next();
            // Moderate magnitudes and both signs, like flow divided by its maximum norm.
            let y = (((bits & 0xffff_ffff) as f32 / u32::MAX as f32) * 2.0 - 1.0) * 2f32.powi((bits >> 60) as i32 - 8);
            let x = ((((bits >> 32) & 0x0fff_ffff) as f32 / 0x0fff_ffff as f32) * 2.0 - 1.0)
                * 2f32.powi(-((bits >> 58 & 3) as i32));
            let ours = sleef_atan2f(y, x);
            let exact = (y as f64).atan2(x as f64);
            let ulp = f32::from_bits(ours.abs().to_bits() + 1) - ours.abs();
            assert!(((ours as f64) - exact).abs() <= ulp as f64, "atan2({y:e}, {x:e}) = {ours:e}, exact {exact:e}");
        }
    }
}
