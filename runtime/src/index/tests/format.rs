//! The file format: what is written is read back, and every damage is refused naming its section.
use std::path::Path;

use proptest::prelude::*;

use super::*;

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
        let tol = tolerance(vt);
        for i in 0..10 {
            let want = normalised(&v[i * 19..(i + 1) * 19]);
            let err = max_error(&want, &index.vector(i));
            assert!(err < tol, "{vt} row {i}: max error {err}");
        }
    }
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
    // (where, whether a checksum or a plain check notices, the section named)
    for (at, checksum, want) in [
        (20 + 16, true, Section::Header),
        (HEADER_LEN + 6, true, Section::Metadata),
        (meta_end, false, Section::Padding),
        (vectors + 5, true, Section::Vectors),
        (end - 1, true, Section::Vectors),
    ] {
        let p = flip(at);
        let named = match &p {
            FormatProblem::Checksum { section, .. } => checksum && *section == want,
            FormatProblem::Corrupt { section, .. } => !checksum && *section == want,
            _ => false,
        };
        assert!(named, "flip at {at}: {p}");
    }
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
    let max = MAX_COUNT as u64;
    for (what, header) in [
        ("too many", crafted(u64::MAX, 4, 0, 100, 0)),
        (
            "big",
            crafted(max, MAX_DIM as u32, 0, 100, max * MAX_DIM as u64 * 4),
        ),
        ("huge dim", crafted(1, u32::MAX, 0, 100, 0)),
    ] {
        let p = problem(EmbeddingIndex::from_bytes(&header));
        assert!(matches!(p, FormatProblem::TooLarge { .. }), "{what}: {p}");
    }
    for (what, header) in [
        ("zero dim", crafted(1, 0, 0, 100, 0)),
        ("bad type", crafted(1, 4, 9, 100, 16)),
        ("liar", crafted(1000, 4, 0, 100, 1)),
    ] {
        let p = problem(EmbeddingIndex::from_bytes(&header));
        assert!(
            matches!(
                p,
                FormatProblem::Corrupt {
                    section: Section::Header,
                    ..
                }
            ),
            "{what}: {p}"
        );
    }
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

/// The bytes of a labelled index with its metadata section replaced (checksums fixed up).
fn with_metadata(bytes: &[u8], edit: impl Fn(&mut Vec<u8>)) -> Vec<u8> {
    let (meta_end, vectors, _) = sections(bytes);
    let mut meta = bytes[HEADER_LEN..meta_end].to_vec();
    edit(&mut meta);
    let mut h = super::super::format::parse_header(bytes).unwrap();
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
        if let Ok(layout) = super::super::format::parse(&bytes, false) {
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
        let v = nonzero_vectors(n, dim, seed);
        write_index(&path, "vb-round-trip", dim, vt, &entries, &v).unwrap();
        let tol = tolerance(vt);
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
                let err = max_error(&want, &index.vector(i));
                prop_assert!(err < tol, "{} row {}: max error {}", vt, i, err);
                let best = index.search(&want, 1).unwrap();
                prop_assert!(best[0].score > 1.0 - 10.0 * tol, "{} row {}: {:?}", vt, i, best);
            }
        }
    }
}
