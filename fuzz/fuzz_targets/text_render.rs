//! Arbitrary bytes as text (lossy UTF-8: any Unicode, empty, control characters, up to the fuzzer's
//! length and, repeated, far past the character limit) → the model's text image, or an error.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use visualbyte::render::{RenderError, RendererSettings, TextRenderer};

fuzz_target!(|data: &[u8]| {
    static TEXT: OnceLock<(TextRenderer, usize)> = OnceLock::new();
    let (text, max_chars) = TEXT.get_or_init(|| {
        let settings = RendererSettings::for_size(32);
        (
            TextRenderer::new(32, &settings.text).expect("embedded font"),
            settings.text.max_chars,
        )
    });
    // The first byte picks how often the rest is repeated: 0 → once; otherwise up to ~255 times, so
    // inputs both just under and far over the character limit are tried.
    let (repeat, rest) = match data.split_first() {
        Some((r, rest)) => (usize::from(*r).max(1), rest),
        None => (1, data),
    };
    let once = String::from_utf8_lossy(rest);
    let input = once.repeat(repeat);
    match text.render(&input) {
        Ok(image) => assert_eq!(image.dimensions(), (32, 32)),
        Err(RenderError::TextTooLong { chars, .. }) => assert!(chars > *max_chars),
        Err(_) => {}
    }
});
