//! What every model family's run shares: phases timed with their peak memory, and the decoded
//! video turned into 8-bit frames.

use std::time::Instant;

use super::events::{Event, Phase, PhaseReport, Progress};
use super::memory;
use super::PipelineError;
use crate::export::RgbFrames;

/// One phase of a run: announced when it starts, reported (time, peak RSS) when it ends.
pub(super) struct PhaseClock {
    phase: Phase,
    started: Instant,
}

impl PhaseClock {
    pub(super) fn start(
        phase: Phase,
        detail: impl Into<String>,
        progress: &dyn Progress,
    ) -> Result<Self, PipelineError> {
        if progress.cancelled() {
            return Err(PipelineError::Cancelled);
        }
        memory::reset_peak();
        progress.event(Event::Phase { phase, detail: detail.into() });
        Ok(PhaseClock { phase, started: Instant::now() })
    }

    pub(super) fn finish(self, progress: &dyn Progress, reports: &mut Vec<PhaseReport>) {
        let report = PhaseReport {
            phase: self.phase,
            seconds: self.started.elapsed().as_secs_f64(),
            peak_bytes: memory::peak_rss_bytes(),
        };
        progress.event(Event::PhaseDone(report.clone()));
        reports.push(report);
    }
}

/// `[1, 3, T, H, W]` in [0, 1] -> 8-bit RGB frames (`round(255·x)`, as diffusers' numpy_to_pil).
pub(super) fn to_rgb_frames(dims: &[usize], data: &[f32], fps: f32) -> RgbFrames {
    let (t, h, w) = (dims[2], dims[3], dims[4]);
    let frames = (0..t)
        .map(|f| {
            let mut rgb = vec![0u8; h * w * 3];
            for c in 0..3 {
                let plane = &data[(c * t + f) * h * w..(c * t + f + 1) * h * w];
                for (p, &v) in plane.iter().enumerate() {
                    rgb[p * 3 + c] = (v * 255.0).round().clamp(0.0, 255.0) as u8;
                }
            }
            rgb
        })
        .collect();
    RgbFrames { width: w as u32, height: h as u32, fps, frames }
}
