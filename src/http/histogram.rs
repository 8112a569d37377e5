//! A fixed-bucket histogram of seconds for `/metrics` (Prometheus' cumulative `le` buckets),
//! lock-free so that a sink can observe into it while a scrape reads it.

use std::sync::atomic::{AtomicU64, Ordering};

/// Bucket upper bounds for latencies, seconds: 1 ms to 1 min.
const LATENCY_BOUNDS: [f64; 14] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0];

/// Observations in buckets, their count and sum.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    /// Per bucket (not cumulative), and one more for above the last bound.
    counts: Vec<AtomicU64>,
    /// The sum in microseconds.
    sum_micros: AtomicU64,
}

impl Histogram {
    /// A histogram with the latency buckets.
    pub fn latency() -> Histogram {
        Histogram {
            bounds: &LATENCY_BOUNDS,
            counts: (0..=LATENCY_BOUNDS.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
        }
    }

    /// Adds one observation (seconds; a negative one counts as 0).
    pub fn observe(&self, seconds: f64) {
        let seconds = seconds.max(0.0);
        let bucket = self.bounds.partition_point(|bound| *bound < seconds);
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
    }

    /// (sum in seconds, count, cumulative buckets as (upper bound, count) ending with +Inf).
    pub fn read(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let mut cumulative = 0;
        let mut buckets = Vec::with_capacity(self.counts.len());
        for (i, count) in self.counts.iter().enumerate() {
            cumulative += count.load(Ordering::Relaxed);
            buckets.push((self.bounds.get(i).copied().unwrap_or(f64::INFINITY), cumulative));
        }
        (self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6, cumulative, buckets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_with_an_upper_bound_each() {
        let h = Histogram::latency();
        for s in [0.0005, 0.001, 0.003, 0.7, 120.0, -1.0] {
            h.observe(s);
        }
        let (sum, count, buckets) = h.read();
        assert_eq!(count, 6);
        assert!((sum - 120.7045).abs() < 1e-6, "{sum}");
        // 0.0005, 0.001 (a bound is inclusive: le) and -1 → 0 are in the first bucket.
        assert_eq!(buckets[0], (0.001, 3));
        assert_eq!(buckets[2], (0.005, 4));
        assert_eq!(buckets[8], (0.5, 4));
        assert_eq!(buckets[9], (1.0, 5));
        assert_eq!(buckets.last().copied(), Some((f64::INFINITY, 6)));
    }
}
