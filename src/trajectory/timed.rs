//! Timed tracks: keyframes reached at given frames, rests (holds), eased segments, and a
//! start/end frame. Keyframes without a time are placed at constant speed (by arc length)
//! between their timed neighbours.

use super::{PathShape, Track, TrajectoryError, CANVAS_SIZE};

/// Frame (possibly fractional) at which the object arrives at each keyframe; non-decreasing.
pub fn keyframe_times(track: &Track, frames: u32) -> Vec<f64> {
    let keys = &track.points;
    let n = keys.len();
    if n == 0 {
        return Vec::new();
    }
    let last_frame = frames.saturating_sub(1) as f64;
    let start = (track.start_frame as f64).min(last_frame);
    let end = (track.last_frame(frames) as f64).max(start);
    let mut fixed: Vec<Option<f64>> = keys.iter().map(|k| k.frame.map(|f| f.clamp(0.0, last_frame))).collect();
    fixed[0] = Some(fixed[0].unwrap_or(start));
    if n > 1 {
        fixed[n - 1] = Some(fixed[n - 1].unwrap_or(end));
    }

    let mut times = vec![0.0; n];
    let anchors: Vec<usize> = (0..n).filter(|&i| fixed[i].is_some()).collect();
    for pair in anchors.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        let (ta, tb) = (fixed[a].unwrap_or(start), fixed[b].unwrap_or(end));
        let holds: f64 = (a..b).map(|k| keys[k].hold as f64).sum();
        let moving = (tb - ta - holds).max(0.0);
        let lengths: Vec<f64> = (a..b).map(|k| distance(keys[k].x, keys[k].y, keys[k + 1].x, keys[k + 1].y)).collect();
        let total: f64 = lengths.iter().sum();
        times[a] = ta;
        let mut t = ta;
        for (k, len) in (a..b).zip(&lengths) {
            let share = if total > 0.0 { len / total } else { 1.0 / (b - a) as f64 };
            t += keys[k].hold as f64 + moving * share;
            times[k + 1] = t;
        }
        times[b] = tb;
    }
    if n == 1 {
        times[0] = fixed[0].unwrap_or(start);
    }
    for i in 1..n {
        times[i] = times[i].max(times[i - 1]);
    }
    times
}

fn distance(x0: f64, y0: f64, x1: f64, y1: f64) -> f64 {
    ((x1 - x0).powi(2) + (y1 - y0).powi(2)).sqrt()
}

/// Canvas position at every frame of the clip.
pub fn canvas_positions(track: &Track, frames: u32) -> Result<Vec<[f64; 2]>, TrajectoryError> {
    if track.points.is_empty() {
        return Err(TrajectoryError::NoPoints { track: track.name.clone() });
    }
    let times = keyframe_times(track, frames);
    Ok((0..frames).map(|f| position_at(track, &times, f as f64)).collect())
}

/// Canvas position at (possibly fractional) frame `f`, given the keyframe arrival times.
pub fn position_at(track: &Track, times: &[f64], f: f64) -> [f64; 2] {
    let keys = &track.points;
    let n = keys.len();
    if f <= times[0] || n == 1 {
        return [keys[0].x, keys[0].y];
    }
    for i in 0..n - 1 {
        if f < times[i + 1] {
            let depart = (times[i] + keys[i].hold as f64).min(times[i + 1]);
            if f <= depart {
                return [keys[i].x, keys[i].y];
            }
            let u = keys[i].easing.apply((f - depart) / (times[i + 1] - depart));
            return interpolate(track, i, u);
        }
    }
    [keys[n - 1].x, keys[n - 1].y]
}

/// Point at progress `u` along segment `i` (keyframe i -> i+1) of the track's curve.
fn interpolate(track: &Track, i: usize, u: f64) -> [f64; 2] {
    let k = &track.points;
    let p = |j: usize| [k[j].x, k[j].y];
    let (p1, p2) = (p(i), p(i + 1));
    match track.shape {
        PathShape::Polyline => [p1[0] + u * (p2[0] - p1[0]), p1[1] + u * (p2[1] - p1[1])],
        PathShape::Spline => {
            // Uniform Catmull-Rom, end tangents from the end points themselves.
            let p0 = p(i.saturating_sub(1));
            let p3 = p((i + 2).min(k.len() - 1));
            let (u2, u3) = (u * u, u * u * u);
            let c = |a: f64, b: f64, c: f64, d: f64| {
                0.5 * (2.0 * b
                    + (-a + c) * u
                    + (2.0 * a - 5.0 * b + 4.0 * c - d) * u2
                    + (-a + 3.0 * b - 3.0 * c + d) * u3)
            };
            [c(p0[0], p1[0], p2[0], p3[0]), c(p0[1], p1[1], p2[1], p3[1])]
        }
    }
}

/// Canvas position -> pixel with the reference's `int(W*x/256)`, kept inside the frame
/// (a drawn track may touch the border; it never indexes outside).
pub fn to_pixel(p: [f64; 2], width: u32, height: u32) -> [i32; 2] {
    let x = (width as f64 * p[0] / CANVAS_SIZE).trunc().clamp(0.0, (width.max(1) - 1) as f64);
    let y = (height as f64 * p[1] / CANVAS_SIZE).trunc().clamp(0.0, (height.max(1) - 1) as f64);
    [x as i32, y as i32]
}

impl Track {
    /// Re-times the track to constant speed along its path: keeps the first and last keyframe
    /// times, clears the others (holds stay).
    pub fn retime_constant_speed(&mut self) {
        let n = self.points.len();
        for (i, k) in self.points.iter_mut().enumerate() {
            if i != 0 && i + 1 != n {
                k.frame = None;
            }
        }
    }

    /// Arrival frame of each keyframe, as the sampler sees it (for timelines).
    pub fn keyframe_times(&self, frames: u32) -> Vec<f64> {
        keyframe_times(self, frames)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trajectory::{Easing, Keyframe, Track};

    fn track(points: Vec<Keyframe>) -> Track {
        Track::new("t", [255, 0, 0], points)
    }

    #[test]
    fn untimed_keyframes_move_at_constant_speed_over_the_clip() {
        let t = track(vec![Keyframe::at(0.0, 0.0), Keyframe::at(30.0, 0.0), Keyframe::at(90.0, 0.0)]);
        assert_eq!(t.keyframe_times(10), vec![0.0, 3.0, 9.0]);
        let pos = canvas_positions(&t, 10).unwrap();
        assert_eq!(pos.len(), 10);
        for (f, p) in pos.iter().enumerate() {
            assert!((p[0] - 10.0 * f as f64).abs() < 1e-9, "frame {f}: {p:?}");
        }
    }

    #[test]
    fn holds_start_and_end_frames_shape_the_timing() {
        let mut t = track(vec![Keyframe::at(0.0, 0.0), Keyframe::at(100.0, 0.0)]);
        t.start_frame = 2;
        t.end_frame = Some(6);
        t.points[0].hold = 2;
        let pos = canvas_positions(&t, 10).unwrap();
        let xs: Vec<f64> = pos.iter().map(|p| p[0]).collect();
        assert_eq!(&xs[..5], &[0.0, 0.0, 0.0, 0.0, 0.0]); // rest until 2, hold until 4
        assert_eq!(xs[5], 50.0);
        assert_eq!(&xs[6..], &[100.0; 4]);
    }

    #[test]
    fn easing_changes_speed_but_not_the_ends() {
        let mut t = track(vec![Keyframe::timed(0.0, 0.0, 0.0), Keyframe::timed(100.0, 0.0, 4.0)]);
        t.points[0].easing = Easing::EaseIn;
        let xs: Vec<f64> = canvas_positions(&t, 5).unwrap().iter().map(|p| p[0]).collect();
        assert_eq!(xs, vec![0.0, 6.25, 25.0, 56.25, 100.0]);
    }

    #[test]
    fn spline_passes_through_its_keyframes() {
        let mut t = track(vec![
            Keyframe::timed(0.0, 0.0, 0.0),
            Keyframe::timed(50.0, 80.0, 4.0),
            Keyframe::timed(100.0, 0.0, 8.0),
        ]);
        t.shape = PathShape::Spline;
        let pos = canvas_positions(&t, 9).unwrap();
        assert_eq!(pos[4], [50.0, 80.0]);
        assert_eq!(pos[8], [100.0, 0.0]);
        assert!(pos[2][1] > 40.0, "spline should bulge: {:?}", pos[2]);
    }

    #[test]
    fn single_keyframe_is_a_static_anchor_and_pixels_stay_inside() {
        let t = track(vec![Keyframe::at(256.0, 256.0)]);
        let px = t.sample(5, 64, 48).unwrap();
        assert_eq!(px, vec![[63, 47]; 5]);
    }

    #[test]
    fn constant_speed_clears_interior_times_only() {
        let mut t = track(vec![
            Keyframe::timed(0.0, 0.0, 1.0),
            Keyframe::timed(10.0, 0.0, 2.0),
            Keyframe::timed(20.0, 0.0, 9.0),
        ]);
        t.retime_constant_speed();
        assert_eq!(t.points.iter().map(|k| k.frame).collect::<Vec<_>>(), vec![Some(1.0), None, Some(9.0)]);
        assert_eq!(t.keyframe_times(10), vec![1.0, 5.0, 9.0]);
    }
}
