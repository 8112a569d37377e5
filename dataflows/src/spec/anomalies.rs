//! The `anomalies:` and `alerts:` sections: detector rules, the seed's alert conditions,
//! routes and the cooldown.

use super::{GroupBy, Millis};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::num::NonZeroU32;

/// Alert severity, most severe first in `ALL`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Least severe.
    Low,
    /// Worth a look.
    Medium,
    /// Needs attention soon.
    High,
    /// Needs attention now.
    Critical,
}

impl Severity {
    /// Every severity, most severe first.
    pub const ALL: [Severity; 4] = [Severity::Critical, Severity::High, Severity::Medium, Severity::Low];
    /// The contract's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
        }
    }
}

/// Per-severity levels of a metric (any may be absent).
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Levels {
    /// Level for `critical`.
    #[serde(default)]
    pub critical: Option<f64>,
    /// Level for `high`.
    #[serde(default)]
    pub high: Option<f64>,
    /// Level for `medium`.
    #[serde(default)]
    pub medium: Option<f64>,
    /// Level for `low`.
    #[serde(default)]
    pub low: Option<f64>,
}

impl Levels {
    /// The level of a severity.
    pub fn get(&self, severity: Severity) -> Option<f64> {
        match severity {
            Severity::Critical => self.critical,
            Severity::High => self.high,
            Severity::Medium => self.medium,
            Severity::Low => self.low,
        }
    }
    /// Sets the level of a severity.
    pub fn set(&mut self, severity: Severity, level: f64) {
        match severity {
            Severity::Critical => self.critical = Some(level),
            Severity::High => self.high = Some(level),
            Severity::Medium => self.medium = Some(level),
            Severity::Low => self.low = Some(level),
        }
    }
    /// Whether no level is set.
    pub fn is_empty(&self) -> bool {
        Severity::ALL.iter().all(|s| self.get(*s).is_none())
    }
}

/// An event's status as rules match it: `error`, or `ok` (anything but `error`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// `status: "error"`.
    Error,
    /// Any other status, or none.
    Ok,
}

impl Status {
    /// Whether an event with `is_error` has this status.
    #[inline]
    pub fn matches(self, is_error: bool) -> bool {
        match self {
            Status::Error => is_error,
            Status::Ok => !is_error,
        }
    }
}

/// Declares a metric enum whose variants serialize as the metric's dotted name, with the list of
/// every variant written once.
macro_rules! metric_names {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)* }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant,)*
        }
        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];
            /// The name as written in configs and alerts.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

metric_names! {
    /// A metric of a window record that a window rule may watch.
    Metric {
        /// Events in the window.
        Count = "count",
        /// Events with status `error`.
        ErrorCount = "error_count",
        /// `100 * error_count / count`.
        ErrorRate = "error_rate",
        /// Distinct users.
        UniqueUsers = "unique_users",
        /// Events with a latency.
        LatencyCount = "latency_ms.count",
        /// Smallest latency.
        LatencyMin = "latency_ms.min",
        /// Largest latency.
        LatencyMax = "latency_ms.max",
        /// Mean latency.
        LatencyMean = "latency_ms.mean",
        /// Median latency.
        LatencyP50 = "latency_ms.p50",
        /// 90th percentile latency.
        LatencyP90 = "latency_ms.p90",
        /// 95th percentile latency.
        LatencyP95 = "latency_ms.p95",
        /// 99th percentile latency.
        LatencyP99 = "latency_ms.p99",
        /// Events with a value.
        ValueCount = "value.count",
        /// Sum of values.
        ValueSum = "value.sum",
        /// Mean value.
        ValueMean = "value.mean",
        /// Smallest value.
        ValueMin = "value.min",
        /// Largest value.
        ValueMax = "value.max",
    }
}

metric_names! {
    /// A field of one event that a single-event rule may judge.
    EventMetric {
        /// `latency_ms`.
        LatencyMs = "latency_ms",
        /// `value`.
        Value = "value",
    }
}

metric_names! {
    /// A detector kind, as routes name it (`event` for single-event rules).
    RuleKind {
        /// `kind: threshold`.
        Threshold = "threshold",
        /// `kind: zscore`.
        Zscore = "zscore",
        /// `kind: pattern`.
        Pattern = "pattern",
        /// `kind: rare_sequence`.
        RareSequence = "rare_sequence",
        /// `kind: event`.
        Event = "event",
    }
}

metric_names! {
    /// A sink kind: what routes name as alert channels.
    SinkKind {
        /// JSON lines in a file.
        Jsonl = "jsonl",
        /// Standard output.
        Console = "console",
        /// A Kafka topic.
        Kafka = "kafka",
        /// Redis.
        Redis = "redis",
        /// An HTTP endpoint.
        Webhook = "webhook",
        /// InfluxDB (1.x or 2.x write API).
        Influxdb = "influxdb",
    }
}

/// Which side of the levels is anomalous.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Values above the level.
    #[default]
    Above,
    /// Values below the level.
    Below,
    /// Both (z-scores: |z| above the level).
    Both,
}

/// One detector rule (`anomalies[i]`).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AnomalyConfig {
    /// A metric of a window record against per-severity levels.
    Threshold(ThresholdRule),
    /// The z-score of a metric against the key's previous windows.
    Zscore(ZscoreRule),
    /// An ordered sequence of events per key within a time bound.
    Pattern(PatternRule),
    /// Event-type transitions within sessions that are rarely seen.
    RareSequence(RareSequenceRule),
    /// A single event: alerts straight from the event stream.
    Event(EventRule),
}

impl AnomalyConfig {
    /// The rule's name.
    pub fn name(&self) -> &str {
        match self {
            AnomalyConfig::Threshold(r) => &r.name,
            AnomalyConfig::Zscore(r) => &r.name,
            AnomalyConfig::Pattern(r) => &r.name,
            AnomalyConfig::RareSequence(r) => &r.name,
            AnomalyConfig::Event(r) => &r.name,
        }
    }
    /// The rule's own cooldown, if it sets one.
    pub fn cooldown(&self) -> Option<Millis> {
        match self {
            AnomalyConfig::Threshold(r) => r.cooldown,
            AnomalyConfig::Zscore(r) => r.cooldown,
            AnomalyConfig::Pattern(r) => r.cooldown,
            AnomalyConfig::RareSequence(r) => r.cooldown,
            AnomalyConfig::Event(r) => r.cooldown,
        }
    }
}

/// `kind: threshold`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ThresholdRule {
    /// Rule name (it names the alerts).
    pub name: String,
    /// The aggregation whose records it watches.
    pub aggregation: String,
    /// The metric: `count`, `error_count`, `error_rate`, `unique_users`, `latency_ms.p99`, `value.sum`, …
    pub metric: Metric,
    /// `above` (default) or `below`.
    #[serde(default)]
    pub direction: Direction,
    /// Per-severity levels.
    pub levels: Levels,
    /// Windows with fewer events are not judged.
    #[serde(default = "default_min_count")]
    pub min_count: u64,
    /// Cooldown per key (default: `alerts.cooldown`).
    #[serde(default)]
    pub cooldown: Option<Millis>,
}

/// `kind: zscore`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ZscoreRule {
    /// Rule name.
    pub name: String,
    /// The aggregation whose records it watches.
    pub aggregation: String,
    /// The metric.
    pub metric: Metric,
    /// How many previous windows of the key make the baseline.
    #[serde(default = "default_history")]
    pub history: usize,
    /// Fewer previous windows than this: no z-score.
    #[serde(default = "default_min_history")]
    pub min_history: usize,
    /// `both` (default: |z|), `above` or `below`.
    #[serde(default = "default_both")]
    pub direction: Direction,
    /// Per-severity levels of |z|.
    pub levels: Levels,
    /// Windows with fewer events are not judged (nor added to the baseline).
    #[serde(default = "default_min_count")]
    pub min_count: u64,
    /// Cooldown per key (default: `alerts.cooldown`).
    #[serde(default)]
    pub cooldown: Option<Millis>,
}

/// One step of a pattern.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PatternStep {
    /// The event type the step needs (any when absent).
    #[serde(default)]
    pub event_type: Option<String>,
    /// The status the step needs: `error`, or `ok` (anything but `error`); any when absent.
    #[serde(default)]
    pub status: Option<Status>,
    /// How many such events in a row (of the key's matching events).
    #[serde(default = "default_repeat")]
    pub repeat: NonZeroU32,
}

/// `kind: pattern`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PatternRule {
    /// Rule name.
    pub name: String,
    /// The key the sequence is per: `user_id` or `session_id`.
    #[serde(default = "default_pattern_group")]
    pub group_by: GroupBy,
    /// The steps, in order.
    pub steps: Vec<PatternStep>,
    /// The whole sequence must fall within this much event time.
    pub within: Millis,
    /// Severity of the alert.
    #[serde(default = "default_high")]
    pub severity: Severity,
    /// Cooldown per key (default: `alerts.cooldown`).
    #[serde(default)]
    pub cooldown: Option<Millis>,
}

/// `kind: rare_sequence`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RareSequenceRule {
    /// Rule name.
    pub name: String,
    /// A transition whose learned probability is below this is rare.
    #[serde(default = "default_max_probability")]
    pub max_probability: f64,
    /// Transitions out of an event type are judged only after this many were seen.
    #[serde(default = "default_min_support")]
    pub min_support: u64,
    /// Severity of the alert.
    #[serde(default = "default_medium")]
    pub severity: Severity,
    /// Cooldown per session (default: `alerts.cooldown`).
    #[serde(default)]
    pub cooldown: Option<Millis>,
}

/// `kind: event`: one event, judged as it arrives.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EventRule {
    /// Rule name.
    pub name: String,
    /// `latency_ms` or `value`, judged against `levels`; absent: the event matching is enough.
    #[serde(default)]
    pub metric: Option<EventMetric>,
    /// Per-severity levels of the metric (above).
    #[serde(default)]
    pub levels: Levels,
    /// Only events of this type.
    #[serde(default)]
    pub event_type: Option<String>,
    /// Only events with this status (`error`, or `ok`).
    #[serde(default)]
    pub status: Option<Status>,
    /// Severity when there is no metric.
    #[serde(default = "default_high")]
    pub severity: Severity,
    /// The key alerts are deduplicated by: `event_type` (default), `user_id`, `session_id`, `none`.
    #[serde(default = "default_event_group")]
    pub group_by: GroupBy,
    /// Cooldown per key (default: `alerts.cooldown`).
    #[serde(default)]
    pub cooldown: Option<Millis>,
}

/// The `alerts:` section.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    /// The seed's simple conditions (mapped onto threshold rules).
    #[serde(default)]
    pub conditions: Option<SeedConditions>,
    /// The seed's per-severity levels of the conditions.
    #[serde(default)]
    pub severity_levels: BTreeMap<Severity, SeedLevels>,
    /// The aggregation the seed's conditions watch (default: the first tumbling one).
    #[serde(default)]
    pub aggregation: Option<String>,
    /// The metric `latency_threshold` is about.
    #[serde(default = "default_latency_metric")]
    pub latency_metric: Metric,
    /// Default cooldown per (rule, key), in event time.
    #[serde(default = "default_cooldown")]
    pub cooldown: Millis,
    /// Routes by severity, kind or rule to channels; none = every alert to every alert sink.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            conditions: None,
            severity_levels: BTreeMap::new(),
            aggregation: None,
            latency_metric: default_latency_metric(),
            cooldown: default_cooldown(),
            routes: Vec::new(),
        }
    }
}

/// `alerts.conditions`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SeedConditions {
    /// Error rate (%) above which a window alerts (at the lowest configured severity, `medium` by default).
    #[serde(default)]
    pub error_rate_threshold: Option<f64>,
    /// Latency (ms, of `latency_metric`) above which a window alerts.
    #[serde(default)]
    pub latency_threshold: Option<f64>,
}

/// `alerts.severity_levels.<severity>`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SeedLevels {
    /// Error rate (%) for this severity.
    #[serde(default)]
    pub error_rate: Option<f64>,
    /// Latency (ms) for this severity.
    #[serde(default)]
    pub latency: Option<f64>,
}

/// One route: alerts matching every given list go to `channels`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Severities (any when empty).
    #[serde(default)]
    pub severity: Vec<Severity>,
    /// Kinds: threshold, zscore, pattern, rare_sequence, event (any when empty).
    #[serde(default)]
    pub kind: Vec<RuleKind>,
    /// Rule names (any when empty).
    #[serde(default)]
    pub rule: Vec<String>,
    /// Channels, by sink kind: jsonl, console, kafka, redis, webhook.
    pub channels: Vec<SinkKind>,
}

fn default_min_count() -> u64 {
    1
}
fn default_history() -> usize {
    30
}
fn default_min_history() -> usize {
    10
}
fn default_both() -> Direction {
    Direction::Both
}
fn default_repeat() -> NonZeroU32 {
    NonZeroU32::MIN
}
fn default_pattern_group() -> GroupBy {
    GroupBy::UserId
}
fn default_event_group() -> GroupBy {
    GroupBy::EventType
}
fn default_high() -> Severity {
    Severity::High
}
fn default_medium() -> Severity {
    Severity::Medium
}
fn default_max_probability() -> f64 {
    0.001
}
fn default_min_support() -> u64 {
    1_000
}
fn default_latency_metric() -> Metric {
    Metric::LatencyP99
}
fn default_cooldown() -> Millis {
    Millis(300_000)
}
