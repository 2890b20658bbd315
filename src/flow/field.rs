//! The filtered flow, stored only where it can be non-zero.
//!
//! Each frame's flow is zero outside its splats' kernel boxes (a handful of 99x99 squares in a
//! 720x480 frame), so a frame keeps the union of its boxes as row spans with their values
//! packed one after another. A dense `[T, H, W, 2]` copy (135 MB at Tora's setting) is made only
//! when asked for ([`FlowField::to_dense`], e.g. to write the `flow` tensor).

use rayon::prelude::*;

use super::ClipSize;

/// Rectangle of a frame (half-open `y0..y1`, `x0..x1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Support {
    pub y0: usize,
    pub y1: usize,
    pub x0: usize,
    pub x1: usize,
}

impl Support {
    pub fn is_empty(&self) -> bool {
        self.y1 <= self.y0 || self.x1 <= self.x0
    }

    /// The bounding rectangle of `boxes` (empty when there are none).
    pub fn bounding(boxes: &[Support]) -> Support {
        let Some(first) = boxes.first() else { return Support::default() };
        boxes.iter().fold(*first, |u, b| Support {
            y0: u.y0.min(b.y0),
            y1: u.y1.max(b.y1),
            x0: u.x0.min(b.x0),
            x1: u.x1.max(b.x1),
        })
    }
}

/// Pixels `x0..x1` of row `y`; their values start at `start` in the frame's value list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowSpan {
    pub y: usize,
    pub x0: usize,
    pub x1: usize,
    pub start: usize,
}

impl RowSpan {
    pub fn len(&self) -> usize {
        self.x1 - self.x0
    }
    pub fn is_empty(&self) -> bool {
        self.x1 <= self.x0
    }
}

/// The union of `boxes` as disjoint row spans, rows top to bottom, left to right in a row.
pub fn row_spans(boxes: &[Support]) -> Vec<RowSpan> {
    let Support { y0, y1, .. } = Support::bounding(boxes);
    let mut spans = Vec::new();
    let mut row: Vec<(usize, usize)> = Vec::with_capacity(boxes.len());
    let mut start = 0;
    for y in y0..y1 {
        row.clear();
        row.extend(boxes.iter().filter(|b| (b.y0..b.y1).contains(&y) && b.x0 < b.x1).map(|b| (b.x0, b.x1)));
        row.sort_unstable();
        let mut current: Option<(usize, usize)> = None;
        for &(x0, x1) in &row {
            match &mut current {
                Some((_, end)) if x0 <= *end => *end = (*end).max(x1),
                _ => {
                    if let Some((a, b)) = current.replace((x0, x1)) {
                        spans.push(RowSpan { y, x0: a, x1: b, start });
                        start += b - a;
                    }
                }
            }
        }
        if let Some((a, b)) = current {
            spans.push(RowSpan { y, x0: a, x1: b, start });
            start += b - a;
        }
    }
    spans
}

/// One frame's flow: `(dx, dy)` for every pixel of its spans, zero elsewhere.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FrameFlow {
    pub spans: Vec<RowSpan>,
    pub values: Vec<[f32; 2]>,
}

impl FrameFlow {
    /// The values of one span, pixel `span.x0` first.
    pub fn span_values(&self, span: &RowSpan) -> &[[f32; 2]] {
        &self.values[span.start..span.start + span.len()]
    }

    pub fn at(&self, y: usize, x: usize) -> [f32; 2] {
        // Spans are ordered by (y, x0) and disjoint: the candidate is the last one starting at or before (y, x).
        let i = self.spans.partition_point(|s| (s.y, s.x0) <= (y, x));
        match i.checked_sub(1).map(|i| &self.spans[i]) {
            Some(s) if s.y == y && x < s.x1 => self.values[s.start + x - s.x0],
            _ => [0.0, 0.0],
        }
    }
}

/// The filtered flow of a clip (`[T, H, W, 2]` in meaning), with where each frame can be non-zero.
#[derive(Debug, Clone)]
pub struct FlowField {
    pub size: ClipSize,
    pub frames: Vec<FrameFlow>,
    /// Per frame, each splat kernel's rectangle (they may overlap); zero flow outside them.
    pub boxes: Vec<Vec<Support>>,
}

impl FlowField {
    /// `(dx, dy)` at a pixel.
    pub fn at(&self, t: usize, y: usize, x: usize) -> [f32; 2] {
        self.frames[t].at(y, x)
    }

    /// Frame `t`'s bounding rectangle of all splat kernels; the flow is zero outside it.
    pub fn support(&self, t: usize) -> Support {
        Support::bounding(&self.boxes[t])
    }

    /// Largest `sqrt(dx^2 + dy^2)` over the clip, in f32 as torchvision computes it. The root is
    /// taken once, of the largest square: IEEE sqrt is monotonic, so the result is the same.
    pub fn max_norm(&self) -> f32 {
        let max_square = self
            .frames
            .par_iter()
            .map(|f| f.values.iter().fold(0.0f32, |m, [dx, dy]| m.max(dx * dx + dy * dy)))
            .reduce(|| 0.0, f32::max);
        max_square.sqrt()
    }

    /// The dense `[T, H, W, 2]` flow (the fixture and `flow` tensor layout).
    pub fn to_dense(&self) -> Vec<f32> {
        let (h, w) = (self.size.height, self.size.width);
        let mut data: Vec<f32> = super::buffer::zeroed(self.size.frames * h * w * 2);
        if h * w > 0 {
            data.par_chunks_mut(h * w * 2).zip(&self.frames).for_each(|(dense, frame)| {
                for span in &frame.spans {
                    let row = &mut dense[(span.y * w + span.x0) * 2..(span.y * w + span.x1) * 2];
                    for (d, v) in row.chunks_exact_mut(2).zip(frame.span_values(span)) {
                        d.copy_from_slice(v);
                    }
                }
            });
        }
        data
    }

    /// Keeps the parts of a dense `[T, H, W, 2]` flow inside each frame's `boxes` (the GPU readback).
    pub fn from_dense(size: ClipSize, dense: &[f32], boxes: Vec<Vec<Support>>) -> Self {
        let (h, w) = (size.height, size.width);
        let frames = boxes
            .iter()
            .enumerate()
            .map(|(t, frame_boxes)| {
                let spans = row_spans(frame_boxes);
                let mut values = Vec::with_capacity(spans.iter().map(RowSpan::len).sum());
                for s in &spans {
                    let row = &dense[((t * h + s.y) * w + s.x0) * 2..((t * h + s.y) * w + s.x1) * 2];
                    values.extend(row.chunks_exact(2).map(|v| [v[0], v[1]]));
                }
                FrameFlow { spans, values }
            })
            .collect();
        FlowField { size, frames, boxes }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_cover_the_union_of_overlapping_boxes_once() {
        let boxes = [
            Support { y0: 1, y1: 4, x0: 2, x1: 6 },
            Support { y0: 2, y1: 5, x0: 4, x1: 9 },
            Support { y0: 3, y1: 4, x0: 12, x1: 14 },
        ];
        let spans = row_spans(&boxes);
        let rows: Vec<(usize, usize, usize)> = spans.iter().map(|s| (s.y, s.x0, s.x1)).collect();
        assert_eq!(rows, vec![(1, 2, 6), (2, 2, 9), (3, 2, 9), (3, 12, 14), (4, 4, 9)]);
        let covered: usize = spans.iter().map(RowSpan::len).sum();
        assert_eq!(covered, 4 + 7 + 7 + 2 + 5);
        assert_eq!(spans.last().unwrap().start, covered - 5);
        assert!(row_spans(&[]).is_empty());
    }

    #[test]
    fn dense_round_trip_and_lookup() {
        let size = ClipSize { frames: 2, height: 6, width: 16 };
        let boxes = vec![vec![], vec![Support { y0: 1, y1: 4, x0: 2, x1: 6 }, Support { y0: 3, y1: 5, x0: 5, x1: 9 }]];
        let mut dense = vec![0.0f32; 2 * 6 * 16 * 2];
        for y in 0..6 {
            for x in 0..16 {
                let inside = boxes[1].iter().any(|b| (b.y0..b.y1).contains(&y) && (b.x0..b.x1).contains(&x));
                if inside {
                    let i = ((6 + y) * 16 + x) * 2;
                    dense[i] = (y * 16 + x) as f32;
                    dense[i + 1] = -1.0;
                }
            }
        }
        let field = FlowField::from_dense(size, &dense, boxes);
        assert_eq!(field.to_dense(), dense);
        assert_eq!(field.at(1, 3, 8), [(3 * 16 + 8) as f32, -1.0]);
        assert_eq!(field.at(1, 3, 9), [0.0, 0.0]);
        assert_eq!(field.at(1, 0, 3), [0.0, 0.0]);
        assert_eq!(field.at(0, 3, 3), [0.0, 0.0]);
        assert_eq!(field.support(1), Support { y0: 1, y1: 5, x0: 2, x1: 9 });
        assert!(field.support(0).is_empty());
        assert_eq!(field.max_norm(), ((4.0f32 * 16.0 + 8.0).powi(2) + 1.0).sqrt());
    }
}
