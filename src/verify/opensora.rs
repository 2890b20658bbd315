//! The paper's own backbone: OpenSora 1.2 (STDiT3 + VAE v1.2), with Tora's TE/MGF.
//!
//! - `stdit3`: every `*/io/stdit3*.safetensors` — `STDiT3.forward(x, timestep, y, mask, x_mask,
//!   fps, height, width)` against `output`, the model loaded from the folder holding `io/`
//!   (its `stdit3/` component). Tolerance 1e-4 (module, f32).
//! - `rflow`: every `*/io/rflow*.safetensors` — the timestep tables named in the metadata
//!   (exact), the model on each step's recorded inputs against `model_out_step<i>` (1e-4), and
//!   the whole chain from `z_init` with the recorded `randn_like_step<i>` replayed: our own model
//!   inputs per step against the recorded ones and `z_final` (1e-3, sampler latents).
//! - `opensora_vae_encode` / `opensora_vae_decode`: the VAE helper's checks (separate arm).

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use burn::tensor::{Bool, Int, Tensor, TensorData};

use super::{max_abs_diff, run_cases, CheckResult, FileCase, Kind};
use crate::model::device::read_f32;
use crate::model::opensora::Stdit3;
use crate::model::ComputeDevice;
use crate::sampling::rflow::{Rflow, RflowConfig, VideoSize};
use crate::tensor_file::TensorFile;
use crate::Backend;

/// Module tolerance (f32): the README measures the f32 reference against f64 at ≤ 1.7e-6.
pub const MODULE_TOL: f64 = 1e-4;
/// Sampler latents: CFG 7 amplifies per-step differences ~13× (README: f64 rerun 1.8e-4).
pub const LATENT_TOL: f64 = 1e-3;

pub fn run(kind: Kind, root: &Path, files: &[PathBuf], backend: Backend, report: &mut dyn FnMut(CheckResult)) {
    match kind {
        Kind::Stdit3 | Kind::Rflow => transformer_checks(kind, root, files, backend, report),
        Kind::OpensoraVaeEncode | Kind::OpensoraVaeDecode => {
            super::opensora_vae::run(kind, root, files, backend, report)
        }
        _ => {}
    }
}

/// `<model>/io/<prefix>*.safetensors`.
fn io_files<'a>(files: &'a [PathBuf], prefix: &str) -> Vec<&'a PathBuf> {
    files
        .iter()
        .filter(|p| {
            p.extension().is_some_and(|e| e == "safetensors")
                && p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(prefix))
                && p.parent().and_then(|d| d.file_name()).is_some_and(|n| n == "io")
        })
        .collect()
}

fn transformer_checks(
    kind: Kind,
    root: &Path,
    files: &[PathBuf],
    backend: Backend,
    report: &mut dyn FnMut(CheckResult),
) {
    let prefix = if kind == Kind::Stdit3 { "stdit3" } else { "rflow" };
    let cases: Vec<FileCase> = io_files(files, prefix).into_iter().map(|p| FileCase::new(root, p)).collect();
    // One model per model folder.
    let mut loaded: Option<(PathBuf, Stdit3)> = None;
    run_cases(kind, &cases, backend, report, |c, device, report| {
        let model_dir = c.path.parent().and_then(Path::parent).ok_or("an io file outside a model folder")?;
        let model = match &loaded {
            Some((dir, model)) if dir == model_dir => model,
            _ => {
                loaded = None;
                let (model, _) = Stdit3::load(model_dir, device).map_err(|e| e.to_string())?;
                &loaded.insert((model_dir.to_path_buf(), model)).1
            }
        };
        if kind == Kind::Stdit3 {
            check_stdit3(&c.case, &c.path, model, device, report)
        } else {
            check_rflow(&c.case, &c.path, model, device, report)
        }
    });
}

/// A fixture file with typed device uploads.
struct Fixture<'a> {
    file: TensorFile,
    device: &'a ComputeDevice,
}

impl<'a> Fixture<'a> {
    fn open(path: &Path, device: &'a ComputeDevice) -> Result<Self, String> {
        Ok(Fixture { file: TensorFile::open(path).map_err(|e| e.to_string())?, device })
    }

    fn has(&self, name: &str) -> bool {
        self.file.names().iter().any(|n| n == name)
    }

    fn host(&self, name: &str) -> Result<crate::tensor_file::Tensor<f32>, String> {
        self.file.f32(name).map_err(|e| e.to_string())
    }

    fn float<const D: usize>(&self, name: &str) -> Result<Tensor<D>, String> {
        let t = self.host(name)?;
        if t.shape.len() != D {
            return Err(format!("'{name}' has shape {:?}, expected {D} dims", t.shape));
        }
        Ok(self.device.float_tensor(TensorData::new(t.data, t.shape)))
    }

    fn int2(&self, name: &str) -> Result<Tensor<2, Int>, String> {
        let t = self.file.i64(name).map_err(|e| e.to_string())?;
        if t.shape.len() != 2 {
            return Err(format!("'{name}' has shape {:?}, expected 2 dims", t.shape));
        }
        Ok(Tensor::from_data(TensorData::new(t.data, t.shape), self.device.device()))
    }

    /// A BOOL tensor (stored one byte per value).
    fn bool2(&self, name: &str) -> Result<Tensor<2, Bool>, String> {
        let bytes = std::fs::read(self.file.path()).map_err(|e| e.to_string())?;
        let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| e.to_string())?;
        let view = st.tensor(name).map_err(|_| format!("fixture has no '{name}'"))?;
        if view.dtype() != safetensors::Dtype::BOOL || view.shape().len() != 2 {
            return Err(format!("'{name}' is {:?} {:?}, expected BOOL [B, T]", view.dtype(), view.shape()));
        }
        let values: Vec<bool> = view.data().iter().map(|&b| b != 0).collect();
        Ok(Tensor::from_data(TensorData::new(values, view.shape().to_vec()), self.device.device()))
    }

    fn scalar(&self, name: &str) -> Result<f32, String> {
        self.host(name)?.data.first().copied().ok_or_else(|| format!("'{name}' is empty"))
    }
}

fn to_host<const D: usize>(t: Tensor<D>) -> Result<(Vec<usize>, Vec<f32>), String> {
    let dims = t.dims().to_vec();
    let values = read_f32(t).map_err(|e| format!("reading back: {e}"))?;
    Ok((dims, values))
}

/// Compares a result with a reference tensor (shape mismatch = infinite error, noted).
fn compare(
    kind: Kind,
    case: String,
    ours: (Vec<usize>, Vec<f32>),
    reference: &crate::tensor_file::Tensor<f32>,
    tol: f64,
    note: &str,
) -> CheckResult {
    let (dims, values) = ours;
    if dims != reference.shape {
        return CheckResult::compare(kind, case, f64::INFINITY, tol)
            .with_note(format!("{note}; shape {dims:?}, reference {:?}", reference.shape));
    }
    CheckResult::compare(kind, case, max_abs_diff(&values, &reference.data), tol).with_note(note.to_string())
}

fn backend_label(device: &ComputeDevice) -> &'static str {
    crate::model::device::backend_name(device.backend())
}

fn check_stdit3(
    case: &str,
    path: &Path,
    model: &Stdit3,
    device: &ComputeDevice,
    report: &mut dyn FnMut(CheckResult),
) -> Result<(), String> {
    let fx = Fixture::open(path, device)?;
    let mask = if fx.has("mask") { Some(fx.int2("mask")?) } else { None };
    let x_mask = if fx.has("x_mask") { Some(fx.bool2("x_mask")?) } else { None };
    let out = model
        .try_forward(
            fx.float::<5>("x")?,
            fx.float::<1>("timestep")?,
            fx.float::<4>("y")?,
            mask,
            x_mask,
            fx.float::<1>("fps")?,
            fx.scalar("height")?,
            fx.scalar("width")?,
            None,
        )
        .map_err(|e| e.to_string())?;
    let reference = fx.host("output")?;
    let note = format!("{} f32", backend_label(device));
    report(compare(Kind::Stdit3, format!("{case}/output"), to_host(out)?, &reference, MODULE_TOL, &note));
    Ok(())
}

/// `timestep_tables` metadata entry.
#[derive(serde::Deserialize)]
struct TableSpec {
    name: String,
    num_sampling_steps: usize,
    height: f32,
    width: f32,
    num_frames: f32,
}

/// `settings` metadata (the fields the sampler needs).
#[derive(serde::Deserialize)]
struct RflowSettings {
    cfg: f32,
    steps: usize,
}

fn check_rflow(
    case: &str,
    path: &Path,
    model: &Stdit3,
    device: &ComputeDevice,
    report: &mut dyn FnMut(CheckResult),
) -> Result<(), String> {
    let fx = Fixture::open(path, device)?;
    let meta = fx.file.metadata();
    let note = format!("{} f32", backend_label(device));
    let producer = meta.get("producer").cloned().unwrap_or_default();
    let settings: RflowSettings = serde_json::from_str(meta.get("settings").ok_or("metadata has no 'settings'")?)
        .map_err(|e| format!("bad 'settings' metadata: {e}"))?;
    let base = RflowConfig {
        num_sampling_steps: settings.steps,
        cfg_scale: settings.cfg,
        // OpenSora 1.2 inference turns the transform on; a fixture made without it says so.
        use_timestep_transform: !producer.contains("use_timestep_transform=False"),
        ..RflowConfig::default()
    };

    // Timestep tables: exact.
    if let Some(tables) = meta.get("timestep_tables") {
        let specs: Vec<TableSpec> =
            serde_json::from_str(tables).map_err(|e| format!("bad 'timestep_tables' metadata: {e}"))?;
        for spec in specs {
            let reference = fx.host(&spec.name)?;
            let rflow = Rflow::new(RflowConfig { num_sampling_steps: spec.num_sampling_steps, ..base.clone() });
            let ours =
                rflow.timesteps(VideoSize { height: spec.height, width: spec.width, num_frames: spec.num_frames });
            let ours = (vec![ours.len()], ours);
            report(compare(Kind::Rflow, format!("{case}/{}", spec.name), ours, &reference, 0.0, "host f32"));
        }
    }

    // Conditioning shared by every model call: captions [y, y_null] (cond first), one mask.
    let y = fx.float::<4>("y")?;
    let y_null = fx.float::<4>("y_null")?;
    let captions = Tensor::cat(vec![y, y_null], 0);
    let mask = if fx.has("mask") { Some(fx.int2("mask")?) } else { None };
    let fps = fx.float::<1>("fps")?;
    let (height, width) = (fx.scalar("height")?, fx.scalar("width")?);
    let size = VideoSize { height, width, num_frames: fx.scalar("num_frames")? };
    let call = |x: Tensor<5>, t: Tensor<1>, x_mask: Option<Tensor<2, Bool>>| {
        model.try_forward(x, t, captions.clone(), mask.clone(), x_mask, fps.clone(), height, width, None)
    };

    // The model on each step's recorded inputs.
    let steps = (0..).take_while(|i| fx.has(&format!("model_in_x_step{i}"))).count();
    for i in 0..steps {
        let x_mask =
            if fx.has(&format!("x_mask_step{i}")) { Some(fx.bool2(&format!("x_mask_step{i}"))?) } else { None };
        let out = call(fx.float(&format!("model_in_x_step{i}"))?, fx.float(&format!("model_in_t_step{i}"))?, x_mask)
            .map_err(|e| e.to_string())?;
        let reference = fx.host(&format!("model_out_step{i}"))?;
        report(compare(Kind::Rflow, format!("{case}/model_out_step{i}"), to_host(out)?, &reference, MODULE_TOL, &note));
    }

    // The whole chain, recorded noise replayed, our own model inputs compared on the way.
    let rflow = Rflow::new(base);
    let sample_mask = if fx.has("sample_mask") { Some(fx.float::<2>("sample_mask")?) } else { None };
    let noise_step = RefCell::new(0usize);
    let input_errs: RefCell<Vec<(String, f64)>> = RefCell::new(Vec::new());
    let model_step = RefCell::new(0usize);
    let failure: RefCell<Option<String>> = RefCell::new(None);
    let mut noise = |shape: &[usize]| -> Tensor<5> {
        let i = noise_step.replace_with(|i| *i + 1);
        match fx.float::<5>(&format!("randn_like_step{i}")) {
            Ok(t) if t.dims().as_slice() == shape => t,
            Ok(t) => {
                failure.borrow_mut().get_or_insert(format!("randn_like_step{i} is {:?}, drawn {shape:?}", t.dims()));
                Tensor::zeros([shape[0], shape[1], shape[2], shape[3], shape[4]], device.device())
            }
            Err(e) => {
                failure.borrow_mut().get_or_insert(e);
                Tensor::zeros([shape[0], shape[1], shape[2], shape[3], shape[4]], device.device())
            }
        }
    };
    let mut model_fn = |x: Tensor<5>, t: Tensor<1>, x_mask: Option<Tensor<2, Bool>>| -> Tensor<5> {
        let i = model_step.replace_with(|i| *i + 1);
        // Our inputs against the recorded ones (where recorded).
        let record = |name: String, ours: Result<(Vec<usize>, Vec<f32>), String>| {
            if let (Ok(reference), Ok((dims, values))) = (fx.host(&name), ours) {
                let err = if dims == reference.shape { max_abs_diff(&values, &reference.data) } else { f64::INFINITY };
                input_errs.borrow_mut().push((name, err));
            }
        };
        record(format!("model_in_x_step{i}"), to_host(x.clone()));
        record(format!("model_in_t_step{i}"), to_host(t.clone()));
        if let (Some(m), Ok(reference)) = (&x_mask, fx.bool2(&format!("x_mask_step{i}"))) {
            let same = m.clone().equal(reference).all().into_scalar::<bool>();
            input_errs.borrow_mut().push((format!("x_mask_step{i}"), if same { 0.0 } else { f64::INFINITY }));
        }
        let out_dims = x.dims();
        match call(x, t, x_mask) {
            Ok(out) => out,
            Err(e) => {
                failure.borrow_mut().get_or_insert(e.to_string());
                Tensor::zeros(out_dims, device.device())
            }
        }
    };
    let z = rflow
        .sample(&mut model_fn, fx.float::<5>("z_init")?, size, sample_mask, &mut noise)
        .map_err(|e| e.to_string())?;
    if let Some(e) = failure.into_inner() {
        return Err(e);
    }
    for (name, err) in input_errs.into_inner() {
        report(
            CheckResult::compare(Kind::Rflow, format!("{case}/chain/{name}"), err, LATENT_TOL).with_note(note.clone()),
        );
    }
    let reference = fx.host("z_final")?;
    report(compare(Kind::Rflow, format!("{case}/z_final"), to_host(z)?, &reference, LATENT_TOL, &note));
    Ok(())
}
