//! A query, start to answer: render → embed → search → `Answer`.
use thiserror::Error;

#[derive(Debug, Error)]
pub enum QueryError {
    #[error("query: {0}")]
    Other(String),
}
