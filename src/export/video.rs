//! Video files through the system `ffmpeg` (ffmpeg-sidecar; never downloaded automatically).

use std::io::Write;
use std::path::Path;

use ffmpeg_sidecar::command::FfmpegCommand;
use ffmpeg_sidecar::event::{FfmpegEvent, LogLevel};

use super::{ExportError, RgbFrames};

/// Whether a usable `ffmpeg` is on PATH.
pub fn ffmpeg_available() -> bool {
    ffmpeg_sidecar::command::ffmpeg_is_installed()
}

/// Encodes the clip to `path`; the container/codec follows the extension (.mp4 H.264, .webm VP9, .gif).
pub fn write_video(path: &Path, clip: &RgbFrames) -> Result<(), ExportError> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    // yuv420p needs even sizes: pad by one pixel where the clip is odd.
    let even = "pad=ceil(iw/2)*2:ceil(ih/2)*2";
    let codec_args: Vec<&str> = match ext.as_str() {
        "mp4" => vec!["-c:v", "libx264", "-pix_fmt", "yuv420p", "-vf", even, "-crf", "18"],
        "webm" => vec!["-c:v", "libvpx-vp9", "-pix_fmt", "yuv420p", "-vf", even, "-b:v", "0", "-crf", "30"],
        "gif" => vec!["-vf", "split[a][b];[a]palettegen[p];[b][p]paletteuse"],
        _ => return Err(ExportError::UnknownFormat { path: path.into() }),
    };
    if !ffmpeg_available() {
        return Err(ExportError::FfmpegMissing);
    }
    let fail = |reason: String| ExportError::Ffmpeg { path: path.into(), reason };
    let mut cmd = FfmpegCommand::new();
    cmd.hide_banner()
        .args(["-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24"])
        .args(["-s", &format!("{}x{}", clip.width, clip.height)])
        .args(["-framerate", &format!("{}", clip.fps)])
        .input("-")
        .args(codec_args)
        .overwrite()
        .output(path);
    let mut child = cmd.spawn().map_err(|e| fail(e.to_string()))?;
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
