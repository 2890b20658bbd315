//! `tora-studio vae encode|decode`: the CogVideoX VAE on its own.
//!
//! encode: a PNG folder, a video file (system ffmpeg) or a safetensors `[B,3,T,H,W]` tensor in
//! [-1, 1] -> safetensors `latent_mean`, `latent_logvar` (+ `latent_sample` with `--noise`).
//! decode: a safetensors latent `[B,16,F,h,w]` -> safetensors `frames` `[B,3,T,H,W]` or a PNG
//! folder. `--random-weights` decodes random latents with a random-weight model of the config's
//! shapes and reports the peak resident memory (the measurement behind the README's number).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, ensure, Context};
use burn::tensor::{Distribution, Tensor, TensorData};
use clap::Subcommand;

use crate::export::png::write_png_sequence;
use crate::export::RgbFrames;
use crate::model::cogvideox::vae::{AutoencoderKLCogVideoX, Tiling, VaeConfig, UNTILED_LIMIT_SHARE};
use crate::model::cogvideox::ModelSource;
use crate::model::device::read_f32;
use crate::model::load::{read_config, ComponentDir};
use crate::model::{ComputeDevice, Precision};
use crate::tensor_file::{write_tensors, OutTensor, TensorFile};
use crate::Backend;

#[derive(clap::Args)]
pub struct VaeArgs {
    #[command(subcommand)]
    command: VaeCommand,
}

#[derive(Subcommand)]
enum VaeCommand {
    /// Video (PNG folder, video file or safetensors) -> latent distribution (safetensors).
    Encode(EncodeArgs),
    /// Latents (safetensors) -> frames (safetensors or a PNG folder).
    Decode(DecodeArgs),
}

#[derive(clap::Args)]
struct Common {
    /// Pipeline folder holding vae/, or the vae folder itself.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Output: a .safetensors file (or, for decode, a folder that receives frame_0000.png, ...).
    #[arg(long)]
    out: PathBuf,
    /// Compute backend (default: the best GPU when wgpu finds one, else cpu).
    #[arg(long, value_enum)]
    backend: Option<Backend>,
    /// Compute precision (f16 on wgpu only; group-norm statistics stay f32; default: f16 on a GPU,
    /// else f32).
    #[arg(long, value_enum)]
    precision: Option<Precision>,
    /// Spatial tiling with overlap-blend (tile size from the config's sample_height/width).
    #[arg(long)]
    tiling: bool,
    /// Name of the input tensor in a safetensors input (default: video / latent, or the only one).
    #[arg(long)]
    tensor: Option<String>,
}

#[derive(clap::Args)]
struct EncodeArgs {
    #[command(flatten)]
    common: Common,
    /// A folder of PNG frames (sorted by name), a video file, or a .safetensors [B,3,T,H,W] in [-1,1].
    #[arg(long = "in")]
    input: PathBuf,
    /// Safetensors holding `noise` (the latent's shape): also writes latent_sample = mean + std·noise.
    #[arg(long)]
    noise: Option<PathBuf>,
}

#[derive(clap::Args)]
struct DecodeArgs {
    #[command(flatten)]
    common: Common,
    /// A .safetensors latent [B,16,F,h,w] (not needed with --random-weights).
    #[arg(long = "in")]
    input: Option<PathBuf>,
    /// The latents are scaled (pipeline latents): divide by scaling_factor first.
    #[arg(long)]
    unscale: bool,
    /// Measurement mode: random weights of the config's shapes (--model's config.json, else
    /// diffusers' CogVideoX defaults) and random latents of --latent-shape; prints peak memory.
    #[arg(long)]
    random_weights: bool,
    /// Latent F,h,w for --random-weights (CogVideoX-5B at 49x480x720: 13,60,90).
    #[arg(long, value_delimiter = ',')]
    latent_shape: Vec<usize>,
}

pub fn run(args: VaeArgs) -> anyhow::Result<()> {
    match args.command {
        VaeCommand::Encode(a) => encode(a),
        VaeCommand::Decode(a) => decode(a),
    }
}

fn load_model(common: &Common, device: &ComputeDevice) -> anyhow::Result<AutoencoderKLCogVideoX> {
    let Some(dir) = &common.model else {
        bail!("--model is required (a pipeline folder, its vae/ folder, or Tora's SAT ckpts/ folder)")
    };
    let source = ModelSource::open(dir)?;
    let mut vae = source.load_vae(device).with_context(|| format!("loading the VAE from {}", dir.display()))?;
    if common.tiling {
        vae.set_tiling(Some(Tiling::from_config(&source.vae_config()?)));
    }
    Ok(vae)
}

fn encode(args: EncodeArgs) -> anyhow::Result<()> {
    ensure_safetensors_out(&args.common.out, "encode")?;
    let (device, _) = super::open_device(args.common.backend, args.common.precision)?;
    let (shape, values) = read_video(&args.input, args.common.tensor.as_deref())?;
    let vae = load_model(&args.common, &device)?;
    let video = device.float_tensor::<5>(TensorData::new(values, shape));
    vae.check_video(&video).with_context(|| format!("{}", args.input.display()))?;
    if let (None, Some(tiling)) = (vae.tiling(), vae.encode_tiling(shape)) {
        say_tiling_on("encode", vae.untiled_encode_peak_tensor_bytes(shape), tiling, &device);
    }
    let t0 = Instant::now();
    let dist = vae.encode(video);
    let mut out = vec![host("latent_mean", dist.mean.clone())?, host("latent_logvar", dist.logvar.clone())?];
    if let Some(path) = &args.noise {
        let noise = TensorFile::open(path)?.f32("noise")?;
        let latent_shape = dist.mean.dims();
        ensure!(
            noise.shape == latent_shape,
            "{}: noise has shape {:?}, the latent is {latent_shape:?}",
            path.display(),
            noise.shape
        );
        let noise = device.float_tensor::<5>(TensorData::new(noise.data, latent_shape));
        out.push(host("latent_sample", dist.sample(noise))?);
    }
    eprintln!("encoded {shape:?} -> {:?} in {:.2?}", dist.mean.dims(), t0.elapsed());
    let meta = HashMap::from([("scaling_factor".to_string(), vae.scaling_factor().to_string())]);
    write_tensors(&args.common.out, &out, meta)?;
    Ok(())
}

fn decode(args: DecodeArgs) -> anyhow::Result<()> {
    let (device, _) = super::open_device(args.common.backend, args.common.precision)?;
    let (vae, z) = if args.random_weights {
        random_model_and_latent(&args, &device)?
    } else {
        let Some(input) = &args.input else { bail!("--in is required (a .safetensors latent)") };
        let vae = load_model(&args.common, &device)?;
        let (shape, values) = read_tensor5(input, args.common.tensor.as_deref(), &["latent", "latent_mean"])?;
        let mut z = device.float_tensor::<5>(TensorData::new(values, shape));
        vae.check_latent(&z).with_context(|| format!("{}", input.display()))?;
        if args.unscale {
            z = z.div_scalar(vae.scaling_factor());
        }
        (vae, z)
    };
    let z_shape = z.dims();
    if let (None, Some(tiling)) = (vae.tiling(), vae.decode_tiling(z_shape)) {
        say_tiling_on("decode", vae.untiled_decode_peak_tensor_bytes(z_shape), tiling, &device);
    }
    let t0 = Instant::now();
    let frames = vae.decode(z);
    let dims = frames.dims();
    let values = read_f32(frames).map_err(|e| anyhow::anyhow!("reading frames: {e}"))?;
    eprintln!("decoded {z_shape:?} -> {dims:?} in {:.2?}", t0.elapsed());
    if let Some(kib) = peak_rss_kib() {
        println!("peak_rss_mib {:.1}", kib as f64 / 1024.0);
    }
    if is_safetensors(&args.common.out) {
        write_tensors(&args.common.out, &[OutTensor::f32("frames", dims.to_vec(), &values)], HashMap::new())?;
    } else {
        write_png_sequence(&args.common.out, &to_rgb(&values, dims), "frame")?;
    }
    Ok(())
}

/// `--random-weights`: the config (from --model if given), a random model and random latents.
fn random_model_and_latent(
    args: &DecodeArgs,
    device: &ComputeDevice,
) -> anyhow::Result<(AutoencoderKLCogVideoX, Tensor<5>)> {
    let config: VaeConfig = match &args.common.model {
        Some(dir) => read_config(&ComponentDir::find(dir, "vae", &["AutoencoderKLCogVideoX"])?.config_path())?,
        None => VaeConfig::default(),
    };
    let &[f, h, w] = args.latent_shape.as_slice() else { bail!("--random-weights needs --latent-shape F,h,w") };
    ensure!(f > 0 && h > 0 && w > 0, "--latent-shape must be positive");
    let mut vae = AutoencoderKLCogVideoX::random(config.clone(), device).map_err(anyhow::Error::msg)?;
    if args.common.tiling {
        vae.set_tiling(Some(Tiling::from_config(&config)));
    }
    let shape = [1, config.latent_channels, f, h, w];
    let z = Tensor::<5>::random(shape, Distribution::Normal(0.0, 1.0), (device.device(), device.dtype()));
    eprintln!(
        "random-weight VAE: block_out_channels {:?}, layers_per_block {}, groups {}; latent {shape:?}; rss before decode {:.1} MiB",
        config.block_out_channels,
        config.layers_per_block,
        config.norm_num_groups,
        current_rss_kib().unwrap_or(0) as f64 / 1024.0
    );
    Ok((vae, z))
}

const GIB: f64 = (1u64 << 30) as f64;

/// Why the VAE tiles although `--tiling` was not given.
fn say_tiling_on(pass: &str, untiled_bytes: usize, tiling: Tiling, device: &ComputeDevice) {
    eprintln!(
        "tiling on ({}x{} px tiles): an untiled {pass} would make a {:.2} GiB tensor; this device allows {:.2} GiB \
         per tensor (an untiled pass only within 1/{UNTILED_LIMIT_SHARE} of that)",
        tiling.tile_sample_min_height,
        tiling.tile_sample_min_width,
        untiled_bytes as f64 / GIB,
        device.max_tensor_bytes().unwrap_or(0) as f64 / GIB
    );
}

fn is_safetensors(path: &Path) -> bool {
    path.extension().is_some_and(|e| e.eq_ignore_ascii_case("safetensors"))
}

fn ensure_safetensors_out(out: &Path, what: &str) -> anyhow::Result<()> {
    ensure!(is_safetensors(out), "{what} writes latents: --out must be a .safetensors file, got {}", out.display());
    Ok(())
}

/// Device tensor -> f32 output tensor.
fn host(name: &str, t: Tensor<5>) -> anyhow::Result<OutTensor> {
    let dims = t.dims();
    let values = read_f32(t).map_err(|e| anyhow::anyhow!("reading {name}: {e}"))?;
    Ok(OutTensor::f32(name, dims.to_vec(), &values))
}

/// A 5-D f32 tensor from a safetensors file: `--tensor`, else the first of `preferred` present,
/// else the file's only tensor.
fn read_tensor5(path: &Path, name: Option<&str>, preferred: &[&str]) -> anyhow::Result<([usize; 5], Vec<f32>)> {
    let file = TensorFile::open(path)?;
    let names = file.names();
    let chosen = match name {
        Some(n) => n.to_string(),
        None => match preferred.iter().find(|p| names.iter().any(|n| n == *p)) {
            Some(p) => p.to_string(),
            None if names.len() == 1 => names[0].clone(),
            None => bail!("{}: holds {names:?}; say which with --tensor", path.display()),
        },
    };
    let t = file.f32(&chosen)?;
    let shape: [usize; 5] = t.shape.as_slice().try_into().map_err(|_| {
        anyhow::anyhow!("{}: tensor '{chosen}' has shape {:?}; expected 5 dims [B,C,T,H,W]", path.display(), t.shape)
    })?;
    Ok((shape, t.data))
}

/// The video as `[1, 3, T, H, W]` in [-1, 1] (`2·(u8/255) − 1`, as the pipelines preprocess).
fn read_video(path: &Path, tensor: Option<&str>) -> anyhow::Result<([usize; 5], Vec<f32>)> {
    if path.is_file() && is_safetensors(path) {
        return read_tensor5(path, tensor, &["video"]);
    }
    let clip = if path.is_dir() {
        read_png_folder(path)?
    } else if path.is_file() {
        read_video_file(path)?
    } else {
        bail!("{}: not found (give a PNG folder, a video file or a .safetensors)", path.display());
    };
    let (w, h, t) = (clip.width as usize, clip.height as usize, clip.frames.len());
    let mut values = vec![0f32; 3 * t * h * w];
    for (ti, frame) in clip.frames.iter().enumerate() {
        for (p, px) in frame.chunks_exact(3).enumerate() {
            for c in 0..3 {
                values[(c * t + ti) * h * w + p] = 2.0 * (px[c] as f32 / 255.0) - 1.0;
            }
        }
    }
    Ok(([1, 3, t, h, w], values))
}

fn read_png_folder(dir: &Path) -> anyhow::Result<RgbFrames> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("png")))
        .collect();
    paths.sort();
    ensure!(!paths.is_empty(), "{}: holds no .png frames", dir.display());
    let mut clip = RgbFrames { width: 0, height: 0, fps: 8.0, frames: Vec::new() };
    for p in &paths {
        let img = image::open(p).with_context(|| format!("reading {}", p.display()))?.to_rgb8();
        if clip.frames.is_empty() {
            (clip.width, clip.height) = img.dimensions();
        } else if img.dimensions() != (clip.width, clip.height) {
            bail!(
                "{}: is {}x{}, but the first frame is {}x{}; every frame must have the same size",
                p.display(),
                img.width(),
                img.height(),
                clip.width,
                clip.height
            );
        }
        clip.frames.push(img.into_raw());
    }
    Ok(clip)
}

fn read_video_file(path: &Path) -> anyhow::Result<RgbFrames> {
    use ffmpeg_sidecar::command::FfmpegCommand;
    if !crate::export::video::ffmpeg_available() {
        bail!(
            "{}: reading video files needs ffmpeg on PATH (Debian: `sudo apt-get install ffmpeg`); or give a PNG folder",
            path.display()
        );
    }
    let mut child = FfmpegCommand::new()
        .hide_banner()
        .args(["-loglevel", "error"])
        .input(path.to_string_lossy().as_ref())
        .rawvideo()
        .spawn()
        .with_context(|| format!("starting ffmpeg on {}", path.display()))?;
    let mut clip = RgbFrames { width: 0, height: 0, fps: 8.0, frames: Vec::new() };
    let mut errors = Vec::new();
    for event in child.iter().map_err(|e| anyhow::anyhow!("ffmpeg on {}: {e}", path.display()))? {
        match event {
            ffmpeg_sidecar::event::FfmpegEvent::OutputFrame(f) => {
                (clip.width, clip.height) = (f.width, f.height);
                clip.frames.push(f.data);
            }
            ffmpeg_sidecar::event::FfmpegEvent::Error(e) => errors.push(e),
            _ => {}
        }
    }
    let _ = child.wait();
    ensure!(!clip.frames.is_empty(), "{}: ffmpeg decoded no frames {}", path.display(), errors.join("; "));
    Ok(clip)
}

/// Batch 0 of `[B, 3, T, H, W]` in [-1, 1] as 8-bit frames: `round(clamp(x/2 + 0.5, 0, 1)·255)`.
fn to_rgb(values: &[f32], [_, c, t, h, w]: [usize; 5]) -> RgbFrames {
    let frames = (0..t)
        .map(|ti| {
            let mut rgb = vec![0u8; h * w * 3];
            for p in 0..h * w {
                for ch in 0..3 {
                    let v = values[((ch.min(c - 1)) * t + ti) * h * w + p];
                    rgb[p * 3 + ch] = ((v / 2.0 + 0.5).clamp(0.0, 1.0) * 255.0).round() as u8;
                }
            }
            rgb
        })
        .collect();
    RgbFrames { width: w as u32, height: h as u32, fps: 8.0, frames }
}

fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Peak resident set size (`VmHWM`), Linux only.
pub fn peak_rss_kib() -> Option<u64> {
    status_kib("VmHWM:")
}

fn current_rss_kib() -> Option<u64> {
    status_kib("VmRSS:")
}
