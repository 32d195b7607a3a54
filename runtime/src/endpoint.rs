//! The utterance detector: finds where a spoken question starts and ends in a continuous stream.
//!
//! Every frame (10 ms by default) gets a level (dBFS) and a spectral flatness. A background noise floor
//! is tracked: it drops at once to a quieter frame and rises slowly (`floor_rise_db_per_s`), so steady
//! noise (a fan, a motor) is absorbed while speech is not. An utterance starts when frames stay
//! `start_margin_db` above the floor (and above `min_level_db`) for `onset_ms`, and are not noise-like
//! (flatness at most `max_flatness`: hiss and wind are flat, voices are not). It goes on while frames stay
//! `stop_margin_db` above the floor, and ends after `hangover_ms` without them. It begins `pre_roll_ms`
//! before the onset, so the first consonant is kept. Shorter than `min_utterance_ms` of speech is dropped
//! (a click, a cough); longer than `max_utterance_ms` is cut, and a sound that fills the whole maximum is
//! taken to be background: the floor is raised to it.
use std::collections::VecDeque;
use std::sync::Arc;

use realfft::{RealFftPlanner, RealToComplex};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Endpointing thresholds; every field is optional in a board profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EndpointConfig {
    /// Analysis frame length, in milliseconds.
    pub frame_ms: u32,
    /// A frame this far above the noise floor may start an utterance (dB).
    pub start_margin_db: f32,
    /// A frame this far above the noise floor keeps an utterance going (dB).
    pub stop_margin_db: f32,
    /// Nothing quieter than this is speech, whatever the floor (dBFS).
    pub min_level_db: f32,
    /// The noise floor assumed before anything has been heard (dBFS).
    pub initial_floor_db: f32,
    /// How fast the floor may rise towards louder background frames (dB per second); during speech it
    /// rises ten times slower.
    pub floor_rise_db_per_s: f32,
    /// Frames flatter than this (0 = a pure tone, about 0.56 = white noise) cannot start an utterance;
    /// 1 turns the check off.
    pub max_flatness: f32,
    /// Loud frames needed in a row to start an utterance (ms).
    pub onset_ms: u32,
    /// Audio kept before the onset (ms).
    pub pre_roll_ms: u32,
    /// Quiet time after which an utterance ends (ms).
    pub hangover_ms: u32,
    /// Shortest utterance kept, from onset to the last loud frame (ms).
    pub min_utterance_ms: u32,
    /// Longest utterance: a longer one is cut here (ms).
    pub max_utterance_ms: u32,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        Self {
            frame_ms: 10,
            start_margin_db: 12.0,
            stop_margin_db: 6.0,
            min_level_db: -50.0,
            initial_floor_db: -60.0,
            floor_rise_db_per_s: 15.0,
            max_flatness: 0.4,
            onset_ms: 40,
            pre_roll_ms: 250,
            hangover_ms: 400,
            min_utterance_ms: 200,
            max_utterance_ms: 8_000,
        }
    }
}

/// A setting that cannot work, named.
#[derive(Debug, Error, PartialEq)]
#[error("endpointing: {0}")]
pub struct ConfigError(pub String);

impl EndpointConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |what: &str| Err(ConfigError(what.to_string()));
        let finite = [
            self.start_margin_db,
            self.stop_margin_db,
            self.min_level_db,
            self.initial_floor_db,
            self.floor_rise_db_per_s,
            self.max_flatness,
        ]
        .iter()
        .all(|v| v.is_finite());
        if !finite {
            return bad("every threshold must be a finite number");
        }
        if !(5..=50).contains(&self.frame_ms) {
            return bad("frame_ms must be within 5..=50");
        }
        if self.stop_margin_db < 0.0 || self.start_margin_db < self.stop_margin_db {
            return bad("need 0 <= stop_margin_db <= start_margin_db");
        }
        if !(-120.0..=0.0).contains(&self.min_level_db)
            || !(-120.0..=0.0).contains(&self.initial_floor_db)
        {
            return bad("min_level_db and initial_floor_db are dBFS: within -120..=0");
        }
        if !(0.0..=100.0).contains(&self.floor_rise_db_per_s) {
            return bad("floor_rise_db_per_s must be within 0..=100");
        }
        if !(0.0..=1.0).contains(&self.max_flatness) || self.max_flatness == 0.0 {
            return bad("max_flatness must be within (0, 1]");
        }
        if self.onset_ms > 1_000 || self.pre_roll_ms > 5_000 || self.hangover_ms > 10_000 {
            return bad("onset_ms <= 1000, pre_roll_ms <= 5000 and hangover_ms <= 10000");
        }
        if self.max_utterance_ms < 100 || self.max_utterance_ms > 30_000 {
            return bad(
                "max_utterance_ms must be within 100..=30000 (the renderer takes at most 30 s)",
            );
        }
        if self.min_utterance_ms >= self.max_utterance_ms {
            return bad("min_utterance_ms must be below max_utterance_ms");
        }
        Ok(())
    }
}

/// A detected utterance: mono samples and where they lie in the stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Utterance {
    pub samples: Vec<f32>,
    pub rate: u32,
    /// Stream time of the first sample (pre-roll included), in seconds.
    pub start_s: f64,
    /// Stream time just after the last sample, in seconds.
    pub end_s: f64,
    /// Cut at `max_utterance_ms` rather than ended by silence.
    pub cut: bool,
}

/// What the detector reports.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Utterance(Utterance),
    /// Something loud that was too short to be a question.
    TooShort {
        start_s: f64,
        speech_ms: u32,
    },
}

enum State {
    Idle {
        /// Loud, voice-like frames in a row.
        run: usize,
    },
    Speech {
        start_sample: u64,
        samples: Vec<f32>,
        /// Stream sample just after the last loud frame.
        last_loud_end: u64,
        onset_sample: u64,
        levels: Vec<f32>,
    },
}

/// Streaming utterance detector; feed it mono samples at `rate` in chunks of any size.
pub struct Endpointer {
    cfg: EndpointConfig,
    rate: u32,
    frame_len: usize,
    fft: Arc<dyn RealToComplex<f32>>,
    fft_in: Vec<f32>,
    /// The last `window.len()` samples, for the spectral measure (longer than a frame: 32 ms).
    analysis: Vec<f32>,
    fft_out: Vec<realfft::num_complex::Complex<f32>>,
    window: Vec<f32>,
    band: std::ops::Range<usize>,
    /// Samples of the frame being filled.
    frame: Vec<f32>,
    /// Audio before a possible onset: at most pre-roll plus onset.
    history: VecDeque<f32>,
    history_max: usize,
    floor_db: f32,
    /// Samples consumed in whole frames since the start.
    position: u64,
    state: State,
}

impl Endpointer {
    pub fn new(cfg: &EndpointConfig, rate: u32) -> Result<Self, ConfigError> {
        cfg.validate()?;
        if !(4_000..=192_000).contains(&rate) {
            return Err(ConfigError(format!(
                "rate {rate} Hz is not usable for endpointing"
            )));
        }
        let frame_len = (rate as usize * cfg.frame_ms as usize / 1000).max(1);
        let n_fft = (rate as usize * 32 / 1000)
            .max(frame_len)
            .next_power_of_two();
        let fft = RealFftPlanner::<f32>::new().plan_fft_forward(n_fft);
        let fft_in = fft.make_input_vec();
        let fft_out = fft.make_output_vec();
        let window = (0..n_fft)
            .map(|i| 0.5 - 0.5 * (2.0 * std::f32::consts::PI * i as f32 / n_fft as f32).cos())
            .collect();
        let bin_hz = rate as f32 / n_fft as f32;
        let lo = ((150.0 / bin_hz).ceil() as usize).max(1);
        let hi = ((5_000.0f32.min(rate as f32 / 2.0) / bin_hz) as usize).min(n_fft / 2);
        let band = lo..hi.max(lo + 1);
        let ms = |ms: u32| rate as usize * ms as usize / 1000;
        let history_max = ms(cfg.pre_roll_ms) + ms(cfg.onset_ms) + frame_len;
        Ok(Self {
            cfg: cfg.clone(),
            rate,
            frame_len,
            fft,
            fft_in,
            analysis: vec![0.0; n_fft],
            fft_out,
            window,
            band,
            frame: Vec::with_capacity(frame_len),
            history: VecDeque::with_capacity(history_max),
            history_max,
            floor_db: cfg.initial_floor_db,
            position: 0,
            state: State::Idle { run: 0 },
        })
    }

    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// The tracked background level (dBFS).
    pub fn noise_floor_db(&self) -> f32 {
        self.floor_db
    }

    pub fn in_utterance(&self) -> bool {
        matches!(self.state, State::Speech { .. })
    }

    /// Stream time consumed so far, in seconds.
    pub fn position_s(&self) -> f64 {
        self.position as f64 / self.rate as f64
    }

    /// Feeds samples; finished utterances are appended to `events`.
    pub fn push(&mut self, samples: &[f32], events: &mut Vec<Event>) {
        let mut rest = samples;
        while !rest.is_empty() {
            let take = (self.frame_len - self.frame.len()).min(rest.len());
            self.frame.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.frame.len() == self.frame_len {
                let frame = std::mem::take(&mut self.frame);
                self.process_frame(&frame, events);
                self.frame = frame;
                self.frame.clear();
            }
        }
    }

    /// End of stream: an utterance in progress ends here (if long enough); the detector starts afresh
    /// at stream time zero, with the noise floor it has learnt.
    pub fn finish(&mut self, events: &mut Vec<Event>) {
        let tail = std::mem::take(&mut self.frame);
        if let State::Speech { samples, .. } = &mut self.state {
            samples.extend_from_slice(&tail);
        }
        self.position += tail.len() as u64;
        let state = std::mem::replace(&mut self.state, State::Idle { run: 0 });
        if let State::Speech {
            start_sample,
            samples,
            last_loud_end,
            onset_sample,
            ..
        } = state
        {
            self.emit(
                start_sample,
                samples,
                last_loud_end,
                onset_sample,
                false,
                events,
            );
        }
        self.history.clear();
        self.position = 0;
    }

    fn measure(&mut self, frame: &[f32]) -> (f32, f32) {
        let energy = frame.iter().map(|v| v * v).sum::<f32>() / frame.len() as f32;
        let level = 10.0 * (energy + 1e-12).log10();
        let keep = self.analysis.len() - frame.len();
        self.analysis.copy_within(frame.len().., 0);
        self.analysis[keep..].copy_from_slice(frame);
        for ((dst, &s), &w) in self.fft_in.iter_mut().zip(&self.analysis).zip(&self.window) {
            *dst = s * w;
        }
        if self
            .fft
            .process(&mut self.fft_in, &mut self.fft_out)
            .is_err()
        {
            return (level, 1.0);
        }
        let power: Vec<f32> = self.fft_out[self.band.clone()]
            .iter()
            .map(|c| c.norm_sqr() + 1e-20)
            .collect();
        let n = power.len() as f32;
        let log_mean = power.iter().map(|p| p.ln()).sum::<f32>() / n;
        let mean = power.iter().sum::<f32>() / n;
        let flatness = (log_mean.exp() / mean).clamp(0.0, 1.0);
        (level, flatness)
    }

    fn process_frame(&mut self, frame: &[f32], events: &mut Vec<Event>) {
        let (level, flatness) = self.measure(frame);
        self.position += frame.len() as u64;
        let ms = |ms: u32| self.rate as u64 * ms as u64 / 1000;
        let loud_start =
            level >= self.floor_db + self.cfg.start_margin_db && level >= self.cfg.min_level_db;
        let loud_stay =
            level >= self.floor_db + self.cfg.stop_margin_db && level >= self.cfg.min_level_db;
        let voice_like = flatness <= self.cfg.max_flatness;

        match &mut self.state {
            State::Idle { run } => {
                self.history.extend(frame.iter().copied());
                let excess = self.history.len().saturating_sub(self.history_max);
                self.history.drain(..excess);
                if loud_start && voice_like {
                    *run += 1;
                } else {
                    *run = 0;
                }
                let onset_frames = (ms(self.cfg.onset_ms) as usize)
                    .div_ceil(self.frame_len)
                    .max(1);
                if *run >= onset_frames {
                    let run_samples = (*run * self.frame_len) as u64;
                    let onset_sample = self.position - run_samples;
                    let keep = (run_samples + ms(self.cfg.pre_roll_ms))
                        .min(self.history.len() as u64) as usize;
                    let skip = self.history.len() - keep;
                    let samples: Vec<f32> = self.history.iter().skip(skip).copied().collect();
                    self.history.clear();
                    self.state = State::Speech {
                        start_sample: self.position - keep as u64,
                        samples,
                        last_loud_end: self.position,
                        onset_sample,
                        levels: vec![level; *run],
                    };
                }
            }
            State::Speech {
                start_sample,
                samples,
                last_loud_end,
                onset_sample,
                levels,
            } => {
                samples.extend_from_slice(frame);
                levels.push(level);
                if loud_stay {
                    *last_loud_end = self.position;
                }
                let quiet = self.position - *last_loud_end;
                let full = samples.len() as u64 >= ms(self.cfg.max_utterance_ms);
                if quiet >= ms(self.cfg.hangover_ms) || full {
                    let (start, loud_end, onset) = (*start_sample, *last_loud_end, *onset_sample);
                    let samples = std::mem::take(samples);
                    if full && quiet < ms(self.cfg.hangover_ms) {
                        // A sound that never paused: most likely background. Learn it.
                        let mut sorted = std::mem::take(levels);
                        sorted.sort_by(|a, b| a.total_cmp(b));
                        if let Some(&p20) = sorted.get(sorted.len() / 5) {
                            self.floor_db = self.floor_db.max(p20);
                        }
                    }
                    self.state = State::Idle { run: 0 };
                    self.emit(start, samples, loud_end, onset, full, events);
                }
            }
        }
        let background = matches!(self.state, State::Idle { run: 0 });
        self.track_floor(level, background);
    }

    /// Drops at once towards a quieter frame; rises at `floor_rise_db_per_s` towards background
    /// frames, and ten times slower during (possible) speech.
    fn track_floor(&mut self, level: f32, background: bool) {
        if level < self.floor_db {
            self.floor_db += (level - self.floor_db) * 0.5;
        } else {
            let mut step = self.cfg.floor_rise_db_per_s * self.cfg.frame_ms as f32 / 1000.0;
            if !background {
                step /= 10.0;
            }
            self.floor_db += (level - self.floor_db).min(step);
        }
        self.floor_db = self.floor_db.max(-120.0);
    }

    fn emit(
        &self,
        start_sample: u64,
        samples: Vec<f32>,
        last_loud_end: u64,
        onset_sample: u64,
        cut: bool,
        events: &mut Vec<Event>,
    ) {
        let rate = self.rate as f64;
        let speech_ms = (last_loud_end.saturating_sub(onset_sample) as f64 * 1000.0 / rate) as u32;
        let start_s = start_sample as f64 / rate;
        if speech_ms < self.cfg.min_utterance_ms {
            events.push(Event::TooShort { start_s, speech_ms });
            return;
        }
        let end_s = start_s + samples.len() as f64 / rate;
        events.push(Event::Utterance(Utterance {
            samples,
            rate: self.rate,
            start_s,
            end_s,
            cut,
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: u32 = 16_000;

    /// A voiced, syllable-like sound: harmonics of a gliding pitch under a 4 Hz envelope.
    fn voice(seconds: f32, amp: f32) -> Vec<f32> {
        let n = (RATE as f32 * seconds) as usize;
        let mut phase = 0.0f32;
        (0..n)
            .map(|i| {
                let t = i as f32 / RATE as f32;
                let f0 = 120.0 + 30.0 * (t * 3.0).sin();
                phase += 2.0 * std::f32::consts::PI * f0 / RATE as f32;
                let env = 0.6 + 0.4 * (2.0 * std::f32::consts::PI * 4.0 * t).sin().abs();
                let s: f32 = (1..8).map(|h| (phase * h as f32).sin() / h as f32).sum();
                amp * env * s / 2.0
            })
            .collect()
    }

    fn noise(seconds: f32, amp: f32, seed: &mut u64) -> Vec<f32> {
        let n = (RATE as f32 * seconds) as usize;
        (0..n)
            .map(|_| {
                *seed ^= *seed << 13;
                *seed ^= *seed >> 7;
                *seed ^= *seed << 17;
                amp * ((*seed >> 40) as f32 / (1u64 << 23) as f32 - 1.0)
            })
            .collect()
    }

    fn silence(seconds: f32) -> Vec<f32> {
        vec![0.0; (RATE as f32 * seconds) as usize]
    }

    fn run(cfg: &EndpointConfig, audio: &[f32], chunk: usize) -> Vec<Event> {
        let mut ep = Endpointer::new(cfg, RATE).unwrap();
        let mut events = Vec::new();
        for c in audio.chunks(chunk) {
            ep.push(c, &mut events);
        }
        ep.finish(&mut events);
        events
    }

    fn utterances(events: &[Event]) -> Vec<&Utterance> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::Utterance(u) => Some(u),
                _ => None,
            })
            .collect()
    }

    /// Events without their samples, for assertion messages.
    fn describe(events: &[Event]) -> String {
        events
            .iter()
            .map(|e| match e {
                Event::Utterance(u) => format!(
                    "utterance {:.3}..{:.3}{}",
                    u.start_s,
                    u.end_s,
                    if u.cut { " cut" } else { "" }
                ),
                Event::TooShort { start_s, speech_ms } => {
                    format!("too short at {start_s:.3} ({speech_ms} ms)")
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    #[test]
    fn three_utterances_in_silence_are_found_in_order_with_times() {
        let audio = [
            silence(0.5),
            voice(0.8, 0.3),
            silence(1.0),
            voice(0.6, 0.3),
            silence(1.0),
            voice(1.0, 0.3),
            silence(0.7),
        ]
        .concat();
        let events = run(&EndpointConfig::default(), &audio, 333);
        let utts = utterances(&events);
        assert_eq!(utts.len(), 3, "{}", describe(&events));
        let onsets = [0.5, 2.3, 3.9];
        for (u, onset) in utts.iter().zip(onsets) {
            // Pre-roll of 0.25 s before the onset.
            assert!(
                (u.start_s - (onset - 0.25)).abs() < 0.06,
                "{} vs {onset}",
                u.start_s
            );
            assert!(!u.cut);
            assert_eq!(
                u.samples.len() as f64,
                ((u.end_s - u.start_s) * RATE as f64).round()
            );
        }
    }

    #[test]
    fn speech_at_the_first_sample_starts_at_zero() {
        let audio = [voice(0.7, 0.3), silence(0.8)].concat();
        let utts_events = run(&EndpointConfig::default(), &audio, 160);
        let utts = utterances(&utts_events);
        assert_eq!(utts.len(), 1);
        assert_eq!(utts[0].start_s, 0.0);
        assert!(
            utts[0].end_s > 0.7 && utts[0].end_s < 1.3,
            "{}",
            utts[0].end_s
        );
    }

    #[test]
    fn speech_running_to_the_end_of_the_stream_is_kept() {
        let audio = [silence(0.4), voice(0.6, 0.3)].concat();
        let events = run(&EndpointConfig::default(), &audio, 1000);
        assert_eq!(utterances(&events).len(), 1);
    }

    #[test]
    fn back_to_back_utterances_split_on_a_pause_longer_than_the_hangover() {
        let cfg = EndpointConfig::default();
        let audio = [
            voice(0.6, 0.3),
            silence(0.6), // > 400 ms hangover
            voice(0.6, 0.3),
            silence(0.15), // < hangover: same utterance
            voice(0.4, 0.3),
            silence(0.6),
        ]
        .concat();
        let events = run(&cfg, &audio, 512);
        let utts = utterances(&events);
        assert_eq!(utts.len(), 2, "{}", describe(&events));
        assert!(utts[1].end_s - utts[1].start_s > 1.1);
    }

    #[test]
    fn steady_background_noise_and_noise_bursts_are_not_utterances() {
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut audio = noise(2.0, 0.02, &mut seed); // steady hiss around -40 dBFS
        let burst = noise(0.8, 0.4, &mut seed); // a loud hiss burst
        audio.extend(burst);
        let mut bed = noise(1.0, 0.02, &mut seed);
        let speech = voice(0.8, 0.3);
        for (b, s) in bed.iter_mut().skip(3000).zip(&speech) {
            *b += s;
        }
        audio.extend(bed);
        audio.extend(noise(0.8, 0.02, &mut seed));
        let events = run(&EndpointConfig::default(), &audio, 480);
        let utts = utterances(&events);
        assert_eq!(utts.len(), 1, "{}", describe(&events));
        let onset = 2.8 + 3000.0 / RATE as f64;
        assert!(
            (utts[0].start_s - (onset - 0.25)).abs() < 0.08,
            "{}",
            utts[0].start_s
        );
    }

    #[test]
    fn clicks_are_too_short_and_long_sounds_are_cut() {
        let audio = [silence(0.5), voice(0.08, 0.4), silence(1.0)].concat();
        let events = run(&EndpointConfig::default(), &audio, 160);
        assert!(utterances(&events).is_empty());
        assert!(
            matches!(events.as_slice(), [Event::TooShort { .. }]),
            "{}",
            describe(&events)
        );

        let cfg = EndpointConfig {
            max_utterance_ms: 1_000,
            ..EndpointConfig::default()
        };
        // A sound that never pauses is cut at the maximum, then taken to be background.
        let audio = voice(2.5, 0.3);
        let events = run(&cfg, &audio, 160);
        let utts = utterances(&events);
        assert_eq!(utts.len(), 1, "{}", describe(&events));
        assert!(utts[0].cut);
        assert_eq!(utts[0].samples.len(), RATE as usize);
    }

    #[test]
    fn quiet_speech_below_the_absolute_level_is_ignored() {
        let audio = [
            silence(0.3),
            voice(0.8, 0.001), // about -66 dBFS
            silence(0.5),
        ]
        .concat();
        assert!(run(&EndpointConfig::default(), &audio, 160).is_empty());
    }

    #[test]
    fn chunking_does_not_change_the_result() {
        let audio = [silence(0.3), voice(0.7, 0.2), silence(0.6), voice(0.5, 0.2)].concat();
        let a = run(&EndpointConfig::default(), &audio, 7);
        let b = run(&EndpointConfig::default(), &audio, 4096);
        assert_eq!(a, b);
        assert_eq!(utterances(&a).len(), 2);
    }

    #[test]
    fn bad_settings_are_refused_with_the_field_named() {
        let cases = [
            EndpointConfig {
                frame_ms: 0,
                ..Default::default()
            },
            EndpointConfig {
                stop_margin_db: 20.0,
                ..Default::default()
            },
            EndpointConfig {
                min_utterance_ms: 9_000,
                ..Default::default()
            },
            EndpointConfig {
                max_flatness: f32::NAN,
                ..Default::default()
            },
        ];
        for cfg in cases {
            assert!(cfg.validate().is_err(), "{cfg:?}");
            assert!(Endpointer::new(&cfg, RATE).is_err());
        }
        assert!(Endpointer::new(&EndpointConfig::default(), 100).is_err());
    }
}
