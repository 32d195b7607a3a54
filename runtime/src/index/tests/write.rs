//! Writing and appending: atomic replacement, refused input, label vectors, stored paths.
use super::*;

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
    assert_eq!(file_names(dir), vec!["memory.vbi".to_string()]);
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
    assert_eq!(
        file_names(dir),
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
