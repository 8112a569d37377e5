//! Pattern rules: per (rule, key), the key's events in event-time order (each processed once the
//! frontier has passed its timestamp, so the order does not depend on arrival), fed to the
//! pattern matcher; a completed sequence raises an alert at the epoch of its last event.

use crate::alerts::{Alert, AlertKind};
use crate::detect::pattern::{PatternEvent, PatternState, step_matches};
use crate::detect::rules::Rules;
use crate::event::Event;
use crate::operators::stash::EventTimeStash;
use crate::stats::F64Bits;
use compact_str::CompactString;
use rustc_hash::FxHashMap;
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
    /// Applies the pattern rules.
    fn pattern_alerts(self, rules: Arc<Rules>, epoch: u64) -> StreamVec<'s, u64, Alert>;
}

impl<'s> PatternAlerts<'s> for StreamVec<'s, u64, Event> {
    fn pattern_alerts(self, rules: Arc<Rules>, epoch: u64) -> StreamVec<'s, u64, Alert> {
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
        let route = |input: &PatternInput| crate::operators::route_hash((input.rule, &input.key));
        inputs.unary_frontier(Exchange::new(route), "PatternAlerts", move |_cap, _info| {
            let mut stash: EventTimeStash<PatternInput> = EventTimeStash::new(epoch);
            let mut states: FxHashMap<(u16, CompactString), PatternState> = FxHashMap::default();
            move |(input, frontier), output| {
                input.for_each_stamp(|cap, batches| {
                    for batch in batches {
                        for event in batch.drain(..) {
                            stash.push(&cap, event.ts, event);
                        }
                    }
                });
                // Events below the frontier are final: no earlier on-time event can still come.
                stash.release(frontier, |cap, _ts, event| {
                    let rule = &rules.pattern[usize::from(event.rule)];
                    let state = states.entry((event.rule, event.key.clone())).or_default();
                    let seen =
                        PatternEvent { ts: event.ts, event_type: event.event_type.clone(), is_error: event.is_error };
                    if let Some(first) = state.feed(&rule.steps, rule.within.0, seen) {
                        let steps = rule.steps.iter().map(|s| s.repeat).sum::<u32>();
                        output.session(cap).give(Alert {
                            time: event.ts,
                            rule: rule.name.as_str().into(),
                            kind: AlertKind::Pattern,
                            severity: rule.severity,
                            aggregation: None,
                            group_by: rule.group_by.field_name().into(),
                            key: event.key.clone(),
                            window_start: first as i64,
                            window_end: event.ts,
                            metric: "events".into(),
                            observed: F64Bits::new(f64::from(steps)),
                            threshold: None,
                            zscore: None,
                            suppressed: 0,
                            message: format!(
                                "pattern {} completed by {}={} in {:.1}s",
                                rule.name,
                                rule.group_by.field_name(),
                                event.key,
                                (event.ts - first) as f64 / 1000.0
                            ),
                        });
                    }
                });
                let done = EventTimeStash::<PatternInput>::done(frontier);
                if states.len() > 100_000 {
                    let longest = rules.pattern.iter().map(|r| r.within.0).max().unwrap_or(0);
                    states.retain(|_, s| s.newest().is_some_and(|n| n.saturating_add(longest) >= done));
                }
            }
        })
    }
}
