//! `visualbyte render`: see what the model sees, or render training data through the device's renderer.
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use image::RgbImage;
use serde::Deserialize;
use visualbyte::render::{Renderer, RendererSettings, TextRenderer};

use super::common::{progress_bar, temp_writer};

/// Input size used when neither --size nor a model says otherwise.
pub const DEFAULT_SIZE: u32 = 96;

#[derive(Debug, Subcommand)]
pub enum RenderCommand {
    /// Render typed text as the model sees it, e.g. `render text "호랑이 tiger" -o t.png`.
    Text {
        /// The text to draw.
        text: String,
        #[command(flatten)]
        out: OutArgs,
        /// Draw with this TTF/OTF font instead of the embedded default (training uses several).
        #[arg(long)]
        font: Option<PathBuf>,
    },
    /// Render a WAV recording as the log-mel spectrogram image the model sees.
    Audio {
        /// WAV file (any rate, channel count and sample format).
        wav: PathBuf,
        #[command(flatten)]
        out: OutArgs,
    },
    /// Render a picture (any format the image crate reads) as the model sees it.
    Image {
        /// Picture file.
        image: PathBuf,
        #[command(flatten)]
        out: OutArgs,
    },
    /// Print the renderer settings for an input size as JSON (what a model's contract records).
    ///
    /// With --model: the settings that model was trained with, every field spelled out (a field an
    /// older contract lacks is printed with the value that contract means).
    Config {
        /// Input size in pixels.
        #[arg(long, default_value_t = DEFAULT_SIZE)]
        size: u32,
        /// Print this ONNX model's renderer settings (from its contract) instead.
        #[arg(long, conflicts_with = "size")]
        model: Option<PathBuf>,
    },
    /// Render every line of a JSON-lines manifest, in order, into one raw file of N×S×S×3 bytes.
    ///
    /// Lines: {"kind":"audio","path":"a.wav"}, {"kind":"text","text":"tiger","font":"f.ttf"}
    /// (font optional), {"kind":"image","path":"p.png"}. Relative paths are relative to the manifest.
    Batch {
        /// The JSON-lines manifest.
        #[arg(long)]
        manifest: PathBuf,
        /// Input size in pixels.
        #[arg(long, default_value_t = DEFAULT_SIZE)]
        size: u32,
        /// Render with the size and settings this ONNX model was trained with (from its contract),
        /// e.g. to rebuild the data an older model was trained and evaluated on.
        #[arg(long, conflicts_with = "size")]
        model: Option<PathBuf>,
        /// Output file (raw u8, N×S×S×3, RGB, row-major).
        #[arg(short, long)]
        out: PathBuf,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
    },
}

#[derive(Debug, Args)]
pub struct OutArgs {
    /// Output PNG.
    #[arg(short, long)]
    out: PathBuf,
    /// Input size in pixels.
    #[arg(long, default_value_t = DEFAULT_SIZE)]
    size: u32,
    /// Render with the size and settings this ONNX model was trained with (from its contract).
    #[arg(long, conflicts_with = "size")]
    model: Option<PathBuf>,
}

impl OutArgs {
    /// The model's renderer settings when --model is given, else this build's for --size.
    fn settings(&self) -> anyhow::Result<RendererSettings> {
        settings(self.model.as_deref(), self.size)
    }
}

/// The renderer settings of `model`'s contract when given, else this build's for `size`.
fn settings(model: Option<&Path>, size: u32) -> anyhow::Result<RendererSettings> {
    match model {
        Some(model) => {
            let contract = visualbyte::embed::contract::read_contract(model)?;
            contract.validate()?;
            Ok(contract.renderer)
        }
        None => {
            let settings = RendererSettings::for_size(size);
            settings.validate()?;
            Ok(settings)
        }
    }
}

pub fn run(cmd: RenderCommand) -> anyhow::Result<()> {
    match cmd {
        RenderCommand::Text { text, out, font } => {
            let renderer = Renderer::new(out.settings()?)?;
            let img = match font {
                Some(path) => font_renderer(&path, renderer.settings())?.render(&text)?,
                None => renderer.text(&text)?,
            };
            save(&img, &out.out)
        }
        RenderCommand::Audio { wav, out } => {
            let mut renderer = Renderer::new(out.settings()?)?;
            let img = renderer.audio_file(&wav)?;
            save(&img, &out.out)
        }
        RenderCommand::Image { image, out } => {
            let renderer = Renderer::new(out.settings()?)?;
            let img = renderer.image_file(&image)?;
            save(&img, &out.out)
        }
        RenderCommand::Config { size, model } => {
            let settings = settings(model.as_deref(), size)?;
            super::info::print_stdout(&format!("{}\n", serde_json::to_string_pretty(&settings)?))
        }
        RenderCommand::Batch {
            manifest,
            size,
            model,
            out,
            quiet,
        } => batch(&manifest, settings(model.as_deref(), size)?, &out, quiet),
    }
}

fn save(img: &RgbImage, path: &Path) -> anyhow::Result<()> {
    img.save(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    super::info::print_stdout(&format!(
        "wrote {} ({}×{})\n",
        path.display(),
        img.width(),
        img.height()
    ))
}

fn font_renderer(path: &Path, settings: &RendererSettings) -> anyhow::Result<TextRenderer> {
    let bytes =
        std::fs::read(path).with_context(|| format!("cannot read font {}", path.display()))?;
    let name = path.display().to_string();
    Ok(TextRenderer::with_font_bytes(
        settings.size,
        &settings.text,
        &bytes,
        &name,
    )?)
}

#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
enum BatchItem {
    Audio { path: PathBuf },
    Text { text: String, font: Option<PathBuf> },
    Image { path: PathBuf },
}

/// Renders a manifest into one raw file, written to a temporary name and renamed at the end so that an
/// interrupted run never leaves a short file behind.
fn batch(
    manifest: &Path,
    settings: RendererSettings,
    out: &Path,
    quiet: bool,
) -> anyhow::Result<()> {
    let base = manifest.parent().unwrap_or(Path::new(".")).to_path_buf();
    let text = std::fs::read_to_string(manifest)
        .with_context(|| format!("cannot read manifest {}", manifest.display()))?;
    let mut items = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let item: BatchItem = serde_json::from_str(line)
            .with_context(|| format!("{}:{}: not a manifest line", manifest.display(), n + 1))?;
        items.push((n + 1, item));
    }
    let size = settings.size;
    let mut renderer = Renderer::new(settings)?;
    let mut fonts: HashMap<PathBuf, TextRenderer> = HashMap::new();
    let mut writer = temp_writer(out)?;
    let bar = progress_bar(items.len(), quiet, "rendering")?;
    let resolve = |p: &Path| {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            base.join(p)
        }
    };
    for (line, item) in &items {
        let img = match item {
            BatchItem::Audio { path } => renderer.audio_file(&resolve(path)),
            BatchItem::Image { path } => renderer.image_file(&resolve(path)),
            BatchItem::Text { text, font: None } => renderer.text(text),
            BatchItem::Text {
                text,
                font: Some(font),
            } => {
                let font = resolve(font);
                if !fonts.contains_key(&font) {
                    fonts.insert(font.clone(), font_renderer(&font, renderer.settings())?);
                }
                fonts[&font].render(text)
            }
        }
        .with_context(|| format!("{}:{line}", manifest.display()))?;
        writer.write_all(img.as_raw())?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    let tmp = writer.into_inner().map_err(|e| e.into_error())?;
    // A temporary file is private (0600); the result is an ordinary readable file.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    }
    tmp.as_file().sync_all()?;
    tmp.persist(out)
        .with_context(|| format!("cannot write {}", out.display()))?;
    eprintln!(
        "rendered {} items at {size}×{size} into {}",
        items.len(),
        out.display()
    );
    Ok(())
}
