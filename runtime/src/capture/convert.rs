//! From a stream's format to the analysis rate: mixes to mono and resamples, in chunks, outside the audio
//! callback.
use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, Indexing, Resampler};

use super::{StreamError, StreamFormat};
use crate::render::audio::{fft_resampler, next_pass_rate};

/// Interleaved samples of any rate and channel count → mono at `out_rate`, chunk by chunk.
///
/// Channels are averaged; non-finite samples become silence; rubato's FFT resampler does the rate change,
/// down-sampling by at most 4:1 a pass (as [`crate::render::resample_to`]: larger ratios roll off inside
/// the speech band), through a chain of converters.
/// Output is aligned in time with the input: the resampler's start-up delay is removed, and
/// [`Converter::flush`] emits exactly `round(input_frames × out_rate / in_rate)` samples in all (within a
/// sample per extra pass).
pub struct Converter {
    /// The next pass, from this one's output rate to the final rate; `None`: this is the last pass.
    next: Option<Box<Converter>>,
    /// This pass's output on its way to the next.
    between: Vec<f32>,
    format: StreamFormat,
    out_rate: u32,
    resampler: Option<Fft<f32>>,
    /// A frame split across two pushes: its first channels wait here.
    partial: Vec<f32>,
    /// Mono samples at the input rate not yet resampled.
    pending: Vec<f32>,
    chunk_out: Vec<f32>,
    delay_left: usize,
    frames_in: u64,
    frames_out: u64,
}

impl Converter {
    pub fn new(format: StreamFormat, out_rate: u32) -> Result<Self, StreamError> {
        let format = format.validate()?;
        StreamFormat {
            rate: out_rate,
            channels: 1,
        }
        .validate()?;
        let mid = next_pass_rate(format.rate, out_rate);
        if mid != out_rate {
            // A first pass to a multiple of the output rate at most 4:1 below, then the rest.
            let next = Converter::new(
                StreamFormat {
                    rate: mid,
                    channels: 1,
                },
                out_rate,
            )?;
            let mut first = Converter::one_pass(format, mid)?;
            first.next = Some(Box::new(next));
            return Ok(first);
        }
        Converter::one_pass(format, out_rate)
    }

    fn one_pass(format: StreamFormat, out_rate: u32) -> Result<Self, StreamError> {
        let (resampler, delay) = if format.rate == out_rate {
            (None, 0)
        } else {
            let r =
                fft_resampler(format.rate, out_rate).map_err(|reason| StreamError::Resample {
                    from: format.rate,
                    to: out_rate,
                    reason,
                })?;
            let delay = r.output_delay();
            (Some(r), delay)
        };
        let chunk_out = vec![0.0; resampler.as_ref().map_or(0, |r| r.output_frames_max())];
        Ok(Self {
            next: None,
            between: Vec::new(),
            format,
            out_rate,
            resampler,
            partial: Vec::with_capacity(format.channels as usize),
            pending: Vec::new(),
            chunk_out,
            delay_left: delay,
            frames_in: 0,
            frames_out: 0,
        })
    }

    pub fn format(&self) -> StreamFormat {
        self.format
    }

    pub fn out_rate(&self) -> u32 {
        self.next.as_ref().map_or(self.out_rate, |n| n.out_rate())
    }

    /// Converts `interleaved` and appends the mono output to `out`.
    pub fn push(&mut self, interleaved: &[f32], out: &mut Vec<f32>) -> Result<(), StreamError> {
        let Some(mut next) = self.next.take() else {
            return self.push_pass(interleaved, out);
        };
        let mut between = std::mem::take(&mut self.between);
        between.clear();
        let result = self
            .push_pass(interleaved, &mut between)
            .and_then(|()| next.push(&between, out));
        self.between = between;
        self.next = Some(next);
        result
    }

    /// End of stream: resamples what is left, padding with silence, and emits the last samples.
    pub fn flush(&mut self, out: &mut Vec<f32>) -> Result<(), StreamError> {
        let Some(mut next) = self.next.take() else {
            return self.flush_pass(out);
        };
        let mut between = std::mem::take(&mut self.between);
        between.clear();
        let result = self
            .flush_pass(&mut between)
            .and_then(|()| next.push(&between, out))
            .and_then(|()| next.flush(out));
        self.between = between;
        self.next = Some(next);
        result
    }

    fn push_pass(&mut self, interleaved: &[f32], out: &mut Vec<f32>) -> Result<(), StreamError> {
        let channels = self.format.channels as usize;
        let mut rest = interleaved;
        if !self.partial.is_empty() {
            let need = channels - self.partial.len();
            let take = need.min(rest.len());
            self.partial.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.partial.len() == channels {
                let frame = std::mem::take(&mut self.partial);
                self.push_frame(&frame);
                self.partial = frame;
                self.partial.clear();
            }
        }
        let whole = rest.len() / channels * channels;
        for frame in rest[..whole].chunks_exact(channels) {
            self.push_frame(frame);
        }
        self.partial.extend_from_slice(&rest[whole..]);
        self.drain(out, false)
    }

    fn flush_pass(&mut self, out: &mut Vec<f32>) -> Result<(), StreamError> {
        self.partial.clear();
        self.drain(out, true)?;
        // Start afresh for a stream that may follow.
        if let Some(r) = self.resampler.as_mut() {
            r.reset();
            self.delay_left = r.output_delay();
        }
        self.pending.clear();
        self.frames_in = 0;
        self.frames_out = 0;
        Ok(())
    }

    fn push_frame(&mut self, frame: &[f32]) {
        let sum: f32 = frame
            .iter()
            .map(|&v| if v.is_finite() { v } else { 0.0 })
            .sum();
        self.pending
            .push((sum / frame.len() as f32).clamp(-1.0, 1.0));
        self.frames_in += 1;
    }

    fn expected_out(&self) -> u64 {
        ((self.frames_in as u128 * self.out_rate as u128 + self.format.rate as u128 / 2)
            / self.format.rate as u128) as u64
    }

    fn drain(&mut self, out: &mut Vec<f32>, last: bool) -> Result<(), StreamError> {
        let (from, to) = (self.format.rate, self.out_rate);
        let err = |reason: String| StreamError::Resample { from, to, reason };
        let expected = self.expected_out();
        let Some(resampler) = self.resampler.as_mut() else {
            out.extend_from_slice(&self.pending);
            self.frames_out += self.pending.len() as u64;
            self.pending.clear();
            return Ok(());
        };
        let mut consumed = 0;
        loop {
            let need = resampler.input_frames_next();
            let available = self.pending.len() - consumed;
            let full = available >= need;
            if !(full || (last && self.frames_out < expected)) {
                break;
            }
            let take = need.min(available);
            let input = &self.pending[consumed..consumed + take];
            let input = InterleavedSlice::new(input, 1, take).map_err(|e| err(e.to_string()))?;
            let frames_out = resampler.output_frames_next();
            let mut output =
                InterleavedSlice::new_mut(&mut self.chunk_out[..frames_out], 1, frames_out)
                    .map_err(|e| err(e.to_string()))?;
            let indexing = Indexing::new().partial_len(take);
            let (_, written) = resampler
                .process_into_buffer(&input, &mut output, Some(&indexing))
                .map_err(|e| err(e.to_string()))?;
            consumed += take;
            let skip = self.delay_left.min(written);
            self.delay_left -= skip;
            let mut produced = &self.chunk_out[skip..written];
            if last {
                let room = expected.saturating_sub(self.frames_out) as usize;
                produced = &produced[..produced.len().min(room)];
            }
            out.extend_from_slice(produced);
            self.frames_out += produced.len() as u64;
            if !full && take == 0 && written == 0 {
                break; // nothing more can come out
            }
        }
        self.pending.drain(..consumed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::audio::signal::{rms, zero_crossings};

    fn tone(rate: u32, channels: u16, seconds: f32, hz: f32) -> Vec<f32> {
        let n = (rate as f32 * seconds) as usize;
        let mut v = Vec::with_capacity(n * channels as usize);
        for i in 0..n {
            let s = (2.0 * std::f32::consts::PI * hz * i as f32 / rate as f32).sin() * 0.5;
            for c in 0..channels {
                // Second channel silent: the mono mix halves the amplitude.
                v.push(if c == 0 { s } else { 0.0 });
            }
        }
        v
    }

    #[test]
    fn converter_mixes_and_resamples_in_odd_chunks_with_exact_length() {
        for (rate, channels) in [(48_000u32, 2u16), (44_100, 1), (22_050, 3), (16_000, 2)] {
            let input = tone(rate, channels, 1.0, 440.0);
            let mut conv = Converter::new(StreamFormat { rate, channels }, 16_000).unwrap();
            let mut out = Vec::new();
            for chunk in input.chunks(997) {
                conv.push(chunk, &mut out).unwrap();
            }
            conv.flush(&mut out).unwrap();
            assert_eq!(out.len(), 16_000, "{rate} Hz {channels} ch");
            let mid = &out[4000..12000];
            let crossings = zero_crossings(mid);
            assert!((crossings as i64 - 440).abs() <= 2, "{rate}: {crossings}");
            let expected_rms = 0.5 / channels as f32 / 2f32.sqrt();
            let rms = rms(mid);
            assert!((rms - expected_rms).abs() < 0.01, "{rate}: {rms}");
        }
    }

    /// Found by the resampler's energy property test (render::audio): one pass of 192 kHz → 16 kHz kept
    /// 28 % of the energy of a 3.2 kHz tone. The converter now goes down in passes, as resample_to does.
    #[test]
    fn converter_keeps_the_speech_band_from_high_rate_devices() {
        for (rate, tone_hz) in [(192_000u32, 3_600.0), (384_000, 5_000.0), (96_000, 5_000.0)] {
            let input = tone(rate, 2, 1.0, tone_hz);
            let mut conv = Converter::new(StreamFormat { rate, channels: 2 }, 16_000).unwrap();
            assert_eq!(conv.out_rate(), 16_000);
            let mut out = Vec::new();
            for chunk in input.chunks(4097) {
                conv.push(chunk, &mut out).unwrap();
            }
            conv.flush(&mut out).unwrap();
            assert!(
                (out.len() as i64 - 16_000).abs() <= 2,
                "{rate}: {}",
                out.len()
            );
            let mid = &out[4000..12000];
            let rms = rms(mid);
            let expected_rms = 0.5 / 2.0 / 2f32.sqrt();
            assert!(
                (rms - expected_rms).abs() < 0.01,
                "{rate} Hz, {tone_hz} Hz tone: {rms}"
            );
        }
    }

    #[test]
    fn converter_keeps_an_onset_in_place() {
        // 0.5 s silence then a tone: the first loud output sample must be near 0.5 s.
        let rate = 44_100;
        let mut input = vec![0.0f32; rate as usize / 2];
        input.extend(tone(rate, 1, 0.5, 300.0));
        let mut conv = Converter::new(StreamFormat { rate, channels: 1 }, 16_000).unwrap();
        let mut out = Vec::new();
        for chunk in input.chunks(512) {
            conv.push(chunk, &mut out).unwrap();
        }
        conv.flush(&mut out).unwrap();
        let first = out.iter().position(|v| v.abs() > 0.1).unwrap();
        assert!((first as i64 - 8000).abs() < 40, "{first}");
    }

    #[test]
    fn converter_rejects_unusable_formats_and_sanitises_samples() {
        assert!(Converter::new(
            StreamFormat {
                rate: 10,
                channels: 1
            },
            16_000
        )
        .is_err());
        assert!(Converter::new(
            StreamFormat {
                rate: 16_000,
                channels: 0
            },
            16_000
        )
        .is_err());
        let mut conv = Converter::new(
            StreamFormat {
                rate: 16_000,
                channels: 2,
            },
            16_000,
        )
        .unwrap();
        let mut out = Vec::new();
        conv.push(&[f32::NAN, 0.5, 2.0], &mut out).unwrap();
        conv.push(&[2.0], &mut out).unwrap();
        assert_eq!(out, vec![0.25, 1.0]);
    }
}
