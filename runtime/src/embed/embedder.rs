//! The [`Embedder`]: an ONNX ConvNeXt run by tract, checked against the contract it carries in its metadata.
//!
//! The ONNX `metadata_props` entry [`CONTRACT_KEY`](super::contract::CONTRACT_KEY) holds a JSON
//! [`Contract`] (docs/CONTRACT.md; the type, its checks and
//! [`read_contract`](super::contract::read_contract) live in [`super::contract`]).
//! [`Embedder::load`] reads it, checks it against this build and against the graph, fixes the symbolic
//! batch axis and optimises the graph once.
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use image::RgbImage;
use tract_onnx::pb::ModelProto;
use tract_onnx::prelude::{
    tvec, DatumType, Framework, InferenceModelExt, IntoRunnable, IntoTValue, TDim, Tensor,
    TypedModel, TypedRunnableModel,
};

use super::contract::{contract_from_metadata, Contract, ModelError, NORM_TOLERANCE};
use crate::render::RendererSettings;

fn read_proto(path: &Path) -> Result<ModelProto, ModelError> {
    super::contract::check_model_file(path)?;
    tract_onnx::onnx()
        .proto_model_for_path(path)
        .map_err(|e| super::contract::read_error(path, format!("not an ONNX model ({e:#})")))
}

fn contract_from_proto(proto: &ModelProto, path: &Path) -> Result<Contract, ModelError> {
    contract_from_metadata(
        proto
            .metadata_props
            .iter()
            .map(|e| (e.key.as_str(), e.value.as_str())),
        path,
    )
}

/// Runs a model: images in, L2-normalised embeddings out.
pub struct Embedder {
    contract: Contract,
    /// The graph with its batch axis still symbolic, kept to build the batch plan when first needed.
    /// `None` without a batch plan (the default), or when the exported graph has a fixed batch of one.
    symbolic: Option<(TypedModel, tract_onnx::prelude::Symbol)>,
    single: Arc<TypedRunnableModel>,
    /// Images per run of the batch plan; 1: no batch plan.
    batch_size: usize,
    batch: OnceLock<Result<Arc<TypedRunnableModel>, String>>,
    /// `(pixel / 255 − mean[c]) / std[c]` for every pixel value and channel.
    lut: [[f32; 256]; 3],
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder")
            .field("model_id", &self.contract.model_id)
            .field("size", &self.contract.input.size)
            .field("dim", &self.contract.embedding.dim)
            .finish_non_exhaustive()
    }
}

impl Embedder {
    /// Loads a model: reads and validates its contract, checks the graph against it (input name, shape
    /// `[batch, 3, S, S]` float32, output name and `[batch, D]`), fixes the batch axis to one and
    /// optimises the graph once. Every image then runs alone: measured on ConvNeXt atto and tiny at
    /// 96 px, batches of 4–16 were no faster per image and cost a second optimised copy of the weights.
    pub fn load(path: &Path) -> Result<Embedder, ModelError> {
        Self::load_with_batch(path, 1)
    }

    /// Like [`load`](Self::load), and runs of `batch` images go through a second plan with the batch
    /// axis fixed to `batch`, built on first use (the symbolic graph is kept until then).
    pub fn load_with_batch(path: &Path, batch: usize) -> Result<Embedder, ModelError> {
        let t = Instant::now();
        let proto = read_proto(path)?;
        log::debug!("model load: read and decode the ONNX file {}", ms(t));
        let contract = contract_from_proto(&proto, path)?;
        contract.validate().map_err(|e| e.in_file(path))?;
        Self::from_proto(&proto, contract, batch.max(1)).map_err(|e| e.in_file(path))
    }

    fn from_proto(
        proto: &ModelProto,
        contract: Contract,
        batch_size: usize,
    ) -> Result<Embedder, ModelError> {
        let id = contract.model_id.clone();
        let tract_err = |stage: &'static str| {
            let id = id.clone();
            move |e: anyhow::Error| ModelError::Tract {
                model_id: id.clone(),
                stage,
                reason: format!("{e:#}"),
            }
        };
        let graph_err = |what: String| ModelError::Graph {
            model_id: id.clone(),
            what,
        };
        let t = Instant::now();
        let mut model = tract_onnx::onnx()
            .model_for_proto_model(proto)
            .map_err(tract_err("load"))?;
        log::debug!("model load: ONNX graph to tract {}", ms(t));

        // The input: exactly one, with the contract's name.
        let inputs: Vec<String> = model
            .input_outlets()
            .map_err(tract_err("load"))?
            .iter()
            .map(|o| model.node(o.node).name.clone())
            .collect();
        if inputs.len() != 1 || inputs[0] != contract.input.name {
            return Err(graph_err(format!(
                "it should have one input named {:?}, it has {:?}",
                contract.input.name, inputs
            )));
        }
        // The output: the one named in the contract; any other output is dropped.
        let outputs = model.output_outlets().map_err(tract_err("load"))?.to_vec();
        let labels: Vec<String> = outputs
            .iter()
            .map(|o| model.outlet_label(*o).unwrap_or("?").to_string())
            .collect();
        let Some(pos) = labels.iter().position(|l| *l == contract.embedding.name) else {
            return Err(graph_err(format!(
                "it has no output named {:?} (it has {:?})",
                contract.embedding.name, labels
            )));
        };
        model
            .select_output_outlets(&[outputs[pos]])
            .map_err(tract_err("load"))?;

        let t = Instant::now();
        let typed = model.into_typed().map_err(tract_err("analyse"))?;
        log::debug!("model load: type analysis {}", ms(t));
        let symbol = check_graph(&typed, &contract).map_err(graph_err)?;
        let single = match &symbol {
            Some(s) => plan(&typed, Some(s), 1),
            None => plan(&typed, None, 1),
        }
        .map_err(tract_err("optimise"))?;
        let lut = lut(&contract.input.mean, &contract.input.std);
        // Without a batch plan to build, the symbolic graph (a copy of the weights) is dropped now.
        let symbolic = symbol.filter(|_| batch_size > 1).map(|s| (typed, s));
        let batch_size = if symbolic.is_some() { batch_size } else { 1 };
        Ok(Embedder {
            symbolic,
            single,
            batch_size,
            batch: OnceLock::new(),
            lut,
            contract,
        })
    }

    pub fn contract(&self) -> &Contract {
        &self.contract
    }

    pub fn model_id(&self) -> &str {
        &self.contract.model_id
    }

    /// Embedding size.
    pub fn dim(&self) -> usize {
        self.contract.embedding.dim
    }

    /// Width and height of the images the model takes.
    pub fn input_size(&self) -> u32 {
        self.contract.input.size
    }

    /// The renderer settings the model was trained with: render queries and memories with these.
    pub fn renderer_settings(&self) -> &RendererSettings {
        &self.contract.renderer
    }

    /// Images per run of the batch plan; 1: every image runs alone.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// Embeds one rendered image.
    pub fn embed_one(&self, image: &RgbImage) -> Result<Vec<f32>, ModelError> {
        let mut out = self.embed(std::slice::from_ref(image))?;
        Ok(out.pop().unwrap_or_default())
    }

    /// Embeds rendered `S×S` images: one L2-normalised vector of [`dim`](Self::dim) floats each, in order.
    /// Runs of [`batch_size`](Self::batch_size) images go through the batch plan (built on first use); the
    /// rest one at a time.
    pub fn embed(&self, images: &[RgbImage]) -> Result<Vec<Vec<f32>>, ModelError> {
        let size = self.contract.input.size;
        for (index, img) in images.iter().enumerate() {
            if img.width() != size || img.height() != size {
                return Err(ModelError::ImageSize {
                    model_id: self.contract.model_id.clone(),
                    index,
                    width: img.width(),
                    height: img.height(),
                    size,
                });
            }
        }
        let mut out = Vec::with_capacity(images.len());
        let mut start = 0;
        while start < images.len() {
            let left = images.len() - start;
            let n = self.batch_size;
            let batch = if n > 1 && left >= n {
                self.batch_plan()?
            } else {
                None
            };
            let (plan, n) = match batch {
                Some(p) => (p, n),
                None => (&self.single, 1),
            };
            let vectors = self.run(plan, &images[start..start + n], start)?;
            out.extend(vectors);
            start += n;
        }
        Ok(out)
    }

    /// The batch plan, built on first use; `None` when the graph's batch axis is fixed to one.
    fn batch_plan(&self) -> Result<Option<&Arc<TypedRunnableModel>>, ModelError> {
        let Some((typed, symbol)) = &self.symbolic else {
            return Ok(None);
        };
        let built = self.batch.get_or_init(|| {
            plan(typed, Some(symbol), self.batch_size).map_err(|e| format!("{e:#}"))
        });
        match built {
            Ok(p) => Ok(Some(p)),
            Err(reason) => Err(ModelError::Tract {
                model_id: self.contract.model_id.clone(),
                stage: "optimise (batch plan)",
                reason: reason.clone(),
            }),
        }
    }

    fn run(
        &self,
        plan: &Arc<TypedRunnableModel>,
        images: &[RgbImage],
        first_index: usize,
    ) -> Result<Vec<Vec<f32>>, ModelError> {
        let dim = self.contract.embedding.dim;
        let n = images.len();
        let tract_err = |e: anyhow::Error| ModelError::Tract {
            model_id: self.contract.model_id.clone(),
            stage: "run",
            reason: format!("{e:#}"),
        };
        let tensor = self.input_tensor(images).map_err(tract_err)?;
        let outputs = super::threads::in_inference_pool(|| plan.run(tvec!(tensor.into_tvalue())))
            .map_err(tract_err)?;
        let output = outputs
            .first()
            .ok_or_else(|| tract_err(anyhow::anyhow!("the graph gave no output")))?;
        if output.shape() != [n, dim] {
            return Err(ModelError::Graph {
                model_id: self.contract.model_id.clone(),
                what: format!("output shape {:?}, expected [{n}, {dim}]", output.shape()),
            });
        }
        let view = output.try_as_plain_ram().map_err(tract_err)?;
        let values: &[f32] = view.as_slice::<f32>().map_err(tract_err)?;
        let mut vectors = Vec::with_capacity(n);
        for (b, row) in values.chunks_exact(dim).enumerate() {
            let index = first_index + b;
            if !row.iter().all(|v| v.is_finite()) {
                return Err(ModelError::NonFinite {
                    model_id: self.contract.model_id.clone(),
                    index,
                });
            }
            let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
            if (norm - 1.0).abs() > NORM_TOLERANCE {
                return Err(ModelError::NotNormalised {
                    model_id: self.contract.model_id.clone(),
                    index,
                    norm,
                });
            }
            vectors.push(row.to_vec());
        }
        Ok(vectors)
    }

    /// Where the time of one embedding goes: every node of the single-image plan is timed over `runs` runs
    /// (after one untimed run) and the times are summed per operator kind, slowest first.
    pub fn profile_ops(&self, image: &RgbImage, runs: usize) -> Result<Vec<OpTime>, ModelError> {
        let tract_err = |e: anyhow::Error| ModelError::Tract {
            model_id: self.contract.model_id.clone(),
            stage: "profile",
            reason: format!("{e:#}"),
        };
        let mut state = self.single.spawn().map_err(tract_err)?;
        // (nodes, time, threads) per kind.
        let mut per_kind: HashMap<String, (usize, Duration, usize)> = HashMap::new();
        // Where an embedding runs (`run`): on an inference thread when there are several, so that the
        // profile times the operators' splits as an embedding makes them.
        super::threads::in_inference_pool(|| {
            for run in 0..=runs.max(1) {
                let input = self
                    .input_tensor(std::slice::from_ref(image))
                    .map_err(tract_err)?;
                state
                    .run_plan_with_eval(
                        tvec!(input.into_tvalue()),
                        |ctx, op_state, node, inputs| {
                            let t = Instant::now();
                            let out =
                                tract_onnx::tract_core::plan::eval(ctx, op_state, node, inputs);
                            if run > 0 {
                                let e = per_kind.entry(node.op.name().to_string()).or_default();
                                e.1 += t.elapsed();
                                if run == 1 {
                                    e.0 += 1;
                                    e.2 = rayon::current_thread_index()
                                        .map_or(1, |_| rayon::current_num_threads());
                                }
                            }
                            out
                        },
                    )
                    .map_err(tract_err)?;
            }
            Ok::<_, ModelError>(())
        })?;
        let runs = runs.max(1) as f64;
        let mut ops: Vec<OpTime> = per_kind
            .into_iter()
            .map(|(op, (nodes, time, threads))| OpTime {
                op,
                nodes,
                ms_per_run: time.as_secs_f64() * 1e3 / runs,
                threads,
            })
            .collect();
        ops.sort_by(|a, b| b.ms_per_run.total_cmp(&a.ms_per_run).then(a.op.cmp(&b.op)));
        Ok(ops)
    }

    /// The images as the graph's input: normalised straight into one tensor (no intermediate copy).
    fn input_tensor(&self, images: &[RgbImage]) -> anyhow::Result<Tensor> {
        let size = self.contract.input.size as usize;
        let n = images.len();
        let plane = size * size;
        let mut tensor = Tensor::zero::<f32>(&[n, 3, size, size])?;
        {
            let mut view = tensor.try_as_plain_ram_mut()?;
            let input = view.as_slice_mut::<f32>()?;
            for (b, img) in images.iter().enumerate() {
                let base = b * 3 * plane;
                let (r, rest) = input[base..base + 3 * plane].split_at_mut(plane);
                let (g, bl) = rest.split_at_mut(plane);
                for (p, px) in img.as_raw().chunks_exact(3).enumerate() {
                    r[p] = self.lut[0][px[0] as usize];
                    g[p] = self.lut[1][px[1] as usize];
                    bl[p] = self.lut[2][px[2] as usize];
                }
            }
        }
        Ok(tensor)
    }
}

/// Time spent in one kind of operator of the optimised graph, per embedding.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct OpTime {
    /// The operator's name in the optimised plan (e.g. `Pointwise`, `OptMatMul`, `PaddedDepthWise`).
    pub op: String,
    /// Nodes of this kind in the plan.
    pub nodes: usize,
    /// Milliseconds per embedding, summed over those nodes.
    pub ms_per_run: f64,
    /// The inference threads these nodes ran with: 1 when the run was single-threaded, else the size of
    /// the pool whose thread ran them (as an embedding's run does, `--threads`).
    pub threads: usize,
}

/// `(v / 255 − mean[c]) / std[c]` in f32, the same operations as the export step's `normalise_pixels`.
fn lut(mean: &[f32; 3], std: &[f32; 3]) -> [[f32; 256]; 3] {
    let mut lut = [[0f32; 256]; 3];
    for (c, table) in lut.iter_mut().enumerate() {
        for (v, x) in table.iter_mut().enumerate() {
            *x = (v as f32 / 255.0 - mean[c]) / std[c];
        }
    }
    lut
}

/// Checks the typed graph's input and output facts against the contract. Returns the batch symbol, or
/// `None` when the batch axis is fixed to one.
fn check_graph(
    typed: &TypedModel,
    contract: &Contract,
) -> Result<Option<tract_onnx::prelude::Symbol>, String> {
    let s = contract.input.size as i64;
    let d = contract.embedding.dim as i64;
    let input = typed.input_fact(0).map_err(|e| format!("{e:#}"))?;
    let output = typed.output_fact(0).map_err(|e| format!("{e:#}"))?;
    let in_dims = input.shape.dims();
    let out_dims = output.shape.dims();
    let show = |dims: &[TDim]| {
        format!(
            "[{}]",
            dims.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    if input.datum_type != DatumType::F32 {
        return Err(format!(
            "input {:?} is {:?}, not float32",
            contract.input.name, input.datum_type
        ));
    }
    let expected_tail = [TDim::Val(3), TDim::Val(s), TDim::Val(s)];
    if in_dims.len() != 4 || in_dims[1..] != expected_tail {
        return Err(format!(
            "input {:?} has shape {}, the contract says [batch, 3, {s}, {s}]",
            contract.input.name,
            show(in_dims)
        ));
    }
    if output.datum_type != DatumType::F32 {
        return Err(format!(
            "output {:?} is {:?}, not float32",
            contract.embedding.name, output.datum_type
        ));
    }
    if out_dims.len() != 2 || out_dims[1] != TDim::Val(d) {
        return Err(format!(
            "output {:?} has shape {}, the contract says [batch, {d}]",
            contract.embedding.name,
            show(out_dims)
        ));
    }
    if out_dims[0] != in_dims[0] {
        return Err(format!(
            "output batch axis {} is not the input's ({})",
            out_dims[0], in_dims[0]
        ));
    }
    match &in_dims[0] {
        TDim::Sym(sym) => Ok(Some(sym.clone())),
        TDim::Val(1) => Ok(None),
        other => Err(format!(
            "input batch axis is {other}: it must be symbolic (or 1)"
        )),
    }
}

/// Fixes the batch axis to `batch` and optimises: tract runs fixed shapes 2–3× faster than symbolic ones.
/// Between tract's decluttering and its code generation, three of tract's operators are swapped for
/// VisualByte's ([`super::ops::swap_in`]; set `VISUALBYTE_TRACT_OPS=1` to keep tract's own, e.g. to
/// compare them with `visualbyte bench --ops`).
fn plan(
    typed: &TypedModel,
    symbol: Option<&tract_onnx::prelude::Symbol>,
    batch: usize,
) -> anyhow::Result<Arc<TypedRunnableModel>> {
    let model = match symbol {
        Some(sym) => {
            let mut subs = HashMap::new();
            subs.insert(sym.clone(), TDim::Val(batch as i64));
            typed.set_symbols(&subs)?
        }
        None => typed.clone(),
    };
    let t = Instant::now();
    let mut model = model.into_decluttered()?;
    log::debug!("model load (batch {batch}): declutter {}", ms(t));
    if std::env::var_os("VISUALBYTE_TRACT_OPS").is_none_or(|v| v != "1") {
        let t = Instant::now();
        let swapped = super::ops::swap_in(&mut model)?;
        log::debug!("model load (batch {batch}): {swapped} {}", ms(t));
    }
    let t = Instant::now();
    model.optimize()?;
    log::debug!("model load (batch {batch}): optimise {}", ms(t));
    let t = Instant::now();
    let plan = model.into_runnable();
    log::debug!("model load (batch {batch}): runnable plan {}", ms(t));
    plan
}

/// "(12.3 ms)": the time since `t`, for the load-stage log lines.
fn ms(t: Instant) -> String {
    format!("({:.1} ms)", t.elapsed().as_secs_f64() * 1e3)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embed::contract::read_contract;

    #[test]
    fn the_lookup_table_normalises_like_the_export_step() {
        let lut = lut(&[0.485, 0.456, 0.406], &[0.229, 0.224, 0.225]);
        assert_eq!(lut[0][0], (0.0 - 0.485f32) / 0.229);
        assert_eq!(lut[2][255], (1.0 - 0.406f32) / 0.225);
        assert!((lut[1][128] - (128.0 / 255.0 - 0.456) / 0.224).abs() < 1e-6);
    }

    #[test]
    fn a_missing_or_non_onnx_file_is_a_read_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.onnx");
        let e = read_contract(&missing).unwrap_err();
        assert!(matches!(e, ModelError::Read { .. }), "{e}");
        assert!(e.to_string().contains("nope.onnx"), "{e}");
        let junk = dir.path().join("junk.onnx");
        std::fs::write(&junk, b"\xff\xff\xff\xff not protobuf").unwrap();
        let e = Embedder::load(&junk).unwrap_err();
        assert!(e.to_string().contains("not an ONNX model"), "{e}");
        let e = read_contract(&junk).unwrap_err();
        assert!(matches!(e, ModelError::Read { .. }), "{e}");
        assert!(e.to_string().contains("not an ONNX model"), "{e}");
    }
}
