//! The demo's listening path, driven through the WAV and PCM sources exactly as the microphone drives it:
//! feeder thread → ring → converter (mono, 16 kHz) → endpointer → one answer per utterance.
//!
//! `tests/fixtures/demo/three_questions.wav` holds three spoken questions (espeak-ng, 16 kHz mono)
//! separated by silence; their speech starts at about 0.80 s, 3.19 s and 5.80 s. The tests answer with a
//! stand-in that records what it was asked (`tests/demo_cli.rs` runs `visualbyte demo` itself).
#[path = "util.rs"]
mod util;

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use util::{assert_onsets, fixture, json_lines, starts, ONSETS};
use visualbyte::answer::{Answer, AnswerHit, Modality, Timings};
use visualbyte::capture::{
    Fault, NoAudio, Pace, PcmEncoding, PcmSource, Pulled, Source, SourceError, WavSource,
};
use visualbyte::capture::{Overruns, StreamFormat};
use visualbyte::index::Matched;
use visualbyte::listen::{Ask, Demo, DemoOptions, Speak, Summary};
use visualbyte::render::{decode_wav_bytes, resample_to, Pcm, Renderer, RendererSettings};

fn three_questions() -> Pcm {
    let bytes = std::fs::read(fixture("demo/three_questions.wav")).unwrap();
    decode_wav_bytes(&bytes, 30.0).unwrap()
}

/// The three questions as a WAV source.
fn three_questions_wav(pace: Pace) -> WavSource {
    WavSource::new(&fixture("demo/three_questions.wav"), pace).unwrap()
}

fn write_wav(path: &Path, channels: u16, rate: u32, float: bool, mono: &[f32]) {
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: if float { 32 } else { 16 },
        sample_format: if float {
            hound::SampleFormat::Float
        } else {
            hound::SampleFormat::Int
        },
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for &s in mono {
        for c in 0..channels {
            // Other channels carry the same signal at half level: the mix must still find the speech.
            let v = if c == 0 { s } else { s * 0.5 };
            if float {
                w.write_sample(v).unwrap();
            } else {
                w.write_sample((v * 32767.0) as i16).unwrap();
            }
        }
    }
    w.finalize().unwrap();
}

/// Answers every question with a fixed memory and records what it heard.
struct Recorder {
    heard: Vec<(usize, u32)>,
    typed: Vec<String>,
    fail_on: Option<usize>,
    /// What it says the last question looked like (the engine keeps the image it embedded).
    question: Option<image::RgbImage>,
    renderer: Renderer,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            heard: Vec::new(),
            typed: Vec::new(),
            fail_on: None,
            question: None,
            renderer: Renderer::new(RendererSettings::for_size(32)).unwrap(),
        }
    }
}

fn canned(query: String, modality: Modality) -> Answer {
    Answer {
        query,
        modality,
        label: Some("tiger".into()),
        score: Some(0.9),
        hits: vec![
            AnswerHit {
                label: "tiger".into(),
                path: "memory/tiger.png".into(),
                score: 0.9,
                matched: Matched::Picture,
            },
            AnswerHit {
                label: "cup".into(),
                path: "memory/cup.png".into(),
                score: 0.5,
                matched: Matched::Picture,
            },
        ],
        labels: vec![],
        threshold: Some(0.4),
        not_in_memory: false,
        timings: Timings::default(),
    }
}

impl Ask for Recorder {
    fn ask_pcm(&mut self, pcm: &Pcm) -> Result<Answer, String> {
        self.heard.push((pcm.samples.len(), pcm.rate));
        if self.fail_on == Some(self.heard.len()) {
            return Err("this utterance could not be rendered".into());
        }
        Ok(canned(format!("{:.1} s", pcm.seconds()), Modality::Audio))
    }
    fn ask_text(&mut self, text: &str) -> Result<Answer, String> {
        self.typed.push(text.to_string());
        Ok(canned(text.to_string(), Modality::Text))
    }
    fn renderer(&self) -> &Renderer {
        &self.renderer
    }
    fn last_question(&self) -> Option<&image::RgbImage> {
        self.question.as_ref()
    }
}

/// Runs the loop over `source` with `options`, after `setup` (typed questions, a stop flag): its result,
/// what it printed and its status lines.
fn run_loop(
    source: Box<dyn Source>,
    ask: &mut Recorder,
    options: DemoOptions,
    setup: impl FnOnce(Demo<'_>) -> Demo<'_>,
) -> (anyhow::Result<Summary>, Vec<u8>, String) {
    let mut out = Vec::new();
    let mut status = Vec::new();
    let result = setup(Demo::new(source, ask, options, &mut out, &mut status)).run();
    (result, out, String::from_utf8(status).unwrap())
}

/// Runs the loop with JSON answers: the answers, the status lines and the summary.
fn run_demo(
    source: Box<dyn Source>,
    ask: &mut Recorder,
    options: DemoOptions,
) -> (Vec<Value>, String, Summary) {
    let options = DemoOptions {
        json: true,
        ..options
    };
    let (result, out, status) = run_loop(source, ask, options, |demo| demo);
    (json_lines(&out), status, result.unwrap())
}

#[test]
fn three_questions_give_three_answers_in_the_order_spoken() {
    let source = three_questions_wav(Pace::Fast);
    let mut ask = Recorder::default();
    let (lines, _, summary) = run_demo(Box::new(source), &mut ask, DemoOptions::default());
    assert_onsets(&lines, &ONSETS);
    for l in &lines {
        assert_eq!(l["event"], "answer");
        assert!(l["source"]
            .as_str()
            .unwrap()
            .ends_with("three_questions.wav"));
        assert_eq!(l["answer"]["label"], "tiger");
        assert_eq!(l["answer"]["hits"][1]["path"], "memory/cup.png");
        for stage in [
            "listen_ms",
            "render_ms",
            "embed_ms",
            "search_ms",
            "total_ms",
        ] {
            assert!(l["latency_ms"][stage].as_f64().unwrap() >= 0.0, "{stage}");
        }
        let (start, end) = (l["start_s"].as_f64().unwrap(), l["end_s"].as_f64().unwrap());
        assert!(end - start > 0.9 && end - start < 2.5, "{start}..{end}");
    }
    // Every utterance reached the engine at 16 kHz, as long as its stream times say.
    assert_eq!(ask.heard.len(), 3);
    for ((len, rate), l) in ask.heard.iter().zip(&lines) {
        assert_eq!(*rate, 16_000);
        let seconds = l["end_s"].as_f64().unwrap() - l["start_s"].as_f64().unwrap();
        assert!((*len as f64 / 16_000.0 - seconds).abs() < 0.01);
    }
    assert_eq!(summary.utterances, 3);
    assert_eq!(summary.answered, 3);
    assert_eq!(summary.overrun_samples, 0);
}

#[test]
fn any_rate_channel_count_and_sample_format_finds_the_same_utterances() {
    let pcm = three_questions();
    let dir = tempfile::tempdir().unwrap();
    for (channels, rate, float) in [
        (2u16, 44_100u32, true),
        (3, 48_000, false),
        (1, 8_000, false),
    ] {
        let resampled = resample_to(&pcm, rate).unwrap();
        let path = dir.path().join(format!("q_{channels}_{rate}.wav"));
        write_wav(&path, channels, rate, float, &resampled);
        let source = WavSource::new(&path, Pace::Fast).unwrap();
        let mut ask = Recorder::default();
        let (lines, _, _) = run_demo(Box::new(source), &mut ask, DemoOptions::default());
        assert_onsets(&lines, &ONSETS);
    }
}

#[test]
fn background_noise_and_a_noise_burst_do_not_add_or_lose_questions() {
    let mut pcm = three_questions();
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut noise = |amp: f32| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        amp * ((seed >> 40) as f32 / (1u64 << 23) as f32 - 1.0)
    };
    for (i, s) in pcm.samples.iter_mut().enumerate() {
        let t = i as f32 / 16_000.0;
        // Steady hiss at about -45 dBFS, and a loud 0.5 s hiss burst between questions 2 and 3.
        let burst = if (4.7..5.2).contains(&t) { 0.3 } else { 0.0 };
        *s += noise(0.01) + noise(burst);
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("noisy.wav");
    write_wav(&path, 1, 16_000, true, &pcm.samples);
    let mut ask = Recorder::default();
    let source = WavSource::new(&path, Pace::Fast).unwrap();
    let (lines, _, _) = run_demo(Box::new(source), &mut ask, DemoOptions::default());
    assert_onsets(&lines, &ONSETS);
}

/// Cuts the fixture into its three questions; the second starts exactly at its first loud sample.
fn split_questions(dir: &Path) -> Vec<PathBuf> {
    let pcm = three_questions();
    let at = |s: f64| (s * 16_000.0) as usize;
    let first_loud = |from: usize| {
        from + pcm.samples[from..]
            .iter()
            .position(|v| v.abs() > 0.02)
            .unwrap()
    };
    let cuts = [
        (at(0.3), at(2.4)),
        (first_loud(at(2.5)), at(5.0)),
        (at(5.3), pcm.samples.len()),
    ];
    cuts.iter()
        .enumerate()
        .map(|(i, &(a, b))| {
            let path = dir.join(format!("{}_question.wav", i + 1));
            write_wav(&path, 1, 16_000, false, &pcm.samples[a..b]);
            path
        })
        .collect()
}

#[test]
fn a_folder_is_played_in_name_order_and_speech_at_the_first_sample_counts() {
    let dir = tempfile::tempdir().unwrap();
    let files = split_questions(dir.path());
    std::fs::write(dir.path().join("notes.txt"), "not audio").unwrap();
    let source = WavSource::new(dir.path(), Pace::Fast).unwrap();
    assert_eq!(source.files(), files.as_slice());
    let mut ask = Recorder::default();
    let (lines, _, _) = run_demo(Box::new(source), &mut ask, DemoOptions::default());
    assert_eq!(lines.len(), 3, "{lines:?}");
    for (l, f) in lines.iter().zip(&files) {
        assert_eq!(l["source"].as_str().unwrap(), f.display().to_string());
    }
    // Times restart with every file; the second file's speech starts at its first sample.
    let s = starts(&lines);
    assert!((s[0] - (0.80 - 0.3 - 0.25)).abs() < 0.12, "{s:?}");
    assert_eq!(s[1], 0.0);
    assert!((s[2] - (0.50 - 0.25)).abs() < 0.12, "{s:?}");
}

#[test]
fn a_broken_file_and_a_failing_question_do_not_stop_the_loop() {
    let dir = tempfile::tempdir().unwrap();
    split_questions(dir.path());
    std::fs::write(dir.path().join("0_broken.wav"), b"RIFF....WAVEnonsense").unwrap();
    let source = WavSource::new(dir.path(), Pace::Fast).unwrap();
    let mut ask = Recorder {
        fail_on: Some(2),
        ..Recorder::default()
    };
    let (lines, status, summary) = run_demo(Box::new(source), &mut ask, DemoOptions::default());
    assert!(
        status.contains("0_broken.wav") && status.contains("skipped"),
        "{status}"
    );
    let events: Vec<&str> = lines.iter().map(|l| l["event"].as_str().unwrap()).collect();
    assert_eq!(events, ["answer", "error", "answer"]);
    assert_eq!(lines[1]["message"], "this utterance could not be rendered");
    assert_eq!((summary.answered, summary.failed), (2, 1));
}

#[test]
fn raw_pcm_on_stdin_takes_the_same_path() {
    let pcm = three_questions();
    let resampled = resample_to(&pcm, 48_000).unwrap();
    let mut bytes = Vec::new();
    for s in &resampled {
        let v = (s * 32767.0) as i16;
        bytes.extend_from_slice(&v.to_le_bytes());
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    let format = StreamFormat {
        rate: 48_000,
        channels: 2,
    };
    let source = PcmSource::new(Cursor::new(bytes), format, PcmEncoding::S16Le).unwrap();
    let mut ask = Recorder::default();
    let (lines, _, _) = run_demo(Box::new(source), &mut ask, DemoOptions::default());
    assert_onsets(&lines, &ONSETS);
    assert!(lines.iter().all(|l| l["source"] == "stdin"));
}

/// Typed questions, as the demo's stdin reader hands them over, then the end of input.
fn typed(questions: &[&str]) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    for q in questions {
        tx.send(q.to_string()).unwrap();
    }
    rx
}

#[test]
fn typed_questions_are_answered_by_the_same_loop_in_order() {
    let rx = typed(&["where is the tiger", "", "red cup"]);
    let mut ask = Recorder::default();
    let (summary, out, _) = run_loop(
        Box::new(NoAudio),
        &mut ask,
        DemoOptions::default(),
        |demo| demo.with_typed(rx),
    );
    assert_eq!(ask.typed, ["where is the tiger", "red cup"]);
    assert_eq!(summary.unwrap().typed, 2);
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.starts_with("#1 typed \"where is the tiger\": tiger (0.900)"),
        "{text}"
    );
    assert!(text.contains("latency: listen"), "{text}");
    assert!(text.contains("memory/cup.png"), "{text}");
}

#[test]
fn the_answer_picture_shows_the_question_the_answerer_rendered_instead_of_rendering_it_again() {
    let dir = tempfile::tempdir().unwrap();
    let rx = typed(&["tiger"]);
    let blue = image::RgbImage::from_pixel(32, 32, image::Rgb([0, 0, 255]));
    let mut ask = Recorder {
        question: Some(blue),
        ..Recorder::default()
    };
    let options = DemoOptions {
        answer_image: Some(dir.path().join("answer.png")),
        ..DemoOptions::default()
    };
    let mut out = Vec::new();
    let mut status = Vec::new();
    let summary = Demo::new(Box::new(NoAudio), &mut ask, options, &mut out, &mut status)
        .with_typed(rx)
        .run()
        .unwrap();
    assert_eq!(summary.typed, 1);
    let picture = image::open(dir.path().join("answer.png"))
        .unwrap()
        .to_rgb8();
    // The first tile is the question: blue, not the glyphs a second text renderer would draw.
    let centre = *picture.get_pixel(8 + 80, 8 + 80);
    assert_eq!(
        centre,
        image::Rgb([0, 0, 255]),
        "{}",
        String::from_utf8_lossy(&status)
    );
}

/// Speaks what it is given, and fails from the `fail_from`-th sentence on.
struct Voice {
    said: Arc<std::sync::Mutex<Vec<String>>>,
    fail_from: usize,
}

impl Speak for Voice {
    fn say(&mut self, text: &str) -> Result<(), String> {
        let mut said = self.said.lock().unwrap();
        said.push(text.to_string());
        if said.len() >= self.fail_from {
            return Err("the speaker is unplugged".into());
        }
        Ok(())
    }
}

#[test]
fn answers_are_spoken_and_a_failing_speaker_is_reported_once_then_left_alone() {
    let rx = typed(&["tiger", "cup", "lamp"]);
    let said = Arc::new(std::sync::Mutex::new(Vec::new()));
    let voice = Voice {
        said: Arc::clone(&said),
        fail_from: 2,
    };
    let mut ask = Recorder::default();
    let (summary, _, status) = run_loop(
        Box::new(NoAudio),
        &mut ask,
        DemoOptions::default(),
        |demo| demo.with_typed(rx).with_speaker(Box::new(voice)),
    );
    assert_eq!(summary.unwrap().typed, 3);
    // The second sentence fails: it is reported, and the third answer is not spoken at all.
    assert_eq!(*said.lock().unwrap(), ["tiger. I have seen it."; 2]);
    assert_eq!(
        status.matches("--say: the speaker is unplugged").count(),
        1,
        "{status}"
    );
}

/// A device that fails once in the middle of the stream and comes back.
struct Flaky {
    inner: WavSource,
    pulls: usize,
    fail_at: usize,
    reopened: usize,
}

impl Source for Flaky {
    fn describe(&self) -> String {
        "flaky".into()
    }
    fn pull(&mut self, out: &mut Vec<f32>, wait: Duration) -> Result<Pulled, SourceError> {
        self.pulls += 1;
        if self.pulls == self.fail_at {
            return Err(SourceError::new(Fault::Retry, "device unplugged"));
        }
        self.inner.pull(out, wait)
    }
    fn reopen(&mut self) -> Result<(), SourceError> {
        self.reopened += 1;
        if self.reopened == 1 {
            return Err(SourceError::new(Fault::Retry, "still unplugged"));
        }
        Ok(())
    }
    fn overruns(&self) -> Overruns {
        Overruns::default()
    }
}

#[test]
fn a_device_fault_is_reported_retried_and_the_loop_carries_on() {
    let inner = three_questions_wav(Pace::Fast);
    // The fault comes at the first pull, before any audio is taken: how much audio a later pull holds
    // depends on the feeder thread's timing (under qemu-user a third pull already held the whole first
    // question, which the fault then dropped), and the three questions must all be answered either way.
    let flaky = Flaky {
        inner,
        pulls: 0,
        fail_at: 1,
        reopened: 0,
    };
    let mut ask = Recorder::default();
    let (lines, status, summary) = run_demo(Box::new(flaky), &mut ask, quick_retries());
    let expected = [
        "audio lost: device unplugged",
        "retrying in 0.0 s (Ctrl-C to stop)",
        "audio still unavailable: still unplugged",
        "retrying in 0.0 s (Ctrl-C to stop)",
        "audio back: listening to flaky",
    ];
    let lines_said: Vec<&str> = status.lines().collect();
    assert_eq!(lines_said, expected, "{status}");
    assert_eq!(summary.device_faults, 2, "{status}");
    assert_eq!(lines.len(), 3, "{lines:?}");
}

/// The three-question WAV, with faults injected by `fault(pull, out)`: `None` passes the pull to the file,
/// `Some(result)` is what the source reports instead (with whatever it appended to `out`).
type Injected = Option<Result<Pulled, SourceError>>;

struct Faulty<F: FnMut(usize, &mut Vec<f32>) -> Injected> {
    inner: WavSource,
    pulls: usize,
    fault: F,
}

fn faulty<F: FnMut(usize, &mut Vec<f32>) -> Injected>(fault: F) -> Faulty<F> {
    Faulty {
        inner: three_questions_wav(Pace::Fast),
        pulls: 0,
        fault,
    }
}

impl<F: FnMut(usize, &mut Vec<f32>) -> Injected> Source for Faulty<F> {
    fn describe(&self) -> String {
        "faulty".into()
    }
    fn pull(&mut self, out: &mut Vec<f32>, wait: Duration) -> Result<Pulled, SourceError> {
        self.pulls += 1;
        if let Some(injected) = (self.fault)(self.pulls, out) {
            return injected;
        }
        self.inner.pull(out, wait)
    }
}

fn quick_retries() -> DemoOptions {
    DemoOptions {
        retry_initial: Duration::from_millis(1),
        retry_max: Duration::from_millis(4),
        ..DemoOptions::default()
    }
}

#[test]
fn a_stalling_source_is_waited_for_and_every_question_still_answered() {
    // Nothing for the first 300 pulls, then nothing on two pulls of every three.
    let source = faulty(|pull, _| (pull <= 300 || pull % 3 != 0).then_some(Ok(Pulled::Idle)));
    let mut ask = Recorder::default();
    let (lines, status, summary) = run_demo(Box::new(source), &mut ask, quick_retries());
    assert_onsets(&lines, &ONSETS);
    assert_eq!(summary.device_faults, 0);
    assert!(status.is_empty(), "{status}");
}

#[test]
fn garbage_samples_from_a_source_are_silence_not_a_crash_or_a_question() {
    // Before the file's first samples, 0.5 s of NaN and infinities arrives in the file's own format
    // (16 kHz mono), in one pull.
    let format = StreamFormat {
        rate: 16_000,
        channels: 1,
    };
    let source = faulty(move |pull, out| {
        (pull == 1).then(|| {
            out.extend(
                [f32::NAN, f32::INFINITY, f32::NEG_INFINITY]
                    .iter()
                    .cycle()
                    .take(8_000),
            );
            Ok(Pulled::Audio(format))
        })
    });
    let mut ask = Recorder::default();
    let (lines, _, summary) = run_demo(Box::new(source), &mut ask, quick_retries());
    // The garbage became 0.5 s of silence at the start: every question moved by 0.5 s, none was added
    // or lost.
    let shifted: Vec<f64> = ONSETS.iter().map(|o| o + 0.5).collect();
    assert_onsets(&lines, &shifted);
    assert_eq!(summary.device_faults, 0);
}

#[test]
fn audio_in_an_unusable_format_is_a_device_fault_and_the_loop_recovers() {
    let source = faulty(|pull, out| {
        // Before any real audio, so that no question is cut by the fault.
        (pull == 1).then(|| {
            out.extend([0.5; 64]);
            Ok(Pulled::Audio(StreamFormat {
                rate: 0,
                channels: 0,
            }))
        })
    });
    let mut ask = Recorder::default();
    let (lines, status, summary) = run_demo(Box::new(source), &mut ask, quick_retries());
    let said: Vec<&str> = status.lines().collect();
    assert_eq!(said.len(), 3, "{status}");
    assert!(
        said[0].starts_with("audio lost: audio stream of 0 Hz with 0 channels is not usable"),
        "{status}"
    );
    assert_eq!(said[2], "audio back: listening to faulty");
    assert_eq!(summary.device_faults, 1);
    assert_eq!(lines.len(), 3, "{lines:?}");
}

/// Delivers audio until `gone_after_s` seconds of it have been pulled, then the device is gone: every
/// pull fails, every reopen fails (`fatal`: as a removed device, else as one that may come back).
struct Vanishing {
    inner: WavSource,
    delivered: f64,
    gone_after_s: f64,
    fatal: bool,
    failed_reopens: usize,
    stop: Arc<AtomicBool>,
}

impl Source for Vanishing {
    fn describe(&self) -> String {
        "vanishing".into()
    }
    fn pull(&mut self, out: &mut Vec<f32>, wait: Duration) -> Result<Pulled, SourceError> {
        if self.delivered >= self.gone_after_s {
            return Err(SourceError::new(Fault::Retry, "device gone"));
        }
        let mut block = Vec::new();
        let pulled = self.inner.pull(&mut block, wait)?;
        if let Pulled::Audio(f) = pulled {
            // Exactly up to the moment it goes: a pull may hold more than that.
            let per_s = f64::from(f.channels) * f64::from(f.rate);
            let left = ((self.gone_after_s - self.delivered) * per_s).ceil() as usize;
            let take = block.len().min(left) / f.channels as usize * f.channels as usize;
            out.extend_from_slice(&block[..take]);
            self.delivered += take as f64 / per_s;
        }
        Ok(pulled)
    }
    fn reopen(&mut self) -> Result<(), SourceError> {
        if self.fatal {
            return Err(SourceError::new(Fault::Fatal, "device removed for good"));
        }
        self.failed_reopens += 1;
        if self.failed_reopens == 3 {
            // Ctrl-C, as an operator would press it.
            self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        Err(SourceError::new(Fault::Retry, "no such device"))
    }
}

fn run_vanishing(fatal: bool) -> (anyhow::Result<Summary>, Vec<Value>, String) {
    let stop = Arc::new(AtomicBool::new(false));
    let source = Vanishing {
        inner: three_questions_wav(Pace::Fast),
        delivered: 0.0,
        // After the first question (speech from 0.80 s, about 1.5 s long), just before the second (3.19 s).
        gone_after_s: 3.15,
        fatal,
        failed_reopens: 0,
        stop: Arc::clone(&stop),
    };
    let mut ask = Recorder::default();
    let options = DemoOptions {
        json: true,
        ..quick_retries()
    };
    let (result, out, status) = run_loop(Box::new(source), &mut ask, options, |demo| {
        demo.with_stop_flag(stop)
    });
    (result, json_lines(&out), status)
}

#[test]
fn a_source_that_disappears_is_retried_with_reports_until_stopped() {
    let (result, lines, status) = run_vanishing(false);
    let summary = result.unwrap();
    // The question heard before the device went is answered; then one loss and three failed reopens.
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(summary.device_faults, 4, "{status}");
    let said: Vec<&str> = status.lines().collect();
    assert_eq!(said[0], "audio lost: device gone", "{status}");
    assert_eq!(
        said.iter()
            .filter(|l| **l == "audio still unavailable: no such device")
            .count(),
        3,
        "{status}"
    );
    assert!(!status.contains("audio back"), "{status}");
}

#[test]
fn a_source_that_is_gone_for_good_ends_the_loop_with_its_reason() {
    let (result, lines, status) = run_vanishing(true);
    let err = result.expect_err("a removed device ends the loop");
    assert_eq!(err.to_string(), "device removed for good");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(status.starts_with("audio lost: device gone"), "{status}");
}

#[test]
fn the_stop_flag_ends_the_loop_and_max_answers_stops_after_n() {
    let source = three_questions_wav(Pace::Fast);
    let mut ask = Recorder::default();
    let (lines, _, _) = run_demo(
        Box::new(source),
        &mut ask,
        DemoOptions {
            max_answers: Some(2),
            ..DemoOptions::default()
        },
    );
    assert_eq!(lines.len(), 2);

    let source = three_questions_wav(Pace::Realtime);
    let stop = Arc::new(AtomicBool::new(true));
    let mut ask = Recorder::default();
    let (summary, out, _) = run_loop(Box::new(source), &mut ask, DemoOptions::default(), |demo| {
        demo.with_stop_flag(stop)
    });
    assert_eq!(summary.unwrap().utterances, 0);
    assert!(out.is_empty());
}
