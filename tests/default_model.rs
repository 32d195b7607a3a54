//! The shipped default: `models/visualbyte.onnx`, its image memory `models/memory.vbi` and the sample
//! questions in `models/samples/` must load, pair and answer, the way the README's first command uses them.
//! (How *well* the model answers is measured by the export step's `evaluate`, in models/MODEL_CARD.md.)
#[path = "util.rs"]
mod util;

use util::{bin, json_lines, models, succeeded};
use visualbyte::embed::contract::read_contract;
use visualbyte::embed::Embedder;
use visualbyte::index::{EmbeddingIndex, Match, FORMAT_VERSION};
use visualbyte::render::Renderer;

#[test]
fn default_model_contract_is_complete_and_calibrated() {
    let contract = read_contract(&models().join("visualbyte.onnx")).unwrap();
    contract.validate().unwrap();
    let threshold = contract
        .threshold
        .expect("the default model carries a calibrated threshold");
    assert!((-1.0..=1.0).contains(&threshold), "{threshold}");
    assert_eq!(contract.input.size, contract.renderer.size);
}

#[test]
fn every_label_of_the_default_memory_typed_is_found_by_its_label_vector() {
    let embedder = Embedder::load(&models().join("visualbyte.onnx")).unwrap();
    let index = EmbeddingIndex::open(&models().join("memory.vbi")).unwrap();
    assert_eq!(index.header().version, FORMAT_VERSION);
    let labels: Vec<String> = index.label_counts().into_keys().collect();
    assert_eq!(
        index.vector_labels().len(),
        labels.len(),
        "a label vector per label"
    );
    let renderer = Renderer::new(embedder.renderer_settings().clone()).unwrap();
    let mut wrong = Vec::new();
    for label in &labels {
        // The same text renderer and model made the label vector: the typed label comes back to it.
        let query = embedder.embed_one(&renderer.text(label).unwrap()).unwrap();
        let hits = index.search_matching(&query, 1, Match::Both).unwrap();
        let hit = hits[0];
        // (A picture the model is as sure of may tie with the label vector at 1.0.)
        if index.label(hit.index) != label || hit.score < 0.999 {
            wrong.push(format!(
                "{label}: {} {:?} {}",
                index.label(hit.index),
                hit.matched,
                hit.score
            ));
        }
    }
    assert!(wrong.is_empty(), "{wrong:?}");
}

#[test]
fn default_index_belongs_to_the_default_model_and_every_picture_exists() {
    let embedder = Embedder::load(&models().join("visualbyte.onnx")).unwrap();
    let index = EmbeddingIndex::open_verified(&models().join("memory.vbi")).unwrap();
    index.check_model(embedder.model_id()).unwrap();
    assert_eq!(index.dim(), embedder.dim());
    assert!(
        index.label_counts().len() >= 150,
        "{} labels",
        index.label_counts().len()
    );
    for i in 0..index.len() {
        let path = index.source_path(i);
        assert!(
            path.is_file(),
            "{} ({}) is missing",
            path.display(),
            index.label(i)
        );
    }
    // A picture of the memory finds itself first, whatever the model learned.
    let renderer = Renderer::new(embedder.renderer_settings().clone()).unwrap();
    for i in [0, index.len() / 2, index.len() - 1] {
        let img = renderer.image_file(&index.source_path(i)).unwrap();
        let query = embedder.embed_one(&img).unwrap();
        let hits = index.search(&query, 1).unwrap();
        assert!(
            hits[0].score > 0.999,
            "{}: {}",
            index.label(i),
            hits[0].score
        );
        assert_eq!(index.label(hits[0].index), index.label(i));
    }
}

#[test]
fn demo_answers_every_shipped_sample_in_order() {
    let samples = models().join("samples");
    let mut wavs: Vec<String> = std::fs::read_dir(&samples)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "wav"))
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    wavs.sort();
    assert!(wavs.len() >= 10, "{wavs:?}");
    let out = succeeded(
        bin()
            .args(["demo", "--pace", "fast", "--json", "--source"])
            .arg(format!("wav:{}", samples.display()))
            .env("VISUALBYTE_MODELS", models()),
    );
    let answers: Vec<serde_json::Value> = json_lines(&out.stdout)
        .into_iter()
        .filter(|v| v["event"] == "answer")
        .collect();
    assert_eq!(answers.len(), wavs.len(), "one answer per sample question");
    for (answer, wav) in answers.iter().zip(&wavs) {
        let source = answer["source"].as_str().unwrap();
        assert!(source.ends_with(wav.as_str()), "{source} vs {wav}");
        assert!(answer["answer"]["hits"]
            .as_array()
            .is_some_and(|h| !h.is_empty()));
    }
}

#[test]
fn the_default_models_convolutions_and_gelus_run_as_visualbytes_own_operators() {
    // Guards the speed-ups against a change of tract's graph that they match (a tract upgrade): every
    // 7×7 depthwise convolution runs as PaddedDepthWise, every ConvNeXt block's two 1×1 convolutions
    // (and the projector's two Linear layers) as Pointwise, and every GELU inside one of them.
    let embedder = Embedder::load(&models().join("visualbyte.onnx")).unwrap();
    let size = embedder.input_size();
    let ops = embedder
        .profile_ops(&image::RgbImage::new(size, size), 1)
        .unwrap();
    let nodes = |name: &str| ops.iter().find(|o| o.op == name).map_or(0, |o| o.nodes);
    let depthwise = nodes("PaddedDepthWise");
    assert!(depthwise >= 1, "{ops:?}");
    assert_eq!(nodes("Pointwise"), 2 * depthwise + 2, "{ops:?}");
    assert_eq!(nodes("FastGelu"), 0, "{ops:?}");
    assert!(!ops.iter().any(|o| o.op == "DepthWiseConv"), "{ops:?}");
}

#[test]
fn the_operator_profile_runs_on_the_inference_threads_an_embedding_uses() {
    // `bench --ops --threads 2` profiled every operator from the caller's thread, handing each split to
    // the pool, while an embedding runs on a pool thread: the profile timed a path no query takes.
    for threads in [1usize, 2] {
        let out = succeeded(
            bin()
                .current_dir(models().parent().unwrap())
                .args(["bench", "--ops", "--json", "--runs", "2", "--batch", "0"])
                .args(["--search-sizes", "100", "--threads", &threads.to_string()]),
        );
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let ops = report["ops"].as_array().unwrap();
        assert!(!ops.is_empty(), "{report}");
        for op in ops {
            assert_eq!(op["threads"], threads, "{op}");
        }
    }
}
