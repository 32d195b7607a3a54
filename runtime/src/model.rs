//! The embedding model: an ONNX ConvNeXt run by tract, with the contract it carries in its metadata.
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ModelError {
    #[error("model: {0}")]
    Other(String),
}
