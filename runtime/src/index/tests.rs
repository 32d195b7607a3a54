//! Format, search and writer tests; none needs a model.
use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::format::{RawHeader, ALIGN};
use super::*;

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

#[test]
fn round_trip_keeps_header_entries_and_normalised_vectors_for_every_type() {
    for vt in VectorType::ALL {
        let (f, v) = build(10, 19, vt);
        let index = EmbeddingIndex::open_verified(&f.path).unwrap();
        let h = index.header();
        assert_eq!(
            (
                h.version,
                h.model_id.as_str(),
                h.dim,
                h.count,
                h.vector_type
            ),
            (FORMAT_VERSION, "vb-test-model", 19, 10, vt)
        );
        assert_eq!(index.entries().collect::<Vec<_>>(), entries(10));
        assert_eq!(index.label(4), "cup");
        assert_eq!(index.path_str(4), "cup/4.png");
        let tol = match vt {
            VectorType::F32 => 1e-6,
            VectorType::F16 => 1e-3,
            VectorType::I8 => 1.5e-2,
        };
        for i in 0..10 {
            let want = normalised(&v[i * 19..(i + 1) * 19]);
            let got = index.vector(i);
            let err = want
                .iter()
                .zip(&got)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            assert!(err < tol, "{vt} row {i}: max error {err}");
        }
    }
}

#[test]
fn search_is_exact_sorted_and_finds_each_vector_itself() {
    let dim = 37;
    let (f, v) = build(200, dim, VectorType::F32);
    let index = EmbeddingIndex::open(&f.path).unwrap();
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
    let (f32_file, _) = build(50, dim, VectorType::F32);
    let exact = EmbeddingIndex::open(&f32_file.path).unwrap();
    let q = vectors(1, dim, 3);
    let want = exact.search(&q, 50).unwrap();
    for (vt, tol) in [(VectorType::F16, 2e-3), (VectorType::I8, 2e-2)] {
        let (f, _) = build(50, dim, vt);
        let index = EmbeddingIndex::open(&f.path).unwrap();
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
    let (f, _) = build(5, 8, VectorType::F32);
    let index = EmbeddingIndex::open(&f.path).unwrap();
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
    let (f, _) = build(MAX_TOP_K + 20, 4, VectorType::I8);
    let index = EmbeddingIndex::open(&f.path).unwrap();
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
    let (f, _) = build(3, 4, VectorType::F32);
    let index = EmbeddingIndex::open(&f.path).unwrap();
    index.check_model("vb-test-model").unwrap();
    let msg = index.check_model("vb-other").unwrap_err().to_string();
    assert!(
        msg.contains("vb-test-model") && msg.contains("vb-other"),
        "{msg}"
    );
    assert!(msg.contains("rebuild the index"), "{msg}");
}

#[test]
fn every_truncation_is_refused_and_names_the_cut_section() {
    let bytes = bytes_of(4, 6, VectorType::F32);
    let (meta_end, vectors, end) = sections(&bytes);
    assert!(meta_end < vectors, "the test needs padding");
    for len in 0..bytes.len() {
        let p = problem(EmbeddingIndex::from_bytes(&bytes[..len]));
        let want = if len < HEADER_LEN {
            Section::Header
        } else if len < meta_end {
            Section::Metadata
        } else if len < vectors {
            Section::Padding
        } else {
            Section::Vectors
        };
        assert!(
            matches!(p, FormatProblem::Truncated { section, .. } if section == want),
            "cut at {len} of {end}: {p}"
        );
    }
}

#[test]
fn truncated_file_on_disk_is_named_in_the_error() {
    let (f, _) = build(4, 6, VectorType::F16);
    let bytes = std::fs::read(&f.path).unwrap();
    std::fs::write(&f.path, &bytes[..bytes.len() - 3]).unwrap();
    let msg = EmbeddingIndex::open(&f.path).unwrap_err().to_string();
    assert!(msg.contains("truncated in the vector section"), "{msg}");
    assert!(msg.contains(&f.path.display().to_string()), "{msg}");
}

#[test]
fn every_single_bit_flip_is_detected_by_full_verification() {
    for vt in VectorType::ALL {
        let bytes = bytes_of(3, 5, vt);
        for at in 0..bytes.len() {
            for bit in 0..8 {
                let mut bad = bytes.clone();
                bad[at] ^= 1 << bit;
                assert!(
                    EmbeddingIndex::from_bytes(&bad).is_err(),
                    "{vt}: flip of bit {bit} at byte {at} went unnoticed"
                );
            }
        }
    }
}

#[test]
fn bit_flips_name_the_damaged_section() {
    let bytes = bytes_of(4, 6, VectorType::F32);
    let (meta_end, vectors, end) = sections(&bytes);
    let flip = |at: usize| {
        let mut b = bytes.clone();
        b[at] ^= 0x10;
        problem(EmbeddingIndex::from_bytes(&b))
    };
    assert!(matches!(
        flip(20 + 16),
        FormatProblem::Checksum {
            section: Section::Header,
            ..
        }
    ));
    assert!(matches!(
        flip(HEADER_LEN + 6),
        FormatProblem::Checksum {
            section: Section::Metadata,
            ..
        }
    ));
    assert!(matches!(
        flip(meta_end),
        FormatProblem::Corrupt {
            section: Section::Padding,
            ..
        }
    ));
    assert!(matches!(
        flip(vectors + 5),
        FormatProblem::Checksum {
            section: Section::Vectors,
            ..
        }
    ));
    assert!(matches!(
        flip(end - 1),
        FormatProblem::Checksum {
            section: Section::Vectors,
            ..
        }
    ));
    assert_eq!(flip(vectors).section(), Some(Section::Vectors));
}

#[test]
fn open_checks_metadata_cheaply_and_open_verified_checks_the_vectors() {
    let (f, _) = build(4, 6, VectorType::F32);
    let good = std::fs::read(&f.path).unwrap();
    let mut bad = good.clone();
    let last = bad.len() - 2;
    bad[last] ^= 0x01;
    std::fs::write(&f.path, &bad).unwrap();
    let index = EmbeddingIndex::open(&f.path).expect("open does not read the vectors");
    assert!(index.verify().is_err());
    let msg = EmbeddingIndex::open_verified(&f.path)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("checksum mismatch in the vector section"),
        "{msg}"
    );

    let mut bad_meta = good;
    bad_meta[HEADER_LEN + 8] ^= 0x01;
    std::fs::write(&f.path, &bad_meta).unwrap();
    let msg = EmbeddingIndex::open(&f.path).unwrap_err().to_string();
    assert!(
        msg.contains("checksum mismatch in the metadata section"),
        "{msg}"
    );
}

#[test]
fn trailing_bytes_other_files_and_other_versions_are_refused() {
    let bytes = bytes_of(2, 3, VectorType::F32);
    let mut longer = bytes.clone();
    longer.extend_from_slice(b"xx");
    assert_eq!(
        problem(EmbeddingIndex::from_bytes(&longer)),
        FormatProblem::TrailingBytes { extra: 2 }
    );
    assert_eq!(
        problem(EmbeddingIndex::from_bytes(
            b"\x08\x01\x12\x07pytorch onnx model"
        )),
        FormatProblem::NotAnIndex
    );
    let mut v3 = bytes.clone();
    v3[8] = 3;
    let crc = crc32fast::hash(&v3[..60]);
    v3[60..64].copy_from_slice(&crc.to_le_bytes());
    assert_eq!(
        problem(EmbeddingIndex::from_bytes(&v3)),
        FormatProblem::UnsupportedVersion { found: 3 }
    );
}

/// A header whose checksum is right but whose numbers are hostile.
fn crafted(count: u64, dim: u32, vector_type: u8, metadata_len: u64, vectors_len: u64) -> Vec<u8> {
    let h = RawHeader {
        version: FORMAT_VERSION,
        vector_type,
        dim,
        count,
        metadata_len,
        vectors_len,
        metadata_crc: 0,
        vectors_crc: 0,
    };
    let mut b = h.encode().to_vec();
    b.extend_from_slice(&[0u8; 64]);
    b
}

#[test]
fn hostile_headers_fail_cleanly_without_huge_allocations() {
    let too_many = problem(EmbeddingIndex::from_bytes(&crafted(u64::MAX, 4, 0, 100, 0)));
    assert!(
        matches!(too_many, FormatProblem::TooLarge { .. }),
        "{too_many}"
    );
    let max = MAX_COUNT as u64;
    let big = problem(EmbeddingIndex::from_bytes(&crafted(
        max,
        MAX_DIM as u32,
        0,
        100,
        max * MAX_DIM as u64 * 4,
    )));
    assert!(matches!(big, FormatProblem::TooLarge { .. }), "{big}");
    let huge_dim = problem(EmbeddingIndex::from_bytes(&crafted(1, u32::MAX, 0, 100, 0)));
    assert!(
        matches!(huge_dim, FormatProblem::TooLarge { .. }),
        "{huge_dim}"
    );
    let zero_dim = problem(EmbeddingIndex::from_bytes(&crafted(1, 0, 0, 100, 0)));
    assert!(
        matches!(
            zero_dim,
            FormatProblem::Corrupt {
                section: Section::Header,
                ..
            }
        ),
        "{zero_dim}"
    );
    let bad_type = problem(EmbeddingIndex::from_bytes(&crafted(1, 4, 9, 100, 16)));
    assert!(
        matches!(
            bad_type,
            FormatProblem::Corrupt {
                section: Section::Header,
                ..
            }
        ),
        "{bad_type}"
    );
    let liar = problem(EmbeddingIndex::from_bytes(&crafted(1000, 4, 0, 100, 1)));
    assert!(
        matches!(
            liar,
            FormatProblem::Corrupt {
                section: Section::Header,
                ..
            }
        ),
        "{liar}"
    );
    // A million entries claimed, a few bytes present: refused before allocating for them.
    let short = problem(EmbeddingIndex::from_bytes(&crafted(
        1_000_000, 4, 2, 8, 8_000_000,
    )));
    assert!(matches!(short, FormatProblem::Truncated { .. }), "{short}");
    // A consistent, checksummed file whose metadata is far too small for the entries it claims.
    let mut meta = 1u32.to_le_bytes().to_vec();
    meta.push(b'm');
    meta.extend_from_slice(&[0u8; 11]);
    let h = RawHeader {
        version: FORMAT_VERSION,
        vector_type: 0,
        dim: 1,
        count: 1000,
        metadata_len: meta.len() as u64,
        vectors_len: 4000,
        metadata_crc: crc32fast::hash(&meta),
        vectors_crc: crc32fast::hash(&[0u8; 4000]),
    };
    let mut file = h.encode().to_vec();
    file.extend_from_slice(&meta);
    file.resize(128, 0);
    file.extend_from_slice(&[0u8; 4000]);
    let starved = problem(EmbeddingIndex::from_bytes(&file));
    assert!(
        matches!(
            starved,
            FormatProblem::Corrupt {
                section: Section::Metadata,
                ..
            }
        ),
        "{starved}"
    );
    assert!(
        starved.to_string().contains("cannot hold 1000 entries"),
        "{starved}"
    );
}

#[test]
fn a_file_beyond_the_size_limit_is_refused_before_it_is_mapped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.vbi");
    let file = std::fs::File::create(&path).unwrap();
    file.set_len(MAX_FILE_BYTES + 1).unwrap(); // sparse: no disk space used
    let err = EmbeddingIndex::open(&path).unwrap_err();
    assert!(
        matches!(err.format_problem(), Some(FormatProblem::TooLarge { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("huge.vbi"), "{err}");
}

#[test]
fn writing_replaces_atomically_and_leaves_no_temporary_files() {
    let (f, _) = build(6, 8, VectorType::F32);
    let dir = f.path.parent().unwrap();
    let before = std::fs::read(&f.path).unwrap();
    let old = EmbeddingIndex::open(&f.path).unwrap();
    // Refused input: nothing is written, the old index is untouched.
    let err = write_index(&f.path, "m", 8, VectorType::F32, &entries(2), &[0.0; 16]).unwrap_err();
    assert!(err.to_string().contains("all zeros"), "{err}");
    assert_eq!(std::fs::read(&f.path).unwrap(), before);
    // A new index replaces the file; the old map keeps reading the old contents.
    write_index(
        &f.path,
        "m2",
        8,
        VectorType::I8,
        &entries(2),
        &vectors(2, 8, 5),
    )
    .unwrap();
    assert_eq!(EmbeddingIndex::open_verified(&f.path).unwrap().len(), 2);
    assert_eq!(old.len(), 6);
    assert_eq!(old.search(&[1.0; 8], 3).unwrap().len(), 3);
    let names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["memory.vbi".to_string()]);
}

#[test]
fn a_failed_write_leaves_the_old_index_and_no_temporary_file() {
    let (f, _) = build(2, 4, VectorType::F32);
    let before = std::fs::read(&f.path).unwrap();
    // A directory where the temporary file would be renamed to cannot be replaced by a file.
    let target = f.path.parent().unwrap().join("taken");
    std::fs::create_dir(&target).unwrap();
    std::fs::write(target.join("x"), b"x").unwrap();
    let err = write_index(&target, "m", 4, VectorType::F32, &entries(1), &[1.0; 4]).unwrap_err();
    assert!(matches!(err, IndexError::Io { .. }), "{err}");
    assert_eq!(std::fs::read(&f.path).unwrap(), before);
    let stray: Vec<_> = std::fs::read_dir(f.path.parent().unwrap())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
}

#[test]
fn temporaries_left_by_an_interrupted_write_are_removed_by_the_next_one() {
    let (f, _) = build(2, 4, VectorType::F32);
    let dir = f.path.parent().unwrap();
    std::fs::write(dir.join(".memory.vbi.a1B2c3.tmp"), b"half-written").unwrap();
    std::fs::write(dir.join(".other.vbi.a1B2c3.tmp"), b"someone else's").unwrap();
    append_index(
        &f.path,
        "vb-test-model",
        &[Entry::new("x", "x.png")],
        &[1.0; 4],
    )
    .unwrap();
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec![
            ".other.vbi.a1B2c3.tmp".to_string(),
            "memory.vbi".to_string()
        ]
    );
}

#[test]
fn writer_refuses_bad_input_with_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.vbi");
    let e2 = entries(2);
    let msg = |r: Result<(), IndexError>| r.unwrap_err().to_string();
    assert!(msg(write_index(&p, "m", 4, VectorType::F32, &e2, &[1.0; 7])).contains("values"));
    assert!(matches!(
        write_index(&p, "m", 4, VectorType::F32, &e2, &[1.0; 10]),
        Err(IndexError::DimMismatch {
            expected: 4,
            got: 5
        })
    ));
    let mut nan = vec![1.0; 8];
    nan[5] = f32::NAN;
    assert!(msg(write_index(&p, "m", 4, VectorType::F32, &e2, &nan)).contains("NaN"));
    assert!(msg(write_index(&p, "", 4, VectorType::F32, &e2, &[1.0; 8])).contains("model id"));
    assert!(msg(write_index(&p, "m", 0, VectorType::F32, &[], &[])).contains("embedding size"));
    let blank = [Entry::new("", "a.png")];
    assert!(msg(write_index(&p, "m", 4, VectorType::F32, &blank, &[1.0; 4])).contains("label"));
    let newline = [Entry::new("ti\nger", "a.png")];
    assert!(msg(write_index(
        &p,
        "m",
        4,
        VectorType::F32,
        &newline,
        &[1.0; 4]
    ))
    .contains("control"));
    assert!(!p.exists());
}

#[test]
fn append_keeps_old_vectors_exactly_and_adds_new_ones() {
    for vt in VectorType::ALL {
        let (f, _) = build(5, 12, vt);
        let before = EmbeddingIndex::open(&f.path).unwrap();
        let old_rows: Vec<Vec<f32>> = (0..5).map(|i| before.vector(i)).collect();
        let new = vectors(3, 12, 42);
        let added = vec![
            Entry::new("cat", "cat/a.png"),
            Entry::new("cat", "cat/b.png"),
            Entry::new("dog", "d.png"),
        ];
        let h = append_index(&f.path, "vb-test-model", &added, &new).unwrap();
        assert_eq!(h.count, 8);
        let after = EmbeddingIndex::open_verified(&f.path).unwrap();
        assert_eq!(after.len(), 8);
        assert_eq!(after.header().vector_type, vt);
        for (i, row) in old_rows.iter().enumerate() {
            assert_eq!(&after.vector(i), row, "{vt}: old row {i} changed");
        }
        assert_eq!(after.entry(7), Entry::new("dog", "d.png"));
        let top = after.search(&new[12..24], 1).unwrap();
        assert_eq!(top[0].index, 6, "{vt}");
        assert_eq!(after.label_counts().get("cat"), Some(&2));
    }
}

#[test]
fn append_refuses_another_model_a_damaged_index_and_wrong_sizes() {
    let (f, _) = build(3, 4, VectorType::F32);
    let before = std::fs::read(&f.path).unwrap();
    let one = [Entry::new("x", "x.png")];
    let err = append_index(&f.path, "vb-other", &one, &[1.0; 4]).unwrap_err();
    assert!(matches!(err, IndexError::ModelMismatch { .. }), "{err}");
    let err = append_index(&f.path, "vb-test-model", &one, &[1.0; 5]).unwrap_err();
    assert!(
        matches!(
            err,
            IndexError::DimMismatch {
                expected: 4,
                got: 5
            }
        ),
        "{err}"
    );
    assert_eq!(std::fs::read(&f.path).unwrap(), before);
    let mut bad = before.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0x40;
    std::fs::write(&f.path, &bad).unwrap();
    let err = append_index(&f.path, "vb-test-model", &one, &[1.0; 4]).unwrap_err();
    assert_eq!(
        err.format_problem().and_then(FormatProblem::section),
        Some(Section::Vectors),
        "{err}"
    );
    assert_eq!(std::fs::read(&f.path).unwrap(), bad);
}

#[test]
fn concurrent_appends_lose_nothing() {
    let (f, _) = build(1, 4, VectorType::F32);
    std::thread::scope(|s| {
        for t in 0..4 {
            let path = &f.path;
            s.spawn(move || {
                for i in 0..5 {
                    let e = [Entry::new(format!("t{t}"), format!("{t}/{i}.png"))];
                    append_index(
                        path,
                        "vb-test-model",
                        &e,
                        &vectors(1, 4, (t * 10 + i + 1) as u64),
                    )
                    .unwrap();
                }
            });
        }
    });
    let index = EmbeddingIndex::open_verified(&f.path).unwrap();
    assert_eq!(index.len(), 21);
    for t in 0..4 {
        assert_eq!(index.label_counts().get(&format!("t{t}")), Some(&5));
    }
}

#[test]
fn stored_paths_are_relative_to_the_index_folder_and_resolve_back() {
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    let pics = dir.path().join("memory/tiger");
    std::fs::create_dir_all(&models).unwrap();
    std::fs::create_dir_all(&pics).unwrap();
    let pic = pics.join("1.png");
    std::fs::write(&pic, b"not really a png").unwrap();
    let index_path = models.join("memory.vbi");
    let stored = stored_path(&index_path, &pic).unwrap();
    assert_eq!(stored, "../memory/tiger/1.png");
    write_index(
        &index_path,
        "m",
        2,
        VectorType::F32,
        &[Entry::new("tiger", stored)],
        &[1.0, 0.0],
    )
    .unwrap();
    let index = EmbeddingIndex::open(&index_path).unwrap();
    assert_eq!(
        index.source_path(0).canonicalize().unwrap(),
        pic.canonicalize().unwrap()
    );
    assert!(matches!(
        stored_path(&index_path, Path::new("/no/such/picture.png")),
        Err(IndexError::Io { .. })
    ));
}

#[test]
fn vector_type_names_round_trip() {
    for vt in VectorType::ALL {
        assert_eq!(vt.to_string().parse::<VectorType>().unwrap(), vt);
        let json = serde_json::to_string(&vt).unwrap();
        assert_eq!(json, format!("\"{vt}\""));
        assert_eq!(serde_json::from_str::<VectorType>(&json).unwrap(), vt);
    }
    assert!("f64"
        .parse::<VectorType>()
        .unwrap_err()
        .to_string()
        .contains("f32, f16 or i8"));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = EmbeddingIndex::from_bytes(&bytes);
        let mut with_magic = MAGIC.to_vec();
        with_magic.extend_from_slice(&bytes);
        let _ = EmbeddingIndex::from_bytes(&with_magic);
    }

    #[test]
    fn mutated_indexes_never_panic_and_opened_ones_search(
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        cut in any::<usize>(),
    ) {
        let mut bytes = bytes_of(3, 5, VectorType::I8);
        for (at, v) in edits {
            let n = bytes.len();
            bytes[at % n] = v;
        }
        bytes.truncate(bytes.len() - cut % 3);
        // Only the header and metadata checks: damaged vectors must still search without panicking.
        if let Ok(layout) = format::parse(&bytes, false) {
            let index = EmbeddingIndex { backing: Backing::Owned(bytes), layout, path: None };
            for i in 0..index.len() {
                let _ = index.entry(i);
                let _ = index.vector(i);
            }
            let hits = index.search(&[1.0, 0.0, 0.0, 0.0, 0.5], 3).unwrap();
            prop_assert!(hits.iter().all(|h| h.score.is_finite() && h.index < index.len()));
        }
    }

    /// Whatever the labels, paths, sizes and vector type: what is written is what is read back (vectors
    /// normalised, within the type's rounding), by every way of opening, and a search finds each vector.
    #[test]
    fn write_read_round_trips_for_every_vector_type(
        vt in proptest::sample::select(VectorType::ALL.to_vec()),
        dim in 1usize..48,
        seed in any::<u64>(),
        names in proptest::collection::vec(("[^\\p{Cc}]{1,12}", "\\PC{1,40}"), 1..24),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rt.vbi");
        let n = names.len();
        let entries: Vec<Entry> = names.iter().map(|(l, p)| Entry::new(l.as_str(), p.as_str())).collect();
        let mut v = vectors(n, dim, seed);
        for row in v.chunks_exact_mut(dim) {
            if row.iter().all(|&x| x == 0.0) { row[0] = 1.0; }
        }
        write_index(&path, "vb-round-trip", dim, vt, &entries, &v).unwrap();
        let tol = match vt {
            VectorType::F32 => 1e-6,
            VectorType::F16 => 1e-3,
            VectorType::I8 => 1.5e-2,
        };
        let bytes = std::fs::read(&path).unwrap();
        for index in [
            EmbeddingIndex::open(&path).unwrap(),
            EmbeddingIndex::open_verified(&path).unwrap(),
            EmbeddingIndex::from_bytes(&bytes).unwrap(),
        ] {
            prop_assert_eq!(index.header().vector_type, vt);
            prop_assert_eq!((index.len(), index.dim(), index.model_id()), (n, dim, "vb-round-trip"));
            prop_assert_eq!(index.entries().collect::<Vec<_>>(), entries.clone());
            for i in 0..n {
                let want = normalised(&v[i * dim..(i + 1) * dim]);
                let got = index.vector(i);
                let err = want.iter().zip(&got).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
                prop_assert!(err < tol, "{} row {}: max error {}", vt, i, err);
                let best = index.search(&want, 1).unwrap();
                prop_assert!(best[0].score > 1.0 - 10.0 * tol, "{} row {}: {:?}", vt, i, best);
            }
        }
    }

    #[test]
    fn search_agrees_with_brute_force(n in 1usize..40, dim in 1usize..24, seed in any::<u64>(), k in 0usize..50) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.vbi");
        let mut v = vectors(n, dim, seed);
        for row in v.chunks_exact_mut(dim) {
            if row.iter().all(|&x| x == 0.0) { row[0] = 1.0; }
        }
        write_index(&path, "m", dim, VectorType::F32, &entries(n), &v).unwrap();
        let index = EmbeddingIndex::open(&path).unwrap();
        let mut q = vectors(1, dim, seed ^ 0xABCD);
        if q.iter().all(|&x| x == 0.0) { q[0] = 1.0; }
        let hits = index.search(&q, k).unwrap();
        prop_assert_eq!(hits.len(), k.min(n));
        let mut scores: Vec<f32> = (0..n).map(|i| cosine(&q, &v[i * dim..(i + 1) * dim])).collect();
        scores.sort_by(|a, b| b.total_cmp(a));
        for (h, s) in hits.iter().zip(&scores) {
            prop_assert!((h.score - s).abs() < 1e-4, "{} vs {}", h.score, s);
        }
    }
}

/// The index seeds of the `index_load` fuzz target are what this writer writes (one per vector type, one
/// with label vectors) plus one in format version 1, so the fuzzer starts from valid files;
/// `VISUALBYTE_UPDATE_GOLDEN=1` rewrites them after a format change.
#[test]
fn fuzz_seed_indexes_match_the_writer() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/index_load");
    let update = std::env::var_os("VISUALBYTE_UPDATE_GOLDEN").is_some();
    let labelled = {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("m.vbi");
        let labels = [label_vector("tiger", 1, 4), label_vector("door", 2, 4)];
        let v = vectors(3, 4, 7);
        write_index_with_labels(
            &path,
            "vb-test-model",
            4,
            VectorType::F16,
            &entries(3),
            &v,
            &labels,
        )
        .unwrap();
        std::fs::read(&path).unwrap()
    };
    let mut seeds: Vec<(String, Vec<u8>)> = VectorType::ALL
        .iter()
        .map(|vt| (format!("seed-{}.vbi", vt.as_str()), bytes_of(3, 4, *vt)))
        .collect();
    seeds.push(("seed-labels.vbi".into(), labelled));
    seeds.push((
        "seed-v1.vbi".into(),
        v1_bytes(&entries(3), &vectors(3, 4, 7), 4),
    ));
    for (name, bytes) in seeds {
        let seed = dir.join(name);
        if update {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&seed, &bytes).unwrap();
        }
        let committed = std::fs::read(&seed).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (VISUALBYTE_UPDATE_GOLDEN=1 writes it)",
                seed.display()
            )
        });
        assert_eq!(committed, bytes, "{} is stale", seed.display());
        let index = EmbeddingIndex::from_bytes(&committed).unwrap();
        assert_eq!(index.search(&[1.0, 0.0, 0.0, 0.0], 2).unwrap().len(), 2);
    }
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

#[test]
fn appending_keeps_old_label_vectors_adds_new_ones_and_upgrades_a_version_1_index() {
    let (f, _, labels) = labelled(VectorType::F32);
    let dim = 16;
    let before = EmbeddingIndex::open(&f.path)
        .unwrap()
        .label_vector("tiger")
        .unwrap()
        .to_vec();
    let header = append_index_with_labels(
        &f.path,
        "vb-test-model",
        &[Entry::new("door", "door/new.png")],
        &vectors(1, dim, 40),
        &[
            label_vector("door", 41, dim),
            label_vector("tiger", 42, dim),
        ],
    )
    .unwrap();
    assert_eq!(header.count, 13);
    let index = EmbeddingIndex::open_verified(&f.path).unwrap();
    assert_eq!(index.vector_labels(), ["tiger", "cup", "door"]);
    assert_eq!(
        index.label_vector("tiger").unwrap(),
        before,
        "a stored label vector is kept"
    );
    assert!(index.has_label_vector(2) && index.has_label_vector(12));
    drop(labels);

    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old.vbi");
    std::fs::write(&old, v1_bytes(&entries(3), &vectors(3, 4, 1), 4)).unwrap();
    let header = append_index_with_labels(
        &old,
        "vb-test-model",
        &[Entry::new("cup", "cup/9.png")],
        &vectors(1, 4, 2),
        &[label_vector("tiger", 3, 4)],
    )
    .unwrap();
    assert_eq!(header.version, FORMAT_VERSION);
    let index = EmbeddingIndex::open_verified(&old).unwrap();
    assert_eq!((index.header().version, index.len()), (FORMAT_VERSION, 4));
    assert_eq!(index.vector_labels(), ["tiger"]);
}

#[test]
fn label_vectors_that_fit_no_memory_or_are_broken_are_refused_before_writing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.vbi");
    let write = |labels: &[LabelVector]| {
        write_index_with_labels(
            &path,
            "vb-test-model",
            4,
            VectorType::F32,
            &entries(3),
            &vectors(3, 4, 1),
            labels,
        )
        .unwrap_err()
        .to_string()
    };
    assert!(write(&[label_vector("zebra", 1, 4)]).contains("no memory has this label"));
    assert!(write(&[label_vector("tiger", 1, 5)]).contains("5 values"));
    let nan = LabelVector {
        label: "cup".into(),
        vector: vec![f32::NAN; 4],
    };
    assert!(write(&[nan]).contains("not finite"));
    let zero = LabelVector {
        label: "cup".into(),
        vector: vec![0.0; 4],
    };
    assert!(write(&[zero]).contains("all zeros"));
    assert!(write(&[label_vector("cup", 1, 4), label_vector("cup", 2, 4)]).contains("twice"));
    assert!(!path.exists(), "nothing is written");
}

/// The bytes of a labelled index with its metadata section replaced (checksums fixed up).
fn with_metadata(bytes: &[u8], edit: impl Fn(&mut Vec<u8>)) -> Vec<u8> {
    let (meta_end, vectors, _) = sections(bytes);
    let mut meta = bytes[HEADER_LEN..meta_end].to_vec();
    edit(&mut meta);
    let mut h = super::format::parse_header(bytes).unwrap();
    h.metadata_len = meta.len() as u64;
    h.metadata_crc = crc32fast::hash(&meta);
    let mut file = h.encode().to_vec();
    file.extend_from_slice(&meta);
    file.resize(file.len().div_ceil(ALIGN) * ALIGN, 0);
    file.extend_from_slice(&bytes[vectors..]);
    file
}

#[test]
fn damaged_label_vectors_are_refused_naming_the_metadata_section() {
    let (f, _, _) = labelled(VectorType::F32);
    let bytes = std::fs::read(&f.path).unwrap();
    let dim = 16;
    let record = 4 + 3 + 4 * dim; // "cup", the last label vector
    let corrupt_metadata = |b: &[u8]| match problem(EmbeddingIndex::from_bytes(b)) {
        FormatProblem::Corrupt {
            section: Section::Metadata,
            detail,
        } => detail,
        other => panic!("{other}"),
    };
    // The last vector cut short.
    let cut = with_metadata(&bytes, |m| m.truncate(m.len() - 5));
    assert!(corrupt_metadata(&cut).contains("label vector"));
    // The count claims far more than the bytes hold: refused before allocating for them.
    let greedy = with_metadata(&bytes, |m| {
        let at = m.len() - (4 + 5 + 4 * dim) - record - 4;
        m[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    });
    assert!(corrupt_metadata(&greedy).contains("cannot hold"));
    // The same label twice.
    let twice = with_metadata(&bytes, |m| {
        let at = m.len() - record;
        let tiger = m.len() - 2 * record - 2;
        let first: Vec<u8> = m[tiger..tiger + 4 + 5].to_vec();
        m.splice(at..at + 7, first);
    });
    assert!(corrupt_metadata(&twice).contains("two label vectors"));
    // A NaN in a vector.
    let nan = with_metadata(&bytes, |m| {
        let n = m.len();
        m[n - 4..].copy_from_slice(&f32::NAN.to_le_bytes());
    });
    assert!(corrupt_metadata(&nan).contains("NaN"));
}
