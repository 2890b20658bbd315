//! Snapshot images of the studio rendered on the software Vulkan device (lavapipe), with the
//! live motion field drawn by the WGSL overlay shader. Update with `UPDATE_SNAPSHOTS=1`.

use std::time::Duration;

use eframe::egui;
use eframe::egui_wgpu;
use egui_kittest::wgpu::{create_render_state, default_wgpu_setup, WgpuTestRenderer};
use egui_kittest::Harness;
use tora_studio::app::{demo_scene, StudioApp};

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
    let mut h = Harness::builder()
        .with_size(egui::vec2(1280.0, 760.0))
        .with_accessibility_check(false)
        .renderer(WgpuTestRenderer::from_render_state(render_state))
        .build_ui_state(|ui, app: &mut StudioApp| app.show(ui), app);
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
