//! Pattern rules: per (rule, key), the key's events in event-time order (each processed once the
//! frontier has passed its timestamp, so the order does not depend on arrival), fed to the
//! pattern matcher; a completed sequence raises an alert at the epoch of its last event.

use crate::alerts::Alert;
use crate::checkpoint::Hooks;
use crate::detect::pattern::{PatternEvent, PatternMatchers, step_matches};
use crate::detect::rules::Rules;
use crate::event::Event;
use crate::operators::stash::EventTimeStash;
use compact_str::CompactString;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::Map;

/// An event as a pattern rule sees it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PatternInput {
    /// Event time.
    pub ts: u64,
    /// Rule index.
    pub rule: u16,
    /// Key.
    pub key: CompactString,
    /// Event type.
    pub event_type: CompactString,
    /// Status was `error`.
    pub is_error: bool,
}

/// Extension trait: pattern alerts.
pub trait PatternAlerts<'s> {
    /// Applies the pattern rules; the matchers and the events not yet final are checkpointed
    /// through `hooks` (and restored from them).
    fn pattern_alerts(self, rules: Arc<Rules>, epoch: u64, hooks: &Hooks) -> StreamVec<'s, u64, Alert>;
}

impl<'s> PatternAlerts<'s> for StreamVec<'s, u64, Event> {
    fn pattern_alerts(self, rules: Arc<Rules>, epoch: u64, hooks: &Hooks) -> StreamVec<'s, u64, Alert> {
        let selecting = rules.clone();
        let inputs = self.flat_map(move |event: Event| {
            let mut out = Vec::new();
            // Late events (below their partition's watermark) are left out, as for sessions.
            if event.timestamp < event.watermark {
                return out;
            }
            for (index, rule) in selecting.pattern.iter().enumerate() {
                let Some(key) = rule.group_by.key_of(&event) else { continue };
                if rule.steps.iter().any(|s| step_matches(s, &event.event_type, event.is_error)) {
                    out.push(PatternInput {
                        ts: event.timestamp,
                        rule: index as u16,
                        key: key.into(),
                        event_type: event.event_type.clone(),
                        is_error: event.is_error,
                    });
                }
            }
            out
        });
        let route = |input: &PatternInput| crate::shard::exchange_by((input.rule, &input.key));
        let restored_matchers = hooks.restored(|s| &mut s.patterns);
        let restored_pending = hooks.restored(|s| &mut s.pattern_pending);
        let hooks = hooks.clone();
        inputs.unary_frontier(Exchange::new(route), "PatternAlerts", move |cap, _info| {
            let mut stash: EventTimeStash<PatternInput> = EventTimeStash::new(epoch);
            let mut matchers = PatternMatchers::default();
            matchers.restore(restored_matchers);
            for input in restored_pending.into_entries() {
                stash.push_restored(&cap, input.ts, input);
            }
            drop(cap);
            let state = hooks.share((stash, matchers), |(stash, matchers), checkpoint| {
                checkpoint.state.patterns.extend(matchers.snapshot());
                for input in stash.pending() {
                    checkpoint
                        .state
                        .pattern_pending
                        .push(crate::shard::shard_of((input.rule, &input.key)), input.clone());
                }
            });
            let within = rules.pattern.iter().map(|r| r.within.0).max().unwrap_or(0);
            move |(input, frontier), output| {
                let (stash, matchers) = &mut *state.borrow_mut();
                input.for_each_stamp(|cap, batches| {
                    for batch in batches {
                        for event in batch.drain(..) {
                            stash.push(&cap, event.ts, event);
                        }
                    }
                });
                // Events below the frontier are final: no earlier on-time event can still come.
                stash.release(frontier, |cap, _ts, input| {
                    let rule = &rules.pattern[usize::from(input.rule)];
                    let seen = PatternEvent { ts: input.ts, event_type: input.event_type, is_error: input.is_error };
                    if let Some(alert) = matchers.feed(input.rule, rule, &input.key, seen) {
                        output.session(cap).give(alert);
                    }
                });
                matchers.prune(EventTimeStash::<PatternInput>::done(frontier), within);
            }
        })
    }
}
