//! The x86_64 tile kernels: AVX2 + FMA (16 channels × 6 points) and AVX-512 (16 × 12), each for f32
//! panels and for f16 panels widened in hardware (F16C), and the 16×16 transpose AVX-512 stores with.
use super::generic::{by_cols, store, tile_entry};
use super::tile::{Epilogue, Tile};
use super::{MR, NR};

/// Points per tile of the AVX-512 kernels (16 channels fill one register: 12 accumulators). 12 divides
/// ConvNeXt's 96 px planes of 576, 144 and 36 points; the 3×3 stage is one tile of 9.
pub(super) const NR_AVX512: usize = 12;

/// The AVX2 + FMA kernel where the CPU has them (also what
/// `tile::best_tile` falls back to without AVX-512).
pub(super) fn avx2_tile() -> Option<Tile<f32>> {
    (std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma"))
        .then_some(Tile {
            run: tile_avx2,
            cols: NR,
        })
}

/// The AVX2 + FMA + F16C kernel for f16 panels where the CPU has them.
pub(super) fn avx2_f16_tile() -> Option<Tile<half::f16>> {
    (std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("fma")
        && std::arch::is_x86_feature_detected!("f16c"))
    .then_some(Tile {
        run: tile_avx2_f16,
        cols: NR,
    })
}

/// An AVX2 + FMA tile kernel for panels of `$t`: `$name` picks the instantiation of `$name_n` for the
/// column count; `|$p| $load` turns a pointer to 8 panel values into 8 f32 lanes.
macro_rules! avx2_tile {
    ($name:ident, $name_n:ident, $t:ty, $features:literal, |$p:ident| $load:expr) => {
        tile_entry!($name, $name_n, $t, [6, 5, 4, 3, 2, 1]);

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
        tile_entry!($name, $name_n, $t, [12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1]);

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
