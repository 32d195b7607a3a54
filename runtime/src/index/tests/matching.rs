//! Matching by picture, by label vector or both (format version 2), and version 1 indexes by picture alone.
use super::*;

#[test]
fn an_index_of_format_version_1_is_still_read_and_matches_by_picture_alone() {
    let dim = 8;
    let v = vectors(6, dim, 5);
    let index = EmbeddingIndex::from_bytes(&v1_bytes(&entries(6), &v, dim)).unwrap();
    assert_eq!(index.header().version, 1);
    assert!(index.vector_labels().is_empty());
    assert_eq!(index.label(4), "cup");
    let q = vectors(1, dim, 9);
    let pictures = index.search(&q, 6).unwrap();
    for how in [Match::Both, Match::Picture] {
        let hits = index.search_matching(&q, 6, how).unwrap();
        assert_eq!(hits.len(), 6);
        for (h, p) in hits.iter().zip(&pictures) {
            assert_eq!(
                (h.index, h.score, h.matched),
                (p.index, p.score, Matched::Picture)
            );
        }
    }
    assert!(index
        .search_matching(&q, 6, Match::Label)
        .unwrap()
        .is_empty());
}

#[test]
fn label_vectors_round_trip_normalised_and_name_the_memories_they_cover() {
    for vt in VectorType::ALL {
        let (f, _, labels) = labelled(vt);
        let index = EmbeddingIndex::open_verified(&f.path).unwrap();
        assert_eq!(index.header().version, FORMAT_VERSION);
        assert_eq!(index.vector_labels(), ["tiger", "cup"]);
        let stored = index.label_vector("cup").unwrap();
        let want = normalised(&labels[1].vector);
        assert!(stored.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-6));
        assert!(index.label_vector("door").is_none());
        let covered: Vec<bool> = (0..3).map(|i| index.has_label_vector(i)).collect();
        assert_eq!(covered, [true, true, false]);
    }
}

#[test]
fn both_scores_each_memory_by_the_higher_of_picture_and_label_as_a_full_scan_would() {
    for vt in VectorType::ALL {
        let (f, v, labels) = labelled(vt);
        let index = EmbeddingIndex::open(&f.path).unwrap();
        let dim = index.dim();
        for seed in 0..20u64 {
            // Half the queries lean towards a label vector, so both sides win somewhere.
            let mut q = vectors(1, dim, 100 + seed);
            if seed % 2 == 0 {
                let l = normalised(&labels[(seed / 2 % 2) as usize].vector);
                q.iter_mut().zip(&l).for_each(|(x, y)| *x = 0.3 * *x + y);
            }
            let mut want: Vec<(usize, f32, Matched)> = (0..index.len())
                .map(|i| {
                    let picture = cosine(&q, &v[i * dim..(i + 1) * dim]);
                    let label = match index.label(i) {
                        "tiger" => cosine(&q, &labels[0].vector),
                        "cup" => cosine(&q, &labels[1].vector),
                        _ => f32::NEG_INFINITY,
                    };
                    if label > picture {
                        (i, label, Matched::Label)
                    } else {
                        (i, picture, Matched::Picture)
                    }
                })
                .collect();
            want.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            let tol = if vt == VectorType::I8 { 2e-2 } else { 2e-3 };
            let hits = index.search_matching(&q, 5, Match::Both).unwrap();
            assert_eq!(hits.len(), 5);
            for (h, w) in hits.iter().zip(&want) {
                // Scores agree within storage rounding; where two memories are that close the order may swap.
                assert!(
                    (h.score - w.1).abs() < tol,
                    "{vt} seed {seed}: {h:?} vs {w:?}"
                );
                let exact = want.iter().find(|x| x.0 == h.index).unwrap();
                assert!(
                    (h.score - exact.1).abs() < tol,
                    "{vt} seed {seed}: {h:?} vs {exact:?}"
                );
                assert_eq!(h.matched, exact.2, "{vt} seed {seed}: {h:?} vs {exact:?}");
            }
        }
    }
}

#[test]
fn a_question_equal_to_a_label_vector_finds_every_memory_of_that_label_first() {
    let (f, _, labels) = labelled(VectorType::F16);
    let index = EmbeddingIndex::open(&f.path).unwrap();
    let hits = index
        .search_matching(&labels[0].vector, 4, Match::Both)
        .unwrap();
    assert!(hits
        .iter()
        .all(|h| index.label(h.index) == "tiger" && h.matched == Matched::Label));
    assert!(hits.iter().all(|h| (h.score - 1.0).abs() < 1e-5));
    let by_label = index
        .search_matching(&labels[0].vector, 12, Match::Label)
        .unwrap();
    assert_eq!(
        by_label.len(),
        8,
        "door has no label vector: only tiger and cup memories"
    );
    assert!(by_label.iter().all(|h| index.label(h.index) != "door"));
    let pictures = index
        .search_matching(&labels[0].vector, 3, Match::Picture)
        .unwrap();
    assert!(pictures
        .iter()
        .all(|h| h.matched == Matched::Picture && h.score < 0.99));
}
