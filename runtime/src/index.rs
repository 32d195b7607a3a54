//! The on-disk image memory: embeddings with labels and source paths, searched by exact cosine top-k.
use thiserror::Error;

#[derive(Debug, Error)]
pub enum IndexError {
    #[error("index: {0}")]
    Other(String),
}
