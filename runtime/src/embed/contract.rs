//! A model's contract: the JSON it carries in its ONNX metadata, how it is read and what this build checks
//! in it. Nothing here needs tract: the metadata is read with `prost` alone, so the parsers can be tested
//! and fuzzed without building the inference engine (it is the part of `embed` built without the
//! `onnx` feature).
//!
//! The ONNX `metadata_props` entry [`CONTRACT_KEY`] holds a JSON [`Contract`] (docs/CONTRACT.md): the input
//! name and size, the normalisation, the embedding name and size, the renderer settings the model was
//! trained with, and a model id. [`read_contract`] reads it without building the graph.
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::render::{RendererSettings, RENDERER_VERSION};

/// The ONNX `metadata_props` key holding the contract JSON.
pub const CONTRACT_KEY: &str = "visualbyte.contract";
/// The contract version this build reads and writes.
pub const CONTRACT_VERSION: u32 = 1;
/// Largest embedding size accepted.
pub const MAX_DIM: usize = 65_536;
/// Longest model id accepted, in bytes.
pub const MAX_MODEL_ID: usize = 200;
/// How far an embedding's L2 norm may be from 1 before the model is reported as not normalising.
pub const NORM_TOLERANCE: f32 = 1e-3;

/// What a model promises: everything the runtime must agree with to use it (docs/CONTRACT.md).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Contract {
    pub contract_version: u32,
    /// Names the weights: an index records it and refuses to be searched with another model.
    pub model_id: String,
    pub input: InputSpec,
    pub embedding: EmbeddingSpec,
    /// Exactly what `visualbyte render config --size S` printed when the model was exported.
    pub renderer: RendererSettings,
    /// Calibrated "not in memory" score: a best match below it is no answer. `None`: not calibrated.
    pub threshold: Option<f32>,
}

/// The graph input: `float32 [batch, 3, size, size]`, `x = (pixel / 255 − mean[c]) / std[c]`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    pub name: String,
    pub size: u32,
    /// Always "NCHW".
    pub layout: String,
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

/// The graph output: `float32 [batch, dim]`, L2-normalised.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingSpec {
    pub name: String,
    pub dim: usize,
}

/// What is wrong with a model, and what to do about it.
#[derive(Debug, Error)]
pub enum ModelError {
    #[error("cannot read model {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error(
        "{path}: no `{CONTRACT_KEY}` in the ONNX metadata, so this is not a VisualByte model; \
         export it with `python -m visualbyte_export export`"
    )]
    MissingContract { path: PathBuf },
    #[error(
        "the `{CONTRACT_KEY}` metadata is not a contract this visualbyte understands ({reason}); \
         re-export the model with `python -m visualbyte_export export`, or use a matching visualbyte"
    )]
    BadContract { reason: String },
    #[error(
        "model {model_id} carries contract version {found}, this visualbyte reads version \
         {CONTRACT_VERSION}; use a matching visualbyte or re-export the model"
    )]
    ContractVersion { model_id: String, found: u32 },
    #[error(
        "model {model_id} was exported for renderer version {found}, this visualbyte renders version \
         {RENDERER_VERSION}; use a matching visualbyte or re-export the model"
    )]
    RendererVersion { model_id: String, found: u32 },
    #[error("model {model_id}: its contract is not usable: {what}; re-export the model")]
    Contract { model_id: String, what: String },
    #[error(
        "model {model_id}: the graph does not match its contract: {what}; re-export the model"
    )]
    Graph { model_id: String, what: String },
    #[error("model {model_id}: tract cannot {stage} the graph: {reason}")]
    Tract {
        model_id: String,
        stage: &'static str,
        reason: String,
    },
    #[error(
        "image {index} is {width}×{height}, but model {model_id} takes {size}×{size} images; \
         render it with the model's settings (`visualbyte render … --model`)"
    )]
    ImageSize {
        model_id: String,
        index: usize,
        width: u32,
        height: u32,
        size: u32,
    },
    #[error(
        "model {model_id} gave a non-finite embedding for image {index}; the model file is damaged \
         or was exported wrongly — re-export it"
    )]
    NonFinite { model_id: String, index: usize },
    #[error(
        "model {model_id} gave an embedding of L2 norm {norm} for image {index}, not 1: the graph \
         does not normalise its output — re-export it with `python -m visualbyte_export export`"
    )]
    NotNormalised {
        model_id: String,
        index: usize,
        norm: f32,
    },
    #[error("model {path}: {source}")]
    InFile {
        path: PathBuf,
        #[source]
        source: Box<ModelError>,
    },
}

impl ModelError {
    /// The error itself, without the file it was found in.
    pub fn cause(&self) -> &ModelError {
        match self {
            ModelError::InFile { source, .. } => source.cause(),
            other => other,
        }
    }

    pub(crate) fn in_file(self, path: &Path) -> ModelError {
        match self {
            // These already name the file.
            e @ (ModelError::Read { .. }
            | ModelError::MissingContract { .. }
            | ModelError::InFile { .. }) => e,
            e => ModelError::InFile {
                path: path.to_path_buf(),
                source: Box::new(e),
            },
        }
    }
}

impl Contract {
    /// Parses the contract JSON (unknown keys are refused). Does not [`validate`](Self::validate) it.
    pub fn parse(json: &str) -> Result<Contract, ModelError> {
        serde_json::from_str(json).map_err(|e| ModelError::BadContract {
            reason: e.to_string(),
        })
    }

    /// Checks that this build can honour the contract.
    pub fn validate(&self) -> Result<(), ModelError> {
        let model_id = &self.model_id;
        let bad = |what: String| {
            Err(ModelError::Contract {
                model_id: display_id(model_id),
                what,
            })
        };
        if self.contract_version != CONTRACT_VERSION {
            return Err(ModelError::ContractVersion {
                model_id: display_id(model_id),
                found: self.contract_version,
            });
        }
        if model_id.is_empty()
            || model_id.len() > MAX_MODEL_ID
            || model_id.chars().any(|c| c.is_control())
        {
            return bad(format!(
                "model id {model_id:?} must be 1..={MAX_MODEL_ID} bytes without control characters"
            ));
        }
        if self.renderer.version != RENDERER_VERSION {
            return Err(ModelError::RendererVersion {
                model_id: model_id.clone(),
                found: self.renderer.version,
            });
        }
        if let Err(e) = self.renderer.validate() {
            return bad(e.to_string());
        }
        let input = &self.input;
        if input.size != self.renderer.size {
            return bad(format!(
                "input size {} differs from the renderer size {}",
                input.size, self.renderer.size
            ));
        }
        if input.layout != "NCHW" {
            return bad(format!("input layout {:?} is not \"NCHW\"", input.layout));
        }
        if input.name.is_empty() || self.embedding.name.is_empty() {
            return bad("the input and embedding names must not be empty".into());
        }
        if !input.mean.iter().all(|m| m.is_finite()) {
            return bad(format!("input mean {:?} is not finite", input.mean));
        }
        if !input.std.iter().all(|s| s.is_finite() && *s > 0.0) {
            return bad(format!(
                "input std {:?} must be finite and positive",
                input.std
            ));
        }
        if self.embedding.dim == 0 || self.embedding.dim > MAX_DIM {
            return bad(format!(
                "embedding dim {} is outside 1..={MAX_DIM}",
                self.embedding.dim
            ));
        }
        if let Some(t) = self.threshold {
            if !t.is_finite() || !(-1.0..=1.0).contains(&t) {
                return bad(format!("threshold {t} is not a cosine score in [-1, 1]"));
            }
        }
        Ok(())
    }

    /// The contract as one line of JSON, as it is stored in the ONNX metadata.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// A model id shortened for messages (a damaged contract may hold anything).
fn display_id(id: &str) -> String {
    let clean: String = id.chars().filter(|c| !c.is_control()).take(80).collect();
    if clean.is_empty() {
        "(no id)".into()
    } else {
        clean
    }
}

/// The part of an ONNX `ModelProto` the contract lives in: field 14, `repeated StringStringEntryProto
/// metadata_props`. Every other field (the graph, the weights) is skipped by the decoder, not parsed.
#[derive(Clone, PartialEq, prost::Message)]
struct OnnxMetadata {
    #[prost(message, repeated, tag = "14")]
    metadata_props: Vec<StringStringEntry>,
}

/// ONNX `StringStringEntryProto { string key = 1; string value = 2; }`.
#[derive(Clone, PartialEq, prost::Message)]
struct StringStringEntry {
    #[prost(string, tag = "1")]
    key: String,
    #[prost(string, tag = "2")]
    value: String,
}

/// The contract among ONNX metadata entries (the last [`CONTRACT_KEY`] entry wins), parsed but not
/// validated. `path` is only used in messages.
pub fn contract_from_metadata<'a>(
    entries: impl DoubleEndedIterator<Item = (&'a str, &'a str)>,
    path: &Path,
) -> Result<Contract, ModelError> {
    let (_, value) = entries
        .rev()
        .find(|(key, _)| *key == CONTRACT_KEY)
        .ok_or_else(|| ModelError::MissingContract {
            path: path.to_path_buf(),
        })?;
    Contract::parse(value).map_err(|e| e.in_file(path))
}

/// The contract in the bytes of an ONNX file, parsed but not validated. Only the metadata is decoded;
/// bytes that are not a protobuf message are a [`ModelError::Read`] naming `path`.
pub fn contract_from_onnx_bytes(bytes: &[u8], path: &Path) -> Result<Contract, ModelError> {
    let meta = <OnnxMetadata as prost::Message>::decode(bytes).map_err(|e| ModelError::Read {
        path: path.to_path_buf(),
        reason: format!("not an ONNX model ({e})"),
    })?;
    contract_from_metadata(
        meta.metadata_props
            .iter()
            .map(|e| (e.key.as_str(), e.value.as_str())),
        path,
    )
}

/// A read error naming the model file.
pub(crate) fn read_error(path: &Path, reason: String) -> ModelError {
    ModelError::Read {
        path: path.to_path_buf(),
        reason,
    }
}

/// The model path exists and is a regular file (a folder or a missing file is a read error naming it).
pub(crate) fn check_model_file(path: &Path) -> Result<(), ModelError> {
    let meta = std::fs::metadata(path).map_err(|e| read_error(path, e.to_string()))?;
    if meta.is_file() {
        Ok(())
    } else {
        Err(read_error(path, "not a file".into()))
    }
}

/// Reads a model's contract from its ONNX metadata, without building the graph. The contract is parsed but
/// not validated: `visualbyte info` shows it even when this build cannot use it.
pub fn read_contract(path: &Path) -> Result<Contract, ModelError> {
    check_model_file(path)?;
    let bytes = std::fs::read(path).map_err(|e| read_error(path, e.to_string()))?;
    contract_from_onnx_bytes(&bytes, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contract() -> Contract {
        Contract {
            contract_version: CONTRACT_VERSION,
            model_id: "vb-test-32-20261128-00000000".into(),
            input: InputSpec {
                name: "image".into(),
                size: 32,
                layout: "NCHW".into(),
                mean: [0.485, 0.456, 0.406],
                std: [0.229, 0.224, 0.225],
            },
            embedding: EmbeddingSpec {
                name: "embedding".into(),
                dim: 32,
            },
            renderer: RendererSettings::for_size(32),
            threshold: Some(0.5),
        }
    }

    #[test]
    fn a_good_contract_validates_and_round_trips() {
        let c = contract();
        c.validate().unwrap();
        assert_eq!(Contract::parse(&c.to_json()).unwrap(), c);
        let mut none = c.clone();
        none.threshold = None;
        let json = none.to_json();
        assert!(json.contains("\"threshold\":null"), "{json}");
        assert_eq!(Contract::parse(&json).unwrap(), none);
    }

    #[test]
    fn unknown_keys_and_missing_keys_are_refused() {
        let json = contract().to_json();
        let extra = json.replacen('{', "{\"colour\":1,", 1);
        let e = Contract::parse(&extra).unwrap_err();
        assert!(matches!(e, ModelError::BadContract { .. }), "{e}");
        assert!(e.to_string().contains("colour"), "{e}");
        let missing = json.replace("\"model_id\":\"vb-test-32-20261128-00000000\",", "");
        assert_ne!(missing, json);
        let e = Contract::parse(&missing).unwrap_err();
        assert!(e.to_string().contains("model_id"), "{e}");
        assert!(Contract::parse("not json").is_err());
    }

    #[test]
    fn another_renderer_version_is_refused_naming_both_versions() {
        let mut c = contract();
        c.renderer.version = RENDERER_VERSION + 1;
        let e = c.validate().unwrap_err();
        assert!(
            matches!(e, ModelError::RendererVersion { found, .. } if found == RENDERER_VERSION + 1)
        );
        let msg = e.to_string();
        assert!(
            msg.contains(&format!("renderer version {}", RENDERER_VERSION + 1)),
            "{msg}"
        );
        assert!(
            msg.contains(&format!("renders version {RENDERER_VERSION}")),
            "{msg}"
        );
        assert!(msg.contains(&c.model_id), "{msg}");
    }

    #[test]
    fn another_contract_version_is_refused() {
        let mut c = contract();
        c.contract_version = 2;
        assert!(matches!(
            c.validate(),
            Err(ModelError::ContractVersion { found: 2, .. })
        ));
    }

    #[test]
    fn inconsistent_values_are_refused_with_what_is_wrong() {
        type Change = Box<dyn Fn(&mut Contract)>;
        let cases: Vec<(&str, Change)> = vec![
            ("input size 48", Box::new(|c| c.input.size = 48)),
            ("layout", Box::new(|c| c.input.layout = "NHWC".into())),
            ("std", Box::new(|c| c.input.std[1] = 0.0)),
            ("std", Box::new(|c| c.input.std[2] = f32::INFINITY)),
            ("mean", Box::new(|c| c.input.mean[0] = f32::NAN)),
            ("embedding dim 0", Box::new(|c| c.embedding.dim = 0)),
            ("embedding dim", Box::new(|c| c.embedding.dim = MAX_DIM + 1)),
            ("threshold 1.5", Box::new(|c| c.threshold = Some(1.5))),
            ("threshold NaN", Box::new(|c| c.threshold = Some(f32::NAN))),
            ("names", Box::new(|c| c.input.name.clear())),
            ("model id", Box::new(|c| c.model_id.clear())),
            ("model id", Box::new(|c| c.model_id = "a\nb".into())),
            (
                "input size",
                Box::new(|c| {
                    c.input.size = 8;
                    c.renderer.size = 8;
                }),
            ),
            ("audio", Box::new(|c| c.renderer.audio.hop = 0)),
        ];
        for (needle, change) in cases {
            let mut c = contract();
            change(&mut c);
            let e = c.validate().expect_err(needle);
            assert!(matches!(e, ModelError::Contract { .. }), "{needle}: {e}");
            assert!(e.to_string().contains(needle), "{needle}: {e}");
        }
    }
}
