//! Motion-field speed at Tora's setting: 49 frames at 720x480, 3 tracks.
//! `cargo bench --bench flow`; the GPU case runs when a wgpu adapter is present.

use criterion::{criterion_group, criterion_main, Criterion};
use tora_studio::flow::{self, ClipSize};
use tora_studio::trajectory::{point_file, presets::Preset, Scene};

/// Three preset tracks, exported as Tora point files (49 points each, under
/// `target/bench-points/`) and read back as reference-mode tracks, so the reference Python
/// (`process_traj` + `flow_to_image`) can be timed on exactly the same input.
fn scene() -> Scene {
    let mut presets = Scene::default();
    for (i, (p, c)) in [(Preset::Circle, [70.0, 90.0]), (Preset::Wave, [128.0, 180.0]), (Preset::Spiral, [190.0, 80.0])]
        .into_iter()
        .enumerate()
    {
        let colour = presets.next_colour();
        presets.tracks.push(p.track(format!("t{i}"), colour, c, 50.0, presets.frames));
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-points");
    std::fs::create_dir_all(&dir).unwrap();
    let mut scene = Scene { tracks: Vec::new(), ..presets.clone() };
    for track in &presets.tracks {
        let path = dir.join(format!("{}.txt", track.name));
        point_file::write_track(&path, track, presets.frames).unwrap();
        scene.tracks.push(point_file::read_track(&path, track.colour).unwrap());
    }
    scene
}

fn bench(c: &mut Criterion) {
    let scene = scene();
    let size = ClipSize::of(&scene);
    c.bench_function("flow_cpu_49x480x720_3tracks", |b| {
        b.iter(|| {
            let tracks = flow::scene_points(&scene).unwrap();
            flow::motion_field_cpu(tracks, size).unwrap()
        })
    });
    // The stages apart: where the time goes.
    let sparse = flow::sparse_displacement(&flow::scene_points(&scene).unwrap(), size).unwrap();
    c.bench_function("stage_gaussian_49x480x720_3tracks", |b| b.iter(|| flow::gaussian_filter(&sparse)));
    let dense = flow::gaussian_filter(&sparse);
    c.bench_function("stage_colour_49x480x720_3tracks", |b| b.iter(|| flow::flow_to_rgb(&dense)));
    c.bench_function("stage_max_norm_49x480x720_3tracks", |b| b.iter(|| dense.max_norm()));
    c.bench_function("flow_cpu_video_flow_49x480x720_3tracks", |b| {
        b.iter(|| {
            let tracks = flow::scene_points(&scene).unwrap();
            flow::motion_field_cpu(tracks, size).unwrap().video_flow()
        })
    });
    match flow::gpu::GpuFlow::new() {
        Ok(gpu) => {
            c.bench_function("flow_gpu_49x480x720_3tracks", |b| {
                b.iter(|| gpu.motion_field(flow::scene_points(&scene).unwrap(), size).unwrap())
            });
        }
        Err(e) => eprintln!("skipping GPU benchmark: {e}"),
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
