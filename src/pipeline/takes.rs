//! The history of takes: every finished generation kept on disk with its prompt, settings and
//! scene, so takes can be compared side by side, their settings re-opened, and exported later.
//!
//! Layout: `<root>/<id>/take.json` + `<root>/<id>/frame_0000.png …`. The JSON is written
//! atomically after the frames, so a half-written take is never listed.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::request::Settings;
use crate::export::{png::write_png_sequence, RgbFrames};
use crate::trajectory::{project::write_atomically, Scene};

const TAKE_FILE: &str = "take.json";
const FRAME_PREFIX: &str = "frame";

/// Everything needed to understand and reproduce a take.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TakeInfo {
    pub id: String,
    /// Seconds since the Unix epoch.
    pub created: u64,
    pub model_dir: PathBuf,
    pub settings: Settings,
    pub scene: Scene,
    pub width: u32,
    pub height: u32,
    pub frame_count: usize,
    pub fps: f32,
    /// Wall time of the run.
    pub seconds: f64,
    /// The render-queue batch this take is one variant of (none: a single run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum TakeError {
    #[error("{path}: {reason}")]
    Io { path: PathBuf, reason: String },
    #[error("{path}: not a take file ({reason})")]
    Format { path: PathBuf, reason: String },
}

/// A folder of takes.
#[derive(Debug, Clone)]
pub struct TakeStore {
    root: PathBuf,
}

impl TakeStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        TakeStore { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn dir_of(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    /// A fresh id: creation time plus a counter, sortable by time.
    pub fn new_id(&self, created: u64) -> String {
        let mut n = 0;
        loop {
            let id = format!("take-{created}-{n:02}");
            if !self.dir_of(&id).exists() {
                return id;
            }
            n += 1;
        }
    }

    /// Stores frames and metadata; returns the stored info. On failure (e.g. a full disk) the
    /// partial take is removed: it was never listed, and its frames would only hold the space.
    pub fn save(&self, info: TakeInfo, frames: &RgbFrames) -> Result<TakeInfo, TakeError> {
        let dir = self.dir_of(&info.id);
        let saved = self.write_take(&dir, info, frames);
        if saved.is_err() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        saved
    }

    fn write_take(&self, dir: &Path, info: TakeInfo, frames: &RgbFrames) -> Result<TakeInfo, TakeError> {
        let dir = dir.to_path_buf();
        std::fs::create_dir_all(&dir).map_err(|e| TakeError::Io { path: dir.clone(), reason: e.to_string() })?;
        write_png_sequence(&dir, frames, FRAME_PREFIX)
            .map_err(|e| TakeError::Io { path: dir.clone(), reason: e.to_string() })?;
        let path = dir.join(TAKE_FILE);
        let json = serde_json::to_string_pretty(&info)
            .map_err(|e| TakeError::Format { path: path.clone(), reason: e.to_string() })?;
        write_atomically(&path, json.as_bytes()).map_err(|e| TakeError::Io { path, reason: e.to_string() })?;
        Ok(info)
    }

    /// Every complete take, newest first. Unreadable entries are skipped (reported in the second list).
    pub fn list(&self) -> (Vec<TakeInfo>, Vec<TakeError>) {
        let mut takes = Vec::new();
        let mut errors = Vec::new();
        let Ok(entries) = std::fs::read_dir(&self.root) else { return (takes, errors) };
        for entry in entries.flatten() {
            let path = entry.path().join(TAKE_FILE);
            if !path.is_file() {
                continue;
            }
            match std::fs::read_to_string(&path) {
                Ok(text) => match serde_json::from_str::<TakeInfo>(&text) {
                    Ok(info) => takes.push(info),
                    Err(e) => errors.push(TakeError::Format { path, reason: e.to_string() }),
                },
                Err(e) => errors.push(TakeError::Io { path, reason: e.to_string() }),
            }
        }
        takes.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| b.id.cmp(&a.id)));
        (takes, errors)
    }

    /// The frames of a stored take.
    pub fn frames(&self, info: &TakeInfo) -> Result<RgbFrames, TakeError> {
        let dir = self.dir_of(&info.id);
        let mut frames = Vec::with_capacity(info.frame_count);
        for i in 0..info.frame_count {
            let path = dir.join(format!("{FRAME_PREFIX}_{i:04}.png"));
            let img = image::open(&path).map_err(|e| TakeError::Io { path: path.clone(), reason: e.to_string() })?;
            let rgb = img.to_rgb8();
            if rgb.width() != info.width || rgb.height() != info.height {
                return Err(TakeError::Format {
                    path,
                    reason: format!(
                        "frame is {}x{}, the take says {}x{}",
                        rgb.width(),
                        rgb.height(),
                        info.width,
                        info.height
                    ),
                });
            }
            frames.push(rgb.into_raw());
        }
        Ok(RgbFrames { width: info.width, height: info.height, fps: info.fps, frames })
    }

    pub fn delete(&self, id: &str) -> Result<(), TakeError> {
        let dir = self.dir_of(id);
        std::fs::remove_dir_all(&dir).map_err(|e| TakeError::Io { path: dir, reason: e.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(store: &TakeStore, created: u64, prompt: &str) -> TakeInfo {
        TakeInfo {
            id: store.new_id(created),
            created,
            model_dir: "models/tora".into(),
            settings: Settings { prompt: prompt.into(), ..Settings::default() },
            scene: Scene::default(),
            width: 4,
            height: 2,
            frame_count: 3,
            fps: 8.0,
            seconds: 1.5,
            batch: None,
        }
    }

    fn clip() -> RgbFrames {
        RgbFrames { width: 4, height: 2, fps: 8.0, frames: (0..3u8).map(|i| vec![i * 40; 4 * 2 * 3]).collect() }
    }

    #[test]
    fn saves_lists_newest_first_and_reloads_frames() {
        let dir = tempfile::tempdir().unwrap();
        let store = TakeStore::new(dir.path());
        let a = store.save(info(&store, 100, "a cat"), &clip()).unwrap();
        let b = store.save(info(&store, 200, "a dog"), &clip()).unwrap();
        let (list, errors) = store.list();
        assert!(errors.is_empty());
        assert_eq!(list.iter().map(|t| t.settings.prompt.as_str()).collect::<Vec<_>>(), ["a dog", "a cat"]);
        assert_eq!(store.frames(&a).unwrap().frames, clip().frames);
        store.delete(&b.id).unwrap();
        assert_eq!(store.list().0.len(), 1);
    }

    #[test]
    fn a_damaged_take_is_reported_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let store = TakeStore::new(dir.path());
        store.save(info(&store, 100, "ok"), &clip()).unwrap();
        std::fs::create_dir_all(dir.path().join("broken")).unwrap();
        std::fs::write(dir.path().join("broken").join(TAKE_FILE), "{not json").unwrap();
        let (list, errors) = store.list();
        assert_eq!(list.len(), 1);
        assert_eq!(errors.len(), 1);
        assert!(errors[0].to_string().contains("broken"));
    }
}
