// The studio's live motion-field overlay: draws one frame of the flow colours (packed RGBA8,
// `[T, H, W]`, as `flow::gpu::GpuMotionField::rgba` holds them) over the canvas rectangle,
// blended with what is under it by `blend` (premultiplied alpha).

struct Params {
    // The output frame's rectangle on the render target, in physical pixels.
    rect_origin: vec2<f32>,
    rect_size: vec2<f32>,
    // Flow field width, height.
    field_size: vec2<u32>,
    frame: u32,
    // 1 when the render target is an sRGB format (colours must be linearised first).
    target_srgb: u32,
    blend: f32,
    _pad0: f32,
    _pad1: f32,
    _pad2: f32,
};

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> colours: array<u32>;

// One triangle that covers the whole viewport; the fragment stage cuts it to the frame.
@vertex
fn vs_main(@builtin(vertex_index) index: u32) -> @builtin(position) vec4<f32> {
    let corner = vec2<f32>(f32((index << 1u) & 2u), f32(index & 2u));
    return vec4<f32>(corner * 2.0 - 1.0, 0.0, 1.0);
}

fn srgb_to_linear(c: vec3<f32>) -> vec3<f32> {
    let low = c / 12.92;
    let high = pow((c + 0.055) / 1.055, vec3<f32>(2.4));
    return select(high, low, c <= vec3<f32>(0.04045));
}

@fragment
fn fs_main(@builtin(position) position: vec4<f32>) -> @location(0) vec4<f32> {
    let uv = (position.xy - params.rect_origin) / params.rect_size;
    if (any(uv < vec2<f32>(0.0)) || any(uv >= vec2<f32>(1.0))) {
        discard;
    }
    let size = params.field_size;
    let pixel = min(vec2<u32>(uv * vec2<f32>(size)), size - vec2<u32>(1u));
    let index = (params.frame * size.y + pixel.y) * size.x + pixel.x;
    var rgb = unpack4x8unorm(colours[index]).rgb;
    if (params.target_srgb != 0u) {
        rgb = srgb_to_linear(rgb);
    }
    return vec4<f32>(rgb * params.blend, params.blend);
}
