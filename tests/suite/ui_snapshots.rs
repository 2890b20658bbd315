//! Snapshot images of the studio rendered on the software Vulkan device (lavapipe), with the
//! live motion field drawn by the WGSL overlay shader. Update with `UPDATE_SNAPSHOTS=1`.

use std::time::Duration;

use eframe::egui;
use eframe::egui_wgpu;
use egui_kittest::wgpu::{create_render_state, default_wgpu_setup};
use egui_kittest::Harness;
use tora_studio::app::{demo_scene, StudioApp};

use super::common::studio_window;

fn studio_on_device(configure: impl FnOnce(&mut StudioApp)) -> Harness<'static, StudioApp> {
    studio_on_device_with(demo_scene(), configure)
}

/// The studio on `scene` (over the demo image) on the software device.
pub(crate) fn studio_on_device_with(
    scene: tora_studio::trajectory::Scene,
    configure: impl FnOnce(&mut StudioApp),
) -> Harness<'static, StudioApp> {
    let render_state = create_render_state(default_wgpu_setup(), egui_wgpu::RendererOptions::PREDICTABLE);
    let mut app = StudioApp::new_for_test(scene, None, Some(render_state.clone()));
    configure(&mut app);
    assert!(app.wait_for_flow(Duration::from_secs(300)), "the motion field was computed");
    let mut h = studio_window(app, egui::vec2(1280.0, 760.0), Some(render_state));
    h.run_steps(3);
    h
}

#[test]
fn studio_with_the_live_motion_field() {
    let mut h = studio_on_device(|app| {
        app.set_flow_overlay(true, 0.6);
        app.set_frame(30);
    });
    h.snapshot("studio_motion_field");
}

#[test]
fn studio_with_the_motion_preview() {
    let mut h = studio_on_device(|app| {
        app.set_flow_overlay(false, 0.0);
        app.set_motion_preview(true);
        app.set_frame(40);
    });
    h.snapshot("studio_motion_preview");
}

/// Writes the README's screenshot, `docs/studio.png`: the studio on `assets/examples/meadow_pan.json`
/// (a track, a region and a camera pan) with the live motion field, and the Generate tab's render
/// queue holding finished, running and waiting variants (a scripted runner, so the picture does
/// not depend on a model's speed). Run by hand when the studio's look changes:
/// `cargo test --test suite ui_snapshots::readme_screenshot -- --ignored`.
#[test]
#[ignore = "writes docs/studio.png for the README; run by hand"]
fn readme_screenshot() {
    use std::path::Path;
    use tora_studio::app::SideTab;
    use tora_studio::pipeline::queue::ItemStatus;

    use super::ui_generate::pump_until;
    use super::ui_layout::scripted_runner;

    let (model, _) = super::ui_generate::fixture(false).expect("a T2V fixture model for the Generate tab");
    let data = tempfile::tempdir().unwrap();
    let render_state = create_render_state(default_wgpu_setup(), egui_wgpu::RendererOptions::PREDICTABLE);
    let mut app = StudioApp::new_for_test(demo_scene(), Some(data.path().to_path_buf()), Some(render_state.clone()));
    // Relative, so the notice and title name the example as the README does.
    assert!(app.open_project(Path::new("assets/examples/meadow_pan.json")), "{:?}", app.notices());
    assert_eq!(app.scene().regions.len(), 1);
    assert!(app.scene().camera.is_some());
    app.set_flow_overlay(true, 0.5);
    app.set_frame(30);
    // Runs of two steps finish; a run of fifty holds at step 3, so the queue stays busy.
    app.set_generation_runner(scripted_runner(3, Duration::ZERO));
    app.generate_form_mut().model_dir = model.display().to_string();
    app.generate_form_mut().settings.prompt = "a bird crosses a windy meadow, clouds drifting, camera pans".into();
    app.set_side_tab(SideTab::Generate);
    assert!(app.wait_for_flow(Duration::from_secs(300)), "the motion field was computed");
    let mut h = studio_window(app, egui::vec2(1500.0, 920.0), Some(render_state));
    pump_until(&mut h, "the model scan", Duration::from_secs(60), |a| a.model_report().is_some_and(|r| r.usable()));

    // A first batch that finishes: two done items.
    h.state_mut().generate_form_mut().settings.steps = 2;
    h.state_mut().generate_form_mut().variants.seeds = "1, 2".into();
    assert_eq!(h.state_mut().queue_variants(), Ok(2));
    pump_until(&mut h, "the first batch", Duration::from_secs(60), |a| {
        a.render_queue().pending() == 0 && !a.generation_running()
    });
    // A strength sweep that stays in flight: one running, the rest waiting.
    h.state_mut().generate_form_mut().settings.steps = 50;
    h.state_mut().generate_form_mut().variants.seeds = "3".into();
    h.state_mut().generate_form_mut().variants.strengths = "0.5, 1, 1.5".into();
    assert_eq!(h.state_mut().queue_variants(), Ok(3));
    pump_until(&mut h, "three steps", Duration::from_secs(60), |a| a.generation_stats().steps == 3);
    let statuses: Vec<ItemStatus> = h.state().render_queue().items().iter().map(|i| i.status.clone()).collect();
    assert!(
        matches!(
            statuses[..],
            [ItemStatus::Done(_), ItemStatus::Done(_), ItemStatus::Running, ItemStatus::Pending, ItemStatus::Pending]
        ),
        "{statuses:?}"
    );
    h.run_steps(3);
    h.remove_cursor();
    h.run_steps(2);

    let image = h.render().expect("the software device renders the studio");
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/studio.png");
    image.save(&out).unwrap_or_else(|e| panic!("cannot write {}: {e}", out.display()));
    h.state_mut().cancel_queue();
    pump_until(&mut h, "the cancel", Duration::from_secs(60), |a| !a.generation_running());
}
