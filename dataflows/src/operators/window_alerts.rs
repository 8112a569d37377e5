//! Window rules (threshold, z-score) on final window records, exchanged by (aggregation, key),
//! judged and deduplicated per (rule, key) as they arrive. A key's records come from one worker
//! (the one whose `reduce` owns the key) in the order of their window ends, so histories,
//! cooldowns and results are the same for any number of workers — without waiting for another
//! frontier, which keeps window alerts within milliseconds of the watermark.

use crate::alerts::dedup::Dedup;
use crate::alerts::{Alert, AlertKind, number};
use crate::detect::metric::{metric_value, unit};
use crate::detect::rules::{Rules, WindowCheck};
use crate::detect::threshold::crossed;
use crate::detect::zscore::History;
use crate::record::WindowRecord;
use crate::spec::AggregationConfig;
use crate::stats::F64Bits;
use compact_str::CompactString;
use rustc_hash::FxHashMap;
use std::sync::Arc;
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;

/// Z-score histories are pruned once there are this many …
const HISTORY_PRUNE_AT: usize = 100_000;
/// … of keys not seen for this long (event time).
const HISTORY_RETENTION_MS: u64 = 86_400_000;

/// Extension trait: window alerts.
pub trait WindowAlerts<'s> {
    /// Applies the window rules to final window records.
    fn window_alerts(self, rules: Arc<Rules>, aggregations: Arc<Vec<AggregationConfig>>) -> StreamVec<'s, u64, Alert>;
}

impl<'s> WindowAlerts<'s> for StreamVec<'s, u64, WindowRecord> {
    fn window_alerts(self, rules: Arc<Rules>, aggregations: Arc<Vec<AggregationConfig>>) -> StreamVec<'s, u64, Alert> {
        let route = |(key, _): &WindowRecord| crate::operators::route_hash((key.aggregation, &key.key));
        self.unary(Exchange::new(route), "WindowAlerts", move |_cap, _info| {
            let mut dedup = Dedup::default();
            let mut judged = 0u64;
            // (rule, key) → history and the end of the last window it saw.
            let mut histories: FxHashMap<(usize, CompactString), (History, u64)> = FxHashMap::default();
            move |input, output| {
                input.for_each_stamp(|cap, batches| {
                    let mut records: Vec<WindowRecord> = batches.flat_map(|b| b.drain(..)).collect();
                    // Keys not seen for a day of event time lose their history: bounded state.
                    if histories.len() > HISTORY_PRUNE_AT {
                        let now = records.iter().map(|(w, _)| w.end).max().unwrap_or(0);
                        histories.retain(|_, (_, seen)| seen.saturating_add(HISTORY_RETENTION_MS) > now);
                    }
                    records.sort_unstable_by(|a, b| (a.0.end, &a.0).cmp(&(b.0.end, &b.0)));
                    let mut session = output.session(&cap);
                    let mut give = |mut alert: Alert| {
                        let cooldown = rules.cooldown(&alert.rule);
                        if dedup.admit(&mut alert, cooldown) {
                            session.give(alert);
                        }
                    };
                    for (window, result) in &records {
                        for (index, rule) in rules.window.iter().enumerate() {
                            if rule.aggregation != window.aggregation || result.scalar.count < rule.min_count {
                                continue;
                            }
                            let Some(observed) = metric_value(result, rule.metric) else { continue };
                            let aggregation = &aggregations[usize::from(window.aggregation)];
                            let field = aggregation.group_by.field_name();
                            let u = unit(rule.metric);
                            let alert = |severity, threshold: f64, zscore: Option<f64>, message: String| Alert {
                                time: window.end,
                                rule: rule.name.as_str().into(),
                                kind: if zscore.is_some() { AlertKind::Zscore } else { AlertKind::Threshold },
                                severity,
                                aggregation: Some(aggregation.name.as_str().into()),
                                group_by: field.into(),
                                key: window.key.clone(),
                                window_start: window.start,
                                window_end: window.end,
                                metric: rule.metric.as_str().into(),
                                observed: F64Bits::new(observed),
                                threshold: Some(F64Bits::new(threshold)),
                                zscore: zscore.map(F64Bits::new),
                                suppressed: 0,
                                message,
                            };
                            match &rule.check {
                                WindowCheck::Threshold { levels, direction } => {
                                    if let Some((severity, level)) = crossed(levels, *direction, observed) {
                                        let side = if observed > level { "above" } else { "below" };
                                        give(alert(
                                            severity,
                                            level,
                                            None,
                                            format!("{} {}{u} {side} {}{u} for {field}={}", rule.metric, number(observed), number(level), window.key),
                                        ));
                                    }
                                }
                                WindowCheck::Zscore { levels, direction, history, min_history } => {
                                    let (state, seen) = histories.entry((index, window.key.clone())).or_default();
                                    *seen = window.end;
                                    if let Some(z) = state.zscore(observed, *min_history)
                                        && let Some((severity, level)) = crossed(levels, *direction, z)
                                    {
                                        give(alert(
                                            severity,
                                            level,
                                            Some(z),
                                            format!(
                                                "{} {}{u} is {} standard deviations from the last {} windows for {field}={}",
                                                rule.metric,
                                                number(observed),
                                                number(z),
                                                history,
                                                window.key
                                            ),
                                        ));
                                    }
                                    state.push(observed, *history);
                                }
                            }
                        }
                    }
                    judged += records.len() as u64;
                    if judged > 10_000 {
                        judged = 0;
                        let now = records.iter().map(|(w, _)| w.end).max().unwrap_or(0);
                        dedup.forget_before(now, rules.max_cooldown());
                    }
                });
            }
        })
    }
}
