//! The studio's layout holds still (issue 16): on every tab of the right-hand panel, over a few
//! hundred frames of pointer moves (and, on Generate, a run reporting steps and previews), no panel
//! changes width by itself and the canvas keeps at least half of the window. Snapshots of each tab.

use std::sync::Arc;
use std::time::{Duration, Instant};

use eframe::egui::{self, Event, Pos2};
use eframe::egui_wgpu;
use egui_kittest::kittest::Queryable as _;
use egui_kittest::wgpu::{create_render_state, default_wgpu_setup};
use egui_kittest::Harness;
use tora_studio::app::{demo_scene, PanelRects, Runner, SideTab, StudioApp};
use tora_studio::export::RgbFrames;
use tora_studio::pipeline::latent_preview::PreviewClip;
use tora_studio::pipeline::{Event as RunEvent, Generated, Phase, PhaseReport};

use super::common::studio_window;
use super::ui_generate::{fixture, pump_until};

const WINDOW: egui::Vec2 = egui::vec2(1280.0, 800.0);

/// A scripted run: the phases, then `steps_shown` denoising steps of `settings.steps` with a
/// latent preview each, `pause` apart; then it waits for Cancel, or finishes when all steps ran.
/// Deterministic and instant, unlike a model, so layout and snapshots see the same progress.
pub(super) fn scripted_runner(steps_shown: usize, pause: Duration) -> Runner {
    Arc::new(move |request, reporter| {
        let started = Instant::now();
        for phase in [Phase::Text, Phase::Conditioning] {
            reporter.send(RunEvent::Phase { phase, detail: String::new() });
            reporter.send(RunEvent::PhaseDone(PhaseReport { phase, seconds: 0.1, peak_bytes: Some(1 << 30) }));
        }
        reporter.send(RunEvent::Phase { phase: Phase::Denoising, detail: String::new() });
        let total = request.settings.steps;
        let (w, h) = (request.scene.width as usize / 8, request.scene.height as usize / 8);
        for index in 0..total {
            if index >= steps_shown {
                // Holds the progress where it is until Cancel.
                loop {
                    reporter.check_cancelled()?;
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            reporter.check_cancelled()?;
            // The same picture in every latent frame, so a snapshot does not depend on which one plays.
            let picture: Vec<u8> =
                (0..w * h).flat_map(|p| [(p % w * 255 / w.max(1)) as u8, 90, (16 * index) as u8]).collect();
            let frames = vec![picture; 4];
            let preview = PreviewClip { width: w, height: h, frames };
            reporter.send(RunEvent::Step { index, total, timestep: 999 - index as i64, preview: Some(preview) });
            std::thread::sleep(pause);
        }
        let (w, h) = (request.scene.width, request.scene.height);
        let frames = (0..request.scene.frames).map(|f| vec![(f * 9) as u8; (w * h * 3) as usize]).collect();
        Ok(Generated {
            frames: RgbFrames { width: w, height: h, fps: request.scene.fps, frames },
            phases: Vec::new(),
            elapsed: started.elapsed(),
        })
    })
}

/// Pointer positions that sweep the whole window, panels and canvas alike, frame after frame.
fn pointer_at(frame: usize) -> Pos2 {
    let t = frame as f32;
    egui::pos2(
        (WINDOW.x - 2.0) * (0.5 + 0.5 * (t * 0.071).sin()) + 1.0,
        (WINDOW.y - 2.0) * (0.5 + 0.5 * (t * 0.113).cos()) + 1.0,
    )
}

fn widths(r: &PanelRects) -> [f32; 3] {
    [r.tracks.width(), r.inspector.width(), r.canvas.width()]
}

/// `frames` frames of pointer moves; every frame every panel keeps the width it started with.
fn assert_layout_holds(h: &mut Harness<StudioApp>, tab: SideTab, frames: usize) {
    h.run_steps(3);
    let start = h.state().panel_rects();
    for frame in 0..frames {
        h.event(Event::PointerMoved(pointer_at(frame)));
        h.step();
        let now = h.state().panel_rects();
        assert_eq!(
            widths(&now),
            widths(&start),
            "{tab:?} tab, frame {frame}: panel widths [tracks, inspector, canvas] changed by themselves"
        );
        assert_eq!(now.timeline.height(), start.timeline.height(), "{tab:?} tab, frame {frame}: timeline height");
        assert!(
            now.canvas.width() >= WINDOW.x / 2.0,
            "{tab:?} tab, frame {frame}: the canvas has {} of {} points",
            now.canvas.width(),
            WINDOW.x
        );
    }
}

#[test]
fn panels_keep_their_width_on_every_tab_while_a_run_reports_progress() {
    let Some((model, _)) = fixture(false) else { return };
    let data = tempfile::tempdir().unwrap();
    let mut app = StudioApp::new_for_test(demo_scene(), Some(data.path().to_path_buf()), None);
    app.set_flow_overlay(false, 0.0);
    app.set_generation_runner(scripted_runner(usize::MAX, Duration::from_millis(2)));
    app.generate_form_mut().model_dir = model.display().to_string();
    app.generate_form_mut().settings.prompt =
        "a long prompt that wraps: a red kite climbs over a windy beach at sunset, waves rolling in".into();
    let mut h = studio_window(app, WINDOW, None);
    pump_until(&mut h, "the model scan", Duration::from_secs(60), |a| a.model_report().is_some_and(|r| r.usable()));

    // A short finished run first, so Takes has a take and Generate shows the last clip.
    h.state_mut().generate_form_mut().settings.steps = 3;
    assert!(h.state_mut().start_generation(&egui::Context::default()));
    pump_until(&mut h, "the first run", Duration::from_secs(60), |a| !a.generation_running());
    assert_eq!(h.state().takes().len(), 1, "notices: {:?}", h.state().notices());

    for tab in SideTab::ALL {
        h.state_mut().set_side_tab(tab);
        if tab == SideTab::Generate {
            // A run that reports steps with previews all through the frames below.
            h.state_mut().generate_form_mut().settings.steps = 1_000_000;
            assert!(h.state_mut().start_generation(&egui::Context::default()));
            pump_until(&mut h, "the first steps", Duration::from_secs(60), |a| a.preview_textures() > 0);
            let steps = h.state().generation_stats().steps;
            assert_layout_holds(&mut h, tab, 300);
            assert!(h.state().generation_running());
            assert!(h.state().generation_stats().steps > steps, "progress arrived during the frames");
            h.state_mut().cancel_generation();
            pump_until(&mut h, "the cancel", Duration::from_secs(60), |a| !a.generation_running());
        } else {
            assert_layout_holds(&mut h, tab, 300);
        }
    }
}

#[test]
fn snapshots_of_each_tab() {
    let Some((fixture_model, _)) = fixture(false) else { return };
    // The model is reached through a link of fixed name, so the lines naming its path (masked
    // below) wrap the same wherever the checkout and the fixtures are (a random temp name does not:
    // its glyphs differ in width, and a path that wraps onto two lines moves everything below).
    let model = std::env::temp_dir().join("tora-studio-layout-snapshot-model");
    let _ = std::fs::remove_file(&model);
    std::os::unix::fs::symlink(&fixture_model, &model).unwrap();
    let data = tempfile::tempdir().unwrap();
    let render_state = create_render_state(default_wgpu_setup(), egui_wgpu::RendererOptions::PREDICTABLE);
    let mut app = StudioApp::new_for_test(demo_scene(), Some(data.path().to_path_buf()), Some(render_state.clone()));
    app.set_flow_overlay(false, 0.0);
    // Three steps of fifty shown, then the run waits: the same progress in every snapshot.
    app.set_generation_runner(scripted_runner(3, Duration::ZERO));
    app.generate_form_mut().model_dir = model.display().to_string();
    app.generate_form_mut().settings.prompt = "a red kite climbs over a windy beach".into();
    let mut h = studio_window(app, WINDOW, Some(render_state));
    pump_until(&mut h, "the model scan", Duration::from_secs(60), |a| a.model_report().is_some_and(|r| r.usable()));
    h.run_steps(3);
    h.remove_cursor();
    h.run_steps(2);
    h.snapshot("layout_tab_clip");

    h.state_mut().set_side_tab(SideTab::Models);
    h.run_steps(3);
    mask_model_folder(&mut h, &model);
    h.snapshot("layout_tab_models");

    h.state_mut().set_side_tab(SideTab::Generate);
    h.state_mut().generate_form_mut().settings.steps = 50;
    assert!(h.state_mut().start_generation(&egui::Context::default()));
    pump_until(&mut h, "three steps", Duration::from_secs(60), |a| a.generation_stats().steps == 3);
    h.run_steps(3);
    mask_model_folder(&mut h, &model);
    mask_label(&mut h, "denoising step 3/50"); // its spinner turns with the clock
    mask_label(&mut h, "runs on:"); // names this machine's adapter
    h.snapshot("layout_tab_generate");

    h.state_mut().cancel_generation();
    pump_until(&mut h, "the cancel", Duration::from_secs(60), |a| !a.generation_running());
    h.state_mut().generate_form_mut().settings.steps = 2;
    assert!(h.state_mut().start_generation(&egui::Context::default()));
    pump_until(&mut h, "the finished run", Duration::from_secs(60), |a| !a.generation_running());
    h.state_mut().set_side_tab(SideTab::Takes);
    h.run_steps(3);
    let take = h.state().takes()[0].clone();
    // The id, its age and the run's time (also in the status line) come from the clock.
    mask_within(&mut h, &take.id, egui::Rect::from_min_size(egui::Pos2::ZERO, WINDOW));
    h.snapshot("layout_tab_takes");
}

/// Covers the visible part of the side-panel widget whose text contains `text` (values that
/// differ between machines or runs).
fn mask_label(h: &mut Harness<StudioApp>, text: &str) {
    let panel = h.state().panel_rects().inspector;
    mask_within(h, text, panel);
}

/// Covers the part inside `area` of every widget whose text contains `text`, out to the right
/// edge of `area`: the text is proportional type, so its width varies with what it says.
fn mask_within(h: &mut Harness<StudioApp>, text: &str, area: egui::Rect) {
    let to_edge = |r: egui::Rect| egui::Rect::from_min_max(r.min, egui::pos2(area.max.x, r.max.y)).intersect(area);
    let rects: Vec<egui::Rect> = h.query_all_by_label_contains(text).map(|n| to_edge(n.rect())).collect();
    assert!(!rects.is_empty(), "nothing shows {text:?}");
    for r in rects.into_iter().filter(|r| r.is_positive()) {
        h.mask(r);
    }
}

/// The model folder's path differs between machines and checkouts: its field and any line
/// naming it are covered.
fn mask_model_folder(h: &mut Harness<StudioApp>, model: &std::path::Path) {
    mask_label(h, "model folder");
    let path = model.display().to_string();
    if h.query_all_by_label_contains(&path).next().is_some() {
        mask_label(h, &path);
    }
}
