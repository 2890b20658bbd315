//! The trajectory domain model: pure data, no UI, no numerics beyond sampling.
//!
//! A [`Scene`] is what the user edits: the output clip (size, frame count, fps, optional
//! background image) and any number of [`Track`]s, [`Region`]s (whole objects) and an optional
//! [`CameraLayer`]. Regions and the camera expand to plain tracks here ([`Scene::motion_tracks`]),
//! so flow and model never learn them. Sampling a scene yields exactly one pixel position per
//! track per frame — the `points` the motion field is built from.

mod camera;
mod easing;
mod editing;
mod error;
pub mod point_file;
pub mod presets;
pub mod project;
mod reference;
mod region;
mod scene;
mod timed;

pub use camera::{CameraLayer, CAMERA_COLOUR, DEFAULT_CAMERA_DENSITY, MAX_CAMERA_DENSITY};
pub use easing::Easing;
pub use editing::{clamp_to_canvas, freehand_keyframes, StrokeSample};
pub use error::TrajectoryError;
pub use reference::{reference_canvas_points, scale_to_pixels, CANVAS_SIZE};
pub use region::{centroid, point_in_polygon, polygon_area, Region, DEFAULT_REGION_SAMPLES, MAX_REGION_SAMPLES};
pub use scene::{Keyframe, PathShape, Scene, Timing, Track};

/// Pixel positions of one track, one `[x, y]` per frame (x = column, y = row).
pub type FramePoints = Vec<[i32; 2]>;
