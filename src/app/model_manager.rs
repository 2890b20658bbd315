//! The model manager (issue 9): which components a model folder holds, in what format and size,
//! what the f32/f16 weights will take in memory, what is missing and where to get it.
//!
//! The folder is scanned on a background thread (safetensors headers only, never the weights),
//! so a slow disk never stalls the UI. The Generate panel reads the same report to validate the
//! folder before a run.

use std::path::{Path, PathBuf};

use crate::model::cogvideox::ModelSource;
use crate::model::load::model_folder::{Component, ComponentKind, FolderKind, ModelFolder};
use crate::pipeline::memory::format_bytes;
use crossbeam_channel::{Receiver, TryRecvError};
use eframe::egui;

use super::StudioApp;

/// Where users get the released weights (models/cogvideox-5b-tora.json, models/t5-v1_1-xxl.json).
const TORA_SOURCE: &str =
    "huggingface.co/Alibaba-Research-Intelligence-Computing/Tora (diffusers folder, or sat/ckpts)";
const COGVIDEOX_SOURCE: &str = "huggingface.co/THUDM/CogVideoX-5b (or CogVideoX-5b-I2V for image-to-video)";

const OPENSORA_SOURCE: &str =
    "huggingface.co/hpcai-tech/OpenSora-STDiT-v3 and OpenSora-VAE-v1.2 (T5: DeepFloyd/t5-v1_1-xxl)";

/// Where a missing component of a folder of this kind comes from.
pub fn source_of(kind: ComponentKind, folder: &FolderKind) -> &'static str {
    match (folder, kind) {
        (FolderKind::OpenSora, _) => OPENSORA_SOURCE,
        (_, ComponentKind::Transformer | ComponentKind::ModelConfig | ComponentKind::MotionWeights) => TORA_SOURCE,
        _ => COGVIDEOX_SOURCE,
    }
}

/// What a diffusers Tora pipeline folder must hold, and the subfolder each lives in.
const REQUIRED: [(ComponentKind, &str); 5] = [
    (ComponentKind::Transformer, "transformer"),
    (ComponentKind::Vae, "vae"),
    (ComponentKind::TextEncoder, "text_encoder"),
    (ComponentKind::Tokenizer, "tokenizer"),
    (ComponentKind::Scheduler, "scheduler"),
];

/// Weights in memory per stored byte when computing at f32 (bf16/f16 double, f64 halves).
fn f32_bytes(c: &Component) -> u64 {
    match c.dtype.as_deref().map(|d| d.split_whitespace().next().unwrap_or("")) {
        Some("bf16" | "f16") => c.bytes * 2,
        Some("f64") => c.bytes / 2,
        Some(_) => c.bytes,
        None => 0, // tokenizer, configs: no weights
    }
}

/// What a model folder holds, for the Models tab and the Generate panel's check.
#[derive(Debug, Clone)]
pub struct FolderReport {
    pub dir: PathBuf,
    /// The recognised folder, or why it is not one.
    pub folder: Result<ModelFolder, String>,
    /// From the transformer config (or the SAT variant): it takes image latents (I2V).
    pub image_to_video: Option<bool>,
    /// From the transformer config: a learned positional embedding fixes the output size.
    pub fixed_size: bool,
}

impl FolderReport {
    pub fn components(&self) -> &[Component] {
        self.folder.as_ref().map_or(&[], |f| f.components.as_slice())
    }

    /// What a run needs that the folder lacks, with where it was looked for.
    pub fn missing_parts(&self) -> Vec<(ComponentKind, String)> {
        let Ok(folder) = &self.folder else { return Vec::new() };
        let mut out: Vec<(ComponentKind, String)> = folder.missing.iter().map(|m| (m.kind, m.hint.clone())).collect();
        if matches!(folder.kind, FolderKind::Diffusers { .. }) {
            // The index may simply not name a component; a Tora run still needs every one.
            for (kind, dir) in REQUIRED {
                if folder.component(kind).is_none() && !out.iter().any(|(k, _)| *k == kind) {
                    out.push((kind, format!("{dir}/ is missing")));
                }
            }
        }
        out
    }

    pub fn missing(&self) -> Vec<&'static str> {
        self.missing_parts().into_iter().map(|(k, _)| k.name()).collect()
    }

    /// A whole pipeline (diffusers or SAT) with nothing missing.
    pub fn usable(&self) -> bool {
        match &self.folder {
            Ok(f) => self.missing_parts().is_empty() && !matches!(f.kind, FolderKind::Component(_)),
            Err(_) => false,
        }
    }

    /// Weights in memory at f32 (the CPU path) and f16 (wgpu).
    pub fn memory_estimate(&self) -> (u64, u64) {
        let f32: u64 = self.components().iter().map(f32_bytes).sum();
        (f32, f32 / 2)
    }

    /// One line for the Generate panel.
    pub fn summary(&self) -> String {
        let folder = match &self.folder {
            Err(e) => return format!("not a Tora model folder: {e}"),
            Ok(f) => f,
        };
        if let FolderKind::Component(k) = folder.kind {
            return format!(
                "{}: this is only the {} folder; choose the pipeline folder above it (the one holding model_index.json)",
                self.dir.display(),
                k.name()
            );
        }
        let missing = self.missing();
        if missing.is_empty() {
            let mode = match self.image_to_video {
                Some(true) => "image-to-video",
                Some(false) => "text-to-video",
                None => "unknown mode",
            };
            format!("model ready: {mode}, all {} components found", folder.components.len())
        } else {
            format!(
                "{}: not a complete Tora model folder; missing {} (the Models tab says where to get them)",
                self.dir.display(),
                missing.join(", ")
            )
        }
    }
}

/// Scans `dir`: headers and configs only.
pub fn scan(dir: &Path) -> FolderReport {
    let mut report =
        FolderReport { dir: dir.to_path_buf(), folder: Err(String::new()), image_to_video: None, fixed_size: false };
    if dir.as_os_str().is_empty() {
        report.folder =
            Err("no model folder chosen: choose a diffusers folder (model_index.json) or Tora's SAT ckpts/ folder"
                .into());
        return report;
    }
    report.folder = ModelFolder::inspect(dir).map_err(|e| e.to_string());
    if matches!(report.folder, Ok(ModelFolder { kind: FolderKind::OpenSora, .. })) {
        report.image_to_video = Some(false);
        return report;
    }
    // The same config (and SAT semantics) the run will use: from config.json or the SAT yaml.
    if let Ok(config) = ModelSource::open(dir).and_then(|source| source.transformer_config()) {
        let limits = crate::pipeline::tora::limits(&config);
        report.image_to_video = Some(limits.image_conditioned);
        report.fixed_size = limits.fixed_grid.is_some();
    }
    report
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
        let folder = match &report.folder {
            Ok(f) => f,
            Err(e) => {
                ui.colored_label(ERROR_COLOUR, format!("not a Tora model folder: {e}"));
                return;
            }
        };
        ui.label(match &folder.kind {
            FolderKind::Diffusers { class } => format!("diffusers pipeline {class}"),
            FolderKind::Sat => "Tora SAT checkpoint tree (runs as Tora's SAT code does: no learned positional \
                                embedding added, final LayerNorm eps 1e-6)"
                .to_string(),
            FolderKind::OpenSora => {
                let tora = folder.component(ComponentKind::MotionWeights).is_some();
                format!(
                    "OpenSora 1.2 (the paper's backbone), text-to-video; {}",
                    if tora {
                        "with Tora's motion weights"
                    } else {
                        "no Tora motion weights (tora_motion.safetensors): plain OpenSora, the trajectory has no effect"
                    }
                )
            }
            FolderKind::Component(k) => format!("only a {} folder: choose the pipeline folder above it", k.name()),
        });
        match report.image_to_video {
            Some(true) => ui.label("image-to-video: needs a first-frame image"),
            Some(false) => ui.label("text-to-video"),
            None => ui.weak("mode unknown (no readable transformer config)"),
        };
        if report.fixed_size {
            ui.weak("learned positional embedding: the output size and frame count are fixed by the model");
        }
        let (f32_bytes, f16_bytes) = report.memory_estimate();
        ui.label(format!(
            "weights in memory: about {} at f32 (CPU), {} at f16 (GPU); a run loads one model at a time",
            format_bytes(f32_bytes),
            format_bytes(f16_bytes)
        ));
        ui.separator();
        for c in &folder.components {
            component_card(ui, c);
        }
        for (kind, hint) in report.missing_parts() {
            ui.horizontal(|ui| {
                ui.colored_label(ERROR_COLOUR, "missing");
                ui.strong(kind.name());
            });
            ui.indent(kind.name(), |ui| {
                ui.colored_label(ERROR_COLOUR, hint);
                ui.weak(format!("get it from {}", source_of(kind, &folder.kind)));
            });
        }
    }

    /// The model folder field with its picker (shared by the Generate and Models tabs).
    pub(super) fn model_folder_row(&mut self, ui: &mut egui::Ui) {
        let mut changed = false;
        ui.horizontal(|ui| {
            let label = ui.label("model folder");
            // Right to left: the button takes its width first and the field fills what is left,
            // so the row never asks for more than the panel has.
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                if ui.button("Browse...").clicked() && self.dialogs {
                    if let Some(dir) = rfd::FileDialog::new().set_title("Choose the model folder").pick_folder() {
                        self.state.generate.model_dir = dir.display().to_string();
                        changed = true;
                    }
                }
                let edit = ui
                    .add(
                        egui::TextEdit::singleline(&mut self.state.generate.model_dir)
                            .desired_width(ui.available_width())
                            .hint_text("diffusers folder (model_index.json) or Tora's SAT ckpts/"),
                    )
                    .labelled_by(label.id);
                changed |=
                    edit.lost_focus() || (edit.changed() && Path::new(self.state.generate.model_dir.trim()).is_dir());
            });
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

fn component_card(ui: &mut egui::Ui, c: &Component) {
    ui.horizontal(|ui| {
        ui.colored_label(OK_COLOUR, "found");
        ui.strong(c.kind.name());
    });
    ui.indent(c.kind.name(), |ui| {
        let mut line = format!("{:?}", c.format);
        if let Some(d) = &c.dtype {
            line.push_str(&format!(", {d}"));
        }
        if let Some(v) = &c.variant {
            line.push_str(&format!(" [{v}]"));
        }
        line.push_str(&format!(", {} on disk", format_bytes(c.bytes)));
        let memory = f32_bytes(c);
        if memory > 0 {
            line.push_str(&format!(", ~{} at f32", format_bytes(memory)));
        }
        ui.label(line);
        ui.weak(c.path.display().to_string());
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_folder_is_a_clear_problem() {
        let r = scan(Path::new("/nonexistent/tora"));
        assert!(!r.usable());
        assert!(r.summary().contains("not a Tora model folder"), "{}", r.summary());
    }

    #[test]
    fn an_index_without_components_lists_what_is_missing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let index = r#"{"_class_name": "ToraPipeline", "vae": ["diffusers", "AutoencoderKLCogVideoX"]}"#;
        std::fs::write(dir.path().join("model_index.json"), index).expect("write");
        let r = scan(dir.path());
        assert!(!r.usable());
        let missing = r.missing();
        for part in ["vae", "tokenizer", "scheduler", "transformer", "text encoder"] {
            assert!(missing.iter().any(|m| m.starts_with(part)), "{part} not in {missing:?}");
        }
        assert!(r.summary().contains("not a complete Tora model folder"), "{}", r.summary());
    }
}
