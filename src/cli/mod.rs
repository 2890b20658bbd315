//! The command line: every headless job of the studio. No subcommand opens the studio.

mod bench_step;
mod devices;
mod encode_text;
mod flow;
mod generate;
mod vae;
mod verify;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "tora-studio",
    version,
    about = "Draw, time and preview motion trajectories; generate video with Tora."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Compute Tora's motion-field input (flow, points, colours, video_flow) from point files or a project.
    Flow(flow::FlowArgs),
    /// Tokenize prompts and run the T5 text encoder; writes ids, mask and prompt_embeds.
    EncodeText(encode_text::EncodeTextArgs),
    /// CogVideoX VAE: encode video to latents, decode latents to frames.
    Vae(vae::VaeArgs),
    /// Generate a clip with Tora from a prompt and trajectories (the studio's Generate, headless).
    Generate(generate::GenerateArgs),
    /// Run the parity checks against reference fixtures; one line per check.
    Verify(verify::VerifyArgs),
    /// Time one transformer forward at a real size and report peak memory (random weights allowed).
    BenchStep(bench_step::BenchStepArgs),
    /// List the GPU adapters, the kernels this build runs on them, and the device a run would use.
    Devices(devices::DevicesArgs),
    /// Open the studio (the default when no subcommand is given).
    Studio,
}

/// Exit code for bad input (usage errors from clap use 2 as well).
pub const EXIT_BAD_INPUT: u8 = 2;

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        None | Some(Command::Studio) => crate::app::run().map(|_| ExitCode::SUCCESS),
        Some(Command::Flow(args)) => flow::run(args).map(|_| ExitCode::SUCCESS),
        Some(Command::Verify(args)) => verify::run(args),
        Some(Command::Generate(args)) => generate::run(args).map(|_| ExitCode::SUCCESS),
        Some(Command::EncodeText(args)) => encode_text::run(args).map(|_| ExitCode::SUCCESS),
        Some(Command::BenchStep(args)) => bench_step::run(args).map(|_| ExitCode::SUCCESS),
        Some(Command::Vae(args)) => vae::run(args).map(|_| ExitCode::SUCCESS),
        Some(Command::Devices(args)) => devices::run(args).map(|_| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_BAD_INPUT)
        }
    }
}

/// Parses `WIDTHxHEIGHT`.
/// Opens the compute device a run asked for (`None` = pick: the best GPU in f16, else the CPU in
/// f32) and says on stderr which backend, shader compiler and precision it uses, and why.
pub fn open_device(
    backend: Option<crate::Backend>,
    precision: Option<crate::model::Precision>,
) -> anyhow::Result<(crate::model::ComputeDevice, crate::model::device::DeviceChoice)> {
    let (device, choice) = crate::model::ComputeDevice::best_available(backend, precision)?;
    eprintln!("{}", choice.line());
    Ok((device, choice))
}

pub fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let (w, h) = s.split_once(['x', 'X']).ok_or_else(|| format!("size {s:?} must look like 720x480"))?;
    let parse = |v: &str| v.trim().parse::<u32>().map_err(|_| format!("size {s:?} must look like 720x480"));
    Ok((parse(w)?, parse(h)?))
}

/// The scene a command works on: a project file, or point files (one track each, colours in
/// order) on a default scene; `--frames` / `--size` override what the project says.
pub fn load_scene(
    project: Option<&std::path::Path>,
    points: &[std::path::PathBuf],
    frames: Option<u32>,
    size: Option<(u32, u32)>,
) -> anyhow::Result<crate::trajectory::Scene> {
    use crate::trajectory::{point_file, project as project_file, Scene};
    let mut scene = match project {
        Some(path) => project_file::load(path)?,
        None => {
            let mut scene = Scene::default();
            for path in points {
                let colour = scene.next_colour();
                scene.tracks.push(point_file::read_track(path, colour)?);
            }
            scene
        }
    };
    if let Some(frames) = frames {
        scene.frames = frames;
    }
    if let Some((w, h)) = size {
        scene.width = w;
        scene.height = h;
    }
    Ok(scene)
}
