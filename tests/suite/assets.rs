//! `assets/`: the pictures are what our own code draws (kept in sync here), and every example
//! project runs through `tora-studio flow --project` as a user would run it.
//!
//! Regenerate after changing the drawing code or the examples:
//! `TORA_WRITE_ASSETS=1 cargo test --test suite assets:: -- --test-threads=1`

use std::path::{Path, PathBuf};
use std::process::Command;

use tora_studio::app::{app_icon, demo_image, demo_scene, first_frame, FIRST_FRAMES};
use tora_studio::flow::preview::RgbaFrame;
use tora_studio::tensor_file::TensorFile;
use tora_studio::trajectory::{project, CameraLayer, Easing, Keyframe, Region, Scene, Track};

fn assets() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets")
}

fn writing() -> bool {
    std::env::var_os("TORA_WRITE_ASSETS").is_some()
}

/// Every picture in `assets/` and the code that draws it.
fn pictures() -> Vec<(PathBuf, RgbaFrame)> {
    let mut all = vec![(assets().join("demo_background.png"), demo_image()), (assets().join("icon.png"), app_icon())];
    for name in FIRST_FRAMES {
        all.push((assets().join(format!("first_frames/{name}.png")), first_frame(name).expect("known name")));
    }
    all
}

fn save_png(path: &Path, img: &RgbaFrame) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let opaque = img.pixels.chunks(4).all(|p| p[3] == 255);
    if opaque {
        let rgb: Vec<u8> = img.pixels.chunks(4).flat_map(|p| [p[0], p[1], p[2]]).collect();
        image::save_buffer(path, &rgb, img.width, img.height, image::ColorType::Rgb8).unwrap();
    } else {
        image::save_buffer(path, &img.pixels, img.width, img.height, image::ColorType::Rgba8).unwrap();
    }
}

#[test]
fn pictures_in_assets_are_what_the_code_draws() {
    for (path, drawn) in pictures() {
        if writing() {
            save_png(&path, &drawn);
        }
        let file = image::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).to_rgba8();
        assert_eq!(file.dimensions(), (drawn.width, drawn.height), "{}", path.display());
        assert!(file.as_raw() == &drawn.pixels, "{} differs from the code that draws it", path.display());
    }
}

/// Canvas units of an output pixel on the 720x480 demo pictures.
fn canvas(px: f64, py: f64) -> [f64; 2] {
    [px * 256.0 / 720.0, py * 256.0 / 480.0]
}

/// The example projects, as the code builds them (written to `assets/examples` in write mode).
fn example_scenes() -> Vec<(&'static str, Scene)> {
    let beach = Scene { background: Some("../demo_background.png".into()), ..demo_scene() };

    // The boat as a region (the demo's boat drawing: sail 222..280, hull 280..296 px).
    let outline: Vec<[f64; 2]> = [
        [394.0, 216.0],
        [436.0, 278.0],
        [440.0, 280.0],
        [428.0, 298.0],
        [372.0, 298.0],
        [362.0, 280.0],
        [394.0, 280.0],
    ]
    .iter()
    .map(|p| canvas(p[0], p[1]))
    .map(|p| [(p[0] * 10.0).round() / 10.0, (p[1] * 10.0).round() / 10.0])
    .collect();
    let mut boat = Region::new("boat", [42, 157, 143], outline);
    let start = boat.path.points[0];
    boat.path.points[0].hold = 6;
    boat.path.points[0].easing = Easing::Smooth;
    boat.path.points.push(Keyframe::at(start.x + 64.0, start.y));
    let mut region_scene = demo_scene();
    region_scene.tracks.retain(|t| t.name != "boat");
    region_scene.regions.push(boat);
    region_scene.background = Some("../demo_background.png".into());

    let push_in = Scene {
        background: Some("../first_frames/desert_road.png".into()),
        camera: Some(CameraLayer { zoom: 1.6, easing: Easing::Smooth, ..CameraLayer::default() }),
        ..Scene::default()
    };

    // Camera pan to the right while a cloud drifts the other way and a bird crosses the sky.
    let cloud_outline: Vec<[f64; 2]> =
        [[150.0, 95.0], [175.0, 66.0], [215.0, 54.0], [255.0, 64.0], [282.0, 92.0], [262.0, 110.0], [160.0, 110.0]]
            .iter()
            .map(|p| canvas(p[0], p[1]))
            .map(|p| [(p[0] * 10.0).round() / 10.0, (p[1] * 10.0).round() / 10.0])
            .collect();
    let mut cloud = Region::new("cloud", [233, 196, 106], cloud_outline);
    cloud.samples = 8;
    let c = cloud.path.points[0];
    cloud.path.points.push(Keyframe::at(c.x - 20.0, c.y));
    let bird = Track::new(
        "bird",
        [230, 57, 70],
        vec![Keyframe::at(20.0, 60.0), Keyframe::at(120.0, 40.0), Keyframe::at(230.0, 70.0)],
    );
    let pan = Scene {
        background: Some("../first_frames/meadow.png".into()),
        tracks: vec![bird],
        regions: vec![cloud],
        camera: Some(CameraLayer { pan_distance: 40.0, zoom: 1.0, easing: Easing::Linear, ..CameraLayer::default() }),
        ..Scene::default()
    };
    vec![("beach", beach), ("beach_boat_region", region_scene), ("desert_road_push_in", push_in), ("meadow_pan", pan)]
}

#[test]
fn example_projects_run_through_flow() {
    let dir = assets().join("examples");
    if writing() {
        std::fs::create_dir_all(&dir).unwrap();
        for (name, scene) in example_scenes() {
            project::save(&dir.join(format!("{name}.json")), &scene).unwrap();
        }
    }
    let mut examples: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    examples.sort();
    assert!(examples.len() >= 3, "{examples:?}");
    let scenes: Vec<Scene> = examples.iter().map(|p| project::load(p).unwrap()).collect();
    assert!(scenes.iter().any(|s| !s.regions.is_empty()), "an example with a region");
    assert!(scenes.iter().any(|s| s.camera.is_some()), "an example with a camera layer");
    assert!(scenes.iter().any(|s| s.regions.is_empty() && s.camera.is_none()), "a plain example");

    let out_dir = tempfile::tempdir().unwrap();
    for (path, scene) in examples.iter().zip(&scenes) {
        let image = scene.background.as_ref().expect("every example has a picture");
        assert!(image.is_file(), "{}: background {} missing", path.display(), image.display());
        let out = out_dir.path().join("flow.safetensors");
        let run = Command::new(env!("CARGO_BIN_EXE_tora-studio"))
            .args(["flow", "--project", path.to_str().unwrap(), "--out", out.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(run.status.success(), "{}: {}", path.display(), String::from_utf8_lossy(&run.stderr));
        let f = TensorFile::open(&out).unwrap();
        let points = f.i32("points").unwrap();
        let tracks = scene.motion_tracks().unwrap();
        assert_eq!(points.shape, vec![tracks.len(), scene.frames as usize, 2], "{}", path.display());
        let rgb = f.u8("flow_rgb").unwrap();
        let coloured = rgb.data.iter().filter(|&&c| c != 255).count();
        assert!(coloured > rgb.data.len() / 100, "{}: motion must colour the field", path.display());
        // Each region's tracks all move with it: the same displacement every frame, up to the
        // integer rounding of the pixel positions.
        let mut first = scene.tracks.len();
        for region in &scene.regions {
            let n = region.samples as usize;
            let at = |track: usize, frame: usize| {
                let i = (track * scene.frames as usize + frame) * 2;
                [points.data[i], points.data[i + 1]]
            };
            for frame in 0..scene.frames as usize {
                let moves: Vec<[i32; 2]> = (first..first + n)
                    .map(|t| [at(t, frame)[0] - at(t, 0)[0], at(t, frame)[1] - at(t, 0)[1]])
                    .collect();
                for m in &moves {
                    assert!(
                        (m[0] - moves[0][0]).abs() <= 1 && (m[1] - moves[0][1]).abs() <= 1,
                        "{}: region '{}' frame {frame}: {moves:?}",
                        path.display(),
                        region.name()
                    );
                }
            }
            let total =
                (first..first + n).map(|t| (at(t, scene.frames as usize - 1)[0] - at(t, 0)[0]).abs()).min().unwrap();
            assert!(total > 0, "{}: region '{}' does not move", path.display(), region.name());
            first += n;
        }
    }
}

/// `generate --project` takes a project's regions and camera layer (expanded to tracks) to the
/// model, on the tiny fixture model.
#[test]
fn generate_runs_an_example_with_a_region_and_a_camera() {
    let Some(model) = super::pipeline::model_dirs(16).into_iter().next() else { return };
    let example = assets().join("examples/meadow_pan.json");
    let scene = project::load(&example).unwrap();
    assert!(!scene.regions.is_empty() && scene.camera.is_some());
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("frames");
    let run = Command::new(env!("CARGO_BIN_EXE_tora-studio"))
        .args(["generate", "--model"])
        .arg(&model)
        .args(["--prompt", "a cloud drifts over a meadow", "--steps", "1", "--size", "48x32", "--frames", "9"])
        .arg("--project")
        .arg(&example)
        .arg("--overlay")
        .arg("--out")
        .arg(&out_dir)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let pngs = |dir: &Path| std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0);
    assert_eq!(pngs(&out_dir), 9);
}
