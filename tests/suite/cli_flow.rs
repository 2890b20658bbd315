//! `tora-studio flow` and `verify` run as a user runs them: the real binary on real files.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tora_studio::tensor_file::TensorFile;
use tora_studio::trajectory::{project, Keyframe, Scene, Track};

fn studio(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tora-studio")).args(args).output().expect("run tora-studio")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// A bad-input run: exit code 2, one line naming `needle`, no panic.
fn assert_bad_input(out: &Output, needle: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(2), "stderr: {err}");
    assert!(err.contains(needle), "expected {needle:?} in: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn point_files_to_safetensors_in_the_fixture_layout() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(dir.path(), "a.txt", "10,20\n100,200\n250,30\n");
    let b = write(dir.path(), "b.txt", "128,128\n60,128\n");
    let out_path = dir.path().join("flow.safetensors");
    let out = studio(&[
        "flow",
        "--points",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--frames",
        "9",
        "--size",
        "64x48",
        "--out",
        out_path.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let f = TensorFile::open(&out_path).unwrap();
    assert_eq!(f.f32("flow").unwrap().shape, vec![9, 48, 64, 2]);
    assert_eq!(f.i32("points").unwrap().shape, vec![2, 9, 2]);
    let rgb = f.u8("flow_rgb").unwrap();
    assert_eq!(rgb.shape, vec![9, 3, 48, 64]);
    let video = f.f32("video_flow").unwrap();
    assert_eq!(video.shape, vec![9, 3, 48, 64]);
    assert!(video.data.iter().zip(&rgb.data).all(|(v, &c)| *v == c as f32 / 127.5 - 1.0));
    // Track a starts at int(64*10/256), int(48*20/256) = (2, 3).
    assert_eq!(&f.i32("points").unwrap().data[..2], &[2, 3]);
    assert!(rgb.data.iter().any(|&c| c != 255), "motion must colour some pixels");
}

#[test]
fn project_to_png_folder() {
    let dir = tempfile::tempdir().unwrap();
    let mut scene = Scene { width: 40, height: 30, frames: 5, ..Scene::default() };
    scene.tracks.push(Track::new("t", [255, 0, 0], vec![Keyframe::at(20.0, 20.0), Keyframe::at(200.0, 100.0)]));
    let proj = dir.path().join("p.json");
    project::save(&proj, &scene).unwrap();
    let frames = dir.path().join("frames");
    let out = studio(&["flow", "--project", proj.to_str().unwrap(), "--out", frames.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut names: Vec<String> =
        std::fs::read_dir(&frames).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    assert_eq!(names, (0..5).map(|i| format!("flow_{i:04}.png")).collect::<Vec<_>>());
    let img = image::open(frames.join("flow_0002.png")).unwrap().to_rgb8();
    assert_eq!(img.dimensions(), (40, 30));
}

#[test]
fn video_output_uses_system_ffmpeg_or_says_it_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(dir.path(), "a.txt", "10,20\n200,200\n");
    let mp4 = dir.path().join("flow.mp4");
    let out = studio(&[
        "flow",
        "--points",
        a.to_str().unwrap(),
        "--frames",
        "9",
        "--size",
        "65x47",
        "--out",
        mp4.to_str().unwrap(),
    ]);
    if tora_studio::export::video::ffmpeg_available() {
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(std::fs::metadata(&mp4).unwrap().len() > 0);
    } else {
        assert_bad_input(&out, "ffmpeg was not found");
    }
}

#[test]
fn bad_input_is_one_line_naming_file_and_line_with_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let good = write(d, "good.txt", "1,2\n30,40\n");
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let out_file = s(&d.join("o.safetensors"));

    let malformed = write(d, "malformed.txt", "1,2\nthree,4\n");
    assert_bad_input(&studio(&["flow", "--points", &s(&malformed), "--out", &out_file]), "malformed.txt:2:");

    let empty = write(d, "empty.txt", "");
    assert_bad_input(
        &studio(&["flow", "--points", &s(&empty), "--out", &out_file]),
        "empty.txt: the point file holds no points",
    );

    let off = write(d, "off.txt", "1,2\n300,4\n");
    assert_bad_input(
        &studio(&["flow", "--points", &s(&off), "--out", &out_file]),
        "off.txt:2: point (300, 4) is outside",
    );

    assert_bad_input(&studio(&["flow", "--points", &s(&good), "--size", "0x480", "--out", &out_file]), "zero side");
    assert_bad_input(
        &studio(&["flow", "--points", &s(&good), "--frames", "1", "--out", &out_file]),
        "at least 2 frames",
    );

    let bad_json =
        write(d, "broken.json", "{\"format\": \"tora-studio-project\",\n \"version\": 1,\n \"scene\": {oops}}");
    assert_bad_input(&studio(&["flow", "--project", &s(&bad_json), "--out", &out_file]), "broken.json:3:");

    // A single-point track: the reference crashes; we name the track.
    let single = write(d, "single.txt", "100,100\n");
    assert_bad_input(&studio(&["flow", "--points", &s(&single), "--out", &out_file]), "track 'single'");

    // A missing file.
    assert_bad_input(
        &studio(&["flow", "--points", &s(&d.join("nope.txt")), "--out", &out_file]),
        "nope.txt: cannot read",
    );
}

#[test]
fn verify_reports_one_line_per_check_and_a_summary() {
    let root = tora_studio::verify::fixtures_root(None);
    if !root.is_dir() {
        tora_studio::verify::say_loudly(&format!(
            "FIXTURES MISSING: {} not found; set TORA_FIXTURES. verify NOT checked.",
            root.display()
        ));
        return;
    }
    let out = studio(&["verify", "--only", "flow", "--fixtures", root.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    let last = text.lines().last().unwrap_or("");
    assert!(last.ends_with("passed, 0 failed"), "{last}");
    assert!(text.lines().filter(|l| l.starts_with("PASS flow ")).count() >= 10, "{text}");

    // An empty folder has nothing to verify: loud, exit 1.
    let empty = tempfile::tempdir().unwrap();
    let out = studio(&["verify", "--only", "flow", "--fixtures", empty.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no fixtures"));
}
