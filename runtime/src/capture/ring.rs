//! A lock-free ring that an audio callback can fill.
//!
//! The ring is single-producer/single-consumer over `AtomicU32` cells (an `f32`'s bits): pushing never
//! allocates, locks, logs or blocks, so it is safe inside a real-time audio callback. Samples that do not
//! fit are dropped and counted as an overrun. A fresh ring is made for every stream (a reconnected
//! microphone gets a new one), and it is freed when both ends are gone.
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

struct RingInner {
    cells: Box<[AtomicU32]>,
    /// Total samples ever written / read; the cell of sample `i` is `i % cells.len()`.
    written: AtomicUsize,
    read: AtomicUsize,
    overrun_samples: AtomicU64,
    overrun_events: AtomicU64,
    /// Set by the producer when it is dropped: nothing more will come.
    closed: AtomicBool,
}

/// The writing end of a ring. Exactly one exists per ring.
pub struct Producer {
    inner: Arc<RingInner>,
}

/// The reading end of a ring. Exactly one exists per ring.
pub struct Consumer {
    inner: Arc<RingInner>,
}

/// Counts of samples lost because the consumer fell behind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Overruns {
    /// Pushes that could not store everything.
    pub events: u64,
    /// Samples dropped in total.
    pub samples: u64,
}

/// A ring of `capacity` samples (at least 2), split into its two ends.
pub fn ring(capacity: usize) -> (Producer, Consumer) {
    let capacity = capacity.max(2);
    let cells: Box<[AtomicU32]> = (0..capacity).map(|_| AtomicU32::new(0)).collect();
    let inner = Arc::new(RingInner {
        cells,
        written: AtomicUsize::new(0),
        read: AtomicUsize::new(0),
        overrun_samples: AtomicU64::new(0),
        overrun_events: AtomicU64::new(0),
        closed: AtomicBool::new(false),
    });
    (
        Producer {
            inner: Arc::clone(&inner),
        },
        Consumer { inner },
    )
}

impl Producer {
    /// Stores as many samples as fit and returns how many; never blocks or allocates.
    pub fn try_push(&mut self, samples: &[f32]) -> usize {
        let inner = &*self.inner;
        let cap = inner.cells.len();
        let written = inner.written.load(Ordering::Relaxed);
        let read = inner.read.load(Ordering::Acquire);
        let free = cap - written.wrapping_sub(read);
        let n = free.min(samples.len());
        for (i, &s) in samples[..n].iter().enumerate() {
            inner.cells[written.wrapping_add(i) % cap].store(s.to_bits(), Ordering::Relaxed);
        }
        inner
            .written
            .store(written.wrapping_add(n), Ordering::Release);
        n
    }

    /// For the audio callback: stores what fits and counts the rest as an overrun.
    pub fn push(&mut self, samples: &[f32]) {
        let n = self.try_push(samples);
        if n < samples.len() {
            let inner = &*self.inner;
            inner.overrun_events.fetch_add(1, Ordering::Relaxed);
            inner
                .overrun_samples
                .fetch_add((samples.len() - n) as u64, Ordering::Relaxed);
        }
    }

    /// Free cells right now.
    pub fn free(&self) -> usize {
        let inner = &*self.inner;
        inner.cells.len()
            - inner
                .written
                .load(Ordering::Relaxed)
                .wrapping_sub(inner.read.load(Ordering::Acquire))
    }

    /// Whether the consumer has gone away (nobody will read what is pushed).
    pub fn consumer_gone(&self) -> bool {
        Arc::strong_count(&self.inner) < 2
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        self.inner.closed.store(true, Ordering::Release);
    }
}

impl Consumer {
    /// Appends every sample available now to `out`; returns how many.
    pub fn pop_into(&mut self, out: &mut Vec<f32>) -> usize {
        let inner = &*self.inner;
        let cap = inner.cells.len();
        let read = inner.read.load(Ordering::Relaxed);
        let written = inner.written.load(Ordering::Acquire);
        let n = written.wrapping_sub(read);
        out.reserve(n);
        for i in 0..n {
            out.push(f32::from_bits(
                inner.cells[read.wrapping_add(i) % cap].load(Ordering::Relaxed),
            ));
        }
        inner.read.store(read.wrapping_add(n), Ordering::Release);
        n
    }

    /// Samples waiting to be read.
    pub fn len(&self) -> usize {
        let inner = &*self.inner;
        inner
            .written
            .load(Ordering::Acquire)
            .wrapping_sub(inner.read.load(Ordering::Relaxed))
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn capacity(&self) -> usize {
        self.inner.cells.len()
    }

    /// True once the producer is gone and everything it wrote has been read.
    pub fn finished(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire) && self.is_empty()
    }

    pub fn overruns(&self) -> Overruns {
        Overruns {
            events: self.inner.overrun_events.load(Ordering::Relaxed),
            samples: self.inner.overrun_samples.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_keeps_order_across_wraparound() {
        let (mut p, mut c) = ring(8);
        let mut out = Vec::new();
        let mut next = 0.0f32;
        let mut expect = 0.0f32;
        for round in 0..50 {
            let n = 1 + round % 7;
            let chunk: Vec<f32> = (0..n).map(|i| next + i as f32).collect();
            let pushed = p.try_push(&chunk);
            next += pushed as f32;
            out.clear();
            c.pop_into(&mut out);
            for v in &out {
                assert_eq!(*v, expect);
                expect += 1.0;
            }
        }
        assert!(expect > 100.0);
        assert_eq!(c.overruns(), Overruns::default());
    }

    #[test]
    fn ring_counts_overruns_and_never_blocks() {
        let (mut p, mut c) = ring(4);
        p.push(&[1.0, 2.0, 3.0]);
        p.push(&[4.0, 5.0, 6.0]);
        assert_eq!(p.free(), 0);
        assert_eq!(
            c.overruns(),
            Overruns {
                events: 1,
                samples: 2
            }
        );
        let mut out = Vec::new();
        assert_eq!(c.pop_into(&mut out), 4);
        assert_eq!(out, vec![1.0, 2.0, 3.0, 4.0]);
        assert!(!c.finished());
        drop(p);
        assert!(c.finished());
    }

    #[test]
    fn ring_moves_samples_between_threads_in_order() {
        let (mut p, mut c) = ring(64);
        let total = 100_000usize;
        let writer = std::thread::spawn(move || {
            let mut i = 0usize;
            while i < total {
                let chunk: Vec<f32> = (i..(i + 10).min(total)).map(|v| v as f32).collect();
                let n = p.try_push(&chunk);
                i += n;
                if n == 0 {
                    std::thread::yield_now();
                }
            }
        });
        let mut got = Vec::with_capacity(total);
        while !c.finished() {
            if c.pop_into(&mut got) == 0 {
                std::thread::yield_now();
            }
        }
        writer.join().unwrap();
        c.pop_into(&mut got);
        assert_eq!(got.len(), total);
        assert!(got.iter().enumerate().all(|(i, &v)| v == i as f32));
    }
}
