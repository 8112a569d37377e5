//! Rare-sequence detection: the learned probability of each event-type transition within
//! sessions, `count(prev → next) / count(prev → *)`; a transition whose probability (before it
//! is counted) is under a bound, once `prev` has at least `min_support` transitions, is rare.

use crate::alerts::{Alert, AlertKind, number};
use crate::shard::{Sharded, shard_of};
use crate::spec::RareSequenceRule;
use compact_str::CompactString;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

/// A session is forgotten after this much event time without events.
const SESSION_MEMORY_MS: u64 = 3_600_000;

/// The last event (type, time) of every session on a worker: the state of the operator that
/// turns a session's events into transitions.
#[derive(Debug, Default)]
pub struct SessionTransitions {
    last: FxHashMap<CompactString, (CompactString, u64)>,
}

/// Sessions' last events as a checkpoint stores them, by the shard of the session id.
pub type SessionsSnapshot = Sharded<(CompactString, (CompactString, u64))>;

impl SessionTransitions {
    /// Records the session's next event (in event-time order); the transition from its previous
    /// event, as (prev type, prev time), if there was one.
    pub fn next(&mut self, session: &str, event_type: &str, ts: u64) -> Option<(CompactString, u64)> {
        self.last.insert(session.into(), (event_type.into(), ts))
    }
    /// Forgets sessions silent for an hour of event time before `done` (when there are many).
    pub fn prune(&mut self, done: u64) {
        if self.last.len() > 100_000 && done != u64::MAX {
            self.last.retain(|_, (_, ts)| ts.saturating_add(SESSION_MEMORY_MS) >= done);
        }
    }
    /// The sessions by the shard of their id, as the operator's exchange routes.
    pub fn snapshot(&self) -> SessionsSnapshot {
        let mut out = Sharded::default();
        for (session, last) in &self.last {
            out.push(shard_of(session), (session.clone(), last.clone()));
        }
        out
    }
    /// Adds the sessions of the shards in `snapshot`.
    pub fn restore(&mut self, snapshot: SessionsSnapshot) {
        self.last.extend(snapshot.into_entries());
    }
}

/// Transition counts learned so far (the model of one worker: the transitions out of the event
/// types it owns). Serialized as a list of `(prev, next, count)`, so any format can hold it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(into = "Vec<(CompactString, CompactString, u64)>", from = "Vec<(CompactString, CompactString, u64)>")]
pub struct TransitionModel {
    pairs: FxHashMap<(CompactString, CompactString), u64>,
    totals: FxHashMap<CompactString, u64>,
}

impl From<TransitionModel> for Vec<(CompactString, CompactString, u64)> {
    fn from(model: TransitionModel) -> Self {
        let mut pairs: Vec<_> = model.pairs.into_iter().map(|((prev, next), n)| (prev, next, n)).collect();
        pairs.sort();
        pairs
    }
}

impl From<Vec<(CompactString, CompactString, u64)>> for TransitionModel {
    fn from(pairs: Vec<(CompactString, CompactString, u64)>) -> Self {
        let mut model = TransitionModel::default();
        for (prev, next, n) in pairs {
            *model.totals.entry(prev.clone()).or_insert(0) += n;
            *model.pairs.entry((prev, next)).or_insert(0) += n;
        }
        model
    }
}

impl TransitionModel {
    /// The counts as `(prev, next, count)` by the shard of `prev` (how the operator that owns the
    /// model receives its transitions).
    pub fn by_shard(&self) -> Sharded<(CompactString, CompactString, u64)> {
        let mut out = Sharded::default();
        for ((prev, next), n) in &self.pairs {
            out.push(shard_of(prev), (prev.clone(), next.clone(), *n));
        }
        out
    }

    /// The learned probability of `prev → next` and the support of `prev`.
    pub fn probability(&self, prev: &str, next: &str) -> (f64, u64) {
        let support = self.totals.get(prev).copied().unwrap_or(0);
        let seen = self.pairs.get(&(CompactString::from(prev), CompactString::from(next))).copied().unwrap_or(0);
        (if support == 0 { 0.0 } else { seen as f64 / support as f64 }, support)
    }

    /// Learns one transition.
    pub fn learn(&mut self, prev: &str, next: &str) {
        *self.totals.entry(prev.into()).or_insert(0) += 1;
        *self.pairs.entry((prev.into(), next.into())).or_insert(0) += 1;
    }

    /// Judges `prev → next` against what was learned before it, then learns it. Returns the
    /// probability and support when the transition is rare.
    pub fn judge_and_learn(
        &mut self,
        prev: &str,
        next: &str,
        min_support: u64,
        max_probability: f64,
    ) -> Option<(f64, u64)> {
        let (probability, support) = self.probability(prev, next);
        self.learn(prev, next);
        (support >= min_support && probability < max_probability).then_some((probability, support))
    }
}

/// A transition between consecutive events of a session.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Transition {
    /// Time of the `next` event.
    pub ts: u64,
    /// Session id.
    pub session: CompactString,
    /// Earlier event type.
    pub prev: CompactString,
    /// Later event type.
    pub next: CompactString,
    /// Time of the `prev` event.
    pub prev_ts: u64,
}

/// The alerts `rules` raise for a transition, judged against `model` before it learns it.
pub fn judge_transition(model: &mut TransitionModel, rules: &[RareSequenceRule], t: &Transition) -> Vec<Alert> {
    let (probability, support) = model.probability(&t.prev, &t.next);
    let alerts = rules
        .iter()
        .filter(|rule| support >= rule.min_support && probability < rule.max_probability)
        .map(|rule| {
            Alert::new(&rule.name, AlertKind::RareSequence, rule.severity, t.ts)
                .about("session_id", &t.session)
                .span(t.prev_ts as i64, t.ts)
                .observed("transition_probability", probability, Some(rule.max_probability))
                .saying(format!(
                    "transition {} -> {} in session {} has probability {} (of {} seen after {})",
                    t.prev,
                    t.next,
                    t.session,
                    number(probability),
                    support,
                    t.prev
                ))
        })
        .collect();
    model.learn(&t.prev, &t.next);
    alerts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_never_seen_transition_is_rare_after_enough_support() {
        let mut model = TransitionModel::default();
        for i in 0..1_000 {
            let next = if i % 2 == 0 { "click" } else { "search" };
            assert_eq!(model.judge_and_learn("page_view", next, 1_000, 0.01), None);
        }
        assert_eq!(model.judge_and_learn("page_view", "admin_export", 1_000, 0.01), Some((0.0, 1_000)));
        assert_eq!(model.judge_and_learn("page_view", "click", 1_000, 0.01), None, "a common one is not");
        assert_eq!(model.judge_and_learn("login", "admin_export", 1_000, 0.01), None, "too little support");
        let text = serde_json::to_string(&model).unwrap();
        let restored: TransitionModel = serde_json::from_str(&text).unwrap();
        assert_eq!(restored, model);
    }

    #[test]
    fn sessions_give_transitions_and_survive_a_restore() {
        let mut sessions = SessionTransitions::default();
        assert_eq!(sessions.next("s1", "page_view", 10), None);
        let mut restored = SessionTransitions::default();
        restored.restore(serde_json::from_str(&serde_json::to_string(&sessions.snapshot()).unwrap()).unwrap());
        assert_eq!(restored.next("s1", "admin_export", 20), Some(("page_view".into(), 10)));
    }
}
