//! `SchedulerConfig`, deserialised straight from a diffusers `scheduler/scheduler_config.json`
//! (`CogVideoXDPMScheduler` / `CogVideoXDDIMScheduler`; unknown fields ignored, defaults as diffusers).

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::SamplingError;

/// How the betas are laid out over the training timesteps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BetaSchedule {
    /// `torch.linspace(beta_start, beta_end, N)` in f32.
    Linear,
    /// `torch.linspace(√beta_start, √beta_end, N, f64)²` (CogVideoX).
    ScaledLinear,
    /// The cosine schedule of improved DDPM (`betas_for_alpha_bar`, f32).
    #[serde(rename = "squaredcos_cap_v2")]
    SquaredcosCapV2,
}

/// What the network predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PredictionType {
    Epsilon,
    Sample,
    /// `v = √ᾱ·ε − √(1−ᾱ)·x₀` (CogVideoX).
    VPrediction,
}

/// How `num_inference_steps` timesteps are picked from the training range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimestepSpacing {
    Linspace,
    Leading,
    /// `round(arange(N, 0, −N/n)) − 1`: always starts at the last training step (zero SNR).
    Trailing,
}

/// The fields of diffusers' `CogVideoXDPMScheduler` / `CogVideoXDDIMScheduler` config (both classes
/// share them and their defaults).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SchedulerConfig {
    /// `CogVideoXDPMScheduler` or `CogVideoXDDIMScheduler` (informational: Tora samples with the DPM
    /// scheduler whatever the folder names, see [`SchedulerConfig::for_tora`]).
    #[serde(rename = "_class_name", default)]
    pub class_name: Option<String>,
    #[serde(default = "default_train_steps")]
    pub num_train_timesteps: usize,
    #[serde(default = "default_beta_start")]
    pub beta_start: f64,
    #[serde(default = "default_beta_end")]
    pub beta_end: f64,
    #[serde(default = "default_beta_schedule")]
    pub beta_schedule: BetaSchedule,
    /// Betas given directly (bypasses `beta_start`/`beta_end`; f32 like diffusers).
    #[serde(default)]
    pub trained_betas: Option<Vec<f64>>,
    /// Unused by both CogVideoX schedulers' `step` (kept for completeness).
    #[serde(default = "default_true")]
    pub clip_sample: bool,
    #[serde(default = "default_one")]
    pub clip_sample_range: f64,
    #[serde(default = "default_one")]
    pub sample_max_value: f64,
    /// The "previous" ᾱ after the last step: 1 when true, else `ᾱ[0]`.
    #[serde(default = "default_true")]
    pub set_alpha_to_one: bool,
    #[serde(default)]
    pub steps_offset: i64,
    #[serde(default = "default_prediction")]
    pub prediction_type: PredictionType,
    #[serde(default = "default_spacing")]
    pub timestep_spacing: TimestepSpacing,
    #[serde(default)]
    pub rescale_betas_zero_snr: bool,
    /// `ᾱ ← ᾱ / (s + (1 − s)·ᾱ)`; diffusers' default is 3.0, CogVideoX-5B ships 1.0 (no shift).
    #[serde(default = "default_snr_shift")]
    pub snr_shift_scale: f64,
}

fn default_train_steps() -> usize {
    1000
}
fn default_beta_start() -> f64 {
    0.00085
}
fn default_beta_end() -> f64 {
    0.012
}
fn default_beta_schedule() -> BetaSchedule {
    BetaSchedule::ScaledLinear
}
fn default_true() -> bool {
    true
}
fn default_one() -> f64 {
    1.0
}
fn default_prediction() -> PredictionType {
    PredictionType::Epsilon
}
fn default_spacing() -> TimestepSpacing {
    TimestepSpacing::Leading
}
fn default_snr_shift() -> f64 {
    3.0
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        serde_json::from_str("{}").expect("every field has a default")
    }
}

impl SchedulerConfig {
    /// Reads the config from a `scheduler_config.json` file, a `scheduler/` folder holding one, or a
    /// pipeline folder holding `scheduler/scheduler_config.json`.
    pub fn load(path: &Path) -> Result<Self, SamplingError> {
        let file = Self::locate(path);
        let text = std::fs::read_to_string(&file).map_err(|source| SamplingError::Io { path: file.clone(), source })?;
        Self::from_json(&text).map_err(|reason| SamplingError::Config { path: file, reason })
    }

    /// Parses the JSON text of a scheduler config and checks the values the schedulers rely on.
    pub fn from_json(text: &str) -> Result<Self, String> {
        let config: SchedulerConfig = serde_json::from_str(text).map_err(|e| e.to_string())?;
        config.validate()?;
        Ok(config)
    }

    fn locate(path: &Path) -> PathBuf {
        if !path.is_dir() {
            return path.to_path_buf();
        }
        let direct = path.join("scheduler_config.json");
        if direct.is_file() {
            direct
        } else {
            path.join("scheduler").join("scheduler_config.json")
        }
    }

    fn validate(&self) -> Result<(), String> {
        if self.num_train_timesteps < 2 {
            return Err(format!("num_train_timesteps is {}, need at least 2", self.num_train_timesteps));
        }
        if let Some(betas) = &self.trained_betas {
            if betas.len() != self.num_train_timesteps {
                return Err(format!(
                    "trained_betas has {} entries but num_train_timesteps is {}",
                    betas.len(),
                    self.num_train_timesteps
                ));
            }
        }
        if !(self.beta_start >= 0.0 && self.beta_end >= 0.0) {
            return Err(format!(
                "betas must be non-negative (beta_start {}, beta_end {})",
                self.beta_start, self.beta_end
            ));
        }
        Ok(())
    }

    /// What Tora's inference does with any CogVideoX scheduler config:
    /// `CogVideoXDPMScheduler.from_config(config, timestep_spacing="trailing")`.
    pub fn for_tora(mut self) -> Self {
        self.timestep_spacing = TimestepSpacing::Trailing;
        self
    }
}
