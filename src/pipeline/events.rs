//! What a running generation reports: phases, steps with a preview, memory, the result.

use std::time::Duration;

use super::latent_preview::PreviewClip;
use crate::export::RgbFrames;

/// The phases of a run, in order. Models load when their phase starts and are released after,
/// so a run fits where the sum of the models would not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// T5: load, encode prompt and negative prompt, release.
    Text,
    /// VAE: load, encode the motion (and the first frame for I2V), fit the preview map.
    Conditioning,
    /// Transformer: load, denoise step by step, release.
    Denoising,
    /// VAE: load, decode the final latents to frames.
    Decoding,
}

impl Phase {
    pub fn label(self) -> &'static str {
        match self {
            Phase::Text => "encoding the prompt",
            Phase::Conditioning => "encoding the motion",
            Phase::Denoising => "denoising",
            Phase::Decoding => "decoding frames",
        }
    }
}

/// Peak memory and time of one finished phase.
#[derive(Debug, Clone, PartialEq)]
pub struct PhaseReport {
    pub phase: Phase,
    pub seconds: f64,
    /// Peak resident memory during the phase (CPU backend; `None` where not measurable).
    pub peak_bytes: Option<u64>,
}

/// The result of a finished run.
#[derive(Debug, Clone)]
pub struct Generated {
    pub frames: RgbFrames,
    pub phases: Vec<PhaseReport>,
    pub elapsed: Duration,
}

#[derive(Debug, Clone)]
pub enum Event {
    /// A phase started (`detail` says e.g. which component is loading).
    Phase {
        phase: Phase,
        detail: String,
    },
    /// Denoising step `index` (0-based) of `total` finished; `preview` is the current estimate of
    /// the clean clip, one image per latent frame.
    Step {
        index: usize,
        total: usize,
        timestep: i64,
        preview: Option<PreviewClip>,
    },
    /// A phase finished.
    PhaseDone(PhaseReport),
    Finished(Box<Generated>),
    Failed(String),
    Cancelled,
}

impl Event {
    /// Whether the run ended with this event.
    pub fn is_terminal(&self) -> bool {
        matches!(self, Event::Finished(_) | Event::Failed(_) | Event::Cancelled)
    }
}

/// Where a run reports progress and learns it was cancelled.
pub trait Progress {
    fn event(&self, event: Event);
    fn cancelled(&self) -> bool;
    /// Whether step previews are shown: making one reads the latents back from the device every
    /// step (a sync point on a GPU), so a run skips them when nobody looks.
    fn wants_previews(&self) -> bool {
        true
    }
}
