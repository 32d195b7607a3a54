//! `visualbyte info`: a model's contract; `visualbyte embed`: rendered images → embeddings (raw files).
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use image::RgbImage;
use visualbyte::embed::contract::{read_contract, Contract};
use visualbyte::embed::Embedder;

use super::common::{resolve_default, temp_writer, ThreadsArg, DEFAULT_MODEL};

#[derive(Debug, Args)]
pub struct InfoArgs {
    /// The ONNX model (default: models/visualbyte.onnx).
    model: Option<PathBuf>,
    /// Print the contract as JSON (what the ONNX metadata holds).
    #[arg(long)]
    json: bool,
    /// Also build the graph, check it against the contract and time one run.
    #[arg(long)]
    check: bool,
}

#[derive(Debug, Args)]
pub struct EmbedArgs {
    /// The ONNX model (default: models/visualbyte.onnx).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Rendered images: raw u8, N×S×S×3 (RGB, row-major), as `visualbyte render batch` writes them.
    #[arg(long)]
    input: PathBuf,
    /// Output: N×D little-endian f32.
    #[arg(short, long)]
    out: PathBuf,
    #[command(flatten)]
    threads: ThreadsArg,
}

pub fn run(args: InfoArgs) -> anyhow::Result<()> {
    let path = resolve_default(args.model, DEFAULT_MODEL, "model")?;
    let contract = read_contract(&path)?;
    if args.json {
        print_stdout(&format!("{}\n", serde_json::to_string_pretty(&contract)?))?;
    } else {
        print_stdout(&describe(&path, &contract))?;
    }
    // Shown first, refused after: the contract is worth seeing even when this build cannot use it.
    contract
        .validate()
        .with_context(|| format!("{} cannot be used by this visualbyte", path.display()))?;
    if args.check {
        let start = Instant::now();
        let embedder = Embedder::load(&path)?;
        let loaded = start.elapsed();
        let size = embedder.input_size();
        let blank = RgbImage::from_pixel(size, size, image::Rgb([255, 255, 255]));
        let start = Instant::now();
        embedder.embed_one(&blank)?;
        let ran = start.elapsed();
        let msg = format!(
            "check      ok: graph matches the contract; loaded and optimised in {:.0} ms, one image in {:.1} ms",
            loaded.as_secs_f64() * 1e3,
            ran.as_secs_f64() * 1e3
        );
        if args.json {
            eprintln!("{msg}");
        } else {
            print_stdout(&format!("{msg}\n"))?;
        }
    }
    Ok(())
}

/// Writes to stdout; a closed pipe (`visualbyte info | head`) ends the output quietly instead of panicking.
pub fn print_stdout(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => Ok(r?),
    }
}

/// The contract in a few readable lines.
fn describe(path: &Path, c: &Contract) -> String {
    let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let r = &c.renderer;
    let a = &r.audio;
    let t = &r.text;
    let threshold = match c.threshold {
        Some(t) => format!("{t} (a best match below it is \"not in memory\")"),
        None => "not calibrated".to_string(),
    };
    let mut s = String::new();
    let mut line = |k: &str, v: String| s.push_str(&format!("{k:<10} {v}\n"));
    line("model", c.model_id.clone());
    line(
        "file",
        format!("{} ({:.1} MB)", path.display(), bytes as f64 / 1e6),
    );
    line("contract", format!("version {}", c.contract_version));
    line(
        "input",
        format!(
            "{:?}: float32 [batch, 3, {s}, {s}] {}, x = (pixel/255 - mean) / std, mean {:?}, std {:?}",
            c.input.name,
            c.input.layout,
            c.input.mean,
            c.input.std,
            s = c.input.size
        ),
    );
    line(
        "embedding",
        format!(
            "{:?}: float32 [batch, {}], L2-normalised",
            c.embedding.name, c.embedding.dim
        ),
    );
    line(
        "renderer",
        format!("version {}, {}×{} images", r.version, r.size, r.size),
    );
    line(
        "audio",
        format!(
            "{} Hz, log-mel {} bins (n_fft {}, hop {}), window {} frames, up to {} s",
            a.sample_rate, a.n_mels, a.n_fft, a.hop, a.window_frames, a.max_seconds
        ),
    );
    line(
        "text",
        format!("font {}, up to {} characters", t.font, t.max_chars),
    );
    line("threshold", threshold);
    s
}

/// Embeds a raw file of rendered images, writing to a temporary name renamed at the end.
pub fn embed(args: EmbedArgs) -> anyhow::Result<()> {
    args.threads.apply(1)?;
    let model = resolve_default(args.model, DEFAULT_MODEL, "model")?;
    let embedder = Embedder::load(&model)?;
    let size = embedder.input_size();
    let image_bytes = (size as usize) * (size as usize) * 3;
    let file = std::fs::File::open(&args.input)
        .with_context(|| format!("cannot read {}", args.input.display()))?;
    let len = file.metadata()?.len();
    if len % image_bytes as u64 != 0 {
        anyhow::bail!(
            "{}: {len} bytes is not a whole number of {size}×{size}×3 images ({image_bytes} bytes each); \
             render with this model's size (`visualbyte render batch --size {size}`)",
            args.input.display()
        );
    }
    let n = (len / image_bytes as u64) as usize;
    let mut writer = temp_writer(&args.out)?;
    let mut reader = std::io::BufReader::new(file);
    // A few dozen images at a time: memory stays small however many images there are.
    let chunk = 64;
    let start = Instant::now();
    let mut done = 0;
    while done < n {
        let count = chunk.min(n - done);
        let mut images = Vec::with_capacity(count);
        for _ in 0..count {
            let mut buf = vec![0u8; image_bytes];
            reader
                .read_exact(&mut buf)
                .with_context(|| format!("cannot read {}", args.input.display()))?;
            let img = RgbImage::from_raw(size, size, buf)
                .context("internal error: a raw image of the wrong length")?;
            images.push(img);
        }
        let vectors = embedder
            .embed(&images)
            .with_context(|| format!("images {done}..{}", done + count))?;
        for v in vectors {
            for x in v {
                writer.write_all(&x.to_le_bytes())?;
            }
        }
        done += count;
    }
    let tmp = writer.into_inner().map_err(|e| e.into_error())?;
    tmp.as_file().sync_all()?;
    tmp.persist(&args.out)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    eprintln!(
        "embedded {n} images with {} into {} ({}×{} f32) in {:.2} s",
        embedder.model_id(),
        args.out.display(),
        n,
        embedder.dim(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
