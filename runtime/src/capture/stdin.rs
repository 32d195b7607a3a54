//! Raw PCM on stdin (`--source stdin:RATE:CHANNELS:ENCODING`), decoded by a feeder thread into a ring.
use std::io::Read;
use std::str::FromStr;
use std::thread::JoinHandle;
use std::time::Duration;

use super::ring::{ring, Consumer, Producer};
use super::{
    block_frames, feed, pull_ring, ring_capacity, Fault, Pace, Pulled, RingPull, Source,
    SourceError, StreamFormat,
};

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

#[cfg(test)]
mod tests {
    use super::*;

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
