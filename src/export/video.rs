//! Video files through the system `ffmpeg` (driven with ffmpeg-sidecar; never downloaded
//! automatically): MP4 (H.264, yuv420p), WebM (VP9, yuv420p), GIF (per-clip palette).

use std::io::Write;
use std::path::{Path, PathBuf};

use ffmpeg_sidecar::command::FfmpegCommand;
use ffmpeg_sidecar::event::{FfmpegEvent, LogLevel};

use super::{ExportError, RgbFrames};

/// A video container and codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoFormat {
    /// H.264 in MP4, yuv420p (plays everywhere; needs even sizes, so odd clips get a 1-px pad).
    Mp4,
    /// VP9 in WebM, yuv420p, constant quality.
    Webm,
    /// Animated GIF with a palette computed from the whole clip.
    Gif,
}

impl VideoFormat {
    /// The format a file name asks for (`.mp4`, `.webm`, `.gif`, any case).
    pub fn from_path(path: &Path) -> Option<Self> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "mp4" => Some(VideoFormat::Mp4),
            "webm" => Some(VideoFormat::Webm),
            "gif" => Some(VideoFormat::Gif),
            _ => None,
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            VideoFormat::Mp4 => "mp4",
            VideoFormat::Webm => "webm",
            VideoFormat::Gif => "gif",
        }
    }

    /// ffmpeg's output options for this format.
    fn codec_args(self) -> Vec<&'static str> {
        // yuv420p subsamples chroma 2×2, so both sizes must be even: pad the odd ones by a pixel.
        const EVEN: &str = "pad=ceil(iw/2)*2:ceil(ih/2)*2";
        match self {
            VideoFormat::Mp4 => {
                vec!["-vf", EVEN, "-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", "18", "-movflags", "+faststart"]
            }
            VideoFormat::Webm => {
                vec![
                    "-vf",
                    EVEN,
                    "-c:v",
                    "libvpx-vp9",
                    "-pix_fmt",
                    "yuv420p",
                    "-b:v",
                    "0",
                    "-crf",
                    "30",
                    "-row-mt",
                    "1",
                ]
            }
            VideoFormat::Gif => {
                vec!["-vf", "split[a][b];[a]palettegen=stats_mode=full[p];[b][p]paletteuse", "-loop", "0"]
            }
        }
    }
}

/// The ffmpeg binary to run: `ffmpeg` on PATH by default, or an explicit path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ffmpeg {
    program: PathBuf,
}

impl Default for Ffmpeg {
    fn default() -> Self {
        Ffmpeg::system()
    }
}

impl Ffmpeg {
    /// `ffmpeg` as found on PATH.
    pub fn system() -> Self {
        Ffmpeg { program: PathBuf::from("ffmpeg") }
    }

    /// A specific binary (e.g. from settings).
    pub fn at(program: impl Into<PathBuf>) -> Self {
        Ffmpeg { program: program.into() }
    }

    pub fn program(&self) -> &Path {
        &self.program
    }

    fn missing(&self) -> ExportError {
        ExportError::FfmpegMissing { program: self.program.clone() }
    }

    /// Runs `ffmpeg -version`; returns its first line, or [`ExportError::FfmpegMissing`].
    pub fn version(&self) -> Result<String, ExportError> {
        let output = std::process::Command::new(&self.program)
            .arg("-version")
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|_| self.missing())?;
        if !output.status.success() {
            return Err(self.missing());
        }
        Ok(String::from_utf8_lossy(&output.stdout).lines().next().unwrap_or("ffmpeg").to_string())
    }

    pub fn is_available(&self) -> bool {
        self.version().is_ok()
    }

    /// Encodes the clip to `path` in `format` at the clip's fps. ffmpeg writes a temporary file
    /// beside `path` that replaces it only once encoding succeeded: when ffmpeg fails midway (a
    /// full disk, a crash) no half-written video is left, and an earlier file at `path` survives.
    pub fn write_video(&self, path: &Path, clip: &RgbFrames, format: VideoFormat) -> Result<(), ExportError> {
        clip.validate()?;
        self.version()?;
        let partial = partial_path(path, format);
        let encoded = self.encode(&partial, path, clip, format).and_then(|()| {
            std::fs::rename(&partial, path).map_err(|source| ExportError::Io { path: path.into(), source })
        });
        if encoded.is_err() {
            let _ = std::fs::remove_file(&partial);
        }
        encoded
    }

    /// Runs ffmpeg writing `out`; errors name `path`, the file the user asked for.
    fn encode(&self, out: &Path, path: &Path, clip: &RgbFrames, format: VideoFormat) -> Result<(), ExportError> {
        let fail = |reason: String| ExportError::Ffmpeg { path: path.into(), reason };
        let mut cmd = FfmpegCommand::new_with_path(&self.program);
        cmd.hide_banner()
            .args(["-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24"])
            .args(["-s", &format!("{}x{}", clip.width, clip.height)])
            .args(["-framerate", &format!("{}", clip.fps)])
            .input("-")
            .args(format.codec_args())
            .overwrite()
            .output(out);
        let mut child = cmd.spawn().map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => self.missing(),
            _ => fail(e.to_string()),
        })?;
        let mut stdin = child.take_stdin().ok_or_else(|| fail("ffmpeg has no stdin".into()))?;
        let mut errors = Vec::new();
        std::thread::scope(|s| {
            let writer = s.spawn(move || -> std::io::Result<()> {
                for frame in &clip.frames {
                    stdin.write_all(frame)?;
                }
                Ok(()) // dropping stdin ends the input
            });
            if let Ok(events) = child.iter() {
                for event in events {
                    match event {
                        FfmpegEvent::Log(LogLevel::Error | LogLevel::Fatal, msg) | FfmpegEvent::Error(msg) => {
                            errors.push(msg)
                        }
                        _ => {}
                    }
                }
            }
            if let Ok(Err(e)) = writer.join() {
                errors.push(format!("writing frames: {e}"));
            }
        });
        let status = child.wait().map_err(|e| fail(e.to_string()))?;
        if !status.success() {
            return Err(fail(if errors.is_empty() { format!("exit status {status}") } else { errors.join("; ") }));
        }
        Ok(())
    }
}

/// The temporary file an encode writes: hidden, beside `path`, keeping the extension ffmpeg
/// picks the container from.
fn partial_path(path: &Path, format: VideoFormat) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.partial.{}", std::process::id(), format.extension()))
}

/// Whether `ffmpeg` is on PATH.
pub fn ffmpeg_available() -> bool {
    Ffmpeg::system().is_available()
}

/// Encodes the clip to `path` with the system ffmpeg; the format follows the extension.
pub fn write_video(path: &Path, clip: &RgbFrames) -> Result<(), ExportError> {
    let format = VideoFormat::from_path(path).ok_or_else(|| ExportError::UnknownFormat { path: path.into() })?;
    Ffmpeg::system().write_video(path, clip, format)
}
