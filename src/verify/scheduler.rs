//! `scheduler` parity, on every `*/io/scheduler_dpm.safetensors` and `*/io/pipeline.safetensors`,
//! with the scheduler configured from the model folder's `scheduler/scheduler_config.json` (the
//! path a real checkpoint takes):
//! - `alphas_cumprod`: max relative error, tolerance 1e-15 (f64; the last entry must be exactly 0);
//! - `timesteps_<n>`, the pipeline's `timesteps`: exact;
//! - every chain `n<n>_*` run through [`DpmScheduler::step`] on the chosen backend, each step fed
//!   our own previous output and the recorded noises: `prev_sample` and `pred_original_sample`
//!   per step, atol 1e-3 (the README's sampler-latent tolerance), and the number of noise draws;
//! - the pipeline's `guidance_scales` (dynamic CFG): exact in f64;
//! - the pipeline's denoising loop without the transformer: the recorded `noise_pred_step<i>`
//!   guided with those scales and stepped with the recorded scheduler noises -> `latents_step<i>`,
//!   atol 1e-3.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::tensor::{Tensor, TensorData};
use serde::Deserialize;

use super::{cogvideox_cases, max_abs_diff, run_cases, CheckResult, Kind};
use crate::model::device::read_f32;
use crate::model::ComputeDevice;
use crate::sampling::{apply_guidance, guidance_scales, DpmScheduler, ReplayNoise, SchedulerConfig};
use crate::tensor_file::TensorFile;
use crate::Backend;

/// Relative tolerance on the f64 `alphas_cumprod`.
pub const ALPHAS_REL_TOL: f64 = 1e-15;
/// Absolute tolerance on sampler latents (fixtures README).
pub const LATENT_TOL: f64 = 1e-3;

const KIND: Kind = Kind::Scheduler;

/// Every `<model>/io/{scheduler_dpm,pipeline}.safetensors`, and the SAT trees made from such a
/// folder (their schedule comes from the SAT yaml).
pub fn run(root: &Path, files: &[PathBuf], backend: Backend, report: &mut dyn FnMut(CheckResult)) {
    let has_scheduler = |m: &Path| m.join("scheduler").is_dir();
    let mut cases = cogvideox_cases(root, files, "scheduler_dpm.safetensors", has_scheduler);
    cases.extend(cogvideox_cases(root, files, "pipeline.safetensors", has_scheduler));
    run_cases(KIND, &cases, backend, report, |c, device, report| {
        let config = c.source.scheduler_config().map_err(|e| e.to_string())?;
        if c.io.file_name().is_some_and(|n| n == "pipeline.safetensors") {
            check_pipeline(&c.case, &c.io, config, device, report)
        } else {
            check_scheduler(&c.case, &c.io, config, device, report)
        }
    });
}

fn exact_i64(kind_case: String, ours: &[i64], reference: &[i64]) -> CheckResult {
    let err = if ours == reference { 0.0 } else { f64::INFINITY };
    let r = CheckResult::compare(KIND, kind_case, err, 0.0);
    if err > 0.0 {
        r.with_note(format!("ours {ours:?}, reference {reference:?}"))
    } else {
        r
    }
}

fn check_scheduler(
    case: &str,
    path: &Path,
    config: SchedulerConfig,
    device: &ComputeDevice,
    report: &mut dyn FnMut(CheckResult),
) -> Result<(), String> {
    let fx = TensorFile::open(path).map_err(|e| e.to_string())?;

    // The folder's config must be the one the fixture was made with.
    if let Some(meta_config) = fx.metadata().get("config") {
        let theirs = SchedulerConfig::from_json(meta_config).map_err(|e| format!("metadata 'config': {e}"))?;
        let same = theirs == config;
        let r = CheckResult::compare(KIND, format!("{case}/config"), if same { 0.0 } else { f64::INFINITY }, 0.0);
        report(if same { r } else { r.with_note(format!("folder {config:?}, fixture {theirs:?}")) });
    }

    // ᾱ: relative error (absolute where the reference is 0), and the zero-SNR end exactly 0.
    let reference = fx.f64("alphas_cumprod").map_err(|e| e.to_string())?;
    let some_chain = DpmScheduler::new(&config, 1).map_err(|e| e.to_string())?;
    let ours = &some_chain.schedule().alphas_cumprod;
    let rel = if ours.len() == reference.data.len() {
        ours.iter()
            .zip(&reference.data)
            .map(|(&a, &b)| if b == 0.0 { (a - b).abs() } else { ((a - b) / b).abs() })
            .fold(0.0, |m: f64, d| if d.is_nan() { f64::INFINITY } else { m.max(d) })
    } else {
        f64::INFINITY
    };
    let mut r = CheckResult::compare(KIND, format!("{case}/alphas_cumprod"), rel, ALPHAS_REL_TOL);
    let exact = ours.iter().zip(&reference.data).filter(|(a, b)| a == b).count();
    r = r.with_note(format!("relative; {exact}/{} bit-identical", reference.data.len()));
    if reference.data.last() == Some(&0.0) && ours.last() != Some(&0.0) {
        r.passed = false;
        r = r.with_note(format!("last entry {:?}, reference exactly 0", ours.last()));
    }
    report(r);

    for name in fx.names() {
        let Some(n) = name.strip_prefix("timesteps_").and_then(|n| n.parse::<usize>().ok()) else { continue };
        let reference = fx.i64(&name).map_err(|e| e.to_string())?;
        match DpmScheduler::new(&config, n) {
            Ok(s) => report(exact_i64(format!("{case}/{name}"), s.timesteps(), &reference.data)),
            Err(e) => report(CheckResult::failed(KIND, format!("{case}/{name}"), e.to_string())),
        }
    }

    let chains: BTreeMap<String, Vec<ChainStep>> =
        serde_json::from_str(fx.metadata().get("chains").ok_or("metadata has no 'chains'")?)
            .map_err(|e| format!("bad 'chains' metadata: {e}"))?;
    for (n, steps) in &chains {
        let n: usize = n.parse().map_err(|_| format!("chain key '{n}' is not a step count"))?;
        if let Err(e) = check_chain(case, &fx, &config, n, steps, device, report) {
            report(CheckResult::failed(KIND, format!("{case}/n{n}"), e));
        }
    }
    Ok(())
}

/// One `step()` call of a recorded chain (metadata `chains`).
#[derive(Debug, Deserialize)]
struct ChainStep {
    i: usize,
    timestep: i64,
    timestep_back: Option<i64>,
    prev_timestep_used: i64,
    num_noise_draws: usize,
    noise_used: String,
    sample: String,
    model_output: String,
    prev_sample: String,
    pred_original_sample: String,
}

impl ChainStep {
    /// The names of the step's draws: `noise_used` names one of `<prefix>_0 .. <prefix>_{k-1}`.
    fn noise_names(&self) -> Result<Vec<String>, String> {
        let (prefix, _) =
            self.noise_used.rsplit_once('_').ok_or_else(|| format!("odd noise name '{}'", self.noise_used))?;
        Ok((0..self.num_noise_draws).map(|k| format!("{prefix}_{k}")).collect())
    }
}

fn check_chain(
    case: &str,
    fx: &TensorFile,
    config: &SchedulerConfig,
    n: usize,
    steps: &[ChainStep],
    device: &ComputeDevice,
    report: &mut dyn FnMut(CheckResult),
) -> Result<(), String> {
    let mut scheduler = DpmScheduler::new(config, n).map_err(|e| e.to_string())?;
    let backend = crate::model::device::backend_name(device.backend());
    let mut sample: Option<Tensor<5>> = None;
    for step in steps {
        let label = format!("{case}/n{n}/step{}", step.i);
        let ts = scheduler.step_timesteps(step.i).map_err(|e| e.to_string())?;
        let ours = [ts.timestep, ts.timestep_back.unwrap_or(-1), ts.prev_timestep];
        let theirs = [step.timestep, step.timestep_back.unwrap_or(-1), step.prev_timestep_used];
        report(exact_i64(format!("{label}/timesteps"), &ours, &theirs));

        // The chain starts from the recorded sample; later steps take our own previous output.
        let x = match sample.take() {
            Some(x) => x,
            None => load5(fx, &step.sample, device)?,
        };
        let model_output = load5(fx, &step.model_output, device)?;
        let mut noise = ReplayNoise::from_tensor_file(fx, &step.noise_names()?).map_err(|e| e.to_string())?;
        let out = scheduler.step(model_output, step.i, x, &mut noise, device).map_err(|e| e.to_string())?;
        let draws = noise.served();
        let draws_ok = draws == step.num_noise_draws && noise.remaining() == 0;
        let r =
            CheckResult::compare(KIND, format!("{label}/noise_draws"), if draws_ok { 0.0 } else { f64::INFINITY }, 0.0);
        report(if draws_ok { r } else { r.with_note(format!("drew {draws}, reference {}", step.num_noise_draws)) });
        for (name, tensor) in
            [(&step.prev_sample, &out.prev_sample), (&step.pred_original_sample, &out.pred_original_sample)]
        {
            let field = if name == &step.prev_sample { "prev_sample" } else { "pred_original_sample" };
            let err = compare5(fx, name, tensor.clone())?;
            report(
                CheckResult::compare(KIND, format!("{label}/{field}"), err, LATENT_TOL)
                    .with_note(format!("{backend} f32")),
            );
        }
        sample = Some(out.prev_sample);
    }
    Ok(())
}

/// The pipeline settings this checker needs.
#[derive(Debug, Deserialize)]
struct PipelineSettings {
    num_inference_steps: usize,
    guidance_scale: f64,
    use_dynamic_cfg: bool,
}

/// One entry of the pipeline's `noise_order` metadata.
#[derive(Debug, Deserialize)]
struct NoiseDraw {
    name: String,
    source: String,
}

fn check_pipeline(
    case: &str,
    path: &Path,
    config: SchedulerConfig,
    device: &ComputeDevice,
    report: &mut dyn FnMut(CheckResult),
) -> Result<(), String> {
    let fx = TensorFile::open(path).map_err(|e| e.to_string())?;
    let config = config.for_tora();
    let meta = fx.metadata();
    let settings: PipelineSettings = serde_json::from_str(meta.get("settings").ok_or("metadata has no 'settings'")?)
        .map_err(|e| format!("bad 'settings' metadata: {e}"))?;
    let mut scheduler = DpmScheduler::new(&config, settings.num_inference_steps).map_err(|e| e.to_string())?;
    let timesteps = scheduler.timesteps().to_vec();
    let reference = fx.i64("timesteps").map_err(|e| e.to_string())?;
    report(exact_i64(format!("{case}/timesteps"), &timesteps, &reference.data));

    let scales = guidance_scales(settings.guidance_scale, settings.use_dynamic_cfg, &timesteps);
    let reference = fx.f64("guidance_scales").map_err(|e| e.to_string())?;
    let err = max_abs_diff(&scales, &reference.data);
    report(
        CheckResult::compare(KIND, format!("{case}/guidance_scales"), err, 0.0).with_note(format!("ours {scales:?}")),
    );

    // The denoising loop without the transformer: recorded model outputs, our guidance and steps.
    let order: Vec<NoiseDraw> = serde_json::from_str(meta.get("noise_order").ok_or("metadata has no 'noise_order'")?)
        .map_err(|e| format!("bad 'noise_order' metadata: {e}"))?;
    let names: Vec<&str> =
        order.iter().filter(|d| d.source.ends_with("Scheduler.step")).map(|d| d.name.as_str()).collect();
    let mut noise = ReplayNoise::from_tensor_file(&fx, &names).map_err(|e| e.to_string())?;
    let backend = crate::model::device::backend_name(device.backend());
    let mut latents = load5(&fx, "latents_init", device)?;
    for (i, &scale) in scales.iter().enumerate() {
        let noise_pred = load5(&fx, &format!("noise_pred_step{i}"), device)?;
        let guided = apply_guidance(noise_pred, scale).map_err(|e| e.to_string())?;
        let out = scheduler.step(guided, i, latents, &mut noise, device).map_err(|e| e.to_string())?;
        latents = out.prev_sample;
        let err = compare5(&fx, &format!("latents_step{i}"), latents.clone())?;
        report(
            CheckResult::compare(KIND, format!("{case}/guided_latents_step{i}"), err, LATENT_TOL)
                .with_note(format!("{backend} f32")),
        );
    }
    let left = noise.remaining();
    let r = CheckResult::compare(KIND, format!("{case}/noise_draws"), if left == 0 { 0.0 } else { f64::INFINITY }, 0.0);
    report(if left == 0 { r } else { r.with_note(format!("{left} recorded scheduler draws unused")) });
    Ok(())
}

fn load5(fx: &TensorFile, name: &str, device: &ComputeDevice) -> Result<Tensor<5>, String> {
    let t = fx.f32(name).map_err(|e| e.to_string())?;
    if t.shape.len() != 5 {
        return Err(format!("'{name}' has shape {:?}, expected 5 dimensions", t.shape));
    }
    Ok(device.float_tensor(TensorData::new(t.data, t.shape)))
}

/// Max |ours − reference| (infinite on a shape mismatch).
fn compare5(fx: &TensorFile, name: &str, ours: Tensor<5>) -> Result<f64, String> {
    let reference = fx.f32(name).map_err(|e| e.to_string())?;
    if ours.dims().as_slice() != reference.shape.as_slice() {
        return Ok(f64::INFINITY);
    }
    let values = read_f32(ours).map_err(|e| format!("reading {name} back: {e}"))?;
    Ok(max_abs_diff(&values, &reference.data))
}
