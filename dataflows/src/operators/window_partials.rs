//! Per-worker partial aggregation of tumbling and sliding windows.
//!
//! Each event lands in one pane (length `slide`) per aggregation and key — one pane for all the
//! aggregations with the same grouping and slide, which share their panes. When the input frontier
//! passes a window's end, the worker merges the window's panes into one partial per key and emits
//! it as one contribution to its window — counts and sums, the sorted latency bucket counts and
//! the sorted distinct-user fingerprints — at its [`FlushSlots`] time, where the window results
//! merge the workers' contributions exactly once every worker has passed that time.
//!
//! The flush is paced: keys go out a slot at a time, at most [`FLUSH_BUDGET`] of work per
//! activation, and the slots of aggregations that window rules read go first and alone, so a
//! boundary that closes many large windows never holds the worker (and the alerts behind it) for
//! long.
//!
//! An event that is late for some but not all of its sliding windows (it arrived close to the
//! watermark) goes to per-window extras instead of its pane, so no closed window can change.

use crate::checkpoint::Hooks;
use crate::control::{OpenWindow, Report, ReportPacing, RunControl};
use crate::event::Event;
use crate::record::WindowKey;
use crate::shard::{Sharded, shard_of};
use crate::spec::GroupBy;
use crate::stats::{Contributed, PartialStats, ScalarPartial};
use crate::window::{AggregationPlan, FixedWindows, FlushSlots, Shape};
use compact_str::CompactString;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::{ProbeHandle, StreamVec};

/// How many keys of an open window a worker reports for the live view.
const LIVE_KEYS: usize = 20;

/// How long one activation may spend flushing before it lets other operators run.
const FLUSH_BUDGET: Duration = Duration::from_micros(300);
/// How often a flush waiting for the alerted windows' alerts looks at their probe.
const ALERT_WAIT_POLL: Duration = Duration::from_micros(100);
/// The longest a flush waits for the alerted windows' alerts before it goes on.
const ALERT_WAIT_LIMIT: Duration = Duration::from_secs(1);

/// One worker's contribution to a window.
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
        let buckets = partial.buckets.into_sorted();
        let mut users: Vec<u128> = partial.users.into_iter().collect();
        users.sort_unstable();
        Contribution { scalar: partial.scalar, buckets, users }
    }
}

/// A contribution to a window, with the time of its flush slot (at or after the time it is sent
/// at), when the window results merge it.
pub type SlotContribution = (WindowKey, Contribution, u64);

type KeyedPartials = FxHashMap<CompactString, PartialStats>;

/// The open panes of the fixed-window aggregations with one grouping and one slide: their panes
/// hold the same events, so they share them (the embedded default's per-minute and
/// five-minutes-sliding aggregations by type add each event to one pane, not two).
struct PaneGroup {
    group_by: GroupBy,
    /// The first member's windows: every member's panes are theirs (one slide).
    windows: FixedWindows,
    /// Positions in [`WindowPanes::states`] of the aggregations that read these panes.
    members: Vec<usize>,
    /// Position of the member that retires a pane when its last window closes: one with the
    /// longest windows (the last such in flush order, so the others closed theirs before).
    retirer: usize,
    panes: BTreeMap<u64, KeyedPartials>,
}

/// One fixed-window aggregation on this worker: its windows, the group whose panes it reads,
/// and its extras.
struct FixedState {
    index: u16,
    windows: FixedWindows,
    plan: AggregationPlan,
    /// Position of its [`PaneGroup`].
    group: usize,
    extras: BTreeMap<u64, KeyedPartials>,
}

/// One key's partial statistics in a pane (or in the extras of one window), as a checkpoint
/// stores it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PaneEntry {
    /// The aggregation (for a shared pane, the group's retirer).
    pub aggregation: u16,
    /// The pane's start, or, for an extra, the end of its window.
    pub at: u64,
    /// Whether it is a window's extra (an event late for the window's earlier panes' windows).
    pub extra: bool,
    /// The group key.
    pub key: CompactString,
    /// What the worker accumulated.
    pub partial: PartialStats,
}

/// The open panes of every fixed-window aggregation on one worker: the state of
/// [`WindowPartials`], snapshot by the shard of (aggregation, key).
pub struct WindowPanes {
    /// In the order of their first flush slot.
    states: Vec<FixedState>,
    groups: Vec<PaneGroup>,
}

impl WindowPanes {
    /// Empty panes for the fixed-window `aggregations`, ordered by their first slot.
    pub fn new(aggregations: &[AggregationPlan], slots: &FlushSlots) -> WindowPanes {
        let mut states: Vec<FixedState> = aggregations
            .iter()
            .filter_map(|plan| match plan.shape {
                Shape::Fixed(windows) => {
                    Some(FixedState { index: plan.index, windows, plan: *plan, group: 0, extras: BTreeMap::new() })
                }
                Shape::Session { .. } => None,
            })
            .collect();
        states.sort_by_key(|s| (slots.first_slot(s.index), s.index));
        let mut groups: Vec<PaneGroup> = Vec::new();
        for (position, state) in states.iter_mut().enumerate() {
            let (group_by, windows) = (state.plan.group_by, state.windows);
            state.group = match groups.iter().position(|g| g.group_by == group_by && g.windows.slide == windows.slide) {
                Some(group) => group,
                None => {
                    groups.push(PaneGroup {
                        group_by,
                        windows,
                        members: Vec::new(),
                        retirer: position,
                        panes: BTreeMap::new(),
                    });
                    groups.len() - 1
                }
            };
            groups[state.group].members.push(position);
        }
        for group in &mut groups {
            let longest = group.members.iter().map(|m| states[*m].windows.size).max().unwrap_or(0);
            group.retirer =
                *group.members.iter().rev().find(|m| states[**m].windows.size == longest).expect("a member");
        }
        WindowPanes { states, groups }
    }

    /// Adds an event to its pane of every pane group it has a key for (or, when it is late for
    /// some of a sliding window's earlier windows, to the extras of the windows it is on time
    /// for, per aggregation). `opened` hears of every window end that gets its first data.
    #[inline]
    pub fn add(&mut self, event: &Event, mut opened: impl FnMut(u64)) {
        // The latency's bucket and the user's fingerprint, once for every aggregation.
        let contributed = Contributed::of(event.is_error, event.latency_ms, event.value, event.user_id.as_ref());
        let states = &mut self.states;
        for group in self.groups.iter_mut() {
            let Some(key) = group.group_by.key_of(event) else { continue };
            let pane = group.windows.pane_start(event.timestamp);
            if pane + group.windows.slide > event.watermark {
                let partials = group.panes.entry(pane).or_insert_with(|| {
                    for member in &group.members {
                        states[*member].windows.window_ends(event.timestamp).for_each(&mut opened);
                    }
                    KeyedPartials::default()
                });
                add(partials, key, &contributed);
                continue;
            }
            for member in &group.members {
                let state = &mut states[*member];
                for end in state.windows.window_ends(event.timestamp).filter(|end| *end > event.watermark) {
                    opened(end);
                    add(state.extras.entry(end).or_default(), key, &contributed);
                }
            }
        }
    }

    /// The open (pane or extra, key) entries: the state held for open windows.
    pub fn open_entries(&self) -> usize {
        let panes = self.groups.iter().flat_map(|g| g.panes.values());
        let extras = self.states.iter().flat_map(|s| s.extras.values());
        panes.chain(extras).map(|keys| keys.len()).sum()
    }

    /// For each aggregation by event type or by nothing, the window that closes first among
    /// those holding its newest pane (the tumbling window itself; for a sliding window the one
    /// ending right after that pane), with the events and errors so far of its `max_keys`
    /// busiest keys. Extras are left out: they hold the few events that were nearly late.
    /// Aggregations by user or session are left out too: their keys are many (a million users
    /// would cost a walk over a million entries twice a second) and a live view shows few.
    pub fn so_far(&self, max_keys: usize) -> Vec<OpenWindow> {
        let mut out = Vec::new();
        for state in &self.states {
            if !state.plan.group_by.has_few_keys() {
                continue;
            }
            let panes = &self.groups[state.group].panes;
            let Some(newest) = panes.keys().next_back() else { continue };
            let w = state.windows;
            let end = newest.saturating_add(w.slide);
            let start = end.saturating_sub(w.size);
            let mut keys: FxHashMap<&str, (u64, u64)> = FxHashMap::default();
            for (_, partials) in panes.range(start..end) {
                for (key, partial) in partials {
                    let sum = keys.entry(key.as_str()).or_default();
                    sum.0 += partial.scalar.count;
                    sum.1 += partial.scalar.errors;
                }
            }
            let mut keys: Vec<(String, u64, u64)> = keys.into_iter().map(|(k, (n, e))| (k.to_owned(), n, e)).collect();
            keys.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            keys.truncate(max_keys);
            out.push(OpenWindow { aggregation: state.index, window_start: start, window_end: end, keys });
        }
        out
    }

    /// Every pane (under its group's retirer) and extra, by the shard of (aggregation, key).
    pub fn snapshot(&self) -> Sharded<PaneEntry> {
        let mut out = Sharded::default();
        let panes = self.groups.iter().map(|g| (self.states[g.retirer].index, false, &g.panes));
        let extras = self.states.iter().map(|s| (s.index, true, &s.extras));
        for (aggregation, extra, map) in panes.chain(extras) {
            for (at, partials) in map {
                for (key, partial) in partials {
                    let entry = PaneEntry { aggregation, at: *at, extra, key: key.clone(), partial: partial.clone() };
                    out.push(shard_of((aggregation, key)), entry);
                }
            }
        }
        out
    }

    /// Adds the entries of `snapshot` (merging with what is there), and tells `opened` of every
    /// window end they hold data for. A pane entry is read from the group's retirer only (a
    /// checkpoint of a build that kept a copy of the pane per aggregation has it there too).
    pub fn restore(&mut self, snapshot: Sharded<PaneEntry>, mut opened: impl FnMut(u64)) {
        for entry in snapshot.into_entries() {
            let Some(position) = self.states.iter().position(|s| s.index == entry.aggregation) else { continue };
            let group = &mut self.groups[self.states[position].group];
            let (map, ends): (_, Vec<FixedWindows>) = if entry.extra {
                opened(entry.at);
                (&mut self.states[position].extras, Vec::new())
            } else if group.retirer == position {
                (&mut group.panes, group.members.iter().map(|m| self.states[*m].windows).collect())
            } else {
                continue;
            };
            for windows in ends {
                windows.window_ends(entry.at).for_each(&mut opened);
            }
            let partials = map.entry(entry.at).or_default();
            match partials.get_mut(&entry.key) {
                Some(existing) => existing.merge(&entry.partial),
                None => {
                    partials.insert(entry.key, entry.partial);
                }
            }
        }
    }
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
    /// slots until their alerts are out before it merges anything else. The open panes are
    /// checkpointed through `hooks` (and restored from them). The open windows so far and the
    /// number of open entries are reported to `control` (twice a second, when a live view
    /// listens).
    fn window_partials(
        self,
        aggregations: &[AggregationPlan],
        slots: FlushSlots,
        window_alerts: Option<ProbeHandle<u64>>,
        hooks: &Hooks,
        control: Arc<RunControl>,
    ) -> StreamVec<'s, u64, SlotContribution>;
}

impl<'s> WindowPartials<'s> for StreamVec<'s, u64, Event> {
    fn window_partials(
        self,
        aggregations: &[AggregationPlan],
        slots: FlushSlots,
        window_alerts: Option<ProbeHandle<u64>>,
        hooks: &Hooks,
        control: Arc<RunControl>,
    ) -> StreamVec<'s, u64, SlotContribution> {
        let panes = hooks.share(WindowPanes::new(aggregations, &slots), |panes, checkpoint| {
            checkpoint.state.panes.extend(panes.snapshot())
        });
        let restored = hooks.restored(|s| &mut s.panes);
        let resumed_at = hooks.resumed_at;

        let scope = self.scope();
        let worker = scope.index();
        let mut pacing = ReportPacing::default();
        self.unary_frontier(Pipeline, "WindowPartials", move |cap, info| {
            let activator = scope.activator_for(info.address);
            // A capability at the first slot time of every window end that has data.
            let mut ends: BTreeMap<u64, Capability<u64>> = BTreeMap::new();
            let mut flushing: Option<Flush> = None;
            // Restored panes: their windows that end after the checkpoint's time (a sliding
            // window's pane also lies in windows that were flushed before it).
            panes.borrow_mut().restore(restored, |end| {
                if end > resumed_at {
                    ends.entry(end).or_insert_with(|| cap.delayed(&slots.insert_time(end, 0).max(resumed_at)));
                }
            });
            drop(cap);

            move |(input, frontier), output| {
                let mut panes = panes.borrow_mut();
                let mut changed = false;
                input.for_each_stamp(|cap, batches| {
                    changed = true;
                    // A capability at the first slot time of every window end that gets data.
                    let mut opened = |end: u64| {
                        ends.entry(end).or_insert_with(|| {
                            let at = cap.least().map_or(0, |t| *t);
                            cap.delayed(&slots.insert_time(end, 0).max(at), 0)
                        });
                    };
                    for batch in batches {
                        for event in batch.drain(..) {
                            panes.add(&event, &mut opened);
                        }
                    }
                });
                let flushes = ends.len() + usize::from(flushing.is_some());

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
                    let updates = slot_updates(flush, &mut panes, &slots);
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
                if control.live.enabled() {
                    changed |= flushes != ends.len() + usize::from(flushing.is_some());
                    match pacing.poll(changed, Instant::now()) {
                        Report::Now => {
                            control.live.publish(worker, panes.so_far(LIVE_KEYS));
                            control
                                .counters
                                .open_windows
                                .set(&format!("{worker}/windows"), panes.open_entries() as u64);
                        }
                        Report::After(wait) => activator.activate_after(wait),
                        Report::Idle => {}
                    }
                }
            }
        })
    }
}

/// The updates of the next slot of `flush`, closing first the windows whose first slot it is.
fn slot_updates(flush: &mut Flush, panes: &mut WindowPanes, slots: &FlushSlots) -> Vec<SlotContribution> {
    let slot = flush.next_slot;
    while let Some(state) = panes.states.get(flush.closed) {
        if slots.first_slot(state.index) > slot {
            break;
        }
        let position = flush.closed;
        flush.closed += 1;
        if !state.windows.is_window_end(flush.end) {
            continue;
        }
        let (index, size) = (state.index, state.windows.size);
        for (key, partial) in close_window(panes, position, flush.end) {
            let at = slots.slot_of(index, &key) as usize;
            flush.waiting[at].push((index, size, key, partial));
        }
    }
    let insert = slots.insert_time(flush.end, slot).max(*flush.cap.time());
    let keys = std::mem::take(&mut flush.waiting[slot as usize]);
    flush.alerted_keys |= slots.is_alerted(slot) && !keys.is_empty();
    let mut updates = Vec::with_capacity(keys.len());
    for (aggregation, size, key, partial) in keys {
        let key = WindowKey { aggregation, start: flush.end as i64 - size as i64, end: flush.end, key };
        updates.push((key, Contribution::from(partial), insert));
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
fn add(partials: &mut KeyedPartials, key: &str, event: &Contributed) {
    let partial = match partials.get_mut(key) {
        Some(p) => p,
        None => partials.entry(CompactString::from(key)).or_default(),
    };
    partial.add_keyed(event);
}

/// Merges the panes and extras of the window of the aggregation at `position` ending at `end`;
/// the group's retirer also retires what no later window needs.
fn close_window(panes: &mut WindowPanes, position: usize, end: u64) -> KeyedPartials {
    let state = &mut panes.states[position];
    let w = state.windows;
    let group = &mut panes.groups[state.group];
    let retires = group.retirer == position;
    let first_pane = end.saturating_sub(w.size);
    // The retirer's first pane is in no later window: take it instead of copying it.
    let mut merged = if retires && end >= w.size {
        group.panes.remove(&first_pane).unwrap_or_default()
    } else {
        KeyedPartials::default()
    };
    for (_, partials) in group.panes.range(first_pane..end) {
        merge_into(&mut merged, partials);
    }
    if let Some(extras) = state.extras.remove(&end) {
        merge_into(&mut merged, &extras);
    }
    // Panes whose last window has closed (only possible for panes before 1970 + size).
    while retires && let Some(entry) = group.panes.first_entry() {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{AggregationConfig, GroupBy, Millis, WindowConfig};

    fn plans() -> Vec<AggregationPlan> {
        let a = |name: &str, window, group_by| AggregationConfig { name: name.into(), window, group_by };
        AggregationPlan::from_config(&[
            a("t", WindowConfig::Tumbling { size: Millis(10_000) }, GroupBy::EventType),
            a("s", WindowConfig::Sliding { size: Millis(20_000), slide: Millis(10_000) }, GroupBy::UserId),
        ])
    }

    /// Two pairs of aggregations that share panes: by type with a slide of 10 s, by user too.
    fn shared_plans() -> Vec<AggregationPlan> {
        let a = |name: &str, window, group_by| AggregationConfig { name: name.into(), window, group_by };
        AggregationPlan::from_config(&[
            a("t", WindowConfig::Tumbling { size: Millis(10_000) }, GroupBy::EventType),
            a("s", WindowConfig::Sliding { size: Millis(20_000), slide: Millis(10_000) }, GroupBy::UserId),
            a("w", WindowConfig::Sliding { size: Millis(30_000), slide: Millis(10_000) }, GroupBy::EventType),
            a("v", WindowConfig::Tumbling { size: Millis(10_000) }, GroupBy::UserId),
        ])
    }

    fn event(ts: u64, event_type: &str, user: &str, watermark: u64) -> Event {
        Event {
            event_type: event_type.into(),
            user_id: Some(user.into()),
            session_id: None,
            timestamp: ts,
            latency_ms: Some(ts as f64 / 100.0),
            value: None,
            is_error: ts.is_multiple_of(3),
            watermark,
        }
    }

    fn sorted(mut partials: KeyedPartials) -> Vec<(CompactString, Contribution)> {
        let mut v: Vec<_> = partials.drain().map(|(k, p)| (k, Contribution::from(p))).collect();
        v.sort();
        v
    }

    #[test]
    fn aggregations_that_share_panes_close_the_windows_each_would_alone() {
        let plans = shared_plans();
        let slots = FlushSlots::new(&plans, &[], 1_000);
        let mut shared = WindowPanes::new(&plans, &slots);
        assert_eq!(shared.groups.len(), 2, "by type and by user, each with a slide of 10 s");
        let mut alone: Vec<WindowPanes> = plans
            .iter()
            .map(|p| WindowPanes::new(std::slice::from_ref(p), &FlushSlots::new(&[*p], &[], 1_000)))
            .collect();
        let mut ends = std::collections::BTreeSet::new();
        let mut watermark = 0;
        for i in 0..400u64 {
            // Disordered by up to 20 s, with a watermark 5 s behind the newest event: some events
            // are late for the earlier of their sliding windows and go to extras.
            let ts = (i * 7_919) % 20_000 + i * 150;
            let e = event(ts, ["a", "b", "c"][i as usize % 3], &format!("u{}", i % 5), watermark);
            let mut alone_ends = std::collections::BTreeSet::new();
            shared.add(&e, |end| {
                ends.insert(end);
            });
            for panes in alone.iter_mut() {
                panes.add(&e, |end| {
                    alone_ends.insert(end);
                });
            }
            assert!(alone_ends.is_subset(&ends));
            watermark = watermark.max(ts.saturating_sub(5_000));
        }
        assert!(shared.states.iter().any(|s| !s.extras.is_empty()), "the test reaches the extras");
        for end in &ends {
            for position in 0..shared.states.len() {
                let state = &shared.states[position];
                if !state.windows.is_window_end(*end) {
                    continue;
                }
                let alone = alone.iter_mut().find(|p| p.states[0].index == state.index).expect("its own panes");
                let expected = close_window(alone, 0, *end);
                assert_eq!(sorted(close_window(&mut shared, position, *end)), sorted(expected), "end {end}");
            }
        }
        assert_eq!(shared.open_entries(), 0, "every pane retired with its last window");
    }

    #[test]
    fn panes_survive_a_snapshot_into_any_number_of_workers() {
        let plans = shared_plans();
        let slots = FlushSlots::new(&plans, &[], 1_000);
        let mut panes = WindowPanes::new(&plans, &slots);
        let mut ends = std::collections::BTreeSet::new();
        for i in 0..200u64 {
            panes.add(&event(i * 173, ["a", "b", "c"][i as usize % 3], &format!("u{}", i % 7), 0), |end| {
                ends.insert(end);
            });
        }
        // One event late for the sliding window ending at 20000, on time for the one ending at 30000.
        panes.add(&event(15_000, "a", "u1", 20_000), |end| {
            ends.insert(end);
        });
        let snapshot = panes.snapshot();
        let text = serde_json::to_string(&snapshot).unwrap();
        for workers in [1, 3] {
            let mut restored_ends = std::collections::BTreeSet::new();
            let mut restored: Vec<WindowPanes> = (0..workers).map(|_| WindowPanes::new(&plans, &slots)).collect();
            for (worker, panes) in restored.iter_mut().enumerate() {
                let mine = serde_json::from_str::<Sharded<PaneEntry>>(&text).unwrap().owned_by(worker, workers);
                panes.restore(mine, |end| {
                    restored_ends.insert(end);
                });
            }
            assert_eq!(restored_ends, ends, "{workers} workers");
            // Merged over the workers, every window closes to the same partials as the original.
            for end in &ends {
                for position in 0..panes.states.len() {
                    let original = close_window(&mut clone_panes(&panes), position, *end);
                    let mut merged = KeyedPartials::default();
                    for worker in &restored {
                        merge_into(&mut merged, &close_window(&mut clone_panes(worker), position, *end));
                    }
                    assert_eq!(sorted(merged), sorted(original), "end {end}, {workers} workers");
                }
            }
        }
    }

    #[test]
    fn so_far_counts_the_newest_window_of_each_aggregation() {
        let plans = plans();
        let slots = FlushSlots::new(&plans, &[], 1_000);
        let mut panes = WindowPanes::new(&plans, &slots);
        for (ts, kind, user) in [(1_000, "a", "u1"), (12_000, "a", "u1"), (13_000, "b", "u2"), (15_000, "a", "u2")] {
            panes.add(&event(ts, kind, user, 0), |_| {});
        }
        let so_far = panes.so_far(1);
        // Tumbling 10 s by type: [10000, 20000), "a" twice (the busiest key only; one of them an error).
        assert_eq!(
            so_far[0],
            OpenWindow { aggregation: 0, window_start: 10_000, window_end: 20_000, keys: vec![("a".into(), 2, 2)] }
        );
        // The sliding aggregation is by user: left out.
        assert_eq!(so_far.len(), 1);
        assert_eq!(panes.open_entries(), 2 + 2 + 2);
        // By nothing instead: the sliding window [0, 20000) closes first and holds all three
        // events (panes 0 and 10000), two of them errors.
        let by_none = AggregationPlan::from_config(&[AggregationConfig {
            name: "s".into(),
            window: WindowConfig::Sliding { size: Millis(20_000), slide: Millis(10_000) },
            group_by: GroupBy::None,
        }]);
        let mut panes = WindowPanes::new(&by_none, &FlushSlots::new(&by_none, &[], 1_000));
        for ts in [1_000, 12_000, 15_000] {
            panes.add(&event(ts, "a", "u1", 0), |_| {});
        }
        let so_far = panes.so_far(5);
        assert_eq!(
            so_far,
            vec![OpenWindow { aggregation: 0, window_start: 0, window_end: 20_000, keys: vec![("*".into(), 3, 2)] }]
        );
    }

    fn clone_panes(panes: &WindowPanes) -> WindowPanes {
        let states = panes.states.iter().map(|s| FixedState { extras: s.extras.clone(), ..*s }).collect();
        let groups = panes
            .groups
            .iter()
            .map(|g| PaneGroup { members: g.members.clone(), panes: g.panes.clone(), ..*g })
            .collect();
        WindowPanes { states, groups }
    }
}
