//! `visualbyte demo`: the on-device loop — listen, detect an utterance, answer from the image memory.
use std::io::BufRead;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use clap::Args;
use visualbyte::answer::DEFAULT_TOP_K;
use visualbyte::board::Board;
use visualbyte::capture::{NoAudio, Pace, PcmSource, Source, SourceSpec, WavSource};
use visualbyte::listen::{Demo, DemoOptions};

use super::common::{
    models_dirs, open_engine, resolve_default, ThreadsArg, DEFAULT_INDEX, DEFAULT_MODEL,
};

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where questions are heard: mic, mic:NAME, wav:FILE_OR_FOLDER, stdin[:RATE[:CHANNELS[:s16le|s32le|f32le|u8]]]
    /// or none. Default: the microphone when this build has one and it opens, else the sample questions in
    /// models/samples.
    #[arg(long)]
    source: Option<SourceSpec>,
    /// How WAV files are played: realtime (as a microphone would) or fast.
    #[arg(long, default_value = "realtime")]
    pace: Pace,
    /// A board profile: rpi4, rpi5, jetson-orin-nano, x86_64, or the path of a .toml file.
    #[arg(long)]
    board: Option<String>,
    /// The ONNX model (default: the board's, else models/visualbyte.onnx).
    #[arg(long)]
    model: Option<PathBuf>,
    /// The image-memory index (default: the board's, else models/memory.vbi).
    #[arg(long)]
    index: Option<PathBuf>,
    /// Memories listed per answer (default: the board's, else 5).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=100))]
    top_k: Option<u64>,
    /// "Not in memory" below this cosine score (default: the board's, else the model's calibrated one).
    #[arg(long, allow_negative_numbers = true)]
    threshold: Option<f32>,
    /// Compare questions with the remembered pictures, their labels, or both (the higher score wins).
    #[arg(long = "match", default_value = "both", value_parser = super::query::parse_match)]
    matching: visualbyte::index::Match,
    /// One JSON object per answer, one per line, on stdout (status lines go to stderr).
    #[arg(long)]
    json: bool,
    /// Write the question's picture beside its top-k memories to this PNG (`%n` in the name becomes the answer number).
    #[arg(long, value_name = "PNG")]
    answer_image: Option<PathBuf>,
    /// Speak each answer with espeak-ng.
    #[arg(long)]
    say: bool,
    /// Also answer typed questions, one per line of stdin.
    #[arg(long)]
    text_stdin: bool,
    /// Stop after this many answers.
    #[arg(long)]
    max_answers: Option<usize>,
    /// List the input devices and exit.
    #[arg(long)]
    list_devices: bool,
    /// Microphone: the device name or part of it (overrides the board's).
    #[arg(long)]
    device: Option<String>,
    /// Microphone: preferred capture rate, used only if the device reports it (overrides the board's).
    #[arg(long)]
    rate: Option<u32>,
    /// Endpointing: audio kept before the onset, ms.
    #[arg(long)]
    pre_roll_ms: Option<u32>,
    /// Endpointing: quiet time that ends an utterance, ms.
    #[arg(long)]
    hangover_ms: Option<u32>,
    /// Endpointing: shortest utterance, ms.
    #[arg(long)]
    min_utterance_ms: Option<u32>,
    /// Endpointing: longest utterance (cut there), ms.
    #[arg(long)]
    max_utterance_ms: Option<u32>,
    /// Endpointing: dB above the noise floor that starts an utterance.
    #[arg(long)]
    start_margin_db: Option<f32>,
    /// Endpointing: nothing quieter than this is speech, dBFS.
    #[arg(long, allow_negative_numbers = true)]
    min_level_db: Option<f32>,
    #[command(flatten)]
    threads: ThreadsArg,
}

const MIC_HELP: &str = "to use a microphone, build with `cargo build --release --features mic` \
                        (needs libasound2-dev) and run `visualbyte demo --source mic`";

pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    if args.list_devices {
        return list_devices();
    }
    let board = args.board.as_deref().map(Board::load).transpose()?;
    // --threads, else the board's, else one.
    args.threads
        .apply(board.as_ref().map_or(1, |b| b.threads))?;
    if let Some(b) = &board {
        if !b.matches_this_build() {
            eprintln!(
                "note: board {} is for {}, this binary runs on {}-{}",
                b.name,
                b.target,
                std::env::consts::ARCH,
                std::env::consts::OS
            );
        }
    }
    let mut endpoint = board
        .as_ref()
        .map(|b| b.endpoint.clone())
        .unwrap_or_default();
    // Each endpointing flag given overrides the board's value (or the default).
    endpoint.pre_roll_ms = args.pre_roll_ms.unwrap_or(endpoint.pre_roll_ms);
    endpoint.hangover_ms = args.hangover_ms.unwrap_or(endpoint.hangover_ms);
    endpoint.min_utterance_ms = args.min_utterance_ms.unwrap_or(endpoint.min_utterance_ms);
    endpoint.max_utterance_ms = args.max_utterance_ms.unwrap_or(endpoint.max_utterance_ms);
    endpoint.start_margin_db = args.start_margin_db.unwrap_or(endpoint.start_margin_db);
    endpoint.min_level_db = args.min_level_db.unwrap_or(endpoint.min_level_db);
    endpoint.validate()?;

    // The flag, else the board's, else the shipped default.
    let model = args.model.clone().or_else(|| board.as_ref()?.model.clone());
    let model = resolve_default(model, DEFAULT_MODEL, "model")?;
    let index = args.index.clone().or_else(|| board.as_ref()?.index.clone());
    let index = resolve_default(index, DEFAULT_INDEX, "index")?;
    let mut engine = open_engine(&model, &index)?;
    engine.set_top_k(
        args.top_k
            .map(|k| k as usize)
            .or_else(|| board.as_ref().map(|b| b.top_k))
            .unwrap_or(DEFAULT_TOP_K),
    )?;
    if let Some(t) = args
        .threshold
        .or_else(|| board.as_ref().and_then(|b| b.threshold))
    {
        engine.set_threshold(Some(t))?;
    }
    engine.set_match(args.matching);

    let source = open_source(&args, board.as_ref())?;
    let threshold = match engine.threshold() {
        Some(t) => format!("not in memory below {t:.3}"),
        None => "no \"not in memory\" threshold (the model is not calibrated)".into(),
    };
    eprintln!(
        "visualbyte demo: listening to {}; model {} ({} memories, {threshold}){}; Ctrl-C to stop",
        source.describe(),
        model.display(),
        engine.index().len(),
        board
            .as_ref()
            .map(|b| format!("; board {}", b.name))
            .unwrap_or_default()
    );

    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = Arc::clone(&stop);
        if let Err(e) = ctrlc::set_handler(move || stop.store(true, Ordering::Relaxed)) {
            log::warn!("Ctrl-C handler not installed: {e}");
        }
    }
    let options = DemoOptions {
        endpoint,
        json: args.json,
        answer_image: args.answer_image.clone(),
        say: args.say,
        max_answers: args.max_answers,
        ..DemoOptions::default()
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut status = std::io::stderr();
    let mut demo = Demo::new(source, &mut engine, options, &mut out, &mut status)
        .with_stop_flag(Arc::clone(&stop));
    if args.text_stdin {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("typed-questions".into())
            .spawn(move || {
                for line in std::io::stdin().lock().lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            })?;
        demo = demo.with_typed(rx);
    }
    let summary = demo.run()?;
    eprintln!(
        "{}: {} utterance(s), {} typed, {} answered, {} failed, {} too short, {} device fault(s), {} samples overrun",
        if stop.load(Ordering::Relaxed) { "stopped" } else { "done" },
        summary.utterances,
        summary.typed,
        summary.answered,
        summary.failed,
        summary.too_short,
        summary.device_faults,
        summary.overrun_samples
    );
    Ok(())
}

fn open_source(args: &DemoArgs, board: Option<&Board>) -> anyhow::Result<Box<dyn Source>> {
    let spec = match &args.source {
        Some(spec) => spec.clone(),
        None if args.text_stdin => SourceSpec::None,
        None => return default_source(args, board),
    };
    Ok(match spec {
        SourceSpec::Wav(path) => Box::new(WavSource::new(&path, args.pace)?),
        SourceSpec::Stdin { format, encoding } => {
            if args.text_stdin {
                anyhow::bail!("stdin cannot carry both audio and typed questions: drop --text-stdin or the stdin source");
            }
            Box::new(PcmSource::stdin(format, encoding)?)
        }
        SourceSpec::None => Box::new(NoAudio),
        SourceSpec::Mic(name) => open_mic(name, args, board, true)?,
    })
}

/// The microphone if there is one; otherwise the shipped sample questions, saying so.
fn default_source(args: &DemoArgs, board: Option<&Board>) -> anyhow::Result<Box<dyn Source>> {
    let why = match open_mic(None, args, board, false) {
        Ok(mic) => return Ok(mic),
        Err(e) => e.to_string(),
    };
    let samples = models_dirs()
        .into_iter()
        .map(|d| d.join("samples"))
        .find(|d| d.is_dir())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "no microphone ({why}) and no sample questions in models/samples; \
                 pass --source wav:FILE_OR_FOLDER, or {MIC_HELP}"
            )
        })?;
    let source = WavSource::new(&samples, args.pace)?;
    eprintln!(
        "no microphone ({why}): answering the {} sample question(s) in {} instead; {MIC_HELP}",
        source.files().len(),
        samples.display()
    );
    Ok(Box::new(source))
}

/// The microphone `name`, else --device, else the board's; with `wait_for_it`, one that is not ready yet
/// is waited for. A build without the `mic` feature has none: the error says so.
fn open_mic(
    name: Option<String>,
    args: &DemoArgs,
    board: Option<&Board>,
    wait_for_it: bool,
) -> anyhow::Result<Box<dyn Source>> {
    #[cfg(not(feature = "mic"))]
    {
        let _ = (name, args, board);
        if wait_for_it {
            anyhow::bail!("this build has no microphone support; {MIC_HELP}");
        }
        anyhow::bail!("this build has no microphone support")
    }
    #[cfg(feature = "mic")]
    {
        use visualbyte::capture::MicSource;
        let audio = board.map(|b| b.audio.clone()).unwrap_or_default();
        let device = name.or_else(|| args.device.clone()).or(audio.device);
        let rate = args.rate.or(audio.rate);
        match MicSource::open(device.clone(), rate, audio.ring_seconds) {
            Ok(mic) => Ok(Box::new(mic)),
            Err(e) if wait_for_it && e.fault == visualbyte::capture::Fault::Retry => {
                eprintln!("microphone not ready ({e}); waiting for it");
                Ok(Box::new(WaitingMic {
                    device,
                    rate,
                    ring_seconds: audio.ring_seconds,
                    mic: None,
                    reason: e.message,
                }))
            }
            Err(e) => Err(anyhow::anyhow!(e.message)),
        }
    }
}

/// A microphone asked for but not there yet: reports a retryable fault until it opens.
#[cfg(feature = "mic")]
struct WaitingMic {
    device: Option<String>,
    rate: Option<u32>,
    ring_seconds: f32,
    mic: Option<visualbyte::capture::MicSource>,
    reason: String,
}

#[cfg(feature = "mic")]
impl Source for WaitingMic {
    fn describe(&self) -> String {
        match &self.mic {
            Some(m) => m.describe(),
            None => format!(
                "microphone {} (not open yet)",
                self.device.as_deref().unwrap_or("(default)")
            ),
        }
    }
    fn pull(
        &mut self,
        out: &mut Vec<f32>,
        wait: std::time::Duration,
    ) -> Result<visualbyte::capture::Pulled, visualbyte::capture::SourceError> {
        match self.mic.as_mut() {
            Some(m) => m.pull(out, wait),
            None => Err(visualbyte::capture::SourceError::new(
                visualbyte::capture::Fault::Retry,
                self.reason.clone(),
            )),
        }
    }
    fn reopen(&mut self) -> Result<(), visualbyte::capture::SourceError> {
        match self.mic.as_mut() {
            Some(m) => m.reopen(),
            None => match visualbyte::capture::MicSource::open(
                self.device.clone(),
                self.rate,
                self.ring_seconds,
            ) {
                Ok(m) => {
                    self.mic = Some(m);
                    Ok(())
                }
                Err(e) => {
                    self.reason = e.message.clone();
                    Err(e)
                }
            },
        }
    }
    fn stream_name(&self) -> Option<String> {
        self.mic.as_ref().and_then(|m| m.stream_name())
    }
    fn overruns(&self) -> visualbyte::capture::Overruns {
        self.mic.as_ref().map(|m| m.overruns()).unwrap_or_default()
    }
    fn discard(&mut self) {
        if let Some(m) = self.mic.as_mut() {
            m.discard();
        }
    }
}

#[cfg(feature = "mic")]
fn list_devices() -> anyhow::Result<()> {
    match visualbyte::capture::input_devices() {
        Ok(devices) if devices.is_empty() => println!("no input devices"),
        Ok(devices) => {
            for d in devices {
                println!(
                    "{} {}  [{}]  {}",
                    if d.is_default { "*" } else { " " },
                    d.name,
                    d.id,
                    d.default_config
                );
            }
        }
        Err(e) => println!("no input devices: {e}"),
    }
    Ok(())
}

#[cfg(not(feature = "mic"))]
fn list_devices() -> anyhow::Result<()> {
    println!("this build has no microphone support; {MIC_HELP}");
    Ok(())
}
