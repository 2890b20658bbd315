// Pass 2: torchvision's `flow_to_image` for every pixel, packed as RGBA8.
// Same f32 operation sequence as src/flow/colour.rs; atan2 is computed in `wide` precision and
// rounded once, which is correctly rounded in exact mode.

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> flow: array<vec2<f32>>; // [Tc, H, W] (dx, dy) of this chunk
@group(0) @binding(2) var<storage, read> max_norm_bits: u32; // f32 bits of the clip's max norm
@group(0) @binding(3) var<storage, read> wheel: array<vec4<f32>, 55>; // Middlebury wheel / 255 (f32), rgb
@group(0) @binding(4) var<storage, read_write> rgba: array<u32>; // [Tc, H, W] packed RGBA8 from rgba_base

const WHEEL_LEN: u32 = 55u;
const PI_F32: f32 = 3.14159265358979323846;
const EPSILON_F32: f32 = 1.1920928955078125e-7;
const PI_WIDE: wide = 3.141592653589793;
const HALF_PI_WIDE: wide = 1.5707963267948966;
const WHITE: u32 = 0xffffffffu;

// atan(t) for t in [0, 1]: atan(c) + atan((t - c) / (1 + t c)) with c = k/8 the nearest
// eighth, so the series argument stays within 1/16 and eight terms reach f64 precision.
fn atan_unit(t: wide) -> wide {
    // atan(k / 8), k = 0..8, correctly rounded f64.
    var table = array<wide, 9>(
        0.0,
        0.12435499454676144,
        0.24497866312686414,
        0.35877067027057225,
        0.4636476090008061,
        0.5585993153435624,
        0.6435011087932844,
        0.7188299996216245,
        0.7853981633974483,
    );
    let k = min(u32(floor(t * 8.0 + 0.5)), 8u);
    let c = wide(k) / 8.0;
    let z = (t - c) / (1.0 + t * c);
    let z2 = z * z;
    var p: wide = -1.0 / 15.0;
    p = p * z2 + 1.0 / 13.0;
    p = p * z2 - 1.0 / 11.0;
    p = p * z2 + 1.0 / 9.0;
    p = p * z2 - 1.0 / 7.0;
    p = p * z2 + 1.0 / 5.0;
    p = p * z2 - 1.0 / 3.0;
    p = p * z2 + 1.0;
    return table[k] + z * p;
}

// IEEE atan2(y, x) rounded to f32, given |y|, |x| and their sign bits (signed zeros matter:
// atan2(-0, x < 0) = -pi is the reference's side of the cut).
fn atan2_32(ay: f32, y_negative: bool, ax: f32, x_negative: bool) -> f32 {
    var r: wide = 0.0;
    if ay > 0.0 || ax > 0.0 {
        let swap = ay > ax;
        let t = select(wide(ay) / wide(ax), wide(ax) / wide(ay), swap);
        r = atan_unit(t);
        if swap {
            r = HALF_PI_WIDE - r;
        }
    }
    if x_negative {
        r = PI_WIDE - r;
    }
    let out = f32(r);
    return select(out, -out, y_negative);
}

fn level(c: f32) -> u32 {
    return u32(clamp(floor(mul32(255.0, c)), 0.0, 255.0));
}

fn flow_colour(dx: f32, dy: f32, denom: f32) -> u32 {
    let u = div32(dx, denom);
    let v = div32(dy, denom);
    let norm = norm32(u, v);
    // atan2(-v, -u): the signs of -v and -u are the opposites of dy's and dx's (denom > 0).
    let y_negative = (bitcast<u32>(dy) >> 31u) == 0u;
    let x_negative = (bitcast<u32>(dx) >> 31u) == 0u;
    let a = div32(atan2_32(abs(v), y_negative, abs(u), x_negative), PI_F32);
    let fk = mul32(div32(add32(a, 1.0), 2.0), f32(WHEEL_LEN - 1u));
    let k0 = min(u32(floor(fk)), WHEEL_LEN - 1u);
    let k1 = select(k0 + 1u, 0u, k0 + 1u == WHEEL_LEN);
    let f = sub32(fk, f32(k0));
    let one_minus_f = sub32(1.0, f);
    let c0 = wheel[k0];
    let c1 = wheel[k1];
    var packed = 0xff000000u;
    for (var c = 0u; c < 3u; c++) {
        let col = add32(mul32(one_minus_f, c0[c]), mul32(f, c1[c]));
        let shaded = sub32(1.0, mul32(norm, sub32(1.0, col)));
        packed |= level(shaded) << (8u * c);
    }
    return packed;
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
        let denom = add32(bitcast<f32>(max_norm_bits), EPSILON_F32);
        packed = flow_colour(d.x, d.y, denom);
    }
    rgba[params.rgba_base + i] = packed;
}
