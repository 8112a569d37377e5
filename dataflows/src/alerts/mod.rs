//! Alerts (CONTRACT section 5): the alert record, its stable id, its encoder, deduplication and
//! routing. Everything here is pure; operators and channels wire it in.

pub mod dedup;
pub mod route;

use crate::spec::{RuleKind, Severity};
use crate::stats::F64Bits;
use compact_str::CompactString;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The detector that raised an alert.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum AlertKind {
    /// A metric against levels.
    Threshold,
    /// A z-score against the key's history.
    Zscore,
    /// A sequence of events.
    Pattern,
    /// A rare event-type transition.
    RareSequence,
    /// A single event (reported with kind `threshold` or `pattern`, see [`AlertKind::as_str`]).
    Event,
}

impl AlertKind {
    /// The contract's kind name. Single-event rules are thresholds on one event (with a metric)
    /// or a one-step pattern (without).
    pub fn as_str(self, has_threshold: bool) -> &'static str {
        match self {
            AlertKind::Threshold => "threshold",
            AlertKind::Zscore => "zscore",
            AlertKind::Pattern => "pattern",
            AlertKind::RareSequence => "rare_sequence",
            AlertKind::Event if has_threshold => "threshold",
            AlertKind::Event => "pattern",
        }
    }
    /// The detector kind routes name (`event` for single-event rules).
    pub fn rule_kind(self) -> RuleKind {
        match self {
            AlertKind::Threshold => RuleKind::Threshold,
            AlertKind::Zscore => RuleKind::Zscore,
            AlertKind::Pattern => RuleKind::Pattern,
            AlertKind::RareSequence => RuleKind::RareSequence,
            AlertKind::Event => RuleKind::Event,
        }
    }
}

/// One alert, as it travels to the channels.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Alert {
    /// Event time the alert is about (window end, or the event's timestamp): what cooldowns use.
    pub time: u64,
    /// Rule name.
    pub rule: CompactString,
    /// Detector kind.
    pub kind: AlertKind,
    /// Severity.
    pub severity: Severity,
    /// The aggregation (window rules), if any.
    pub aggregation: Option<CompactString>,
    /// The grouping field of the key.
    pub group_by: CompactString,
    /// The key.
    pub key: CompactString,
    /// Start of the window (or of the event sequence), ms.
    pub window_start: i64,
    /// End of the window (or the last event's time), ms.
    pub window_end: u64,
    /// The metric judged.
    pub metric: CompactString,
    /// Its observed value.
    pub observed: F64Bits,
    /// The level it crossed, if any.
    pub threshold: Option<F64Bits>,
    /// The z-score, for z-score rules.
    pub zscore: Option<F64Bits>,
    /// Alerts of the same rule and key suppressed since the last one emitted.
    pub suppressed: u64,
    /// A readable sentence.
    pub message: String,
}

impl Alert {
    /// An alert of `rule` (a detector of `kind`) at `severity`, about events of `key` (grouped by
    /// `group_by`) from `window_start` to `window_end`, judged at event time `time`. What was
    /// observed, the aggregation and the message are set with the methods below.
    pub fn new(rule: &str, kind: AlertKind, severity: Severity, time: u64) -> Alert {
        Alert {
            time,
            rule: rule.into(),
            kind,
            severity,
            aggregation: None,
            group_by: CompactString::default(),
            key: CompactString::default(),
            window_start: time as i64,
            window_end: time,
            metric: CompactString::default(),
            observed: F64Bits::new(0.0),
            threshold: None,
            zscore: None,
            suppressed: 0,
            message: String::new(),
        }
    }
    /// The key the alert is about and its grouping field.
    pub fn about(mut self, group_by: &str, key: &str) -> Alert {
        self.group_by = group_by.into();
        self.key = key.into();
        self
    }
    /// The span of event time it covers: a window, or the events of a sequence.
    pub fn span(mut self, start: i64, end: u64) -> Alert {
        self.window_start = start;
        self.window_end = end;
        self
    }
    /// The aggregation whose window it judged.
    pub fn of_aggregation(mut self, name: &str) -> Alert {
        self.aggregation = Some(name.into());
        self
    }
    /// The metric judged, its value and the level it crossed (if any).
    pub fn observed(mut self, metric: &str, value: f64, threshold: Option<f64>) -> Alert {
        self.metric = metric.into();
        self.observed = F64Bits::new(value);
        self.threshold = threshold.map(F64Bits::new);
        self
    }
    /// The z-score, for z-score rules.
    pub fn with_zscore(mut self, z: f64) -> Alert {
        self.zscore = Some(F64Bits::new(z));
        self
    }
    /// The readable sentence.
    pub fn saying(mut self, message: String) -> Alert {
        self.message = message;
        self
    }

    /// Stable for the same rule, aggregation, key and window: a replay yields the same id.
    pub fn alert_id(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(self.rule.as_bytes());
        hasher.update(b"|");
        hasher.update(self.aggregation.as_deref().unwrap_or("").as_bytes());
        hasher.update(b"|");
        hasher.update(self.key.as_bytes());
        hasher.update(b"|");
        hasher.update(self.window_start.to_string().as_bytes());
        hex::encode(&hasher.finalize()[..8])
    }
}

#[derive(Serialize)]
struct AlertJson<'a> {
    alert_id: String,
    rule: &'a str,
    kind: &'static str,
    severity: &'static str,
    aggregation: Option<&'a str>,
    group_by: &'a str,
    key: &'a str,
    window_start: i64,
    window_end: u64,
    metric: &'a str,
    observed: f64,
    threshold: Option<f64>,
    zscore: Option<f64>,
    suppressed: u64,
    message: &'a str,
    emitted_at: u64,
}

/// Encodes an alert as one line of JSON (no newline).
pub fn encode_alert(alert: &Alert, emitted_at: u64) -> String {
    let json = AlertJson {
        alert_id: alert.alert_id(),
        rule: &alert.rule,
        kind: alert.kind.as_str(alert.threshold.is_some()),
        severity: alert.severity.as_str(),
        aggregation: alert.aggregation.as_deref(),
        group_by: &alert.group_by,
        key: &alert.key,
        window_start: alert.window_start,
        window_end: alert.window_end,
        metric: &alert.metric,
        observed: alert.observed.get(),
        threshold: alert.threshold.map(F64Bits::get),
        zscore: alert.zscore.map(F64Bits::get),
        suppressed: alert.suppressed,
        message: &alert.message,
        emitted_at,
    };
    serde_json::to_string(&json).expect("an alert always serializes")
}

/// One readable line for the console, coloured by severity when `colour` (a terminal).
pub fn describe_alert_coloured(alert: &Alert, colour: bool) -> String {
    let line = describe_alert(alert);
    if !colour {
        return line;
    }
    let code = match alert.severity {
        Severity::Critical => "1;31",
        Severity::High => "31",
        Severity::Medium => "33",
        Severity::Low => "36",
    };
    format!("\x1b[{code}m{line}\x1b[0m")
}

/// One readable line for the console.
pub fn describe_alert(alert: &Alert) -> String {
    let time = chrono::DateTime::from_timestamp_millis(alert.window_start)
        .map(|t| t.format("%H:%M:%S").to_string())
        .unwrap_or_else(|| alert.window_start.to_string());
    let suppressed = if alert.suppressed > 0 { format!(" (+{} suppressed)", alert.suppressed) } else { String::new() };
    format!("ALERT {:<8} {} {} {}{}", alert.severity.as_str(), time, alert.rule, alert.message, suppressed)
}

/// Formats a number for messages: integers without decimals, others with up to 3.
pub fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{:.3}", v).trim_end_matches('0').to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn sample() -> Alert {
        Alert::new("error_rate_critical", AlertKind::Threshold, Severity::Critical, 1_764_230_460_000)
            .about("event_type", "login")
            .span(1_764_230_400_000, 1_764_230_460_000)
            .of_aggregation("by_type_1m")
            .observed("error_rate", 12.5, Some(10.0))
            .saying("error_rate 12.5% above 10% for event_type=login".into())
    }

    #[test]
    fn encodes_the_contract_shape() {
        let line = encode_alert(&sample(), 1_764_230_460_311);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        for field in [
            "alert_id",
            "rule",
            "kind",
            "severity",
            "aggregation",
            "group_by",
            "key",
            "window_start",
            "window_end",
            "metric",
            "observed",
            "threshold",
            "zscore",
            "suppressed",
            "message",
            "emitted_at",
        ] {
            assert!(v.get(field).is_some(), "{field} missing in {line}");
        }
        assert_eq!(v["kind"], "threshold");
        assert_eq!(v["severity"], "critical");
        assert_eq!(v["zscore"], serde_json::Value::Null);
        assert_eq!(v["alert_id"].as_str().unwrap().len(), 16);
    }

    #[test]
    fn alert_ids_are_stable_and_distinct() {
        let a = sample();
        let mut b = sample();
        b.suppressed = 3;
        b.observed = F64Bits::new(99.0);
        assert_eq!(a.alert_id(), b.alert_id(), "same rule, aggregation, key and window");
        b.window_start += 60_000;
        assert_ne!(a.alert_id(), b.alert_id());
        // Pinned: a replay in a later version must produce the same id.
        assert_eq!(a.alert_id(), sample().alert_id());
    }
}
