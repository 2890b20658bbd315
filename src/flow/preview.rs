//! The motion preview without a model: the image warped along the tracks, so motion can be
//! judged before any GPU minutes are spent. An approximation, not Tora's output.
//!
//! At frame `t` each track `i` sits at `c_i = P_i(t)`, having moved `d_i = P_i(t) - P_i(0)`.
//! Every pixel `q` pulls its colour from `q - D(q)`, where `D` is the Gaussian-weighted
//! (sigma) blend of the accumulated displacements, normalised where objects overlap. A static
//! track (an anchor) contributes `d = 0` and so pins the image around it.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::trajectory::FramePoints;

/// An RGBA8 image, rows top to bottom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbaFrame {
    pub width: u32,
    pub height: u32,
    pub pixels: Vec<u8>,
}

impl RgbaFrame {
    pub fn new(width: u32, height: u32, pixels: Vec<u8>) -> Option<Self> {
        (pixels.len() == width as usize * height as usize * 4).then_some(RgbaFrame { width, height, pixels })
    }

    pub fn pixel(&self, x: u32, y: u32) -> [u8; 4] {
        let i = (y as usize * self.width as usize + x as usize) * 4;
        [self.pixels[i], self.pixels[i + 1], self.pixels[i + 2], self.pixels[i + 3]]
    }

    /// Bilinear sample at a continuous position (pixel centres at integers), clamped to the edge.
    fn sample(&self, x: f32, y: f32) -> [u8; 4] {
        let max_x = (self.width - 1) as f32;
        let max_y = (self.height - 1) as f32;
        let (x, y) = (x.clamp(0.0, max_x), y.clamp(0.0, max_y));
        let (x0, y0) = (x.floor(), y.floor());
        let (fx, fy) = (x - x0, y - y0);
        let (x0, y0) = (x0 as u32, y0 as u32);
        let (x1, y1) = ((x0 + 1).min(self.width - 1), (y0 + 1).min(self.height - 1));
        let (a, b, c, d) = (self.pixel(x0, y0), self.pixel(x1, y0), self.pixel(x0, y1), self.pixel(x1, y1));
        std::array::from_fn(|ch| {
            let top = a[ch] as f32 * (1.0 - fx) + b[ch] as f32 * fx;
            let bottom = c[ch] as f32 * (1.0 - fx) + d[ch] as f32 * fx;
            (top * (1.0 - fy) + bottom * fy).round() as u8
        })
    }
}

/// How an image whose aspect differs from the output is placed in the output frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FitMode {
    /// The whole image, letterboxed with black.
    Fit,
    /// The output filled, the image's overhang cut off (centred).
    #[default]
    Crop,
}

/// Resamples `src` to the output size with the given fit (bilinear).
pub fn fit_to_output(src: &RgbaFrame, width: u32, height: u32, mode: FitMode) -> RgbaFrame {
    let (sw, sh) = (src.width as f32, src.height as f32);
    let scale = match mode {
        FitMode::Fit => (width as f32 / sw).min(height as f32 / sh),
        FitMode::Crop => (width as f32 / sw).max(height as f32 / sh),
    };
    // Output pixel (x, y) shows source position ((x + 0.5 - ox) / scale - 0.5, ...).
    let ox = (width as f32 - sw * scale) / 2.0;
    let oy = (height as f32 - sh * scale) / 2.0;
    let mut pixels = vec![0u8; width as usize * height as usize * 4];
    pixels.par_chunks_mut(width as usize * 4).enumerate().for_each(|(y, row)| {
        for x in 0..width as usize {
            let sx = (x as f32 + 0.5 - ox) / scale - 0.5;
            let sy = (y as f32 + 0.5 - oy) / scale - 0.5;
            let inside = sx >= -0.5 && sy >= -0.5 && sx <= sw - 0.5 && sy <= sh - 0.5;
            let p = if inside { src.sample(sx, sy) } else { [0, 0, 0, 255] };
            row[x * 4..x * 4 + 4].copy_from_slice(&p);
        }
    });
    RgbaFrame { width, height, pixels }
}

/// A good default spread of an object's motion: 8% of the output's shorter side.
pub fn default_sigma(width: u32, height: u32) -> f32 {
    0.08 * width.min(height) as f32
}

/// The preview of frame `frame`: `image` (already at the output size) warped along the tracks'
/// pixel positions (`tracks[i][t]`, as `Scene::sample_points` gives them).
pub fn preview_frame(image: &RgbaFrame, tracks: &[FramePoints], frame: usize, sigma: f32) -> RgbaFrame {
    struct Mover {
        centre: [f32; 2],
        moved: [f32; 2],
    }
    let movers: Vec<Mover> = tracks
        .iter()
        .filter_map(|points| {
            let (start, now) = (points.first()?, points.get(frame).or(points.last())?);
            Some(Mover {
                centre: [now[0] as f32, now[1] as f32],
                moved: [(now[0] - start[0]) as f32, (now[1] - start[1]) as f32],
            })
        })
        .collect();
    if movers.iter().all(|m| m.moved == [0.0, 0.0]) {
        return image.clone();
    }
    let inv_two_sigma2 = 1.0 / (2.0 * sigma.max(0.5) * sigma.max(0.5));
    // Beyond 4 sigma a weight is below 3e-4: treat it as zero.
    let reach2 = 16.0 * sigma * sigma;
    let width = image.width as usize;
    let mut pixels = vec![0u8; image.pixels.len()];
    pixels.par_chunks_mut(width * 4).enumerate().for_each(|(y, row)| {
        for x in 0..width {
            let (qx, qy) = (x as f32, y as f32);
            let (mut wsum, mut dx, mut dy) = (0.0f32, 0.0f32, 0.0f32);
            for m in &movers {
                let d2 = (qx - m.centre[0]).powi(2) + (qy - m.centre[1]).powi(2);
                if d2 > reach2 {
                    continue;
                }
                let w = (-d2 * inv_two_sigma2).exp();
                wsum += w;
                dx += w * m.moved[0];
                dy += w * m.moved[1];
            }
            let norm = wsum.max(1.0);
            let p =
                if wsum > 0.0 { image.sample(qx - dx / norm, qy - dy / norm) } else { image.pixel(x as u32, y as u32) };
            row[x * 4..x * 4 + 4].copy_from_slice(&p);
        }
    });
    RgbaFrame { width: image.width, height: image.height, pixels }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 64x48 image whose pixel (x, y) is (x, y, 7, 255): positions can be read back.
    fn coordinates_image() -> RgbaFrame {
        let (w, h) = (64u32, 48u32);
        let pixels = (0..h).flat_map(|y| (0..w).flat_map(move |x| [x as u8, y as u8, 7, 255])).collect();
        RgbaFrame::new(w, h, pixels).unwrap()
    }

    #[test]
    fn without_motion_the_preview_is_the_image() {
        let img = coordinates_image();
        assert_eq!(preview_frame(&img, &[], 3, 5.0), img);
        let anchor = vec![[20, 20]; 5];
        assert_eq!(preview_frame(&img, &[anchor], 3, 5.0), img);
    }

    #[test]
    fn the_object_carries_its_pixels_along_the_track() {
        let img = coordinates_image();
        let track: FramePoints = (0..5).map(|t| [10 + 5 * t, 20]).collect();
        let last = preview_frame(&img, std::slice::from_ref(&track), 4, 4.0);
        assert_eq!(last.pixel(30, 20), [10, 20, 7, 255], "the object's start pixel is now at (30, 20)");
        assert_eq!(last.pixel(60, 45), img.pixel(60, 45), "far pixels stay put");
        let first = preview_frame(&img, &[track], 0, 4.0);
        assert_eq!(first, img, "frame 0 is the image");
    }

    #[test]
    fn an_anchor_holds_the_image_near_it() {
        let img = coordinates_image();
        let mover: FramePoints = vec![[20, 20], [30, 20]];
        let free = preview_frame(&img, std::slice::from_ref(&mover), 1, 6.0);
        let anchored = preview_frame(&img, &[mover, vec![[34, 20], [34, 20]]], 1, 6.0);
        // Free: (34, 20) pulls from well left of itself; anchored, much less.
        let pull = |f: &RgbaFrame| 34 - f.pixel(34, 20)[0] as i32;
        assert!(pull(&free) > pull(&anchored), "{} vs {}", pull(&free), pull(&anchored));
        assert!(pull(&anchored) >= 0);
    }

    #[test]
    fn fit_letterboxes_and_crop_fills() {
        // 4x2 image: left half red, right half blue.
        let px: Vec<u8> =
            (0..2).flat_map(|_| (0..4).flat_map(|x| if x < 2 { [255, 0, 0, 255] } else { [0, 0, 255, 255] })).collect();
        let img = RgbaFrame::new(4, 2, px).unwrap();
        let fit = fit_to_output(&img, 4, 4, FitMode::Fit);
        assert_eq!(fit.pixel(0, 0), [0, 0, 0, 255], "letterbox bar");
        assert_eq!(fit.pixel(0, 1), [255, 0, 0, 255]);
        assert_eq!(fit.pixel(3, 2), [0, 0, 255, 255]);
        let crop = fit_to_output(&img, 2, 2, FitMode::Crop);
        assert_eq!(crop.pixel(0, 0)[3], 255);
        assert_ne!(crop.pixel(0, 0), [0, 0, 0, 255], "crop leaves no bars");
        assert_eq!(RgbaFrame::new(3, 3, vec![0; 5]), None);
    }
}
