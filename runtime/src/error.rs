//! The crate's error type: one variant per stage, each with a message a user can act on.
use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    #[error(transparent)]
    Render(#[from] crate::render::RenderError),
    #[error(transparent)]
    Model(#[from] crate::embed::contract::ModelError),
    #[error(transparent)]
    Index(#[from] crate::index::IndexError),
    #[cfg(feature = "onnx")]
    #[error(transparent)]
    Query(#[from] crate::query::QueryError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
