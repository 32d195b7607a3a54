//! Criterion benchmarks of every stage of a query: `cargo bench -p visualbyte` (release profile).
//!
//! Groups: `render` (log-mel of 1 s and 2 s, text), `embed` (the default model, batch 1 and the index-build
//! batch), `search` (10k/100k/1M random memories of the model's dimension, each vector type; 1M only with
//! VISUALBYTE_BENCH_1M=1: its f32 file is 2 GB), `query` (a WAV file in → an answer out) and `operators`
//! (VisualByte's depthwise convolution and GELU alone, on the default model's plane sizes).
//! The model and memory are the shipped ones under `models/` (or `$VISUALBYTE_MODELS`).
use std::hint::black_box;
use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use image::RgbImage;
use visualbyte::answer::Engine;
use visualbyte::bench::random_index;
use visualbyte::embed::Embedder;
use visualbyte::index::{EmbeddingIndex, VectorType};
use visualbyte::render::{audio, Renderer};

fn models() -> PathBuf {
    std::env::var_os("VISUALBYTE_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models"))
}

fn speech(rate: u32) -> Vec<f32> {
    let pcm = audio::read_wav(&models().join("samples/tiger.wav"), 30.0).expect("sample WAV");
    audio::resample_to(&pcm, rate).expect("resample")
}

fn render(c: &mut Criterion) {
    let embedder = Embedder::load(&models().join("visualbyte.onnx")).expect("model");
    let mut renderer = Renderer::new(embedder.renderer_settings().clone()).expect("renderer");
    let rate = renderer.settings().audio.sample_rate;
    let speech = speech(rate);
    let mut g = c.benchmark_group("render");
    for seconds in [1usize, 2] {
        let clip: Vec<f32> = speech
            .iter()
            .copied()
            .cycle()
            .take(seconds * rate as usize)
            .collect();
        g.bench_function(BenchmarkId::new("log_mel", format!("{seconds}s")), |b| {
            b.iter(|| black_box(renderer.audio_samples(black_box(&clip))))
        });
    }
    g.bench_function("text", |b| {
        b.iter(|| black_box(renderer.text(black_box("where is the tiger")).unwrap()))
    });
    // The floor under the 2 s log-mel: its 200 real FFTs of n_fft samples alone, in the float64 the
    // front end uses and in float32 for comparison (BENCHMARKS.md, the log-mel target).
    let audio = &renderer.settings().audio;
    let frames = 2 * rate as usize / audio.hop;
    let window = &speech[..audio.n_fft];
    g.bench_function(format!("fft_f64_{frames}x{}", audio.n_fft), |b| {
        fft_frames::<f64>(b, window, frames)
    });
    g.bench_function(format!("fft_f32_{frames}x{}", audio.n_fft), |b| {
        fft_frames::<f32>(b, window, frames)
    });
    g.finish();
}

/// `frames` real FFTs of `window` (its length is the FFT size) in `T`, the input converted each time.
fn fft_frames<T: realfft::FftNum + From<f32>>(
    b: &mut criterion::Bencher,
    window: &[f32],
    frames: usize,
) {
    let fft = realfft::RealFftPlanner::<T>::new().plan_fft_forward(window.len());
    let (mut input, mut out, mut scratch) = (
        fft.make_input_vec(),
        fft.make_output_vec(),
        fft.make_scratch_vec(),
    );
    b.iter(|| {
        for _ in 0..frames {
            input
                .iter_mut()
                .zip(window)
                .for_each(|(i, &x)| *i = T::from(x));
            fft.process_with_scratch(&mut input, &mut out, &mut scratch)
                .unwrap();
        }
        black_box(&out);
    })
}

fn embed(c: &mut Criterion) {
    let path = models().join("visualbyte.onnx");
    let embedder = Embedder::load(&path).expect("model");
    let renderer = Renderer::new(embedder.renderer_settings().clone()).expect("renderer");
    let image: RgbImage = renderer.text("tiger").unwrap();
    let mut g = c.benchmark_group("embed");
    g.sample_size(20);
    g.throughput(Throughput::Elements(1));
    g.bench_function("batch_1", |b| {
        b.iter(|| black_box(embedder.embed_one(black_box(&image)).unwrap()))
    });
    let batch = 16;
    let batched = Embedder::load_with_batch(&path, batch).expect("model");
    let images = vec![image.clone(); batch];
    g.throughput(Throughput::Elements(batch as u64));
    g.bench_function(format!("batch_{batch}"), |b| {
        b.iter(|| black_box(batched.embed(black_box(&images)).unwrap()))
    });
    g.finish();
}

fn search(c: &mut Criterion) {
    let dim = Embedder::load(&models().join("visualbyte.onnx"))
        .expect("model")
        .dim();
    let dir = tempfile::tempdir().expect("temporary folder");
    let mut sizes = vec![10_000usize, 100_000];
    if std::env::var_os("VISUALBYTE_BENCH_1M").is_some() {
        sizes.push(1_000_000);
    }
    let query = visualbyte::bench::random_unit_vectors(1, dim, 99);
    let mut g = c.benchmark_group("search");
    g.sample_size(20);
    for &n in &sizes {
        for vt in VectorType::ALL {
            let path = dir.path().join(format!("{n}-{}.vbi", vt.as_str()));
            let index = random_index(&path, "bench", n, dim, vt, 7).expect("random index");
            g.throughput(Throughput::Elements(n as u64));
            g.bench_function(BenchmarkId::new(vt.as_str(), n), |b| {
                b.iter(|| black_box(index.search(black_box(&query), 10).unwrap()))
            });
            drop(index);
            let _ = std::fs::remove_file(&path);
        }
    }
    g.finish();
}

fn query(c: &mut Criterion) {
    let embedder = Embedder::load(&models().join("visualbyte.onnx")).expect("model");
    let index = EmbeddingIndex::open(&models().join("memory.vbi")).expect("index");
    let mut engine = Engine::new(embedder, index).expect("engine");
    let wav = models().join("samples/tiger.wav");
    let mut g = c.benchmark_group("query");
    g.sample_size(20);
    g.bench_function("spoken_wav_to_answer", |b| {
        b.iter(|| black_box(engine.ask_wav(black_box(&wav)).unwrap()))
    });
    g.bench_function("typed_to_answer", |b| {
        b.iter(|| black_box(engine.ask_text(black_box("tiger")).unwrap()))
    });
    g.finish();
}

/// VisualByte's two model operators alone, on the femto model's plane sizes at 96 px.
fn operators(c: &mut Criterion) {
    let mut g = c.benchmark_group("operators");
    for (channels, side) in [(48usize, 24usize), (96, 12), (192, 6), (384, 3)] {
        let mut rng = visualbyte::bench::SplitMix64::new(side as u64);
        let data: Vec<f32> = (0..channels * side * side)
            .map(|_| rng.next_signed())
            .collect();
        let kernel: Vec<f32> = (0..channels * 49).map(|_| rng.next_signed()).collect();
        let bias = vec![0.1f32; channels];
        let mut out = vec![0f32; data.len()];
        g.throughput(Throughput::Elements((data.len() * 49) as u64));
        g.bench_function(
            BenchmarkId::new("depthwise_7x7", format!("{channels}x{side}x{side}")),
            |b| {
                b.iter(|| {
                    visualbyte::embed::ops::depthwise::depthwise_same(
                        black_box(&data),
                        &kernel,
                        &bias,
                        &mut out,
                        [channels, side, side, 7],
                    )
                })
            },
        );
    }
    let mut xs: Vec<f32> = (0..110_592)
        .map(|i| (i % 1000) as f32 * 0.01 - 5.0)
        .collect();
    g.throughput(Throughput::Elements(xs.len() as u64));
    g.bench_function("gelu_110592", |b| {
        b.iter(|| visualbyte::embed::ops::gelu::gelu_in_place(black_box(&mut xs)))
    });
    g.finish();
}

criterion_group!(benches, render, embed, search, query, operators);
criterion_main!(benches);
