//! Pattern detection: per key, an ordered sequence of steps (event type and/or status, with a
//! repeat count) completed within a time bound, fed in event-time order. Only the key's
//! *relevant* events (those that match some step) count, and they must follow each other:
//! five failed logins then a success means no successful login among the five failures, while
//! page views in between change nothing.

use crate::alerts::{Alert, AlertKind};
use crate::shard::{Sharded, shard_of};
use crate::spec::PatternRule;
use crate::spec::PatternStep;
use compact_str::CompactString;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// Whether an event satisfies a step.
pub fn step_matches(step: &PatternStep, event_type: &str, is_error: bool) -> bool {
    crate::event::event_matches(step.event_type.as_deref(), step.status, event_type, is_error)
}

/// An event a pattern may use.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PatternEvent {
    /// Event time.
    pub ts: u64,
    /// Event type.
    pub event_type: CompactString,
    /// Status was `error`.
    pub is_error: bool,
}

/// The recent relevant events of one key.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PatternState {
    events: VecDeque<PatternEvent>,
}

impl PatternState {
    /// Feeds the key's next event (in timestamp order). Returns the time of the sequence's first
    /// event when the pattern completes at this event; the events used are then forgotten.
    pub fn feed(&mut self, steps: &[PatternStep], within: u64, event: PatternEvent) -> Option<u64> {
        if !steps.iter().any(|s| step_matches(s, &event.event_type, event.is_error)) {
            return None;
        }
        let now = event.ts;
        while self.events.front().is_some_and(|e| e.ts.saturating_add(within) < now) {
            self.events.pop_front();
        }
        self.events.push_back(event);
        let last = steps.last()?;
        let newest = self.events.back()?;
        if !step_matches(last, &newest.event_type, newest.is_error) {
            return None;
        }
        // The last `total` relevant events must match the steps in order.
        let total: usize = steps.iter().map(|s| s.repeat.get() as usize).sum();
        if self.events.len() < total {
            return None;
        }
        let start = self.events.len() - total;
        let mut expected = steps.iter().flat_map(|s| std::iter::repeat_n(s, s.repeat.get() as usize));
        let matched = self
            .events
            .range(start..)
            .all(|e| expected.next().is_some_and(|s| step_matches(s, &e.event_type, e.is_error)));
        if !matched {
            return None;
        }
        let first = self.events[start].ts;
        self.events.clear();
        Some(first)
    }

    /// Whether the state holds nothing (and can be dropped).
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// The newest event time held.
    pub fn newest(&self) -> Option<u64> {
        self.events.back().map(|e| e.ts)
    }
}

/// The pattern matchers of every (rule, key) on a worker: the state of the pattern-alert
/// operator, fed each key's events in event-time order.
#[derive(Debug, Default)]
pub struct PatternMatchers {
    states: FxHashMap<(u16, CompactString), PatternState>,
}

/// Pattern matchers as a checkpoint stores them: ((rule index, key), state) by key shard.
pub type PatternSnapshot = Sharded<((u16, CompactString), PatternState)>;

impl PatternMatchers {
    /// Feeds `event` of `key` to rule `index`; the alert when the pattern completes.
    pub fn feed(&mut self, index: u16, rule: &PatternRule, key: &str, event: PatternEvent) -> Option<Alert> {
        let state = self.states.entry((index, key.into())).or_default();
        let ts = event.ts;
        let first = state.feed(&rule.steps, rule.within.0, event)?;
        let steps = rule.steps.iter().map(|s| s.repeat.get()).sum::<u32>();
        let field = rule.group_by.field_name();
        Some(
            Alert::new(&rule.name, AlertKind::Pattern, rule.severity, ts)
                .about(field, key)
                .span(first as i64, ts)
                .observed("events", f64::from(steps), None)
                .saying(format!(
                    "pattern {} completed by {field}={key} in {:.1}s",
                    rule.name,
                    (ts - first) as f64 / 1000.0
                )),
        )
    }

    /// Forgets keys whose newest event is more than `within` before `done` (when there are many).
    pub fn prune(&mut self, done: u64, within: u64) {
        if self.states.len() > 100_000 {
            self.states.retain(|_, s| s.newest().is_some_and(|n| n.saturating_add(within) >= done));
        }
    }

    /// The matchers by the shard of (rule, key), as the operator's exchange routes.
    pub fn snapshot(&self) -> PatternSnapshot {
        let mut out = Sharded::default();
        for ((rule, key), state) in &self.states {
            out.push(shard_of((*rule, key)), ((*rule, key.clone()), state.clone()));
        }
        out
    }

    /// Adds the matchers of the shards in `snapshot`.
    pub fn restore(&mut self, snapshot: PatternSnapshot) {
        self.states.extend(snapshot.into_entries());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Status;

    fn brute_force() -> Vec<PatternStep> {
        vec![
            PatternStep {
                event_type: Some("login".into()),
                status: Some(Status::Error),
                repeat: std::num::NonZeroU32::new(5).unwrap(),
            },
            PatternStep {
                event_type: Some("login".into()),
                status: Some(Status::Ok),
                repeat: std::num::NonZeroU32::MIN,
            },
        ]
    }

    fn event(ts: u64, event_type: &str, is_error: bool) -> PatternEvent {
        PatternEvent { ts, event_type: event_type.into(), is_error }
    }

    #[test]
    fn five_failures_then_a_success_within_the_bound() {
        let steps = brute_force();
        let mut state = PatternState::default();
        for i in 0..5 {
            assert_eq!(state.feed(&steps, 120_000, event(1_000 + i * 1_000, "login", true)), None);
        }
        assert_eq!(state.feed(&steps, 120_000, event(7_000, "click", false)), None, "unrelated events are ignored");
        assert_eq!(state.feed(&steps, 120_000, event(8_000, "login", false)), Some(1_000));
        assert!(state.is_empty(), "a match consumes its events");
        assert_eq!(state.feed(&steps, 120_000, event(9_000, "login", false)), None);
    }

    #[test]
    fn restored_matchers_complete_the_pattern() {
        let rule = PatternRule {
            name: "brute".into(),
            group_by: crate::spec::GroupBy::UserId,
            steps: brute_force(),
            within: crate::spec::Millis(120_000),
            severity: crate::spec::Severity::High,
            cooldown: None,
        };
        let mut matchers = PatternMatchers::default();
        for i in 0..5 {
            assert!(matchers.feed(0, &rule, "u1", event(1_000 + i * 1_000, "login", true)).is_none());
        }
        let text = serde_json::to_string(&matchers.snapshot()).unwrap();
        let mut restored = PatternMatchers::default();
        restored.restore(serde_json::from_str(&text).unwrap());
        let alert = restored.feed(0, &rule, "u1", event(8_000, "login", false)).expect("the pattern completes");
        assert_eq!((alert.key.as_str(), alert.window_start, alert.window_end), ("u1", 1_000, 8_000));
        assert_eq!(alert.message, "pattern brute completed by user_id=u1 in 7.0s");
    }

    #[test]
    fn a_success_among_the_failures_breaks_the_sequence() {
        let steps = brute_force();
        let mut state = PatternState::default();
        for i in 0..3 {
            state.feed(&steps, 120_000, event(i * 1_000, "login", true));
        }
        state.feed(&steps, 120_000, event(3_500, "login", false));
        for i in 4..6 {
            state.feed(&steps, 120_000, event(i * 1_000, "login", true));
        }
        assert_eq!(state.feed(&steps, 120_000, event(7_000, "login", false)), None);
    }

    #[test]
    fn too_slow_or_too_few_is_no_match() {
        let steps = brute_force();
        let mut state = PatternState::default();
        for i in 0..5 {
            state.feed(&steps, 120_000, event(i * 60_000, "login", true));
        }
        assert_eq!(state.feed(&steps, 120_000, event(5 * 60_000, "login", false)), None, "spread over 5 minutes");
        let mut state = PatternState::default();
        for i in 0..4 {
            state.feed(&steps, 120_000, event(i * 1_000, "login", true));
        }
        assert_eq!(state.feed(&steps, 120_000, event(5_000, "login", false)), None, "only four failures");
    }
}
