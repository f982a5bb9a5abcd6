//! A response-time histogram cheap enough for every proxied request, for the dashboard's
//! p50/p99 chart.
//!
//! Buckets are log-linear (HdrHistogram's idea, our code): below 8 µs one bucket per
//! microsecond, then each power of two split in 8 equal sub-buckets, so a bucket is at
//! most 1/8 of its values wide and its midpoint is within 1/16 (6.25 %) of any value in
//! it. 240 buckets cover 1 µs to 71 minutes (longer is counted in the last one).
//!
//! Recording is one relaxed `fetch_add` into the calling thread's own shard (the
//! [`super::counter`] slots: two proxy threads never write the same cache line), no lock,
//! no allocation. Reading sums the shards: it runs once a second, not per request.

use super::counter::{slot_index, SLOTS};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Bits of sub-bucket precision: 2^3 = 8 sub-buckets per power of two.
const SUB_BITS: u32 = 3;
const SUB: usize = 1 << SUB_BITS;
/// The highest bit a recorded value (µs) may have: values are clamped to 2^32 - 1 µs.
const MAX_BIT: u32 = 31;
/// Number of buckets: the 8 exact ones, then 8 per power of two from 2^3 to 2^31.
pub const BUCKETS: usize = (MAX_BIT - SUB_BITS + 2) as usize * SUB;

/// The bucket of a value in microseconds.
pub fn bucket_of(us: u64) -> usize {
    let v = us.min((1u64 << (MAX_BIT + 1)) - 1);
    if v < SUB as u64 {
        return v as usize;
    }
    let bit = 63 - v.leading_zeros();
    let group = (bit - SUB_BITS + 1) as usize;
    group * SUB + ((v >> (bit - SUB_BITS)) as usize & (SUB - 1))
}

/// The smallest value of bucket `i` and its width, in microseconds.
pub fn bucket_range(i: usize) -> (u64, u64) {
    if i < SUB {
        return (i as u64, 1);
    }
    let group = (i / SUB) as u32;
    let sub = (i % SUB) as u64;
    ((SUB as u64 + sub) << (group - 1), 1 << (group - 1))
}

/// The value a bucket stands for: its midpoint (exact below 8 µs).
pub fn bucket_value(i: usize) -> u64 {
    let (low, width) = bucket_range(i);
    low + width / 2
}

/// The `q` quantile (0..=1) of the values counted in `counts` (one count per bucket), as
/// its bucket's midpoint in microseconds; None when nothing was counted.
pub fn quantile(counts: &[u64], q: f64) -> Option<u64> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).clamp(1, total);
    let mut seen = 0;
    for (i, n) in counts.iter().enumerate() {
        seen += n;
        if seen >= rank {
            return Some(bucket_value(i));
        }
    }
    None
}

/// One thread's buckets, on cache lines of their own.
#[repr(align(128))]
struct Shard([AtomicU64; BUCKETS]);

/// Response times of one backend: counts per bucket, never reset (readers take differences).
pub struct Latency(Box<[Shard; SLOTS]>);

impl Default for Latency {
    fn default() -> Latency {
        Latency(Box::new(std::array::from_fn(|_| {
            Shard(std::array::from_fn(|_| AtomicU64::new(0)))
        })))
    }
}

impl Latency {
    /// Counts one response time (the proxy's time to the response head).
    pub fn record(&self, took: Duration) {
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.0[slot_index()].0[bucket_of(us)].fetch_add(1, Ordering::Relaxed);
    }

    /// Adds this histogram's counts (all threads) into `out`, bucket by bucket.
    pub fn add_to(&self, out: &mut [u64; BUCKETS]) {
        for shard in self.0.iter() {
            for (o, n) in out.iter_mut().zip(shard.0.iter()) {
                *o += n.load(Ordering::Relaxed);
            }
        }
    }

    /// Bytes this histogram takes on the heap.
    pub const fn heap_bytes() -> usize {
        std::mem::size_of::<[Shard; SLOTS]>()
    }
}

impl std::fmt::Debug for Latency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut c = [0; BUCKETS];
        self.add_to(&mut c);
        write!(f, "Latency({} responses)", c.iter().sum::<u64>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_at_most_an_eighth_wide() {
        assert_eq!(BUCKETS, 240);
        let mut next = 0;
        for i in 0..BUCKETS {
            let (low, width) = bucket_range(i);
            assert_eq!(low, next, "bucket {i} starts where {} ended", i.max(1) - 1);
            assert!(
                width == 1 || width * 8 <= low,
                "bucket {i}: {low} + {width}"
            );
            assert_eq!(bucket_of(low), i);
            assert_eq!(bucket_of(low + width - 1), i);
            next = low + width;
        }
        assert_eq!(next, 1 << 32);
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
        assert_eq!(bucket_of(0), 0);
    }

    /// Quantiles of a known distribution: 1..=100,000 µs once each (uniform), and a
    /// bimodal one (99 % at 1 ms, 1 % at 250 ms) whose p99 and p99.5 fall on either side.
    #[test]
    fn quantiles_match_known_distributions() {
        let h = Latency::default();
        for us in 1..=100_000u64 {
            h.record(Duration::from_micros(us));
        }
        let mut c = [0; BUCKETS];
        h.add_to(&mut c);
        assert_eq!(c.iter().sum::<u64>(), 100_000);
        for (q, exact) in [(0.5, 50_000.0), (0.9, 90_000.0), (0.99, 99_000.0)] {
            let got = quantile(&c, q).unwrap() as f64;
            assert!(
                (got - exact).abs() / exact <= 0.0625,
                "p{}: {got} vs {exact}",
                q * 100.0
            );
        }
        let h = Latency::default();
        for i in 0..10_000 {
            let ms = if i % 100 == 0 { 250 } else { 1 };
            h.record(Duration::from_millis(ms));
        }
        let mut c = [0; BUCKETS];
        h.add_to(&mut c);
        let near = |v: u64, want: u64| (v as f64 - want as f64).abs() <= want as f64 / 16.0;
        assert!(near(quantile(&c, 0.5).unwrap(), 1_000));
        assert!(near(quantile(&c, 0.99).unwrap(), 1_000));
        assert!(near(quantile(&c, 0.995).unwrap(), 250_000));
        assert_eq!(quantile(&[0; BUCKETS], 0.5), None);
    }

    #[test]
    fn threads_count_into_their_own_shards_and_reads_sum_them() {
        let h = std::sync::Arc::new(Latency::default());
        let ts: Vec<_> = (0..4)
            .map(|_| {
                let h = h.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        h.record(Duration::from_micros(300));
                    }
                })
            })
            .collect();
        for t in ts {
            t.join().unwrap();
        }
        let mut c = [0; BUCKETS];
        h.add_to(&mut c);
        assert_eq!(c[bucket_of(300)], 4000);
        assert_eq!(Latency::heap_bytes(), 8 * 1920);
    }
}
