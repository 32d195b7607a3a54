//! Writing indexes: always to a temporary file in the target's folder, fsynced and renamed over the target,
//! so that a crash or a full disk leaves the previous index (or none), never a broken one.
use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::path::{Component, Path, PathBuf};

use super::format::{
    align_up, RawHeader, FORMAT_VERSION, HEADER_LEN, MAX_COUNT, MAX_DIM, MAX_FILE_BYTES,
    MAX_LABEL_BYTES, MAX_METADATA_BYTES, MAX_MODEL_ID_BYTES, MAX_PATH_BYTES,
};
use super::{EmbeddingIndex, Entry, IndexError, IndexHeader, VectorType};

/// Writes a new index at `path` (replacing any file there, atomically), without label vectors: its
/// memories are found by picture alone (see [`write_index_with_labels`]).
///
/// `vectors` holds `entries.len()` rows of `dim` values, row-major; each row is L2-normalised before it
/// is stored. Rows must be finite and not all zero. f16 rounds each value; i8 stores per-vector symmetric
/// codes with one f32 scale (see the format description in the module documentation).
pub fn write_index(
    path: &Path,
    model_id: &str,
    dim: usize,
    vector_type: VectorType,
    entries: &[Entry],
    vectors: &[f32],
) -> Result<(), IndexError> {
    write_index_with_labels(path, model_id, dim, vector_type, entries, vectors, &[])
}

/// A label and its label vector: the label rendered as text and embedded by the index's model.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelVector {
    pub label: String,
    pub vector: Vec<f32>,
}

/// Like [`write_index`], with label vectors (stored in f32, unit length) for some or all of the labels
/// the entries have: those memories are also found by their label.
pub fn write_index_with_labels(
    path: &Path,
    model_id: &str,
    dim: usize,
    vector_type: VectorType,
    entries: &[Entry],
    vectors: &[f32],
    labels: &[LabelVector],
) -> Result<(), IndexError> {
    check_model_id(model_id)?;
    if dim == 0 || dim > MAX_DIM {
        return Err(IndexError::InvalidInput(format!(
            "embedding size {dim} is outside 1..={MAX_DIM}"
        )));
    }
    check_new(entries, vectors, dim, 0)?;
    let plan = Plan {
        model_id,
        dim,
        vector_type,
        old: None,
        entries,
        vectors,
        labels: label_table(None, entries, labels, dim)?,
    };
    plan.check_size()?;
    let lock = WriterLock::acquire(path);
    remove_stale_temporaries(&lock, path);
    write_atomic(path, |file| plan.write(file))
}

/// The label vectors the new file holds: the old index's (kept as stored), then the new ones for labels
/// that have none yet, normalised. Each must belong to a label some entry has.
fn label_table(
    old: Option<&EmbeddingIndex>,
    entries: &[Entry],
    new: &[LabelVector],
    dim: usize,
) -> Result<Vec<LabelVector>, IndexError> {
    let mut table: Vec<LabelVector> = old.map_or_else(Vec::new, |o| {
        o.vector_labels()
            .iter()
            .enumerate()
            .map(|(j, label)| LabelVector {
                label: label.clone(),
                vector: o.label_row(j).to_vec(),
            })
            .collect()
    });
    let mut known: HashSet<&str> = entries.iter().map(|e| e.label.as_str()).collect();
    if let Some(o) = old {
        known.extend((0..o.len()).map(|i| o.label(i)));
    }
    for lv in new {
        let bad =
            |what: String| IndexError::InvalidInput(format!("label vector {:?}: {what}", lv.label));
        if !known.contains(lv.label.as_str()) {
            return Err(bad("no memory has this label".into()));
        }
        if lv.vector.len() != dim {
            return Err(IndexError::DimMismatch {
                expected: dim,
                got: lv.vector.len(),
            });
        }
        if lv.vector.iter().any(|v| !v.is_finite()) || lv.vector.iter().all(|&v| v == 0.0) {
            return Err(bad("the vector is not finite or is all zeros".into()));
        }
        if table.iter().any(|t| t.label == lv.label) {
            if old.is_some_and(|o| o.label_vector(&lv.label).is_some()) {
                continue; // appending keeps the stored vector
            }
            return Err(bad("given twice".into()));
        }
        let mut vector = vec![0f32; dim];
        normalise(&lv.vector, &mut vector);
        table.push(LabelVector {
            label: lv.label.clone(),
            vector,
        });
    }
    Ok(table)
}

/// Under the writer lock, a temporary file of this index can only be left over from a writer that died
/// mid-write (a crash or power loss between creating and renaming it): remove it.
fn remove_stale_temporaries(lock: &WriterLock, path: &Path) {
    if lock.held.is_none() {
        return;
    }
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return;
    };
    let dir = folder_of(path);
    let prefix = format!(".{name}.");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(n) = file_name.to_str() else {
            continue;
        };
        if n.starts_with(&prefix) && n.ends_with(".tmp") && n.len() > prefix.len() + 4 {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => log::info!(
                    "removed {} left by an interrupted write",
                    entry.path().display()
                ),
                Err(e) => log::debug!("cannot remove {}: {e}", entry.path().display()),
            }
        }
    }
}

/// The folder holding `path` (`.` for a bare file name).
fn folder_of(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// Appends entries to the index at `path`, atomically: the whole index is rewritten to a temporary file
/// and renamed over the old one. The old index is verified in full first (appending to a damaged index
/// would give the damage a fresh checksum) and must have been built by `model_id`. Existing vectors are
/// copied as stored, never re-quantised; a version 1 index is rewritten as version 2. Returns the new
/// header.
pub fn append_index(
    path: &Path,
    model_id: &str,
    entries: &[Entry],
    vectors: &[f32],
) -> Result<IndexHeader, IndexError> {
    append_index_with_labels(path, model_id, entries, vectors, &[])
}

/// Like [`append_index`], also adding label vectors for labels (old or new) that have none yet.
pub fn append_index_with_labels(
    path: &Path,
    model_id: &str,
    entries: &[Entry],
    vectors: &[f32],
    labels: &[LabelVector],
) -> Result<IndexHeader, IndexError> {
    // Held from reading the old index to the rename, so that two appends cannot lose each other's entries.
    let lock = WriterLock::acquire(path);
    remove_stale_temporaries(&lock, path);
    let old = EmbeddingIndex::open_verified(path)?;
    old.check_model(model_id)?;
    let dim = old.dim();
    check_new(entries, vectors, dim, old.len())?;
    let plan = Plan {
        model_id,
        dim,
        vector_type: old.header().vector_type,
        old: Some(&old),
        entries,
        vectors,
        labels: label_table(Some(&old), entries, labels, dim)?,
    };
    plan.check_size()?;
    write_atomic(path, |file| plan.write(file))?;
    let mut header = old.header().clone();
    header.count += entries.len();
    header.version = FORMAT_VERSION;
    Ok(header)
}

/// How a picture's path is stored in an index written to `index_path`: relative to the index file's
/// folder (with `/` separators) when the two share a folder other than the root, otherwise absolute.
/// Both the picture and the index's folder must exist.
pub fn stored_path(index_path: &Path, picture: &Path) -> Result<String, IndexError> {
    let io = |action, path: &Path| {
        let path = path.to_path_buf();
        move |source| IndexError::Io {
            action,
            path,
            source,
        }
    };
    let picture = picture
        .canonicalize()
        .map_err(io("find the picture", picture))?;
    let dir = folder_of(index_path);
    let dir = dir
        .canonicalize()
        .map_err(io("find the index folder", dir))?;
    let path = relative_to(&dir, &picture).unwrap_or(picture);
    let text = path.to_str().ok_or_else(|| {
        IndexError::InvalidInput(format!(
            "{}: the path is not valid UTF-8; rename the file",
            path.display()
        ))
    })?;
    Ok(if std::path::MAIN_SEPARATOR == '/' {
        text.to_string()
    } else {
        text.replace(std::path::MAIN_SEPARATOR, "/")
    })
}

/// `path` relative to `base` (both absolute and canonical), or `None` when they share no folder but the
/// root.
fn relative_to(base: &Path, path: &Path) -> Option<PathBuf> {
    let b: Vec<Component> = base.components().collect();
    let p: Vec<Component> = path.components().collect();
    let common = b.iter().zip(&p).take_while(|(x, y)| x == y).count();
    let shares_a_folder = b[..common]
        .iter()
        .any(|c| matches!(c, Component::Normal(_)));
    if !shares_a_folder {
        return None;
    }
    let mut out = PathBuf::new();
    for _ in common..b.len() {
        out.push("..");
    }
    for c in &p[common..] {
        out.push(c.as_os_str());
    }
    Some(out)
}

fn check_model_id(model_id: &str) -> Result<(), IndexError> {
    if model_id.is_empty() || model_id.len() > MAX_MODEL_ID_BYTES {
        return Err(IndexError::InvalidInput(format!(
            "model id {model_id:?} must be 1..={MAX_MODEL_ID_BYTES} bytes"
        )));
    }
    Ok(())
}

/// Checks new entries and their vectors before anything is written.
fn check_new(
    entries: &[Entry],
    vectors: &[f32],
    dim: usize,
    existing: usize,
) -> Result<(), IndexError> {
    let total = existing.saturating_add(entries.len());
    if total > MAX_COUNT {
        return Err(IndexError::InvalidInput(format!(
            "{total} entries are more than the {MAX_COUNT} an index can hold"
        )));
    }
    let want = entries.len().saturating_mul(dim);
    if vectors.len() != want {
        if !entries.is_empty() && vectors.len().is_multiple_of(entries.len()) {
            return Err(IndexError::DimMismatch {
                expected: dim,
                got: vectors.len() / entries.len(),
            });
        }
        return Err(IndexError::InvalidInput(format!(
            "{} values are not {} vectors of {dim}",
            vectors.len(),
            entries.len()
        )));
    }
    for (i, e) in entries.iter().enumerate() {
        let bad = |what: &str| {
            IndexError::InvalidInput(format!("entry {i} ({:?}, {:?}): {what}", e.label, e.path))
        };
        if e.label.is_empty() || e.label.len() > MAX_LABEL_BYTES {
            return Err(bad(&format!(
                "the label must be 1..={MAX_LABEL_BYTES} bytes"
            )));
        }
        if e.label.chars().any(char::is_control) {
            return Err(bad("the label contains control characters"));
        }
        if e.path.is_empty() || e.path.len() > MAX_PATH_BYTES {
            return Err(bad(&format!("the path must be 1..={MAX_PATH_BYTES} bytes")));
        }
    }
    for (i, row) in vectors.chunks_exact(dim).enumerate() {
        if row.iter().any(|v| !v.is_finite()) {
            return Err(IndexError::InvalidInput(format!(
                "vector {i} ({}) holds NaN or infinite values",
                entries[i].path
            )));
        }
        if row.iter().all(|&v| v == 0.0) {
            return Err(IndexError::InvalidInput(format!(
                "vector {i} ({}) is all zeros and has no direction",
                entries[i].path
            )));
        }
    }
    Ok(())
}

fn record_len(e: &Entry) -> u64 {
    8 + e.label.len() as u64 + e.path.len() as u64
}

/// What one write puts in the file: the old index's entries and vectors (copied as stored), then new ones.
struct Plan<'a> {
    model_id: &'a str,
    dim: usize,
    vector_type: VectorType,
    old: Option<&'a EmbeddingIndex>,
    entries: &'a [Entry],
    vectors: &'a [f32],
    labels: Vec<LabelVector>,
}

impl Plan<'_> {
    fn old_count(&self) -> usize {
        self.old.map_or(0, EmbeddingIndex::len)
    }

    fn count(&self) -> u64 {
        (self.old_count() + self.entries.len()) as u64
    }

    fn metadata_len(&self) -> u64 {
        let old = self.old.map_or(0, |o| o.entry_records().len() as u64);
        let labels: u64 = self
            .labels
            .iter()
            .map(|l| 4 + l.label.len() as u64 + 4 * self.dim as u64)
            .sum();
        4 + self.model_id.len() as u64
            + old
            + self.entries.iter().map(record_len).sum::<u64>()
            + 4
            + labels
    }

    fn check_size(&self) -> Result<(), IndexError> {
        let meta = self.metadata_len();
        if meta > MAX_METADATA_BYTES {
            return Err(IndexError::InvalidInput(format!(
                "labels and paths take {meta} bytes, more than the {MAX_METADATA_BYTES}-byte limit"
            )));
        }
        let vectors = self
            .vector_type
            .section_bytes(self.count(), self.dim as u64)
            .unwrap_or(u64::MAX);
        let total = align_up(HEADER_LEN as u64 + meta)
            .unwrap_or(u64::MAX)
            .saturating_add(vectors);
        if total > MAX_FILE_BYTES {
            return Err(IndexError::InvalidInput(format!(
                "the index would be {total} bytes, more than the {MAX_FILE_BYTES}-byte limit; \
                 use --vectors f16 or i8, or split the memory"
            )));
        }
        Ok(())
    }

    fn new_rows(&self) -> impl Iterator<Item = &[f32]> {
        self.vectors.chunks_exact(self.dim)
    }

    /// Writes the whole file: a zero header first, then the sections (checksummed on the way), then the
    /// real header over the zeros.
    fn write(&self, file: &mut File) -> io::Result<()> {
        let mut w = Counted::new(BufWriter::with_capacity(1 << 20, &mut *file));
        w.raw(&[0u8; HEADER_LEN])?;

        w.begin();
        w.put(&(self.model_id.len() as u32).to_le_bytes())?;
        w.put(self.model_id.as_bytes())?;
        if let Some(old) = self.old {
            w.put(old.entry_records())?;
        }
        for e in self.entries {
            w.put(&(e.label.len() as u32).to_le_bytes())?;
            w.put(e.label.as_bytes())?;
            w.put(&(e.path.len() as u32).to_le_bytes())?;
            w.put(e.path.as_bytes())?;
        }
        w.put(&(self.labels.len() as u32).to_le_bytes())?;
        for l in &self.labels {
            w.put(&(l.label.len() as u32).to_le_bytes())?;
            w.put(l.label.as_bytes())?;
            for v in &l.vector {
                w.put(&v.to_le_bytes())?;
            }
        }
        let (metadata_len, metadata_crc) = w.end();
        let padded = align_up(HEADER_LEN as u64 + metadata_len).unwrap_or(u64::MAX);
        w.raw(&vec![
            0u8;
            (padded - HEADER_LEN as u64 - metadata_len) as usize
        ])?;

        w.begin();
        let old_section = self.old.map_or(&[][..], EmbeddingIndex::vector_section);
        let mut row = vec![0f32; self.dim];
        match self.vector_type {
            VectorType::F32 => {
                w.put(old_section)?;
                for r in self.new_rows() {
                    normalise(r, &mut row);
                    for v in &row {
                        w.put(&v.to_le_bytes())?;
                    }
                }
            }
            VectorType::F16 => {
                w.put(old_section)?;
                for r in self.new_rows() {
                    normalise(r, &mut row);
                    for v in &row {
                        w.put(&half::f16::from_f32(*v).to_le_bytes())?;
                    }
                }
            }
            VectorType::I8 => {
                let (old_scales, old_codes) = old_section.split_at(4 * self.old_count());
                let mut codes = vec![0i8; self.dim];
                w.put(old_scales)?;
                for r in self.new_rows() {
                    let scale = quantise(r, &mut codes);
                    w.put(&scale.to_le_bytes())?;
                }
                w.put(old_codes)?;
                for r in self.new_rows() {
                    quantise(r, &mut codes);
                    let bytes: Vec<u8> = codes.iter().map(|&c| c as u8).collect();
                    w.put(&bytes)?;
                }
            }
        }
        let (vectors_len, vectors_crc) = w.end();
        w.inner.flush()?;
        drop(w);

        let header = RawHeader {
            version: FORMAT_VERSION,
            vector_type: self.vector_type.code(),
            dim: self.dim as u32,
            count: self.count(),
            metadata_len,
            vectors_len,
            metadata_crc,
            vectors_crc,
        };
        file.seek(SeekFrom::Start(0))?;
        file.write_all(&header.encode())?;
        file.flush()
    }
}

/// A writer that counts and checksums the bytes of the current section.
struct Counted<W: Write> {
    inner: W,
    hasher: crc32fast::Hasher,
    len: u64,
}

impl<W: Write> Counted<W> {
    fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: crc32fast::Hasher::new(),
            len: 0,
        }
    }

    fn raw(&mut self, b: &[u8]) -> io::Result<()> {
        self.inner.write_all(b)
    }

    fn begin(&mut self) {
        self.hasher = crc32fast::Hasher::new();
        self.len = 0;
    }

    fn put(&mut self, b: &[u8]) -> io::Result<()> {
        self.hasher.update(b);
        self.len += b.len() as u64;
        self.inner.write_all(b)
    }

    fn end(&mut self) -> (u64, u32) {
        let h = std::mem::take(&mut self.hasher);
        (self.len, h.finalize())
    }
}

/// `row / ‖row‖` into `out` (the row is finite and not all zero: checked before writing starts).
fn normalise(row: &[f32], out: &mut [f32]) {
    let norm = row
        .iter()
        .map(|&v| f64::from(v) * f64::from(v))
        .sum::<f64>()
        .sqrt();
    for (o, &v) in out.iter_mut().zip(row) {
        *o = (f64::from(v) / norm) as f32;
    }
}

/// Symmetric per-vector codes `round(127 · x / max|x|)` into `codes`; returns the scale `1 / ‖codes‖` that
/// makes `scale × codes` a unit vector.
fn quantise(row: &[f32], codes: &mut [i8]) -> f32 {
    let max = row.iter().fold(0f32, |m, &v| m.max(v.abs()));
    let mut sum = 0f64;
    for (c, &v) in codes.iter_mut().zip(row) {
        let q = (v / max * 127.0).round().clamp(-127.0, 127.0);
        *c = q as i8;
        sum += f64::from(q) * f64::from(q);
    }
    (1.0 / sum.sqrt()) as f32
}

/// An exclusive advisory lock (flock) on the folder holding an index, held by writers of indexes in it.
/// Readers never take it: they see the old or the new file, both whole. Where the platform or file system
/// cannot lock a folder, writing goes ahead unlocked.
struct WriterLock {
    held: Option<File>,
}

impl WriterLock {
    fn acquire(path: &Path) -> Self {
        #[cfg(unix)]
        {
            let dir = folder_of(path);
            match File::open(dir).and_then(|d| d.lock().map(|()| d)) {
                Ok(d) => return Self { held: Some(d) },
                Err(e) => log::debug!("cannot lock {} for writing: {e}", dir.display()),
            }
        }
        #[cfg(not(unix))]
        let _ = path;
        Self { held: None }
    }
}

/// Writes `path` through a temporary file in the same folder: write, fsync, rename, fsync the folder.
fn write_atomic(
    path: &Path,
    body: impl FnOnce(&mut File) -> io::Result<()>,
) -> Result<(), IndexError> {
    let io_err = |action: &'static str, p: &Path| {
        let p = p.to_path_buf();
        move |source| IndexError::Io {
            action,
            path: p,
            source,
        }
    };
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| IndexError::InvalidInput(format!("{}: not a file name", path.display())))?;
    let dir = folder_of(path);
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(io_err("create a temporary file in", dir))?;
    body(tmp.as_file_mut()).map_err(io_err("write", path))?;
    keep_permissions(path, tmp.as_file());
    tmp.as_file().sync_all().map_err(io_err("flush", path))?;
    tmp.persist(path).map_err(|e| IndexError::Io {
        action: "replace",
        path: path.to_path_buf(),
        source: e.error,
    })?;
    // Make the rename itself durable. Some filesystems refuse to fsync a folder; the data is safe anyway.
    if let Err(e) = File::open(dir).and_then(|d| d.sync_all()) {
        log::debug!("fsync of {} failed: {e}", dir.display());
    }
    Ok(())
}

/// Temporary files are private (0600); give the new index the old one's permissions, or 0644.
fn keep_permissions(path: &Path, file: &File) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let perms = std::fs::metadata(path)
            .map(|m| m.permissions())
            .unwrap_or_else(|_| std::fs::Permissions::from_mode(0o644));
        if let Err(e) = file.set_permissions(perms) {
            log::debug!("cannot set permissions of {}: {e}", path.display());
        }
    }
    #[cfg(not(unix))]
    let _ = (path, file);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_share_a_folder_and_climb_with_dotdot() {
        let rel = relative_to(
            Path::new("/home/robot/models"),
            Path::new("/home/robot/memory/tiger/1.jpg"),
        );
        assert_eq!(rel, Some(PathBuf::from("../memory/tiger/1.jpg")));
        let inside = relative_to(
            Path::new("/srv/models"),
            Path::new("/srv/models/pics/a.png"),
        );
        assert_eq!(inside, Some(PathBuf::from("pics/a.png")));
        assert_eq!(
            relative_to(Path::new("/opt/vb/models"), Path::new("/data/a.png")),
            None
        );
    }

    #[test]
    fn quantised_rows_have_unit_length_and_keep_the_largest_value_at_127() {
        let row = [0.5f32, -2.0, 1.0, 0.0];
        let mut codes = [0i8; 4];
        let scale = quantise(&row, &mut codes);
        assert_eq!(codes, [32, -127, 64, 0]);
        let norm: f32 = codes
            .iter()
            .map(|&c| (f32::from(c) * scale).powi(2))
            .sum::<f32>()
            .sqrt();
        assert!((norm - 1.0).abs() < 1e-6, "{norm}");
    }
}
