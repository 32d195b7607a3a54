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

use image::RgbImage;
use realfft::{RealFftPlanner, RealToComplex};

use super::AudioSettings;

/// A log-mel spectrogram, `n_mels` rows of `frames` values, row 0 the lowest frequency.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogMel {
    pub n_mels: usize,
    pub frames: usize,
    /// Row-major `[n_mels][frames]`, scaled as Whisper does (`(log10 + 4) / 4`).
    pub values: Vec<f32>,
}

/// Computes [`LogMel`]s and spectrogram images; holds the FFT plan, window, filter bank and every
/// working buffer, built once: a warm renderer allocates only the values and picture it returns.
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
    /// The reflect-padded clip and the mel powers `[n_mels][frames]` of the last call.
    padded: Vec<f64>,
    mel: Vec<f64>,
    picture: PictureScratch,
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
            padded: Vec::new(),
            mel: Vec::new(),
            picture: PictureScratch::default(),
        }
    }

    /// Number of frames for `len` samples: one per hop (Whisper drops the last centred frame), at least one.
    pub fn frames_for(&self, len: usize) -> usize {
        (len / self.hop).max(1)
    }

    /// The scaled log-mel of mono samples at the analysis rate. Never fails: silence and clips shorter
    /// than one window give a valid (floor-valued) spectrogram.
    pub fn compute(&mut self, samples: &[f32]) -> LogMel {
        let mut out = LogMel {
            n_mels: self.n_mels,
            frames: 0,
            values: Vec::new(),
        };
        self.compute_into(samples, &mut out);
        out
    }

    /// [`compute`](Self::compute) into `out`, reusing its storage.
    pub fn compute_into(&mut self, samples: &[f32], out: &mut LogMel) {
        let half = self.n_fft / 2;
        // Reflect padding needs more than `half` samples; shorter clips are extended with zeros first.
        let n = samples.len().max(half + 1);
        let x = |i: usize| samples.get(i).map_or(0.0, |&v| f64::from(v));
        self.padded.clear();
        self.padded.extend((1..=half).rev().map(x));
        self.padded.extend((0..n).map(x));
        self.padded.extend((0..half).map(|i| x(n - 2 - i)));
        let frames = self.frames_for(samples.len());
        let n_bins = self.n_fft / 2 + 1;
        self.mel.clear();
        self.mel.resize(self.n_mels * frames, 0.0);
        for t in 0..frames {
            let start = t * self.hop;
            let input = &self.padded[start..start + self.n_fft];
            for ((slot, &v), &w) in self.frame.iter_mut().zip(input).zip(&self.window) {
                *slot = v * w;
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
                self.mel[m * frames + t] = row[a..b]
                    .iter()
                    .zip(&self.power[a..b])
                    .map(|(w, p)| w * p)
                    .sum();
            }
        }
        // `f64::max` maps a NaN power (from non-finite samples) to the floor.
        let floor = self.log_floor;
        let loudest = self.mel.iter().fold(floor, |m, &v| m.max(v.max(floor)));
        let lo = log10(loudest) - self.dynamic_range;
        out.n_mels = self.n_mels;
        out.frames = frames;
        out.values.clear();
        out.values.resize(self.mel.len(), 0.0);
        scaled_log10(&self.mel, floor, lo, &mut out.values);
    }

    /// The spectrogram image of mono samples at the analysis rate, as [`LogMel::to_image`] draws it,
    /// with this front end's buffers.
    pub fn image(&mut self, samples: &[f32], settings: &AudioSettings, size: u32) -> RgbImage {
        let mut log_mel = std::mem::take(&mut self.picture.log_mel);
        self.compute_into(samples, &mut log_mel);
        let image = log_mel.draw(settings, size, &mut self.picture);
        self.picture.log_mel = log_mel;
        image
    }
}

/// `(max(log10(max(v, floor)), lo) + 4) / 4` for every power `v`, as `f32`.
fn scaled_log10(mel: &[f64], floor: f64, lo: f64, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has AVX2 and FMA, checked just above.
        unsafe { scaled_log10_avx2(mel, floor, lo, out) };
        return;
    }
    scaled_log10_plain(mel, floor, lo, out);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn scaled_log10_avx2(mel: &[f64], floor: f64, lo: f64, out: &mut [f32]) {
    scaled_log10_plain(mel, floor, lo, out);
}

#[inline(always)]
fn scaled_log10_plain(mel: &[f64], floor: f64, lo: f64, out: &mut [f32]) {
    for (o, &v) in out.iter_mut().zip(mel) {
        *o = ((log10(v.max(floor)).max(lo) + 4.0) / 4.0) as f32;
    }
}

/// `log10(x)` for a positive, normal `x`, to a few units in the last place of `f64`, without a branch
/// or a library call, so that a slice of them vectorises (the log was a third of the front end's time).
/// `x = 2^e · m` with `m` in [√½, √2); `ln m = 2·atanh(s)`, `s = (m − 1)/(m + 1)`, `|s| ≤ 0.172`, by its
/// series to `s^21` (next term < 1e-17).
#[inline(always)]
fn log10(x: f64) -> f64 {
    let bits = x.to_bits();
    let m = f64::from_bits((bits & 0x000F_FFFF_FFFF_FFFF) | 0x3FF0_0000_0000_0000);
    let big = m > std::f64::consts::SQRT_2;
    let m = if big { m * 0.5 } else { m };
    // The biased exponent (plus one when `m` was halved) through the 2^52 trick, which vectorises
    // where an integer-to-float conversion would not.
    let biased = (bits >> 52) + u64::from(big);
    let e = f64::from_bits(0x4330_0000_0000_0000 | biased) - 4_503_599_627_370_496.0 - 1023.0;
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let mut p = 1.0 / 21.0;
    for k in [19.0, 17.0, 15.0, 13.0, 11.0, 9.0, 7.0, 5.0, 3.0, 1.0] {
        p = p * s2 + 1.0 / k;
    }
    (2.0 * s * p + e * std::f64::consts::LN_2) * std::f64::consts::LOG10_E
}

/// Working buffers of [`LogMel::draw`]: the grey picture before resizing, the first resampling pass,
/// both passes' weights, and a [`LogMel`] for [`MelSpectrogram::image`].
#[derive(Default)]
struct PictureScratch {
    grey: Vec<f32>,
    rows: Vec<f32>,
    vertical: Resampling,
    horizontal: Resampling,
    log_mel: LogMel,
}

/// The triangle-filter resampling of one axis exactly as `image::imageops::resize` computes it
/// (same taps, same normalised `f32` weights, same order of sums), so the picture is bit for bit the
/// one `resize(…, FilterType::Triangle)` draws, without its per-pixel generic code.
#[derive(Default)]
struct Resampling {
    /// `(first source index, first weight, number of taps)` per output index.
    taps: Vec<(usize, usize, usize)>,
    weights: Vec<f32>,
    key: (usize, usize),
}

impl Resampling {
    fn plan(&mut self, src: usize, dst: usize) {
        if self.key == (src, dst) && !self.taps.is_empty() {
            return;
        }
        self.key = (src, dst);
        self.taps.clear();
        self.weights.clear();
        let ratio = src as f32 / dst as f32;
        let sratio = if ratio < 1.0 { 1.0 } else { ratio };
        let support = sratio; // the triangle's support is 1
        for o in 0..dst {
            let centre = (o as f32 + 0.5) * ratio;
            let left = ((centre - support).floor() as i64).clamp(0, src as i64 - 1);
            let right = ((centre + support).ceil() as i64).clamp(left + 1, src as i64);
            let centre = centre - 0.5;
            let first = self.weights.len();
            let mut sum = 0.0;
            for i in left..right {
                let d = ((i as f32 - centre) / sratio).abs();
                let w = if d < 1.0 { 1.0 - d } else { 0.0 };
                self.weights.push(w);
                sum += w;
            }
            for w in &mut self.weights[first..] {
                *w /= sum;
            }
            self.taps
                .push((left as usize, first, (right - left) as usize));
        }
    }
}

/// A clip's grey scale in the scaled units of [`LogMel`]'s values: `lo` is black, `lo + range` white,
/// and frames whose loudest bin is below `trim` or at most `lo` are silence.
struct Levels {
    lo: f32,
    range: f32,
    trim: f32,
}

impl Levels {
    /// Whether a frame whose loudest bin is `energy` is speech rather than trimmed silence.
    fn is_active(&self, energy: f32) -> bool {
        energy >= self.trim && energy > self.lo
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
    /// [`MelSpectrogram::image`] draws the same picture with reused buffers.
    pub fn to_image(&self, settings: &AudioSettings, size: u32) -> RgbImage {
        self.draw(settings, size, &mut PictureScratch::default())
    }

    /// The clip's grey scale: from its loudest bin (or digital silence plus the range, if louder) down by
    /// the dynamic range, and the level below which a frame counts as trimmed silence.
    fn levels(&self, settings: &AudioSettings) -> Levels {
        let range = settings.dynamic_range / 4.0;
        // The level of a digital-silence bin, in the scaled units of `values`.
        let silence = ((settings.log_floor as f64).log10() as f32 + 4.0) / 4.0;
        let clip_max = self
            .values
            .iter()
            .copied()
            .fold(f32::NEG_INFINITY, f32::max);
        let hi = clip_max.max(silence + range);
        Levels {
            lo: hi - range,
            range,
            trim: clip_max - settings.trim_db / 40.0,
        }
    }

    /// The loudest mel bin of frame `t`.
    fn frame_energy(&self, t: usize) -> f32 {
        (0..self.n_mels)
            .map(|m| self.get(m, t))
            .fold(f32::NEG_INFINITY, f32::max)
    }

    fn draw(&self, settings: &AudioSettings, size: u32, scratch: &mut PictureScratch) -> RgbImage {
        let levels = self.levels(settings);
        let Levels { lo, range, .. } = levels;
        let is_active = |t: &usize| levels.is_active(self.frame_energy(*t));
        // The first non-silent frame always lands `pad_frames` columns in, whether the clip had leading
        // silence or speech from its first sample (then the columns before it are black).
        let (start, end) = match (0..self.frames).find(is_active) {
            Some(first) => {
                let last = (first..self.frames).rev().find(is_active).unwrap_or(first);
                (
                    first as i64 - settings.pad_frames as i64,
                    (last + 1 + settings.pad_frames) as i64,
                )
            }
            None => (0, 0),
        };
        let width = ((end - start) as usize).max(settings.window_frames);
        let height = self.n_mels;
        let side = size as usize;
        // The grey picture, `[height][width]`, row 0 the highest mel bin.
        let grey = &mut scratch.grey;
        grey.clear();
        grey.resize(width * height, 0.0);
        for (y, row) in grey.chunks_exact_mut(width).enumerate() {
            let m = self.n_mels - 1 - y;
            for (x, slot) in row.iter_mut().enumerate() {
                let t = start + x as i64;
                if t >= 0 && (t as usize) < self.frames {
                    *slot = ((self.get(m, t as usize) - lo) / range).clamp(0.0, 1.0);
                }
            }
        }
        // Rows first, then columns, as `image::imageops::resize` does.
        scratch.vertical.plan(height, side);
        scratch.horizontal.plan(width, side);
        let rows = &mut scratch.rows;
        rows.clear();
        rows.resize(side * width, 0.0);
        for (row, &(first, w0, n)) in rows.chunks_exact_mut(width).zip(&scratch.vertical.taps) {
            for (i, &w) in scratch.vertical.weights[w0..w0 + n].iter().enumerate() {
                let src = &grey[(first + i) * width..(first + i + 1) * width];
                for (acc, &v) in row.iter_mut().zip(src) {
                    *acc += v * w;
                }
            }
        }
        let mut image = RgbImage::new(size, size);
        for (y, out_row) in image.chunks_exact_mut(3 * side).enumerate() {
            let row = &rows[y * width..(y + 1) * width];
            for (px, &(first, w0, n)) in out_row.chunks_exact_mut(3).zip(&scratch.horizontal.taps) {
                let mut t = 0.0f32;
                for (&v, &w) in row[first..first + n]
                    .iter()
                    .zip(&scratch.horizontal.weights[w0..w0 + n])
                {
                    t += v * w;
                }
                // `resize` clamps to [0, 1] (NaN passes through and becomes 0 below).
                let t = t.clamp(0.0, 1.0);
                let v = (t * 255.0).round() as u8;
                px.copy_from_slice(&[v, v, v]);
            }
        }
        image
    }
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

    /// The picture as drawn before [`LogMel::draw`] existed: the same levels and trimmed span, then a grey
    /// `ImageBuffer` through `image::imageops::resize`. `draw`'s own resampling must match it bit for bit
    /// (the default model was trained on it).
    fn picture_through_image_resize(lm: &LogMel, s: &AudioSettings, size: u32) -> RgbImage {
        use image::{ImageBuffer, Luma};
        let levels = lm.levels(s);
        let Levels { lo, range, .. } = levels;
        let active: Vec<usize> = (0..lm.frames)
            .filter(|&t| levels.is_active(lm.frame_energy(t)))
            .collect();
        let (start, end) = match (active.first(), active.last()) {
            (Some(&a), Some(&b)) => (
                a as i64 - s.pad_frames as i64,
                (b + 1 + s.pad_frames) as i64,
            ),
            _ => (0, 0),
        };
        let span = ((end - start) as usize).max(s.window_frames);
        let grey: ImageBuffer<Luma<f32>, Vec<f32>> =
            ImageBuffer::from_fn(span as u32, lm.n_mels as u32, |x, y| {
                let t = start + x as i64;
                let m = lm.n_mels - 1 - y as usize;
                if t >= 0 && (t as usize) < lm.frames {
                    Luma([((lm.get(m, t as usize) - lo) / range).clamp(0.0, 1.0)])
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

    /// A chirp with noise, switched on for part of the clip, at a random level.
    fn speechlike(seed: u64, n: usize) -> Vec<f32> {
        let mut state = seed;
        let mut uniform = move || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 40) as f32 / (1u64 << 24) as f32
        };
        let (a, b) = (uniform(), uniform());
        let on = (uniform() * n as f32) as usize;
        let off = on + (uniform() * (n - on) as f32) as usize;
        let amp = 10f32.powf(-3.0 * uniform());
        (0..n)
            .map(|i| {
                let t = i as f32 / 16_000.0;
                let env = if (on..off).contains(&i) {
                    1.0
                } else {
                    0.02 * uniform()
                };
                let f = 100.0 + 900.0 * a + 400.0 * b * t;
                amp * env
                    * (0.5 * (2.0 * std::f32::consts::PI * f * t).sin()
                        + 0.3 * b * (uniform() - 0.5))
            })
            .collect()
    }

    #[test]
    fn spectrogram_picture_is_bit_identical_to_image_resize() {
        let s = AudioSettings::default();
        let mut mel = MelSpectrogram::new(&s);
        for seed in 0..24u64 {
            let n = [1, 150, 399, 4_000, 16_000, 32_000, 47_000, 80_000][seed as usize % 8];
            let x = speechlike(seed, n);
            let lm = mel.compute(&x);
            for size in [96, 64, 200, 17] {
                let want = picture_through_image_resize(&lm, &s, size);
                assert_eq!(
                    lm.to_image(&s, size).as_raw(),
                    want.as_raw(),
                    "seed {seed}, {n} samples, {size} px"
                );
                assert_eq!(
                    mel.image(&x, &s, size).as_raw(),
                    want.as_raw(),
                    "seed {seed}, {n} samples, {size} px"
                );
            }
        }
        // A picture as wide as it is tall (`resize` copies instead of resampling then).
        let square = AudioSettings {
            n_mels: 96,
            window_frames: 96,
            ..AudioSettings::default()
        };
        let mut mel = MelSpectrogram::new(&square);
        let lm = mel.compute(&speechlike(5, 9_000));
        assert_eq!(
            lm.to_image(&square, 96).as_raw(),
            picture_through_image_resize(&lm, &square, 96).as_raw()
        );
    }

    #[test]
    fn vectorisable_log10_matches_the_library_log10() {
        let mut worst = 0f64;
        let mut x = 1e-12f64;
        while x < 1e12 {
            for v in [
                x,
                // Either side of the √2 switch between mantissa ranges.
                x * std::f64::consts::SQRT_2.next_down(),
                x * std::f64::consts::SQRT_2.next_up(),
                x.next_up(),
                x.next_down(),
            ] {
                let err = (log10(v) - v.log10()).abs();
                worst = worst.max(err);
            }
            x *= 1.013;
        }
        assert!(worst < 1e-14, "worst absolute error {worst:e}");
        // The floor and powers of two land where the library puts them.
        assert_eq!(log10(1e-10) as f32, -10.0);
        assert_eq!(log10(1.0), 0.0);
        assert!((log10(1024.0) - 1024f64.log10()).abs() < 1e-15);
    }

    #[test]
    fn warm_front_end_reuses_its_buffers() {
        let s = AudioSettings::default();
        let mut mel = MelSpectrogram::new(&s);
        let x = speechlike(3, 32_000);
        let mut out = LogMel::default();
        mel.compute_into(&x, &mut out);
        let first = out.clone();
        let storage = out.values.as_ptr();
        mel.compute_into(&x, &mut out);
        assert_eq!(out, first);
        assert_eq!(out.values.as_ptr(), storage, "the values were reallocated");
        // A shorter clip after a longer one reuses the same storage too, and is not polluted by it.
        let short = speechlike(4, 8_000);
        mel.compute_into(&short, &mut out);
        assert_eq!(out.values.as_ptr(), storage);
        assert_eq!(out, MelSpectrogram::new(&s).compute(&short));
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
