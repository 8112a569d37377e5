//! Window results: the workers' contributions to a window, exchanged by (aggregation, key), are
//! merged once the input frontier passes their flush slot's time — scalar partials, latency
//! bucket counts (merged and sorted by bucket, so percentiles are one scan) and distinct users
//! (their union) — into one [`WindowResult`] per window and key, emitted at that time.

use crate::operators::window_partials::{Contribution, SlotContribution};
use crate::record::{WindowKey, WindowRecord};
use crate::stats::{ScalarPartial, WindowResult, merge_sorted};
use rustc_hash::FxHashMap;
use std::collections::BTreeMap;
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::generic::Operator;

/// Merges the contributions of one window (one per worker that saw its key), sorted so that the
/// merge does not depend on their arrival order. Bucket lists and user lists arrive sorted, so
/// they are merged in one pass each; of two (one per worker, the common case with two workers)
/// the users are only counted, not merged.
pub fn merge_contributions(input: &mut [Contribution]) -> WindowResult {
    if let [only] = input {
        return WindowResult::from_parts(only.scalar, &only.buckets, only.users.len() as u64);
    }
    input.sort_unstable();
    let mut scalar = ScalarPartial::default();
    for contribution in input.iter() {
        scalar.merge(&contribution.scalar);
    }
    if let [a, b] = input {
        let buckets = merge_sorted(&a.buckets, &b.buckets, |x| *x, |into, (_, c)| into.1 += c);
        return WindowResult::from_parts(scalar, &buckets, union_len(&a.users, &b.users));
    }
    let mut buckets: Vec<(u64, u64)> = Vec::new();
    let mut users: Vec<u128> = Vec::new();
    for contribution in input.iter() {
        buckets = merge_sorted(&buckets, &contribution.buckets, |x| *x, |into, (_, c)| into.1 += c);
        users = merge_sorted(&users, &contribution.users, |u| *u, |_, _| {});
    }
    WindowResult::from_parts(scalar, &buckets, users.len() as u64)
}

/// How many distinct values two sorted lists (each value once) hold together.
fn union_len(a: &[u128], b: &[u128]) -> u64 {
    let (mut i, mut j, mut both) = (0, 0, 0u64);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                both += 1;
                i += 1;
                j += 1;
            }
        }
    }
    (a.len() + b.len()) as u64 - both
}

/// Extension trait: final window records from window contributions.
pub trait WindowResults<'s> {
    /// Reduces contributions per window; emits each window once, when it is complete, at the
    /// time of its flush slot.
    fn window_results(self) -> StreamVec<'s, u64, WindowRecord>;
}

/// The contributions that arrived for one flush slot's time: the capability to emit their
/// windows at that time, and each window's contributions.
type SlotWindows = (Capability<u64>, FxHashMap<WindowKey, Vec<Contribution>>);

impl<'s> WindowResults<'s> for StreamVec<'s, u64, SlotContribution> {
    fn window_results(self) -> StreamVec<'s, u64, WindowRecord> {
        // By (aggregation, key), as `WindowKey` hashes: every window of a key on one worker,
        // which emits them in the order of their ends (the alert detectors rely on it).
        let route = |(window, _, _): &SlotContribution| crate::shard::exchange_by(window);
        self.unary_frontier(Exchange::new(route), "WindowResults", |_cap, _info| {
            let mut slots: BTreeMap<u64, SlotWindows> = BTreeMap::new();
            move |(input, frontier), output| {
                input.for_each_stamp(|cap, batches| {
                    for batch in batches {
                        for (window, contribution, time) in batch.drain(..) {
                            let (_, windows) =
                                slots.entry(time).or_insert_with(|| (cap.delayed(&time, 0), FxHashMap::default()));
                            windows.entry(window).or_default().push(contribution);
                        }
                    }
                });
                // Every worker's contribution to a slot's windows is in once the frontier passes
                // the slot's time. A slot's windows leave sorted (a key's windows by their end).
                while let Some(entry) = slots.first_entry() {
                    if frontier.less_equal(entry.key()) {
                        break;
                    }
                    let (cap, windows) = entry.remove();
                    let mut records: Vec<WindowRecord> = windows
                        .into_iter()
                        .map(|(window, mut contributions)| (window, merge_contributions(&mut contributions)))
                        .collect();
                    records.sort_unstable_by(|a, b| a.0.cmp(&b.0));
                    output.session(&cap).give_iterator(records.into_iter());
                }
            }
        })
    }
}

/// Extension trait: window records at their window's end.
pub trait AtWindowEnds<'s> {
    /// Sends every record at `end - 1` of its window, whatever slot carried it, so that sinks
    /// batch a window end's records together.
    fn at_window_ends(self) -> StreamVec<'s, u64, WindowRecord>;
}

impl<'s> AtWindowEnds<'s> for StreamVec<'s, u64, WindowRecord> {
    fn at_window_ends(self) -> StreamVec<'s, u64, WindowRecord> {
        self.unary(Pipeline, "AtWindowEnds", |_cap, _info| {
            move |input, output| {
                input.for_each_stamp(|cap, batches| {
                    for batch in batches {
                        for (window, result) in batch.drain(..) {
                            output.session(&cap.delayed(&(window.end - 1), 0)).give((window, result));
                        }
                    }
                });
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::PartialStats;
    use compact_str::CompactString;

    fn partial(events: &[(u64, f64, &str)]) -> PartialStats {
        let mut p = PartialStats::default();
        for (errors, latency, user) in events {
            p.add(*errors > 0, Some(*latency), None, Some(&CompactString::from(*user)));
        }
        p
    }

    #[test]
    fn merged_contributions_equal_one_partial_of_all_events() {
        let a = [(0, 12.0, "u1"), (1, 250.0, "u2"), (0, 12.0, "u3")];
        let b = [(0, 12.0, "u2"), (0, 7.5, "u4"), (1, 900.0, "u1")];
        let c = [(0, 31.0, "u5")];
        let all: Vec<_> = a.iter().chain(&b).chain(&c).chain(&c).copied().collect();
        let (ca, cb, cc) =
            (Contribution::from(partial(&a)), Contribution::from(partial(&b)), Contribution::from(partial(&c)));
        // Three workers, in any order (`c` twice: two workers with identical partials).
        let merged = merge_contributions(&mut [cc.clone(), ca.clone(), cb.clone(), cc.clone()]);
        assert_eq!(merged, partial(&all).finish());
        assert_eq!(merged.unique_users, 5);
        assert_eq!(merge_contributions(&mut [cb.clone(), cc.clone(), ca.clone(), cc.clone()]), merged);
        assert_eq!(merge_contributions(&mut [cc.clone()]), partial(&c).finish());
        // Two workers' partials: merged the short way.
        let two: Vec<_> = a.iter().chain(&b).copied().collect();
        assert_eq!(merge_contributions(&mut [ca.clone(), cb.clone()]), partial(&two).finish());
        assert_eq!(merge_contributions(&mut [cb.clone(), ca.clone()]).unique_users, 4);
        assert_eq!(union_len(&[1, 3, 5, 7], &[2, 3, 7, 8, 9]), 7);
        assert_eq!(union_len(&[], &[2]), 1);
    }

    #[test]
    fn sorted_lists_merge_in_order_and_combine_equal_keys() {
        let merged = merge_sorted(&[(1, 1), (4, 2), (9, 1)], &[(0, 5), (4, 3), (10, 1)], |x| *x, |a, b| a.1 += b.1);
        assert_eq!(merged, vec![(0, 5), (1, 1), (4, 5), (9, 1), (10, 1)]);
        assert_eq!(merge_sorted(&[1u128, 3, 5], &[2, 3, 6], |x| *x, |_, _| {}), vec![1, 2, 3, 5, 6]);
    }
}
