//! Generation end to end: the `pipeline` parity (whole T2V and I2V runs replaying the recorded
//! noise) on cpu and wgpu, and `tora-studio generate` on the fixture model folders writing a
//! playable MP4 and a PNG folder, plus its error paths.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::common::{fixtures_root, verify_passes};
use tora_studio::verify::{self, Kind};
use tora_studio::Backend;

/// Model folders (holding `io/pipeline.safetensors`) whose transformer takes `in_channels`
/// (16 = T2V, 32 = I2V).
pub(crate) fn model_dirs(in_channels: u64) -> Vec<PathBuf> {
    let root = fixtures_root();
    let dirs: Vec<PathBuf> = verify::walk_files(&root)
        .into_iter()
        .filter(|p| {
            p.file_name().is_some_and(|n| n == "pipeline.safetensors")
                && p.parent().and_then(|d| d.file_name()).is_some_and(|n| n == "io")
        })
        .filter_map(|p| p.parent().and_then(Path::parent).map(Path::to_path_buf))
        .filter(|d| {
            std::fs::read_to_string(d.join("transformer/config.json"))
                .ok()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                .and_then(|c| c.get("in_channels").and_then(|v| v.as_u64()))
                == Some(in_channels)
        })
        .collect();
    if dirs.is_empty() {
        verify::say_loudly(&format!(
            "WARNING: no */io/pipeline.safetensors fixtures (in_channels {in_channels}) under {}: generation tests are SKIPPED. Set TORA_FIXTURES.",
            root.display()
        ));
    }
    dirs
}

fn run_verify(backend: Backend) {
    if model_dirs(16).is_empty() && model_dirs(32).is_empty() {
        return;
    }
    verify_passes(&[Kind::Pipeline], backend);
}

#[test]
fn verify_pipeline_cpu() {
    run_verify(Backend::Cpu);
}

#[test]
fn verify_pipeline_wgpu() {
    run_verify(Backend::Wgpu);
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tora-studio"))
}

fn write_points(dir: &Path) -> Vec<PathBuf> {
    let a = dir.join("a.txt");
    let b = dir.join("b.txt");
    std::fs::write(&a, "40,200\n120,120\n220,60\n").unwrap();
    std::fs::write(&b, "200,220\n60,180\n").unwrap();
    vec![a, b]
}

fn ffmpeg_present() -> bool {
    tora_studio::export::video::Ffmpeg::system().is_available()
}

#[test]
fn generate_t2v_writes_png_frames_and_a_playable_mp4() {
    let Some(model) = model_dirs(16).into_iter().next() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let points = write_points(tmp.path());
    let frames_dir = tmp.path().join("frames");
    let mut cmd = bin();
    cmd.args(["generate", "--model"]).arg(&model);
    cmd.args(["--prompt", "a red ball rolls across a table", "--steps", "2", "--seed", "7"]);
    cmd.args(["--size", "48x32", "--frames", "9", "--out"]).arg(&frames_dir).arg("--points").args(&points);
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "generate failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("step 2/2"), "no progress shown:\n{stderr}");
    let pngs = std::fs::read_dir(&frames_dir)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "png"))
        .count();
    assert_eq!(pngs, 9, "expected 9 frames in {}", frames_dir.display());
    let first = image::open(frames_dir.join("frame_0000.png")).unwrap();
    assert_eq!((first.width(), first.height()), (48, 32));

    if !ffmpeg_present() {
        verify::say_loudly("WARNING: ffmpeg not installed: the MP4 half of the generate test is SKIPPED");
        return;
    }
    let mp4 = tmp.path().join("clip.mp4");
    let mut cmd = bin();
    cmd.args(["generate", "--model"]).arg(&model);
    cmd.args(["--prompt", "a red ball", "--steps", "2", "--size", "48x32", "--frames", "9", "--overlay", "--out"]);
    cmd.arg(&mp4).arg("--points").args(&points);
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "generate mp4 failed:\n{}", String::from_utf8_lossy(&out.stderr));
    // Playable: ffprobe (or ffmpeg) decodes it and counts the frames.
    let probe =
        Command::new("ffmpeg").args(["-v", "error", "-i"]).arg(&mp4).args(["-f", "null", "-"]).output().unwrap();
    assert!(
        probe.status.success(),
        "ffmpeg cannot decode {}: {}",
        mp4.display(),
        String::from_utf8_lossy(&probe.stderr)
    );
    assert!(tmp.path().join("clip_tracks.mp4").is_file(), "the overlay version was not written");
}

#[test]
fn generate_i2v_takes_a_first_frame() {
    let Some(model) = model_dirs(32).into_iter().next() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let points = write_points(tmp.path());
    // The tiny I2V model's learned positional embedding fixes its size: read it from the fixture.
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(model.join("transformer/config.json")).unwrap()).unwrap();
    let (h, w, f) = (
        cfg["sample_height"].as_u64().unwrap() * 8,
        cfg["sample_width"].as_u64().unwrap() * 8,
        cfg["sample_frames"].as_u64().unwrap(),
    );
    // An image of another size and aspect: it is scaled to cover and centre-cropped.
    let image_path = tmp.path().join("first.png");
    image::RgbImage::from_fn(50, 90, |x, y| image::Rgb([(x * 5) as u8, (y * 2) as u8, 128])).save(&image_path).unwrap();
    let out_dir = tmp.path().join("frames");
    let mut cmd = bin();
    cmd.args(["generate", "--model"]).arg(&model).args(["--prompt", "an astronaut floats", "--steps", "2"]);
    cmd.args(["--size", &format!("{w}x{h}"), "--frames", &f.to_string(), "--image"]).arg(&image_path);
    cmd.arg("--out").arg(&out_dir).arg("--points").args(&points);
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "i2v generate failed:\n{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read_dir(&out_dir).unwrap().count(), f as usize);

    // Without the image the I2V model says what it needs, exit code 2.
    let mut cmd = bin();
    cmd.args(["generate", "--model"]).arg(&model).args(["--prompt", "x", "--steps", "1"]);
    cmd.args(["--size", &format!("{w}x{h}"), "--frames", &f.to_string(), "--out"]).arg(tmp.path().join("no"));
    cmd.arg("--points").args(&points);
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("image-to-video"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn generate_reports_bad_input_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let points = write_points(tmp.path());
    // A folder that is not a model.
    let out = bin()
        .args(["generate", "--model"])
        .arg(tmp.path())
        .args(["--prompt", "x", "--size", "48x32", "--frames", "9", "--out"])
        .arg(tmp.path().join("o"))
        .arg("--points")
        .args(&points)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("transformer"), "{stderr}");

    let Some(model) = model_dirs(16).into_iter().next() else { return };
    // A frame count the VAE cannot make.
    let out = bin()
        .args(["generate", "--model"])
        .arg(&model)
        .args(["--prompt", "x", "--size", "48x32", "--frames", "10", "--out"])
        .arg(tmp.path().join("o"))
        .arg("--points")
        .args(&points)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("8k+1"), "{}", String::from_utf8_lossy(&out.stderr));
}

/// `generate --model <SAT ckpts/>`: Tora's SAT tree runs as-is (I2V, SAT semantics: any size,
/// since SAT never adds the learned positional embedding), and `verify` passes every transformer,
/// VAE, T5, scheduler and pipeline check through the SAT files.
#[test]
fn generate_and_verify_through_a_sat_tree() {
    let root = fixtures_root();
    let trees: Vec<PathBuf> = verify::walk_files(&root)
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n == "mp_rank_00_model_states.pt"))
        .filter_map(|p| Some(p.parent()?.parent()?.parent()?.to_path_buf()))
        .collect();
    if trees.is_empty() {
        verify::say_loudly("WARNING: no SAT fixture tree (tora/<variant>/mp_rank_00_model_states.pt): SKIPPED");
        return;
    }
    for tree in &trees {
        let tmp = tempfile::tempdir().unwrap();
        let points = write_points(tmp.path());
        let image_path = tmp.path().join("first.png");
        image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([(x * 4) as u8, (y * 5) as u8, 60]))
            .save(&image_path)
            .unwrap();
        let out_dir = tmp.path().join("frames");
        let mut cmd = bin();
        cmd.args(["generate", "--model"]).arg(tree).args(["--prompt", "a kite", "--steps", "2"]);
        cmd.args(["--size", "64x48", "--frames", "17", "--image"]).arg(&image_path);
        cmd.arg("--out").arg(&out_dir).arg("--points").args(&points);
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "SAT generate failed:\n{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(std::fs::read_dir(&out_dir).unwrap().count(), 17);
    }

    let kinds = [Kind::Transformer, Kind::TrajExtractor, Kind::Mgf, Kind::VaeEncode, Kind::VaeDecode, Kind::T5];
    let kinds: Vec<Kind> = kinds.into_iter().chain([Kind::Scheduler, Kind::Pipeline]).collect();
    for tree in &trees {
        // Rooted at the SAT tree: only its own checks run (its twin's io files are read from beside it).
        let name = tree.display();
        let results = verify::run(tree, &kinds, Backend::Cpu, |_| {});
        for kind in &kinds {
            assert!(
                results.iter().any(|r| r.kind == *kind),
                "{name}: no {} check ran through the SAT files",
                kind.name()
            );
        }
        assert!(results.iter().any(|r| r.case.contains("io_sat/")), "{name}: the SAT-semantics check did not run");
        let failed: Vec<String> = results.iter().filter(|r| !r.passed).map(|r| r.line()).collect();
        assert!(failed.is_empty(), "{}", failed.join("\n"));
    }
}
