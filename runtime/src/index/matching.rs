//! Label matching: a memory is found by its picture, by its label, or by the higher of the two.
//!
//! The fusion rule for [`Match::Both`]: a memory's score is `max(cos(q, picture), cos(q, label vector))`,
//! and the hit says which of the two gave it. One rule for every modality: a typed or spoken question
//! about a labelled memory then scores at least what text↔speech gives, whatever the picture branch knows
//! about the photo, while a picture question still matches pictures.
use std::fmt;

use serde::{Deserialize, Serialize};

use super::format::NO_LABEL_VECTOR;
use super::search::TopK;
use super::{EmbeddingIndex, IndexError, MAX_TOP_K};

/// What a question is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Match {
    /// The remembered pictures only.
    Picture,
    /// The labels only (memories without a label vector are never found).
    Label,
    /// Each memory by the higher of its picture's and its label's score.
    #[default]
    Both,
}

named_values!(Match, "match", [Picture => "picture", Label => "label", Both => "both"]);

/// Which of a memory's two vectors gave its score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Matched {
    Picture,
    Label,
}

impl fmt::Display for Matched {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Matched::Picture => "picture",
            Matched::Label => "label",
        })
    }
}

/// One search result of [`EmbeddingIndex::search_matching`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MatchedHit {
    pub index: usize,
    /// Cosine similarity, in `[-1, 1]`.
    pub score: f32,
    pub matched: Matched,
}

impl EmbeddingIndex {
    /// The `k` memories most similar to `query`, best first (ties: lower index first), compared as `how`
    /// says. Exact, like [`search`](Self::search), whose checks of `query` and `k` apply.
    pub fn search_matching(
        &self,
        query: &[f32],
        k: usize,
        how: Match,
    ) -> Result<Vec<MatchedHit>, IndexError> {
        if how == Match::Picture || (how == Match::Both && self.vector_labels().is_empty()) {
            return Ok(tagged(self.search(query, k)?, Matched::Picture));
        }
        // The picture search checks the query; the label scores need it as a unit vector.
        let pictures = self.search(query, if how == Match::Both { k } else { 0 })?;
        let unit = unit(query);
        let label_scores = self.label_scores(&unit);
        let k = k.min(MAX_TOP_K).min(self.len());
        let mut top = TopK::new(k);
        for (i, &row) in self.layout.entry_label.iter().enumerate() {
            if row != NO_LABEL_VECTOR {
                top.offer(i, label_scores[row as usize]);
            }
        }
        let by_label = top.into_hits();
        if how == Match::Label {
            return Ok(tagged(by_label, Matched::Label));
        }
        // The fused top k lies within the union of both top-k lists: a memory outside both has k
        // memories above it on its better side. Every candidate is scored exactly on both sides.
        let mut candidates: Vec<usize> = pictures.iter().map(|h| h.index).collect();
        candidates.extend(by_label.iter().map(|h| h.index));
        candidates.sort_unstable();
        candidates.dedup();
        let mut fused = TopK::new(k);
        let mut won_by_label = Vec::new();
        let mut row_buf = vec![0f32; self.dim()];
        for &i in &candidates {
            super::search::decode_row(&self.layout, self.bytes(), i, &mut row_buf);
            let picture = dot(&row_buf, &unit).clamp(-1.0, 1.0);
            let label = match self.layout.entry_label[i] {
                NO_LABEL_VECTOR => f32::NEG_INFINITY,
                row => label_scores[row as usize],
            };
            if label > picture {
                won_by_label.push(i);
            }
            fused.offer(i, picture.max(label));
        }
        Ok(fused
            .into_hits()
            .into_iter()
            .map(|h| MatchedHit {
                index: h.index,
                score: h.score,
                matched: if won_by_label.binary_search(&h.index).is_ok() {
                    Matched::Label
                } else {
                    Matched::Picture
                },
            })
            .collect())
    }

    /// Cosine of the unit query with every label vector.
    fn label_scores(&self, unit: &[f32]) -> Vec<f32> {
        (0..self.vector_labels().len())
            .map(|j| dot(self.label_row(j), unit).clamp(-1.0, 1.0))
            .collect()
    }
}

fn tagged(hits: Vec<super::Hit>, matched: Matched) -> Vec<MatchedHit> {
    hits.into_iter()
        .map(|h| MatchedHit {
            index: h.index,
            score: h.score,
            matched,
        })
        .collect()
}

fn unit(v: &[f32]) -> Vec<f32> {
    let norm = v.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>().sqrt();
    v.iter().map(|&x| (f64::from(x) / norm) as f32).collect()
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}
