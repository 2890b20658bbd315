// Shared by the flow shaders. The host prepends `alias wide = f64;` when the device has
// SHADER_F64 (exact mode) or `alias wide = f32;` otherwise (fast mode, within ±1 colour level).
//
// Exact mode reproduces the CPU's IEEE f32 arithmetic bit for bit: every f32 operation is done
// in f64 and rounded once to f32. For +, -, *, / and sqrt of f32 operands that double rounding
// is harmless (53 >= 2*24 + 2), and an explicit f64 -> f32 conversion cannot be fused or
// reassociated away by the driver, unlike plain f32 code.

struct Params {
    width: u32,
    height: u32,
    // First clip frame of this dispatch (dispatches are split into frame chunks).
    frame_base: u32,
    // Element offset of the chunk's first pixel inside the bound `rgba` range.
    rgba_base: u32,
}

// One frame's splat list and the rectangle outside which its flow is exactly zero.
struct FrameSplats {
    start: u32,
    count: u32,
    y0: u32,
    y1: u32,
    x0: u32,
    x1: u32,
    pad0: u32,
    pad1: u32,
}

// One splat: its displacement and where its reflect-101 axis weights sit in the weight pool.
struct Splat {
    dx: f32,
    dy: f32,
    y0: u32,
    y_len: u32,
    x0: u32,
    x_len: u32,
    wy_at: u32,
    wx_at: u32,
}

fn add32(a: f32, b: f32) -> f32 {
    return f32(wide(a) + wide(b));
}

fn sub32(a: f32, b: f32) -> f32 {
    return f32(wide(a) - wide(b));
}

fn mul32(a: f32, b: f32) -> f32 {
    return f32(wide(a) * wide(b));
}

fn div32(a: f32, b: f32) -> f32 {
    return f32(wide(a) / wide(b));
}

fn sqrt32(a: f32) -> f32 {
    return f32(sqrt(wide(a)));
}

// `sqrt(dx*dx + dy*dy)` with f32 rounding after each step, as torchvision and the CPU path do.
fn norm32(dx: f32, dy: f32) -> f32 {
    return sqrt32(add32(mul32(dx, dx), mul32(dy, dy)));
}
