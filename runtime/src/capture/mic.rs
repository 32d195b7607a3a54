//! Live microphone capture through cpal (the `mic` cargo feature; needs ALSA headers on Linux).
//!
//! The device is chosen by name (or part of it, or its id) or is the default input. Its configuration is
//! the one the device reports as its default (`default_input_config`): advertised ranges are not trusted
//! (a Raspberry Pi's USB microphone may claim rates it cannot deliver). A preferred rate from the board
//! profile is tried only when a reported range contains it, and the default is used when that fails.
//! Any sample format and channel count is accepted.
//!
//! The audio callback converts samples to `f32` in a fixed stack buffer and pushes them into a
//! [`crate::capture::ring`]: no allocation, lock, log or I/O. Mixing to mono and resampling happen outside,
//! in [`crate::capture::Converter`]. When the device errors or disappears, [`MicSource::pull`] reports a
//! [`Fault::Retry`]; [`MicSource::reopen`] builds a new stream (and a new ring).
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{FromSample, SampleFormat, SizedSample};

use super::ring::{ring, Consumer, Producer};
use super::{ring_capacity, Fault, Overruns, Pulled, Source, SourceError, StreamFormat};

/// An input device as the host reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct InputDevice {
    pub name: String,
    pub id: String,
    pub is_default: bool,
    /// The device's default input configuration, in words, or why it has none.
    pub default_config: String,
}

/// Every input device of the default host. An empty list (no sound card, no audio system) is not an error.
pub fn input_devices() -> Result<Vec<InputDevice>, String> {
    let host = cpal::default_host();
    let default_id = host.default_input_device().and_then(|d| d.id().ok());
    let devices = host
        .input_devices()
        .map_err(|e| format!("audio host {}: {e}", host.id().name()))?;
    Ok(devices
        .map(|d| {
            let id = d.id().ok();
            InputDevice {
                name: device_name(&d),
                is_default: id.is_some() && id == default_id,
                id: id.map(|i| i.to_string()).unwrap_or_default(),
                default_config: match d.default_input_config() {
                    Ok(c) => format!(
                        "{} Hz, {} ch, {}",
                        c.sample_rate(),
                        c.channels(),
                        c.sample_format()
                    ),
                    Err(e) => format!("no default input configuration ({e})"),
                },
            }
        })
        .collect())
}

/// A device's name; never fails (cpal's `Display` can, and `to_string` would then panic).
fn device_name(device: &cpal::Device) -> String {
    device
        .description()
        .map(|d| d.name().to_string())
        .or_else(|_| device.id().map(|i| i.to_string()))
        .unwrap_or_else(|_| "unnamed device".into())
}

/// The live microphone.
pub struct MicSource {
    wanted: Option<String>,
    rate_hint: Option<u32>,
    ring_seconds: f32,
    live: Option<Live>,
    /// Overruns of streams already closed (a reconnect starts a new ring).
    past_overruns: Overruns,
}

struct Live {
    _stream: cpal::Stream,
    consumer: Consumer,
    format: StreamFormat,
    device: String,
    failed: Arc<AtomicBool>,
    error: Arc<Mutex<Option<String>>>,
}

impl MicSource {
    /// Opens the device now: an error says why it cannot be used (yet).
    pub fn open(
        wanted: Option<String>,
        rate_hint: Option<u32>,
        ring_seconds: f32,
    ) -> Result<Self, SourceError> {
        let mut mic = Self {
            wanted,
            rate_hint,
            ring_seconds,
            live: None,
            past_overruns: Overruns::default(),
        };
        mic.reopen()?;
        Ok(mic)
    }

    /// The device and format in use, if open.
    pub fn current(&self) -> Option<(String, StreamFormat)> {
        self.live.as_ref().map(|l| (l.device.clone(), l.format))
    }

    fn find_device(&self) -> Result<cpal::Device, SourceError> {
        let host = cpal::default_host();
        let retry = |m: String| SourceError::new(Fault::Retry, m);
        match &self.wanted {
            None => host.default_input_device().ok_or_else(|| {
                retry(format!(
                    "no default input device on audio host {}",
                    host.id().name()
                ))
            }),
            Some(want) => {
                let devices: Vec<cpal::Device> = host
                    .input_devices()
                    .map_err(|e| retry(format!("audio host {}: {e}", host.id().name())))?
                    .collect();
                let lower = want.to_lowercase();
                let exact = devices.iter().position(|d| {
                    device_name(d) == *want || d.id().is_ok_and(|i| i.to_string() == *want)
                });
                let partial = || {
                    devices
                        .iter()
                        .position(|d| device_name(d).to_lowercase().contains(&lower))
                };
                match exact.or_else(partial) {
                    Some(i) => Ok(devices
                        .into_iter()
                        .nth(i)
                        .ok_or_else(|| retry(want.clone()))?),
                    None => {
                        let names: Vec<String> = devices.iter().map(device_name).collect();
                        Err(retry(format!(
                            "no input device named {want:?} (found: {})",
                            if names.is_empty() {
                                "none".into()
                            } else {
                                names.join(", ")
                            }
                        )))
                    }
                }
            }
        }
    }
}

impl Source for MicSource {
    fn describe(&self) -> String {
        match &self.live {
            Some(l) => format!("microphone {:?} ({})", l.device, l.format),
            None => format!(
                "microphone {}",
                self.wanted
                    .as_deref()
                    .map_or("(default)".to_string(), |w| format!("{w:?}"))
            ),
        }
    }

    fn pull(&mut self, out: &mut Vec<f32>, wait: Duration) -> Result<Pulled, SourceError> {
        let Some(live) = self.live.as_mut() else {
            return Err(SourceError::new(Fault::Retry, "the microphone is not open"));
        };
        if live.failed.load(Ordering::Acquire) {
            let message = live
                .error
                .lock()
                .ok()
                .and_then(|mut e| e.take())
                .unwrap_or_else(|| "stream error".into());
            let device = live.device.clone();
            self.close();
            return Err(SourceError::new(
                Fault::Retry,
                format!("microphone {device:?}: {message}"),
            ));
        }
        let step = Duration::from_millis(5);
        let mut waited = Duration::ZERO;
        loop {
            if live.consumer.pop_into(out) > 0 {
                return Ok(Pulled::Audio(live.format));
            }
            if waited >= wait {
                return Ok(Pulled::Idle);
            }
            std::thread::sleep(step);
            waited += step;
        }
    }

    fn reopen(&mut self) -> Result<(), SourceError> {
        self.close();
        let device = self.find_device()?;
        let name = device_name(&device);
        let retry = |m: String| SourceError::new(Fault::Retry, format!("microphone {name:?}: {m}"));
        let default = device
            .default_input_config()
            .map_err(|e| retry(format!("no usable input configuration ({e})")))?;
        let mut configs = Vec::new();
        if let Some(hint) = self.rate_hint.filter(|&r| r != default.sample_rate()) {
            let supported = device.supported_input_configs().map(|ranges| {
                ranges.into_iter().any(|r| {
                    r.channels() == default.channels()
                        && r.sample_format() == default.sample_format()
                        && r.min_sample_rate() <= hint
                        && hint <= r.max_sample_rate()
                })
            });
            if matches!(supported, Ok(true)) {
                let mut c = default.config();
                c.sample_rate = hint;
                configs.push(c);
            }
        }
        configs.push(default.config());
        let mut last_err = String::new();
        for config in configs {
            let format = StreamFormat {
                rate: config.sample_rate,
                channels: config.channels,
            };
            let format = match format.validate() {
                Ok(f) => f,
                Err(e) => {
                    last_err = e.to_string();
                    continue;
                }
            };
            let (producer, consumer) = ring(ring_capacity(format, self.ring_seconds));
            let failed = Arc::new(AtomicBool::new(false));
            let error = Arc::new(Mutex::new(None));
            let built = build_stream(
                &device,
                config,
                default.sample_format(),
                producer,
                &failed,
                &error,
            );
            match built.and_then(|s| s.play().map(|()| s)) {
                Ok(stream) => {
                    log::info!("microphone {name:?}: {format}, {}", default.sample_format());
                    self.live = Some(Live {
                        _stream: stream,
                        consumer,
                        format,
                        device: name.clone(),
                        failed,
                        error,
                    });
                    return Ok(());
                }
                Err(e) => last_err = e.to_string(),
            }
        }
        Err(retry(last_err))
    }

    fn stream_name(&self) -> Option<String> {
        self.live.as_ref().map(|l| format!("mic:{}", l.device))
    }

    fn overruns(&self) -> Overruns {
        let now = self
            .live
            .as_ref()
            .map(|l| l.consumer.overruns())
            .unwrap_or_default();
        Overruns {
            events: self.past_overruns.events + now.events,
            samples: self.past_overruns.samples + now.samples,
        }
    }

    fn discard(&mut self) {
        if let Some(l) = self.live.as_mut() {
            let mut sink = Vec::new();
            l.consumer.pop_into(&mut sink);
        }
    }
}

impl MicSource {
    fn close(&mut self) {
        if let Some(l) = self.live.take() {
            let o = l.consumer.overruns();
            self.past_overruns.events += o.events;
            self.past_overruns.samples += o.samples;
        }
    }
}

fn build_stream(
    device: &cpal::Device,
    config: cpal::StreamConfig,
    format: SampleFormat,
    producer: Producer,
    failed: &Arc<AtomicBool>,
    error: &Arc<Mutex<Option<String>>>,
) -> Result<cpal::Stream, cpal::Error> {
    let (failed, error) = (Arc::clone(failed), Arc::clone(error));
    let on_error = move |e: cpal::Error| {
        // Not the data callback: a lock here is fine. Over- and underruns are not fatal.
        if matches!(
            e.kind(),
            cpal::ErrorKind::Xrun | cpal::ErrorKind::RealtimeDenied
        ) {
            return;
        }
        if let Ok(mut slot) = error.lock() {
            *slot = Some(e.to_string());
        }
        failed.store(true, Ordering::Release);
    };
    match format {
        SampleFormat::I8 => build::<i8>(device, config, producer, on_error),
        SampleFormat::I16 => build::<i16>(device, config, producer, on_error),
        SampleFormat::I24 => build::<cpal::I24>(device, config, producer, on_error),
        SampleFormat::I32 => build::<i32>(device, config, producer, on_error),
        SampleFormat::I64 => build::<i64>(device, config, producer, on_error),
        SampleFormat::U8 => build::<u8>(device, config, producer, on_error),
        SampleFormat::U16 => build::<u16>(device, config, producer, on_error),
        SampleFormat::U24 => build::<cpal::U24>(device, config, producer, on_error),
        SampleFormat::U32 => build::<u32>(device, config, producer, on_error),
        SampleFormat::U64 => build::<u64>(device, config, producer, on_error),
        SampleFormat::F32 => build::<f32>(device, config, producer, on_error),
        SampleFormat::F64 => build::<f64>(device, config, producer, on_error),
        other => Err(cpal::Error::with_message(
            cpal::ErrorKind::UnsupportedConfig,
            format!("sample format {other} is not PCM"),
        )),
    }
}

/// Samples converted per step inside the callback, on the stack.
const SCRATCH: usize = 256;

fn build<T>(
    device: &cpal::Device,
    config: cpal::StreamConfig,
    mut producer: Producer,
    on_error: impl FnMut(cpal::Error) + Send + 'static,
) -> Result<cpal::Stream, cpal::Error>
where
    T: SizedSample,
    f32: FromSample<T>,
{
    device.build_input_stream::<T, _, _>(
        config,
        move |data: &[T], _: &cpal::InputCallbackInfo| {
            // The real-time path: only arithmetic and the ring's atomics.
            let mut scratch = [0f32; SCRATCH];
            for chunk in data.chunks(SCRATCH) {
                for (dst, &s) in scratch.iter_mut().zip(chunk) {
                    *dst = s.to_sample::<f32>();
                }
                producer.push(&scratch[..chunk.len()]);
            }
        },
        on_error,
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_enumeration_never_panics() {
        // On a machine without a sound card this is an empty list or an error, never a crash.
        match input_devices() {
            Ok(devices) => {
                for d in devices {
                    assert!(!d.name.is_empty());
                }
            }
            Err(e) => assert!(!e.is_empty()),
        }
    }

    #[test]
    fn a_missing_named_device_is_a_retry_naming_it() {
        match MicSource::open(Some("no-such-device-xyz".into()), None, 1.0) {
            Ok(_) => panic!("a device named no-such-device-xyz should not exist"),
            Err(e) => {
                assert_eq!(e.fault, Fault::Retry);
                assert!(e.message.contains("no-such-device-xyz"), "{}", e.message);
            }
        }
    }
}
