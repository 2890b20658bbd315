//! Camera motion: a global layer (pan, zoom, rotate over a frame range, eased) that becomes a
//! grid of tracks over the frame, each following the camera transform, so the model gets camera
//! motion as the same multi-track input as everything else.

use serde::{Deserialize, Serialize};

use super::{Easing, Keyframe, Track, TrajectoryError, CANVAS_SIZE};

/// Grid points per side a new camera layer gets.
pub const DEFAULT_CAMERA_DENSITY: u32 = 6;
/// Densest grid allowed (density² tracks).
pub const MAX_CAMERA_DENSITY: u32 = 16;
/// How camera tracks are drawn.
pub const CAMERA_COLOUR: [u8; 3] = [200, 200, 210];

/// The camera's move between `start_frame` and `end_frame`. The picture moves the opposite way:
/// panning right slides the content left, zooming in spreads it out from the centre.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CameraLayer {
    /// Direction the camera pans, in degrees on screen (0 = right, 90 = down).
    pub pan_direction: f64,
    /// How far it pans, in canvas units (256 = one frame width).
    pub pan_distance: f64,
    /// Zoom factor reached at the end (1 = none, 2 = zoom in 2x, 0.5 = zoom out 2x).
    pub zoom: f64,
    /// Degrees the camera turns clockwise (the picture turns counter-clockwise).
    pub rotate: f64,
    pub start_frame: u32,
    /// Last frame of the move; `None` = the clip's last frame.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_frame: Option<u32>,
    pub easing: Easing,
    /// Grid points per side (density² tracks before those that leave the frame are dropped).
    pub density: u32,
}

impl Default for CameraLayer {
    fn default() -> Self {
        CameraLayer {
            pan_direction: 0.0,
            pan_distance: 0.0,
            zoom: 1.25,
            rotate: 0.0,
            start_frame: 0,
            end_frame: None,
            easing: Easing::Smooth,
            density: DEFAULT_CAMERA_DENSITY,
        }
    }
}

impl CameraLayer {
    pub fn validate(&self) -> Result<(), TrajectoryError> {
        let bad = |reason: String| Err(TrajectoryError::Camera(reason));
        if !(self.zoom.is_finite() && self.zoom > 0.0) {
            return bad(format!(
                "zoom {} must be a positive factor (1 = none, 2 = zoom in, 0.5 = zoom out)",
                self.zoom
            ));
        }
        if !(self.pan_direction.is_finite() && self.pan_distance.is_finite() && self.rotate.is_finite()) {
            return bad("pan and rotation must be numbers".into());
        }
        if !(2..=MAX_CAMERA_DENSITY).contains(&self.density) {
            return bad(format!("grid density {}; use 2 to {MAX_CAMERA_DENSITY} points per side", self.density));
        }
        if self.end_frame.is_some_and(|e| e < self.start_frame) {
            return bad(format!("end frame {:?} is before start frame {}", self.end_frame, self.start_frame));
        }
        Ok(())
    }

    /// Eased progress of the move at frame `f` (0 before the start, 1 after the end).
    pub fn progress(&self, f: u32, frames: u32) -> f64 {
        let last = frames.saturating_sub(1);
        let start = self.start_frame.min(last) as f64;
        let end = self.end_frame.unwrap_or(last).min(last) as f64;
        if end <= start {
            return if (f as f64) < start { 0.0 } else { 1.0 };
        }
        self.easing.apply((f as f64 - start) / (end - start))
    }

    /// Where canvas point `p` of the first frame is seen at progress `u`. The transform works in
    /// pixel proportions (a rotation stays a rotation on a 720x480 frame) about the frame centre.
    pub fn transform(&self, p: [f64; 2], u: f64, width: u32, height: u32) -> [f64; 2] {
        let (sx, sy) = (width.max(1) as f64 / CANVAS_SIZE, height.max(1) as f64 / CANVAS_SIZE);
        let c = [CANVAS_SIZE / 2.0 * sx, CANVAS_SIZE / 2.0 * sy];
        let v = [p[0] * sx - c[0], p[1] * sy - c[1]];
        let scale = self.zoom.powf(u);
        let angle = -self.rotate.to_radians() * u;
        let (sin, cos) = angle.sin_cos();
        let turned = [scale * (cos * v[0] - sin * v[1]), scale * (sin * v[0] + cos * v[1])];
        let dir = self.pan_direction.to_radians();
        let pan = self.pan_distance * sx * u;
        let q = [c[0] + turned[0] - pan * dir.cos(), c[1] + turned[1] - pan * dir.sin()];
        [q[0] / sx, q[1] / sy]
    }

    /// The grid as plain tracks, one timed keyframe per frame. Points the camera carries out of the
    /// frame are dropped (the model has no position for them there); none left is an error.
    pub fn expand(&self, frames: u32, width: u32, height: u32) -> Result<Vec<Track>, TrajectoryError> {
        self.validate()?;
        let n = self.density;
        let inside = |q: [f64; 2]| q.iter().all(|v| (0.0..CANVAS_SIZE).contains(v));
        let progress: Vec<f64> = (0..frames).map(|f| self.progress(f, frames)).collect();
        let mut tracks = Vec::new();
        for row in 0..n {
            for col in 0..n {
                let p = [(col as f64 + 0.5) * CANVAS_SIZE / n as f64, (row as f64 + 0.5) * CANVAS_SIZE / n as f64];
                let path: Vec<[f64; 2]> = progress.iter().map(|&u| self.transform(p, u, width, height)).collect();
                if path.iter().all(|&q| inside(q)) {
                    let keys = path.iter().enumerate().map(|(f, q)| Keyframe::timed(q[0], q[1], f as f64)).collect();
                    tracks.push(Track::new(format!("camera {}", tracks.len() + 1), CAMERA_COLOUR, keys));
                }
            }
        }
        if tracks.is_empty() {
            return Err(TrajectoryError::Camera(
                "the move carries every grid point out of the frame; pan or zoom less, or raise the density".into(),
            ));
        }
        Ok(tracks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn still() -> CameraLayer {
        CameraLayer { zoom: 1.0, easing: Easing::Linear, ..CameraLayer::default() }
    }

    #[test]
    fn pan_right_slides_every_point_left_by_the_distance() {
        let cam = CameraLayer { pan_distance: 70.0, ..still() };
        let tracks = cam.expand(5, 720, 480).unwrap();
        // The two left columns (x = 21.3, 64) leave the frame and are dropped.
        assert_eq!(tracks.len(), 6 * 6 - 6 * 2);
        for t in &tracks {
            let pos = t.canvas_positions(5).unwrap();
            for (f, p) in pos.iter().enumerate() {
                assert!((p[0] - (pos[0][0] - 17.5 * f as f64)).abs() < 1e-9, "{p:?}");
                assert!((p[1] - pos[0][1]).abs() < 1e-9);
            }
        }
    }

    #[test]
    fn zoom_in_spreads_from_the_centre_and_rotation_keeps_distances_in_pixels() {
        let cam = CameraLayer { zoom: 2.0, ..still() };
        assert_eq!(cam.transform([64.0, 128.0], 1.0, 720, 480), [0.0, 128.0]);
        assert_eq!(cam.transform([128.0, 128.0], 1.0, 720, 480), [128.0, 128.0]);
        // Of a 4x4 grid (32, 96, 160, 224) only the central 2x2 stays in frame.
        assert_eq!(CameraLayer { density: 4, ..cam.clone() }.expand(9, 720, 480).unwrap().len(), 4);
        let cam = CameraLayer { rotate: 90.0, ..still() };
        let q = cam.transform([128.0 + 32.0, 128.0], 1.0, 720, 480);
        // 90 px right of centre on a 720-wide frame turns to 90 px above it (48 canvas units at 480 high).
        assert!((q[0] - 128.0).abs() < 1e-9 && (q[1] - (128.0 - 90.0 * 256.0 / 480.0)).abs() < 1e-9, "{q:?}");
    }

    #[test]
    fn move_rests_outside_its_frames_and_eases() {
        let cam = CameraLayer { start_frame: 2, end_frame: Some(6), easing: Easing::Smooth, ..still() };
        let u: Vec<f64> = (0..9).map(|f| cam.progress(f, 9)).collect();
        assert_eq!(u, vec![0.0, 0.0, 0.0, 0.15625, 0.5, 0.84375, 1.0, 1.0, 1.0]);
    }

    #[test]
    fn bad_settings_are_named_errors() {
        for zoom in [0.0, -1.0, f64::NAN] {
            let err = CameraLayer { zoom, ..still() }.validate().unwrap_err().to_string();
            assert!(err.contains("camera") && err.contains("zoom"), "{err}");
        }
        assert!(CameraLayer { density: 1, ..still() }.validate().is_err());
        let err = CameraLayer { pan_distance: 300.0, ..still() }.expand(5, 720, 480).unwrap_err().to_string();
        assert!(err.contains("out of the frame"), "{err}");
    }
}
