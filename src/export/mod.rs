//! Writing frames out: PNG sequences (image crate) and videos through the system ffmpeg.

pub mod png;
pub mod video;

use std::path::PathBuf;

/// A clip of 8-bit RGB frames.
#[derive(Debug, Clone)]
pub struct RgbFrames {
    pub width: u32,
    pub height: u32,
    pub fps: f32,
    /// One `width * height * 3` buffer per frame, rows top to bottom.
    pub frames: Vec<Vec<u8>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{path}: cannot write: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: cannot encode PNG: {reason}")]
    Png { path: PathBuf, reason: String },
    #[error("ffmpeg was not found on PATH; install it (Debian: `sudo apt-get install ffmpeg`) or export a PNG folder instead")]
    FfmpegMissing,
    #[error("{path}: ffmpeg failed: {reason}")]
    Ffmpeg { path: PathBuf, reason: String },
    #[error("{path}: unsupported video extension; use .mp4, .webm or .gif (or a folder for PNGs)")]
    UnknownFormat { path: PathBuf },
}
