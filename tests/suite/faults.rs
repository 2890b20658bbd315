//! Faults from outside: a disk that fills during a project save, a take or an export (injected
//! through `tora_studio::disk`, which fails writes with ENOSPC as the kernel does); ffmpeg missing
//! or dying mid-export; a save killed with SIGKILL; a run cancelled in each phase. Each asserts
//! that earlier files survive, nothing half-written passes for good, and the message says what
//! happened.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use tora_studio::app::{Level, StudioApp};
use tora_studio::disk;
use tora_studio::export::{export_clip, ExportError, Ffmpeg, RgbFrames, VideoFormat};
use tora_studio::pipeline::takes::{TakeInfo, TakeStore};
use tora_studio::pipeline::{Event, Phase, PipelineError, Progress, Settings};
use tora_studio::trajectory::{project, Keyframe, Scene, Track};

use super::common::{cpu, fixtures_root, studio_without_overlay};

const NO_SPACE: &str = "No space left on device";

fn scene_with(tracks: usize) -> Scene {
    let mut scene = Scene::default();
    for i in 0..tracks {
        let y = 10.0 + i as f64;
        scene.tracks.push(Track::new(
            format!("t{i}"),
            [200, 40, 40],
            vec![Keyframe::at(10.0, y), Keyframe::at(300.0, y)],
        ));
    }
    scene
}

fn clip(frames: usize) -> RgbFrames {
    RgbFrames {
        width: 64,
        height: 48,
        fps: 8.0,
        frames: (0..frames).map(|i| vec![(i * 9) as u8; 64 * 48 * 3]).collect(),
    }
}

/// Names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut n: Vec<String> =
        std::fs::read_dir(dir).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    n.sort();
    n
}

#[test]
fn a_full_disk_during_a_project_save_keeps_the_earlier_file_and_the_work() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("motion.json");
    let mut app = StudioApp::new_for_test(scene_with(2), None, None);
    assert!(app.save_project_to(&path));
    let saved = project::load(&path).unwrap();

    // A later version does not fit: some bytes land in the temporary file, then ENOSPC.
    let edited = scene_with(40);
    let mut app = StudioApp::new_for_test(edited.clone(), None, None);
    for bytes_left in [0, 100, 2000] {
        let full = disk::simulate_full(dir.path(), bytes_left);
        assert!(!app.save_project_to(&path), "saved on a full disk ({bytes_left} bytes left)");
        drop(full);
        let said = app.notices().iter().rev().find(|n| n.level == Level::Error).map(|n| n.text.clone()).unwrap();
        assert!(said.contains("Cannot save the project") && said.contains(NO_SPACE), "{said}");
        assert!(said.contains("motion.json"), "{said}");
        assert_eq!(project::load(&path).unwrap(), saved, "the earlier file is intact");
        assert_eq!(names(dir.path()), ["motion.json"], "no temporary file left behind");
        assert_eq!(app.scene(), &edited, "the work in the studio is kept");
    }
    // Space again: the same save goes through.
    assert!(app.save_project_to(&path));
    assert_eq!(project::load(&path).unwrap(), edited);
}

fn take_info(store: &TakeStore, frames: usize) -> TakeInfo {
    TakeInfo {
        id: store.new_id(1_700_000_000),
        created: 1_700_000_000,
        model_dir: "models/tora".into(),
        settings: Settings { prompt: "a kite".into(), ..Settings::default() },
        scene: scene_with(1),
        width: 64,
        height: 48,
        frame_count: frames,
        fps: 8.0,
        seconds: 1.0,
        batch: None,
    }
}

#[test]
fn a_full_disk_while_a_take_is_written_leaves_no_take_behind() {
    let dir = tempfile::tempdir().unwrap();
    let store = TakeStore::new(dir.path().join("takes"));
    let kept = store.save(take_info(&store, 3), &clip(3)).unwrap();
    // Out of space in the first frame, in a later frame, and in take.json after every frame.
    let one_frame = {
        let probe = tempfile::tempdir().unwrap();
        tora_studio::export::png::write_png_sequence(probe.path(), &clip(1), "frame").unwrap();
        std::fs::metadata(probe.path().join("frame_0000.png")).unwrap().len()
    };
    for bytes_left in [0, 10, one_frame * 3 + one_frame / 2, one_frame * 6 + 20] {
        let full = disk::simulate_full(dir.path(), bytes_left);
        let err = store.save(take_info(&store, 6), &clip(6)).unwrap_err().to_string();
        drop(full);
        assert!(err.contains(NO_SPACE), "{bytes_left} bytes left: {err}");
        let (list, errors) = store.list();
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(list, vec![kept.clone()], "only the complete take is listed");
        assert_eq!(names(store.root()), std::slice::from_ref(&kept.id), "the partial take's files are gone");
    }
    assert_eq!(store.frames(&kept).unwrap().frames, clip(3).frames, "the earlier take is intact");
}

#[test]
fn a_full_disk_during_a_png_export_names_the_frame() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("frames");
    let full = disk::simulate_full(dir.path(), 150);
    let err = export_clip(&out, &clip(8), &Ffmpeg::system()).unwrap_err();
    drop(full);
    let msg = err.to_string();
    assert!(matches!(err, ExportError::Io { .. }), "{err:?}");
    assert!(msg.contains("frame_00") && msg.contains(NO_SPACE), "{msg}");
}

/// A fake ffmpeg: answers `-version`, then reads `bytes_read` bytes of the raw input, writes half
/// a video to its output and dies as a full disk makes ffmpeg die.
fn fake_ffmpeg(dir: &Path, bytes_read: usize) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("ffmpeg");
    let script = format!(
        "#!/bin/sh\nif [ \"$1\" = \"-version\" ]; then echo 'ffmpeg version 0-fake'; exit 0; fi\n\
         for last; do :; done\nhead -c {bytes_read} > /dev/null\nprintf 'half a video' > \"$last\"\n\
         echo 'av_interleaved_write_frame(): No space left on device' >&2\nexit 1\n"
    );
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[test]
fn ffmpeg_failing_mid_export_leaves_the_earlier_video_and_no_partial_file() {
    let dir = tempfile::tempdir().unwrap();
    let bin = tempfile::tempdir().unwrap();
    let ffmpeg = Ffmpeg::at(fake_ffmpeg(bin.path(), 64 * 48 * 3 * 2));
    let target = dir.path().join("take.mp4");
    std::fs::write(&target, b"the video exported yesterday").unwrap();
    for format in [VideoFormat::Mp4, VideoFormat::Webm, VideoFormat::Gif] {
        let path = target.with_extension(format.extension());
        if !path.exists() {
            std::fs::write(&path, b"the video exported yesterday").unwrap();
        }
        let err = ffmpeg.write_video(&path, &clip(30), format).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, ExportError::Ffmpeg { .. }), "{err:?}");
        assert!(msg.starts_with(&path.display().to_string()) && msg.contains("ffmpeg failed"), "{msg}");
        assert_eq!(std::fs::read(&path).unwrap(), b"the video exported yesterday", "{msg}");
    }
    assert_eq!(names(dir.path()), ["take.gif", "take.mp4", "take.webm"], "no half-written file is left");

    // ffmpeg not installed: a message that says how to get it, and nothing written.
    let missing = Ffmpeg::at(bin.path().join("no-such-ffmpeg"));
    let err = missing.write_video(&dir.path().join("new.mp4"), &clip(3), VideoFormat::Mp4).unwrap_err();
    assert!(matches!(err, ExportError::FfmpegMissing { .. }), "{err:?}");
    assert!(err.to_string().contains("install"), "{err}");
    assert!(!dir.path().join("new.mp4").exists());
}

/// The child half of [`a_save_killed_midway_leaves_a_readable_project`]: saves two scenes in
/// turn until killed. Runs only when the parent starts it.
#[test]
#[ignore = "started by a_save_killed_midway_leaves_a_readable_project"]
fn save_in_a_loop_until_killed() {
    let Some(path) = std::env::var_os("TORA_FAULTS_SAVE_LOOP") else { return };
    let scenes = [scene_with(300), scene_with(301)];
    for i in 0.. {
        project::save(Path::new(&path), &scenes[i % 2]).unwrap();
    }
}

#[test]
fn a_save_killed_midway_leaves_a_readable_project() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("motion.json");
    let scenes = [scene_with(300), scene_with(301)];
    project::save(&path, &scenes[0]).unwrap();
    let exe = std::env::current_exe().unwrap();
    for round in 0..8u64 {
        let mut child = std::process::Command::new(&exe)
            .args(["faults::save_in_a_loop_until_killed", "--exact", "--ignored", "--test-threads", "1"])
            .env("TORA_FAULTS_SAVE_LOOP", &path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Let it save a while (a varying time, to land the kill at different points of a save).
        let start = std::fs::metadata(&path).unwrap().modified().unwrap();
        let t0 = std::time::Instant::now();
        while std::fs::metadata(&path).unwrap().modified().unwrap() == start && t0.elapsed().as_secs() < 20 {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        std::thread::sleep(std::time::Duration::from_millis(7 * round + 3));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let loaded = project::load(&path).unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert!(scenes.contains(&loaded), "round {round}: the file holds neither saved scene");
    }
}

/// Records phases and asks to stop as soon as `stop_in` starts.
struct CancelIn {
    stop_in: Phase,
    stop: AtomicBool,
    phases: Mutex<Vec<Phase>>,
}

impl Progress for CancelIn {
    fn event(&self, event: Event) {
        if let Event::Phase { phase, .. } = event {
            let mut p = self.phases.lock().unwrap();
            if p.last() != Some(&phase) {
                p.push(phase);
            }
            if phase == self.stop_in {
                self.stop.store(true, Ordering::SeqCst);
            }
        }
    }
    fn cancelled(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}

/// A SAT fixture tree (its diffusers twin beside it), any size.
fn sat_tree() -> Option<PathBuf> {
    let found = tora_studio::verify::walk_files(&fixtures_root())
        .into_iter()
        .find(|p| p.file_name().is_some_and(|n| n == "mp_rank_00_model_states.pt"))
        .and_then(|p| Some(p.parent()?.parent()?.parent()?.to_path_buf()));
    if found.is_none() {
        tora_studio::verify::say_loudly("WARNING: no SAT fixture tree: cancel-in-every-phase is SKIPPED");
    }
    found
}

#[test]
fn a_run_cancelled_in_any_phase_stops_there_and_the_next_run_finishes() {
    use tora_studio::pipeline::tora::{generate, ClipShape, Conditioning};
    let Some(model) = sat_tree() else { return };
    let shape = ClipShape { width: 64, height: 48, frames: 17, fps: 8.0 };
    let settings = Settings { prompt: "a kite".into(), steps: 2, ..Settings::default() };
    let conditioning = || Conditioning {
        video_flow: vec![0.0; 17 * 3 * 48 * 64],
        image: Some(vec![0.0; 3 * 48 * 64]),
        latents_init: None,
    };
    let device = cpu();
    for stop_in in [Phase::Text, Phase::Conditioning, Phase::Denoising, Phase::Decoding] {
        let progress = CancelIn { stop_in, stop: AtomicBool::new(false), phases: Mutex::new(Vec::new()) };
        let mut noise = tora_studio::sampling::SeededNoise::new(1);
        let result = generate(&model, &settings, shape, conditioning(), &device, &mut noise, &progress, None);
        assert!(matches!(result, Err(PipelineError::Cancelled)), "{stop_in:?}: {:?}", result.err());
        let phases = progress.phases.lock().unwrap().clone();
        assert_eq!(phases.last(), Some(&stop_in), "{stop_in:?}: ran on into {phases:?}");
    }
    struct Never;
    impl Progress for Never {
        fn event(&self, _: Event) {}
        fn cancelled(&self) -> bool {
            false
        }
    }
    let mut noise = tora_studio::sampling::SeededNoise::new(1);
    let done = generate(&model, &settings, shape, conditioning(), &device, &mut noise, &Never, None).unwrap();
    assert_eq!(done.frames.frames.len(), 17, "the run after the cancels finishes");
}

/// The studio driven through scripted edits (default 10,000; `TORA_SOAK_EDITS` to change) with
/// autosave on: a point dragged to a new place, twice, then undo and redo, in turn, through real
/// pointer and key events. Resident memory after a warm-up and at the end must not grow beyond
/// noise, and the undo history stays bounded. Long (minutes): run on demand with
/// `cargo test --test suite faults::soak -- --ignored --nocapture`.
#[test]
#[ignore = "long-running soak; run on demand"]
fn soak_ten_thousand_scripted_edits_with_autosave() {
    use eframe::egui::{Event, Key, Modifiers, PointerButton};
    use egui_kittest::Harness;
    use tora_studio::app::Tool;
    use tora_studio::pipeline::memory::current_rss_bytes;

    let edits: usize = std::env::var("TORA_SOAK_EDITS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let data = tempfile::tempdir().unwrap();
    let mut h = studio_without_overlay(scene_with(3), Some(data.path().to_path_buf()));
    h.state_mut().set_tool(Tool::Select);
    let screen = |h: &Harness<StudioApp>, p: [f64; 2]| h.state().canvas_to_screen(p).expect("the canvas is drawn");
    let drag_first_point_to = |h: &mut Harness<StudioApp>, to: [f64; 2]| {
        let k = h.state().scene().tracks[0].points[0];
        let (from, mid, to) =
            (screen(h, [k.x, k.y]), screen(h, [(k.x + to[0]) / 2.0, (k.y + to[1]) / 2.0]), screen(h, to));
        let press = |pos, pressed| Event::PointerButton {
            pos,
            button: PointerButton::Primary,
            pressed,
            modifiers: Modifiers::NONE,
        };
        h.event(Event::PointerMoved(from));
        h.event(press(from, true));
        h.step();
        h.event(Event::PointerMoved(mid));
        h.event(Event::PointerMoved(to));
        h.step();
        h.event(press(to, false));
        h.step();
        h.step();
    };
    let key = |h: &mut Harness<StudioApp>, m: Modifiers, k: Key| {
        h.key_press_modifiers(m, k);
        h.step();
        h.step();
    };
    let mut rss_start = None;
    let started = std::time::Instant::now();
    for i in 0..edits {
        if i == edits / 10 {
            rss_start = current_rss_bytes();
        }
        let at = [20.0 + (i * 7 % 200) as f64, 20.0 + (i * 13 % 200) as f64];
        match i % 4 {
            0 | 1 => drag_first_point_to(&mut h, at),
            2 => key(&mut h, Modifiers::COMMAND, Key::Z),
            _ => key(&mut h, Modifiers::COMMAND | Modifiers::SHIFT, Key::Z),
        }
    }
    let rss_end = current_rss_bytes();
    let seconds = started.elapsed().as_secs_f64();
    let moved = h.state().scene().tracks[0].points[0];
    assert!((moved.x, moved.y) != (10.0, 10.0), "the scripted drags never moved the point");

    // Undo as far as it goes: bounded by the history's size, not by the number of edits.
    let mut undos = 0;
    loop {
        let before = h.state().scene().clone();
        key(&mut h, Modifiers::COMMAND, Key::Z);
        if h.state().scene() == &before || undos > 1000 {
            break;
        }
        undos += 1;
    }
    let autosaved = project::load(&data.path().join("autosave.json")).expect("the autosave parses");
    println!(
        "soak: {edits} edits in {seconds:.0} s; RSS after warm-up {:?} MiB, at the end {:?} MiB; {undos} undo steps; \
         the autosave holds {} tracks",
        rss_start.map(|b| b >> 20),
        rss_end.map(|b| b >> 20),
        autosaved.tracks.len()
    );
    assert!(undos > 0 && undos <= 200, "{undos} undo steps: the history is unbounded or recorded nothing");
    if let (Some(a), Some(b)) = (rss_start, rss_end) {
        assert!(b < a + (64 << 20), "resident memory grew from {} to {} MiB", a >> 20, b >> 20);
    }
}
