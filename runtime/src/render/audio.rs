//! Audio in: WAV of any rate, channel count and sample format → mono `f32` → the analysis rate.
use std::io::{Cursor, Read};
use std::path::Path;

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler};

use super::RenderError;

/// Lowest and highest input rates accepted.
pub const MIN_RATE: u32 = 1_000;
pub const MAX_RATE: u32 = 384_000;

/// Mono samples in `[-1, 1]` at `rate` Hz.
#[derive(Debug, Clone, PartialEq)]
pub struct Pcm {
    pub samples: Vec<f32>,
    pub rate: u32,
}

impl Pcm {
    pub fn seconds(&self) -> f64 {
        self.samples.len() as f64 / self.rate as f64
    }
}

/// Reads a WAV file and mixes it to mono.
pub fn read_wav(path: &Path, max_seconds: f32) -> Result<Pcm, RenderError> {
    let file = std::fs::File::open(path).map_err(|source| RenderError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    decode_wav(std::io::BufReader::new(file), path, max_seconds)
}

/// Decodes WAV bytes held in memory (tests, fuzzing, stdin).
pub fn decode_wav_bytes(bytes: &[u8], max_seconds: f32) -> Result<Pcm, RenderError> {
    decode_wav(Cursor::new(bytes), Path::new("<memory>"), max_seconds)
}

/// Decodes a WAV stream: PCM integers of 8 to 32 bits or 32-bit float, any channel count, mixed to mono
/// by averaging the channels. Length is checked against `max_seconds` before any sample is read.
pub fn decode_wav<R: Read>(reader: R, path: &Path, max_seconds: f32) -> Result<Pcm, RenderError> {
    let fail = |reason: String| RenderError::WavDecode {
        path: path.to_path_buf(),
        reason,
    };
    let mut wav = hound::WavReader::new(reader).map_err(|e| fail(e.to_string()))?;
    let spec = wav.spec();
    if spec.channels == 0 {
        return Err(fail("zero channels".into()));
    }
    if !(MIN_RATE..=MAX_RATE).contains(&spec.sample_rate) {
        return Err(fail(format!(
            "sample rate {} Hz is outside {MIN_RATE}..={MAX_RATE} Hz",
            spec.sample_rate
        )));
    }
    let frames = wav.duration() as u64;
    let seconds = frames as f64 / spec.sample_rate as f64;
    if seconds > max_seconds as f64 {
        return Err(RenderError::AudioTooLong {
            path: path.to_path_buf(),
            seconds,
            limit: max_seconds,
        });
    }
    let channels = spec.channels as usize;
    let mut mono = Vec::with_capacity(frames as usize);
    let mut acc = 0f32;
    let mut n = 0usize;
    let mut push = |v: f32, mono: &mut Vec<f32>| {
        acc += v;
        n += 1;
        if n == channels {
            mono.push(acc / channels as f32);
            acc = 0.0;
            n = 0;
        }
    };
    match spec.sample_format {
        hound::SampleFormat::Float => {
            if spec.bits_per_sample != 32 {
                return Err(fail(format!("{}-bit float samples", spec.bits_per_sample)));
            }
            for s in wav.samples::<f32>() {
                let v = s.map_err(|e| fail(e.to_string()))?;
                // NaN or infinite samples would poison the spectrogram: treat them as silence.
                push(
                    if v.is_finite() {
                        v.clamp(-1.0, 1.0)
                    } else {
                        0.0
                    },
                    &mut mono,
                );
            }
        }
        hound::SampleFormat::Int => {
            let bits = spec.bits_per_sample;
            if bits == 0 || bits > 32 {
                return Err(fail(format!("{bits}-bit integer samples")));
            }
            let scale = 1.0 / (1u64 << (bits - 1)) as f32;
            for s in wav.samples::<i32>() {
                let v = s.map_err(|e| fail(e.to_string()))?;
                push(v as f32 * scale, &mut mono);
            }
        }
    }
    if mono.is_empty() {
        return Err(RenderError::EmptyAudio {
            path: path.to_path_buf(),
        });
    }
    Ok(Pcm {
        samples: mono,
        rate: spec.sample_rate,
    })
}

/// Largest down-sampling ratio done in one pass. rubato's FFT resampler rolls off early at large
/// integer ratios (measured at 12:1, e.g. 192 kHz → 16 kHz: a tone at 0.2 of the output's Nyquist frequency
/// keeps 88 % of its energy, at 0.4 only 28 %); at 4:1 or less it is flat to 0.7 of it.
const MAX_PASS_RATIO: u32 = 4;

/// Resamples mono audio to `rate` with rubato's FFT resampler (band-limited, no linear interpolation).
/// Large down-sampling ratios go in passes of at most [`MAX_PASS_RATIO`]:1 through multiples of `rate`.
pub fn resample_to(pcm: &Pcm, rate: u32) -> Result<Vec<f32>, RenderError> {
    if pcm.rate == rate {
        return Ok(pcm.samples.clone());
    }
    let err = |reason: String| RenderError::Resample {
        from: pcm.rate,
        reason,
    };
    if !(MIN_RATE..=MAX_RATE).contains(&pcm.rate) {
        return Err(err(format!("rate outside {MIN_RATE}..={MAX_RATE} Hz")));
    }
    if pcm.samples.is_empty() {
        return Ok(Vec::new());
    }
    let mut from = pcm.rate;
    let mut samples = std::borrow::Cow::Borrowed(&pcm.samples[..]);
    while from != rate {
        let to = next_pass_rate(from, rate);
        samples = std::borrow::Cow::Owned(resample_pass(&samples, from, to).map_err(err)?);
        from = to;
    }
    Ok(samples.into_owned())
}

/// Where a pass from `from` Hz towards `rate` goes: `rate` itself, or the smallest multiple of it at
/// most [`MAX_PASS_RATIO`]:1 below `from` (the streaming [`Converter`](crate::capture::Converter) too).
pub(crate) fn next_pass_rate(from: u32, rate: u32) -> u32 {
    let factor = u64::from(from).div_ceil(u64::from(rate) * u64::from(MAX_PASS_RATIO));
    if from > rate && factor > 1 {
        rate.saturating_mul(factor as u32)
    } else {
        rate
    }
}

/// rubato's FFT resampler for one mono pass, in chunks of 1024 input frames: the one [`resample_to`]
/// and the streaming [`Converter`](crate::capture::Converter) both use.
pub(crate) fn fft_resampler(from: u32, to: u32) -> Result<Fft<f32>, String> {
    Fft::<f32>::new(from as usize, to as usize, 1024, 1, FixedSync::Input)
        .map_err(|e| e.to_string())
}

fn resample_pass(samples: &[f32], from: u32, to: u32) -> Result<Vec<f32>, String> {
    let mut resampler = fft_resampler(from, to)?;
    let input = InterleavedSlice::new(samples, 1, samples.len()).map_err(|e| e.to_string())?;
    let out = resampler
        .process_all(&input, samples.len(), None)
        .map_err(|e| e.to_string())?;
    Ok(out.take_data())
}

/// What the resampling tests (here and in `capture::convert`) measure in their output.
#[cfg(test)]
pub(crate) mod signal {
    /// Sign changes between consecutive samples: twice a pure tone's frequency, per second.
    pub fn zero_crossings(x: &[f32]) -> usize {
        x.windows(2)
            .filter(|w| (w[0] < 0.0) != (w[1] < 0.0))
            .count()
    }

    /// Root mean square.
    pub fn rms(x: &[f32]) -> f32 {
        (x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32).sqrt()
    }
}

#[cfg(test)]
mod tests {
    use super::signal::{rms, zero_crossings};
    use super::*;

    fn wav_spec(
        channels: u16,
        sample_rate: u32,
        bits_per_sample: u16,
        sample_format: hound::SampleFormat,
    ) -> hound::WavSpec {
        hound::WavSpec {
            channels,
            sample_rate,
            bits_per_sample,
            sample_format,
        }
    }

    fn wav_bytes(
        spec: hound::WavSpec,
        write: impl FnOnce(&mut hound::WavWriter<&mut Cursor<Vec<u8>>>),
    ) -> Vec<u8> {
        let mut cursor = Cursor::new(Vec::new());
        {
            let mut w = hound::WavWriter::new(&mut cursor, spec).unwrap();
            write(&mut w);
            w.finalize().unwrap();
        }
        cursor.into_inner()
    }

    #[test]
    fn stereo_int16_is_mixed_to_mono() {
        let bytes = wav_bytes(wav_spec(2, 16_000, 16, hound::SampleFormat::Int), |w| {
            for _ in 0..10 {
                w.write_sample(16384i16).unwrap();
                w.write_sample(0i16).unwrap();
            }
        });
        let pcm = decode_wav_bytes(&bytes, 30.0).unwrap();
        assert_eq!(pcm.rate, 16_000);
        assert_eq!(pcm.samples.len(), 10);
        assert!((pcm.samples[0] - 0.25).abs() < 1e-6);
    }

    #[test]
    fn float_and_24_bit_samples_decode() {
        let bytes = wav_bytes(wav_spec(1, 22_050, 32, hound::SampleFormat::Float), |w| {
            w.write_sample(0.5f32).unwrap();
            w.write_sample(f32::NAN).unwrap();
        });
        let pcm = decode_wav_bytes(&bytes, 30.0).unwrap();
        assert_eq!(pcm.samples, vec![0.5, 0.0]);
        let bytes = wav_bytes(wav_spec(1, 48_000, 24, hound::SampleFormat::Int), |w| {
            w.write_sample(-(1i32 << 23)).unwrap()
        });
        assert_eq!(decode_wav_bytes(&bytes, 30.0).unwrap().samples, vec![-1.0]);
    }

    #[test]
    fn empty_and_garbage_files_are_clear_errors() {
        let empty = wav_bytes(wav_spec(1, 16_000, 16, hound::SampleFormat::Int), |_| {});
        assert!(matches!(
            decode_wav_bytes(&empty, 30.0),
            Err(RenderError::EmptyAudio { .. })
        ));
        let msg = decode_wav_bytes(b"not a wav at all", 30.0)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("not a WAV file"), "{msg}");
        assert!(decode_wav_bytes(&[], 30.0).is_err());
    }

    #[test]
    fn too_long_audio_is_refused_before_decoding() {
        let bytes = wav_bytes(wav_spec(1, 1_000, 8, hound::SampleFormat::Int), |w| {
            for _ in 0..3_000 {
                w.write_sample(0i8).unwrap();
            }
        });
        let err = decode_wav_bytes(&bytes, 2.0).unwrap_err();
        assert!(matches!(err, RenderError::AudioTooLong { .. }), "{err}");
    }

    #[test]
    fn resampling_keeps_duration_and_a_tone_frequency() {
        let rate = 44_100;
        let n = rate as usize; // one second
        let samples: Vec<f32> = (0..n)
            .map(|i| (2.0 * std::f32::consts::PI * 440.0 * i as f32 / rate as f32).sin() * 0.5)
            .collect();
        let out = resample_to(&Pcm { samples, rate }, 16_000).unwrap();
        assert!((out.len() as i64 - 16_000).abs() <= 2, "{}", out.len());
        // Count zero crossings in the steady middle: a 440 Hz tone crosses 880 times a second.
        let mid = &out[4000..12000];
        let crossings = zero_crossings(mid);
        assert!((crossings as i64 - 440).abs() <= 2, "{crossings}");
        let rms = rms(mid);
        assert!((rms - 0.5 / 2f32.sqrt()).abs() < 0.01, "{rms}");
    }

    /// Found by `resampling_keeps_the_energy_of_a_band_limited_signal`: 96 kHz → 8 kHz in one pass kept
    /// 15 % of the energy of a 1.8 kHz tone (and 192 kHz → 16 kHz the same at 3.6 kHz).
    #[test]
    fn large_down_sampling_ratios_keep_the_speech_band() {
        for (from, to, tone) in [
            (96_000, 8_000, 1_800.0),
            (192_000, 16_000, 3_600.0),
            (384_000, 16_000, 5_000.0),
        ] {
            let n = from as usize / 2;
            let samples: Vec<f32> = (0..n)
                .map(|i| {
                    (2.0 * std::f64::consts::PI * tone * i as f64 / f64::from(from)).sin() as f32
                        * 0.5
                })
                .collect();
            let out = resample_to(
                &Pcm {
                    samples,
                    rate: from,
                },
                to,
            )
            .unwrap();
            assert!(
                (out.len() as i64 - (to / 2) as i64).abs() <= 2,
                "{}",
                out.len()
            );
            let mid = &out[out.len() / 5..out.len() * 4 / 5];
            let rms = rms(mid);
            assert!(
                (rms - 0.5 / 2f32.sqrt()).abs() < 0.02,
                "{from} → {to}, {tone} Hz: rms {rms}"
            );
        }
    }

    #[test]
    fn very_short_clips_resample() {
        let out = resample_to(
            &Pcm {
                samples: vec![0.1; 3],
                rate: 8_000,
            },
            16_000,
        )
        .unwrap();
        assert!(out.len() >= 5 && out.len() <= 7, "{}", out.len());
    }

    const RATES: [u32; 9] = [
        8_000, 11_025, 16_000, 22_050, 24_000, 32_000, 44_100, 48_000, 96_000,
    ];

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

        /// Any samples in [-1, 1] at any common rate: the output lasts as long (± 2 samples) and holds no
        /// NaN or infinity.
        #[test]
        fn resampling_keeps_length_and_stays_finite(
            from in proptest::sample::select(RATES.to_vec()),
            to in proptest::sample::select(RATES.to_vec()),
            samples in proptest::collection::vec(-1.0f32..=1.0, 1..6000),
        ) {
            let n = samples.len();
            let out = resample_to(&Pcm { samples, rate: from }, to).unwrap();
            let want = n as f64 * to as f64 / from as f64;
            proptest::prop_assert!((out.len() as f64 - want).abs() <= 2.0, "{} samples for {want}", out.len());
            proptest::prop_assert!(out.iter().all(|v| v.is_finite()));
        }

        /// A band-limited signal (two tones below both Nyquist limits) keeps its energy, within 10 %,
        /// away from the edges.
        #[test]
        fn resampling_keeps_the_energy_of_a_band_limited_signal(
            from in proptest::sample::select(RATES.to_vec()),
            to in proptest::sample::select(RATES.to_vec()),
            f1 in 0.05f64..0.7,
            f2 in 0.05f64..0.7,
            a1 in 0.05f32..0.5,
            a2 in 0.05f32..0.5,
        ) {
            // Frequencies as fractions of the lower Nyquist frequency.
            let nyquist = from.min(to) as f64 / 2.0;
            let n = from as usize / 2; // half a second
            let samples: Vec<f32> = (0..n)
                .map(|i| {
                    let t = i as f64 / from as f64;
                    let w = 2.0 * std::f64::consts::PI * t;
                    a1 * (w * f1 * nyquist).sin() as f32 + a2 * (w * f2 * nyquist).sin() as f32
                })
                .collect();
            let mean_square = |v: &[f32]| v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>() / v.len() as f64;
            let before = mean_square(&samples[n / 5..n * 4 / 5]);
            let out = resample_to(&Pcm { samples, rate: from }, to).unwrap();
            let m = out.len();
            let after = mean_square(&out[m / 5..m * 4 / 5]);
            proptest::prop_assert!((after / before - 1.0).abs() < 0.1, "energy {before} → {after}");
        }
    }
}
