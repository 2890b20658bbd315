//! The UI state that outlives a session (tool, overlay settings, recent files), as JSON.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::flow::preview::FitMode;

use super::generate_panel::GenerateForm;

/// How pointer input on the canvas becomes an edit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tool {
    /// Pick, drag points; shift-click inserts, right-click / Delete removes.
    #[default]
    Select,
    /// Click to place points of a polyline track.
    Polyline,
    /// Click to place points of a smooth (spline) track.
    Spline,
    /// Draw a stroke; the pointer's speed becomes the motion's timing.
    Freehand,
    /// Click to place a static anchor (an object that must stay put).
    Anchor,
    /// Drag to move a whole track.
    MoveTrack,
    /// Drag around an object to make it a region, then click its path.
    Lasso,
}

impl Tool {
    pub const ALL: [Tool; 7] =
        [Tool::Select, Tool::Polyline, Tool::Spline, Tool::Freehand, Tool::Anchor, Tool::MoveTrack, Tool::Lasso];

    pub fn label(self) -> &'static str {
        match self {
            Tool::Select => "Select",
            Tool::Polyline => "Polyline",
            Tool::Spline => "Spline",
            Tool::Freehand => "Freehand",
            Tool::Anchor => "Anchor",
            Tool::MoveTrack => "Move track",
            Tool::Lasso => "Lasso region",
        }
    }

    pub fn hint(self) -> &'static str {
        match self {
            Tool::Select => "drag a point to move it; shift-click inserts; right-click or Delete removes",
            Tool::Polyline | Tool::Spline => "click to add points; Enter or Esc finishes the track",
            Tool::Freehand => "draw a stroke: your drawing speed becomes the motion's speed",
            Tool::Anchor => "click to pin a static point (an object that must stay put)",
            Tool::MoveTrack => "drag a track or a region to move all its points",
            Tool::Lasso => "drag around an object to make it a region, then click to give it a path; Enter finishes",
        }
    }
}

/// What the right-hand panel shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SideTab {
    /// Clip settings, the selected track and keyframe.
    #[default]
    Clip,
    Generate,
    Takes,
    Models,
}

impl SideTab {
    pub const ALL: [SideTab; 4] = [SideTab::Clip, SideTab::Generate, SideTab::Takes, SideTab::Models];

    pub fn label(self) -> &'static str {
        match self {
            SideTab::Clip => "Clip",
            SideTab::Generate => "Generate",
            SideTab::Takes => "Takes",
            SideTab::Models => "Models",
        }
    }
}

/// Recent project files remembered.
pub const MAX_RECENT: usize = 10;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct UiState {
    pub tool: Tool,
    /// Show the live motion field over the canvas.
    pub show_flow: bool,
    /// 0 = image only, 1 = motion field only.
    pub flow_blend: f32,
    /// Show the model-free motion preview instead of the still image.
    pub show_preview: bool,
    pub fit: FitMode,
    pub recent_files: Vec<PathBuf>,
    pub side_tab: SideTab,
    /// The Generate panel's model folder and last settings.
    pub generate: GenerateForm,
}

impl Default for UiState {
    fn default() -> Self {
        UiState {
            tool: Tool::Select,
            show_flow: true,
            flow_blend: 0.5,
            show_preview: false,
            fit: FitMode::Crop,
            recent_files: Vec::new(),
            side_tab: SideTab::Clip,
            generate: GenerateForm::default(),
        }
    }
}

impl UiState {
    /// Puts `path` first in the recent files.
    pub fn remember_recent(&mut self, path: PathBuf) {
        self.recent_files.retain(|p| p != &path);
        self.recent_files.insert(0, path);
        self.recent_files.truncate(MAX_RECENT);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_files_are_unique_newest_first_and_bounded() {
        let mut s = UiState::default();
        for i in 0..15 {
            s.remember_recent(PathBuf::from(format!("{i}.json")));
        }
        s.remember_recent(PathBuf::from("12.json"));
        assert_eq!(s.recent_files.len(), MAX_RECENT);
        assert_eq!(s.recent_files[0], PathBuf::from("12.json"));
        assert_eq!(s.recent_files[1], PathBuf::from("14.json"));
        let parsed: UiState = serde_json::from_str(r#"{"tool": "freehand"}"#).unwrap();
        assert_eq!(parsed.tool, Tool::Freehand);
        assert_eq!(parsed.flow_blend, 0.5, "missing fields take defaults");
    }
}
