//! `opensora_vae_encode` / `opensora_vae_decode` parity: every `*/io/vae_encode.safetensors` /
//! `*/io/vae_decode.safetensors` whose model folder holds an OpenSora VAE (a
//! `VideoAutoencoderPipeline` config in `vae/`), loaded through `OpenSoraVae::load` exactly as a
//! real download is. Every intermediate the file holds is its own line: encode `spatial_mean`,
//! `spatial_logvar`, `x_z`, `temporal_mean_<j>`, `temporal_logvar_<j>`, `z`; decode `x_z`, `frames`.
//! The recorded noise is replayed in the file's `noise_order`.
//!
//! Tolerance (f32, both backends): 1e-4 absolute, the fixtures' module tolerance; the README
//! measures the f32 reference against f64 at ≤ 6e-6 for these files.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use burn::tensor::{Tensor, TensorData};

use super::{max_abs_diff, run_cases, CheckResult, FileCase, Kind};
use crate::model::device::read_f32;
use crate::model::opensora::vae::OpenSoraVae;
use crate::model::ComputeDevice;
use crate::tensor_file::TensorFile;
use crate::Backend;

/// Absolute tolerance on every intermediate (see the module docs).
pub const TOL_F32: f64 = 1e-4;

fn file_name(kind: Kind) -> Option<&'static str> {
    match kind {
        Kind::OpensoraVaeEncode => Some("vae_encode.safetensors"),
        Kind::OpensoraVaeDecode => Some("vae_decode.safetensors"),
        _ => None,
    }
}

/// The model folder of an `io/` fixture when it holds an OpenSora VAE.
fn opensora_model_dir(path: &Path) -> Option<&Path> {
    let io = path.parent().filter(|p| p.file_name().is_some_and(|n| n == "io"))?;
    let model = io.parent()?;
    OpenSoraVae::find_dir(model).is_ok().then_some(model)
}

pub fn run(kind: Kind, root: &Path, files: &[PathBuf], backend: Backend, report: &mut dyn FnMut(CheckResult)) {
    let Some(name) = file_name(kind) else { return };
    let cases: Vec<FileCase> = files
        .iter()
        .filter(|p| p.file_name().is_some_and(|n| n == name) && opensora_model_dir(p).is_some())
        .map(|p| FileCase::new(root, p))
        .collect();
    run_cases(kind, &cases, backend, report, |c, device, report| check_case(kind, &c.case, &c.path, device, report));
}

fn check_case(
    kind: Kind,
    case: &str,
    path: &Path,
    device: &ComputeDevice,
    report: &mut dyn FnMut(CheckResult),
) -> Result<(), String> {
    let fx = TensorFile::open(path).map_err(|e| e.to_string())?;
    let model_dir = opensora_model_dir(path).ok_or("io/ folder has no OpenSora VAE model folder")?;
    let (vae, _) = OpenSoraVae::load(model_dir, device).map_err(|e| e.to_string())?;
    let label = crate::model::device::backend_name(device.backend());
    let mut compare = |name: &str, ours: Tensor<5>| -> Result<(), String> {
        let reference = fx.f32(name).map_err(|e| e.to_string())?;
        let dims = ours.dims();
        let values = read_f32(ours).map_err(|e| format!("reading {name}: {e}"))?;
        let same_shape = dims.as_slice() == reference.shape.as_slice();
        let err = if same_shape { max_abs_diff(&values, &reference.data) } else { f64::INFINITY };
        let mut note = format!("{label} f32");
        if !same_shape {
            note.push_str(&format!("; shape {dims:?}, reference {:?}", reference.shape));
        }
        report(CheckResult::compare(kind, format!("{case}/{name}"), err, TOL_F32).with_note(note));
        Ok(())
    };
    let names = fx.names();
    let has = |n: &str| names.iter().any(|m| m == n);
    let load = |name: &str| -> Result<Tensor<5>, String> {
        let t = fx.f32(name).map_err(|e| e.to_string())?;
        let shape: [usize; 5] =
            t.shape.as_slice().try_into().map_err(|_| format!("{name} has shape {:?}, expected 5-D", t.shape))?;
        Ok(device.float_tensor(TensorData::new(t.data, shape)))
    };

    match kind {
        Kind::OpensoraVaeEncode => {
            let video = load("video")?;
            let draws = RefCell::new(noise_queue(&fx)?);
            let problem: RefCell<Option<String>> = RefCell::new(None);
            let mut noise = |shape: &[usize]| -> Tensor<1> {
                let n: usize = shape.iter().product();
                let next = draws.borrow_mut().pop_front();
                let values = match next {
                    Some((_, t)) if t.shape == shape => t.data,
                    Some((name, t)) => {
                        problem.borrow_mut().get_or_insert(format!(
                            "draw {name} is {:?} in the fixture, the model asked for {shape:?}",
                            t.shape
                        ));
                        vec![0.0; n]
                    }
                    None => {
                        problem.borrow_mut().get_or_insert(format!("the model asked for an extra draw {shape:?}"));
                        vec![0.0; n]
                    }
                };
                device.float_tensor(TensorData::new(values, [n]))
            };
            let trace = vae.encode_traced(video, &mut noise).map_err(|e| e.to_string())?;
            if let Some(p) = problem.into_inner() {
                return Err(format!("noise replay: {p}"));
            }
            let left = draws.into_inner();
            if !left.is_empty() {
                return Err(format!("noise replay: {} recorded draw(s) unused (first {})", left.len(), left[0].0));
            }
            for (name, ours) in [("spatial_mean", trace.spatial_mean), ("spatial_logvar", trace.spatial_logvar)] {
                if has(name) {
                    compare(name, ours)?;
                }
            }
            if has("x_z") {
                compare("x_z", trace.x_z)?;
            }
            for (j, (mean, logvar)) in trace.temporal_mean.into_iter().zip(trace.temporal_logvar).enumerate() {
                for (name, ours) in [(format!("temporal_mean_{j}"), mean), (format!("temporal_logvar_{j}"), logvar)] {
                    if has(&name) {
                        compare(&name, ours)?;
                    }
                }
            }
            compare("z", trace.z)
        }
        Kind::OpensoraVaeDecode => {
            let z = load("z")?;
            let num_frames = fx.i64("num_frames").map_err(|e| e.to_string())?;
            let &[num_frames] = num_frames.data.as_slice() else {
                return Err(format!("num_frames has {} values, expected 1", num_frames.data.len()));
            };
            let num_frames = usize::try_from(num_frames).map_err(|_| format!("num_frames is {num_frames}"))?;
            let trace = vae.decode_traced(z, num_frames).map_err(|e| e.to_string())?;
            if has("x_z") {
                compare("x_z", trace.x_z)?;
            }
            compare("frames", trace.frames)
        }
        _ => Ok(()),
    }
}

/// The recorded draws in the order the reference made them: `noise_order` lists each draw as
/// `"<library>.DiagonalGaussianDistribution.sample [shape]"`; diffusers draws are the 2D
/// `spatial_noise_<i>`, OpenSora's the temporal `temporal_noise_<j>`, each numbered in order.
/// Without `noise_order`: all spatial draws, then all temporal ones.
fn noise_queue(fx: &TensorFile) -> Result<VecDeque<(String, crate::tensor_file::Tensor<f32>)>, String> {
    let names = fx.names();
    let count = |prefix: &str| (0..).take_while(|i| names.iter().any(|n| *n == format!("{prefix}{i}"))).count();
    let (spatial, temporal) = (count("spatial_noise_"), count("temporal_noise_"));
    let order: Vec<String> = match fx.metadata().get("noise_order") {
        Some(json) => {
            let entries: Vec<String> =
                serde_json::from_str(json).map_err(|e| format!("bad 'noise_order' metadata: {e}"))?;
            let (mut i, mut j) = (0, 0);
            entries
                .iter()
                .map(|entry| {
                    if entry.starts_with("diffusers.") {
                        i += 1;
                        Ok(format!("spatial_noise_{}", i - 1))
                    } else if entry.starts_with("opensora.") {
                        j += 1;
                        Ok(format!("temporal_noise_{}", j - 1))
                    } else {
                        Err(format!("noise_order entry {entry:?} names neither diffusers nor opensora"))
                    }
                })
                .collect::<Result<_, _>>()?
        }
        None => (0..spatial)
            .map(|i| format!("spatial_noise_{i}"))
            .chain((0..temporal).map(|j| format!("temporal_noise_{j}")))
            .collect(),
    };
    order.into_iter().map(|name| fx.f32(&name).map(|t| (name, t)).map_err(|e| e.to_string())).collect()
}
