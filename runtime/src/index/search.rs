//! Exact cosine top-k: every stored vector is scored against the query, the best `k` kept in a
//! fixed-capacity min-heap (no allocation per query beyond the result and, for i8 memories, the
//! integer query).
//!
//! The dot products read the stored bytes directly (little-endian, any alignment). f32 rows go in
//! chunks of [`LANES`] values with one accumulator per lane, a shape compilers turn into SIMD loads
//! and multiply-adds. i8 rows are scored in integers: the query is rounded to i16 once per search
//! ([`QueryI16`]) and every kernel sums the same exact products, so scores do not depend on the
//! CPU. On x86_64 the scan is compiled for the baseline (SSE2) and for AVX2 + FMA, and the CPU picks at
//! run time; i8 rows then use `vpmaddwd` (16 codes per instruction) and f16 rows F16C's conversion.
//! aarch64's baseline already has NEON. Large memories are scanned in slices on
//! [`set_search_threads`] threads, and the slices' best are merged (the same hits as one thread).
use std::sync::atomic::{AtomicUsize, Ordering};

use heapless::binary_heap::{BinaryHeap, Min};

use super::format::Layout;
use super::{Hit, IndexError, VectorType};

/// Most hits one search returns; a larger `k` is capped to it.
pub const MAX_TOP_K: usize = 256;

/// Values per chunk in the dot-product loops: two AVX2 registers (four SSE or NEON ones) of f32, so
/// consecutive adds do not wait on each other.
const LANES: usize = 16;

/// Memories per slice below which one thread scans everything.
const MIN_PER_THREAD: usize = 16_384;

static SEARCH_THREADS: AtomicUsize = AtomicUsize::new(1);

/// Threads a search may use for a large memory (at least one; each takes at least 16 384 memories).
pub fn set_search_threads(n: usize) {
    SEARCH_THREADS.store(n.max(1), Ordering::Relaxed);
}

/// The current [`set_search_threads`] value.
pub fn search_threads() -> usize {
    SEARCH_THREADS.load(Ordering::Relaxed)
}

/// A scored entry. Greater is better: a higher score, then a lower index (deterministic ties).
#[derive(Debug, Clone, Copy)]
struct Candidate {
    score: f32,
    index: usize,
}

impl Ord for Candidate {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.score
            .total_cmp(&other.score)
            .then_with(|| other.index.cmp(&self.index))
    }
}

impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Candidate {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for Candidate {}

/// The best `k` candidates seen so far; the worst of them on top.
pub(crate) struct TopK {
    heap: BinaryHeap<Candidate, Min, MAX_TOP_K>,
    k: usize,
}

impl TopK {
    pub(crate) fn new(k: usize) -> Self {
        Self {
            heap: BinaryHeap::new(),
            k: k.min(MAX_TOP_K),
        }
    }

    #[inline(always)]
    pub(crate) fn offer(&mut self, index: usize, score: f32) {
        // A non-finite score can only come from damaged vectors (checked by `open_verified`): never a hit.
        if !score.is_finite() {
            return;
        }
        let c = Candidate { score, index };
        if self.heap.len() < self.k {
            // Cannot fail: len < k <= capacity.
            let _ = self.heap.push(c);
        } else if let Some(mut worst) = self.heap.peek_mut() {
            if c > *worst {
                *worst = c;
            }
        }
    }

    /// Offers every candidate another `TopK` kept (merging the slices of a parallel scan).
    fn merge(&mut self, other: TopK) {
        for c in other.heap.into_vec() {
            self.offer(c.index, c.score);
        }
    }

    pub(crate) fn into_hits(self) -> Vec<Hit> {
        let mut all: Vec<Candidate> = self.heap.into_vec().into_iter().collect();
        all.sort_unstable_by(|a, b| b.cmp(a));
        all.into_iter()
            .map(|c| Hit {
                index: c.index,
                score: c.score.clamp(-1.0, 1.0),
            })
            .collect()
    }
}

#[inline(always)]
fn f32_at(b: &[u8]) -> f32 {
    f32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// IEEE binary16 → f32, exact for every finite value (normal and subnormal): the exponent and mantissa
/// bits move into an f32 and a multiply by 2^112 rebiases the exponent. Branch-free, so the dot product
/// loop vectorises (`half`'s conversion does not without F16C). Infinities and NaNs, which the writer never
/// stores, come out as large finite values.
#[inline(always)]
fn f16_at(b: &[u8]) -> f32 {
    let h = u32::from(u16::from_le_bytes([b[0], b[1]]));
    let magnitude = f32::from_bits((h & 0x7fff) << 13) * f32::from_bits((127 + 112) << 23);
    f32::from_bits(magnitude.to_bits() | ((h & 0x8000) << 16))
}

/// `row · q` for a row of little-endian f32 (`row.len() == 4 * q.len()`).
#[inline(always)]
fn dot_f32(row: &[u8], q: &[f32]) -> f32 {
    dot_le::<4>(row, q, f32_at)
}

/// `row · q` for a row of little-endian f16 (`row.len() == 2 * q.len()`).
#[inline(always)]
fn dot_f16(row: &[u8], q: &[f32]) -> f32 {
    dot_le::<2>(row, q, f16_at)
}

/// `row · q` for a row of `B`-byte values that `at` reads, in chunks of [`LANES`] with one accumulator
/// per lane (the shape that vectorises), then the tail.
#[inline(always)]
fn dot_le<const B: usize>(row: &[u8], q: &[f32], at: impl Fn(&[u8]) -> f32) -> f32 {
    let mut acc = [0.0f32; LANES];
    let rows = row.chunks_exact(B * LANES);
    let qs = q.chunks_exact(LANES);
    let (row_tail, q_tail) = (rows.remainder(), qs.remainder());
    for (r, qq) in rows.zip(qs) {
        for (a, (b, x)) in acc.iter_mut().zip(r.chunks_exact(B).zip(qq)) {
            *a += at(b) * x;
        }
    }
    let tail: f32 = row_tail
        .chunks_exact(B)
        .zip(q_tail)
        .map(|(b, x)| at(b) * x)
        .sum();
    acc.iter().sum::<f32>() + tail
}

/// The query as the i8 kernels take it: integers `round(q · s)`, zero-padded to a multiple of
/// [`LANES`], so that every i8 kernel (AVX2, NEON, plain) sums the very same integers: the scores do not
/// depend on the CPU. `s` keeps `dim · 128 · max|q·s| ≤ i32::MAX` (no sum can overflow) and is at most
/// 16 383 / max|q| (a rounding error of 3e-5 of the largest component).
struct QueryI16 {
    values: Vec<i16>,
    /// `1 / s`: multiplies an integer dot product back to `codes · q`.
    unscale: f32,
}

impl QueryI16 {
    fn new(q: &[f32]) -> Self {
        let max = q.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let limit = ((i32::MAX as usize) / (128 * q.len().max(1))).min(16_383) as f32;
        let s = if max > 0.0 { limit / max } else { 1.0 };
        let mut values: Vec<i16> = q.iter().map(|v| (v * s).round() as i16).collect();
        values.resize(q.len().next_multiple_of(LANES), 0);
        Self {
            values,
            unscale: 1.0 / s,
        }
    }

    /// The form an f32 or f16 memory's search carries: nothing (and no allocation).
    fn unused() -> Self {
        Self {
            values: Vec::new(),
            unscale: 1.0,
        }
    }
}

/// `codes · q` for a row of i8 codes (`row.len() <= q.len()`), exactly, in integers; the caller
/// applies the scales.
#[inline(always)]
fn dot_i8(row: &[u8], q: &[i16]) -> i32 {
    let mut acc = [0i32; LANES];
    let rows = row.chunks_exact(LANES);
    let tail = rows.remainder();
    let mut qs = q.chunks_exact(LANES);
    for (r, qq) in rows.zip(&mut qs) {
        for (a, (&b, &x)) in acc.iter_mut().zip(r.iter().zip(qq)) {
            *a += i32::from(b as i8) * i32::from(x);
        }
    }
    let q_tail = qs.next().unwrap_or(&[]);
    let tail: i32 = tail
        .iter()
        .zip(q_tail)
        .map(|(&b, &x)| i32::from(b as i8) * i32::from(x))
        .sum();
    acc.iter().sum::<i32>() + tail
}

/// [`dot_i8`] with AVX2: 16 codes widened to i16 and multiplied pairwise into i32 (`vpmaddwd`) per step.
/// Reads `q.len()` bytes of `codes` when it can (`codes.len() >= q.len()`: the bytes past the row meet
/// the query's zero padding), so a row needs no scalar tail.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn dot_i8_avx2(codes: &[u8], dim: usize, q: &[i16]) -> i32 {
    use std::arch::x86_64::*;
    let padded = q.len();
    let full = if codes.len() >= padded {
        padded
    } else {
        dim / LANES * LANES
    };
    let (mut a0, mut a1) = (_mm256_setzero_si256(), _mm256_setzero_si256());
    let mut i = 0;
    // SAFETY (every load): i + 16 <= full <= codes.len() and <= q.len().
    while i + 2 * LANES <= full {
        let c0 = _mm256_cvtepi8_epi16(_mm_loadu_si128(codes.as_ptr().add(i).cast()));
        let c1 = _mm256_cvtepi8_epi16(_mm_loadu_si128(codes.as_ptr().add(i + LANES).cast()));
        let q0 = _mm256_loadu_si256(q.as_ptr().add(i).cast());
        let q1 = _mm256_loadu_si256(q.as_ptr().add(i + LANES).cast());
        a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(c0, q0));
        a1 = _mm256_add_epi32(a1, _mm256_madd_epi16(c1, q1));
        i += 2 * LANES;
    }
    if i + LANES <= full {
        let c0 = _mm256_cvtepi8_epi16(_mm_loadu_si128(codes.as_ptr().add(i).cast()));
        let q0 = _mm256_loadu_si256(q.as_ptr().add(i).cast());
        a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(c0, q0));
        i += LANES;
    }
    let a = _mm256_add_epi32(a0, a1);
    let s = _mm_add_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256::<1>(a));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
    let tail: i32 = (i..dim.max(i))
        .map(|j| i32::from(codes[j] as i8) * i32::from(q[j]))
        .sum();
    _mm_cvtsi128_si32(s) + tail
}

/// [`dot_f16`] with F16C's hardware conversion (eight values per instruction) and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_f16_f16c(row: &[u8], q: &[f32]) -> f32 {
    use std::arch::x86_64::*;
    let n = q.len().min(row.len() / 2);
    let (mut a0, mut a1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    let mut i = 0;
    // SAFETY (every load): i + 16 <= n, so 2·(i + 16) <= row.len() and i + 16 <= q.len().
    while i + 16 <= n {
        let h0 = _mm256_cvtph_ps(_mm_loadu_si128(row.as_ptr().add(2 * i).cast()));
        let h1 = _mm256_cvtph_ps(_mm_loadu_si128(row.as_ptr().add(2 * i + 16).cast()));
        a0 = _mm256_fmadd_ps(h0, _mm256_loadu_ps(q.as_ptr().add(i)), a0);
        a1 = _mm256_fmadd_ps(h1, _mm256_loadu_ps(q.as_ptr().add(i + 8)), a1);
        i += 16;
    }
    if i + 8 <= n {
        let h0 = _mm256_cvtph_ps(_mm_loadu_si128(row.as_ptr().add(2 * i).cast()));
        a0 = _mm256_fmadd_ps(h0, _mm256_loadu_ps(q.as_ptr().add(i)), a0);
        i += 8;
    }
    let a = _mm256_add_ps(a0, a1);
    let s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps::<1>(a));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_shuffle_ps::<0b01>(s, s));
    let tail: f32 = (i..n).map(|j| f16_at(&row[2 * j..]) * q[j]).sum();
    _mm_cvtss_f32(s) + tail
}

pub(crate) fn search(
    layout: &Layout,
    bytes: &[u8],
    query: &[f32],
    k: usize,
) -> Result<Vec<Hit>, IndexError> {
    let dim = layout.header.dim;
    let count = layout.header.count;
    if query.len() != dim {
        return Err(IndexError::DimMismatch {
            expected: dim,
            got: query.len(),
        });
    }
    if query.iter().any(|v| !v.is_finite()) {
        return Err(IndexError::InvalidQuery(
            "it holds NaN or infinite values (the model produced a broken embedding)".into(),
        ));
    }
    let norm = query
        .iter()
        .map(|&v| f64::from(v) * f64::from(v))
        .sum::<f64>()
        .sqrt();
    if norm == 0.0 {
        return Err(IndexError::InvalidQuery("it is all zeros".into()));
    }
    let inv = (1.0 / norm) as f32;
    let k = k.min(MAX_TOP_K).min(count);
    if k == 0 {
        return Ok(Vec::new());
    }
    let section = &bytes[layout.vectors_offset..layout.vectors_offset + layout.vectors_len];
    let query_i16 = if layout.header.vector_type == VectorType::I8 {
        QueryI16::new(query)
    } else {
        QueryI16::unused()
    };
    let job = Scan {
        layout,
        section,
        query: Query {
            f32: query,
            i16: &query_i16,
        },
        inv,
    };
    let threads = search_threads().min(count / MIN_PER_THREAD).max(1);
    if threads == 1 {
        let mut top = TopK::new(k);
        scan(job, 0..count, &mut top);
        return Ok(top.into_hits());
    }
    let per = count.div_ceil(threads);
    let parts: Vec<TopK> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let rows = t * per..((t + 1) * per).min(count);
                s.spawn(move || {
                    let mut top = TopK::new(k);
                    scan(job, rows, &mut top);
                    top
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    let mut top = TopK::new(k);
    for part in parts {
        top.merge(part);
    }
    Ok(top.into_hits())
}

/// The query in the forms the kernels take.
#[derive(Clone, Copy)]
struct Query<'a> {
    f32: &'a [f32],
    /// Rounded for an i8 memory ([`QueryI16::unused`] for the others).
    i16: &'a QueryI16,
}

/// What every slice of one search reads: the whole vector section, the query and `1 / |query|`.
#[derive(Clone, Copy)]
struct Scan<'a> {
    layout: &'a Layout,
    section: &'a [u8],
    query: Query<'a>,
    inv: f32,
}

/// Scores rows `rows` of the vector section into `top`, with the best kernels this CPU has.
fn scan(s: Scan, rows: std::ops::Range<usize>, top: &mut TopK) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        let vt = s.layout.header.vector_type;
        if vt == VectorType::I8 {
            // SAFETY: the CPU has AVX2, checked just above.
            unsafe { scan_i8_avx2(s, rows, top) };
        } else if vt == VectorType::F16 && std::arch::is_x86_feature_detected!("f16c") {
            // SAFETY: the CPU has AVX2, FMA and F16C, checked just above.
            unsafe { scan_f16_f16c(s, rows, top) };
        } else {
            // SAFETY: the CPU has AVX2 and FMA, checked just above.
            unsafe { scan_avx2(s, rows, top) };
        }
        return;
    }
    scan_rows(s, rows, top);
}

/// The i8 rows `rows` with [`dot_i8_avx2`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn scan_i8_avx2(s: Scan, rows: std::ops::Range<usize>, top: &mut TopK) {
    let Scan {
        layout,
        section,
        query: Query { i16: q, .. },
        inv,
    } = s;
    let (dim, count) = (layout.header.dim, layout.header.count);
    let (scales, codes) = section.split_at(4 * count);
    let codes = &codes[..dim * count];
    for i in rows {
        let dot = dot_i8_avx2(&codes[dim * i..], dim, &q.values);
        let scale = f32_at(&scales[4 * i..]);
        top.offer(i, dot as f32 * q.unscale * scale * inv);
    }
}

/// The f16 rows `rows` with [`dot_f16_f16c`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn scan_f16_f16c(s: Scan, rows: std::ops::Range<usize>, top: &mut TopK) {
    let dim = s.layout.header.dim;
    let part = &s.section[2 * dim * rows.start..2 * dim * rows.end];
    for (i, row) in part.chunks_exact(2 * dim).enumerate() {
        top.offer(rows.start + i, dot_f16_f16c(row, s.query.f32) * s.inv);
    }
}

/// [`scan_rows`] compiled for AVX2 + FMA (the kernels are inlined into it).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn scan_avx2(s: Scan, rows: std::ops::Range<usize>, top: &mut TopK) {
    scan_rows(s, rows, top);
}

#[inline(always)]
fn scan_rows(s: Scan, rows: std::ops::Range<usize>, top: &mut TopK) {
    let Scan {
        layout,
        section,
        query: Query { f32: query, i16: q },
        inv,
    } = s;
    let dim = layout.header.dim;
    let count = layout.header.count;
    let first = rows.start;
    match layout.header.vector_type {
        VectorType::F32 => {
            let part = &section[4 * dim * rows.start..4 * dim * rows.end];
            for (i, row) in part.chunks_exact(4 * dim).enumerate() {
                top.offer(first + i, dot_f32(row, query) * inv);
            }
        }
        VectorType::F16 => {
            let part = &section[2 * dim * rows.start..2 * dim * rows.end];
            for (i, row) in part.chunks_exact(2 * dim).enumerate() {
                top.offer(first + i, dot_f16(row, query) * inv);
            }
        }
        VectorType::I8 => {
            let (scales, codes) = section.split_at(4 * count);
            let codes = &codes[dim * rows.start..dim * rows.end];
            let scales = &scales[4 * rows.start..4 * rows.end];
            for (i, (row, scale)) in codes
                .chunks_exact(dim)
                .zip(scales.chunks_exact(4))
                .enumerate()
            {
                let dot = dot_i8(row, &q.values) as f32 * q.unscale;
                top.offer(first + i, dot * f32_at(scale) * inv);
            }
        }
    }
}

/// Vector `i`, dequantised into `out` (`out.len() == dim`, `i < count`).
pub(crate) fn decode_row(layout: &Layout, bytes: &[u8], i: usize, out: &mut [f32]) {
    let dim = layout.header.dim;
    let count = layout.header.count;
    let section = &bytes[layout.vectors_offset..layout.vectors_offset + layout.vectors_len];
    match layout.header.vector_type {
        VectorType::F32 => {
            let row = &section[i * dim * 4..(i + 1) * dim * 4];
            for (o, b) in out.iter_mut().zip(row.chunks_exact(4)) {
                *o = f32_at(b);
            }
        }
        VectorType::F16 => {
            let row = &section[i * dim * 2..(i + 1) * dim * 2];
            for (o, b) in out.iter_mut().zip(row.chunks_exact(2)) {
                *o = f16_at(b);
            }
        }
        VectorType::I8 => {
            let scale = f32_at(&section[i * 4..i * 4 + 4]);
            let row = &section[4 * count + i * dim..4 * count + (i + 1) * dim];
            for (o, &b) in out.iter_mut().zip(row) {
                *o = f32::from(b as i8) * scale;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn le(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn dot_kernels_match_a_plain_loop_for_every_tail_length() {
        for n in [1usize, 7, 8, 9, 16, 31, 100] {
            let a: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
            let q: Vec<f32> = (0..n).map(|i| (i as f32 * 0.11).cos()).collect();
            let want: f32 = a.iter().zip(&q).map(|(x, y)| x * y).sum();
            assert!((dot_f32(&le(&a), &q) - want).abs() < 1e-4, "f32 n={n}");
            let h: Vec<u8> = a
                .iter()
                .flat_map(|&x| half::f16::from_f32(x).to_le_bytes())
                .collect();
            assert!((dot_f16(&h, &q) - want).abs() < 1e-2, "f16 n={n}");
            let codes: Vec<u8> = (0..n).map(|i| (i as i8 - 50) as u8).collect();
            let want_i8: f32 = (0..n).map(|i| (i as f32 - 50.0) * q[i]).sum();
            let q16 = QueryI16::new(&q);
            let got = dot_i8(&codes, &q16.values) as f32 * q16.unscale;
            assert!(
                (got - want_i8).abs() < 2e-3 * n as f32,
                "i8 n={n}: {got} vs {want_i8}"
            );
        }
    }

    #[test]
    fn i8_kernels_sum_the_same_integers_with_and_without_reading_past_the_row() {
        let mut seed = 7u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as u32
        };
        for dim in [1usize, 7, 15, 16, 17, 31, 32, 33, 48, 221, 512] {
            let q: Vec<f32> = (0..dim)
                .map(|_| next() as f32 / u32::MAX as f32 - 0.5)
                .collect();
            let q16 = QueryI16::new(&q);
            assert_eq!(q16.values.len() % LANES, 0);
            // Three rows back to back; the last one has nothing after it.
            let codes: Vec<u8> = (0..3 * dim).map(|_| next() as u8).collect();
            for r in 0..3 {
                let row = &codes[r * dim..(r + 1) * dim];
                let plain = dot_i8(row, &q16.values);
                let exact: i64 = row
                    .iter()
                    .zip(&q16.values)
                    .map(|(&c, &x)| i64::from(c as i8) * i64::from(x))
                    .sum();
                assert_eq!(i64::from(plain), exact, "dim {dim} row {r}");
                #[cfg(target_arch = "x86_64")]
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: AVX2 checked just above.
                    let simd = unsafe { dot_i8_avx2(&codes[r * dim..], dim, &q16.values) };
                    assert_eq!(simd, plain, "dim {dim} row {r}");
                }
            }
        }
    }

    #[test]
    fn i8_query_scaling_cannot_overflow_at_the_largest_codes() {
        for dim in [1usize, 221, 4096, 65_536] {
            let q = vec![1.0f32; dim];
            let q16 = QueryI16::new(&q);
            let codes = vec![(-128i8) as u8; dim];
            let exact: i64 = q16.values.iter().map(|&x| -128 * i64::from(x)).sum();
            assert!(exact >= i64::from(i32::MIN), "dim {dim}");
            assert_eq!(i64::from(dot_i8(&codes, &q16.values)), exact, "dim {dim}");
        }
    }

    #[test]
    fn f16_kernels_match_the_exact_sum_for_every_tail_length() {
        // The portable kernel on every CPU, and F16C's where the CPU has it: both against the sum in f64.
        for n in [1usize, 7, 8, 9, 15, 16, 17, 24, 221] {
            let a: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
            let q: Vec<f32> = (0..n).map(|i| (i as f32 * 0.11).cos()).collect();
            let halves: Vec<half::f16> = a.iter().map(|&x| half::f16::from_f32(x)).collect();
            let want: f64 = halves
                .iter()
                .zip(&q)
                .map(|(h, &x)| f64::from(h.to_f32()) * f64::from(x))
                .sum();
            let h: Vec<u8> = halves.iter().flat_map(|x| x.to_le_bytes()).collect();
            let plain = f64::from(dot_f16(&h, &q));
            assert!(
                (plain - want).abs() < 1e-4,
                "plain n={n}: {plain} vs {want}"
            );
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
                && std::arch::is_x86_feature_detected!("f16c")
            {
                // SAFETY: the features were checked just above.
                let simd = f64::from(unsafe { dot_f16_f16c(&h, &q) });
                assert!((simd - want).abs() < 1e-4, "f16c n={n}: {simd} vs {want}");
            }
        }
    }

    #[test]
    fn f16_conversion_is_exact_for_every_finite_value() {
        for bits in 0..=u16::MAX {
            let h = half::f16::from_bits(bits);
            if h.is_finite() {
                assert_eq!(
                    f16_at(&bits.to_le_bytes()).to_bits(),
                    h.to_f32().to_bits(),
                    "{bits:#06x}"
                );
            }
        }
    }

    #[test]
    fn a_search_split_over_threads_gives_the_same_hits_as_one_thread() {
        // 40 000 memories: three slices of at least MIN_PER_THREAD; every 1000th row repeats row 7, so
        // equal scores cross slice boundaries and must still come back lowest index first.
        let (n, dim) = (40_000, 16);
        let mut vectors = crate::bench::random_unit_vectors(n, dim, 11);
        let row7 = vectors[7 * dim..8 * dim].to_vec();
        for i in (1000..n).step_by(1000) {
            vectors[i * dim..(i + 1) * dim].copy_from_slice(&row7);
        }
        let entries: Vec<crate::index::Entry> = (0..n)
            .map(|i| crate::index::Entry::new("m", format!("{i}.png")))
            .collect();
        let dir = tempfile::tempdir().unwrap();
        for vt in VectorType::ALL {
            let path = dir.path().join(format!("{}.vbi", vt.as_str()));
            crate::index::write_index(&path, "m", dim, vt, &entries, &vectors).unwrap();
            let index = crate::index::EmbeddingIndex::open(&path).unwrap();
            let query = &row7;
            let one = index.search(query, 50).unwrap();
            set_search_threads(3);
            let three = index.search(query, 50);
            set_search_threads(1);
            assert_eq!(one, three.unwrap(), "{vt:?}");
            assert_eq!(one[0].index, 7, "{vt:?}");
            assert_eq!(one[1].index, 1000, "{vt:?}");
        }
    }

    #[test]
    fn top_k_keeps_the_best_and_breaks_ties_by_lower_index() {
        let mut top = TopK::new(3);
        for (i, s) in [0.1, 0.9, 0.5, 0.9, f32::NAN, 0.7, -0.2].iter().enumerate() {
            top.offer(i, *s);
        }
        let hits = top.into_hits();
        let got: Vec<(usize, f32)> = hits.iter().map(|h| (h.index, h.score)).collect();
        assert_eq!(got, vec![(1, 0.9), (3, 0.9), (5, 0.7)]);
    }

    #[test]
    fn top_k_is_capped_at_its_capacity() {
        let mut top = TopK::new(MAX_TOP_K + 100);
        for i in 0..1000 {
            top.offer(i, i as f32 / 1000.0);
        }
        let hits = top.into_hits();
        assert_eq!(hits.len(), MAX_TOP_K);
        assert_eq!(hits[0].index, 999);
        assert_eq!(hits[MAX_TOP_K - 1].index, 1000 - MAX_TOP_K);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

        /// The heap keeps exactly what a full sort would: finite scores only, best first, ties to the
        /// lower index, at most `k` (capped at MAX_TOP_K).
        #[test]
        fn top_k_equals_a_full_sort(
            scores in proptest::collection::vec(
                proptest::prop_oneof![
                    8 => -1.0f32..1.0,
                    1 => proptest::sample::select(vec![0.5f32, -0.25, f32::NAN, f32::INFINITY, f32::NEG_INFINITY]),
                ],
                0..600,
            ),
            k in 0usize..300,
        ) {
            let mut top = TopK::new(k);
            for (i, s) in scores.iter().enumerate() {
                top.offer(i, *s);
            }
            let got: Vec<(usize, f32)> = top.into_hits().iter().map(|h| (h.index, h.score)).collect();
            let mut want: Vec<(usize, f32)> = scores
                .iter()
                .copied()
                .enumerate()
                .filter(|(_, s)| s.is_finite())
                .collect();
            want.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            want.truncate(k.min(MAX_TOP_K));
            proptest::prop_assert_eq!(got, want);
        }
    }
}
