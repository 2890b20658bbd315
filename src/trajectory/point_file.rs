//! Tora's point files: one `x,y` line per point, integers on the 256x256 canvas, one file per track.

use std::path::Path;

use super::{Track, TrajectoryError, CANVAS_SIZE};

/// Parses a point file's text. Blank lines are skipped; anything else must be `x,y` with
/// integer coordinates (as Python's `int()` reads them). Coordinates must lie on the canvas
/// (0..=256; the reference tolerates more only in corner cases, and a drawing tool never needs it).
pub fn parse_points(path: &Path, text: &str) -> Result<Vec<[i64; 2]>, TrajectoryError> {
    let mut points = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            continue;
        }
        let syntax = || TrajectoryError::PointSyntax { path: path.to_path_buf(), line, found: trimmed.to_string() };
        let (x, y) = trimmed.split_once(',').ok_or_else(syntax)?;
        let (x, y) = (parse_python_int(x).ok_or_else(syntax)?, parse_python_int(y).ok_or_else(syntax)?);
        let limit = CANVAS_SIZE as i64;
        if !(-limit..=limit).contains(&x) || !(-limit..=limit).contains(&y) {
            return Err(TrajectoryError::PointOutOfCanvas { path: path.to_path_buf(), line, x, y });
        }
        points.push([x, y]);
    }
    if points.is_empty() {
        return Err(TrajectoryError::EmptyPointFile { path: path.to_path_buf() });
    }
    Ok(points)
}

/// Python `int(str)` for plain decimal integers: surrounding whitespace, optional sign.
fn parse_python_int(s: &str) -> Option<i64> {
    let s = s.trim();
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Reads a point file into a reference-mode track named after the file.
pub fn read_track(path: &Path, colour: [u8; 3]) -> Result<Track, TrajectoryError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| TrajectoryError::Io { path: path.to_path_buf(), source })?;
    let points = parse_points(path, &text)?;
    let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "track".into());
    Ok(Track::from_reference_points(name, colour, &points))
}

/// The point-file text for a track. Reference tracks write their points as they are; timed
/// tracks write one point per frame (their sampled canvas positions), so Tora's own loader
/// reproduces their timing.
pub fn format_track(track: &Track, frames: u32) -> Result<String, TrajectoryError> {
    let points: Vec<[i64; 2]> = match track.timing {
        super::Timing::Reference => track.integer_points(),
        super::Timing::Timed => track
            .canvas_positions(frames)?
            .into_iter()
            .map(|p| {
                [p[0].round().clamp(0.0, CANVAS_SIZE - 1.0) as i64, p[1].round().clamp(0.0, CANVAS_SIZE - 1.0) as i64]
            })
            .collect(),
    };
    Ok(points.iter().map(|p| format!("{},{}\n", p[0], p[1])).collect())
}

/// Writes a track as a point file (atomically).
pub fn write_track(path: &Path, track: &Track, frames: u32) -> Result<(), TrajectoryError> {
    let text = format_track(track, frames)?;
    super::project::write_atomically(path, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trajectory::{Keyframe, Timing};

    #[test]
    fn parses_python_style_integers_and_skips_blank_lines() {
        let pts = parse_points(Path::new("a.txt"), "1,2\n +3 , -4 \n\n256,0\n").unwrap();
        assert_eq!(pts, vec![[1, 2], [3, -4], [256, 0]]);
    }

    #[test]
    fn malformed_lines_name_file_and_line() {
        let err = parse_points(Path::new("a.txt"), "1,2\n3;4\n").unwrap_err().to_string();
        assert_eq!(err, "a.txt:2: expected \"x,y\" with integer coordinates, found \"3;4\"");
        let err = parse_points(Path::new("b.txt"), "1.5,2\n").unwrap_err().to_string();
        assert!(err.starts_with("b.txt:1:"), "{err}");
        let err = parse_points(Path::new("c.txt"), "\n \n").unwrap_err().to_string();
        assert!(err.contains("c.txt") && err.contains("no points"), "{err}");
        let err = parse_points(Path::new("d.txt"), "1,2\n999,3\n").unwrap_err().to_string();
        assert!(err.starts_with("d.txt:2:") && err.contains("outside"), "{err}");
    }

    #[test]
    fn reference_tracks_round_trip_and_timed_tracks_export_one_point_per_frame() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("walk.txt");
        let t = Track::from_reference_points("walk", [1, 2, 3], &[[10, 20], [30, 40], [50, 60]]);
        write_track(&path, &t, 49).unwrap();
        let back = read_track(&path, [1, 2, 3]).unwrap();
        assert_eq!(back, t);
        assert_eq!(back.timing, Timing::Reference);

        let timed = Track::new("run", [0, 0, 0], vec![Keyframe::at(0.0, 0.0), Keyframe::at(40.0, 0.0)]);
        let text = format_track(&timed, 5).unwrap();
        assert_eq!(text, "0,0\n10,0\n20,0\n30,0\n40,0\n");
    }
}
