//! Single-event rules: judged on each event as it arrives, deduplicated per (rule, key) in
//! arrival order, and sent on at once, without waiting for any window or watermark — the
//! fast path of alerting.

use crate::alerts::dedup::Dedup;
use crate::alerts::{Alert, AlertKind, number};
use crate::checkpoint::Hooks;
use crate::detect::rules::Rules;
use crate::detect::threshold::crossed;
use crate::event::{Event, event_matches};
use crate::spec::{Direction, EventMetric, EventRule};
use std::sync::Arc;
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::Map;

/// The alert a single-event rule raises for an event, if any.
pub fn judge_event(rule: &EventRule, event: &Event) -> Option<Alert> {
    if !event_matches(rule.event_type.as_deref(), rule.status, &event.event_type, event.is_error) {
        return None;
    }
    let key = rule.group_by.key_of(event)?;
    let (severity, threshold, observed, metric) = match rule.metric {
        Some(metric) => {
            let value = match metric {
                EventMetric::LatencyMs => event.latency_ms,
                EventMetric::Value => event.value,
            }?;
            let (severity, level) = crossed(&rule.levels, Direction::Above, value)?;
            (severity, Some(level), value, metric.as_str())
        }
        None => (rule.severity, None, 1.0, "event"),
    };
    let field = rule.group_by.field_name();
    let message = match threshold {
        Some(level) => format!(
            "{metric} {} above {} in one {} event for {field}={key}",
            number(observed),
            number(level),
            event.event_type
        ),
        None => format!(
            "{} event{} for {field}={key}",
            event.event_type,
            if event.is_error { " with status error" } else { "" }
        ),
    };
    Some(
        Alert::new(&rule.name, AlertKind::Event, severity, event.timestamp)
            .about(field, key)
            .observed(metric, observed, threshold)
            .saying(message),
    )
}

/// Extension trait: single-event alerts.
pub trait EventAlerts<'s> {
    /// Applies the single-event rules; the cooldowns are checkpointed through `hooks` (and
    /// restored from them).
    fn event_alerts(self, rules: Arc<Rules>, hooks: &Hooks) -> StreamVec<'s, u64, Alert>;
}

impl<'s> EventAlerts<'s> for StreamVec<'s, u64, Event> {
    fn event_alerts(self, rules: Arc<Rules>, hooks: &Hooks) -> StreamVec<'s, u64, Alert> {
        let judged = rules.clone();
        let candidates = self.flat_map(move |event: Event| {
            judged.event.iter().filter_map(|rule| judge_event(rule, &event)).collect::<Vec<_>>()
        });
        let route = |alert: &Alert| crate::shard::exchange_by((&alert.rule, &alert.key));
        let mut restored = Dedup::default();
        restored.restore(hooks.restored(|s| &mut s.event_dedup));
        let dedup = hooks.share(restored, |dedup, checkpoint| checkpoint.state.event_dedup.extend(dedup.by_shard()));
        candidates.unary(Exchange::new(route), "EventAlerts", move |_cap, _info| {
            let mut admitted = 0u64;
            move |input, output| {
                let mut dedup = dedup.borrow_mut();
                input.for_each_stamp(|cap, batches| {
                    let mut session = output.session(&cap);
                    for batch in batches {
                        for mut alert in batch.drain(..) {
                            let cooldown = rules.cooldown(&alert.rule);
                            if dedup.admit(&mut alert, cooldown) {
                                admitted += 1;
                                if admitted.is_multiple_of(10_000) {
                                    dedup.forget_before(alert.time, rules.max_cooldown());
                                }
                                session.give(alert);
                            }
                        }
                    }
                });
            }
        })
    }
}
