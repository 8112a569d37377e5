//! Session windows: per (aggregation, key), maximal runs of events whose consecutive timestamps
//! differ by less than the gap; a session covers `[first, last + gap)`.
//!
//! Events are exchanged by key, so each worker owns whole keys. Events are merged into sessions
//! as they arrive, in any order (session membership depends only on the set of events); a
//! session is emitted once the input frontier reaches `last + gap`, after which no on-time event
//! can touch it (on-time session events have timestamps at or above the watermark). Sessions are
//! emitted at the epoch of `last + gap - 1`, so their output batch does not depend on timing.

use crate::checkpoint::Hooks;
use crate::control::{Report, ReportPacing, RunControl};
use crate::event::Event;
use crate::record::{WindowKey, WindowRecord};
use crate::shard::{Sharded, shard_of};
use crate::spec::GroupBy;
use crate::stats::PartialStats;
use crate::window::{AggregationPlan, Shape, epoch_of};
use compact_str::CompactString;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::generic::Operator;

/// What a session aggregation needs of an event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionEvent {
    /// Aggregation index.
    pub aggregation: u16,
    /// Group key.
    pub key: CompactString,
    /// Event time.
    pub timestamp: u64,
    /// Status was `error`.
    pub is_error: bool,
    /// Latency, ms.
    pub latency_ms: Option<f64>,
    /// Value.
    pub value: Option<f64>,
    /// User (`None` for an aggregation by user: the key is the user).
    pub user_id: Option<CompactString>,
}

/// An open session of one key.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OpenSession {
    /// First timestamp.
    pub first: u64,
    /// Last timestamp.
    pub last: u64,
    /// Statistics so far.
    pub stats: PartialStats,
    /// The emit time under which the session is listed to close (0: not yet listed).
    pub listed_at: u64,
}

/// Adds an event at `ts` to a key's sessions (sorted by `first`, disjoint, more than `gap`
/// apart), merging every session it bridges. Returns the index of the session that holds it.
pub fn insert_into_sessions(
    sessions: &mut Vec<OpenSession>,
    ts: u64,
    gap: u64,
    add: impl FnOnce(&mut PartialStats),
) -> usize {
    // Sessions within reach: ts - last < gap and first - ts < gap. Sorted, disjoint and more
    // than `gap` apart, they are a run: any session between two in reach is in reach too.
    let in_reach = |s: &OpenSession| ts.saturating_sub(s.last) < gap && s.first.saturating_sub(ts) < gap;
    let at = match sessions.iter().position(in_reach) {
        Some(first) => {
            let bridged = sessions[first + 1..].iter().take_while(|s| in_reach(s)).count();
            if bridged > 0 {
                let (into, absorbed) = sessions[first..=first + bridged].split_first_mut().expect("a session");
                for other in absorbed.iter() {
                    into.first = into.first.min(other.first);
                    into.last = into.last.max(other.last);
                    into.stats.merge(&other.stats);
                }
                sessions.drain(first + 1..=first + bridged);
            }
            first
        }
        None => {
            let at = sessions.partition_point(|s| s.first < ts);
            sessions.insert(at, OpenSession { first: ts, last: ts, ..OpenSession::default() });
            at
        }
    };
    let session = &mut sessions[at];
    session.first = session.first.min(ts);
    session.last = session.last.max(ts);
    add(&mut session.stats);
    at
}

/// What the sessions of one aggregation need of its plan.
#[derive(Clone, Copy, Debug)]
struct SessionPlan {
    gap: u64,
    /// The aggregation groups by user, so the key is the event's user: a session of it holds
    /// that one user, whose fingerprint is computed once per session, not once per event.
    key_is_user: bool,
}

/// An aggregation and a group key: what sessions are kept per.
pub type SessionKey = (u16, CompactString);

/// The open sessions of every session aggregation on one worker (the keys the exchange sends
/// it): the state of [`SessionWindows`], snapshot by the shard of (aggregation, key).
pub struct OpenSessions {
    /// By aggregation index, the session aggregations' plans.
    plans: Vec<Option<SessionPlan>>,
    epoch: u64,
    open: FxHashMap<SessionKey, Vec<OpenSession>>,
}

impl OpenSessions {
    /// No sessions yet, for the session aggregations among `aggregations` and epochs of
    /// `epoch` ms.
    pub fn new(aggregations: &[AggregationPlan], epoch: u64) -> OpenSessions {
        let mut plans = vec![None; aggregations.iter().map(|p| usize::from(p.index) + 1).max().unwrap_or(0)];
        for plan in aggregations {
            if let Shape::Session { gap } = plan.shape {
                plans[usize::from(plan.index)] =
                    Some(SessionPlan { gap, key_is_user: plan.group_by == GroupBy::UserId });
            }
        }
        OpenSessions { plans, epoch, open: FxHashMap::default() }
    }

    /// The plan of a session aggregation.
    fn plan(&self, aggregation: u16) -> SessionPlan {
        self.plans[usize::from(aggregation)].expect("a session aggregation")
    }

    /// The emit time of a session: the epoch of its `last + gap - 1`.
    fn emit_time(&self, aggregation: u16, session: &OpenSession) -> u64 {
        epoch_of(session.last.saturating_add(self.plan(aggregation).gap).saturating_sub(1), self.epoch)
    }

    /// Adds an event to its key's sessions; returns the emit time under which the key must be
    /// listed when its session moved to a new one (a busy key's session moves about once an
    /// epoch, so keys are listed once per emit time, not once per event).
    pub fn add(&mut self, event: SessionEvent) -> Option<(u64, SessionKey)> {
        let SessionPlan { gap, key_is_user } = self.plan(event.aggregation);
        let id = (event.aggregation, event.key);
        let sessions = match self.open.get_mut(&id) {
            Some(sessions) => sessions,
            None => self.open.entry(id.clone()).or_default(),
        };
        let at = insert_into_sessions(sessions, event.timestamp, gap, |stats| {
            let user = match key_is_user {
                true => stats.users.is_empty().then_some(&id.1),
                false => event.user_id.as_ref(),
            };
            stats.add(event.is_error, event.latency_ms, event.value, user)
        });
        let emit_at = epoch_of(sessions[at].last.saturating_add(gap).saturating_sub(1), self.epoch);
        let session = &mut sessions[at];
        if session.listed_at == emit_at {
            return None;
        }
        session.listed_at = emit_at;
        Some((emit_at, id))
    }

    /// Emits (to `emit`) and forgets the sessions of `id` due at `emit_at`. A key may be listed
    /// twice (sessions it bridged were listed too): the second visit finds nothing due.
    pub fn close_due(&mut self, id: &SessionKey, emit_at: u64, mut emit: impl FnMut(WindowRecord)) {
        let gap = self.plan(id.0).gap;
        let epoch = self.epoch;
        let Some(sessions) = self.open.get_mut(id) else { return };
        sessions.retain(|s| {
            if epoch_of(s.last.saturating_add(gap).saturating_sub(1), epoch) > emit_at {
                return true;
            }
            let key = WindowKey {
                aggregation: id.0,
                start: s.first as i64,
                end: s.last.saturating_add(gap),
                key: id.1.clone(),
            };
            emit((key, s.stats.finish()));
            false
        });
        if sessions.is_empty() {
            self.open.remove(id);
        }
    }

    /// Every open session, by the shard of (aggregation, key), as the exchange routes.
    pub fn snapshot(&self) -> Sharded<(SessionKey, Vec<OpenSession>)> {
        let mut out = Sharded::default();
        for (id, sessions) in &self.open {
            out.push(shard_of((id.0, &id.1)), (id.clone(), sessions.clone()));
        }
        out
    }

    /// Adds the sessions of `snapshot` (those of the shards this worker owns); returns the emit
    /// times and keys to list them under.
    pub fn restore(&mut self, snapshot: Sharded<(SessionKey, Vec<OpenSession>)>) -> Vec<(u64, SessionKey)> {
        let mut listings = Vec::new();
        for (id, mut sessions) in snapshot.into_entries() {
            for session in sessions.iter_mut() {
                session.listed_at = self.emit_time(id.0, session);
                listings.push((session.listed_at, id.clone()));
            }
            self.open.insert(id, sessions);
        }
        listings
    }
}

/// Sessions that may close at one emit time: the capability to emit them and their keys (in
/// arrival order; the sinks sort).
type Closing = (Capability<u64>, Vec<SessionKey>);

/// Extension trait: session windows.
pub trait SessionWindows<'s> {
    /// Computes the session windows of the session `aggregations`; the open sessions are
    /// checkpointed through `hooks` (and restored from them). The number of open sessions is
    /// reported to `control` when a live view listens.
    fn session_windows(
        self,
        aggregations: &[AggregationPlan],
        epoch: u64,
        hooks: &Hooks,
        control: Arc<RunControl>,
    ) -> StreamVec<'s, u64, WindowRecord>;
}

impl<'s> SessionWindows<'s> for StreamVec<'s, u64, Event> {
    fn session_windows(
        self,
        aggregations: &[AggregationPlan],
        epoch: u64,
        hooks: &Hooks,
        control: Arc<RunControl>,
    ) -> StreamVec<'s, u64, WindowRecord> {
        let worker = self.scope().index();
        let plans: Vec<AggregationPlan> =
            aggregations.iter().filter(|p| matches!(p.shape, Shape::Session { .. })).copied().collect();
        let sessions = OpenSessions::new(&plans, epoch);

        // An event's session events go straight into the output (a vector per event cost an
        // allocation per event).
        let session_events = self.unary(Pipeline, "SessionEvents", move |_cap, _info| {
            move |input, output| {
                input.for_each_stamp(|cap, batches| {
                    let mut session = output.session(&cap);
                    for batch in batches {
                        for event in batch.drain(..) {
                            for plan in &plans {
                                let Some(key) = plan.group_key(&event) else { continue };
                                // By user, the key is the user: not sent twice.
                                let key_is_user = plan.group_by == GroupBy::UserId;
                                if plan.lateness(event.timestamp, event.watermark).late_for_some {
                                    continue;
                                }
                                session.give(SessionEvent {
                                    aggregation: plan.index,
                                    key: CompactString::from(key),
                                    timestamp: event.timestamp,
                                    is_error: event.is_error,
                                    latency_ms: event.latency_ms,
                                    value: event.value,
                                    user_id: if key_is_user { None } else { event.user_id.clone() },
                                });
                            }
                        }
                    }
                });
            }
        });

        let route = |e: &SessionEvent| crate::shard::exchange_by((e.aggregation, &e.key));
        let sessions =
            hooks.share(sessions, |sessions, checkpoint| checkpoint.state.sessions.extend(sessions.snapshot()));
        let restored = hooks.restored(|s| &mut s.sessions);
        let resumed_at = hooks.resumed_at;
        let mut pacing = ReportPacing::default();
        let scope = session_events.scope();
        session_events.unary_frontier(Exchange::new(route), "SessionWindows", move |cap, info| {
            let activator = scope.activator_for(info.address);
            // Emit time → (capability, keys with a session that may close then).
            let mut closing: BTreeMap<u64, Closing> = BTreeMap::new();
            for (emit_at, id) in sessions.borrow_mut().restore(restored) {
                let at = emit_at.max(resumed_at);
                closing.entry(at).or_insert_with(|| (cap.delayed(&at), Vec::new())).1.push(id);
            }
            drop(cap);

            move |(input, frontier), output| {
                let mut sessions = sessions.borrow_mut();
                let mut changed = false;
                input.for_each_stamp(|cap, batches| {
                    changed = true;
                    for batch in batches {
                        for event in batch.drain(..) {
                            if let Some((emit_at, id)) = sessions.add(event) {
                                let (_, ids) =
                                    closing.entry(emit_at).or_insert_with(|| (cap.delayed(&emit_at, 0), Vec::new()));
                                ids.push(id);
                            }
                        }
                    }
                });

                let closing_before = closing.len();
                while let Some(entry) = closing.first_entry() {
                    if frontier.less_equal(entry.key()) {
                        break;
                    }
                    let emit_at = *entry.key();
                    let (cap, ids) = entry.remove();
                    let mut session = output.session(&cap);
                    for id in ids {
                        sessions.close_due(&id, emit_at, |record| session.give(record));
                    }
                }
                if control.live.enabled() {
                    match pacing.poll(changed || closing.len() != closing_before, Instant::now()) {
                        Report::Now => {
                            let open = sessions.open.values().map(Vec::len).sum::<usize>() as u64;
                            control.counters.open_windows.set(&format!("{worker}/sessions"), open);
                        }
                        Report::After(wait) => activator.activate_after(wait),
                        Report::Idle => {}
                    }
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{AggregationConfig, Millis, WindowConfig};

    fn sessions_of(timestamps: &[u64], gap: u64) -> Vec<(u64, u64, u64)> {
        let mut sessions = Vec::new();
        for ts in timestamps {
            insert_into_sessions(&mut sessions, *ts, gap, |s| s.add(false, None, None, None));
        }
        sessions.iter().map(|s| (s.first, s.last, s.stats.scalar.count)).collect()
    }

    #[test]
    fn events_closer_than_the_gap_share_a_session() {
        assert_eq!(sessions_of(&[0, 5, 9, 30, 35], 10), vec![(0, 9, 3), (30, 35, 2)]);
        // Exactly the gap apart: a new session.
        assert_eq!(sessions_of(&[0, 10], 10), vec![(0, 0, 1), (10, 10, 1)]);
    }

    fn session_event(ts: u64, key: &str) -> SessionEvent {
        SessionEvent {
            aggregation: 0,
            key: key.into(),
            timestamp: ts,
            is_error: false,
            latency_ms: Some(1.0),
            value: None,
            user_id: None,
        }
    }

    /// One session aggregation (index 0) with a gap of 10 s, grouped by `group_by`.
    fn session_plans(group_by: GroupBy) -> Vec<AggregationPlan> {
        let gap = WindowConfig::Session { gap: Millis(10_000) };
        AggregationPlan::from_config(&[AggregationConfig { name: "s".into(), window: gap, group_by }])
    }

    #[test]
    fn open_sessions_list_once_per_emit_time_close_when_due_and_survive_a_restore() {
        let by_user = session_plans(GroupBy::UserId);
        let mut sessions = OpenSessions::new(&by_user, 1_000);
        assert_eq!(sessions.add(session_event(1_200, "u1")), Some((11_000, (0, "u1".into()))));
        assert_eq!(sessions.add(session_event(1_900, "u1")), None, "same emit time: listed once");
        assert_eq!(sessions.add(session_event(2_500, "u1")).map(|l| l.0), Some(12_000));
        sessions.add(session_event(50_000, "u2"));
        let snapshot = sessions.snapshot();
        let mut restored = OpenSessions::new(&by_user, 1_000);
        let mut listings = restored.restore(serde_json::from_str(&serde_json::to_string(&snapshot).unwrap()).unwrap());
        listings.sort();
        assert_eq!(listings, vec![(12_000, (0, "u1".into())), (59_000, (0, "u2".into()))]);
        let mut closed = Vec::new();
        restored.close_due(&(0, "u1".into()), 11_000, |r| closed.push(r));
        assert!(closed.is_empty(), "not due yet: its last event moved it to 12000");
        restored.close_due(&(0, "u1".into()), 12_000, |r| closed.push(r));
        assert_eq!(closed.len(), 1);
        assert_eq!((closed[0].0.start, closed[0].0.end, closed[0].1.scalar.count), (1_200, 12_500, 3));
        // The key is the user: one distinct user, as when every event named it (an aggregation
        // by type whose key happens to be "u1").
        let named = |ts| SessionEvent { user_id: Some("u1".into()), ..session_event(ts, "u1") };
        let mut by_name = OpenSessions::new(&session_plans(GroupBy::EventType), 1_000);
        [1_200, 1_900, 2_500].into_iter().for_each(|ts| drop(by_name.add(named(ts))));
        let mut expected = Vec::new();
        by_name.close_due(&(0, "u1".into()), 12_000, |r| expected.push(r));
        assert_eq!(closed, expected);
        assert_eq!(closed[0].1.unique_users, 1);
    }

    #[test]
    fn order_does_not_matter_and_a_bridge_merges_sessions() {
        let forward = sessions_of(&[0, 5, 20, 25, 14], 10);
        assert_eq!(forward, vec![(0, 25, 5)]);
        let shuffled = sessions_of(&[14, 25, 0, 20, 5], 10);
        assert_eq!(shuffled, forward);
        let three = sessions_of(&[0, 40, 20, 10, 30], 10);
        assert_eq!(three, vec![(0, 0, 1), (10, 10, 1), (20, 20, 1), (30, 30, 1), (40, 40, 1)]);
        let bridged = sessions_of(&[0, 40, 20, 10, 30, 5, 15, 25, 35], 10);
        assert_eq!(bridged, vec![(0, 40, 9)]);
    }
}
