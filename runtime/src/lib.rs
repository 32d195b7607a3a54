//! VisualByte: ask a robot's image memory by voice, text or picture.
//!
//! A query travels through one module per stage:
//! `render` (audio, text or picture → an `S×S` RGB image) → `model` (one ConvNeXt → an embedding) →
//! `index` (cosine top-k over the image memory) → `query` (the answer, with "not in memory").
pub mod bench;
pub mod board;
#[cfg(feature = "mic")]
pub mod capture;
pub mod demo;
pub mod endpoint;
pub mod error;
pub mod index;
pub mod model;
pub mod parallel;
pub mod query;
pub mod render;
pub mod source;
pub mod stream;

pub use error::{Error, Result};
