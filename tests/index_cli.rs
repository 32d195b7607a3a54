//! `visualbyte index build | add | info`, run the way a user runs them, with the tiny fixture model
//! (`tests/fixtures/tiny.onnx`: 32-pixel input, 32-value embedding).
#[path = "util.rs"]
mod util;

use std::path::{Path, PathBuf};
use std::process::Stdio;

use image::{Rgb, RgbImage};
use util::{assert_mentions, bin, fails, index_build, ok, run, text, tiny_model};
use visualbyte::index::{write_index, EmbeddingIndex, Entry, VectorType};

/// A striped picture: the colour and stripe width make pictures of one label look alike.
fn picture(path: &Path, rgb: [u8; 3], stripe: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let img = RgbImage::from_fn(40, 40, |x, _| {
        if (x / stripe).is_multiple_of(2) {
            Rgb(rgb)
        } else {
            Rgb([255, 255, 255])
        }
    });
    img.save(path).unwrap();
}

/// `memory/tiger/{1,2,3}.png`, `memory/cup/{1,2}.png`, and a text file that is not a picture.
fn memory(root: &Path) -> PathBuf {
    let dir = root.join("memory");
    for i in 1..=3 {
        picture(&dir.join(format!("tiger/{i}.png")), [230, 120, 20], 3 + i);
    }
    for i in 1..=2 {
        picture(&dir.join(format!("cup/{i}.png")), [20, 40, 200], 9 + i);
    }
    std::fs::write(dir.join("cup/README.txt"), "cups").unwrap();
    dir
}

fn info_json(root: &Path, index: &str, verify: bool) -> serde_json::Value {
    let mut args = vec!["index", "info", index, "--json"];
    if verify {
        args.push("--verify");
    }
    let (stdout, _) = ok(run(root, &args));
    serde_json::from_str(&stdout).expect("info --json prints JSON")
}

#[test]
fn build_labels_by_folder_and_info_reports_it() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    memory(root);
    let (stdout, stderr) = ok(index_build(
        root,
        "memory",
        "models/memory.vbi",
        &["--quiet"],
    ));
    assert!(
        stdout.contains("indexed 5 pictures under 2 labels"),
        "{stdout}"
    );
    assert!(stderr.contains("1 file that is not a picture"), "{stderr}");

    let info = info_json(root, "models/memory.vbi", true);
    assert_eq!(info["count"], 5);
    assert_eq!(info["dim"], 32);
    assert_eq!(info["vector_type"], "f32");
    assert_eq!(info["verified"], true);
    assert_eq!(info["labels"], serde_json::json!({"cup": 2, "tiger": 3}));
    assert!(!info["model_id"].as_str().unwrap().is_empty());

    // Paths are stored relative to the index's folder and resolve to the pictures.
    let index = EmbeddingIndex::open_verified(&root.join("models/memory.vbi")).unwrap();
    assert_eq!(index.entry(0), Entry::new("cup", "../memory/cup/1.png"));
    for i in 0..index.len() {
        assert!(
            index.source_path(i).is_file(),
            "{}",
            index.source_path(i).display()
        );
    }
    // Each stored picture finds itself first.
    for i in 0..index.len() {
        let hits = index.search(&index.vector(i), 1).unwrap();
        assert_eq!(hits[0].index, i);
        assert!(hits[0].score > 0.999, "{}", hits[0].score);
    }

    let (human, _) = ok(run(root, &["index", "info", "models/memory.vbi"]));
    assert_mentions(&human, &["5 × 32 f32", "tiger  3"]);
}

#[test]
fn build_is_deterministic_across_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    memory(root);
    ok(index_build(root, "memory", "a.vbi", &["--batch", "2"]));
    ok(index_build(root, "memory", "b.vbi", &["--batch", "7"]));
    assert_eq!(
        std::fs::read(root.join("a.vbi")).unwrap(),
        std::fs::read(root.join("b.vbi")).unwrap()
    );
}

#[test]
fn unreadable_pictures_are_reported_skipped_and_counted() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let dir = memory(root);
    std::fs::write(dir.join("tiger/broken.png"), b"\x89PNG but not really").unwrap();
    let (stdout, stderr) = ok(index_build(root, "memory", "m.vbi", &[]));
    assert!(stdout.contains("indexed 5 pictures"), "{stdout}");
    assert!(stderr.contains("broken.png"), "{stderr}");
    assert!(stderr.contains("1 unreadable picture "), "{stderr}");
    assert_eq!(info_json(root, "m.vbi", false)["labels"]["tiger"], 3);
}

#[test]
fn loose_pictures_need_a_csv_and_a_failed_build_keeps_the_old_index() {
    let tmp = m_vbi();
    let root = tmp.path();
    let dir = root.join("memory");
    let before = std::fs::read(root.join("m.vbi")).unwrap();

    picture(&dir.join("loose.png"), [0, 200, 0], 5);
    let stderr = fails(index_build(root, "memory", "m.vbi", &[]));
    assert_mentions(&stderr, &["loose.png", "--labels"]);
    assert_eq!(std::fs::read(root.join("m.vbi")).unwrap(), before);
    let leftovers: Vec<_> = std::fs::read_dir(root)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    std::fs::write(
        root.join("labels.csv"),
        "path,label\nloose.png,leaf\ntiger/1.png,tiger\n\"cup/1.png\",\"mug, blue\"\n",
    )
    .unwrap();
    let (stdout, stderr) = ok(index_build(
        root,
        "memory",
        "csv.vbi",
        &["--labels", "labels.csv", "--vectors", "i8"],
    ));
    assert!(
        stdout.contains("indexed 3 pictures under 3 labels"),
        "{stdout}"
    );
    assert!(
        stderr.contains("3 pictures the labels CSV does not list"),
        "{stderr}"
    );
    let info = info_json(root, "csv.vbi", true);
    assert_eq!(info["vector_type"], "i8");
    assert_eq!(
        info["labels"],
        serde_json::json!({"leaf": 1, "mug, blue": 1, "tiger": 1})
    );
}

#[test]
fn add_appends_skips_duplicates_and_refuses_another_models_index() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    memory(root);
    picture(&root.join("new/door1.png"), [90, 60, 30], 2);
    picture(&root.join("new/door2.png"), [90, 60, 30], 3);
    let model = tiny_model();
    let m = model.to_str().unwrap();
    ok(index_build(root, "memory", "m.vbi", &["--vectors", "f16"]));

    let (stdout, _) = ok(run(
        root,
        &[
            "index",
            "add",
            "m.vbi",
            "new/door1.png",
            "new/door2.png",
            "--label",
            "door",
            "--model",
            m,
        ],
    ));
    assert_mentions(&stdout, &["added 2 pictures", "now 7 pictures"]);
    let info = info_json(root, "m.vbi", true);
    assert_eq!(info["count"], 7);
    assert_eq!(info["vector_type"], "f16");
    assert_eq!(info["labels"]["door"], 2);

    let stderr = fails(run(
        root,
        &[
            "index", "add", "m.vbi", "new", "--label", "door", "--model", m,
        ],
    ));
    assert_mentions(&stderr, &["already in the index", "nothing to add"]);

    // An index written for another model is refused before anything is embedded, and left as it was.
    let other = root.join("other.vbi");
    write_index(
        &other,
        "vb-some-other-model",
        32,
        VectorType::F32,
        &[Entry::new("x", "x.png")],
        &[1.0; 32],
    )
    .unwrap();
    let before = std::fs::read(&other).unwrap();
    let stderr = fails(run(
        root,
        &[
            "index",
            "add",
            "other.vbi",
            "new/door1.png",
            "--label",
            "door",
            "--model",
            m,
        ],
    ));
    assert_mentions(&stderr, &["vb-some-other-model", "rebuild the index"]);
    assert_eq!(std::fs::read(&other).unwrap(), before);
}

#[test]
fn info_names_truncation_and_verify_finds_flipped_vector_bits() {
    let tmp = m_vbi();
    let root = tmp.path();
    let good = std::fs::read(root.join("m.vbi")).unwrap();

    let mut flipped = good.clone();
    let last = flipped.len() - 5;
    flipped[last] ^= 0x04;
    std::fs::write(root.join("flipped.vbi"), &flipped).unwrap();
    ok(run(root, &["index", "info", "flipped.vbi"]));
    let stderr = fails(run(root, &["index", "info", "flipped.vbi", "--verify"]));
    assert!(
        stderr.contains("checksum mismatch in the vector section"),
        "{stderr}"
    );

    std::fs::write(root.join("cut.vbi"), &good[..100]).unwrap();
    let stderr = fails(run(root, &["index", "info", "cut.vbi"]));
    assert!(
        stderr.contains("truncated in the metadata section"),
        "{stderr}"
    );

    std::fs::write(root.join("notes.vbi"), b"just some text").unwrap();
    let stderr = fails(run(root, &["index", "info", "notes.vbi"]));
    assert!(stderr.contains("not a VisualByte index"), "{stderr}");

    // Without a path, `info` falls back to the shipped default (models/memory.vbi of this checkout).
    let (stdout, _) = ok(run(root, &["index", "info"]));
    assert!(stdout.contains("memory.vbi"), "{stdout}");
}

#[test]
fn a_build_killed_midway_leaves_a_whole_index() {
    let tmp = m_vbi();
    let root = tmp.path();
    let before = std::fs::read(root.join("m.vbi")).unwrap();
    for i in 0..120 {
        picture(
            &root.join(format!("memory/many/{i}.png")),
            [(i * 2) as u8, 90, 40],
            1 + i % 7,
        );
    }
    let model = tiny_model();
    let m = model.to_str().unwrap();
    let args = [
        "index", "build", "memory", "--model", m, "-o", "m.vbi", "--batch", "4",
    ];
    for delay_ms in [50, 150, 400] {
        let (changed, len) = killed_after(root, &args, delay_ms, &before);
        // Whenever it died, the index is the old one or the complete new one, never a broken one.
        assert!(!changed || len == 125, "{len} entries");
    }
}

#[test]
fn an_add_killed_midway_leaves_the_old_or_the_whole_new_index() {
    let tmp = m_vbi();
    let root = tmp.path();
    let before = std::fs::read(root.join("m.vbi")).unwrap();
    let old_len = EmbeddingIndex::open_verified(&root.join("m.vbi"))
        .unwrap()
        .len();
    let names: Vec<String> = (0..120)
        .map(|i| {
            let name = format!("new/door{i}.png");
            picture(&root.join(&name), [(i * 2) as u8, 60, 30], 1 + i % 5);
            name
        })
        .collect();
    let model = tiny_model();
    let mut args = vec![
        "index",
        "add",
        "m.vbi",
        "--label",
        "door",
        "--model",
        model.to_str().unwrap(),
    ];
    args.extend(names.iter().map(String::as_str));
    for delay_ms in [50, 150, 400] {
        let (changed, len) = killed_after(root, &args, delay_ms, &before);
        // Whenever it died, the index is the old one or holds every new picture, and it verifies.
        assert!(!changed || len == old_len + 120, "{len} entries");
        if changed {
            break; // the add finished before the kill: nothing more to interrupt
        }
    }
}

/// Starts `visualbyte ARGS` in `root` and kills it after `delay_ms`; then `m.vbi` must verify. Whether
/// it differs from `before`, and its number of entries.
fn killed_after(root: &Path, args: &[&str], delay_ms: u64, before: &[u8]) -> (bool, usize) {
    let mut child = bin()
        .args(args)
        .current_dir(root)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(delay_ms));
    let _ = child.kill();
    let _ = child.wait();
    let index = EmbeddingIndex::open_verified(&root.join("m.vbi")).unwrap();
    let now = std::fs::read(root.join("m.vbi")).unwrap();
    (now != before, index.len())
}

#[test]
fn build_stores_a_label_vector_per_label_and_a_typed_label_finds_its_memories_by_label() {
    let tmp = m_vbi();
    let root = tmp.path();
    let model = tiny_model();
    let m = model.to_str().unwrap();
    let info = info_json(root, "m.vbi", true);
    assert_eq!(info["version"], 2);
    assert_eq!(info["label_vectors"], 2);
    let index = EmbeddingIndex::open_verified(&root.join("m.vbi")).unwrap();
    assert_eq!(index.vector_labels(), ["cup", "tiger"]);

    // `visualbyte query --model M --index m.vbi --text tiger EXTRA…`
    let query = |extra: &[&str]| {
        let mut args = vec!["query", "--model", m, "--index", "m.vbi", "--text", "tiger"];
        args.extend_from_slice(extra);
        run(root, &args)
    };
    let ask = |how: &str| -> serde_json::Value {
        let (stdout, _) = ok(query(&[
            "--top-k",
            "5",
            "--threshold",
            "-1",
            "--match",
            how,
            "--json",
        ]));
        serde_json::from_str(&stdout).unwrap()
    };
    // The typed label renders to the very image the label vector was made from: cosine 1.
    let both = ask("both");
    assert_eq!(both["label"], "tiger");
    let hits = both["hits"].as_array().unwrap();
    for hit in &hits[..3] {
        assert_eq!(
            (hit["label"].as_str(), hit["matched"].as_str()),
            (Some("tiger"), Some("label"))
        );
        assert!(hit["score"].as_f64().unwrap() > 0.999, "{hit}");
    }
    let pictures = ask("picture");
    assert!(pictures["hits"]
        .as_array()
        .unwrap()
        .iter()
        .all(|h| h["matched"] == "picture"));
    let labels = ask("label");
    assert_eq!(labels["hits"].as_array().unwrap().len(), 5);
    assert!(labels["hits"]
        .as_array()
        .unwrap()
        .iter()
        .all(|h| h["matched"] == "label"));

    let (human, _) = ok(query(&["--threshold", "-1"]));
    assert!(human.starts_with("tiger (1.00, by its label)\n"), "{human}");
    let bad = fails(query(&["--match", "photo"]));
    assert!(bad.contains("picture, label or both"), "{bad}");
}

#[test]
fn index_info_into_a_closed_pipe_ends_quietly_instead_of_panicking() {
    // `visualbyte index info | head -3` closed the pipe early and the printing panicked.
    let tmp = m_vbi();
    let root = tmp.path();
    for args in [
        &["index", "info", "m.vbi"][..],
        &["index", "info", "m.vbi", "--json"][..],
    ] {
        let mut child = bin()
            .args(args)
            .current_dir(root)
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = text(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(out.status.success(), "{args:?}: {stderr}");
    }
}

/// A fresh folder with `memory/` and its index `m.vbi`, built by the CLI with the tiny model.
fn m_vbi() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    memory(tmp.path());
    ok(index_build(tmp.path(), "memory", "m.vbi", &["--quiet"]));
    tmp
}
