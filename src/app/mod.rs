//! The studio (egui only): draw, time and preview motion trajectories.
//!
//! The app edits one [`Scene`]; panels send edits to it directly and [`history`] commits each
//! gesture for undo. Numerics live in `trajectory` and `flow`; this module only displays them.

mod artwork;
mod background;
mod canvas;
mod commands;
mod demo;
mod drop_paste;
mod flow_overlay;
mod generate_panel;
mod history;
mod inspector;
mod layers_panel;
mod layout;
mod model_manager;
mod notices;
mod persistence;
mod preview;
mod queue_panel;
mod region_tool;
mod state;
mod status_bar;
mod takes_panel;
mod timeline;
mod toolbar;
mod tracks_panel;

use std::path::PathBuf;

use eframe::egui;
use eframe::egui_wgpu;

pub use artwork::{app_icon, first_frame, FIRST_FRAMES, ICON_SIZE};
pub use demo::{demo_image, demo_scene};
pub use generate_panel::{Compute, GenerateForm, Outcome, RunStats, Runner};
pub use layout::PanelRects;
pub use model_manager::{scan as scan_model_folder, FolderReport};
pub use notices::{Level, Notice};
pub use state::{SideTab, Tool, UiState};
pub use takes_panel::{export_take, ExportFormat};

use crate::trajectory::Scene;

use background::Background;
use canvas::{CanvasView, Gesture};
use flow_overlay::FlowOverlay;
use generate_panel::GenerateRun;
use history::History;
use model_manager::ModelScanner;
use notices::Notices;
use persistence::{CrashRecovery, Persistence};
use preview::MotionPreview;
use takes_panel::Takes;
use timeline::TimelineLayout;

/// Opens the studio window.
pub fn run() -> anyhow::Result<()> {
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_inner_size([1500.0, 920.0])
            .with_title("Tora Studio")
            .with_icon(artwork::icon_data()),
        renderer: eframe::Renderer::Wgpu,
        multisampling: 0,
        depth_buffer: 0,
        ..eframe::NativeOptions::default()
    };
    eframe::run_native(
        "Tora Studio",
        options,
        Box::new(|cc| {
            let data_dir = persistence::default_data_dir();
            Ok(Box::new(StudioApp::new(data_dir, cc.wgpu_render_state.clone(), true)))
        }),
    )
    .map_err(|e| anyhow::anyhow!("cannot open the studio window: {e}"))
}

/// What is selected on the canvas and in the panels.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Selection {
    pub track: Option<usize>,
    pub point: Option<usize>,
}

/// Playback of the clip in the canvas and timeline.
#[derive(Debug, Default)]
struct Playback {
    playing: bool,
    frame: usize,
    /// Clock time of the last frame advance.
    last_tick: Option<f64>,
}

/// The studio.
pub struct StudioApp {
    scene: Scene,
    history: History,
    state: UiState,
    selection: Selection,
    /// The track the polyline/spline tool is adding points to.
    drawing: Option<usize>,
    /// The selected region or camera layer, and the region the lasso tool is giving a path.
    layers: region_tool::LayerEditing,
    gesture: Gesture,
    view: CanvasView,
    timeline: TimelineLayout,
    background: Background,
    /// Changes whenever the background image does (preview cache key).
    background_version: u64,
    flow: FlowOverlay,
    preview: MotionPreview,
    playback: Playback,
    persistence: Persistence,
    notices: Notices,
    recovery: Option<CrashRecovery>,
    project_path: Option<PathBuf>,
    /// Scene as last saved to `project_path` (unsaved-changes marker).
    saved_scene: Option<Scene>,
    render_state: Option<egui_wgpu::RenderState>,
    /// Pointer position over the canvas, in canvas units.
    cursor: Option<[f64; 2]>,
    /// Native file dialogs are off in tests (they would block).
    dialogs: bool,
    /// The generation in progress and its preview (runtime only; the form is in `state`).
    generate: GenerateRun,
    takes: Takes,
    models: ModelScanner,
    /// Where the panels were drawn last frame (tests check the layout holds still).
    panels: PanelRects,
}

impl StudioApp {
    /// The studio with the demo scene; `data_dir` holds autosave and UI state (None: nothing kept).
    pub fn new(data_dir: Option<PathBuf>, render_state: Option<egui_wgpu::RenderState>, dialogs: bool) -> Self {
        let takes = Takes::new(data_dir.as_ref().map(|d| d.join("takes")));
        let mut persistence = Persistence::new(data_dir);
        let state = persistence.load_state();
        let (recovery, problems) = persistence.start_session();
        let scene = demo_scene();
        let mut app = StudioApp {
            history: History::new(&scene),
            scene,
            state,
            selection: Selection::default(),
            drawing: None,
            layers: region_tool::LayerEditing::default(),
            gesture: Gesture::None,
            view: CanvasView::default(),
            timeline: TimelineLayout::default(),
            background: Background::default(),
            background_version: 0,
            flow: FlowOverlay::new(render_state.as_ref()),
            preview: MotionPreview::default(),
            playback: Playback::default(),
            persistence,
            notices: Notices::default(),
            recovery,
            project_path: None,
            saved_scene: None,
            render_state,
            cursor: None,
            dialogs,
            generate: GenerateRun::default(),
            takes,
            models: ModelScanner::default(),
            panels: PanelRects::default(),
        };
        app.set_background_image(Some(demo_image()));
        // Mid-clip, so the demo opens on visible motion (frame 0 of a motion field is empty).
        app.playback.frame = app.scene.frames as usize / 2;
        for p in problems {
            app.notices.warn(p);
        }
        app
    }

    /// The studio as tests drive it: the demo scene replaced by `scene`, no file dialogs.
    pub fn new_for_test(scene: Scene, data_dir: Option<PathBuf>, render_state: Option<egui_wgpu::RenderState>) -> Self {
        let mut app = StudioApp::new(data_dir, render_state, false);
        app.history.reset(&scene);
        app.scene = scene;
        app.playback.frame = 0;
        app
    }

    /// Drives one frame of the whole studio inside `ui` (what `eframe::App::ui` does).
    pub fn show(&mut self, ui: &mut egui::Ui) {
        self.handle_shortcuts(ui.ctx());
        self.handle_dropped_files(ui.ctx());
        self.advance_playback(ui.ctx());
        self.poll_generation(ui.ctx());
        self.poll_takes();

        egui::Panel::top("menu").show(ui, |ui| self.menu_bar(ui));
        egui::Panel::top("toolbar").show(ui, |ui| self.toolbar(ui));
        egui::Panel::bottom("status").show(ui, |ui| self.status_bar(ui));
        self.panels.timeline = egui::Panel::bottom("timeline")
            .resizable(true)
            .default_size(170.0)
            .show(ui, |ui| self.timeline_ui(ui))
            .response
            .rect;
        let window_width = ui.available_width();
        self.panels.tracks = layout::side_panel(true, "tracks", layout::TRACKS_WIDTH, window_width)
            .show(ui, |ui| layout::fenced(ui, |ui| self.tracks_panel(ui)))
            .response
            .rect;
        self.panels.inspector = layout::side_panel(false, "inspector", layout::INSPECTOR_WIDTH, window_width)
            .show(ui, |ui| layout::fenced(ui, |ui| self.side_panel(ui)))
            .response
            .rect;
        self.panels.canvas = egui::CentralPanel::default()
            .show(ui, |ui| {
                self.alerts(ui);
                self.canvas(ui);
            })
            .response
            .rect;
        self.recovery_dialog(ui.ctx());
        self.compare_window(ui.ctx());
        self.variant_grid_window(ui.ctx());

        self.sanitize_selection();
        let gesture_done = matches!(self.gesture, Gesture::None) && !ui.input(|i| i.pointer.any_down());
        if gesture_done {
            self.history.commit(&self.scene);
        }
        let now = ui.input(|i| i.time);
        if let Err(e) = self.persistence.autosave_if_due(&self.scene, now) {
            self.notices.warn(e);
        }
    }

    // ---- what tests read ----------------------------------------------------------------

    pub fn scene(&self) -> &Scene {
        &self.scene
    }

    pub fn selection(&self) -> Selection {
        self.selection
    }

    pub fn notices(&self) -> &[Notice] {
        self.notices.all()
    }

    pub fn current_frame(&self) -> usize {
        self.playback.frame
    }

    pub fn project_path(&self) -> Option<&std::path::Path> {
        self.project_path.as_deref()
    }

    pub fn ui_state(&self) -> &UiState {
        &self.state
    }

    /// Where the panels were drawn in the last frame.
    pub fn panel_rects(&self) -> PanelRects {
        self.panels
    }

    /// Where canvas point `p` (256x256 units) is on screen, as of the last frame drawn.
    pub fn canvas_to_screen(&self, p: [f64; 2]) -> Option<egui::Pos2> {
        self.view.frame_rect().map(|r| canvas::to_screen(r, p))
    }

    /// Where keyframe `point` of track `track` sits on the timeline, as of the last frame.
    pub fn timeline_keyframe_pos(&self, track: usize, point: usize) -> Option<egui::Pos2> {
        self.timeline.keyframe_pos(&self.scene, track, point)
    }

    /// The timeline x position of `frame` in the lane of `track`.
    pub fn timeline_frame_pos(&self, track: usize, frame: f64) -> Option<egui::Pos2> {
        self.timeline.frame_pos(track, frame, self.scene.frames)
    }

    pub fn set_tool(&mut self, tool: Tool) {
        self.state.tool = tool;
        self.drawing = None;
        self.layers.drawing_path = None;
    }

    pub fn set_frame(&mut self, frame: usize) {
        self.playback.frame = frame.min(self.scene.frames.saturating_sub(1) as usize);
    }

    pub fn set_flow_overlay(&mut self, show: bool, blend: f32) {
        self.state.show_flow = show;
        self.state.flow_blend = blend.clamp(0.0, 1.0);
    }

    pub fn set_motion_preview(&mut self, show: bool) {
        self.state.show_preview = show;
    }

    /// Blocks until the motion field of the current scene is computed (screenshots, tests).
    pub fn wait_for_flow(&mut self, timeout: std::time::Duration) -> bool {
        let ctx = egui::Context::default();
        self.flow.update(&ctx, &self.scene, self.render_state.as_ref());
        self.flow.wait(timeout, self.render_state.as_ref())
    }

    /// A one-line description of where the motion field came from.
    pub fn flow_status(&self) -> String {
        self.flow.status()
    }

    /// Ends the session as a clean exit does (autosave and lock removed, UI state kept).
    pub fn shutdown(&mut self) {
        if let Err(e) = self.persistence.save_state(&self.state) {
            tracing::warn!("cannot save the UI state: {e}");
        }
        self.persistence.end_session();
    }

    // ---- internals ----------------------------------------------------------------------

    /// Keeps selection indices valid after any edit, undo or deletion.
    fn sanitize_selection(&mut self) {
        let tracks = self.scene.tracks.len();
        if self.selection.track.is_some_and(|t| t >= tracks) {
            self.selection = Selection::default();
        }
        if let (Some(t), Some(p)) = (self.selection.track, self.selection.point) {
            if p >= self.scene.tracks[t].points.len() {
                self.selection.point = None;
            }
        }
        if self.drawing.is_some_and(|t| t >= tracks) {
            self.drawing = None;
        }
    }

    fn set_background_image(&mut self, image: Option<crate::flow::preview::RgbaFrame>) {
        self.background.set(image);
        self.background_version += 1;
    }

    fn advance_playback(&mut self, ctx: &egui::Context) {
        let frames = self.scene.frames.max(1) as usize;
        self.playback.frame = self.playback.frame.min(frames - 1);
        if !self.playback.playing {
            self.playback.last_tick = None;
            return;
        }
        let now = ctx.input(|i| i.time);
        let period = 1.0 / self.scene.fps.max(0.1) as f64;
        match self.playback.last_tick {
            None => self.playback.last_tick = Some(now),
            Some(last) if now - last >= period => {
                let steps = ((now - last) / period).floor() as usize;
                self.playback.frame = (self.playback.frame + steps) % frames;
                self.playback.last_tick = Some(last + steps as f64 * period);
            }
            Some(_) => {}
        }
        ctx.request_repaint_after(std::time::Duration::from_secs_f64(period / 2.0));
    }

    /// The right-hand panel: one tab at a time.
    fn side_panel(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            for tab in SideTab::ALL {
                ui.selectable_value(&mut self.state.side_tab, tab, tab.label());
            }
        });
        ui.separator();
        match self.state.side_tab {
            SideTab::Clip => self.inspector(ui),
            tab => {
                egui::ScrollArea::vertical().auto_shrink([false, false]).show(ui, |ui| match tab {
                    SideTab::Generate => self.generate_panel(ui),
                    SideTab::Takes => self.takes_panel(ui),
                    _ => self.model_manager(ui),
                });
            }
        }
    }

    pub fn set_side_tab(&mut self, tab: SideTab) {
        self.state.side_tab = tab;
    }

    fn alerts(&mut self, ui: &mut egui::Ui) {
        let mut dismiss = None;
        let alerts: Vec<(usize, Notice)> = self.notices.alerts().map(|(i, n)| (i, n.clone())).collect();
        for (i, notice) in alerts.iter().rev().take(3) {
            let colour = match notice.level {
                Level::Error => egui::Color32::from_rgb(200, 60, 60),
                _ => egui::Color32::from_rgb(200, 150, 40),
            };
            egui::Frame::new()
                .fill(colour.gamma_multiply(0.25))
                .stroke(egui::Stroke::new(1.0, colour))
                .inner_margin(4.0)
                .show(ui, |ui| {
                    ui.horizontal(|ui| {
                        ui.label(egui::RichText::new(&notice.text).color(ui.visuals().strong_text_color()));
                        if ui.small_button("Dismiss").clicked() {
                            dismiss = Some(*i);
                        }
                    });
                });
        }
        if let Some(i) = dismiss {
            self.notices.dismiss(i);
        }
    }

    fn recovery_dialog(&mut self, ctx: &egui::Context) {
        let Some(recovery) = &self.recovery else {
            return;
        };
        let tracks = recovery.scene.tracks.len();
        let mut choice = None;
        egui::Window::new("Restore unsaved work?")
            .collapsible(false)
            .resizable(false)
            .anchor(egui::Align2::CENTER_CENTER, [0.0, 0.0])
            .show(ctx, |ui| {
                ui.label(format!(
                    "Tora Studio did not close cleanly last time. An autosave with {tracks} track(s) was found."
                ));
                ui.horizontal(|ui| {
                    if ui.button("Restore").clicked() {
                        choice = Some(true);
                    }
                    if ui.button("Discard").clicked() {
                        choice = Some(false);
                    }
                });
            });
        match choice {
            Some(true) => {
                if let Some(recovery) = self.recovery.take() {
                    self.replace_scene(recovery.scene, None);
                    self.notices.info("restored the autosaved work");
                }
            }
            Some(false) => {
                self.recovery = None;
                self.persistence.discard_autosave();
            }
            None => {}
        }
    }
}

impl eframe::App for StudioApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.show(ui);
    }

    fn on_exit(&mut self) {
        self.shutdown();
    }
}
