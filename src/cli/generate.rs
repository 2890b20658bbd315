//! `tora-studio generate`: the studio's Generate button, headless — same request, same worker,
//! same pipeline — with a terminal progress bar.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};

use crate::export;
use crate::model::Precision;
use crate::pipeline::memory::format_bytes;
use crate::pipeline::request::{Family, ModelExtras};
use crate::pipeline::{run::run_request, Event, GenerateRequest, Generation, MotionGuidance, Settings};
use crate::Backend;

#[derive(clap::Args)]
pub struct GenerateArgs {
    /// The Tora model folder: diffusers (model_index.json, transformer/, vae/, text_encoder/, ...) or
    /// Tora's SAT ckpts/ (tora/<i2v|t2v>/mp_rank_00_model_states.pt, vae/3d-vae.pt, t5-v1_1-xxl/, the yaml).
    #[arg(long)]
    model: PathBuf,
    #[arg(long)]
    prompt: String,
    #[arg(long, default_value = "")]
    negative: String,
    /// A Tora Studio project (tracks, size, frames, fps).
    #[arg(long, conflicts_with = "points")]
    project: Option<PathBuf>,
    /// Tora point files, one per track.
    #[arg(long, num_args = 1..)]
    points: Vec<PathBuf>,
    /// First frame for image-to-video models.
    #[arg(long)]
    image: Option<PathBuf>,
    /// Sampling steps (default: 50 for CogVideoX, 30 for OpenSora 1.2).
    #[arg(long)]
    steps: Option<usize>,
    /// Classifier-free guidance scale (default: 6 for CogVideoX, 7 for OpenSora 1.2).
    #[arg(long)]
    guidance: Option<f64>,
    /// The backbone (default: told by the model folder: a STDiT3 config means OpenSora 1.2).
    #[arg(long, value_enum)]
    family: Option<Family>,
    /// OpenSora: the T5 v1.1 XXL folder when the model folder has none (a CogVideoX/Tora T5 folder works).
    #[arg(long)]
    text_encoder: Option<PathBuf>,
    /// OpenSora: Tora's TE/MGF weights for STDiT3 (safetensors; default `<model>/tora_motion.safetensors`).
    #[arg(long)]
    motion_weights: Option<PathBuf>,
    /// Keep the guidance scale fixed instead of CogVideoX's dynamic schedule.
    #[arg(long)]
    fixed_guidance: bool,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Output size WIDTHxHEIGHT (default: the project's, or 720x480).
    #[arg(long, value_parser = super::parse_size)]
    size: Option<(u32, u32)>,
    /// Frame count, 8k+1 (default: the project's, or 49).
    #[arg(long)]
    frames: Option<u32>,
    /// Frames per second of the exported clip (default: the project's).
    #[arg(long)]
    fps: Option<f32>,
    /// How strongly the trajectory steers (1 = as trained, 0 = off).
    #[arg(long, default_value_t = 1.0)]
    motion_strength: f32,
    /// Fraction of the steps during which the trajectory is injected, START..END (e.g. 0..0.6).
    #[arg(long, default_value = "0..1", value_parser = parse_range)]
    motion_range: (f32, f32),
    /// `clip.mp4` / `.webm` / `.gif`, or a folder for PNG frames.
    #[arg(long)]
    out: PathBuf,
    /// Also write a copy with the trajectories drawn over the frames (`<out>_overlay.<ext>`).
    #[arg(long)]
    overlay: bool,
    /// Compute backend (default: the best GPU when wgpu finds one, else cpu).
    #[arg(long, value_enum)]
    backend: Option<Backend>,
    /// Compute precision (f16 on wgpu only; default: f16 on a GPU, else f32).
    #[arg(long, value_enum)]
    precision: Option<Precision>,
}

fn parse_range(s: &str) -> Result<(f32, f32), String> {
    let (a, b) = s.split_once("..").ok_or_else(|| format!("range {s:?} must look like 0..0.6"))?;
    let p = |v: &str| v.trim().parse::<f32>().map_err(|_| format!("range {s:?} must look like 0..0.6"));
    Ok((p(a)?, p(b)?))
}

pub fn run(args: GenerateArgs) -> anyhow::Result<()> {
    let mut scene = super::load_scene(args.project.as_deref(), &args.points, args.frames, args.size)?;
    if let Some(fps) = args.fps {
        scene.fps = fps;
    }
    if !scene.has_motion() {
        bail!(
            "no trajectories: pass --project P.json (tracks, regions or a camera layer) or --points A.txt [B.txt ...]"
        );
    }
    let family = args.family.unwrap_or_else(|| Family::detect(&args.model));
    let settings = Settings {
        prompt: args.prompt.clone(),
        negative_prompt: args.negative.clone(),
        steps: args.steps.unwrap_or(if family == Family::OpenSora { 30 } else { 50 }),
        guidance_scale: args.guidance.unwrap_or(if family == Family::OpenSora { 7.0 } else { 6.0 }),
        use_dynamic_cfg: !args.fixed_guidance,
        seed: args.seed,
        motion: MotionGuidance { strength: args.motion_strength, start: args.motion_range.0, end: args.motion_range.1 },
        image: args.image.clone(),
    };
    // Opened here to choose and say it; the worker opens the same (cached) device again.
    let (device, _) = super::open_device(args.backend, args.precision)?;
    let request = GenerateRequest {
        model_dir: args.model.clone(),
        settings,
        scene: scene.clone(),
        backend: device.backend(),
        precision: device.precision(),
        family: Some(family),
        extras: ModelExtras { text_encoder: args.text_encoder.clone(), motion_weights: args.motion_weights.clone() },
    };
    // The same worker the studio uses, without step previews (nothing here shows them).
    let generation = Generation::spawn_headless(move |reporter| run_request(&request, reporter));
    let started = Instant::now();
    let generated = loop {
        let event = generation.events.recv().context("the generation thread ended without a result")?;
        match event {
            Event::Phase { phase, detail } => {
                eprintln!("[{:>6.1}s] {}: {detail}", started.elapsed().as_secs_f64(), phase.label())
            }
            Event::Step { index, total, timestep, .. } => {
                let done = index + 1;
                let width = 30;
                let filled = done * width / total.max(1);
                eprint!(
                    "\r  [{}{}] step {done}/{total} (t={timestep}) {:.1}s",
                    "#".repeat(filled),
                    "-".repeat(width - filled),
                    started.elapsed().as_secs_f64()
                );
                let _ = std::io::stderr().flush();
                if done == total {
                    eprintln!();
                }
            }
            Event::PhaseDone(r) => eprintln!(
                "  {} done in {:.1}s, peak memory {}",
                r.phase.label(),
                r.seconds,
                r.peak_bytes.map(format_bytes).unwrap_or_else(|| "n/a".into())
            ),
            Event::Finished(g) => break *g,
            Event::Failed(message) => bail!("{message}"),
            Event::Cancelled => bail!("cancelled"),
        }
    };
    let clip = generated.frames;
    let tracks = if args.overlay {
        let points = crate::flow::scene_points(&scene)?;
        let positions: Vec<Vec<[i32; 2]>> = points.iter().map(|t| t.points.clone()).collect();
        let colours: Vec<[u8; 3]> = scene.motion_tracks()?.iter().map(|t| t.colour).collect();
        export::overlay::tracks_from(&positions, &colours)
    } else {
        Vec::new()
    };
    let written = export::export_with_overlay(
        &args.out,
        &clip,
        &tracks,
        &export::overlay::OverlayStyle::default(),
        &export::video::Ffmpeg::system(),
    )
    .with_context(|| format!("writing {}", args.out.display()))?;
    for path in written {
        eprintln!("wrote {} ({} frames, {}x{})", path.display(), clip.frames.len(), clip.width, clip.height);
    }
    Ok(())
}
