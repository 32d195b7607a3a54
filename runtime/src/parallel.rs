//! Inference threads. tract runs single-threaded unless given an executor: [`set_inference_threads`]
//! installs, process-wide, tract's multithreaded matrix-multiply executor (a rayon pool of `n` threads,
//! the `multithread-mm` feature) or goes back to one thread.
//!
//! The same executor splits VisualByte's own operators (`depthwise`, `gelu`). On the 2-vCPU x86_64 VM
//! the benchmarks ran on, a second thread did not make one 96 px embedding faster (`BENCHMARKS.md`); a
//! board profile's `threads` and `--threads` choose the count, and 1 keeps the single-threaded path.
use std::sync::Arc;

use tract_linalg::multithread::{set_default_executor, Executor};

/// The most inference threads accepted.
pub const MAX_THREADS: usize = 256;

/// Sets tract's executor for every model run in this process: `1` = single-threaded, `n > 1` = a pool of
/// `n` threads; searches of large memories use as many ([`crate::index::set_search_threads`]). Returns an
/// error (and leaves both as they were) when `n` is 0, too large, or the pool cannot be started.
pub fn set_inference_threads(n: usize) -> Result<(), String> {
    if n == 0 || n > MAX_THREADS {
        return Err(format!("threads: {n} is outside 1..={MAX_THREADS}"));
    }
    if n == 1 {
        set_default_executor(Executor::SingleThread);
        crate::index::set_search_threads(1);
        return Ok(());
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .thread_name(|i| format!("visualbyte-infer-{i}"))
        .build()
        .map_err(|e| format!("cannot start {n} inference threads: {e}"))?;
    set_default_executor(Executor::MultiThread(Arc::new(pool)));
    crate::index::set_search_threads(n);
    Ok(())
}

/// Logical CPUs the process may use (1 when unknown).
pub fn available_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_or_too_many_threads_are_refused() {
        assert!(set_inference_threads(0).unwrap_err().contains("outside"));
        assert!(set_inference_threads(MAX_THREADS + 1).is_err());
    }
}
