//! Export: every video format through the system ffmpeg (decoded back with ffmpeg/ffprobe to check
//! size, frame count, fps and colours), the missing-ffmpeg error, PNG sequences (exact round trip),
//! the clip checks, and the trajectory overlay.

use std::path::Path;
use std::process::Command;

use tora_studio::export::overlay::tracks_from;
use tora_studio::export::{
    draw_overlay, export_clip, export_with_overlay, overlay_path, ExportError, Exported, Ffmpeg, OverlayStyle,
    OverlayTrack, RgbFrames, VideoFormat,
};

/// A clip with odd sizes: a grey background and a red 6×6 square moving right one pixel per frame.
fn moving_square(width: u32, height: u32, frames: usize, fps: f32) -> RgbFrames {
    let frames = (0..frames)
        .map(|f| {
            let mut px = vec![60u8; (width * height * 3) as usize];
            for y in 4..10 {
                for x in (2 + f)..(8 + f) {
                    let i = (y * width as usize + x) * 3;
                    px[i..i + 3].copy_from_slice(&[220, 30, 30]);
                }
            }
            px
        })
        .collect();
    RgbFrames { width, height, fps, frames }
}

/// The system ffmpeg, or a loud note that the format tests are skipped.
fn system_ffmpeg() -> Option<Ffmpeg> {
    let ffmpeg = Ffmpeg::system();
    if ffmpeg.is_available() {
        Some(ffmpeg)
    } else {
        tora_studio::verify::say_loudly(
            "WARNING: ffmpeg is not on PATH: MP4/WebM/GIF export tests are SKIPPED (install ffmpeg to run them).",
        );
        None
    }
}

/// `(width, height, fps, frame count)` of a video's first stream, from ffprobe.
fn probe(path: &Path) -> (u32, u32, f64, usize) {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-count_frames"])
        .args(["-show_entries", "stream=width,height,avg_frame_rate,nb_read_frames", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe runs (it ships with ffmpeg)");
    let text = String::from_utf8_lossy(&out.stdout);
    let fields: Vec<&str> = text.trim().split(',').collect();
    assert_eq!(fields.len(), 4, "ffprobe said {text:?}");
    let rate = fields[2].split_once('/').map(|(a, b)| a.parse::<f64>().unwrap() / b.parse::<f64>().unwrap()).unwrap();
    (fields[0].parse().unwrap(), fields[1].parse().unwrap(), rate, fields[3].parse().unwrap())
}

/// Decodes every frame back to RGB24.
fn decode(path: &Path) -> Vec<u8> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .output()
        .expect("ffmpeg decodes");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

fn check_video(format: VideoFormat, colour_tol: i32) {
    let Some(ffmpeg) = system_ffmpeg() else { return };
    let dir = tempfile::tempdir().unwrap();
    let clip = moving_square(33, 21, 7, 12.0);
    let path = dir.path().join(format!("clip.{}", format.extension()));
    assert_eq!(export_clip(&path, &clip, &ffmpeg).unwrap(), Exported::Video(format));
    let (w, h, fps, frames) = probe(&path);
    // yuv420p formats pad odd sizes to even; GIF keeps them.
    let (ew, eh) = if format == VideoFormat::Gif { (33, 21) } else { (34, 22) };
    assert_eq!((w, h, frames), (ew, eh, 7), "{format:?}");
    // GIF delays are whole centiseconds: 12 fps -> 8 cs -> 12.5 fps.
    let fps_tol = if format == VideoFormat::Gif { 0.6 } else { 1e-6 };
    assert!((fps - 12.0).abs() <= fps_tol, "{format:?} fps {fps}");
    // Colours survive the encode: the square's centre and the background, on the last frame.
    let raw = decode(&path);
    assert_eq!(raw.len(), (w * h * 3) as usize * 7);
    let last = &raw[(w * h * 3) as usize * 6..];
    let at = |x: u32, y: u32| {
        let i = ((y * w + x) * 3) as usize;
        [last[i] as i32, last[i + 1] as i32, last[i + 2] as i32]
    };
    for (x, y, expected) in [(10, 7, [220, 30, 30]), (25, 15, [60, 60, 60])] {
        let got = at(x, y);
        let err = got.iter().zip(expected).map(|(a, b)| (a - b).abs()).max().unwrap();
        assert!(err <= colour_tol, "{format:?} pixel ({x},{y}) {got:?}, expected {expected:?}");
    }
}

#[test]
fn mp4_is_h264_yuv420p_with_even_size_and_the_clip_fps() {
    check_video(VideoFormat::Mp4, 12);
    if let Some(ffmpeg) = system_ffmpeg() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.MP4");
        ffmpeg.write_video(&path, &moving_square(32, 20, 3, 24.0), VideoFormat::Mp4).unwrap();
        let out = Command::new("ffprobe")
            .args(["-v", "error", "-select_streams", "v:0", "-show_entries", "stream=codec_name,pix_fmt", "-of"])
            .args(["csv=p=0"])
            .arg(&path)
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "h264,yuv420p");
        assert_eq!(probe(&path).2, 24.0);
    }
}

#[test]
fn webm_is_vp9() {
    check_video(VideoFormat::Webm, 12);
    if let Some(ffmpeg) = system_ffmpeg() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.webm");
        ffmpeg.write_video(&path, &moving_square(32, 20, 3, 8.0), VideoFormat::Webm).unwrap();
        let out = Command::new("ffprobe")
            .args(["-v", "error", "-select_streams", "v:0", "-show_entries", "stream=codec_name", "-of", "csv=p=0"])
            .arg(&path)
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "vp9");
    }
}

#[test]
fn gif_keeps_odd_sizes_and_colours() {
    check_video(VideoFormat::Gif, 6);
}

#[test]
fn missing_ffmpeg_is_a_clear_error_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let ffmpeg = Ffmpeg::at(dir.path().join("no-such-ffmpeg"));
    assert!(!ffmpeg.is_available());
    let clip = moving_square(16, 16, 2, 8.0);
    for format in [VideoFormat::Mp4, VideoFormat::Webm, VideoFormat::Gif] {
        let path = dir.path().join(format!("out.{}", format.extension()));
        let err = ffmpeg.write_video(&path, &clip, format).unwrap_err();
        assert!(matches!(err, ExportError::FfmpegMissing { .. }), "{err}");
        let text = err.to_string();
        assert!(text.contains("ffmpeg was not found") && text.contains("no-such-ffmpeg"), "{text}");
        assert!(text.contains("apt-get install ffmpeg") && text.contains("never downloads"), "{text}");
        assert!(!path.exists());
    }
    // PNG export does not need ffmpeg.
    assert_eq!(export_clip(&dir.path().join("pngs"), &clip, &ffmpeg).unwrap(), Exported::PngSequence);
}

#[test]
fn png_sequence_round_trips_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let clip = moving_square(33, 21, 4, 12.0);
    let out = dir.path().join("frames");
    export_clip(&out, &clip, &Ffmpeg::at("/nonexistent")).unwrap();
    for (i, frame) in clip.frames.iter().enumerate() {
        let img = image::open(out.join(format!("frame_{i:04}.png"))).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (33, 21));
        assert_eq!(img.as_raw(), frame, "frame {i}");
    }
    assert!(!out.join("frame_0004.png").exists());
}

#[test]
fn bad_clips_and_paths_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ffmpeg = Ffmpeg::system();
    let mut clip = moving_square(16, 16, 2, 0.0);
    let err = export_clip(&dir.path().join("a"), &clip, &ffmpeg).unwrap_err();
    assert!(err.to_string().contains("fps must be positive"), "{err}");
    clip.fps = 10.0;
    clip.frames[1].pop();
    let err = export_clip(&dir.path().join("a"), &clip, &ffmpeg).unwrap_err();
    assert!(err.to_string().contains("frame 1 has 767 bytes"), "{err}");
    clip.frames.clear();
    assert!(matches!(export_clip(&dir.path().join("a.mp4"), &clip, &ffmpeg), Err(ExportError::Frames { .. })));
    let err = export_clip(&dir.path().join("a.avi"), &moving_square(16, 16, 1, 1.0), &ffmpeg).unwrap_err();
    assert!(matches!(err, ExportError::UnknownFormat { .. }), "{err}");
    assert!(RgbFrames::from_unit_floats(2, 2, 8.0, &[0.5; 11]).is_err());
    let c = RgbFrames::from_unit_floats(1, 1, 8.0, &[-1.0, 0.5, 2.0, 0.0, 0.0, 1.0]).unwrap();
    assert_eq!(c.frames, [vec![0, 128, 255], vec![0, 0, 255]]);
}

// ---- overlay -----------------------------------------------------------------------------------

fn pixel(clip: &RgbFrames, f: usize, x: u32, y: u32) -> [u8; 3] {
    let i = ((y * clip.width + x) * 3) as usize;
    clip.frames[f][i..i + 3].try_into().unwrap()
}

#[test]
fn overlay_draws_the_path_so_far_and_the_current_dot() {
    let black = RgbFrames { width: 40, height: 30, fps: 8.0, frames: vec![vec![0; 40 * 30 * 3]; 3] };
    let green = [0, 255, 0];
    let tracks = tracks_from(&[vec![[5, 5], [20, 5], [20, 25]]], &[green]);
    let style = OverlayStyle::default();
    let out = draw_overlay(&black, &tracks, &style);
    // The input is untouched.
    assert!(black.frames.iter().all(|f| f.iter().all(|&v| v == 0)));
    // Frame 0: only the dot at (5,5); the segment's middle is still dark.
    assert_eq!(pixel(&out, 0, 5, 5), green);
    assert_eq!(pixel(&out, 0, 12, 5), [0, 0, 0]);
    // Frame 1: the first segment, dot at (20,5); frame 2: both segments, dot at (20,25).
    assert!(pixel(&out, 1, 12, 5)[1] > 200, "{:?}", pixel(&out, 1, 12, 5));
    assert_eq!(pixel(&out, 1, 20, 5), green);
    assert_eq!(pixel(&out, 1, 20, 15), [0, 0, 0]);
    assert!(pixel(&out, 2, 20, 15)[1] > 200);
    assert_eq!(pixel(&out, 2, 20, 25), green);
    // The dot's dark rim is drawn; far pixels are untouched; nothing but green is added on black.
    assert_eq!(pixel(&out, 2, 35, 2), [0, 0, 0]);
    assert!(out.frames.iter().flatten().step_by(3).all(|&r| r == 0));
}

#[test]
fn overlay_joints_are_not_drawn_twice_and_off_frame_points_are_fine() {
    let grey = RgbFrames { width: 30, height: 30, fps: 8.0, frames: vec![vec![100; 30 * 30 * 3]; 4] };
    let red = [255, 0, 0];
    let style = OverlayStyle { dot_radius: 0.0, dot_rim: 0.0, ..OverlayStyle::default() };
    let tracks = vec![OverlayTrack { points: vec![[5, 15], [15, 15], [25, 15], [-1000, 99999]], colour: red }];
    let out = draw_overlay(&grey, &tracks, &style);
    // With one blend per polyline the joint at (15,15) has the same colour as mid-segment (10,15).
    assert_eq!(pixel(&out, 2, 15, 15), pixel(&out, 2, 10, 15));
    assert_ne!(pixel(&out, 2, 10, 15), [100, 100, 100]);
    // A track shorter than the clip keeps its last point; an empty track draws nothing.
    let short = vec![OverlayTrack { points: vec![[3, 3]], colour: red }, OverlayTrack { points: vec![], colour: red }];
    let out = draw_overlay(&grey, &short, &OverlayStyle::default());
    assert_eq!(pixel(&out, 3, 3, 3), red);
}

#[test]
fn export_with_overlay_writes_the_clean_and_the_overlay_version() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(overlay_path(Path::new("out/clip.mp4")), Path::new("out/clip_tracks.mp4"));
    assert_eq!(overlay_path(Path::new("out/frames")), Path::new("out/frames_tracks"));
    let clip = moving_square(24, 16, 3, 10.0);
    let tracks = tracks_from(&[vec![[2, 2], [10, 10], [20, 12]]], &[[0, 0, 255]]);
    let out = dir.path().join("pngs");
    let written = export_with_overlay(&out, &clip, &tracks, &OverlayStyle::default(), &Ffmpeg::at("/nope")).unwrap();
    assert_eq!(written, [out.clone(), dir.path().join("pngs_tracks")]);
    let clean = image::open(out.join("frame_0002.png")).unwrap().to_rgb8();
    let marked = image::open(dir.path().join("pngs_tracks/frame_0002.png")).unwrap().to_rgb8();
    assert_eq!(clean.as_raw(), &clip.frames[2]);
    assert_eq!(marked.get_pixel(20, 12).0, [0, 0, 255]);
    if let Some(ffmpeg) = system_ffmpeg() {
        let mp4 = dir.path().join("clip.mp4");
        let written = export_with_overlay(&mp4, &clip, &tracks, &OverlayStyle::default(), &ffmpeg).unwrap();
        assert_eq!(written.len(), 2);
        assert_eq!(probe(&written[1]).3, 3);
    }
}
