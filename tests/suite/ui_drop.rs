//! Drag-and-drop and paste onto the studio window (issue 16): images, projects and point files do
//! what they are for; a bad file gets a message naming it and changes nothing.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use eframe::egui::{self, DroppedFile, Event};
use egui_kittest::Harness;
use tora_studio::app::{demo_scene, Level, StudioApp};
use tora_studio::trajectory::{point_file, project, Keyframe, Scene, Track};

use super::common::studio_without_overlay;
use super::ui_generate::{fixture, pump_until};

/// A file as the window system hands it over.
#[derive(Debug)]
struct Dropped(PathBuf);

impl DroppedFile for Dropped {
    fn path(&self) -> &Path {
        &self.0
    }

    fn bytes(&self) -> Result<Vec<u8>, String> {
        std::fs::read(&self.0).map_err(|e| e.to_string())
    }
}

fn studio(data: &Path) -> Harness<'static, StudioApp> {
    studio_without_overlay(demo_scene(), Some(data.to_path_buf()))
}

fn drop_file(h: &mut Harness<StudioApp>, path: &Path) {
    h.input_mut().dropped_files.push(Arc::new(Dropped(path.to_path_buf())));
    h.run_steps(2);
}

fn errors(app: &StudioApp) -> Vec<String> {
    app.notices().iter().filter(|n| n.level == Level::Error).map(|n| n.text.clone()).collect()
}

fn png(path: &Path, w: u32, h: u32) {
    image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 3) as u8, (y * 5) as u8, 120])).save(path).unwrap();
}

#[test]
fn dropped_images_projects_and_point_files_do_their_job_and_bad_files_change_nothing() {
    let data = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let mut h = studio(data.path());
    let before = h.state().scene().clone();

    // An image: the canvas image.
    let beach = files.path().join("beach.png");
    png(&beach, 64, 40);
    drop_file(&mut h, &beach);
    assert_eq!(h.state().scene().background.as_deref(), Some(beach.as_path()));
    assert_eq!(h.state().scene().tracks, before.tracks, "the tracks stay");
    assert!(errors(h.state()).is_empty(), "{:?}", errors(h.state()));
    let with_image = h.state().scene().clone();

    // Garbage, with an image's name and with no known name: a message naming it, nothing changed.
    let fake = files.path().join("broken.png");
    std::fs::write(&fake, "this is text, not a picture").unwrap();
    drop_file(&mut h, &fake);
    let e = errors(h.state());
    assert_eq!(e.len(), 1);
    assert!(e[0].contains("broken.png") && e[0].contains("unchanged"), "{}", e[0]);
    let junk = files.path().join("notes.bin");
    std::fs::write(&junk, [0u8, 159, 146, 150, 1, 2, 3]).unwrap();
    drop_file(&mut h, &junk);
    let e = errors(h.state());
    assert_eq!(e.len(), 2);
    assert!(e[1].contains("notes.bin") && e[1].contains("drop an image (PNG or JPEG), a project (.json)"), "{}", e[1]);
    let bad_project = files.path().join("project.json");
    std::fs::write(&bad_project, "{ not json").unwrap();
    drop_file(&mut h, &bad_project);
    assert_eq!(errors(h.state()).len(), 3);
    assert_eq!(h.state().scene(), &with_image, "bad files change nothing");

    // A Tora point file: one more track.
    let track = Track::new("drift", [10, 20, 30], vec![Keyframe::at(20.0, 20.0), Keyframe::at(200.0, 120.0)]);
    let points = files.path().join("drift.txt");
    point_file::write_track(&points, &track, h.state().scene().frames).unwrap();
    drop_file(&mut h, &points);
    assert_eq!(h.state().scene().tracks.len(), with_image.tracks.len() + 1);

    // A project: it opens.
    let saved = Scene { frames: 17, ..Scene::default() };
    let good_project = files.path().join("other.json");
    project::save(&good_project, &saved).unwrap();
    drop_file(&mut h, &good_project);
    assert_eq!(h.state().scene().frames, 17);
    assert_eq!(h.state().project_path(), Some(good_project.as_path()));
    assert_eq!(errors(h.state()).len(), 3, "{:?}", errors(h.state()));
}

#[test]
fn a_pasted_image_is_kept_in_the_data_folder_and_becomes_the_canvas_image() {
    let data = tempfile::tempdir().unwrap();
    let mut h = studio(data.path());
    let image = egui::ColorImage::from_rgb([8, 4], &[200u8; 8 * 4 * 3]);
    h.event(Event::PasteImage(Arc::new(image)));
    h.run_steps(2);
    let background = h.state().scene().background.clone().expect("the pasted image is the canvas image");
    assert!(background.starts_with(data.path().join("pasted")), "{}", background.display());
    assert_eq!(image::image_dimensions(&background).unwrap(), (8, 4));
}

#[test]
fn an_image_dropped_for_an_image_to_video_model_is_also_the_first_frame() {
    let Some((model, scene)) = fixture(true) else { return };
    let data = tempfile::tempdir().unwrap();
    let mut h = studio(data.path());
    h.state_mut().generate_form_mut().model_dir = model.display().to_string();
    pump_until(&mut h, "the model scan", Duration::from_secs(60), |a| a.model_report().is_some_and(|r| r.usable()));
    let first = data.path().join("first.png");
    png(&first, scene.width.max(8), scene.height.max(8));
    drop_file(&mut h, &first);
    assert_eq!(h.state().scene().background.as_deref(), Some(first.as_path()));
    assert_eq!(h.state().generate_form().settings.image.as_deref(), Some(first.as_path()));
}
