//! A faster 1×1 ("pointwise") convolution for tract's plan of the model.
//!
//! ConvNeXt's pointwise convolutions (each block's 4× expansion and projection) are ~90 % of its
//! arithmetic, and tract ran them at ~40 GFLOP/s on one core here: it packs the activations for every
//! product (`OptMatMulPack`), and at 96 px input the products are small (576 down to 9 points).
//! [`replace_pointwise`] swaps those convolutions (f32, NCHW, 1×1 kernel, stride 1, no padding, one
//! group, a constant kernel and bias, output channels a multiple of 16) for [`Pointwise`]: the weights are
//! packed once, at load, in panels of 16 output channels; each 16-channel × 6-point tile of the output
//! stays in registers through the whole input-channel sum, reading the activations where they lie (no
//! packing per call). AVX-512 (16 channels × 12 points per tile), else AVX2 + FMA (16 × 6), are chosen
//! at run time on x86_64, NEON on aarch64, plain Rust elsewhere.
//! When the convolution's only consumer is a GELU, the GELU runs on each tile of 16 channels while it is
//! still in cache (the same [`gelu_in_place`](super::gelu::gelu_in_place) as
//! [`FastGelu`](super::gelu::FastGelu)), and the GELU node goes.
//!
//! Any other convolution is left to tract.
//!
//! This file holds the operator and the graph rewrite; the weights are packed in `pack`, the tiles
//! driven in `tile`, and the kernels are per instruction set (`generic`, `x86`, `neon`).
use tract_onnx::tract_core::as_op;
use tract_onnx::tract_core::axes::AxesMapping;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::binary::{BinMiniOp, TypedBinOp};
use tract_onnx::tract_core::ops::einsum::EinSum;
use tract_onnx::tract_core::ops::math::{Add, Mul};

mod generic;
#[cfg(target_arch = "aarch64")]
mod neon;
mod pack;
mod tile;
/// The x86_64 kernels; [`x86::transpose_16x16`] also serves the depthwise convolution.
#[cfg(target_arch = "x86_64")]
pub(super) mod x86;

pub use pack::PackedWeights;
use tile::pointwise_panels;

/// Output channels per weight panel (and per tile).
pub const MR: usize = 16;
/// Points per tile of the AVX2, NEON and plain kernels.
const NR: usize = 6;

/// 1×1 convolution over `[N, Cin, H, W]` f32 with its weights packed at load, optionally followed by
/// GELU. One input: the data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pointwise {
    /// Data `[batch, cin, points]` → output `[batch, cout, points]`, in memory.
    batch: usize,
    cin: usize,
    cout: usize,
    points: usize,
    /// The shape of the output, as the graph had it.
    out_shape: Vec<usize>,
    gelu: bool,
    weights: PackedWeights,
}

plan_op!(Pointwise);

impl Pointwise {
    fn describe(&self) -> Vec<String> {
        vec![format!(
            "{}→{} channels over {} points{}",
            self.cin,
            self.cout,
            self.points,
            if self.gelu { ", then GELU" } else { "" }
        )]
    }

    fn run(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let data = args_1!(inputs);
        let hw = self.points;
        anyhow::ensure!(
            data.len() == self.batch * self.cin * hw,
            "data shape {:?}",
            data.shape()
        );
        let data = data.try_as_plain_ram()?;
        let data = data.as_slice::<f32>()?;
        let mut output = Tensor::zero::<f32>(&self.out_shape)?;
        {
            let mut out = output.try_as_plain_ram_mut()?;
            let out = out.as_slice_mut::<f32>()?;
            for (item, out) in out.chunks_exact_mut(self.cout * hw).enumerate() {
                let x = &data[item * self.cin * hw..(item + 1) * self.cin * hw];
                // Whole 16-channel panels per task when the plan has several threads (`--threads`);
                // every panel is computed the same way whatever the split.
                tract_onnx::tract_core::tract_linalg::multithread::par_chunks_mut(
                    out,
                    MR * hw,
                    self.cin * self.cout * hw,
                    |first, chunk| {
                        pointwise_panels(&self.weights, first, x, chunk, hw, self.gelu);
                        Ok(())
                    },
                )?;
            }
        }
        Ok(tvec!(output.into_tvalue()))
    }
}

impl TypedOp for Pointwise {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        anyhow::ensure!(inputs.len() == 1, "Pointwise takes the data alone");
        Ok(tvec!(f32::fact(&self.out_shape)))
    }

    fn cost(&self, _inputs: &[&TypedFact]) -> TractResult<TVec<(Cost, TDim)>> {
        let fma = self.batch * self.cin * self.cout * self.points;
        Ok(tvec!((Cost::FMA(f32::datum_type()), fma.to_dim())))
    }

    as_op!();
}

/// Replaces every 1×1 convolution of a decluttered `model` that [`Pointwise`] computes, with what follows
/// it when it alone reads the result: a per-channel bias `Add`, a per-channel scale `Mul` (ConvNeXt's
/// layer scale) and a GELU. Returns how many convolutions were replaced and
/// how many GELUs went with them. Run it after [`replace_gelu`](super::gelu::replace_gelu), before
/// `optimize`.
///
/// tract's declutter turns a 1×1 convolution into an `EinSum` of the data `[.., Cin, ..spatial]` and a
/// constant `[Cout, Cin]` kernel, with the bias as a separate `Add`; that `EinSum` is what is matched,
/// whatever its axis labels, when the data and output lie in memory as `[B, Cin, P]` and `[B, Cout, P]`.
pub fn replace_pointwise(model: &mut TypedModel) -> TractResult<(usize, usize)> {
    let (mut replaced, mut fused) = (0, 0);
    for id in model.eval_order()? {
        let node = model.node(id);
        let Some(einsum) = node.op_as::<EinSum>() else {
            continue;
        };
        if node.inputs.len() != 2 || einsum.q_params.is_some() {
            continue;
        }
        let x = model.outlet_fact(node.inputs[0])?;
        let k = model.outlet_fact(node.inputs[1])?;
        let y = model.outlet_fact(OutletId::new(id, 0))?;
        let (Some(xs), Some(ys), Some(kernel)) = (
            x.shape.as_concrete(),
            y.shape.as_concrete(),
            k.konst.clone(),
        ) else {
            continue;
        };
        if x.datum_type != f32::datum_type()
            || kernel.datum_type() != f32::datum_type()
            || kernel.rank() != 2
        {
            continue;
        }
        let (cout, cin) = (kernel.shape()[0], kernel.shape()[1]);
        if cout % MR != 0 || cin == 0 {
            continue;
        }
        let Some(layout) = pointwise_layout(&einsum.axes, xs, ys, cin, cout) else {
            continue;
        };
        // Channels last (`[B, Cin, 1]`, a `Linear` over NHWC data) would be B one-point products that
        // each read every weight: left to tract, whose kernels take that layout as it is.
        if layout.points == 1 && layout.batch > 1 {
            continue;
        }
        let weights = kernel.try_as_plain_ram()?.as_slice::<f32>()?.to_vec();
        let mut bias = vec![0f32; cout];
        let mut scale = None;
        let mut last = id;
        let outputs = model.output_outlets()?.to_vec();
        // The chain of nodes that alone read the previous one's output.
        let next = |last: usize| -> Option<&TypedNode> {
            match &*model.node(last).outputs[0].successors {
                [only] if !outputs.contains(&OutletId::new(last, 0)) => Some(model.node(only.node)),
                _ => None,
            }
        };
        let mut obliterate = vec![id];
        if let Some(n) = next(last) {
            if let Some(b) =
                per_channel_operand::<Add>(model, n, last, ys, layout.channel_axis, cout)?
            {
                bias = b;
                last = n.id;
                obliterate.push(n.id);
            }
        }
        if let Some(n) = next(last) {
            if let Some(g) =
                per_channel_operand::<Mul>(model, n, last, ys, layout.channel_axis, cout)?
            {
                scale = Some(g);
                last = n.id;
                obliterate.push(n.id);
            }
        }
        let mut gelu = false;
        if let Some(n) = next(last) {
            if n.op_is::<super::gelu::FastGelu>() {
                gelu = true;
                last = n.id;
                obliterate.push(n.id);
            }
        }
        let op = Pointwise {
            batch: layout.batch,
            cin,
            cout,
            points: layout.points,
            out_shape: ys.to_vec(),
            gelu,
            weights: PackedWeights::new(&weights, &bias, scale.as_deref(), cout, cin),
        };
        let mut patch = TypedModelPatch::default();
        let tap = patch.tap_model(model, node.inputs[0])?;
        let wire = patch.wire_node(&node.name, op, &[tap])?[0];
        patch.shunt_outside(model, OutletId::new(last, 0), wire)?;
        for n in obliterate {
            patch.obliterate(n)?;
        }
        patch.apply(model)?;
        replaced += 1;
        fused += usize::from(gelu);
    }
    Ok((replaced, fused))
}

/// How a pointwise `EinSum`'s data and output lie in memory.
#[derive(Debug, PartialEq, Eq)]
struct Layout {
    /// Product of the axes before the channel axis (the images of a batch).
    batch: usize,
    /// Product of the axes after it (the points of each image).
    points: usize,
    /// Position of the output channel axis in the output.
    channel_axis: usize,
}

/// The layout when `axes` maps data `xs` (`[.., Cin, ..]`) and a `[Cout, Cin]` kernel to output `ys`
/// (`[.., Cout, ..]`) as a 1×1 convolution does: one axis summed (data and kernel axis 1), one axis
/// from the kernel's axis 0 into the output, every other axis passed through in the same order
/// (axes of size 1 may come and go).
fn pointwise_layout(
    axes: &AxesMapping,
    xs: &[usize],
    ys: &[usize],
    cin: usize,
    cout: usize,
) -> Option<Layout> {
    if axes.input_count() != 2 || axes.output_count() != 1 {
        return None;
    }
    let (mut summed, mut channel) = (None, None);
    for a in axes.iter_all_axes() {
        let (i0, i1, o) = (&a.inputs[0], &a.inputs[1], &a.outputs[0]);
        match (i0.as_slice(), i1.as_slice(), o.as_slice()) {
            ([p], [1], []) if summed.is_none() && xs[*p] == cin => summed = Some((a.repr, *p)),
            ([], [0], [q]) if channel.is_none() && ys[*q] == cout => channel = Some((a.repr, *q)),
            (i0, [], o) if i0.len() <= 1 && o.len() <= 1 => {
                // Passed through, or of size 1 on the side where it is missing.
                let size = |s: &[usize], p: &[usize]| p.first().map(|&p| s[p]);
                match (size(xs, i0), size(ys, o)) {
                    (Some(a), Some(b)) if a == b => {}
                    (Some(1), None) | (None, Some(1)) | (None, None) => {}
                    _ => return None,
                }
            }
            _ => return None,
        }
    }
    let ((i, ip), (o, op)) = (summed?, channel?);
    // The non-unit axes of the data, with the summed one marked, must read as those of the output
    // with the channel axis marked.
    let labels = |io: InOut, shape: &[usize], mark: char| -> Option<Vec<char>> {
        let mut v = Vec::new();
        for (pos, &d) in shape.iter().enumerate() {
            let a = axes.iter_all_axes().find(|a| {
                let p = match io {
                    InOut::In(s) => &a.inputs[s],
                    InOut::Out(s) => &a.outputs[s],
                };
                p.contains(&pos)
            })?;
            if a.repr == mark {
                v.push('\0');
            } else if d != 1 {
                v.push(a.repr);
            }
        }
        Some(v)
    };
    if labels(InOut::In(0), xs, i)? != labels(InOut::Out(0), ys, o)? {
        return None;
    }
    Some(Layout {
        batch: xs[..ip].iter().product(),
        points: xs[ip + 1..].iter().product(),
        channel_axis: op,
    })
}

/// The `Cout` values of `node`'s constant operand when `node` is a binary `O` (`Add`, `Mul`) of the
/// output of `from` (shape `ys`) and a constant that varies along the channel axis alone.
fn per_channel_operand<O: BinMiniOp>(
    model: &TypedModel,
    node: &TypedNode,
    from: usize,
    ys: &[usize],
    channel_axis: usize,
    cout: usize,
) -> TractResult<Option<Vec<f32>>> {
    let Some(bin) = node.op_as::<TypedBinOp>() else {
        return Ok(None);
    };
    if !bin.0.is::<O>() || node.inputs.len() != 2 {
        return Ok(None);
    }
    let other = match (node.inputs[0].node == from, node.inputs[1].node == from) {
        (true, false) => node.inputs[1],
        (false, true) => node.inputs[0],
        _ => return Ok(None),
    };
    let fact = model.outlet_fact(other)?;
    let Some(c) = &fact.konst else {
        return Ok(None);
    };
    let out = model.outlet_fact(OutletId::new(node.id, 0))?;
    if c.datum_type() != f32::datum_type()
        || out.shape.as_concrete() != Some(ys)
        || c.rank() != ys.len()
        || c.shape()
            .iter()
            .enumerate()
            .any(|(ax, &d)| d != 1 && !(ax == channel_axis && d == cout))
    {
        return Ok(None);
    }
    let v = c.try_as_plain_ram()?.as_slice::<f32>()?.to_vec();
    Ok(Some(if v.len() == 1 { vec![v[0]; cout] } else { v }))
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn pseudo(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5
            })
            .collect()
    }

    use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat, PaddingSpec, PoolSpec};
    use tract_onnx::tract_core::ops::nn::DataFormat;

    fn conv(cin: usize, cout: usize, k: usize, stride: usize, group: usize) -> Conv {
        Conv {
            pool_spec: PoolSpec {
                data_format: DataFormat::NCHW,
                kernel_shape: tvec![k, k],
                padding: PaddingSpec::Valid,
                dilations: None,
                strides: Some(tvec![stride, stride]),
                input_channels: cin,
                output_channels: cout,
            },
            kernel_fmt: KernelFormat::OIHW,
            group,
            q_params: None,
        }
    }

    /// Wires a convolution with pseudo-random constant kernel and bias.
    fn wire_conv(
        m: &mut TypedModel,
        name: &str,
        input: OutletId,
        (cin, cout, k, stride, group): (usize, usize, usize, usize, usize),
    ) -> OutletId {
        let kernel = tensor1(&pseudo(cout * cin / group * k * k, (cout + k) as u64))
            .into_shape(&[cout, cin / group, k, k])
            .unwrap();
        let bias = tensor1(&pseudo(cout, cin as u64));
        let kernel = m.add_const(format!("{name}.k"), kernel).unwrap();
        let bias = m.add_const(format!("{name}.b"), bias).unwrap();
        m.wire_node(
            name,
            conv(cin, cout, k, stride, group),
            &[input, kernel, bias],
        )
        .unwrap()[0]
    }

    fn per_channel(m: &mut TypedModel, name: &str, c: usize, seed: u64) -> OutletId {
        let v: Vec<f32> = pseudo(c, seed).iter().map(|v| 1.0 + v).collect();
        m.add_const(name, tensor1(&v).into_shape(&[1, c, 1, 1]).unwrap())
            .unwrap()
    }

    /// x → 1×1 conv (8→16) → GELU → 1×1 conv (16→32) → ·scale → output 0, and from the GELU a 1×1 conv
    /// (16→8, not a multiple of 16), a 2×2 stride-2 conv and a grouped 1×1 conv: outputs 1–3, tract's.
    fn small_model(batch: usize) -> TypedModel {
        let mut m = TypedModel::default();
        let x = m.add_source("x", f32::fact([batch, 8, 4, 6])).unwrap();
        let a = wire_conv(&mut m, "a", x, (8, 16, 1, 1, 1));
        let g = m
            .wire_node("gelu", crate::embed::ops::gelu::FastGelu, &[a])
            .unwrap()[0];
        let b = wire_conv(&mut m, "b", g, (16, 32, 1, 1, 1));
        let scale = per_channel(&mut m, "scale", 32, 5);
        let b = m
            .wire_node(
                "b.scale",
                tract_onnx::tract_core::ops::math::mul(),
                &[b, scale],
            )
            .unwrap()[0];
        let c = wire_conv(&mut m, "c", g, (16, 8, 1, 1, 1));
        let d = wire_conv(&mut m, "d", g, (16, 16, 2, 2, 1));
        let e = wire_conv(&mut m, "e", g, (16, 16, 1, 1, 2));
        m.select_output_outlets(&[b, c, d, e]).unwrap();
        m
    }

    fn outputs(m: TypedModel, x: &Tensor) -> Vec<Vec<f32>> {
        let plan = m.into_runnable().unwrap();
        plan.run(tvec!(x.clone().into_tvalue()))
            .unwrap()
            .iter()
            .map(|t| {
                t.try_as_plain_ram()
                    .unwrap()
                    .as_slice::<f32>()
                    .unwrap()
                    .to_vec()
            })
            .collect()
    }

    fn kinds(m: &TypedModel) -> Vec<String> {
        m.eval_order()
            .unwrap()
            .into_iter()
            .map(|id| m.node(id).op.name().to_string())
            .collect()
    }

    fn max_abs(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max)
    }

    #[test]
    fn replacing_the_1x1_convolutions_of_a_decluttered_model_fuses_bias_scale_and_gelu_and_keeps_its_outputs(
    ) {
        // One image (the query plan, where tract squeezes the batch axis) and a batch (index build).
        for batch in [1, 3] {
            let model = small_model(batch);
            let x = tensor1(&pseudo(batch * 8 * 24, 1))
                .into_shape(&[batch, 8, 4, 6])
                .unwrap();
            let want = outputs(model.clone(), &x);
            let mut ours = model.into_decluttered().unwrap();
            let before = kinds(&ours);
            assert_eq!(
                before.iter().filter(|k| *k == "EinSum").count(),
                3,
                "{before:?}"
            );
            assert_eq!(
                replace_pointwise(&mut ours).unwrap(),
                (2, 1),
                "batch {batch}"
            );
            let after = kinds(&ours);
            assert_eq!(
                after.iter().filter(|k| *k == "Pointwise").count(),
                2,
                "{after:?}"
            );
            assert!(!after.iter().any(|k| k == "FastGelu"), "{after:?}");
            // The 16→8 product stays tract's; so do the strided and the grouped convolution.
            assert_eq!(
                after.iter().filter(|k| *k == "EinSum").count(),
                1,
                "{after:?}"
            );
            let got = outputs(ours.clone(), &x);
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    max_abs(g, w) < 1e-5,
                    "batch {batch} output {i}: {}",
                    max_abs(g, w)
                );
            }
            // And after tract's own optimisation, as the runtime runs it.
            ours.optimize().unwrap();
            for (g, w) in outputs(ours, &x).iter().zip(&want) {
                assert!(
                    max_abs(g, w) < 1e-5,
                    "batch {batch} optimised: {}",
                    max_abs(g, w)
                );
            }
        }
    }

    #[test]
    fn a_1x1_convolution_whose_result_is_also_a_model_output_keeps_its_gelu_separate() {
        let mut m = TypedModel::default();
        let x = m.add_source("x", f32::fact([1, 4, 2, 2])).unwrap();
        let a = wire_conv(&mut m, "a", x, (4, 16, 1, 1, 1));
        let g = m
            .wire_node("gelu", crate::embed::ops::gelu::FastGelu, &[a])
            .unwrap()[0];
        m.select_output_outlets(&[g, a]).unwrap();
        let xv = tensor1(&pseudo(16, 2)).into_shape(&[1, 4, 2, 2]).unwrap();
        let want = outputs(m.clone(), &xv);
        let mut ours = m.into_decluttered().unwrap();
        let (replaced, fused) = replace_pointwise(&mut ours).unwrap();
        assert_eq!(fused, 0);
        assert!(kinds(&ours).iter().any(|k| k == "FastGelu"));
        let got = outputs(ours, &xv);
        for (g, w) in got.iter().zip(&want) {
            assert!(max_abs(g, w) < 1e-5, "replaced {replaced}");
        }
    }

    fn layout(spec: &str, xs: &[usize], ys: &[usize], cin: usize, cout: usize) -> Option<Layout> {
        let axes: AxesMapping = spec.parse().unwrap();
        pointwise_layout(&axes, xs, ys, cin, cout)
    }

    #[test]
    fn the_pointwise_layout_is_read_from_the_einsum_axes_whatever_their_labels() {
        let want = |batch, points, channel_axis| {
            Some(Layout {
                batch,
                points,
                channel_axis,
            })
        };
        // tract's forms for a 1×1 convolution: batch kept, squeezed on either side, or relabelled.
        assert_eq!(
            layout("NIHW,OI->NOHW", &[2, 8, 3, 5], &[2, 16, 3, 5], 8, 16),
            want(2, 15, 1)
        );
        assert_eq!(
            layout("NIHW,OI->OHW", &[1, 8, 3, 5], &[16, 3, 5], 8, 16),
            want(1, 15, 0)
        );
        assert_eq!(
            layout("IHW,OI->NOHW", &[8, 3, 5], &[1, 16, 3, 5], 8, 16),
            want(1, 15, 1)
        );
        assert_eq!(
            layout("abcd,eb->aecd", &[2, 8, 3, 5], &[2, 16, 3, 5], 8, 16),
            want(2, 15, 1)
        );
        // A Linear over one vector, and over channels-last data (points 1).
        assert_eq!(layout("k,nk->mn", &[8], &[1, 16], 8, 16), want(1, 1, 1));
        assert_eq!(
            layout("nhwi,oi->nhwo", &[1, 3, 5, 8], &[1, 3, 5, 16], 8, 16),
            want(15, 1, 3)
        );
        // Not a 1×1 convolution: a batch of 2 dropped, spatial axes swapped, the kernel transposed,
        // a summed axis of the wrong size.
        assert_eq!(
            layout("NIHW,OI->OHW", &[2, 8, 3, 5], &[16, 3, 5], 8, 16),
            None
        );
        assert_eq!(
            layout("NIHW,OI->NOWH", &[1, 8, 3, 5], &[1, 16, 5, 3], 8, 16),
            None
        );
        assert_eq!(
            layout("NIHW,IO->NOHW", &[1, 8, 3, 5], &[1, 16, 3, 5], 8, 16),
            None
        );
        assert_eq!(
            layout("NIHW,OI->NOHW", &[1, 8, 3, 5], &[1, 16, 3, 5], 4, 16),
            None
        );
    }

    #[test]
    fn a_linear_over_channels_last_data_is_left_to_tract() {
        let mut m = TypedModel::default();
        let x = m.add_source("x", f32::fact([1, 3, 5, 8])).unwrap();
        let k = m
            .add_const(
                "k",
                tensor1(&pseudo(16 * 8, 3)).into_shape(&[16, 8]).unwrap(),
            )
            .unwrap();
        let op = EinSum {
            axes: "nhwi,oi->nhwo".parse().unwrap(),
            operating_dt: f32::datum_type(),
            q_params: None,
        };
        let y = m.wire_node("linear", op, &[x, k]).unwrap();
        m.select_output_outlets(&y).unwrap();
        assert_eq!(replace_pointwise(&mut m).unwrap(), (0, 0));
    }
}
