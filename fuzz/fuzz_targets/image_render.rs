//! Picture bytes (any format the decoder knows) → decode under the pixel limit → the model's S×S image.
//! Any input must give an image or an error, never a panic or an allocation past the limit.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use visualbyte::render::{ImageSettings, PhotoRenderer};

/// A lower pixel limit than the default (64 M) keeps each execution small; the check is the same code.
const MAX_PIXELS: u64 = 1 << 20;

fuzz_target!(|data: &[u8]| {
    static PHOTO: OnceLock<PhotoRenderer> = OnceLock::new();
    let photo = PHOTO.get_or_init(|| {
        PhotoRenderer::new(
            32,
            &ImageSettings {
                background: 255,
                max_pixels: MAX_PIXELS,
            },
        )
    });
    let Ok(picture) = photo.decode_bytes(data) else {
        return;
    };
    assert!(u64::from(picture.width()) * u64::from(picture.height()) <= MAX_PIXELS);
    assert_eq!(photo.render(&picture).dimensions(), (32, 32));
});
