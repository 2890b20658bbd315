// Pass 1: the Gaussian-filtered flow of every pixel and the clip's maximum flow norm.
// Each pixel sums `v * wy[y] * wx[x]` over its frame's splats, in the CPU's splat order and
// in `wide` precision (f64 in exact mode, like the CPU), then rounds once to f32.

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> frames: array<FrameSplats>; // [T]
@group(0) @binding(2) var<storage, read> splats: array<Splat>; // all frames' splats, frame by frame
@group(0) @binding(3) var<storage, read> weights: array<wide>; // axis weight tables, back to back
@group(0) @binding(4) var<storage, read_write> flow: array<vec2<f32>>; // [Tc, H, W] (dx, dy) of this chunk
@group(0) @binding(5) var<storage, read_write> max_norm_bits: atomic<u32>; // f32 bits; norms are >= 0

// Per-workgroup maximum, so only one global atomic per workgroup.
var<workgroup> group_max_bits: atomic<u32>;

@compute @workgroup_size(16, 16, 1)
fn splat(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    if lid == 0u {
        atomicStore(&group_max_bits, 0u);
    }
    workgroupBarrier();

    let x = gid.x;
    let y = gid.y;
    if x < params.width && y < params.height {
        let frame = frames[params.frame_base + gid.z];
        var acc_x: wide = 0.0;
        var acc_y: wide = 0.0;
        if y >= frame.y0 && y < frame.y1 && x >= frame.x0 && x < frame.x1 {
            for (var i = frame.start; i < frame.start + frame.count; i++) {
                let s = splats[i];
                // Unsigned wrap-around makes pixels before the range fail the length test too.
                let ry = y - s.y0;
                let rx = x - s.x0;
                if ry < s.y_len && rx < s.x_len {
                    let k = weights[s.wy_at + ry] * weights[s.wx_at + rx];
                    acc_x = acc_x + wide(s.dx) * k;
                    acc_y = acc_y + wide(s.dy) * k;
                }
            }
        }
        let dx = f32(acc_x);
        let dy = f32(acc_y);
        flow[(gid.z * params.height + y) * params.width + x] = vec2<f32>(dx, dy);
        let bits = bitcast<u32>(norm32(dx, dy));
        if bits != 0u {
            atomicMax(&group_max_bits, bits);
        }
    }

    workgroupBarrier();
    if lid == 0u {
        let bits = atomicLoad(&group_max_bits);
        if bits != 0u {
            atomicMax(&max_norm_bits, bits);
        }
    }
}
