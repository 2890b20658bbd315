//! Writing frames out: PNG sequences (image crate), videos through the system ffmpeg (MP4 H.264,
//! WebM VP9, GIF), and the trajectory overlay drawn onto a copy of a clip.

pub mod overlay;
pub mod png;
pub mod video;

use std::path::{Path, PathBuf};

pub use overlay::{draw_overlay, OverlayStyle, OverlayTrack};
pub use video::{Ffmpeg, VideoFormat};

/// A clip of 8-bit RGB frames.
#[derive(Debug, Clone)]
pub struct RgbFrames {
    pub width: u32,
    pub height: u32,
    /// Frames per second (the scene's).
    pub fps: f32,
    /// One `width * height * 3` buffer per frame, rows top to bottom.
    pub frames: Vec<Vec<u8>>,
}

impl RgbFrames {
    /// Checks that the clip can be written: frames present, sizes consistent, fps positive.
    pub fn validate(&self) -> Result<(), ExportError> {
        let bad = |reason: String| Err(ExportError::Frames { reason });
        if self.width == 0 || self.height == 0 {
            return bad(format!("empty frame size {}x{}", self.width, self.height));
        }
        if self.frames.is_empty() {
            return bad("the clip has no frames".into());
        }
        if !(self.fps.is_finite() && self.fps > 0.0) {
            return bad(format!("fps must be positive, got {}", self.fps));
        }
        let expected = self.width as usize * self.height as usize * 3;
        if let Some((i, f)) = self.frames.iter().enumerate().find(|(_, f)| f.len() != expected) {
            return bad(format!(
                "frame {i} has {} bytes, expected {expected} ({}x{} RGB)",
                f.len(),
                self.width,
                self.height
            ));
        }
        Ok(())
    }

    /// Frames from f32 RGB in [0, 1], channels last (`[T, H, W, 3]`, what the pipeline decodes to):
    /// `round(255·clamp(v, 0, 1))`.
    pub fn from_unit_floats(width: u32, height: u32, fps: f32, frames: &[f32]) -> Result<Self, ExportError> {
        let per_frame = width as usize * height as usize * 3;
        if per_frame == 0 || frames.len() % per_frame != 0 {
            return Err(ExportError::Frames {
                reason: format!("{} values do not split into {width}x{height} RGB frames", frames.len()),
            });
        }
        let frames = frames
            .chunks(per_frame)
            .map(|f| f.iter().map(|&v| (v.clamp(0.0, 1.0) * 255.0).round() as u8).collect())
            .collect();
        Ok(RgbFrames { width, height, fps, frames })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{path}: cannot write: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: cannot encode PNG: {reason}")]
    Png { path: PathBuf, reason: String },
    #[error(
        "ffmpeg was not found (tried `{}`); install it (Debian/Ubuntu: `sudo apt-get install ffmpeg`, \
         macOS: `brew install ffmpeg`) or export a PNG folder instead. Tora Studio never downloads ffmpeg.",
        program.display()
    )]
    FfmpegMissing { program: PathBuf },
    #[error("{path}: ffmpeg failed: {reason}")]
    Ffmpeg { path: PathBuf, reason: String },
    #[error("{path}: unsupported video extension; use .mp4, .webm or .gif (or a folder for PNGs)")]
    UnknownFormat { path: PathBuf },
    #[error("cannot export this clip: {reason}")]
    Frames { reason: String },
}

/// What [`export_clip`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exported {
    Video(VideoFormat),
    /// `frame_0000.png`, ... in a folder.
    PngSequence,
}

/// Writes `clip` to `path`: a video when the extension is .mp4/.webm/.gif, else a PNG folder
/// (`frame_0000.png`, ...). Other extensions are refused rather than guessed at.
pub fn export_clip(path: &Path, clip: &RgbFrames, ffmpeg: &Ffmpeg) -> Result<Exported, ExportError> {
    if let Some(format) = VideoFormat::from_path(path) {
        ffmpeg.write_video(path, clip, format)?;
        return Ok(Exported::Video(format));
    }
    if path.extension().is_some() && !path.is_dir() {
        return Err(ExportError::UnknownFormat { path: path.into() });
    }
    png::write_png_sequence(path, clip, "frame")?;
    Ok(Exported::PngSequence)
}

/// Where the overlay version of an export goes: `clip.mp4` -> `clip_tracks.mp4`, `frames/` -> `frames_tracks/`.
pub fn overlay_path(path: &Path) -> PathBuf {
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "clip".into());
    let name = match path.extension() {
        Some(ext) => format!("{stem}_tracks.{}", ext.to_string_lossy()),
        None => format!("{stem}_tracks"),
    };
    path.with_file_name(name)
}

/// Writes the clean clip to `path` and, when tracks are given, the overlay version next to it
/// (see [`overlay_path`]). Returns the paths written.
pub fn export_with_overlay(
    path: &Path,
    clip: &RgbFrames,
    tracks: &[OverlayTrack],
    style: &OverlayStyle,
    ffmpeg: &Ffmpeg,
) -> Result<Vec<PathBuf>, ExportError> {
    export_clip(path, clip, ffmpeg)?;
    let mut written = vec![path.to_path_buf()];
    if !tracks.is_empty() {
        let overlay_out = overlay_path(path);
        export_clip(&overlay_out, &draw_overlay(clip, tracks, style), ffmpeg)?;
        written.push(overlay_out);
    }
    Ok(written)
}
