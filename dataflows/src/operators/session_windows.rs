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
use crate::stats::{Contributed, PartialStats, ScalarPartial, UserSet, user_fingerprint};
use crate::window::{AggregationPlan, Shape, epoch_of};
use compact_str::CompactString;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::generic::Operator;

/// Events of one (aggregation, key) from one batch of one worker whose timestamps, in order,
/// are less than the gap apart — a connected piece of a session — summed. A worker sends the
/// owner of a key its pieces instead of its events: a local combiner, as in Flink's
/// local-global aggregation, so a Zipf-hot user costs its owner one piece a batch, not
/// hundreds of events, and the exchange carries a fraction of the events.
///
/// Session membership depends only on the set of events, and any cut of that set into
/// connected pieces merges into the same sessions: a piece joins every session within the gap
/// of its span, as an event does.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionPiece {
    /// Aggregation index.
    pub aggregation: u16,
    /// Group key.
    pub key: CompactString,
    /// Earliest event time.
    pub first: u64,
    /// Latest event time.
    pub last: u64,
    /// Counts, sums and extremes of its events.
    pub scalar: ScalarPartial,
    /// The latency steps ([`crate::stats::buckets::latency_step`]) of its latencies.
    pub steps: SmallVec<[u16; 8]>,
    /// Its users' fingerprints (none for an aggregation by user: the key is the user).
    #[serde(with = "crate::stats::fingerprint_bytes")]
    pub users: UserSet,
}

impl SessionPiece {
    /// A piece of one event at `ts`.
    pub fn of(aggregation: u16, key: CompactString, ts: u64, event: &Contributed) -> SessionPiece {
        let mut piece = SessionPiece {
            aggregation,
            key,
            first: ts,
            last: ts,
            scalar: ScalarPartial::default(),
            steps: SmallVec::new(),
            users: UserSet::default(),
        };
        piece.add(ts, event);
        piece
    }

    fn add(&mut self, ts: u64, event: &Contributed) {
        self.first = self.first.min(ts);
        self.last = self.last.max(ts);
        self.scalar.add(event);
        if let Some((_, step)) = event.latency {
            self.steps.push(step);
        }
        if let Some(user) = event.user {
            self.users.insert(user);
        }
    }
}

/// Cuts the events of one batch into [`SessionPiece`]s: per session aggregation, each key's
/// current piece; an event out of its reach sends it off and starts the next.
struct Combiner {
    /// The session aggregations, with what their sessions need of them.
    plans: Vec<(AggregationPlan, SessionPlan)>,
    /// Per session aggregation (as in `plans`), key → index of its current piece.
    current: Vec<FxHashMap<CompactString, usize>>,
    pieces: Vec<SessionPiece>,
}

impl Combiner {
    fn new(aggregations: &[AggregationPlan]) -> Combiner {
        let plans: Vec<_> = aggregations.iter().filter_map(|p| Some((*p, SessionPlan::of(p)?))).collect();
        Combiner { current: vec![FxHashMap::default(); plans.len()], plans, pieces: Vec::new() }
    }

    /// Adds an event to the pieces of every session aggregation it is on time for; a piece it
    /// cannot join goes to `send`.
    fn add(&mut self, event: &Event, mut send: impl FnMut(SessionPiece)) {
        // The latency's step and the user's fingerprint, once for every session aggregation.
        let by_user = Contributed::of(event.is_error, event.latency_ms, event.value, None);
        let mut with_user = None;
        let ts = event.timestamp;
        for ((plan, session), current) in self.plans.iter().zip(self.current.iter_mut()) {
            let Some(key) = plan.group_key(event) else { continue };
            if plan.lateness(ts, event.watermark).late_for_some {
                continue;
            }
            // By user, the key is the user: its fingerprint is taken once per session.
            let contributed = match session.key_is_user {
                true => &by_user,
                false => with_user.get_or_insert_with(|| Contributed {
                    user: event.user_id.as_deref().map(user_fingerprint),
                    ..by_user
                }),
            };
            match current.get(key) {
                Some(&at) if within_gap((ts, ts), (self.pieces[at].first, self.pieces[at].last), session.gap) => {
                    self.pieces[at].add(ts, contributed)
                }
                Some(&at) => {
                    let next = SessionPiece::of(plan.index, CompactString::from(key), ts, contributed);
                    send(std::mem::replace(&mut self.pieces[at], next));
                }
                None => {
                    current.insert(CompactString::from(key), self.pieces.len());
                    self.pieces.push(SessionPiece::of(plan.index, CompactString::from(key), ts, contributed));
                }
            }
        }
    }

    /// Sends every piece, in the order their keys first came.
    fn flush(&mut self, send: impl FnMut(SessionPiece)) {
        self.current.iter_mut().for_each(FxHashMap::clear);
        self.pieces.drain(..).for_each(send);
    }
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

/// Adds a piece of events spanning `[first, last]` (an event: `first == last`) to a key's
/// sessions (sorted by `first`, disjoint, more than `gap` apart), merging every session it
/// bridges. Returns the index of the session that holds it.
pub fn insert_into_sessions(
    sessions: &mut Vec<OpenSession>,
    (first, last): (u64, u64),
    gap: u64,
    add: impl FnOnce(&mut PartialStats),
) -> usize {
    // Sorted, disjoint and more than `gap` apart, the sessions within reach are a run: any
    // session between two in reach is in reach too.
    let in_reach = |s: &OpenSession| within_gap((first, last), (s.first, s.last), gap);
    let at = match sessions.iter().position(in_reach) {
        Some(at) => {
            let bridged = sessions[at + 1..].iter().take_while(|s| in_reach(s)).count();
            if bridged > 0 {
                let (into, absorbed) = sessions[at..=at + bridged].split_first_mut().expect("a session");
                for other in absorbed.iter() {
                    into.first = into.first.min(other.first);
                    into.last = into.last.max(other.last);
                    into.stats.merge(&other.stats);
                }
                sessions.drain(at + 1..=at + bridged);
            }
            at
        }
        None => {
            let at = sessions.partition_point(|s| s.first < first);
            sessions.insert(at, OpenSession { first, last, ..OpenSession::default() });
            at
        }
    };
    let session = &mut sessions[at];
    session.first = session.first.min(first);
    session.last = session.last.max(last);
    add(&mut session.stats);
    at
}

/// Whether two spans of event time `[first, last]` are less than `gap` apart (or overlap): their
/// events then belong to one session.
fn within_gap(a: (u64, u64), b: (u64, u64), gap: u64) -> bool {
    a.0.saturating_sub(b.1) < gap && b.0.saturating_sub(a.1) < gap
}

/// What the sessions of one aggregation need of its plan.
#[derive(Clone, Copy, Debug)]
struct SessionPlan {
    gap: u64,
    /// The aggregation groups by user, so the key is the event's user: a session of it holds
    /// that one user, whose fingerprint is computed once per session, not once per event.
    key_is_user: bool,
}

impl SessionPlan {
    /// The session plan of a session aggregation (`None` for a fixed-window one).
    fn of(plan: &AggregationPlan) -> Option<SessionPlan> {
        match plan.shape {
            Shape::Session { gap } => Some(SessionPlan { gap, key_is_user: plan.group_by == GroupBy::UserId }),
            Shape::Fixed(_) => None,
        }
    }
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
            plans[usize::from(plan.index)] = SessionPlan::of(plan);
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

    /// Adds a piece to its key's sessions; returns the emit time under which the key must be
    /// listed when its session moved to a new one (a busy key's session moves about once an
    /// epoch, so keys are listed once per emit time, not once per piece).
    pub fn add(&mut self, piece: SessionPiece) -> Option<(u64, SessionKey)> {
        let SessionPlan { gap, key_is_user } = self.plan(piece.aggregation);
        let SessionPiece { aggregation, key, first, last, scalar, steps, users } = piece;
        let id = (aggregation, key);
        let sessions = match self.open.get_mut(&id) {
            Some(sessions) => sessions,
            None => self.open.entry(id.clone()).or_default(),
        };
        let at = insert_into_sessions(sessions, (first, last), gap, |stats| {
            stats.scalar.merge(&scalar);
            steps.iter().for_each(|step| stats.buckets.add(*step));
            match key_is_user {
                true if stats.users.is_empty() => stats.users.insert(user_fingerprint(&id.1)),
                true => {}
                false => stats.users.extend(users),
            }
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
        let sessions = OpenSessions::new(aggregations, epoch);

        // The pieces of a batch go out at its time; a piece an event cannot join goes at once.
        let mut combiner = Combiner::new(aggregations);
        let pieces = self.unary(Pipeline, "SessionPieces", move |_cap, _info| {
            move |input, output| {
                input.for_each_stamp(|cap, batches| {
                    let mut session = output.session(&cap);
                    for batch in batches {
                        for event in batch.iter() {
                            combiner.add(event, |piece| session.give(piece));
                        }
                    }
                    combiner.flush(|piece| session.give(piece));
                });
            }
        });

        let route = |p: &SessionPiece| crate::shard::exchange_by((p.aggregation, &p.key));
        let sessions =
            hooks.share(sessions, |sessions, checkpoint| checkpoint.state.sessions.extend(sessions.snapshot()));
        let restored = hooks.restored(|s| &mut s.sessions);
        let resumed_at = hooks.resumed_at;
        let mut pacing = ReportPacing::default();
        let scope = pieces.scope();
        pieces.unary_frontier(Exchange::new(route), "SessionWindows", move |cap, info| {
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
                        for piece in batch.drain(..) {
                            if let Some((emit_at, id)) = sessions.add(piece) {
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
            insert_into_sessions(&mut sessions, (*ts, *ts), gap, |s| s.add(false, None, None, None));
        }
        sessions.iter().map(|s| (s.first, s.last, s.stats.scalar.count)).collect()
    }

    #[test]
    fn events_closer_than_the_gap_share_a_session() {
        assert_eq!(sessions_of(&[0, 5, 9, 30, 35], 10), vec![(0, 9, 3), (30, 35, 2)]);
        // Exactly the gap apart: a new session.
        assert_eq!(sessions_of(&[0, 10], 10), vec![(0, 0, 1), (10, 10, 1)]);
    }

    fn session_event(ts: u64, key: &str) -> SessionPiece {
        SessionPiece::of(0, key.into(), ts, &Contributed::of(false, Some(1.0), None, None))
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
        let user = CompactString::from("u1");
        let named = |ts| SessionPiece::of(0, "u1".into(), ts, &Contributed::of(false, Some(1.0), None, Some(&user)));
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

    /// Closes every session of `sessions` (all due at the end of time), sorted.
    fn close_all(mut sessions: OpenSessions) -> Vec<WindowRecord> {
        let mut closed = Vec::new();
        let ids: Vec<SessionKey> = sessions.open.keys().cloned().collect();
        for id in ids {
            sessions.close_due(&id, u64::MAX, |r| closed.push(r));
        }
        closed.sort_by(|a, b| a.0.cmp(&b.0));
        closed
    }

    proptest::proptest! {
        /// Events cut into batches and combined into pieces close the same sessions, with the
        /// same statistics, as the same events added one at a time, in any order; a session by
        /// user and one by type (many users a session) alike.
        #[test]
        fn pieces_of_any_batches_close_the_sessions_of_their_events(
            events in proptest::collection::vec((0u64..120, 0usize..4, 0usize..5, 0u8..4, 0u32..3), 1..200),
            cuts in proptest::collection::vec(1usize..40, 1..20),
            gap in 1u64..30,
        ) {
            let configs = [GroupBy::UserId, GroupBy::EventType].map(|group_by| AggregationConfig {
                name: format!("{group_by:?}"),
                window: WindowConfig::Session { gap: Millis(gap) },
                group_by,
            });
            let plans = AggregationPlan::from_config(&configs);
            let types = ["click", "login", "search", "buy"];
            let events: Vec<Event> = events
                .iter()
                .map(|&(ts, kind, user, shape, watermark)| Event {
                    event_type: types[kind].into(),
                    user_id: (user < 4).then(|| CompactString::from(format!("u{user}"))),
                    session_id: None,
                    timestamp: ts,
                    latency_ms: (shape != 1).then_some(ts as f64 * 1.5 + 0.25),
                    value: (shape >= 2).then_some(ts as f64 - 40.0),
                    is_error: shape == 3,
                    // Some events are late for the session aggregations (below their watermark).
                    watermark: if watermark == 0 { ts + 1 } else { 0 },
                })
                .collect();

            // One event at a time, in reverse.
            let mut one_by_one = OpenSessions::new(&plans, 10);
            let mut single = Combiner::new(&plans);
            for event in events.iter().rev() {
                single.add(event, |_| unreachable!("a single event joins its own piece"));
                single.flush(|piece| drop(one_by_one.add(piece)));
            }

            // In batches cut at `cuts`, combined.
            let mut combined = OpenSessions::new(&plans, 10);
            let mut combiner = Combiner::new(&plans);
            let (mut pieces, mut rest, mut cut) = (0, events.as_slice(), cuts.iter().cycle());
            while !rest.is_empty() {
                let (batch, after) = rest.split_at((*cut.next().expect("cycled")).min(rest.len()));
                for event in batch {
                    combiner.add(event, |piece| { pieces += 1; drop(combined.add(piece)) });
                }
                combiner.flush(|piece| { pieces += 1; drop(combined.add(piece)) });
                rest = after;
            }
            let on_time = events
                .iter()
                .map(|e| plans.iter().filter(|p| p.group_key(e).is_some() && e.watermark <= e.timestamp).count())
                .sum::<usize>();
            proptest::prop_assert!(pieces <= on_time);
            proptest::prop_assert_eq!(close_all(combined), close_all(one_by_one));
        }
    }

    #[test]
    fn a_batch_sends_a_piece_per_key_and_stretch_and_a_hot_key_one_piece() {
        let plans = session_plans(GroupBy::UserId);
        let event = |ts: u64, user: &str| Event {
            event_type: "click".into(),
            user_id: Some(user.into()),
            session_id: None,
            timestamp: ts,
            latency_ms: Some(2.0),
            value: None,
            is_error: false,
            watermark: 0,
        };
        let mut combiner = Combiner::new(&plans);
        let mut sent = Vec::new();
        // u1 every second (one piece), u2 twice 30 s apart (two pieces: more than the 10 s gap).
        for ts in (0..20_000).step_by(1_000) {
            combiner.add(&event(ts, "u1"), |p| sent.push(p));
        }
        combiner.add(&event(500, "u2"), |p| sent.push(p));
        combiner.add(&event(30_500, "u2"), |p| sent.push(p));
        combiner.flush(|p| sent.push(p));
        let spans: Vec<(&str, u64, u64, u64, usize)> =
            sent.iter().map(|p| (p.key.as_str(), p.first, p.last, p.scalar.count, p.steps.len())).collect();
        assert_eq!(spans, vec![("u2", 500, 500, 1, 1), ("u1", 0, 19_000, 20, 20), ("u2", 30_500, 30_500, 1, 1)]);
        assert!(sent.iter().all(|p| p.users.is_empty()), "by user, the key is the user");
    }
}
