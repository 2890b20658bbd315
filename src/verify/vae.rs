//! `vae_encode` / `vae_decode` parity: every `*/io/vae_encode.safetensors` and
//! `*/io/vae_decode.safetensors`, using the model folder the `io/` folder sits in (loaded through
//! `AutoencoderKLCogVideoX::load`, the path a real checkpoint takes).
//!
//! vae_encode: `latent_mean`, `latent_logvar`, `latent_sample` (from the stored `noise`) of
//! `video`; `image_latent_mean/logvar` of `image`; `latent_mean/logvar_tiled` of `video_tiled`
//! with tiling on. vae_decode: `frames` of `latent`, `frames_1f` of `latent_1f`, `frames_tiled` of
//! `latent_tiled` with tiling on. Tiled cases use the file's `tiling` metadata (else the config's).
//!
//! Tolerance (f32, both backends): 1e-4 absolute, the fixtures' module tolerance (the README
//! measures the f32 reference against float64 at 2e-6 encode / 1.5e-6 decode).

use std::path::{Path, PathBuf};

use burn::tensor::{Tensor, TensorData};

use super::{case_name, max_abs_diff, CheckResult, Kind};
use crate::model::cogvideox::vae::{AutoencoderKLCogVideoX, Tiling, VaeConfig};
use crate::model::{ComputeDevice, Precision};
use crate::tensor_file::TensorFile;
use crate::Backend;

/// Absolute tolerance for every VAE output in f32.
pub const VAE_TOL_F32: f64 = 1e-4;

fn file_name(kind: Kind) -> &'static str {
    match kind {
        Kind::VaeEncode => "vae_encode.safetensors",
        _ => "vae_decode.safetensors",
    }
}

/// `<model>/io/vae_{encode,decode}.safetensors` whose model folder's `vae/config.json` names
/// `AutoencoderKLCogVideoX` (other models' VAE fixtures share the file names).
fn is_fixture(path: &Path, kind: Kind) -> bool {
    let in_io = path.file_name().is_some_and(|n| n == file_name(kind))
        && path.parent().and_then(|p| p.file_name()).is_some_and(|n| n == "io");
    let Some(model_dir) = path.parent().and_then(Path::parent) else { return false };
    in_io && vae_class(model_dir).as_deref() == Some("AutoencoderKLCogVideoX")
}

fn vae_class(model_dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(model_dir.join("vae").join("config.json")).ok()?;
    let config: serde_json::Value = serde_json::from_str(&text).ok()?;
    config.get("_class_name")?.as_str().map(str::to_string)
}

pub fn run(kind: Kind, root: &Path, files: &[PathBuf], backend: Backend, report: &mut dyn FnMut(CheckResult)) {
    let cases: Vec<&PathBuf> = files.iter().filter(|p| is_fixture(p, kind)).collect();
    if cases.is_empty() {
        return;
    }
    let device = match ComputeDevice::new(backend, Precision::F32) {
        Ok(d) => d,
        Err(e) => {
            for path in cases {
                report(CheckResult::failed(kind, case_name(root, path), e.to_string()));
            }
            return;
        }
    };
    for path in cases {
        let case = case_name(root, path);
        if let Err(e) = check_case(kind, &case, path, &device, report) {
            report(CheckResult::failed(kind, case, e));
        }
    }
}

/// A fixture tensor on the device.
fn input(fx: &TensorFile, name: &str, device: &ComputeDevice) -> Result<Tensor<5>, String> {
    let t = fx.f32(name).map_err(|e| e.to_string())?;
    let shape: [usize; 5] =
        t.shape.as_slice().try_into().map_err(|_| format!("'{name}' has shape {:?}, expected 5 dims", t.shape))?;
    Ok(device.float_tensor(TensorData::new(t.data, shape)))
}

/// Compares `ours` with the fixture's `name`, reporting one line.
fn compare(
    kind: Kind,
    case: &str,
    fx: &TensorFile,
    name: &str,
    ours: Tensor<5>,
    device: &ComputeDevice,
    report: &mut dyn FnMut(CheckResult),
) -> Result<(), String> {
    let reference = fx.f32(name).map_err(|e| e.to_string())?;
    let dims = ours.dims();
    let values: Vec<f32> = ours.into_data().try_to_vec::<f32>().map_err(|e| format!("reading {name} back: {e:?}"))?;
    let mut note = format!("{} f32", crate::model::device::backend_name(device.backend()));
    let err = if dims.as_slice() == reference.shape.as_slice() {
        max_abs_diff(&values, &reference.data)
    } else {
        note.push_str(&format!("; shape {dims:?}, reference {:?}", reference.shape));
        f64::INFINITY
    };
    report(CheckResult::compare(kind, format!("{case}/{name}"), err, VAE_TOL_F32).with_note(note));
    Ok(())
}

/// The tiling the fixture was made with (`tiling` metadata), else diffusers' defaults.
fn fixture_tiling(fx: &TensorFile, config: &VaeConfig) -> Result<Tiling, String> {
    let mut tiling = Tiling::from_config(config);
    let Some(text) = fx.metadata().get("tiling").cloned() else { return Ok(tiling) };
    let meta: serde_json::Value = serde_json::from_str(&text).map_err(|e| format!("bad 'tiling' metadata: {e}"))?;
    let int = |k: &str, v: &mut usize| {
        if let Some(x) = meta.get(k).and_then(serde_json::Value::as_u64) {
            *v = x as usize;
        }
    };
    int("tile_sample_min_height", &mut tiling.tile_sample_min_height);
    int("tile_sample_min_width", &mut tiling.tile_sample_min_width);
    int("tile_latent_min_height", &mut tiling.tile_latent_min_height);
    int("tile_latent_min_width", &mut tiling.tile_latent_min_width);
    let float = |k: &str, v: &mut f64| {
        if let Some(x) = meta.get(k).and_then(serde_json::Value::as_f64) {
            *v = x;
        }
    };
    float("tile_overlap_factor_height", &mut tiling.tile_overlap_factor_height);
    float("tile_overlap_factor_width", &mut tiling.tile_overlap_factor_width);
    Ok(tiling)
}

fn check_case(
    kind: Kind,
    case: &str,
    path: &Path,
    device: &ComputeDevice,
    report: &mut dyn FnMut(CheckResult),
) -> Result<(), String> {
    let fx = TensorFile::open(path).map_err(|e| e.to_string())?;
    let model_dir = path.parent().and_then(Path::parent).ok_or("io/ folder has no parent model folder")?;
    let (mut vae, config) = AutoencoderKLCogVideoX::load(model_dir, device).map_err(|e| e.to_string())?;
    let names = fx.names();
    let has = |n: &str| names.iter().any(|x| x == n);
    let cmp = |name: &str, ours: Tensor<5>, report: &mut dyn FnMut(CheckResult)| {
        compare(kind, case, &fx, name, ours, device, report)
    };
    match kind {
        Kind::VaeEncode => {
            let video = input(&fx, "video", device)?;
            vae.check_video(&video).map_err(|e| e.to_string())?;
            let dist = vae.encode(video);
            cmp("latent_mean", dist.mean.clone(), report)?;
            cmp("latent_logvar", dist.logvar.clone(), report)?;
            if has("noise") && has("latent_sample") {
                let noise = input(&fx, "noise", device)?;
                cmp("latent_sample", dist.sample(noise), report)?;
            }
            if has("image") {
                let dist = vae.encode(input(&fx, "image", device)?);
                cmp("image_latent_mean", dist.mean.clone(), report)?;
                cmp("image_latent_logvar", dist.logvar, report)?;
            }
            if has("video_tiled") {
                vae.set_tiling(Some(fixture_tiling(&fx, &config)?));
                let dist = vae.encode(input(&fx, "video_tiled", device)?);
                cmp("latent_mean_tiled", dist.mean.clone(), report)?;
                cmp("latent_logvar_tiled", dist.logvar, report)?;
            }
        }
        _ => {
            let z = input(&fx, "latent", device)?;
            vae.check_latent(&z).map_err(|e| e.to_string())?;
            cmp("frames", vae.decode(z), report)?;
            if has("latent_1f") {
                cmp("frames_1f", vae.decode(input(&fx, "latent_1f", device)?), report)?;
            }
            if has("latent_tiled") {
                vae.set_tiling(Some(fixture_tiling(&fx, &config)?));
                cmp("frames_tiled", vae.decode(input(&fx, "latent_tiled", device)?), report)?;
            }
        }
    }
    Ok(())
}
