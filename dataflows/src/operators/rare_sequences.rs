//! Rare-sequence rules, in two steps: per session (exchanged by session id), the session's
//! events in event-time order become transitions `prev → next`, each sent at the epoch of its
//! `next` event; per `prev` event type (exchanged by it), the transition model judges every
//! transition against what it learned before it — in event-time order, so the same input gives
//! the same alerts — and then learns it.

use crate::alerts::Alert;
use crate::checkpoint::Hooks;
use crate::detect::rare_sequence::{SessionTransitions, Transition, TransitionModel, judge_transition};
use crate::detect::rules::Rules;
use crate::event::Event;
use crate::operators::stash::{EventTimeStash, TimeStash};
use compact_str::CompactString;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::Map;

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

/// Extension trait: rare-sequence alerts.
pub trait RareSequenceAlerts<'s> {
    /// Applies the rare-sequence rules.
    /// Session states, the steps not yet final and the learned model are checkpointed through
    /// `hooks` (and restored from them).
    fn rare_sequence_alerts(self, rules: Arc<Rules>, epoch: u64, hooks: &Hooks) -> StreamVec<'s, u64, Alert>;
}

impl<'s> RareSequenceAlerts<'s> for StreamVec<'s, u64, Event> {
    fn rare_sequence_alerts(self, rules: Arc<Rules>, epoch: u64, hooks: &Hooks) -> StreamVec<'s, u64, Alert> {
        let events = self.flat_map(|event: Event| {
            let on_time = event.timestamp >= event.watermark;
            event.session_id.filter(|_| on_time).map(|session| SessionStep {
                ts: event.timestamp,
                session,
                event_type: event.event_type,
            })
        });
        let transitions = events.unary_frontier(
            Exchange::new(|e: &SessionStep| crate::shard::exchange_by(&e.session)),
            "SessionTransitions",
            |cap, _info| {
                let mut stash: EventTimeStash<SessionStep> = EventTimeStash::new(epoch);
                let mut sessions = SessionTransitions::default();
                sessions.restore(hooks.restored(|s| &mut s.sequence_sessions));
                for step in hooks.restored(|s| &mut s.sequence_pending).into_entries() {
                    stash.push_restored(&cap, step.ts, step);
                }
                drop(cap);
                let state = hooks.share((stash, sessions), |(stash, sessions), checkpoint| {
                    checkpoint.state.sequence_sessions.extend(sessions.snapshot());
                    for step in stash.pending() {
                        checkpoint.state.sequence_pending.push(crate::shard::shard_of(&step.session), step.clone());
                    }
                });
                move |(input, frontier), output| {
                    let (stash, sessions) = &mut *state.borrow_mut();
                    input.for_each_stamp(|cap, batches| {
                        for batch in batches {
                            for event in batch.drain(..) {
                                stash.push(&cap, event.ts, event);
                            }
                        }
                    });
                    stash.release(frontier, |cap, _ts, step| {
                        if let Some((prev, prev_ts)) = sessions.next(&step.session, &step.event_type, step.ts) {
                            let next = step.event_type;
                            output.session(cap).give(Transition {
                                ts: step.ts,
                                session: step.session,
                                prev,
                                next,
                                prev_ts,
                            });
                        }
                    });
                    sessions.prune(EventTimeStash::<SessionStep>::done(frontier));
                }
            },
        );
        transitions.unary_frontier(
            Exchange::new(|t: &Transition| crate::shard::exchange_by(&t.prev)),
            "RareTransitions",
            |_cap, _info| {
                let mut stash: TimeStash<Transition> = TimeStash::default();
                let restored =
                    TransitionModel::from(hooks.restored(|s| &mut s.transitions).into_entries().collect::<Vec<_>>());
                let model =
                    hooks.share(restored, |model, checkpoint| checkpoint.state.transitions.extend(model.by_shard()));
                move |(input, frontier), output| {
                    let model = &mut *model.borrow_mut();
                    input.for_each_stamp(|cap, batches| stash.push(&cap, batches));
                    while let Some((cap, mut batch)) = stash.pop_ready(frontier) {
                        batch.sort_unstable();
                        let mut session = output.session(&cap);
                        for t in batch {
                            session.give_iterator(judge_transition(model, &rules.rare, &t).into_iter());
                        }
                    }
                }
            },
        )
    }
}
