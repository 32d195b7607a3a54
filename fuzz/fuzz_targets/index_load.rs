//! Index bytes → parse with every checksum verified → read every entry and search. Damaged bytes must be
//! refused with a named problem; bytes that are accepted must search without panicking.
//!
//! Random changes almost never keep the three CRC-32s right, so each input is tried twice: as it is, and
//! with its checksums recomputed (header layout in runtime/src/index/format.rs), which lets the fuzzer
//! reach the metadata parser, the entries and the search with damaged contents.
#![no_main]

use libfuzzer_sys::fuzz_target;
use visualbyte::index::{EmbeddingIndex, Match};

/// `data` with the metadata, vector and header checksums made to match what they cover.
fn with_checksums_fixed(data: &[u8]) -> Option<Vec<u8>> {
    if data.len() < 64 {
        return None;
    }
    let mut bytes = data.to_vec();
    let le_u64 = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
    let metadata_len = usize::try_from(le_u64(32)).ok()?.min(bytes.len() - 64);
    let vectors_len = usize::try_from(le_u64(40)).ok()?.min(bytes.len());
    let metadata_crc = crc32fast::hash(&bytes[64..64 + metadata_len]);
    // The vector section ends the file (trailing bytes are refused).
    let vectors_crc = crc32fast::hash(&bytes[bytes.len() - vectors_len..]);
    bytes[48..52].copy_from_slice(&metadata_crc.to_le_bytes());
    bytes[52..56].copy_from_slice(&vectors_crc.to_le_bytes());
    let header_crc = crc32fast::hash(&bytes[..60]);
    bytes[60..64].copy_from_slice(&header_crc.to_le_bytes());
    Some(bytes)
}

fuzz_target!(|data: &[u8]| {
    exercise(data);
    if let Some(fixed) = with_checksums_fixed(data) {
        exercise(&fixed);
    }
});

fn exercise(data: &[u8]) {
    let Ok(index) = EmbeddingIndex::from_bytes(data) else {
        return;
    };
    let _ = index.verify();
    let _ = index.check_model("vb-fuzz");
    for i in 0..index.len().min(64) {
        let _ = index.entry(i);
        let _ = index.source_path(i);
        let _ = index.vector(i);
    }
    let _ = index.label_counts();
    let dim = index.dim();
    // A query from the tail of the input (any floats, NaN and zero included), and a plain one.
    let query: Vec<f32> = data
        .rchunks(4)
        .take(dim)
        .map(|c| {
            let mut b = [0u8; 4];
            b[..c.len()].copy_from_slice(c);
            f32::from_le_bytes(b)
        })
        .chain(std::iter::repeat(0.0))
        .take(dim)
        .collect();
    for k in [0, 1, 3, 300] {
        if let Ok(hits) = index.search(&query, k) {
            assert!(hits.len() <= k.min(index.len()));
            assert!(hits.iter().all(|h| h.index < index.len()));
        }
        // Label vectors (format 2): found by label, picture or both.
        for how in [Match::Picture, Match::Label, Match::Both] {
            if let Ok(hits) = index.search_matching(&query, k, how) {
                assert!(hits.len() <= k.min(index.len()));
                assert!(hits.iter().all(|h| h.index < index.len() && h.score.is_finite()));
            }
        }
    }
    for label in index.vector_labels() {
        assert_eq!(index.label_vector(label).map(<[f32]>::len), Some(dim));
    }
    for i in 0..index.len().min(64) {
        let _ = index.has_label_vector(i);
    }
    let mut unit = vec![0.0; dim];
    if let Some(first) = unit.first_mut() {
        *first = 1.0;
    }
    if let Ok(hits) = index.search(&unit, 5) {
        assert!(hits.iter().all(|h| h.index < index.len()));
    }
}
