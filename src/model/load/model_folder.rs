//! What a model folder is, told by what is in it:
//! - a diffusers pipeline (`model_index.json`: `ToraPipeline`, `ToraImageToVideoPipeline`,
//!   `CogVideoX*`) with one subfolder per component;
//! - Tora's SAT tree (`sat/ckpts/`: `tora/<i2v|t2v>/mp_rank_00_model_states.pt`, `vae/3d-vae.pt`,
//!   a T5 folder, and the model yaml `cogvideox_5b_tora[_i2v].yaml`, found in the folder or in
//!   `../configs/tora/model/` as in Tora's repository);
//! - a single component folder (`config.json` + weights).
//!
//! [`ModelFolder::inspect`] lists the components found (format, dtype, bytes) and what is missing,
//! with where to get it. [`SatYaml`] turns the SAT yaml into the diffusers `config.json` values of
//! the transformer and the VAE, so one config type serves both layouts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::checkpoint::Checkpoint;
use super::folder::{read_config, ModelIndex};
use super::LoadError;

/// The pipeline classes whose folders we run.
pub const PIPELINE_CLASSES: &[&str] = &["ToraPipeline", "ToraImageToVideoPipeline"];

/// What kind of folder it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FolderKind {
    /// `model_index.json` with this `_class_name`.
    Diffusers { class: String },
    /// Tora's SAT checkpoint tree.
    Sat,
    /// OpenSora 1.2: `stdit3/` + `vae/` (+ T5, + Tora's TE/MGF weights when there are any).
    OpenSora,
    /// One component's folder.
    Component(ComponentKind),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ComponentKind {
    /// The diffusion transformer with Tora's trajectory extractor and MGF fusers.
    Transformer,
    Vae,
    TextEncoder,
    Tokenizer,
    Scheduler,
    /// SAT's model yaml (network sizes, VAE sizes, sampler).
    ModelConfig,
    /// Tora's TE/MGF weights apart from the backbone (OpenSora: `tora_motion.safetensors`).
    MotionWeights,
}

impl ComponentKind {
    pub fn name(self) -> &'static str {
        match self {
            ComponentKind::Transformer => "transformer (+traj extractor, MGF)",
            ComponentKind::Vae => "vae",
            ComponentKind::TextEncoder => "text encoder (T5)",
            ComponentKind::Tokenizer => "tokenizer",
            ComponentKind::Scheduler => "scheduler",
            ComponentKind::ModelConfig => "model config (yaml)",
            ComponentKind::MotionWeights => "Tora motion weights (TE + MGF)",
        }
    }
}

/// How a component is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Safetensors,
    /// `torch.save` zip checkpoint (read as data).
    Pt,
    Json,
    Yaml,
    SentencePiece,
}

/// One component found in the folder.
#[derive(Debug, Clone)]
pub struct Component {
    pub kind: ComponentKind,
    /// The weight file, index, or folder.
    pub path: PathBuf,
    pub format: Format,
    /// Stored dtype(s) of the weights by share of bytes, e.g. `bf16` or `f32 (+i64)`.
    pub dtype: Option<String>,
    /// Bytes on disk.
    pub bytes: u64,
    /// The SAT variant (`i2v`, `t2v`) of a SAT transformer.
    pub variant: Option<String>,
}

/// Something a runnable model needs that the folder lacks.
#[derive(Debug, Clone)]
pub struct Missing {
    pub kind: ComponentKind,
    /// Where it was looked for and where to get it.
    pub hint: String,
}

/// What a folder holds.
#[derive(Debug, Clone)]
pub struct ModelFolder {
    pub root: PathBuf,
    pub kind: FolderKind,
    pub components: Vec<Component>,
    pub missing: Vec<Missing>,
}

impl ModelFolder {
    /// Recognises `path` by its content. Errors only when it is not a folder we know.
    pub fn inspect(path: &Path) -> Result<Self, LoadError> {
        if !path.is_dir() {
            return Err(LoadError::NotFound { path: path.into(), hint: " (expected a model folder)".into() });
        }
        let index = path.join("model_index.json");
        if index.is_file() {
            return inspect_diffusers(path, &index);
        }
        if SatTree::looks_like(path) {
            return SatTree::find(path).map(|t| t.inspect());
        }
        if is_opensora_folder(path) {
            return Ok(inspect_opensora(path));
        }
        if path.join("config.json").is_file() {
            return inspect_component(path);
        }
        Err(LoadError::Unsupported {
            path: path.into(),
            reason: "neither a diffusers pipeline (model_index.json), nor Tora's SAT tree \
                     (tora/<i2v|t2v>/mp_rank_00_model_states.pt, vae/3d-vae.pt), nor a component folder (config.json)"
                .into(),
        })
    }

    pub fn component(&self, kind: ComponentKind) -> Option<&Component> {
        self.components.iter().find(|c| c.kind == kind)
    }

    /// A readable summary (one line per component / missing part).
    pub fn describe(&self) -> String {
        let kind = match &self.kind {
            FolderKind::Diffusers { class } => format!("diffusers pipeline {class}"),
            FolderKind::Sat => "Tora SAT checkpoint tree".into(),
            FolderKind::OpenSora => "OpenSora 1.2 (STDiT3 + VAE v1.2)".into(),
            FolderKind::Component(k) => format!("{} folder", k.name()),
        };
        let mut s = format!("{}: {kind}", self.root.display());
        for c in &self.components {
            s.push_str(&format!(
                "\n  {:<34} {:?}{}{}  {:.1} MB  {}",
                c.kind.name(),
                c.format,
                c.dtype.as_deref().map(|d| format!(" {d}")).unwrap_or_default(),
                c.variant.as_deref().map(|v| format!(" [{v}]")).unwrap_or_default(),
                c.bytes as f64 / 1e6,
                c.path.display()
            ));
        }
        for m in &self.missing {
            s.push_str(&format!("\n  MISSING {}: {}", m.kind.name(), m.hint));
        }
        s
    }
}

fn file_bytes(path: &Path) -> u64 {
    if path.is_dir() {
        std::fs::read_dir(path)
            .map(|it| {
                it.flatten().map(|e| e.metadata().map(|m| if m.is_file() { m.len() } else { 0 }).unwrap_or(0)).sum()
            })
            .unwrap_or(0)
    } else {
        std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
    }
}

/// `bf16`, `f32 (+i64)`, ...: the dtypes of a checkpoint by share of bytes.
fn dtype_summary(ckpt: &Checkpoint) -> String {
    let mut by: BTreeMap<String, usize> = BTreeMap::new();
    for k in ckpt.keys() {
        let (Some(d), Some(shape)) = (ckpt.dtype(k), ckpt.shape(k)) else { continue };
        let name = format!("{d:?}").to_lowercase();
        *by.entry(name).or_default() += shape.iter().product::<usize>().max(1) * super::pt::elem_size(d);
    }
    let mut v: Vec<(String, usize)> = by.into_iter().collect();
    v.sort_by_key(|d| std::cmp::Reverse(d.1));
    match v.split_first() {
        None => "empty".into(),
        Some(((main, _), [])) => main.clone(),
        Some(((main, _), rest)) => {
            format!("{main} (+{})", rest.iter().map(|(d, _)| d.as_str()).collect::<Vec<_>>().join(", "))
        }
    }
}

fn weights_component(kind: ComponentKind, dir: &Path, variant: Option<String>) -> Result<Component, LoadError> {
    let ckpt = Checkpoint::open_dir(dir)?;
    let source = ckpt.source().to_path_buf();
    let is_pt = !source.to_string_lossy().contains(".safetensors");
    Ok(Component {
        kind,
        format: if is_pt { Format::Pt } else { Format::Safetensors },
        dtype: Some(dtype_summary(&ckpt)),
        bytes: file_bytes(dir),
        path: source,
        variant,
    })
}

fn tokenizer_component(dir: &Path) -> Option<Component> {
    let (file, format) = [("spiece.model", Format::SentencePiece), ("tokenizer.json", Format::Json)]
        .into_iter()
        .map(|(f, fmt)| (dir.join(f), fmt))
        .find(|(p, _)| p.is_file())?;
    Some(Component {
        kind: ComponentKind::Tokenizer,
        bytes: file_bytes(&file),
        path: file,
        format,
        dtype: None,
        variant: None,
    })
}

fn inspect_diffusers(root: &Path, index_path: &Path) -> Result<ModelFolder, LoadError> {
    let index: ModelIndex = read_config(index_path)?;
    let class = index.class_name.clone().unwrap_or_default();
    let mut components = Vec::new();
    let mut missing = Vec::new();
    let weights = [
        ("transformer", ComponentKind::Transformer),
        ("vae", ComponentKind::Vae),
        ("text_encoder", ComponentKind::TextEncoder),
    ];
    for (name, kind) in weights {
        let dir = root.join(name);
        if index.component(name).is_none() && !dir.is_dir() {
            continue;
        }
        match weights_component(kind, &dir, None) {
            Ok(c) => components.push(c),
            Err(e) => missing.push(Missing { kind, hint: format!("{name}/: {e}") }),
        }
    }
    match tokenizer_component(&root.join("tokenizer")) {
        Some(c) => components.push(c),
        None => missing.push(Missing {
            kind: ComponentKind::Tokenizer,
            hint: "tokenizer/spiece.model (the T5 v1.1 tokenizer of CogVideoX)".into(),
        }),
    }
    let sched = root.join("scheduler/scheduler_config.json");
    if sched.is_file() {
        components.push(Component {
            kind: ComponentKind::Scheduler,
            bytes: file_bytes(&sched),
            path: sched,
            format: Format::Json,
            dtype: None,
            variant: None,
        });
    } else {
        missing.push(Missing { kind: ComponentKind::Scheduler, hint: "scheduler/scheduler_config.json".into() });
    }
    Ok(ModelFolder { root: root.into(), kind: FolderKind::Diffusers { class }, components, missing })
}

/// The file of Tora's TE/MGF weights for STDiT3 looked for in an OpenSora folder.
pub const OPENSORA_MOTION_WEIGHTS: &str = "tora_motion.safetensors";

/// True when `dir` is an OpenSora model folder (a STDiT3 `config.json` in `stdit3/` or in `dir`).
pub fn is_opensora_folder(dir: &Path) -> bool {
    [dir.join("stdit3").join("config.json"), dir.join("config.json")].iter().any(|p| {
        read_config::<Value>(p).is_ok_and(|v| {
            v.get("model_type").and_then(Value::as_str) == Some("STDiT3")
                || v.get("architectures").and_then(|a| a.get(0)).and_then(Value::as_str) == Some("STDiT3")
        })
    })
}

/// Where an OpenSora folder keeps T5: `t5-v1_1-xxl/` or `t5/` (encoder and tokenizer together),
/// or `text_encoder/` + `tokenizer/` (diffusers style; the folder itself is returned).
pub fn opensora_t5_dir(dir: &Path) -> Option<PathBuf> {
    ["t5-v1_1-xxl", "t5"]
        .iter()
        .map(|n| dir.join(n))
        .find(|d| d.join("config.json").is_file())
        .or_else(|| dir.join("text_encoder").join("config.json").is_file().then(|| dir.to_path_buf()))
}

fn inspect_opensora(root: &Path) -> ModelFolder {
    let mut components = Vec::new();
    let mut missing = Vec::new();
    let stdit3 = if root.join("stdit3").is_dir() { root.join("stdit3") } else { root.to_path_buf() };
    match weights_component(ComponentKind::Transformer, &stdit3, Some("STDiT3".into())) {
        Ok(c) => components.push(c),
        Err(e) => missing.push(Missing { kind: ComponentKind::Transformer, hint: format!("stdit3/: {e}") }),
    }
    match weights_component(ComponentKind::Vae, &root.join("vae"), None) {
        Ok(c) => components.push(c),
        Err(e) => missing.push(Missing {
            kind: ComponentKind::Vae,
            hint: format!("vae/ (hpcai-tech/OpenSora-VAE-v1.2 and the 2D VAE folder its config names): {e}"),
        }),
    }
    let t5 = opensora_t5_dir(root);
    let (encoder_dir, tokenizer_dir) = match &t5 {
        Some(d) if d == root => (root.join("text_encoder"), root.join("tokenizer")),
        Some(d) => (d.clone(), d.clone()),
        None => (root.join("t5-v1_1-xxl"), root.join("t5-v1_1-xxl")),
    };
    match weights_component(ComponentKind::TextEncoder, &encoder_dir, None) {
        Ok(c) => components.push(c),
        Err(_) => missing.push(Missing {
            kind: ComponentKind::TextEncoder,
            hint: "t5-v1_1-xxl/ (T5 v1.1 XXL, DeepFloyd/t5-v1_1-xxl; the text_encoder + tokenizer of a \
                   CogVideoX/Tora download are the same model: copy or link them here)"
                .into(),
        }),
    }
    match tokenizer_component(&tokenizer_dir) {
        Some(c) => components.push(c),
        None => missing.push(Missing {
            kind: ComponentKind::Tokenizer,
            hint: format!("{}/spiece.model (the T5 v1.1 tokenizer)", tokenizer_dir.display()),
        }),
    }
    // Optional: Tora's OpenSora TE/MGF weights were never released; without them the run is plain OpenSora.
    let motion = root.join(OPENSORA_MOTION_WEIGHTS);
    if motion.is_file() {
        components.push(Component {
            kind: ComponentKind::MotionWeights,
            format: Format::Safetensors,
            dtype: Some(match Checkpoint::open_file(&motion) {
                Ok(c) => dtype_summary(&c),
                Err(e) => format!("unreadable: {e}"),
            }),
            bytes: file_bytes(&motion),
            path: motion,
            variant: None,
        });
    }
    ModelFolder { root: root.into(), kind: FolderKind::OpenSora, components, missing }
}

fn inspect_component(dir: &Path) -> Result<ModelFolder, LoadError> {
    let config: Value = read_config(&dir.join("config.json"))?;
    let class = config.get("_class_name").and_then(Value::as_str).unwrap_or_default();
    let model_type = config.get("model_type").and_then(Value::as_str).unwrap_or_default();
    let kind = if class.contains("Transformer3D") {
        ComponentKind::Transformer
    } else if class.starts_with("AutoencoderKL") {
        ComponentKind::Vae
    } else if model_type == "t5" || model_type == "umt5" {
        ComponentKind::TextEncoder
    } else {
        return Err(LoadError::Unsupported {
            path: dir.join("config.json"),
            reason: format!("unknown component (class '{class}', model_type '{model_type}')"),
        });
    };
    let mut components = vec![weights_component(kind, dir, None)?];
    if kind == ComponentKind::TextEncoder {
        components.extend(tokenizer_component(dir));
    }
    Ok(ModelFolder { root: dir.into(), kind: FolderKind::Component(kind), components, missing: Vec::new() })
}

// ---------------------------------------------------------------------------------------------
// SAT tree

const SAT_TRANSFORMER_FILE: &str = "mp_rank_00_model_states.pt";

/// Tora's SAT checkpoint folder (`sat/ckpts/`), resolved to files.
#[derive(Debug, Clone)]
pub struct SatTree {
    pub root: PathBuf,
    /// The model yaml, when found.
    pub yaml: Option<PathBuf>,
    /// `(variant, file)`: `tora/<variant>/mp_rank_00_model_states.pt`.
    pub transformers: Vec<(String, PathBuf)>,
    pub vae: Option<PathBuf>,
    /// The T5 folder (encoder and tokenizer together, transformers layout).
    pub t5: Option<PathBuf>,
}

impl SatTree {
    /// Has the shape of a SAT tree (a transformer or VAE checkpoint where SAT puts them).
    pub fn looks_like(dir: &Path) -> bool {
        !transformer_files(dir).is_empty() || dir.join("vae/3d-vae.pt").is_file()
    }

    /// Resolves the files of the SAT tree at `root`. Paths in the yaml (`ckpts/...`) are taken
    /// relative to `root` (which plays the role of `ckpts/`).
    pub fn find(root: &Path) -> Result<Self, LoadError> {
        if !root.is_dir() {
            return Err(LoadError::NotFound { path: root.into(), hint: " (expected Tora's SAT ckpts/ folder)".into() });
        }
        let transformers = transformer_files(root);
        let yaml = find_yaml(root, &transformers);
        let parsed = yaml.as_deref().map(SatYaml::read).transpose()?;
        let vae = parsed
            .as_ref()
            .and_then(|y| y.path_at(&["model", "first_stage_config", "params", "ckpt_path"]))
            .and_then(|p| resolve_ckpts_path(root, &p))
            .or_else(|| Some(root.join("vae/3d-vae.pt")).filter(|p| p.is_file()));
        let t5 = parsed
            .as_ref()
            .and_then(|y| y.t5_model_dir())
            .and_then(|p| resolve_ckpts_path(root, &p))
            .or_else(|| find_t5_dir(root));
        Ok(SatTree { root: root.into(), yaml, transformers, vae, t5 })
    }

    /// The parsed yaml (error naming where it was looked for when absent).
    pub fn yaml(&self) -> Result<SatYaml, LoadError> {
        match &self.yaml {
            Some(p) => SatYaml::read(p),
            None => Err(LoadError::NotFound { path: self.root.join("cogvideox_5b_tora_i2v.yaml"), hint: yaml_hint() }),
        }
    }

    /// The transformer checkpoint: the only variant, or the one the yaml describes (`i2v` when
    /// its network takes the image latents, else `t2v`).
    pub fn transformer_file(&self) -> Result<PathBuf, LoadError> {
        match self.transformers.as_slice() {
            [] => Err(LoadError::NotFound {
                path: self.root.join("tora/i2v").join(SAT_TRANSFORMER_FILE),
                hint: transformer_hint(),
            }),
            [(_, p)] => Ok(p.clone()),
            several => {
                let want = self.yaml().ok().and_then(|y| y.variant());
                match want.and_then(|w| several.iter().find(|(v, _)| *v == w)) {
                    Some((_, p)) => Ok(p.clone()),
                    None => Err(LoadError::Unsupported {
                        path: self.root.clone(),
                        reason: format!(
                            "several Tora variants ({}) and no model yaml saying which to use; add \
                             cogvideox_5b_tora_i2v.yaml (i2v) or cogvideox_5b_tora.yaml (t2v)",
                            several.iter().map(|(v, _)| v.as_str()).collect::<Vec<_>>().join(", ")
                        ),
                    }),
                }
            }
        }
    }

    pub fn vae_file(&self) -> Result<PathBuf, LoadError> {
        self.vae.clone().ok_or_else(|| LoadError::NotFound { path: self.root.join("vae/3d-vae.pt"), hint: vae_hint() })
    }

    /// The diffusers folder these SAT files were made from, when the folder says so
    /// (`manifest.json` `"source"`, a sibling folder name, as the parity fixtures have).
    pub fn diffusers_twin(&self) -> Option<PathBuf> {
        let m: Value = read_config(&self.root.join("manifest.json")).ok()?;
        let name = m.get("source")?.as_str()?;
        if name.contains('/') || name.contains("..") {
            return None;
        }
        let twin = self.root.parent()?.join(name);
        twin.join("model_index.json").is_file().then_some(twin)
    }

    fn inspect(self) -> ModelFolder {
        let mut components = Vec::new();
        let mut missing = Vec::new();
        let pt = |kind, path: &Path, top: &str, variant: Option<String>| {
            let ckpt = Checkpoint::open_pt(path, Some(top));
            Component {
                kind,
                path: path.into(),
                format: Format::Pt,
                dtype: Some(match ckpt {
                    Ok(c) => dtype_summary(&c),
                    Err(e) => format!("unreadable: {e}"),
                }),
                bytes: file_bytes(path),
                variant,
            }
        };
        for (v, p) in &self.transformers {
            components.push(pt(ComponentKind::Transformer, p, "module", Some(v.clone())));
        }
        if self.transformers.is_empty() {
            missing.push(Missing { kind: ComponentKind::Transformer, hint: transformer_hint() });
        }
        match &self.vae {
            Some(p) => components.push(pt(ComponentKind::Vae, p, "state_dict", None)),
            None => missing.push(Missing { kind: ComponentKind::Vae, hint: vae_hint() }),
        }
        match self.t5.as_deref().map(|d| (d, weights_component(ComponentKind::TextEncoder, d, None))) {
            Some((d, Ok(c))) => {
                components.push(c);
                match tokenizer_component(d) {
                    Some(t) => components.push(t),
                    None => missing.push(Missing {
                        kind: ComponentKind::Tokenizer,
                        hint: format!("{}/spiece.model (SAT loads tokenizer and encoder from one folder)", d.display()),
                    }),
                }
            }
            Some((d, Err(e))) => {
                missing.push(Missing { kind: ComponentKind::TextEncoder, hint: format!("{}: {e}", d.display()) })
            }
            None => missing.push(Missing { kind: ComponentKind::TextEncoder, hint: t5_hint() }),
        }
        match &self.yaml {
            Some(p) => components.push(Component {
                kind: ComponentKind::ModelConfig,
                bytes: file_bytes(p),
                path: p.clone(),
                format: Format::Yaml,
                dtype: None,
                variant: None,
            }),
            None => missing.push(Missing { kind: ComponentKind::ModelConfig, hint: yaml_hint() }),
        }
        ModelFolder { root: self.root, kind: FolderKind::Sat, components, missing }
    }
}

fn transformer_hint() -> String {
    format!(
        "tora/i2v/{SAT_TRANSFORMER_FILE} (or tora/t2v/...): Tora's SAT weights, from the 'Model Weights' links of Tora's README"
    )
}
fn vae_hint() -> String {
    "vae/3d-vae.pt: CogVideoX's SAT VAE (Tora's README, 'Model Weights'; same file as CogVideoX's SAT release)".into()
}
fn t5_hint() -> String {
    "t5-v1_1-xxl/: the T5 v1.1 XXL encoder and tokenizer in transformers layout (config.json, *.safetensors, \
     spiece.model), e.g. the text_encoder/ and tokenizer/ files of CogVideoX-5b in one folder"
        .into()
}
fn yaml_hint() -> String {
    " (the model yaml: cogvideox_5b_tora_i2v.yaml for i2v or cogvideox_5b_tora.yaml for t2v, from Tora's \
     sat/configs/tora/model/; put it in this folder)"
        .into()
}

/// `tora/<variant>/mp_rank_00_model_states.pt`, sorted by variant.
fn transformer_files(root: &Path) -> Vec<(String, PathBuf)> {
    let mut out: Vec<(String, PathBuf)> = std::fs::read_dir(root.join("tora"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let p = e.path().join(SAT_TRANSFORMER_FILE);
            p.is_file().then(|| (e.file_name().to_string_lossy().into_owned(), p))
        })
        .collect();
    out.sort();
    out
}

/// A model yaml (one with `model.network_config`) in the folder, else in `../configs/tora/model/`
/// (Tora's repository layout). With several, the one naming the single transformer variant wins.
fn find_yaml(root: &Path, transformers: &[(String, PathBuf)]) -> Option<PathBuf> {
    let mut cands: Vec<PathBuf> = Vec::new();
    for dir in [root.to_path_buf(), root.join("../configs/tora/model")] {
        let mut here: Vec<PathBuf> = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
            .filter(|p| SatYaml::read(p).is_ok_and(|y| y.network().is_some()))
            .collect();
        here.sort();
        if !here.is_empty() {
            cands = here;
            break;
        }
    }
    if cands.len() > 1 {
        if let [(v, _)] = transformers {
            if let Some(p) = cands.iter().find(|p| SatYaml::read(p).ok().and_then(|y| y.variant()).as_ref() == Some(v))
            {
                return Some(p.clone());
            }
        }
    }
    cands.into_iter().next()
}

/// A subfolder holding a T5 `config.json`.
fn find_t5_dir(root: &Path) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> =
        std::fs::read_dir(root).ok()?.flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect();
    dirs.sort();
    dirs.into_iter().find(|d| {
        read_config::<Value>(&d.join("config.json"))
            .ok()
            .and_then(|c| c.get("model_type").and_then(Value::as_str).map(|t| t.contains("t5")))
            .unwrap_or(false)
    })
}

/// A yaml path such as `ckpts/vae/3d-vae.pt`, where `root` plays the role of `ckpts/` (or of
/// Tora's `sat/`, which holds `ckpts/`).
fn resolve_ckpts_path(root: &Path, p: &str) -> Option<PathBuf> {
    let rel = Path::new(p);
    if rel.is_absolute() {
        return rel.exists().then(|| rel.to_path_buf());
    }
    let stripped = rel.strip_prefix("ckpts").ok().map(Path::to_path_buf);
    let mut cands = Vec::new();
    if let Some(s) = &stripped {
        cands.push(root.join(s));
    }
    cands.push(root.join(rel));
    if let Some(parent) = root.parent() {
        cands.push(parent.join(rel));
    }
    cands.into_iter().find(|c| c.exists())
}

// ---------------------------------------------------------------------------------------------
// SAT yaml -> diffusers configs

/// A parsed SAT model yaml (`sat/configs/tora/model/*.yaml`).
#[derive(Debug, Clone)]
pub struct SatYaml {
    pub path: PathBuf,
    pub value: Value,
}

/// VAE GroupNorm group count SAT's `Normalize()` hard-codes (no yaml field).
pub const SAT_VAE_NORM_GROUPS: u64 = 32;

impl SatYaml {
    pub fn read(path: &Path) -> Result<Self, LoadError> {
        let text = std::fs::read_to_string(path).map_err(|e| LoadError::io(path, e))?;
        let value = super::yaml::parse(&text)
            .map_err(|e| LoadError::Config { path: path.into(), reason: format!("cannot read this YAML: {e}") })?;
        Ok(SatYaml { path: path.into(), value })
    }

    fn at(&self, keys: &[&str]) -> Option<&Value> {
        keys.iter().try_fold(&self.value, |v, k| v.get(k))
    }

    fn path_at(&self, keys: &[&str]) -> Option<String> {
        self.at(keys).and_then(Value::as_str).map(str::to_string)
    }

    fn network(&self) -> Option<&Value> {
        self.at(&["model", "network_config", "params"])
    }

    fn t5_model_dir(&self) -> Option<String> {
        let models = self.at(&["model", "conditioner_config", "params", "emb_models"])?.as_array()?;
        models.iter().find_map(|m| m.get("params")?.get("model_dir")?.as_str().map(str::to_string))
    }

    /// `i2v` when the network takes the image latents too (`in_channels` = 2·`out_channels`), else `t2v`.
    pub fn variant(&self) -> Option<String> {
        let n = self.network()?;
        let (i, o) = (n.get("in_channels")?.as_u64()?, n.get("out_channels")?.as_u64()?);
        Some(if i == 2 * o { "i2v" } else { "t2v" }.into())
    }

    fn missing(&self, what: &str) -> LoadError {
        LoadError::Config { path: self.path.clone(), reason: format!("no {what}") }
    }

    /// The diffusers `transformer/config.json` of this network (`ToraTransformer3DModel`).
    /// Fields SAT has no yaml entry for take the values of diffusers' conversion script
    /// (`convert_cogvideox_to_diffusers.py`) for CogVideoX 1.0.
    pub fn transformer_config(&self) -> Result<Value, LoadError> {
        let n = self.network().ok_or_else(|| self.missing("model.network_config.params"))?;
        let get = |k: &str| n.get(k).cloned().ok_or_else(|| self.missing(&format!("network_config.params.{k}")));
        let module = |m: &str| n.get("modules").and_then(|x| x.get(m));
        let module_param = |m: &str, k: &str| module(m).and_then(|x| x.get("params")).and_then(|p| p.get(k));
        let heads = get("num_attention_heads")?.as_u64().ok_or_else(|| self.missing("integer num_attention_heads"))?;
        let hidden = get("hidden_size")?.as_u64().ok_or_else(|| self.missing("integer hidden_size"))?;
        let head_dim = module_param("pos_embed_config", "hidden_size_head")
            .and_then(Value::as_u64)
            .unwrap_or(hidden / heads.max(1));
        if heads == 0 || head_dim * heads != hidden {
            return Err(LoadError::Config {
                path: self.path.clone(),
                reason: format!("hidden_size {hidden} is not num_attention_heads {heads} x head size {head_dim}"),
            });
        }
        let pos_target = module("pos_embed_config").and_then(|x| x.get("target")).and_then(Value::as_str).unwrap_or("");
        let eps = n.get("transformer_args").and_then(|a| a.get("layernorm_epsilon")).cloned().unwrap_or(json!(1e-5));
        Ok(json!({
            "_class_name": "ToraTransformer3DModel",
            "activation_fn": "gelu-approximate",
            "attention_bias": true,
            "attention_head_dim": head_dim,
            "dropout": 0.0,
            "flip_sin_to_cos": true,
            "freq_shift": 0,
            "in_channels": get("in_channels")?,
            "max_text_seq_length": module_param("pos_embed_config", "text_length").cloned().unwrap_or(json!(226)),
            "norm_elementwise_affine": n.get("elementwise_affine").cloned().unwrap_or(json!(true)),
            "norm_eps": eps,
            "num_attention_heads": heads,
            "num_layers": get("num_layers")?,
            "ofs_embed_dim": n.get("ofs_embed_dim").cloned().unwrap_or(Value::Null),
            "out_channels": get("out_channels")?,
            "patch_bias": n.get("patch_bias").cloned().unwrap_or(json!(true)),
            "patch_size": get("patch_size")?,
            "patch_size_t": n.get("patch_size_t").cloned().unwrap_or(Value::Null),
            "sample_frames": get("num_frames")?,
            "sample_height": get("latent_height")?,
            "sample_width": get("latent_width")?,
            "spatial_interpolation_scale": 1.875,
            "temporal_compression_ratio": get("time_compressed_rate")?,
            "temporal_interpolation_scale": 1.0,
            "text_embed_dim": module_param("patch_embed_config", "text_hidden_size")
                .cloned()
                .ok_or_else(|| self.missing("patch_embed_config.params.text_hidden_size"))?,
            "time_embed_dim": get("time_embed_dim")?,
            "timestep_activation_fn": "silu",
            "use_learned_positional_embeddings":
                module_param("pos_embed_config", "learnable_pos_embed").and_then(Value::as_bool).unwrap_or(false),
            "use_rotary_positional_embeddings": pos_target.contains("Rotary"),
        }))
    }

    /// The diffusers `vae/config.json` (`AutoencoderKLCogVideoX`). SAT hard-codes the GroupNorm
    /// group count (32); `norm_num_groups` overrides it (e.g. from a diffusers twin's config).
    /// `sample_height/width` (diffusers' tiling sizes; no SAT counterpart) take diffusers' defaults.
    pub fn vae_config(&self, norm_num_groups: Option<u64>) -> Result<Value, LoadError> {
        let first =
            self.at(&["model", "first_stage_config", "params"]).ok_or_else(|| self.missing("first_stage_config"))?;
        let enc = first
            .get("encoder_config")
            .and_then(|e| e.get("params"))
            .ok_or_else(|| self.missing("first_stage_config.params.encoder_config.params"))?;
        if let Some(dec) = first.get("decoder_config").and_then(|d| d.get("params")) {
            for k in ["ch", "ch_mult", "num_res_blocks", "z_channels"] {
                if dec.get(k) != enc.get(k) {
                    return Err(LoadError::Config {
                        path: self.path.clone(),
                        reason: format!("encoder and decoder differ in '{k}' (diffusers' VAE shares them)"),
                    });
                }
            }
        }
        let get = |k: &str| enc.get(k).cloned().ok_or_else(|| self.missing(&format!("encoder_config.params.{k}")));
        let ch = get("ch")?.as_u64().ok_or_else(|| self.missing("integer ch"))?;
        let mult: Vec<u64> = get("ch_mult")?
            .as_array()
            .and_then(|a| a.iter().map(Value::as_u64).collect())
            .ok_or_else(|| self.missing("integer list ch_mult"))?;
        let blocks: Vec<u64> = mult.iter().map(|m| ch * m).collect();
        let scale = self.at(&["model", "scale_factor"]).cloned().unwrap_or(json!(1.15258426));
        Ok(json!({
            "_class_name": "AutoencoderKLCogVideoX",
            "act_fn": "silu",
            "block_out_channels": blocks,
            "down_block_types": vec!["CogVideoXDownBlock3D"; mult.len()],
            "force_upcast": true,
            "in_channels": get("in_channels")?,
            "invert_scale_latents": false,
            "latent_channels": get("z_channels")?,
            "latents_mean": Value::Null,
            "latents_std": Value::Null,
            "layers_per_block": get("num_res_blocks")?,
            "norm_eps": 1e-6,
            "norm_num_groups": norm_num_groups.unwrap_or(SAT_VAE_NORM_GROUPS),
            "out_channels": enc.get("out_ch").cloned().unwrap_or(json!(3)),
            "sample_height": 480,
            "sample_width": 720,
            "scaling_factor": scale,
            "shift_factor": Value::Null,
            "temporal_compression_ratio": 4,
            "up_block_types": vec!["CogVideoXUpBlock3D"; mult.len()],
            "use_post_quant_conv": false,
            "use_quant_conv": false,
        }))
    }

    /// The diffusers `scheduler/scheduler_config.json` (`CogVideoXDPMScheduler`, diffusers' port of
    /// SAT's `VPSDEDPMPP2MSampler`) for this yaml: SAT's `LegacyDDPMDiscretization` defaults
    /// (1000 steps, √-linear betas 0.00085..0.012), zero-terminal-SNR rescaling, v-prediction
    /// (`VideoScaling`), trailing timesteps, and the yaml's `ZeroSNRDDPMDiscretization.shift_scale`.
    pub fn scheduler_config(&self) -> Value {
        let shift = ["sampler_config", "denoiser_config"]
            .iter()
            .find_map(|c| self.at(&["model", c, "params", "discretization_config", "params", "shift_scale"])?.as_f64())
            .unwrap_or(1.0);
        json!({
            "_class_name": "CogVideoXDPMScheduler",
            "beta_end": 0.012,
            "beta_schedule": "scaled_linear",
            "beta_start": 0.00085,
            "clip_sample": false,
            "clip_sample_range": 1.0,
            "num_train_timesteps": 1000,
            "prediction_type": "v_prediction",
            "rescale_betas_zero_snr": true,
            "sample_max_value": 1.0,
            "set_alpha_to_one": true,
            "snr_shift_scale": shift,
            "steps_offset": 0,
            "timestep_spacing": "trailing",
            "trained_betas": null,
        })
    }
}
