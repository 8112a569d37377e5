//! Window results: a differential `reduce` keyed by window merges the workers' contributions —
//! scalar partials, latency bucket counts (merged and sorted by bucket, so percentiles are one
//! scan) and distinct users (their union) — into one [`WindowResult`] per window and key.

use crate::operators::window_partials::{Contribution, ContributionUpdate};
use crate::record::WindowRecord;
use crate::stats::{ScalarPartial, WindowResult, merge_sorted};
use differential_dataflow::AsCollection;
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;

/// Merges the contributions of one window, as `reduce` presents them: sorted, with their counts.
/// Bucket lists and user lists arrive sorted, so they are merged in one pass each; of two (one
/// per worker, the common case with two workers) the users are only counted, not merged.
pub fn merge_contributions(input: &[(&Contribution, isize)]) -> WindowResult {
    if let [(only, 1)] = input {
        return WindowResult::from_parts(only.scalar, &only.buckets, only.users.len() as u64);
    }
    let mut scalar = ScalarPartial::default();
    for (contribution, count) in input {
        // Identical partials from different workers consolidate into one with a higher count.
        for _ in 0..*count {
            scalar.merge(&contribution.scalar);
        }
    }
    if let [(a, 1), (b, 1)] = input {
        let buckets = merge_sorted(&a.buckets, &b.buckets, |x| *x, |into, (_, c)| into.1 += c);
        return WindowResult::from_parts(scalar, &buckets, union_len(&a.users, &b.users));
    }
    let mut buckets: Vec<(u64, u64)> = Vec::new();
    let mut users: Vec<u128> = Vec::new();
    for (contribution, count) in input {
        let times = *count as u64;
        buckets =
            merge_sorted(&buckets, &contribution.buckets, |(b, c)| (*b, c * times), |into, (_, c)| into.1 += c * times);
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

impl<'s> WindowResults<'s> for StreamVec<'s, u64, ContributionUpdate> {
    fn window_results(self) -> StreamVec<'s, u64, WindowRecord> {
        self.as_collection()
            .reduce_named("WindowResults", |_window, input, output| output.push((merge_contributions(input), 1isize)))
            .inner
            // Contributions enter at their flush slot's time and leave one tick later: the
            // insertion is the window's result, the retraction only clears state.
            .unary(Pipeline, "WindowRecords", |_cap, _info| {
                let mut inserted: Vec<(u64, WindowRecord)> = Vec::new();
                move |input, output| {
                    input.for_each_stamp(|cap, batches| {
                        // A batch may hold several slots' results (when the frontier jumps, as at
                        // the end of a bounded input): each leaves at its own slot's time.
                        for batch in batches {
                            inserted
                                .extend(batch.drain(..).filter(|u| u.2 > 0).map(|(record, time, _)| (time, record)));
                        }
                        inserted.sort_by_key(|(time, _)| *time);
                        let mut rest = inserted.drain(..).peekable();
                        while let Some((time, first)) = rest.next() {
                            let at = cap.delayed(&time, 0);
                            let mut session = output.session(&at);
                            session.give(first);
                            while let Some((_, record)) = rest.next_if(|(t, _)| *t == time) {
                                session.give(record);
                            }
                        }
                    });
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
        // `c` twice: two workers with identical partials consolidate into one with count 2.
        let merged = merge_contributions(&[(&ca, 1), (&cb, 1), (&cc, 2)]);
        assert_eq!(merged, partial(&all).finish());
        assert_eq!(merged.unique_users, 5);
        assert_eq!(merge_contributions(&[(&cc, 1)]), partial(&c).finish());
        // Two workers' partials: merged the short way.
        let two: Vec<_> = a.iter().chain(&b).copied().collect();
        assert_eq!(merge_contributions(&[(&ca, 1), (&cb, 1)]), partial(&two).finish());
        assert_eq!(merge_contributions(&[(&ca, 1), (&cb, 1)]).unique_users, 4);
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
