//! Rare-sequence rules, in two steps: per session (exchanged by session id), the session's
//! events in event-time order become transitions `prev → next`, each sent at the epoch of its
//! `next` event; per `prev` event type (exchanged by it), the transition model judges every
//! transition against what it learned before it — in event-time order, so the same input gives
//! the same alerts — and then learns it.

use crate::alerts::{Alert, AlertKind, number};
use crate::detect::rare_sequence::TransitionModel;
use crate::detect::rules::Rules;
use crate::event::Event;
use crate::operators::stash::{EventTimeStash, TimeStash};
use crate::stats::F64Bits;
use compact_str::CompactString;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::Map;

/// A session is forgotten after this much event time without events.
const SESSION_MEMORY_MS: u64 = 3_600_000;

/// One event of a session.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SessionStep {
    /// Event time.
    pub ts: u64,
    /// Session id.
    pub session: CompactString,
    /// Event type.
    pub event_type: CompactString,
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

/// Extension trait: rare-sequence alerts.
pub trait RareSequenceAlerts<'s> {
    /// Applies the rare-sequence rules.
    fn rare_sequence_alerts(self, rules: Arc<Rules>, epoch: u64) -> StreamVec<'s, u64, Alert>;
}

impl<'s> RareSequenceAlerts<'s> for StreamVec<'s, u64, Event> {
    fn rare_sequence_alerts(self, rules: Arc<Rules>, epoch: u64) -> StreamVec<'s, u64, Alert> {
        let events = self.flat_map(|event: Event| {
            let on_time = event.timestamp >= event.watermark;
            event.session_id.filter(|_| on_time).map(|session| SessionStep {
                ts: event.timestamp,
                session,
                event_type: event.event_type,
            })
        });
        let transitions = events.unary_frontier(
            Exchange::new(|e: &SessionStep| crate::operators::route_hash(&e.session)),
            "SessionTransitions",
            move |_cap, _info| {
                let mut stash: EventTimeStash<SessionStep> = EventTimeStash::new(epoch);
                let mut last: FxHashMap<CompactString, (CompactString, u64)> = FxHashMap::default();
                move |(input, frontier), output| {
                    input.for_each_stamp(|cap, batches| {
                        for batch in batches {
                            for event in batch.drain(..) {
                                stash.push(&cap, event.ts, event);
                            }
                        }
                    });
                    stash.release(frontier, |cap, _ts, event| {
                        let seen = (event.event_type.clone(), event.ts);
                        if let Some((prev, prev_ts)) = last.insert(event.session.clone(), seen) {
                            output.session(cap).give(Transition {
                                ts: event.ts,
                                session: event.session,
                                prev,
                                next: event.event_type,
                                prev_ts,
                            });
                        }
                    });
                    let done = EventTimeStash::<SessionStep>::done(frontier);
                    if last.len() > 100_000 && done != u64::MAX {
                        last.retain(|_, (_, ts)| ts.saturating_add(SESSION_MEMORY_MS) >= done);
                    }
                }
            },
        );
        transitions.unary_frontier(
            Exchange::new(|t: &Transition| crate::operators::route_hash(&t.prev)),
            "RareTransitions",
            move |_cap, _info| {
                let mut stash: TimeStash<Transition> = TimeStash::default();
                let mut model = TransitionModel::default();
                move |(input, frontier), output| {
                    input.for_each_stamp(|cap, batches| stash.push(&cap, batches));
                    while let Some((cap, mut batch)) = stash.pop_ready(frontier) {
                        batch.sort_unstable();
                        let mut session = output.session(&cap);
                        for t in batch {
                            let (probability, support) = model.probability(&t.prev, &t.next);
                            for rule in &rules.rare {
                                if support >= rule.min_support && probability < rule.max_probability {
                                    session.give(Alert {
                                    time: t.ts,
                                    rule: rule.name.as_str().into(),
                                    kind: AlertKind::RareSequence,
                                    severity: rule.severity,
                                    aggregation: None,
                                    group_by: "session_id".into(),
                                    key: t.session.clone(),
                                    window_start: t.prev_ts as i64,
                                    window_end: t.ts,
                                    metric: "transition_probability".into(),
                                    observed: F64Bits::new(probability),
                                    threshold: Some(F64Bits::new(rule.max_probability)),
                                    zscore: None,
                                    suppressed: 0,
                                    message: format!(
                                        "transition {} -> {} in session {} has probability {} (of {} seen after {})",
                                        t.prev,
                                        t.next,
                                        t.session,
                                        number(probability),
                                        support,
                                        t.prev
                                    ),
                                });
                                }
                            }
                            model.learn(&t.prev, &t.next);
                        }
                    }
                }
            },
        )
    }
}
