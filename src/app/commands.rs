//! The studio's commands: file operations, undo/redo, shortcuts, drops. Every failure becomes
//! a message and leaves the current work as it was.

use std::path::{Path, PathBuf};

use eframe::egui;

use crate::trajectory::presets::Preset;
use crate::trajectory::{point_file, project, Keyframe, PathShape, Scene, Track};

use super::background::load_image;
use super::persistence::project_path;
use super::{Selection, StudioApp, Tool};

impl StudioApp {
    pub fn undo(&mut self) {
        if let Some(scene) = self.history.undo(&self.scene) {
            self.scene = scene;
            self.drawing = None;
        }
    }

    pub fn redo(&mut self) {
        if let Some(scene) = self.history.redo(&self.scene) {
            self.scene = scene;
            self.drawing = None;
        }
    }

    /// Replaces the whole scene (open, restore, new): history starts over.
    pub(super) fn replace_scene(&mut self, scene: Scene, path: Option<PathBuf>) {
        let image = match &scene.background {
            Some(p) => match load_image(p) {
                Ok(img) => Some(img),
                Err(e) => {
                    self.notices.warn(format!("the project's image could not be loaded: {e}"));
                    None
                }
            },
            None => None,
        };
        self.set_background_image(image);
        self.history.reset(&scene);
        self.saved_scene = path.as_ref().map(|_| scene.clone());
        self.scene = scene;
        self.project_path = path;
        self.selection = Selection::default();
        self.drawing = None;
        self.playback.frame = 0;
    }

    /// An empty project at the current clip settings.
    pub fn new_project(&mut self) {
        let scene =
            Scene { tracks: Vec::new(), regions: Vec::new(), camera: None, background: None, ..self.scene.clone() };
        self.replace_scene(scene, None);
    }

    /// Opens a project file; a bad file is reported and the current work kept.
    pub fn open_project(&mut self, path: &Path) -> bool {
        match project::load(path) {
            Ok(scene) => {
                self.replace_scene(scene, Some(path.to_path_buf()));
                self.state.remember_recent(path.to_path_buf());
                self.notices.info(format!("opened {}", path.display()));
                true
            }
            Err(e) => {
                self.notices.error(format!("Cannot open the project: {e}. Your current work is unchanged."));
                false
            }
        }
    }

    /// Saves to `path` (`.json` added when missing).
    pub fn save_project_to(&mut self, path: &Path) -> bool {
        let path = project_path(path);
        match project::save(&path, &self.scene) {
            Ok(()) => {
                self.saved_scene = Some(self.scene.clone());
                self.project_path = Some(path.clone());
                self.notices.info(format!("saved {}", path.display()));
                self.state.remember_recent(path);
                true
            }
            Err(e) => {
                self.notices.error(format!("Cannot save the project: {e}"));
                false
            }
        }
    }

    pub(super) fn save(&mut self) {
        match self.project_path.clone() {
            Some(path) => {
                self.save_project_to(&path);
            }
            None => self.save_as(),
        }
    }

    pub(super) fn save_as(&mut self) {
        if !self.dialogs {
            return;
        }
        if let Some(path) =
            rfd::FileDialog::new().add_filter("Tora Studio project", &["json"]).set_file_name("motion.json").save_file()
        {
            self.save_project_to(&path);
        }
    }

    pub(super) fn open_dialog(&mut self) {
        if !self.dialogs {
            return;
        }
        if let Some(path) = rfd::FileDialog::new().add_filter("Tora Studio project", &["json"]).pick_file() {
            self.open_project(&path);
        }
    }

    /// Sets the canvas image; a non-image or a huge image is reported and nothing changes.
    pub fn open_image(&mut self, path: &Path) -> bool {
        match load_image(path) {
            Ok(image) => {
                self.set_background_image(Some(image));
                self.scene.background = Some(path.to_path_buf());
                true
            }
            Err(e) => {
                self.notices.error(format!("Cannot use this image: {e}. The canvas is unchanged."));
                false
            }
        }
    }

    pub(super) fn open_image_dialog(&mut self) {
        if !self.dialogs {
            return;
        }
        if let Some(path) = rfd::FileDialog::new().add_filter("Image", &["png", "jpg", "jpeg"]).pick_file() {
            self.open_image(&path);
        }
    }

    pub(super) fn clear_image(&mut self) {
        self.set_background_image(None);
        self.scene.background = None;
    }

    /// Adds a track read from a Tora point file (reference timing, as Tora reads it).
    pub fn import_point_file(&mut self, path: &Path) -> bool {
        match point_file::read_track(path, self.scene.next_colour()) {
            Ok(track) => {
                self.scene.tracks.push(track);
                self.selection = Selection { track: Some(self.scene.tracks.len() - 1), point: None };
                true
            }
            Err(e) => {
                self.notices.error(format!("Cannot import the point file: {e}"));
                false
            }
        }
    }

    pub(super) fn import_dialog(&mut self) {
        if !self.dialogs {
            return;
        }
        for path in rfd::FileDialog::new().add_filter("Tora point file", &["txt"]).pick_files().unwrap_or_default() {
            self.import_point_file(&path);
        }
    }

    /// Writes one Tora point file per motion track into `dir` (`<track name>.txt`): a region
    /// writes its N sample tracks, a camera layer its grid.
    pub fn export_point_files(&mut self, dir: &Path) -> usize {
        let tracks = match self.scene.motion_tracks() {
            Ok(tracks) => tracks,
            Err(e) => {
                self.notices.error(format!("Cannot export point files: {e}"));
                return 0;
            }
        };
        let mut written = 0;
        for track in tracks.iter().filter(|t| !t.points.is_empty()) {
            let safe: String =
                track.name.chars().map(|c| if c.is_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
            let path = dir.join(format!("{safe}.txt"));
            match point_file::write_track(&path, track, self.scene.frames) {
                Ok(()) => written += 1,
                Err(e) => self.notices.error(format!("Cannot export track '{}': {e}", track.name)),
            }
        }
        self.notices.info(format!("exported {written} point file(s) to {}", dir.display()));
        written
    }

    pub(super) fn export_dialog(&mut self) {
        if !self.dialogs {
            return;
        }
        if let Some(dir) = rfd::FileDialog::new().pick_folder() {
            self.export_point_files(&dir);
        }
    }

    /// Adds a preset track centred at `center` (canvas units).
    pub fn add_preset(&mut self, preset: Preset, center: [f64; 2]) {
        let name = format!("{} {}", preset.label().to_lowercase(), self.scene.tracks.len() + 1);
        let track = preset.track(name, self.scene.next_colour(), center, 40.0, self.scene.frames);
        self.scene.tracks.push(track);
        self.selection = Selection { track: Some(self.scene.tracks.len() - 1), point: None };
    }

    /// A new empty track, ready for the polyline tool.
    pub fn add_track(&mut self) -> usize {
        let name = format!("track {}", self.scene.tracks.len() + 1);
        self.scene.tracks.push(Track::new(name, self.scene.next_colour(), Vec::new()));
        let index = self.scene.tracks.len() - 1;
        self.selection = Selection { track: Some(index), point: None };
        if !matches!(self.state.tool, Tool::Polyline | Tool::Spline | Tool::Freehand) {
            self.state.tool = Tool::Polyline;
        }
        self.drawing = Some(index);
        index
    }

    pub fn delete_track(&mut self, index: usize) {
        if index < self.scene.tracks.len() {
            self.scene.tracks.remove(index);
            self.selection = Selection::default();
            self.drawing = None;
        }
    }

    /// Deletes the selected keyframe (unless its track is locked).
    pub fn delete_selected_point(&mut self) -> bool {
        let (Some(t), Some(p)) = (self.selection.track, self.selection.point) else {
            return false;
        };
        self.delete_point(t, p)
    }

    pub(super) fn delete_point(&mut self, t: usize, p: usize) -> bool {
        let Some(track) = self.scene.tracks.get_mut(t) else {
            return false;
        };
        if track.locked {
            self.notices.warn(format!("track '{}' is locked", track.name));
            return false;
        }
        if p >= track.points.len() {
            return false;
        }
        track.points.remove(p);
        self.selection = Selection { track: Some(t), point: None };
        true
    }

    /// A new track of the given shape starting with one point (the polyline/spline tools).
    pub(super) fn start_drawn_track(&mut self, first: Keyframe, shape: PathShape) -> usize {
        let name = format!("track {}", self.scene.tracks.len() + 1);
        let mut track = Track::new(name, self.scene.next_colour(), vec![first]);
        track.shape = shape;
        self.scene.tracks.push(track);
        let index = self.scene.tracks.len() - 1;
        self.selection = Selection { track: Some(index), point: Some(0) };
        index
    }

    pub(super) fn handle_shortcuts(&mut self, ctx: &egui::Context) {
        use egui::{Key, KeyboardShortcut, Modifiers};
        let shortcut = |m, k| KeyboardShortcut::new(m, k);
        let redo = ctx.input_mut(|i| {
            i.consume_shortcut(&shortcut(Modifiers::COMMAND | Modifiers::SHIFT, Key::Z))
                || i.consume_shortcut(&shortcut(Modifiers::COMMAND, Key::Y))
        });
        if redo {
            self.redo();
        }
        if ctx.input_mut(|i| i.consume_shortcut(&shortcut(Modifiers::COMMAND, Key::Z))) {
            self.undo();
        }
        if ctx.input_mut(|i| i.consume_shortcut(&shortcut(Modifiers::COMMAND | Modifiers::SHIFT, Key::S))) {
            self.save_as();
        }
        if ctx.input_mut(|i| i.consume_shortcut(&shortcut(Modifiers::COMMAND, Key::S))) {
            self.save();
        }
        if ctx.input_mut(|i| i.consume_shortcut(&shortcut(Modifiers::COMMAND, Key::O))) {
            self.open_dialog();
        }
        // Plain keys only when no text field has the keyboard.
        if ctx.text_edit_focused() {
            return;
        }
        let pressed = |k| ctx.input_mut(|i| i.consume_key(Modifiers::NONE, k));
        if pressed(Key::Delete) || pressed(Key::Backspace) {
            self.delete_selected_point();
        }
        if pressed(Key::Enter) || pressed(Key::Escape) {
            self.drawing = None;
            self.layers.drawing_path = None;
        }
        if pressed(Key::Space) {
            self.playback.playing = !self.playback.playing;
        }
        for (key, tool) in [
            (Key::V, Tool::Select),
            (Key::P, Tool::Polyline),
            (Key::S, Tool::Spline),
            (Key::F, Tool::Freehand),
            (Key::A, Tool::Anchor),
            (Key::M, Tool::MoveTrack),
            (Key::L, Tool::Lasso),
        ] {
            if pressed(key) {
                self.set_tool(tool);
            }
        }
    }

    /// Files dropped on the window: projects open, point files import, anything else is tried
    /// as the canvas image.
    /// Opens a file by what it is: project (.json), point file (.txt), else an image.
    pub fn open_any(&mut self, path: &Path) {
        let ext = path.extension().map(|e| e.to_string_lossy().to_lowercase()).unwrap_or_default();
        match ext.as_str() {
            "json" => {
                self.open_project(path);
            }
            "txt" => {
                self.import_point_file(path);
            }
            _ => {
                self.open_image(path);
            }
        }
    }
}
