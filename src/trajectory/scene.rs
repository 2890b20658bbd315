use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{reference, timed, CameraLayer, Easing, FramePoints, Region, TrajectoryError};

/// The clip being designed: output size and timing, an optional background image, the tracks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scene {
    /// Output width in pixels (Tora/CogVideoX: 720).
    pub width: u32,
    /// Output height in pixels (Tora/CogVideoX: 480).
    pub height: u32,
    /// Frames in the clip (Tora/CogVideoX: 49).
    pub frames: u32,
    /// Playback rate of the clip (Tora/CogVideoX: 8).
    pub fps: f32,
    /// Image the first frame starts from (image-to-video), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub background: Option<PathBuf>,
    #[serde(default)]
    pub tracks: Vec<Track>,
    /// Whole objects to move; each expands to its sample tracks (project version 2).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<Region>,
    /// Camera motion over the whole frame (project version 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub camera: Option<CameraLayer>,
}

impl Default for Scene {
    fn default() -> Self {
        Scene {
            width: 720,
            height: 480,
            frames: 49,
            fps: 8.0,
            background: None,
            tracks: Vec::new(),
            regions: Vec::new(),
            camera: None,
        }
    }
}

/// How a track's points become one position per frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Timing {
    /// Exactly Tora's point-file path (`read_points` + `process_points` + `int` scaling): the
    /// points are integer canvas coordinates, sub-sampled or linearly in-filled to the frame count.
    /// Keyframe times, holds and start/end frames are ignored, as the reference has none.
    Reference,
    /// Keyframes with (optional) frame times, holds, easing and a start/end frame.
    #[default]
    Timed,
}

/// The curve through a timed track's keyframes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PathShape {
    #[default]
    Polyline,
    /// Catmull-Rom spline through the keyframes.
    Spline,
}

/// One point of a track, in 256x256 canvas coordinates (x = column, y = row; the reference's
/// point-file space, independent of the output size).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Keyframe {
    pub x: f64,
    pub y: f64,
    /// Frame at which the object reaches this point; `None` = placed by constant speed
    /// between its timed neighbours.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame: Option<f64>,
    /// Frames the object rests here before moving on (a pause).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub hold: u32,
    /// Easing of the segment that starts at this keyframe.
    #[serde(default, skip_serializing_if = "is_linear")]
    pub easing: Easing,
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}
fn is_linear(e: &Easing) -> bool {
    *e == Easing::Linear
}

impl Keyframe {
    pub fn at(x: f64, y: f64) -> Self {
        Keyframe { x, y, frame: None, hold: 0, easing: Easing::Linear }
    }
    pub fn timed(x: f64, y: f64, frame: f64) -> Self {
        Keyframe { frame: Some(frame), ..Keyframe::at(x, y) }
    }
}

/// One object's trajectory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Track {
    pub name: String,
    /// Display colour (sRGB).
    pub colour: [u8; 3],
    #[serde(default = "yes")]
    pub visible: bool,
    #[serde(default)]
    pub locked: bool,
    #[serde(default)]
    pub timing: Timing,
    #[serde(default)]
    pub shape: PathShape,
    pub points: Vec<Keyframe>,
    /// First frame of motion (timed tracks); before it the object rests at its first point.
    #[serde(default)]
    pub start_frame: u32,
    /// Last frame of motion (timed tracks); `None` = the clip's last frame.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_frame: Option<u32>,
}

fn yes() -> bool {
    true
}

/// Colours handed to new tracks in turn.
/// The largest frame count a scene may have (20 minutes at 8 fps; Tora makes 49).
pub const MAX_FRAMES: u32 = 10_000;
/// The largest width or height of a scene, as for background images.
pub const MAX_SIDE: u32 = 8192;

pub const TRACK_PALETTE: [[u8; 3]; 8] = [
    [230, 57, 70],
    [42, 157, 143],
    [244, 162, 97],
    [69, 123, 157],
    [233, 196, 106],
    [155, 93, 229],
    [0, 187, 249],
    [241, 91, 181],
];

impl Track {
    /// A new timed track through the given canvas points.
    pub fn new(name: impl Into<String>, colour: [u8; 3], points: Vec<Keyframe>) -> Self {
        Track {
            name: name.into(),
            colour,
            visible: true,
            locked: false,
            timing: Timing::Timed,
            shape: PathShape::Polyline,
            points,
            start_frame: 0,
            end_frame: None,
        }
    }

    /// A reference-mode track from integer canvas points, as read from a Tora point file.
    pub fn from_reference_points(name: impl Into<String>, colour: [u8; 3], points: &[[i64; 2]]) -> Self {
        let keys = points.iter().map(|p| Keyframe::at(p[0] as f64, p[1] as f64)).collect();
        Track { timing: Timing::Reference, ..Track::new(name, colour, keys) }
    }

    /// Canvas position (256x256 space) of the object at every frame of a `frames`-long clip.
    pub fn canvas_positions(&self, frames: u32) -> Result<Vec<[f64; 2]>, TrajectoryError> {
        match self.timing {
            Timing::Reference => Ok(reference::reference_canvas_points(&self.name, &self.integer_points(), frames)?
                .into_iter()
                .map(|p| [p[0] as f64, p[1] as f64])
                .collect()),
            Timing::Timed => timed::canvas_positions(self, frames),
        }
    }

    /// Pixel position at every frame for a `width`x`height` clip: exactly one point per frame.
    pub fn sample(&self, frames: u32, width: u32, height: u32) -> Result<FramePoints, TrajectoryError> {
        match self.timing {
            Timing::Reference => {
                let canvas = reference::reference_canvas_points(&self.name, &self.integer_points(), frames)?;
                Ok(canvas.iter().map(|&p| reference::scale_to_pixels(p, width, height)).collect())
            }
            Timing::Timed => Ok(timed::canvas_positions(self, frames)?
                .into_iter()
                .map(|p| timed::to_pixel(p, width, height))
                .collect()),
        }
    }

    /// The points as the reference reads them: Python `int()` truncation toward zero.
    pub fn integer_points(&self) -> Vec<[i64; 2]> {
        self.points.iter().map(|k| [k.x.trunc() as i64, k.y.trunc() as i64]).collect()
    }

    /// The frame at which the motion ends (timed tracks).
    pub fn last_frame(&self, frames: u32) -> u32 {
        let last = frames.saturating_sub(1);
        self.end_frame.unwrap_or(last).min(last)
    }
}

impl Scene {
    /// Checks the clip settings every consumer relies on.
    pub fn validate(&self) -> Result<(), TrajectoryError> {
        if self.width == 0 || self.height == 0 {
            return Err(TrajectoryError::InvalidScene(format!(
                "size {}x{} has a zero side; use e.g. 720x480",
                self.width, self.height
            )));
        }
        // Every consumer allocates per frame and per pixel: a file claiming 4e9 frames must be
        // refused here, not by the allocator (Tora makes 49 frames at 720x480).
        if self.width > MAX_SIDE || self.height > MAX_SIDE {
            return Err(TrajectoryError::InvalidScene(format!(
                "size {}x{}: at most {MAX_SIDE} pixels a side",
                self.width, self.height
            )));
        }
        if self.frames > MAX_FRAMES {
            return Err(TrajectoryError::InvalidScene(format!(
                "{} frames: at most {MAX_FRAMES} frames per clip",
                self.frames
            )));
        }
        if self.frames < 2 {
            return Err(TrajectoryError::InvalidScene(format!(
                "{} frame(s): a motion clip needs at least 2 frames",
                self.frames
            )));
        }
        if !(self.fps.is_finite() && self.fps > 0.0) {
            return Err(TrajectoryError::InvalidScene(format!("fps {} must be a positive number", self.fps)));
        }
        for region in &self.regions {
            region.validate()?;
        }
        if let Some(camera) = &self.camera {
            camera.validate()?;
        }
        Ok(())
    }

    /// The plain tracks everything downstream uses (motion field, overlay, warp preview, point
    /// files, generation): the scene's tracks, then each region's sample tracks, then the camera
    /// grid. Hidden tracks and regions are included: visibility is a display choice.
    pub fn motion_tracks(&self) -> Result<Vec<Track>, TrajectoryError> {
        self.validate()?;
        let mut tracks = self.tracks.clone();
        for region in &self.regions {
            tracks.extend(region.expand(self.frames)?);
        }
        if let Some(camera) = &self.camera {
            tracks.extend(camera.expand(self.frames, self.width, self.height)?);
        }
        Ok(tracks)
    }

    /// Whether the scene has anything that moves the motion field (tracks, regions, a camera).
    pub fn has_motion(&self) -> bool {
        !self.tracks.is_empty() || !self.regions.is_empty() || self.camera.is_some()
    }

    /// Pixel positions of every motion track ([`Scene::motion_tracks`]), one per frame, in order.
    pub fn sample_points(&self) -> Result<Vec<FramePoints>, TrajectoryError> {
        self.motion_tracks()?.iter().map(|t| t.sample(self.frames, self.width, self.height)).collect()
    }

    /// The colour for the next new track.
    pub fn next_colour(&self) -> [u8; 3] {
        TRACK_PALETTE[(self.tracks.len() + self.regions.len()) % TRACK_PALETTE.len()]
    }
}
