//! Samplers: scheduler parity over every `*/io/scheduler_dpm.safetensors` and
//! `*/io/pipeline.safetensors` fixture (cpu, wgpu) through `verify`, plus the behaviour the
//! fixtures do not pin down: config loading and its errors, the other timestep spacings (checked
//! against numpy), zero-SNR, DDIM's exactness on a known x₀, noise sources and guidance.

use std::path::{Path, PathBuf};

use super::common::{cpu, fixtures_root, verify_passes};
use burn::tensor::{Tensor, TensorData};
use tora_studio::model::ComputeDevice;
use tora_studio::sampling::schedule::{inference_timesteps, numpy_arange, NoiseSchedule};
use tora_studio::sampling::{
    apply_guidance, dynamic_guidance_scales, guidance_scales, DdimScheduler, DpmScheduler, NoiseError, NoiseSource,
    PredictionType, RecordedNoise, RecordingNoise, ReplayNoise, SamplingError, SchedulerConfig, SeededNoise,
    TimestepSpacing,
};
use tora_studio::verify::{self, Kind};
use tora_studio::Backend;

/// Model folders that carry a scheduler fixture.
fn scheduler_model_dirs() -> Vec<PathBuf> {
    let root = fixtures_root();
    let dirs: Vec<PathBuf> = verify::walk_files(&root)
        .into_iter()
        .filter(|p| {
            p.file_name().is_some_and(|n| n == "scheduler_dpm.safetensors")
                && p.parent().and_then(|d| d.file_name()).is_some_and(|n| n == "io")
        })
        .filter_map(|p| p.parent().and_then(Path::parent).map(Path::to_path_buf))
        .collect();
    if dirs.is_empty() {
        verify::say_loudly(&format!(
            "WARNING: no */io/scheduler_dpm.safetensors fixtures under {}: scheduler parity is SKIPPED. Set TORA_FIXTURES.",
            root.display()
        ));
    }
    dirs
}

fn run_verify(backend: Backend) {
    if scheduler_model_dirs().is_empty() {
        return;
    }
    let results = verify_passes(&[Kind::Scheduler], backend);
    assert!(results.iter().any(|r| r.case.contains("/step")), "no scheduler chain checks ran");
}

#[test]
fn verify_scheduler_cpu() {
    run_verify(Backend::Cpu);
}

#[test]
fn verify_scheduler_wgpu() {
    run_verify(Backend::Wgpu);
}

fn tensor(device: &ComputeDevice, shape: [usize; 5], values: Vec<f32>) -> Tensor<5> {
    device.float_tensor(TensorData::new(values, shape.to_vec()))
}

fn values(t: Tensor<5>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().expect("f32 data")
}

/// CogVideoX-5B's shipped scheduler config.
fn cogvideox_config() -> SchedulerConfig {
    SchedulerConfig::from_json(
        r#"{"_class_name": "CogVideoXDDIMScheduler", "beta_end": 0.012, "beta_schedule": "scaled_linear",
            "beta_start": 0.00085, "clip_sample": false, "clip_sample_range": 1.0, "num_train_timesteps": 1000,
            "prediction_type": "v_prediction", "rescale_betas_zero_snr": true, "sample_max_value": 1.0,
            "set_alpha_to_one": true, "snr_shift_scale": 1.0, "steps_offset": 0, "timestep_spacing": "trailing",
            "trained_betas": null, "some_future_field": 3}"#,
    )
    .expect("valid config")
}

// ---- config ------------------------------------------------------------------------------------

#[test]
fn config_loads_from_pipeline_folder_scheduler_folder_and_file() {
    for dir in scheduler_model_dirs() {
        let a = SchedulerConfig::load(&dir).expect("pipeline folder");
        let b = SchedulerConfig::load(&dir.join("scheduler")).expect("scheduler folder");
        let c = SchedulerConfig::load(&dir.join("scheduler/scheduler_config.json")).expect("file");
        assert_eq!(a, b);
        assert_eq!(a, c);
        assert_eq!(a.prediction_type, PredictionType::VPrediction);
        assert_eq!(a.timestep_spacing, TimestepSpacing::Trailing);
        assert!(a.rescale_betas_zero_snr);
    }
}

#[test]
fn config_defaults_are_diffusers_defaults_and_unknown_fields_are_ignored() {
    let d = SchedulerConfig::from_json("{}").unwrap();
    assert_eq!(d.num_train_timesteps, 1000);
    assert_eq!((d.beta_start, d.beta_end), (0.00085, 0.012));
    assert_eq!(d.prediction_type, PredictionType::Epsilon);
    assert_eq!(d.timestep_spacing, TimestepSpacing::Leading);
    assert_eq!(d.snr_shift_scale, 3.0);
    assert!(d.set_alpha_to_one && d.clip_sample && !d.rescale_betas_zero_snr);
    let c = cogvideox_config();
    assert_eq!(c.class_name.as_deref(), Some("CogVideoXDDIMScheduler"));
    assert_eq!(c.clone().for_tora().timestep_spacing, TimestepSpacing::Trailing);
}

#[test]
fn config_errors_name_the_file_and_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let err = SchedulerConfig::load(dir.path()).unwrap_err();
    assert!(matches!(err, SamplingError::Io { .. }), "{err}");
    assert!(err.to_string().contains("scheduler_config.json"), "{err}");

    let file = dir.path().join("scheduler_config.json");
    std::fs::write(&file, r#"{"beta_schedule": "cubic"}"#).unwrap();
    let err = SchedulerConfig::load(dir.path()).unwrap_err();
    assert!(matches!(err, SamplingError::Config { .. }), "{err}");
    assert!(err.to_string().contains("cubic"), "{err}");

    std::fs::write(&file, r#"{"trained_betas": [0.1, 0.2]}"#).unwrap();
    let err = SchedulerConfig::load(&file).unwrap_err().to_string();
    assert!(err.contains("trained_betas has 2 entries"), "{err}");

    std::fs::write(&file, "{not json").unwrap();
    assert!(matches!(SchedulerConfig::load(&file), Err(SamplingError::Config { .. })));
}

// ---- schedule and timesteps --------------------------------------------------------------------

#[test]
fn zero_snr_rescale_ends_exactly_at_zero_and_keeps_the_first_alpha() {
    let config = cogvideox_config();
    let rescaled = NoiseSchedule::new(&config).alphas_cumprod;
    let plain = NoiseSchedule::new(&SchedulerConfig { rescale_betas_zero_snr: false, ..config }).alphas_cumprod;
    assert_eq!(rescaled.len(), 1000);
    assert_eq!(rescaled[999], 0.0);
    assert!(plain[999] > 0.0);
    assert!((rescaled[0] - plain[0]).abs() <= 1e-15, "{} vs {}", rescaled[0], plain[0]);
    assert!(rescaled.windows(2).all(|w| w[1] < w[0]), "ᾱ must decrease");
}

#[test]
fn snr_shift_divides_alphas_as_diffusers_does() {
    let base = SchedulerConfig { snr_shift_scale: 1.0, ..SchedulerConfig::default() };
    let shifted = SchedulerConfig { snr_shift_scale: 3.0, ..base.clone() };
    let (a, b) = (NoiseSchedule::new(&base).alphas_cumprod, NoiseSchedule::new(&shifted).alphas_cumprod);
    for (x, y) in a.iter().zip(&b) {
        assert!((y - x / (3.0 - 2.0 * x)).abs() < 1e-16);
    }
}

/// Sums over every n in 1..=1000 of numpy's timesteps (length, Σt, Σ(i+1)·t mod 1e9+7), computed
/// with numpy 2.4 from diffusers' expressions (trailing: entries < 0 dropped, see schedule.rs).
fn signature(spacing: TimestepSpacing) -> (usize, i64, i64) {
    let config = SchedulerConfig { timestep_spacing: spacing, ..cogvideox_config() };
    let (mut len, mut sum, mut weighted) = (0usize, 0i64, 0i64);
    for n in 1..=1000 {
        let t = inference_timesteps(&config, n).unwrap();
        len += t.len();
        sum += t.iter().sum::<i64>();
        let w: i64 = t.iter().enumerate().map(|(i, &v)| (i as i64 + 1) * v).sum();
        weighted = (weighted + w) % 1_000_000_007;
    }
    (len, sum, weighted)
}

#[test]
fn trailing_and_linspace_timesteps_match_numpy_for_every_step_count() {
    assert_eq!(signature(TimestepSpacing::Trailing), (500_500, 250_249_508, 722_100_379));
    assert_eq!(signature(TimestepSpacing::Linspace), (500_500, 249_999_323, 666_398_985));
}

#[test]
fn timestep_spacings_match_known_values() {
    let config = cogvideox_config();
    assert_eq!(inference_timesteps(&config, 7).unwrap(), [999, 856, 713, 570, 428, 285, 142]);
    assert_eq!(inference_timesteps(&config, 4).unwrap(), [999, 749, 499, 249]);
    let leading = SchedulerConfig { timestep_spacing: TimestepSpacing::Leading, steps_offset: 1, ..config.clone() };
    assert_eq!(inference_timesteps(&leading, 50).unwrap()[..5], [981, 961, 941, 921, 901]);
    assert_eq!(*inference_timesteps(&leading, 50).unwrap().last().unwrap(), 1);
    let linspace = SchedulerConfig { timestep_spacing: TimestepSpacing::Linspace, ..config.clone() };
    assert_eq!(inference_timesteps(&linspace, 7).unwrap(), [999, 832, 666, 500, 333, 166, 0]);
    // numpy's float arange: Δ is (start + step) − start, and the length may overshoot.
    assert_eq!(numpy_arange(1000.0, 0.0, -1000.0 / 61.0).len(), 62);
}

#[test]
fn step_counts_outside_the_training_range_are_errors() {
    let config = cogvideox_config();
    for n in [0, 1001] {
        let err = DpmScheduler::new(&config, n).unwrap_err();
        assert!(matches!(err, SamplingError::Steps { requested, max: 1000 } if requested == n), "{err}");
        assert!(DdimScheduler::new(&config, n).is_err());
    }
    assert_eq!(DpmScheduler::new(&config, 1000).unwrap().timesteps().len(), 1000);
}

// ---- DPM ---------------------------------------------------------------------------------------

/// A small latent and model output with a deterministic pattern.
fn latents(device: &ComputeDevice, shape: [usize; 5], seed: u64) -> Tensor<5> {
    let n = shape.iter().product();
    tensor(device, shape, SeededNoise::new(seed).randn(&[n]).unwrap())
}

#[test]
fn dpm_draws_one_noise_on_the_first_and_last_step_and_two_between() {
    let device = cpu();
    let shape = [1, 2, 3, 2, 2];
    let mut scheduler = DpmScheduler::new(&cogvideox_config(), 4).unwrap();
    let mut noise = RecordingNoise::new(SeededNoise::new(7));
    let mut x = latents(&device, shape, 1);
    let mut draws = Vec::new();
    for i in 0..scheduler.timesteps().len() {
        let before = noise.recording.len();
        let out = scheduler.step(latents(&device, shape, 100 + i as u64), i, x, &mut noise, &device).unwrap();
        draws.push(noise.recording.len() - before);
        assert!(values(out.prev_sample.clone()).iter().all(|v| v.is_finite()), "step {i} not finite");
        x = out.prev_sample;
    }
    assert_eq!(draws, [1, 2, 2, 1]);
    assert!(noise.recording.iter().all(|r| r.shape == shape));
}

#[test]
fn dpm_replays_a_recorded_run_exactly_and_restarts_at_step_zero() {
    let device = cpu();
    let shape = [1, 2, 3, 2, 2];
    let config = cogvideox_config();
    let run = |noise: &mut dyn NoiseSource, scheduler: &mut DpmScheduler| {
        let mut x = latents(&device, shape, 1);
        for i in 0..3 {
            x = scheduler.step(latents(&device, shape, 50 + i as u64), i, x, noise, &device).unwrap().prev_sample;
        }
        values(x)
    };
    let mut scheduler = DpmScheduler::new(&config, 3).unwrap();
    let mut recording = RecordingNoise::new(SeededNoise::new(42));
    let first = run(&mut recording, &mut scheduler);
    // Same scheduler object again (step 0 forgets the old x₀), replaying the recorded draws.
    let mut replay = ReplayNoise::new(recording.into_recording());
    let second = run(&mut replay, &mut scheduler);
    assert_eq!(first, second);
    assert_eq!(replay.remaining(), 0);
    // Another seed gives another result (the noise is really used).
    let third = run(&mut SeededNoise::new(43), &mut DpmScheduler::new(&config, 3).unwrap());
    assert_ne!(first, third);
}

#[test]
fn dpm_step_errors_are_values() {
    let device = cpu();
    let config = cogvideox_config();
    let mut scheduler = DpmScheduler::new(&config, 2).unwrap();
    let x = latents(&device, [1, 1, 2, 2, 2], 1);
    let err = scheduler.step(x.clone(), 2, x.clone(), &mut SeededNoise::new(0), &device).unwrap_err();
    assert!(matches!(err, SamplingError::StepIndex { index: 2, len: 2 }), "{err}");
    let other = latents(&device, [1, 1, 2, 2, 3], 1);
    let err = scheduler.step(other, 0, x.clone(), &mut SeededNoise::new(0), &device).unwrap_err();
    assert!(matches!(err, SamplingError::Shape { .. }), "{err}");
    let err = scheduler.step(x.clone(), 0, x, &mut ReplayNoise::default(), &device).unwrap_err();
    assert!(matches!(err, SamplingError::Noise(NoiseError::Exhausted { index: 0, .. })), "{err}");
}

#[test]
fn dpm_first_step_from_pure_noise_predicts_minus_v() {
    // At t = 999 zero-SNR gives ᾱ = 0, so x₀ = −v whatever the sample, and ±inf in λ must not leak.
    let device = cpu();
    let mut scheduler = DpmScheduler::new(&cogvideox_config(), 5).unwrap();
    assert_eq!(scheduler.timesteps()[0], 999);
    let v = latents(&device, [1, 1, 2, 2, 2], 3);
    let x = latents(&device, [1, 1, 2, 2, 2], 4);
    let out = scheduler.step(v.clone(), 0, x, &mut SeededNoise::new(1), &device).unwrap();
    let minus_v: Vec<f32> = values(v).iter().map(|a| -a).collect();
    assert_eq!(values(out.pred_original_sample), minus_v);
    let c = scheduler.coefficients(0).unwrap();
    assert_eq!((c.mult1, c.h), (0.0, f64::INFINITY));
}

// ---- DDIM --------------------------------------------------------------------------------------

/// With the exact model output for a known x₀ and ε, deterministic DDIM lands exactly on
/// `√ᾱ_prev·x₀ + √(1−ᾱ_prev)·ε` at every step, and on x₀ after the last.
fn ddim_recovers_known_trajectory(prediction: PredictionType) {
    let device = cpu();
    let config = SchedulerConfig { prediction_type: prediction, ..cogvideox_config() };
    let shape = [1, 2, 2, 2, 3];
    let n: usize = shape.iter().product();
    let x0 = SeededNoise::new(11).randn(&[n]).unwrap();
    let eps = SeededNoise::new(12).randn(&[n]).unwrap();
    // 5 steps divide 1000, so each step's prev_timestep (t − 200) is the next schedule entry and the
    // sample really sits at the next step's noise level (for 6 steps, 999 steps to 833 but the
    // schedule continues at 832, the reference's quirk).
    let mut scheduler = DdimScheduler::new(&config, 5).unwrap();
    let schedule = scheduler.schedule().clone();
    let mix = |a: f64, x: &[f32], e: &[f32]| -> Vec<f32> {
        x.iter().zip(e).map(|(&x, &e)| (a.sqrt() * x as f64 + (1.0 - a).sqrt() * e as f64) as f32).collect()
    };
    let first = scheduler.timesteps()[0];
    let mut sample = tensor(&device, shape, mix(schedule.alpha_cumprod(first), &x0, &eps));
    for i in 0..scheduler.timesteps().len() {
        let ts = scheduler.step_timesteps(i).unwrap();
        let a = schedule.alpha_cumprod(ts.timestep);
        let output: Vec<f32> = match prediction {
            PredictionType::VPrediction => {
                eps.iter().zip(&x0).map(|(&e, &x)| (a.sqrt() * e as f64 - (1.0 - a).sqrt() * x as f64) as f32).collect()
            }
            PredictionType::Epsilon => eps.clone(),
            PredictionType::Sample => x0.clone(),
        };
        let out =
            scheduler.step(tensor(&device, shape, output), i, sample, &mut ReplayNoise::default(), &device).unwrap();
        let expected = mix(schedule.alpha_cumprod(ts.prev_timestep), &x0, &eps);
        let err = verify::max_abs_diff(&values(out.prev_sample.clone()), &expected);
        assert!(err < 2e-5, "{prediction:?} step {i} (t={}): max error {err}", ts.timestep);
        sample = out.prev_sample;
    }
    assert!(verify::max_abs_diff(&values(sample), &x0) < 2e-5);
}

#[test]
fn ddim_v_prediction_follows_the_exact_trajectory() {
    ddim_recovers_known_trajectory(PredictionType::VPrediction);
}

#[test]
fn ddim_sample_prediction_follows_the_exact_trajectory() {
    ddim_recovers_known_trajectory(PredictionType::Sample);
}

#[test]
fn ddim_epsilon_prediction_follows_the_exact_trajectory_without_zero_snr() {
    // ε-prediction cannot start from ᾱ = 0 (x₀ = (x − ε)/0), so use the unrescaled schedule.
    let device = cpu();
    let config = SchedulerConfig {
        prediction_type: PredictionType::Epsilon,
        rescale_betas_zero_snr: false,
        ..cogvideox_config()
    };
    let mut scheduler = DdimScheduler::new(&config, 3).unwrap();
    let x0 = vec![0.5f32, -1.0, 2.0, 0.25];
    let eps = vec![1.0f32, 0.5, -0.5, -2.0];
    let a = scheduler.schedule().alpha_cumprod(scheduler.timesteps()[0]);
    let x: Vec<f32> =
        x0.iter().zip(&eps).map(|(&x, &e)| (a.sqrt() * x as f64 + (1.0 - a).sqrt() * e as f64) as f32).collect();
    let shape = [1, 1, 1, 2, 2];
    let out = scheduler
        .step(tensor(&device, shape, eps.clone()), 0, tensor(&device, shape, x), &mut SeededNoise::new(0), &device)
        .unwrap();
    assert!(verify::max_abs_diff(&values(out.pred_original_sample), &x0) < 1e-4);
}

// ---- noise -------------------------------------------------------------------------------------

#[test]
fn seeded_noise_is_deterministic_and_standard_normal() {
    let a = SeededNoise::new(5).randn(&[200_000]).unwrap();
    let b = SeededNoise::new(5).randn(&[200_000]).unwrap();
    let c = SeededNoise::new(6).randn(&[200_000]).unwrap();
    assert_eq!(a, b);
    assert_ne!(a, c);
    let n = a.len() as f64;
    let mean = a.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = a.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
    let beyond_2 = a.iter().filter(|v| v.abs() > 2.0).count() as f64 / n;
    assert!(mean.abs() < 0.01, "mean {mean}");
    assert!((var - 1.0).abs() < 0.01, "variance {var}");
    assert!((beyond_2 - 0.0455).abs() < 0.003, "P(|z|>2) = {beyond_2}");
    // Odd lengths and empty shapes work; shape only changes the count.
    assert_eq!(SeededNoise::new(1).randn(&[3, 1]).unwrap().len(), 3);
    assert!(SeededNoise::new(1).randn(&[0, 4]).unwrap().is_empty());
}

#[test]
fn replay_noise_serves_in_order_and_errors_clearly() {
    let rec = |name: &str, shape: Vec<usize>, v: f32| RecordedNoise {
        name: name.into(),
        data: vec![v; shape.iter().product()],
        shape,
    };
    let mut replay = ReplayNoise::new([rec("noise_000", vec![2, 2], 1.0), rec("noise_001", vec![3], 2.0)]);
    assert_eq!(replay.randn(&[2, 2]).unwrap(), [1.0; 4]);
    let err = replay.randn(&[2, 2]).unwrap_err();
    assert_eq!(err, NoiseError::Shape { index: 1, name: "noise_001".into(), recorded: vec![3], requested: vec![2, 2] });
    assert!(err.to_string().contains("noise_001"), "{err}");
    assert_eq!(replay.randn(&[3]).unwrap(), [2.0; 3]);
    let err = replay.randn(&[3]).unwrap_err();
    assert!(matches!(err, NoiseError::Exhausted { index: 2, available: 2, .. }), "{err}");
    assert!(err.to_string().contains("ran out"), "{err}");
}

#[test]
fn replay_reads_fixture_noise_by_name() {
    for dir in scheduler_model_dirs() {
        let file = tora_studio::tensor_file::TensorFile::open(&dir.join("io/pipeline.safetensors")).unwrap();
        let mut replay = ReplayNoise::from_tensor_file(&file, &["noise_001"]).unwrap();
        let reference = file.f32("noise_001").unwrap();
        assert_eq!(replay.randn(&reference.shape).unwrap(), reference.data);
        assert!(ReplayNoise::from_tensor_file(&file, &["no_such_noise"]).is_err());
    }
}

// ---- guidance ----------------------------------------------------------------------------------

#[test]
fn dynamic_guidance_matches_the_reference_formula() {
    // Values from the reference expression in Python (t is the timestep, not the index).
    let scales = dynamic_guidance_scales(6.0, 4, &[999, 749, 499, 249]);
    assert_eq!(scales.len(), 4);
    for (s, expected) in scales.iter().zip([4.76, 1.94, 1.09, 1.01]) {
        assert!((s - expected).abs() < 0.01, "{scales:?}");
    }
    assert_eq!(guidance_scales(6.0, false, &[999, 749]), [6.0, 6.0]);
    assert_eq!(guidance_scales(6.0, true, &[999, 749]), dynamic_guidance_scales(6.0, 2, &[999, 749]));
}

#[test]
fn guidance_mixes_uncond_first_halves() {
    let device = cpu();
    // batch 2: uncond = [1, 2], cond = [3, 6]
    let pred = tensor(&device, [2, 1, 1, 1, 2], vec![1.0, 2.0, 3.0, 6.0]);
    let guided = apply_guidance(pred.clone(), 2.5).unwrap();
    assert_eq!(guided.dims(), [1, 1, 1, 1, 2]);
    assert_eq!(values(guided), [1.0 + 2.5 * 2.0, 2.0 + 2.5 * 4.0]);
    assert_eq!(values(apply_guidance(pred, 1.0).unwrap()), [3.0, 6.0]);
    let odd = tensor(&device, [3, 1, 1, 1, 1], vec![0.0; 3]);
    assert!(matches!(apply_guidance(odd, 2.0), Err(SamplingError::GuidanceBatch { batch: 3 })));
}
