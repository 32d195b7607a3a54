//! Where the demo's sound comes from, behind one small trait: the microphone (see `capture`), WAV files
//! played at real-time pace or as fast as possible, and raw PCM on stdin.
//!
//! Every source hands over interleaved `f32` samples in the format it reports. The WAV and stdin sources
//! run a feeder thread that fills a [`crate::stream`] ring exactly as the audio callback does, so the
//! tests drive the same ring → converter → endpointer path as a live microphone.
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::stream::{ring, Consumer, Overruns, Producer, StreamFormat};

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
pub fn ring_capacity(format: StreamFormat, seconds: f32) -> usize {
    ((format.rate as f32 * format.channels as f32 * seconds.clamp(0.1, 60.0)) as usize).max(1024)
}

/// A WAV file, or every `*.wav` in a folder (sorted by name), one after the other.
pub struct WavSource {
    label: String,
    files: Vec<PathBuf>,
    next: usize,
    pace: Pace,
    playing: Option<Playing>,
}

struct Playing {
    path: PathBuf,
    format: StreamFormat,
    consumer: Consumer,
    feeder: Option<JoinHandle<Result<(), String>>>,
}

impl WavSource {
    /// `path` is a WAV file or a folder of them; a folder without any is an error.
    pub fn new(path: &Path, pace: Pace) -> Result<Self, SourceError> {
        let fatal = |m: String| SourceError::new(Fault::Fatal, m);
        let meta =
            std::fs::metadata(path).map_err(|e| fatal(format!("{}: {e}", path.display())))?;
        let files = if meta.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|e| fatal(format!("{}: {e}", path.display())))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.is_file() && p.extension().is_some_and(|x| x.eq_ignore_ascii_case("wav"))
                })
                .collect();
            files.sort();
            if files.is_empty() {
                return Err(fatal(format!(
                    "{}: no .wav files in this folder",
                    path.display()
                )));
            }
            files
        } else {
            vec![path.to_path_buf()]
        };
        let label = if meta.is_dir() {
            format!("{} WAV file(s) in {}", files.len(), path.display())
        } else {
            format!("WAV file {}", path.display())
        };
        Ok(Self {
            label,
            files,
            next: 0,
            pace,
            playing: None,
        })
    }

    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    fn start_next(&mut self) -> Result<bool, SourceError> {
        let Some(path) = self.files.get(self.next).cloned() else {
            return Ok(false);
        };
        self.next += 1;
        let skip =
            |m: String| SourceError::new(Fault::Skip, format!("{}: {m}; skipped", path.display()));
        let file = File::open(&path).map_err(|e| skip(e.to_string()))?;
        let reader =
            hound::WavReader::new(BufReader::new(file)).map_err(|e| skip(e.to_string()))?;
        let spec = reader.spec();
        let format = StreamFormat {
            rate: spec.sample_rate,
            channels: spec.channels,
        }
        .validate()
        .map_err(|e| skip(e.to_string()))?;
        if spec.sample_format == hound::SampleFormat::Float && spec.bits_per_sample != 32 {
            return Err(skip(format!("{}-bit float samples", spec.bits_per_sample)));
        }
        if spec.sample_format == hound::SampleFormat::Int
            && !(1..=32).contains(&spec.bits_per_sample)
        {
            return Err(skip(format!(
                "{}-bit integer samples",
                spec.bits_per_sample
            )));
        }
        let (mut producer, consumer) = ring(ring_capacity(format, 2.0));
        let pace = self.pace;
        let feeder = std::thread::Builder::new()
            .name("wav-feeder".into())
            .spawn(move || play_wav(reader, format, &mut producer, pace))
            .map_err(|e| skip(e.to_string()))?;
        self.playing = Some(Playing {
            path,
            format,
            consumer,
            feeder: Some(feeder),
        });
        Ok(true)
    }
}

fn play_wav<R: Read>(
    mut reader: hound::WavReader<R>,
    format: StreamFormat,
    producer: &mut Producer,
    pace: Pace,
) -> Result<(), String> {
    let spec = reader.spec();
    let block_len = block_frames(format.rate) * format.channels as usize;
    let mut block = Vec::with_capacity(block_len);
    let started = Instant::now();
    let mut frames_sent = 0u64;
    let mut send = |block: &mut Vec<f32>| -> bool {
        if pace == Pace::Realtime {
            // Deliver a block when a device would have finished recording it.
            let due = Duration::from_secs_f64(
                (frames_sent + (block.len() / format.channels as usize) as u64) as f64
                    / format.rate as f64,
            );
            let elapsed = started.elapsed();
            if due > elapsed {
                std::thread::sleep(due - elapsed);
            }
        }
        frames_sent += (block.len() / format.channels as usize) as u64;
        let alive = feed(producer, block, pace);
        block.clear();
        alive
    };
    match spec.sample_format {
        hound::SampleFormat::Float => {
            for s in reader.samples::<f32>() {
                block.push(s.map_err(|e| e.to_string())?);
                if block.len() == block_len && !send(&mut block) {
                    return Ok(());
                }
            }
        }
        hound::SampleFormat::Int => {
            let scale = 1.0 / (1u64 << (spec.bits_per_sample - 1)) as f32;
            for s in reader.samples::<i32>() {
                block.push(s.map_err(|e| e.to_string())? as f32 * scale);
                if block.len() == block_len && !send(&mut block) {
                    return Ok(());
                }
            }
        }
    }
    if !block.is_empty() {
        send(&mut block);
    }
    Ok(())
}

impl Source for WavSource {
    fn describe(&self) -> String {
        let pace = match self.pace {
            Pace::Realtime => "real-time pace",
            Pace::Fast => "as fast as possible",
        };
        format!("{} ({pace})", self.label)
    }

    fn pull(&mut self, out: &mut Vec<f32>, wait: Duration) -> Result<Pulled, SourceError> {
        if self.playing.is_none() && !self.start_next()? {
            return Ok(Pulled::Finished);
        }
        let Some(playing) = self.playing.as_mut() else {
            return Ok(Pulled::Finished);
        };
        match pull_ring(&mut playing.consumer, out, wait) {
            RingPull::Got => Ok(Pulled::Audio(playing.format)),
            RingPull::Nothing => Ok(Pulled::Idle),
            RingPull::Closed => {
                let outcome = playing.feeder.take().map(|h| h.join());
                let path = playing.path.clone();
                self.playing = None;
                match outcome {
                    Some(Ok(Err(e))) => Err(SourceError::new(
                        Fault::Skip,
                        format!("{}: {e}; the rest of it is skipped", path.display()),
                    )),
                    Some(Err(_)) => Err(SourceError::new(
                        Fault::Skip,
                        format!("{}: the reader stopped unexpectedly", path.display()),
                    )),
                    _ => Ok(Pulled::EndOfStream),
                }
            }
        }
    }

    fn stream_name(&self) -> Option<String> {
        self.playing
            .as_ref()
            .map(|p| p.path.display().to_string())
            .or_else(|| {
                self.files
                    .get(self.next.saturating_sub(1))
                    .map(|p| p.display().to_string())
            })
    }

    fn overruns(&self) -> Overruns {
        self.playing
            .as_ref()
            .map(|p| p.consumer.overruns())
            .unwrap_or_default()
    }

    fn discard(&mut self) {
        if let Some(p) = self.playing.as_mut() {
            let mut sink = Vec::new();
            p.consumer.pop_into(&mut sink);
        }
    }
}

/// Sample encodings accepted on stdin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PcmEncoding {
    S16Le,
    S32Le,
    F32Le,
    U8,
}

impl PcmEncoding {
    pub fn bytes(self) -> usize {
        match self {
            PcmEncoding::U8 => 1,
            PcmEncoding::S16Le => 2,
            PcmEncoding::S32Le | PcmEncoding::F32Le => 4,
        }
    }

    fn decode(self, b: &[u8]) -> f32 {
        match self {
            PcmEncoding::U8 => (b[0] as f32 - 128.0) / 128.0,
            PcmEncoding::S16Le => i16::from_le_bytes([b[0], b[1]]) as f32 / 32_768.0,
            PcmEncoding::S32Le => {
                i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32 / 2_147_483_648.0
            }
            PcmEncoding::F32Le => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        }
    }
}

impl FromStr for PcmEncoding {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "s16le" | "s16" => Ok(PcmEncoding::S16Le),
            "s32le" | "s32" => Ok(PcmEncoding::S32Le),
            "f32le" | "f32" => Ok(PcmEncoding::F32Le),
            "u8" => Ok(PcmEncoding::U8),
            other => Err(format!(
                "sample encoding {other:?}: use s16le, s32le, f32le or u8"
            )),
        }
    }
}

/// Raw interleaved PCM from any reader (stdin in the demo: `arecord -t raw | visualbyte demo --source stdin`).
pub struct PcmSource {
    format: StreamFormat,
    encoding: PcmEncoding,
    consumer: Consumer,
    feeder: Option<JoinHandle<Result<(), String>>>,
    done: bool,
}

impl PcmSource {
    pub fn new<R: Read + Send + 'static>(
        reader: R,
        format: StreamFormat,
        encoding: PcmEncoding,
    ) -> Result<Self, SourceError> {
        let format = format
            .validate()
            .map_err(|e| SourceError::new(Fault::Fatal, e.to_string()))?;
        let (mut producer, consumer) = ring(ring_capacity(format, 2.0));
        let feeder = std::thread::Builder::new()
            .name("pcm-feeder".into())
            .spawn(move || read_pcm(reader, format, encoding, &mut producer))
            .map_err(|e| SourceError::new(Fault::Fatal, e.to_string()))?;
        Ok(Self {
            format,
            encoding,
            consumer,
            feeder: Some(feeder),
            done: false,
        })
    }

    pub fn stdin(format: StreamFormat, encoding: PcmEncoding) -> Result<Self, SourceError> {
        Self::new(std::io::stdin(), format, encoding)
    }
}

fn read_pcm<R: Read>(
    mut reader: R,
    format: StreamFormat,
    encoding: PcmEncoding,
    producer: &mut Producer,
) -> Result<(), String> {
    let width = encoding.bytes();
    let mut bytes = vec![0u8; block_frames(format.rate) * format.channels as usize * width];
    let mut carry = 0usize; // bytes of an incomplete sample kept from the last read
    let mut block = Vec::with_capacity(bytes.len() / width);
    loop {
        let n = match reader.read(&mut bytes[carry..]) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.to_string()),
        };
        let have = carry + n;
        let whole = have / width * width;
        block.clear();
        block.extend(
            bytes[..whole]
                .chunks_exact(width)
                .map(|b| encoding.decode(b)),
        );
        bytes.copy_within(whole..have, 0);
        carry = have - whole;
        if !feed(producer, &block, Pace::Fast) {
            return Ok(());
        }
    }
}

impl Source for PcmSource {
    fn describe(&self) -> String {
        let enc = match self.encoding {
            PcmEncoding::S16Le => "s16le",
            PcmEncoding::S32Le => "s32le",
            PcmEncoding::F32Le => "f32le",
            PcmEncoding::U8 => "u8",
        };
        format!("raw {enc} PCM on stdin ({})", self.format)
    }

    fn pull(&mut self, out: &mut Vec<f32>, wait: Duration) -> Result<Pulled, SourceError> {
        if self.done {
            return Ok(Pulled::Finished);
        }
        match pull_ring(&mut self.consumer, out, wait) {
            RingPull::Got => Ok(Pulled::Audio(self.format)),
            RingPull::Nothing => Ok(Pulled::Idle),
            RingPull::Closed => {
                self.done = true;
                match self.feeder.take().map(|h| h.join()) {
                    Some(Ok(Err(e))) => Err(SourceError::new(Fault::Fatal, format!("stdin: {e}"))),
                    _ => Ok(Pulled::EndOfStream),
                }
            }
        }
    }

    fn stream_name(&self) -> Option<String> {
        Some("stdin".into())
    }
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

    #[test]
    fn pcm_source_decodes_samples_split_across_reads() {
        struct Dribble(Vec<u8>, usize);
        impl Read for Dribble {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                // Three bytes at a time: samples arrive split.
                let n = 3.min(buf.len()).min(self.0.len() - self.1);
                buf[..n].copy_from_slice(&self.0[self.1..self.1 + n]);
                self.1 += n;
                Ok(n)
            }
        }
        let values: Vec<i16> = vec![0, 16384, -16384, 32767, -32768];
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let format = StreamFormat {
            rate: 16_000,
            channels: 1,
        };
        let mut src = PcmSource::new(Dribble(bytes, 0), format, PcmEncoding::S16Le).unwrap();
        let mut out = Vec::new();
        loop {
            match src.pull(&mut out, Duration::from_millis(50)).unwrap() {
                Pulled::Audio(f) => assert_eq!(f, format),
                Pulled::Idle => {}
                Pulled::EndOfStream => {}
                Pulled::Finished => break,
            }
        }
        assert_eq!(out, vec![0.0, 0.5, -0.5, 32767.0 / 32768.0, -1.0]);
    }
}
