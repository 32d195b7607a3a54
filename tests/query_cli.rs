//! Questions end to end: pictures → index (built with the tiny fixture model) → `Engine` and
//! `visualbyte query`. The fixture's weights are random, so only what holds for any model is asserted: a
//! picture that is in the memory finds itself first with a score of 1, scores are ranked cosines, the
//! threshold decides "not in memory", and an index made by another model is refused.
#[path = "onnx_meta.rs"]
mod onnx_meta;
#[path = "util.rs"]
mod util;

use std::path::{Path, PathBuf};
use std::process::Output;

use image::{Rgb, RgbImage};
use serde_json::Value;
use tempfile::TempDir;
use util::{assert_mentions, bin, fails, ok, tiny_model};
use visualbyte::answer::{Engine, Modality, QueryError};
use visualbyte::embed::contract::{read_contract, CONTRACT_KEY};
use visualbyte::embed::Embedder;
use visualbyte::index::{write_index, EmbeddingIndex, Entry, VectorType};
use visualbyte::render::Renderer;

/// A deterministic noise pattern per seed: pictures that differ everywhere.
fn picture(seed: u32, w: u32, h: u32) -> RgbImage {
    let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(12_345);
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        (state >> 24) as u8
    };
    let mut img = RgbImage::new(w, h);
    let block = 4 + seed % 5;
    let mut colours = std::collections::HashMap::new();
    for y in 0..h {
        for x in 0..w {
            let key = (x / block, y / block);
            let c = *colours
                .entry(key)
                .or_insert_with(|| [next(), next(), next()]);
            img.put_pixel(x, y, Rgb(c));
        }
    }
    img
}

const LABELS: [&str; 6] = ["tiger", "tiger", "cat", "dog", "cup", "chair"];

/// Six pictures in `dir/pictures/<label>/<n>.png`; returns (label, path).
fn pictures(dir: &Path) -> Vec<(String, PathBuf)> {
    LABELS
        .iter()
        .enumerate()
        .map(|(n, label)| {
            let folder = dir.join("pictures").join(label);
            std::fs::create_dir_all(&folder).unwrap();
            let path = folder.join(format!("{n}.png"));
            picture(n as u32 + 1, 48 + 8 * n as u32, 40)
                .save(&path)
                .unwrap();
            (label.to_string(), path)
        })
        .collect()
}

/// An index of the pictures, built through the library with model `model_id`.
fn library_index(dir: &Path, pics: &[(String, PathBuf)], model_id: &str) -> PathBuf {
    let embedder = Embedder::load(&tiny_model()).unwrap();
    let renderer = Renderer::new(embedder.renderer_settings().clone()).unwrap();
    let images: Vec<RgbImage> = pics
        .iter()
        .map(|(_, p)| renderer.image_file(p).unwrap())
        .collect();
    let vectors = embedder.embed(&images).unwrap().concat();
    let entries: Vec<Entry> = pics
        .iter()
        .map(|(l, p)| Entry::new(l.clone(), p.display().to_string()))
        .collect();
    let path = dir.join(format!("{model_id}.vbi"));
    write_index(
        &path,
        model_id,
        embedder.dim(),
        VectorType::F32,
        &entries,
        &vectors,
    )
    .unwrap();
    path
}

/// A fresh folder with the six pictures and their index, made with the fixture model: (folder, pictures,
/// index).
fn memory() -> (TempDir, Vec<(String, PathBuf)>, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let pics = pictures(dir.path());
    let index = library_index(dir.path(), &pics, &model_id());
    (dir, pics, index)
}

/// `visualbyte query --model MODEL --index INDEX EXTRA…`
fn query(model: &Path, index: &Path, extra: &[&str]) -> Output {
    bin()
        .arg("query")
        .arg("--model")
        .arg(model)
        .arg("--index")
        .arg(index)
        .args(extra)
        .output()
        .unwrap()
}

fn engine(index: &Path) -> Result<Engine, QueryError> {
    Engine::new(
        Embedder::load(&tiny_model()).unwrap(),
        EmbeddingIndex::open(index).unwrap(),
    )
}

fn model_id() -> String {
    read_contract(&tiny_model()).unwrap().model_id
}

fn wav(path: &Path, seconds: f32, freq: f32) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    let n = (seconds * 16_000.0) as usize;
    for i in 0..n {
        let t = i as f32 / 16_000.0;
        let env = if (0.2..0.8).contains(&(t / seconds)) {
            1.0
        } else {
            0.05
        };
        w.write_sample((env * 8000.0 * (2.0 * std::f32::consts::PI * freq * t).sin()) as i16)
            .unwrap();
    }
    w.finalize().unwrap();
}

#[test]
fn every_remembered_picture_finds_itself_first() {
    let (_dir, pics, index) = memory();
    let mut engine = engine(&index).unwrap();
    assert_eq!(
        engine.threshold(),
        read_contract(&tiny_model()).unwrap().threshold
    );
    for (label, path) in &pics {
        let a = engine.ask_image(path).unwrap();
        assert_eq!(a.modality, Modality::Image);
        let best = a.best().unwrap();
        assert_eq!(&best.path, &path.display().to_string());
        assert_eq!(&best.label, label);
        assert_eq!(a.label.as_deref(), Some(label.as_str()));
        assert!(
            best.score > 0.999 && best.score < 1.001,
            "self score {}",
            best.score
        );
        assert!(!a.not_in_memory);
        assert!(a.hits[1].score < best.score);
        assert_eq!(a.hits.len(), 5, "default top-k");
        let labels: Vec<&str> = a.labels.iter().map(|h| h.label.as_str()).collect();
        let mut unique = labels.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(
            unique.len(),
            labels.len(),
            "labels are listed once: {labels:?}"
        );
    }
}

#[test]
fn text_and_audio_questions_give_ranked_cosines_and_the_threshold_decides() {
    let (dir, _, index) = memory();
    let mut engine = engine(&index).unwrap();
    engine.set_top_k(10).unwrap();
    let a = engine.ask_text("tiger").unwrap();
    assert_eq!((a.modality, a.query.as_str()), (Modality::Text, "tiger"));
    assert_eq!(a.hits.len(), 6, "top-k is capped by the memory's size");
    assert!(a.hits.windows(2).all(|w| w[0].score >= w[1].score));
    assert!(a.hits.iter().all(|h| (-1.0..=1.0001).contains(&h.score)));
    assert_eq!(a.labels.len(), 5, "five distinct labels");
    assert!(a.timings.embed_ms > 0.0 && a.timings.render_ms >= 0.0 && a.timings.search_ms >= 0.0);
    let best = a.hits[0].score;
    engine.set_threshold(Some(best + 0.001)).unwrap();
    let below = engine.ask_text("tiger").unwrap();
    assert!(below.not_in_memory);
    assert_eq!(below.label, a.label, "the best guess is still reported");
    engine.set_threshold(Some(best - 0.001)).unwrap();
    assert!(!engine.ask_text("tiger").unwrap().not_in_memory);
    assert!(engine.set_threshold(Some(1.5)).is_err());
    assert!(engine.set_top_k(0).is_err());

    let clip = dir.path().join("q.wav");
    wav(&clip, 1.0, 440.0);
    let a = engine.ask_wav(&clip).unwrap();
    assert_eq!(a.modality, Modality::Audio);
    assert_eq!(a.hits.len(), 6);
    let pcm = visualbyte::render::decode_wav_bytes(&std::fs::read(&clip).unwrap(), 30.0).unwrap();
    let b = engine.ask_pcm(&pcm).unwrap();
    assert_eq!(
        b.hits[0], a.hits[0],
        "the same audio gives the same answer from a file or samples"
    );
    assert!(engine.ask_wav(&dir.path().join("missing.wav")).is_err());
}

#[test]
fn an_index_made_by_another_model_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pics = pictures(dir.path());
    let index = library_index(dir.path(), &pics, "vb-someone-else-32-20260101-deadbeef");
    let err = engine(&index).err().expect("a foreign index");
    let msg = err.to_string();
    assert_mentions(&msg, &["vb-someone-else", &model_id()]);
    // The CLI says the same, and names both files.
    let stderr = fails(query(&tiny_model(), &index, &["--text", "tiger"]));
    assert_mentions(&stderr, &["cannot be searched with", "vb-someone-else"]);
}

#[test]
fn query_cli_answers_in_words_and_in_json() {
    let (dir, pics, index) = memory();
    let model = tiny_model();
    let run = |extra: &[&str]| query(&model, &index, extra);
    let stdout = |extra: &[&str]| ok(run(extra)).0;
    let (label, path) = &pics[3];
    let out = stdout(&["--image", path.to_str().unwrap(), "--json"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["modality"], "image");
    assert_eq!(v["label"], label.as_str());
    assert_eq!(v["hits"][0]["path"], path.display().to_string());
    assert!(v["hits"][0]["score"].as_f64().unwrap() > 0.999);
    assert_eq!(v["not_in_memory"], false);
    assert_eq!(v["hits"].as_array().unwrap().len(), 5);

    let out = stdout(&["--image", path.to_str().unwrap(), "--top-k", "2"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], format!("{label} (1.00)"), "{out}");
    assert!(
        lines[1].starts_with("  1. ") && lines[1].ends_with(&path.display().to_string()),
        "{out}"
    );
    assert!(lines[2].starts_with("  2. "), "{out}");
    assert!(lines[3].starts_with("image query: render"), "{out}");
    assert_eq!(lines.len(), 4, "{out}");

    let out = stdout(&["--text", "tiger", "--threshold", "1"]);
    assert!(out.starts_with("not in memory (best: "), "{out}");
    assert!(out.lines().next().unwrap().ends_with("< 1.00)"), "{out}");

    let clip = dir.path().join("q.wav");
    wav(&clip, 0.8, 300.0);
    let out = stdout(&["--wav", clip.to_str().unwrap(), "--json"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["modality"], "audio");

    for bad in [
        &["--top-k", "0", "--text", "tiger"][..],
        &["--text", "tiger", "--threshold", "2"],
        &[],
        &["--text", "tiger", "--image", "x.png"],
        &["--text", ""],
    ] {
        let out = run(bad);
        assert!(!out.status.success(), "{bad:?} should fail");
        assert!(!out.stderr.is_empty());
    }
}

#[test]
fn query_refuses_a_model_for_another_renderer() {
    let (dir, _, index) = memory();
    let mut c = read_contract(&tiny_model()).unwrap();
    c.renderer.version += 1;
    let model = dir.path().join("v2.onnx");
    onnx_meta::rewrite(&tiny_model(), &model, &[(CONTRACT_KEY, &c.to_json())]);
    let stderr = fails(query(&model, &index, &["--text", "tiger"]));
    assert!(stderr.contains("renderer version"), "{stderr}");
}
