//! Per-worker partial aggregation of tumbling and sliding windows.
//!
//! Each event lands in one pane (length `slide`) per aggregation and key. When the input frontier
//! passes a window's end, the worker merges the window's panes into one partial per key and emits
//! it as one differential update keyed by window — counts and sums, the sorted latency bucket
//! counts and the sorted distinct-user fingerprints — inserted at its [`FlushSlots`] time and
//! retracted one tick later, so the downstream `reduce` merges the workers' partials exactly and
//! then forgets the window.
//!
//! The flush is paced: keys go out a slot at a time, at most [`FLUSH_BUDGET`] of work per
//! activation, and the slots of aggregations that window rules read go first and alone, so a
//! boundary that closes many large windows never holds the worker (and the alerts behind it) for
//! long.
//!
//! An event that is late for some but not all of its sliding windows (it arrived close to the
//! watermark) goes to per-window extras instead of its pane, so no closed window can change.

use crate::event::Event;
use crate::record::WindowKey;
use crate::stats::{PartialStats, ScalarPartial};
use crate::window::{AggregationPlan, FixedWindows, FlushSlots, Shape};
use compact_str::CompactString;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::{ProbeHandle, StreamVec};

/// How long one activation may spend flushing before it lets other operators run.
const FLUSH_BUDGET: Duration = Duration::from_micros(300);
/// How often a flush waiting for the alerted windows' alerts looks at their probe.
const ALERT_WAIT_POLL: Duration = Duration::from_micros(100);
/// The longest a flush waits for the alerted windows' alerts before it goes on.
const ALERT_WAIT_LIMIT: Duration = Duration::from_secs(1);

/// One worker's contribution to a window, as a differential record value.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Contribution {
    /// Counts, sums and extremes.
    pub scalar: ScalarPartial,
    /// Latency bucket counts, sorted by bucket.
    pub buckets: Vec<(u64, u64)>,
    /// Distinct users' fingerprints, sorted.
    pub users: Vec<u128>,
}

impl From<PartialStats> for Contribution {
    fn from(partial: PartialStats) -> Contribution {
        let mut buckets: Vec<(u64, u64)> = partial.buckets.into_iter().collect();
        buckets.sort_unstable();
        let mut users: Vec<u128> = partial.users.into_iter().collect();
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

/// The flush of the windows ending at one time, in progress.
struct Flush {
    end: u64,
    /// Held at the insert time of `next_slot`.
    cap: Capability<u64>,
    /// Closed keys waiting for their slot (indexed by slot): (aggregation, window size, key, partial).
    waiting: Vec<Vec<(u16, u64, CompactString, PartialStats)>>,
    /// States (positions in priority order) already closed into `waiting`.
    closed: usize,
    next_slot: u64,
    /// Whether an alerted slot of this end had keys (else there is nothing to wait for).
    alerted_keys: bool,
    /// After the alerted slots: wait until window alerts have passed this time (since when).
    alerts_until: Option<(u64, Instant)>,
}

/// Extension trait: partial aggregation of fixed windows.
pub trait WindowPartials<'s> {
    /// Aggregates the fixed-window `aggregations` per worker and emits window contributions at
    /// the times `slots` gives.
    ///
    /// With `window_alerts`, a probe on the window alerts, the flush waits after the alerted
    /// slots until their alerts are out before it merges anything else.
    fn window_partials(
        self,
        aggregations: &[AggregationPlan],
        slots: FlushSlots,
        window_alerts: Option<ProbeHandle<u64>>,
    ) -> StreamVec<'s, u64, ContributionUpdate>;
}

impl<'s> WindowPartials<'s> for StreamVec<'s, u64, Event> {
    fn window_partials(
        self,
        aggregations: &[AggregationPlan],
        slots: FlushSlots,
        window_alerts: Option<ProbeHandle<u64>>,
    ) -> StreamVec<'s, u64, ContributionUpdate> {
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
        // Closed in the order of their first slot.
        states.sort_by_key(|s| (slots.first_slot(s.index), s.index));

        let scope = self.scope();
        self.unary_frontier(Pipeline, "WindowPartials", move |_cap, info| {
            let activator = scope.activator_for(info.address);
            // A capability at the first slot time of every window end that has data.
            let mut ends: BTreeMap<u64, Capability<u64>> = BTreeMap::new();
            let mut flushing: Option<Flush> = None;

            move |(input, frontier), output| {
                input.for_each_stamp(|cap, batches| {
                    let ensure = |end: u64, ends: &mut BTreeMap<u64, Capability<u64>>| {
                        ends.entry(end).or_insert_with(|| {
                            let at = cap.least().map_or(0, |t| *t);
                            cap.delayed(&slots.insert_time(end, 0).max(at), 0)
                        });
                    };
                    for batch in batches {
                        for event in batch.drain(..) {
                            for state in states.iter_mut() {
                                let Some(key) = state.plan.group_key(&event) else { continue };
                                let w = state.windows;
                                let pane = w.pane_start(event.timestamp);
                                if pane + w.slide > event.watermark {
                                    let partials = state.panes.entry(pane).or_insert_with(|| {
                                        for end in w.window_ends(event.timestamp) {
                                            ensure(end, &mut ends);
                                        }
                                        KeyedPartials::default()
                                    });
                                    add(partials, key, &event);
                                    continue;
                                }
                                for end in w.window_ends(event.timestamp).filter(|end| *end > event.watermark) {
                                    ensure(end, &mut ends);
                                    add(state.extras.entry(end).or_default(), key, &event);
                                }
                            }
                        }
                    }
                });

                let started = Instant::now();
                loop {
                    if flushing.is_none() {
                        match ends.first_entry() {
                            Some(entry) if !frontier.less_equal(&(entry.key() - 1)) => {
                                let end = *entry.key();
                                let cap = entry.remove();
                                let waiting = (0..slots.count()).map(|_| Vec::new()).collect();
                                flushing = Some(Flush {
                                    end,
                                    cap,
                                    waiting,
                                    closed: 0,
                                    next_slot: 0,
                                    alerted_keys: false,
                                    alerts_until: None,
                                });
                            }
                            _ => break,
                        }
                    }
                    let flush = flushing.as_mut().expect("a flush in progress");
                    if let Some((until, since)) = flush.alerts_until {
                        let waiting = window_alerts.as_ref().is_some_and(|probe| probe.less_equal(&until));
                        // A slow peer process may hold the alerts back; the rest of the flush
                        // then goes ahead rather than waiting on it without end.
                        if waiting && since.elapsed() < ALERT_WAIT_LIMIT {
                            activator.activate_after(ALERT_WAIT_POLL);
                            break;
                        }
                        if waiting {
                            tracing::debug!(end = flush.end, "window alerts still pending; flushing the rest");
                        }
                        flush.alerts_until = None;
                    }
                    let updates = slot_updates(flush, &mut states, &slots);
                    output.session(&flush.cap).give_iterator(updates.into_iter());
                    let pause = next_slot(flush, &slots);
                    if pause && window_alerts.is_some() {
                        flush.alerts_until = Some((*flush.cap.time() - 1, Instant::now()));
                    }
                    if flush.next_slot >= slots.count() {
                        flushing = None;
                    }
                    if pause || started.elapsed() >= FLUSH_BUDGET {
                        if flushing.is_some()
                            || ends.first_key_value().is_some_and(|(end, _)| !frontier.less_equal(&(end - 1)))
                        {
                            activator.activate();
                        }
                        break;
                    }
                }
            }
        })
    }
}

/// The updates of the next slot of `flush`, closing first the windows whose first slot it is.
fn slot_updates(flush: &mut Flush, states: &mut [FixedState], slots: &FlushSlots) -> Vec<ContributionUpdate> {
    let slot = flush.next_slot;
    while let Some(state) = states.get_mut(flush.closed) {
        if slots.first_slot(state.index) > slot {
            break;
        }
        flush.closed += 1;
        if !state.windows.is_window_end(flush.end) {
            continue;
        }
        for (key, partial) in close_window(state, flush.end) {
            let at = slots.slot_of(state.index, &key) as usize;
            flush.waiting[at].push((state.index, state.windows.size, key, partial));
        }
    }
    let insert = slots.insert_time(flush.end, slot).max(*flush.cap.time());
    let keys = std::mem::take(&mut flush.waiting[slot as usize]);
    flush.alerted_keys |= slots.is_alerted(slot) && !keys.is_empty();
    let mut updates = Vec::with_capacity(2 * keys.len());
    for (aggregation, size, key, partial) in keys {
        let key = WindowKey { aggregation, start: flush.end as i64 - size as i64, end: flush.end, key };
        let contribution = Contribution::from(partial);
        updates.push(((key.clone(), contribution.clone()), insert, 1));
        updates.push(((key, contribution), insert + 1, -1));
    }
    updates
}

/// Moves `flush` past the slot just emitted (its capability to the next slot's time); returns
/// whether the flush should pause there, so that the alerted windows that end here are merged
/// alone.
fn next_slot(flush: &mut Flush, slots: &FlushSlots) -> bool {
    let slot = flush.next_slot;
    flush.next_slot += 1;
    if flush.next_slot < slots.count() {
        let next = slots.insert_time(flush.end, flush.next_slot).max(*flush.cap.time());
        flush.cap.downgrade(&next);
    }
    // Pause only where alerted windows end: other ends have no alerts to wait for.
    slots.pause_after(slot) && flush.alerted_keys
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
