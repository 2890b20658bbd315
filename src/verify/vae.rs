//! `vae_encode` / `vae_decode` parity: every `*/io/vae_encode.safetensors` and
//! `*/io/vae_decode.safetensors`, using the model folder the `io/` folder sits in (loaded through
//! [`ModelSource`](crate::model::cogvideox::ModelSource), the path a real checkpoint takes), and
//! the same files through every SAT tree made from that folder (`3d-vae.pt`).
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

use super::{cogvideox_cases, layout_note, max_abs_diff, run_cases, CheckResult, Kind, ModelCase};
use crate::model::cogvideox::vae::{Tiling, VaeConfig};
use crate::model::device::read_f32;
use crate::model::ComputeDevice;
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

fn vae_class(model_dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(model_dir.join("vae").join("config.json")).ok()?;
    let config: serde_json::Value = serde_json::from_str(&text).ok()?;
    config.get("_class_name")?.as_str().map(str::to_string)
}

/// `<model>/io/vae_{encode,decode}.safetensors` whose model folder's `vae/config.json` names
/// `AutoencoderKLCogVideoX` (other models' VAE fixtures share the file names), and the SAT trees
/// made from such a folder.
pub fn run(kind: Kind, root: &Path, files: &[PathBuf], backend: Backend, report: &mut dyn FnMut(CheckResult)) {
    let cases =
        cogvideox_cases(root, files, file_name(kind), |m| vae_class(m).as_deref() == Some("AutoencoderKLCogVideoX"));
    run_cases(kind, &cases, backend, report, |c, device, report| check_case(kind, c, device, report));
}

/// A fixture tensor on the device.
fn input(fx: &TensorFile, name: &str, device: &ComputeDevice) -> Result<Tensor<5>, String> {
    let t = fx.f32(name).map_err(|e| e.to_string())?;
    let shape: [usize; 5] =
        t.shape.as_slice().try_into().map_err(|_| format!("'{name}' has shape {:?}, expected 5 dims", t.shape))?;
    Ok(device.float_tensor(TensorData::new(t.data, shape)))
}

/// Compares `ours` with the fixture's `name`, reporting one line.
#[allow(clippy::too_many_arguments)]
fn compare(
    kind: Kind,
    case: &str,
    layout: &str,
    fx: &TensorFile,
    name: &str,
    ours: Tensor<5>,
    device: &ComputeDevice,
    report: &mut dyn FnMut(CheckResult),
) -> Result<(), String> {
    let reference = fx.f32(name).map_err(|e| e.to_string())?;
    let dims = ours.dims();
    let values = read_f32(ours).map_err(|e| format!("reading {name} back: {e}"))?;
    let mut note = format!("{} f32{layout}", crate::model::device::backend_name(device.backend()));
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
    c: &ModelCase,
    device: &ComputeDevice,
    report: &mut dyn FnMut(CheckResult),
) -> Result<(), String> {
    let fx = TensorFile::open(&c.io).map_err(|e| e.to_string())?;
    let mut vae = c.source.load_vae(device).map_err(|e| e.to_string())?;
    let config = c.source.vae_config().map_err(|e| e.to_string())?;
    let (case, layout) = (c.case.as_str(), layout_note(&c.source));
    let names = fx.names();
    let has = |n: &str| names.iter().any(|x| x == n);
    let cmp = |name: &str, ours: Tensor<5>, report: &mut dyn FnMut(CheckResult)| {
        compare(kind, case, &layout, &fx, name, ours, device, report)
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
