//! Window results: a differential `reduce` keyed by window merges the workers' contributions —
//! scalar partials, latency bucket counts (merged and sorted by bucket, so percentiles are one
//! scan) and distinct users (their union) — into one [`WindowResult`] per window and key.

use crate::operators::window_partials::{Contribution, ContributionUpdate};
use crate::record::WindowRecord;
use crate::stats::{ScalarPartial, WindowResult};
use compact_str::CompactString;
use differential_dataflow::AsCollection;
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;

/// Merges the contributions of one window, as `reduce` presents them: sorted, with their counts.
pub fn merge_contributions(input: &[(&Contribution, isize)]) -> WindowResult {
    if let [(only, 1)] = input {
        return WindowResult::from_parts(only.scalar, &only.buckets, only.users.len() as u64);
    }
    let mut scalar = ScalarPartial::default();
    let mut buckets = Vec::new();
    let mut users: Vec<&CompactString> = Vec::new();
    for (contribution, count) in input {
        // Identical partials from different workers consolidate into one with a higher count.
        for _ in 0..*count {
            scalar.merge(&contribution.scalar);
            buckets.extend_from_slice(&contribution.buckets);
        }
        users.extend(contribution.users.iter());
    }
    buckets.sort_unstable();
    buckets.dedup_by(|later, earlier| {
        let same = later.0 == earlier.0;
        if same {
            earlier.1 += later.1;
        }
        same
    });
    users.sort_unstable();
    users.dedup();
    WindowResult::from_parts(scalar, &buckets, users.len() as u64)
}

/// Extension trait: final window records from window contributions.
pub trait WindowResults<'s> {
    /// Reduces contributions per window; emits each window once, when it is complete.
    fn window_results(self) -> StreamVec<'s, u64, WindowRecord>;
}

impl<'s> WindowResults<'s> for StreamVec<'s, u64, ContributionUpdate> {
    fn window_results(self) -> StreamVec<'s, u64, WindowRecord> {
        self.as_collection()
            .reduce_named("WindowResults", |_window, input, output| output.push((merge_contributions(input), 1isize)))
            .inner
            // Contributions enter at `end - 1` and leave at `end`: the result at `end - 1` is the
            // window's, and the retraction at `end` only clears state. Each record is sent at its
            // own time (`end - 1`), not at whatever earlier capability carried it, so that
            // downstream operators see windows in the order of their ends.
            .unary(Pipeline, "WindowRecords", |_cap, _info| {
                move |input, output| {
                    input.for_each_stamp(|cap, batches| {
                        for batch in batches {
                            for ((window, result), time, diff) in batch.drain(..) {
                                if diff > 0 && time < window.end {
                                    output.session(&cap.delayed(&time, 0)).give((window, result));
                                }
                            }
                        }
                    });
                }
            })
    }
}
