//! `traj_extractor`, `mgf`, `transformer` parity: every `*/io/{traj_extractor,mgf,transformer}.safetensors`,
//! run through the transformer loaded from the model folder the `io/` folder sits in (the same
//! [`ModelSource`](crate::model::cogvideox::ModelSource) a real checkpoint goes through); the same
//! files through every SAT tree made from that folder; and `<sat>/io_sat/transformer.safetensors`
//! (Tora's own SAT forward) through the SAT tree with SAT semantics.
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

use super::{cogvideox_cases, layout_note, max_abs_diff, run_cases, sat_semantics_cases, CheckResult, Kind, ModelCase};
use crate::model::cogvideox::RotaryEmbedding;
use crate::model::device::read_f32;
use crate::model::ComputeDevice;
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

/// `<model>/io/<file>` with `<model>/transformer/config.json`, the SAT trees made from such a
/// folder (diffusers semantics), and for `transformer` also `<sat>/io_sat/transformer.safetensors`
/// (Tora's own SAT forward, SAT semantics).
fn cases(kind: Kind, root: &Path, files: &[PathBuf]) -> Vec<ModelCase> {
    let mut cases =
        cogvideox_cases(root, files, file_name(kind), |m| m.join("transformer").join("config.json").is_file());
    if kind == Kind::Transformer {
        cases.extend(sat_semantics_cases(root, files, file_name(kind)));
    }
    cases
}

pub fn run(kind: Kind, root: &Path, files: &[PathBuf], backend: Backend, report: &mut dyn FnMut(CheckResult)) {
    run_cases(kind, &cases(kind, root, files), backend, report, |c, device, report| {
        check_case(kind, c, device, report)
    });
}

fn load_f32<const D: usize>(fx: &TensorFile, name: &str, device: &ComputeDevice) -> Result<Tensor<D>, String> {
    let t = fx.f32(name).map_err(|e| e.to_string())?;
    let shape: [usize; D] =
        t.shape.clone().try_into().map_err(|_| format!("'{name}' has shape {:?}, expected {D} dimensions", t.shape))?;
    Ok(Tensor::from_data(TensorData::new(t.data, shape), (device.device(), DType::F32)))
}

/// Compares `ours` with the fixture tensor `name` and reports one line `case/name`.
#[allow(clippy::too_many_arguments)]
fn compare<const D: usize>(
    kind: Kind,
    case: &str,
    layout: &str,
    name: &str,
    ours: Tensor<D>,
    fx: &TensorFile,
    device: &ComputeDevice,
    report: &mut dyn FnMut(CheckResult),
) -> Result<(), String> {
    let reference = fx.f32(name).map_err(|e| e.to_string())?;
    let dims = ours.dims();
    let values = read_f32(ours).map_err(|e| format!("reading {name} back: {e}"))?;
    let (err, mut note) = if dims.as_slice() == reference.shape.as_slice() {
        (max_abs_diff(&values, &reference.data), String::new())
    } else {
        (f64::INFINITY, format!("shape {dims:?}, reference {:?}; ", reference.shape))
    };
    note.push_str(&format!("{} f32{layout}", crate::model::device::backend_name(device.backend())));
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
    c: &ModelCase,
    device: &ComputeDevice,
    report: &mut dyn FnMut(CheckResult),
) -> Result<(), String> {
    let fx = TensorFile::open(&c.io).map_err(|e| e.to_string())?;
    let (model, config) = c.source.load_transformer(device).map_err(|e| e.to_string())?;
    let (case, layout) = (c.case.as_str(), layout_note(&c.source));
    let layout = layout.as_str();
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
                compare(kind, case, layout, name, feature, &fx, device, report)?;
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
            compare(kind, case, layout, "output", fuser.forward(h, flow, frames), &fx, device, report)?;
        }
        _ => {
            // The RoPE tables as the pipeline makes them for the output size, when the file has
            // them (Tora's SAT forward in io_sat/ does not export them: the model makes its own).
            let rotary = if fx.names().iter().any(|n| n == "image_rotary_emb_cos") {
                let (height, width, frames) =
                    (meta_usize(&fx, "height")?, meta_usize(&fx, "width")?, meta_usize(&fx, "latent_frames")?);
                let rotary = RotaryEmbedding::for_output(&config, height, width, frames, device);
                compare(kind, case, layout, "image_rotary_emb_cos", rotary.cos.clone(), &fx, device, report)?;
                compare(kind, case, layout, "image_rotary_emb_sin", rotary.sin.clone(), &fx, device, report)?;
                Some(rotary)
            } else {
                None
            };
            let hidden: Tensor<5> = load_f32(&fx, "hidden_states", device)?;
            let text: Tensor<3> = load_f32(&fx, "encoder_hidden_states", device)?;
            let flow: Tensor<5> = load_f32(&fx, "video_flow", device)?;
            let steps = fx.i64("timestep").map_err(|e| e.to_string())?;
            let n = steps.data.len();
            let timestep = Tensor::<1>::from_data(
                TensorData::new(steps.data.iter().map(|&t| t as f32).collect::<Vec<f32>>(), [n]),
                (device.device(), DType::F32),
            );
            let rope = rotary.as_ref().filter(|_| config.use_rotary_positional_embeddings);
            let with_flow = model.forward(hidden.clone(), text.clone(), timestep.clone(), Some(flow), rope);
            compare(kind, case, layout, "output_with_flow", with_flow, &fx, device, report)?;
            let no_flow = model.forward(hidden, text, timestep, None, rope);
            compare(kind, case, layout, "output_no_flow", no_flow, &fx, device, report)?;
        }
    }
    Ok(())
}
