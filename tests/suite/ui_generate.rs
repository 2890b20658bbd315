//! The Generate panel, the history of takes and the model manager, driven through the real app
//! on the tiny fixture models: a wrong folder, a run cancelled, a run finished, its take kept,
//! re-opened and exported; every failure leaves the app usable with a clear message.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::common::{fixtures_root, studio_window};
use eframe::egui;
use egui_kittest::kittest::Queryable as _;
use egui_kittest::Harness;
use tora_studio::app::{scan_model_folder, ExportFormat, Level, Outcome, SideTab, StudioApp};
use tora_studio::tensor_file::TensorFile;
use tora_studio::trajectory::{Keyframe, Scene, Timing, Track};

/// A fixture model folder of the wanted kind (by what its transformer config says) and the scene
/// its `io/pipeline.safetensors` was made with (size, frame count, tracks).
pub(super) fn fixture(image_to_video: bool) -> Option<(PathBuf, Scene)> {
    let root = fixtures_root();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|d| d.join("model_index.json").is_file() && d.join("io/pipeline.safetensors").is_file())
        .collect();
    dirs.sort();
    let found = dirs.into_iter().find(|d| {
        let report = scan_model_folder(d);
        report.usable() && report.image_to_video == Some(image_to_video)
    });
    let Some(dir) = found else {
        tora_studio::verify::say_loudly(&format!(
            "WARNING: no {} fixture model (model_index.json + io/pipeline.safetensors) under {}: the Generate panel tests are SKIPPED. Set TORA_FIXTURES.",
            if image_to_video { "I2V" } else { "T2V" },
            root.display()
        ));
        return None;
    };
    let meta = TensorFile::open(&dir.join("io/pipeline.safetensors")).expect("pipeline io file").metadata();
    let settings: serde_json::Value = serde_json::from_str(&meta["settings"]).expect("settings JSON");
    let number = |k: &str| settings[k].as_u64().unwrap_or_else(|| panic!("settings.{k}")) as u32;
    let tracks = settings["tracks"]
        .as_array()
        .expect("settings.tracks")
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let points = t
                .as_array()
                .expect("a track is a list of points")
                .iter()
                .map(|p| Keyframe::at(p[0].as_f64().unwrap_or(0.0), p[1].as_f64().unwrap_or(0.0)))
                .collect();
            let mut track = Track::new(format!("track {i}"), [230, 57, 70], points);
            track.timing = Timing::Reference;
            track
        })
        .collect();
    let scene = Scene {
        width: number("width"),
        height: number("height"),
        frames: number("num_frames"),
        tracks,
        ..Scene::default()
    };
    Some((dir, scene))
}

pub(super) fn studio(scene: Scene, data: &Path) -> Harness<'static, StudioApp> {
    let mut app = StudioApp::new_for_test(scene, Some(data.to_path_buf()), None);
    app.set_flow_overlay(false, 0.0);
    app.set_side_tab(SideTab::Generate);
    let mut h = studio_window(app, egui::vec2(1280.0, 1000.0), None);
    h.run_steps(2);
    h
}

/// The last run finished and made a take (the outcome and the notices are shown otherwise).
fn assert_finished_with_a_take(h: &Harness<StudioApp>) {
    assert!(
        matches!(h.state().generation_outcome(), Some(Outcome::Finished { take: Some(_), .. })),
        "{:?}; notices {:?}",
        h.state().generation_outcome(),
        h.state().notices()
    );
}

/// Runs frames until `done` holds (the worker wakes the UI; the sleep keeps the loop cheap).
pub(super) fn pump_until(h: &mut Harness<StudioApp>, what: &str, timeout: Duration, done: impl Fn(&StudioApp) -> bool) {
    let start = Instant::now();
    while !done(h.state()) {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}; notices: {:?}", h.state().notices());
        h.step();
        std::thread::sleep(Duration::from_millis(20));
    }
    h.step();
}

pub(super) fn click(h: &mut Harness<StudioApp>, label: &str) {
    h.get_by_label(label).click();
    h.step();
    h.step();
}

fn last_error(app: &StudioApp) -> String {
    app.notices().iter().rev().find(|n| n.level == Level::Error).map(|n| n.text.clone()).unwrap_or_default()
}

fn errors(app: &StudioApp) -> usize {
    app.notices().iter().filter(|n| n.level == Level::Error).count()
}

fn png_count(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|it| it.flatten().filter(|e| e.path().extension().is_some_and(|x| x == "png")).count())
        .unwrap_or(0)
}

#[test]
fn generate_cancel_finish_reopen_and_export_from_the_panel() {
    let Some((model, scene)) = fixture(false) else { return };
    let data = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let mut h = studio(scene.clone(), data.path());

    // A folder that is not a model: a clear message, nothing starts, the panel stays usable.
    let empty = tempfile::tempdir().unwrap();
    h.state_mut().generate_form_mut().model_dir = empty.path().display().to_string();
    pump_until(&mut h, "the folder scan", Duration::from_secs(30), |a| {
        a.model_report().is_some_and(|r| r.dir == empty.path())
    });
    click(&mut h, "Generate video");
    assert!(!h.state().generation_running());
    let e = last_error(h.state());
    assert!(e.starts_with("Cannot generate") && e.contains("not a Tora model folder"), "{e}");
    assert!(h.query_all_by_label_contains("not a Tora model folder").next().is_some());

    // The fixture folder typed into the field, a prompt typed, Generate pressed.
    h.state_mut().generate_form_mut().model_dir.clear();
    h.step();
    h.get_by_label("model folder").focus();
    h.step();
    h.get_by_label("model folder").type_text(&model.display().to_string());
    h.step();
    h.get_by_label("prompt").focus();
    h.step();
    h.get_by_label("prompt").type_text("a red ball bouncing on a beach");
    h.step();
    assert_eq!(h.state().generate_form().model_dir, model.display().to_string());
    assert_eq!(h.state().generate_form().settings.prompt, "a red ball bouncing on a beach");
    pump_until(&mut h, "the fixture scan", Duration::from_secs(30), |a| {
        a.model_report().is_some_and(|r| r.dir == model && r.usable())
    });
    assert!(h.query_all_by_label_contains("model ready: text-to-video").next().is_some());

    // Run 1: many steps, cancelled once steps and preview frames arrive.
    h.state_mut().generate_form_mut().settings.steps = 40;
    click(&mut h, "Generate video");
    assert!(h.state().generation_running(), "notices: {:?}", h.state().notices());
    pump_until(&mut h, "a step with a preview", Duration::from_secs(300), |a| {
        a.generation_stats().steps >= 1 && a.preview_textures() > 0 || !a.generation_running()
    });
    assert!(h.state().generation_running(), "ended early: {:?}", h.state().generation_outcome());
    let stats = h.state().generation_stats().clone();
    assert!(stats.phases.len() >= 3, "phases so far: {:?}", stats.phases);
    assert_eq!(stats.last_step.map(|s| s.1), Some(40));
    click(&mut h, "Cancel");
    pump_until(&mut h, "the cancel", Duration::from_secs(120), |a| !a.generation_running());
    assert_eq!(h.state().generation_outcome(), Some(&Outcome::Cancelled));
    assert!(h.state().generation_stats().steps < 40, "the run stopped early");
    assert!(h.query_all_by_label_contains("cancelled").next().is_some());
    assert!(h.state().takes().is_empty(), "a cancelled run keeps nothing");

    // Run 2: to the end; the take lands in the history with its prompt, settings and scene.
    h.state_mut().generate_form_mut().settings.steps = 4;
    h.state_mut().generate_form_mut().settings.seed = 7;
    click(&mut h, "Generate video");
    pump_until(&mut h, "the finished run", Duration::from_secs(600), |a| !a.generation_running());
    let Some(Outcome::Finished { take: Some(id), .. }) = h.state().generation_outcome().cloned() else {
        panic!("expected a kept take, got {:?}; notices {:?}", h.state().generation_outcome(), h.state().notices());
    };
    let stats = h.state().generation_stats().clone();
    assert_eq!(stats.steps, 4);
    assert!(stats.previews >= 1, "preview frames arrived with the steps");
    let takes = h.state().takes().to_vec();
    assert_eq!(takes.len(), 1);
    let take = &takes[0];
    assert_eq!(take.id, id);
    assert_eq!(take.settings.prompt, "a red ball bouncing on a beach");
    assert_eq!((take.settings.seed, take.settings.steps), (7, 4));
    assert_eq!(take.scene, scene);
    assert_eq!((take.width, take.height, take.frame_count), (scene.width, scene.height, scene.frames as usize));
    assert_eq!(h.state().result_frames(), scene.frames as usize, "the finished clip plays in the panel");

    // The history lists it; re-open brings the settings back after they were changed.
    h.state_mut().set_side_tab(SideTab::Takes);
    h.step();
    assert!(h.query_all_by_label_contains("a red ball bouncing").next().is_some());
    h.state_mut().generate_form_mut().settings.prompt = "something else".into();
    h.state_mut().generate_form_mut().settings.seed = 99;
    click(&mut h, "Re-open");
    assert_eq!(h.state().generate_form().settings.prompt, "a red ball bouncing on a beach");
    assert_eq!(h.state().generate_form().settings.seed, 7);

    // Export: PNG folder, mp4 when ffmpeg is there, and an ffmpeg failure as a message.
    let before = errors(h.state());
    let pngs = out.path().join("pngs");
    assert!(h.state_mut().export_take(&id, ExportFormat::Png, pngs.clone()));
    pump_until(&mut h, "the PNG export", Duration::from_secs(60), |a| a.exports_running() == 0);
    assert_eq!(png_count(&pngs), scene.frames as usize);
    if tora_studio::export::video::ffmpeg_available() {
        assert!(h.state_mut().export_take(&id, ExportFormat::Mp4, out.path().join("take")));
        pump_until(&mut h, "the mp4 export", Duration::from_secs(120), |a| a.exports_running() == 0);
        let mp4 = out.path().join("take.mp4");
        assert!(mp4.metadata().map(|m| m.len() > 0).unwrap_or(false), "{}: {:?}", mp4.display(), h.state().notices());
        assert!(h.state_mut().export_take(&id, ExportFormat::Mp4, out.path().join("no/such/dir/take.mp4")));
        pump_until(&mut h, "the failing export", Duration::from_secs(120), |a| a.exports_running() == 0);
        assert_eq!(errors(h.state()), before + 1);
        let e = last_error(h.state());
        assert!(e.starts_with("Export failed") && e.contains("take.mp4"), "{e}");
    } else {
        tora_studio::verify::say_loudly("WARNING: ffmpeg is not on PATH: the mp4 export check is SKIPPED");
    }
    assert_eq!(errors(h.state()), before + usize::from(tora_studio::export::video::ffmpeg_available()));

    // Still usable: delete the take from the panel.
    click(&mut h, "Delete take");
    assert!(h.state().takes().is_empty());
}

#[test]
fn an_image_to_video_model_needs_a_real_first_frame() {
    let Some((model, scene)) = fixture(true) else { return };
    let data = tempfile::tempdir().unwrap();
    let mut h = studio(scene, data.path());
    h.state_mut().generate_form_mut().model_dir = model.display().to_string();
    h.state_mut().generate_form_mut().settings.prompt = "a dog".into();
    pump_until(&mut h, "the fixture scan", Duration::from_secs(30), |a| {
        a.model_report().is_some_and(|r| r.dir == model)
    });
    assert!(h.query_all_by_label_contains("image-to-video").next().is_some());
    click(&mut h, "Generate video");
    assert!(last_error(h.state()).contains("choose a first-frame image"), "{}", last_error(h.state()));

    let not_an_image = data.path().join("notes.png");
    std::fs::write(&not_an_image, "this is text").unwrap();
    h.state_mut().generate_form_mut().settings.image = Some(not_an_image);
    click(&mut h, "Generate video");
    assert!(!h.state().generation_running());
    assert!(last_error(h.state()).contains("cannot use it as the first frame"), "{}", last_error(h.state()));
    // The panel still works: the form is intact and Generate answers again.
    assert_eq!(h.state().generate_form().settings.prompt, "a dog");
    h.state_mut().generate_form_mut().settings.image = None;
    let before = errors(h.state());
    click(&mut h, "Generate video");
    assert_eq!(errors(h.state()), before + 1);
}

#[test]
fn the_model_manager_lists_components_and_what_is_missing() {
    let Some((model, scene)) = fixture(false) else { return };
    let data = tempfile::tempdir().unwrap();
    let report = scan_model_folder(&model);
    assert!(report.usable(), "{}", report.summary());
    assert_eq!(report.components().len(), 5);
    let (f32_bytes, f16_bytes) = report.memory_estimate();
    assert!(f32_bytes > 0 && f16_bytes == f32_bytes / 2);

    // A copy without its VAE: the panel says what is missing and where to get it.
    let broken = tempfile::tempdir().unwrap();
    for name in ["model_index.json", "transformer", "text_encoder", "tokenizer", "scheduler"] {
        copy_tree(&model.join(name), &broken.path().join(name));
    }
    let mut h = studio(scene, data.path());
    h.state_mut().set_side_tab(SideTab::Models);
    h.state_mut().generate_form_mut().model_dir = broken.path().display().to_string();
    h.state_mut().set_side_tab(SideTab::Generate);
    pump_until(&mut h, "the scan", Duration::from_secs(30), |a| a.model_report().is_some());
    h.state_mut().set_side_tab(SideTab::Models);
    h.run_steps(2);
    assert!(
        h.state().model_report().is_some_and(|r| r.missing() == ["vae"]),
        "{:?}",
        h.state().model_report().map(|r| r.missing())
    );
    assert!(h.query_all_by_label_contains("not found").next().is_some());
    assert!(h.query_all_by_label_contains("get it from huggingface.co/THUDM/CogVideoX-5b").next().is_some());
    h.state_mut().shutdown();
    // The choice is remembered by the next session.
    let again = StudioApp::new_for_test(Scene::default(), Some(data.path().to_path_buf()), None);
    assert_eq!(again.generate_form().model_dir, broken.path().display().to_string());
}

fn copy_tree(from: &Path, to: &Path) {
    if from.is_dir() {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap().flatten() {
            copy_tree(&e.path(), &to.join(e.file_name()));
        }
    } else {
        std::fs::copy(from, to).unwrap();
    }
}

/// Tora's SAT trees under the fixtures (folders holding `tora/<variant>/mp_rank_00_model_states.pt`).
fn sat_trees() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(fixtures_root())
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|d| {
            std::fs::read_dir(d.join("tora"))
                .into_iter()
                .flatten()
                .flatten()
                .any(|v| v.path().join("mp_rank_00_model_states.pt").is_file())
        })
        .collect();
    dirs.sort();
    if dirs.is_empty() {
        tora_studio::verify::say_loudly(
            "WARNING: no SAT fixture tree (tora/<variant>/mp_rank_00_model_states.pt): SKIPPED",
        );
    }
    dirs
}

#[test]
fn a_sat_tree_generates_from_the_studio_at_any_size() {
    for model in sat_trees() {
        let report = scan_model_folder(&model);
        assert!(report.usable(), "{}", report.summary());
        assert_eq!(report.image_to_video, Some(true), "the tiny SAT fixture is Tora's I2V");
        // SAT never adds the learned positional embedding, so the size is free (unlike its diffusers twin).
        assert!(!report.fixed_size);

        // A size and length other than the model's sample grid.
        let data = tempfile::tempdir().unwrap();
        let image = data.path().join("first.png");
        image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([(x * 4) as u8, (y * 5) as u8, 90])).save(&image).unwrap();
        generate_a_kite_in_the_studio(&model, Some(image), data.path(), &["Tora SAT checkpoint tree"]);
    }
}

/// Through the panel: a 64x48, 17-frame one-track scene, model folder and prompt typed, the Models
/// tab showing `models_tab_says`, Generate pressed; the run must finish with a kept 17-frame take.
fn generate_a_kite_in_the_studio(model: &Path, image: Option<PathBuf>, data: &Path, models_tab_says: &[&str]) {
    let scene = Scene {
        width: 64,
        height: 48,
        frames: 17,
        tracks: vec![Track::new("t", [230, 57, 70], vec![Keyframe::at(10.0, 10.0), Keyframe::at(50.0, 40.0)])],
        ..Scene::default()
    };
    let mut h = studio(scene, data);
    h.state_mut().generate_form_mut().model_dir = model.display().to_string();
    h.state_mut().generate_form_mut().settings.prompt = "a kite".into();
    h.state_mut().generate_form_mut().settings.steps = 2;
    h.state_mut().generate_form_mut().settings.image = image;
    pump_until(&mut h, "the model scan", Duration::from_secs(30), |a| {
        a.model_report().is_some_and(|r| r.dir == model && r.usable())
    });
    h.state_mut().set_side_tab(SideTab::Models);
    h.run_steps(2);
    for text in models_tab_says {
        assert!(h.query_all_by_label_contains(text).next().is_some(), "the Models tab does not say {text:?}");
    }
    h.state_mut().set_side_tab(SideTab::Generate);
    h.run_steps(2);
    click(&mut h, "Generate video");
    pump_until(&mut h, "the run", Duration::from_secs(600), |a| !a.generation_running());
    assert_finished_with_a_take(&h);
    assert_eq!(h.state().result_frames(), 17);
    h.state_mut().shutdown();
}

/// An OpenSora 1.2 folder as a user assembles it (links to the tiny fixtures: STDiT3, VAE v1.2 with
/// its 2D VAE, and a T5 of the caption width in `text_encoder/` + `tokenizer/`).
fn opensora_folder(into: &Path) -> Option<PathBuf> {
    let root = fixtures_root();
    let opensora =
        std::fs::read_dir(&root).ok()?.flatten().map(|e| e.path()).find(|d| d.join("stdit3/config.json").is_file())?;
    let stdit3: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(opensora.join("stdit3/config.json")).ok()?).ok()?;
    let width = stdit3["caption_channels"].as_u64()?;
    let t5 = std::fs::read_dir(&root).ok()?.flatten().map(|e| e.path()).find(|d| {
        std::fs::read_to_string(d.join("text_encoder/config.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .is_some_and(|c| c["d_model"].as_u64() == Some(width))
    })?;
    let dir = into.join("opensora");
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(&opensora).unwrap().flatten() {
        if entry.file_name() != "io" {
            std::os::unix::fs::symlink(entry.path(), dir.join(entry.file_name())).unwrap();
        }
    }
    for part in ["text_encoder", "tokenizer"] {
        std::os::unix::fs::symlink(t5.join(part), dir.join(part)).unwrap();
    }
    Some(dir)
}

#[test]
fn an_opensora_folder_generates_from_the_studio() {
    let data = tempfile::tempdir().unwrap();
    let Some(model) = opensora_folder(data.path()) else {
        tora_studio::verify::say_loudly("WARNING: no OpenSora fixture with a fitting T5: SKIPPED");
        return;
    };
    let report = scan_model_folder(&model);
    assert!(report.usable(), "{}", report.summary());
    assert_eq!(report.image_to_video, Some(false));
    assert!(report.summary().contains("text-to-video"), "{}", report.summary());
    generate_a_kite_in_the_studio(&model, None, data.path(), &["OpenSora 1.2", "the trajectory has no effect"]);
}

#[test]
fn the_panel_says_which_device_runs_and_defaults_to_the_best() {
    use tora_studio::app::Compute;
    use tora_studio::model::device::{wgpu_adapters, wgpu_run_adapter};
    let data = tempfile::tempdir().unwrap();
    let mut h = studio(Scene::default(), data.path());
    assert_eq!(h.state().generate_form().compute, Compute::Auto, "a fresh studio picks the best device");
    let adapters = wgpu_adapters();
    let gpu = wgpu_run_adapter(&adapters);
    h.run_steps(2);
    let expected = match gpu {
        Some(a) if a.is_real_gpu() => format!("runs on: GPU (f16) on {}", a.describe()),
        Some(a) => format!("runs on: CPU (f32); {} is not a hardware GPU", a.describe()),
        None => "runs on: CPU (f32); no GPU found".into(),
    };
    assert!(h.query_by_label(&expected).is_some(), "the panel does not say {expected:?}");

    // An explicit choice is said as such and remembered by the next session.
    h.state_mut().generate_form_mut().compute = Compute::Cpu;
    h.run_steps(2);
    assert!(h.query_by_label("runs on: CPU (f32)").is_some());
    h.state_mut().shutdown();
    let again = StudioApp::new_for_test(Scene::default(), Some(data.path().to_path_buf()), None);
    assert_eq!(again.generate_form().compute, Compute::Cpu);
}

/// A device lost and an allocation failing midway through runs (injected where the worker runs the
/// pipeline): each is reported as such, the form and scene stay, no take is kept, and the next
/// run, on the real pipeline, finishes and is kept.
#[test]
fn a_lost_device_or_failed_allocation_is_reported_and_the_next_run_works() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let Some((model, scene)) = fixture(false) else { return };
    let data = tempfile::tempdir().unwrap();
    let mut h = studio(scene.clone(), data.path());
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    use tora_studio::pipeline::{GenerateRequest, Reporter};
    let runner: tora_studio::app::Runner =
        Arc::new(move |request: &GenerateRequest, reporter: &Reporter| match seen.fetch_add(1, Ordering::SeqCst) {
            0 => panic!("wgpu error: Validation Error: Parent device is lost (DeviceLost)"),
            1 => panic!("memory allocation of 4294967296 bytes failed"),
            _ => tora_studio::pipeline::run::run_request(request, reporter),
        });
    h.state_mut().set_generation_runner(runner);
    h.state_mut().generate_form_mut().model_dir = model.display().to_string();
    h.state_mut().generate_form_mut().settings.prompt = "a red ball".into();
    h.state_mut().generate_form_mut().settings.steps = 2;
    pump_until(&mut h, "the fixture scan", Duration::from_secs(30), |a| {
        a.model_report().is_some_and(|r| r.dir == model && r.usable())
    });
    for expected in ["GPU device was lost", "ran out of memory"] {
        click(&mut h, "Generate video");
        pump_until(&mut h, "the failing run", Duration::from_secs(60), |a| !a.generation_running());
        let Some(Outcome::Failed(message)) = h.state().generation_outcome().cloned() else {
            panic!("expected a failure, got {:?}", h.state().generation_outcome());
        };
        assert!(message.contains(expected), "{message}");
        assert!(last_error(h.state()).contains("Generation failed"), "{}", last_error(h.state()));
        assert!(h.state().takes().is_empty(), "a failed run keeps nothing");
        assert_eq!(h.state().scene(), &scene, "the scene is untouched");
        assert_eq!(h.state().generate_form().settings.prompt, "a red ball");
    }
    click(&mut h, "Generate video");
    pump_until(&mut h, "the run after the failures", Duration::from_secs(600), |a| !a.generation_running());
    assert_finished_with_a_take(&h);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}
