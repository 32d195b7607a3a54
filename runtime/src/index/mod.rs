//! The on-disk image memory: embeddings with labels and source paths, searched by exact cosine top-k.
//!
//! # File format (`.vbi`, format version 2; version 1 is still read)
//!
//! All integers are little-endian. The file has four parts, in this order, and nothing after them:
//!
//! ```text
//! offset  size  header (64 bytes)
//!      0     8  magic b"VBINDEX\0"
//!      8     4  format version (u32) = 2 (1: no label vectors)
//!     12     1  vector type: 0 = f32, 1 = f16, 2 = i8
//!     13     3  reserved, zero
//!     16     4  dim (u32), 1..=MAX_DIM
//!     20     4  reserved, zero
//!     24     8  count (u64), 0..=MAX_COUNT
//!     32     8  metadata length M (u64), bytes, 1..=MAX_METADATA_BYTES
//!     40     8  vector section length V (u64), bytes (must equal what count, dim and type imply)
//!     48     4  CRC-32 of the metadata section
//!     52     4  CRC-32 of the vector section
//!     56     4  reserved, zero
//!     60     4  CRC-32 of header bytes 0..60
//!
//!     64     M  metadata section
//!               u32 model id length, model id (UTF-8, 1..=MAX_MODEL_ID_BYTES)
//!               count × { u32 label length, label (UTF-8, 1..=MAX_LABEL_BYTES),
//!                         u32 path length,  path  (UTF-8, 1..=MAX_PATH_BYTES) }
//!               version 2 only, the label vectors:
//!               u32 L (0..=count), then L × { u32 label length, label (distinct),
//!                                             dim × f32: the label rendered as text, embedded by the
//!                                             same model, unit length }
//!   64+M     P  padding: zero bytes up to the next multiple of 64 (P < 64)
//! 64+M+P     V  vector section, one row per entry, rows L2-normalised when written
//!               f32: count × dim × f32
//!               f16: count × dim × IEEE binary16
//!               i8:  count × f32 scale, then count × dim × i8 codes;
//!                    row ≈ scale × codes, codes = round(127 · x / max|x|), scale = 1 / ‖codes‖
//!                    (the dequantised row has unit length)
//! ```
//!
//! The CRC-32 is the IEEE polynomial (`crc32fast`). A later format version keeps the magic, the version
//! field and the header CRC where they are. Source paths are stored with `/` separators, relative to the
//! folder holding the index file (so a `models/` folder with its pictures can be shipped as one), or
//! absolute when the picture lives elsewhere; [`EmbeddingIndex::source_path`] resolves them.
//!
//! # Label matching
//!
//! A memory whose label has a label vector is found by its picture and by its label:
//! [`EmbeddingIndex::search_matching`] scores it as the higher of the two cosines ([`Match::Both`]) and
//! says which one won. A memory without one (every memory of a version 1 index) is found by its
//! picture alone.
//!
//! # Integrity
//!
//! [`EmbeddingIndex::open`] memory-maps the file and checks the header and metadata checksums, the
//! limits, the exact file length and the zero padding: a truncated file or a flipped bit outside the
//! vectors is refused with an error naming the damaged section. [`EmbeddingIndex::open_verified`] also
//! checksums the vector section (every byte of the file is then checked). [`EmbeddingIndex::from_bytes`]
//! runs the same parser on bytes in memory; no input makes it panic or allocate more than the input
//! justifies. Writers ([`write_index`], [`append_index`]) write a temporary file in the same folder,
//! fsync it, rename it over the target and fsync the folder, so an interrupted write leaves the old index
//! (or none), never a broken one.
//!
//! # Building
//!
//! [`build`] finds the pictures of a folder and their labels and embeds them (and the labels) in
//! batches: what `visualbyte index build` and `index add` write with the writers above.

/// `as_str`, `Display` and `FromStr` for an enum of named values (`Variant => "name"`): parsing ignores
/// case and surrounding space; any other string is an error that names `$what` and lists the names.
macro_rules! named_values {
    ($ty:ident, $what:literal, [$($variant:ident => $name:literal),+ $(,)?]) => {
        impl $ty {
            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $name,)+
                }
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $ty {
            type Err = $crate::index::IndexError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s.trim().to_ascii_lowercase().as_str() {
                    $($name => Ok($ty::$variant),)+
                    _ => Err($crate::index::IndexError::InvalidInput(format!(
                        "unknown {} {s:?}; use {}",
                        $what,
                        $crate::index::one_of(&[$($name),+])
                    ))),
                }
            }
        }
    };
}

pub mod build;
mod format;
mod matching;
mod search;
mod write;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use format::{
    FORMAT_VERSION, HEADER_LEN, MAGIC, MAX_COUNT, MAX_DIM, MAX_FILE_BYTES, MAX_LABEL_BYTES,
    MAX_METADATA_BYTES, MAX_MODEL_ID_BYTES, MAX_PATH_BYTES, OLDEST_READ_VERSION,
};
pub use matching::{Match, Matched, MatchedHit};
pub use search::{search_threads, set_search_threads, MAX_TOP_K};
pub use write::{
    append_index, append_index_with_labels, stored_path, write_index, write_index_with_labels,
    LabelVector,
};

/// How the vectors are stored on disk. Search always computes in f32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VectorType {
    /// 4 bytes per value: exact.
    F32,
    /// 2 bytes per value (IEEE binary16): scores within about 1e-3 of f32.
    F16,
    /// 1 byte per value plus one f32 scale per vector: scores within about 1e-2 of f32.
    I8,
}

impl VectorType {
    pub const ALL: [VectorType; 3] = [VectorType::F32, VectorType::F16, VectorType::I8];

    /// The code stored in the header.
    pub(crate) fn code(self) -> u8 {
        match self {
            VectorType::F32 => 0,
            VectorType::F16 => 1,
            VectorType::I8 => 2,
        }
    }

    pub(crate) fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(VectorType::F32),
            1 => Some(VectorType::F16),
            2 => Some(VectorType::I8),
            _ => None,
        }
    }

    /// Bytes of the vector section for `count` vectors of `dim` values, or `None` on overflow.
    pub fn section_bytes(self, count: u64, dim: u64) -> Option<u64> {
        let values = count.checked_mul(dim)?;
        match self {
            VectorType::F32 => values.checked_mul(4),
            VectorType::F16 => values.checked_mul(2),
            VectorType::I8 => values.checked_add(count.checked_mul(4)?),
        }
    }
}

named_values!(VectorType, "vector type", [F32 => "f32", F16 => "f16", I8 => "i8"]);

/// `a, b or c`: the names a parse error offers.
fn one_of(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [only] => (*only).to_string(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}

/// One remembered picture: what it shows and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub label: String,
    /// `/`-separated; relative to the index file's folder unless absolute (see [`stored_path`]).
    pub path: String,
}

impl Entry {
    pub fn new(label: impl Into<String>, path: impl Into<String>) -> Self {
        Self {
            label: label.into(),
            path: path.into(),
        }
    }
}

/// One search result: the entry's position in the index and its cosine similarity to the query.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Hit {
    pub index: usize,
    /// Cosine similarity, in `[-1, 1]`.
    pub score: f32,
}

/// What the header says about an index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IndexHeader {
    pub version: u32,
    pub model_id: String,
    pub dim: usize,
    pub count: usize,
    pub vector_type: VectorType,
}

/// A part of an index file, named in integrity errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Section {
    Header,
    Metadata,
    Padding,
    Vectors,
}

impl fmt::Display for Section {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Section::Header => "header",
            Section::Metadata => "metadata section (model id, labels, paths)",
            Section::Padding => "padding before the vector section",
            Section::Vectors => "vector section",
        })
    }
}

/// Why bytes are not a usable index. Always names the section at fault.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FormatProblem {
    #[error("not a VisualByte index (it does not start with the index magic bytes)")]
    NotAnIndex,
    #[error(
        "index format version {found} cannot be read by this build (it reads versions \
         {OLDEST_READ_VERSION} to {FORMAT_VERSION}); rebuild the index with this visualbyte, or use the \
         visualbyte that wrote it"
    )]
    UnsupportedVersion { found: u32 },
    #[error(
        "truncated in the {section}: the file is {have} bytes but its header needs {need}; \
         the copy or write was cut short"
    )]
    Truncated {
        section: Section,
        have: u64,
        need: u64,
    },
    #[error("checksum mismatch in the {section} (stored {stored:08x}, computed {computed:08x}); the file is damaged")]
    Checksum {
        section: Section,
        stored: u32,
        computed: u32,
    },
    #[error("corrupt {section}: {detail}")]
    Corrupt { section: Section, detail: String },
    #[error("{detail}, beyond this build's limit of {limit}")]
    TooLarge { detail: String, limit: u64 },
    #[error("{extra} unexpected bytes after the vector section; the file is damaged")]
    TrailingBytes { extra: u64 },
}

impl FormatProblem {
    /// The damaged section, where one is known.
    pub fn section(&self) -> Option<Section> {
        match self {
            FormatProblem::Truncated { section, .. }
            | FormatProblem::Checksum { section, .. }
            | FormatProblem::Corrupt { section, .. } => Some(*section),
            FormatProblem::NotAnIndex | FormatProblem::UnsupportedVersion { .. } => {
                Some(Section::Header)
            }
            FormatProblem::TooLarge { .. } => Some(Section::Header),
            FormatProblem::TrailingBytes { .. } => Some(Section::Vectors),
        }
    }
}

/// What went wrong with an index, in words a user can act on.
#[derive(Debug, Error)]
pub enum IndexError {
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}{problem}; {}", describe_origin(.path), remedy(.problem))]
    Format {
        /// `None` when parsing bytes in memory.
        path: Option<PathBuf>,
        problem: FormatProblem,
    },
    #[error(
        "the index was built with model {index_model:?} but the model in use is {model:?}; embeddings of \
         different models cannot be compared: rebuild the index with this model \
         (`visualbyte index build DIR --model MODEL`)"
    )]
    ModelMismatch { index_model: String, model: String },
    #[error("the vectors have {got} values each but the index holds {expected}-value vectors")]
    DimMismatch { expected: usize, got: usize },
    #[error("invalid query vector: {0}")]
    InvalidQuery(String),
    #[error("{0}")]
    InvalidInput(String),
}

impl IndexError {
    /// The integrity problem, if this is one.
    pub fn format_problem(&self) -> Option<&FormatProblem> {
        match self {
            IndexError::Format { problem, .. } => Some(problem),
            _ => None,
        }
    }

    pub(crate) fn at(self, path: &Path) -> Self {
        match self {
            IndexError::Format {
                path: None,
                problem,
            } => IndexError::Format {
                path: Some(path.to_path_buf()),
                problem,
            },
            other => other,
        }
    }
}

fn describe_origin(path: &Option<PathBuf>) -> String {
    match path {
        Some(p) => format!("index {}: ", p.display()),
        None => "index: ".to_string(),
    }
}

fn remedy(problem: &FormatProblem) -> &'static str {
    match problem {
        FormatProblem::NotAnIndex => "build one with `visualbyte index build DIR`",
        FormatProblem::UnsupportedVersion { .. } => "see `visualbyte index info`",
        _ => "copy it again, or rebuild it with `visualbyte index build DIR`",
    }
}

pub(crate) fn format_err(problem: FormatProblem) -> IndexError {
    IndexError::Format {
        path: None,
        problem,
    }
}

/// The bytes behind an index: a read-only memory map of the file, or a copy in memory.
enum Backing {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl Backing {
    fn bytes(&self) -> &[u8] {
        match self {
            Backing::Mapped(m) => m,
            Backing::Owned(v) => v,
        }
    }
}

/// An image-memory index, memory-mapped: opening costs a pass over the metadata, not the vectors.
pub struct EmbeddingIndex {
    backing: Backing,
    layout: format::Layout,
    path: Option<PathBuf>,
}

impl fmt::Debug for EmbeddingIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbeddingIndex")
            .field("path", &self.path)
            .field("header", &self.layout.header)
            .finish_non_exhaustive()
    }
}

impl EmbeddingIndex {
    /// Opens an index, checking the header and metadata checksums, the limits and the file length.
    pub fn open(path: &Path) -> Result<Self, IndexError> {
        Self::open_with(path, false)
    }

    /// Like [`open`](Self::open), and also checksums the vector section (reads the whole file).
    pub fn open_verified(path: &Path) -> Result<Self, IndexError> {
        Self::open_with(path, true)
    }

    fn open_with(path: &Path, verify_vectors: bool) -> Result<Self, IndexError> {
        let io = |action, source| IndexError::Io {
            action,
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(|e| io("open the index", e))?;
        let len = file.metadata().map_err(|e| io("read the index", e))?.len();
        if len > MAX_FILE_BYTES || usize::try_from(len).is_err() {
            return Err(format_err(FormatProblem::TooLarge {
                detail: format!("the file is {len} bytes"),
                limit: MAX_FILE_BYTES.min(usize::MAX as u64),
            })
            .at(path));
        }
        let backing = if len < HEADER_LEN as u64 {
            // Too short for a header (an empty file cannot be mapped everywhere): the parser names it.
            Backing::Owned(std::fs::read(path).map_err(|e| io("read the index", e))?)
        } else {
            // SAFETY: the map is read-only. Writers never modify an index in place: they write a new file
            // and rename it over the old one, so the mapped file does not change while it is mapped.
            let map =
                unsafe { memmap2::Mmap::map(&file) }.map_err(|e| io("memory-map the index", e))?;
            Backing::Mapped(map)
        };
        let layout = format::parse(backing.bytes(), verify_vectors).map_err(|e| e.at(path))?;
        Ok(Self {
            backing,
            layout,
            path: Some(path.to_path_buf()),
        })
    }

    /// Parses an index held in memory, verifying every checksum (the same parser as [`open`](Self::open)).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, IndexError> {
        let layout = format::parse(bytes, true)?;
        Ok(Self {
            backing: Backing::Owned(bytes.to_vec()),
            layout,
            path: None,
        })
    }

    fn bytes(&self) -> &[u8] {
        self.backing.bytes()
    }

    pub fn header(&self) -> &IndexHeader {
        &self.layout.header
    }

    /// The file this index was opened from (`None` for [`from_bytes`](Self::from_bytes)).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    pub fn len(&self) -> usize {
        self.layout.header.count
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn dim(&self) -> usize {
        self.layout.header.dim
    }

    pub fn model_id(&self) -> &str {
        &self.layout.header.model_id
    }

    /// Size of the index file in bytes.
    pub fn file_len(&self) -> usize {
        self.bytes().len()
    }

    /// Entry `i`. Panics if `i >= len()`, like slice indexing.
    pub fn entry(&self, i: usize) -> Entry {
        Entry::new(self.label(i), self.path_str(i))
    }

    /// Entry `i`, or `None` past the end.
    pub fn get(&self, i: usize) -> Option<Entry> {
        (i < self.len()).then(|| self.entry(i))
    }

    /// Label of entry `i`, borrowed from the file. Panics if `i >= len()`.
    pub fn label(&self, i: usize) -> &str {
        self.layout.label(self.bytes(), i)
    }

    /// Stored path of entry `i`, as written (see [`Entry::path`]). Panics if `i >= len()`.
    pub fn path_str(&self, i: usize) -> &str {
        self.layout.path(self.bytes(), i)
    }

    /// Path of entry `i`'s picture on this machine: relative paths are resolved against the index
    /// file's folder (the current folder for an index parsed from bytes). Panics if `i >= len()`.
    pub fn source_path(&self, i: usize) -> PathBuf {
        let stored = Path::new(self.path_str(i));
        if stored.is_absolute() {
            return stored.to_path_buf();
        }
        let base = self
            .path
            .as_deref()
            .and_then(Path::parent)
            .unwrap_or(Path::new(""));
        base.join(stored)
    }

    /// Every entry, in order.
    pub fn entries(&self) -> impl Iterator<Item = Entry> + '_ {
        (0..self.len()).map(|i| self.entry(i))
    }

    /// How many entries each label has, sorted by label.
    pub fn label_counts(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for i in 0..self.len() {
            *counts.entry(self.label(i).to_string()).or_insert(0) += 1;
        }
        counts
    }

    /// Vector `i`, dequantised to f32 (unit length up to storage rounding). Panics if `i >= len()`.
    pub fn vector(&self, i: usize) -> Vec<f32> {
        assert!(i < self.len(), "vector {i} of an index of {}", self.len());
        let mut out = vec![0.0; self.dim()];
        search::decode_row(&self.layout, self.bytes(), i, &mut out);
        out
    }

    /// The `k` entries most similar to `query` by cosine similarity, best first (ties: lower index first).
    ///
    /// Exact: every vector is scored. `k` is capped at [`MAX_TOP_K`] and at `len()`; `k = 0` gives no
    /// hits. The query need not be normalised, but must have `dim()` finite values, not all zero.
    pub fn search(&self, query: &[f32], k: usize) -> Result<Vec<Hit>, IndexError> {
        search::search(&self.layout, self.bytes(), query, k)
    }

    /// Refuses an index built by another model: its embeddings mean nothing to this one.
    pub fn check_model(&self, model_id: &str) -> Result<(), IndexError> {
        if self.model_id() == model_id {
            Ok(())
        } else {
            Err(IndexError::ModelMismatch {
                index_model: self.model_id().to_string(),
                model: model_id.to_string(),
            })
        }
    }

    /// Checksums the vector section now (what [`open_verified`](Self::open_verified) does on open).
    pub fn verify(&self) -> Result<(), IndexError> {
        let r = format::verify_vectors(&self.layout, self.bytes());
        match &self.path {
            Some(p) => r.map_err(|e| e.at(p)),
            None => r,
        }
    }

    /// Raw bytes of the vector section (for appending without re-quantising).
    pub(crate) fn vector_section(&self) -> &[u8] {
        let l = &self.layout;
        &self.bytes()[l.vectors_offset..l.vectors_offset + l.vectors_len]
    }

    /// Raw bytes of the metadata entries, after the model id (for appending).
    pub(crate) fn entry_records(&self) -> &[u8] {
        let l = &self.layout;
        &self.bytes()[l.entries_offset..l.entries_end]
    }

    /// The labels that have a label vector, in file order (none in a version 1 index).
    pub fn vector_labels(&self) -> &[String] {
        &self.layout.label_names
    }

    /// The label vector of `label` (unit length), if the index holds one.
    pub fn label_vector(&self, label: &str) -> Option<&[f32]> {
        let j = self.layout.label_names.iter().position(|n| n == label)?;
        Some(self.label_row(j))
    }

    pub(crate) fn label_row(&self, j: usize) -> &[f32] {
        let dim = self.dim();
        &self.layout.label_vectors[j * dim..(j + 1) * dim]
    }

    /// Whether entry `i` can be found by its label. Panics if `i >= len()`.
    pub fn has_label_vector(&self, i: usize) -> bool {
        self.layout.entry_label[i] != format::NO_LABEL_VECTOR
    }
}

#[cfg(test)]
mod tests;
