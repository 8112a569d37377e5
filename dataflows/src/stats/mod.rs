//! The statistics of a window (CONTRACT section 4), as pure, mergeable values.
//!
//! * [`ScalarPartial`]: counts, error counts, and per field count / sum / min / max. Sums are kept
//!   as fixed-point integers ([`FixedSum`]), so merging is exact and order-independent: the same
//!   input gives bit-identical results for any number of workers.
//! * [`PartialStats`]: a scalar partial plus latency bucket counts and the set of users: what a
//!   worker accumulates for one window (or session) before merging across workers.
//! * [`WindowResult`]: the final statistics of a window, with percentiles read from the sorted
//!   bucket counts (nearest rank).

use compact_str::CompactString;
use hdrhistogram::Histogram;
use rustc_hash::FxHashSet;
use serde::{Deserialize, Serialize};
use std::sync::LazyLock;

mod buckets;
use buckets::bucket_bytes;
pub use buckets::{BucketCounts, STEPS, latency_step};

/// Scale of [`FixedSum`]: 40 fractional bits, 2^-40 ≈ 9.1e-13 resolution, ±1.5e26 range.
const FIXED_SCALE: f64 = (1u64 << 40) as f64;

/// 2^63: below it in magnitude, a whole `f64` converts to `i64` exactly.
const I64_LIMIT: f64 = 9_223_372_036_854_775_808.0;

/// A sum of `f64`s as a fixed-point integer: exact and associative, so partial sums can be merged
/// in any order with the same result.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct FixedSum(pub i128);

impl FixedSum {
    /// Converts one value (rounded to 2^-40; values beyond ±1.5e26 saturate).
    #[inline]
    pub fn from_f64(v: f64) -> FixedSum {
        let scaled = (v * FIXED_SCALE).round();
        // Most values fit 64 bits, whose conversion is one instruction (a 128-bit one is a call).
        if scaled.abs() < I64_LIMIT { FixedSum(i128::from(scaled as i64)) } else { FixedSum(scaled as i128) }
    }
    /// Adds another sum (wrapping: a sum beyond the range wraps instead of panicking).
    #[inline]
    pub fn add(&mut self, other: FixedSum) {
        self.0 = self.0.wrapping_add(other.0);
    }
    /// The sum as a float.
    pub fn to_f64(self) -> f64 {
        self.0 as f64 / FIXED_SCALE
    }
}

/// An `f64` kept as its bits so that it can live in ordered, hashable data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct F64Bits(pub u64);

impl F64Bits {
    /// Wraps a float.
    #[inline]
    pub fn new(v: f64) -> F64Bits {
        F64Bits(v.to_bits())
    }
    /// Unwraps the float.
    #[inline]
    pub fn get(self) -> f64 {
        f64::from_bits(self.0)
    }
}

/// Count, sum, min and max of one numeric field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Moments {
    /// Number of values.
    pub count: u64,
    /// Sum of the values.
    pub sum: FixedSum,
    /// Smallest value (meaningless when `count == 0`).
    pub min: F64Bits,
    /// Largest value (meaningless when `count == 0`).
    pub max: F64Bits,
}

impl Default for Moments {
    fn default() -> Self {
        Moments { count: 0, sum: FixedSum(0), min: F64Bits::new(f64::INFINITY), max: F64Bits::new(f64::NEG_INFINITY) }
    }
}

impl Moments {
    /// Adds one value.
    #[inline]
    pub fn add(&mut self, v: f64) {
        self.count += 1;
        self.sum.add(FixedSum::from_f64(v));
        if v < self.min.get() {
            self.min = F64Bits::new(v);
        }
        if v > self.max.get() {
            self.max = F64Bits::new(v);
        }
    }
    /// Merges another field summary.
    pub fn merge(&mut self, other: &Moments) {
        if other.count == 0 {
            return;
        }
        self.count += other.count;
        self.sum.add(other.sum);
        if other.min.get() < self.min.get() {
            self.min = other.min;
        }
        if other.max.get() > self.max.get() {
            self.max = other.max;
        }
    }
}

/// The additive and extreme statistics of a window, mergeable across workers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ScalarPartial {
    /// Events.
    pub count: u64,
    /// Events with `status == "error"`.
    pub errors: u64,
    /// `latency_ms` of the events that have one.
    pub latency: Moments,
    /// `value` of the events that have one.
    pub value: Moments,
}

impl ScalarPartial {
    /// Adds one event's contribution (its latency bucket and user are kept elsewhere).
    #[inline]
    pub fn add(&mut self, event: &Contributed) {
        self.count += 1;
        self.errors += u64::from(event.is_error);
        if let Some((latency, _)) = event.latency {
            self.latency.add(latency);
        }
        if let Some(v) = event.value {
            self.value.add(v);
        }
    }

    /// Merges another partial.
    pub fn merge(&mut self, other: &ScalarPartial) {
        self.count += other.count;
        self.errors += other.errors;
        self.latency.merge(&other.latency);
        self.value.merge(&other.value);
    }
}

/// Everything a worker accumulates for one window (or one session) of one key.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PartialStats {
    /// Counts, sums, extremes.
    pub scalar: ScalarPartial,
    /// Latency bucket (see [`latency_bucket`]) → number of latencies in it.
    #[serde(with = "bucket_bytes")]
    pub buckets: BucketCounts,
    /// Distinct `user_id`s, as their [`user_fingerprint`]s.
    #[serde(with = "fingerprint_bytes")]
    pub users: UserSet,
}

/// Merges two lists sorted by their first field (or by themselves), each key once: `new` makes
/// an element of `b`, `combine` folds an element of `b` into an equal one of `a`.
pub fn merge_sorted<T: Copy + KeyOf>(a: &[T], b: &[T], new: impl Fn(&T) -> T, combine: impl Fn(&mut T, &T)) -> Vec<T> {
    let mut merged = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].key().cmp(&b[j].key()) {
            std::cmp::Ordering::Less => {
                merged.push(a[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                merged.push(new(&b[j]));
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                let mut both = a[i];
                combine(&mut both, &b[j]);
                merged.push(both);
                i += 1;
                j += 1;
            }
        }
    }
    merged.extend_from_slice(&a[i..]);
    merged.extend(b[j..].iter().map(new));
    merged
}

/// What sorted lists are ordered by.
pub trait KeyOf {
    /// The key.
    type Key: Ord;
    /// The element's key.
    fn key(&self) -> Self::Key;
}

impl KeyOf for (u64, u64) {
    type Key = u64;
    fn key(&self) -> u64 {
        self.0
    }
}

impl KeyOf for u128 {
    type Key = u128;
    fn key(&self) -> u128 {
        *self
    }
}

/// Distinct users' fingerprints, the first one held inline: a key that is one user (an
/// aggregation or session by user) never allocates a set or probes one — about half the
/// partials of the embedded default's aggregations.
#[derive(Clone, Debug, Default)]
pub struct UserSet {
    first: Option<u128>,
    /// The others (never `first`).
    rest: FxHashSet<u128>,
}

impl UserSet {
    /// Adds a fingerprint.
    #[inline]
    pub fn insert(&mut self, user: u128) {
        match self.first {
            None => self.first = Some(user),
            Some(first) if first == user => {}
            Some(_) => {
                self.rest.insert(user);
            }
        }
    }

    /// How many distinct users.
    pub fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.rest.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.first.is_none()
    }

    /// The fingerprints, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = u128> + '_ {
        self.first.into_iter().chain(self.rest.iter().copied())
    }

    /// A set with room for `capacity` fingerprints.
    pub fn with_capacity(capacity: usize) -> UserSet {
        UserSet {
            first: None,
            rest: FxHashSet::with_capacity_and_hasher(capacity.saturating_sub(1), Default::default()),
        }
    }
}

impl PartialEq for UserSet {
    fn eq(&self, other: &UserSet) -> bool {
        let theirs = |user: u128| other.first == Some(user) || other.rest.contains(&user);
        self.len() == other.len() && self.iter().all(theirs)
    }
}

impl Extend<u128> for UserSet {
    fn extend<I: IntoIterator<Item = u128>>(&mut self, users: I) {
        users.into_iter().for_each(|user| self.insert(user));
    }
}

impl FromIterator<u128> for UserSet {
    fn from_iter<I: IntoIterator<Item = u128>>(users: I) -> UserSet {
        let mut set = UserSet::default();
        set.extend(users);
        set
    }
}

impl IntoIterator for UserSet {
    type Item = u128;
    type IntoIter = std::iter::Chain<std::option::IntoIter<u128>, std::collections::hash_set::IntoIter<u128>>;
    fn into_iter(self) -> Self::IntoIter {
        self.first.into_iter().chain(self.rest)
    }
}

/// Reads back a value serialized as one byte string, with `parse`: from the bytes, or from the
/// sequence of numbers a self-describing format (JSON) gives for them.
struct BytesOf<T> {
    /// What the bytes hold, for the error of a value of another type.
    expecting: &'static str,
    parse: fn(&[u8]) -> Result<T, String>,
}

impl<T> BytesOf<T> {
    fn deserialize<'de, D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<T, D::Error> {
        deserializer.deserialize_bytes(self)
    }
}

impl<'de, T> serde::de::Visitor<'de> for BytesOf<T> {
    type Value = T;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_bytes<E: serde::de::Error>(self, bytes: &[u8]) -> Result<T, E> {
        (self.parse)(bytes).map_err(E::custom)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<T, A::Error> {
        let mut bytes = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(byte) = seq.next_element::<u8>()? {
            bytes.push(byte);
        }
        (self.parse)(&bytes).map_err(serde::de::Error::custom)
    }
}

/// A set of fingerprints serialized as one byte string of 16 bytes each (little-endian), not as
/// a sequence of integers: in a checkpoint or between processes the sets of the by-type windows
/// are most of the bytes, and a random 128-bit integer takes 19 bytes as a varint and an encoder
/// call of its own.
pub(crate) mod fingerprint_bytes {
    use super::{BytesOf, UserSet};
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(set: &UserSet, serializer: S) -> Result<S::Ok, S::Error> {
        let mut bytes = Vec::with_capacity(set.len() * 16);
        for fingerprint in set.iter() {
            bytes.extend_from_slice(&fingerprint.to_le_bytes());
        }
        serializer.serialize_bytes(&bytes)
    }

    fn fingerprints(bytes: &[u8]) -> Result<UserSet, String> {
        if !bytes.len().is_multiple_of(16) {
            return Err(format!("{} bytes of fingerprints: not a multiple of 16", bytes.len()));
        }
        let mut set = UserSet::with_capacity(bytes.len() / 16);
        for chunk in bytes.chunks_exact(16) {
            set.insert(u128::from_le_bytes(chunk.try_into().expect("16 bytes")));
        }
        Ok(set)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<UserSet, D::Error> {
        BytesOf { expecting: "bytes of 128-bit fingerprints", parse: fingerprints }.deserialize(deserializer)
    }
}

/// A user id's 128-bit XXH3 fingerprint: distinct users are counted and merged as fingerprints
/// (16 bytes, compared and sorted as integers) instead of strings. Two different ids share a
/// fingerprint with probability 2^-128; over n distinct users of one window the chance of any
/// miscount is about n²/2^129 — for a billion users, 10^-21.
#[inline]
pub fn user_fingerprint(user_id: &str) -> u128 {
    xxhash_rust::xxh3::xxh3_128(user_id.as_bytes())
}

/// What one event adds to a partial: its latency with the latency's bucket, and its user's
/// fingerprint, computed once for all the aggregations the event is added to.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Contributed {
    /// Whether the event is an error.
    pub is_error: bool,
    /// `latency_ms` and the step of its [`latency_bucket`] ([`latency_step`]).
    pub latency: Option<(f64, u16)>,
    /// `value`.
    pub value: Option<f64>,
    /// The [`user_fingerprint`] of `user_id`.
    pub user: Option<u128>,
}

impl Contributed {
    /// The contribution of an event with these fields.
    #[inline]
    pub fn of(
        is_error: bool,
        latency_ms: Option<f64>,
        value: Option<f64>,
        user_id: Option<&CompactString>,
    ) -> Contributed {
        Contributed {
            is_error,
            latency: latency_ms.map(|l| (l, latency_step(l))),
            value,
            user: user_id.map(|u| user_fingerprint(u)),
        }
    }
}

impl PartialStats {
    /// Adds one event's contribution.
    #[inline]
    pub fn add(
        &mut self,
        is_error: bool,
        latency_ms: Option<f64>,
        value: Option<f64>,
        user_id: Option<&CompactString>,
    ) {
        self.add_keyed(&Contributed::of(is_error, latency_ms, value, user_id));
    }

    /// Adds one event's contribution, its bucket and fingerprint already computed (once per
    /// event, however many aggregations it is added to).
    #[inline]
    pub fn add_keyed(&mut self, event: &Contributed) {
        self.scalar.add(event);
        if let Some((_, step)) = event.latency {
            self.buckets.add(step);
        }
        if let Some(user) = event.user {
            self.users.insert(user);
        }
    }

    /// Merges another partial of the same window and key.
    pub fn merge(&mut self, other: &PartialStats) {
        self.scalar.merge(&other.scalar);
        self.buckets.merge(&other.buckets);
        self.users.extend(other.users.iter());
    }

    /// The final statistics, when this partial holds the whole window.
    pub fn finish(&self) -> WindowResult {
        WindowResult::from_parts(self.scalar, &self.buckets.sorted(), self.users.len() as u64)
    }
}

/// HdrHistogram with 3 significant digits over nanoseconds: 0.05% bucket resolution.
static LATENCY_BUCKETS: LazyLock<Histogram<u64>> =
    LazyLock::new(|| Histogram::new_with_bounds(1, 1 << 62, 3).expect("static HdrHistogram bounds are valid"));

/// The HdrHistogram bucket (its lowest equivalent value, in nanoseconds) of a latency in ms.
#[inline]
pub fn latency_bucket(latency_ms: f64) -> u64 {
    let ns = (latency_ms * 1e6).clamp(0.0, (1u64 << 62) as f64) as u64;
    LATENCY_BUCKETS.lowest_equivalent(ns)
}

/// The representative latency of a bucket, in ms: the middle of the bucket.
pub fn bucket_latency_ms(bucket: u64) -> f64 {
    LATENCY_BUCKETS.median_equivalent(bucket) as f64 / 1e6
}

/// The percentiles reported in metrics records.
pub const PERCENTILES: [u64; 4] = [50, 90, 95, 99];

/// Nearest-rank percentile buckets from bucket counts sorted by bucket: for each `p`, the bucket
/// holding the value of rank `ceil(p * n / 100)`.
pub fn percentile_buckets(sorted: &[(u64, u64)]) -> [u64; 4] {
    let total: u64 = sorted.iter().map(|(_, c)| c).sum();
    let mut out = [0; 4];
    if total == 0 {
        return out;
    }
    let mut seen = 0;
    let mut next = 0;
    for &(bucket, count) in sorted {
        seen += count;
        while next < PERCENTILES.len() && seen >= nearest_rank(PERCENTILES[next], total) {
            out[next] = bucket;
            next += 1;
        }
    }
    out
}

/// The 1-based nearest rank of percentile `p` among `n` values, in integer arithmetic.
#[inline]
pub fn nearest_rank(p: u64, n: u64) -> u64 {
    (p * n).div_ceil(100).max(1)
}

/// The final statistics of one window of one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct WindowResult {
    /// Counts, sums, extremes.
    pub scalar: ScalarPartial,
    /// Distinct `user_id`s.
    pub unique_users: u64,
    /// Buckets of p50, p90, p95, p99 (meaningless when there are no latencies).
    pub percentile_buckets: [u64; 4],
}

impl WindowResult {
    /// `100 * error_count / count` (0 for an empty window).
    pub fn error_rate(&self) -> f64 {
        let s = &self.scalar;
        if s.count > 0 { 100.0 * s.errors as f64 / s.count as f64 } else { 0.0 }
    }

    /// Assembles a result from merged scalars, bucket counts sorted by bucket, and the user count.
    pub fn from_parts(scalar: ScalarPartial, sorted_buckets: &[(u64, u64)], unique_users: u64) -> WindowResult {
        WindowResult { scalar, unique_users, percentile_buckets: percentile_buckets(sorted_buckets) }
    }

    /// Latency percentiles in ms (p50, p90, p95, p99), clamped to the exact min and max, or `None`
    /// when the window has no latencies.
    pub fn latency_percentiles(&self) -> Option<[f64; 4]> {
        let l = &self.scalar.latency;
        if l.count == 0 {
            return None;
        }
        Some(self.percentile_buckets.map(|b| bucket_latency_ms(b).clamp(l.min.get(), l.max.get())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_users_survive_postcard_and_json_as_16_bytes_each() {
        let mut stats = PartialStats::default();
        for user in ["u1", "u2", "someone-else"] {
            stats.add(false, Some(5.0), None, Some(&CompactString::from(user)));
        }
        let bytes = postcard::to_stdvec(&stats).unwrap();
        let back: PartialStats = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, stats);
        let set_only = postcard::to_stdvec(&stats.users.iter().collect::<Vec<_>>()).unwrap().len();
        let users_only = PartialStats { users: stats.users.clone(), ..Default::default() };
        let empty = postcard::to_stdvec(&PartialStats::default()).unwrap().len();
        assert_eq!(postcard::to_stdvec(&users_only).unwrap().len() - empty, 3 * 16, "({set_only} as integers)");
        let text = serde_json::to_string(&stats).unwrap();
        assert_eq!(serde_json::from_str::<PartialStats>(&text).unwrap(), stats);
        assert!(postcard::from_bytes::<PartialStats>(&bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn the_longest_accepted_latency_is_bucketed_within_a_tenth_of_a_percent() {
        // Pins the bound of event::MAX_LATENCY_MS: buckets reach 2^62 ns (4.6e12 ms).
        for latency in [crate::event::MAX_LATENCY_MS, 0.0, 1e-6, 0.001, 87.5] {
            let back = bucket_latency_ms(latency_bucket(latency));
            assert!((back - latency).abs() <= 0.001 * latency.max(1e-6), "{latency} -> {back}");
        }
    }
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};
    use rand_distr::{Distribution, LogNormal};

    fn exact_percentile(sorted: &[f64], p: u64) -> f64 {
        sorted[(nearest_rank(p, sorted.len() as u64) - 1) as usize]
    }

    #[test]
    fn percentiles_are_within_one_percent_of_exact_on_random_data() {
        let mut rng = SmallRng::seed_from_u64(3);
        for round in 0..200 {
            let n = rng.gen_range(1..5_000);
            let dist = LogNormal::new(rng.gen_range(-2.0..6.0), rng.gen_range(0.1..2.0)).unwrap();
            let mut values: Vec<f64> = (0..n).map(|_| dist.sample(&mut rng)).collect();
            let mut partial = PartialStats::default();
            for v in &values {
                partial.add(false, Some(*v), None, None);
            }
            values.sort_by(f64::total_cmp);
            let result = partial.finish();
            let got = result.latency_percentiles().unwrap();
            for (i, p) in PERCENTILES.iter().enumerate() {
                let exact = exact_percentile(&values, *p);
                let error = (got[i] - exact).abs() / exact;
                assert!(error < 0.01, "round {round}: p{p} {} vs exact {exact} ({error})", got[i]);
            }
            assert_eq!(result.scalar.latency.min.get(), values[0]);
            assert_eq!(result.scalar.latency.max.get(), values[values.len() - 1]);
        }
    }

    #[test]
    fn agrees_with_an_hdrhistogram_per_window() {
        let mut rng = SmallRng::seed_from_u64(9);
        let mut histogram = Histogram::<u64>::new_with_bounds(1, 1 << 62, 3).unwrap();
        let mut partial = PartialStats::default();
        for _ in 0..10_000 {
            let ms: f64 = rng.gen_range(0.01..5_000.0);
            histogram.record((ms * 1e6) as u64).unwrap();
            partial.add(false, Some(ms), None, None);
        }
        let ours = partial.finish();
        for (i, p) in PERCENTILES.iter().enumerate() {
            let theirs = histogram.value_at_percentile(*p as f64) as f64 / 1e6;
            let mine = bucket_latency_ms(ours.percentile_buckets[i]);
            assert!((mine - theirs).abs() / theirs < 0.002, "p{p}: {mine} vs hdrhistogram {theirs}");
        }
    }

    #[test]
    fn a_fixed_sum_converts_as_a_128_bit_conversion_would() {
        let scaled = |v: f64| FixedSum((v * FIXED_SCALE).round() as i128);
        let edge = I64_LIMIT / FIXED_SCALE;
        for v in [0.0, -0.0, 0.5 / FIXED_SCALE, 1.5 / FIXED_SCALE, -2.5 / FIXED_SCALE, 185.163, -51.065, 1e15, -1e15]
            .into_iter()
            .chain([edge, -edge, edge.next_down(), (-edge).next_up(), edge.next_up(), 1e26, -1e26, 1e300, f64::MAX])
        {
            assert_eq!(FixedSum::from_f64(v), scaled(v), "{v}");
        }
    }

    #[test]
    fn merging_is_order_independent_and_exact() {
        let values = [0.1, 0.2, 0.3, 1e9, -1e9, 7.25, 1e-3];
        let mut forward = Moments::default();
        values.iter().for_each(|v| forward.add(*v));
        let mut backward = Moments::default();
        values.iter().rev().for_each(|v| backward.add(*v));
        assert_eq!(forward, backward);
        let exact: f64 = 0.1 + 0.2 + 0.3 + 7.25 + 1e-3;
        assert!((forward.sum.to_f64() - exact).abs() / exact < 1e-12);
        let mut a = Moments::default();
        values[..3].iter().for_each(|v| a.add(*v));
        let mut b = Moments::default();
        values[3..].iter().for_each(|v| b.add(*v));
        a.merge(&b);
        assert_eq!(a, forward);
    }

    #[test]
    fn nearest_rank_uses_integer_arithmetic() {
        assert_eq!(nearest_rank(99, 100), 99);
        assert_eq!(nearest_rank(99, 1), 1);
        assert_eq!(nearest_rank(50, 3), 2);
        assert_eq!(nearest_rank(95, 20), 19);
        assert_eq!(nearest_rank(90, 7), 7);
    }

    #[test]
    fn users_are_counted_once() {
        let mut p = PartialStats::default();
        let alice = CompactString::from("alice");
        let bob = CompactString::from("bob");
        p.add(true, None, Some(2.0), Some(&alice));
        p.add(false, None, Some(-1.0), Some(&alice));
        p.add(false, None, None, Some(&bob));
        p.add(false, None, None, None);
        let r = p.finish();
        assert_eq!(r.unique_users, 2);
        assert_eq!(r.scalar.count, 4);
        assert_eq!(r.scalar.errors, 1);
        assert_eq!(r.scalar.value.count, 2);
        assert_eq!(r.scalar.value.min.get(), -1.0);
        assert_eq!(r.latency_percentiles(), None);
    }
}
