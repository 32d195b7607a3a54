//! Capture: where a spoken question's sound comes from, behind one small trait ([`Source`]) — the
//! microphone ([`mic`], the `mic` feature), WAV files ([`wav`]) and raw PCM on stdin ([`stdin`]) — and the
//! path from any device format to the analysis rate: a lock-free ring ([`ring`]) and a converter
//! ([`convert`]).
//!
//! Every source hands over interleaved `f32` samples in the format it reports. The WAV and stdin sources
//! run a feeder thread that fills a ring exactly as the audio callback does, so the tests drive the same
//! ring → converter → endpointer path as a live microphone.
use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, Instant};

use ring::{Consumer, Producer};

use thiserror::Error;

pub mod convert;
#[cfg(feature = "mic")]
pub mod mic;
pub mod ring;
pub mod stdin;
pub mod wav;

pub use convert::Converter;
#[cfg(feature = "mic")]
pub use mic::{input_devices, InputDevice, MicSource};
pub use ring::Overruns;
pub use stdin::{PcmEncoding, PcmSource};
pub use wav::WavSource;

/// Largest channel count accepted from a device or a file.
pub const MAX_CHANNELS: u16 = 64;

/// What went wrong while converting a stream.
#[derive(Debug, Error)]
pub enum StreamError {
    #[error("audio stream of {rate} Hz with {channels} channels is not usable (rates 1000..=384000 Hz, 1..={MAX_CHANNELS} channels)")]
    Format { rate: u32, channels: u16 },
    #[error("audio resampling from {from} Hz to {to} Hz failed: {reason}")]
    Resample { from: u32, to: u32, reason: String },
}

/// The rate and channel count of interleaved samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamFormat {
    pub rate: u32,
    pub channels: u16,
}

impl StreamFormat {
    pub fn validate(self) -> Result<Self, StreamError> {
        if !(crate::render::audio::MIN_RATE..=crate::render::audio::MAX_RATE).contains(&self.rate)
            || self.channels == 0
            || self.channels > MAX_CHANNELS
        {
            return Err(StreamError::Format {
                rate: self.rate,
                channels: self.channels,
            });
        }
        Ok(self)
    }
}

impl std::fmt::Display for StreamFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} Hz, {} channel(s)", self.rate, self.channels)
    }
}

/// What one [`Source::pull`] produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pulled {
    /// Interleaved samples in this format were appended.
    Audio(StreamFormat),
    /// Nothing arrived within the wait.
    Idle,
    /// One stream (a file) ended; another may follow, in another format.
    EndOfStream,
    /// No more audio will ever come.
    Finished,
}

/// How bad a source fault is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The device went away or failed: retry later with [`Source::reopen`].
    Retry,
    /// This stream is unusable (a broken file); the source has moved on to the next one.
    Skip,
    /// Nothing can be done (a wrong path, a bad format string).
    Fatal,
}

#[derive(Debug, Error)]
#[error("{message}")]
pub struct SourceError {
    pub fault: Fault,
    pub message: String,
}

impl SourceError {
    pub fn new(fault: Fault, message: impl Into<String>) -> Self {
        Self {
            fault,
            message: message.into(),
        }
    }
}

/// A sound source.
pub trait Source {
    /// In words, for status lines: "microphone (default)", "3 WAV files in models/samples".
    fn describe(&self) -> String;
    /// Appends the samples available now (waiting at most `wait` for some) to `out`.
    fn pull(&mut self, out: &mut Vec<f32>, wait: Duration) -> Result<Pulled, SourceError>;
    /// Opens the device again after a [`Fault::Retry`].
    fn reopen(&mut self) -> Result<(), SourceError> {
        Ok(())
    }
    /// The name of the stream being played (a file name), for answers.
    fn stream_name(&self) -> Option<String> {
        None
    }
    /// Samples lost because the reader fell behind.
    fn overruns(&self) -> Overruns {
        Overruns::default()
    }
    /// Drops whatever has been captured so far (e.g. the robot's own voice while it spoke).
    fn discard(&mut self) {}
}

/// How fast files are played.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pace {
    /// As a microphone would deliver them.
    #[default]
    Realtime,
    /// As fast as the pipeline takes them (nothing is dropped).
    Fast,
}

impl FromStr for Pace {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "realtime" | "real-time" => Ok(Pace::Realtime),
            "fast" => Ok(Pace::Fast),
            other => Err(format!("pace {other:?}: use `realtime` or `fast`")),
        }
    }
}

/// Samples per feeder block: 10 ms, like a small audio callback period.
fn block_frames(rate: u32) -> usize {
    (rate as usize / 100).max(1)
}

/// Pushes `block` into the ring: paced like a callback (overruns counted), or with back-pressure.
fn feed(producer: &mut Producer, block: &[f32], pace: Pace) -> bool {
    match pace {
        Pace::Realtime => {
            producer.push(block);
            !producer.consumer_gone()
        }
        Pace::Fast => {
            let mut rest = block;
            while !rest.is_empty() {
                if producer.consumer_gone() {
                    return false;
                }
                let n = producer.try_push(rest);
                rest = &rest[n..];
                if n == 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            true
        }
    }
}

/// Polls a ring until samples come, the producer is gone, or `wait` passes.
fn pull_ring(consumer: &mut Consumer, out: &mut Vec<f32>, wait: Duration) -> RingPull {
    let deadline = Instant::now() + wait;
    loop {
        if consumer.pop_into(out) > 0 {
            return RingPull::Got;
        }
        if consumer.finished() {
            return RingPull::Closed;
        }
        let now = Instant::now();
        if now >= deadline {
            return RingPull::Nothing;
        }
        std::thread::sleep((deadline - now).min(Duration::from_millis(5)));
    }
}

enum RingPull {
    Got,
    Nothing,
    Closed,
}

/// Ring capacity for `seconds` of audio in `format`.
fn ring_capacity(format: StreamFormat, seconds: f32) -> usize {
    ((format.rate as f32 * format.channels as f32 * seconds.clamp(0.1, 60.0)) as usize).max(1024)
}

/// A source with nothing in it: typed questions only.
pub struct NoAudio;

impl Source for NoAudio {
    fn describe(&self) -> String {
        "no audio".into()
    }
    fn pull(&mut self, _out: &mut Vec<f32>, _wait: Duration) -> Result<Pulled, SourceError> {
        Ok(Pulled::Finished)
    }
}

/// `--source` as written on the command line.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceSpec {
    /// `mic` or `mic:NAME` (a device name, or part of one).
    Mic(Option<String>),
    /// `wav:PATH` — a file or a folder.
    Wav(PathBuf),
    /// `stdin[:RATE[:CHANNELS[:ENCODING]]]`, default 16000:1:s16le.
    Stdin {
        format: StreamFormat,
        encoding: PcmEncoding,
    },
    /// `none`: typed questions only.
    None,
}

impl FromStr for SourceSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (kind, rest) = match s.split_once(':') {
            Some((k, r)) => (k, Some(r)),
            None => (s, None),
        };
        match kind {
            "mic" => Ok(SourceSpec::Mic(rest.filter(|r| !r.is_empty()).map(str::to_string))),
            "wav" => match rest {
                Some(p) if !p.is_empty() => Ok(SourceSpec::Wav(PathBuf::from(p))),
                _ => Err("wav needs a path: `wav:question.wav` or `wav:models/samples`".into()),
            },
            "stdin" => {
                let mut parts = rest.unwrap_or("").split(':').filter(|p| !p.is_empty());
                let rate = match parts.next() {
                    Some(r) => r.parse::<u32>().map_err(|_| format!("stdin rate {r:?} is not a number of Hz"))?,
                    None => 16_000,
                };
                let channels = match parts.next() {
                    Some(c) => c.parse::<u16>().map_err(|_| format!("stdin channels {c:?} is not a number"))?,
                    None => 1,
                };
                let encoding = match parts.next() {
                    Some(e) => e.parse()?,
                    None => PcmEncoding::S16Le,
                };
                if let Some(extra) = parts.next() {
                    return Err(format!("stdin: unexpected {extra:?}; use stdin:RATE:CHANNELS:ENCODING"));
                }
                let format = StreamFormat { rate, channels }
                    .validate()
                    .map_err(|e| e.to_string())?;
                Ok(SourceSpec::Stdin { format, encoding })
            }
            "none" if rest.is_none() => Ok(SourceSpec::None),
            _ => Err(format!(
                "source {s:?}: use mic, mic:NAME, wav:FILE_OR_FOLDER, stdin[:RATE[:CHANNELS[:ENCODING]]] or none"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_specs_parse_and_bad_ones_say_what_to_write() {
        assert_eq!("mic".parse::<SourceSpec>(), Ok(SourceSpec::Mic(None)));
        assert_eq!(
            "mic:USB Audio".parse::<SourceSpec>(),
            Ok(SourceSpec::Mic(Some("USB Audio".into())))
        );
        assert_eq!(
            "wav:models/samples".parse::<SourceSpec>(),
            Ok(SourceSpec::Wav("models/samples".into()))
        );
        assert_eq!(
            "stdin:48000:2:f32le".parse::<SourceSpec>(),
            Ok(SourceSpec::Stdin {
                format: StreamFormat {
                    rate: 48_000,
                    channels: 2
                },
                encoding: PcmEncoding::F32Le
            })
        );
        assert_eq!(
            "stdin".parse::<SourceSpec>(),
            Ok(SourceSpec::Stdin {
                format: StreamFormat {
                    rate: 16_000,
                    channels: 1
                },
                encoding: PcmEncoding::S16Le
            })
        );
        for bad in [
            "wav:",
            "speaker",
            "stdin:fast",
            "stdin:16000:0",
            "stdin:16000:1:mp3",
            "none:x",
        ] {
            let err = bad.parse::<SourceSpec>().unwrap_err();
            assert!(!err.is_empty(), "{bad}");
        }
    }
}
