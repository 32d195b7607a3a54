//! Timing helpers shared by `visualbyte bench` and the benchmark suite: the median of N runs after a
//! warm-up, and seeded random memories for search benchmarks.
use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use crate::index::{write_index, EmbeddingIndex, Entry, IndexError, VectorType};

/// Summary of repeated timings, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Stats {
    pub runs: usize,
    pub median_ms: f64,
    /// 10th and 90th percentiles (nearest rank): the spread.
    pub p10_ms: f64,
    pub p90_ms: f64,
    pub min_ms: f64,
    pub mean_ms: f64,
}

impl Stats {
    /// Summary of `samples` (milliseconds); `None` when there are none.
    pub fn from_samples(samples: &[f64]) -> Option<Stats> {
        if samples.is_empty() {
            return None;
        }
        let mut s = samples.to_vec();
        s.sort_by(f64::total_cmp);
        let n = s.len();
        let rank = |q: f64| s[((q * n as f64).ceil() as usize).clamp(1, n) - 1];
        let median = if n % 2 == 1 {
            s[n / 2]
        } else {
            (s[n / 2 - 1] + s[n / 2]) / 2.0
        };
        Some(Stats {
            runs: n,
            median_ms: median,
            p10_ms: rank(0.1),
            p90_ms: rank(0.9),
            min_ms: s[0],
            mean_ms: s.iter().sum::<f64>() / n as f64,
        })
    }
}

/// Runs `f` `warmup` times untimed, then `runs` times timed (at least once); stops at the first error.
pub fn measure<E>(
    warmup: usize,
    runs: usize,
    mut f: impl FnMut() -> Result<(), E>,
) -> Result<Stats, E> {
    for _ in 0..warmup {
        f()?;
    }
    let runs = runs.max(1);
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        f()?;
        samples.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok(Stats::from_samples(&samples).expect("at least one run"))
}

/// A small seeded generator (SplitMix64): the same seed gives the same memories on every machine.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    pub fn next_signed(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

/// `n` random unit vectors of `dim` values, row-major.
pub fn random_unit_vectors(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut rng = SplitMix64::new(seed);
    let mut out = vec![0f32; n * dim];
    for row in out.chunks_exact_mut(dim.max(1)) {
        let mut norm = 0f32;
        for v in row.iter_mut() {
            *v = rng.next_signed();
            norm += *v * *v;
        }
        let norm = norm.sqrt().max(f32::MIN_POSITIVE);
        row.iter_mut().for_each(|v| *v /= norm);
    }
    out
}

/// Writes an index of `n` seeded random memories at `path` and opens it (memory-mapped, as in use).
pub fn random_index(
    path: &Path,
    model_id: &str,
    n: usize,
    dim: usize,
    vector_type: VectorType,
    seed: u64,
) -> Result<EmbeddingIndex, IndexError> {
    let vectors = random_unit_vectors(n, dim, seed);
    let entries: Vec<Entry> = (0..n)
        .map(|i| Entry::new(format!("m{}", i % 1000), format!("m/{i}.png")))
        .collect();
    write_index(path, model_id, dim, vector_type, &entries, &vectors)?;
    EmbeddingIndex::open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_take_the_median_and_nearest_rank_percentiles() {
        let s = Stats::from_samples(&[5.0, 1.0, 3.0, 2.0, 4.0]).unwrap();
        assert_eq!(s.runs, 5);
        assert_eq!(s.median_ms, 3.0);
        assert_eq!(s.min_ms, 1.0);
        assert_eq!(s.p10_ms, 1.0);
        assert_eq!(s.p90_ms, 5.0);
        assert!((s.mean_ms - 3.0).abs() < 1e-12);
        let even = Stats::from_samples(&[4.0, 1.0, 2.0, 3.0]).unwrap();
        assert_eq!(even.median_ms, 2.5);
        assert!(Stats::from_samples(&[]).is_none());
    }

    #[test]
    fn measure_warms_up_then_times_and_stops_at_an_error() {
        let mut calls = 0;
        let s = measure::<()>(2, 3, || {
            calls += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!((calls, s.runs), (5, 3));
        let mut calls = 0;
        let r = measure(1, 10, || {
            calls += 1;
            if calls == 3 {
                Err("boom")
            } else {
                Ok(())
            }
        });
        assert_eq!((r, calls), (Err("boom"), 3));
    }

    #[test]
    fn random_vectors_are_seeded_unit_vectors() {
        let a = random_unit_vectors(20, 16, 7);
        assert_eq!(a, random_unit_vectors(20, 16, 7));
        assert_ne!(a, random_unit_vectors(20, 16, 8));
        for row in a.chunks_exact(16) {
            let n: f32 = row.iter().map(|v| v * v).sum();
            assert!((n - 1.0).abs() < 1e-5, "{n}");
        }
    }

    #[test]
    fn quantised_memories_keep_the_f32_top_10() {
        // The bar: i8 recall@10 against f32 of at least 0.99 (f16 too), here on 3000 random
        // 128-d memories and 40 queries near some of them.
        let dir = tempfile::tempdir().unwrap();
        let (n, dim) = (3000, 128);
        let mut rng = SplitMix64::new(5);
        let memories = random_unit_vectors(n, dim, 3);
        let queries: Vec<f32> = (0..40)
            .flat_map(|q| {
                let base = &memories[(q * 71 % n) * dim..(q * 71 % n + 1) * dim];
                base.iter()
                    .map(|v| v + 0.05 * rng.next_signed())
                    .collect::<Vec<_>>()
            })
            .collect();
        let top = |vt: VectorType| -> Vec<Vec<usize>> {
            let idx =
                random_index(&dir.path().join(format!("{vt:?}.vbi")), "m", n, dim, vt, 3).unwrap();
            queries
                .chunks_exact(dim)
                .map(|q| idx.search(q, 10).unwrap().iter().map(|h| h.index).collect())
                .collect()
        };
        let exact = top(VectorType::F32);
        for vt in [VectorType::F16, VectorType::I8] {
            let got = top(vt);
            let found: usize = exact
                .iter()
                .zip(&got)
                .map(|(e, g)| e.iter().filter(|i| g.contains(i)).count())
                .sum();
            let recall = found as f64 / (exact.len() * 10) as f64;
            assert!(recall >= 0.99, "{vt:?} recall@10 {recall}");
        }
    }

    #[test]
    fn a_random_index_finds_its_own_vectors() {
        let dir = tempfile::tempdir().unwrap();
        let idx =
            random_index(&dir.path().join("r.vbi"), "m", 300, 32, VectorType::F32, 1).unwrap();
        let vectors = random_unit_vectors(300, 32, 1);
        for i in [0, 123, 299] {
            let hits = idx.search(&vectors[i * 32..(i + 1) * 32], 1).unwrap();
            assert_eq!(hits[0].index, i);
        }
    }
}
