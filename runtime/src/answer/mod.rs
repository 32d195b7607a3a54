//! A query, start to answer: render → embed → search → [`Answer`].
//!
//! An [`Engine`] holds the three stages, built once: the model, the renderers configured from the model's
//! contract, and the image-memory index (which must have been built with the same model). Each `ask_*`
//! renders the question as an image, embeds it, searches the index and applies the "not in memory"
//! threshold.
pub mod picture;
pub mod text;

use std::path::Path;
use std::time::Instant;

use image::RgbImage;
use serde::Serialize;
use thiserror::Error;

use crate::embed::contract::ModelError;
use crate::embed::Embedder;
use crate::index::{EmbeddingIndex, IndexError, Match, Matched};
use crate::render::{Pcm, RenderError, Renderer};

/// Hits returned when nothing else is asked for.
pub const DEFAULT_TOP_K: usize = 5;
/// Nearest memories looked at to rank labels (each label scored by its best memory).
pub const LABEL_POOL: usize = 64;

#[derive(Debug, Error)]
pub enum QueryError {
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error(
        "the index holds {index_dim}-d embeddings but model {model_id} makes {model_dim}-d ones; \
         rebuild the index with this model (`visualbyte index build --model …`)"
    )]
    Dim {
        model_id: String,
        index_dim: usize,
        model_dim: usize,
    },
    #[error("top-k must be at least 1")]
    TopK,
    #[error("threshold {0} is not a cosine score in [-1, 1]")]
    Threshold(f32),
}

/// How the question was asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Modality {
    Text,
    Audio,
    Image,
}

impl std::fmt::Display for Modality {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Modality::Text => "text",
            Modality::Audio => "audio",
            Modality::Image => "image",
        })
    }
}

/// One memory: its label, where its picture came from, its cosine similarity to the question, and
/// whether its picture or its label gave that score.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AnswerHit {
    pub label: String,
    pub path: String,
    pub score: f32,
    pub matched: Matched,
}

/// Milliseconds spent in each stage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Timings {
    pub render_ms: f64,
    pub embed_ms: f64,
    pub search_ms: f64,
}

impl Timings {
    pub fn total_ms(&self) -> f64 {
        self.render_ms + self.embed_ms + self.search_ms
    }
}

/// The answer to one question.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Answer {
    /// The question: the typed text, or the file it came from.
    pub query: String,
    pub modality: Modality,
    /// The answer: the best memory's label, or `None` when the index is empty.
    pub label: Option<String>,
    /// The best memory's score.
    pub score: Option<f32>,
    /// The `top_k` nearest memories, best first; a label may appear more than once.
    pub hits: Vec<AnswerHit>,
    /// Labels ranked by their best memory among the nearest [`LABEL_POOL`], each once, at most `top_k`.
    pub labels: Vec<AnswerHit>,
    /// The "not in memory" threshold applied, if any.
    pub threshold: Option<f32>,
    /// The best score is below the threshold (or there is no memory at all): the memory has no answer.
    pub not_in_memory: bool,
    pub timings: Timings,
}

impl Answer {
    /// The best hit, if any.
    pub fn best(&self) -> Option<&AnswerHit> {
        self.hits.first()
    }
}

/// Model, renderers and index, built once and reused for every question.
pub struct Engine {
    embedder: Embedder,
    renderer: Renderer,
    index: EmbeddingIndex,
    threshold: Option<f32>,
    top_k: usize,
    matching: Match,
    /// The last question as the model saw it, for the demo's answer picture.
    last_question: Option<RgbImage>,
}

impl Engine {
    /// Refuses an index built with another model (or of another embedding size). The threshold starts as
    /// the model's calibrated one, `top_k` as [`DEFAULT_TOP_K`].
    pub fn new(embedder: Embedder, index: EmbeddingIndex) -> Result<Engine, QueryError> {
        index.check_model(embedder.model_id())?;
        let index_dim = index.dim();
        if index_dim != embedder.dim() {
            return Err(QueryError::Dim {
                model_id: embedder.model_id().to_string(),
                index_dim,
                model_dim: embedder.dim(),
            });
        }
        let renderer = Renderer::new(embedder.renderer_settings().clone())?;
        Ok(Engine {
            threshold: embedder.contract().threshold,
            embedder,
            renderer,
            index,
            top_k: DEFAULT_TOP_K,
            matching: Match::default(),
            last_question: None,
        })
    }

    /// What questions are compared with: pictures, labels or both (the default; see [`Match`]).
    pub fn set_match(&mut self, how: Match) {
        self.matching = how;
    }

    pub fn matching(&self) -> Match {
        self.matching
    }

    /// Overrides the model's threshold (`None`: never answer "not in memory" unless the index is empty).
    pub fn set_threshold(&mut self, threshold: Option<f32>) -> Result<(), QueryError> {
        if let Some(t) = threshold {
            if !t.is_finite() || !(-1.0..=1.0).contains(&t) {
                return Err(QueryError::Threshold(t));
            }
        }
        self.threshold = threshold;
        Ok(())
    }

    pub fn set_top_k(&mut self, k: usize) -> Result<(), QueryError> {
        if k == 0 {
            return Err(QueryError::TopK);
        }
        self.top_k = k;
        Ok(())
    }

    pub fn threshold(&self) -> Option<f32> {
        self.threshold
    }

    pub fn embedder(&self) -> &Embedder {
        &self.embedder
    }

    pub fn index(&self) -> &EmbeddingIndex {
        &self.index
    }

    /// The image of the last question asked (after its embedding), as the model saw it.
    pub fn last_question(&self) -> Option<&RgbImage> {
        self.last_question.as_ref()
    }

    pub fn renderer(&self) -> &Renderer {
        &self.renderer
    }

    /// A typed question, e.g. "tiger".
    pub fn ask_text(&mut self, text: &str) -> Result<Answer, QueryError> {
        let start = Instant::now();
        let image = self.renderer.text(text)?;
        self.answer(text.to_string(), Modality::Text, image, start)
    }

    /// A spoken question in a WAV file.
    pub fn ask_wav(&mut self, path: &Path) -> Result<Answer, QueryError> {
        let start = Instant::now();
        let image = self.renderer.audio_file(path)?;
        self.answer(path.display().to_string(), Modality::Audio, image, start)
    }

    /// A spoken question already decoded (e.g. from the microphone).
    pub fn ask_pcm(&mut self, pcm: &Pcm) -> Result<Answer, QueryError> {
        let start = Instant::now();
        let image = self.renderer.audio_pcm(pcm)?;
        let query = format!("{:.1} s of audio at {} Hz", pcm.seconds(), pcm.rate);
        self.answer(query, Modality::Audio, image, start)
    }

    /// A picture question: "where have I seen this?".
    pub fn ask_image(&mut self, path: &Path) -> Result<Answer, QueryError> {
        let start = Instant::now();
        let image = self.renderer.image_file(path)?;
        self.answer(path.display().to_string(), Modality::Image, image, start)
    }

    /// An already rendered question (`S×S`, as the renderers make it).
    pub fn ask_rendered(
        &mut self,
        query: String,
        modality: Modality,
        image: RgbImage,
    ) -> Result<Answer, QueryError> {
        self.answer(query, modality, image, Instant::now())
    }

    fn answer(
        &mut self,
        query: String,
        modality: Modality,
        image: RgbImage,
        start: Instant,
    ) -> Result<Answer, QueryError> {
        let render_ms = ms(start);
        let start = Instant::now();
        let vector = self.embedder.embed_one(&image)?;
        let embed_ms = ms(start);
        self.last_question = Some(image);
        let start = Instant::now();
        let pool =
            self.index
                .search_matching(&vector, self.top_k.max(LABEL_POOL), self.matching)?;
        let mut ranked = Vec::with_capacity(pool.len());
        for hit in &pool {
            ranked.push(AnswerHit {
                label: self.index.label(hit.index).to_string(),
                path: self.index.source_path(hit.index).display().to_string(),
                score: hit.score,
                matched: hit.matched,
            });
        }
        let search_ms = ms(start);
        Ok(rank(
            query,
            modality,
            ranked,
            self.top_k,
            self.threshold,
            Timings {
                render_ms,
                embed_ms,
                search_ms,
            },
        ))
    }
}

fn ms(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1e3
}

/// Builds the answer from the nearest memories (best first): the top `k`, the labels ranked by their best
/// memory, and "not in memory" when the best score is below the threshold or there is no memory.
pub fn rank(
    query: String,
    modality: Modality,
    pool: Vec<AnswerHit>,
    k: usize,
    threshold: Option<f32>,
    timings: Timings,
) -> Answer {
    let mut pool = pool;
    // The index returns best first; sort anyway (stable, NaN last) so the answer never depends on it.
    pool.sort_by(|a, b| {
        (a.score.is_nan().cmp(&b.score.is_nan())).then(b.score.total_cmp(&a.score))
    });
    let mut labels: Vec<AnswerHit> = Vec::new();
    for hit in &pool {
        if labels.len() >= k {
            break;
        }
        if !labels.iter().any(|l| l.label == hit.label) {
            labels.push(hit.clone());
        }
    }
    let best = pool.first().cloned();
    let not_in_memory = match (&best, threshold) {
        (None, _) => true,
        (Some(b), Some(t)) => b.score.is_nan() || b.score < t,
        (Some(b), None) => !b.score.is_finite(),
    };
    pool.truncate(k);
    Answer {
        query,
        modality,
        label: best.as_ref().map(|b| b.label.clone()),
        score: best.as_ref().map(|b| b.score),
        hits: pool,
        labels,
        threshold,
        not_in_memory,
        timings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(label: &str, score: f32) -> AnswerHit {
        AnswerHit {
            label: label.into(),
            path: format!("{label}.png"),
            score,
            matched: Matched::Picture,
        }
    }

    fn ranked(pool: Vec<AnswerHit>, k: usize, threshold: Option<f32>) -> Answer {
        rank(
            "q".into(),
            Modality::Text,
            pool,
            k,
            threshold,
            Timings::default(),
        )
    }

    #[test]
    fn the_answer_is_the_best_hit_and_labels_are_ranked_once_each() {
        let pool = vec![
            hit("tiger", 0.9),
            hit("tiger", 0.8),
            hit("cat", 0.7),
            hit("tiger", 0.6),
            hit("dog", 0.5),
            hit("cat", 0.4),
        ];
        let a = ranked(pool, 3, Some(0.35));
        assert_eq!(a.label.as_deref(), Some("tiger"));
        assert_eq!(a.score, Some(0.9));
        assert!(!a.not_in_memory);
        let hits: Vec<_> = a.hits.iter().map(|h| (h.label.as_str(), h.score)).collect();
        assert_eq!(hits, [("tiger", 0.9), ("tiger", 0.8), ("cat", 0.7)]);
        let labels: Vec<_> = a
            .labels
            .iter()
            .map(|h| (h.label.as_str(), h.score))
            .collect();
        assert_eq!(labels, [("tiger", 0.9), ("cat", 0.7), ("dog", 0.5)]);
    }

    #[test]
    fn below_the_threshold_is_not_in_memory_but_still_shows_the_best_guess() {
        let a = ranked(vec![hit("tiger", 0.21), hit("cat", 0.1)], 5, Some(0.35));
        assert!(a.not_in_memory);
        assert_eq!(a.label.as_deref(), Some("tiger"));
        assert_eq!(a.hits.len(), 2);
        let at = ranked(vec![hit("tiger", 0.35)], 5, Some(0.35));
        assert!(
            !at.not_in_memory,
            "a score equal to the threshold is an answer"
        );
        let none = ranked(vec![hit("tiger", -0.5)], 5, None);
        assert!(
            !none.not_in_memory,
            "without a threshold the best hit is the answer"
        );
    }

    #[test]
    fn an_empty_memory_is_not_in_memory_and_unsorted_input_is_sorted() {
        let a = ranked(vec![], 5, Some(0.3));
        assert!(a.not_in_memory);
        assert_eq!(a.label, None);
        assert!(a.hits.is_empty() && a.labels.is_empty());
        let b = ranked(
            vec![hit("cat", 0.2), hit("dog", f32::NAN), hit("tiger", 0.7)],
            5,
            None,
        );
        assert_eq!(b.label.as_deref(), Some("tiger"));
        assert_eq!(b.hits.last().map(|h| h.label.as_str()), Some("dog"));
    }

    #[test]
    fn answers_serialise_with_lowercase_modality() {
        let a = ranked(vec![hit("tiger", 0.5)], 5, Some(0.4));
        let json = serde_json::to_value(&a).unwrap();
        assert_eq!(json["modality"], "text");
        assert_eq!(json["label"], "tiger");
        assert_eq!(json["not_in_memory"], false);
        assert!(json["timings"]["embed_ms"].is_number());
    }
}
