//! What the areas' tests share: where the fixtures are, the CPU device, a verify run that must
//! find checks and pass them all, and the studio under a headless egui harness.

use std::path::{Path, PathBuf};

use eframe::{egui, egui_wgpu};
use egui_kittest::wgpu::WgpuTestRenderer;
use egui_kittest::Harness;
use tora_studio::app::StudioApp;
use tora_studio::trajectory::Scene;

use tora_studio::model::{ComputeDevice, Precision};
use tora_studio::verify::{self, CheckResult, Kind};
use tora_studio::Backend;

/// `$TORA_FIXTURES`, else `../shared/fixtures` beside the crate.
pub fn fixtures_root() -> PathBuf {
    std::env::var_os("TORA_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures"))
}

pub fn cpu() -> ComputeDevice {
    ComputeDevice::new(Backend::Cpu, Precision::F32).expect("the CPU device always exists")
}

/// `tora-studio verify --only <kinds>` on every fixture on `backend`: prints each line, and fails
/// when no check ran or any failed.
pub fn verify_passes(kinds: &[Kind], backend: Backend) -> Vec<CheckResult> {
    let results = verify::run(&fixtures_root(), kinds, backend, |r| println!("{}", r.line()));
    let names: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
    assert!(!results.is_empty(), "no {} checks ran", names.join("/"));
    let failed: Vec<String> = results.iter().filter(|r| !r.passed).map(|r| r.line()).collect();
    assert!(failed.is_empty(), "{} parity failed on {backend:?}:\n{}", names.join("/"), failed.join("\n"));
    results
}

/// The studio in a headless window of `size`, drawn with wgpu on `render_state` when snapshots
/// are taken (the app's own GPU work must share it), else with kittest's default renderer.
pub fn studio_window(
    app: StudioApp,
    size: egui::Vec2,
    render_state: Option<egui_wgpu::RenderState>,
) -> Harness<'static, StudioApp> {
    let builder = Harness::builder().with_size(size).with_accessibility_check(false);
    let builder = match render_state {
        Some(render_state) => builder.renderer(WgpuTestRenderer::from_render_state(render_state)),
        None => builder,
    };
    builder.build_ui_state(|ui, app: &mut StudioApp| app.show(ui), app)
}

/// The studio in a 1280x800 headless window, laid out once so canvas positions are known.
pub fn harness(app: StudioApp) -> Harness<'static, StudioApp> {
    let mut h = studio_window(app, egui::vec2(1280.0, 800.0), None);
    h.run_steps(2);
    h
}

/// The studio on `scene` (its data folder `data`: autosave, takes) with the live flow overlay off:
/// interaction tests need no GPU work.
pub fn studio_without_overlay(scene: Scene, data: Option<PathBuf>) -> Harness<'static, StudioApp> {
    let mut app = StudioApp::new_for_test(scene, data, None);
    app.set_flow_overlay(false, 0.0);
    harness(app)
}
