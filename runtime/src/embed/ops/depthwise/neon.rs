//! The aarch64 depthwise kernel: NEON blocks of [`LANES`] consecutive points.
use super::{Plane, LANES};

pub(super) unsafe fn block_neon(plane: Plane<'_>, base: usize, b: f32, out: &mut [f32]) {
    let (padded, taps, k, wp) = (plane.padded, plane.taps, plane.k, plane.wp);
    use std::arch::aarch64::*;
    debug_assert!(base + (k - 1) * (wp + 1) + LANES <= padded.len() && out.len() >= LANES);
    let mut r = [vdupq_n_f32(b); LANES / 4];
    let src = padded.as_ptr().add(base);
    for ky in 0..k {
        let row = src.add(ky * wp);
        for kx in 0..k {
            let t = *taps.get_unchecked(ky * k + kx);
            let x = row.add(kx);
            for (i, r) in r.iter_mut().enumerate() {
                *r = vfmaq_n_f32(*r, vld1q_f32(x.add(4 * i)), t);
            }
        }
    }
    let o = out.as_mut_ptr();
    for (i, r) in r.iter().enumerate() {
        vst1q_f32(o.add(4 * i), *r);
    }
}
