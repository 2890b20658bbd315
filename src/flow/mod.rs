//! The motion field: Tora's model input computed from per-frame track positions.
//!
//! positions -> [`displacement`] (sparse, one vector per track per frame) -> [`gaussian`] filter
//! (cv2.filter2D, 99x99, sigma 10, centre 1, reflect-101) -> [`colour`] (torchvision
//! `flow_to_image`, one max norm per clip) -> `video_flow = rgb / (255/2) - 1`.
//!
//! The CPU path here is the reference the tests hold to the fixtures; [`gpu`] computes the same
//! colours in a WGSL compute shader for the live studio overlay (bit for bit once read back).
//! Both use one `atan2`, SLEEF's, as torch's vectorised CPU kernel does ([`atan2`]).

pub mod atan2;
pub mod buffer;
pub mod colour;
pub mod displacement;
pub mod field;
pub mod gaussian;
pub mod gpu;
pub mod preview;

pub use colour::{flow_to_rgb, video_flow_from_rgb, FlowRgb};
pub use displacement::{sparse_displacement, SparseFlow, Splat};
pub use field::{FlowField, FrameFlow, RowSpan, Support};
pub use gaussian::{gaussian_filter, KERNEL_RADIUS};

use crate::trajectory::{FramePoints, Scene, TrajectoryError};

/// Size of a flow clip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClipSize {
    pub frames: usize,
    pub height: usize,
    pub width: usize,
}

impl ClipSize {
    pub fn of(scene: &Scene) -> Self {
        ClipSize { frames: scene.frames as usize, height: scene.height as usize, width: scene.width as usize }
    }
    pub fn pixels(&self) -> usize {
        self.height * self.width
    }
}

/// One track's per-frame pixel positions, with its name for error messages.
#[derive(Debug, Clone)]
pub struct TrackPoints {
    pub name: String,
    pub points: FramePoints,
}

/// Everything the flow procedure produces for one clip.
#[derive(Debug, Clone)]
pub struct MotionField {
    /// Per-track pixel positions, `[N][T]` of (x, y).
    pub points: Vec<TrackPoints>,
    /// Filtered flow (`[T, H, W, 2]` in meaning; stored where it can be non-zero).
    pub flow: FlowField,
    /// `flow_to_image` of the whole clip, `[T, 3, H, W]`.
    pub rgb: FlowRgb,
}

impl MotionField {
    /// The model input `[T, 3, H, W]`: `rgb / (255/2) - 1` in f32.
    pub fn video_flow(&self) -> Vec<f32> {
        video_flow_from_rgb(&self.rgb.data)
    }
}

/// Samples every motion track of the scene (its tracks, regions and camera grid expanded).
pub fn scene_points(scene: &Scene) -> Result<Vec<TrackPoints>, TrajectoryError> {
    scene
        .motion_tracks()?
        .into_iter()
        .map(|t| Ok(TrackPoints { points: t.sample(scene.frames, scene.width, scene.height)?, name: t.name }))
        .collect()
}

/// The whole flow procedure on the CPU (the bit-for-bit reference path).
pub fn motion_field_cpu(tracks: Vec<TrackPoints>, size: ClipSize) -> Result<MotionField, TrajectoryError> {
    let sparse = sparse_displacement(&tracks, size)?;
    let flow = gaussian_filter(&sparse);
    let rgb = flow_to_rgb(&flow);
    Ok(MotionField { points: tracks, flow, rgb })
}

/// Scene -> motion field on the CPU.
pub fn scene_motion_field(scene: &Scene) -> Result<MotionField, TrajectoryError> {
    motion_field_cpu(scene_points(scene)?, ClipSize::of(scene))
}
