//! `tora-studio bench-step`: time one transformer forward (a denoising step) at a real output
//! size and report peak memory, so the same command measures us against diffusers on one machine.
//!
//! Peak memory: on the CPU backend the process's peak resident set (`VmHWM` in
//! `/proc/self/status`, Linux), which includes the weights and every activation. Burn 0.22 exposes
//! no device-memory statistics for wgpu, so there it prints "not available" (plus the host RSS).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use burn::tensor::{Distribution, Tensor, TensorData};

use crate::model::cogvideox::{ModelSource, RotaryEmbedding, ToraTransformer3D, TransformerConfig};
use crate::model::Precision;
use crate::Backend;

/// The built-in presets (`models/*.json`).
const PRESETS: &[(&str, &str)] = &[("cogvideox-5b-tora", include_str!("../../models/cogvideox-5b-tora.json"))];

#[derive(clap::Args)]
pub struct BenchStepArgs {
    /// Pipeline folder (with transformer/) or the transformer folder: its config.json (and,
    /// without --random-weights, its weights).
    #[arg(long, conflicts_with = "preset", required_unless_present = "preset")]
    model: Option<PathBuf>,
    /// A built-in model preset (needs --random-weights): cogvideox-5b-tora.
    #[arg(long)]
    preset: Option<String>,
    /// Preset variant: t2v or i2v.
    #[arg(long, default_value = "t2v")]
    variant: String,
    /// Random weights of the config's shapes instead of loading a checkpoint (timing only).
    #[arg(long)]
    random_weights: bool,
    /// Output size in pixels, WIDTHxHEIGHT.
    #[arg(long, default_value = "720x480")]
    size: String,
    /// Output frames (pixel frames; latent frames = (frames - 1) / 4 + 1).
    #[arg(long, default_value_t = 49)]
    frames: usize,
    /// Timed forwards (after one untimed warm-up).
    #[arg(long, default_value_t = 3)]
    steps: usize,
    /// Batch (2 = one prompt with classifier-free guidance, as the pipeline runs it).
    #[arg(long, default_value_t = 2)]
    batch: usize,
    /// Run without the trajectory (no TE/MGF): plain CogVideoX.
    #[arg(long)]
    no_flow: bool,
    /// Skip the untimed warm-up forward.
    #[arg(long)]
    no_warmup: bool,
    /// Recompute the trajectory features inside every forward, for both CFG halves (how runs
    /// did it before the pipeline computed them once per run; for comparison).
    #[arg(long)]
    flow_per_step: bool,
    /// Compute precision (f16 on wgpu only; default: f16 on a GPU, else f32).
    #[arg(long, value_enum)]
    precision: Option<Precision>,
    /// Compute backend (default: the best GPU when wgpu finds one, else cpu).
    #[arg(long, value_enum)]
    backend: Option<Backend>,
}

fn preset_config(name: &str, variant: &str) -> anyhow::Result<TransformerConfig> {
    let Some((_, text)) = PRESETS.iter().find(|(n, _)| *n == name) else {
        bail!("unknown preset {name:?}; known: {}", PRESETS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", "));
    };
    let json: serde_json::Value = serde_json::from_str(text).context("built-in preset is not valid JSON")?;
    let transformer = json
        .get("variants")
        .and_then(|v| v.get(variant))
        .and_then(|v| v.get("transformer"))
        .with_context(|| format!("preset {name} has no variant {variant:?} (t2v, i2v)"))?;
    Ok(serde_json::from_value(transformer.clone())?)
}

/// Peak resident set of this process in bytes (Linux `VmHWM`).
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn gib(bytes: u64) -> String {
    format!("{:.3} GiB", bytes as f64 / (1u64 << 30) as f64)
}

pub fn run(args: BenchStepArgs) -> anyhow::Result<()> {
    let (width, height) = super::parse_size(&args.size).map_err(anyhow::Error::msg)?;
    let (width, height) = (width as usize, height as usize);
    anyhow::ensure!(args.frames >= 1 && args.steps >= 1 && args.batch >= 1, "--frames, --steps, --batch must be >= 1");
    let (device, choice) = super::open_device(args.backend, args.precision)?;

    let load_start = Instant::now();
    let (model, config, source) = match (&args.model, &args.preset) {
        (Some(dir), _) if !args.random_weights => {
            let (m, c) = ModelSource::open(dir)?.load_transformer(&device)?;
            (m, c, format!("{} (weights loaded)", dir.display()))
        }
        (Some(dir), _) => {
            let config = ModelSource::open(dir)?.transformer_config()?;
            let m = ToraTransformer3D::random(&config, &device).map_err(anyhow::Error::msg)?;
            (m, config, format!("{} (config only, random weights)", dir.display()))
        }
        (None, Some(name)) => {
            anyhow::ensure!(args.random_weights, "a preset has no weights: add --random-weights");
            let config = preset_config(name, &args.variant)?;
            let m = ToraTransformer3D::random(&config, &device).map_err(anyhow::Error::msg)?;
            (m, config, format!("preset {name} {} (random weights)", args.variant))
        }
        (None, None) => bail!("give --model DIR or --preset NAME"),
    };
    let load_s = load_start.elapsed().as_secs_f64();

    let vae = crate::model::cogvideox::rope::VAE_SCALE_FACTOR_SPATIAL;
    let p = config.patch_size;
    anyhow::ensure!(
        height % (vae * p) == 0 && width % (vae * p) == 0,
        "--size must be a multiple of {} in both directions",
        vae * p
    );
    let (h, w) = (height / vae, width / vae);
    let f = (args.frames - 1) / config.temporal_compression_ratio + 1;
    let text_len = config.max_text_seq_length;
    let tokens = text_len + f * (h / p) * (w / p);
    println!("model: {source}");
    println!(
        "config: {} layers, {} heads x {}, in {} -> out {}, rotary {}, learned PE {}",
        config.num_layers,
        config.num_attention_heads,
        config.attention_head_dim,
        config.in_channels,
        config.out_channels(),
        config.use_rotary_positional_embeddings,
        config.use_learned_positional_embeddings
    );
    println!(
        "input: {width}x{height}, {} frames -> latent [{}, {f}, {}, {h}, {w}], {tokens} tokens ({text_len} text), flow {}",
        args.frames,
        args.batch,
        config.in_channels,
        if args.no_flow { "off" } else { "on" }
    );
    println!("device: {}; load {load_s:.2} s", choice.line());

    let dev = device.device();
    let normal = Distribution::Normal(0.0, 1.0);
    let hidden = Tensor::<5>::random([args.batch, f, config.in_channels, h, w], normal, (dev, device.dtype()));
    let text = Tensor::<3>::random([args.batch, text_len, config.text_embed_dim], normal, (dev, device.dtype()));
    // One flow for the whole batch, as the pipeline passes it (the CFG halves share it).
    let flow = (!args.no_flow).then(|| Tensor::<5>::random([1, f, 16, h, w], normal, (dev, device.dtype())));
    let steps: Vec<f32> = (0..args.batch).map(|i| 999.0 - i as f32).collect();
    let timestep = Tensor::<1>::from_data(TensorData::new(steps, [args.batch]), (dev, device.dtype()));
    let rotary = config
        .use_rotary_positional_embeddings
        .then(|| RotaryEmbedding::for_output(&config, height, width, f, &device));

    // The trajectory features once per run, as the pipeline computes them (not part of a step).
    let features = match (&flow, args.flow_per_step) {
        (Some(flow), false) => {
            let start = Instant::now();
            let features = model.flow_features(flow.clone());
            if let Some(map) = features.map(features.layers().saturating_sub(1)) {
                map.clone().sum().into_data().try_to_vec::<f32>().map_err(|e| anyhow::anyhow!("{e:?}"))?;
            }
            println!("trajectory features (once per run): {:.3} s", start.elapsed().as_secs_f64());
            Some(features)
        }
        _ => None,
    };
    let forward = || -> anyhow::Result<f64> {
        let start = Instant::now();
        let out = match (&features, &flow) {
            (Some(features), _) => model.forward_guided(
                hidden.clone(),
                text.clone(),
                timestep.clone(),
                Some(features),
                rotary.as_ref(),
                None,
            ),
            // --flow-per-step: the flow tiled over the batch, its features made inside the forward
            (None, Some(flow)) => {
                let tiled = Tensor::cat(vec![flow.clone(); args.batch], 0);
                model.forward(hidden.clone(), text.clone(), timestep.clone(), Some(tiled), rotary.as_ref())
            }
            (None, None) => model.forward(hidden.clone(), text.clone(), timestep.clone(), None, rotary.as_ref()),
        };
        // Reading a value back waits for the device to finish.
        let v: Vec<f32> = out.sum().into_data().try_to_vec().map_err(|e| anyhow::anyhow!("{e:?}"))?;
        anyhow::ensure!(v.first().is_some_and(|x| x.is_finite()), "the forward produced a non-finite output");
        Ok(start.elapsed().as_secs_f64())
    };
    if !args.no_warmup {
        let s = forward()?;
        println!("warm-up forward: {s:.3} s");
    }
    let mut times = Vec::with_capacity(args.steps);
    for i in 0..args.steps {
        let s = forward()?;
        println!("step {}: {s:.3} s", i + 1);
        times.push(s);
    }
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    let min = times.iter().copied().fold(f64::INFINITY, f64::min);
    println!("time per transformer forward: mean {mean:.3} s, min {min:.3} s over {} step(s)", times.len());
    let rss = peak_rss_bytes();
    match device.backend() {
        Backend::Cpu => match rss {
            Some(b) => println!("peak memory: {} (process peak RSS, VmHWM)", gib(b)),
            None => println!("peak memory: not available (no /proc/self/status)"),
        },
        Backend::Wgpu => println!(
            "peak memory: device not available (burn exposes no wgpu memory statistics); host peak RSS {}",
            rss.map_or_else(|| "not available".into(), gib)
        ),
    }
    Ok(())
}
