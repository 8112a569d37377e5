//! Per-worker partial aggregation of tumbling and sliding windows.
//!
//! Each event lands in one pane (length `slide`) per aggregation and key. When the input frontier
//! passes a window's end, the worker merges the window's panes into one partial and emits it as
//! one differential update keyed by window — counts and sums, the sorted latency bucket counts
//! and the sorted distinct users — inserted at `end - 1` and retracted at `end`, so the
//! downstream `reduce` merges the workers' partials exactly and then forgets the window.
//!
//! An event that is late for some but not all of its sliding windows (it arrived close to the
//! watermark) goes to per-window extras instead of its pane, so no closed window can change.

use crate::event::Event;
use crate::record::WindowKey;
use crate::stats::{PartialStats, ScalarPartial};
use crate::window::{AggregationPlan, FixedWindows, Shape};
use compact_str::CompactString;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::generic::Operator;

/// One worker's contribution to a window, as a differential record value.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Contribution {
    /// Counts, sums and extremes.
    pub scalar: ScalarPartial,
    /// Latency bucket counts, sorted by bucket.
    pub buckets: Vec<(u64, u64)>,
    /// Distinct users, sorted.
    pub users: Vec<CompactString>,
}

impl From<PartialStats> for Contribution {
    fn from(partial: PartialStats) -> Contribution {
        let mut buckets: Vec<(u64, u64)> = partial.buckets.into_iter().collect();
        buckets.sort_unstable();
        let mut users: Vec<CompactString> = partial.users.into_iter().collect();
        users.sort_unstable();
        Contribution { scalar: partial.scalar, buckets, users }
    }
}

/// A differential update of the window contributions collection.
pub type ContributionUpdate = ((WindowKey, Contribution), u64, isize);

type KeyedPartials = FxHashMap<CompactString, PartialStats>;

/// The open panes of one fixed-window aggregation on this worker.
struct FixedState {
    index: u16,
    windows: FixedWindows,
    plan: AggregationPlan,
    panes: BTreeMap<u64, KeyedPartials>,
    extras: BTreeMap<u64, KeyedPartials>,
}

/// Extension trait: partial aggregation of fixed windows.
pub trait WindowPartials<'s> {
    /// Aggregates the fixed-window `aggregations` per worker and emits window contributions.
    fn window_partials(self, aggregations: &[AggregationPlan]) -> StreamVec<'s, u64, ContributionUpdate>;
}

impl<'s> WindowPartials<'s> for StreamVec<'s, u64, Event> {
    fn window_partials(self, aggregations: &[AggregationPlan]) -> StreamVec<'s, u64, ContributionUpdate> {
        let mut states: Vec<FixedState> = aggregations
            .iter()
            .filter_map(|plan| match plan.shape {
                Shape::Fixed(windows) => Some(FixedState {
                    index: plan.index,
                    windows,
                    plan: *plan,
                    panes: BTreeMap::new(),
                    extras: BTreeMap::new(),
                }),
                Shape::Session { .. } => None,
            })
            .collect();

        self.unary_frontier(Pipeline, "WindowPartials", move |_cap, _info| {
            // Capabilities at `window_end - 1` for every window that has data.
            let mut flush_caps: BTreeMap<u64, Capability<u64>> = BTreeMap::new();

            move |(input, frontier), output| {
                input.for_each_stamp(|cap, batches| {
                    let ensure = |end: u64, caps: &mut BTreeMap<u64, Capability<u64>>| {
                        caps.entry(end - 1).or_insert_with(|| cap.delayed(&(end - 1), 0));
                    };
                    for batch in batches {
                        for event in batch.drain(..) {
                            for state in states.iter_mut() {
                                let Some(key) = state.plan.group_key(&event) else { continue };
                                let w = state.windows;
                                let pane = w.pane_start(event.timestamp);
                                let first_end = pane + w.slide;
                                let target = if first_end > event.watermark {
                                    let partials = state.panes.entry(pane).or_insert_with(|| {
                                        for end in w.window_ends(event.timestamp) {
                                            ensure(end, &mut flush_caps);
                                        }
                                        KeyedPartials::default()
                                    });
                                    Some(partials)
                                } else {
                                    None
                                };
                                if let Some(partials) = target {
                                    add(partials, key, &event);
                                    continue;
                                }
                                for end in w.window_ends(event.timestamp).filter(|end| *end > event.watermark) {
                                    ensure(end, &mut flush_caps);
                                    add(state.extras.entry(end).or_default(), key, &event);
                                }
                            }
                        }
                    }
                });

                while let Some(entry) = flush_caps.first_entry() {
                    if frontier.less_equal(entry.key()) {
                        break;
                    }
                    let cap = entry.remove();
                    let end = *cap.time() + 1;
                    let mut session = output.session(&cap);
                    for state in states.iter_mut() {
                        if !state.windows.is_window_end(end) {
                            continue;
                        }
                        let window = close_window(state, end);
                        let start = end as i64 - state.windows.size as i64;
                        for (key, partial) in window {
                            let key = WindowKey { aggregation: state.index, start, end, key };
                            emit(&mut |update| session.give(update), key, partial, end);
                        }
                    }
                }
            }
        })
    }
}

#[inline]
fn add(partials: &mut KeyedPartials, key: &str, event: &Event) {
    let partial = match partials.get_mut(key) {
        Some(p) => p,
        None => partials.entry(CompactString::from(key)).or_default(),
    };
    partial.add(event.is_error, event.latency_ms, event.value, event.user_id.as_ref());
}

/// Merges the panes and extras of the window ending at `end`, and retires what no later window needs.
fn close_window(state: &mut FixedState, end: u64) -> KeyedPartials {
    let w = state.windows;
    let first_pane = end.saturating_sub(w.size);
    // The first pane is in no later window: take it instead of copying it.
    let mut merged =
        if end >= w.size { state.panes.remove(&first_pane).unwrap_or_default() } else { KeyedPartials::default() };
    for (_, partials) in state.panes.range(first_pane..end) {
        merge_into(&mut merged, partials);
    }
    if let Some(extras) = state.extras.remove(&end) {
        merge_into(&mut merged, &extras);
    }
    // Panes whose last window has closed (only possible for panes before 1970 + size).
    while let Some(entry) = state.panes.first_entry() {
        if w.last_end_of_pane(*entry.key()) <= end {
            entry.remove();
        } else {
            break;
        }
    }
    merged
}

fn merge_into(into: &mut KeyedPartials, from: &KeyedPartials) {
    for (key, partial) in from {
        match into.get_mut(key) {
            Some(existing) => existing.merge(partial),
            None => {
                into.insert(key.clone(), partial.clone());
            }
        }
    }
}

/// Emits a window partial as an update inserted at `end - 1` and retracted at `end`.
fn emit(give: &mut impl FnMut(ContributionUpdate), key: WindowKey, partial: PartialStats, end: u64) {
    let contribution = Contribution::from(partial);
    give(((key.clone(), contribution.clone()), end - 1, 1));
    give(((key, contribution), end, -1));
}
