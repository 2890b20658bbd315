//! Editing operations behind the studio's drawing tools: pure functions over tracks, so the
//! UI only decides *where* an edit happens and these decide *what* it does to the data.

use super::{Keyframe, Track, CANVAS_SIZE};

/// One pointer sample of a freehand stroke: canvas position and pointer time in seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StrokeSample {
    pub x: f64,
    pub y: f64,
    pub time: f64,
}

/// Keeps a point on the 256x256 canvas; says whether it had to move it.
pub fn clamp_to_canvas(x: f64, y: f64) -> ([f64; 2], bool) {
    let c = [x.clamp(0.0, CANVAS_SIZE), y.clamp(0.0, CANVAS_SIZE)];
    (c, c != [x, y])
}

/// Keyframes of a freehand stroke, whose drawing speed becomes the motion's speed.
///
/// Samples closer than `min_spacing` canvas units to the last kept one are dropped (the last
/// sample is always kept). Each kept sample arrives at a frame proportional to the pointer time
/// since the stroke began, the whole stroke spanning `start..=end` frames; a stroke without
/// duration falls back to constant speed (no frame times).
pub fn freehand_keyframes(samples: &[StrokeSample], min_spacing: f64, start: f64, end: f64) -> Vec<Keyframe> {
    let mut kept: Vec<StrokeSample> = Vec::new();
    for (i, s) in samples.iter().enumerate() {
        let is_last = i + 1 == samples.len();
        match kept.last() {
            None => kept.push(*s),
            Some(prev) => {
                let far_enough = (s.x - prev.x).hypot(s.y - prev.y) >= min_spacing;
                if far_enough {
                    kept.push(*s);
                } else if is_last && kept.len() > 1 {
                    // Too close to the previous one: the stroke's true end replaces it.
                    if let Some(slot) = kept.last_mut() {
                        *slot = *s;
                    }
                } else if is_last && (s.x, s.y) != (prev.x, prev.y) {
                    kept.push(*s);
                }
            }
        }
    }
    let Some((first, last)) = kept.first().zip(kept.last()) else {
        return Vec::new();
    };
    let duration = last.time - first.time;
    let t0 = first.time;
    kept.iter()
        .map(|s| {
            let ([x, y], _) = clamp_to_canvas(s.x, s.y);
            if duration > 0.0 && kept.len() > 1 {
                let share = ((s.time - t0) / duration).clamp(0.0, 1.0);
                Keyframe::timed(x, y, start + share * (end - start))
            } else {
                Keyframe::at(x, y)
            }
        })
        .collect()
}

/// Distance from `p` to the segment `a..b`, and the projection parameter in [0, 1].
fn segment_distance(p: [f64; 2], a: [f64; 2], b: [f64; 2]) -> (f64, f64) {
    let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
    let len2 = dx * dx + dy * dy;
    let u = if len2 > 0.0 { (((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / len2).clamp(0.0, 1.0) } else { 0.0 };
    let q = [a[0] + u * dx, a[1] + u * dy];
    ((p[0] - q[0]).hypot(p[1] - q[1]), u)
}

impl Track {
    /// Index of the keyframe nearest to `p` within `max_distance` canvas units.
    pub fn nearest_point(&self, p: [f64; 2], max_distance: f64) -> Option<usize> {
        self.points
            .iter()
            .enumerate()
            .map(|(i, k)| (i, (k.x - p[0]).hypot(k.y - p[1])))
            .filter(|(_, d)| *d <= max_distance)
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(i, _)| i)
    }

    /// Distance from `p` to the track's polyline (for picking a track on the canvas).
    pub fn distance_to_path(&self, p: [f64; 2]) -> Option<f64> {
        match self.points.len() {
            0 => None,
            1 => Some((self.points[0].x - p[0]).hypot(self.points[0].y - p[1])),
            _ => self
                .points
                .windows(2)
                .map(|w| segment_distance(p, [w[0].x, w[0].y], [w[1].x, w[1].y]).0)
                .min_by(f64::total_cmp),
        }
    }

    /// Inserts a keyframe at `p` into the segment nearest to it (after the last point when the
    /// track has fewer than two); returns its index. Its time is left to constant speed.
    pub fn insert_point(&mut self, p: [f64; 2]) -> usize {
        let ([x, y], _) = clamp_to_canvas(p[0], p[1]);
        let key = Keyframe::at(x, y);
        let nearest_segment = self
            .points
            .windows(2)
            .enumerate()
            .map(|(i, w)| (i, segment_distance([x, y], [w[0].x, w[0].y], [w[1].x, w[1].y])))
            .min_by(|a, b| a.1 .0.total_cmp(&b.1 .0));
        match nearest_segment {
            // Projecting onto an end of the first/last segment means the point extends the path.
            Some((0, (_, u))) if u <= 0.0 => {
                self.points.insert(0, key);
                0
            }
            Some((i, (_, u))) if i + 2 == self.points.len() && u >= 1.0 => {
                self.points.push(key);
                self.points.len() - 1
            }
            Some((i, _)) => {
                self.points.insert(i + 1, key);
                i + 1
            }
            None => {
                self.points.push(key);
                self.points.len() - 1
            }
        }
    }

    /// Moves every keyframe by `(dx, dy)`, limited so the whole track stays on the canvas;
    /// says whether the move had to be limited.
    pub fn translate(&mut self, dx: f64, dy: f64) -> bool {
        let (Some(min_x), Some(max_x)) =
            (self.points.iter().map(|k| k.x).reduce(f64::min), self.points.iter().map(|k| k.x).reduce(f64::max))
        else {
            return false;
        };
        let min_y = self.points.iter().map(|k| k.y).fold(f64::INFINITY, f64::min);
        let max_y = self.points.iter().map(|k| k.y).fold(f64::NEG_INFINITY, f64::max);
        let cdx = dx.clamp(-min_x, CANVAS_SIZE - max_x);
        let cdy = dy.clamp(-min_y, CANVAS_SIZE - max_y);
        for k in &mut self.points {
            k.x += cdx;
            k.y += cdy;
        }
        cdx != dx || cdy != dy
    }

    /// Sets when keyframe `index` is reached, kept between its neighbours' arrival times so
    /// the track never runs backwards in time; returns the frame actually set.
    pub fn set_keyframe_frame(&mut self, index: usize, frame: f64, frames: u32) -> Option<f64> {
        let times = self.keyframe_times(frames);
        if index >= self.points.len() {
            return None;
        }
        let last = frames.saturating_sub(1) as f64;
        let lo = if index > 0 { times[index - 1] + self.points[index - 1].hold as f64 } else { 0.0 };
        let hi = times.get(index + 1).copied().unwrap_or(last);
        let f = frame.clamp(lo.min(hi), hi).clamp(0.0, last);
        self.points[index].frame = Some(f);
        Some(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: f64, y: f64, time: f64) -> StrokeSample {
        StrokeSample { x, y, time }
    }

    #[test]
    fn freehand_pointer_speed_becomes_timing() {
        // Slow over the first 10 units (3 s), fast over the next 30 (1 s).
        let samples = [s(0.0, 0.0, 0.0), s(10.0, 0.0, 3.0), s(40.0, 0.0, 4.0)];
        let keys = freehand_keyframes(&samples, 2.0, 0.0, 48.0);
        let frames: Vec<Option<f64>> = keys.iter().map(|k| k.frame).collect();
        assert_eq!(frames, vec![Some(0.0), Some(36.0), Some(48.0)]);
        let t = Track::new("f", [0, 0, 0], keys);
        let pos = t.canvas_positions(49).unwrap();
        assert_eq!(pos[36], [10.0, 0.0]);
        assert_eq!(pos[48], [40.0, 0.0]);
    }

    #[test]
    fn freehand_thins_close_samples_and_keeps_the_end() {
        let samples = [s(0.0, 0.0, 0.0), s(0.5, 0.0, 0.1), s(5.0, 0.0, 0.2), s(5.5, 0.0, 0.3)];
        let keys = freehand_keyframes(&samples, 2.0, 0.0, 10.0);
        assert_eq!(keys.iter().map(|k| k.x).collect::<Vec<_>>(), vec![0.0, 5.5]);
        assert!(freehand_keyframes(&[], 2.0, 0.0, 10.0).is_empty());
        let instant = freehand_keyframes(&[s(1.0, 1.0, 2.0), s(9.0, 1.0, 2.0)], 2.0, 0.0, 10.0);
        assert!(instant.iter().all(|k| k.frame.is_none()), "no duration: constant speed");
    }

    #[test]
    fn insert_goes_into_the_nearest_segment_or_extends_the_ends() {
        let mut t = Track::new(
            "t",
            [0, 0, 0],
            vec![Keyframe::at(0.0, 0.0), Keyframe::at(100.0, 0.0), Keyframe::at(100.0, 100.0)],
        );
        assert_eq!(t.insert_point([50.0, 3.0]), 1);
        assert_eq!(t.insert_point([100.0, 140.0]), 4);
        assert_eq!(t.insert_point([-20.0, 0.0]), 0);
        let xs: Vec<(f64, f64)> = t.points.iter().map(|k| (k.x, k.y)).collect();
        assert_eq!(xs, vec![(0.0, 0.0), (0.0, 0.0), (50.0, 3.0), (100.0, 0.0), (100.0, 100.0), (100.0, 140.0)]);
    }

    #[test]
    fn picking_translating_and_retiming() {
        let mut t = Track::new("t", [0, 0, 0], vec![Keyframe::at(10.0, 10.0), Keyframe::at(200.0, 10.0)]);
        assert_eq!(t.nearest_point([198.0, 12.0], 5.0), Some(1));
        assert_eq!(t.nearest_point([100.0, 100.0], 5.0), None);
        assert_eq!(t.distance_to_path([100.0, 14.0]), Some(4.0));
        assert!(t.translate(100.0, 0.0), "limited at the right border");
        assert_eq!((t.points[0].x, t.points[1].x), (66.0, 256.0));
        assert!(!t.translate(-6.0, 5.0));
        assert_eq!((t.points[0].x, t.points[0].y), (60.0, 15.0));
        t.points.insert(1, Keyframe::at(100.0, 15.0));
        assert_eq!(t.set_keyframe_frame(1, 30.0, 49), Some(30.0));
        assert_eq!(t.keyframe_times(49)[1], 30.0);
        assert_eq!(t.set_keyframe_frame(1, 80.0, 49), Some(48.0), "kept before the next keyframe");
        assert_eq!(clamp_to_canvas(-1.0, 300.0), ([0.0, 256.0], true));
    }
}
