//! The byte layout of an index file (see the module documentation of `index`) and its parser.
//!
//! The parser never panics and never allocates more than the input justifies: every length in the header is
//! checked against the limits below and against the bytes actually present before anything is allocated.
use super::{format_err, FormatProblem, IndexError, IndexHeader, Section, VectorType};

pub const MAGIC: [u8; 8] = *b"VBINDEX\0";
/// The version this build writes.
pub const FORMAT_VERSION: u32 = 2;
/// The oldest version this build reads (version 1 has no label vectors: its memories match by picture alone).
pub const OLDEST_READ_VERSION: u32 = 1;
pub const HEADER_LEN: usize = 64;
/// The vector section starts at a multiple of this many bytes.
pub(crate) const ALIGN: usize = 64;

/// Largest embedding size accepted.
pub const MAX_DIM: usize = 1 << 16;
/// Most entries in one index.
pub const MAX_COUNT: usize = 1 << 26;
/// Largest index file accepted (32 GiB; an index this big is a mistake or damage on a robot).
pub const MAX_FILE_BYTES: u64 = 1 << 35;
/// Largest metadata section (model id, labels, paths).
pub const MAX_METADATA_BYTES: u64 = 1 << 30;
pub const MAX_MODEL_ID_BYTES: usize = 256;
pub const MAX_LABEL_BYTES: usize = 1024;
pub const MAX_PATH_BYTES: usize = 4096;

/// Smallest entry record: two length prefixes and one byte each of label and path.
const MIN_RECORD_BYTES: u64 = 10;
/// Marks an entry whose label has no label vector.
pub(crate) const NO_LABEL_VECTOR: u32 = u32::MAX;

/// The fixed header, as numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RawHeader {
    pub version: u32,
    pub vector_type: u8,
    pub dim: u32,
    pub count: u64,
    pub metadata_len: u64,
    pub vectors_len: u64,
    pub metadata_crc: u32,
    pub vectors_crc: u32,
}

impl RawHeader {
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[0..8].copy_from_slice(&MAGIC);
        h[8..12].copy_from_slice(&self.version.to_le_bytes());
        h[12] = self.vector_type;
        h[16..20].copy_from_slice(&self.dim.to_le_bytes());
        h[24..32].copy_from_slice(&self.count.to_le_bytes());
        h[32..40].copy_from_slice(&self.metadata_len.to_le_bytes());
        h[40..48].copy_from_slice(&self.vectors_len.to_le_bytes());
        h[48..52].copy_from_slice(&self.metadata_crc.to_le_bytes());
        h[52..56].copy_from_slice(&self.vectors_crc.to_le_bytes());
        let crc = crc32fast::hash(&h[..60]);
        h[60..64].copy_from_slice(&crc.to_le_bytes());
        h
    }
}

/// Where everything is, once the header and metadata have been checked.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub header: IndexHeader,
    /// Absolute offset of the first entry record.
    pub entries_offset: usize,
    /// Offset of each entry record, relative to `entries_offset`.
    pub records: Vec<u32>,
    /// Absolute offset just past the last entry record (where the label vectors begin in version 2).
    pub entries_end: usize,
    pub vectors_offset: usize,
    pub vectors_len: usize,
    pub vectors_crc: u32,
    /// The labels that have a label vector, in file order.
    pub label_names: Vec<String>,
    /// Their vectors, `label_names.len() × dim`, row-major, unit length.
    pub label_vectors: Vec<f32>,
    /// For each entry, the row of its label in `label_names`, or [`NO_LABEL_VECTOR`].
    pub entry_label: Vec<u32>,
}

impl Layout {
    pub fn label<'a>(&self, bytes: &'a [u8], i: usize) -> &'a str {
        // Checked when the index was opened; a fallback instead of a panic should the file change under us.
        let start = self.entries_offset + self.records[i] as usize;
        Reader::new(bytes, start, bytes.len())
            .string(MAX_LABEL_BYTES)
            .unwrap_or("?")
    }

    pub fn path<'a>(&self, bytes: &'a [u8], i: usize) -> &'a str {
        let start = self.entries_offset + self.records[i] as usize;
        let mut r = Reader::new(bytes, start, bytes.len());
        if r.string(MAX_LABEL_BYTES).is_none() {
            return "?";
        }
        r.string(MAX_PATH_BYTES).unwrap_or("?")
    }
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

pub(crate) fn align_up(n: u64) -> Option<u64> {
    let a = ALIGN as u64;
    n.checked_add(a - 1).map(|v| v / a * a)
}

fn corrupt(section: Section, detail: impl Into<String>) -> IndexError {
    format_err(FormatProblem::Corrupt {
        section,
        detail: detail.into(),
    })
}

/// `what`, which starts at byte `at` of the file, does not end inside the metadata.
fn past_the_end(what: &str, at: usize) -> IndexError {
    corrupt(
        Section::Metadata,
        format!("{what} at byte {at} runs past the section"),
    )
}

fn too_large(detail: String, limit: u64) -> IndexError {
    format_err(FormatProblem::TooLarge { detail, limit })
}

/// A bounds-checked cursor over `bytes[pos..end]`.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    end: usize,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8], pos: usize, end: usize) -> Self {
        Self {
            bytes,
            pos,
            end: end.min(bytes.len()),
        }
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let stop = self.pos.checked_add(n)?;
        if stop > self.end {
            return None;
        }
        let s = self.bytes.get(self.pos..stop)?;
        self.pos = stop;
        Some(s)
    }

    fn u32(&mut self) -> Option<u32> {
        let b = self.take(4)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A length-prefixed UTF-8 string of 1..=max bytes.
    fn string(&mut self, max: usize) -> Option<&'a str> {
        let n = self.u32()? as usize;
        if n == 0 || n > max {
            return None;
        }
        std::str::from_utf8(self.take(n)?).ok()
    }

    /// `u32`, with an error naming `what` when the section ends first.
    fn u32_of(&mut self, what: &str) -> Result<u32, IndexError> {
        let at = self.pos;
        self.u32().ok_or_else(|| past_the_end(what, at))
    }

    /// Like `string`, with an error that says what was wrong.
    fn field(&mut self, what: &str, max: usize) -> Result<&'a str, IndexError> {
        let at = self.pos;
        let n = self.u32_of(what)? as usize;
        if n == 0 {
            return Err(corrupt(
                Section::Metadata,
                format!("empty {what} at byte {at}"),
            ));
        }
        if n > max {
            return Err(corrupt(
                Section::Metadata,
                format!("{what} at byte {at} is {n} bytes, more than the {max}-byte limit"),
            ));
        }
        let raw = self.take(n).ok_or_else(|| past_the_end(what, at))?;
        std::str::from_utf8(raw).map_err(|_| {
            corrupt(
                Section::Metadata,
                format!("{what} at byte {at} is not UTF-8"),
            )
        })
    }
}

/// Reads and checks the fixed header.
pub(crate) fn parse_header(bytes: &[u8]) -> Result<RawHeader, IndexError> {
    let have = bytes.len() as u64;
    let magic_len = bytes.len().min(MAGIC.len());
    if bytes[..magic_len] != MAGIC[..magic_len] {
        return Err(format_err(FormatProblem::NotAnIndex));
    }
    if bytes.len() < HEADER_LEN {
        return Err(format_err(FormatProblem::Truncated {
            section: Section::Header,
            have,
            need: HEADER_LEN as u64,
        }));
    }
    let h = &bytes[..HEADER_LEN];
    let version = le_u32(h, 8);
    let stored = le_u32(h, 60);
    let computed = crc32fast::hash(&h[..60]);
    if !(OLDEST_READ_VERSION..=FORMAT_VERSION).contains(&version) {
        // A later version keeps the magic, the version and the header checksum in place; a version that
        // fails the checksum and is implausible is damage.
        if stored == computed || (FORMAT_VERSION..=1000).contains(&version) {
            return Err(format_err(FormatProblem::UnsupportedVersion {
                found: version,
            }));
        }
    }
    if stored != computed {
        return Err(format_err(FormatProblem::Checksum {
            section: Section::Header,
            stored,
            computed,
        }));
    }
    if h[13..16] != [0, 0, 0] || h[20..24] != [0; 4] || h[56..60] != [0; 4] {
        return Err(corrupt(Section::Header, "reserved bytes are not zero"));
    }
    Ok(RawHeader {
        version,
        vector_type: h[12],
        dim: le_u32(h, 16),
        count: le_u64(h, 24),
        metadata_len: le_u64(h, 32),
        vectors_len: le_u64(h, 40),
        metadata_crc: le_u32(h, 48),
        vectors_crc: le_u32(h, 52),
    })
}

/// Checks the header, the limits, the file length, the metadata checksum and the padding, and indexes the
/// entries; with `check_vectors`, also the vector checksum.
pub(crate) fn parse(bytes: &[u8], check_vectors: bool) -> Result<Layout, IndexError> {
    let raw = parse_header(bytes)?;
    let (vector_type, dim) = check_limits(&raw)?;
    let (metadata_end, vectors_offset) = check_sections(bytes, &raw)?;
    let metadata = read_metadata(bytes, &raw, dim, metadata_end)?;
    let entry_label = label_rows(bytes, &metadata);
    let count = raw.count as usize;
    let layout = Layout {
        header: IndexHeader {
            version: raw.version,
            model_id: metadata.model_id,
            dim,
            count,
            vector_type,
        },
        entries_offset: metadata.entries_offset,
        records: metadata.records,
        entries_end: metadata.entries_end,
        vectors_offset,
        vectors_len: raw.vectors_len as usize,
        vectors_crc: raw.vectors_crc,
        label_names: metadata.label_names,
        label_vectors: metadata.label_vectors,
        entry_label,
    };
    if check_vectors {
        verify_vectors(&layout, bytes)?;
    }
    Ok(layout)
}

/// The header's vector type and dimension, and every size it states within this build's limits.
fn check_limits(raw: &RawHeader) -> Result<(VectorType, usize), IndexError> {
    let vector_type = VectorType::from_code(raw.vector_type).ok_or_else(|| {
        corrupt(
            Section::Header,
            format!("unknown vector type code {}", raw.vector_type),
        )
    })?;
    let dim = raw.dim as usize;
    if dim == 0 {
        return Err(corrupt(Section::Header, "dim is zero"));
    }
    if dim > MAX_DIM {
        return Err(too_large(format!("dim {dim}"), MAX_DIM as u64));
    }
    if raw.count > MAX_COUNT as u64 {
        return Err(too_large(
            format!("{} entries", raw.count),
            MAX_COUNT as u64,
        ));
    }
    if raw.metadata_len > MAX_METADATA_BYTES {
        return Err(too_large(
            format!("a metadata section of {} bytes", raw.metadata_len),
            MAX_METADATA_BYTES,
        ));
    }
    let expected_vectors = vector_type
        .section_bytes(raw.count, raw.dim as u64)
        .ok_or_else(|| too_large("count × dim overflows".into(), MAX_FILE_BYTES))?;
    if raw.vectors_len != expected_vectors {
        return Err(corrupt(
            Section::Header,
            format!(
                "the vector section is said to be {} bytes, but {} {vector_type} vectors of {dim} values take {expected_vectors}",
                raw.vectors_len, raw.count
            ),
        ));
    }
    Ok((vector_type, dim))
}

/// The file is exactly as long as the header says, the metadata checksum holds and the padding is zero:
/// the metadata's end and the vectors' offset, both within `bytes`.
fn check_sections(bytes: &[u8], raw: &RawHeader) -> Result<(usize, usize), IndexError> {
    let metadata_end = HEADER_LEN as u64 + raw.metadata_len;
    let vectors_offset = align_up(metadata_end).unwrap_or(u64::MAX);
    let total = vectors_offset.saturating_add(raw.vectors_len);
    if total > MAX_FILE_BYTES {
        return Err(too_large(
            format!("an index of {total} bytes"),
            MAX_FILE_BYTES,
        ));
    }
    let have = bytes.len() as u64;
    for (section, need) in [
        (Section::Metadata, metadata_end),
        (Section::Padding, vectors_offset),
        (Section::Vectors, total),
    ] {
        if have < need {
            return Err(format_err(FormatProblem::Truncated {
                section,
                have,
                need: total,
            }));
        }
    }
    if have > total {
        return Err(format_err(FormatProblem::TrailingBytes {
            extra: have - total,
        }));
    }
    // Every offset below is now within `bytes`, so it fits in usize.
    let metadata_end = metadata_end as usize;
    let vectors_offset = vectors_offset as usize;
    let metadata = &bytes[HEADER_LEN..metadata_end];
    check_crc(Section::Metadata, metadata, raw.metadata_crc)?;
    if bytes[metadata_end..vectors_offset].iter().any(|&b| b != 0) {
        return Err(corrupt(Section::Padding, "padding bytes are not zero"));
    }

    Ok((metadata_end, vectors_offset))
}

/// What the metadata section holds, located: the model id, each entry's record, and the label vectors.
struct Metadata {
    model_id: String,
    entries_offset: usize,
    records: Vec<u32>,
    entries_end: usize,
    label_names: Vec<String>,
    label_vectors: Vec<f32>,
}

/// Reads the model id, the entries' labels and paths and (version 2) the label vectors, and checks that
/// nothing is left over.
fn read_metadata(
    bytes: &[u8],
    raw: &RawHeader,
    dim: usize,
    metadata_end: usize,
) -> Result<Metadata, IndexError> {
    let mut r = Reader::new(bytes, HEADER_LEN, metadata_end);
    let model_id = r.field("model id", MAX_MODEL_ID_BYTES)?.to_string();
    let entries_offset = r.pos;
    let left = (metadata_end - entries_offset) as u64;
    if raw.count.saturating_mul(MIN_RECORD_BYTES) > left {
        return Err(corrupt(
            Section::Metadata,
            format!("{left} bytes cannot hold {} entries", raw.count),
        ));
    }
    let count = raw.count as usize;
    let mut records = Vec::with_capacity(count);
    for i in 0..count {
        records.push((r.pos - entries_offset) as u32);
        r.field(&format!("label of entry {i}"), MAX_LABEL_BYTES)?;
        r.field(&format!("path of entry {i}"), MAX_PATH_BYTES)?;
    }
    let entries_end = r.pos;
    let (label_names, label_vectors) = if raw.version >= 2 {
        read_label_vectors(&mut r, dim, metadata_end)?
    } else {
        (Vec::new(), Vec::new())
    };
    if r.pos != metadata_end {
        return Err(corrupt(
            Section::Metadata,
            format!(
                "{} bytes left over after {count} entries and {} label vectors",
                metadata_end - r.pos,
                label_names.len()
            ),
        ));
    }
    Ok(Metadata {
        model_id,
        entries_offset,
        records,
        entries_end,
        label_names,
        label_vectors,
    })
}

/// For each entry, the row of its label's vector ([`NO_LABEL_VECTOR`] when its label has none).
fn label_rows(bytes: &[u8], m: &Metadata) -> Vec<u32> {
    if m.label_names.is_empty() {
        return vec![NO_LABEL_VECTOR; m.records.len()];
    }
    let rows: std::collections::HashMap<&str, u32> = m
        .label_names
        .iter()
        .enumerate()
        .map(|(j, name)| (name.as_str(), j as u32))
        .collect();
    let mut reader = Reader::new(bytes, m.entries_offset, m.entries_end);
    (0..m.records.len())
        .map(|_| {
            let label = reader.string(MAX_LABEL_BYTES).unwrap_or("");
            reader.string(MAX_PATH_BYTES);
            rows.get(label).copied().unwrap_or(NO_LABEL_VECTOR)
        })
        .collect()
}

/// Version 2's label vectors, after the entries: `u32 L`, then L × { u32 label length, label, dim × f32 }.
fn read_label_vectors(
    r: &mut Reader,
    dim: usize,
    metadata_end: usize,
) -> Result<(Vec<String>, Vec<f32>), IndexError> {
    let n = u64::from(r.u32_of("the label vector count")?);
    // Each label vector takes its length prefix, one byte of label and dim values.
    let left = (metadata_end - r.pos) as u64;
    if n.saturating_mul(5 + 4 * dim as u64) > left {
        return Err(corrupt(
            Section::Metadata,
            format!("{left} bytes cannot hold {n} label vectors of {dim} values"),
        ));
    }
    let n = n as usize;
    let mut names: Vec<String> = Vec::with_capacity(n);
    let mut seen = std::collections::HashSet::with_capacity(n);
    let mut vectors = Vec::with_capacity(n * dim);
    for j in 0..n {
        let name = r.field(&format!("label of label vector {j}"), MAX_LABEL_BYTES)?;
        if !seen.insert(name) {
            return Err(corrupt(
                Section::Metadata,
                format!("label {name:?} has two label vectors"),
            ));
        }
        let raw = r.take(4 * dim).ok_or_else(|| {
            corrupt(
                Section::Metadata,
                format!("label vector {j} runs past the section"),
            )
        })?;
        let start = vectors.len();
        vectors.extend(
            raw.chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        );
        if vectors[start..].iter().any(|v| !v.is_finite()) {
            return Err(corrupt(
                Section::Metadata,
                format!("label vector {j} ({name:?}) holds NaN or infinite values"),
            ));
        }
        names.push(name.to_string());
    }
    Ok((names, vectors))
}

pub(crate) fn verify_vectors(layout: &Layout, bytes: &[u8]) -> Result<(), IndexError> {
    let section = bytes
        .get(layout.vectors_offset..layout.vectors_offset + layout.vectors_len)
        .ok_or_else(|| {
            format_err(FormatProblem::Truncated {
                section: Section::Vectors,
                have: bytes.len() as u64,
                need: (layout.vectors_offset + layout.vectors_len) as u64,
            })
        })?;
    check_crc(Section::Vectors, section, layout.vectors_crc)
}

/// The CRC-32 of `bytes`, which hold `section`, against the one the header stores.
fn check_crc(section: Section, bytes: &[u8], stored: u32) -> Result<(), IndexError> {
    let computed = crc32fast::hash(bytes);
    if computed != stored {
        return Err(format_err(FormatProblem::Checksum {
            section,
            stored,
            computed,
        }));
    }
    Ok(())
}
