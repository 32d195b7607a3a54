//! Renderers: every modality becomes an `S×S` RGB image of `u8` pixels, the only thing the model sees.
//!
//! This module is the single source of truth for those pixels: the export step renders its training data
//! by calling it (`visualbyte render batch`), so training and the device see the same image for the same
//! audio or text. Any change to what a renderer produces must bump [`RENDERER_VERSION`]; models record the
//! version they were trained with and the runtime refuses a model made for another one.
pub mod audio;
pub mod mel;
pub mod photo;
pub mod text;

use std::path::{Path, PathBuf};

use image::RgbImage;
use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use audio::{decode_wav, decode_wav_bytes, resample_to, Pcm};
pub use mel::{LogMel, MelSpectrogram};
pub use photo::PhotoRenderer;
pub use text::TextRenderer;

/// Version of the pixels the renderers produce. Bump it whenever their output changes.
pub const RENDERER_VERSION: u32 = 1;

/// Smallest and largest input size a renderer accepts.
pub const MIN_SIZE: u32 = 16;
pub const MAX_SIZE: u32 = 1024;

/// Everything that decides what the renderers draw. It travels in the model's metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RendererSettings {
    pub version: u32,
    /// Width and height of every rendered image, in pixels.
    pub size: u32,
    pub audio: AudioSettings,
    pub text: TextSettings,
    pub image: ImageSettings,
}

/// The log-mel front end (Whisper's) and how a spectrogram becomes an image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AudioSettings {
    /// Every clip is resampled to this rate before analysis.
    pub sample_rate: u32,
    /// FFT length and Hann window length, in samples.
    pub n_fft: usize,
    /// Hop between frames, in samples.
    pub hop: usize,
    /// Number of Slaney-scale mel bins.
    pub n_mels: usize,
    pub f_min: f32,
    pub f_max: f32,
    /// Power floor before log10.
    pub log_floor: f32,
    /// Dynamic range kept below the clip's loudest bin, in log10 power units (8 = 80 dB).
    pub dynamic_range: f32,
    /// The time window shown to the model, in frames (hop-sized). Shorter speech is padded with silence;
    /// longer speech is squeezed in time so that no word is cut off.
    pub window_frames: usize,
    /// A frame whose loudest bin is more than this many dB below the clip's loudest bin is silence.
    pub trim_db: f32,
    /// Frames of context kept before the first and after the last non-silent frame.
    pub pad_frames: usize,
    /// Longest clip accepted, in seconds.
    pub max_seconds: f32,
}

/// How text becomes glyphs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextSettings {
    /// Name of the embedded font used on the device.
    pub font: String,
    /// Blank border on each side, as a fraction of the image size.
    pub margin: f32,
    /// Largest glyph size, as a fraction of the image size.
    pub max_px: f32,
    /// Smallest glyph size in pixels; text that does not fit at this size is refused.
    pub min_px: f32,
    /// Line height as a multiple of the font's line height.
    pub line_height: f32,
    /// Longest text accepted, in characters.
    pub max_chars: usize,
    /// Shrink the glyphs rather than wrap a line inside a word (a word too long for any line is still
    /// broken). Absent in contracts made before it existed, which wrapped mid-word: `false` keeps their
    /// pixels.
    #[serde(default)]
    pub keep_words: bool,
}

/// How pictures are fitted to the input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageSettings {
    /// Transparent pixels are composited onto this grey level.
    pub background: u8,
    /// Largest picture decoded, in pixels (width × height); protects against decompression bombs.
    pub max_pixels: u64,
}

impl RendererSettings {
    /// The settings of this build's renderers for input size `size`.
    pub fn for_size(size: u32) -> Self {
        Self {
            version: RENDERER_VERSION,
            size,
            audio: AudioSettings::default(),
            text: TextSettings::default(),
            image: ImageSettings::default(),
        }
    }

    /// Checks that this build can render with these settings.
    pub fn validate(&self) -> Result<(), RenderError> {
        let bad = |what: String| Err(RenderError::Settings(what));
        if self.version != RENDERER_VERSION {
            return bad(format!(
                "renderer version {} is not the one built in ({RENDERER_VERSION}); \
                 use a model exported for renderer version {RENDERER_VERSION}, or a matching visualbyte",
                self.version
            ));
        }
        if !(MIN_SIZE..=MAX_SIZE).contains(&self.size) {
            return bad(format!(
                "input size {} is outside {MIN_SIZE}..={MAX_SIZE}",
                self.size
            ));
        }
        let a = &self.audio;
        if a.sample_rate < 1000 || a.sample_rate > 192_000 {
            return bad(format!("audio sample rate {} is not usable", a.sample_rate));
        }
        if a.n_fft < 16 || a.n_fft > 16384 || a.hop == 0 || a.hop > a.n_fft {
            return bad(format!(
                "audio n_fft {} / hop {} are not usable",
                a.n_fft, a.hop
            ));
        }
        if a.n_mels == 0 || a.n_mels > 512 {
            return bad(format!("audio n_mels {} is not usable", a.n_mels));
        }
        let nyquist = a.sample_rate as f32 / 2.0;
        let finite = [
            a.f_min,
            a.f_max,
            a.log_floor,
            a.dynamic_range,
            a.trim_db,
            a.max_seconds,
        ]
        .iter()
        .all(|v| v.is_finite());
        if !finite
            || a.f_min < 0.0
            || a.f_max <= a.f_min
            || a.f_max > nyquist
            || a.log_floor <= 0.0
            || a.dynamic_range <= 0.0
            || a.trim_db <= 0.0
            || a.max_seconds <= 0.0
            || a.max_seconds > 3600.0
        {
            return bad(
                "audio frequency range, floor, range, trim or length limit is not usable".into(),
            );
        }
        if a.window_frames == 0 || a.window_frames > 100_000 || a.pad_frames > a.window_frames {
            return bad(format!(
                "audio window of {} frames is not usable",
                a.window_frames
            ));
        }
        let t = &self.text;
        let fractions_ok = t.margin.is_finite()
            && t.max_px.is_finite()
            && t.min_px.is_finite()
            && t.line_height.is_finite()
            && (0.0..0.45).contains(&t.margin)
            && t.max_px > 0.0
            && t.max_px <= 1.0
            && t.min_px >= 1.0
            && t.line_height >= 0.5
            && t.line_height <= 4.0;
        if !fractions_ok || t.max_chars == 0 {
            return bad(
                "text margin, glyph sizes, line height or length limit are not usable".into(),
            );
        }
        if t.font != text::DEFAULT_FONT_NAME {
            return bad(format!(
                "text font {:?} is not embedded in this build (it has {:?})",
                t.font,
                text::DEFAULT_FONT_NAME
            ));
        }
        if self.image.max_pixels == 0 {
            return bad("image pixel limit is zero".into());
        }
        Ok(())
    }
}

impl Default for AudioSettings {
    fn default() -> Self {
        Self {
            sample_rate: 16_000,
            n_fft: 400,
            hop: 160,
            n_mels: 80,
            f_min: 0.0,
            f_max: 8_000.0,
            log_floor: 1e-10,
            dynamic_range: 8.0,
            window_frames: 150,
            trim_db: 45.0,
            pad_frames: 5,
            max_seconds: 30.0,
        }
    }
}

impl Default for TextSettings {
    fn default() -> Self {
        Self {
            font: text::DEFAULT_FONT_NAME.to_string(),
            margin: 0.06,
            max_px: 0.34,
            min_px: 6.0,
            line_height: 1.05,
            max_chars: 256,
            keep_words: true,
        }
    }
}

impl Default for ImageSettings {
    fn default() -> Self {
        Self {
            background: 255,
            max_pixels: 64 * 1024 * 1024,
        }
    }
}

/// What went wrong while rendering, in words a user can act on.
#[derive(Debug, Error)]
pub enum RenderError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a WAV file this renderer can decode ({reason}); convert it to PCM WAV, e.g. `sox in.mp3 out.wav`")]
    WavDecode { path: PathBuf, reason: String },
    #[error("{path}: the audio holds no samples")]
    EmptyAudio { path: PathBuf },
    #[error("{path}: {seconds:.1} s of audio is longer than the {limit:.0} s limit; cut the clip to the question")]
    AudioTooLong {
        path: PathBuf,
        seconds: f64,
        limit: f32,
    },
    #[error("audio resampling from {from} Hz failed: {reason}")]
    Resample { from: u32, reason: String },
    #[error("empty text: type a word, e.g. `tiger`")]
    EmptyText,
    #[error("text of {chars} characters is longer than the {limit}-character limit")]
    TextTooLong { chars: usize, limit: usize },
    #[error(
        "text does not fit a {size}×{size} image even at {min_px} px; use fewer or shorter words"
    )]
    TextDoesNotFit { size: u32, min_px: f32 },
    #[error("no font covers {}: remove or replace them", describe_chars(.0))]
    MissingGlyphs(Vec<char>),
    #[error("font {0}: cannot be loaded ({1})")]
    Font(String, String),
    #[error("{path}: cannot decode the picture ({reason})")]
    ImageDecode { path: PathBuf, reason: String },
    #[error("renderer settings: {0}")]
    Settings(String),
}

fn describe_chars(chars: &[char]) -> String {
    chars
        .iter()
        .map(|c| format!("{c:?} (U+{:04X})", *c as u32))
        .collect::<Vec<_>>()
        .join(", ")
}

/// All three renderers, built once from one set of settings.
pub struct Renderer {
    settings: RendererSettings,
    mel: MelSpectrogram,
    text: TextRenderer,
    photo: PhotoRenderer,
}

impl Renderer {
    /// Builds the renderers (FFT plans, mel filters, fonts) once; reuse it for every query.
    pub fn new(settings: RendererSettings) -> Result<Self, RenderError> {
        settings.validate()?;
        Ok(Self {
            mel: MelSpectrogram::new(&settings.audio),
            text: TextRenderer::new(settings.size, &settings.text)?,
            photo: PhotoRenderer::new(settings.size, &settings.image),
            settings,
        })
    }

    pub fn settings(&self) -> &RendererSettings {
        &self.settings
    }

    pub fn size(&self) -> u32 {
        self.settings.size
    }

    /// A WAV file as the model sees it.
    pub fn audio_file(&mut self, path: &Path) -> Result<RgbImage, RenderError> {
        let pcm = audio::read_wav(path, self.settings.audio.max_seconds)?;
        self.audio_pcm(&pcm)
    }

    /// Mono samples at any rate as the model sees them.
    pub fn audio_pcm(&mut self, pcm: &Pcm) -> Result<RgbImage, RenderError> {
        let samples = resample_to(pcm, self.settings.audio.sample_rate)?;
        Ok(self.audio_samples(&samples))
    }

    /// Mono samples already at the settings' rate as the model sees them.
    pub fn audio_samples(&mut self, samples: &[f32]) -> RgbImage {
        self.mel
            .image(samples, &self.settings.audio, self.settings.size)
    }

    /// Text as the model sees it, in the embedded font.
    pub fn text(&self, text: &str) -> Result<RgbImage, RenderError> {
        self.text.render(text)
    }

    /// A picture file as the model sees it.
    pub fn image_file(&self, path: &Path) -> Result<RgbImage, RenderError> {
        self.photo.render_file(path)
    }

    /// A decoded picture as the model sees it.
    pub fn image(&self, image: &image::DynamicImage) -> RgbImage {
        self.photo.render(image)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_settings_validate() {
        RendererSettings::for_size(96).validate().unwrap();
    }

    #[test]
    fn other_renderer_version_is_refused_with_both_versions_named() {
        let mut s = RendererSettings::for_size(96);
        s.version = RENDERER_VERSION + 1;
        let msg = s.validate().unwrap_err().to_string();
        assert!(msg.contains(&format!("{}", RENDERER_VERSION + 1)), "{msg}");
        assert!(msg.contains(&format!("({RENDERER_VERSION})")), "{msg}");
    }

    #[test]
    fn settings_round_trip_through_json_and_reject_unknown_keys() {
        let s = RendererSettings::for_size(64);
        let json = serde_json::to_string(&s).unwrap();
        let back: RendererSettings = serde_json::from_str(&json).unwrap();
        assert_eq!(s, back);
        let extra = json.replacen("{", "{\"colour\":1,", 1);
        assert!(serde_json::from_str::<RendererSettings>(&extra).is_err());
    }

    #[test]
    fn unusable_sizes_and_audio_settings_are_refused() {
        let mut s = RendererSettings::for_size(8);
        assert!(s.validate().is_err());
        s.size = 96;
        s.audio.hop = 0;
        assert!(s.validate().is_err());
        s.audio.hop = 160;
        s.audio.f_max = 20_000.0;
        assert!(s.validate().is_err());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]

        /// Rendering is a function of its input: the same audio or text gives the same pixels, from a
        /// renderer that has already rendered other things and from a fresh one.
        #[test]
        fn rendering_is_deterministic(
            samples in proptest::collection::vec(-1.0f32..=1.0, 0..3000),
            other in proptest::collection::vec(-1.0f32..=1.0, 0..3000),
            text in "\\PC{0,40}",
        ) {
            let settings = RendererSettings::for_size(32);
            let mut used = Renderer::new(settings.clone()).unwrap();
            let _ = used.audio_samples(&other);
            let _ = used.text("something else");
            let mut fresh = Renderer::new(settings).unwrap();
            proptest::prop_assert_eq!(used.audio_samples(&samples), fresh.audio_samples(&samples));
            let a = used.text(&text).map_err(|e| e.to_string());
            let b = fresh.text(&text).map_err(|e| e.to_string());
            proptest::prop_assert_eq!(a, b);
        }
    }
}
