//! The GPU motion field against the CPU reference path (on lavapipe in CI) and the fixtures.
//!
//! No adapter is a failure (install mesa-vulkan-drivers for lavapipe) unless
//! `TORA_SKIP_GPU_TESTS=1`. Shapes stay tiny: lavapipe is slow.

use std::path::PathBuf;
use std::sync::OnceLock;

use tora_studio::flow::gpu::{GpuFlow, GpuFlowError};
use tora_studio::flow::{self, ClipSize, MotionField, TrackPoints};
use tora_studio::trajectory::presets::Preset;
use tora_studio::trajectory::Scene;
use tora_studio::verify::{self, Kind};
use tora_studio::Backend;

/// One shared device for every test (opening one is slow on lavapipe).
fn gpu() -> Option<&'static GpuFlow> {
    static GPU: OnceLock<Result<GpuFlow, String>> = OnceLock::new();
    match GPU.get_or_init(|| GpuFlow::new().map_err(|e| e.to_string())) {
        Ok(gpu) => Some(gpu),
        Err(e) if std::env::var("TORA_SKIP_GPU_TESTS").is_ok_and(|v| v == "1") => {
            eprintln!("TORA_SKIP_GPU_TESTS=1: skipping the GPU flow test ({e})");
            None
        }
        Err(e) => panic!(
            "no usable GPU for the flow tests: {e}\n\
             Install mesa-vulkan-drivers (lavapipe, a software Vulkan device; CI installs it), \
             or set TORA_SKIP_GPU_TESTS=1 to skip these tests."
        ),
    }
}

/// Whether the shared device's `motion_field` is the CPU's bit for bit.
fn exact() -> bool {
    gpu().is_some_and(GpuFlow::is_exact)
}

/// Every colour value of the clip equal, with the first differing pixel named.
fn assert_colours_identical(what: &str, gpu: &MotionField, cpu: &MotionField) {
    let size = cpu.flow.size;
    let n = size.pixels();
    if let Some(i) = gpu.rgb.data.iter().zip(&cpu.rgb.data).position(|(g, c)| g != c) {
        let (t, c, p) = (i / (3 * n), i / n % 3, i % n);
        let (y, x) = (p / size.width, p % size.width);
        let differ = gpu.rgb.data.iter().zip(&cpu.rgb.data).filter(|(g, c)| g != c).count();
        panic!(
            "{what}: {differ} colour values differ from the CPU's; first: frame {t} ({x},{y}) channel {c}: GPU {} vs CPU {} (flow {:?})",
            gpu.rgb.data[i],
            cpu.rgb.data[i],
            cpu.flow.at(t, y, x)
        );
    }
}

fn track(name: &str, points: Vec<[i32; 2]>) -> TrackPoints {
    TrackPoints { name: name.into(), points }
}

/// GPU == CPU: points exact, flow and max norm within 1e-6 * max_norm + 1e-6, support equal;
/// when the device reproduces the CPU ([`GpuFlow::is_exact`]: every working device), flow and
/// colours bit for bit.
fn assert_matches_cpu(what: &str, gpu: &MotionField, cpu: &MotionField) {
    let size = cpu.flow.size;
    assert_eq!(gpu.flow.size, size, "{what}: size");
    let gpu_points: Vec<_> = gpu.points.iter().map(|t| &t.points).collect();
    let cpu_points: Vec<_> = cpu.points.iter().map(|t| &t.points).collect();
    assert_eq!(gpu_points, cpu_points, "{what}: points");
    for t in 0..size.frames {
        assert_eq!(gpu.flow.support(t), cpu.flow.support(t), "{what}: support of frame {t}");
    }

    let tol = 1e-6 * cpu.rgb.max_norm as f64 + 1e-6;
    let norm_err = (gpu.rgb.max_norm as f64 - cpu.rgb.max_norm as f64).abs();
    assert!(norm_err <= tol, "{what}: max_norm {} vs CPU {}", gpu.rgb.max_norm, cpu.rgb.max_norm);
    assert_eq!(gpu.flow.boxes, cpu.flow.boxes, "{what}: kernel boxes");
    let (gpu_flow, cpu_flow) = (gpu.flow.to_dense(), cpu.flow.to_dense());
    assert_eq!(gpu_flow.len(), cpu_flow.len(), "{what}: flow length");
    let (mut flow_err, mut flow_differ) = (0.0f64, 0usize);
    for (g, c) in gpu_flow.iter().zip(&cpu_flow) {
        flow_err = flow_err.max((*g as f64 - *c as f64).abs());
        flow_differ += usize::from(g.to_bits() != c.to_bits());
    }
    assert!(flow_err <= tol, "{what}: flow differs by {flow_err:e} > {tol:e}");

    assert_eq!(gpu.rgb.data.len(), cpu.rgb.data.len(), "{what}: rgb length");
    if exact() {
        assert_eq!(flow_differ, 0, "{what}: exact mode must give the CPU's flow bit for bit");
        assert_colours_identical(what, gpu, cpu);
        return;
    }
    let (mut rgb_err, mut rgb_differ) = (0i32, 0usize);
    for t in 0..size.frames {
        for c in 0..3 {
            for y in 0..size.height {
                for x in 0..size.width {
                    let [dx, dy] = cpu.flow.at(t, y, x);
                    if c == 2 && dy == 0.0 && dx > 0.0 {
                        continue;
                    }
                    let d = (gpu.rgb.at(t, c, y, x) as i32 - cpu.rgb.at(t, c, y, x) as i32).abs();
                    rgb_err = rgb_err.max(d);
                    rgb_differ += usize::from(d != 0);
                }
            }
        }
    }
    assert!(rgb_err <= 1, "{what}: colours differ by {rgb_err} levels");
    eprintln!(
        "{what}: flow max |d| {flow_err:e} ({flow_differ} values not bit-equal), {rgb_differ} colour values off by one"
    );
}

fn check_tracks(what: &str, tracks: Vec<TrackPoints>, size: ClipSize) {
    let Some(gpu) = gpu() else { return };
    let cpu = flow::motion_field_cpu(tracks.clone(), size).expect("CPU motion field");
    let ours = gpu.motion_field(tracks, size).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_matches_cpu(what, &ours, &cpu);
}

fn preset_scene(width: u32, height: u32, frames: u32, presets: &[(Preset, [f64; 2], f64)]) -> Scene {
    let mut scene = Scene { width, height, frames, ..Scene::default() };
    for (i, &(preset, centre, radius)) in presets.iter().enumerate() {
        let colour = scene.next_colour();
        scene.tracks.push(preset.track(format!("t{i}"), colour, centre, radius, frames));
    }
    scene
}

fn check_scene(what: &str, scene: &Scene) {
    let tracks = flow::scene_points(scene).expect("scene points");
    check_tracks(what, tracks, ClipSize::of(scene));
}

#[test]
fn presets_on_an_odd_size_match_the_cpu() {
    let scene = preset_scene(
        61,
        47,
        9,
        &[
            (Preset::Circle, [70.0, 90.0], 50.0),
            (Preset::Wave, [128.0, 180.0], 60.0),
            (Preset::Spiral, [190.0, 80.0], 40.0),
        ],
    );
    check_scene("presets 9x47x61", &scene);
}

#[test]
fn shake_and_coaster_on_a_wider_frame_match_the_cpu() {
    let scene =
        preset_scene(130, 90, 7, &[(Preset::Shake, [128.0, 128.0], 80.0), (Preset::Coaster, [100.0, 150.0], 90.0)]);
    check_scene("shake+coaster 7x90x130", &scene);
}

#[test]
fn tracks_touching_every_border_match_the_cpu() {
    let size = ClipSize { frames: 6, height: 33, width: 47 };
    let tracks = vec![
        // Corners, then a numpy-wrapped negative column; the last point may sit anywhere.
        track("corners", vec![[0, 0], [46, 0], [46, 32], [0, 32], [-1, 5], [99, 99]]),
        track("left edge", vec![[0, 10], [0, 12], [0, 9], [1, 9], [0, 20], [0, 20]]),
        track("bottom edge", vec![[20, 32], [25, 32], [30, 32], [30, 31], [40, 32], [3, 3]]),
    ];
    check_tracks("borders 6x33x47", tracks, size);
}

#[test]
fn a_later_track_overwrites_an_earlier_one() {
    let size = ClipSize { frames: 4, height: 40, width: 48 };
    let tracks = vec![
        track("moving", vec![[10, 10], [20, 15], [30, 20], [40, 25]]),
        // Same pixels on frames 1 and 2, other displacements: these must win.
        track("static", vec![[10, 10], [10, 10], [30, 20], [30, 20]]),
        track("crossing", vec![[5, 30], [20, 15], [25, 15], [26, 16]]),
    ];
    let sparse = flow::sparse_displacement(&tracks, size).expect("sparse");
    assert_eq!(sparse.frames[1].len(), 2, "the overwrite must replace, not add");
    check_tracks("overwrite 4x40x48", tracks, size);
}

#[test]
fn an_all_static_scene_is_white_with_zero_norm() {
    let Some(gpu) = gpu() else { return };
    let size = ClipSize { frames: 5, height: 40, width: 48 };
    let tracks = vec![track("a", vec![[3, 4]; 5]), track("b", vec![[47, 39]; 5])];
    let ours = gpu.motion_field(tracks.clone(), size).expect("GPU motion field");
    assert_eq!(ours.rgb.max_norm, 0.0);
    assert!(ours.rgb.data.iter().all(|&c| c == 255), "static flow must be white");
    assert!(ours.flow.to_dense().iter().all(|&v| v == 0.0));
    assert_matches_cpu("all static 5x40x48", &ours, &flow::motion_field_cpu(tracks, size).expect("CPU"));
}

#[test]
fn an_out_of_frame_point_is_the_cpu_error() {
    let Some(gpu) = gpu() else { return };
    let size = ClipSize { frames: 3, height: 10, width: 10 };
    let tracks = vec![track("ok", vec![[1, 1], [2, 2], [3, 3]]), track("runner", vec![[0, 0], [10, 0], [0, 0]])];
    let cpu = flow::motion_field_cpu(tracks.clone(), size).expect_err("CPU must refuse");
    let err = gpu.motion_field(tracks.clone(), size).expect_err("GPU must refuse");
    assert!(matches!(err, GpuFlowError::Input(_)), "{err:?}");
    assert!(err.to_string().contains(&cpu.to_string()), "{err} vs CPU {cpu}");
    assert!(err.to_string().contains("track 'runner', point 1"), "{err}");
    assert!(gpu.compute_on_device(&tracks, size).is_err());
}

#[test]
fn colours_left_on_the_device_match_the_cpu() {
    let Some(gpu) = gpu() else { return };
    let scene = preset_scene(
        37,
        29,
        5,
        &[(Preset::Infinity, [128.0, 128.0], 70.0), (Preset::PauseThenMove, [60.0, 60.0], 50.0)],
    );
    let tracks = flow::scene_points(&scene).expect("points");
    let size = ClipSize::of(&scene);
    let cpu = flow::motion_field_cpu(tracks.clone(), size).expect("CPU");
    let field = gpu.compute_on_device(&tracks, size).expect("GPU");
    assert_eq!(field.size, size);
    assert_eq!(field.max_norm, cpu.rgb.max_norm);

    let device = gpu.device();
    let bytes = (size.frames * size.pixels() * 4) as u64;
    let staging = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("test readback"),
        size: bytes,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut encoder = device.create_command_encoder(&Default::default());
    encoder.copy_buffer_to_buffer(&field.rgba, 0, &staging, 0, bytes);
    gpu.queue().submit([encoder.finish()]);
    staging.map_async(wgpu::MapMode::Read, .., |r| r.expect("map"));
    device.poll(wgpu::PollType::wait_indefinitely()).expect("poll");
    let packed: Vec<u32> = staging
        .get_mapped_range(..)
        .expect("mapped")
        .chunks_exact(4)
        .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    let n = size.pixels();
    for t in 0..size.frames {
        for i in 0..n {
            let (y, x) = (i / size.width, i % size.width);
            let [dx, dy] = cpu.flow.at(t, y, x);
            let p = packed[t * n + i];
            assert!(p >> 24 >= 254, "alpha");
            for c in 0..3 {
                let ours = ((p >> (8 * c)) & 0xff) as i32;
                let theirs = cpu.rgb.at(t, c, y, x) as i32;
                // Alpha 255: the shader guarantees the CPU's level; 254: within one.
                if p >> 24 == 255 {
                    assert_eq!(ours, theirs, "frame {t} ({x},{y}) channel {c}");
                    continue;
                }
                if c == 2 && dy == 0.0 && dx > 0.0 {
                    continue;
                }
                assert!((ours - theirs).abs() <= 1, "frame {t} ({x},{y}) channel {c}: {ours} vs {theirs}");
            }
        }
    }
}

#[test]
fn small_binding_limits_split_the_clip_into_chunks() {
    if gpu().is_none() {
        return;
    }
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapter = pollster::block_on(instance.request_adapter(&Default::default())).expect("adapter");
    // Two 61x47 frames of flow per binding: 9 frames become 5 chunks with unaligned RGBA offsets.
    let limits = wgpu::Limits { max_storage_buffer_binding_size: 2 * 61 * 47 * 8, ..adapter.limits() };
    let (device, queue) = pollster::block_on(
        adapter.request_device(&wgpu::DeviceDescriptor { required_limits: limits, ..Default::default() }),
    )
    .expect("device");
    let chunked = GpuFlow::from_device(device, queue);
    let scene =
        preset_scene(61, 47, 9, &[(Preset::Sawtooth, [128.0, 128.0], 90.0), (Preset::Circle, [60.0, 200.0], 40.0)]);
    let tracks = flow::scene_points(&scene).expect("points");
    let size = ClipSize::of(&scene);
    let ours = chunked.motion_field(tracks.clone(), size).expect("chunked GPU");
    assert_matches_cpu("chunked 9x47x61", &ours, &flow::motion_field_cpu(tracks, size).expect("CPU"));
}

#[test]
fn every_flow_fixture_passes_on_the_gpu() {
    if gpu().is_none() {
        return;
    }
    let root = std::env::var_os("TORA_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures"));
    if !root.join("flow").is_dir() {
        tora_studio::verify::say_loudly(&format!(
            "WARNING: no flow fixtures under {} — the GPU fixture parity was NOT checked",
            root.display()
        ));
        return;
    }
    let results = verify::run(&root, &[Kind::Flow], Backend::Wgpu, |r| eprintln!("{}", r.line()));
    assert!(!results.is_empty(), "no flow checks ran under {}", root.display());
    let failed: Vec<String> = results.iter().filter(|r| !r.passed).map(|r| r.line()).collect();
    assert!(
        failed.is_empty(),
        "{} of {} flow checks failed on wgpu:\n{}",
        failed.len(),
        results.len(),
        failed.join("\n")
    );
}

/// The test's own reproducible generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn between(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo + 1) as u64) as i64
    }
}

/// A random walk inside the frame: big and small steps, pauses, purely horizontal runs (the
/// atan2 cut) and, in a crowd of such tracks on a small frame, many crossings and overwrites.
fn random_track(rng: &mut Rng, name: String, size: ClipSize) -> TrackPoints {
    let (w, h) = (size.width as i64, size.height as i64);
    let reach = (w.min(h) / 4).max(2);
    let mut p = [rng.between(0, w - 1), rng.between(0, h - 1)];
    let mut points = Vec::with_capacity(size.frames);
    for _ in 0..size.frames {
        points.push([p[0] as i32, p[1] as i32]);
        let (dx, dy) = match rng.below(6) {
            0 => (0, 0),                                   // a pause
            1 => (rng.between(1, reach), 0),               // rightward: the B cut
            2 => (rng.between(-reach, reach), 0),          // horizontal
            3 => (rng.between(-2, 2), rng.between(-2, 2)), // a small step
            _ => (rng.between(-reach, reach), rng.between(-reach, reach)),
        };
        p = [(p[0] + dx).clamp(0, w - 1), (p[1] + dy).clamp(0, h - 1)];
    }
    TrackPoints { name, points }
}

#[test]
fn random_scenes_give_the_cpu_colours_bit_for_bit() {
    let Some(gpu) = gpu() else { return };
    let mut rng = Rng(0x5eed_f10e_c0de_0017);
    let mut sizes = Vec::new();
    for _ in 0..24 {
        sizes.push((ClipSize { frames: 8, height: 128, width: 128 }, 6 + rng.below(15)));
    }
    for _ in 0..12 {
        let size = ClipSize { frames: 2 + rng.below(12), height: 2 * rng.below(70) + 9, width: 2 * rng.below(80) + 11 };
        sizes.push((size, 1 + rng.below(8)));
    }
    sizes.push((ClipSize { frames: 13, height: 256, width: 384 }, 10));
    sizes.push((ClipSize { frames: 49, height: 480, width: 720 }, 4));
    for (i, (size, tracks)) in sizes.into_iter().enumerate() {
        let tracks: Vec<TrackPoints> = (0..tracks).map(|k| random_track(&mut rng, format!("t{k}"), size)).collect();
        let what = format!("random scene {i}: {}x{}x{}, {} tracks", size.frames, size.height, size.width, tracks.len());
        let cpu = flow::motion_field_cpu(tracks.clone(), size).expect("CPU motion field");
        let ours = gpu.motion_field(tracks, size).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_matches_cpu(&what, &ours, &cpu);
        eprintln!("{what}: {} pixels recomputed on the CPU", gpu.last_recomputed());
    }
}

#[test]
fn every_flow_fixture_gives_the_cpu_colours_on_the_gpu() {
    let Some(gpu) = gpu() else { return };
    let root = verify::fixtures_root(None).join("flow");
    let Ok(dir) = std::fs::read_dir(&root) else {
        tora_studio::verify::say_loudly(&format!(
            "WARNING: no flow fixtures under {} — CPU/GPU colour identity on them NOT checked",
            root.display()
        ));
        return;
    };
    let mut cases = 0;
    for path in
        dir.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
    {
        let file = tora_studio::tensor_file::TensorFile::open(&path).expect("fixture");
        let case: verify::FlowCase = serde_json::from_str(&file.metadata()["case"]).expect("case metadata");
        let scene = case.scene();
        let tracks = flow::scene_points(&scene).expect("points");
        let size = ClipSize::of(&scene);
        let what = path.file_stem().unwrap_or_default().to_string_lossy().into_owned();
        let cpu = flow::motion_field_cpu(tracks.clone(), size).expect("CPU motion field");
        let ours = gpu.motion_field(tracks, size).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_matches_cpu(&what, &ours, &cpu);
        cases += 1;
    }
    assert!(cases > 0, "no flow fixtures in {}", root.display());
}
