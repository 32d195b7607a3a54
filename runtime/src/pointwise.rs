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
//! still in cache (the same [`gelu_in_place`](crate::gelu::gelu_in_place) as
//! [`FastGelu`](crate::gelu::FastGelu)), and the GELU node goes.
//!
//! Any other convolution is left to tract.
use tract_onnx::tract_core::as_op;
use tract_onnx::tract_core::axes::AxesMapping;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::binary::{BinMiniOp, TypedBinOp};
use tract_onnx::tract_core::ops::einsum::EinSum;
use tract_onnx::tract_core::ops::math::{Add, Mul};

/// Output channels per weight panel (and per tile).
pub const MR: usize = 16;
/// Points per tile of the AVX2, NEON and plain kernels.
const NR: usize = 6;
/// Points per tile of the AVX-512 kernels (16 channels fill one register: 12 accumulators). 12 divides
/// ConvNeXt's 96 px planes of 576, 144 and 36 points; the 3×3 stage is one tile of 9.
#[cfg(target_arch = "x86_64")]
const NR_AVX512: usize = 12;

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

/// `[Cout, Cin]` weights as `[Cout / MR][Cin][MR]` panels, `Cout` biases and, optionally, `Cout` scales
/// applied after the bias (`(W·x + b)·g`).
#[derive(Debug, Clone)]
pub struct PackedWeights {
    cin: usize,
    cout: usize,
    panels: Panels,
    bias: Arc<Vec<f32>>,
    scale: Option<Arc<Vec<f32>>>,
}

/// The panels' storage. Weights that are all exactly half-precision numbers (a model exported with
/// f16 weights, expanded to f32 by the graph) are kept as f16 where the CPU converts them in hardware
/// (F16C): the same values, half the bytes to stream from memory per product.
#[derive(Debug, Clone)]
enum Panels {
    F32(Arc<Vec<f32>>),
    F16(Arc<Vec<half::f16>>),
}

impl PackedWeights {
    /// Packs row-major `[cout][cin]` weights; `bias` and `scale` hold `cout` values or one for all.
    /// `cout` must be a multiple of [`MR`].
    pub fn new(
        weights: &[f32],
        bias: &[f32],
        scale: Option<&[f32]>,
        cout: usize,
        cin: usize,
    ) -> Self {
        Self::with_f16(weights, bias, scale, cout, cin, f16_tile().is_some())
    }

    fn with_f16(
        weights: &[f32],
        bias: &[f32],
        scale: Option<&[f32]>,
        cout: usize,
        cin: usize,
        f16_if_exact: bool,
    ) -> Self {
        assert_eq!(cout % MR, 0, "output channels must be a multiple of {MR}");
        assert_eq!(weights.len(), cout * cin);
        let per_channel = |v: &[f32]| {
            assert!(v.len() == cout || v.len() == 1);
            Arc::new(if v.len() == 1 {
                vec![v[0]; cout]
            } else {
                v.to_vec()
            })
        };
        let mut panels = vec![0.0; cout * cin];
        for (t, panel) in panels.chunks_exact_mut(cin * MR).enumerate() {
            for ci in 0..cin {
                for r in 0..MR {
                    panel[ci * MR + r] = weights[(t * MR + r) * cin + ci];
                }
            }
        }
        let exact = |w: &f32| half::f16::from_f32(*w).to_f32().to_bits() == w.to_bits();
        let panels = if f16_if_exact && panels.iter().all(exact) {
            Panels::F16(Arc::new(
                panels.iter().map(|&w| half::f16::from_f32(w)).collect(),
            ))
        } else {
            Panels::F32(Arc::new(panels))
        };
        Self {
            cin,
            cout,
            panels,
            bias: per_channel(bias),
            scale: scale.map(per_channel),
        }
    }

    /// Whether the panels are stored as f16.
    pub fn is_f16(&self) -> bool {
        matches!(self.panels, Panels::F16(_))
    }
}

/// Equal when they compute the same: same shape, bit-identical values.
impl PartialEq for PackedWeights {
    fn eq(&self, other: &Self) -> bool {
        fn same<T: Copy, B: PartialEq>(a: &[T], b: &[T], bits: impl Fn(T) -> B) -> bool {
            a.iter().map(|&x| bits(x)).eq(b.iter().map(|&x| bits(x)))
        }
        let panels = match (&self.panels, &other.panels) {
            (Panels::F32(a), Panels::F32(b)) => same(a, b, f32::to_bits),
            (Panels::F16(a), Panels::F16(b)) => same(a, b, half::f16::to_bits),
            _ => false,
        };
        let scale = match (&self.scale, &other.scale) {
            (Some(a), Some(b)) => same(a, b, f32::to_bits),
            (None, None) => true,
            _ => false,
        };
        self.cin == other.cin
            && self.cout == other.cout
            && panels
            && same(&self.bias, &other.bias, f32::to_bits)
            && scale
    }
}

impl Eq for PackedWeights {}

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
/// how many GELUs went with them. Run it after [`replace_gelu`](crate::gelu::replace_gelu), before
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
            if n.op_is::<crate::gelu::FastGelu>() {
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

/// What a tile adds after the sum: `out = (acc + bias[r])·scale[r]` (`scale` absent: no product).
#[derive(Clone, Copy)]
struct Epilogue<'a> {
    bias: &'a [f32],
    scale: Option<&'a [f32]>,
}

/// One tile: `out[r·stride + j] = epilogue(Σ_ci panel[ci·MR + r] · x[ci·hw + j])`, `r < MR`,
/// `j < cols` (`cols ≤` the kernel's [`Tile::cols`]). Callers guarantee `panel` holds `cin·MR` values,
/// `x` `(cin − 1)·hw + cols` and `out` `(MR − 1)·stride + cols`.
type TileFn<T> = unsafe fn(&[T], &[f32], usize, usize, usize, Epilogue, &mut [f32], usize);

/// A tile kernel and the most points it computes per call.
#[derive(Clone, Copy)]
struct Tile<T> {
    run: TileFn<T>,
    cols: usize,
}

impl<T: PanelValue> Tile<T> {
    fn plain() -> Self {
        Tile {
            run: tile_plain::<T>,
            cols: NR,
        }
    }
}

/// Output channels `first·MR ..` of one item: `out` holds whole `MR`-channel panels of `hw` points,
/// `x` the item's `[cin][hw]` data. GELU on each panel when `gelu`.
fn pointwise_panels(
    weights: &PackedWeights,
    first: usize,
    x: &[f32],
    out: &mut [f32],
    hw: usize,
    gelu: bool,
) {
    match &weights.panels {
        Panels::F32(p) => pointwise_panels_with(weights, p, first, x, out, hw, gelu, best_tile()),
        Panels::F16(p) => {
            let tile = f16_tile().unwrap_or_else(Tile::plain);
            pointwise_panels_with(weights, p, first, x, out, hw, gelu, tile)
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn pointwise_panels_with<T>(
    weights: &PackedWeights,
    panels: &[T],
    first: usize,
    x: &[f32],
    out: &mut [f32],
    hw: usize,
    gelu: bool,
    tile: Tile<T>,
) {
    let cin = weights.cin;
    assert_eq!(x.len(), cin * hw);
    assert_eq!(out.len() % (MR * hw), 0);
    assert!(first * MR + out.len() / hw <= weights.cout);
    assert_eq!(panels.len(), weights.cout * cin);
    for (i, out) in out.chunks_exact_mut(MR * hw).enumerate() {
        let t = first + i;
        let panel = &panels[t * cin * MR..(t + 1) * cin * MR];
        let epilogue = Epilogue {
            bias: &weights.bias[t * MR..(t + 1) * MR],
            scale: weights.scale.as_ref().map(|g| &g[t * MR..(t + 1) * MR]),
        };
        let mut p = 0;
        while p < hw {
            let cols = tile.cols.min(hw - p);
            // SAFETY: `panel` has cin·MR values; `x[p..]` has (cin − 1)·hw + cols; `out[p..]` has
            // (MR − 1)·hw + cols; `tile` suits this CPU (best_tile, f16_tile) or is the plain one.
            unsafe { (tile.run)(panel, &x[p..], hw, cin, cols, epilogue, &mut out[p..], hw) };
            p += cols;
        }
        if gelu {
            crate::gelu::gelu_in_place(out);
        }
    }
}

/// The f32 tile kernel for this CPU: AVX-512 on x86_64 when present, else AVX2 + FMA, NEON on
/// aarch64, plain Rust elsewhere.
fn best_tile() -> Tile<f32> {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        return Tile {
            run: tile_avx512,
            cols: NR_AVX512,
        };
    }
    #[cfg(target_arch = "x86_64")]
    if let Some(tile) = avx2_tile() {
        return tile;
    }
    #[cfg(target_arch = "aarch64")]
    {
        return Tile {
            run: tile_neon,
            cols: NR,
        };
    }
    #[allow(unreachable_code)]
    Tile::plain()
}

/// The AVX2 + FMA kernel where the CPU has them (also what [`best_tile`] falls back to without AVX-512).
#[cfg(target_arch = "x86_64")]
fn avx2_tile() -> Option<Tile<f32>> {
    (std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma"))
        .then_some(Tile {
            run: tile_avx2,
            cols: NR,
        })
}

/// The f16-panel tile kernel, where the CPU converts half precision in hardware: x86_64 with AVX-512
/// (`vcvtph2ps` on 16 lanes), else AVX2, FMA and F16C. Elsewhere panels stay f32.
fn f16_tile() -> Option<Tile<half::f16>> {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        return Some(Tile {
            run: tile_avx512_f16,
            cols: NR_AVX512,
        });
    }
    #[cfg(target_arch = "x86_64")]
    if let Some(tile) = avx2_f16_tile() {
        return Some(tile);
    }
    None
}

/// The AVX2 + FMA + F16C kernel for f16 panels where the CPU has them.
#[cfg(target_arch = "x86_64")]
fn avx2_f16_tile() -> Option<Tile<half::f16>> {
    (std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("fma")
        && std::arch::is_x86_feature_detected!("f16c"))
    .then_some(Tile {
        run: tile_avx2_f16,
        cols: NR,
    })
}

/// A panel element: f32, or f16 widened exactly.
trait PanelValue: Copy {
    fn value(self) -> f32;
}

impl PanelValue for f32 {
    #[inline(always)]
    fn value(self) -> f32 {
        self
    }
}

impl PanelValue for half::f16 {
    #[inline(always)]
    fn value(self) -> f32 {
        self.to_f32()
    }
}

/// Plain Rust (any target; also the reference the vector kernels are tested against).
#[allow(clippy::too_many_arguments)]
unsafe fn tile_plain<T: PanelValue>(
    panel: &[T],
    x: &[f32],
    hw: usize,
    cin: usize,
    cols: usize,
    epilogue: Epilogue,
    out: &mut [f32],
    stride: usize,
) {
    let mut acc = [[0f32; MR]; NR];
    for ci in 0..cin {
        let wv = &panel[ci * MR..(ci + 1) * MR];
        for (j, acc) in acc.iter_mut().enumerate().take(cols) {
            let xv = x[ci * hw + j];
            for (a, w) in acc.iter_mut().zip(wv) {
                *a = w.value().mul_add(xv, *a);
            }
        }
    }
    store(&acc, cols, epilogue, out, stride);
}

/// Writes `(acc[j][r] + bias[r])·scale[r]` to `out[r·stride + j]`.
#[inline(always)]
fn store(acc: &[[f32; MR]], cols: usize, e: Epilogue, out: &mut [f32], stride: usize) {
    for r in 0..MR {
        let row = &mut out[r * stride..r * stride + cols];
        let (b, g) = (e.bias[r], e.scale.map(|g| g[r]));
        for (j, o) in row.iter_mut().enumerate() {
            let v = acc[j][r] + b;
            *o = match g {
                Some(g) => v * g,
                None => v,
            };
        }
    }
}

/// One instantiation of `$kernel` per column count in `[..]`, so each keeps its accumulators in
/// registers.
macro_rules! by_cols {
    ([$($n:literal),+], $kernel:ident, $cols:ident, $args:tt) => {
        match $cols {
            $($n => $kernel::<$n> $args,)+
            _ => unreachable!("a tile of {} columns", $cols),
        }
    };
}

/// The [`TileFn`] of an x86_64 tile kernel: `$name` runs the instantiation of `$name_n` for the column
/// count, one per count in `[..]` (AVX2 and AVX-512 differ only in the counts).
macro_rules! x86_tile_entry {
    ($name:ident, $name_n:ident, $t:ty, [$($n:literal),+]) => {
        #[cfg(target_arch = "x86_64")]
        #[allow(clippy::too_many_arguments)]
        unsafe fn $name(
            panel: &[$t],
            x: &[f32],
            hw: usize,
            cin: usize,
            cols: usize,
            e: Epilogue,
            out: &mut [f32],
            stride: usize,
        ) {
            by_cols!([$($n),+], $name_n, cols, (panel, x, hw, cin, e, out, stride))
        }
    };
}

/// An AVX2 + FMA tile kernel for panels of `$t`: `$name` picks the instantiation of `$name_n` for the
/// column count; `|$p| $load` turns a pointer to 8 panel values into 8 f32 lanes.
macro_rules! avx2_tile {
    ($name:ident, $name_n:ident, $t:ty, $features:literal, |$p:ident| $load:expr) => {
        x86_tile_entry!($name, $name_n, $t, [6, 5, 4, 3, 2, 1]);

        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = $features)]
        unsafe fn $name_n<const N: usize>(
            panel: &[$t],
            x: &[f32],
            hw: usize,
            cin: usize,
            e: Epilogue,
            out: &mut [f32],
            stride: usize,
        ) {
            use std::arch::x86_64::*;
            debug_assert!(panel.len() >= cin * MR && x.len() >= (cin - 1) * hw + N);
            let mut lo = [_mm256_setzero_ps(); N];
            let mut hi = [_mm256_setzero_ps(); N];
            let (mut wp, mut xp) = (panel.as_ptr(), x.as_ptr());
            for _ in 0..cin {
                let w0 = {
                    let $p = wp;
                    $load
                };
                let w1 = {
                    let $p = wp.add(8);
                    $load
                };
                for j in 0..N {
                    let v = _mm256_broadcast_ss(&*xp.add(j));
                    lo[j] = _mm256_fmadd_ps(w0, v, lo[j]);
                    hi[j] = _mm256_fmadd_ps(w1, v, hi[j]);
                }
                wp = wp.add(MR);
                xp = xp.add(hw);
            }
            let mut acc = [[0f32; MR]; NR];
            for j in 0..N {
                _mm256_storeu_ps(acc[j].as_mut_ptr(), lo[j]);
                _mm256_storeu_ps(acc[j].as_mut_ptr().add(8), hi[j]);
            }
            store(&acc, N, e, out, stride);
        }
    };
}

/// An AVX-512 tile kernel for panels of `$t`: 16 channels × up to 12 points, one register per point.
/// `|$p| $load` turns a pointer to 16 panel values into 16 f32 lanes. The bias and scale are applied
/// in registers (the same two roundings as [`store`]); the 16 × N block is then written transposed.
macro_rules! avx512_tile {
    ($name:ident, $name_n:ident, $t:ty, |$p:ident| $load:expr) => {
        x86_tile_entry!($name, $name_n, $t, [12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1]);

        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx512f")]
        unsafe fn $name_n<const N: usize>(
            panel: &[$t],
            x: &[f32],
            hw: usize,
            cin: usize,
            e: Epilogue,
            out: &mut [f32],
            stride: usize,
        ) {
            use std::arch::x86_64::*;
            debug_assert!(panel.len() >= cin * MR && x.len() >= (cin - 1) * hw + N);
            debug_assert!(e.bias.len() == MR && e.scale.is_none_or(|g| g.len() == MR));
            let mut acc = [_mm512_setzero_ps(); N];
            let (mut wp, mut xp) = (panel.as_ptr(), x.as_ptr());
            for _ in 0..cin {
                let w = {
                    let $p = wp;
                    $load
                };
                for j in 0..N {
                    acc[j] = _mm512_fmadd_ps(w, _mm512_set1_ps(*xp.add(j)), acc[j]);
                }
                wp = wp.add(MR);
                xp = xp.add(hw);
            }
            let bias = _mm512_loadu_ps(e.bias.as_ptr());
            // Register j holds point j of the 16 channels; transposed, register r holds channel r.
            let mut block = [_mm512_setzero_ps(); MR];
            match e.scale {
                Some(g) => {
                    let g = _mm512_loadu_ps(g.as_ptr());
                    for j in 0..N {
                        block[j] = _mm512_mul_ps(_mm512_add_ps(acc[j], bias), g);
                    }
                }
                None => {
                    for j in 0..N {
                        block[j] = _mm512_add_ps(acc[j], bias);
                    }
                }
            }
            transpose_16x16(&mut block);
            assert!(out.len() >= (MR - 1) * stride + N);
            let mask: __mmask16 = (1 << N) - 1;
            for (r, row) in block.iter().enumerate() {
                // SAFETY: the first N values of row r lie inside `out` (asserted above).
                _mm512_mask_storeu_ps(out.as_mut_ptr().add(r * stride), mask, *row);
            }
        }
    };
}

/// Transposes 16 registers of 16 lanes in place: lane `j` of register `i` ends as lane `i` of register
/// `j` (4 rounds of shuffles, 64 in all, instead of 256 scalar moves).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn transpose_16x16(r: &mut [std::arch::x86_64::__m512; 16]) {
    use std::arch::x86_64::*;
    let mut t = [_mm512_setzero_ps(); 16];
    // Pairs of rows interleaved per 32-bit lane, then per 64-bit lane: each 128-bit lane of r[4i + c]
    // holds column c (mod 4) of rows 4i..4i + 4.
    for i in 0..8 {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    let pd = |v: __m512| _mm512_castps_pd(v);
    let ps = |v: __m512d| _mm512_castpd_ps(v);
    for i in 0..4 {
        let b = 4 * i;
        r[b] = ps(_mm512_unpacklo_pd(pd(t[b]), pd(t[b + 2])));
        r[b + 1] = ps(_mm512_unpackhi_pd(pd(t[b]), pd(t[b + 2])));
        r[b + 2] = ps(_mm512_unpacklo_pd(pd(t[b + 1]), pd(t[b + 3])));
        r[b + 3] = ps(_mm512_unpackhi_pd(pd(t[b + 1]), pd(t[b + 3])));
    }
    // Then the 128-bit lanes: even and odd lanes of rows 0–7 and 8–15, then of those halves.
    for h in 0..2 {
        let b = 8 * h;
        for j in 0..4 {
            t[b + j] = _mm512_shuffle_f32x4::<0x88>(r[b + j], r[b + 4 + j]);
            t[b + 4 + j] = _mm512_shuffle_f32x4::<0xdd>(r[b + j], r[b + 4 + j]);
        }
    }
    for j in 0..8 {
        r[j] = _mm512_shuffle_f32x4::<0x88>(t[j], t[8 + j]);
        r[8 + j] = _mm512_shuffle_f32x4::<0xdd>(t[j], t[8 + j]);
    }
}

avx512_tile!(tile_avx512, tile_avx512_n, f32, |p| _mm512_loadu_ps(p));
// The panel widened from f16 as it is read (`vcvtph2ps` on 16 lanes).
avx512_tile!(tile_avx512_f16, tile_avx512_f16_n, half::f16, |p| {
    _mm512_cvtph_ps(_mm256_loadu_si256(p.cast()))
});

avx2_tile!(
    tile_avx2,
    tile_avx2_n,
    f32,
    "avx2,fma",
    |p| _mm256_loadu_ps(p)
);
// The panel widened from f16 as it is read (`vcvtph2ps`).
avx2_tile!(
    tile_avx2_f16,
    tile_avx2_f16_n,
    half::f16,
    "avx2,fma,f16c",
    |p| _mm256_cvtph_ps(_mm_loadu_si128(p.cast()))
);

#[cfg(target_arch = "aarch64")]
#[allow(clippy::too_many_arguments)]
unsafe fn tile_neon(
    panel: &[f32],
    x: &[f32],
    hw: usize,
    cin: usize,
    cols: usize,
    e: Epilogue,
    out: &mut [f32],
    stride: usize,
) {
    by_cols!(
        [6, 5, 4, 3, 2, 1],
        tile_neon_n,
        cols,
        (panel, x, hw, cin, e, out, stride)
    )
}

#[cfg(target_arch = "aarch64")]
unsafe fn tile_neon_n<const N: usize>(
    panel: &[f32],
    x: &[f32],
    hw: usize,
    cin: usize,
    e: Epilogue,
    out: &mut [f32],
    stride: usize,
) {
    use std::arch::aarch64::*;
    debug_assert!(panel.len() >= cin * MR && x.len() >= (cin - 1) * hw + N);
    let mut acc4 = [[vdupq_n_f32(0.0); 4]; N];
    let (mut wp, mut xp) = (panel.as_ptr(), x.as_ptr());
    for _ in 0..cin {
        let w = [
            vld1q_f32(wp),
            vld1q_f32(wp.add(4)),
            vld1q_f32(wp.add(8)),
            vld1q_f32(wp.add(12)),
        ];
        for j in 0..N {
            let v = vld1q_dup_f32(xp.add(j));
            for q in 0..4 {
                acc4[j][q] = vfmaq_f32(acc4[j][q], w[q], v);
            }
        }
        wp = wp.add(MR);
        xp = xp.add(hw);
    }
    let mut acc = [[0f32; MR]; NR];
    for j in 0..N {
        for q in 0..4 {
            vst1q_f32(acc[j].as_mut_ptr().add(4 * q), acc4[j][q]);
        }
    }
    store(&acc, N, e, out, stride);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pseudo(n: usize, seed: u64) -> Vec<f32> {
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

    /// `out[co][p] = (b[co] + Σ w[co][ci]·x[ci][p])·g[co]` in f64.
    fn reference(
        w: &[f32],
        b: &[f32],
        g: Option<&[f32]>,
        x: &[f32],
        [cin, cout, hw]: [usize; 3],
    ) -> Vec<f64> {
        let mut out = vec![0.0; cout * hw];
        for co in 0..cout {
            for p in 0..hw {
                let mut s = f64::from(if b.len() == 1 { b[0] } else { b[co] });
                for ci in 0..cin {
                    s += f64::from(w[co * cin + ci]) * f64::from(x[ci * hw + p]);
                }
                out[co * hw + p] = s * g.map_or(1.0, |g| f64::from(g[co]));
            }
        }
        out
    }

    /// The whole output through every kernel that can run here for `w`'s panel type: the plain one
    /// and this CPU's.
    fn run_all(
        w: &PackedWeights,
        x: &[f32],
        hw: usize,
        gelu: bool,
    ) -> Vec<(&'static str, Vec<f32>)> {
        let mut outs = Vec::new();
        let mut go = |name: &'static str, f: &dyn Fn(&mut [f32])| {
            let mut out = vec![f32::NAN; w.cout * hw];
            f(&mut out);
            outs.push((name, out));
        };
        match &w.panels {
            Panels::F32(p) => {
                go("plain", &|o| {
                    pointwise_panels_with(w, p, 0, x, o, hw, gelu, Tile::plain())
                });
                go("best", &|o| {
                    pointwise_panels_with(w, p, 0, x, o, hw, gelu, best_tile())
                });
                // On an AVX-512 CPU the AVX2 kernel is not the best one: test it too.
                #[cfg(target_arch = "x86_64")]
                if let Some(t) = avx2_tile() {
                    go("avx2", &|o| {
                        pointwise_panels_with(w, p, 0, x, o, hw, gelu, t)
                    });
                }
            }
            Panels::F16(p) => {
                go("plain f16", &|o| {
                    pointwise_panels_with(w, p, 0, x, o, hw, gelu, Tile::plain())
                });
                if let Some(t) = f16_tile() {
                    go("f16", &|o| {
                        pointwise_panels_with(w, p, 0, x, o, hw, gelu, t)
                    });
                }
                #[cfg(target_arch = "x86_64")]
                if let Some(t) = avx2_f16_tile() {
                    go("avx2 f16", &|o| {
                        pointwise_panels_with(w, p, 0, x, o, hw, gelu, t)
                    });
                }
            }
        }
        outs
    }

    /// Values that are exact in f16 (multiples of 1/1024 in −0.5..0.5).
    fn f16_exact(n: usize, seed: u64) -> Vec<f32> {
        pseudo(n, seed)
            .iter()
            .map(|v| (v * 1024.0).round() / 1024.0)
            .collect()
    }

    #[test]
    fn pointwise_matches_the_definition_for_every_tile_tail_channel_count_and_panel_type() {
        for &(cin, cout) in &[(1, 16), (3, 32), (48, 192), (192, 48), (17, 64)] {
            for hw in [1, 2, 3, 4, 5, 6, 7, 9, 12, 13, 36] {
                for half in [false, true] {
                    let seed = (cin * 31 + cout) as u64;
                    let w = if half {
                        f16_exact(cout * cin, seed)
                    } else {
                        pseudo(cout * cin, seed)
                    };
                    let b = pseudo(cout, hw as u64);
                    let g = pseudo(cout, 99);
                    let g = (cin % 2 == 1).then_some(&g[..]);
                    let x = pseudo(cin * hw, (cin + hw) as u64);
                    let packed = PackedWeights::with_f16(&w, &b, g, cout, cin, half);
                    assert_eq!(packed.is_f16(), half);
                    let want = reference(&w, &b, g, &x, [cin, cout, hw]);
                    for (name, got) in run_all(&packed, &x, hw, false) {
                        for (i, (v, e)) in got.iter().zip(&want).enumerate() {
                            let tol = 1e-5 * (1.0 + (cin as f64).sqrt());
                            assert!(
                                (f64::from(*v) - e).abs() <= tol,
                                "{name} cin {cin} cout {cout} hw {hw} at {i}: {v} vs {e}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn weights_are_kept_as_f16_only_when_every_one_is_exact_in_f16() {
        let (cin, cout) = (8, 16);
        let exact = f16_exact(cin * cout, 1);
        let mut inexact = exact.clone();
        inexact[77] += 1e-6;
        assert!(PackedWeights::with_f16(&exact, &[0.0], None, cout, cin, true).is_f16());
        assert!(!PackedWeights::with_f16(&inexact, &[0.0], None, cout, cin, true).is_f16());
        assert!(!PackedWeights::with_f16(&exact, &[0.0], None, cout, cin, false).is_f16());
        // Where the CPU has no f16 kernel, `new` keeps f32 whatever the values.
        assert_eq!(
            PackedWeights::new(&exact, &[0.0], None, cout, cin).is_f16(),
            f16_tile().is_some()
        );
    }

    #[test]
    fn plain_and_vector_tiles_agree_and_a_shared_bias_is_broadcast() {
        let (cin, cout, hw) = (40, 32, 11);
        let w = f16_exact(cout * cin, 7);
        let x = pseudo(cin * hw, 8);
        let want = reference(&w, &[0.25], None, &x, [cin, cout, hw]);
        for half in [false, true] {
            let packed = PackedWeights::with_f16(&w, &[0.25], None, cout, cin, half);
            let outs = run_all(&packed, &x, hw, false);
            for (name, got) in &outs {
                for i in 0..want.len() {
                    assert!((got[i] - outs[0].1[i]).abs() < 1e-5, "{name} {i}");
                    assert!((f64::from(got[i]) - want[i]).abs() < 1e-5, "{name} {i}");
                }
            }
        }
    }

    #[test]
    fn fused_gelu_is_the_same_as_gelu_after_the_convolution() {
        let (cin, cout, hw) = (24, 48, 10);
        let w = pseudo(cout * cin, 3);
        let b = pseudo(cout, 4);
        let x: Vec<f32> = pseudo(cin * hw, 5).iter().map(|v| v * 8.0).collect();
        let packed = PackedWeights::new(&w, &b, None, cout, cin);
        let mut separate = vec![0.0; cout * hw];
        pointwise_panels(&packed, 0, &x, &mut separate, hw, false);
        crate::gelu::gelu_in_place(&mut separate);
        let mut fused = vec![0.0; cout * hw];
        pointwise_panels(&packed, 0, &x, &mut fused, hw, true);
        assert_eq!(separate, fused);
        assert!(fused.iter().any(|v| *v < 0.0) && fused.iter().all(|v| *v >= -0.2));
    }

    #[test]
    fn a_split_over_panels_gives_the_same_output_as_one_call() {
        let (cin, cout, hw) = (8, 64, 7);
        let w = pseudo(cout * cin, 9);
        let b = pseudo(cout, 10);
        let x = pseudo(cin * hw, 11);
        let packed = PackedWeights::new(&w, &b, Some(&b), cout, cin);
        let mut whole = vec![0.0; cout * hw];
        pointwise_panels(&packed, 0, &x, &mut whole, hw, true);
        let mut split = vec![0.0; cout * hw];
        let (a, rest) = split.split_at_mut(MR * hw);
        pointwise_panels(&packed, 0, &x, a, hw, true);
        pointwise_panels(&packed, 1, &x, rest, hw, true);
        assert_eq!(whole, split);
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
        let g = m.wire_node("gelu", crate::gelu::FastGelu, &[a]).unwrap()[0];
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
        let g = m.wire_node("gelu", crate::gelu::FastGelu, &[a]).unwrap()[0];
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
