//! The studio driven like a user would: simulated pointer and key events on the real app,
//! asserting the resulting scene data.

use eframe::egui::{Event, Key, Modifiers, PointerButton, Pos2};
use egui_kittest::kittest::Queryable as _;
use egui_kittest::Harness;
use tora_studio::app::{Level, StudioApp, Tool};
use tora_studio::trajectory::{project, Keyframe, PathShape, Scene, Track};

use super::common::{harness, studio_without_overlay};

/// An app on `scene` with the live flow overlay off (interaction tests need no GPU work).
fn studio(scene: Scene) -> Harness<'static, StudioApp> {
    studio_without_overlay(scene, None)
}

fn empty_scene() -> Scene {
    Scene::default()
}

fn screen(h: &Harness<StudioApp>, p: [f64; 2]) -> Pos2 {
    h.state().canvas_to_screen(p).expect("the canvas has been drawn")
}

fn button(h: &Harness<StudioApp>, pos: Pos2, button: PointerButton, pressed: bool, modifiers: Modifiers) {
    h.event(Event::PointerButton { pos, button, pressed, modifiers });
}

fn click_with(h: &mut Harness<StudioApp>, pos: Pos2, which: PointerButton, modifiers: Modifiers) {
    // Held modifiers are part of the input state, not only of the button events.
    h.event(Event::PointerMoved(pos));
    h.event_modifiers(Event::PointerButton { pos, button: which, pressed: true, modifiers }, modifiers);
    h.event_modifiers(Event::PointerButton { pos, button: which, pressed: false, modifiers }, modifiers);
    h.step();
    h.run_steps(1);
}

fn click(h: &mut Harness<StudioApp>, pos: Pos2) {
    click_with(h, pos, PointerButton::Primary, Modifiers::NONE);
}

/// Presses at `path[0]`, moves through the rest, releases at the end.
fn drag(h: &mut Harness<StudioApp>, path: &[Pos2]) {
    h.event(Event::PointerMoved(path[0]));
    button(h, path[0], PointerButton::Primary, true, Modifiers::NONE);
    for p in &path[1..] {
        h.event(Event::PointerMoved(*p));
    }
    button(h, path[path.len() - 1], PointerButton::Primary, false, Modifiers::NONE);
    h.step();
    h.run_steps(1);
}

fn key(h: &mut Harness<StudioApp>, modifiers: Modifiers, k: Key) {
    h.key_press_modifiers(modifiers, k);
    h.step();
    h.run_steps(1);
}

fn near(a: f64, b: f64) -> bool {
    (a - b).abs() < 1.0
}

fn xy(k: &Keyframe) -> (f64, f64) {
    (k.x, k.y)
}

#[test]
fn click_polyline_and_spline_tools_place_the_clicked_points() {
    let mut h = studio(empty_scene());
    h.state_mut().set_tool(Tool::Polyline);
    let targets = [[40.0, 60.0], [120.0, 100.0], [200.0, 80.0]];
    for t in targets {
        let p = screen(&h, t);
        click(&mut h, p);
    }
    key(&mut h, Modifiers::NONE, Key::Enter); // finish the track
    h.state_mut().set_tool(Tool::Spline);
    for t in [[30.0, 200.0], [128.0, 150.0], [230.0, 210.0]] {
        let p = screen(&h, t);
        click(&mut h, p);
    }
    let scene = h.state().scene();
    assert_eq!(scene.tracks.len(), 2, "one track per drawing");
    let poly = &scene.tracks[0];
    assert_eq!(poly.points.len(), 3);
    for (k, t) in poly.points.iter().zip(targets) {
        assert!(near(k.x, t[0]) && near(k.y, t[1]), "clicked {t:?}, got {:?}", xy(k));
    }
    assert_eq!(poly.shape, PathShape::Polyline);
    assert_eq!(scene.tracks[1].shape, PathShape::Spline);
    assert_eq!(scene.tracks[1].points.len(), 3);
    assert_ne!(scene.tracks[0].colour, scene.tracks[1].colour, "each track gets its own colour");
    assert!(scene.sample_points().is_ok(), "the drawn scene samples");
}

#[test]
fn freehand_stroke_speed_becomes_timing() {
    let mut h = studio(empty_scene());
    h.state_mut().set_tool(Tool::Freehand);
    // Slowly (2 s) along the first 40 canvas units, then fast (0.2 s) along the next 120.
    let mut samples = Vec::new();
    for i in 0..=8 {
        samples.push(([40.0 + 5.0 * i as f64, 128.0], 0.25 * i as f64));
    }
    for i in 1..=8 {
        samples.push(([80.0 + 15.0 * i as f64, 128.0], 2.0 + 0.025 * i as f64));
    }
    let first = screen(&h, samples[0].0);
    h.input_mut().time = Some(10.0);
    h.event(Event::PointerMoved(first));
    h.step();
    button(&h, first, PointerButton::Primary, true, Modifiers::NONE);
    h.step();
    for (p, t) in &samples[1..] {
        h.input_mut().time = Some(10.0 + t);
        let pos = screen(&h, *p);
        h.event(Event::PointerMoved(pos));
        h.step();
    }
    let last = screen(&h, samples[samples.len() - 1].0);
    button(&h, last, PointerButton::Primary, false, Modifiers::NONE);
    h.step();
    h.run_steps(1);

    let scene = h.state().scene();
    assert_eq!(scene.tracks.len(), 1, "the stroke became a track");
    let track = &scene.tracks[0];
    let frames: Vec<f64> = track.points.iter().map(|k| k.frame.expect("freehand points are timed")).collect();
    assert_eq!(frames.first().copied(), Some(0.0));
    assert_eq!(frames.last().copied(), Some(48.0));
    // The point where the pointer sped up (x = 80) is reached after ~2/2.2 of the clip.
    let slow_end = track.points.iter().position(|k| near(k.x, 80.0)).expect("a keyframe at the speed change");
    assert!((frames[slow_end] - 48.0 * 2.0 / 2.2).abs() < 3.0, "reached at frame {}", frames[slow_end]);
    let positions = track.canvas_positions(scene.frames).unwrap();
    assert!(positions[20][0] < 80.0, "half-way through the clip the object is still on the slow part");
    assert!(near(positions[48][0], 200.0));
}

fn three_point_scene() -> Scene {
    let track = Track::new(
        "t",
        [230, 57, 70],
        vec![Keyframe::at(40.0, 40.0), Keyframe::at(128.0, 128.0), Keyframe::at(220.0, 40.0)],
    );
    Scene { tracks: vec![track], ..Scene::default() }
}

#[test]
fn drag_insert_and_delete_points() {
    let mut h = studio(three_point_scene());
    h.state_mut().set_tool(Tool::Select);
    // Drag the middle point to (128, 200).
    let from = screen(&h, [128.0, 128.0]);
    let mid = screen(&h, [128.0, 160.0]);
    let to = screen(&h, [128.0, 200.0]);
    drag(&mut h, &[from, mid, to]);
    let k = h.state().scene().tracks[0].points[1];
    assert!(near(k.x, 128.0) && near(k.y, 200.0), "dragged to {:?}", xy(&k));

    // Shift-click on the first segment inserts a point there.
    let on_segment = screen(&h, [84.0, 120.0]);
    click_with(&mut h, on_segment, PointerButton::Primary, Modifiers::SHIFT);
    let pts = &h.state().scene().tracks[0].points;
    assert_eq!(pts.len(), 4);
    assert!(near(pts[1].x, 84.0) && near(pts[1].y, 120.0), "inserted {:?}", xy(&pts[1]));

    // Right-click removes the point under the pointer.
    let last = screen(&h, [220.0, 40.0]);
    click_with(&mut h, last, PointerButton::Secondary, Modifiers::NONE);
    let pts: Vec<(f64, f64)> = h.state().scene().tracks[0].points.iter().map(xy).collect();
    assert_eq!(pts.len(), 3);
    assert!(!pts.iter().any(|p| near(p.0, 220.0)), "{pts:?}");

    // Click selects a point, Delete removes it.
    let first = screen(&h, [40.0, 40.0]);
    click(&mut h, first);
    assert_eq!(h.state().selection().point, Some(0));
    key(&mut h, Modifiers::NONE, Key::Delete);
    let pts: Vec<(f64, f64)> = h.state().scene().tracks[0].points.iter().map(xy).collect();
    assert_eq!(pts.len(), 2);
    assert!(near(pts[0].0, 84.0), "{pts:?}");
}

#[test]
fn locked_tracks_cannot_be_edited_on_the_canvas() {
    let mut scene = three_point_scene();
    scene.tracks[0].locked = true;
    let mut h = studio(scene.clone());
    let from = screen(&h, [128.0, 128.0]);
    let to = screen(&h, [128.0, 200.0]);
    drag(&mut h, &[from, to]);
    let p = screen(&h, [40.0, 40.0]);
    click_with(&mut h, p, PointerButton::Secondary, Modifiers::NONE);
    assert_eq!(h.state().scene(), &scene);
}

#[test]
fn move_track_tool_moves_every_point() {
    let mut h = studio(three_point_scene());
    h.state_mut().set_tool(Tool::MoveTrack);
    let from = screen(&h, [84.0, 84.0]); // on the first segment
    let to = screen(&h, [94.0, 104.0]);
    drag(&mut h, &[from, to]);
    let pts: Vec<(f64, f64)> = h.state().scene().tracks[0].points.iter().map(xy).collect();
    for (p, q) in pts.iter().zip([(50.0, 60.0), (138.0, 148.0), (230.0, 60.0)]) {
        assert!(near(p.0, q.0) && near(p.1, q.1), "{pts:?}");
    }
}

#[test]
fn anchor_tool_places_a_static_point() {
    let mut h = studio(empty_scene());
    h.state_mut().set_tool(Tool::Anchor);
    {
        let p = screen(&h, [100.0, 100.0]);
        click(&mut h, p);
    }
    let scene = h.state().scene();
    assert_eq!(scene.tracks.len(), 1);
    let positions = scene.tracks[0].canvas_positions(scene.frames).unwrap();
    assert!(positions.iter().all(|p| near(p[0], 100.0) && near(p[1], 100.0)), "an anchor stays put");
}

#[test]
fn keyframes_are_retimed_by_dragging_on_the_timeline() {
    let mut h = studio(three_point_scene());
    let before = h.state().scene().tracks[0].keyframe_times(49)[1];
    let from = h.state().timeline_keyframe_pos(0, 1).expect("the timeline lane is drawn");
    let to = h.state().timeline_frame_pos(0, 36.0).unwrap();
    assert!((before - 24.0).abs() < 1.0, "constant speed puts the middle point mid-clip");
    drag(&mut h, &[from, Pos2::new((from.x + to.x) / 2.0, from.y), to]);
    let track = &h.state().scene().tracks[0];
    assert_eq!(track.points[1].frame, Some(36.0));
    assert_eq!(track.keyframe_times(49), vec![0.0, 36.0, 48.0]);
    assert_eq!(h.state().current_frame(), 36, "the playhead follows the dragged keyframe");
}

#[test]
fn undo_and_redo_every_edit_with_the_keyboard() {
    let mut h = studio(empty_scene());
    h.state_mut().set_tool(Tool::Polyline);
    for t in [[40.0, 60.0], [120.0, 100.0]] {
        let p = screen(&h, t);
        click(&mut h, p);
    }
    let drawn = h.state().scene().clone();
    assert_eq!(drawn.tracks[0].points.len(), 2);
    key(&mut h, Modifiers::COMMAND, Key::Z);
    assert_eq!(h.state().scene().tracks[0].points.len(), 1, "undo removes the last point");
    key(&mut h, Modifiers::COMMAND, Key::Z);
    assert!(h.state().scene().tracks.is_empty(), "undo removes the new track");
    key(&mut h, Modifiers::COMMAND | Modifiers::SHIFT, Key::Z);
    key(&mut h, Modifiers::COMMAND | Modifiers::SHIFT, Key::Z);
    assert_eq!(h.state().scene(), &drawn, "redo brings both edits back");
    // A drag is one undo step.
    h.state_mut().set_tool(Tool::Select);
    let from = screen(&h, [120.0, 100.0]);
    let (a, b) = (screen(&h, [150.0, 120.0]), screen(&h, [180.0, 140.0]));
    drag(&mut h, &[from, a, b]);
    assert!(near(h.state().scene().tracks[0].points[1].x, 180.0));
    key(&mut h, Modifiers::COMMAND, Key::Z);
    assert_eq!(h.state().scene(), &drawn);
}

#[test]
fn save_with_ctrl_s_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("motion.json");
    let mut h = studio(three_point_scene());
    assert!(h.state_mut().save_project_to(&path));
    // Edit, then Ctrl+S saves to the same file.
    h.state_mut().set_tool(Tool::Polyline);
    {
        let p = screen(&h, [60.0, 200.0]);
        click(&mut h, p);
    }
    key(&mut h, Modifiers::COMMAND, Key::S);
    let edited = h.state().scene().clone();
    assert_eq!(edited.tracks.len(), 2);
    assert_eq!(project::load(&path).unwrap(), edited, "Ctrl+S wrote the edited scene");

    let mut reopened = studio(empty_scene());
    assert!(reopened.state_mut().open_project(&path));
    reopened.run_steps(2);
    assert_eq!(reopened.state().scene(), &edited);
    assert_eq!(reopened.state().project_path(), Some(path.as_path()));
    assert_eq!(reopened.state().ui_state().recent_files.first(), Some(&path));
}

#[test]
fn bad_files_show_a_message_and_keep_the_current_work() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = studio(three_point_scene());
    let work = h.state().scene().clone();

    let text = dir.path().join("notes.png");
    std::fs::write(&text, "this is not an image").unwrap();
    assert!(!h.state_mut().open_image(&text));
    let huge = dir.path().join("huge.png");
    image::RgbaImage::new(9000, 4).save(&huge).unwrap();
    assert!(!h.state_mut().open_image(&huge));
    let corrupt = dir.path().join("broken.json");
    std::fs::write(&corrupt, "{ \"format\": \"tora-studio-project\", \"version\": 1, \"scene\": ").unwrap();
    assert!(!h.state_mut().open_project(&corrupt));
    let foreign = dir.path().join("other.json");
    std::fs::write(&foreign, "{\"hello\": 1}").unwrap();
    h.state_mut().open_any(&foreign);
    h.run_steps(2);

    assert_eq!(h.state().scene(), &work, "the work is untouched");
    let errors: Vec<&str> =
        h.state().notices().iter().filter(|n| n.level == Level::Error).map(|n| n.text.as_str()).collect();
    assert_eq!(errors.len(), 4, "{errors:?}");
    assert!(errors[0].contains("not an image"), "{}", errors[0]);
    assert!(errors[1].contains("9000x4"), "{}", errors[1]);
    assert!(errors[2].contains("broken.json") && errors[2].contains("unchanged"), "{}", errors[2]);
    assert!(errors[3].contains("not a Tora Studio project"), "{}", errors[3]);
    // The banner shows the latest error.
    assert!(h.query_all_by_label_contains("not a Tora Studio project").next().is_some());
}

#[test]
fn the_motion_field_is_computed_on_the_cpu_without_a_gpu_device() {
    let mut app = StudioApp::new_for_test(tora_studio::app::demo_scene(), None, None);
    app.set_flow_overlay(true, 0.5);
    assert!(app.wait_for_flow(std::time::Duration::from_secs(300)), "flow computed");
    assert_eq!(app.flow_status(), "flow: CPU");
    let mut h = harness(app);
    h.run_steps(2);
    // An edit recomputes it.
    h.state_mut().set_tool(Tool::Anchor);
    {
        let p = screen(&h, [30.0, 30.0]);
        click(&mut h, p);
    }
    assert!(h.state_mut().wait_for_flow(std::time::Duration::from_secs(300)));
    assert_eq!(h.state().scene().tracks.len(), 4);
}
