//! How a [`super::Pointwise`] output is cut into tiles of [`MR`] channels × a few points, and which tile
//! kernel computes them on this CPU ([`best_tile`], [`f16_tile`]).
#[cfg(target_arch = "aarch64")]
use super::neon;
use super::pack::{PackedWeights, Panels};
#[cfg(target_arch = "x86_64")]
use super::x86;
use super::MR;

/// What a tile adds after the sum: `out = (acc + bias[r])·scale[r]` (`scale` absent: no product).
#[derive(Clone, Copy)]
pub(super) struct Epilogue<'a> {
    pub(super) bias: &'a [f32],
    pub(super) scale: Option<&'a [f32]>,
}

/// One tile: `out[r·stride + j] = epilogue(Σ_ci panel[ci·MR + r] · x[ci·hw + j])`, `r < MR`,
/// `j < cols` (`cols ≤` the kernel's [`Tile::cols`]). Callers guarantee `panel` holds `cin·MR` values,
/// `x` `(cin − 1)·hw + cols` and `out` `(MR − 1)·stride + cols`.
pub(super) type TileFn<T> =
    unsafe fn(&[T], &[f32], usize, usize, usize, Epilogue, &mut [f32], usize);

/// A tile kernel and the most points it computes per call.
#[derive(Clone, Copy)]
pub(super) struct Tile<T> {
    pub(super) run: TileFn<T>,
    pub(super) cols: usize,
}

/// Output channels `first·MR ..` of one item: `out` holds whole `MR`-channel panels of `hw` points,
/// `x` the item's `[cin][hw]` data. GELU on each panel when `gelu`.
pub(super) fn pointwise_panels(
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
            crate::embed::ops::gelu::gelu_in_place(out);
        }
    }
}

/// The f32 tile kernel for this CPU: AVX-512 on x86_64 when present, else AVX2 + FMA, NEON on
/// aarch64, plain Rust elsewhere.
fn best_tile() -> Tile<f32> {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        return Tile {
            run: x86::tile_avx512,
            cols: x86::NR_AVX512,
        };
    }
    #[cfg(target_arch = "x86_64")]
    if let Some(tile) = x86::avx2_tile() {
        return tile;
    }
    #[cfg(target_arch = "aarch64")]
    {
        return Tile {
            run: neon::tile_neon,
            cols: super::NR,
        };
    }
    #[allow(unreachable_code)]
    Tile::plain()
}

/// The f16-panel tile kernel, where the CPU converts half precision in hardware: x86_64 with AVX-512
/// (`vcvtph2ps` on 16 lanes), else AVX2, FMA and F16C. Elsewhere panels stay f32.
pub(super) fn f16_tile() -> Option<Tile<half::f16>> {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        return Some(Tile {
            run: x86::tile_avx512_f16,
            cols: x86::NR_AVX512,
        });
    }
    #[cfg(target_arch = "x86_64")]
    if let Some(tile) = x86::avx2_f16_tile() {
        return Some(tile);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embed::ops::pointwise::tests::pseudo;

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
                if let Some(t) = x86::avx2_tile() {
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
                if let Some(t) = x86::avx2_f16_tile() {
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
        crate::embed::ops::gelu::gelu_in_place(&mut separate);
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
}
