//! Motion-field speed at Tora's setting: 49 frames at 720x480, 3 tracks.
//! `cargo bench --bench flow`; the GPU case runs when a wgpu adapter is present.

use criterion::{criterion_group, criterion_main, Criterion};
use tora_studio::flow::{self, ClipSize};
use tora_studio::trajectory::{presets::Preset, Scene};

fn scene() -> Scene {
    let mut scene = Scene::default();
    for (i, (p, c)) in [(Preset::Circle, [70.0, 90.0]), (Preset::Wave, [128.0, 180.0]), (Preset::Spiral, [190.0, 80.0])]
        .into_iter()
        .enumerate()
    {
        let colour = scene.next_colour();
        scene.tracks.push(p.track(format!("t{i}"), colour, c, 50.0, scene.frames));
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
