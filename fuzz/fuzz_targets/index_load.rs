//! Index bytes → parse with every checksum verified → read every entry and search. Damaged bytes must be
//! refused with a named problem; bytes that are accepted must search without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use visualbyte::index::EmbeddingIndex;

fuzz_target!(|data: &[u8]| {
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
    }
    let mut unit = vec![0.0; dim];
    if let Some(first) = unit.first_mut() {
        *first = 1.0;
    }
    if let Ok(hits) = index.search(&unit, 5) {
        assert!(hits.iter().all(|h| h.index < index.len()));
    }
});
