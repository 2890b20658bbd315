//! The canvas image: loading with clear refusals (not an image, too large), fitting to the
//! output size, and its texture.

use std::path::Path;

use eframe::egui;

use crate::flow::preview::{fit_to_output, FitMode, RgbaFrame};

/// Largest image side accepted; larger images are refused rather than exhausting memory.
pub const MAX_IMAGE_SIDE: u32 = 8192;
/// Largest image file accepted.
pub const MAX_IMAGE_FILE_BYTES: u64 = 100 * 1024 * 1024;

/// Reads an image file, refusing anything that is not a PNG/JPEG of sane size.
pub fn load_image(path: &Path) -> Result<RgbaFrame, String> {
    let name = path.display();
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot open {name}: {e}"))?;
    if meta.len() > MAX_IMAGE_FILE_BYTES {
        return Err(format!(
            "{name} is {} MB; images up to {} MB are accepted",
            meta.len() / (1024 * 1024),
            MAX_IMAGE_FILE_BYTES / (1024 * 1024)
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {name}: {e}"))?;
    decode_image(&name.to_string(), &bytes)
}

/// Decodes image bytes (from a file or a drop); `name` labels the messages.
pub fn decode_image(name: &str, bytes: &[u8]) -> Result<RgbaFrame, String> {
    let reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| format!("cannot read {name}: {e}"))?;
    if reader.format().is_none() {
        return Err(format!("{name} is not an image Tora Studio can open (PNG or JPEG)"));
    }
    let (w, h) = reader.into_dimensions().map_err(|e| format!("{name} is not a readable image: {e}"))?;
    if w > MAX_IMAGE_SIDE || h > MAX_IMAGE_SIDE {
        return Err(format!("{name} is {w}x{h} pixels; images up to {MAX_IMAGE_SIDE}x{MAX_IMAGE_SIDE} are accepted (scale it down first)"));
    }
    if w == 0 || h == 0 {
        return Err(format!("{name} has no pixels"));
    }
    let decoded = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| format!("cannot read {name}: {e}"))?
        .decode()
        .map_err(|e| format!("{name} is not a readable image: {e}"))?
        .to_rgba8();
    let (w, h) = decoded.dimensions();
    RgbaFrame::new(w, h, decoded.into_raw()).ok_or_else(|| format!("{name}: unexpected pixel layout"))
}

/// The loaded image, its version fitted to the output, and the texture showing it.
#[derive(Default)]
pub struct Background {
    original: Option<RgbaFrame>,
    fitted: Option<RgbaFrame>,
    fitted_for: Option<(u32, u32, FitMode)>,
    texture: Option<egui::TextureHandle>,
}

impl Background {
    pub fn set(&mut self, image: Option<RgbaFrame>) {
        *self = Background { original: image, ..Background::default() };
    }

    pub fn is_set(&self) -> bool {
        self.original.is_some()
    }

    /// The image at the output size (refitted when the size or fit changes).
    pub fn fitted(&mut self, width: u32, height: u32, fit: FitMode) -> Option<&RgbaFrame> {
        let original = self.original.as_ref()?;
        if self.fitted_for != Some((width, height, fit)) {
            self.fitted = Some(fit_to_output(original, width, height, fit));
            self.fitted_for = Some((width, height, fit));
            self.texture = None;
        }
        self.fitted.as_ref()
    }

    /// The texture of the fitted image.
    pub fn texture(&mut self, ctx: &egui::Context, width: u32, height: u32, fit: FitMode) -> Option<egui::TextureId> {
        self.fitted(width, height, fit)?;
        if self.texture.is_none() {
            let fitted = self.fitted.as_ref()?;
            self.texture = Some(ctx.load_texture("background", colour_image(fitted), egui::TextureOptions::LINEAR));
        }
        self.texture.as_ref().map(|t| t.id())
    }
}

pub fn colour_image(frame: &RgbaFrame) -> egui::ColorImage {
    egui::ColorImage::from_rgba_unmultiplied([frame.width as usize, frame.height as usize], &frame.pixels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_images_and_huge_images_are_refused_with_a_reason() {
        let err = decode_image("notes.txt", b"hello, I am text").unwrap_err();
        assert!(err.contains("not an image"), "{err}");
        // A real PNG wider than the limit: refused before decoding.
        let mut png = Vec::new();
        image::RgbaImage::new(MAX_IMAGE_SIDE + 1, 2)
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        let err = decode_image("big.png", &png).unwrap_err();
        assert!(err.contains(&format!("{}x2", MAX_IMAGE_SIDE + 1)), "{err}");
        let ok = decode_image("one.png", &{
            let mut v = Vec::new();
            image::RgbaImage::from_pixel(2, 3, image::Rgba([1, 2, 3, 255]))
                .write_to(&mut std::io::Cursor::new(&mut v), image::ImageFormat::Png)
                .unwrap();
            v
        })
        .unwrap();
        assert_eq!((ok.width, ok.height, ok.pixel(1, 2)), (2, 3, [1, 2, 3, 255]));
    }
}
