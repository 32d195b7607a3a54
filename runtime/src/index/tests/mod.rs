//! Format, search and writer tests; none needs a model. The shared helpers are here, the tests in
//! `format`, `search`, `write` and `matching`.
use std::path::{Path, PathBuf};

use super::format::{RawHeader, ALIGN};
use super::*;

mod format;
mod matching;
mod search;
mod write;

/// Deterministic pseudo-random vectors (xorshift), values in [-1, 1).
fn vectors(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n * dim)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

/// `vectors`, with a row that came out all zeros given a 1 in front (the writer refuses zero rows).
fn nonzero_vectors(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut v = vectors(n, dim, seed);
    for row in v.chunks_exact_mut(dim) {
        if row.iter().all(|&x| x == 0.0) {
            row[0] = 1.0;
        }
    }
    v
}

fn entries(n: usize) -> Vec<Entry> {
    let labels = ["tiger", "cup", "door"];
    (0..n)
        .map(|i| Entry::new(labels[i % 3], format!("{}/{i}.png", labels[i % 3])))
        .collect()
}

fn normalised(v: &[f32]) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter().map(|x| x / n).collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    dot / (a.iter().map(|x| x * x).sum::<f32>().sqrt()
        * b.iter().map(|x| x * x).sum::<f32>().sqrt())
}

/// The largest difference between two vectors, value by value.
fn max_error(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// How far a stored value of `vt` may be from the normalised value written.
fn tolerance(vt: VectorType) -> f32 {
    match vt {
        VectorType::F32 => 1e-6,
        VectorType::F16 => 1e-3,
        VectorType::I8 => 1.5e-2,
    }
}

/// The names of the files in `dir`, sorted.
fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

struct Fixture {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

fn build(n: usize, dim: usize, vt: VectorType) -> (Fixture, Vec<f32>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("memory.vbi");
    let v = vectors(n, dim, 7);
    write_index(&path, "vb-test-model", dim, vt, &entries(n), &v).unwrap();
    (Fixture { _dir: dir, path }, v)
}

/// `build`, opened (the fixture keeps the file until the test ends).
fn opened(n: usize, dim: usize, vt: VectorType) -> (Fixture, Vec<f32>, EmbeddingIndex) {
    let (f, v) = build(n, dim, vt);
    let index = EmbeddingIndex::open(&f.path).unwrap();
    (f, v, index)
}

fn bytes_of(n: usize, dim: usize, vt: VectorType) -> Vec<u8> {
    let (f, _) = build(n, dim, vt);
    std::fs::read(&f.path).unwrap()
}

fn problem(r: Result<EmbeddingIndex, IndexError>) -> FormatProblem {
    match r {
        Ok(_) => panic!("damaged bytes were accepted"),
        Err(e) => e
            .format_problem()
            .cloned()
            .unwrap_or_else(|| panic!("not a format problem: {e}")),
    }
}

/// Offsets of the sections in a file written by `write_index`.
fn sections(bytes: &[u8]) -> (usize, usize, usize) {
    let meta_len = u64::from_le_bytes(bytes[32..40].try_into().unwrap()) as usize;
    let meta_end = HEADER_LEN + meta_len;
    let vectors = meta_end.div_ceil(ALIGN) * ALIGN;
    (meta_end, vectors, bytes.len())
}

// ---- label vectors (format version 2) ----------------------------------------------------------------

/// An index in format version 1 (no label vectors), as the previous writer made it: f32 vectors.
fn v1_bytes(entries: &[Entry], vectors: &[f32], dim: usize) -> Vec<u8> {
    let mut meta = Vec::new();
    let model = b"vb-test-model";
    meta.extend_from_slice(&(model.len() as u32).to_le_bytes());
    meta.extend_from_slice(model);
    for e in entries {
        for s in [&e.label, &e.path] {
            meta.extend_from_slice(&(s.len() as u32).to_le_bytes());
            meta.extend_from_slice(s.as_bytes());
        }
    }
    let mut section = Vec::new();
    for row in vectors.chunks_exact(dim) {
        for v in normalised(row) {
            section.extend_from_slice(&v.to_le_bytes());
        }
    }
    let h = RawHeader {
        version: 1,
        vector_type: 0,
        dim: dim as u32,
        count: entries.len() as u64,
        metadata_len: meta.len() as u64,
        vectors_len: section.len() as u64,
        metadata_crc: crc32fast::hash(&meta),
        vectors_crc: crc32fast::hash(&section),
    };
    let mut file = h.encode().to_vec();
    file.extend_from_slice(&meta);
    file.resize(file.len().div_ceil(ALIGN) * ALIGN, 0);
    file.extend_from_slice(&section);
    file
}

fn label_vector(label: &str, seed: u64, dim: usize) -> LabelVector {
    LabelVector {
        label: label.into(),
        vector: vectors(1, dim, seed),
    }
}

/// An index of 12 memories (tiger, cup, door in turn) where tiger and cup have label vectors.
fn labelled(vt: VectorType) -> (Fixture, Vec<f32>, Vec<LabelVector>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("memory.vbi");
    let dim = 16;
    let v = vectors(12, dim, 3);
    let labels = vec![label_vector("tiger", 11, dim), label_vector("cup", 12, dim)];
    write_index_with_labels(&path, "vb-test-model", dim, vt, &entries(12), &v, &labels).unwrap();
    (Fixture { _dir: dir, path }, v, labels)
}
