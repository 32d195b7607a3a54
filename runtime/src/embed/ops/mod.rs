//! The operators VisualByte swaps into tract's plan of the model ([`swap_in`]): depthwise
//! convolutions ([`depthwise`]), exact GELUs ([`gelu`]) and 1×1 convolutions ([`pointwise`]), and the
//! `plan_op!` macro that gives each its tract `Op` and `EvalOp` impls.
use tract_onnx::tract_core::internal::{TractResult, TypedModel};

/// The tract `Op` and `EvalOp` impls of the operators VisualByte swaps into tract's plan (`depthwise`,
/// `pointwise`, `gelu`): named after the type, described by `$ty::describe`, checked with rounding
/// tolerance (they sum in another order than tract), evaluated statelessly by `$ty::run`.
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

pub mod depthwise;
pub mod gelu;
pub mod pointwise;

/// How many nodes [`swap_in`] replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Swapped {
    /// Depthwise convolutions, now [`PaddedDepthWise`](depthwise::PaddedDepthWise).
    pub depthwise: usize,
    /// Exact GELUs, now [`FastGelu`](gelu::FastGelu).
    pub gelu: usize,
    /// 1×1 convolutions, now [`Pointwise`](pointwise::Pointwise).
    pub pointwise: usize,
    /// Of those, how many took over the GELU that followed them.
    pub fused_gelu: usize,
}

impl std::fmt::Display for Swapped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} depthwise convolutions as PaddedDepthWise, {} GELUs as FastGelu, {} 1×1 convolutions \
             as Pointwise ({} with their GELU fused)",
            self.depthwise, self.gelu, self.pointwise, self.fused_gelu
        )
    }
}

/// Swaps three of tract's operators in a decluttered `model` for VisualByte's, in this order:
/// depthwise convolutions for [`PaddedDepthWise`](depthwise::PaddedDepthWise), exact GELUs for
/// [`FastGelu`](gelu::FastGelu), and 1×1 convolutions for [`Pointwise`](pointwise::Pointwise), which
/// also takes over a GELU that follows one. Run it before `optimize`.
pub fn swap_in(model: &mut TypedModel) -> TractResult<Swapped> {
    let depthwise = depthwise::replace_depthwise(model)?;
    let gelu = gelu::replace_gelu(model)?;
    let (pointwise, fused_gelu) = pointwise::replace_pointwise(model)?;
    Ok(Swapped {
        depthwise,
        gelu,
        pointwise,
        fused_gelu,
    })
}
