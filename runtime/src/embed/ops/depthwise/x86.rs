//! The x86_64 depthwise kernels: AVX2 + FMA and AVX-512 blocks of consecutive points, and on AVX-512 the
//! small planes 16 channels at a time (channels-last in the registers).
use super::{small_plane, Block, BlockFn, Plane, LANES};
use crate::embed::ops::pointwise::x86::transpose_16x16;

/// Most registers of 16 points per block of the AVX-512 kernel: 8 independent sums keep both FMA pipes
/// busy through the FMA latency. Small planes take fewer (see [`avx512_block`]).
const REGS_AVX512: usize = 8;

/// [`depthwise_same`](super::depthwise_same) for planes that pass [`small_plane`], `c` a multiple of 16: each group of 16
/// channels is transposed into a zero-padded `[hp][wp][16]` plane, so that one register holds one point
/// of all 16 channels and each tap is one FMA per point, with the taps in the same order and from the
/// same start (the bias) as the block kernels: the same values, bit for bit.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn depthwise_16_channels(
    data: &[f32],
    kernel: &[f32],
    bias: &[f32],
    out: &mut [f32],
    [c, h, w, k]: [usize; 4],
) {
    use std::arch::x86_64::*;
    const MAX_PADDED: usize = 12 * 12;
    assert!(small_plane(h, w, k) && k % 2 == 1 && c % 16 == 0);
    let (p, plane, taps) = (k / 2, h * w, k * k);
    let wp = w + 2 * p;
    assert!((h + 2 * p) * wp <= MAX_PADDED && plane <= 36 && taps <= 64);
    assert!(data.len() == c * plane && out.len() == c * plane && kernel.len() == c * taps);
    assert!(bias.len() == c || bias.len() == 1);
    let mut xt = [0f32; MAX_PADDED * 16];
    let mut wt = [0f32; 64 * 16];
    // Padded position of each output point.
    let mut pos = [0usize; 36];
    for (i, slot) in pos.iter_mut().enumerate().take(plane) {
        *slot = (i / w) * wp + i % w;
    }
    for g in 0..c / 16 {
        let ch = g * 16;
        // The 16 planes, channels-last, into the padded buffer (the border stays zero).
        columns_16(data, ch, plane, |i, v| {
            let (y, x) = (i / w, i % w);
            _mm512_storeu_ps(xt.as_mut_ptr().add(((y + p) * wp + x + p) * 16), v);
        });
        // The taps, channels-last: wt[tap] holds the 16 channels' weights.
        columns_16(kernel, ch, taps, |t, v| {
            _mm512_storeu_ps(wt.as_mut_ptr().add(t * 16), v)
        });
        let b = if bias.len() == 1 {
            _mm512_set1_ps(bias[0])
        } else {
            _mm512_loadu_ps(bias.as_ptr().add(ch))
        };
        // 16 output points at a time, one register each (points past the plane repeat point 0).
        let mut q = 0;
        while q < plane {
            let n = (plane - q).min(16);
            let at: [usize; 16] = std::array::from_fn(|j| pos[if j < n { q + j } else { 0 }]);
            let mut acc = [b; 16];
            for ky in 0..k {
                for kx in 0..k {
                    let wv = _mm512_loadu_ps(wt.as_ptr().add((ky * k + kx) * 16));
                    let off = ky * wp + kx;
                    for j in 0..16 {
                        let xv = _mm512_loadu_ps(xt.as_ptr().add((at[j] + off) * 16));
                        acc[j] = _mm512_fmadd_ps(xv, wv, acc[j]);
                    }
                }
            }
            transpose_16x16(&mut acc);
            let mask: __mmask16 = ((1u32 << n) - 1) as __mmask16;
            for (i, row) in acc.iter().enumerate() {
                _mm512_mask_storeu_ps(out.as_mut_ptr().add((ch + i) * plane + q), mask, *row);
            }
            q += n;
        }
    }
}

/// Rows `ch..ch + 16` of `src` (rows of `len` values) read 16 values at a time and transposed:
/// `put(j, v)` gets column `j` of the 16 rows in one register (lane `i` from row `ch + i`). The planes
/// and the taps of [`depthwise_16_channels`] both go channels-last this way.
#[target_feature(enable = "avx512f")]
unsafe fn columns_16(
    src: &[f32],
    ch: usize,
    len: usize,
    mut put: impl FnMut(usize, std::arch::x86_64::__m512),
) {
    use std::arch::x86_64::*;
    assert!(src.len() >= (ch + 16) * len);
    let mut q = 0;
    while q < len {
        let n = (len - q).min(16);
        let mask: __mmask16 = ((1u32 << n) - 1) as __mmask16;
        let mut r: [__m512; 16] = std::array::from_fn(|i| {
            _mm512_maskz_loadu_ps(mask, src.as_ptr().add((ch + i) * len + q))
        });
        transpose_16x16(&mut r);
        for (j, v) in r.iter().enumerate().take(n) {
            put(q + j, *v);
        }
        q += n;
    }
}

/// The AVX2 + FMA kernel where the CPU has them (what [`best_block`](super::best_block) takes without AVX-512).
pub(super) fn avx2_block() -> Option<Block> {
    (std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma"))
        .then_some(Block {
            run: block_avx2::<{ LANES / 8 }>,
            lanes: LANES,
        })
}

/// An x86_64 block kernel of `R` registers of `$width` f32 lanes (AVX2: 8, AVX-512: 16): the two differ
/// only in the register width and the intrinsics, so one body serves both.
macro_rules! x86_block {
    ($name:ident, $features:literal, $width:literal, $set1:ident, $load:ident, $fmadd:ident, $store:ident) => {
        #[target_feature(enable = $features)]
        unsafe fn $name<const R: usize>(plane: Plane<'_>, base: usize, b: f32, out: &mut [f32]) {
            use std::arch::x86_64::*;
            let (padded, taps, k, wp) = (plane.padded, plane.taps, plane.k, plane.wp);
            let lanes = $width * R;
            debug_assert!(base + (k - 1) * (wp + 1) + lanes <= padded.len() && out.len() >= lanes);
            let mut r = [$set1(b); R];
            let src = padded.as_ptr().add(base);
            for ky in 0..k {
                let row = src.add(ky * wp);
                for kx in 0..k {
                    let t = $set1(*taps.get_unchecked(ky * k + kx));
                    let x = row.add(kx);
                    for (i, r) in r.iter_mut().enumerate() {
                        *r = $fmadd($load(x.add($width * i)), t, *r);
                    }
                }
            }
            let o = out.as_mut_ptr();
            for (i, r) in r.iter().enumerate() {
                $store(o.add($width * i), *r);
            }
        }
    };
}

x86_block!(
    block_avx2,
    "avx2,fma",
    8,
    _mm256_set1_ps,
    _mm256_loadu_ps,
    _mm256_fmadd_ps,
    _mm256_storeu_ps
);
x86_block!(
    block_avx512,
    "avx512f",
    16,
    _mm512_set1_ps,
    _mm512_loadu_ps,
    _mm512_fmadd_ps,
    _mm512_storeu_ps
);

/// The AVX-512 kernel for a padded plane of `n` points: blocks of `16·regs` points, with the fewest
/// registers (≤ [`REGS_AVX512`]) that cover the plane in as few computed points as the most would.
/// At 96 px the planes are 720, 216, 72 and 27 points: 9 blocks of 80, 2 of 112, one of 80, one of 32.
pub(super) fn avx512_block(n: usize) -> Block {
    const RUNS: [BlockFn; REGS_AVX512] = [
        block_avx512::<1>,
        block_avx512::<2>,
        block_avx512::<3>,
        block_avx512::<4>,
        block_avx512::<5>,
        block_avx512::<6>,
        block_avx512::<7>,
        block_avx512::<8>,
    ];
    let computed = |regs: usize| n.div_ceil(16 * regs) * 16 * regs;
    let regs = (1..=REGS_AVX512)
        .rev()
        .min_by_key(|&r| computed(r))
        .unwrap_or(REGS_AVX512);
    Block {
        run: RUNS[regs - 1],
        lanes: 16 * regs,
    }
}
