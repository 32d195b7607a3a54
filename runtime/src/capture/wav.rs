//! WAV sources: a file, or every `*.wav` in a folder, played into a ring at real-time pace or as fast as
//! the consumer takes it.
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::ring::{ring, Consumer, Overruns, Producer};
use super::{
    block_frames, feed, pull_ring, ring_capacity, Fault, Pace, Pulled, RingPull, Source,
    SourceError, StreamFormat,
};

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
