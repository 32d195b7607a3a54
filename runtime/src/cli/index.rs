//! `visualbyte index`: build an image-memory index from a folder of pictures, add to it, inspect it.
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use indicatif::ProgressBar;
use serde::Serialize;
use visualbyte::embed::Embedder;
use visualbyte::index::build::{
    collect_add_items, collect_build_items, count_labels, embed_all, embed_labels,
    labels_without_vectors, Embedded, Progress, Skipped,
};
use visualbyte::index::{
    append_index_with_labels, write_index_with_labels, EmbeddingIndex, VectorType,
};
use visualbyte::render::Renderer;

use super::common::{self, ThreadsArg, DEFAULT_INDEX, DEFAULT_MODEL};
use super::info::print_stdout;

#[derive(Debug, Subcommand)]
pub enum IndexCommand {
    /// Build an index from a folder of pictures: one sub-folder per label (DIR/tiger/1.jpg is a "tiger").
    ///
    /// Pictures are found recursively, in sorted order, by extension (png, jpg, gif, bmp, webp, tiff,
    /// pnm, qoi, ico, tga); hidden files and folders are skipped. The label is the name of the first
    /// sub-folder below DIR, or comes from --labels. Each picture is drawn by the model's renderer and
    /// embedded; pictures that cannot be read are reported, skipped and counted. The index is written
    /// atomically (an interrupted build leaves the previous index in place). Picture paths are stored
    /// relative to the index file's folder (absolute when they share no folder but the root), so a folder
    /// holding both the index and the pictures can be moved as a whole.
    Build(BuildArgs),
    /// Add pictures (or folders of pictures) to an existing index, all under one label.
    ///
    /// The index must have been built by the same model. Pictures already in the index are skipped.
    /// The index is rewritten atomically: an interrupted add leaves it as it was.
    Add(AddArgs),
    /// Show an index's header and how many pictures each label has.
    Info(InfoArgs),
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Folder of pictures, one sub-folder per label (or any layout with --labels).
    pub dir: PathBuf,
    /// CSV file with a header row naming the columns `path` and `label` (others are ignored). Relative
    /// paths are relative to DIR; pictures under DIR that the CSV does not list are skipped and counted.
    #[arg(long, value_name = "CSV")]
    pub labels: Option<PathBuf>,
    /// The ONNX model [default: visualbyte.onnx in $VISUALBYTE_MODELS or ./models].
    #[arg(long, value_name = "MODEL")]
    pub model: Option<PathBuf>,
    /// Where to write the index [default: memory.vbi in $VISUALBYTE_MODELS, else models/memory.vbi].
    #[arg(short, long, value_name = "OUT")]
    pub out: Option<PathBuf>,
    /// How to store the vectors: f32 (exact), f16 (half the size) or i8 (a quarter of the size).
    #[arg(long, value_name = "TYPE", default_value = "f32")]
    pub vectors: VectorType,
    #[command(flatten)]
    pub embedding: EmbeddingArgs,
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// The index to extend.
    pub index: PathBuf,
    /// Pictures to add; folders are searched for pictures like `index build` does.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// The label of every added picture.
    #[arg(long, value_name = "LABEL")]
    pub label: String,
    /// The ONNX model [default: visualbyte.onnx in $VISUALBYTE_MODELS or ./models]; must be the one that
    /// built the index.
    #[arg(long, value_name = "MODEL")]
    pub model: Option<PathBuf>,
    #[command(flatten)]
    pub embedding: EmbeddingArgs,
}

/// How `index build` and `index add` embed their pictures.
#[derive(Debug, Args)]
pub struct EmbeddingArgs {
    /// Pictures embedded per model run. 1 (the default) was the fastest per picture on the machines
    /// measured (BENCHMARKS.md: 6.3–6.8 ms alone, 8.2–9.5 ms each in runs of 16); more may pay on others.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub batch: u32,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    #[command(flatten)]
    threads: ThreadsArg,
}

#[derive(Debug, Args)]
pub struct InfoArgs {
    /// The index [default: memory.vbi in $VISUALBYTE_MODELS or ./models].
    pub index: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Also check the vectors' checksum (reads the whole file); header and metadata are always checked.
    #[arg(long)]
    pub verify: bool,
}

pub fn run(cmd: IndexCommand) -> anyhow::Result<()> {
    match cmd {
        IndexCommand::Build(args) => build(args),
        IndexCommand::Add(args) => add(args),
        IndexCommand::Info(args) => info(args),
    }
}

/// The model and the renderer its contract describes.
fn load_model(explicit: Option<PathBuf>) -> anyhow::Result<(Embedder, Renderer)> {
    let path = common::resolve_default(explicit, DEFAULT_MODEL, "model")?;
    let embedder =
        Embedder::load(&path).with_context(|| format!("cannot load model {}", path.display()))?;
    let renderer = Renderer::new(embedder.renderer_settings().clone())?;
    Ok((embedder, renderer))
}

/// The progress bar `embed_all` advances (a newtype: the trait is the library's, the bar indicatif's).
struct Bar(ProgressBar);

impl Progress for Bar {
    fn inc(&mut self) {
        self.0.inc(1);
    }

    fn suspend(&mut self, warn: &mut dyn FnMut()) {
        self.0.suspend(warn);
    }
}

impl EmbeddingArgs {
    /// [`embed_all`] with a progress bar on stderr (none with --quiet), cleared when it is done.
    fn embed(
        &self,
        items: &[(PathBuf, String)],
        index_path: &Path,
        model: &mut Embedder,
        renderer: &Renderer,
        skipped: &mut Skipped,
    ) -> anyhow::Result<Embedded> {
        let bar = common::progress_bar(items.len(), self.quiet, "embedding")?;
        let render = |p: &Path| renderer.image_file(p).map_err(anyhow::Error::from);
        let mut bar = Bar(bar);
        let batch = self.batch as usize;
        let embedded = embed_all(items, index_path, model, render, batch, &mut bar, skipped)?;
        bar.0.finish_and_clear();
        Ok(embedded)
    }
}

/// Everything left out, on stderr at the end so nothing is lost silently.
fn report(skipped: &Skipped) {
    let lines = skipped.lines();
    if !lines.is_empty() {
        eprintln!("skipped: {}", lines.join("; "));
    }
}

/// Where `index build` writes when no -o is given.
fn default_out() -> PathBuf {
    match std::env::var_os("VISUALBYTE_MODELS") {
        Some(dir) => PathBuf::from(dir).join(DEFAULT_INDEX),
        None => Path::new("models").join(DEFAULT_INDEX),
    }
}

fn build(args: BuildArgs) -> anyhow::Result<()> {
    args.embedding.threads.apply(1)?;
    let out = args.out.clone().unwrap_or_else(default_out);
    let mut skipped = Skipped::default();
    let items = collect_build_items(&args.dir, args.labels.as_deref(), &mut skipped)?;
    let (mut model, renderer) = load_model(args.model.clone())?;
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let embedded = args
        .embedding
        .embed(&items, &out, &mut model, &renderer, &mut skipped)?;
    if embedded.entries.is_empty() {
        bail!(
            "none of the {} pictures under {} could be read; nothing was written",
            items.len(),
            args.dir.display()
        );
    }
    let labels = count_labels(&embedded.entries);
    let names: Vec<&str> = labels.keys().copied().collect();
    let label_vectors = embed_labels(&mut model, |t| Ok(renderer.text(t)?), &names)?;
    write_index_with_labels(
        &out,
        model.model_id(),
        model.dim(),
        args.vectors,
        &embedded.entries,
        &embedded.vectors,
        &label_vectors,
    )
    .with_context(|| format!("cannot write the index {}", out.display()))?;
    let mut s = format!(
        "indexed {} pictures under {} labels into {} ({}, model {})\n",
        embedded.entries.len(),
        labels.len(),
        out.display(),
        args.vectors,
        model.model_id()
    );
    for (label, n) in &labels {
        s += &format!("  {label}\t{n}\n");
    }
    print_stdout(&s)?;
    report(&skipped);
    Ok(())
}

fn add(args: AddArgs) -> anyhow::Result<()> {
    args.embedding.threads.apply(1)?;
    let label = args.label.trim().to_string();
    if label.is_empty() {
        bail!("--label is empty: name what the pictures show, e.g. --label tiger");
    }
    let (mut model, renderer) = load_model(args.model.clone())?;
    let index = EmbeddingIndex::open_verified(&args.index)?;
    index.check_model(model.model_id())?;
    let existing: HashMap<String, String> = index.entries().map(|e| (e.path, e.label)).collect();
    let unmatched = labels_without_vectors(&index, &label);
    drop(index);

    let mut skipped = Skipped::default();
    let fresh = collect_add_items(&args.index, &args.files, &label, &existing, &mut skipped)?;
    if fresh.is_empty() {
        report(&skipped);
        bail!("nothing to add to {}", args.index.display());
    }
    let embedded =
        args.embedding
            .embed(&fresh, &args.index, &mut model, &renderer, &mut skipped)?;
    if embedded.entries.is_empty() {
        report(&skipped);
        bail!(
            "none of the pictures could be read; {} is unchanged",
            args.index.display()
        );
    }
    let unmatched: Vec<&str> = unmatched.iter().map(String::as_str).collect();
    let label_vectors = embed_labels(&mut model, |t| Ok(renderer.text(t)?), &unmatched)?;
    let header = append_index_with_labels(
        &args.index,
        model.model_id(),
        &embedded.entries,
        &embedded.vectors,
        &label_vectors,
    )
    .with_context(|| format!("cannot add to the index {}", args.index.display()))?;
    print_stdout(&format!(
        "added {} pictures labelled {label:?} to {} (now {} pictures)\n",
        embedded.entries.len(),
        args.index.display(),
        header.count
    ))?;
    report(&skipped);
    Ok(())
}

#[derive(Serialize)]
struct InfoReport {
    path: String,
    bytes: usize,
    version: u32,
    model_id: String,
    dim: usize,
    count: usize,
    vector_type: VectorType,
    /// Whether the vectors' checksum was checked too.
    verified: bool,
    /// How many labels have a label vector (their memories are found by label too).
    label_vectors: usize,
    labels: BTreeMap<String, usize>,
}

fn info(args: InfoArgs) -> anyhow::Result<()> {
    let path = common::resolve_default(args.index, DEFAULT_INDEX, "index")?;
    let index = if args.verify {
        EmbeddingIndex::open_verified(&path)?
    } else {
        EmbeddingIndex::open(&path)?
    };
    let h = index.header();
    let report = InfoReport {
        path: path.display().to_string(),
        bytes: index.file_len(),
        version: h.version,
        model_id: h.model_id.clone(),
        dim: h.dim,
        count: h.count,
        vector_type: h.vector_type,
        verified: args.verify,
        label_vectors: index.vector_labels().len(),
        labels: index.label_counts(),
    };
    if args.json {
        return print_stdout(&format!("{}\n", serde_json::to_string_pretty(&report)?));
    }
    let mut s = format!(
        "index     {} ({} bytes, format version {})\n",
        report.path, report.bytes, report.version
    );
    s += &format!("model     {}\n", report.model_id);
    s += &format!(
        "vectors   {} × {} {}\n",
        report.count, report.dim, report.vector_type
    );
    s += &format!(
        "checked   {}\n",
        if args.verify {
            "header, metadata and vector checksums"
        } else {
            "header and metadata checksums (--verify also checks the vectors)"
        }
    );
    s += &format!(
        "labels    {} ({} found by label too{})\n",
        report.labels.len(),
        report.label_vectors,
        if report.version < 2 {
            "; format version 1 has no label vectors: rebuild to match labels"
        } else {
            ""
        }
    );
    let width = report
        .labels
        .keys()
        .map(|l| l.chars().count())
        .max()
        .unwrap_or(0);
    for (label, n) in &report.labels {
        s += &format!("  {label:<width$}  {n}\n");
    }
    print_stdout(&s)
}
