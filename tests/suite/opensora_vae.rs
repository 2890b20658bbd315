//! OpenSora VAE v1.2: parity over every OpenSora `*/io/vae_{encode,decode}.safetensors` fixture
//! (cpu, wgpu), the 2D VAE folder reference (followed, and a clear error when it points nowhere),
//! and refusals of inputs that do not fit.

use std::path::{Path, PathBuf};

use super::common::{cpu, fixtures_root};
use burn::tensor::{Tensor, TensorData};
use tora_studio::model::load::LoadError;
use tora_studio::model::opensora::vae::OpenSoraVae;
use tora_studio::verify::{self, CheckResult, Kind};
use tora_studio::Backend;

/// Every model folder holding an OpenSora VAE and an `io/vae_encode.safetensors` or
/// `io/vae_decode.safetensors`.
fn opensora_model_dirs() -> Vec<PathBuf> {
    let root = fixtures_root();
    let mut dirs: Vec<PathBuf> = verify::walk_files(&root)
        .into_iter()
        .filter(|p| {
            p.file_name().is_some_and(|n| n == "vae_encode.safetensors" || n == "vae_decode.safetensors")
                && p.parent().and_then(|d| d.file_name()).is_some_and(|n| n == "io")
        })
        .filter_map(|p| p.parent().and_then(Path::parent).map(Path::to_path_buf))
        .filter(|model| OpenSoraVae::find_dir(model).is_ok())
        .collect();
    dirs.dedup();
    if dirs.is_empty() {
        verify::say_loudly(&format!(
            "WARNING: no OpenSora */io/vae_{{encode,decode}}.safetensors fixtures under {}: OpenSora VAE parity and \
             loader tests are SKIPPED. Set TORA_FIXTURES.",
            root.display()
        ));
    }
    dirs
}

fn run_verify(backend: Backend) {
    if opensora_model_dirs().is_empty() {
        return;
    }
    let root = fixtures_root();
    let files = verify::walk_files(&root);
    let mut results: Vec<CheckResult> = Vec::new();
    for kind in [Kind::OpensoraVaeEncode, Kind::OpensoraVaeDecode] {
        let before = results.len();
        verify::opensora_vae::run(kind, &root, &files, backend, &mut |r| {
            println!("{}", r.line());
            results.push(r);
        });
        assert!(results.len() > before, "no {} checks ran on {backend:?}", kind.name());
    }
    let failed: Vec<String> = results.iter().filter(|r| !r.passed).map(|r| r.line()).collect();
    assert!(failed.is_empty(), "OpenSora VAE parity failed on {backend:?}:\n{}", failed.join("\n"));
}

#[test]
fn verify_opensora_vae_cpu() {
    run_verify(Backend::Cpu);
}

#[test]
fn verify_opensora_vae_wgpu() {
    run_verify(Backend::Wgpu);
}

/// Copies the VAE folder of `model` into a fresh temp model folder (no 2D VAE folder beside it),
/// with `edit` applied to its config.json.
fn copy_vae_only(model: &Path, edit: impl Fn(&mut serde_json::Value)) -> tempfile::TempDir {
    let src = OpenSoraVae::find_dir(model).expect("an OpenSora VAE folder");
    let tmp = tempfile::tempdir().expect("tempdir");
    let dst = tmp.path().join("vae");
    std::fs::create_dir_all(&dst).expect("mkdir");
    for entry in std::fs::read_dir(&src).expect("read fixture folder").flatten() {
        if entry.file_name() != "config.json" {
            std::fs::copy(entry.path(), dst.join(entry.file_name())).expect("copy fixture file");
        }
    }
    let text = std::fs::read_to_string(src.join("config.json")).expect("read config");
    let mut config: serde_json::Value = serde_json::from_str(&text).expect("config is JSON");
    edit(&mut config);
    std::fs::write(dst.join("config.json"), config.to_string()).expect("write config");
    tmp
}

#[test]
fn loader_names_the_missing_2d_vae_folder() {
    for model in opensora_model_dirs() {
        let tmp = copy_vae_only(&model, |c| c["vae_2d"]["from_pretrained"] = "nowhere/pixart_vae_missing".into());
        let err = match OpenSoraVae::load(tmp.path(), &cpu()) {
            Ok(_) => panic!("loading without the 2D VAE folder should fail"),
            Err(e) => e,
        };
        let msg = err.to_string();
        println!("{msg}");
        assert!(matches!(err, LoadError::NotFound { .. }), "{err:?}");
        let expected = tmp.path().join("nowhere/pixart_vae_missing/vae/config.json");
        assert!(msg.contains(&expected.display().to_string()), "{msg}");
        assert!(msg.contains("vae_2d.from_pretrained"), "{msg}");
    }
}

#[test]
fn loader_follows_the_2d_vae_reference() {
    for model in opensora_model_dirs() {
        let device = cpu();
        // Given the model folder or the VAE folder itself, the reference resolves the same way.
        let (vae, config) = OpenSoraVae::load(&model, &device).expect("loads from the model folder");
        let vae_dir = OpenSoraVae::find_dir(&model).expect("vae folder");
        let (again, _) = OpenSoraVae::load(&vae_dir, &device).expect("loads from the VAE folder");
        assert_eq!(vae.vae_2d_dir, again.vae_2d_dir);
        assert!(vae.vae_2d_dir.join("config.json").is_file());
        let expected = vae_dir.parent().expect("parent").join(&config.vae_2d.from_pretrained);
        assert!(vae.vae_2d_dir.starts_with(&expected), "{:?} vs {expected:?}", vae.vae_2d_dir);
        // A repo id `owner/name` downloaded as `name` next to the VAE folder is found too.
        let name = Path::new(&config.vae_2d.from_pretrained).file_name().expect("name").to_owned();
        let tmp = copy_vae_only(&model, |c| {
            c["vae_2d"]["from_pretrained"] = format!("some-owner/{}", name.to_string_lossy()).into()
        });
        let linked = tmp.path().join(&name);
        copy_dir(&expected, &linked);
        let (moved, _) = OpenSoraVae::load(tmp.path(), &device).expect("finds owner/name as name");
        assert!(moved.vae_2d_dir.starts_with(&linked));
    }
}

fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).expect("mkdir");
    for entry in std::fs::read_dir(src).expect("read").flatten() {
        let to = dst.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &to);
        } else {
            std::fs::copy(entry.path(), &to).expect("copy");
        }
    }
}

#[test]
fn bad_inputs_are_errors_not_panics() {
    for model in opensora_model_dirs() {
        let device = cpu();
        let (vae, _) = OpenSoraVae::load(&model, &device).expect("loads");
        let zeros = |shape: [usize; 5]| Tensor::<5>::zeros(shape, device.device());
        let mut noise = |shape: &[usize]| {
            device.float_tensor(TensorData::new(vec![0f32; shape.iter().product()], [shape.iter().product::<usize>()]))
        };
        // Wrong channel count, too small a frame.
        assert!(vae.encode(zeros([1, 2, 3, 16, 16]), &mut noise).is_err());
        assert!(vae.encode(zeros([1, 3, 3, 1, 16]), &mut noise).is_err());
        // A noise source that returns the wrong number of values.
        let mut short = |_: &[usize]| device.float_tensor(TensorData::new(vec![0f32; 3], [3]));
        assert!(vae.encode(zeros([1, 3, 2, 16, 16]), &mut short).is_err());
        // Latent frames that do not match num_frames.
        let t = vae.latent_frames(12);
        assert!(vae.decode(zeros([1, 4, t + 1, 2, 2]), 12).is_err());
        assert!(vae.decode(zeros([1, 4, t, 2, 2]), 0).is_err());
        assert!(vae.decode(zeros([1, 5, t, 2, 2]), 12).is_err());
        // And a fitting call works: every frame comes back.
        let frames = vae.decode(zeros([1, 4, t, 2, 2]), 12).expect("decodes");
        assert_eq!(frames.dims()[2], 12);
    }
}
