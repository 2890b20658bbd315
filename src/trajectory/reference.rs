//! Tora's point-file path, reproduced quirk for quirk (`tora/traj_utils.py`: `read_points`,
//! `process_points` and the `int(W*x/256)` scaling in `process_traj`).

use super::TrajectoryError;

/// Side of the square canvas Tora's point files are drawn on.
pub const CANVAS_SIZE: f64 = 256.0;

/// Integer canvas points -> exactly `frames` integer canvas points, as the reference does it.
///
/// 1. `read_points`: more points than frames keeps every `(N // frames)`-th, then the first `frames`.
/// 2. `process_points`: fewer than `frames` in-fills `frames - N` points linearly over the
///    `N - 1` segments (the first `rem` segments take one extra), truncating toward zero.
///
/// The reference turns a single point into `frames` copies of (512, 512), which then crashes its
/// flow step; we report that as an error instead.
pub fn reference_canvas_points(
    track: &str,
    points: &[[i64; 2]],
    frames: u32,
) -> Result<Vec<[i64; 2]>, TrajectoryError> {
    let frames = frames as usize;
    // read_points
    let mut pts: Vec<[i64; 2]> = points.to_vec();
    if pts.len() > frames {
        let skip = pts.len() / frames;
        pts = pts.into_iter().step_by(skip).collect();
    }
    pts.truncate(frames);

    // process_points
    if pts.len() < 2 {
        return Err(TrajectoryError::TooFewPoints { track: track.to_string(), count: pts.len() });
    }
    if pts.len() >= frames {
        // After read_points, len == frames here, so the skip is 1: the points are kept as they are
        // (written out in full to stay faithful: `pts[::skip][:frames-1] + pts[-1:]`).
        let skip = pts.len() / frames;
        let mut out: Vec<[i64; 2]> = pts.iter().copied().step_by(skip).take(frames - 1).collect();
        out.push(*pts.last().expect("len >= 2"));
        return Ok(out);
    }
    let inserts = frames - pts.len();
    let segments = pts.len() - 1;
    let (per_segment, remainder) = (inserts / segments, inserts % segments);
    let mut out = Vec::with_capacity(frames);
    for i in 0..segments {
        let k = per_segment + usize::from(i < remainder);
        let [x0, y0] = pts[i];
        let [x1, y1] = pts[i + 1];
        let (dx, dy) = ((x1 - x0) as f64, (y1 - y0) as f64);
        out.push(pts[i]);
        for j in 0..k {
            // Python: x0 + (j+1)/(k+1)*dx in f64, then int() truncates toward zero.
            let t = (j + 1) as f64 / (k + 1) as f64;
            out.push([(x0 as f64 + t * dx).trunc() as i64, (y0 as f64 + t * dy).trunc() as i64]);
        }
    }
    out.push(*pts.last().expect("len >= 2"));
    Ok(out)
}

/// Canvas point -> pixel: `(int(W*x/256), int(H*y/256))`, f64 `W*x` first, truncation toward zero.
pub fn scale_to_pixels(p: [i64; 2], width: u32, height: u32) -> [i32; 2] {
    let x = (width as f64 * p[0] as f64 / CANVAS_SIZE).trunc();
    let y = (height as f64 * p[1] as f64 / CANVAS_SIZE).trunc();
    [x as i32, y as i32]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn more_points_than_frames_keeps_every_nth_then_truncates() {
        // 40 points, 13 frames: skip 3 -> 14 points -> first 13.
        let pts: Vec<[i64; 2]> = (0..40).map(|i| [i, 0]).collect();
        let out = reference_canvas_points("t", &pts, 13).unwrap();
        assert_eq!(out.len(), 13);
        assert_eq!(out[1], [3, 0]);
        assert_eq!(out[12], [36, 0]);
        // 20 points, 13 frames: skip 1, keep the first 13.
        let pts: Vec<[i64; 2]> = (0..20).map(|i| [i, 0]).collect();
        assert_eq!(reference_canvas_points("t", &pts, 13).unwrap()[12], [12, 0]);
    }

    #[test]
    fn in_fill_spreads_remainder_over_first_segments_and_truncates_toward_zero() {
        // 3 points, 7 frames: 4 inserts over 2 segments -> 2 + 2.
        let out = reference_canvas_points("t", &[[0, 0], [-10, 9], [0, 0]], 7).unwrap();
        assert_eq!(out, vec![[0, 0], [-3, 3], [-6, 6], [-10, 9], [-6, 6], [-3, 3], [0, 0]]);
        // 3 points, 6 frames: 3 inserts -> 2 on the first segment, 1 on the second.
        let out = reference_canvas_points("t", &[[0, 0], [3, 0], [5, 0]], 6).unwrap();
        assert_eq!(out, vec![[0, 0], [1, 0], [2, 0], [3, 0], [4, 0], [5, 0]]);
    }

    #[test]
    fn single_point_is_an_error_naming_the_track() {
        let err = reference_canvas_points("dancer", &[[1, 1]], 5).unwrap_err().to_string();
        assert!(err.contains("dancer") && err.contains("1 point"), "{err}");
    }

    #[test]
    fn scaling_truncates_toward_zero() {
        assert_eq!(scale_to_pixels([-10, 256], 60, 100), [-2, 100]);
        assert_eq!(scale_to_pixels([255, 1], 719, 481), [716, 1]);
    }
}
