//! Regions and the camera layer in the studio, driven like a user would: the lasso on the
//! canvas, the panel buttons; bad input leaves a notice and the scene unchanged.

use eframe::egui::{Event, Key, Modifiers, PointerButton, Pos2};
use egui_kittest::kittest::Queryable as _;
use egui_kittest::Harness;
use tora_studio::app::{Level, StudioApp, Tool};
use tora_studio::trajectory::{point_file, CameraLayer, Region, Scene};

use super::common::studio_without_overlay;

fn studio(scene: Scene) -> Harness<'static, StudioApp> {
    studio_without_overlay(scene, None)
}

fn screen(h: &Harness<StudioApp>, p: [f64; 2]) -> Pos2 {
    h.state().canvas_to_screen(p).expect("the canvas has been drawn")
}

/// Presses at the first canvas point, moves through the rest one frame at a time, releases.
fn lasso(h: &mut Harness<StudioApp>, canvas_points: &[[f64; 2]]) {
    let pts: Vec<Pos2> = canvas_points.iter().map(|p| screen(h, *p)).collect();
    h.event(Event::PointerMoved(pts[0]));
    h.step();
    h.event(Event::PointerButton {
        pos: pts[0],
        button: PointerButton::Primary,
        pressed: true,
        modifiers: Modifiers::NONE,
    });
    h.step();
    for p in &pts[1..] {
        h.event(Event::PointerMoved(*p));
        h.step();
    }
    let last = pts[pts.len() - 1];
    h.event(Event::PointerButton {
        pos: last,
        button: PointerButton::Primary,
        pressed: false,
        modifiers: Modifiers::NONE,
    });
    h.step();
    h.run_steps(1);
}

fn click(h: &mut Harness<StudioApp>, p: [f64; 2]) {
    let pos = screen(h, p);
    h.event(Event::PointerMoved(pos));
    h.event(Event::PointerButton { pos, button: PointerButton::Primary, pressed: true, modifiers: Modifiers::NONE });
    h.event(Event::PointerButton { pos, button: PointerButton::Primary, pressed: false, modifiers: Modifiers::NONE });
    h.step();
    h.run_steps(1);
}

/// A closed square outline, walked in small steps as a hand would.
fn square(x0: f64, y0: f64, side: f64) -> Vec<[f64; 2]> {
    let corners = [[x0, y0], [x0 + side, y0], [x0 + side, y0 + side], [x0, y0 + side], [x0, y0 + 2.0]];
    let mut pts = vec![corners[0]];
    for w in corners.windows(2) {
        for i in 1..=6 {
            let t = i as f64 / 6.0;
            pts.push([w[0][0] + t * (w[1][0] - w[0][0]), w[0][1] + t * (w[1][1] - w[0][1])]);
        }
    }
    pts
}

fn errors(h: &Harness<StudioApp>) -> Vec<String> {
    h.state().notices().iter().filter(|n| n.level == Level::Error).map(|n| n.text.clone()).collect()
}

#[test]
fn lasso_makes_a_region_clicks_give_it_a_path_and_its_tracks_move_together() {
    let mut h = studio(Scene::default());
    h.state_mut().set_tool(Tool::Lasso);
    lasso(&mut h, &square(60.0, 60.0, 50.0));
    assert_eq!(h.state().scene().regions.len(), 1, "notices: {:?}", h.state().notices());
    let region = h.state().scene().regions[0].clone();
    let (lo, hi) = region.outline.iter().fold(([f64::MAX; 2], [f64::MIN; 2]), |(lo, hi), p| {
        ([lo[0].min(p[0]), lo[1].min(p[1])], [hi[0].max(p[0]), hi[1].max(p[1])])
    });
    for (got, want) in [(lo[0], 60.0), (lo[1], 60.0), (hi[0], 110.0), (hi[1], 110.0)] {
        assert!((got - want).abs() < 1.5, "outline bounds {lo:?}..{hi:?}");
    }
    assert_eq!(region.path.points.len(), 1, "the path starts at the region's centre");

    // The clicks that follow give the region its path, as with a polyline track.
    click(&mut h, [200.0, 120.0]);
    h.key_press(Key::Enter);
    h.run_steps(2);
    let scene = h.state().scene().clone();
    assert_eq!(scene.regions[0].path.points.len(), 2);
    assert!(scene.tracks.is_empty(), "a region is one object, not tracks in the panel");
    let tracks = scene.motion_tracks().unwrap();
    assert_eq!(tracks.len(), region.samples as usize);

    // Point-file export writes the region's N tracks, all moving with the region.
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(h.state_mut().export_point_files(dir.path()), region.samples as usize);
    let mut moves = Vec::new();
    for t in &tracks {
        let safe: String =
            t.name.chars().map(|c| if c.is_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
        let path = dir.path().join(format!("{safe}.txt"));
        let pts = point_file::parse_points(&path, &std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(pts.len(), scene.frames as usize);
        moves.push(pts.iter().map(|p| [p[0] - pts[0][0], p[1] - pts[0][1]]).collect::<Vec<_>>());
    }
    let centre = scene.regions[0].path.points[0];
    let want_end = [200.0 - centre.x, 120.0 - centre.y];
    for m in &moves {
        for (f, d) in m.iter().enumerate() {
            assert!((d[0] - moves[0][f][0]).abs() <= 1 && (d[1] - moves[0][f][1]).abs() <= 1, "frame {f}: {d:?}");
        }
        let end = m[m.len() - 1];
        assert!((end[0] as f64 - want_end[0]).abs() <= 1.0 && (end[1] as f64 - want_end[1]).abs() <= 1.0, "{end:?}");
    }

    // N is adjustable: more points, more tracks; 0 points is refused with a notice.
    let mut more = scene.regions[0].clone();
    more.samples = 30;
    assert!(h.state_mut().set_region(0, more.clone()));
    h.run_steps(2);
    assert_eq!(h.state().scene().motion_tracks().unwrap().len(), 30);
    assert!(!h.state_mut().set_region(0, Region { samples: 0, ..more }));
    assert_eq!(h.state().scene().regions[0].samples, 30);
    assert!(errors(&h).iter().any(|e| e.contains("Region not changed") && e.contains("0 sample points")));

    // Undo walks back through the edits to the scene without the region.
    for _ in 0..3 {
        h.key_press_modifiers(Modifiers::COMMAND, Key::Z);
        h.run_steps(2);
    }
    assert!(h.state().scene().regions.is_empty(), "{:?}", h.state().scene().regions);
}

#[test]
fn the_move_tool_drags_a_whole_region() {
    let mut scene = Scene::default();
    scene.regions.push(Region::new("box", [1, 2, 3], vec![[60.0, 60.0], [110.0, 60.0], [110.0, 110.0], [60.0, 110.0]]));
    let mut h = studio(scene);
    h.state_mut().set_tool(Tool::MoveTrack);
    let before = h.state().scene().regions[0].clone();
    let path: Vec<[f64; 2]> = (0..=10).map(|i| [80.0 + 3.0 * i as f64, 80.0 + i as f64]).collect();
    lasso(&mut h, &path); // a slow drag from inside the region
    let after = &h.state().scene().regions[0];
    for (a, b) in after.outline.iter().zip(&before.outline) {
        assert!((a[0] - b[0] - 30.0).abs() < 1.0 && (a[1] - b[1] - 10.0).abs() < 1.0, "{a:?} from {b:?}");
    }
    let (k, k0) = (after.path.points[0], before.path.points[0]);
    assert!((k.x - k0.x - 30.0).abs() < 1.0 && (k.y - k0.y - 10.0).abs() < 1.0);
    assert_eq!(after.samples, before.samples);
}

#[test]
fn the_motion_field_overlay_shows_a_region_alone() {
    let mut scene = Scene::default();
    let mut region = Region::new("box", [1, 2, 3], vec![[60.0, 60.0], [110.0, 60.0], [110.0, 110.0], [60.0, 110.0]]);
    region.path.points.push(tora_studio::trajectory::Keyframe::at(180.0, 85.0));
    scene.regions.push(region);
    let mut app = StudioApp::new_for_test(scene, None, None);
    app.set_flow_overlay(true, 0.5);
    assert!(app.wait_for_flow(std::time::Duration::from_secs(60)));
    assert_eq!(app.flow_status(), "flow: CPU", "the region's tracks make the field");
}

#[test]
fn an_empty_or_off_image_lasso_gives_a_notice_and_changes_nothing() {
    let mut h = studio(Scene::default());
    h.state_mut().set_tool(Tool::Lasso);
    let before = h.state().scene().clone();
    // A stroke along a line encloses nothing.
    lasso(&mut h, &[[40.0, 40.0], [60.0, 40.0], [80.0, 40.0], [100.0, 40.0]]);
    assert_eq!(h.state().scene(), &before);
    let errs = errors(&h);
    assert!(errs.iter().any(|e| e.contains("No region added") && e.contains("no area")), "{errs:?}");
    // A lasso entirely left of the image.
    lasso(&mut h, &[[-3.5, 20.0], [-0.5, 20.0], [-0.5, 60.0], [-3.5, 60.0], [-3.5, 22.0]]);
    assert_eq!(h.state().scene(), &before);
    let errs = errors(&h);
    assert!(errs.iter().any(|e| e.contains("outside the image")), "{errs:?}");
    // A single press (no drag) draws nothing and adds nothing.
    click(&mut h, [50.0, 50.0]);
    assert_eq!(h.state().scene(), &before);
}

#[test]
fn a_camera_layer_is_added_from_the_panel_and_a_zero_zoom_is_refused() {
    let mut h = studio(Scene::default());
    h.get_by_label("+ Camera").click();
    h.run_steps(2);
    let camera = h.state().scene().camera.clone().expect("the button adds a camera layer");
    assert_eq!(camera, CameraLayer::default());
    let tracks = h.state().scene().motion_tracks().unwrap();
    assert!(tracks.len() >= 4, "the camera becomes a grid of tracks: {}", tracks.len());
    // Its settings are in the inspector.
    h.get_by_label("Camera");

    let before = h.state().scene().clone();
    assert!(!h.state_mut().set_camera(Some(CameraLayer { zoom: 0.0, ..camera.clone() })));
    h.run_steps(1);
    assert_eq!(h.state().scene(), &before, "a zero zoom changes nothing");
    let errs = errors(&h);
    assert!(errs.iter().any(|e| e.contains("zoom 0") && e.contains("positive")), "{errs:?}");
    // A pan that leaves no grid point in the frame is refused too.
    assert!(!h.state_mut().set_camera(Some(CameraLayer { pan_distance: 256.0, zoom: 1.0, ..camera })));
    assert_eq!(h.state().scene(), &before);
}

#[test]
fn snapshot_of_a_region_and_a_camera_layer() {
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/examples/beach_boat_region.json");
    // The example's picture is the demo image the studio opens with; loaded without a project
    // path so the snapshot does not depend on where the checkout lives.
    let scene = tora_studio::trajectory::project::load(&example).unwrap();
    let mut h = super::ui_snapshots::studio_on_device_with(scene, |app| {
        app.set_camera(Some(CameraLayer { pan_distance: 12.0, zoom: 1.15, ..CameraLayer::default() }));
        app.set_flow_overlay(true, 0.5);
        app.set_frame(36);
    });
    assert_eq!(h.state().scene().regions.len(), 1);
    h.snapshot("studio_region_and_camera");
}
