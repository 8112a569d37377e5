//! Latency bucket counts: how many latencies of one partial fell in each HdrHistogram bucket
//! (3 significant digits over nanoseconds), read back sorted for exact nearest-rank percentiles.
//!
//! A bucket is known on the hot path by its *step*, a dense number below [`STEPS`] (exact below
//! 2048 ns, then 1024 steps per power of two), computed straight from the latency. A partial
//! keeps its counts in one of two ways, chosen by how many distinct buckets it has:
//!
//! * **sparse** (most partials: a user's window or session holds a few latencies): steps are
//!   appended to a pending list — a write at the end of a small vector — and sorted into the
//!   sorted (bucket, count) list when the list reaches [`PENDING_BUCKETS`] or the counts are read;
//! * **dense** (a busy key's window: tens of thousands of latencies over thousands of buckets):
//!   one counter per step over the range of steps seen, so a latency is one increment, where the
//!   sparse way sorted it and merged it into a list of thousands. A partial turns dense once it
//!   holds [`DENSE_FROM`] distinct buckets that lie close enough together ([`dense_enough`]); a
//!   later latency far outside its range waits in the pending list instead of stretching it.
//!
//! Either way the counts read back are the same, and so is their serialized form.

use super::merge_sorted;
use std::borrow::Cow;

/// How many latencies wait before they are counted.
pub(super) const PENDING_BUCKETS: usize = 2048;

/// How many distinct buckets a partial holds before it may count by step.
const DENSE_FROM: usize = 256;

/// How many steps a dense range grows by beyond the step that made it grow.
const GROWTH: usize = 256;

/// Steps: every bucket of a latency in [0, 2^62] ns has a step below this.
pub const STEPS: usize = 2048 + 52 * 1024 + 1;

/// A bucket's step: exact below 2048, then 1024 steps per power of two (order-preserving). Of
/// any value in nanoseconds, the step of its bucket: the bits below a bucket's 10 significant
/// ones are dropped either way.
#[inline]
pub(super) fn step_of_bucket(bucket: u64) -> u64 {
    if bucket < 2048 {
        return bucket;
    }
    let k = u64::from(63 - bucket.leading_zeros()) - 10;
    2048 + (k - 1) * 1024 + ((bucket >> k) - 1024)
}

/// The bucket (an HdrHistogram lowest-equivalent value) of a step, if the step is one.
pub(super) fn bucket_of_step(step: u64) -> Option<u64> {
    if step < 2048 {
        return Some(step);
    }
    let j = step - 2048;
    let k = u32::try_from(j / 1024 + 1).ok().filter(|k| *k <= 53)?;
    Some((j % 1024 + 1024) << k)
}

/// The step of a bucket, when the bucket is a lowest-equivalent value.
fn exact_step(bucket: u64) -> Option<usize> {
    let step = step_of_bucket(bucket);
    (bucket_of_step(step) == Some(bucket)).then_some(step as usize)
}

/// The step of the bucket of a latency in ms ([`super::latency_bucket`]), without the histogram.
#[inline]
pub fn latency_step(latency_ms: f64) -> u16 {
    step_of_bucket((latency_ms * 1e6).clamp(0.0, (1u64 << 62) as f64) as u64) as u16
}

/// Whether counting `distinct` buckets over a range of `range` steps by step is worth it: at
/// most 4 counters per distinct bucket (a sparse entry is two), or 32 KiB.
fn dense_enough(range: usize, distinct: usize) -> bool {
    range <= (4 * distinct).max(4096)
}

/// Latency bucket counts (see the module).
#[derive(Clone, Debug, Default)]
pub struct BucketCounts {
    /// (bucket, count), sorted by bucket, each bucket once; when dense, the buckets outside its
    /// range (and any bucket that is not a step, from a checkpoint's raw map).
    counted: Vec<(u64, u64)>,
    /// Steps not yet counted.
    pending: Vec<u16>,
    /// Counts by step, once the partial is busy.
    dense: Option<Box<Dense>>,
}

/// One counter per step over `first..first + counts.len()`.
#[derive(Clone, Debug)]
struct Dense {
    first: usize,
    counts: Vec<u64>,
    /// Counters that are not zero.
    nonzero: usize,
}

impl Dense {
    /// Counts `n` latencies of `step` if it is in range (or close enough to grow to); whether it did.
    #[inline]
    fn add(&mut self, step: usize, n: u64, grow: bool) -> bool {
        if let Some(count) = self.counts.get_mut(step.wrapping_sub(self.first)) {
            self.nonzero += usize::from(*count == 0);
            *count += n;
            return true;
        }
        let (lo, hi) = (self.first.min(step), (self.first + self.counts.len()).max(step + 1));
        if !grow || !dense_enough(hi - lo, self.nonzero + 1) {
            return false;
        }
        // With room for the next few steps beyond: a tail that creeps outwards a step at a time
        // would otherwise copy the counters each time.
        let end = self.first + self.counts.len();
        let lo = if lo < self.first { lo.saturating_sub(GROWTH) } else { lo };
        let hi = if hi > end { (hi + GROWTH).min(STEPS) } else { hi };
        self.cover(lo, hi);
        self.add(step, n, false)
    }

    /// Counts `n` latencies of `bucket` if it is a step in range; whether it did.
    fn add_bucket(&mut self, bucket: u64, n: u64) -> bool {
        exact_step(bucket).is_some_and(|step| self.add(step, n, false))
    }

    /// Widens the range to cover `lo..hi`.
    fn cover(&mut self, lo: usize, hi: usize) {
        let (lo, hi) = (lo.min(self.first), hi.max(self.first + self.counts.len()));
        if lo < self.first {
            let mut counts = vec![0; hi - lo];
            counts[self.first - lo..][..self.counts.len()].copy_from_slice(&self.counts);
            self.counts = counts;
            self.first = lo;
        } else {
            self.counts.resize(hi - lo, 0);
        }
    }

    /// Adds another's counters.
    fn merge(&mut self, other: &Dense) {
        self.cover(other.first, other.first + other.counts.len());
        let mine = &mut self.counts[other.first - self.first..][..other.counts.len()];
        for (into, n) in mine.iter_mut().zip(&other.counts) {
            self.nonzero += usize::from(*into == 0 && *n != 0);
            *into += n;
        }
    }

    /// The counts as sorted (bucket, count) pairs.
    fn sorted(&self) -> Vec<(u64, u64)> {
        let buckets = self.counts.iter().enumerate().filter(|(_, n)| **n != 0);
        buckets
            .map(|(i, n)| (bucket_of_step((self.first + i) as u64).expect("a dense range holds steps"), *n))
            .collect()
    }
}

impl BucketCounts {
    /// Counts one latency of bucket step `step`, as [`latency_step`] gives it (below 54,273).
    #[inline]
    pub fn add(&mut self, step: u16) {
        debug_assert!(usize::from(step) < STEPS, "not a latency's step: {step}");
        self.pending.push(step);
        if self.pending.len() >= PENDING_BUCKETS {
            self.count_pending();
        }
    }

    /// Folds the pending steps into the counts, and counts by step from then on if the partial
    /// has become busy.
    fn count_pending(&mut self) {
        if let Some(dense) = &mut self.dense {
            // A run of increments with no other work between them: their cache misses overlap.
            self.pending.retain(|step| !dense.add(usize::from(*step), 1, true));
        }
        if self.pending.is_empty() {
            return;
        }
        self.counted = with_pending(&self.counted, &mut self.pending);
        self.pending.clear();
        if self.dense.is_none() && self.counted.len() >= DENSE_FROM {
            self.densify();
        }
    }

    /// Moves the counted buckets into counts by step, leaving out the farthest 1% on each side
    /// (they stay counted), when the rest lie close enough together.
    fn densify(&mut self) {
        let steps: Vec<usize> = self.counted.iter().filter_map(|(b, _)| exact_step(*b)).collect();
        let trim = steps.len() / 100;
        let Some((&lo, &hi)) = steps.get(trim).zip(steps.get(steps.len().saturating_sub(trim + 1))) else {
            return;
        };
        if !dense_enough(hi + 1 - lo, steps.len() - 2 * trim) {
            return;
        }
        let mut dense = Dense { first: lo, counts: vec![0; hi + 1 - lo], nonzero: 0 };
        self.counted.retain(|(bucket, n)| !dense.add_bucket(*bucket, *n));
        self.dense = Some(Box::new(dense));
    }

    /// Adds another's counts.
    pub fn merge(&mut self, other: &BucketCounts) {
        if let Some(theirs) = &other.dense {
            match &mut self.dense {
                Some(mine) => mine.merge(theirs),
                None => self.dense = Some(theirs.clone()),
            }
        }
        if !other.counted.is_empty() {
            let rest: Cow<'_, [(u64, u64)]> = match &mut self.dense {
                Some(dense) => {
                    Cow::Owned(other.counted.iter().filter(|(b, n)| !dense.add_bucket(*b, *n)).copied().collect())
                }
                None => Cow::Borrowed(&other.counted),
            };
            if !rest.is_empty() {
                self.counted = merge_counts(&self.counted, &rest);
            }
        }
        self.pending.extend_from_slice(&other.pending);
        if self.pending.len() >= PENDING_BUCKETS {
            self.count_pending();
        }
    }

    /// The counts, sorted by bucket.
    pub fn sorted(&self) -> Cow<'_, [(u64, u64)]> {
        let counted = match self.pending.is_empty() {
            true => Cow::Borrowed(&self.counted[..]),
            false => Cow::Owned(with_pending(&self.counted, &mut self.pending.clone())),
        };
        match &self.dense {
            Some(dense) => Cow::Owned(merge_counts(&counted, &dense.sorted())),
            None => counted,
        }
    }

    /// The counts, sorted by bucket.
    pub fn into_sorted(mut self) -> Vec<(u64, u64)> {
        let counted =
            if self.pending.is_empty() { self.counted } else { with_pending(&self.counted, &mut self.pending) };
        match self.dense {
            Some(dense) => merge_counts(&counted, &dense.sorted()),
            None => counted,
        }
    }

    /// Counts from (bucket, count) pairs in any order, a bucket maybe repeated.
    pub fn from_counts(mut pairs: Vec<(u64, u64)>) -> BucketCounts {
        pairs.sort_unstable();
        BucketCounts { counted: runs(pairs), pending: Vec::new(), dense: None }
    }
}

impl PartialEq for BucketCounts {
    fn eq(&self, other: &BucketCounts) -> bool {
        self.sorted() == other.sorted()
    }
}

/// `counted` with the steps of `pending` (sorted in place) counted in.
fn with_pending(counted: &[(u64, u64)], pending: &mut [u16]) -> Vec<(u64, u64)> {
    pending.sort_unstable();
    let buckets = pending.iter().map(|step| (bucket_of_step(u64::from(*step)).expect("a latency's step"), 1));
    merge_counts(counted, &runs(buckets))
}

/// Two sorted bucket count lists (each bucket once) as one, the counts of a bucket in both added.
fn merge_counts(a: &[(u64, u64)], b: &[(u64, u64)]) -> Vec<(u64, u64)> {
    merge_sorted(a, b, |x| *x, |into, (_, count)| into.1 += count)
}

/// Sorted (bucket, count) pairs with each bucket once: the counts of equal neighbours added.
fn runs(sorted: impl IntoIterator<Item = (u64, u64)>) -> Vec<(u64, u64)> {
    let mut runs: Vec<(u64, u64)> = Vec::new();
    for (bucket, count) in sorted {
        match runs.last_mut() {
            Some((last, total)) if *last == bucket => *total += count,
            _ => runs.push((bucket, count)),
        }
    }
    runs
}

/// Latency bucket counts serialized as one byte string: the buckets sorted, each as the
/// difference from the one before in bucket steps and its count, both LEB128 varints — about 2
/// bytes a bucket instead of 5–10 as a map of integers (a long session holds hundreds). A
/// bucket is an HdrHistogram lowest-equivalent value (3 significant digits: 2048 sub-buckets),
/// so `b >> k` for its magnitude `k` is exact; a map with any other key is kept as raw keys.
pub(super) mod bucket_bytes {
    use super::{BucketCounts, bucket_of_step as bucket, step_of_bucket as step};
    use crate::stats::BytesOf;
    use serde::{Deserializer, Serializer};

    const COMPACT: u8 = 0;
    const RAW: u8 = 1;

    fn put(out: &mut Vec<u8>, mut n: u64) {
        while n >= 0x80 {
            out.push((n as u8) | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
    }

    fn get(bytes: &mut &[u8]) -> Option<u64> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = bytes.split_first()?;
            *bytes = rest;
            n |= u64::from(byte & 0x7f).checked_shl(shift)?;
            if byte < 0x80 {
                return Some(n);
            }
        }
        None
    }

    pub fn serialize<S: Serializer>(buckets: &BucketCounts, serializer: S) -> Result<S::Ok, S::Error> {
        let buckets = buckets.sorted();
        let compact = buckets.iter().all(|(b, _)| bucket(step(*b)) == Some(*b));
        // `step` keeps the order of the buckets it maps.
        let sorted = buckets.iter().map(|(b, n)| (if compact { step(*b) } else { *b }, *n));
        let mut bytes = Vec::with_capacity(1 + sorted.len() * 3);
        bytes.push(if compact { COMPACT } else { RAW });
        let mut previous = 0;
        for (key, count) in sorted {
            put(&mut bytes, key - previous);
            put(&mut bytes, count);
            previous = key;
        }
        serializer.serialize_bytes(&bytes)
    }

    fn buckets_of(bytes: &[u8]) -> Result<BucketCounts, String> {
        let bad = || "latency buckets: bad encoding".to_owned();
        let (&mode, mut rest) = bytes.split_first().ok_or_else(bad)?;
        let mut map = Vec::new();
        let mut key = 0u64;
        while !rest.is_empty() {
            key = key.checked_add(get(&mut rest).ok_or_else(bad)?).ok_or_else(bad)?;
            let count = get(&mut rest).ok_or_else(bad)?;
            let bucket = match mode {
                COMPACT => bucket(key).ok_or_else(bad)?,
                RAW => key,
                _ => return Err(bad()),
            };
            map.push((bucket, count));
        }
        Ok(BucketCounts::from_counts(map))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<BucketCounts, D::Error> {
        BytesOf { expecting: "bytes of latency bucket counts", parse: buckets_of }.deserialize(deserializer)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn every_latency_bucket_has_an_exact_step() {
            let mut latency = 1e-6;
            while latency <= crate::event::MAX_LATENCY_MS {
                let b = crate::stats::latency_bucket(latency);
                assert_eq!(bucket(step(b)), Some(b), "{latency} ms: bucket {b}");
                latency *= 1.0007;
            }
            for b in [0, 1, 2047, 2048, 2049 & !1, 1 << 62] {
                let b = crate::stats::LATENCY_BUCKETS.lowest_equivalent(b);
                assert_eq!(bucket(step(b)), Some(b));
            }
        }

        #[test]
        fn bucket_maps_round_trip_compact_and_raw() {
            for (mode, keys) in [("[0,", vec![0u64, 5, 2048, 4104, 1 << 62]), ("[1,", vec![3, 2049, 12_345_677])] {
                let map =
                    BucketCounts::from_counts(keys.iter().enumerate().map(|(i, k)| (*k, i as u64 * 300 + 1)).collect());
                let mut bytes = Vec::new();
                let mut ser = serde_json::Serializer::new(&mut bytes);
                serialize(&map, &mut ser).unwrap();
                assert!(bytes.starts_with(mode.as_bytes()), "{}", String::from_utf8_lossy(&bytes));
                let back = deserialize(&mut serde_json::Deserializer::from_slice(&bytes)).unwrap();
                assert_eq!(map, back);
            }
            assert!(buckets_of(&[0, 0x80]).is_err());
            assert!(buckets_of(&[7, 1, 1]).is_err());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{PartialStats, latency_bucket};
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    /// What the counts must read back as: a map of bucket to count.
    fn model(steps: &[u16]) -> BTreeMap<u64, u64> {
        let mut map = BTreeMap::new();
        for step in steps {
            *map.entry(bucket_of_step(u64::from(*step)).unwrap()).or_default() += 1;
        }
        map
    }

    fn counts_of(steps: &[u16]) -> BucketCounts {
        let mut counts = BucketCounts::default();
        steps.iter().for_each(|step| counts.add(*step));
        counts
    }

    fn read(counts: &BucketCounts) -> BTreeMap<u64, u64> {
        let sorted = counts.sorted().into_owned();
        assert!(sorted.windows(2).all(|w| w[0].0 < w[1].0), "sorted, each bucket once");
        assert_eq!(sorted, counts.clone().into_sorted());
        sorted.into_iter().collect()
    }

    #[test]
    fn a_latency_step_is_the_step_of_its_bucket() {
        let mut latency = 1e-7;
        while latency <= crate::event::MAX_LATENCY_MS * 10.0 {
            for l in [latency, latency.next_up(), latency.next_down()] {
                assert_eq!(u64::from(latency_step(l)), step_of_bucket(latency_bucket(l)), "{l} ms");
            }
            latency *= 1.0003;
        }
        for l in [0.0, -1.0, 2047e-6, 2048e-6, f64::MAX] {
            assert_eq!(u64::from(latency_step(l)), step_of_bucket(latency_bucket(l)), "{l} ms");
            assert!(usize::from(latency_step(l)) < STEPS);
        }
    }

    #[test]
    fn a_few_buckets_stay_pending_and_many_close_ones_count_by_step() {
        let few: Vec<u16> = (0..3 * PENDING_BUCKETS as u64 + 17).map(|i| ((i * 7_919) % 100 + 3_000) as u16).collect();
        let counts = counts_of(&few);
        assert!(counts.dense.is_none() && !counts.pending.is_empty(), "100 buckets: sparse, some pending");
        assert_eq!(read(&counts), model(&few));

        // 3,000 buckets over 9,000 steps, and a few far away.
        let mut many: Vec<u16> = (0..40_000u64).map(|i| (12_000 + (i * 7_919) % 9_000 / 3 * 3) as u16).collect();
        many.extend([5, 40_000, 5, 12_001]);
        let counts = counts_of(&many);
        let dense = counts.dense.as_ref().expect("busy: counted by step");
        assert!(
            dense.counts.len() < 9_000 + 2 * GROWTH + 100,
            "the range covers the close buckets only: {}",
            dense.counts.len()
        );
        assert_eq!(read(&counts), model(&many));
        let bytes = postcard::to_stdvec(&PartialStats { buckets: counts.clone(), ..Default::default() }).unwrap();
        let back: PartialStats = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back.buckets, counts);
        assert_eq!(read(&back.buckets), model(&many));
    }

    #[test]
    fn merged_counts_are_the_counts_of_both() {
        let mut merged = counts_of(&(0..5_000u64).map(|i| (10_000 + i % 2_000) as u16).collect::<Vec<_>>());
        assert!(merged.dense.is_some());
        merged.merge(&BucketCounts::from_counts(vec![(5, 2), (5, 1), (1 << 40, 3), (3, 1)]));
        let raw = BucketCounts::from_counts(vec![(2049, 4)]);
        merged.merge(&raw);
        let mut expected = model(&(0..5_000u64).map(|i| (10_000 + i % 2_000) as u16).collect::<Vec<_>>());
        for (b, n) in [(5, 3), (1 << 40, 3), (3, 1), (2049, 4)] {
            *expected.entry(b).or_default() += n;
        }
        assert_eq!(read(&merged), expected);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Any latencies, added and merged in any arrangement, read back as the plain count of
        /// each bucket, and serialize to the bytes of that plain count.
        #[test]
        fn counts_read_back_as_a_map_of_buckets(
            parts in prop::collection::vec(
                prop_oneof![
                    // A busy key: close buckets, counted by step past 2,048 latencies.
                    prop::collection::vec(10_000u16..14_000, 0..5_000),
                    // Close buckets and a few anywhere.
                    prop::collection::vec(
                        prop_oneof![50 => 11_000u16..13_000, 1 => any::<u16>().prop_map(|s| s % STEPS as u16)],
                        0..5_000,
                    ),
                    // Anywhere, and below 2,048 ns.
                    prop::collection::vec(
                        prop_oneof![any::<u16>().prop_map(|s| s % STEPS as u16), 0u16..2_100],
                        0..3_000,
                    ),
                ],
                1..6,
            ),
            order in any::<u64>(),
        ) {
            let mut all = Vec::new();
            let mut parts: Vec<BucketCounts> = parts.iter().map(|steps| { all.extend_from_slice(steps); counts_of(steps) }).collect();
            for part in &parts {
                prop_assert_eq!(read(part), read(&BucketCounts::from_counts(part.clone().into_sorted())));
            }
            // Merge in an order the seed picks, each into the one before or after.
            let mut order = order;
            while parts.len() > 1 {
                let i = (order % parts.len() as u64) as usize;
                order /= 3;
                let part = parts.remove(i);
                let into = if i == 0 { 0 } else { i - 1 };
                parts[into].merge(&part);
            }
            let merged = parts.pop().unwrap();
            prop_assert_eq!(read(&merged), model(&all));
            let plain = BucketCounts::from_counts(model(&all).into_iter().collect());
            let bytes = |b: &BucketCounts| postcard::to_stdvec(&PartialStats { buckets: b.clone(), ..Default::default() }).unwrap();
            prop_assert_eq!(bytes(&merged), bytes(&plain));
        }
    }
}
