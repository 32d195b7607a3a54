//! The aarch64 tile kernel: NEON, 16 channels × 6 points, f32 panels.
use super::generic::{by_cols, store, tile_entry};
use super::tile::Epilogue;
use super::{MR, NR};

tile_entry!(tile_neon, tile_neon_n, f32, [6, 5, 4, 3, 2, 1]);

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
