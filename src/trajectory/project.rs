//! Project files: the scene as versioned JSON, written atomically so a crash mid-save never
//! destroys the previous file.

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{Scene, TrajectoryError};

/// Marker in every project file, so foreign JSON is recognised as such.
pub const PROJECT_FORMAT: &str = "tora-studio-project";
/// Current project-file version; older versions are upgraded on load.
/// 1: tracks only. 2: adds `regions` and `camera` (absent in a version-1 file = none).
pub const PROJECT_VERSION: u32 = 2;

#[derive(Serialize, Deserialize)]
struct ProjectFile {
    format: String,
    version: u32,
    scene: Scene,
}

/// The JSON text of a project.
pub fn to_json(scene: &Scene) -> String {
    let file = ProjectFile { format: PROJECT_FORMAT.into(), version: PROJECT_VERSION, scene: scene.clone() };
    serde_json::to_string_pretty(&file).expect("a scene always serialises")
}

/// Parses project JSON; `path` only names the source in errors.
pub fn from_json(path: &Path, text: &str) -> Result<Scene, TrajectoryError> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| json_error(path, e))?;
    let format = value.get("format").and_then(|f| f.as_str());
    if format != Some(PROJECT_FORMAT) {
        return Err(TrajectoryError::ProjectFormat {
            path: path.to_path_buf(),
            reason: format!("its \"format\" is {:?}, expected {PROJECT_FORMAT:?}", format.unwrap_or("missing")),
        });
    }
    let version = value.get("version").and_then(|v| v.as_u64()).unwrap_or(0);
    if version == 0 || version > PROJECT_VERSION as u64 {
        return Err(TrajectoryError::ProjectFormat {
            path: path.to_path_buf(),
            reason: format!(
                "version {version} is not supported (this build reads 1..={PROJECT_VERSION}); update Tora Studio"
            ),
        });
    }
    let file: ProjectFile = serde_json::from_str(text).map_err(|e| json_error(path, e))?;
    file.scene
        .validate()
        .map_err(|e| TrajectoryError::ProjectFormat { path: path.to_path_buf(), reason: e.to_string() })?;
    Ok(file.scene)
}

fn json_error(path: &Path, e: serde_json::Error) -> TrajectoryError {
    TrajectoryError::ProjectJson {
        path: path.to_path_buf(),
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    }
}

/// Loads a project file. A relative background path is taken from the project's folder, so a
/// project and its image can move together (the shipped `assets/examples` rely on it).
pub fn load(path: &Path) -> Result<Scene, TrajectoryError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| TrajectoryError::Io { path: path.to_path_buf(), source })?;
    let mut scene = from_json(path, &text)?;
    if let (Some(image), Some(dir)) = (&scene.background, path.parent()) {
        if image.is_relative() {
            scene.background = Some(dir.join(image));
        }
    }
    Ok(scene)
}

/// Saves a project file atomically.
pub fn save(path: &Path, scene: &Scene) -> Result<(), TrajectoryError> {
    write_atomically(path, to_json(scene).as_bytes())
}

/// Writes `bytes` to a temporary file beside `path`, syncs it, then renames it over `path`:
/// readers see the old file or the new one, never a torn one.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), TrajectoryError> {
    let io = |source| TrajectoryError::Io { path: path.to_path_buf(), source };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = crate::disk::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        // The rename is durable only once its folder is: without this, a power cut right after
        // a save reported success could bring the old file back.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trajectory::{Keyframe, Track};

    #[test]
    fn save_load_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.json");
        let mut scene = Scene::default();
        scene.tracks.push(Track::new("a", [1, 2, 3], vec![Keyframe::timed(1.0, 2.0, 3.0), Keyframe::at(4.5, 6.0)]));
        save(&path, &scene).unwrap();
        assert_eq!(load(&path).unwrap(), scene);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temp file left behind");
    }

    #[test]
    fn relative_backgrounds_are_found_beside_the_project() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.json");
        let scene = Scene { background: Some("images/a.png".into()), ..Scene::default() };
        save(&path, &scene).unwrap();
        assert_eq!(load(&path).unwrap().background, Some(dir.path().join("images/a.png")));
        let absolute = Scene { background: Some(dir.path().join("b.png")), ..Scene::default() };
        save(&path, &absolute).unwrap();
        assert_eq!(load(&path).unwrap(), absolute);
    }

    #[test]
    fn version_1_files_still_open() {
        let v1 = r#"{
  "format": "tora-studio-project",
  "version": 1,
  "scene": {
    "width": 720, "height": 480, "frames": 49, "fps": 8.0,
    "tracks": [{"name": "walk", "colour": [230, 57, 70], "visible": true, "locked": false,
                "timing": "timed", "shape": "polyline",
                "points": [{"x": 10.0, "y": 20.0}, {"x": 100.0, "y": 20.0, "frame": 40.0}],
                "start_frame": 0}]
  }
}"#;
        let scene = from_json(Path::new("old.json"), v1).unwrap();
        assert_eq!(scene.tracks.len(), 1);
        assert_eq!(scene.tracks[0].points[1].frame, Some(40.0));
        assert!(scene.regions.is_empty() && scene.camera.is_none());
        assert!(to_json(&scene).contains("\"version\": 2"));
    }

    #[test]
    fn version_2_round_trips_regions_and_camera() {
        use crate::trajectory::{CameraLayer, Region};
        let mut scene = Scene::default();
        let mut region = Region::new("cup", [1, 2, 3], vec![[10.0, 10.0], [60.0, 12.0], [40.0, 70.0]]);
        region.samples = 7;
        region.path.points.push(Keyframe::timed(90.0, 40.0, 30.0));
        scene.regions.push(region);
        scene.camera = Some(CameraLayer { pan_distance: 20.0, rotate: 5.0, end_frame: Some(30), ..Default::default() });
        let back = from_json(Path::new("p.json"), &to_json(&scene)).unwrap();
        assert_eq!(back, scene);
    }

    #[test]
    fn bad_regions_and_cameras_are_named_errors() {
        use crate::trajectory::{CameraLayer, Region};
        let p = Path::new("bad.json");
        let scene =
            Scene { regions: vec![Region::new("cup", [0; 3], vec![[1.0, 1.0], [2.0, 2.0]])], ..Scene::default() };
        let err = from_json(p, &to_json(&scene)).unwrap_err().to_string();
        assert!(err.contains("bad.json") && err.contains("region 'cup'"), "{err}");
        let scene = Scene { camera: Some(CameraLayer { zoom: 0.0, ..Default::default() }), ..Scene::default() };
        let err = from_json(p, &to_json(&scene)).unwrap_err().to_string();
        assert!(err.contains("bad.json") && err.contains("zoom 0"), "{err}");
    }

    #[test]
    fn bad_projects_are_named_errors() {
        let p = Path::new("x.json");
        let err = from_json(p, "{\n  \"format\": ").unwrap_err().to_string();
        assert!(err.starts_with("x.json:2:"), "{err}");
        let err = from_json(p, r#"{"hello": 1}"#).unwrap_err().to_string();
        assert!(err.contains("not a Tora Studio project"), "{err}");
        let err =
            from_json(p, r#"{"format": "tora-studio-project", "version": 99, "scene": {}}"#).unwrap_err().to_string();
        assert!(err.contains("version 99"), "{err}");
        let bad_scene = to_json(&Scene { frames: 1, ..Scene::default() });
        let err = from_json(p, &bad_scene).unwrap_err().to_string();
        assert!(err.contains("at least 2 frames"), "{err}");
    }
}
