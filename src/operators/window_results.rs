//! Window results: a differential `reduce` keyed by window merges the workers' contributions —
//! scalar partials, latency bucket counts (sorted by bucket, so percentiles are one scan) and
//! distinct users — into one [`WindowResult`] per window and key.

use crate::operators::window_partials::{Contribution, ContributionUpdate};
use crate::record::WindowRecord;
use crate::stats::{ScalarPartial, WindowResult};
use differential_dataflow::AsCollection;
use timely::dataflow::StreamVec;
use timely::dataflow::operators::vec::Map;

/// Merges the contributions of one window, as `reduce` presents them: sorted, with their counts.
pub fn merge_contributions(input: &[(&Contribution, isize)]) -> WindowResult {
    let mut scalar = ScalarPartial::default();
    let mut buckets = Vec::new();
    let mut users = 0u64;
    for (contribution, count) in input {
        match contribution {
            Contribution::Bucket(bucket) => buckets.push((*bucket, *count as u64)),
            // Identical partials from different workers consolidate into one with a higher count.
            Contribution::Scalar(partial) => (0..*count).for_each(|_| scalar.merge(partial)),
            Contribution::User(_) => users += 1,
        }
    }
    WindowResult::from_parts(scalar, &buckets, users)
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
            // window's, and the retraction at `end` only clears state.
            .flat_map(|((window, result), time, diff): ((_, WindowResult), u64, isize)| {
                (diff > 0 && time < window.end).then_some((window, result))
            })
    }
}
