// Shared by the flow shaders.

struct Params {
    width: u32,
    height: u32,
    // First clip frame of this dispatch (dispatches are split into frame chunks).
    frame_base: u32,
    // Element offset of the chunk's first pixel inside the bound `rgba` range.
    rgba_base: u32,
}
