//! Window rules (threshold, z-score) judging final window records: the state of the window-alert
//! operator — z-score histories and cooldowns — in one struct, fed a key's records in the order
//! of their window ends, and snapshot by key shard.

use crate::alerts::dedup::Dedup;
use crate::alerts::{Alert, AlertKind, number};
use crate::detect::metric::{metric_value, unit};
use crate::detect::rules::{Rules, WindowCheck, WindowRule};
use crate::detect::threshold::crossed;
use crate::detect::zscore::History;
use crate::record::{WindowKey, WindowRecord};
use crate::shard::{Sharded, shard_of};
use crate::spec::AggregationConfig;
use compact_str::CompactString;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Z-score histories are pruned once there are this many …
const HISTORY_PRUNE_AT: usize = 100_000;
/// … of keys not seen for this long (event time).
const HISTORY_RETENTION_MS: u64 = 86_400_000;

/// The z-score history of one (rule, key) and the end of the last window it saw.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct KeyHistory {
    /// The last `history` values.
    pub values: History,
    /// End of the last window judged.
    pub seen: u64,
}

/// What a [`WindowJudge`] keeps, as a checkpoint stores it: per key shard, the histories
/// ((rule index, key) → history) and the cooldowns.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WindowJudgeSnapshot {
    /// Z-score histories by shard.
    pub histories: Sharded<((usize, CompactString), KeyHistory)>,
    /// Cooldowns by shard.
    pub dedup: crate::alerts::dedup::DedupSnapshot,
}

/// Judges window records against the window rules, and deduplicates the alerts.
pub struct WindowJudge {
    rules: Arc<Rules>,
    aggregations: Arc<Vec<AggregationConfig>>,
    dedup: Dedup,
    histories: FxHashMap<(usize, CompactString), KeyHistory>,
    judged: u64,
}

impl WindowJudge {
    /// A judge of `rules` over records of `aggregations`.
    pub fn new(rules: Arc<Rules>, aggregations: Arc<Vec<AggregationConfig>>) -> WindowJudge {
        WindowJudge { rules, aggregations, dedup: Dedup::default(), histories: FxHashMap::default(), judged: 0 }
    }

    /// Judges a batch of records (sorted here by window end, then key) and returns the alerts
    /// that survive deduplication, in that order.
    pub fn judge(&mut self, records: &mut [WindowRecord]) -> Vec<Alert> {
        let now = records.iter().map(|(w, _)| w.end).max().unwrap_or(0);
        // Keys not seen for a day of event time lose their history: bounded state.
        if self.histories.len() > HISTORY_PRUNE_AT {
            self.histories.retain(|_, h| h.seen.saturating_add(HISTORY_RETENTION_MS) > now);
        }
        records.sort_unstable_by(|a, b| (a.0.end, &a.0).cmp(&(b.0.end, &b.0)));
        let mut alerts = Vec::new();
        let rules = self.rules.clone();
        for (window, result) in records.iter() {
            for (index, rule) in rules.window.iter().enumerate() {
                if rule.aggregation != window.aggregation || result.scalar.count < rule.min_count {
                    continue;
                }
                let Some(observed) = metric_value(result, rule.metric) else { continue };
                let Some(mut alert) = self.check(index, rule, window, observed) else { continue };
                if self.dedup.admit(&mut alert, rules.cooldown(&rule.name)) {
                    alerts.push(alert);
                }
            }
        }
        self.judged += records.len() as u64;
        if self.judged > 10_000 {
            self.judged = 0;
            self.dedup.forget_before(now, rules.max_cooldown());
        }
        alerts
    }

    /// The alert `rule` raises for `window` with value `observed`, updating its history.
    fn check(&mut self, index: usize, rule: &WindowRule, window: &WindowKey, observed: f64) -> Option<Alert> {
        let aggregation = &self.aggregations[usize::from(window.aggregation)];
        let field = aggregation.group_by.field_name();
        let u = unit(rule.metric);
        let alert = |kind, severity| {
            Alert::new(&rule.name, kind, severity, window.end)
                .about(field, &window.key)
                .span(window.start, window.end)
                .of_aggregation(&aggregation.name)
        };
        match &rule.check {
            WindowCheck::Threshold { levels, direction } => {
                let (severity, level) = crossed(levels, *direction, observed)?;
                let side = if observed > level { "above" } else { "below" };
                Some(
                    alert(AlertKind::Threshold, severity).observed(rule.metric.as_str(), observed, Some(level)).saying(
                        format!(
                            "{} {}{u} {side} {}{u} for {field}={}",
                            rule.metric,
                            number(observed),
                            number(level),
                            window.key
                        ),
                    ),
                )
            }
            WindowCheck::Zscore { levels, direction, history, min_history } => {
                let state = self.histories.entry((index, window.key.clone())).or_default();
                state.seen = window.end;
                let judged = state.values.zscore(observed, *min_history).and_then(|z| {
                    let (severity, level) = crossed(levels, *direction, z)?;
                    Some((z, severity, level))
                });
                state.values.push(observed, *history);
                let (z, severity, level) = judged?;
                Some(
                    alert(AlertKind::Zscore, severity)
                        .observed(rule.metric.as_str(), observed, Some(level))
                        .with_zscore(z)
                        .saying(format!(
                            "{} {}{u} is {} standard deviations from the last {} windows for {field}={}",
                            rule.metric,
                            number(observed),
                            number(z),
                            history,
                            window.key
                        )),
                )
            }
        }
    }

    /// The judge's state by key shard (the shard of `(aggregation, key)`, as the exchange routes).
    pub fn snapshot(&self) -> WindowJudgeSnapshot {
        let mut histories = Sharded::default();
        for ((index, key), history) in &self.histories {
            let aggregation = self.rules.window[*index].aggregation;
            histories.push(shard_of((aggregation, key)), ((*index, key.clone()), history.clone()));
        }
        let aggregation_of: FxHashMap<&str, u16> =
            self.rules.window.iter().map(|r| (r.name.as_str(), r.aggregation)).collect();
        let dedup = self.dedup.snapshot(|rule, key| shard_of((aggregation_of.get(rule).copied().unwrap_or(0), key)));
        WindowJudgeSnapshot { histories, dedup }
    }

    /// Adds the state of the shards in `snapshot` (those this worker owns).
    pub fn restore(&mut self, snapshot: WindowJudgeSnapshot) {
        self.histories.extend(snapshot.histories.into_entries());
        self.dedup.restore(snapshot.dedup);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{Direction, Levels, Metric, WindowConfig};
    use crate::stats::PartialStats;

    fn judge() -> WindowJudge {
        let aggregation = AggregationConfig {
            name: "by_type_1m".into(),
            window: WindowConfig::Tumbling { size: crate::spec::Millis(60_000) },
            group_by: crate::spec::GroupBy::EventType,
        };
        let rule = |name: &str, check| WindowRule {
            name: name.into(),
            aggregation: 0,
            metric: Metric::Count,
            min_count: 1,
            check,
        };
        let mut rules = Rules::default();
        rules.window.push(rule(
            "busy",
            WindowCheck::Threshold {
                levels: Levels { high: Some(3.0), ..Levels::default() },
                direction: Direction::Above,
            },
        ));
        rules.window.push(rule(
            "count_z",
            WindowCheck::Zscore {
                levels: Levels { low: Some(2.0), ..Levels::default() },
                direction: Direction::Above,
                history: 3,
                min_history: 2,
            },
        ));
        rules.cooldowns.insert("busy".into(), 120_000);
        rules.cooldowns.insert("count_z".into(), 0);
        WindowJudge::new(Arc::new(rules), Arc::new(vec![aggregation]))
    }

    fn record(minute: u64, key: &str, count: u64) -> WindowRecord {
        let mut stats = PartialStats::default();
        (0..count).for_each(|_| stats.add(false, None, None, None));
        let key =
            WindowKey { aggregation: 0, start: (minute * 60_000) as i64, end: (minute + 1) * 60_000, key: key.into() };
        (key, stats.finish())
    }

    #[test]
    fn thresholds_z_scores_and_cooldowns_per_key() {
        let mut judge = judge();
        let mut batch = vec![record(0, "b", 5), record(0, "a", 1)];
        let alerts = judge.judge(&mut batch);
        assert_eq!(alerts.iter().map(|a| (a.rule.as_str(), a.key.as_str())).collect::<Vec<_>>(), vec![("busy", "b")]);
        // Within the cooldown: suppressed, and counted on the next one emitted.
        assert!(judge.judge(&mut [record(1, "b", 5)]).is_empty());
        let later = judge.judge(&mut [record(3, "b", 5)]);
        assert_eq!((later[0].rule.as_str(), later[0].suppressed), ("busy", 1));
        // "a": 1, 1, 2 then 9 — a z-score far above its history.
        for (minute, count) in [(1, 1), (2, 2)] {
            assert!(judge.judge(&mut [record(minute, "a", count)]).is_empty());
        }
        let spike = judge.judge(&mut [record(3, "a", 2), record(4, "a", 1)]);
        assert!(spike.is_empty(), "{spike:?}");
        let spike = judge.judge(&mut [record(5, "a", 9)]);
        assert_eq!(spike.iter().map(|a| a.rule.as_str()).collect::<Vec<_>>(), vec!["busy", "count_z"]);
        assert!(spike[1].zscore.is_some());
    }

    #[test]
    fn a_restored_judge_judges_as_the_original_would() {
        let mut original = judge();
        for minute in 0..4 {
            original.judge(&mut [record(minute, "a", 1 + minute % 2), record(minute, "b", 5)]);
        }
        let snapshot = original.snapshot();
        let text = serde_json::to_string(&snapshot).unwrap();
        let mut restored = judge();
        restored.restore(serde_json::from_str(&text).unwrap());
        assert_eq!(restored.snapshot(), snapshot);
        let next = || vec![record(4, "a", 9), record(4, "b", 5)];
        assert_eq!(restored.judge(&mut next()), original.judge(&mut next()));
    }
}
