//! `visualbyte query`: ask the image memory by typed text, a WAV recording or a picture.
use std::path::PathBuf;
use std::time::Instant;

use clap::{ArgGroup, Args};
use visualbyte::index::{Match, Matched};
use visualbyte::query::{Answer, DEFAULT_TOP_K};

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
        print_stdout(&human(&answer))
    }
}

/// What a hit line adds when the memory's label, not its picture, matched.
pub fn by_label_mark(h: &visualbyte::query::AnswerHit) -> &'static str {
    if h.matched == Matched::Label {
        "  (by its label)"
    } else {
        ""
    }
}

/// The answer line, the ranked memories and the timings.
pub fn human(a: &Answer) -> String {
    let mut s = match (a.best(), a.not_in_memory, a.threshold) {
        (None, _, _) => "not in memory (the memory is empty)\n".to_string(),
        (Some(b), true, Some(t)) => {
            format!(
                "not in memory (best: {} {:.2} < {:.2})\n",
                b.label, b.score, t
            )
        }
        (Some(b), true, None) => format!("not in memory (best: {} {})\n", b.label, b.score),
        (Some(b), false, _) if b.matched == Matched::Label => {
            format!("{} ({:.2}, by its label)\n", b.label, b.score)
        }
        (Some(b), false, _) => format!("{} ({:.2})\n", b.label, b.score),
    };
    let width = a
        .hits
        .iter()
        .map(|h| h.label.chars().count())
        .max()
        .unwrap_or(0);
    for (n, h) in a.hits.iter().enumerate() {
        s.push_str(&format!(
            "{:>3}. {:<width$}  {:.3}  {}{}\n",
            n + 1,
            h.label,
            h.score,
            h.path,
            by_label_mark(h)
        ));
    }
    let t = &a.timings;
    s.push_str(&format!(
        "{} query: render {:.1} ms, embed {:.1} ms, search {:.1} ms (total {:.1} ms)\n",
        a.modality,
        t.render_ms,
        t.embed_ms,
        t.search_ms,
        t.total_ms()
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use visualbyte::query::{rank, AnswerHit, Modality, Timings};

    /// A memory of `label`, found by its picture, stored as `/m/<label>.png`.
    fn hit(label: &str, score: f32) -> AnswerHit {
        let path = format!("/m/{label}.png");
        AnswerHit {
            label: label.into(),
            path,
            score,
            matched: Matched::Picture,
        }
    }

    #[test]
    fn the_answer_line_says_the_label_or_not_in_memory() {
        let t = Timings::default();
        let a = rank(
            "q".into(),
            Modality::Text,
            vec![hit("tiger", 0.83), hit("cat", 0.5)],
            5,
            Some(0.35),
            t,
        );
        let s = human(&a);
        assert!(s.starts_with("tiger (0.83)\n"), "{s}");
        assert!(s.contains("  1. tiger  0.830  /m/tiger.png\n"), "{s}");
        assert!(s.contains("  2. cat    0.500  /m/cat.png\n"), "{s}");
        assert!(s.contains("text query: render"), "{s}");
        let a = rank(
            "q".into(),
            Modality::Audio,
            vec![hit("tiger", 0.21)],
            5,
            Some(0.35),
            t,
        );
        assert!(human(&a).starts_with("not in memory (best: tiger 0.21 < 0.35)\n"));
        let mut by_label = hit("tiger", 0.9);
        by_label.matched = Matched::Label;
        let a = rank("q".into(), Modality::Text, vec![by_label], 5, Some(0.35), t);
        let s = human(&a);
        assert!(s.starts_with("tiger (0.90, by its label)\n"), "{s}");
        assert!(
            s.contains("  1. tiger  0.900  /m/tiger.png  (by its label)\n"),
            "{s}"
        );
        let a = rank("q".into(), Modality::Image, vec![], 5, Some(0.35), t);
        assert!(human(&a).starts_with("not in memory (the memory is empty)\n"));
    }
}
