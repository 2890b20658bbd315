//! Checkpoint loading from real model layouts.
//!
//! - [`folder`]: a diffusers pipeline folder (`model_index.json`, one subfolder per component with
//!   its `config.json`) and the component's weight files;
//! - [`checkpoint`]: single or sharded (`*.safetensors.index.json`) safetensors, memory-mapped,
//!   bf16/f16/f32/f64 converted to the compute dtype tensor by tensor;
//! - [`LoadError`]: every failure as a value naming the file (and key) it came from.
//!
//! - [`pt`]: PyTorch zip checkpoints (`torch.save`: `.pt`, `.pth`, zip `.bin`) read strictly as
//!   data — a pickle VM that only builds tensors and plain containers and refuses anything else;
//! - [`sat`]: Tora's SwissArmyTransformer checkpoints served under diffusers names (one table);
//! - [`model_folder`]: what a model folder is (diffusers pipeline, SAT tree, single component).
//!
//! Loading never executes code from the files: safetensors, JSON, YAML and the data of torch zip
//! pickles are read; legacy (non-zip) pickles are refused with a message saying how to convert them.

pub mod checkpoint;
pub mod folder;
pub mod model_folder;
pub mod pt;
pub mod sat;
pub mod yaml;

use std::path::PathBuf;

pub use checkpoint::{Checkpoint, Layout, Served, TensorLoader};
pub use folder::{read_config, ComponentDir};

/// One tensor whose stored shape differs from what the model expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapeMismatch {
    pub key: String,
    pub file: PathBuf,
    pub expected: Vec<usize>,
    pub found: Vec<usize>,
}

/// Why a model could not be loaded. Every variant names the file it concerns.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: cannot read: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: not found{hint}")]
    NotFound { path: PathBuf, hint: String },
    #[error("{path}: invalid JSON config: {reason}")]
    Config { path: PathBuf, reason: String },
    #[error("{path}: unsupported model: {reason}")]
    Unsupported { path: PathBuf, reason: String },
    #[error("{path}: not a valid safetensors file ({reason}); the file may be truncated or corrupt: re-download it")]
    Safetensors { path: PathBuf, reason: String },
    #[error("{index}: shard '{shard}' (holding {keys} tensors, e.g. '{example}') is missing: {path} does not exist; download every shard the index lists")]
    MissingShard { index: PathBuf, shard: String, path: PathBuf, keys: usize, example: String },
    #[error("{index}: says '{key}' is in {shard}, but that file has no such tensor")]
    IndexMismatch { index: PathBuf, shard: PathBuf, key: String },
    #[error("{path}: tensor '{key}' has dtype {dtype}, which cannot be converted to a float compute dtype")]
    Dtype { path: PathBuf, key: String, dtype: String },
    #[error("{path}: '{file}' is not a torch.save zip archive (a legacy pickle, or not a checkpoint); it cannot be read as plain data: re-save it with a current torch.save or convert it to safetensors")]
    Pickle { path: PathBuf, file: String },
    #[error("{path}: refused: the checkpoint's pickle references '{global}', which is neither a tensor nor a plain container (nothing was executed; only state dicts of tensors are loaded)")]
    PickleGlobal { path: PathBuf, global: String },
    #[error(
        "{path}: not a readable PyTorch checkpoint: {reason}; the file may be truncated or corrupt: re-download it"
    )]
    Pt { path: PathBuf, reason: String },
    #[error("{path}: no top-level '{key}' entry holding the weights ({found})")]
    MissingTopKey { path: PathBuf, key: String, found: String },
    #[error("{}", keys_message(.dir, .missing, .unexpected, .mismatched))]
    Keys {
        /// The folder (or file) the weights came from.
        dir: PathBuf,
        /// Keys the model needs that no file holds.
        missing: Vec<String>,
        /// Keys the files hold that the model does not use, with the file each is in.
        unexpected: Vec<(String, PathBuf)>,
        /// Keys present with the wrong shape.
        mismatched: Vec<ShapeMismatch>,
    },
    #[error("tensor runtime error while loading {path}: {reason}")]
    Runtime { path: PathBuf, reason: String },
}

fn keys_message(
    dir: &std::path::Path,
    missing: &[String],
    unexpected: &[(String, PathBuf)],
    mismatched: &[ShapeMismatch],
) -> String {
    const SHOW: usize = 20;
    let mut s = format!("{}: the weights do not fit the model", dir.display());
    if !missing.is_empty() {
        s.push_str(&format!("\n  {} missing key(s):", missing.len()));
        for k in missing.iter().take(SHOW) {
            s.push_str(&format!("\n    {k}"));
        }
        if missing.len() > SHOW {
            s.push_str(&format!("\n    ... and {} more", missing.len() - SHOW));
        }
    }
    if !mismatched.is_empty() {
        s.push_str(&format!("\n  {} shape mismatch(es):", mismatched.len()));
        for m in mismatched.iter().take(SHOW) {
            s.push_str(&format!(
                "\n    {} in {}: expected {:?}, found {:?}",
                m.key,
                m.file.display(),
                m.expected,
                m.found
            ));
        }
        if mismatched.len() > SHOW {
            s.push_str(&format!("\n    ... and {} more", mismatched.len() - SHOW));
        }
    }
    if !unexpected.is_empty() {
        s.push_str(&format!("\n  {} unexpected key(s):", unexpected.len()));
        for (k, f) in unexpected.iter().take(SHOW) {
            s.push_str(&format!("\n    {k} (in {})", f.display()));
        }
        if unexpected.len() > SHOW {
            s.push_str(&format!("\n    ... and {} more", unexpected.len() - SHOW));
        }
    }
    s
}

impl LoadError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        let path = path.into();
        if source.kind() == std::io::ErrorKind::NotFound {
            LoadError::NotFound { path, hint: String::new() }
        } else {
            LoadError::Io { path, source }
        }
    }
}
