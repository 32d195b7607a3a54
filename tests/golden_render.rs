//! Golden fixtures that make any change to what the model sees a visible, deliberate act.
//!
//! - The mel front end matches a Python reference (Whisper's formula, librosa's Slaney filters) within
//!   1e-4 on `tests/fixtures/mel/` (regenerate with `tests/fixtures/mel/make_golden.py`).
//! - Rendered text and spectrogram images match committed PNGs pixel for pixel
//!   (`VISUALBYTE_UPDATE_GOLDEN=1 cargo test --test golden_render` rewrites them; bump RENDERER_VERSION).
use std::path::{Path, PathBuf};

use visualbyte::render::{
    audio::read_wav, AudioSettings, MelSpectrogram, Renderer, RendererSettings,
};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

#[test]
fn log_mel_matches_python_reference_within_1e_4() {
    let dir = fixtures().join("mel");
    let shapes: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("golden.json")).unwrap()).unwrap();
    let shapes = shapes.as_object().unwrap();
    assert!(shapes.len() >= 3, "golden set too small: {shapes:?}");
    let mut mel = MelSpectrogram::new(&AudioSettings::default());
    for (name, shape) in shapes {
        let pcm = read_wav(&dir.join(format!("{name}.wav")), 30.0).unwrap();
        assert_eq!(pcm.rate, 16_000, "{name}");
        let ours = mel.compute(&pcm.samples);
        let bytes = std::fs::read(dir.join(format!("{name}.logmel.f32"))).unwrap();
        let reference: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        assert_eq!(
            ours.n_mels as u64,
            shape["n_mels"].as_u64().unwrap(),
            "{name}"
        );
        assert_eq!(
            ours.frames as u64,
            shape["frames"].as_u64().unwrap(),
            "{name}"
        );
        assert_eq!(ours.values.len(), reference.len(), "{name}");
        let max_diff = ours
            .values
            .iter()
            .zip(&reference)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(max_diff <= 1e-4, "{name}: max abs difference {max_diff}");
    }
}

/// Compares `img` with the committed PNG `name`, or rewrites it when VISUALBYTE_UPDATE_GOLDEN is set.
fn check_golden(img: &image::RgbImage, name: &str) {
    let path = fixtures().join("render").join(name);
    if std::env::var_os("VISUALBYTE_UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        img.save(&path).unwrap();
        return;
    }
    let golden = image::open(&path)
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (VISUALBYTE_UPDATE_GOLDEN=1 writes it)",
                path.display()
            )
        })
        .to_rgb8();
    assert_eq!(golden.dimensions(), img.dimensions(), "{name}");
    let differing = golden
        .as_raw()
        .iter()
        .zip(img.as_raw())
        .filter(|(a, b)| a != b)
        .count();
    assert_eq!(
        differing, 0,
        "{name}: {differing} bytes differ from the golden image"
    );
}

#[test]
fn rendered_text_matches_golden_images() {
    let r = Renderer::new(RendererSettings::for_size(96)).unwrap();
    for (text, name) in [
        ("tiger", "text_tiger_96.png"),
        ("호랑이 tiger", "text_hangul_latin_96.png"),
        ("where is the pickup truck", "text_wrapped_96.png"),
        ("umbrella", "text_long_word_96.png"),
    ] {
        check_golden(&r.text(text).unwrap(), name);
    }
}

#[test]
fn rendered_spectrogram_matches_golden_image() {
    let mut r = Renderer::new(RendererSettings::for_size(96)).unwrap();
    let img = r
        .audio_file(&fixtures().join("mel/speech_tiger.wav"))
        .unwrap();
    check_golden(&img, "audio_speech_tiger_96.png");
}
