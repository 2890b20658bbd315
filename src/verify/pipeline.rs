//! `pipeline` parity: every `*/io/pipeline.safetensors` — a whole T2V or I2V run through
//! [`crate::pipeline::tora::generate`] (the same code the studio and `generate` use), on the model
//! folder the `io/` folder sits in (and on every SAT tree made from it, diffusers semantics), replaying the recorded noise and starting from the stored
//! `video_flow`, first frame and initial latents. Every recorded intermediate is compared.
//!
//! Tolerances (f32): module outputs (prompt embeddings, flow/image latents) 1e-4; everything
//! downstream of the denoising loop (noise predictions, latents per step, frames) 1e-3 — the
//! fixture README's numbers (f64 reruns differ by ≤ 1.2e-5 on noise_pred, 9e-6 on frames).
//! Token ids, timesteps and guidance scales must match exactly.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{cogvideox_cases, max_abs_diff, run_cases, CheckResult, Kind, ModelCase};
use crate::model::ComputeDevice;
use crate::pipeline::tora::{self, ClipShape, Conditioning, Trace};
use crate::pipeline::{Event, MotionGuidance, Progress, Settings};
use crate::sampling::{guidance_scales, ReplayNoise};
use crate::tensor_file::TensorFile;
use crate::Backend;

const MODULE_TOL: f64 = 1e-4;
const PIPELINE_TOL: f64 = 1e-3;

#[derive(Deserialize)]
struct FixtureSettings {
    prompt: String,
    negative_prompt: Option<String>,
    height: usize,
    width: usize,
    num_frames: usize,
    num_inference_steps: usize,
    guidance_scale: f64,
    use_dynamic_cfg: bool,
}

#[derive(Deserialize)]
struct NoiseEntry {
    name: String,
}

/// Every `<model>/io/pipeline.safetensors` of a CogVideoX-Tora folder, and the SAT trees made from one.
pub fn run(root: &Path, files: &[PathBuf], backend: Backend, report: &mut dyn FnMut(CheckResult)) {
    let cases =
        cogvideox_cases(root, files, "pipeline.safetensors", |m| m.join("transformer").join("config.json").is_file());
    run_cases(Kind::Pipeline, &cases, backend, report, check_case);
}

struct Silent;

impl Progress for Silent {
    fn event(&self, _event: Event) {}
    fn cancelled(&self) -> bool {
        false
    }
    fn wants_previews(&self) -> bool {
        false
    }
}

#[derive(Default)]
struct Recorder(HashMap<String, (Vec<usize>, Vec<f32>)>);

impl Trace for Recorder {
    fn record(&mut self, name: &str, shape: &[usize], data: Vec<f32>) {
        self.0.insert(name.to_string(), (shape.to_vec(), data));
    }
}

fn check_case(c: &ModelCase, device: &ComputeDevice, report: &mut dyn FnMut(CheckResult)) -> Result<(), String> {
    let (case, fx) = (c.case.as_str(), TensorFile::open(&c.io).map_err(|e| e.to_string())?);
    let meta = fx.metadata();
    let settings: FixtureSettings =
        serde_json::from_str(meta.get("settings").ok_or("metadata has no 'settings'")?).map_err(|e| e.to_string())?;
    let noise_order: Vec<NoiseEntry> =
        serde_json::from_str(meta.get("noise_order").ok_or("metadata has no 'noise_order'")?)
            .map_err(|e| e.to_string())?;

    // Inputs exactly as the reference got them.
    let video_flow = fx.f32("video_flow").map_err(|e| e.to_string())?; // [1, T, 3, H, W]
    let image = if fx.names().iter().any(|n| n == "image_preprocessed") {
        Some(fx.f32("image_preprocessed").map_err(|e| e.to_string())?.data) // [1, 3, H, W]
    } else {
        None
    };
    let latents_init = fx.f32("latents_init").map_err(|e| e.to_string())?.data;
    let names: Vec<&str> = noise_order.iter().map(|n| n.name.as_str()).collect();
    let mut noise = ReplayNoise::from_tensor_file(&fx, &names).map_err(|e| e.to_string())?;

    let run_settings = Settings {
        prompt: settings.prompt.clone(),
        negative_prompt: settings.negative_prompt.clone().unwrap_or_default(),
        steps: settings.num_inference_steps,
        guidance_scale: settings.guidance_scale,
        use_dynamic_cfg: settings.use_dynamic_cfg,
        seed: 0,
        motion: MotionGuidance::default(),
        image: None,
    };
    let shape = ClipShape { width: settings.width, height: settings.height, frames: settings.num_frames, fps: 8.0 };
    let conditioning = Conditioning { video_flow: video_flow.data, image, latents_init: Some(latents_init) };
    let mut recorder = Recorder::default();
    tora::generate_from(
        &c.source,
        &run_settings,
        shape,
        conditioning,
        device,
        &mut noise,
        &Silent,
        Some(&mut recorder),
    )
    .map_err(|e| e.to_string())?;
    if noise.remaining() != 0 {
        report(CheckResult::failed(
            Kind::Pipeline,
            format!("{case}/noise"),
            format!("{} recorded noise tensors were never drawn", noise.remaining()),
        ));
    }

    // Exact: token ids, timesteps, guidance scales.
    for (name, tol) in [("input_ids", 0.0), ("negative_input_ids", 0.0), ("timesteps", 0.0)] {
        if fx.names().iter().any(|n| n == name) {
            let reference: Vec<f64> = fx.i64(name).map_err(|e| e.to_string())?.data.iter().map(|&v| v as f64).collect();
            compare(case, name, &recorder, &reference, tol, report);
        }
    }
    let timesteps: Vec<i64> = fx.i64("timesteps").map_err(|e| e.to_string())?.data;
    let ours = guidance_scales(settings.guidance_scale, settings.use_dynamic_cfg, &timesteps);
    let reference = fx.f64("guidance_scales").map_err(|e| e.to_string())?.data;
    report(CheckResult::compare(
        Kind::Pipeline,
        format!("{case}/guidance_scales"),
        max_abs_diff(&ours, &reference),
        0.0,
    ));

    // Module outputs.
    for name in ["prompt_embeds", "negative_prompt_embeds", "flow_latents", "image_latents"] {
        if fx.names().iter().any(|n| n == name) {
            let reference: Vec<f64> = fx.f32(name).map_err(|e| e.to_string())?.data.iter().map(|&v| v as f64).collect();
            compare(case, name, &recorder, &reference, MODULE_TOL, report);
        }
    }
    // The denoising chain and the frames.
    let mut chain: Vec<String> = Vec::new();
    for i in 0..settings.num_inference_steps {
        chain.push(format!("noise_pred_step{i}"));
        chain.push(format!("latents_step{i}"));
    }
    chain.push("frames".into());
    for name in &chain {
        let reference: Vec<f64> = fx.f32(name).map_err(|e| e.to_string())?.data.iter().map(|&v| v as f64).collect();
        compare(case, name, &recorder, &reference, PIPELINE_TOL, report);
    }
    Ok(())
}

fn compare(
    case: &str,
    name: &str,
    recorder: &Recorder,
    reference: &[f64],
    tol: f64,
    report: &mut dyn FnMut(CheckResult),
) {
    let label = format!("{case}/{name}");
    match recorder.0.get(name) {
        Some((_, ours)) => {
            let ours: Vec<f64> = ours.iter().map(|&v| v as f64).collect();
            report(CheckResult::compare(Kind::Pipeline, label, max_abs_diff(&ours, reference), tol));
        }
        None => report(CheckResult::failed(Kind::Pipeline, label, "the run did not produce it")),
    }
}
