use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{bail, Context};

use crate::export::{self, RgbFrames};
use crate::flow::{self, ClipSize, MotionField};
use crate::tensor_file::{write_tensors, OutTensor};
use crate::trajectory::Scene;
use crate::Backend;

#[derive(clap::Args)]
pub struct FlowArgs {
    /// Tora point files, one per track ("x,y" per line on the 256x256 canvas).
    #[arg(long, num_args = 1.., required_unless_present = "project", conflicts_with = "project")]
    points: Vec<PathBuf>,
    /// A Tora Studio project file instead of point files.
    #[arg(long)]
    project: Option<PathBuf>,
    /// Frame count (default: the project's, or 49).
    #[arg(long)]
    frames: Option<u32>,
    /// Output size WIDTHxHEIGHT (default: the project's, or 720x480).
    #[arg(long, value_parser = super::parse_size)]
    size: Option<(u32, u32)>,
    /// `X.safetensors` (flow, points, flow_rgb, video_flow), a folder (PNG frames) or a video (.mp4/.webm/.gif).
    #[arg(long)]
    out: PathBuf,
    #[arg(long, value_enum, default_value_t = Backend::Cpu)]
    backend: Backend,
}

pub fn run(args: FlowArgs) -> anyhow::Result<()> {
    let scene = super::load_scene(args.project.as_deref(), &args.points, args.frames, args.size)?;
    let source = args.project.clone().unwrap_or_else(|| args.points.first().cloned().unwrap_or_default());
    scene.validate().with_context(|| format!("{}", source.display()))?;

    let tracks = flow::scene_points(&scene)?;
    let size = ClipSize::of(&scene);
    let field = match args.backend {
        Backend::Cpu => flow::motion_field_cpu(tracks, size)?,
        Backend::Wgpu => flow::gpu::GpuFlow::new()?.motion_field(tracks, size)?,
    };
    write_output(&args.out, &scene, &field)
}

fn write_output(out: &std::path::Path, scene: &Scene, field: &MotionField) -> anyhow::Result<()> {
    let ext = out.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("safetensors") => {
            let s = field.flow.size;
            let points: Vec<i32> = field.points.iter().flat_map(|t| t.points.iter().flat_map(|p| *p)).collect();
            let tensors = [
                OutTensor::f32("flow", vec![s.frames, s.height, s.width, 2], &field.flow.to_dense()),
                OutTensor::i32("points", vec![field.points.len(), s.frames, 2], &points),
                OutTensor::u8("flow_rgb", vec![s.frames, 3, s.height, s.width], &field.rgb.data),
                OutTensor::f32("video_flow", vec![s.frames, 3, s.height, s.width], &field.video_flow()),
            ];
            let mut meta = HashMap::new();
            meta.insert("producer".into(), "tora-studio flow".into());
            meta.insert("max_norm".into(), field.rgb.max_norm.to_string());
            meta.insert("fps".into(), scene.fps.to_string());
            write_tensors(out, &tensors, meta)?;
        }
        Some("mp4" | "webm" | "gif") => export::video::write_video(out, &rgb_frames(scene, field))?,
        Some(other) if !out.is_dir() => {
            bail!(
                "{}: unknown output type .{other}; use .safetensors, a folder for PNG frames, or .mp4/.webm/.gif",
                out.display()
            )
        }
        _ => export::png::write_png_sequence(out, &rgb_frames(scene, field), "flow")?,
    }
    Ok(())
}

fn rgb_frames(scene: &Scene, field: &MotionField) -> RgbFrames {
    let s = field.flow.size;
    RgbFrames {
        width: s.width as u32,
        height: s.height as u32,
        fps: scene.fps,
        frames: (0..s.frames).map(|t| field.rgb.frame_rgb8(t)).collect(),
    }
}
