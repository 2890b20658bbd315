//! The Generate panel (issue 7): model folder with its validation, prompt and settings, Generate
//! and Cancel, progress with per-phase time and memory, the live per-step preview, and the
//! finished clip. The run itself happens on the pipeline's worker thread; this file only sends
//! the request and shows the events that come back.

use std::sync::Arc;

use crossbeam_channel::{Receiver, TryRecvError};
use eframe::egui;
use serde::{Deserialize, Serialize};

use crate::model::device::{known_wgpu_adapters, wgpu_adapters, wgpu_run_adapter, AdapterSummary};
use crate::model::Precision;
use crate::pipeline::latent_preview::PreviewClip;
use crate::pipeline::memory::format_bytes;
use crate::pipeline::queue::{ItemStatus, RenderQueue, VariantSpec};
use crate::pipeline::takes::TakeInfo;
use crate::pipeline::{
    Event, GenerateRequest, Generated, Generation, Phase, PhaseReport, PipelineError, Reporter, Settings,
};
use crate::Backend;

use super::model_manager::ERROR_COLOUR;
use super::takes_panel::{rgb_image, ClipPlayer};
use super::StudioApp;

/// Where the numerics run, as the user picks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compute {
    /// The best this machine has: a hardware GPU in f16, else the CPU in f32.
    #[default]
    Auto,
    Cpu,
    Gpu,
    GpuF16,
}

impl Compute {
    const ALL: [Compute; 4] = [Compute::Auto, Compute::Cpu, Compute::Gpu, Compute::GpuF16];

    fn label(self) -> &'static str {
        match self {
            Compute::Auto => "Best available",
            Compute::Cpu => "CPU (f32)",
            Compute::Gpu => "GPU (f32)",
            Compute::GpuF16 => "GPU (f16)",
        }
    }

    /// The concrete choice: `Auto` becomes GPU (f16) on a hardware GPU and CPU (f32) otherwise
    /// (no adapter, or only a software one such as lavapipe, which is slower than the CPU backend).
    pub fn resolve(self, gpu: Option<&AdapterSummary>) -> Compute {
        match self {
            Compute::Auto if gpu.is_some_and(AdapterSummary::is_real_gpu) => Compute::GpuF16,
            Compute::Auto => Compute::Cpu,
            chosen => chosen,
        }
    }

    fn backend_precision(self, gpu: Option<&AdapterSummary>) -> (Backend, Precision) {
        match self.resolve(gpu) {
            Compute::Cpu | Compute::Auto => (Backend::Cpu, Precision::F32),
            Compute::Gpu => (Backend::Wgpu, Precision::F32),
            Compute::GpuF16 => (Backend::Wgpu, Precision::F16),
        }
    }

    /// "runs on ..." for the panel; `gpu` is the adapter a GPU run would open
    /// ([`wgpu_run_adapter`]), `None` while the adapters are still being detected.
    fn runs_on(self, gpu: Option<Option<&AdapterSummary>>) -> String {
        let Some(gpu) = gpu else {
            return "runs on: detecting the GPU...".into();
        };
        match (self.resolve(gpu), gpu) {
            (Compute::Cpu, _) if self == Compute::Cpu => "runs on: CPU (f32)".into(),
            (Compute::Cpu, Some(a)) => format!("runs on: CPU (f32); {} is not a hardware GPU", a.describe()),
            (Compute::Cpu, None) => "runs on: CPU (f32); no GPU found".into(),
            (choice, Some(a)) if a.is_real_gpu() => format!("runs on: {} on {}", choice.label(), a.describe()),
            (choice, Some(a)) => {
                format!("runs on: {} on {}, a software driver (slower than the CPU)", choice.label(), a.describe())
            }
            (choice, None) => format!("{}: no GPU adapter found; the run will fail", choice.label()),
        }
    }
}

/// The panel's fields, remembered between sessions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GenerateForm {
    pub model_dir: String,
    pub settings: Settings,
    /// Saved as `device`: the older `compute` key held CPU as a default nobody chose, so it is
    /// left unread and such users start at `Auto` (the GPU where there is one).
    #[serde(rename = "device")]
    pub compute: Compute,
    /// What the render queue varies (kept so a sweep can be queued again).
    pub variants: VariantSpec,
}

impl Default for GenerateForm {
    fn default() -> Self {
        GenerateForm {
            model_dir: String::new(),
            settings: Settings::default(),
            compute: Compute::Auto,
            variants: VariantSpec::default(),
        }
    }
}

/// What runs a request on the worker thread.
pub type Runner = Arc<dyn Fn(&GenerateRequest, &Reporter) -> Result<Generated, PipelineError> + Send + Sync>;

fn pipeline_runner() -> Runner {
    Arc::new(|request, reporter| crate::pipeline::run::run_request(request, reporter))
}

/// How the last run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The take's id when it was kept in the history.
    Finished {
        take: Option<String>,
        seconds: f64,
    },
    Failed(String),
    Cancelled,
}

/// What tests and the status line read about the current or last run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunStats {
    pub phases: Vec<Phase>,
    pub steps: usize,
    /// Step events that carried a preview clip.
    pub previews: usize,
    pub last_step: Option<(usize, usize)>,
}

struct ActiveRun {
    generation: Generation,
    /// The take's result, sent by the worker before its `Finished` event.
    kept: Receiver<Result<TakeInfo, String>>,
    phase: Option<(Phase, String)>,
    step: Option<(usize, usize, i64)>,
    cancelling: bool,
}

/// The running generation and what it has shown so far.
pub struct GenerateRun {
    active: Option<ActiveRun>,
    runner: Runner,
    reports: Vec<PhaseReport>,
    preview: Vec<egui::TextureHandle>,
    preview_size: [usize; 2],
    /// Variants waiting to run after the current one (issue 16).
    pub(super) queue: RenderQueue,
    result: Option<ClipPlayer>,
    outcome: Option<Outcome>,
    stats: RunStats,
}

impl Default for GenerateRun {
    fn default() -> Self {
        // Ask for the GPU in the background, so the panel can say where a run goes without waiting.
        if known_wgpu_adapters().is_none() {
            let _ = std::thread::Builder::new().name("tora-gpu-detect".into()).spawn(wgpu_adapters);
        }
        GenerateRun {
            active: None,
            runner: pipeline_runner(),
            reports: Vec::new(),
            preview: Vec::new(),
            preview_size: [0, 0],
            queue: RenderQueue::default(),
            result: None,
            outcome: None,
            stats: RunStats::default(),
        }
    }
}

impl GenerateRun {
    pub fn running(&self) -> bool {
        self.active.is_some()
    }

    /// Overall progress 0..1 (phases weighted by their usual share of the run).
    fn progress(&self) -> f32 {
        let Some(run) = &self.active else { return 0.0 };
        match (run.phase.as_ref().map(|p| p.0), run.step) {
            (Some(Phase::Decoding), _) => 0.92,
            (Some(Phase::Denoising), Some((i, total, _))) if total > 0 => 0.1 + 0.8 * (i + 1) as f32 / total as f32,
            (Some(Phase::Denoising), _) => 0.1,
            (Some(Phase::Conditioning), _) => 0.06,
            _ => 0.02,
        }
    }

    fn show_preview(&mut self, ctx: &egui::Context, clip: &PreviewClip) {
        let images: Vec<egui::ColorImage> =
            clip.frames.iter().filter_map(|f| rgb_image(clip.width, clip.height, f)).collect();
        if images.len() != clip.frames.len() {
            return; // a malformed preview is skipped, the run goes on
        }
        if self.preview.len() != images.len() || self.preview_size != [clip.width, clip.height] {
            self.preview = images
                .into_iter()
                .enumerate()
                .map(|(i, img)| ctx.load_texture(format!("latent preview {i}"), img, egui::TextureOptions::NEAREST))
                .collect();
        } else {
            for (t, img) in self.preview.iter_mut().zip(images) {
                t.set(img, egui::TextureOptions::NEAREST);
            }
        }
        self.preview_size = [clip.width, clip.height];
    }
}

impl StudioApp {
    // ---- what tests and scripts call ---------------------------------------------------------

    pub fn generate_form(&self) -> &GenerateForm {
        &self.state.generate
    }

    pub fn generate_form_mut(&mut self) -> &mut GenerateForm {
        &mut self.state.generate
    }

    pub fn generation_running(&self) -> bool {
        self.generate.running()
    }

    pub fn generation_stats(&self) -> &RunStats {
        &self.generate.stats
    }

    pub fn generation_outcome(&self) -> Option<&Outcome> {
        self.generate.outcome.as_ref()
    }

    /// Textures of the live preview now shown (one per latent frame).
    pub fn preview_textures(&self) -> usize {
        self.generate.preview.len()
    }

    /// Replaces what runs a request on the worker (tests and scripts: a scripted run with known
    /// progress, injected faults such as a lost device or a failed allocation).
    pub fn set_generation_runner(&mut self, runner: Runner) {
        self.generate.runner = runner;
    }

    /// Frames of the finished clip shown in the panel.
    pub fn result_frames(&self) -> usize {
        self.generate.result.as_ref().map_or(0, ClipPlayer::len)
    }

    /// Starts a run with the panel's settings on the current scene. A request that cannot run
    /// becomes a message; the scene and settings are untouched either way.
    pub fn start_generation(&mut self, ctx: &egui::Context) -> bool {
        if self.generate.running() {
            self.notices.warn("a generation is already running; cancel it first");
            return false;
        }
        match self.build_request(&self.state.generate.settings) {
            Ok(request) => {
                self.spawn_generation(request, ctx, None);
                true
            }
            Err(message) => {
                self.notices.error(format!("Cannot generate: {message}"));
                false
            }
        }
    }

    pub fn cancel_generation(&mut self) {
        if let Some(run) = &mut self.generate.active {
            run.generation.cancel();
            run.cancelling = true;
        }
    }

    // ---- internals ------------------------------------------------------------------------

    /// A request for `settings` (the form's, or a queued variant's) with the form's model and device.
    pub(super) fn build_request(&self, settings: &Settings) -> Result<GenerateRequest, String> {
        let form = &self.state.generate;
        let model_dir = self.model_dir();
        if model_dir.as_os_str().is_empty() {
            return Err("choose a model folder first (a diffusers folder holding model_index.json, or Tora's SAT ckpts/ folder)".into());
        }
        if !model_dir.is_dir() {
            return Err(format!(
                "{}: no such folder; choose a diffusers folder (model_index.json) or Tora's SAT ckpts/ folder",
                model_dir.display()
            ));
        }
        let report = self.models.report_for(&model_dir);
        if let Some(r) = report.filter(|r| !r.usable()) {
            return Err(r.summary());
        }
        settings.check().map_err(|e| e.to_string())?;
        let mut settings = settings.clone();
        let image_to_video = report.and_then(|r| r.image_to_video);
        if image_to_video == Some(false) {
            settings.image = None; // a T2V model never takes the image
        }
        if image_to_video == Some(true) && settings.image.is_none() {
            return Err("this is an image-to-video model: choose a first-frame image".into());
        }
        if let Some(path) = &settings.image {
            image::image_dimensions(path)
                .map_err(|e| format!("{}: cannot use it as the first frame: {e}", path.display()))?;
        }
        let (backend, precision) = form.compute.backend_precision(wgpu_run_adapter(&wgpu_adapters()));
        Ok(GenerateRequest {
            model_dir,
            settings,
            scene: self.scene.clone(),
            backend,
            precision,
            family: None,
            extras: Default::default(),
        })
    }

    /// Starts `request` on the worker; its take joins render-queue `batch` when given.
    pub(super) fn spawn_generation(&mut self, request: GenerateRequest, ctx: &egui::Context, batch: Option<String>) {
        let created = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let store = self.takes.store().cloned();
        let draft = TakeInfo {
            id: store.as_ref().map_or_else(String::new, |s| s.new_id(created)),
            created,
            model_dir: request.model_dir.clone(),
            settings: request.settings.clone(),
            scene: request.scene.clone(),
            width: 0,
            height: 0,
            frame_count: 0,
            fps: request.scene.fps,
            seconds: 0.0,
            batch,
        };
        let (kept_tx, kept) = crossbeam_channel::bounded(1);
        let runner = self.generate.runner.clone();
        let repaint = ctx.clone();
        let generation = Generation::spawn(
            move |reporter| {
                let generated = runner(&request, reporter)?;
                let kept = match &store {
                    Some(store) => {
                        let info = TakeInfo {
                            width: generated.frames.width,
                            height: generated.frames.height,
                            frame_count: generated.frames.frames.len(),
                            fps: generated.frames.fps,
                            seconds: generated.elapsed.as_secs_f64(),
                            ..draft
                        };
                        store.save(info, &generated.frames).map_err(|e| e.to_string())
                    }
                    None => Err("the studio has no data folder, so takes are not kept".into()),
                };
                let _ = kept_tx.send(kept);
                Ok(generated)
            },
            Some(Arc::new(move || repaint.request_repaint())),
        );
        let g = &mut self.generate;
        g.active = Some(ActiveRun { generation, kept, phase: None, step: None, cancelling: false });
        g.reports.clear();
        g.preview.clear();
        g.outcome = None;
        g.stats = RunStats::default();
        if let Err(e) = self.persistence.save_state(&self.state) {
            tracing::warn!("cannot save the UI state: {e}");
        }
    }

    /// Takes every event that arrived since the last frame, then starts the next queued variant.
    pub(super) fn poll_generation(&mut self, ctx: &egui::Context) {
        self.poll_models(ctx);
        self.poll_run_events(ctx);
        self.advance_queue(ctx);
    }

    fn poll_run_events(&mut self, ctx: &egui::Context) {
        let mut ended = None;
        let mut latest_preview = None;
        if let Some(run) = &mut self.generate.active {
            loop {
                let event = match run.generation.events.try_recv() {
                    Ok(e) => e,
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        ended = Some(Event::Failed("the generation thread stopped without a result".into()));
                        break;
                    }
                };
                match event {
                    Event::Phase { phase, detail } => {
                        self.generate.stats.phases.push(phase);
                        run.phase = Some((phase, detail));
                    }
                    Event::Step { index, total, timestep, preview } => {
                        run.step = Some((index, total, timestep));
                        self.generate.stats.steps += 1;
                        self.generate.stats.last_step = Some((index, total));
                        if let Some(clip) = preview {
                            self.generate.stats.previews += 1;
                            latest_preview = Some(clip);
                        }
                    }
                    Event::PhaseDone(report) => self.generate.reports.push(report),
                    terminal => {
                        ended = Some(terminal);
                        break;
                    }
                }
            }
        }
        if let Some(clip) = latest_preview {
            self.generate.show_preview(ctx, &clip);
        }
        let Some(end) = ended else { return };
        let Some(run) = self.generate.active.take() else { return };
        let outcome = match end {
            Event::Finished(generated) => {
                let seconds = generated.elapsed.as_secs_f64();
                let take = match run.kept.try_recv() {
                    Ok(Ok(info)) => {
                        self.notices.info(format!("finished in {seconds:.1} s; kept as {}", info.id));
                        Some(info.id)
                    }
                    Ok(Err(e)) => {
                        self.notices.warn(format!("finished in {seconds:.1} s, but the take could not be kept: {e}"));
                        None
                    }
                    Err(_) => None,
                };
                self.takes.reload(&mut self.notices);
                self.generate.result = Some(ClipPlayer::new("generated clip", generated.frames));
                Outcome::Finished { take, seconds }
            }
            Event::Cancelled => {
                self.notices.info("generation cancelled; nothing was kept");
                Outcome::Cancelled
            }
            Event::Failed(message) => {
                self.notices.error(format!("Generation failed: {message}. Your scene and settings are unchanged."));
                Outcome::Failed(message)
            }
            _ => Outcome::Failed("unexpected event".into()),
        };
        self.generate.queue.finish_running(match &outcome {
            Outcome::Finished { take, .. } => ItemStatus::Done(take.clone()),
            Outcome::Failed(m) => ItemStatus::Failed(m.clone()),
            Outcome::Cancelled => ItemStatus::Cancelled,
        });
        self.generate.outcome = Some(outcome);
    }

    pub(super) fn generate_panel(&mut self, ui: &mut egui::Ui) {
        ui.heading("Generate");
        self.model_folder_row(ui);
        self.validation_line(ui);
        let running = self.generate.running();
        ui.add_enabled_ui(!running, |ui| self.settings_fields(ui));
        ui.horizontal(|ui| {
            if ui.add_enabled(!running, egui::Button::new("Generate video")).clicked() {
                self.start_generation(ui.ctx());
            }
            let cancelling = self.generate.active.as_ref().is_some_and(|r| r.cancelling);
            if ui.add_enabled(running && !cancelling, egui::Button::new("Cancel")).clicked() {
                self.cancel_generation();
            }
        });
        self.progress_section(ui);
        self.queue_section(ui);
        self.preview_section(ui);
    }

    fn validation_line(&mut self, ui: &mut egui::Ui) {
        let dir = self.model_dir();
        if dir.as_os_str().is_empty() {
            ui.weak("choose the model folder (diffusers: holds model_index.json; SAT: Tora's ckpts/)");
            return;
        }
        match self.models.report_for(&dir) {
            Some(r) if r.usable() => {
                ui.label(r.summary());
            }
            Some(r) => {
                ui.colored_label(ERROR_COLOUR, r.summary());
            }
            None => {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label("checking the model folder...");
                });
            }
        }
    }

    fn settings_fields(&mut self, ui: &mut egui::Ui) {
        let image_to_video = self.models.report_for(&self.model_dir()).and_then(|r| r.image_to_video);
        let background = self.scene.background.clone();
        let s = &mut self.state.generate.settings;
        let label = ui.label("prompt");
        ui.add(egui::TextEdit::multiline(&mut s.prompt).desired_rows(3).desired_width(f32::INFINITY))
            .labelled_by(label.id);
        let label = ui.label("negative prompt");
        ui.add(egui::TextEdit::multiline(&mut s.negative_prompt).desired_rows(1).desired_width(f32::INFINITY))
            .labelled_by(label.id);
        egui::Grid::new("generate settings").num_columns(2).show(ui, |ui| {
            ui.label("seed");
            ui.horizontal(|ui| {
                ui.add(egui::DragValue::new(&mut s.seed));
                if ui.small_button("new").on_hover_text("a fresh random seed").clicked() {
                    s.seed = fresh_seed();
                }
            });
            ui.end_row();
            ui.label("steps");
            ui.add(egui::DragValue::new(&mut s.steps).range(1..=500));
            ui.end_row();
            ui.label("guidance");
            ui.horizontal(|ui| {
                ui.add(egui::DragValue::new(&mut s.guidance_scale).range(0.0..=30.0).speed(0.1).max_decimals(2));
                ui.checkbox(&mut s.use_dynamic_cfg, "dynamic")
                    .on_hover_text("CogVideoX's cosine schedule: guidance grows over the steps");
            });
            ui.end_row();
            ui.label("trajectory");
            ui.add(egui::DragValue::new(&mut s.motion.strength).range(0.0..=3.0).speed(0.01).prefix("strength "))
                .on_hover_text("1 = Tora as trained, 0 = no motion guidance");
            ui.end_row();
            ui.label("active");
            ui.horizontal(|ui| {
                let end = s.motion.end;
                ui.add(egui::DragValue::new(&mut s.motion.start).range(0.0..=end).speed(0.01).max_decimals(2));
                ui.label("to");
                let start = s.motion.start;
                ui.add(egui::DragValue::new(&mut s.motion.end).range(start..=1.0).speed(0.01).max_decimals(2));
            })
            .response
            .on_hover_text("the share of the steps during which the trajectory steers (0..1)");
            ui.end_row();
            ui.label("device");
            egui::ComboBox::from_id_salt("compute").selected_text(self.state.generate.compute.label()).show_ui(
                ui,
                |ui| {
                    for c in Compute::ALL {
                        ui.selectable_value(&mut self.state.generate.compute, c, c.label());
                    }
                },
            );
            ui.end_row();
        });
        ui.weak(self.state.generate.compute.runs_on(known_wgpu_adapters().map(wgpu_run_adapter)));
        let s = &mut self.state.generate.settings;
        if image_to_video != Some(false) {
            ui.horizontal(|ui| {
                ui.label("first frame");
                match &s.image {
                    Some(p) => {
                        ui.label(p.file_name().map_or_else(|| p.display().to_string(), |n| n.to_string_lossy().into()))
                    }
                    None if image_to_video == Some(true) => ui.colored_label(ERROR_COLOUR, "required"),
                    None => ui.weak("none (text-to-video)"),
                };
            });
            ui.horizontal(|ui| {
                if ui.small_button("Choose...").clicked() && self.dialogs {
                    if let Some(p) = rfd::FileDialog::new().add_filter("image", &["png", "jpg", "jpeg"]).pick_file() {
                        s.image = Some(p);
                    }
                }
                if ui.add_enabled(background.is_some(), egui::Button::new("Canvas image").small()).clicked() {
                    s.image = background.clone();
                }
                if ui.add_enabled(s.image.is_some(), egui::Button::new("Clear").small()).clicked() {
                    s.image = None;
                }
            });
        }
        // Counted, not expanded: a camera grid is many tracks, but the user placed one layer.
        let regions = match self.scene.regions.len() {
            0 => String::new(),
            n => format!(", {n} region(s)"),
        };
        let camera = if self.scene.camera.is_some() { ", a camera layer" } else { "" };
        ui.weak(format!(
            "output {}x{}, {} frames at {} fps, {} track(s){regions}{camera} (set in the Clip tab)",
            self.scene.width,
            self.scene.height,
            self.scene.frames,
            self.scene.fps,
            self.scene.tracks.len()
        ));
    }

    fn progress_section(&mut self, ui: &mut egui::Ui) {
        if let Some(run) = &self.generate.active {
            let text = match (&run.phase, run.step) {
                _ if run.cancelling => "cancelling after this step...".to_string(),
                (Some((Phase::Denoising, _)), Some((i, total, t))) => {
                    format!("denoising step {}/{total} (t={t})", i + 1)
                }
                (Some((phase, detail)), _) if detail.is_empty() => phase.label().to_string(),
                (Some((phase, detail)), _) => format!("{}: {detail}", phase.label()),
                (None, _) => "starting...".to_string(),
            };
            ui.add(egui::ProgressBar::new(self.generate.progress()).text(text).animate(true));
        } else if let Some(outcome) = &self.generate.outcome {
            match outcome {
                Outcome::Finished { take, seconds } => {
                    ui.label(match take {
                        Some(id) => format!("finished in {seconds:.1} s; kept as {id} (Takes tab)"),
                        None => format!("finished in {seconds:.1} s (not kept)"),
                    });
                }
                Outcome::Cancelled => {
                    ui.label("cancelled: the run stopped, nothing was kept");
                }
                Outcome::Failed(m) => {
                    ui.colored_label(ERROR_COLOUR, format!("failed: {m}"));
                }
            }
        }
        for r in &self.generate.reports {
            let memory =
                r.peak_bytes.map_or_else(|| "peak memory unknown".into(), |b| format!("peak {}", format_bytes(b)));
            ui.weak(format!("{}: {:.1} s, {memory}", r.phase.label(), r.seconds));
        }
    }

    fn preview_section(&mut self, ui: &mut egui::Ui) {
        let now = ui.input(|i| i.time);
        let fps = f64::from(self.scene.fps.max(1.0));
        let width = ui.available_width();
        if self.generate.running() && !self.generate.preview.is_empty() {
            ui.label("live preview (latent estimate, not the final frames)");
            let n = self.generate.preview.len();
            let i = (now * fps) as usize % n;
            let [w, h] = self.generate.preview_size;
            let size = egui::vec2(width, width * h as f32 / w.max(1) as f32);
            ui.image((self.generate.preview[i].id(), size));
            ui.horizontal_wrapped(|ui| {
                let thumb = egui::vec2(32.0, 32.0 * h as f32 / w.max(1) as f32);
                for t in &self.generate.preview {
                    ui.image((t.id(), thumb));
                }
            });
            ui.ctx().request_repaint_after(std::time::Duration::from_secs_f64(0.5 / fps));
        } else if let Some(player) = &mut self.generate.result {
            ui.label("last generated clip");
            let n = player.len().max(1);
            let i = (now * fps) as usize % n;
            player.show(ui, i, width);
            ui.ctx().request_repaint_after(std::time::Duration::from_secs_f64(0.5 / fps));
        }
    }
}

fn fresh_seed() -> u64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    // Spread the clock bits so consecutive clicks differ in every digit.
    (nanos as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 16
}

#[cfg(test)]
mod tests {
    use super::*;
    use wgpu::DeviceType;

    fn adapter(device_type: DeviceType) -> AdapterSummary {
        AdapterSummary { name: "some card".into(), device_type, api: wgpu::Backend::Vulkan }
    }

    #[test]
    fn best_available_is_a_hardware_gpu_in_f16_else_the_cpu() {
        let h100 = adapter(DeviceType::DiscreteGpu);
        let laptop = adapter(DeviceType::IntegratedGpu);
        let lavapipe = adapter(DeviceType::Cpu);
        assert_eq!(Compute::Auto.resolve(Some(&h100)), Compute::GpuF16);
        assert_eq!(Compute::Auto.resolve(Some(&laptop)), Compute::GpuF16);
        assert_eq!(Compute::Auto.resolve(Some(&lavapipe)), Compute::Cpu);
        assert_eq!(Compute::Auto.resolve(None), Compute::Cpu);
        assert_eq!(Compute::Auto.backend_precision(Some(&h100)), (Backend::Wgpu, Precision::F16));
        // An explicit choice is kept whatever the machine has.
        assert_eq!(Compute::Gpu.resolve(Some(&lavapipe)), Compute::Gpu);
        assert_eq!(Compute::Cpu.resolve(Some(&h100)), Compute::Cpu);
    }

    #[test]
    fn the_panel_says_where_a_run_goes() {
        let h100 = adapter(DeviceType::DiscreteGpu);
        let lavapipe = adapter(DeviceType::Cpu);
        assert_eq!(Compute::Auto.runs_on(None), "runs on: detecting the GPU...");
        assert_eq!(Compute::Auto.runs_on(Some(Some(&h100))), "runs on: GPU (f16) on some card (vulkan, discrete GPU)");
        assert_eq!(
            Compute::Auto.runs_on(Some(Some(&lavapipe))),
            "runs on: CPU (f32); some card (vulkan, software adapter) is not a hardware GPU"
        );
        assert_eq!(Compute::Auto.runs_on(Some(None)), "runs on: CPU (f32); no GPU found");
        assert!(Compute::Gpu.runs_on(Some(Some(&lavapipe))).contains("software driver"));
        assert!(Compute::GpuF16.runs_on(Some(None)).contains("the run will fail"));
    }

    #[test]
    fn the_choice_is_remembered_and_old_cpu_defaults_are_dropped() {
        let form = GenerateForm { compute: Compute::Gpu, ..GenerateForm::default() };
        let json = serde_json::to_string(&form).unwrap();
        assert_eq!(serde_json::from_str::<GenerateForm>(&json).unwrap().compute, Compute::Gpu);
        // Saved before "Best available" existed, when CPU was the default nobody chose.
        let old: GenerateForm = serde_json::from_str(r#"{"model_dir": "m", "compute": "cpu"}"#).unwrap();
        assert_eq!((old.model_dir.as_str(), old.compute), ("m", Compute::Auto));
    }
}
