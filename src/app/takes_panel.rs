//! The history of takes (issue 7): every finished generation with its prompt, seed and time;
//! two takes side by side playing in sync; a take's settings and scene re-opened into the
//! editor; export to a PNG folder or a video; delete. Frames load and exports run on background
//! threads, so a slow disk or ffmpeg never stalls the UI.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crossbeam_channel::{Receiver, TryRecvError};
use eframe::egui;
use serde::{Deserialize, Serialize};

use crate::export::png::write_png_sequence;
use crate::export::video::write_video;
use crate::export::RgbFrames;
use crate::pipeline::takes::{TakeInfo, TakeStore};

use super::background::load_image;
use super::notices::Notices;
use super::StudioApp;

/// What a take is exported as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExportFormat {
    #[default]
    Mp4,
    Webm,
    Gif,
    /// A folder of `frame_0000.png`, ...
    Png,
}

impl ExportFormat {
    pub const ALL: [ExportFormat; 4] = [ExportFormat::Mp4, ExportFormat::Webm, ExportFormat::Gif, ExportFormat::Png];

    pub fn label(self) -> &'static str {
        match self {
            ExportFormat::Mp4 => "mp4 (H.264)",
            ExportFormat::Webm => "webm (VP9)",
            ExportFormat::Gif => "gif",
            ExportFormat::Png => "PNG folder",
        }
    }

    fn extension(self) -> Option<&'static str> {
        match self {
            ExportFormat::Mp4 => Some("mp4"),
            ExportFormat::Webm => Some("webm"),
            ExportFormat::Gif => Some("gif"),
            ExportFormat::Png => None,
        }
    }
}

/// Writes a stored take to `target` (a folder for PNGs, a file otherwise; the extension is added
/// when missing). Returns where it was written.
pub fn export_take(store: &TakeStore, info: &TakeInfo, format: ExportFormat, target: &Path) -> Result<PathBuf, String> {
    let frames = store.frames(info).map_err(|e| e.to_string())?;
    match format.extension() {
        None => {
            write_png_sequence(target, &frames, "frame").map_err(|e| e.to_string())?;
            Ok(target.to_path_buf())
        }
        Some(ext) => {
            let path = if target.extension().is_some_and(|e| e.eq_ignore_ascii_case(ext)) {
                target.to_path_buf()
            } else {
                target.with_extension(ext)
            };
            write_video(&path, &frames).map_err(|e| e.to_string())?;
            Ok(path)
        }
    }
}

/// An RGB8 buffer as an egui image; `None` when the buffer does not match the size.
pub fn rgb_image(width: usize, height: usize, rgb: &[u8]) -> Option<egui::ColorImage> {
    (width > 0 && height > 0 && rgb.len() == width * height * 3)
        .then(|| egui::ColorImage::from_rgb([width, height], rgb))
}

/// A clip in memory shown one frame at a time through one texture.
pub struct ClipPlayer {
    name: String,
    clip: RgbFrames,
    texture: Option<egui::TextureHandle>,
    shown: Option<usize>,
}

impl ClipPlayer {
    pub fn new(name: impl Into<String>, clip: RgbFrames) -> Self {
        ClipPlayer { name: name.into(), clip, texture: None, shown: None }
    }

    pub fn len(&self) -> usize {
        self.clip.frames.len()
    }

    /// Draws frame `frame` (the last one if the clip is shorter) `width` points wide.
    pub fn show(&mut self, ui: &mut egui::Ui, frame: usize, width: f32) {
        let Some(last) = self.len().checked_sub(1) else {
            ui.weak("no frames");
            return;
        };
        let i = frame.min(last);
        let (w, h) = (self.clip.width as usize, self.clip.height as usize);
        if self.shown != Some(i) || self.texture.is_none() {
            let Some(image) = rgb_image(w, h, &self.clip.frames[i]) else {
                ui.weak("this frame has the wrong size");
                return;
            };
            match &mut self.texture {
                Some(t) => t.set(image, egui::TextureOptions::LINEAR),
                None => self.texture = Some(ui.ctx().load_texture(&self.name, image, egui::TextureOptions::LINEAR)),
            }
            self.shown = Some(i);
        }
        if let Some(t) = &self.texture {
            ui.image((t.id(), egui::vec2(width, width * h as f32 / w.max(1) as f32)));
        }
    }
}

/// The takes on disk, what is selected, and the background jobs on them.
pub struct Takes {
    store: Option<TakeStore>,
    list: Vec<TakeInfo>,
    loaded: bool,
    /// Up to two takes picked for comparison, by id.
    picked: Vec<String>,
    compare_open: bool,
    /// The render-queue batch shown as a grid of its variants.
    grid: Option<String>,
    players: HashMap<String, ClipPlayer>,
    loading: Vec<(String, Receiver<Result<RgbFrames, String>>)>,
    exports: Vec<Receiver<Result<PathBuf, String>>>,
    format: ExportFormat,
    playing: bool,
    frame: usize,
}

impl Takes {
    /// Moves the shared playback frame with the clock (every take shown plays in sync).
    fn advance_playback(&mut self, ctx: &egui::Context, fps: f32, frames: usize) {
        if self.playing {
            let now = ctx.input(|i| i.time);
            self.frame = (now * f64::from(fps)) as usize % frames;
            ctx.request_repaint_after(std::time::Duration::from_secs_f64(0.5 / f64::from(fps)));
        }
    }

    /// Play/Pause and the frame slider of a window showing takes in sync.
    fn playback_controls(&mut self, ui: &mut egui::Ui, frames: usize) {
        ui.horizontal(|ui| {
            let label = if self.playing { "Pause" } else { "Play" };
            if ui.button(label).clicked() {
                self.playing = !self.playing;
            }
            let mut f = self.frame;
            if ui.add(egui::Slider::new(&mut f, 0..=frames - 1).text("frame")).changed() {
                self.playing = false;
                self.frame = f;
            }
        });
    }

    /// Takes kept under `root` (None: no history).
    pub fn new(root: Option<PathBuf>) -> Self {
        Takes {
            store: root.map(TakeStore::new),
            list: Vec::new(),
            loaded: false,
            picked: Vec::new(),
            compare_open: false,
            grid: None,
            players: HashMap::new(),
            loading: Vec::new(),
            exports: Vec::new(),
            format: ExportFormat::default(),
            playing: true,
            frame: 0,
        }
    }

    pub fn store(&self) -> Option<&TakeStore> {
        self.store.as_ref()
    }

    /// Re-reads the list from disk; damaged takes are reported, not fatal.
    pub fn reload(&mut self, notices: &mut Notices) {
        let Some(store) = &self.store else { return };
        let (list, errors) = store.list();
        for e in errors {
            notices.warn(format!("a take in the history is damaged and was skipped: {e}"));
        }
        self.list = list;
        self.loaded = true;
        let ids: Vec<&String> = self.list.iter().map(|t| &t.id).collect();
        self.picked.retain(|p| ids.contains(&p));
        self.players.retain(|id, _| ids.contains(&id));
    }

    pub fn list(&self) -> &[TakeInfo] {
        &self.list
    }

    fn info(&self, id: &str) -> Option<&TakeInfo> {
        self.list.iter().find(|t| t.id == id)
    }

    /// The takes of render-queue `batch`, in the order they were queued (oldest first).
    fn batch(&self, batch: &str) -> Vec<&TakeInfo> {
        let mut takes: Vec<&TakeInfo> = self.list.iter().filter(|t| t.batch.as_deref() == Some(batch)).collect();
        takes.sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
        takes
    }

    /// The batches with two or more takes, newest first, with their sizes.
    fn batches(&self) -> Vec<(String, usize)> {
        let mut out: Vec<(String, usize)> = Vec::new();
        for name in self.list.iter().filter_map(|t| t.batch.as_ref()) {
            match out.iter_mut().find(|(b, _)| b == name) {
                Some((_, n)) => *n += 1,
                None => out.push((name.clone(), 1)),
            }
        }
        out.retain(|(_, n)| *n >= 2);
        out
    }

    /// Starts loading a take's frames for playing.
    fn load(&mut self, id: &str, ctx: &egui::Context) {
        if self.players.contains_key(id) || self.loading.iter().any(|(l, _)| l == id) {
            return;
        }
        let (Some(store), Some(info)) = (self.store.clone(), self.info(id).cloned()) else { return };
        let (tx, rx) = crossbeam_channel::bounded(1);
        let ctx = ctx.clone();
        let spawned = std::thread::Builder::new().name("tora-take-load".into()).spawn(move || {
            let _ = tx.send(store.frames(&info).map_err(|e| e.to_string()));
            ctx.request_repaint();
        });
        if spawned.is_ok() {
            self.loading.push((id.to_string(), rx));
        }
    }

    /// Picks up loaded frames and finished exports.
    fn poll(&mut self, notices: &mut Notices) {
        let mut still = Vec::new();
        for (id, rx) in self.loading.drain(..) {
            match rx.try_recv() {
                Ok(Ok(clip)) => {
                    self.players.insert(id.clone(), ClipPlayer::new(id, clip));
                }
                Ok(Err(e)) => notices.error(format!("Cannot play the take: {e}")),
                Err(TryRecvError::Empty) => still.push((id, rx)),
                Err(TryRecvError::Disconnected) => {}
            }
        }
        self.loading = still;
        self.exports.retain(|rx| match rx.try_recv() {
            Ok(Ok(path)) => {
                notices.info(format!("exported to {}", path.display()));
                false
            }
            Ok(Err(e)) => {
                notices.error(format!("Export failed: {e}. The take is unchanged."));
                false
            }
            Err(TryRecvError::Empty) => true,
            Err(TryRecvError::Disconnected) => false,
        });
    }
}

impl StudioApp {
    // ---- what tests and scripts call ---------------------------------------------------------

    pub fn takes(&self) -> &[TakeInfo] {
        self.takes.list()
    }

    /// Exports take `id` in the background; the result arrives as a message.
    pub fn export_take(&mut self, id: &str, format: ExportFormat, target: PathBuf) -> bool {
        let (Some(store), Some(info)) = (self.takes.store.clone(), self.takes.info(id).cloned()) else {
            self.notices.error(format!("Cannot export: no take {id} in the history"));
            return false;
        };
        let (tx, rx) = crossbeam_channel::bounded(1);
        let spawned = std::thread::Builder::new().name("tora-export".into()).spawn(move || {
            let _ = tx.send(export_take(&store, &info, format, &target));
        });
        match spawned {
            Ok(_) => {
                self.takes.exports.push(rx);
                true
            }
            Err(e) => {
                self.notices.error(format!("Cannot export: {e}"));
                false
            }
        }
    }

    /// Opens the grid of render-queue `batch`'s takes (false: no such batch in the history).
    pub fn open_variant_grid(&mut self, batch: &str, ctx: &egui::Context) -> bool {
        let ids: Vec<String> = self.takes.batch(batch).iter().map(|t| t.id.clone()).collect();
        for id in &ids {
            self.takes.load(id, ctx);
        }
        self.takes.grid = (!ids.is_empty()).then(|| batch.to_string());
        !ids.is_empty()
    }

    /// The takes the open grid shows, and how many of them are loaded and playing.
    pub fn variant_grid(&self) -> Option<(Vec<String>, usize)> {
        let batch = self.takes.grid.as_ref()?;
        let ids: Vec<String> = self.takes.batch(batch).iter().map(|t| t.id.clone()).collect();
        let playing = ids.iter().filter(|id| self.takes.players.contains_key(*id)).count();
        Some((ids, playing))
    }

    pub fn exports_running(&self) -> usize {
        self.takes.exports.len()
    }

    /// Puts a take's settings, model folder and scene back into the editor (the scene as an
    /// undoable edit).
    pub fn reopen_take(&mut self, id: &str) -> bool {
        let Some(info) = self.takes.info(id).cloned() else { return false };
        self.state.generate.settings = info.settings.clone();
        self.state.generate.model_dir = info.model_dir.display().to_string();
        if info.scene.background != self.scene.background {
            match info.scene.background.as_deref().map(load_image) {
                Some(Ok(image)) => self.set_background_image(Some(image)),
                Some(Err(e)) => self.notices.warn(format!("the take's image could not be loaded: {e}")),
                None => self.set_background_image(None),
            }
        }
        self.scene = info.scene;
        self.selection = super::Selection::default();
        self.drawing = None;
        self.notices.info(format!("re-opened the settings and scene of {id}"));
        true
    }

    pub fn delete_take(&mut self, id: &str) -> bool {
        let Some(store) = &self.takes.store else { return false };
        let ok = match store.delete(id) {
            Ok(()) => true,
            Err(e) => {
                self.notices.error(format!("Cannot delete the take: {e}"));
                false
            }
        };
        self.takes.reload(&mut self.notices);
        ok
    }

    // ---- internals ------------------------------------------------------------------------

    pub(super) fn poll_takes(&mut self) {
        if !self.takes.loaded {
            self.takes.reload(&mut self.notices);
        }
        self.takes.poll(&mut self.notices);
    }

    pub(super) fn takes_panel(&mut self, ui: &mut egui::Ui) {
        ui.heading("Takes");
        if self.takes.store.is_none() {
            ui.weak("no data folder: takes are not kept");
            return;
        }
        if self.takes.list.is_empty() {
            ui.weak("no takes yet: generate one in the Generate tab");
            return;
        }
        ui.horizontal(|ui| {
            ui.label("export as");
            egui::ComboBox::from_id_salt("export format").selected_text(self.takes.format.label()).show_ui(ui, |ui| {
                for f in ExportFormat::ALL {
                    ui.selectable_value(&mut self.takes.format, f, f.label());
                }
            });
        });
        let picked = self.takes.picked.len();
        if ui
            .add_enabled(picked == 2, egui::Button::new("Compare the two picked"))
            .on_disabled_hover_text("tick two takes to compare them")
            .clicked()
        {
            self.takes.compare_open = true;
            let ids = self.takes.picked.clone();
            for id in ids {
                self.takes.load(&id, ui.ctx());
            }
        }
        for (batch, n) in self.takes.batches() {
            if ui
                .add(egui::Button::new(format!("Grid of {n} variants")).truncate())
                .on_hover_text(format!("the takes of {batch}, playing in sync, to pick from"))
                .clicked()
            {
                self.open_variant_grid(&batch, ui.ctx());
            }
        }
        ui.separator();
        let mut action = None;
        egui::ScrollArea::vertical().id_salt("takes list").show(ui, |ui| {
            for take in &self.takes.list {
                let mut pick = self.takes.picked.contains(&take.id);
                ui.horizontal(|ui| {
                    if ui.checkbox(&mut pick, "").on_hover_text("pick for comparison").changed() {
                        action = Some(TakeAction::Pick(take.id.clone(), pick));
                    }
                    ui.strong(short(&take.settings.prompt, 40));
                });
                ui.weak(format!(
                    "seed {} · {} steps · cfg {} · {}x{} · {} frames · {:.0} s",
                    take.settings.seed,
                    take.settings.steps,
                    take.settings.guidance_scale,
                    take.width,
                    take.height,
                    take.frame_count,
                    take.seconds
                ));
                ui.weak(format!("{} · {}", take.id, ago(take.created)));
                ui.horizontal(|ui| {
                    if ui.small_button("Re-open").on_hover_text("settings and scene back into the editor").clicked() {
                        action = Some(TakeAction::Reopen(take.id.clone()));
                    }
                    if ui.small_button("Export...").clicked() {
                        action = Some(TakeAction::Export(take.id.clone()));
                    }
                    if ui.small_button("Delete take").clicked() {
                        action = Some(TakeAction::Delete(take.id.clone()));
                    }
                });
                ui.separator();
            }
        });
        match action {
            Some(TakeAction::Pick(id, true)) => {
                self.takes.picked.retain(|p| p != &id);
                self.takes.picked.push(id);
                if self.takes.picked.len() > 2 {
                    self.takes.picked.remove(0);
                }
            }
            Some(TakeAction::Pick(id, false)) => self.takes.picked.retain(|p| p != &id),
            Some(TakeAction::Reopen(id)) => {
                self.reopen_take(&id);
            }
            Some(TakeAction::Export(id)) => self.export_take_dialog(&id),
            Some(TakeAction::Delete(id)) => {
                self.delete_take(&id);
            }
            None => {}
        }
    }

    fn export_take_dialog(&mut self, id: &str) {
        if !self.dialogs {
            return;
        }
        let format = self.takes.format;
        let target = match format.extension() {
            None => rfd::FileDialog::new().set_title("Export the frames into a folder").pick_folder(),
            Some(ext) => rfd::FileDialog::new()
                .set_title("Export the take")
                .set_file_name(format!("{id}.{ext}"))
                .add_filter(ext, &[ext])
                .save_file(),
        };
        if let Some(target) = target {
            self.export_take(id, format, target);
        }
    }

    /// The side-by-side window of the two picked takes, playing in sync.
    pub(super) fn compare_window(&mut self, ctx: &egui::Context) {
        if !self.takes.compare_open {
            return;
        }
        let mut open = true;
        let ids = self.takes.picked.clone();
        let fps = ids.iter().filter_map(|id| self.takes.info(id)).map(|t| t.fps).fold(1.0f32, f32::max);
        let frames = ids.iter().filter_map(|id| self.takes.info(id)).map(|t| t.frame_count).max().unwrap_or(1).max(1);
        self.takes.advance_playback(ctx, fps, frames);
        egui::Window::new("Compare takes").open(&mut open).default_width(760.0).show(ctx, |ui| {
            self.takes.playback_controls(ui, frames);
            let width = ((ui.available_width() - 12.0) / 2.0).max(64.0);
            ui.horizontal_top(|ui| {
                for id in &ids {
                    ui.vertical(|ui| {
                        ui.set_width(width);
                        if let Some(t) = self.takes.info(id) {
                            ui.strong(short(&t.settings.prompt, 60));
                            ui.weak(format!(
                                "seed {} · {} steps · cfg {}",
                                t.settings.seed, t.settings.steps, t.settings.guidance_scale
                            ));
                        }
                        match self.takes.players.get_mut(id) {
                            Some(p) => p.show(ui, self.takes.frame, width),
                            None => {
                                ui.spinner();
                            }
                        }
                    });
                }
            });
        });
        self.takes.compare_open = open;
    }
}

impl StudioApp {
    /// The grid of one batch's variants, playing in sync; "Use" puts a variant's settings back.
    pub(super) fn variant_grid_window(&mut self, ctx: &egui::Context) {
        let Some(batch) = self.takes.grid.clone() else { return };
        let takes: Vec<TakeInfo> = self.takes.batch(&batch).into_iter().cloned().collect();
        if takes.is_empty() {
            self.takes.grid = None;
            return;
        }
        let fps = takes.iter().map(|t| t.fps).fold(1.0f32, f32::max);
        let frames = takes.iter().map(|t| t.frame_count).max().unwrap_or(1).max(1);
        self.takes.advance_playback(ctx, fps, frames);
        let columns = (takes.len() as f64).sqrt().ceil().max(1.0) as usize;
        let mut open = true;
        let mut chosen = None;
        egui::Window::new(format!("Variants of {batch}")).open(&mut open).default_width(900.0).show(ctx, |ui| {
            self.takes.playback_controls(ui, frames);
            let spacing = ui.spacing().item_spacing.x;
            let width = ((ui.available_width() - spacing * (columns - 1) as f32) / columns as f32).max(64.0);
            egui::ScrollArea::vertical().show(ui, |ui| {
                egui::Grid::new("variant grid").num_columns(columns).show(ui, |ui| {
                    for (i, take) in takes.iter().enumerate() {
                        ui.vertical(|ui| {
                            ui.set_width(width);
                            match self.takes.players.get_mut(&take.id) {
                                Some(p) => p.show(ui, self.takes.frame, width),
                                None => {
                                    ui.spinner();
                                }
                            }
                            let s = &take.settings;
                            ui.add(
                                egui::Label::new(format!(
                                    "seed {} · strength {} · {}",
                                    s.seed,
                                    s.motion.strength,
                                    short(&s.prompt, 40)
                                ))
                                .truncate(),
                            );
                            if ui.small_button("Use").on_hover_text("put this variant's settings back").clicked() {
                                chosen = Some(take.id.clone());
                            }
                        });
                        if (i + 1) % columns == 0 {
                            ui.end_row();
                        }
                    }
                });
            });
        });
        if let Some(id) = chosen {
            self.reopen_take(&id);
        }
        if !open {
            self.takes.grid = None;
        }
    }
}

enum TakeAction {
    Pick(String, bool),
    Reopen(String),
    Export(String),
    Delete(String),
}

fn short(text: &str, max: usize) -> String {
    let text = if text.trim().is_empty() { "(no prompt)" } else { text.trim() };
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let cut: String = text.chars().take(max).collect();
        format!("{cut}…")
    }
}

/// "3 min ago" from a Unix time.
fn ago(created: u64) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let s = now.saturating_sub(created);
    match s {
        0..=59 => "just now".into(),
        60..=3599 => format!("{} min ago", s / 60),
        3600..=86_399 => format!("{} h ago", s / 3600),
        _ => format!("{} days ago", s / 86_400),
    }
}
