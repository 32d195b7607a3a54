//! Exact search: sorted cosines, quantised types close to f32, bad queries refused, k capped.
use proptest::prelude::*;

use super::*;

#[test]
fn search_is_exact_sorted_and_finds_each_vector_itself() {
    let dim = 37;
    let (_f, v, index) = opened(200, dim, VectorType::F32);
    let q = vectors(1, dim, 99);
    let hits = index.search(&q, 10).unwrap();
    let mut want: Vec<(usize, f32)> = (0..200)
        .map(|i| (i, cosine(&q, &v[i * dim..(i + 1) * dim])))
        .collect();
    want.sort_by(|a, b| b.1.total_cmp(&a.1));
    assert_eq!(hits.len(), 10);
    for (h, w) in hits.iter().zip(&want) {
        assert_eq!(h.index, w.0);
        assert!((h.score - w.1).abs() < 1e-5, "{} vs {}", h.score, w.1);
    }
    assert!(hits.windows(2).all(|p| p[0].score >= p[1].score));
    for i in [0, 57, 199] {
        let top = index.search(&v[i * dim..(i + 1) * dim], 1).unwrap();
        assert_eq!(top[0].index, i);
        assert!((top[0].score - 1.0).abs() < 1e-5);
    }
}

#[test]
fn quantised_search_scores_stay_close_to_f32() {
    let dim = 64;
    let q = vectors(1, dim, 3);
    let (_f32_file, _, exact) = opened(50, dim, VectorType::F32);
    let want = exact.search(&q, 50).unwrap();
    for (vt, tol) in [(VectorType::F16, 2e-3), (VectorType::I8, 2e-2)] {
        let (_f, _, index) = opened(50, dim, vt);
        let got = index.search(&q, 50).unwrap();
        for w in &want {
            let g = got.iter().find(|h| h.index == w.index).unwrap();
            assert!(
                (g.score - w.score).abs() < tol,
                "{vt}: {} vs {}",
                g.score,
                w.score
            );
        }
    }
}

#[test]
fn search_refuses_bad_queries_and_caps_k() {
    let (_f, _, index) = opened(5, 8, VectorType::F32);
    let dim_err = index.search(&[1.0; 7], 3).unwrap_err();
    assert!(
        matches!(
            dim_err,
            IndexError::DimMismatch {
                expected: 8,
                got: 7
            }
        ),
        "{dim_err}"
    );
    let mut nan = [1.0f32; 8];
    nan[3] = f32::NAN;
    assert!(matches!(
        index.search(&nan, 3),
        Err(IndexError::InvalidQuery(_))
    ));
    let mut inf = [1.0f32; 8];
    inf[0] = f32::INFINITY;
    assert!(matches!(
        index.search(&inf, 3),
        Err(IndexError::InvalidQuery(_))
    ));
    assert!(matches!(
        index.search(&[0.0; 8], 3),
        Err(IndexError::InvalidQuery(_))
    ));
    assert!(index.search(&[1.0; 8], 0).unwrap().is_empty());
    assert_eq!(index.search(&[1.0; 8], 1000).unwrap().len(), 5);
}

#[test]
fn search_caps_k_at_max_top_k() {
    let (_f, _, index) = opened(MAX_TOP_K + 20, 4, VectorType::I8);
    assert_eq!(
        index
            .search(&[1.0, 0.5, 0.0, -1.0], usize::MAX)
            .unwrap()
            .len(),
        MAX_TOP_K
    );
}

#[test]
fn empty_index_opens_and_finds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.vbi");
    write_index(&path, "m", 4, VectorType::F16, &[], &[]).unwrap();
    let index = EmbeddingIndex::open_verified(&path).unwrap();
    assert!(index.is_empty());
    assert!(index.search(&[1.0; 4], 5).unwrap().is_empty());
}

#[test]
fn another_models_index_is_refused_naming_both_models() {
    let (_f, _, index) = opened(3, 4, VectorType::F32);
    index.check_model("vb-test-model").unwrap();
    let msg = index.check_model("vb-other").unwrap_err().to_string();
    assert!(
        msg.contains("vb-test-model") && msg.contains("vb-other"),
        "{msg}"
    );
    assert!(msg.contains("rebuild the index"), "{msg}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn search_agrees_with_brute_force(n in 1usize..40, dim in 1usize..24, seed in any::<u64>(), k in 0usize..50) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.vbi");
        let v = nonzero_vectors(n, dim, seed);
        write_index(&path, "m", dim, VectorType::F32, &entries(n), &v).unwrap();
        let index = EmbeddingIndex::open(&path).unwrap();
        let q = nonzero_vectors(1, dim, seed ^ 0xABCD);
        let hits = index.search(&q, k).unwrap();
        prop_assert_eq!(hits.len(), k.min(n));
        let mut scores: Vec<f32> = (0..n).map(|i| cosine(&q, &v[i * dim..(i + 1) * dim])).collect();
        scores.sort_by(|a, b| b.total_cmp(a));
        for (h, s) in hits.iter().zip(&scores) {
            prop_assert!((h.score - s).abs() < 1e-4, "{} vs {}", h.score, s);
        }
    }
}
