//! VisualByte: ask a robot's image memory by voice, text or picture.
//!
//! A question travels through one module per stage, each depending only on the ones before it
//! (`tests/layout.rs` checks this):
//! - [`capture`]: where the sound comes from — microphone, WAV files or raw PCM — through a lock-free ring
//!   and a converter to mono at the analysis rate;
//! - [`endpoint`]: where a spoken question starts and ends in that stream;
//! - [`render`]: audio, text or a picture → the `S×S` RGB image the model sees (the same pixels in training);
//! - [`embed`]: one ConvNeXt (ONNX, run by tract) → an embedding, under the contract the model carries;
//! - [`index`]: the on-disk image memory, its format, writing and building, and exact cosine top-k;
//! - [`answer`]: the ranked answer with "not in memory", in words and as a picture;
//! - [`listen`]: the demo loop on top — listen, detect, answer, speak.
//!
//! Beside them: [`board`] (board profiles) and [`bench`] (timing helpers). The `visualbyte` binary's
//! `cli` module only parses arguments and calls these.
//!
//! The `onnx` feature (on by default) builds what runs the model with tract: [`embed`]'s `Embedder`,
//! threads and operators, [`answer`] and [`listen`]. Without it the crate is the parsers and renderers
//! alone (`embed::contract`, `index`, `render`, `board`, `capture`, …), which is what the fuzz targets build.

#[cfg(feature = "onnx")]
pub mod answer;
pub mod bench;
pub mod board;
pub mod capture;
pub mod embed;
pub mod endpoint;
pub mod index;
#[cfg(feature = "onnx")]
pub mod listen;
pub mod render;
