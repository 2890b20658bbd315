//! `traj_extractor`, `mgf`, `transformer` parity: every `*/io/{traj_extractor,mgf,transformer}.safetensors`,
//! run through the transformer loaded from the model folder the `io/` folder sits in (the same
//! `ToraTransformer3D::load` a real checkpoint goes through).
//!
//! - `traj_extractor`: one line per `feature_i` (the TE's maps for `input`);
//! - `mgf`: one line (`fuser.<i>` named by the file's `module` metadata, `T` frames);
//! - `transformer`: the RoPE tables (`image_rotary_emb_cos` / `_sin`) as computed for the file's
//!   `height`, `width`, `latent_frames`, then `output_with_flow` and `output_no_flow` (each run with
//!   our tables).
//!
//! Tolerance (f32, both backends): 1e-4 absolute, the fixtures' README module tolerance.

use std::path::{Path, PathBuf};

use burn::tensor::{DType, Tensor, TensorData};

use super::{case_name, max_abs_diff, CheckResult, Kind};
use crate::model::cogvideox::{RotaryEmbedding, ToraTransformer3D};
use crate::model::{ComputeDevice, Precision};
use crate::tensor_file::TensorFile;
use crate::Backend;

/// Absolute tolerance in f32.
pub const TOL_F32: f64 = 1e-4;

fn file_name(kind: Kind) -> &'static str {
    match kind {
        Kind::TrajExtractor => "traj_extractor.safetensors",
        Kind::Mgf => "mgf.safetensors",
        _ => "transformer.safetensors",
    }
}

fn is_fixture(kind: Kind, path: &Path) -> bool {
    path.file_name().is_some_and(|n| n == file_name(kind))
        && path.parent().and_then(|p| p.file_name()).is_some_and(|n| n == "io")
        && path.parent().and_then(Path::parent).is_some_and(|m| m.join("transformer").join("config.json").is_file())
}

pub fn run(kind: Kind, root: &Path, files: &[PathBuf], backend: Backend, report: &mut dyn FnMut(CheckResult)) {
    let cases: Vec<&PathBuf> = files.iter().filter(|p| is_fixture(kind, p)).collect();
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
        let result =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check_case(kind, &case, path, &device, report)));
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => report(CheckResult::failed(kind, case, e)),
            Err(_) => report(CheckResult::failed(kind, case, "the check panicked (see stderr)")),
        }
    }
}

fn load_f32<const D: usize>(fx: &TensorFile, name: &str, device: &ComputeDevice) -> Result<Tensor<D>, String> {
    let t = fx.f32(name).map_err(|e| e.to_string())?;
    let shape: [usize; D] =
        t.shape.clone().try_into().map_err(|_| format!("'{name}' has shape {:?}, expected {D} dimensions", t.shape))?;
    Ok(Tensor::from_data(TensorData::new(t.data, shape), (device.device(), DType::F32)))
}

/// Compares `ours` with the fixture tensor `name` and reports one line `case/name`.
fn compare<const D: usize>(
    kind: Kind,
    case: &str,
    name: &str,
    ours: Tensor<D>,
    fx: &TensorFile,
    device: &ComputeDevice,
    report: &mut dyn FnMut(CheckResult),
) -> Result<(), String> {
    let reference = fx.f32(name).map_err(|e| e.to_string())?;
    let dims = ours.dims();
    let ours = ours.cast(DType::F32);
    let values: Vec<f32> = ours.into_data().try_to_vec::<f32>().map_err(|e| format!("reading {name} back: {e:?}"))?;
    let (err, mut note) = if dims.as_slice() == reference.shape.as_slice() {
        (max_abs_diff(&values, &reference.data), String::new())
    } else {
        (f64::INFINITY, format!("shape {dims:?}, reference {:?}; ", reference.shape))
    };
    note.push_str(&format!("{} f32", crate::model::device::backend_name(device.backend())));
    report(CheckResult::compare(kind, format!("{case}/{name}"), err, TOL_F32).with_note(note));
    Ok(())
}

fn meta_usize(fx: &TensorFile, key: &str) -> Result<usize, String> {
    let meta = fx.metadata();
    let v = meta.get(key).ok_or_else(|| format!("metadata has no '{key}'"))?;
    v.trim().parse().map_err(|e| format!("metadata '{key}' = {v:?}: {e}"))
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
    let (model, config) = ToraTransformer3D::load(model_dir, device).map_err(|e| e.to_string())?;
    match kind {
        Kind::TrajExtractor => {
            let input: Tensor<5> = load_f32(&fx, "input", device)?;
            let features = model.traj_extractor.forward(input);
            let names: Vec<String> = {
                let mut n: Vec<String> = fx.names().into_iter().filter(|n| n.starts_with("feature_")).collect();
                n.sort_by_key(|n| n["feature_".len()..].parse::<usize>().unwrap_or(usize::MAX));
                n
            };
            if names.len() != features.len() {
                return Err(format!("fixture has {} feature maps, the model makes {}", names.len(), features.len()));
            }
            for (name, feature) in names.iter().zip(features) {
                compare(kind, case, name, feature, &fx, device, report)?;
            }
        }
        Kind::Mgf => {
            let meta = fx.metadata();
            let module = meta.get("module").ok_or("metadata has no 'module'")?;
            let index: usize = module
                .rsplit('.')
                .next()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| format!("metadata module {module:?} does not end in a fuser index"))?;
            let fuser = model
                .fuser
                .get(index)
                .ok_or_else(|| format!("{module}: the model has {} fusers", model.fuser.len()))?;
            let frames = meta_usize(&fx, "T")?;
            let h: Tensor<4> = load_f32(&fx, "h", device)?;
            let flow: Tensor<4> = load_f32(&fx, "flow_feature", device)?;
            compare(kind, case, "output", fuser.forward(h, flow, frames), &fx, device, report)?;
        }
        _ => {
            let (height, width, frames) =
                (meta_usize(&fx, "height")?, meta_usize(&fx, "width")?, meta_usize(&fx, "latent_frames")?);
            let rotary = RotaryEmbedding::for_output(&config, height, width, frames, device);
            compare(kind, case, "image_rotary_emb_cos", rotary.cos.clone(), &fx, device, report)?;
            compare(kind, case, "image_rotary_emb_sin", rotary.sin.clone(), &fx, device, report)?;
            let hidden: Tensor<5> = load_f32(&fx, "hidden_states", device)?;
            let text: Tensor<3> = load_f32(&fx, "encoder_hidden_states", device)?;
            let flow: Tensor<5> = load_f32(&fx, "video_flow", device)?;
            let steps = fx.i64("timestep").map_err(|e| e.to_string())?;
            let n = steps.data.len();
            let timestep = Tensor::<1>::from_data(
                TensorData::new(steps.data.iter().map(|&t| t as f32).collect::<Vec<f32>>(), [n]),
                (device.device(), DType::F32),
            );
            let rope = config.use_rotary_positional_embeddings.then_some(&rotary);
            let with_flow = model.forward(hidden.clone(), text.clone(), timestep.clone(), Some(flow), rope);
            compare(kind, case, "output_with_flow", with_flow, &fx, device, report)?;
            let no_flow = model.forward(hidden, text, timestep, None, rope);
            compare(kind, case, "output_no_flow", no_flow, &fx, device, report)?;
        }
    }
    Ok(())
}
