//! Building an image memory from pictures: the folder walk, each picture's label (its sub-folder or a
//! labels CSV), and the batch embedding of pictures and labels that `index build` and `index add` write.
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context};
use image::RgbImage;

use super::{stored_path, EmbeddingIndex, Entry, LabelVector};

/// File extensions read as pictures (the formats this build decodes).
pub const PICTURE_EXTENSIONS: &[&str] = &[
    "png", "jpg", "jpeg", "jpe", "gif", "bmp", "webp", "tif", "tiff", "pnm", "pbm", "pgm", "ppm",
    "pam", "qoi", "ico", "tga",
];

/// Folders deeper than this below DIR are not searched (guards against symlink loops).
const MAX_DEPTH: usize = 32;

/// What the build and add loops need from a model; implemented by the real one and, in tests, by a fake.
pub trait Embed {
    fn model_id(&self) -> &str;
    fn dim(&self) -> usize;
    fn embed_batch(&mut self, images: &[RgbImage]) -> anyhow::Result<Vec<Vec<f32>>>;
}

#[cfg(feature = "onnx")]
impl Embed for crate::embed::Embedder {
    fn model_id(&self) -> &str {
        crate::embed::Embedder::model_id(self)
    }

    fn dim(&self) -> usize {
        crate::embed::Embedder::dim(self)
    }

    fn embed_batch(&mut self, images: &[RgbImage]) -> anyhow::Result<Vec<Vec<f32>>> {
        Ok(self.embed(images)?)
    }
}

/// How [`embed_all`] reports its progress, so that the library draws nothing itself: the CLI passes a
/// progress bar; `()` reports nothing.
pub trait Progress {
    /// One more picture was handled (embedded or skipped).
    fn inc(&mut self);
    /// Runs `warn`, which logs a warning, so that a progress display does not draw over it.
    fn suspend(&mut self, warn: &mut dyn FnMut());
}

impl Progress for () {
    fn inc(&mut self) {}

    fn suspend(&mut self, warn: &mut dyn FnMut()) {
        warn()
    }
}

/// Everything left out, reported at the end so nothing is lost silently.
#[derive(Debug, Default)]
pub struct Skipped {
    /// Pictures that could not be read or embedded, with why.
    pub unreadable: Vec<(PathBuf, String)>,
    pub not_pictures: usize,
    pub hidden: usize,
    /// Pictures under the folder that the labels CSV does not list.
    pub unlisted: usize,
    /// Pictures listed twice in the CSV, or already in the index.
    pub duplicates: usize,
}

impl Skipped {
    /// Counts an unreadable picture and warns about it (the warning names the path once).
    pub fn unreadable(&mut self, path: &Path, why: &str) {
        let shown = path.display().to_string();
        if why.starts_with(&shown) {
            log::warn!("skipped {why}");
        } else {
            log::warn!("skipped {shown}: {why}");
        }
        self.unreadable.push((path.to_path_buf(), why.to_string()));
    }

    /// One line per kind of skipped file, e.g. "2 hidden files or folders"; none when nothing was skipped.
    pub fn lines(&self) -> Vec<String> {
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

/// The pictures to index with their labels, in a deterministic order: labelled by `labels_csv` when
/// given, else by the name of their first sub-folder below `dir`.
pub fn collect_build_items(
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
        Some(csv) => csv_items(dir, csv, &pictures, skipped)?,
        None => folder_items(dir, &pictures)?,
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

/// The pictures `csv` lists, in its order; `pictures` (those found under `dir`) that it does not list
/// are counted as unlisted.
fn csv_items(
    dir: &Path,
    csv: &Path,
    pictures: &[PathBuf],
    skipped: &mut Skipped,
) -> anyhow::Result<Vec<(PathBuf, String)>> {
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
    Ok(items)
}

/// Each picture labelled by its first sub-folder below `dir`; pictures directly in `dir` are refused.
fn folder_items(dir: &Path, pictures: &[PathBuf]) -> anyhow::Result<Vec<(PathBuf, String)>> {
    let mut items = Vec::new();
    let mut loose = Vec::new();
    for path in pictures {
        let rel = path.strip_prefix(dir).unwrap_or(path);
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

/// [`read_labels_csv`] on text in memory: a byte-order mark and blank lines are ignored, fields are trimmed.
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

/// The pictures to add under `label`: `files`, with folders searched like [`collect_build_items`] does.
/// Pictures `existing` (stored path → label, the index's entries) already holds are skipped and counted.
pub fn collect_add_items(
    index_path: &Path,
    files: &[PathBuf],
    label: &str,
    existing: &HashMap<String, String>,
    skipped: &mut Skipped,
) -> anyhow::Result<Vec<(PathBuf, String)>> {
    let mut items = Vec::new();
    for file in files {
        let meta =
            std::fs::metadata(file).with_context(|| format!("cannot read {}", file.display()))?;
        if meta.is_dir() {
            let mut found = Vec::new();
            walk(file, 0, &mut found, skipped)?;
            items.extend(found.into_iter().map(|p| (p, label.to_string())));
        } else {
            items.push((file.clone(), label.to_string()));
        }
    }
    let mut fresh = Vec::new();
    for (path, label) in items {
        let stored = match stored_path(index_path, &path) {
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
    Ok(fresh)
}

/// The index's labels, and `label`, that still have no label vector (all of a version 1 index's), sorted:
/// `index add` embeds them with its write so that their memories are found by label too.
pub fn labels_without_vectors(index: &EmbeddingIndex, label: &str) -> Vec<String> {
    let mut unmatched: Vec<String> = index
        .label_counts()
        .into_keys()
        .chain([label.to_string()])
        .filter(|l| index.label_vector(l).is_none())
        .collect();
    unmatched.sort();
    unmatched.dedup();
    unmatched
}

/// The text a label is read as: a folder name's underscores are spaces ("pickup_truck" is asked as
/// "pickup truck").
pub fn label_text(label: &str) -> String {
    label.replace('_', " ")
}

/// Each label rendered as text and embedded by the model: what a memory is found by besides its picture.
/// A label the text renderer refuses keeps its memories findable by picture alone (with a warning).
pub fn embed_labels(
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

/// Entries and their embeddings, in the order of the items that could be read.
pub struct Embedded {
    pub entries: Vec<Entry>,
    /// `entries.len()` rows of the model's `dim` values, row-major.
    pub vectors: Vec<f32>,
}

/// Renders and embeds `items` in batches of `batch`, their paths stored relative to `index_path`;
/// pictures that cannot be read are skipped and counted. Model failures stop everything (they are not
/// about one picture).
pub fn embed_all(
    items: &[(PathBuf, String)],
    index_path: &Path,
    model: &mut impl Embed,
    render: impl Fn(&Path) -> anyhow::Result<RgbImage>,
    batch: usize,
    progress: &mut impl Progress,
    skipped: &mut Skipped,
) -> anyhow::Result<Embedded> {
    let dim = model.dim();
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
                Err(e) => progress.suspend(&mut || skipped.unreadable(path, &format!("{e:#}"))),
            }
            progress.inc();
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
                progress.suspend(&mut || {
                    skipped.unreadable(Path::new(&entry.path), "the model gave no usable embedding")
                });
                continue;
            }
            out.entries.push(entry);
            out.vectors.extend_from_slice(&v);
        }
    }
    Ok(out)
}

/// How many entries each label has, by label.
pub fn count_labels(entries: &[Entry]) -> BTreeMap<&str, usize> {
    let mut counts = BTreeMap::new();
    for e in entries {
        *counts.entry(e.label.as_str()).or_insert(0) += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::{write_index, VectorType};

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
        for file in ["a.png", "sub/b.png", "c.png"] {
            picture(&d.join(file), [1, 2, 3]);
        }
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
            &mut (),
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

        write_index(
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
