//! Diffusers-style model folders: `model_index.json` + one subfolder per component, each with its
//! `config.json` and weights. A component folder can also be given directly.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::LoadError;

/// Reads and deserialises a JSON config (unknown fields are ignored by the config structs).
pub fn read_config<T: DeserializeOwned>(path: &Path) -> Result<T, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|e| LoadError::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| LoadError::Config { path: path.into(), reason: e.to_string() })
}

/// `model_index.json`: component name -> `[library, class]` (other entries are strings).
#[derive(Debug, Clone, Deserialize)]
pub struct ModelIndex {
    #[serde(rename = "_class_name", default)]
    pub class_name: Option<String>,
    #[serde(flatten)]
    pub entries: std::collections::BTreeMap<String, serde_json::Value>,
}

impl ModelIndex {
    /// `(library, class)` of a component, if the index names one.
    pub fn component(&self, name: &str) -> Option<(String, String)> {
        let v = self.entries.get(name)?.as_array()?;
        match v.as_slice() {
            [lib, class] => Some((lib.as_str()?.to_string(), class.as_str()?.to_string())),
            _ => None,
        }
    }
}

/// A component's folder (weights + `config.json`) inside a pipeline folder or given directly.
#[derive(Debug, Clone)]
pub struct ComponentDir {
    pub dir: PathBuf,
    /// The pipeline folder it belongs to, when found through `model_index.json` / a subfolder.
    pub pipeline: Option<PathBuf>,
}

impl ComponentDir {
    /// Finds component `name` (e.g. `text_encoder`) given either the pipeline folder or the
    /// component folder itself. When the pipeline has a `model_index.json` naming the component,
    /// its class must be one of `classes`.
    pub fn find(given: &Path, name: &str, classes: &[&str]) -> Result<Self, LoadError> {
        if !given.is_dir() {
            return Err(LoadError::NotFound { path: given.into(), hint: " (expected a model folder)".into() });
        }
        let index_path = given.join("model_index.json");
        if index_path.is_file() {
            let index: ModelIndex = read_config(&index_path)?;
            if let Some((_, class)) = index.component(name) {
                if !classes.contains(&class.as_str()) {
                    return Err(LoadError::Unsupported {
                        path: index_path,
                        reason: format!("component '{name}' is {class}; supported: {}", classes.join(", ")),
                    });
                }
            }
        }
        let sub = given.join(name);
        if sub.join("config.json").is_file() {
            return Ok(ComponentDir { dir: sub, pipeline: Some(given.into()) });
        }
        if given.join("config.json").is_file() {
            return Ok(ComponentDir { dir: given.into(), pipeline: None });
        }
        Err(LoadError::NotFound {
            path: sub.join("config.json"),
            hint: format!(" (give the pipeline folder holding {name}/, or the {name} folder itself)"),
        })
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.join("config.json")
    }
}
