//! What every subcommand shares: logging and where the default model and index live.
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use tempfile::NamedTempFile;
use visualbyte::answer::Engine;
use visualbyte::embed::Embedder;
use visualbyte::index::EmbeddingIndex;

/// Logging through env_logger: RUST_LOG wins; otherwise warnings, or more with -v / -vv.
pub fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level))
        .format_timestamp_millis()
        .init();
}

/// File name of the default model inside a `models/` folder.
pub const DEFAULT_MODEL: &str = "visualbyte.onnx";
/// File name of the default image-memory index inside a `models/` folder.
pub const DEFAULT_INDEX: &str = "memory.vbi";

/// Where to look for the shipped `models/` folder: `$VISUALBYTE_MODELS`, `./models`, next to the
/// executable (`<exe dir>/models`, `<exe dir>/../models`), and the source checkout it was built from.
pub fn models_dirs() -> Vec<PathBuf> {
    let mut dirs = visualbyte::board::shipped_dirs("VISUALBYTE_MODELS", "models");
    dirs.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../models"));
    dirs
}

/// `explicit` if given, else the first `models/<name>` that exists.
pub fn resolve_default(
    explicit: Option<PathBuf>,
    name: &str,
    what: &str,
) -> anyhow::Result<PathBuf> {
    if let Some(path) = explicit {
        return Ok(path);
    }
    let dirs = models_dirs();
    dirs.iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "no {what} given and no {name} found in {}; pass the path, or set VISUALBYTE_MODELS",
                dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ")
            )
        })
}

/// `--threads`: how many threads run the model (every subcommand that embeds takes it).
#[derive(Debug, Clone, Copy, Args)]
pub struct ThreadsArg {
    /// Inference threads for the model: 1 runs it single-threaded, N > 1 splits tract's matrix multiply
    /// and the depthwise convolutions and GELUs over N threads [default: 1, or the board profile's
    /// `threads` for `demo --board`].
    #[arg(long, env = "VISUALBYTE_THREADS", value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=visualbyte::embed::threads::MAX_THREADS as i64))]
    pub threads: Option<u32>,
}

impl ThreadsArg {
    /// Sets the inference threads for this process, and as many for searches of large memories: the flag,
    /// else `default`. Returns the count.
    pub fn apply(self, default: usize) -> anyhow::Result<usize> {
        let n = self.threads.map_or(default, |n| n as usize);
        visualbyte::embed::threads::set_inference_threads(n).map_err(anyhow::Error::msg)?;
        visualbyte::index::set_search_threads(n);
        log::info!("inference threads: {n}");
        Ok(n)
    }
}

/// A progress bar of `len` steps on stderr, `message` before it; hidden with --quiet.
pub fn progress_bar(len: usize, quiet: bool, message: &'static str) -> anyhow::Result<ProgressBar> {
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(len as u64)
    };
    bar.set_style(ProgressStyle::with_template(
        "{msg} {bar:40} {pos}/{len} [{elapsed_precise} < {eta_precise}]",
    )?);
    bar.set_message(message);
    Ok(bar)
}

/// A buffered temporary file in `out`'s folder, to be renamed over `out` once complete (an interrupted
/// run leaves no short file behind).
pub fn temp_writer(out: &Path) -> anyhow::Result<BufWriter<NamedTempFile>> {
    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot create a file in {}", dir.display()))?;
    Ok(BufWriter::new(tmp))
}

/// Loads the model and the index and pairs them (refused when the index was built by another model).
pub fn open_engine(model: &Path, index: &Path) -> anyhow::Result<Engine> {
    let embedder = Embedder::load(model)?;
    let memory = EmbeddingIndex::open(index)?;
    Engine::new(embedder, memory).with_context(|| {
        format!(
            "{} cannot be searched with {}",
            index.display(),
            model.display()
        )
    })
}
