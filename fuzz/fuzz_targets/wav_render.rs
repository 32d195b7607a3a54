//! WAV bytes → decode (with the duration limit) → resample → log-mel → the model's image.
//! Any input must give an image or an error, never a panic.
#![no_main]

use std::sync::Mutex;

use libfuzzer_sys::fuzz_target;
use visualbyte::render::{decode_wav_bytes, Renderer, RendererSettings};

/// One renderer for the whole run, as a query engine keeps one: FFT plans and mel filters are built once.
static RENDERER: Mutex<Option<Renderer>> = Mutex::new(None);

fuzz_target!(|data: &[u8]| {
    let mut guard = RENDERER.lock().unwrap_or_else(|e| e.into_inner());
    let renderer = guard
        .get_or_insert_with(|| Renderer::new(RendererSettings::for_size(32)).expect("settings"));
    let max_seconds = renderer.settings().audio.max_seconds;
    let Ok(pcm) = decode_wav_bytes(data, max_seconds) else {
        return;
    };
    assert!(pcm.samples.iter().all(|s| s.is_finite() && s.abs() <= 1.0));
    if let Ok(image) = renderer.audio_pcm(&pcm) {
        assert_eq!(image.dimensions(), (32, 32));
    }
});
