//! A counter written from every proxy thread without sharing a cache line between them.
//!
//! Each proxied request bumps about ten counters (frontend and backend requests,
//! responses by class, bytes, response time, in-flight). As plain atomics, two proxy
//! threads on two cores pass those cache lines back and forth on every request. Here each
//! thread adds into its own padded slot, and a read sums the slots: writes are frequent
//! and reads (stats, metrics, leastconn) comparatively rare.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Slots per counter; threads beyond this share slots (still correct, just contended).
pub(crate) const SLOTS: usize = 8;

#[derive(Default)]
#[repr(align(128))]
struct Slot(AtomicU64);

/// The slot of the calling thread: threads take slots in turn as they first count.
pub(crate) fn slot_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static MINE: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    MINE.with(|m| {
        if m.get() == usize::MAX {
            m.set(NEXT.fetch_add(1, Ordering::Relaxed) % SLOTS);
        }
        m.get()
    })
}

/// A `u64` counter with `AtomicU64`'s calls, sharded per thread. Values wrap like an
/// `AtomicU64`, so an add on one thread and a sub on another still sum right.
#[derive(Default)]
pub struct Counter([Slot; SLOTS]);

impl Counter {
    pub fn new(v: u64) -> Counter {
        let c = Counter::default();
        c.0[0].0.store(v, Ordering::Relaxed);
        c
    }

    pub fn fetch_add(&self, v: u64, order: Ordering) {
        self.0[slot_index()].0.fetch_add(v, order);
    }

    pub fn fetch_sub(&self, v: u64, order: Ordering) {
        self.0[slot_index()].0.fetch_sub(v, order);
    }

    pub fn load(&self, order: Ordering) -> u64 {
        self.0
            .iter()
            .fold(0u64, |sum, s| sum.wrapping_add(s.0.load(order)))
    }
}

impl std::fmt::Debug for Counter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn sums_over_threads_and_wraps_like_an_atomic() {
        let c = Arc::new(Counter::new(5));
        let hs: Vec<_> = (0..12)
            .map(|_| {
                let c = c.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        c.fetch_add(2, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(c.load(Ordering::Relaxed), 5 + 12 * 2000);
        // Added here, taken away on another thread: the sum is still right.
        let c = Arc::new(Counter::default());
        c.fetch_add(3, Ordering::Relaxed);
        let c2 = c.clone();
        std::thread::spawn(move || c2.fetch_sub(3, Ordering::Relaxed))
            .join()
            .unwrap();
        assert_eq!(c.load(Ordering::Relaxed), 0);
    }
}
