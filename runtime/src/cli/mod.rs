//! Argument parsing and wiring; none of the library modules know about clap.
mod bench;
mod common;
mod demo;
mod index;
mod info;
mod query;
mod render;

use clap::{Parser, Subcommand};

pub use common::init_logging;

/// Ask a robot's image memory by voice, text or picture — offline, on the device.
///
/// One ConvNeXt embeds spoken questions (as log-mel spectrogram images), typed questions (as rendered
/// glyphs) and pictures; an index of image embeddings answers by cosine similarity.
/// Logging: set RUST_LOG (e.g. RUST_LOG=debug) or pass -v.
#[derive(Debug, Parser)]
#[command(name = "visualbyte", version, about, long_about)]
pub struct Cli {
    /// More log output (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Ask the image memory: typed text, a WAV recording or a picture → ranked labels, scores, paths.
    Query(query::QueryArgs),
    /// Draw what the model sees (text, audio, image), or render many inputs for training.
    #[command(subcommand)]
    Render(render::RenderCommand),
    /// Build, extend and inspect an image-memory index.
    #[command(subcommand)]
    Index(index::IndexCommand),
    /// Print a model's contract (input size, normalisation, embedding size, renderer settings, id).
    Info(info::InfoArgs),
    /// Embed rendered images (raw N×S×S×3 u8) with a model; writes N×D little-endian f32.
    Embed(info::EmbedArgs),
    /// The on-device loop: listen (microphone, WAV files or raw PCM), detect each spoken question, answer it.
    Demo(demo::DemoArgs),
    /// Time each stage of the query path (render, embed, search, whole question) on this machine.
    Bench(bench::BenchArgs),
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Query(args) => query::run(args),
        Command::Render(cmd) => render::run(cmd),
        Command::Index(cmd) => index::run(cmd),
        Command::Info(args) => info::run(args),
        Command::Embed(args) => info::embed(args),
        Command::Demo(args) => demo::run(args),
        Command::Bench(args) => bench::run(args),
    }
}
