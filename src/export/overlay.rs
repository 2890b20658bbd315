//! The trajectory overlay: each track's path so far as a polyline and its current position as a
//! dot, drawn onto RGB frames (pure Rust, on the frame buffers).

use super::RgbFrames;

/// How the overlay looks (sizes in output pixels).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OverlayStyle {
    /// Half the polyline's width.
    pub line_radius: f32,
    /// The current-position dot's radius.
    pub dot_radius: f32,
    /// Width of the dark rim around the dot (0 for none), so it reads on light and dark frames.
    pub dot_rim: f32,
    /// How much of the track colour covers the frame under the polyline (0..=1).
    pub line_opacity: f32,
}

impl Default for OverlayStyle {
    fn default() -> Self {
        OverlayStyle { line_radius: 1.0, dot_radius: 4.0, dot_rim: 1.0, line_opacity: 0.85 }
    }
}

/// One track: a pixel position `[x, y]` per frame (x = column, y = row) and its colour.
#[derive(Debug, Clone, PartialEq)]
pub struct OverlayTrack {
    pub points: Vec<[i32; 2]>,
    pub colour: [u8; 3],
}

/// A copy of `clip` with every track drawn on: on frame f, the polyline through the track's
/// points 0..=f and a dot at point f (a track with fewer points keeps its last one).
pub fn draw_overlay(clip: &RgbFrames, tracks: &[OverlayTrack], style: &OverlayStyle) -> RgbFrames {
    let mut out = clip.clone();
    let mut coverage = Coverage::new(clip.width as i64, clip.height as i64);
    for (f, frame) in out.frames.iter_mut().enumerate() {
        let mut canvas = Canvas { pixels: frame, width: clip.width as i64, height: clip.height as i64 };
        for track in tracks.iter().filter(|t| !t.points.is_empty()) {
            let upto = f.min(track.points.len() - 1);
            // The whole polyline is rasterised first and blended once, so joints are not darker.
            for segment in track.points[..=upto].windows(2) {
                coverage.segment(segment[0], segment[1], style.line_radius);
            }
            coverage.blend_into(&mut canvas, track.colour, style.line_opacity);
            let p = track.points[upto];
            if style.dot_rim > 0.0 {
                canvas.disc(p, style.dot_radius + style.dot_rim, [0, 0, 0], 0.8);
            }
            canvas.disc(p, style.dot_radius, track.colour, 1.0);
        }
    }
    out
}

/// Tracks from per-track pixel positions and colours (as many tracks as both lists have).
pub fn tracks_from(positions: &[Vec<[i32; 2]>], colours: &[[u8; 3]]) -> Vec<OverlayTrack> {
    positions.iter().zip(colours).map(|(points, &colour)| OverlayTrack { points: points.clone(), colour }).collect()
}

struct Canvas<'a> {
    /// `[height, width, 3]`
    pixels: &'a mut [u8],
    width: i64,
    height: i64,
}

impl Canvas<'_> {
    /// Blends `colour` over a pixel with `coverage` (0..=1); outside the frame is ignored.
    fn blend(&mut self, x: i64, y: i64, colour: [u8; 3], coverage: f32) {
        if x < 0 || y < 0 || x >= self.width || y >= self.height || coverage <= 0.0 {
            return;
        }
        let i = ((y * self.width + x) * 3) as usize;
        let Some(px) = self.pixels.get_mut(i..i + 3) else { return };
        let a = coverage.min(1.0);
        for (p, &c) in px.iter_mut().zip(&colour) {
            *p = (*p as f32 * (1.0 - a) + c as f32 * a).round() as u8;
        }
    }

    /// A filled, edge-antialiased disc of `radius` around pixel centre `c`.
    fn disc(&mut self, c: [i32; 2], radius: f32, colour: [u8; 3], opacity: f32) {
        let r = radius.ceil() as i64 + 1;
        let (cx, cy) = (c[0] as i64, c[1] as i64);
        for y in cy - r..=cy + r {
            for x in cx - r..=cx + r {
                let d = (((x - cx) * (x - cx) + (y - cy) * (y - cy)) as f32).sqrt();
                self.blend(x, y, colour, opacity * (radius + 0.5 - d).clamp(0.0, 1.0));
            }
        }
    }
}

/// Per-pixel coverage (0..=1) of one polyline, with the box it touched.
struct Coverage {
    /// `[height, width]`
    values: Vec<f32>,
    width: i64,
    height: i64,
    /// Touched box `(x0, y0, x1, y1)`, inclusive, or none.
    touched: Option<(i64, i64, i64, i64)>,
}

impl Coverage {
    fn new(width: i64, height: i64) -> Self {
        Coverage { values: vec![0.0; (width * height).max(0) as usize], width, height, touched: None }
    }

    /// A thick, edge-antialiased segment between pixel centres `a` and `b` (a capsule).
    fn segment(&mut self, a: [i32; 2], b: [i32; 2], radius: f32) {
        let (ax, ay, bx, by) = (a[0] as f32, a[1] as f32, b[0] as f32, b[1] as f32);
        let (dx, dy) = (bx - ax, by - ay);
        let len2 = dx * dx + dy * dy;
        let pad = radius.ceil() as i64 + 1;
        // Only the part inside the frame is visited, so far-off points cost nothing.
        let (x0, x1) = ((a[0].min(b[0]) as i64 - pad).max(0), (a[0].max(b[0]) as i64 + pad).min(self.width - 1));
        let (y0, y1) = ((a[1].min(b[1]) as i64 - pad).max(0), (a[1].max(b[1]) as i64 + pad).min(self.height - 1));
        if x0 > x1 || y0 > y1 {
            return;
        }
        for y in y0..=y1 {
            for x in x0..=x1 {
                let (px, py) = (x as f32 - ax, y as f32 - ay);
                let t = if len2 > 0.0 { ((px * dx + py * dy) / len2).clamp(0.0, 1.0) } else { 0.0 };
                let (ex, ey) = (px - t * dx, py - t * dy);
                let c = (radius + 0.5 - (ex * ex + ey * ey).sqrt()).clamp(0.0, 1.0);
                let v = &mut self.values[(y * self.width + x) as usize];
                *v = v.max(c);
            }
        }
        self.touched = Some(match self.touched {
            None => (x0, y0, x1, y1),
            Some((a0, b0, a1, b1)) => (a0.min(x0), b0.min(y0), a1.max(x1), b1.max(y1)),
        });
    }

    /// Blends `colour` into the canvas by coverage × opacity, then clears itself.
    fn blend_into(&mut self, canvas: &mut Canvas<'_>, colour: [u8; 3], opacity: f32) {
        let Some((x0, y0, x1, y1)) = self.touched.take() else { return };
        for y in y0..=y1 {
            for x in x0..=x1 {
                let v = std::mem::take(&mut self.values[(y * self.width + x) as usize]);
                canvas.blend(x, y, colour, opacity * v);
            }
        }
    }
}
