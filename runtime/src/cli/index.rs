//! `visualbyte index`: build an image-memory index from a folder of pictures, add to it, inspect it.
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use image::RgbImage;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use visualbyte::index::{
    append_index_with_labels, stored_path, write_index_with_labels, EmbeddingIndex, Entry,
    LabelVector, VectorType,
};
use visualbyte::model::Embedder;
use visualbyte::render::Renderer;

use super::common::{self, ThreadsArg, DEFAULT_INDEX, DEFAULT_MODEL};
use super::info::print_stdout;

/// File extensions read as pictures (the formats this build decodes).
const PICTURE_EXTENSIONS: &[&str] = &[
    "png", "jpg", "jpeg", "jpe", "gif", "bmp", "webp", "tif", "tiff", "pnm", "pbm", "pgm", "ppm",
    "pam", "qoi", "ico", "tga",
];

/// Folders deeper than this below DIR are not searched (guards against symlink loops).
const MAX_DEPTH: usize = 32;

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

/// What the build and add loops need from a model; implemented by the real one and, in tests, by a fake.
trait Embed {
    fn model_id(&self) -> &str;
    fn dim(&self) -> usize;
    fn embed_batch(&mut self, images: &[RgbImage]) -> anyhow::Result<Vec<Vec<f32>>>;
}

/// The real model.
struct Model {
    embedder: Embedder,
}

impl Model {
    /// The model and the renderer its contract describes.
    fn load(explicit: Option<PathBuf>) -> anyhow::Result<(Self, Renderer)> {
        let path = common::resolve_default(explicit, DEFAULT_MODEL, "model")?;
        let embedder = Embedder::load(&path)
            .with_context(|| format!("cannot load model {}", path.display()))?;
        let renderer = Renderer::new(embedder.renderer_settings().clone())?;
        Ok((Self { embedder }, renderer))
    }
}

impl Embed for Model {
    fn model_id(&self) -> &str {
        self.embedder.model_id()
    }

    fn dim(&self) -> usize {
        self.embedder.dim()
    }

    fn embed_batch(&mut self, images: &[RgbImage]) -> anyhow::Result<Vec<Vec<f32>>> {
        Ok(self.embedder.embed(images)?)
    }
}

/// The text a label is read as: a folder name's underscores are spaces ("pickup_truck" is asked as
/// "pickup truck").
pub fn label_text(label: &str) -> String {
    label.replace('_', " ")
}

/// Each label rendered as text and embedded by the model: what a memory is found by besides its picture.
/// A label the text renderer refuses keeps its memories findable by picture alone (with a warning).
fn embed_labels(
    model: &mut impl Embed,
    render_text: impl Fn(&str) -> anyhow::Result<RgbImage>,
    labels: &[&str],
) -> anyhow::Result<Vec<LabelVector>> {
    let mut rendered = Vec::with_capacity(labels.len());
    let mut kept = Vec::with_capacity(labels.len());
    for &label in labels {
        match render_text(&label_text(label)) {
            Ok(image) => {
                rendered.push(image);
                kept.push(label);
            }
            Err(e) => log::warn!(
                "label {label:?} cannot be rendered as text ({e:#}): its memories are found by picture alone"
            ),
        }
    }
    let mut out = Vec::with_capacity(kept.len());
    for (labels, images) in kept.chunks(32).zip(rendered.chunks(32)) {
        let vectors = model.embed_batch(images)?;
        out.extend(labels.iter().zip(vectors).map(|(l, vector)| LabelVector {
            label: l.to_string(),
            vector,
        }));
    }
    Ok(out)
}

/// Where `index build` writes when no -o is given.
fn default_out() -> PathBuf {
    match std::env::var_os("VISUALBYTE_MODELS") {
        Some(dir) => PathBuf::from(dir).join(DEFAULT_INDEX),
        None => Path::new("models").join(DEFAULT_INDEX),
    }
}

fn build(args: BuildArgs) -> anyhow::Result<()> {
    args.threads.apply(1)?;
    let out = args.out.clone().unwrap_or_else(default_out);
    let mut skipped = Skipped::default();
    let items = collect_build_items(&args.dir, args.labels.as_deref(), &mut skipped)?;
    let (mut model, renderer) = Model::load(args.model.clone())?;
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let render = |p: &Path| renderer.image_file(p).map_err(anyhow::Error::from);
    let embedded = embed_all(
        &items,
        &out,
        &mut model,
        render,
        args.batch as usize,
        args.quiet,
        &mut skipped,
    )?;
    if embedded.entries.is_empty() {
        bail!(
            "none of the {} pictures under {} could be read; nothing was written",
            items.len(),
            args.dir.display()
        );
    }
    let labels: Vec<&str> = count_labels(&embedded.entries).into_keys().collect();
    let label_vectors = embed_labels(&mut model, |t| Ok(renderer.text(t)?), &labels)?;
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
    let labels = count_labels(&embedded.entries);
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
    skipped.report();
    Ok(())
}

fn add(args: AddArgs) -> anyhow::Result<()> {
    args.threads.apply(1)?;
    let label = args.label.trim().to_string();
    if label.is_empty() {
        bail!("--label is empty: name what the pictures show, e.g. --label tiger");
    }
    let (mut model, renderer) = Model::load(args.model.clone())?;
    let index = EmbeddingIndex::open_verified(&args.index)?;
    index.check_model(model.model_id())?;
    let existing: HashMap<String, String> = index.entries().map(|e| (e.path, e.label)).collect();
    // Labels still without a label vector (all of a version 1 index's): added with this write.
    let mut unmatched: Vec<String> = index
        .label_counts()
        .into_keys()
        .chain([label.clone()])
        .filter(|l| index.label_vector(l).is_none())
        .collect();
    unmatched.sort();
    unmatched.dedup();
    drop(index);

    let mut skipped = Skipped::default();
    let mut items = Vec::new();
    for file in &args.files {
        let meta =
            std::fs::metadata(file).with_context(|| format!("cannot read {}", file.display()))?;
        if meta.is_dir() {
            let mut found = Vec::new();
            walk(file, 0, &mut found, &mut skipped)?;
            items.extend(found.into_iter().map(|p| (p, label.clone())));
        } else {
            items.push((file.clone(), label.clone()));
        }
    }
    let mut fresh = Vec::new();
    for (path, label) in items {
        let stored = match stored_path(&args.index, &path) {
            Ok(s) => s,
            Err(e) => {
                skipped.unreadable(&path, &e.to_string());
                continue;
            }
        };
        match existing.get(&stored) {
            Some(old) => {
                log::warn!(
                    "{}: already in the index as {old:?}; skipped",
                    path.display()
                );
                skipped.duplicates += 1;
            }
            None => fresh.push((path, label)),
        }
    }
    if fresh.is_empty() {
        skipped.report();
        bail!("nothing to add to {}", args.index.display());
    }
    let render = |p: &Path| renderer.image_file(p).map_err(anyhow::Error::from);
    let embedded = embed_all(
        &fresh,
        &args.index,
        &mut model,
        render,
        args.batch as usize,
        args.quiet,
        &mut skipped,
    )?;
    if embedded.entries.is_empty() {
        skipped.report();
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
    skipped.report();
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

/// Everything left out, reported at the end so nothing is lost silently.
#[derive(Debug, Default)]
struct Skipped {
    unreadable: Vec<(PathBuf, String)>,
    not_pictures: usize,
    hidden: usize,
    unlisted: usize,
    duplicates: usize,
}

impl Skipped {
    fn unreadable(&mut self, path: &Path, why: &str) {
        let shown = path.display().to_string();
        if why.starts_with(&shown) {
            log::warn!("skipped {why}");
        } else {
            log::warn!("skipped {shown}: {why}");
        }
        self.unreadable.push((path.to_path_buf(), why.to_string()));
    }

    fn lines(&self) -> Vec<String> {
        let counts = [
            (
                self.unreadable.len(),
                "unreadable picture (see the warning above)",
                "unreadable pictures (see the warnings above)",
            ),
            (
                self.not_pictures,
                "file that is not a picture (by extension)",
                "files that are not pictures (by extension)",
            ),
            (
                self.hidden,
                "hidden file or folder",
                "hidden files or folders",
            ),
            (
                self.unlisted,
                "picture the labels CSV does not list",
                "pictures the labels CSV does not list",
            ),
            (
                self.duplicates,
                "picture already listed",
                "pictures already listed",
            ),
        ];
        counts
            .iter()
            .filter(|(n, _, _)| *n > 0)
            .map(|&(n, one, many)| format!("{n} {}", if n == 1 { one } else { many }))
            .collect()
    }

    fn report(&self) {
        let lines = self.lines();
        if !lines.is_empty() {
            eprintln!("skipped: {}", lines.join("; "));
        }
    }
}

fn is_picture(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| PICTURE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

fn is_hidden(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.'))
}

/// Pictures below `dir`, recursively, sorted by path within each folder.
fn walk(
    dir: &Path,
    depth: usize,
    out: &mut Vec<PathBuf>,
    skipped: &mut Skipped,
) -> anyhow::Result<()> {
    if depth > MAX_DEPTH {
        skipped.unreadable(
            dir,
            &format!("more than {MAX_DEPTH} folders deep (a symlink loop?)"),
        );
        return Ok(());
    }
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir)
        .with_context(|| format!("cannot read the folder {}", dir.display()))?
    {
        let entry = entry.with_context(|| format!("cannot read the folder {}", dir.display()))?;
        paths.push(entry.path());
    }
    paths.sort();
    for path in paths {
        if is_hidden(&path) {
            skipped.hidden += 1;
            continue;
        }
        match std::fs::metadata(&path) {
            Err(e) => skipped.unreadable(&path, &e.to_string()),
            Ok(m) if m.is_dir() => walk(&path, depth + 1, out, skipped)?,
            Ok(_) if is_picture(&path) => out.push(path),
            Ok(_) => skipped.not_pictures += 1,
        }
    }
    Ok(())
}

/// The pictures to index with their labels, in a deterministic order.
fn collect_build_items(
    dir: &Path,
    labels_csv: Option<&Path>,
    skipped: &mut Skipped,
) -> anyhow::Result<Vec<(PathBuf, String)>> {
    if !dir.is_dir() {
        bail!("{} is not a folder of pictures", dir.display());
    }
    let mut pictures = Vec::new();
    walk(dir, 0, &mut pictures, skipped)?;
    let items = match labels_csv {
        Some(csv) => {
            let rows = read_labels_csv(csv)?;
            let mut seen = HashSet::new();
            let mut items = Vec::new();
            for (path, label) in rows {
                let path = normalise(&if Path::new(&path).is_absolute() {
                    PathBuf::from(&path)
                } else {
                    dir.join(&path)
                });
                if seen.insert(path.clone()) {
                    items.push((path, label));
                } else {
                    log::warn!(
                        "{}: listed more than once in {}; the first label is used",
                        path.display(),
                        csv.display()
                    );
                    skipped.duplicates += 1;
                }
            }
            skipped.unlisted += pictures
                .iter()
                .filter(|p| !seen.contains(&normalise(p)))
                .count();
            if skipped.unlisted > 0 {
                log::warn!(
                    "{} pictures under {} are not listed in {} and are left out",
                    skipped.unlisted,
                    dir.display(),
                    csv.display()
                );
            }
            items
        }
        None => {
            let mut items = Vec::new();
            let mut loose = Vec::new();
            for path in pictures {
                let rel = path.strip_prefix(dir).unwrap_or(&path);
                let mut parts = rel.components();
                match (parts.next(), parts.next()) {
                    (Some(Component::Normal(folder)), Some(_)) => {
                        let label = folder.to_str().with_context(|| {
                            format!("the folder name {:?} is not valid UTF-8; rename it", folder)
                        })?;
                        items.push((path.clone(), label.to_string()));
                    }
                    _ => loose.push(path.clone()),
                }
            }
            if !loose.is_empty() {
                bail!(
                    "{} pictures lie directly in {} (e.g. {}), so they have no label: put each in a sub-folder \
                     named after what it shows ({}/tiger/{}), or pass --labels CSV",
                    loose.len(),
                    dir.display(),
                    loose[0].display(),
                    dir.display(),
                    loose[0].file_name().map(|n| n.to_string_lossy()).unwrap_or_default()
                );
            }
            items
        }
    };
    if items.is_empty() {
        bail!(
            "no pictures found in {} (looked for {})",
            dir.display(),
            PICTURE_EXTENSIONS.join(", ")
        );
    }
    Ok(items)
}

/// `a/./b/../c` → `a/c`, without touching the file system.
fn normalise(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir
                if matches!(out.components().next_back(), Some(Component::Normal(_))) =>
            {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Rows `(path, label)` of a CSV file whose header row names the columns `path` and `label`.
fn read_labels_csv(csv: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(csv)
        .with_context(|| format!("cannot read the labels CSV {}", csv.display()))?;
    parse_labels_csv(&text).with_context(|| format!("labels CSV {}", csv.display()))
}

fn parse_labels_csv(text: &str) -> anyhow::Result<Vec<(String, String)>> {
    let rows = parse_csv(text.strip_prefix('\u{feff}').unwrap_or(text))?;
    let mut rows = rows
        .into_iter()
        .filter(|(_, r)| !(r.len() == 1 && r[0].trim().is_empty()));
    let Some((_, header)) = rows.next() else {
        bail!("it is empty; it needs a header row `path,label` and one row per picture");
    };
    let column = |name: &str| {
        header
            .iter()
            .position(|h| h.trim().eq_ignore_ascii_case(name))
    };
    let (Some(path_col), Some(label_col)) = (column("path"), column("label")) else {
        bail!("the header row {header:?} must name the columns `path` and `label`");
    };
    let mut out = Vec::new();
    for (line, row) in rows {
        let get = |i: usize| row.get(i).map(|s| s.trim().to_string()).unwrap_or_default();
        let (path, label) = (get(path_col), get(label_col));
        if path.is_empty() || label.is_empty() {
            bail!("line {line}: every row needs a path and a label");
        }
        out.push((path, label));
    }
    Ok(out)
}

/// A small RFC 4180 reader: comma-separated fields, double quotes around fields holding commas, quotes or
/// line breaks (`""` is a quote). Returns each row with its first line number.
fn parse_csv(text: &str) -> anyhow::Result<Vec<(usize, Vec<String>)>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut line = 1;
    let mut row_line = 1;
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                '\n' => {
                    line += 1;
                    field.push(c);
                }
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' if field.trim().is_empty() => {
                field.clear();
                quoted = true;
            }
            ',' => row.push(std::mem::take(&mut field)),
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                row.push(std::mem::take(&mut field));
                rows.push((row_line, std::mem::take(&mut row)));
                line += 1;
                row_line = line;
            }
            _ => field.push(c),
        }
    }
    if quoted {
        bail!("line {row_line}: a quoted field is never closed");
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push((row_line, row));
    }
    Ok(rows)
}

/// Entries and their embeddings, in the order of the items that could be read.
struct Embedded {
    entries: Vec<Entry>,
    vectors: Vec<f32>,
}

/// Renders and embeds `items` in batches with a progress bar; pictures that cannot be read are skipped
/// and counted. Model failures stop everything (they are not about one picture).
fn embed_all(
    items: &[(PathBuf, String)],
    index_path: &Path,
    model: &mut impl Embed,
    render: impl Fn(&Path) -> anyhow::Result<RgbImage>,
    batch: usize,
    quiet: bool,
    skipped: &mut Skipped,
) -> anyhow::Result<Embedded> {
    let dim = model.dim();
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(items.len() as u64)
    };
    bar.set_style(ProgressStyle::with_template(
        "{msg} {bar:40} {pos}/{len} [{elapsed_precise} < {eta_precise}]",
    )?);
    bar.set_message("embedding");
    let mut out = Embedded {
        entries: Vec::with_capacity(items.len()),
        vectors: Vec::with_capacity(items.len().saturating_mul(dim)),
    };
    for chunk in items.chunks(batch.max(1)) {
        let mut images = Vec::with_capacity(chunk.len());
        let mut entries = Vec::with_capacity(chunk.len());
        for (path, label) in chunk {
            let picture = render(path).and_then(|img| Ok((img, stored_path(index_path, path)?)));
            match picture {
                Ok((img, stored)) => {
                    images.push(img);
                    entries.push(Entry::new(label.clone(), stored));
                }
                Err(e) => bar.suspend(|| skipped.unreadable(path, &format!("{e:#}"))),
            }
            bar.inc(1);
        }
        if images.is_empty() {
            continue;
        }
        let vectors = model.embed_batch(&images).context("the model failed")?;
        if vectors.len() != images.len() || vectors.iter().any(|v| v.len() != dim) {
            bail!(
                "the model returned {} embeddings for {} pictures (expected {dim} values each)",
                vectors.len(),
                images.len()
            );
        }
        for (entry, v) in entries.into_iter().zip(vectors) {
            if v.iter().any(|x| !x.is_finite()) || v.iter().all(|&x| x == 0.0) {
                bar.suspend(|| {
                    skipped.unreadable(Path::new(&entry.path), "the model gave no usable embedding")
                });
                continue;
            }
            out.entries.push(entry);
            out.vectors.extend_from_slice(&v);
        }
    }
    bar.finish_and_clear();
    Ok(out)
}

fn count_labels(entries: &[Entry]) -> BTreeMap<&str, usize> {
    let mut counts = BTreeMap::new();
    for e in entries {
        *counts.entry(e.label.as_str()).or_insert(0) += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Embeds a picture as its mean colour plus a constant, so pictures of one colour land together.
    struct FakeModel;

    impl Embed for FakeModel {
        fn model_id(&self) -> &str {
            "fake"
        }
        fn dim(&self) -> usize {
            4
        }
        fn embed_batch(&mut self, images: &[RgbImage]) -> anyhow::Result<Vec<Vec<f32>>> {
            Ok(images
                .iter()
                .map(|img| {
                    let n = (img.width() * img.height()) as f32;
                    let mut v = vec![0.0, 0.0, 0.0, 0.1];
                    for p in img.pixels() {
                        for (acc, &c) in v.iter_mut().zip(&p.0) {
                            *acc += f32::from(c) / 255.0 / n;
                        }
                    }
                    v
                })
                .collect())
        }
    }

    fn picture(path: &Path, rgb: [u8; 3]) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        RgbImage::from_pixel(4, 4, image::Rgb(rgb))
            .save(path)
            .unwrap();
    }

    fn decode(p: &Path) -> anyhow::Result<RgbImage> {
        Ok(image::open(p)?.to_rgb8())
    }

    #[test]
    fn folders_give_labels_in_sorted_order_and_skip_non_pictures() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        picture(&d.join("tiger/b.png"), [200, 100, 0]);
        picture(&d.join("tiger/deep/a.png"), [210, 90, 0]);
        picture(&d.join("cup/x.png"), [0, 0, 255]);
        std::fs::write(d.join("cup/notes.txt"), "hi").unwrap();
        std::fs::write(d.join("tiger/.DS_Store"), "").unwrap();
        let mut skipped = Skipped::default();
        let items = collect_build_items(d, None, &mut skipped).unwrap();
        let got: Vec<(String, &str)> = items
            .iter()
            .map(|(p, l)| (p.strip_prefix(d).unwrap().display().to_string(), l.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("cup/x.png".into(), "cup"),
                ("tiger/b.png".into(), "tiger"),
                ("tiger/deep/a.png".into(), "tiger")
            ]
        );
        assert_eq!((skipped.not_pictures, skipped.hidden), (1, 1));
    }

    #[test]
    fn loose_pictures_without_a_csv_are_refused_with_a_fix() {
        let dir = tempfile::tempdir().unwrap();
        picture(&dir.path().join("tiger/a.png"), [1, 2, 3]);
        picture(&dir.path().join("loose.png"), [1, 2, 3]);
        let err = collect_build_items(dir.path(), None, &mut Skipped::default()).unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains("loose.png") && msg.contains("--labels"),
            "{msg}"
        );
    }

    #[test]
    fn csv_labels_follow_the_csv_and_count_unlisted_pictures() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        picture(&d.join("a.png"), [1, 2, 3]);
        picture(&d.join("sub/b.png"), [1, 2, 3]);
        picture(&d.join("c.png"), [1, 2, 3]);
        let csv = d.join("labels.csv");
        std::fs::write(
            &csv,
            "label,path\r\n\"tiger, big\",./sub/b.png\ncup,a.png\n\ncup,a.png\n",
        )
        .unwrap();
        let mut skipped = Skipped::default();
        let items = collect_build_items(d, Some(&csv), &mut skipped).unwrap();
        assert_eq!(
            items,
            vec![
                (d.join("sub/b.png"), "tiger, big".to_string()),
                (d.join("a.png"), "cup".to_string())
            ]
        );
        assert_eq!((skipped.unlisted, skipped.duplicates), (1, 1));
    }

    #[test]
    fn csv_reader_handles_quotes_and_reports_bad_files() {
        let rows = parse_csv("a,\"b \"\"q\"\"\nc\",d\ne").unwrap();
        assert_eq!(
            rows,
            vec![
                (
                    1,
                    vec!["a".to_string(), "b \"q\"\nc".to_string(), "d".to_string()]
                ),
                (3, vec!["e".to_string()])
            ]
        );
        assert!(parse_csv("a,\"open").is_err());
        assert!(parse_labels_csv("").is_err());
        assert!(
            format!("{:#}", parse_labels_csv("file,name\nx,y\n").unwrap_err())
                .contains("`path` and `label`")
        );
        assert!(format!(
            "{:#}",
            parse_labels_csv("path,label\nx.png,\n").unwrap_err()
        )
        .contains("line 2"));
    }

    #[test]
    fn embedding_skips_unreadable_pictures_and_keeps_order() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        picture(&d.join("mem/red/1.png"), [255, 0, 0]);
        std::fs::create_dir_all(d.join("mem/red")).unwrap();
        std::fs::write(d.join("mem/red/2.png"), b"not a png").unwrap();
        picture(&d.join("mem/blue/1.png"), [0, 0, 255]);
        let mut skipped = Skipped::default();
        let items = collect_build_items(&d.join("mem"), None, &mut skipped).unwrap();
        let index = d.join("models/memory.vbi");
        std::fs::create_dir_all(d.join("models")).unwrap();
        let out = embed_all(
            &items,
            &index,
            &mut FakeModel,
            decode,
            2,
            true,
            &mut skipped,
        )
        .unwrap();
        let paths: Vec<&str> = out.entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, vec!["../mem/blue/1.png", "../mem/red/1.png"]);
        assert_eq!(out.vectors.len(), 8);
        assert_eq!(skipped.unreadable.len(), 1);
        assert!(skipped.unreadable[0].0.ends_with("red/2.png"));
        assert_eq!(
            skipped.lines(),
            vec!["1 unreadable picture (see the warning above)"]
        );

        visualbyte::index::write_index(
            &index,
            "fake",
            4,
            VectorType::F16,
            &out.entries,
            &out.vectors,
        )
        .unwrap();
        let opened = EmbeddingIndex::open(&index).unwrap();
        let red = FakeModel
            .embed_batch(&[RgbImage::from_pixel(2, 2, image::Rgb([250, 5, 5]))])
            .unwrap();
        let hits = opened.search(&red[0], 1).unwrap();
        assert_eq!(opened.label(hits[0].index), "red");
        assert!(opened.source_path(hits[0].index).is_file());
    }

    #[test]
    fn a_label_is_read_with_its_underscores_as_spaces() {
        assert_eq!(label_text("pickup_truck"), "pickup truck");
        assert_eq!(label_text("t-shirt"), "t-shirt");
    }

    #[test]
    fn paths_normalise_lexically() {
        assert_eq!(
            normalise(Path::new("a/./b/../c.png")),
            PathBuf::from("a/c.png")
        );
        assert_eq!(normalise(Path::new("../x/./y")), PathBuf::from("../x/y"));
    }
}
