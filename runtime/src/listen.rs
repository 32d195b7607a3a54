//! The on-device loop behind `visualbyte demo`: listen → detect an utterance → render → embed → search →
//! answer, and the same for typed questions.
//!
//! Sound comes from a [`Source`] (microphone, WAV files, raw PCM); it goes through the converter (mono,
//! 16 kHz) and the [`Endpointer`]; each utterance is asked through an [`Ask`] (the query engine) and the
//! answer is printed as readable lines or as one JSON object per line. A device fault is reported and
//! retried with backoff; a question that fails is reported and the loop carries on.
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use image::RgbImage;
use serde::Serialize;

use crate::answer::picture::{answer_picture, answer_picture_path, TILE};
use crate::answer::text::{by_label_mark, headline, spoken};
use crate::answer::{Answer, Engine};
use crate::capture::{Converter, Fault, Overruns, Pulled, Source};
use crate::endpoint::{EndpointConfig, Endpointer, Event, Utterance};
use crate::render::{Pcm, Renderer, TextRenderer};

/// The rate utterances are detected and handed over at.
pub const ANALYSIS_RATE: u32 = 16_000;

/// Whatever answers questions: the query engine, or a stand-in in tests.
pub trait Ask {
    fn ask_pcm(&mut self, pcm: &Pcm) -> Result<Answer, String>;
    fn ask_text(&mut self, text: &str) -> Result<Answer, String>;
    /// The renderer questions are drawn with; the answer picture draws the memories with it too.
    fn renderer(&self) -> &Renderer;
    /// The last question's image as it was embedded: the answer picture's first tile.
    fn last_question(&self) -> Option<&RgbImage>;
}

impl Ask for Engine {
    fn ask_pcm(&mut self, pcm: &Pcm) -> Result<Answer, String> {
        Engine::ask_pcm(self, pcm).map_err(|e| e.to_string())
    }
    fn ask_text(&mut self, text: &str) -> Result<Answer, String> {
        Engine::ask_text(self, text).map_err(|e| e.to_string())
    }
    fn renderer(&self) -> &Renderer {
        Engine::renderer(self)
    }
    fn last_question(&self) -> Option<&RgbImage> {
        Engine::last_question(self)
    }
}

/// Speaks an answer aloud (`--say`). The loop discards what the microphone heard meanwhile.
pub trait Speak {
    /// Says `text` and returns when it has been said; an error stops speaking for the rest of the run.
    fn say(&mut self, text: &str) -> Result<(), String>;
}

/// espeak-ng in a subprocess.
pub struct Espeak;

impl Speak for Espeak {
    fn say(&mut self, text: &str) -> Result<(), String> {
        std::process::Command::new("espeak-ng")
            .arg("--")
            .arg(text)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .map(|_| ())
            .map_err(|e| {
                format!("cannot run espeak-ng ({e}); install it (`apt-get install espeak-ng`) to hear answers")
            })
    }
}

/// How the loop behaves.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub endpoint: EndpointConfig,
    /// One JSON object per line on the output instead of readable lines.
    pub json: bool,
    /// Write a picture of each question beside its top-k memories here (`%n` → the answer number;
    /// `{n}` too, which clap's help cannot print).
    pub answer_image: Option<PathBuf>,
    /// Speak each answer with espeak-ng.
    pub say: bool,
    /// First wait before reopening a failed device; doubles up to `retry_max`.
    pub retry_initial: Duration,
    pub retry_max: Duration,
    /// Stop after this many answers (None: until the source ends or Ctrl-C).
    pub max_answers: Option<usize>,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            endpoint: EndpointConfig::default(),
            json: false,
            answer_image: None,
            say: false,
            retry_initial: Duration::from_millis(500),
            retry_max: Duration::from_secs(30),
            max_answers: None,
        }
    }
}

/// What happened over a whole run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Summary {
    pub utterances: usize,
    pub typed: usize,
    pub answered: usize,
    pub failed: usize,
    pub too_short: usize,
    pub device_faults: usize,
    pub overrun_samples: u64,
}

/// Milliseconds per stage for one answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Latency {
    /// Converting and endpointing the audio since the previous answer (CPU time, spread over listening).
    pub listen_ms: f64,
    pub render_ms: f64,
    pub embed_ms: f64,
    pub search_ms: f64,
    /// From the end of the utterance being detected (or the line typed) to the answer printed.
    pub total_ms: f64,
}

/// One line of `--json` output.
#[derive(Debug, Serialize)]
pub struct Record<'a> {
    pub event: &'static str,
    /// Answer number, from 1, in the order questions were heard or typed.
    pub n: usize,
    /// Where the question came from: a file, `mic:DEVICE`, `stdin`, `typed`.
    pub source: String,
    /// Stream time of the utterance (audio only), seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_s: Option<f64>,
    /// The utterance was cut at the maximum length.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub cut: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer: Option<&'a Answer>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<Latency>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer_image: Option<String>,
}

/// The loop and everything it owns.
pub struct Demo<'a> {
    source: Box<dyn Source + 'a>,
    ask: &'a mut dyn Ask,
    options: DemoOptions,
    out: &'a mut dyn Write,
    status: &'a mut dyn Write,
    stop: Arc<AtomicBool>,
    typed: Option<Receiver<String>>,
    /// Renders the answer picture's captions; made on the first picture.
    captions: Option<TextRenderer>,
    /// Speaks each answer (`--say`); dropped after its first failure.
    speaker: Option<Box<dyn Speak + 'a>>,
    summary: Summary,
    answers: usize,
}

impl<'a> Demo<'a> {
    pub fn new(
        source: Box<dyn Source + 'a>,
        ask: &'a mut dyn Ask,
        options: DemoOptions,
        out: &'a mut dyn Write,
        status: &'a mut dyn Write,
    ) -> Self {
        let speaker = options.say.then(|| Box::new(Espeak) as Box<dyn Speak + 'a>);
        Self {
            source,
            ask,
            options,
            out,
            status,
            stop: Arc::new(AtomicBool::new(false)),
            typed: None,
            captions: None,
            speaker,
            summary: Summary::default(),
            answers: 0,
        }
    }

    /// Set from a Ctrl-C handler: the loop stops at its next step.
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.stop)
    }

    pub fn with_stop_flag(mut self, stop: Arc<AtomicBool>) -> Self {
        self.stop = stop;
        self
    }

    /// Typed questions, one per message (e.g. lines of stdin read by another thread).
    pub fn with_typed(mut self, typed: Receiver<String>) -> Self {
        self.typed = Some(typed);
        self
    }

    /// Speaks answers with `speaker` instead of espeak-ng (whether or not `say` is set).
    pub fn with_speaker(mut self, speaker: Box<dyn Speak + 'a>) -> Self {
        self.speaker = Some(speaker);
        self
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
            || self.options.max_answers.is_some_and(|m| self.answers >= m)
    }

    fn say_status(&mut self, line: &str) {
        let _ = writeln!(self.status, "{line}");
        let _ = self.status.flush();
    }

    /// Runs until the source and typed questions end, or the stop flag is set.
    pub fn run(mut self) -> anyhow::Result<Summary> {
        let mut endpointer = Endpointer::new(&self.options.endpoint, ANALYSIS_RATE)?;
        let mut converter: Option<Converter> = None;
        let mut raw = Vec::with_capacity(8192);
        let mut mono = Vec::with_capacity(4096);
        let mut events = Vec::new();
        let mut listen = Duration::ZERO;
        let mut backoff = self.options.retry_initial;
        let mut audio_done = false;
        let mut reported_overruns = Overruns::default();

        while !self.stopped() {
            self.answer_typed()?;
            if audio_done {
                match &self.typed {
                    None => break,
                    Some(rx) => match rx.recv_timeout(Duration::from_millis(100)) {
                        Ok(line) => self.answer_line(&line)?,
                        Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Disconnected) => break,
                    },
                }
                continue;
            }
            raw.clear();
            let pulled = self.source.pull(&mut raw, Duration::from_millis(50));
            let began = Instant::now();
            match pulled {
                Ok(Pulled::Audio(format)) => {
                    if converter.as_ref().is_some_and(|c| c.format() != format) {
                        self.end_stream(&mut converter, &mut endpointer, &mut events)?;
                    }
                    let mut converted = Ok(());
                    if converter.is_none() {
                        match Converter::new(format, ANALYSIS_RATE) {
                            Ok(c) => converter = Some(c),
                            Err(e) => converted = Err(e),
                        }
                    }
                    if let (true, Some(c)) = (converted.is_ok(), converter.as_mut()) {
                        mono.clear();
                        converted = c.push(&raw, &mut mono);
                    }
                    match converted {
                        Ok(()) => {
                            backoff = self.options.retry_initial;
                            endpointer.push(&mono, &mut events);
                        }
                        // A source that hands over audio in a format nothing can use (garbage from a
                        // driver) is a device fault like any other: reported, dropped, reopened.
                        Err(e) => {
                            self.lose_audio(&e.to_string(), &mut converter, &mut endpointer);
                            self.reconnect(&mut backoff)?;
                        }
                    }
                }
                Ok(Pulled::Idle) => {}
                Ok(Pulled::EndOfStream) => {
                    self.end_stream(&mut converter, &mut endpointer, &mut events)?;
                }
                Ok(Pulled::Finished) => {
                    self.end_stream(&mut converter, &mut endpointer, &mut events)?;
                    audio_done = true;
                }
                Err(e) => match e.fault {
                    Fault::Skip => self.say_status(&format!("skipped: {}", e.message)),
                    Fault::Fatal => return Err(anyhow::anyhow!(e.message)),
                    Fault::Retry => {
                        self.lose_audio(&e.message, &mut converter, &mut endpointer);
                        self.reconnect(&mut backoff)?;
                    }
                },
            }
            listen += began.elapsed();
            if !events.is_empty() {
                let heard = std::mem::take(&mut events);
                for event in heard {
                    self.on_event(event, listen)?;
                    listen = Duration::ZERO;
                    if self.stopped() {
                        break;
                    }
                }
            }
            let overruns = self.source.overruns();
            if overruns.samples > reported_overruns.samples {
                self.say_status(&format!(
                    "audio overrun: {} samples dropped so far ({} times); the loop fell behind the device",
                    overruns.samples, overruns.events
                ));
                reported_overruns = overruns;
            }
            self.summary.overrun_samples = overruns.samples;
        }
        Ok(self.summary)
    }

    fn end_stream(
        &mut self,
        converter: &mut Option<Converter>,
        endpointer: &mut Endpointer,
        events: &mut Vec<Event>,
    ) -> anyhow::Result<()> {
        if let Some(mut c) = converter.take() {
            let mut mono = Vec::new();
            c.flush(&mut mono)?;
            endpointer.push(&mono, events);
        }
        endpointer.finish(events);
        Ok(())
    }

    /// A device fault: counted and reported; what was heard before it is incomplete and dropped.
    fn lose_audio(
        &mut self,
        message: &str,
        converter: &mut Option<Converter>,
        endpointer: &mut Endpointer,
    ) {
        self.summary.device_faults += 1;
        let mut dropped = Vec::new();
        endpointer.finish(&mut dropped);
        *converter = None;
        self.say_status(&format!("audio lost: {message}"));
    }

    /// Waits and reopens the source until it works again (or the loop is stopped), backing off.
    fn reconnect(&mut self, backoff: &mut Duration) -> anyhow::Result<()> {
        while !self.stopped() {
            self.say_status(&format!(
                "retrying in {:.1} s (Ctrl-C to stop)",
                backoff.as_secs_f64()
            ));
            self.wait(*backoff);
            if self.stopped() {
                break;
            }
            match self.source.reopen() {
                Ok(()) => {
                    let what = self.source.describe();
                    self.say_status(&format!("audio back: listening to {what}"));
                    *backoff = self.options.retry_initial;
                    return Ok(());
                }
                Err(e) if e.fault == Fault::Fatal => return Err(anyhow::anyhow!(e.message)),
                Err(e) => {
                    self.summary.device_faults += 1;
                    self.say_status(&format!("audio still unavailable: {}", e.message));
                    *backoff = (*backoff * 2).min(self.options.retry_max);
                }
            }
        }
        Ok(())
    }

    fn wait(&self, total: Duration) {
        let until = Instant::now() + total;
        while !self.stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            if now >= until {
                break;
            }
            std::thread::sleep((until - now).min(Duration::from_millis(50)));
        }
    }

    fn answer_typed(&mut self) -> anyhow::Result<()> {
        loop {
            let line = match &self.typed {
                Some(rx) => match rx.try_recv() {
                    Ok(line) => line,
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => return Ok(()),
                },
                None => return Ok(()),
            };
            self.answer_line(&line)?;
            if self.stopped() {
                return Ok(());
            }
        }
    }

    fn answer_line(&mut self, line: &str) -> anyhow::Result<()> {
        let text = line.trim();
        if text.is_empty() {
            return Ok(());
        }
        self.summary.typed += 1;
        let began = Instant::now();
        let result = self.ask.ask_text(text);
        self.report("typed".into(), None, result, Duration::ZERO, began)
    }

    fn on_event(&mut self, event: Event, listen: Duration) -> anyhow::Result<()> {
        match event {
            Event::TooShort { start_s, speech_ms } => {
                self.summary.too_short += 1;
                log::info!(
                    "ignored a {speech_ms} ms sound at {start_s:.2} s: shorter than an utterance"
                );
                Ok(())
            }
            Event::Utterance(mut u) => {
                self.summary.utterances += 1;
                let began = Instant::now();
                let pcm = Pcm {
                    samples: std::mem::take(&mut u.samples),
                    rate: u.rate,
                };
                let result = self.ask.ask_pcm(&pcm);
                let source = self.source.stream_name().unwrap_or_else(|| "audio".into());
                self.report(source, Some(&u), result, listen, began)
            }
        }
    }

    fn report(
        &mut self,
        source: String,
        utterance: Option<&Utterance>,
        result: Result<Answer, String>,
        listen: Duration,
        began: Instant,
    ) -> anyhow::Result<()> {
        self.answers += 1;
        let n = self.answers;
        let (start_s, end_s, cut) = match utterance {
            Some(u) => (Some(round3(u.start_s)), Some(round3(u.end_s)), u.cut),
            None => (None, None, false),
        };
        let answer = match result {
            Ok(a) => a,
            Err(message) => {
                self.summary.failed += 1;
                let record = Record {
                    event: "error",
                    n,
                    source: source.clone(),
                    start_s,
                    end_s,
                    cut,
                    answer: None,
                    message: Some(message.clone()),
                    latency_ms: None,
                    answer_image: None,
                };
                if self.options.json {
                    writeln!(self.out, "{}", serde_json::to_string(&record)?)?;
                } else {
                    writeln!(self.out, "#{n} {source}: could not answer: {message}")?;
                }
                self.out.flush()?;
                return Ok(());
            }
        };
        self.summary.answered += 1;
        let picture = match self.options.answer_image.clone() {
            Some(template) => {
                let path = answer_picture_path(&template, n);
                match self.write_picture(&path, &answer, utterance.is_none()) {
                    Ok(()) => Some(path.display().to_string()),
                    Err(e) => {
                        self.say_status(&format!("answer picture {}: {e}", path.display()));
                        None
                    }
                }
            }
            None => None,
        };
        let t = answer.timings;
        let latency = Latency {
            listen_ms: round3(listen.as_secs_f64() * 1e3),
            render_ms: round3(t.render_ms),
            embed_ms: round3(t.embed_ms),
            search_ms: round3(t.search_ms),
            total_ms: round3(began.elapsed().as_secs_f64() * 1e3),
        };
        if self.options.json {
            let record = Record {
                event: "answer",
                n,
                source: source.clone(),
                start_s,
                end_s,
                cut,
                answer: Some(&answer),
                message: None,
                latency_ms: Some(latency),
                answer_image: picture.clone(),
            };
            writeln!(self.out, "{}", serde_json::to_string(&record)?)?;
        } else {
            let when = match (start_s, end_s) {
                (Some(a), Some(b)) => {
                    format!(" {a:.2}–{b:.2} s{}", if cut { " (cut)" } else { "" })
                }
                _ => format!(" {:?}", answer.query),
            };
            writeln!(self.out, "#{n} {source}{when}: {}", headline(&answer))?;
            for (i, hit) in answer.hits.iter().enumerate() {
                writeln!(
                    self.out,
                    "   {}. {:<20} {:>6.3}  {}{}",
                    i + 1,
                    hit.label,
                    hit.score,
                    hit.path,
                    by_label_mark(hit)
                )?;
            }
            writeln!(
                self.out,
                "   latency: listen {:.1} ms · render {:.1} ms · embed {:.1} ms · search {:.1} ms · total {:.1} ms",
                latency.listen_ms, latency.render_ms, latency.embed_ms, latency.search_ms, latency.total_ms
            )?;
            if let Some(p) = &picture {
                writeln!(self.out, "   picture: {p}")?;
            }
        }
        self.out.flush()?;
        self.speak(&answer);
        Ok(())
    }

    fn speak(&mut self, answer: &Answer) {
        let Some(speaker) = self.speaker.as_mut() else {
            return;
        };
        if let Err(e) = speaker.say(&spoken(answer)) {
            self.speaker = None;
            self.say_status(&format!("--say: {e}"));
        }
        // Do not answer our own voice.
        self.source.discard();
    }

    fn write_picture(
        &mut self,
        path: &std::path::Path,
        answer: &Answer,
        typed: bool,
    ) -> anyhow::Result<()> {
        let renderer = self.ask.renderer();
        if self.captions.is_none() {
            self.captions = Some(TextRenderer::new(TILE, &renderer.settings().text)?);
        }
        let Some(captioner) = self.captions.as_ref() else {
            return Ok(());
        };
        let question = self
            .ask
            .last_question()
            .ok_or_else(|| anyhow::anyhow!("no image of the question was kept"))?;
        answer_picture(renderer, captioner, answer, question, typed).save(path)?;
        Ok(())
    }
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}
