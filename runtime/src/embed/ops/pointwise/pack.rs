//! The weights of a [`super::Pointwise`], packed once at load in panels of [`MR`] output channels (f32,
//! or f16 where every weight is exact in f16 and the CPU widens f16 in hardware).
use std::sync::Arc;

use super::tile::f16_tile;
use super::MR;

/// `[Cout, Cin]` weights as `[Cout / MR][Cin][MR]` panels, `Cout` biases and, optionally, `Cout` scales
/// applied after the bias (`(W·x + b)·g`).
#[derive(Debug, Clone)]
pub struct PackedWeights {
    pub(super) cin: usize,
    pub(super) cout: usize,
    pub(super) panels: Panels,
    pub(super) bias: Arc<Vec<f32>>,
    pub(super) scale: Option<Arc<Vec<f32>>>,
}

/// The panels' storage. Weights that are all exactly half-precision numbers (a model exported with
/// f16 weights, expanded to f32 by the graph) are kept as f16 where the CPU converts them in hardware
/// (F16C): the same values, half the bytes to stream from memory per product.
#[derive(Debug, Clone)]
pub(super) enum Panels {
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

    pub(super) fn with_f16(
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

/// A panel element: f32, or f16 widened exactly.
pub(super) trait PanelValue: Copy {
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
