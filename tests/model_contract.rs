//! The model and its contract: the committed tiny fixture loads, embeds like torch did, and copies of it
//! with a damaged contract are refused with a message saying what is wrong.
#[path = "onnx_meta.rs"]
mod onnx_meta;
#[path = "util.rs"]
mod util;

use std::path::{Path, PathBuf};
use std::process::Command;

use image::RgbImage;
use util::{assert_mentions, bin, fails, ok, succeeded, text, tiny_model};
use visualbyte::embed::contract::{read_contract, Contract, ModelError, CONTRACT_KEY};
use visualbyte::embed::Embedder;
use visualbyte::render::RENDERER_VERSION;

/// `visualbyte embed --model FIXTURE --input INPUT -o OUT`, with `--threads` when given.
fn embed_cli(threads: Option<&str>, input: &Path, out: &Path) -> std::process::Output {
    let mut cmd = bin();
    cmd.arg("embed");
    if let Some(n) = threads {
        cmd.args(["--threads", n]);
    }
    cmd.arg("--model")
        .arg(tiny_model())
        .arg("--input")
        .arg(input)
        .arg("-o")
        .arg(out)
        .output()
        .unwrap()
}

/// A raw little-endian f32 file.
fn read_f32(path: &Path) -> Vec<f32> {
    std::fs::read(path)
        .unwrap()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// A copy of the fixture whose contract is `change(contract)`.
fn tampered(dir: &Path, name: &str, change: impl FnOnce(&mut Contract)) -> PathBuf {
    let mut contract = read_contract(&tiny_model()).expect("fixture contract");
    change(&mut contract);
    let json = contract.to_json();
    let out = dir.join(name);
    onnx_meta::rewrite(&tiny_model(), &out, &[(CONTRACT_KEY, &json)]);
    out
}

fn load_err(path: &Path) -> ModelError {
    match Embedder::load(path) {
        Ok(e) => panic!("{} loaded as {:?}", path.display(), e),
        Err(e) => e,
    }
}

fn golden() -> (Vec<RgbImage>, Vec<Vec<f32>>) {
    let f = tiny_model();
    let pixels = std::fs::read(format!("{}.in.u8", f.display())).expect("fixture golden input");
    let s = 32usize;
    assert_eq!(pixels.len() % (s * s * 3), 0);
    let images: Vec<RgbImage> = pixels
        .chunks_exact(s * s * 3)
        .map(|c| RgbImage::from_raw(s as u32, s as u32, c.to_vec()).unwrap())
        .collect();
    let values = read_f32(Path::new(&format!("{}.out.f32", f.display())));
    let dim = values.len() / images.len();
    (
        images,
        values.chunks_exact(dim).map(|r| r.to_vec()).collect(),
    )
}

fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn the_fixture_contract_is_valid_and_matches_this_build() {
    let c = read_contract(&tiny_model()).unwrap();
    c.validate().unwrap();
    assert_eq!(c.input.size, 32);
    assert_eq!(c.embedding.dim, 32);
    assert_eq!(c.renderer.version, RENDERER_VERSION);
    assert!(c.model_id.starts_with("vb-"), "{}", c.model_id);
}

#[test]
fn the_fixture_embeds_like_torch_and_batches_agree_with_single_runs() {
    let embedder = Embedder::load(&tiny_model()).unwrap();
    assert_eq!(embedder.dim(), 32);
    assert_eq!(embedder.input_size(), 32);
    let (images, expected) = golden();
    assert!(!images.is_empty());
    let got = embedder.embed(&images).unwrap();
    assert_eq!(got.len(), images.len());
    for (g, e) in got.iter().zip(&expected) {
        assert!(max_abs(g, e) < 1e-4, "runtime vs torch: {}", max_abs(g, e));
        let norm: f32 = g.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
    }
    // With a batch plan of 8: 8 + 3 images are one run of it, then three of the batch-1 plan; the
    // vectors are those of single runs.
    let batching = Embedder::load_with_batch(&tiny_model(), 8).unwrap();
    assert_eq!((embedder.batch_size(), batching.batch_size()), (1, 8));
    let many: Vec<RgbImage> = (0..11).map(|i| images[i % images.len()].clone()).collect();
    let batched = batching.embed(&many).unwrap();
    assert_eq!(batched.len(), 11);
    for (i, v) in batched.iter().enumerate() {
        let one = embedder.embed_one(&many[i]).unwrap();
        assert!(
            max_abs(v, &one) < 1e-5,
            "image {i}: batch vs single {}",
            max_abs(v, &one)
        );
    }
    assert!(
        max_abs(&batched[0], &batched[1]) > 1e-3,
        "different images, different vectors"
    );
    assert!(embedder.embed(&[]).unwrap().is_empty());
}

#[test]
fn an_image_of_the_wrong_size_is_refused_naming_both_sizes() {
    let embedder = Embedder::load(&tiny_model()).unwrap();
    let ok = RgbImage::new(32, 32);
    let bad = RgbImage::new(48, 32);
    let e = embedder.embed(&[ok, bad]).unwrap_err();
    assert!(
        matches!(
            e,
            ModelError::ImageSize {
                index: 1,
                width: 48,
                height: 32,
                size: 32,
                ..
            }
        ),
        "{e}"
    );
    assert_mentions(&e.to_string(), &["48×32", "32×32"]);
}

#[test]
fn extra_metadata_keys_are_fine() {
    let dir = tempfile::tempdir().unwrap();
    let json = read_contract(&tiny_model()).unwrap().to_json();
    let out = dir.path().join("extra.onnx");
    onnx_meta::rewrite(
        &tiny_model(),
        &out,
        &[("visualbyte.training", "{}"), (CONTRACT_KEY, &json)],
    );
    let e = Embedder::load(&out).unwrap();
    assert_eq!(e.contract(), &read_contract(&tiny_model()).unwrap());
}

#[test]
fn a_model_without_a_contract_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bare.onnx");
    onnx_meta::rewrite(&tiny_model(), &out, &[("producer", "someone")]);
    let e = load_err(&out);
    assert!(matches!(e, ModelError::MissingContract { .. }), "{e}");
    let msg = e.to_string();
    assert_mentions(
        &msg,
        &[
            "no `visualbyte.contract`",
            "bare.onnx",
            "python -m visualbyte_export export",
        ],
    );
    let stderr = fails(
        bin()
            .arg("info")
            .arg(dir.path().join("bare.onnx"))
            .output()
            .unwrap(),
    );
    assert!(stderr.contains("no `visualbyte.contract`"), "{stderr}");
}

#[test]
fn a_contract_that_is_not_json_or_has_unknown_keys_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("junk.onnx");
    onnx_meta::rewrite(
        &tiny_model(),
        &out,
        &[(CONTRACT_KEY, "{\"contract_version\": 1")],
    );
    let e = load_err(&out);
    assert!(matches!(e.cause(), ModelError::BadContract { .. }), "{e}");
    assert!(e.to_string().contains("junk.onnx"), "{e}");
    let json =
        read_contract(&tiny_model())
            .unwrap()
            .to_json()
            .replacen('{', "{\"colour\":\"red\",", 1);
    onnx_meta::rewrite(&tiny_model(), &out, &[(CONTRACT_KEY, &json)]);
    assert!(load_err(&out).to_string().contains("colour"));
}

#[test]
fn a_model_for_another_renderer_version_is_refused_by_load_info_and_render() {
    let dir = tempfile::tempdir().unwrap();
    let m = tampered(dir.path(), "v2.onnx", |c| {
        c.renderer.version = RENDERER_VERSION + 1
    });
    let e = load_err(&m);
    assert!(
        matches!(e.cause(), ModelError::RendererVersion { .. }),
        "{e}"
    );
    assert_mentions(
        &e.to_string(),
        &[
            &format!("renderer version {}", RENDERER_VERSION + 1),
            &format!("renders version {RENDERER_VERSION}"),
        ],
    );
    // `info` still shows the contract, then says why it cannot be used.
    let out = bin().arg("info").arg(&m).output().unwrap();
    let stdout = text(&out.stdout);
    let stderr = fails(out);
    assert!(
        stdout.contains(&format!("version {}, 32×32", RENDERER_VERSION + 1)),
        "{stdout}"
    );
    assert!(stderr.contains("renderer version"), "{stderr}");
    let png = dir.path().join("t.png");
    fails(render_text("tiger", &m, &png).output().unwrap());
    assert!(!png.exists());
}

#[test]
fn a_contract_size_that_the_graph_does_not_have_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let m = tampered(dir.path(), "s48.onnx", |c| {
        c.input.size = 48;
        c.renderer.size = 48;
    });
    read_contract(&m).unwrap().validate().unwrap();
    let e = load_err(&m);
    assert!(matches!(e.cause(), ModelError::Graph { .. }), "{e}");
    let msg = e.to_string();
    assert_mentions(&msg, &["[batch, 3, 48, 48]", "32, 32]"]);
}

#[test]
fn a_contract_dim_or_name_that_the_graph_does_not_have_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let m = tampered(dir.path(), "d64.onnx", |c| c.embedding.dim = 64);
    assert_mentions(&load_err(&m).to_string(), &["[batch, 64]", ", 32]"]);
    let m = tampered(dir.path(), "in.onnx", |c| c.input.name = "pixels".into());
    assert_mentions(&load_err(&m).to_string(), &["\"pixels\"", "\"image\""]);
    let m = tampered(dir.path(), "out.onnx", |c| {
        c.embedding.name = "features".into()
    });
    assert_mentions(
        &load_err(&m).to_string(),
        &["no output named \"features\"", "\"embedding\""],
    );
}

#[test]
fn info_prints_the_contract_and_json_round_trips() {
    let contract = read_contract(&tiny_model()).unwrap();
    let (stdout, _) = ok(bin().arg("info").arg(tiny_model()).output().unwrap());
    assert_mentions(
        &stdout,
        &[&contract.model_id, "[batch, 3, 32, 32]", "[batch, 32]"],
    );
    let (stdout, stderr) = ok(bin()
        .args(["info", "--json", "--check"])
        .arg(tiny_model())
        .output()
        .unwrap());
    let parsed = Contract::parse(&stdout).unwrap();
    assert_eq!(parsed, contract);
    assert!(stderr.contains("graph matches the contract"), "{stderr}");
}

#[test]
fn embed_writes_what_torch_computed() {
    let dir = tempfile::tempdir().unwrap();
    let input = PathBuf::from(format!("{}.in.u8", tiny_model().display()));
    let out_path = dir.path().join("out.f32");
    ok(embed_cli(None, &input, &out_path));
    let got = read_f32(&out_path);
    let (_, expected) = golden();
    let expected: Vec<f32> = expected.concat();
    assert!(max_abs(&got, &expected) < 1e-4);
    // A file that is not a whole number of 32×32×3 images is refused.
    let short = dir.path().join("short.u8");
    std::fs::write(&short, vec![0u8; 32 * 32 * 3 + 5]).unwrap();
    let stderr = fails(embed_cli(None, &short, &dir.path().join("x.f32")));
    assert!(
        stderr.contains("whole number of 32×32×3 images"),
        "{stderr}"
    );
    assert!(!dir.path().join("x.f32").exists());
}

#[test]
fn two_inference_threads_embed_like_one_and_zero_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let input = PathBuf::from(format!("{}.in.u8", tiny_model().display()));
    let (_, expected) = golden();
    let expected: Vec<f32> = expected.concat();
    for threads in ["1", "2", "3"] {
        let out_path = dir.path().join(format!("out{threads}.f32"));
        ok(embed_cli(Some(threads), &input, &out_path));
        let got = read_f32(&out_path);
        assert!(max_abs(&got, &expected) < 1e-4, "{threads} threads");
    }
    // In the library: the executor is process-wide and switching it back and forth is safe.
    let embedder = Embedder::load(&tiny_model()).unwrap();
    let (images, _) = golden();
    visualbyte::embed::threads::set_inference_threads(2).unwrap();
    let two = embedder.embed(&images).unwrap().concat();
    visualbyte::embed::threads::set_inference_threads(1).unwrap();
    assert!(max_abs(&two, &expected) < 1e-4);
    let err = fails(embed_cli(Some("0"), &input, &dir.path().join("zero.f32")));
    assert_mentions(&err, &["--threads", "0"]);
}

#[test]
fn render_takes_its_settings_from_a_model() {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("t.png");
    succeeded(&mut render_text("tiger", &tiny_model(), &png));
    let img = image::open(&png).unwrap();
    assert_eq!((img.width(), img.height()), (32, 32));
    let out = render_text("tiger", &tiny_model(), &png)
        .args(["--size", "64"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "--size and --model conflict");
}

/// `visualbyte render text WORDS --model MODEL -o PNG`.
fn render_text(words: &str, model: &Path, png: &Path) -> Command {
    let mut cmd = bin();
    cmd.args(["render", "text", words, "--model"])
        .arg(model)
        .arg("-o")
        .arg(png);
    cmd
}

// ---- numerics: a graph whose embedding is not a unit vector --------------------------------------------

/// A small ONNX model built here, byte for byte, with the fixture's contract (embedding size 3): the
/// image's mean per channel (`ReduceMean` over H and W, `[batch, 3]`), then `tail` nodes from `m` to
/// `embedding`. No weights: it only exists to give the runtime outputs a real model never should.
fn numerics_model(dir: &Path, name: &str, tail: &[(&str, &[&str])]) -> PathBuf {
    use prost::Message;
    use tract_onnx::pb::{
        attribute_proto::AttributeType, tensor_shape_proto::dimension::Value as Dim,
        tensor_shape_proto::Dimension, type_proto, AttributeProto, GraphProto, ModelProto,
        NodeProto, OperatorSetIdProto, StringStringEntryProto, TensorShapeProto, TypeProto,
        ValueInfoProto,
    };
    let value = |name: &str, dims: Vec<Dim>| ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: 1, // float32
                shape: Some(TensorShapeProto {
                    dim: dims
                        .into_iter()
                        .map(|d| Dimension {
                            value: Some(d),
                            ..Default::default()
                        })
                        .collect(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    };
    let batch = || Dim::DimParam("batch".into());
    let mut nodes = vec![NodeProto {
        input: vec!["image".into()],
        output: vec!["m".into()],
        op_type: "ReduceMean".into(),
        attribute: vec![
            AttributeProto {
                name: "axes".into(),
                r#type: AttributeType::Ints as i32,
                ints: vec![2, 3],
                ..Default::default()
            },
            AttributeProto {
                name: "keepdims".into(),
                r#type: AttributeType::Int as i32,
                i: 0,
                ..Default::default()
            },
        ],
        ..Default::default()
    }];
    let mut last = "m".to_string();
    for (i, (op, inputs)) in tail.iter().enumerate() {
        let output = if i + 1 == tail.len() {
            "embedding".to_string()
        } else {
            format!("t{i}")
        };
        nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.clone()],
            op_type: op.to_string(),
            ..Default::default()
        });
        last = output;
    }
    assert_eq!(last, "embedding", "the tail must end in the embedding");
    let mut contract = read_contract(&tiny_model()).unwrap();
    contract.embedding.dim = 3;
    contract.model_id = format!("vb-numerics-{name}");
    let model = ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: 13,
        }],
        graph: Some(GraphProto {
            node: nodes,
            name: "numerics".into(),
            input: vec![value(
                "image",
                vec![
                    batch(),
                    Dim::DimValue(3),
                    Dim::DimValue(32),
                    Dim::DimValue(32),
                ],
            )],
            output: vec![value("embedding", vec![batch(), Dim::DimValue(3)])],
            ..Default::default()
        }),
        metadata_props: vec![StringStringEntryProto {
            key: CONTRACT_KEY.into(),
            value: contract.to_json(),
        }],
        ..Default::default()
    };
    let path = dir.join(format!("{name}.onnx"));
    std::fs::write(&path, model.encode_to_vec()).unwrap();
    path
}

#[test]
fn a_model_that_gives_nan_or_infinity_is_refused_naming_the_image() {
    let dir = tempfile::tempdir().unwrap();
    // log(m − m) = log(0) = −∞ in every component.
    let path = numerics_model(
        dir.path(),
        "infinite",
        &[("Sub", &["m", "m"]), ("Log", &["t0"])],
    );
    let embedder = Embedder::load(&path).unwrap();
    let images = [RgbImage::new(32, 32), RgbImage::new(32, 32)];
    let e = embedder.embed(&images).unwrap_err();
    assert!(matches!(e, ModelError::NonFinite { index: 0, .. }), "{e}");
    assert!(
        e.to_string().contains("non-finite embedding for image 0"),
        "{e}"
    );
    // sqrt(−|m|) is NaN: the channel means of any image are far from 0 once normalised.
    let path = numerics_model(
        dir.path(),
        "nan",
        &[("Abs", &["m"]), ("Neg", &["t0"]), ("Sqrt", &["t1"])],
    );
    let e = Embedder::load(&path)
        .unwrap()
        .embed_one(&images[0])
        .unwrap_err();
    assert!(matches!(e, ModelError::NonFinite { index: 0, .. }), "{e}");
    assert!(e.to_string().contains("vb-numerics-nan"), "{e}");
}

#[test]
fn a_model_that_gives_an_all_zero_or_unnormalised_embedding_is_refused_with_its_norm() {
    let dir = tempfile::tempdir().unwrap();
    let zero = numerics_model(dir.path(), "zero", &[("Sub", &["m", "m"])]);
    let e = Embedder::load(&zero)
        .unwrap()
        .embed_one(&RgbImage::new(32, 32))
        .unwrap_err();
    assert!(
        matches!(e, ModelError::NotNormalised { norm, .. } if norm == 0.0),
        "{e}"
    );
    assert!(e.to_string().contains("L2 norm 0 for image 0"), "{e}");
    // The raw channel means of a white image, (1 − mean[c]) / std[c]: a vector of norm about 4.2.
    let raw = numerics_model(dir.path(), "raw", &[("Identity", &["m"])]);
    let white = RgbImage::from_pixel(32, 32, image::Rgb([255, 255, 255]));
    let c = read_contract(&tiny_model()).unwrap();
    let want = (0..3)
        .map(|i| ((1.0 - c.input.mean[i]) / c.input.std[i]).powi(2))
        .sum::<f32>()
        .sqrt();
    let e = Embedder::load(&raw).unwrap().embed_one(&white).unwrap_err();
    match e {
        ModelError::NotNormalised { norm, .. } => {
            assert!((norm - want).abs() < 1e-3, "{norm} vs {want}")
        }
        other => panic!("{other}"),
    }
}

#[test]
fn the_op_profile_times_every_node_of_the_plan_and_leaves_the_embedding_unchanged() {
    let embedder = Embedder::load(&tiny_model()).unwrap();
    let (images, _) = golden();
    let before = embedder.embed_one(&images[0]).unwrap();
    let ops = embedder.profile_ops(&images[0], 3).unwrap();
    assert!(!ops.is_empty());
    // One row per operator kind, slowest first, every row with at least one node.
    let mut kinds: Vec<&str> = ops.iter().map(|o| o.op.as_str()).collect();
    kinds.sort_unstable();
    kinds.dedup();
    assert_eq!(kinds.len(), ops.len(), "{ops:?}");
    assert!(
        ops.windows(2).all(|w| w[0].ms_per_run >= w[1].ms_per_run),
        "{ops:?}"
    );
    assert!(
        ops.iter().all(|o| o.nodes >= 1 && o.ms_per_run >= 0.0),
        "{ops:?}"
    );
    // The fixture is a small ConvNeXt: its depthwise convolutions run as VisualByte's own operator
    // (the_fixture_embeds_like_torch… checks its numbers), the rest as tract's matrix products.
    assert!(ops.iter().any(|o| o.op == "PaddedDepthWise"), "{ops:?}");
    assert!(!ops.iter().any(|o| o.op == "DepthWiseConv"), "{ops:?}");
    assert!(ops.iter().any(|o| o.op.contains("MatMul")), "{ops:?}");
    assert!(ops.iter().map(|o| o.ms_per_run).sum::<f64>() > 0.0);
    // Profiling runs the same plan: the next embedding is the same vector.
    assert_eq!(embedder.embed_one(&images[0]).unwrap(), before);
}

#[test]
fn render_config_and_batch_take_a_models_settings_so_its_training_data_can_be_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    // A model whose text was laid out the old way (words may wrap mid-word).
    let old = tampered(dir.path(), "old.onnx", |c| {
        c.renderer.text.keep_words = false
    });
    let out = succeeded(bin().args(["render", "config", "--model"]).arg(&old));
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed["text"]["keep_words"], serde_json::json!(false));
    assert_eq!(printed["size"], serde_json::json!(32));
    let default: serde_json::Value = serde_json::from_slice(
        &bin()
            .args(["render", "config", "--size", "32"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert_eq!(default["text"]["keep_words"], serde_json::json!(true));

    // `render batch --model` draws what `render text --model` draws, and differs from this build's
    // default layout for a word the old layout wraps.
    let manifest = dir.path().join("m.jsonl");
    std::fs::write(
        &manifest,
        "{\"kind\":\"text\",\"text\":\"Where's the car\"}\n",
    )
    .unwrap();
    let batch = |extra: &[&std::ffi::OsStr]| {
        let raw = dir.path().join("out.u8");
        succeeded(
            bin()
                .args(["render", "batch", "--quiet", "--manifest"])
                .arg(&manifest)
                .args(extra)
                .arg("-o")
                .arg(&raw),
        );
        std::fs::read(&raw).unwrap()
    };
    let with_model = batch(&["--model".as_ref(), old.as_os_str()]);
    let png = dir.path().join("t.png");
    succeeded(&mut render_text("Where's the car", &old, &png));
    assert!(with_model == image::open(&png).unwrap().to_rgb8().into_raw());
    assert!(
        with_model != batch(&["--size".as_ref(), "32".as_ref()]),
        "the old layout breaks a word of \"Where's the car\" at 32 px, today's keeps words whole"
    );
    let out = bin()
        .args(["render", "batch", "--size", "32", "--model"])
        .arg(&old)
        .arg("--manifest")
        .arg(&manifest)
        .args(["-o", "x.u8"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "--size and --model conflict");
}
