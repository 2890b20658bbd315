//! The model manager (issue 9): which components a model folder holds, in what format and size,
//! what the f32/f16 weights will take in memory, what is missing and where to get it.
//!
//! The folder is scanned on a background thread (safetensors headers only, never the weights),
//! so a slow disk never stalls the UI. The Generate panel reads the same report to validate the
//! folder before a run.

use std::path::{Path, PathBuf};

use crossbeam_channel::{Receiver, TryRecvError};
use eframe::egui;
use serde::Deserialize;

use crate::model::load::folder::ModelIndex;
use crate::model::load::{read_config, Checkpoint};
use crate::pipeline::memory::format_bytes;

use super::StudioApp;

/// Where users get the released weights (models/cogvideox-5b-tora.json, models/t5-v1_1-xxl.json).
const TORA_SOURCE: &str = "huggingface.co/Alibaba-Research-Intelligence-Computing/Tora (diffusers folder)";
const COGVIDEOX_SOURCE: &str = "huggingface.co/THUDM/CogVideoX-5b (or CogVideoX-5b-I2V for image-to-video)";

/// One component a Tora pipeline folder needs.
struct Expected {
    name: &'static str,
    role: &'static str,
    kind: Kind,
    source: &'static str,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// config.json + safetensors weights.
    Weights,
    /// spiece.model (SentencePiece).
    Tokenizer,
    /// scheduler_config.json.
    Scheduler,
}

const EXPECTED: [Expected; 5] = [
    Expected {
        name: "transformer",
        role: "Tora transformer (CogVideoX blocks + trajectory extractor + motion fuser)",
        kind: Kind::Weights,
        source: TORA_SOURCE,
    },
    Expected { name: "vae", role: "CogVideoX 3D VAE", kind: Kind::Weights, source: COGVIDEOX_SOURCE },
    Expected { name: "text_encoder", role: "T5 v1.1 XXL encoder", kind: Kind::Weights, source: COGVIDEOX_SOURCE },
    Expected { name: "tokenizer", role: "T5 SentencePiece tokenizer", kind: Kind::Tokenizer, source: COGVIDEOX_SOURCE },
    Expected { name: "scheduler", role: "CogVideoX DPM scheduler", kind: Kind::Scheduler, source: COGVIDEOX_SOURCE },
];

/// What was found for one component.
#[derive(Debug, Clone, PartialEq)]
pub struct ComponentReport {
    pub name: &'static str,
    pub role: &'static str,
    pub dir: PathBuf,
    /// The class `model_index.json` names, if any.
    pub class: Option<String>,
    /// `None`: usable; `Some(reason)`: missing or broken, with what to do.
    pub problem: Option<String>,
    /// e.g. "safetensors, 2 shards".
    pub format: String,
    /// Stored bytes of tensor data.
    pub bytes: u64,
    pub params: u64,
    /// Stored bytes per parameter (2: bf16/f16, 4: f32).
    pub stored_dtype: Option<&'static str>,
    /// Tora parts recognised in the transformer (trajectory extractor, motion fuser).
    pub parts: Vec<&'static str>,
    pub source: &'static str,
}

impl ComponentReport {
    pub fn found(&self) -> bool {
        self.problem.is_none()
    }
}

/// What a model folder holds.
#[derive(Debug, Clone, PartialEq)]
pub struct FolderReport {
    pub dir: PathBuf,
    /// A problem with the folder itself (does not exist, not a folder).
    pub problem: Option<String>,
    pub components: Vec<ComponentReport>,
    /// From the transformer config: it takes image latents (I2V).
    pub image_to_video: Option<bool>,
    /// From the transformer config: a learned positional embedding fixes the output size.
    pub fixed_size: bool,
}

/// The few transformer config fields that tell T2V from I2V.
#[derive(Deserialize)]
struct TransformerShape {
    in_channels: usize,
    #[serde(default)]
    out_channels: Option<usize>,
    #[serde(default)]
    use_learned_positional_embeddings: bool,
}

impl FolderReport {
    pub fn missing(&self) -> Vec<&'static str> {
        self.components.iter().filter(|c| !c.found()).map(|c| c.name).collect()
    }

    pub fn usable(&self) -> bool {
        self.problem.is_none() && self.missing().is_empty()
    }

    /// Weights in memory at f32 (the CPU path) and f16 (wgpu).
    pub fn memory_estimate(&self) -> (u64, u64) {
        let params: u64 = self.components.iter().map(|c| c.params).sum();
        (params * 4, params * 2)
    }

    /// One line for the Generate panel.
    pub fn summary(&self) -> String {
        if let Some(p) = &self.problem {
            return p.clone();
        }
        let missing = self.missing();
        if missing.is_empty() {
            let mode = match self.image_to_video {
                Some(true) => "image-to-video",
                Some(false) => "text-to-video",
                None => "unknown mode",
            };
            format!("model ready: {mode}, all {} components found", self.components.len())
        } else {
            format!(
                "{}: not a complete Tora model folder; missing {} (see the Models tab for where to get them)",
                self.dir.display(),
                missing.join(", ")
            )
        }
    }
}

/// Scans `dir`: headers and configs only.
pub fn scan(dir: &Path) -> FolderReport {
    let mut report = FolderReport {
        dir: dir.to_path_buf(),
        problem: None,
        components: Vec::new(),
        image_to_video: None,
        fixed_size: false,
    };
    if dir.as_os_str().is_empty() {
        report.problem = Some("no model folder chosen: choose the folder holding model_index.json".into());
        return report;
    }
    if !dir.is_dir() {
        report.problem = Some(format!("{}: no such folder; choose the folder holding model_index.json", dir.display()));
        return report;
    }
    let index: Option<ModelIndex> = read_config(&dir.join("model_index.json")).ok();
    for e in &EXPECTED {
        report.components.push(scan_component(dir, e, index.as_ref()));
    }
    if let Ok(shape) = read_config::<TransformerShape>(&dir.join("transformer").join("config.json")) {
        let out = shape.out_channels.unwrap_or(shape.in_channels);
        report.image_to_video = Some(shape.in_channels > out);
        report.fixed_size = shape.use_learned_positional_embeddings;
    }
    report
}

fn scan_component(root: &Path, e: &Expected, index: Option<&ModelIndex>) -> ComponentReport {
    let dir = root.join(e.name);
    let mut c = ComponentReport {
        name: e.name,
        role: e.role,
        dir: dir.clone(),
        class: index.and_then(|i| i.component(e.name)).map(|(_, class)| class),
        problem: None,
        format: String::new(),
        bytes: 0,
        params: 0,
        stored_dtype: None,
        parts: Vec::new(),
        source: e.source,
    };
    if !dir.is_dir() {
        c.problem = Some(format!("{}/ is missing", e.name));
        return c;
    }
    match e.kind {
        Kind::Tokenizer => {
            if dir.join("spiece.model").is_file() {
                c.format = "SentencePiece (spiece.model)".into();
            } else {
                c.problem = Some(format!("{}/spiece.model is missing", e.name));
            }
        }
        Kind::Scheduler => {
            if dir.join("scheduler_config.json").is_file() {
                c.format = "scheduler_config.json".into();
            } else {
                c.problem = Some(format!("{}/scheduler_config.json is missing", e.name));
            }
        }
        Kind::Weights => {
            if !dir.join("config.json").is_file() {
                c.problem = Some(format!("{}/config.json is missing", e.name));
                return c;
            }
            match Checkpoint::open_dir(&dir) {
                Ok(ckpt) => {
                    let shards = {
                        let mut files: Vec<&Path> = ckpt.keys().filter_map(|k| ckpt.file_of(k)).collect();
                        files.sort();
                        files.dedup();
                        files.len()
                    };
                    c.format = if shards == 1 { "safetensors".into() } else { format!("safetensors, {shards} shards") };
                    c.bytes = ckpt.data_bytes() as u64;
                    c.params =
                        ckpt.keys().filter_map(|k| ckpt.shape(k)).map(|s| s.iter().product::<usize>() as u64).sum();
                    c.stored_dtype = match (c.bytes, c.params) {
                        (_, 0) => None,
                        (b, p) if b == 2 * p => Some("bf16/f16"),
                        (b, p) if b == 4 * p => Some("f32"),
                        _ => Some("mixed"),
                    };
                    if ckpt.keys().any(|k| k.starts_with("traj_extractor.")) {
                        c.parts.push("trajectory extractor");
                    }
                    if ckpt.keys().any(|k| k.starts_with("fuser.")) {
                        c.parts.push("motion fuser");
                    }
                    if e.name == "transformer" && c.parts.len() < 2 {
                        c.problem = Some(
                            "transformer/ has no Tora trajectory extractor or motion fuser weights (a plain CogVideoX transformer?)"
                                .into(),
                        );
                    }
                }
                Err(err) => c.problem = Some(err.to_string()),
            }
        }
    }
    c
}

/// Runs scans off the UI thread and keeps the latest report.
#[derive(Default)]
pub struct ModelScanner {
    report: Option<FolderReport>,
    pending: Option<(PathBuf, Receiver<FolderReport>)>,
}

impl ModelScanner {
    /// Starts scanning `dir` unless it is already the scanned or scanning folder.
    pub fn request(&mut self, dir: &Path, ctx: &egui::Context) {
        let current = self.pending.as_ref().map(|(d, _)| d.as_path()).or(self.report.as_ref().map(|r| r.dir.as_path()));
        if current == Some(dir) {
            return;
        }
        self.rescan(dir, ctx);
    }

    pub fn rescan(&mut self, dir: &Path, ctx: &egui::Context) {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let path = dir.to_path_buf();
        let ctx = ctx.clone();
        let spawned = std::thread::Builder::new().name("tora-model-scan".into()).spawn(move || {
            let _ = tx.send(scan(&path));
            ctx.request_repaint();
        });
        match spawned {
            Ok(_) => self.pending = Some((dir.to_path_buf(), rx)),
            Err(_) => {
                self.report = Some(scan(dir));
                self.pending = None;
            }
        }
    }

    /// Picks up a finished scan.
    pub fn poll(&mut self) {
        if let Some((_, rx)) = &self.pending {
            match rx.try_recv() {
                Ok(report) => {
                    self.report = Some(report);
                    self.pending = None;
                }
                Err(TryRecvError::Empty) => {}
                Err(TryRecvError::Disconnected) => self.pending = None,
            }
        }
    }

    /// The report for `dir`, when its scan has finished.
    pub fn report_for(&self, dir: &Path) -> Option<&FolderReport> {
        self.report.as_ref().filter(|r| r.dir == dir)
    }

    pub fn scanning(&self) -> bool {
        self.pending.is_some()
    }
}

impl StudioApp {
    pub(super) fn model_manager(&mut self, ui: &mut egui::Ui) {
        ui.heading("Model");
        self.model_folder_row(ui);
        let dir = self.model_dir();
        if self.models.scanning() {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label("looking at the folder...");
            });
        }
        let Some(report) = self.models.report_for(&dir).cloned() else {
            return;
        };
        if ui.small_button("Rescan").clicked() {
            self.models.rescan(&dir, ui.ctx());
        }
        if let Some(p) = &report.problem {
            ui.colored_label(ERROR_COLOUR, p);
            return;
        }
        match report.image_to_video {
            Some(true) => ui.label("image-to-video: needs a first-frame image"),
            Some(false) => ui.label("text-to-video"),
            None => ui.weak("mode unknown (no readable transformer/config.json)"),
        };
        if report.fixed_size {
            ui.weak("learned positional embedding: the output size and frame count are fixed by the model");
        }
        let (f32_bytes, f16_bytes) = report.memory_estimate();
        ui.label(format!(
            "weights in memory: about {} at f32 (CPU), {} at f16 (GPU); phases load one model at a time",
            format_bytes(f32_bytes),
            format_bytes(f16_bytes)
        ));
        ui.separator();
        for c in &report.components {
            component_card(ui, c);
        }
    }

    /// The model folder field with its picker (shared by the Generate and Models tabs).
    pub(super) fn model_folder_row(&mut self, ui: &mut egui::Ui) {
        let mut changed = false;
        ui.horizontal(|ui| {
            let label = ui.label("model folder");
            let edit = ui
                .add(
                    egui::TextEdit::singleline(&mut self.state.generate.model_dir)
                        .desired_width((ui.available_width() - 70.0).max(80.0))
                        .hint_text("folder with model_index.json"),
                )
                .labelled_by(label.id);
            changed |=
                edit.lost_focus() || (edit.changed() && Path::new(self.state.generate.model_dir.trim()).is_dir());
            if ui.button("Browse...").clicked() && self.dialogs {
                if let Some(dir) = rfd::FileDialog::new().set_title("Choose the model folder").pick_folder() {
                    self.state.generate.model_dir = dir.display().to_string();
                    changed = true;
                }
            }
        });
        let dir = self.model_dir();
        if changed {
            self.models.request(&dir, ui.ctx());
        }
    }

    /// The scan of the chosen model folder, once it is done.
    pub fn model_report(&self) -> Option<&FolderReport> {
        self.models.report_for(&self.model_dir())
    }

    /// Keeps the report in step with the folder field (scans run in the background).
    pub(super) fn poll_models(&mut self, ctx: &egui::Context) {
        self.models.poll();
        let dir = self.model_dir();
        if !dir.as_os_str().is_empty() && self.models.report_for(&dir).is_none() && !self.models.scanning() {
            self.models.request(&dir, ctx);
        }
    }

    pub(super) fn model_dir(&self) -> PathBuf {
        PathBuf::from(self.state.generate.model_dir.trim())
    }
}

pub const ERROR_COLOUR: egui::Color32 = egui::Color32::from_rgb(235, 90, 90);
const OK_COLOUR: egui::Color32 = egui::Color32::from_rgb(110, 200, 120);

fn component_card(ui: &mut egui::Ui, c: &ComponentReport) {
    ui.horizontal(|ui| {
        let (mark, colour) = if c.found() { ("found", OK_COLOUR) } else { ("missing", ERROR_COLOUR) };
        ui.colored_label(colour, mark);
        ui.strong(c.name);
        ui.weak(c.role);
    });
    ui.indent(c.name, |ui| {
        if let Some(class) = &c.class {
            ui.weak(format!("class {class}"));
        }
        if let Some(problem) = &c.problem {
            ui.colored_label(ERROR_COLOUR, problem);
            ui.weak(format!("get it from {}", c.source));
            return;
        }
        let mut line = c.format.clone();
        if c.params > 0 {
            line.push_str(&format!(
                ", {} stored ({}), {:.2} B params, ~{} at f32",
                format_bytes(c.bytes),
                c.stored_dtype.unwrap_or("?"),
                c.params as f64 / 1e9,
                format_bytes(c.params * 4)
            ));
        }
        ui.label(line);
        if !c.parts.is_empty() {
            ui.weak(format!("with {}", c.parts.join(" and ")));
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_folder_is_a_clear_problem() {
        let r = scan(Path::new("/nonexistent/tora"));
        assert!(!r.usable());
        assert!(r.summary().contains("no such folder"), "{}", r.summary());
    }

    #[test]
    fn an_empty_folder_lists_every_component_as_missing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let r = scan(dir.path());
        assert_eq!(r.missing(), ["transformer", "vae", "text_encoder", "tokenizer", "scheduler"]);
        assert!(r.summary().contains("missing transformer, vae"), "{}", r.summary());
    }
}
