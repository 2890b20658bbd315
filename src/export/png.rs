use std::io::{BufWriter, Write};
use std::path::Path;

use image::codecs::png::PngEncoder;
use image::ImageEncoder;

use super::{ExportError, RgbFrames};

/// Writes `<prefix>_0000.png`, `<prefix>_0001.png`, ... into `dir` (created if needed).
pub fn write_png_sequence(dir: &Path, clip: &RgbFrames, prefix: &str) -> Result<(), ExportError> {
    clip.validate()?;
    std::fs::create_dir_all(dir).map_err(|source| ExportError::Io { path: dir.into(), source })?;
    for (i, frame) in clip.frames.iter().enumerate() {
        let path = dir.join(format!("{prefix}_{i:04}.png"));
        let file = crate::disk::create(&path).map_err(|source| ExportError::Io { path: path.clone(), source })?;
        let mut out = BufWriter::new(file);
        PngEncoder::new(&mut out)
            .write_image(frame, clip.width, clip.height, image::ExtendedColorType::Rgb8)
            .map_err(|e| ExportError::Png { path: path.clone(), reason: e.to_string() })?;
        out.flush().map_err(|source| ExportError::Io { path: path.clone(), source })?;
    }
    Ok(())
}
