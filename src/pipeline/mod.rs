//! Generation: prompt + tracks (+ image) -> frames, orchestrating the models phase by phase, on a
//! background worker that reports progress over channels.
//!
//! - [`request`]: settings and the checks that catch impossible requests before loading anything;
//! - [`worker`]: the background thread, its [`events`] and [`cancel`] token;
//! - [`latent_preview`]: the cheap per-step RGB preview; [`memory`]: peak memory per phase;
//! - [`takes`]: the on-disk history of finished takes;
//! - [`tora`]: the Tora run on CogVideoX (T2V/I2V); [`opensora`]: Tora on OpenSora 1.2 (T2V);
//!   [`run`]: a request end to end (scene -> flow, first frame, seeded noise, then the family's
//!   `generate`, chosen by what the model folder holds) — what the studio and `generate` call.

pub mod cancel;
pub mod events;
pub mod latent_preview;
pub mod memory;
pub mod opensora;
mod phases;
pub mod queue;
pub mod request;
pub mod run;
pub mod takes;
pub mod tora;
pub mod worker;

pub use cancel::CancelToken;
pub use events::{Event, Generated, Phase, PhaseReport, Progress};
pub use request::{GenerateRequest, MotionGuidance, RequestError, Settings};
pub use worker::{Generation, Reporter};

use std::path::PathBuf;

/// Why a generation could not run. Each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error(transparent)]
    Load(#[from] crate::model::LoadError),
    #[error(transparent)]
    Device(#[from] crate::model::DeviceError),
    #[error(transparent)]
    Trajectory(#[from] crate::trajectory::TrajectoryError),
    #[error(transparent)]
    Sampling(#[from] crate::sampling::SamplingError),
    #[error("{path}: cannot use this image: {reason}")]
    Image { path: PathBuf, reason: String },
    #[error("cancelled")]
    Cancelled,
    #[error("{0}")]
    Runtime(String),
}
