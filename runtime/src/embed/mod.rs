//! The embed stage: an `S×S` RGB image → one ConvNeXt (ONNX, run by tract) → an embedding. It owns the
//! model's metadata contract ([`contract`], the only part built without the `onnx` feature), the
//! [`Embedder`], its inference threads ([`threads`]) and the operators it swaps into tract's plan ([`ops`]).
pub mod contract;
#[cfg(feature = "onnx")]
mod embedder;
#[cfg(feature = "onnx")]
pub mod ops;
#[cfg(feature = "onnx")]
pub mod threads;

#[cfg(feature = "onnx")]
pub use embedder::{Embedder, OpTime};
