//! A faster depthwise convolution for tract's plan of the model.
//!
//! ConvNeXt's 7×7 depthwise convolutions are ~4 % of its arithmetic but were more than half of one
//! embedding's time in tract (`visualbyte bench --ops`): tract's `DepthWiseConv` walks each padding zone
//! of each plane point by point, and at 96 px input the planes are 24×24 down to 3×3, so almost every
//! point sits in a border zone. [`replace_depthwise`] swaps those convolutions (f32, NCHW, stride 1,
//! dilation 1, "same" padding, one filter per channel) for [`PaddedDepthWise`]: each plane is copied once
//! into a zero-padded buffer; the output, computed at the padded row stride, is then blocks of
//! consecutive points that stay in vector registers through all k² taps (on x86_64 AVX-512, 16–128
//! points sized to the plane, else AVX2 + FMA, 32 points, chosen at run time; NEON on aarch64, plain Rust
//! elsewhere). With AVX-512, planes up to 6×6 go 16 channels at a time instead (channels-last in the
//! registers), which wastes no work on the padding columns. Any other convolution is left to tract.
//!
//! This file holds the operator, the graph rewrite, the padded-plane driver and the plain-Rust block
//! kernel; the vector kernels are per architecture (`x86`, `neon`).
use tract_onnx::tract_core::as_op;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat, PaddingSpec};
use tract_onnx::tract_core::ops::nn::DataFormat;

#[cfg(target_arch = "aarch64")]
mod neon;
#[cfg(target_arch = "x86_64")]
mod x86;

/// Depthwise 2-D convolution over `[N, C, H, W]` f32: stride 1, dilation 1, zero padding of `k / 2` on
/// every side (`k` odd), one `k×k` filter and one bias per channel. Inputs: data, kernel `[C, 1, k, k]`,
/// bias (`C` values, or one for all).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaddedDepthWise {
    batch: usize,
    channels: usize,
    h: usize,
    w: usize,
    k: usize,
}

plan_op!(PaddedDepthWise);

impl PaddedDepthWise {
    fn describe(&self) -> Vec<String> {
        vec![format!(
            "{}×{} kernel over {} planes of {}×{}",
            self.k, self.k, self.channels, self.h, self.w
        )]
    }

    fn run(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let (data, kernel, bias) = args_3!(inputs);
        let (n, c, h, w, k) = (self.batch, self.channels, self.h, self.w, self.k);
        anyhow::ensure!(
            data.shape() == [n, c, h, w],
            "data shape {:?}",
            data.shape()
        );
        anyhow::ensure!(
            kernel.shape() == [c, 1, k, k],
            "kernel shape {:?}",
            kernel.shape()
        );
        anyhow::ensure!(
            bias.len() == c || bias.len() == 1,
            "bias has {} values for {c} channels",
            bias.len()
        );
        let data = data.try_as_plain_ram()?;
        let kernel = kernel.try_as_plain_ram()?;
        let bias = bias.try_as_plain_ram()?;
        let (data, kernel, bias) = (
            data.as_slice::<f32>()?,
            kernel.as_slice::<f32>()?,
            bias.as_slice::<f32>()?,
        );
        let mut output = Tensor::zero::<f32>(&[n, c, h, w])?;
        {
            let mut out = output.try_as_plain_ram_mut()?;
            let plane = h * w;
            // Whole planes per task when the plan has several threads (`--threads`); every plane
            // is computed the same way whatever the split, so the result does not depend on it.
            let group = split_group(c, h, w, k);
            for (item, out) in out
                .as_slice_mut::<f32>()?
                .chunks_exact_mut(c * plane)
                .enumerate()
            {
                let data = &data[item * c * plane..(item + 1) * c * plane];
                tract_onnx::tract_core::tract_linalg::multithread::par_chunks_mut(
                    out,
                    group * plane,
                    c * plane * k * k,
                    |first_group, chunk| {
                        let first = first_group * group;
                        let planes = chunk.len() / plane;
                        let b = if bias.len() == 1 {
                            bias
                        } else {
                            &bias[first..first + planes]
                        };
                        depthwise_same(
                            &data[first * plane..(first + planes) * plane],
                            &kernel[first * k * k..(first + planes) * k * k],
                            b,
                            chunk,
                            [planes, h, w, k],
                        );
                        Ok(())
                    },
                )?;
            }
        }
        Ok(tvec!(output.into_tvalue()))
    }
}

impl TypedOp for PaddedDepthWise {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        anyhow::ensure!(
            inputs.len() == 3,
            "PaddedDepthWise takes data, kernel and bias"
        );
        Ok(tvec!(f32::fact([
            self.batch,
            self.channels,
            self.h,
            self.w
        ])))
    }

    fn cost(&self, _inputs: &[&TypedFact]) -> TractResult<TVec<(Cost, TDim)>> {
        let fma = self.batch * self.channels * self.h * self.w * self.k * self.k;
        Ok(tvec!((Cost::FMA(f32::datum_type()), fma.to_dim())))
    }

    as_op!();
}

/// Replaces every convolution of `model` that [`PaddedDepthWise`] computes. Returns how many were
/// replaced. Run it on a decluttered model (batch axis fixed, BatchNorms already folded into the
/// convolutions), before `optimize`.
pub fn replace_depthwise(model: &mut TypedModel) -> TractResult<usize> {
    let mut replaced = 0;
    for id in model.eval_order()? {
        let node = model.node(id);
        let Some(conv) = node.op_as::<Conv>() else {
            continue;
        };
        if node.inputs.len() != 3 {
            continue;
        }
        let data = model.outlet_fact(node.inputs[0])?;
        let Some(shape) = data.shape.as_concrete() else {
            continue;
        };
        let Some(op) = padded_depthwise_for(conv, data.datum_type, shape) else {
            continue;
        };
        let kernel = model.outlet_fact(node.inputs[1])?;
        let bias = model.outlet_fact(node.inputs[2])?;
        let kernel_ok = kernel.datum_type == f32::datum_type()
            && kernel.shape.as_concrete() == Some(&[op.channels, 1, op.k, op.k][..]);
        let bias_len = bias
            .shape
            .as_concrete()
            .map(|s| s.iter().product::<usize>());
        let bias_ok = bias.datum_type == f32::datum_type()
            && (bias_len == Some(op.channels) || bias_len == Some(1));
        if !(kernel_ok && bias_ok) {
            continue;
        }
        model.node_mut(id).op = Box::new(op);
        replaced += 1;
    }
    Ok(replaced)
}

/// The replacement for `conv` on data of `shape`, when it is one [`PaddedDepthWise`] computes.
fn padded_depthwise_for(conv: &Conv, dt: DatumType, shape: &[usize]) -> Option<PaddedDepthWise> {
    let spec = &conv.pool_spec;
    let &[n, c, h, w] = shape else {
        return None;
    };
    let k = *spec.kernel_shape.first()?;
    let ones = |v: &Option<TVec<usize>>| v.as_ref().is_none_or(|v| v.iter().all(|&x| x == 1));
    let p = k / 2;
    let same = match &spec.padding {
        PaddingSpec::Explicit(before, after) => {
            before.iter().chain(after.iter()).all(|&x| x == p) && before.len() == 2
        }
        PaddingSpec::SameUpper | PaddingSpec::SameLower => true,
        _ => false,
    };
    let ok = dt == f32::datum_type()
        && n >= 1
        && spec.data_format == DataFormat::NCHW
        && conv.kernel_fmt == KernelFormat::OIHW
        && conv.q_params.is_none()
        && spec.kernel_shape.len() == 2
        && spec.kernel_shape[1] == k
        && k % 2 == 1
        && ones(&spec.strides)
        && ones(&spec.dilations)
        && same
        && conv.group == c
        && spec.input_channels == c
        && spec.output_channels == c;
    ok.then_some(PaddedDepthWise {
        batch: n,
        channels: c,
        h,
        w,
        k,
    })
}

/// Points computed per block by the AVX2, NEON and plain kernels: held in registers across all k²
/// taps, stored once.
const LANES: usize = 32;

/// One block: `out[j] = b + Σ_{ky,kx} taps[ky·k + kx] · padded[base + ky·wp + kx + j]`, `j < lanes`
/// (the kernel's [`Block::lanes`]). Callers guarantee `base + (k − 1)·(wp + 1) + lanes ≤ padded.len()`,
/// `out.len() ≥ lanes` and `taps.len() == k²`.
type BlockFn = unsafe fn(Plane<'_>, usize, f32, &mut [f32]);

/// One channel's zero-padded plane (row stride `wp`) and its `k × k` taps, as every block kernel reads them.
#[derive(Clone, Copy)]
struct Plane<'a> {
    padded: &'a [f32],
    taps: &'a [f32],
    k: usize,
    wp: usize,
}

/// A block kernel and the points it computes per call.
#[derive(Clone, Copy)]
struct Block {
    run: BlockFn,
    lanes: usize,
}

const PLAIN: Block = Block {
    run: block_plain,
    lanes: LANES,
};

/// `out[c] = bias[c] + Σ_taps kernel[c, 0, ky, kx] · pad(data[c])[y + ky, x + kx]`, every plane
/// `[h, w]`, zero padding `k / 2`. `bias` holds `c` values or one.
pub fn depthwise_same(
    data: &[f32],
    kernel: &[f32],
    bias: &[f32],
    out: &mut [f32],
    shape: [usize; 4],
) {
    let [_, h, w, k] = shape;
    let block = best_block(h * (w + k / 2 * 2));
    #[cfg(target_arch = "x86_64")]
    let c = shape[0];
    #[cfg(target_arch = "x86_64")]
    if c >= 16 && small_plane(h, w, k) && std::arch::is_x86_feature_detected!("avx512f") {
        // Groups of 16 channels across the vector lanes; the channels left over go by blocks.
        let done = c / 16 * 16;
        // SAFETY: the CPU has AVX-512F; the plane is small (checked) and the slices hold `done` channels.
        unsafe {
            x86::depthwise_16_channels(
                &data[..done * h * w],
                &kernel[..done * k * k],
                if bias.len() == 1 { bias } else { &bias[..done] },
                &mut out[..done * h * w],
                [done, h, w, k],
            )
        };
        if done == c {
            return;
        }
        let rest = [c - done, h, w, k];
        let bias = if bias.len() == 1 { bias } else { &bias[done..] };
        let (data, kernel, out) = (
            &data[done * h * w..],
            &kernel[done * k * k..],
            &mut out[done * h * w..],
        );
        return depthwise_planes(data, kernel, bias, out, rest, block);
    }
    depthwise_planes(data, kernel, bias, out, shape, block);
}

/// The planes a thread's share of one convolution is counted in: whole groups of 16 channels for the
/// small planes that [`depthwise_same`] computes 16 channels at a time, so that a split over threads
/// does not send some of them to the block kernel (at 2 threads, 192 channels went in shares of 24:
/// 16 channels at a time and 8 by blocks, which on a 6×6 plane compute twice the points they keep);
/// single planes otherwise.
fn split_group(c: usize, h: usize, w: usize, k: usize) -> usize {
    if small_plane(h, w, k) && c.is_multiple_of(16) {
        16
    } else {
        1
    }
}

/// Planes at most 6×6 with a kernel of at most 7×7: at the padded row stride they would compute at
/// least twice the points they keep, so on AVX-512 they go 16 channels at a time instead.
fn small_plane(h: usize, w: usize, k: usize) -> bool {
    h <= 6 && w <= 6 && k <= 7
}
/// The block kernel for this CPU and a padded plane of `n` points (`h` rows at the padded stride):
/// AVX-512 on x86_64 when present, else AVX2 + FMA, NEON on aarch64, plain Rust elsewhere.
fn best_block(n: usize) -> Block {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        return x86::avx512_block(n);
    }
    let _ = n;
    #[cfg(target_arch = "x86_64")]
    if let Some(block) = x86::avx2_block() {
        return block;
    }
    #[cfg(target_arch = "aarch64")]
    {
        return Block {
            run: neon::block_neon,
            lanes: LANES,
        };
    }
    #[allow(unreachable_code)]
    PLAIN
}

fn depthwise_planes(
    data: &[f32],
    kernel: &[f32],
    bias: &[f32],
    out: &mut [f32],
    [c, h, w, k]: [usize; 4],
    block: Block,
) {
    assert!(k % 2 == 1 && k >= 1, "odd kernel size, got {k}");
    assert_eq!(data.len(), c * h * w);
    assert_eq!(out.len(), c * h * w);
    assert_eq!(kernel.len(), c * k * k);
    assert!(bias.len() == c || bias.len() == 1);
    let p = k / 2;
    let wp = w + 2 * p;
    let hp = h + 2 * p;
    // The output is computed at the padded row stride (the last 2p columns of each row are discarded),
    // so every tap reads one contiguous run of the padded plane, in blocks of `lanes` points; the last
    // block may run past the plane, so both buffers have a block of slack.
    let lanes = block.lanes;
    let n = h * wp;
    let blocks = n.div_ceil(lanes);
    let plane = h * w;
    SCRATCH.with_borrow_mut(|(padded, acc)| {
        // Reused from call to call (one pair per thread): no allocation per query once warm. The
        // padded plane is re-zeroed (its border must be zero; every channel overwrites the interior).
        padded.clear();
        padded.resize(hp * wp + k + lanes, 0.0);
        if acc.len() < blocks * lanes {
            acc.resize(blocks * lanes, 0.0);
        }
        let acc = &mut acc[..blocks * lanes];
        // The bound every block call relies on (see BlockFn).
        assert!((blocks - 1) * lanes + (k - 1) * (wp + 1) + lanes <= padded.len());
        for ch in 0..c {
            let src = &data[ch * plane..(ch + 1) * plane];
            for y in 0..h {
                let row = (y + p) * wp + p;
                padded[row..row + w].copy_from_slice(&src[y * w..(y + 1) * w]);
            }
            let b = if bias.len() == 1 { bias[0] } else { bias[ch] };
            let taps = &kernel[ch * k * k..(ch + 1) * k * k];
            let input = Plane {
                padded,
                taps,
                k,
                wp,
            };
            for (i, out_block) in acc.chunks_exact_mut(lanes).enumerate() {
                // SAFETY: the bound asserted above; `taps` has k² values; `block` suits this CPU.
                unsafe { (block.run)(input, i * lanes, b, out_block) };
            }
            let dst = &mut out[ch * plane..(ch + 1) * plane];
            for y in 0..h {
                dst[y * w..(y + 1) * w].copy_from_slice(&acc[y * wp..y * wp + w]);
            }
        }
    });
}

thread_local! {
    /// The zero-padded plane and the padded-stride output of [`depthwise_planes`], per thread.
    static SCRATCH: std::cell::RefCell<(Vec<f32>, Vec<f32>)> =
        const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

/// Plain Rust (any target; also the reference the vector kernels are tested against).
unsafe fn block_plain(plane: Plane<'_>, base: usize, b: f32, out: &mut [f32]) {
    let (padded, taps, k, wp) = (plane.padded, plane.taps, plane.k, plane.wp);
    let mut r = [b; LANES];
    for ky in 0..k {
        for kx in 0..k {
            let t = taps[ky * k + kx];
            let start = base + ky * wp + kx;
            for (r, x) in r.iter_mut().zip(&padded[start..start + LANES]) {
                *r += x * t;
            }
        }
    }
    out[..LANES].copy_from_slice(&r);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The textbook definition, in f64.
    fn reference(data: &[f32], kernel: &[f32], bias: &[f32], [c, h, w, k]: [usize; 4]) -> Vec<f32> {
        let p = (k / 2) as isize;
        let mut out = vec![0f32; c * h * w];
        for ch in 0..c {
            for y in 0..h as isize {
                for x in 0..w as isize {
                    let mut s = if bias.len() == 1 { bias[0] } else { bias[ch] } as f64;
                    for ky in 0..k as isize {
                        for kx in 0..k as isize {
                            let (iy, ix) = (y + ky - p, x + kx - p);
                            if iy >= 0 && iy < h as isize && ix >= 0 && ix < w as isize {
                                let v = data[ch * h * w + (iy as usize) * w + ix as usize] as f64;
                                let t = kernel[ch * k * k + (ky as usize) * k + kx as usize] as f64;
                                s += v * t;
                            }
                        }
                    }
                    out[ch * h * w + (y as usize) * w + x as usize] = s as f32;
                }
            }
        }
        out
    }

    fn pseudo(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = crate::bench::SplitMix64::new(seed);
        (0..n).map(|_| rng.next_signed()).collect()
    }

    /// Random input, kernel and bias of `shape` (seeds from `seed`) through [`depthwise_same`], checked
    /// against the definition; returns them with the output.
    fn matches_the_definition(
        [c, h, w, k]: [usize; 4],
        shared_bias: bool,
        seed: u64,
    ) -> (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>) {
        let data = pseudo(c * h * w, seed);
        let kernel = pseudo(c * k * k, 100 + seed);
        let bias = pseudo(if shared_bias { 1 } else { c }, 200 + seed);
        let mut out = vec![f32::NAN; c * h * w];
        depthwise_same(&data, &kernel, &bias, &mut out, [c, h, w, k]);
        let want = reference(&data, &kernel, &bias, [c, h, w, k]);
        let err = out
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(err < 1e-5, "c{c} {h}×{w} k{k}: max abs {err}");
        (data, kernel, bias, out)
    }

    #[test]
    fn padded_depthwise_matches_the_definition_on_every_plane_size() {
        // ConvNeXt's planes at 96 px (24, 12, 6, 3), planes narrower than the kernel, 1×1, a 3×3 kernel,
        // non-square planes and a shared bias.
        for (i, &(c, h, w, k, shared_bias)) in [
            (3, 24, 24, 7, false),
            (5, 12, 12, 7, false),
            (4, 6, 6, 7, false),
            (2, 3, 3, 7, false),
            (2, 1, 1, 7, false),
            (3, 5, 9, 3, true),
            (2, 7, 2, 5, false),
        ]
        .iter()
        .enumerate()
        {
            matches_the_definition([c, h, w, k], shared_bias, i as u64);
        }
    }

    #[test]
    fn small_planes_of_many_channels_match_the_definition_and_the_block_kernels_bit_for_bit() {
        // 16-channel groups and a remainder; ConvNeXt's 6×6 and 3×3 planes, 1×1, non-square, shared bias.
        for (i, &(c, h, w, k, shared_bias)) in [
            (32, 6, 6, 7, false),
            (35, 3, 3, 7, false),
            (16, 1, 1, 7, true),
            (19, 6, 5, 5, false),
            (16, 2, 6, 3, true),
        ]
        .iter()
        .enumerate()
        {
            let (data, kernel, bias, out) =
                matches_the_definition([c, h, w, k], shared_bias, 300 + i as u64);
            let mut blocks = vec![f32::NAN; c * h * w];
            // The block kernel this CPU would take (FMA, like the 16-channel path where it runs).
            let block = best_block(h * (w + k / 2 * 2));
            depthwise_planes(&data, &kernel, &bias, &mut blocks, [c, h, w, k], block);
            assert_eq!(out, blocks, "c{c} {h}×{w} k{k}");
        }
    }

    #[test]
    fn a_split_over_threads_keeps_small_planes_in_whole_groups_of_16_channels() {
        // Regression: with 2 threads, stage 3's 192 channels of 6×6 went in shares of 24 planes, and
        // 8 of each 24 took the block kernel, which computes twice the points it keeps on such planes.
        assert_eq!(split_group(192, 6, 6, 7), 16);
        assert_eq!(split_group(384, 3, 3, 7), 16);
        // Large planes, and channel counts the 16-lane kernel would not take whole, split by plane.
        assert_eq!(split_group(48, 24, 24, 7), 1);
        assert_eq!(split_group(96, 12, 12, 7), 1);
        assert_eq!(split_group(40, 6, 6, 7), 1);
        // tract's split hands out whole rows, here whole groups: every share is a multiple of 16 planes.
        let (c, plane) = (192, 36);
        let mut out = vec![0u32; c * plane];
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let shares = std::sync::Mutex::new(Vec::new());
        let executor = tract_linalg::multithread::Executor::MultiThread(std::sync::Arc::new(pool));
        tract_linalg::multithread::multithread_tract_scope(executor, || {
            tract_linalg::multithread::par_chunks_mut(
                &mut out,
                split_group(c, 6, 6, 7) * plane,
                usize::MAX,
                |first, chunk| {
                    shares.lock().unwrap().push((first, chunk.len() / plane));
                    Ok(())
                },
            )
            .unwrap()
        });
        let shares = shares.into_inner().unwrap();
        assert!(shares.len() > 1, "{shares:?}");
        assert!(
            shares.iter().all(|&(_, planes)| planes % 16 == 0),
            "{shares:?}"
        );
        assert_eq!(shares.iter().map(|s| s.1).sum::<usize>(), c);
    }

    #[test]
    fn plain_and_vector_kernels_agree() {
        let shape = [6, 24, 24, 7];
        let data = pseudo(6 * 24 * 24, 1);
        let kernel = pseudo(6 * 49, 2);
        let bias = pseudo(6, 3);
        let mut a = vec![0f32; 6 * 24 * 24];
        let mut b = a.clone();
        depthwise_same(&data, &kernel, &bias, &mut a, shape);
        depthwise_planes(&data, &kernel, &bias, &mut b, shape, PLAIN);
        // On an AVX-512 CPU the AVX2 kernel is not the best one: check it too.
        #[cfg(target_arch = "x86_64")]
        if let Some(avx2) = x86::avx2_block() {
            let mut c = vec![0f32; 6 * 24 * 24];
            depthwise_planes(&data, &kernel, &bias, &mut c, shape, avx2);
            let err = c
                .iter()
                .zip(&b)
                .map(|(x, y)| (x - y).abs())
                .fold(0f32, f32::max);
            assert!(err < 1e-5, "avx2: max abs {err}");
        }
        let err = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        assert!(err < 1e-5, "max abs {err}");
    }

    fn conv(c: usize, group: usize, k: usize, pad: usize, stride: usize) -> Conv {
        Conv {
            pool_spec: tract_onnx::tract_core::ops::cnn::PoolSpec {
                data_format: DataFormat::NCHW,
                kernel_shape: tvec![k, k],
                padding: PaddingSpec::Explicit(tvec![pad, pad], tvec![pad, pad]),
                dilations: None,
                strides: Some(tvec![stride, stride]),
                input_channels: c,
                output_channels: c,
            },
            kernel_fmt: KernelFormat::OIHW,
            group,
            q_params: None,
        }
    }

    #[test]
    fn only_same_padded_stride_one_depthwise_convolutions_are_replaced_batches_included() {
        let f32t = f32::datum_type();
        let dw = conv(8, 8, 7, 3, 1);
        // One image (the query plan) and a batch (the index-build plan) are both replaced.
        assert!(padded_depthwise_for(&dw, f32t, &[1, 8, 12, 12]).is_some());
        let batched = padded_depthwise_for(&dw, f32t, &[16, 8, 12, 12]).unwrap();
        assert_eq!(batched.batch, 16);
        // Not ours: a grouped-but-not-depthwise or plain convolution, stride 2, other padding, an even
        // kernel, f16 data, another channel count than the data's.
        assert!(padded_depthwise_for(&conv(8, 1, 7, 3, 1), f32t, &[1, 8, 12, 12]).is_none());
        assert!(padded_depthwise_for(&conv(8, 4, 7, 3, 1), f32t, &[1, 8, 12, 12]).is_none());
        assert!(padded_depthwise_for(&conv(8, 8, 7, 3, 2), f32t, &[1, 8, 12, 12]).is_none());
        assert!(padded_depthwise_for(&conv(8, 8, 7, 2, 1), f32t, &[1, 8, 12, 12]).is_none());
        assert!(padded_depthwise_for(&conv(8, 8, 4, 2, 1), f32t, &[1, 8, 12, 12]).is_none());
        assert!(padded_depthwise_for(&dw, f16::datum_type(), &[1, 8, 12, 12]).is_none());
        assert!(padded_depthwise_for(&dw, f32t, &[1, 4, 12, 12]).is_none());
    }
}
