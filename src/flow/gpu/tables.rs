//! The CPU half of the GPU path: the sparse splats of every frame and their reflect-101 axis
//! weight tables, packed into the layouts the shaders read (`shaders/flow_common.wgsl`).

use bytemuck::{Pod, Zeroable};

use super::super::gaussian::axis_weights;
use super::super::Support;
use super::super::{ClipSize, SparseFlow};

/// `FrameSplats` in WGSL: one frame's splat range and its non-zero rectangle.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, Pod, Zeroable)]
pub struct FrameSplatsGpu {
    pub start: u32,
    pub count: u32,
    pub y0: u32,
    pub y1: u32,
    pub x0: u32,
    pub x1: u32,
    pub pad: [u32; 2],
}

/// `Splat` in WGSL: a displacement and where its axis weights start in the weight pool.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, Pod, Zeroable)]
pub struct SplatGpu {
    pub dx: f32,
    pub dy: f32,
    pub y0: u32,
    pub y_len: u32,
    pub x0: u32,
    pub x_len: u32,
    pub wy_at: u32,
    pub wx_at: u32,
}

/// Everything pass 1 reads, ready to upload.
pub struct SplatTables {
    /// `[T]`
    pub frames: Vec<FrameSplatsGpu>,
    /// All splats, frame by frame, in the CPU path's order (it fixes the summation order).
    pub splats: Vec<SplatGpu>,
    /// The axis weight tables back to back: f64 bytes in exact mode, f32 bytes otherwise.
    pub weights: Vec<u8>,
    /// Each frame's per-splat rectangles, as `gaussian_filter` reports them.
    pub boxes: Vec<Vec<Support>>,
}

impl SplatTables {
    pub fn build(sparse: &SparseFlow, exact: bool) -> Self {
        let size: ClipSize = sparse.size;
        let mut tables = SplatTables { frames: Vec::new(), splats: Vec::new(), weights: Vec::new(), boxes: Vec::new() };
        let mut pool_len = 0u32;
        let mut push_weights = |w: &[f64], bytes: &mut Vec<u8>| -> u32 {
            let at = pool_len;
            for &v in w {
                if exact {
                    bytes.extend_from_slice(&v.to_le_bytes());
                } else {
                    bytes.extend_from_slice(&(v as f32).to_le_bytes());
                }
            }
            pool_len += w.len() as u32;
            at
        };
        for splats in &sparse.frames {
            let start = tables.splats.len() as u32;
            let mut boxes = Vec::with_capacity(splats.len());
            for s in splats {
                let (y0, wy) = axis_weights(size.height, s.y);
                let (x0, wx) = axis_weights(size.width, s.x);
                let wy_at = push_weights(&wy, &mut tables.weights);
                let wx_at = push_weights(&wx, &mut tables.weights);
                let rect = Support { y0, y1: y0 + wy.len(), x0, x1: x0 + wx.len() };
                boxes.push(rect);
                tables.splats.push(SplatGpu {
                    dx: s.dx,
                    dy: s.dy,
                    y0: y0 as u32,
                    y_len: wy.len() as u32,
                    x0: x0 as u32,
                    x_len: wx.len() as u32,
                    wy_at,
                    wx_at,
                });
            }
            let support = Support::bounding(&boxes);
            tables.frames.push(FrameSplatsGpu {
                start,
                count: splats.len() as u32,
                y0: support.y0 as u32,
                y1: support.y1 as u32,
                x0: support.x0 as u32,
                x1: support.x1 as u32,
                pad: [0; 2],
            });
            tables.boxes.push(boxes);
        }
        tables
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::{gaussian_filter, Splat};

    #[test]
    fn support_matches_the_cpu_filter() {
        let size = ClipSize { frames: 3, height: 47, width: 61 };
        let frames = vec![
            vec![],
            vec![Splat { y: 0, x: 60, dx: 1.0, dy: 0.0 }],
            vec![Splat { y: 10, x: 3, dx: 1.0, dy: 2.0 }, Splat { y: 46, x: 30, dx: -1.0, dy: 0.0 }],
        ];
        let sparse = SparseFlow { size, frames };
        let tables = SplatTables::build(&sparse, true);
        let cpu = gaussian_filter(&sparse);
        for (t, frame) in tables.frames.iter().enumerate() {
            let s = cpu.support(t);
            assert_eq!(
                [frame.y0, frame.y1, frame.x0, frame.x1],
                [s.y0, s.y1, s.x0, s.x1].map(|v| v as u32),
                "frame {t}"
            );
        }
        assert_eq!(tables.boxes, cpu.boxes);
        assert_eq!(tables.frames[2].start, 1);
        assert_eq!(tables.frames[2].count, 2);
    }
}
