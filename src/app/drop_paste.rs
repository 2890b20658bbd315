//! Files dropped onto the window and images pasted from the clipboard (issue 16).
//!
//! A dropped image becomes the canvas image (and the first frame when the chosen model is
//! image-to-video); a project (.json) opens; a Tora point file (.txt) adds a track. Anything else
//! gets a message naming the file and what can be dropped, and changes nothing. A pasted image
//! is written into the data folder first, so the project can name it like any other image.

use std::path::{Path, PathBuf};

use eframe::egui;

use crate::flow::preview::RgbaFrame;

use super::background::decode_image;
use super::StudioApp;

/// What to drop, for the message about a file that is none of these.
const DROPPABLE: &str = "drop an image (PNG or JPEG), a project (.json) or a Tora point file (.txt)";

impl StudioApp {
    pub(super) fn handle_dropped_files(&mut self, ctx: &egui::Context) {
        let dropped = ctx.input(|i| i.raw.dropped_files.clone());
        let (pasted_paths, pasted_images) = ctx.input(|i| {
            let mut paths = Vec::new();
            let mut images = Vec::new();
            for event in &i.events {
                match event {
                    // A file copied in a file manager pastes as its path.
                    egui::Event::Paste(text) if Path::new(text.trim()).is_file() => {
                        paths.push(PathBuf::from(text.trim()))
                    }
                    egui::Event::PasteImage(image) => images.push(image.clone()),
                    _ => {}
                }
            }
            (paths, images)
        });
        for file in dropped {
            let path = file.path().to_path_buf();
            if path.is_file() {
                self.open_dropped(&path);
                continue;
            }
            // Drops without a path (bytes only) can only be images.
            let name =
                path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "the dropped file".into());
            match file.bytes().and_then(|bytes| decode_image(&name, &bytes)) {
                Ok(img) => self.set_background_image(Some(img)),
                Err(e) => self.notices.error(format!("Cannot use this image: {e}. The canvas is unchanged.")),
            }
        }
        for path in pasted_paths {
            self.open_dropped(&path);
        }
        for image in pasted_images {
            self.use_pasted_image(&image);
        }
    }

    /// Opens a dropped or pasted file by what it is; see the module comment.
    pub fn open_dropped(&mut self, path: &Path) -> bool {
        let ext = path.extension().map(|e| e.to_string_lossy().to_lowercase()).unwrap_or_default();
        match ext.as_str() {
            "json" => self.open_project(path),
            "txt" => self.import_point_file(path),
            "png" | "jpg" | "jpeg" => self.use_dropped_image(path),
            _ => match std::fs::read(path).map(|b| decode_image(&path.display().to_string(), &b)) {
                // An image with an unusual name is still an image.
                Ok(Ok(_)) => self.use_dropped_image(path),
                _ => {
                    self.notices.error(format!("Cannot use {}: {DROPPABLE}. Nothing was changed.", path.display()));
                    false
                }
            },
        }
    }

    fn use_dropped_image(&mut self, path: &Path) -> bool {
        if !self.open_image(path) {
            return false;
        }
        let image_to_video = self.model_report().and_then(|r| r.image_to_video) == Some(true);
        let name = path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into());
        if image_to_video {
            self.state.generate.settings.image = Some(path.to_path_buf());
            self.notices.info(format!("{name} is the canvas image and the first frame"));
        } else {
            self.notices.info(format!("{name} is the canvas image"));
        }
        true
    }

    /// A pasted image: kept as `pasted/paste-<time>.png` in the data folder, then used as a dropped one.
    pub fn use_pasted_image(&mut self, image: &egui::ColorImage) -> bool {
        let [w, h] = image.size;
        let pixels: Vec<u8> = image.pixels.iter().flat_map(|c| c.to_srgba_unmultiplied()).collect();
        let Some(frame) = RgbaFrame::new(w as u32, h as u32, pixels) else {
            self.notices.error("Cannot use the pasted image: its pixels do not match its size. Nothing was changed.");
            return false;
        };
        match self.persistence.dir().map(|d| save_pasted(d, &frame)) {
            Some(Ok(path)) => self.use_dropped_image(&path),
            Some(Err(e)) => {
                self.notices.error(format!("Cannot keep the pasted image: {e}. Nothing was changed."));
                false
            }
            None => {
                // No data folder: shown, but a saved project cannot name it.
                self.set_background_image(Some(frame));
                self.scene.background = None;
                self.notices.warn(
                    "the pasted image is the canvas image, but it is not saved with the project (no data folder)",
                );
                true
            }
        }
    }
}

fn save_pasted(data_dir: &Path, frame: &RgbaFrame) -> Result<PathBuf, String> {
    let dir = data_dir.join("pasted");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let millis = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
    let path = dir.join(format!("paste-{millis}.png"));
    image::save_buffer(&path, &frame.pixels, frame.width, frame.height, image::ExtendedColorType::Rgba8)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}
