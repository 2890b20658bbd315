//! Splitting a clip into frame chunks that respect the device's limits: storage bindings
//! (128 MiB by default, while 49x480x720 flow is 135 MB), buffer sizes and dispatch counts.

use std::ops::Range;

use super::kernels::TILE;
use crate::flow::ClipSize;

/// Bytes per pixel of the flow buffers (`vec2<f32>`) and of the colours (packed RGBA8).
const FLOW_PIXEL_BYTES: u64 = 8;
const RGBA_PIXEL_BYTES: u64 = 4;

#[derive(Debug, Clone)]
pub struct ChunkPlan {
    pub size: ClipSize,
    /// Consecutive frame ranges covering the clip.
    pub chunks: Vec<Range<usize>>,
    /// Workgroups along x and y for one frame.
    pub groups_xy: [u32; 2],
    offset_alignment: u64,
}

/// Where one chunk's colours sit inside the whole-clip RGBA buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RgbaBinding {
    /// Byte offset of the binding (a multiple of the storage offset alignment).
    pub offset: u64,
    pub size: u64,
    /// Element index of the chunk's first pixel inside the binding.
    pub base: u32,
}

impl ChunkPlan {
    pub fn new(size: ClipSize, limits: &wgpu::Limits) -> Result<Self, String> {
        let pixels = size.pixels() as u64;
        let align = u64::from(limits.min_storage_buffer_offset_alignment.max(4));
        let groups_xy = [size.width.div_ceil(TILE as usize) as u32, size.height.div_ceil(TILE as usize) as u32];
        let max_groups = limits.max_compute_workgroups_per_dimension;
        if groups_xy[0] > max_groups || groups_xy[1] > max_groups {
            return Err(format!("a {}x{} frame needs more workgroups than the device allows", size.width, size.height));
        }
        let rgba_bytes = size.frames as u64 * pixels * RGBA_PIXEL_BYTES;
        if rgba_bytes > limits.max_buffer_size {
            return Err(format!(
                "the clip's colours need {rgba_bytes} bytes, over the device's buffer limit {}",
                limits.max_buffer_size
            ));
        }
        let mut plan = ChunkPlan { size, chunks: Vec::new(), groups_xy, offset_alignment: align };
        if pixels == 0 || size.frames == 0 {
            return Ok(plan);
        }
        let binding_limit = limits.max_storage_buffer_binding_size.min(limits.max_buffer_size);
        // The RGBA binding may start up to `align - 4` bytes before the chunk.
        let by_flow = binding_limit / (pixels * FLOW_PIXEL_BYTES);
        let by_rgba = binding_limit.saturating_sub(align) / (pixels * RGBA_PIXEL_BYTES);
        let per_chunk = by_flow.min(by_rgba).min(u64::from(max_groups)) as usize;
        if per_chunk == 0 {
            return Err(format!(
                "one {}x{} frame exceeds the device's storage binding limit of {binding_limit} bytes",
                size.width, size.height
            ));
        }
        plan.chunks = (0..size.frames).step_by(per_chunk).map(|t0| t0..(t0 + per_chunk).min(size.frames)).collect();
        Ok(plan)
    }

    /// Bytes of a chunk's flow buffer, `[Tc, H, W, 2]` f32.
    pub fn flow_bytes(&self, frames: &Range<usize>) -> u64 {
        frames.len() as u64 * self.size.pixels() as u64 * FLOW_PIXEL_BYTES
    }

    /// Bytes of the whole clip's colours, `[T, H, W]` packed RGBA8.
    pub fn rgba_bytes(&self) -> u64 {
        self.size.frames as u64 * self.size.pixels() as u64 * RGBA_PIXEL_BYTES
    }

    pub fn rgba_binding(&self, frames: &Range<usize>) -> RgbaBinding {
        let pixels = self.size.pixels() as u64;
        let start = frames.start as u64 * pixels * RGBA_PIXEL_BYTES;
        let end = frames.end as u64 * pixels * RGBA_PIXEL_BYTES;
        let offset = start / self.offset_alignment * self.offset_alignment;
        RgbaBinding { offset, size: end - offset, base: ((start - offset) / RGBA_PIXEL_BYTES) as u32 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_fit_the_default_binding_limit_and_cover_the_clip() {
        let size = ClipSize { frames: 49, height: 480, width: 720 };
        let limits = wgpu::Limits::default();
        let plan = ChunkPlan::new(size, &limits).unwrap();
        assert!(plan.chunks.len() > 1);
        assert_eq!(plan.chunks.first().unwrap().start, 0);
        assert_eq!(plan.chunks.last().unwrap().end, 49);
        for pair in plan.chunks.windows(2) {
            assert_eq!(pair[0].end, pair[1].start);
        }
        for c in &plan.chunks {
            assert!(plan.flow_bytes(c) <= limits.max_storage_buffer_binding_size);
            let b = plan.rgba_binding(c);
            assert_eq!(b.offset % 256, 0);
            assert!(b.size <= limits.max_storage_buffer_binding_size);
            assert_eq!(b.offset + u64::from(b.base) * 4, c.start as u64 * 480 * 720 * 4);
        }
    }

    #[test]
    fn unaligned_frames_get_an_element_base() {
        let size = ClipSize { frames: 5, height: 47, width: 61 };
        let limits = wgpu::Limits { max_storage_buffer_binding_size: 47 * 61 * 8 * 2, ..wgpu::Limits::default() };
        let plan = ChunkPlan::new(size, &limits).unwrap();
        assert_eq!(plan.chunks, vec![0..2, 2..4, 4..5]);
        let b = plan.rgba_binding(&(2..4));
        assert_eq!(b.offset + u64::from(b.base) * 4, 2 * 47 * 61 * 4);
        assert!(u64::from(b.base) * 4 < 256);
    }
}
