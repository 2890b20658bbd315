//! Per-frame sparse displacement: frame i+1 holds p(i+1) - p(i) at pixel p(i) (`get_flow`).

use super::{ClipSize, TrackPoints};
use crate::trajectory::TrajectoryError;

/// One non-zero-candidate pixel of the unfiltered flow.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Splat {
    pub y: usize,
    pub x: usize,
    pub dx: f32,
    pub dy: f32,
}

/// The unfiltered flow: a handful of splats per frame (frame 0 has none).
#[derive(Debug, Clone)]
pub struct SparseFlow {
    pub size: ClipSize,
    pub frames: Vec<Vec<Splat>>,
}

/// Numpy's rule for an index into an axis of `len`: negatives count from the end, anything
/// else out of range raises.
fn numpy_index(i: i64, len: usize) -> Option<usize> {
    let len = len as i64;
    let wrapped = if i < 0 { i + len } else { i };
    (0..len).contains(&wrapped).then_some(wrapped as usize)
}

/// Builds the sparse flow. A later track overwrites an earlier one at the same pixel and frame,
/// as the reference's array assignment does. The last point of a track is never used as an
/// index, so only earlier points must lie in the frame.
pub fn sparse_displacement(tracks: &[TrackPoints], size: ClipSize) -> Result<SparseFlow, TrajectoryError> {
    let mut frames: Vec<Vec<Splat>> = vec![Vec::new(); size.frames];
    for track in tracks {
        if track.points.len() != size.frames {
            return Err(TrajectoryError::InvalidScene(format!(
                "track '{}' has {} positions for a {}-frame clip",
                track.name,
                track.points.len(),
                size.frames
            )));
        }
        for i in 0..size.frames.saturating_sub(1) {
            let [px, py] = track.points[i];
            let [qx, qy] = track.points[i + 1];
            let (Some(x), Some(y)) = (numpy_index(px as i64, size.width), numpy_index(py as i64, size.height)) else {
                return Err(TrajectoryError::PointOutsideFrame {
                    track: track.name.clone(),
                    frame: i,
                    px: px as i64,
                    py: py as i64,
                    width: size.width as u32,
                    height: size.height as u32,
                });
            };
            let splat = Splat { y, x, dx: (qx - px) as f32, dy: (qy - py) as f32 };
            let frame = &mut frames[i + 1];
            match frame.iter_mut().find(|s| s.y == y && s.x == x) {
                Some(existing) => *existing = splat,
                None => frame.push(splat),
            }
        }
    }
    Ok(SparseFlow { size, frames })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn track(name: &str, points: Vec<[i32; 2]>) -> TrackPoints {
        TrackPoints { name: name.into(), points }
    }

    #[test]
    fn later_tracks_overwrite_and_negative_indices_wrap() {
        let size = ClipSize { frames: 3, height: 10, width: 10 };
        let a = track("a", vec![[1, 1], [3, 1], [5, 1]]);
        let b = track("b", vec![[1, 1], [1, 1], [-2, 0]]);
        let sparse = sparse_displacement(&[a, b], size).unwrap();
        assert!(sparse.frames[0].is_empty());
        assert_eq!(sparse.frames[1], vec![Splat { y: 1, x: 1, dx: 0.0, dy: 0.0 }]);
        assert_eq!(
            sparse.frames[2],
            vec![Splat { y: 1, x: 3, dx: 2.0, dy: 0.0 }, Splat { y: 1, x: 1, dx: -3.0, dy: -1.0 }]
        );
        let wrapped = sparse_displacement(&[track("w", vec![[-2, 0], [0, 0], [0, 0]])], size).unwrap();
        assert_eq!(wrapped.frames[1][0].x, 8);
    }

    #[test]
    fn out_of_range_points_name_the_track_and_point_but_the_last_may_be_anywhere() {
        let size = ClipSize { frames: 3, height: 10, width: 10 };
        let err = sparse_displacement(&[track("runner", vec![[0, 0], [10, 0], [0, 0]])], size).unwrap_err();
        assert!(err.to_string().contains("track 'runner', point 1"), "{err}");
        assert!(sparse_displacement(&[track("ok", vec![[0, 0], [1, 0], [10, 99]])], size).is_ok());
        assert!(sparse_displacement(&[track("neg", vec![[-11, 0], [1, 0], [0, 0]])], size).is_err());
    }
}
