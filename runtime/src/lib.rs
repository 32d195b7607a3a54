//! VisualByte: ask a robot's image memory by voice, text or picture.
//!
//! A query travels through one module per stage:
//! `render` (audio, text or picture → an `S×S` RGB image) → `model` (one ConvNeXt → an embedding) →
//! `index` (cosine top-k over the image memory) → `query` (the answer, with "not in memory").
//!
//! The `onnx` feature (on by default) builds the stages that run the model with tract: `model`'s
//! `Embedder`, `query`, `demo`, `parallel` and the operators it swaps into tract's plan
//! (`depthwise`, `pointwise`, `gelu`). Without it the crate is the parsers and renderers alone
//! (`contract`, `index`, `render`, `board`, `source`, …), which is what the fuzz targets build.

/// The tract `Op` and `EvalOp` impls of the operators VisualByte swaps into tract's plan (`depthwise`,
/// `pointwise`, `gelu`): named after the type, described by `$ty::describe`, checked with rounding
/// tolerance (they sum in another order than tract), evaluated statelessly by `$ty::run`.
#[cfg(feature = "onnx")]
macro_rules! plan_op {
    ($ty:ident) => {
        impl Op for $ty {
            fn name(&self) -> StaticName {
                stringify!($ty).into()
            }

            fn info(&self) -> TractResult<Vec<String>> {
                Ok(self.describe())
            }

            fn validation(&self) -> Validation {
                Validation::Rounding
            }

            tract_onnx::tract_core::op_as_typed_op!();
        }

        impl EvalOp for $ty {
            tract_onnx::tract_core::op_out_of_plan!();

            fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
                self.run(inputs)
            }
        }
    };
}

#[cfg(feature = "onnx")]
pub mod answer;
pub mod bench;
pub mod board;
pub mod capture;
pub mod contract;
#[cfg(feature = "onnx")]
pub mod depthwise;
pub mod endpoint;
#[cfg(feature = "onnx")]
pub mod gelu;
pub mod index;
#[cfg(feature = "onnx")]
pub mod listen;
#[cfg(feature = "onnx")]
pub mod model;
#[cfg(feature = "onnx")]
pub mod parallel;
#[cfg(feature = "onnx")]
pub mod pointwise;
pub mod render;
