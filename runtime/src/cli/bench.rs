//! `visualbyte bench`: times each stage of the query path on the installed model, so that a board can be
//! measured in one command.
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use image::RgbImage;
use serde::Serialize;
use visualbyte::answer::Engine;
use visualbyte::bench::{measure, random_index, random_unit_vectors, Stats};
use visualbyte::embed::{Embedder, OpTime};
use visualbyte::index::{EmbeddingIndex, VectorType};
use visualbyte::render::{audio, Renderer};

use super::common::{resolve_default, ThreadsArg, DEFAULT_INDEX, DEFAULT_MODEL};
use super::info::print_stdout;

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The ONNX model (default: models/visualbyte.onnx).
    #[arg(long)]
    model: Option<PathBuf>,
    /// The image-memory index built with the model (default: models/memory.vbi).
    #[arg(long)]
    index: Option<PathBuf>,
    /// A spoken question (WAV) for the audio stages (default: models/samples/tiger.wav).
    #[arg(long)]
    wav: Option<PathBuf>,
    /// The typed question for the text stages.
    #[arg(long, default_value = "where is the tiger")]
    text: String,
    /// Timed runs per stage (the median is reported).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    runs: u32,
    /// Untimed runs before each stage.
    #[arg(long, default_value_t = 3)]
    warmup: u32,
    /// Images per run for the index-build embedding stage (0 skips it).
    #[arg(long, default_value_t = 16)]
    batch: u32,
    /// Sizes of the random memories searched, comma separated (0 or empty skips them).
    #[arg(long, value_delimiter = ',', default_value = "10000,100000")]
    search_sizes: Vec<usize>,
    /// Vector types of the random memories, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "f32,f16,i8")]
    vector_types: Vec<VectorType>,
    /// Folder for the random memories (default: a temporary folder, removed after).
    #[arg(long)]
    scratch: Option<PathBuf>,
    /// Also time every operator of the model's plan over the runs and print where one embedding's time
    /// goes, per operator kind (`Pointwise`, `PaddedDepthWise`, `OptMatMul`, …).
    #[arg(long)]
    ops: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    threads: ThreadsArg,
}

#[derive(Debug, Serialize)]
struct Report {
    model: String,
    model_id: String,
    input_size: u32,
    dim: usize,
    threads: usize,
    cpus: usize,
    arch: &'static str,
    /// Milliseconds to read, check and optimise the model (one cold-ish load).
    model_load_ms: f64,
    stages: Vec<Stage>,
    recall: Vec<Recall>,
    /// With `--ops`: milliseconds per embedding in each kind of operator, slowest first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ops: Vec<OpTime>,
}

#[derive(Debug, Serialize)]
struct Stage {
    name: String,
    #[serde(flatten)]
    stats: Stats,
    /// What one run does.
    what: String,
}

/// Recall@10 of a quantised random memory against the same vectors stored as f32.
#[derive(Debug, Serialize)]
struct Recall {
    size: usize,
    vector_type: VectorType,
    queries: usize,
    recall_at_10: f64,
}

/// The stages timed so far, in the order they ran.
#[derive(Default)]
struct Stages(Vec<Stage>);

impl Stages {
    fn push(&mut self, name: &str, what: String, stats: Stats) {
        self.0.push(Stage {
            name: name.to_string(),
            stats,
            what,
        })
    }
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let threads = args.threads.apply(1)?;
    let model_path = resolve_default(args.model.clone(), DEFAULT_MODEL, "model")?;
    let index_path = resolve_default(args.index.clone(), DEFAULT_INDEX, "index")?;
    let wav_path = match &args.wav {
        Some(p) => p.clone(),
        None => resolve_default(None, "samples/tiger.wav", "spoken question")?,
    };
    let progress = |name: &str| {
        if !args.json {
            eprintln!("timing {name} …");
        }
    };

    let t = Instant::now();
    let embedder = Embedder::load(&model_path)?;
    let model_load_ms = t.elapsed().as_secs_f64() * 1e3;
    let mut renderer = Renderer::new(embedder.renderer_settings().clone())?;
    let mut stages = Stages::default();

    progress("render");
    time_rendering(&args, &wav_path, &mut renderer, &mut stages)?;
    progress("embed");
    let image = renderer.text(&args.text)?;
    let ops = time_embedding(
        &args,
        &model_path,
        &embedder,
        &image,
        &mut stages,
        &progress,
    )?;
    progress("search");
    let index = EmbeddingIndex::open(&index_path)?;
    let query = embedder.embed_one(&image)?;
    let (warmup, runs) = (args.warmup as usize, args.runs as usize);
    stages.push(
        "search_installed",
        format!(
            "top-64 over {} ({} memories, {})",
            index_path.display(),
            index.len(),
            index.header().vector_type.as_str()
        ),
        measure(warmup, runs, || index.search(&query, 64).map(drop))?,
    );
    let recall = time_random_search(&args, &embedder, &mut stages, &progress)?;

    // The whole question, as the demo asks it.
    progress("query");
    let mut engine = Engine::new(embedder, index)?;
    stages.push(
        "spoken_query",
        format!(
            "{} → answer (read, render, embed, search)",
            wav_path.display()
        ),
        measure(warmup, runs, || engine.ask_wav(&wav_path).map(drop))?,
    );
    stages.push(
        "typed_query",
        format!("{:?} → answer", args.text),
        measure(warmup, runs, || engine.ask_text(&args.text).map(drop))?,
    );

    let c = engine.embedder().contract();
    let report = Report {
        model: model_path.display().to_string(),
        model_id: c.model_id.clone(),
        input_size: c.input.size,
        dim: c.embedding.dim,
        threads,
        cpus: visualbyte::embed::threads::available_threads(),
        arch: std::env::consts::ARCH,
        model_load_ms,
        stages: stages.0,
        recall,
        ops,
    };
    if args.json {
        print_stdout(&format!("{}\n", serde_json::to_string_pretty(&report)?))
    } else {
        print_stdout(&table(&report))
    }
}

/// WAV decoding, the log-mel image of 1 s and 2 s of speech, and the text image.
fn time_rendering(
    args: &BenchArgs,
    wav_path: &Path,
    renderer: &mut Renderer,
    stages: &mut Stages,
) -> anyhow::Result<()> {
    let (warmup, runs) = (args.warmup as usize, args.runs as usize);
    let settings = renderer.settings().clone();
    let rate = settings.audio.sample_rate;
    let wav_bytes =
        std::fs::read(wav_path).with_context(|| format!("cannot read {}", wav_path.display()))?;
    let max_s = settings.audio.max_seconds;
    let pcm = audio::decode_wav_bytes(&wav_bytes, max_s)?;
    stages.push(
        "wav_decode_resample",
        format!(
            "decode {} ({:.2} s at {} Hz) and resample to {rate} Hz",
            wav_path.display(),
            pcm.seconds(),
            pcm.rate
        ),
        measure(warmup, runs, || {
            let pcm = audio::decode_wav_bytes(&wav_bytes, max_s)?;
            audio::resample_to(&pcm, rate).map(drop)
        })?,
    );
    let speech = audio::resample_to(&pcm, rate)?;
    for seconds in [1usize, 2] {
        let clip = looped(&speech, seconds * rate as usize);
        stages.push(
            &format!("log_mel_{seconds}s"),
            format!("log-mel image of {seconds} s of {rate} Hz audio"),
            measure::<anyhow::Error>(warmup, runs, || {
                renderer.audio_samples(&clip);
                Ok(())
            })?,
        );
    }
    stages.push(
        "render_text",
        format!("glyph image of {:?}", args.text),
        measure(warmup, runs, || renderer.text(&args.text).map(drop))?,
    );
    Ok(())
}

/// One image through the model; with `--ops`, per operator kind; with `--batch N`, per image in batches.
fn time_embedding(
    args: &BenchArgs,
    model_path: &Path,
    embedder: &Embedder,
    image: &RgbImage,
    stages: &mut Stages,
    progress: &dyn Fn(&str),
) -> anyhow::Result<Vec<OpTime>> {
    let (warmup, runs) = (args.warmup as usize, args.runs as usize);
    stages.push(
        "embed",
        format!("one {0}×{0} image through the model", embedder.input_size()),
        measure(warmup, runs, || embedder.embed_one(image).map(drop))?,
    );
    let ops = if args.ops {
        progress("operators");
        embedder.profile_ops(image, runs)?
    } else {
        Vec::new()
    };
    if args.batch > 1 {
        let batch = args.batch as usize;
        let batched = Embedder::load_with_batch(model_path, batch)?;
        let images = vec![image.clone(); batch];
        let mut stats = measure(warmup.min(1), runs.div_ceil(batch).max(3), || {
            batched.embed(&images).map(drop)
        })?;
        per_item(&mut stats, batch);
        stages.push(
            "embed_batch",
            format!("per image, in runs of {batch} (index build)"),
            stats,
        );
    }
    Ok(ops)
}

/// Top-10 over random memories of each `--search-sizes` and `--vector-types`, and the quantised types'
/// recall@10 against f32.
fn time_random_search(
    args: &BenchArgs,
    embedder: &Embedder,
    stages: &mut Stages,
    progress: &dyn Fn(&str),
) -> anyhow::Result<Vec<Recall>> {
    let (warmup, runs) = (args.warmup as usize, args.runs as usize);
    let mut recall = Vec::new();
    let sizes: Vec<usize> = args
        .search_sizes
        .iter()
        .copied()
        .filter(|&n| n > 0)
        .collect();
    if sizes.is_empty() {
        return Ok(recall);
    }
    let tmp;
    let scratch: &Path = match &args.scratch {
        Some(p) => {
            std::fs::create_dir_all(p).with_context(|| format!("cannot create {}", p.display()))?;
            p
        }
        None => {
            tmp = tempfile::tempdir().context("cannot create a temporary folder")?;
            tmp.path()
        }
    };
    let dim = embedder.dim();
    let queries = random_unit_vectors(50, dim, 99);
    for &n in &sizes {
        let mut exact: Option<Vec<Vec<usize>>> = None;
        for (i, &vt) in args.vector_types.iter().enumerate() {
            progress(&format!("search over {n} random {} memories", vt.as_str()));
            let path = scratch.join(format!("random-{n}-{}-{i}.vbi", vt.as_str()));
            let idx = random_index(&path, embedder.model_id(), n, dim, vt, 7)?;
            let q = &queries[..dim];
            stages.push(
                &format!("search_{n}_{}", vt.as_str()),
                format!("top-10 over {n} random {dim}-d {} memories", vt.as_str()),
                measure(warmup, runs, || idx.search(q, 10).map(drop))?,
            );
            let tops: Vec<Vec<usize>> = queries
                .chunks_exact(dim)
                .map(|q| {
                    idx.search(q, 10)
                        .map(|h| h.into_iter().map(|h| h.index).collect())
                })
                .collect::<Result<_, _>>()?;
            if vt == VectorType::F32 {
                exact = Some(tops);
            } else if let Some(exact) = &exact {
                recall.push(Recall {
                    size: n,
                    vector_type: vt,
                    queries: tops.len(),
                    recall_at_10: recall_at(exact, &tops),
                });
            }
            drop(idx);
            let _ = std::fs::remove_file(&path);
        }
    }
    Ok(recall)
}

fn looped(samples: &[f32], len: usize) -> Vec<f32> {
    if samples.is_empty() {
        return vec![0.0; len];
    }
    samples.iter().copied().cycle().take(len).collect()
}

/// Turns per-run times into per-item times.
fn per_item(stats: &mut Stats, n: usize) {
    let n = n as f64;
    stats.median_ms /= n;
    stats.p10_ms /= n;
    stats.p90_ms /= n;
    stats.min_ms /= n;
    stats.mean_ms /= n;
}

/// Mean fraction of each exact top-10 found in the approximate top-10.
fn recall_at(exact: &[Vec<usize>], approx: &[Vec<usize>]) -> f64 {
    let mut found = 0usize;
    let mut total = 0usize;
    for (e, a) in exact.iter().zip(approx) {
        total += e.len();
        found += e.iter().filter(|i| a.contains(i)).count();
    }
    if total == 0 {
        1.0
    } else {
        found as f64 / total as f64
    }
}

fn table(r: &Report) -> String {
    let mut s = format!(
        "model {} ({}, {} px, {}-d), {} inference thread(s) of {} CPUs, {}\nmodel load and optimise: {:.0} ms\n\n",
        r.model, r.model_id, r.input_size, r.dim, r.threads, r.cpus, r.arch, r.model_load_ms
    );
    s.push_str(&format!(
        "{:<24} {:>10} {:>10} {:>10}  {}\n",
        "stage", "median ms", "p10 ms", "p90 ms", "what"
    ));
    for st in &r.stages {
        s.push_str(&format!(
            "{:<24} {:>10.3} {:>10.3} {:>10.3}  {}\n",
            st.name, st.stats.median_ms, st.stats.p10_ms, st.stats.p90_ms, st.what
        ));
    }
    if !r.ops.is_empty() {
        let total: f64 = r.ops.iter().map(|o| o.ms_per_run).sum();
        let threads = r.ops.iter().map(|o| o.threads).max().unwrap_or(1);
        s.push_str(&format!(
            "\none embedding by operator ({total:.3} ms in all, {threads} thread(s)):\n{:<28} {:>6} {:>10} {:>7}\n",
            "operator", "nodes", "ms", "share"
        ));
        for o in &r.ops {
            s.push_str(&format!(
                "{:<28} {:>6} {:>10.3} {:>6.1}%\n",
                o.op,
                o.nodes,
                o.ms_per_run,
                100.0 * o.ms_per_run / total.max(f64::MIN_POSITIVE)
            ));
        }
        s.push('\n');
    }
    for rc in &r.recall {
        s.push_str(&format!(
            "recall@10 of {} vs f32 over {} random memories: {:.3} ({} queries)\n",
            rc.vector_type.as_str(),
            rc.size,
            rc.recall_at_10,
            rc.queries
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looped_audio_has_the_asked_length() {
        assert_eq!(looped(&[1.0, 2.0], 5), vec![1.0, 2.0, 1.0, 2.0, 1.0]);
        assert_eq!(looped(&[], 3), vec![0.0; 3]);
    }

    #[test]
    fn recall_counts_the_exact_hits_found() {
        let exact = vec![vec![1, 2, 3, 4], vec![5, 6]];
        let approx = vec![vec![1, 2, 9, 4], vec![6, 5]];
        assert!((recall_at(&exact, &approx) - 5.0 / 6.0).abs() < 1e-12);
    }
}
