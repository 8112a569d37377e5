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

    /// (sum in seconds, count, buckets as (upper bound, count in that bucket alone), the last
    /// bound `f64::MAX` for +Inf): what `prometheus-client`'s encoder takes (it cumulates).
    pub fn read(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let buckets: Vec<(f64, u64)> = self
            .counts
            .iter()
            .enumerate()
            .map(|(i, count)| (self.bounds.get(i).copied().unwrap_or(f64::MAX), count.load(Ordering::Relaxed)))
            .collect();
        let count = buckets.iter().map(|(_, n)| n).sum();
        (self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6, count, buckets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_observation_is_in_the_first_bucket_whose_bound_it_does_not_exceed() {
        let h = Histogram::latency();
        for s in [0.0005, 0.001, 0.003, 0.7, 120.0, -1.0] {
            h.observe(s);
        }
        let (sum, count, buckets) = h.read();
        assert_eq!(count, 6);
        assert!((sum - 120.7045).abs() < 1e-6, "{sum}");
        // 0.0005, 0.001 (a bound is inclusive: le) and -1 → 0 are in the first bucket.
        assert_eq!(buckets[0], (0.001, 3));
        assert_eq!(buckets[2], (0.005, 1));
        assert_eq!(buckets[9], (1.0, 1));
        assert_eq!(buckets.last().copied(), Some((f64::MAX, 1)));
        assert_eq!(buckets.iter().map(|(_, n)| n).sum::<u64>(), 6);
    }
}
