//! Pictures in: any format the `image` crate reads → alpha on a flat background → shorter side resized to
//! the input size (triangle filter) → centre crop.
use std::io::{BufRead, Cursor, Seek};
use std::path::Path;

use image::imageops::FilterType;
use image::{DynamicImage, ImageReader, Limits, Rgb, RgbImage};

use super::{ImageSettings, RenderError};

pub struct PhotoRenderer {
    size: u32,
    settings: ImageSettings,
}

impl PhotoRenderer {
    pub fn new(size: u32, settings: &ImageSettings) -> Self {
        Self {
            size,
            settings: settings.clone(),
        }
    }

    /// Decoder limits: a picture larger than `max_pixels` is refused before it is decoded.
    fn limits(&self) -> Limits {
        let mut limits = Limits::default();
        let side = self.settings.max_pixels.min(u32::MAX as u64) as u32;
        limits.max_image_width = Some(side);
        limits.max_image_height = Some(side);
        // RGBA16 is the widest common decode: 8 bytes a pixel, plus the decoder's own buffers.
        limits.max_alloc = Some(
            self.settings
                .max_pixels
                .saturating_mul(8)
                .saturating_add(64 << 20),
        );
        limits
    }

    pub fn decode_file(&self, path: &Path) -> Result<DynamicImage, RenderError> {
        self.decode_with(path, || ImageReader::open(path)?.with_guessed_format())
    }

    /// Decodes a picture held in memory (tests, fuzzing) with the same limits as [`decode_file`](Self::decode_file).
    pub fn decode_bytes(&self, bytes: &[u8]) -> Result<DynamicImage, RenderError> {
        self.decode_with(Path::new("<memory>"), || {
            ImageReader::new(Cursor::new(bytes)).with_guessed_format()
        })
    }

    /// Reads the dimensions first and refuses a picture over the pixel limit before decoding it (a
    /// decompression bomb costs a header read), then decodes under the allocation limit.
    fn decode_with<R: BufRead + Seek>(
        &self,
        path: &Path,
        open: impl Fn() -> std::io::Result<ImageReader<R>>,
    ) -> Result<DynamicImage, RenderError> {
        let fail = |reason: String| RenderError::ImageDecode {
            path: path.to_path_buf(),
            reason,
        };
        let io = |source| RenderError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut reader = open().map_err(io)?;
        reader.limits(self.limits());
        let (w, h) = reader.into_dimensions().map_err(|e| fail(e.to_string()))?;
        if (w as u64) * (h as u64) > self.settings.max_pixels {
            return Err(fail(format!(
                "{w}×{h} pixels is more than the {} pixel limit",
                self.settings.max_pixels
            )));
        }
        let mut reader = open().map_err(io)?;
        reader.limits(self.limits());
        reader.decode().map_err(|e| fail(e.to_string()))
    }

    pub fn render_file(&self, path: &Path) -> Result<RgbImage, RenderError> {
        Ok(self.render(&self.decode_file(path)?))
    }

    /// The picture as the model sees it.
    pub fn render(&self, image: &DynamicImage) -> RgbImage {
        let rgba = image.to_rgba8();
        let bg = self.settings.background as u32;
        let flat = RgbImage::from_fn(rgba.width(), rgba.height(), |x, y| {
            let p = rgba.get_pixel(x, y);
            let a = p[3] as u32;
            let mix = |c: u8| ((c as u32 * a + bg * (255 - a) + 127) / 255) as u8;
            Rgb([mix(p[0]), mix(p[1]), mix(p[2])])
        });
        let (w, h) = flat.dimensions();
        if w == 0 || h == 0 {
            return RgbImage::from_pixel(self.size, self.size, Rgb([bg as u8; 3]));
        }
        let s = self.size as u64;
        // Shorter side to `size`, the other scaled to keep the aspect ratio (rounded, at least `size`).
        let (nw, nh) = if w <= h {
            (s, ((h as u64 * s + w as u64 / 2) / w as u64).max(s))
        } else {
            (((w as u64 * s + h as u64 / 2) / h as u64).max(s), s)
        };
        let resized = if (nw, nh) == (w as u64, h as u64) {
            flat
        } else {
            image::imageops::resize(&flat, nw as u32, nh as u32, FilterType::Triangle)
        };
        let x0 = ((nw - s) / 2) as u32;
        let y0 = ((nh - s) / 2) as u32;
        image::imageops::crop_imm(&resized, x0, y0, self.size, self.size).to_image()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Rgba, RgbaImage};

    #[test]
    fn transparent_pixels_become_background_and_size_is_exact() {
        let r = PhotoRenderer::new(32, &ImageSettings::default());
        let img = RgbaImage::from_pixel(64, 40, Rgba([255, 0, 0, 0]));
        let out = r.render(&DynamicImage::ImageRgba8(img));
        assert_eq!(out.dimensions(), (32, 32));
        assert!(out.pixels().all(|p| p.0 == [255, 255, 255]));
    }

    #[test]
    fn wide_pictures_are_centre_cropped() {
        let r = PhotoRenderer::new(10, &ImageSettings::default());
        // Left third red, middle third green, right third blue, 30×10: the crop keeps the green middle.
        let img = RgbImage::from_fn(30, 10, |x, _| match x / 10 {
            0 => Rgb([255, 0, 0]),
            1 => Rgb([0, 255, 0]),
            _ => Rgb([0, 0, 255]),
        });
        let out = r.render(&DynamicImage::ImageRgb8(img));
        assert!(out.pixels().all(|p| p.0 == [0, 255, 0]));
    }

    #[test]
    fn a_picture_over_the_pixel_limit_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.png");
        RgbImage::new(300, 300).save(&path).unwrap();
        let r = PhotoRenderer::new(
            32,
            &ImageSettings {
                background: 255,
                max_pixels: 10_000,
            },
        );
        let err = r.render_file(&path).unwrap_err().to_string();
        assert!(
            err.contains("pixel limit") || err.contains("limit"),
            "{err}"
        );
        let ok = PhotoRenderer::new(32, &ImageSettings::default());
        assert_eq!(ok.render_file(&path).unwrap().dimensions(), (32, 32));
    }

    #[test]
    fn a_non_picture_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notes.png");
        std::fs::write(&path, b"hello").unwrap();
        let r = PhotoRenderer::new(32, &ImageSettings::default());
        let err = r.render_file(&path).unwrap_err().to_string();
        assert!(err.contains("notes.png"), "{err}");
    }
}
