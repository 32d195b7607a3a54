//! `visualbyte query`: ask the image memory by typed text, a WAV recording or a picture.
use std::path::PathBuf;
use std::time::Instant;

use clap::{ArgGroup, Args};
use visualbyte::answer::text::report;
use visualbyte::answer::DEFAULT_TOP_K;
use visualbyte::index::Match;

use super::common::{open_engine, resolve_default, ThreadsArg, DEFAULT_INDEX, DEFAULT_MODEL};
use super::info::print_stdout;

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("question").required(true).args(["text", "wav", "image"])))]
pub struct QueryArgs {
    /// A typed question, e.g. --text tiger.
    #[arg(long)]
    text: Option<String>,
    /// A spoken question: a WAV file (any rate, channel count and sample format).
    #[arg(long)]
    wav: Option<PathBuf>,
    /// A picture: "where have I seen this?".
    #[arg(long)]
    image: Option<PathBuf>,
    /// The ONNX model (default: models/visualbyte.onnx).
    #[arg(long)]
    model: Option<PathBuf>,
    /// The image-memory index, built with the same model (default: models/memory.vbi).
    #[arg(long)]
    index: Option<PathBuf>,
    /// How many memories to list.
    #[arg(long, default_value_t = DEFAULT_TOP_K as u32, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    top_k: u32,
    /// "Not in memory" below this cosine score (default: the model's calibrated threshold).
    #[arg(long, allow_negative_numbers = true)]
    threshold: Option<f32>,
    /// Compare the question with the remembered pictures, their labels, or both (each memory scores the
    /// higher of the two; labels need an index of format 2, which `index build` writes).
    #[arg(long = "match", default_value = "both", value_parser = parse_match)]
    matching: Match,
    /// Print the answer as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    threads: ThreadsArg,
}

pub fn parse_match(s: &str) -> Result<Match, String> {
    s.parse()
        .map_err(|e: visualbyte::index::IndexError| e.to_string())
}

pub fn run(args: QueryArgs) -> anyhow::Result<()> {
    args.threads.apply(1)?;
    let model = resolve_default(args.model, DEFAULT_MODEL, "model")?;
    let index = resolve_default(args.index, DEFAULT_INDEX, "index")?;
    let start = Instant::now();
    let mut engine = open_engine(&model, &index)?;
    log::info!(
        "loaded {} and {} in {:.0} ms",
        model.display(),
        index.display(),
        start.elapsed().as_secs_f64() * 1e3
    );
    engine.set_top_k(args.top_k as usize)?;
    engine.set_match(args.matching);
    if args.matching != Match::Picture && engine.index().vector_labels().is_empty() {
        log::info!(
            "{} has no label vectors (format version {}): its memories are found by picture alone; \
             rebuild it with `visualbyte index build` to match labels too",
            index.display(),
            engine.index().header().version
        );
    }
    if args.threshold.is_some() {
        engine.set_threshold(args.threshold)?;
    }
    let answer = if let Some(text) = &args.text {
        engine.ask_text(text)?
    } else if let Some(wav) = &args.wav {
        engine.ask_wav(wav)?
    } else if let Some(image) = &args.image {
        engine.ask_image(image)?
    } else {
        anyhow::bail!("give a question: --text, --wav or --image");
    };
    if args.json {
        print_stdout(&format!("{}\n", serde_json::to_string_pretty(&answer)?))
    } else {
        print_stdout(&report(&answer))
    }
}
