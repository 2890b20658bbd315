//! CogVideoX VAE: parity over every `*/io/vae_{encode,decode}.safetensors` fixture (cpu, wgpu),
//! the `vae` CLI (safetensors round trip against the fixtures, PNG folders), and bad input.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::common::{cpu, fixtures_root, verify_passes};
use tora_studio::model::cogvideox::vae::{AutoencoderKLCogVideoX, Tiling};
use tora_studio::model::load::LoadError;
use tora_studio::tensor_file::TensorFile;
use tora_studio::verify::{self, Kind};
use tora_studio::Backend;

fn is_cogvideox_vae(model: &Path) -> bool {
    std::fs::read_to_string(model.join("vae/config.json")).is_ok_and(|t| t.contains("\"AutoencoderKLCogVideoX\""))
}

/// Every CogVideoX model folder with an `io/<file>` fixture (the folder holding `io/`).
fn model_dirs(file: &str) -> Vec<PathBuf> {
    let root = fixtures_root();
    let dirs: Vec<PathBuf> = verify::walk_files(&root)
        .into_iter()
        .filter(|p| {
            p.file_name().is_some_and(|n| n == file)
                && p.parent().and_then(|d| d.file_name()).is_some_and(|n| n == "io")
        })
        .filter_map(|p| p.parent().and_then(Path::parent).map(Path::to_path_buf))
        .filter(|d| is_cogvideox_vae(d))
        .collect();
    if dirs.is_empty() {
        verify::say_loudly(&format!(
            "WARNING: no CogVideoX */io/{file} fixtures under {}: VAE parity/CLI tests are SKIPPED. Set TORA_FIXTURES.",
            root.display()
        ));
    }
    dirs
}

fn run_verify(backend: Backend) {
    let encode = model_dirs("vae_encode.safetensors");
    let decode = model_dirs("vae_decode.safetensors");
    if encode.is_empty() && decode.is_empty() {
        return;
    }
    let results = verify_passes(&[Kind::VaeEncode, Kind::VaeDecode], backend);
    // Every fixture produced its main checks.
    let root = fixtures_root();
    for (dirs, name) in [(&encode, "vae_encode/latent_mean"), (&decode, "vae_decode/frames")] {
        for dir in dirs {
            let case = format!("{}/io/{name}", dir.strip_prefix(&root).unwrap_or(dir).display());
            assert!(results.iter().any(|r| r.case == case), "no check {case}");
        }
    }
}

#[test]
fn verify_vae_cpu() {
    run_verify(Backend::Cpu);
}

#[test]
fn verify_vae_wgpu() {
    run_verify(Backend::Wgpu);
}

fn tora(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tora-studio")).args(args).output().expect("run tora-studio")
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// decode/encode through the CLI on the fixture's own tensors == the fixture's outputs.
#[test]
fn cli_safetensors_round_trip_matches_fixtures() {
    for model in model_dirs("vae_decode.safetensors") {
        let tmp = tempfile::tempdir().expect("tempdir");
        let io = model.join("io/vae_decode.safetensors");
        let out = tmp.path().join("frames.safetensors");
        let o = tora(&["vae", "decode", "--model", s(&model), "--in", s(&io), "--tensor", "latent", "--out", s(&out)]);
        assert!(o.status.success(), "decode failed: {}", String::from_utf8_lossy(&o.stderr));
        let ours = TensorFile::open(&out).unwrap().f32("frames").unwrap();
        let reference = TensorFile::open(&io).unwrap().f32("frames").unwrap();
        assert_eq!(ours.shape, reference.shape);
        assert!(max_diff(&ours.data, &reference.data) < 1e-4);

        // The decoded frames encode back (safetensors in): the shape of the latent comes back.
        let latent = tmp.path().join("latent.safetensors");
        let o =
            tora(&["vae", "encode", "--model", s(&model), "--in", s(&out), "--tensor", "frames", "--out", s(&latent)]);
        assert!(o.status.success(), "encode failed: {}", String::from_utf8_lossy(&o.stderr));
        let mean = TensorFile::open(&latent).unwrap().f32("latent_mean").unwrap();
        let z = TensorFile::open(&io).unwrap().f32("latent").unwrap();
        assert_eq!(mean.shape, z.shape);
    }
    for model in model_dirs("vae_encode.safetensors") {
        let tmp = tempfile::tempdir().expect("tempdir");
        let io = model.join("io/vae_encode.safetensors");
        let out = tmp.path().join("latent.safetensors");
        let o = tora(&[
            "vae",
            "encode",
            "--model",
            s(&model),
            "--in",
            s(&io),
            "--tensor",
            "video",
            "--noise",
            s(&io),
            "--out",
            s(&out),
        ]);
        assert!(o.status.success(), "encode failed: {}", String::from_utf8_lossy(&o.stderr));
        let ours = TensorFile::open(&out).unwrap();
        let reference = TensorFile::open(&io).unwrap();
        for name in ["latent_mean", "latent_logvar", "latent_sample"] {
            let (a, b) = (ours.f32(name).unwrap(), reference.f32(name).unwrap());
            assert_eq!(a.shape, b.shape, "{name}");
            assert!(max_diff(&a.data, &b.data) < 1e-4, "{name}");
        }
    }
}

/// f16 on wgpu (group-norm statistics in f32), through the CLI in its own process: a device's
/// default dtype is fixed once per process, and the f32 checks share this one.
///
/// Tolerance: 2e-2 · max|reference|, a soundness bound for the f16 policy, not a parity
/// tolerance (f32 parity is held to 1e-4 above). Every weight and activation keeps 11
/// significant bits (unit roundoff 4.9e-4) through ~30 convolutions; measured on the public
/// fixtures: decode 6.3e-3 and 8.6e-3, encode mean/logvar 1.2e-2 to 1.4e-2 (× max|ref|), of
/// which rounding the input video alone gives 6e-4. A dtype mix, an f16 read-back or f16
/// norm statistics give errors of order 1 (the overflow itself is pinned by group_norm's unit
/// test).
#[test]
fn f16_wgpu_close_to_reference() {
    let check = |what: &str, ours: &[f32], reference: &[f32]| {
        let max_ref = reference.iter().fold(0f32, |m, v| m.max(v.abs()));
        let (err, tol) = (max_diff(ours, reference), 2e-2 * max_ref);
        println!("{what} wgpu f16: max_abs_err {err:.3e} (max|ref| {max_ref:.3}, tolerance {tol:.3e})");
        assert!(err <= tol, "{what}: f16 error {err:.3e} > {tol:.3e}");
    };
    let run_f16 = |pass: &str, model: &Path, input: &Path, tensor: &str, out: &Path| {
        let o = tora(&[
            "vae",
            pass,
            "--backend",
            "wgpu",
            "--precision",
            "f16",
            "--model",
            s(model),
            "--in",
            s(input),
            "--tensor",
            tensor,
            "--out",
            s(out),
        ]);
        assert!(o.status.success(), "{pass} f16 failed: {}", String::from_utf8_lossy(&o.stderr));
    };
    for model in model_dirs("vae_decode.safetensors") {
        let tmp = tempfile::tempdir().expect("tempdir");
        let io = model.join("io/vae_decode.safetensors");
        let out = tmp.path().join("frames.safetensors");
        run_f16("decode", &model, &io, "latent", &out);
        let ours = TensorFile::open(&out).unwrap().f32("frames").unwrap();
        let reference = TensorFile::open(&io).unwrap().f32("frames").unwrap();
        assert_eq!(ours.shape, reference.shape);
        check(&format!("{}/vae_decode/frames", model.display()), &ours.data, &reference.data);
    }
    for model in model_dirs("vae_encode.safetensors") {
        let tmp = tempfile::tempdir().expect("tempdir");
        let io = model.join("io/vae_encode.safetensors");
        let out = tmp.path().join("latent.safetensors");
        run_f16("encode", &model, &io, "video", &out);
        let (ours, reference) = (TensorFile::open(&out).unwrap(), TensorFile::open(&io).unwrap());
        for name in ["latent_mean", "latent_logvar"] {
            let (a, b) = (ours.f32(name).unwrap(), reference.f32(name).unwrap());
            assert_eq!(a.shape, b.shape, "{name}");
            check(&format!("{}/vae_encode/{name}", model.display()), &a.data, &b.data);
        }
    }
}

/// PNG folder in (encode) and PNG folder out (decode), sizes and counts preserved.
#[test]
fn cli_png_folder_encode_decode() {
    let Some(model) = model_dirs("vae_encode.safetensors").into_iter().next() else { return };
    let video = TensorFile::open(&model.join("io/vae_encode.safetensors")).unwrap().f32("video").unwrap();
    let &[_, _, t, h, w] = video.shape.as_slice() else { panic!("video is 5-D") };
    let tmp = tempfile::tempdir().expect("tempdir");
    let frames_in = tmp.path().join("in");
    std::fs::create_dir_all(&frames_in).unwrap();
    for ti in 0..t {
        let mut rgb = vec![0u8; h * w * 3];
        for p in 0..h * w {
            for c in 0..3 {
                let v = video.data[(c * t + ti) * h * w + p];
                rgb[p * 3 + c] = ((v / 2.0 + 0.5).clamp(0.0, 1.0) * 255.0).round() as u8;
            }
        }
        image::save_buffer(
            frames_in.join(format!("f{ti:03}.png")),
            &rgb,
            w as u32,
            h as u32,
            image::ExtendedColorType::Rgb8,
        )
        .unwrap();
    }
    let latent = tmp.path().join("latent.safetensors");
    let o = tora(&["vae", "encode", "--model", s(&model), "--in", s(&frames_in), "--out", s(&latent)]);
    assert!(o.status.success(), "encode failed: {}", String::from_utf8_lossy(&o.stderr));
    let mean = TensorFile::open(&latent).unwrap().f32("latent_mean").unwrap();
    let reference = TensorFile::open(&model.join("io/vae_encode.safetensors")).unwrap().f32("latent_mean").unwrap();
    assert_eq!(mean.shape, reference.shape);
    // 8-bit quantisation of the input moves the latent only slightly.
    assert!(max_diff(&mean.data, &reference.data) < 0.1);

    let frames_out = tmp.path().join("out");
    let o = tora(&[
        "vae",
        "decode",
        "--model",
        s(&model),
        "--in",
        s(&latent),
        "--tensor",
        "latent_mean",
        "--out",
        s(&frames_out),
    ]);
    assert!(o.status.success(), "decode failed: {}", String::from_utf8_lossy(&o.stderr));
    let mut pngs: Vec<PathBuf> = std::fs::read_dir(&frames_out).unwrap().flatten().map(|e| e.path()).collect();
    pngs.sort();
    assert_eq!(pngs.len(), t, "one PNG per decoded frame");
    let img = image::open(&pngs[0]).unwrap();
    assert_eq!((img.width() as usize, img.height() as usize), (w, h));
}

fn assert_bad_input(o: &std::process::Output, needle: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "exit code; stderr: {err}");
    assert!(err.contains(needle), "stderr should mention {needle:?}: {err}");
    assert!(!err.contains("panicked"), "must not panic: {err}");
}

#[test]
fn cli_bad_input_is_a_clear_error() {
    let Some(model) = model_dirs("vae_decode.safetensors").into_iter().next() else { return };
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = tmp.path().join("o.safetensors");
    // Frames given where a latent is expected: wrong channel count.
    let io = model.join("io/vae_decode.safetensors");
    let o = tora(&["vae", "decode", "--model", s(&model), "--in", s(&io), "--tensor", "frames", "--out", s(&out)]);
    assert_bad_input(&o, "channels");
    // A latent given to the encoder.
    let o = tora(&["vae", "encode", "--model", s(&model), "--in", s(&io), "--tensor", "latent", "--out", s(&out)]);
    assert_bad_input(&o, "channels");
    // A vae folder without its weight file.
    let vae = tmp.path().join("vae");
    std::fs::create_dir_all(&vae).unwrap();
    std::fs::copy(model.join("vae/config.json"), vae.join("config.json")).unwrap();
    let o = tora(&["vae", "decode", "--model", s(&vae), "--in", s(&io), "--tensor", "latent", "--out", s(&out)]);
    assert_bad_input(&o, "vae");
    // PNG frames of different sizes.
    let pngs = tmp.path().join("pngs");
    std::fs::create_dir_all(&pngs).unwrap();
    image::save_buffer(pngs.join("a.png"), &[0u8; 16 * 16 * 3], 16, 16, image::ExtendedColorType::Rgb8).unwrap();
    image::save_buffer(pngs.join("b.png"), &[0u8; 16 * 8 * 3], 8, 16, image::ExtendedColorType::Rgb8).unwrap();
    let o = tora(&["vae", "encode", "--model", s(&model), "--in", s(&pngs), "--out", s(&out)]);
    assert_bad_input(&o, "same size");
    // Latents cannot be written as PNGs.
    let o = tora(&["vae", "encode", "--model", s(&model), "--in", s(&pngs), "--out", s(&tmp.path().join("x"))]);
    assert_bad_input(&o, ".safetensors");
}

#[test]
fn loader_reports_missing_weights_and_keys() {
    let Some(model) = model_dirs("vae_decode.safetensors").into_iter().next() else { return };
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::copy(model.join("vae/config.json"), tmp.path().join("config.json")).unwrap();
    let Err(err) = AutoencoderKLCogVideoX::load(tmp.path(), &cpu()) else { panic!("no weights must fail") };
    assert!(err.to_string().contains(&tmp.path().display().to_string()), "{err}");

    // One more resnet layer than the checkpoint holds: missing keys, named.
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(model.join("vae/config.json")).unwrap()).unwrap();
    config["layers_per_block"] = serde_json::json!(config["layers_per_block"].as_u64().unwrap() + 1);
    std::fs::write(tmp.path().join("config.json"), config.to_string()).unwrap();
    std::fs::copy(
        model.join("vae/diffusion_pytorch_model.safetensors"),
        tmp.path().join("diffusion_pytorch_model.safetensors"),
    )
    .unwrap();
    match AutoencoderKLCogVideoX::load(tmp.path(), &cpu()) {
        Err(LoadError::Keys { missing, .. }) => {
            assert!(missing.iter().any(|k| k.starts_with("encoder.down_blocks.0.resnets.")), "{missing:?}")
        }
        other => panic!("expected LoadError::Keys, got {:?}", other.err()),
    }
}

/// Tiling with a tile bigger than the input leaves the result untouched (the untiled path).
#[test]
fn tiling_off_below_tile_size() {
    let Some(model) = model_dirs("vae_decode.safetensors").into_iter().next() else { return };
    let device = cpu();
    let (mut vae, config) = AutoencoderKLCogVideoX::load(&model, &device).unwrap();
    let fx = TensorFile::open(&model.join("io/vae_decode.safetensors")).unwrap();
    let z = fx.f32("latent").unwrap();
    let shape: [usize; 5] = z.shape.as_slice().try_into().unwrap();
    let z = device.float_tensor::<5>(burn::tensor::TensorData::new(z.data, shape));
    let plain: Vec<f32> = vae.decode(z.clone()).into_data().try_to_vec::<f32>().unwrap();
    let big =
        Tiling::with_sample_tile(&config, 8 * config.spatial_ratio() * shape[3], 8 * config.spatial_ratio() * shape[4]);
    vae.set_tiling(Some(big));
    let tiled: Vec<f32> = vae.decode(z).into_data().try_to_vec::<f32>().unwrap();
    assert_eq!(plain, tiled);
}
