//! The rules each detector operator applies, compiled from `anomalies:` and from the seed's
//! `alerts.conditions` / `alerts.severity_levels` (mapped onto threshold rules named
//! `error_rate` and `latency`).

use crate::spec::{
    AnomalyConfig, Direction, EventRule, Levels, Metric, PatternRule, Pipeline, RareSequenceRule, SeedLevels, Severity,
    WindowConfig,
};
use rustc_hash::FxHashMap;

/// What a window rule does.
#[derive(Clone, Debug, PartialEq)]
pub enum WindowCheck {
    /// Levels against the value.
    Threshold {
        /// Levels.
        levels: Levels,
        /// Side.
        direction: Direction,
    },
    /// Levels against the z-score.
    Zscore {
        /// Levels of |z|.
        levels: Levels,
        /// Side.
        direction: Direction,
        /// Windows of baseline.
        history: usize,
        /// Least baseline.
        min_history: usize,
    },
}

/// A rule on the final records of one aggregation.
#[derive(Clone, Debug, PartialEq)]
pub struct WindowRule {
    /// Rule name.
    pub name: String,
    /// Aggregation index.
    pub aggregation: u16,
    /// The metric judged.
    pub metric: Metric,
    /// Windows with fewer events are not judged.
    pub min_count: u64,
    /// What to check.
    pub check: WindowCheck,
}

/// Every rule of a config, by the operator that applies it.
#[derive(Clone, Debug, Default)]
pub struct Rules {
    /// Rules on window records.
    pub window: Vec<WindowRule>,
    /// Single-event rules.
    pub event: Vec<EventRule>,
    /// Pattern rules.
    pub pattern: Vec<PatternRule>,
    /// Rare-sequence rules.
    pub rare: Vec<RareSequenceRule>,
    /// Cooldown of every rule, ms.
    pub cooldowns: FxHashMap<String, u64>,
}

impl Rules {
    /// Whether there is anything to detect.
    pub fn is_empty(&self) -> bool {
        self.window.is_empty() && self.event.is_empty() && self.pattern.is_empty() && self.rare.is_empty()
    }
    /// The cooldown of a rule.
    pub fn cooldown(&self, rule: &str) -> u64 {
        self.cooldowns.get(rule).copied().unwrap_or(0)
    }
    /// The longest cooldown.
    pub fn max_cooldown(&self) -> u64 {
        self.cooldowns.values().copied().max().unwrap_or(0)
    }
}

/// Compiles the rules of a validated pipeline.
pub fn compile(config: &Pipeline) -> Rules {
    let index = |name: &str| config.aggregations.iter().position(|a| a.name == name).map(|i| i as u16);
    let default_cooldown = config.alerts.cooldown.0;
    let mut rules = Rules::default();
    for rule in &config.anomalies {
        rules.cooldowns.insert(rule.name().to_owned(), rule.cooldown().map_or(default_cooldown, |c| c.0));
        match rule {
            AnomalyConfig::Threshold(r) => rules.window.push(WindowRule {
                name: r.name.clone(),
                aggregation: index(&r.aggregation).unwrap_or(0),
                metric: r.metric,
                min_count: r.min_count,
                check: WindowCheck::Threshold { levels: r.levels, direction: r.direction },
            }),
            AnomalyConfig::Zscore(r) => rules.window.push(WindowRule {
                name: r.name.clone(),
                aggregation: index(&r.aggregation).unwrap_or(0),
                metric: r.metric,
                min_count: r.min_count,
                check: WindowCheck::Zscore {
                    levels: r.levels,
                    direction: r.direction,
                    history: r.history,
                    min_history: r.min_history,
                },
            }),
            AnomalyConfig::Pattern(r) => rules.pattern.push(r.clone()),
            AnomalyConfig::RareSequence(r) => rules.rare.push(r.clone()),
            AnomalyConfig::Event(r) => rules.event.push(r.clone()),
        }
    }
    // The seed's shape: conditions are the lowest level, severity_levels the others.
    let alerts = &config.alerts;
    let seed_aggregation = alerts.aggregation.as_deref().and_then(index).or_else(|| {
        config.aggregations.iter().position(|a| matches!(a.window, WindowConfig::Tumbling { .. })).map(|i| i as u16)
    });
    if let Some(aggregation) = seed_aggregation {
        let conditions = alerts.conditions.clone().unwrap_or_default();
        let seeds = [
            (
                "error_rate",
                Metric::ErrorRate,
                conditions.error_rate_threshold,
                (|l: &SeedLevels| l.error_rate) as fn(&SeedLevels) -> Option<f64>,
            ),
            ("latency", alerts.latency_metric, conditions.latency_threshold, |l: &SeedLevels| l.latency),
        ];
        for (name, metric, threshold, level_of) in seeds {
            let mut levels = Levels::default();
            for (severity, seed) in &alerts.severity_levels {
                if let Some(level) = level_of(seed) {
                    levels.set(*severity, level);
                }
            }
            if let Some(threshold) = threshold {
                let lowest = if levels.get(Severity::Medium).is_none() { Severity::Medium } else { Severity::Low };
                levels.set(lowest, threshold);
            }
            if levels.is_empty() || rules.window.iter().any(|r| r.name == name) {
                continue;
            }
            rules.cooldowns.insert(name.to_owned(), default_cooldown);
            rules.window.push(WindowRule {
                name: name.to_owned(),
                aggregation,
                metric,
                min_count: 20,
                check: WindowCheck::Threshold { levels, direction: Direction::Above },
            });
        }
    }
    rules
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipeline(yaml: &str) -> Pipeline {
        #[derive(serde::Deserialize)]
        struct Sections {
            aggregations: Vec<crate::spec::AggregationConfig>,
            alerts: crate::spec::AlertsConfig,
        }
        let sections: Sections = serde_yaml_ng::from_str(yaml).expect("valid sections");
        Pipeline { aggregations: sections.aggregations, alerts: sections.alerts, ..Pipeline::default() }
    }

    #[test]
    fn the_seed_shape_becomes_threshold_rules() {
        let text = r#"
aggregations:
  - { name: by_type_1m, window: { kind: tumbling, size: 1m }, group_by: event_type }
alerts:
  conditions:
    error_rate_threshold: 5.0
    latency_threshold: 1000
  severity_levels:
    critical: { error_rate: 10.0, latency: 2000 }
"#;
        let rules = compile(&pipeline(text));
        assert_eq!(rules.window.len(), 2);
        let error = &rules.window[0];
        assert_eq!(error.name, "error_rate");
        assert_eq!(error.metric, Metric::ErrorRate);
        let WindowCheck::Threshold { levels, direction } = &error.check else { panic!("threshold") };
        assert_eq!(*direction, Direction::Above);
        assert_eq!(levels.critical, Some(10.0));
        assert_eq!(levels.medium, Some(5.0));
        assert_eq!(rules.window[1].metric, Metric::LatencyP99);
        assert_eq!(rules.cooldown("latency"), 300_000);
    }
}
