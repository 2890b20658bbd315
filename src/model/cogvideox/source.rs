//! Where the parts of a Tora-on-CogVideoX model come from: a diffusers pipeline folder or Tora's
//! SAT checkpoint tree, told apart by what is in the folder. Everything that runs a model (the
//! pipeline, `verify`, the studio, `bench-step`) loads through [`ModelSource`], so both layouts
//! take the same path from here on.
//!
//! A SAT tree runs with SAT semantics by default (no learned positional embedding added, final
//! LayerNorm eps 1e-6: [`SatSemantics::TORA_SAT`]) — the way Tora's authors ran those weights.
//! [`ModelSource::with_diffusers_semantics`] runs the same files as diffusers would (how the parity
//! fixtures check a SAT tree against its diffusers twin).

use std::path::{Path, PathBuf};

use super::vae::{AutoencoderKLCogVideoX, VaeConfig};
use super::{ToraTransformer3D, TransformerConfig};
use crate::model::load::model_folder::{SatTree, SAT_VAE_NORM_GROUPS};
use crate::model::load::sat::{self, SatSemantics};
use crate::model::load::{read_config, Checkpoint, ComponentDir, LoadError};
use crate::model::t5::T5TextEncoder;
use crate::model::ComputeDevice;
use crate::sampling::{SamplingError, SchedulerConfig};

/// The transformer classes a diffusers folder may name.
const TRANSFORMER_CLASSES: &[&str] = &["ToraTransformer3DModel", "CogVideoXTransformer3DModel"];

/// A model folder, resolved to its layout.
#[derive(Debug, Clone)]
pub enum ModelSource {
    /// A diffusers pipeline folder (`model_index.json` + component folders) or a bare component folder.
    Diffusers { root: PathBuf },
    /// Tora's SAT tree (`ckpts/`: `tora/<variant>/mp_rank_00_model_states.pt`, `vae/3d-vae.pt`, T5, yaml).
    Sat { tree: Box<SatTree>, semantics: SatSemantics },
}

impl ModelSource {
    /// Recognises the folder by its content: a SAT tree when it has SAT's checkpoint files (and no
    /// `model_index.json`), else a diffusers folder (whose components are checked when loaded).
    pub fn open(dir: &Path) -> Result<Self, LoadError> {
        if !dir.is_dir() {
            return Err(LoadError::NotFound { path: dir.into(), hint: " (expected a model folder)".into() });
        }
        if !dir.join("model_index.json").is_file() && SatTree::looks_like(dir) {
            let tree = SatTree::find(dir)?;
            return Ok(ModelSource::Sat { tree: Box::new(tree), semantics: SatSemantics::TORA_SAT });
        }
        Ok(ModelSource::Diffusers { root: dir.into() })
    }

    /// The same files run the way diffusers runs them (a no-op for diffusers folders).
    pub fn with_diffusers_semantics(self) -> Self {
        match self {
            ModelSource::Sat { tree, .. } => ModelSource::Sat { tree, semantics: SatSemantics::DIFFUSERS },
            other => other,
        }
    }

    /// The transformer's config (from `transformer/config.json`, or the SAT yaml), with the run-time
    /// semantics switches set for the layout.
    pub fn transformer_config(&self) -> Result<TransformerConfig, LoadError> {
        let mut config: TransformerConfig = match self {
            ModelSource::Diffusers { root } => {
                let component = ComponentDir::find(root, "transformer", TRANSFORMER_CLASSES)?;
                read_config(&component.config_path())?
            }
            ModelSource::Sat { tree, .. } => {
                let yaml = tree.yaml()?;
                serde_json::from_value(yaml.transformer_config()?)
                    .map_err(|e| LoadError::Config { path: yaml.path.clone(), reason: e.to_string() })?
            }
        };
        if let ModelSource::Sat { semantics, .. } = self {
            config.add_learned_pos_embedding = semantics.add_learned_pos_embedding;
            config.final_norm_eps = semantics.final_norm_eps;
        }
        Ok(config)
    }

    /// Opens the checkpoints' headers (no tensor data) so that a wrong or broken file is named
    /// before any model loads (and the SAT VAE config, which a lone tree may not be able to give): for a SAT tree, the transformer must hold `{"module": ...}` and the
    /// VAE `{"state_dict": ...}` (a swapped file fails here, naming itself and its top-level keys).
    /// For a diffusers folder, the transformer's and VAE's shards must match their index.
    pub fn check_checkpoint_files(&self) -> Result<(), LoadError> {
        match self {
            ModelSource::Sat { tree, .. } => {
                self.vae_config()?;
                sat::open_sat_transformer(&tree.transformer_file()?)?;
                sat::open_sat_vae(&tree.vae_file()?)?;
            }
            ModelSource::Diffusers { root } => {
                Checkpoint::open_dir(&ComponentDir::find(root, "transformer", TRANSFORMER_CLASSES)?.dir)?;
                Checkpoint::open_dir(&ComponentDir::find(root, "vae", &["AutoencoderKLCogVideoX"])?.dir)?;
            }
        }
        Ok(())
    }

    /// The transformer with Tora's trajectory extractor and fusers, every key checked.
    pub fn load_transformer(
        &self,
        device: &ComputeDevice,
    ) -> Result<(ToraTransformer3D, TransformerConfig), LoadError> {
        match self {
            ModelSource::Diffusers { root } => ToraTransformer3D::load(root, device),
            ModelSource::Sat { tree, .. } => {
                let config = self.transformer_config()?;
                let ckpt = sat::open_sat_transformer(&tree.transformer_file()?)?;
                Ok((ToraTransformer3D::from_checkpoint(&config, &ckpt, device)?, config))
            }
        }
    }

    /// The VAE's config. SAT hard-codes 32 GroupNorm groups with no yaml field; a SAT tree made from
    /// a diffusers folder (its `manifest.json` names the twin) takes the twin's count.
    pub fn vae_config(&self) -> Result<VaeConfig, LoadError> {
        match self {
            ModelSource::Diffusers { root } => {
                let component = ComponentDir::find(root, "vae", &["AutoencoderKLCogVideoX"])?;
                read_config(&component.config_path())
            }
            ModelSource::Sat { tree, .. } => {
                let yaml = tree.yaml()?;
                let groups = tree.diffusers_twin().and_then(|twin| {
                    let v: serde_json::Value = read_config(&twin.join("vae").join("config.json")).ok()?;
                    v.get("norm_num_groups")?.as_u64()
                });
                let config: VaeConfig = serde_json::from_value(yaml.vae_config(groups)?)
                    .map_err(|e| LoadError::Config { path: yaml.path.clone(), reason: e.to_string() })?;
                // The config is the yaml's (never the checkpoint's): a config fault names the yaml,
                // and the group count, which no yaml field holds, says where it came from.
                config.validate().map_err(|reason| {
                    let whence = match groups {
                        Some(_) => " (norm_num_groups from the diffusers twin named by manifest.json)".to_string(),
                        None => format!(
                            "; SAT's VAE hard-codes {SAT_VAE_NORM_GROUPS} GroupNorm groups and the yaml cannot say \
                             otherwise. A tree converted from a diffusers folder takes norm_num_groups from that \
                             folder: keep it beside {} under the name manifest.json's 'source' gives",
                            tree.root.display()
                        ),
                    };
                    LoadError::Config { path: yaml.path.clone(), reason: format!("{reason}{whence}") }
                })?;
                Ok(config)
            }
        }
    }

    /// The 3D causal VAE, every key checked.
    pub fn load_vae(&self, device: &ComputeDevice) -> Result<AutoencoderKLCogVideoX, LoadError> {
        match self {
            ModelSource::Diffusers { root } => Ok(AutoencoderKLCogVideoX::load(root, device)?.0),
            ModelSource::Sat { tree, .. } => {
                let config = self.vae_config()?;
                let ckpt = sat::open_sat_vae(&tree.vae_file()?)?;
                AutoencoderKLCogVideoX::from_checkpoint(config, &ckpt, device)
            }
        }
    }

    /// The folder holding the T5 encoder and its tokenizer.
    pub fn t5_dir(&self) -> Result<PathBuf, LoadError> {
        match self {
            ModelSource::Diffusers { root } => Ok(root.clone()),
            ModelSource::Sat { tree, .. } => tree.t5.clone().ok_or_else(|| LoadError::NotFound {
                path: tree.root.join("t5-v1_1-xxl"),
                hint: " (Tora's SAT tree keeps T5 v1.1 XXL, encoder and tokenizer, in ckpts/t5-v1_1-xxl; \
                       get it from the CogVideoX-5B repository's text_encoder/ and tokenizer/ folders)"
                    .into(),
            }),
        }
    }

    /// The T5 v1.1 encoder with its SentencePiece tokenizer.
    pub fn load_t5(&self, device: &ComputeDevice) -> Result<T5TextEncoder, LoadError> {
        T5TextEncoder::load(&self.t5_dir()?, device)
    }

    /// The sampler's schedule: `scheduler/scheduler_config.json`, or for SAT the schedule its
    /// yaml's `VPSDEDPMPP2MSampler` + `ZeroSNRDDPMDiscretization` run (diffusers' port of it).
    pub fn scheduler_config(&self) -> Result<SchedulerConfig, SamplingError> {
        match self {
            ModelSource::Diffusers { root } => SchedulerConfig::load(root),
            ModelSource::Sat { tree, .. } => {
                let yaml = tree
                    .yaml()
                    .map_err(|e| SamplingError::Config { path: tree.root.clone(), reason: e.to_string() })?;
                let text = yaml.scheduler_config().to_string();
                SchedulerConfig::from_json(&text).map_err(|reason| SamplingError::Config { path: yaml.path, reason })
            }
        }
    }
}
