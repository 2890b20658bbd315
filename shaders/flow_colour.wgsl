// torchvision's `flow_to_image` for every pixel, packed as RGBA8, with the CPU path's operation
// sequence (src/flow/colour.rs), SLEEF's atan2 included (ported below from src/flow/atan2.rs).
//
// WGSL rounds +, - and * correctly but not / or sqrt, and a device may fuse a*b+c, so a value
// here can differ from the CPU's by a few ULPs. A level floor(255*c) is therefore only taken as
// the CPU's where 255*c lies well away from an integer (and the wheel position fk away from an
// entry boundary), or where the CPU's value is exact by construction (white, or a channel both
// wheel entries hold at 255). Every other pixel gets alpha UNSURE_ALPHA, and the host recomputes
// it with the CPU formula when it reads the colours back, so read-back colours are the CPU's bit
// for bit on every device.

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> flow: array<vec2<f32>>; // [Tc, H, W] (dx, dy) of this chunk
@group(0) @binding(2) var<storage, read> denom_bits: u32; // f32 bits of the clip's max norm + eps (host)
@group(0) @binding(3) var<storage, read> wheel: array<vec4<f32>, 55>; // Middlebury wheel / 255 (f32), rgb
@group(0) @binding(4) var<storage, read_write> rgba: array<u32>; // [Tc, H, W] packed RGBA8 from rgba_base

const WHEEL_LEN: u32 = 55u;
const PI_F32: f32 = 3.14159265358979323846;
const WHITE: u32 = 0xffffffffu;
// Alpha of a pixel whose colour may be a level off the CPU's (the host recomputes it).
const UNSURE_ALPHA: u32 = 254u;
// How far this shader's values may be from the CPU's, with a safety factor of about 10 over
// what a few ULPs of error in each operation (division, sqrt, SLEEF's atan2, a fused or unfused
// multiply-add) add up to: fk within 1.6e-5 (INDEX_MARGIN), so col within 3e-6; then
// x = norm * (1 - col) within X_PER_NORM * norm + X_RELATIVE * x, and 255 * c within 255 times
// that plus LEVEL_ROUNDING for the roundings of c and of 255 * c.
const INDEX_MARGIN: f32 = 1e-3;
const X_PER_NORM: f32 = 3e-5;
const X_RELATIVE: f32 = 4e-6;
const LEVEL_ROUNDING: f32 = 1e-4;
// The CPU's c = 1 - x rounds to exactly 1 (level 255) iff its x <= 2^-25, and otherwise
// 255 * c is at most 255 * (1 - 2^-24) rounded, LAST_BELOW_255.
const C_ONE_LIMIT: f32 = 2.98023223876953125e-8;
const LAST_BELOW_255: f32 = 254.99998474121094;
// Below 2^-28 (the CPU's norm then is below 2^-26), every channel is 255 on the CPU.
const TINY_NORM: f32 = 3.7252902984809875e-9;

// SLEEF's atan2f u10 (`xatan2f_u1` with `atan2kf_u1`, FMA build), operation for operation as
// src/flow/atan2.rs: the shared definition of atan2 for the flow colours (here within a few
// ULPs of it, see above). A double-float `vec2(hi, lo)` is SLEEF's `vfloat2`.

fn df_div(n: vec2<f32>, d: vec2<f32>) -> vec2<f32> {
    let t = (1.0 / d.x);
    let x = (n.x * t);
    let u = fma(t, n.x, -x);
    let y = fma(-d.y, t, fma(-d.x, t, 1.0));
    return vec2(x, fma(x, y, fma(n.y, t, u)));
}

fn df_squ(a: vec2<f32>) -> vec2<f32> {
    let x = (a.x * a.x);
    return vec2(x, fma((a.x + a.x), a.y, fma(a.x, a.x, -x)));
}

fn df_normalize(t: vec2<f32>) -> vec2<f32> {
    let x = (t.x + t.y);
    return vec2(x, ((t.x - x) + t.y));
}

fn df_add_ff(a: f32, b: f32) -> vec2<f32> {
    let x = (a + b);
    return vec2(x, ((a - x) + b));
}

fn df_add_f_df(a: f32, b: vec2<f32>) -> vec2<f32> {
    let x = (a + b.x);
    return vec2(x, (((a - x) + b.x) + b.y));
}

fn df_add_df_df(a: vec2<f32>, b: vec2<f32>) -> vec2<f32> {
    let x = (a.x + b.x);
    return vec2(x, ((((a.x - x) + b.x) + a.y) + b.y));
}

fn df_mul(a: vec2<f32>, b: vec2<f32>) -> vec2<f32> {
    let x = (a.x * b.x);
    return vec2(x, fma(a.x, b.y, fma(a.y, b.x, fma(a.x, b.x, -x))));
}

fn df_mul_f(a: vec2<f32>, b: f32) -> vec2<f32> {
    let x = (a.x * b);
    return vec2(x, fma(a.y, b, fma(a.x, b, -x)));
}

// A sign flip by bits: `-x` may be compiled as `0 - x`, which loses the sign of zero.
fn negate(x: f32) -> f32 {
    return bitcast<f32>(bitcast<u32>(x) ^ 0x80000000u);
}

// `x` with its sign flipped where `s` is negative.
fn mulsign(x: f32, s: f32) -> f32 {
    return bitcast<f32>(bitcast<u32>(x) ^ (bitcast<u32>(s) & 0x80000000u));
}

fn is_negative(x: f32) -> bool {
    return (bitcast<u32>(x) >> 31u) != 0u;
}

// atan2kf_u1 for y >= 0.
fn atan2k(y: f32, x: f32) -> vec2<f32> {
    let negative = x < 0.0;
    var q = select(0, -2, negative);
    let xd = select(vec2(x, 0.0), vec2(negate(x), negate(0.0)), negative);
    let yd = vec2(y, 0.0);
    let swap = xd.x < yd.x;
    if swap {
        q += 1;
    }
    var s = select(yd, vec2(negate(xd.x), negate(xd.y)), swap);
    var t = select(xd, yd, swap);

    s = df_div(s, t);
    t = df_normalize(df_squ(s));
    var u: f32 = -0.00176397908944636583328247;
    u = fma(u, t.x, 0.0107900900766253471374512);
    u = fma(u, t.x, -0.0309564601629972457885742);
    u = fma(u, t.x, 0.0577365085482597351074219);
    u = fma(u, t.x, -0.0838950723409652709960938);
    u = fma(u, t.x, 0.109463557600975036621094);
    u = fma(u, t.x, -0.142626821994781494140625);
    u = fma(u, t.x, 0.199983194470405578613281);

    t = df_mul(t, df_add_ff(-0.333332866430282592773438, (u * t.x)));
    t = df_mul(s, df_add_f_df(1.0, t));
    let half_pi = vec2(1.5707963705062866211, -4.3711388286737928865e-08);
    return df_add_df_df(df_mul_f(half_pi, f32(q)), t);
}

const HALF_PI_F32: f32 = 1.57079632679489661923;

// xatan2f_u1 for finite inputs (flow is finite): IEEE signed zeros, atan2(-0, x < 0) = -pi
// (the reference's side of the cut).
fn sleef_atan2(y0: f32, x0: f32) -> f32 {
    // SLEEF scales |x| below nexttoward(1/FLT_MAX, 1) up by 2^24 (inert for zero).
    let tiny = abs(x0) < bitcast<f32>(0x00200001u);
    let x = select(x0, (x0 * 16777216.0), tiny);
    let y = select(y0, (y0 * 16777216.0), tiny);
    let d = atan2k(abs(y), x);
    var r = mulsign((d.x + d.y), x);
    if x == 0.0 {
        r = HALF_PI_F32;
    }
    if y == 0.0 {
        r = select(0.0, PI_F32, is_negative(x));
    }
    return mulsign(r, y);
}

fn flow_colour(dx: f32, dy: f32, denom: f32) -> u32 {
    let u = dx / denom;
    let v = dy / denom;
    let norm = sqrt(u * u + v * v);
    if norm < TINY_NORM {
        return WHITE;
    }
    var a = sleef_atan2(negate(v), negate(u)) / PI_F32;
    // Axis-aligned flow: atan2 is exactly 0, ±pi/2 or ±pi on both sides and the CPU's division
    // by pi exact (a = 0, ±0.5, ±1); so are fk, f and col, here as there.
    let axis = dx == 0.0 || dy == 0.0;
    if dy == 0.0 {
        a = select(mulsign(1.0, a), a, a == 0.0);
    } else if dx == 0.0 {
        a = mulsign(0.5, a);
    }
    let fk = (a + 1.0) / 2.0 * f32(WHEEL_LEN - 1u);
    let k0 = min(u32(floor(fk)), WHEEL_LEN - 1u);
    let k1 = select(k0 + 1u, 0u, k0 + 1u == WHEEL_LEN);
    let f = fk - f32(k0);
    // Away from an entry boundary the CPU picked the same two entries.
    let same_entries = axis || min(f, 1.0 - f) > INDEX_MARGIN;
    let c0 = wheel[k0];
    let c1 = wheel[k1];
    var sure = true;
    var packed = 0u;
    for (var c = 0u; c < 3u; c++) {
        var level = 255u;
        // The CPU's col is exactly 1 (so is its c) for axis-aligned flow on a 255 entry, and
        // where both entries are 255 and fk >= 1 ((1 - f) + f is exact there).
        let col_is_one = (axis && (1.0 - f) * c0[c] + f * c1[c] == 1.0)
            || (same_entries && c0[c] == 1.0 && c1[c] == 1.0 && k0 >= 1u);
        if !col_is_one {
            let col = (1.0 - f) * c0[c] + f * c1[c];
            let x = norm * (1.0 - col);
            let t = 255.0 * (1.0 - x);
            let ex = X_PER_NORM * norm + X_RELATIVE * abs(x);
            let m = 255.0 * ex + LEVEL_ROUNDING;
            var lo = clamp(t - m, 0.0, 255.0);
            var hi = clamp(t + m, 0.0, 255.0);
            if hi == 255.0 {
                // Level 255 only where the CPU's c rounds to 1.
                if x + ex < C_ONE_LIMIT {
                    lo = 255.0;
                } else if x - ex > C_ONE_LIMIT {
                    hi = min(hi, LAST_BELOW_255);
                }
            }
            sure = sure && floor(lo) == floor(hi);
            level = u32(floor(hi));
        }
        packed |= level << (8u * c);
    }
    return packed | (select(UNSURE_ALPHA, 255u, sure) << 24u);
}

@compute @workgroup_size(16, 16, 1)
fn colour(@builtin(global_invocation_id) gid: vec3<u32>) {
    let x = gid.x;
    let y = gid.y;
    if x >= params.width || y >= params.height {
        return;
    }
    let i = (gid.z * params.height + y) * params.width + x;
    let d = flow[i];
    var packed = WHITE;
    // Exactly zero flow is white (norm 0); skipping it also skips atan2(-0, -0).
    if d.x != 0.0 || d.y != 0.0 {
        packed = flow_colour(d.x, d.y, bitcast<f32>(denom_bits));
    }
    rgba[params.rgba_base + i] = packed;
}
