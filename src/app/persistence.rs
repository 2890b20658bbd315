//! Where the studio keeps its own files: autosave with restore after a crash, the UI state
//! (recent files), and the session lock that tells a crash from a clean exit.

use std::path::{Path, PathBuf};

use crate::trajectory::{project, Scene};

use super::state::UiState;

/// Seconds between autosaves of a changed scene.
pub const AUTOSAVE_INTERVAL_S: f64 = 5.0;

const AUTOSAVE_FILE: &str = "autosave.json";
const STATE_FILE: &str = "state.json";
const LOCK_FILE: &str = "session.lock";

/// The studio's data folder: `$TORA_STUDIO_HOME`, else `$XDG_DATA_HOME/tora-studio`, else
/// `~/.local/share/tora-studio`.
pub fn default_data_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("TORA_STUDIO_HOME") {
        return Some(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME") {
        return Some(PathBuf::from(dir).join("tora-studio"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share/tora-studio"))
}

/// Autosave and session bookkeeping in one data folder (none: nothing is kept).
pub struct Persistence {
    dir: Option<PathBuf>,
    /// The scene as last autosaved, to skip unchanged autosaves.
    autosaved: Option<Scene>,
    last_autosave_time: f64,
}

/// What a previous session left behind when it did not exit cleanly.
pub struct CrashRecovery {
    pub scene: Scene,
}

impl Persistence {
    pub fn new(dir: Option<PathBuf>) -> Self {
        Persistence { dir, autosaved: None, last_autosave_time: 0.0 }
    }

    /// The data folder (None: nothing is kept).
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    fn file(&self, name: &str) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join(name))
    }

    /// Starts a session: returns the autosaved work of a session that crashed (its lock is still
    /// there), then takes the lock. Errors are reported, never fatal.
    pub fn start_session(&mut self) -> (Option<CrashRecovery>, Vec<String>) {
        let mut problems = Vec::new();
        let (Some(dir), Some(lock), Some(autosave)) =
            (self.dir.clone(), self.file(LOCK_FILE), self.file(AUTOSAVE_FILE))
        else {
            return (None, problems);
        };
        let recovery = if lock.exists() && autosave.exists() {
            match project::load(&autosave) {
                Ok(scene) => Some(CrashRecovery { scene }),
                Err(e) => {
                    problems.push(format!("the autosave of the last session is unreadable ({e}); it was set aside"));
                    let _ = std::fs::rename(&autosave, dir.join("autosave.unreadable.json"));
                    None
                }
            }
        } else {
            None
        };
        if let Err(e) =
            std::fs::create_dir_all(&dir).and_then(|_| std::fs::write(&lock, std::process::id().to_string()))
        {
            problems.push(format!("cannot write to {}: {e}; autosave is off", dir.display()));
            self.dir = None;
        }
        (recovery, problems)
    }

    /// Ends the session cleanly: the autosave and the lock go.
    pub fn end_session(&mut self) {
        for name in [AUTOSAVE_FILE, LOCK_FILE] {
            if let Some(path) = self.file(name) {
                let _ = std::fs::remove_file(path);
            }
        }
    }

    /// Drops a crash's autosave the user chose not to restore.
    pub fn discard_autosave(&mut self) {
        if let Some(path) = self.file(AUTOSAVE_FILE) {
            let _ = std::fs::remove_file(path);
        }
    }

    /// Autosaves `scene` if it changed and the interval has passed (`now` in seconds).
    pub fn autosave_if_due(&mut self, scene: &Scene, now: f64) -> Result<bool, String> {
        if now - self.last_autosave_time < AUTOSAVE_INTERVAL_S || self.autosaved.as_ref() == Some(scene) {
            return Ok(false);
        }
        self.autosave_now(scene, now)
    }

    pub fn autosave_now(&mut self, scene: &Scene, now: f64) -> Result<bool, String> {
        let Some(path) = self.file(AUTOSAVE_FILE) else {
            return Ok(false);
        };
        self.last_autosave_time = now;
        project::save(&path, scene).map_err(|e| format!("autosave failed: {e}"))?;
        self.autosaved = Some(scene.clone());
        Ok(true)
    }

    pub fn load_state(&self) -> UiState {
        self.file(STATE_FILE)
            .and_then(|p| std::fs::read_to_string(p).ok())
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default()
    }

    pub fn save_state(&self, state: &UiState) -> Result<(), String> {
        let Some(path) = self.file(STATE_FILE) else {
            return Ok(());
        };
        let text = serde_json::to_string_pretty(state).map_err(|e| e.to_string())?;
        project::write_atomically(&path, text.as_bytes()).map_err(|e| e.to_string())
    }
}

/// Names the file a project is saved to: `.json` added when missing.
pub fn project_path(path: &Path) -> PathBuf {
    if path.extension().is_some() {
        path.to_path_buf()
    } else {
        path.with_extension("json")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crashed_session_offers_its_autosave_and_a_clean_one_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let scene = Scene { frames: 33, ..Scene::default() };
        let mut first = Persistence::new(Some(dir.path().to_path_buf()));
        assert!(first.start_session().0.is_none());
        assert_eq!(first.autosave_if_due(&scene, 10.0), Ok(true));
        assert_eq!(first.autosave_if_due(&scene, 20.0), Ok(false), "unchanged");
        // No end_session: the process "crashed".
        let mut second = Persistence::new(Some(dir.path().to_path_buf()));
        let recovered = second.start_session().0.map(|r| r.scene);
        assert_eq!(recovered, Some(scene));
        second.end_session();
        let mut third = Persistence::new(Some(dir.path().to_path_buf()));
        assert!(third.start_session().0.is_none(), "clean exit leaves nothing to restore");
    }

    #[test]
    fn a_full_disk_fails_the_autosave_with_a_message_keeps_the_last_one_and_retries() {
        let dir = tempfile::tempdir().unwrap();
        let (first, second) = (Scene { frames: 33, ..Scene::default() }, Scene { frames: 41, ..Scene::default() });
        let mut p = Persistence::new(Some(dir.path().to_path_buf()));
        p.start_session();
        assert_eq!(p.autosave_if_due(&first, 10.0), Ok(true));
        let full = crate::disk::simulate_full(dir.path(), 50);
        let err = p.autosave_if_due(&second, 20.0).unwrap_err();
        assert!(err.starts_with("autosave failed") && err.contains("No space left on device"), "{err}");
        assert!(err.contains(AUTOSAVE_FILE), "{err}");
        drop(full);
        // A crash now would restore the last good autosave.
        let recovered = Persistence::new(Some(dir.path().to_path_buf())).start_session().0.map(|r| r.scene);
        assert_eq!(recovered, Some(first));
        // With space again, the next due autosave writes the change that failed.
        assert_eq!(p.autosave_if_due(&second, 30.0), Ok(true));
        assert_eq!(project::load(&dir.path().join(AUTOSAVE_FILE)).unwrap(), second);
    }

    #[test]
    fn a_corrupt_autosave_is_set_aside_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(LOCK_FILE), "1").unwrap();
        std::fs::write(dir.path().join(AUTOSAVE_FILE), "{ not json").unwrap();
        let mut p = Persistence::new(Some(dir.path().to_path_buf()));
        let (recovery, problems) = p.start_session();
        assert!(recovery.is_none());
        assert!(problems[0].contains("unreadable"), "{problems:?}");
        assert!(dir.path().join("autosave.unreadable.json").exists());
    }
}
