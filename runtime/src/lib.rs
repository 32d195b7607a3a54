//! VisualByte: ask a robot's image memory by voice, text or picture.
//!
//! A query travels through one module per stage:
//! `render` (audio, text or picture → an `S×S` RGB image) → `model` (one ConvNeXt → an embedding) →
//! `index` (cosine top-k over the image memory) → `query` (the answer, with "not in memory").
//!
//! The `onnx` feature (on by default) builds the stages that run the model with tract: `model`'s
//! `Embedder`, `query`, `demo`, `parallel` and the operators it swaps into tract's plan
//! (`depthwise`, `pointwise`, `gelu`). Without it the crate is the parsers and renderers alone
//! (`contract`, `index`, `render`, `board`, `source`, …), which is what the fuzz targets build.

pub mod bench;
pub mod board;
#[cfg(feature = "mic")]
pub mod capture;
#[cfg(feature = "onnx")]
pub mod demo;
pub mod embed;
pub mod endpoint;
pub mod error;
pub mod index;
#[cfg(feature = "onnx")]
pub mod query;
pub mod render;
pub mod source;
pub mod stream;

pub use error::{Error, Result};
