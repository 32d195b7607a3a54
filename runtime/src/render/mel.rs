//! The log-mel front end (Whisper's formula) and the spectrogram image the model sees.
//!
//! For mono samples `x` at 16 kHz:
//! ```text
//! X[t, k]   = rFFT( hann_periodic(n_fft) · reflect_pad(x, n_fft/2)[t·hop .. t·hop + n_fft] )   (last frame dropped)
//! M[m, t]   = Σ_k W[m, k] · |X[t, k]|²                        W = librosa.filters.mel(norm="slaney", htk=False)
//! L[m, t]   = log10(max(M[m, t], floor));  L = max(L, max(L) − 8);  L = (L + 4) / 4
//! ```
//! This is `whisper.audio.log_mel_spectrogram`; `tests/fixtures/mel/` pins it to a Python reference.
//! The FFT and the filter bank run in `f64` so that bins 80 dB below the peak keep their precision.
use std::sync::Arc;

use image::{ImageBuffer, Luma, RgbImage};
use realfft::{RealFftPlanner, RealToComplex};

use super::AudioSettings;

/// A log-mel spectrogram, `n_mels` rows of `frames` values, row 0 the lowest frequency.
#[derive(Debug, Clone, PartialEq)]
pub struct LogMel {
    pub n_mels: usize,
    pub frames: usize,
    /// Row-major `[n_mels][frames]`, scaled as Whisper does (`(log10 + 4) / 4`).
    pub values: Vec<f32>,
}

/// Computes [`LogMel`]s; holds the FFT plan, window and filter bank, built once.
pub struct MelSpectrogram {
    n_fft: usize,
    hop: usize,
    n_mels: usize,
    log_floor: f64,
    dynamic_range: f64,
    window: Vec<f64>,
    /// `[n_mels][n_fft/2 + 1]`, with the first and last non-zero bin of each row for a sparse product.
    filters: Vec<f64>,
    filter_spans: Vec<(usize, usize)>,
    fft: Arc<dyn RealToComplex<f64>>,
    frame: Vec<f64>,
    spectrum: Vec<realfft::num_complex::Complex<f64>>,
    scratch: Vec<realfft::num_complex::Complex<f64>>,
    power: Vec<f64>,
}

impl MelSpectrogram {
    pub fn new(settings: &AudioSettings) -> Self {
        let n_fft = settings.n_fft;
        let n_bins = n_fft / 2 + 1;
        let fft = RealFftPlanner::<f64>::new().plan_fft_forward(n_fft);
        let window = (0..n_fft)
            .map(|n| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * n as f64 / n_fft as f64).cos())
            .collect();
        let filters = slaney_mel_filters(
            settings.sample_rate as f64,
            n_fft,
            settings.n_mels,
            settings.f_min as f64,
            settings.f_max as f64,
        );
        let filter_spans = filters
            .chunks(n_bins)
            .map(|row| {
                let first = row.iter().position(|w| *w != 0.0).unwrap_or(0);
                let last = row.iter().rposition(|w| *w != 0.0).map_or(0, |p| p + 1);
                (first, last.max(first))
            })
            .collect();
        Self {
            n_fft,
            hop: settings.hop,
            n_mels: settings.n_mels,
            log_floor: settings.log_floor as f64,
            dynamic_range: settings.dynamic_range as f64,
            window,
            filters,
            filter_spans,
            frame: fft.make_input_vec(),
            spectrum: fft.make_output_vec(),
            scratch: fft.make_scratch_vec(),
            fft,
            power: vec![0.0; n_bins],
        }
    }

    /// Number of frames for `len` samples: one per hop (Whisper drops the last centred frame), at least one.
    pub fn frames_for(&self, len: usize) -> usize {
        (len / self.hop).max(1)
    }

    /// The scaled log-mel of mono samples at the analysis rate. Never fails: silence and clips shorter
    /// than one window give a valid (floor-valued) spectrogram.
    pub fn compute(&mut self, samples: &[f32]) -> LogMel {
        let half = self.n_fft / 2;
        // Reflect padding needs more than `half` samples; shorter clips are extended with zeros first.
        let mut x: Vec<f64> = samples.iter().map(|&v| v as f64).collect();
        if x.len() <= half {
            x.resize(half + 1, 0.0);
        }
        let padded = reflect_pad(&x, half);
        let frames = self.frames_for(samples.len());
        let n_bins = self.n_fft / 2 + 1;
        let mut mel = vec![0f64; self.n_mels * frames];
        for t in 0..frames {
            let start = t * self.hop;
            for (i, slot) in self.frame.iter_mut().enumerate() {
                *slot = padded[start + i] * self.window[i];
            }
            self.fft
                .process_with_scratch(&mut self.frame, &mut self.spectrum, &mut self.scratch)
                .expect("buffer sizes come from the plan");
            for (p, c) in self.power.iter_mut().zip(&self.spectrum) {
                *p = c.norm_sqr();
            }
            for m in 0..self.n_mels {
                let (a, b) = self.filter_spans[m];
                let row = &self.filters[m * n_bins..(m + 1) * n_bins];
                mel[m * frames + t] = row[a..b]
                    .iter()
                    .zip(&self.power[a..b])
                    .map(|(w, p)| w * p)
                    .sum();
            }
        }
        let mut max = f64::NEG_INFINITY;
        for v in mel.iter_mut() {
            *v = v.max(self.log_floor).log10();
            max = max.max(*v);
        }
        let lo = max - self.dynamic_range;
        let values = mel
            .iter()
            .map(|&v| ((v.max(lo) + 4.0) / 4.0) as f32)
            .collect();
        LogMel {
            n_mels: self.n_mels,
            frames,
            values,
        }
    }
}

impl LogMel {
    pub fn get(&self, mel: usize, frame: usize) -> f32 {
        self.values[mel * self.frames + frame]
    }

    /// The spectrogram as the model sees it: silence trimmed, a fixed time window, grey levels from the
    /// clip's loudest bin down by the dynamic range, high frequencies at the top, resized to `size`×`size`.
    ///
    /// Shorter speech is left-aligned and padded with black; speech longer than the window is squeezed
    /// in time rather than cut, so the name at the end of "where is the tiger" is never lost.
    pub fn to_image(&self, settings: &AudioSettings, size: u32) -> RgbImage {
        let range = settings.dynamic_range / 4.0;
        // The level of a digital-silence bin, in the scaled units of `values`.
        let silence = ((settings.log_floor as f64).log10() as f32 + 4.0) / 4.0;
        let clip_max = self
            .values
            .iter()
            .copied()
            .fold(f32::NEG_INFINITY, f32::max);
        let hi = clip_max.max(silence + range);
        let lo = hi - range;
        let trim = clip_max - settings.trim_db / 40.0;
        let energy = |t: usize| {
            (0..self.n_mels)
                .map(|m| self.get(m, t))
                .fold(f32::NEG_INFINITY, f32::max)
        };
        let active: Vec<usize> = (0..self.frames)
            .filter(|&t| {
                let e = energy(t);
                e >= trim && e > lo
            })
            .collect();
        // The first non-silent frame always lands `pad_frames` columns in, whether the clip had leading
        // silence or speech from its first sample (then the columns before it are black).
        let (start, end) = match (active.first(), active.last()) {
            (Some(&first), Some(&last)) => (
                first as i64 - settings.pad_frames as i64,
                (last + 1 + settings.pad_frames) as i64,
            ),
            _ => (0, 0),
        };
        let span = ((end - start) as usize).max(settings.window_frames);
        let grey: ImageBuffer<Luma<f32>, Vec<f32>> =
            ImageBuffer::from_fn(span as u32, self.n_mels as u32, |x, y| {
                let t = start + x as i64;
                let m = self.n_mels - 1 - y as usize;
                if t >= 0 && (t as usize) < self.frames {
                    Luma([((self.get(m, t as usize) - lo) / range).clamp(0.0, 1.0)])
                } else {
                    Luma([0.0])
                }
            });
        let resized =
            image::imageops::resize(&grey, size, size, image::imageops::FilterType::Triangle);
        RgbImage::from_fn(size, size, |x, y| {
            let v = (resized.get_pixel(x, y)[0].clamp(0.0, 1.0) * 255.0).round() as u8;
            image::Rgb([v, v, v])
        })
    }
}

fn reflect_pad(x: &[f64], pad: usize) -> Vec<f64> {
    let n = x.len();
    let mut out = Vec::with_capacity(n + 2 * pad);
    out.extend((1..=pad).rev().map(|i| x[i]));
    out.extend_from_slice(x);
    out.extend((0..pad).map(|i| x[n - 2 - i]));
    out
}

fn hz_to_mel_slaney(hz: f64) -> f64 {
    let f_sp = 200.0 / 3.0;
    let min_log_hz = 1000.0;
    let min_log_mel = min_log_hz / f_sp;
    let logstep = 6.4f64.ln() / 27.0;
    if hz >= min_log_hz {
        min_log_mel + (hz / min_log_hz).ln() / logstep
    } else {
        hz / f_sp
    }
}

fn mel_to_hz_slaney(mel: f64) -> f64 {
    let f_sp = 200.0 / 3.0;
    let min_log_hz = 1000.0;
    let min_log_mel = min_log_hz / f_sp;
    let logstep = 6.4f64.ln() / 27.0;
    if mel >= min_log_mel {
        min_log_hz * (logstep * (mel - min_log_mel)).exp()
    } else {
        f_sp * mel
    }
}

/// `librosa.filters.mel(sr, n_fft, n_mels, fmin, fmax, htk=False, norm="slaney")`, row-major.
pub fn slaney_mel_filters(
    sr: f64,
    n_fft: usize,
    n_mels: usize,
    f_min: f64,
    f_max: f64,
) -> Vec<f64> {
    let n_bins = n_fft / 2 + 1;
    let fft_freqs: Vec<f64> = (0..n_bins).map(|k| k as f64 * sr / n_fft as f64).collect();
    let (mel_min, mel_max) = (hz_to_mel_slaney(f_min), hz_to_mel_slaney(f_max));
    let mel_f: Vec<f64> = (0..n_mels + 2)
        .map(|i| mel_to_hz_slaney(mel_min + (mel_max - mel_min) * i as f64 / (n_mels + 1) as f64))
        .collect();
    let mut weights = vec![0f64; n_mels * n_bins];
    for m in 0..n_mels {
        let (f0, f1, f2) = (mel_f[m], mel_f[m + 1], mel_f[m + 2]);
        let enorm = 2.0 / (f2 - f0);
        for (k, &f) in fft_freqs.iter().enumerate() {
            let lower = (f - f0) / (f1 - f0);
            let upper = (f2 - f) / (f2 - f1);
            weights[m * n_bins + k] = lower.min(upper).max(0.0) * enorm;
        }
    }
    weights
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(freq: f32, seconds: f32, amp: f32) -> Vec<f32> {
        let n = (16_000.0 * seconds) as usize;
        (0..n)
            .map(|i| amp * (2.0 * std::f32::consts::PI * freq * i as f32 / 16_000.0).sin())
            .collect()
    }

    #[test]
    fn frame_count_follows_whisper() {
        let mut mel = MelSpectrogram::new(&AudioSettings::default());
        assert_eq!(mel.compute(&vec![0.0; 32_000]).frames, 200);
        assert_eq!(mel.compute(&vec![0.0; 16_159]).frames, 100);
        assert_eq!(mel.compute(&[0.5]).frames, 1);
        assert_eq!(mel.compute(&[]).frames, 1);
    }

    #[test]
    fn a_tone_lights_the_mel_bin_of_its_frequency() {
        let mut mel = MelSpectrogram::new(&AudioSettings::default());
        let lm = mel.compute(&tone(1000.0, 0.5, 0.3));
        let t = lm.frames / 2;
        let loudest = (0..lm.n_mels)
            .max_by(|&a, &b| lm.get(a, t).total_cmp(&lm.get(b, t)))
            .unwrap();
        // 1 kHz is mel 15 on the Slaney scale; with 80 bins up to 8 kHz that is bin ~26.
        let centre = 15.0 / hz_to_mel_slaney(8000.0) * 81.0 - 1.0;
        assert!(
            (loudest as f64 - centre).abs() <= 1.5,
            "{loudest} vs {centre}"
        );
    }

    #[test]
    fn silence_renders_black_and_valid() {
        let s = AudioSettings::default();
        let mut mel = MelSpectrogram::new(&s);
        let img = mel.compute(&vec![0.0; 8000]).to_image(&s, 64);
        assert_eq!(img.dimensions(), (64, 64));
        assert!(img.pixels().all(|p| p.0 == [0, 0, 0]));
    }

    #[test]
    fn leading_silence_is_trimmed() {
        let s = AudioSettings::default();
        let mut mel = MelSpectrogram::new(&s);
        let burst = tone(600.0, 0.3, 0.3);
        let mut late = vec![0.0; 16_000];
        late.extend_from_slice(&burst);
        let a = mel.compute(&burst).to_image(&s, 96);
        let b = mel.compute(&late).to_image(&s, 96);
        let diff: u64 = a
            .as_raw()
            .iter()
            .zip(b.as_raw())
            .map(|(x, y)| x.abs_diff(*y) as u64)
            .sum();
        let mean = diff as f64 / a.as_raw().len() as f64;
        assert!(mean < 2.0, "mean abs pixel difference {mean}");
    }

    #[test]
    fn long_speech_is_squeezed_not_cut() {
        let s = AudioSettings::default();
        let mut mel = MelSpectrogram::new(&s);
        // 3 s of a low tone then 0.3 s of a high tone: the high tone must still be in the picture.
        let mut x = tone(300.0, 3.0, 0.3);
        x.extend(tone(4000.0, 0.3, 0.3));
        let img = mel.compute(&x).to_image(&s, 96);
        let right_top: u32 = (86..94)
            .flat_map(|x| (0..40).map(move |y| (x, y)))
            .map(|(x, y)| img.get_pixel(x, y)[0] as u32)
            .sum();
        assert!(right_top > 0, "the last word was cut off");
    }

    #[test]
    fn filters_match_librosa_slaney_normalisation() {
        // Each Slaney-normalised triangle has area ~1 in Hz·(1/Hz): Σ w · Δf ≈ 1 for wide filters.
        let w = slaney_mel_filters(16_000.0, 400, 80, 0.0, 8000.0);
        let row = &w[60 * 201..61 * 201];
        let area: f64 = row.iter().sum::<f64>() * 40.0;
        assert!((area - 1.0).abs() < 0.05, "{area}");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(32))]

        /// Any samples (silence, clipping, a few or many): every value is finite, and making the clip
        /// louder never makes a bin quieter.
        #[test]
        fn log_mel_is_finite_and_monotone_in_gain(
            samples in proptest::collection::vec(-1.0f32..=1.0, 0..4000),
            gain in 1.05f32..8.0,
        ) {
            let settings = AudioSettings::default();
            let mut mel = MelSpectrogram::new(&settings);
            let quiet_samples: Vec<f32> = samples.iter().map(|v| v / 8.0).collect();
            let loud_samples: Vec<f32> = quiet_samples.iter().map(|v| v * gain).collect();
            let quiet = mel.compute(&quiet_samples);
            let loud = mel.compute(&loud_samples);
            proptest::prop_assert!(quiet.values.iter().chain(&loud.values).all(|v| v.is_finite()));
            proptest::prop_assert_eq!(quiet.values.len(), loud.values.len());
            for (q, l) in quiet.values.iter().zip(&loud.values) {
                proptest::prop_assert!(*l >= *q - 1e-5, "{q} → {l} at gain {gain}");
            }
            let image = quiet.to_image(&settings, 32);
            proptest::prop_assert_eq!(image.dimensions(), (32, 32));
        }
    }
}
