use std::path::PathBuf;

/// Everything that can be wrong with a trajectory, a point file or a project file.
/// Messages name the file/track and the line/point so the user can fix the input.
#[derive(Debug, thiserror::Error)]
pub enum TrajectoryError {
    #[error("{path}: cannot read: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}:{line}: expected \"x,y\" with integer coordinates, found {found:?}")]
    PointSyntax { path: PathBuf, line: usize, found: String },
    #[error("{path}: the point file holds no points (one \"x,y\" line per point)")]
    EmptyPointFile { path: PathBuf },
    #[error("{path}:{line}: point ({x}, {y}) is outside the 256x256 canvas (0..=256)")]
    PointOutOfCanvas { path: PathBuf, line: usize, x: i64, y: i64 },
    #[error("track '{track}' has {count} point(s); a moving trajectory needs at least 2 (Tora's reference would crash on it)")]
    TooFewPoints { track: String, count: usize },
    #[error("track '{track}' has no points")]
    NoPoints { track: String },
    #[error(
        "track '{track}', point {frame} (frame {frame}): pixel ({px}, {py}) is outside the {width}x{height} frame; \
         only a track's last point may sit on the far border (x or y = 256)"
    )]
    PointOutsideFrame { track: String, frame: usize, px: i64, py: i64, width: u32, height: u32 },
    #[error("region '{region}': {reason}")]
    RegionOutline { region: String, reason: String },
    #[error(
        "region '{region}': outline point ({x:.1}, {y:.1}) is outside the image (the 256x256 canvas); \
         keep the lasso on the image"
    )]
    RegionOutsideImage { region: String, x: f64, y: f64 },
    #[error("camera layer: {0}")]
    Camera(String),
    #[error("invalid scene: {0}")]
    InvalidScene(String),
    #[error("{path}: not a Tora Studio project: {reason}")]
    ProjectFormat { path: PathBuf, reason: String },
    #[error("{path}:{line}:{column}: malformed project JSON: {message}")]
    ProjectJson { path: PathBuf, line: usize, column: usize, message: String },
}
