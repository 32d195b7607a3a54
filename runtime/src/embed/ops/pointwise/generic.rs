//! The plain-Rust tile kernel (any target; also the reference the vector kernels are tested against), the
//! epilogue the plain, AVX2 and NEON kernels end with, and `by_cols!` / `tile_entry!`, which the vector kernels are
//! instantiated with.
use super::pack::PanelValue;
use super::tile::{Epilogue, Tile};
use super::{MR, NR};

impl<T: PanelValue> Tile<T> {
    pub(super) fn plain() -> Self {
        Tile {
            run: tile_plain::<T>,
            cols: NR,
        }
    }
}

/// Plain Rust (any target; also the reference the vector kernels are tested against).
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn tile_plain<T: PanelValue>(
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
pub(super) fn store(acc: &[[f32; MR]], cols: usize, e: Epilogue, out: &mut [f32], stride: usize) {
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
pub(super) use by_cols;

/// The [`TileFn`](super::tile::TileFn) of a vector tile kernel: `$name` runs the instantiation of
/// `$name_n` for the column count, one per count in `[..]` (the kernels differ only in the counts).
macro_rules! tile_entry {
    ($name:ident, $name_n:ident, $t:ty, [$($n:literal),+]) => {
        #[allow(clippy::too_many_arguments)]
        pub(super) unsafe fn $name(
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
pub(super) use tile_entry;
