//! Inference threads. tract runs single-threaded unless given an executor: [`set_inference_threads`]
//! installs, process-wide, tract's multithreaded matrix-multiply executor (a rayon pool of `n` threads,
//! the `multithread-mm` feature) or goes back to one thread.
//!
//! The same executor splits VisualByte's own operators ([`super::ops`]), and each
//! model run starts on one of its threads ([`in_inference_pool`]). On the 2-vCPU x86_64 VM the
//! benchmarks ran on, a second thread makes one 96 px embedding ~1.3–1.4× faster, with tract's panel
//! gate off ([`DEFAULT_PANEL_THRESHOLD`]; `BENCHMARKS.md`); a board profile's `threads` and `--threads`
//! choose the count, and 1 keeps the single-threaded path.
use std::sync::{Arc, RwLock};

use tract_linalg::multithread::{set_default_executor, Executor};

/// The pool of [`set_inference_threads`] (none for one thread), for [`in_inference_pool`].
static POOL: RwLock<Option<Arc<rayon::ThreadPool>>> = RwLock::new(None);

/// Runs `f` on one of the inference threads when there are several, so that the operators' splits
/// inside it start from a pool thread (the caller's share runs there, the others steal it) instead of
/// handing each operator from the caller's thread to the pool and waiting on it, once per operator.
/// With one thread, runs `f` here.
///
/// Tried and not kept: keeping the other threads polling for work while `f` runs (so that a split
/// need not wake them) was slower on the 2-vCPU VM (2 threads, embedding median 4.1–4.7 ms against
/// 3.4–5.2 ms, alternating).
pub fn in_inference_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    let pool = POOL.read().ok().and_then(|p| p.clone());
    match pool {
        Some(pool) => pool.install(f),
        None => f(),
    }
}

/// The most inference threads accepted.
pub const MAX_THREADS: usize = 256;

/// Sets tract's executor for every model run in this process: `1` = single-threaded, `n > 1` = a pool of
/// `n` threads. Returns an error (and leaves it as it was) when `n` is 0, too large, or the pool cannot be
/// started. Searches have their own count (`index::set_search_threads`).
pub fn set_inference_threads(n: usize) -> Result<(), String> {
    if n == 0 || n > MAX_THREADS {
        return Err(format!("threads: {n} is outside 1..={MAX_THREADS}"));
    }
    if n == 1 {
        set_default_executor(Executor::SingleThread);
        if let Ok(mut p) = POOL.write() {
            *p = None;
        }
        return Ok(());
    }
    tract_linalg::multithread::set_threading_panel_threshold(panel_threshold());
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .thread_name(|i| format!("visualbyte-infer-{i}"))
        .build()
        .map_err(|e| format!("cannot start {n} inference threads: {e}"))?;
    let pool = Arc::new(pool);
    set_default_executor(Executor::MultiThread(pool.clone()));
    if let Ok(mut p) = POOL.write() {
        *p = Some(pool);
    }
    Ok(())
}

/// tract runs a matrix product on one thread when its output has fewer kernel tiles than its panel
/// threshold (64 by default). At 96 px most of ConvNeXt's products are that small, so with tract's
/// default a second thread sped up almost nothing; with the gate off (0) every product splits. Measured
/// on the 2-vCPU x86_64 VM, 2 threads, same session (`visualbyte bench --threads 2 --ops`): matrix
/// products 6.5 / 6.6 ms per embedding with the gate at 64, 5.8 / 5.1 ms with it at 0 (BENCHMARKS.md).
/// `VISUALBYTE_MM_PANEL_THRESHOLD` overrides it, for measuring a board.
pub const DEFAULT_PANEL_THRESHOLD: usize = 0;

fn panel_threshold() -> usize {
    panel_threshold_from(
        std::env::var("VISUALBYTE_MM_PANEL_THRESHOLD")
            .ok()
            .as_deref(),
    )
}

fn panel_threshold_from(value: Option<&str>) -> usize {
    match value.map(str::trim) {
        None | Some("") => DEFAULT_PANEL_THRESHOLD,
        Some(v) => v.parse().unwrap_or_else(|_| {
            log::warn!("VISUALBYTE_MM_PANEL_THRESHOLD={v:?} is not a number; using {DEFAULT_PANEL_THRESHOLD}");
            DEFAULT_PANEL_THRESHOLD
        }),
    }
}

/// Logical CPUs the process may use (1 when unknown).
pub fn available_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panel_threshold_defaults_to_splitting_every_product_and_can_be_overridden() {
        assert_eq!(panel_threshold_from(None), 0);
        assert_eq!(panel_threshold_from(Some(" ")), 0);
        assert_eq!(panel_threshold_from(Some("64")), 64);
        assert_eq!(panel_threshold_from(Some("lots")), DEFAULT_PANEL_THRESHOLD);
    }

    #[test]
    fn zero_or_too_many_threads_are_refused() {
        assert!(set_inference_threads(0).unwrap_err().contains("outside"));
        assert!(set_inference_threads(MAX_THREADS + 1).is_err());
    }

    /// The inference threads are process-wide: tests that change them take turns.
    static THREADS: std::sync::Mutex<()> = std::sync::Mutex::new(());

    #[test]
    fn a_run_that_panics_on_the_pool_leaves_the_pool_working() {
        let _turn = THREADS.lock().unwrap_or_else(|e| e.into_inner());
        set_inference_threads(2).unwrap();
        let r = std::panic::catch_unwind(|| in_inference_pool(|| -> usize { panic!("bad image") }));
        assert!(r.is_err());
        // The pool still runs split work to the end.
        let sum = in_inference_pool(|| {
            let mut v = vec![0u32; 4096];
            tract_linalg::multithread::par_chunks_mut(&mut v, 64, usize::MAX, |_, chunk| {
                chunk.iter_mut().for_each(|x| *x = 2);
                Ok(())
            })
            .unwrap();
            v.iter().map(|&x| u64::from(x)).sum::<u64>()
        });
        set_inference_threads(1).unwrap();
        assert_eq!(sum, 8192);
    }

    #[test]
    fn model_runs_start_on_an_inference_thread_when_there_are_several_and_inline_with_one() {
        let _turn = THREADS.lock().unwrap_or_else(|e| e.into_inner());
        set_inference_threads(2).unwrap();
        let inside = in_inference_pool(rayon::current_thread_index);
        set_inference_threads(1).unwrap();
        let after = in_inference_pool(rayon::current_thread_index);
        assert!(inside.is_some(), "ran on {inside:?}");
        assert_eq!(after, None);
    }
}
