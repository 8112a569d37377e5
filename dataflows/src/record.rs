//! Output records and their encoders: metrics records (CONTRACT section 4) and dead-letter
//! records (section 8). Encoders are pure functions, tested against exact strings.

use crate::spec::AggregationConfig;
use crate::stats::WindowResult;
use compact_str::CompactString;
use serde::{Deserialize, Serialize};

/// Identifies one window of one key of one aggregation.
///
/// Its hash covers only the aggregation and the key (equal keys still hash equally), so that
/// the window results route every window of a key to the same worker: that worker then emits the
/// key's windows in the order of their ends, which the alert detectors rely on.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct WindowKey {
    /// Index of the aggregation in the config.
    pub aggregation: u16,
    /// Window start, ms (inclusive; negative only for sliding windows that start before 1970).
    pub start: i64,
    /// Window end, ms (exclusive).
    pub end: u64,
    /// The group key (`"*"` for `group_by: none`).
    pub key: CompactString,
}

impl std::hash::Hash for WindowKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.aggregation.hash(state);
        self.key.hash(state);
    }
}

/// A finished window: its key and its statistics. What metrics sinks receive.
pub type WindowRecord = (WindowKey, WindowResult);

#[derive(Serialize)]
struct LatencyJson {
    count: u64,
    min: Option<f64>,
    max: Option<f64>,
    mean: Option<f64>,
    p50: Option<f64>,
    p90: Option<f64>,
    p95: Option<f64>,
    p99: Option<f64>,
}

#[derive(Serialize)]
struct ValueJson {
    count: u64,
    sum: Option<f64>,
    mean: Option<f64>,
    min: Option<f64>,
    max: Option<f64>,
}

#[derive(Serialize)]
struct MetricJson<'a> {
    aggregation: &'a str,
    window: &'a str,
    window_start: i64,
    window_end: u64,
    group_by: &'a str,
    key: &'a str,
    count: u64,
    error_count: u64,
    error_rate: f64,
    unique_users: u64,
    latency_ms: LatencyJson,
    value: ValueJson,
    emitted_at: u64,
}

/// Encodes a metrics record as one line of JSON (no newline).
pub fn encode_metric(record: &WindowRecord, aggregation: &AggregationConfig, emitted_at: u64) -> String {
    let (key, result) = record;
    let s = &result.scalar;
    let some = |count: u64, v: f64| if count > 0 { Some(v) } else { None };
    let l = &s.latency;
    let percentiles = result.latency_percentiles();
    let pct = |i: usize| percentiles.map(|p| p[i]);
    let v = &s.value;
    let json = MetricJson {
        aggregation: &aggregation.name,
        window: aggregation.window.kind_name(),
        window_start: key.start,
        window_end: key.end,
        group_by: aggregation.group_by.field_name(),
        key: &key.key,
        count: s.count,
        error_count: s.errors,
        error_rate: result.error_rate(),
        unique_users: result.unique_users,
        latency_ms: LatencyJson {
            count: l.count,
            min: some(l.count, l.min.get()),
            max: some(l.count, l.max.get()),
            mean: some(l.count, l.sum.to_f64() / l.count as f64),
            p50: pct(0),
            p90: pct(1),
            p95: pct(2),
            p99: pct(3),
        },
        value: ValueJson {
            count: v.count,
            sum: some(v.count, v.sum.to_f64()),
            mean: some(v.count, v.sum.to_f64() / v.count as f64),
            min: some(v.count, v.min.get()),
            max: some(v.count, v.max.get()),
        },
        emitted_at,
    };
    serde_json::to_string(&json).expect("a metrics record always serializes")
}

/// The Kafka key of a metrics record: `{aggregation}|{window_start}|{key}`.
pub fn metric_key(record: &WindowRecord, aggregation: &AggregationConfig) -> String {
    format!("{}|{}|{}", aggregation.name, record.0.start, record.0.key)
}

/// The Kafka key of a dead letter: `{partition}|{offset}` of the input.
pub fn dead_letter_key(letter: &DeadLetter) -> String {
    format!("{}|{}", letter.position.partition, letter.position.offset)
}

/// One statistic of a metrics record, as flat outputs write it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Stat {
    /// A count.
    Int(u64),
    /// A rate, an extreme, a mean, a sum or a percentile.
    Float(f64),
}

/// The statistics of a metrics record flattened, named as InfluxDB fields and Redis hash fields
/// name them (`count`, `error_rate`, `latency_p99`, `value_sum`, …, CONTRACT 4.1 and 4.2), in the
/// contract's order; a null statistic is left out.
pub fn flat_statistics(result: &WindowResult) -> Vec<(&'static str, Stat)> {
    let s = &result.scalar;
    let mut out = vec![
        ("count", Stat::Int(s.count)),
        ("error_count", Stat::Int(s.errors)),
        ("error_rate", Stat::Float(result.error_rate())),
        ("unique_users", Stat::Int(result.unique_users)),
        ("latency_count", Stat::Int(s.latency.count)),
    ];
    let l = &s.latency;
    if l.count > 0 {
        out.push(("latency_min", Stat::Float(l.min.get())));
        out.push(("latency_max", Stat::Float(l.max.get())));
        out.push(("latency_mean", Stat::Float(l.sum.to_f64() / l.count as f64)));
        if let Some(p) = result.latency_percentiles() {
            let names = ["latency_p50", "latency_p90", "latency_p95", "latency_p99"];
            out.extend(names.into_iter().zip(p).map(|(name, value)| (name, Stat::Float(value))));
        }
    }
    let v = &s.value;
    out.push(("value_count", Stat::Int(v.count)));
    if v.count > 0 {
        out.push(("value_sum", Stat::Float(v.sum.to_f64())));
        out.push(("value_mean", Stat::Float(v.sum.to_f64() / v.count as f64)));
        out.push(("value_min", Stat::Float(v.min.get())));
        out.push(("value_max", Stat::Float(v.max.get())));
    }
    out
}

/// One readable line for the console.
pub fn describe_metric(record: &WindowRecord, aggregation: &AggregationConfig) -> String {
    let (key, result) = record;
    let s = &result.scalar;
    let time = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .map(|t| t.format("%H:%M:%S").to_string())
            .unwrap_or_else(|| ms.to_string())
    };
    let mut line = format!(
        "{:<20} {} {}..{} {}={:<14} count={:<6} errors={:.2}% users={}",
        aggregation.name,
        aggregation.window.kind_name(),
        time(key.start),
        time(key.end as i64),
        aggregation.group_by.field_name(),
        key.key,
        s.count,
        result.error_rate(),
        result.unique_users
    );
    if let Some([p50, _, _, p99]) = result.latency_percentiles() {
        line.push_str(&format!(" p50={p50:.1}ms p99={p99:.1}ms"));
    }
    if s.value.count > 0 {
        line.push_str(&format!(" value.sum={:.2}", s.value.sum.to_f64()));
    }
    line
}

/// Where an input came from: a partition and a position in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Position {
    /// Partition index (0 for a file or stdin).
    pub partition: u32,
    /// Line number (1-based) for files and stdin, offset otherwise.
    pub offset: u64,
}

/// An input that did not make it into (some) aggregation: invalid, or late.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DeadLetter {
    /// Where it came from; dead letters are written in this order within an epoch.
    pub position: Position,
    /// The aggregation it was late for (`None` for an invalid input).
    pub aggregation: Option<u16>,
    /// The reason (`late`, `invalid_json`, …).
    pub reason: CompactString,
    /// The source kind: `file`, `stdin`, `generator`, `kafka`.
    pub source: CompactString,
    /// Whether positions are line numbers (`line N`) rather than `partition P offset O`.
    pub by_line: bool,
    /// The input as text (lossy for non-UTF-8; cut for oversized inputs).
    pub raw: String,
    /// Event time, when the input had a readable one.
    pub event_time: Option<u64>,
    /// Why exactly, for invalid inputs (`timestamp … is after 9999-12-31…`, `user_id is empty`).
    pub detail: Option<String>,
}

/// Raw text of a dead letter is cut to this many bytes for oversized inputs.
const MAX_DEAD_LETTER_RAW: usize = 1024;

impl DeadLetter {
    /// The dead letter of the input `bytes` read at `position` of a source of `kind`, for
    /// `reason` (`late` names the `aggregation` it was late for); the raw text is cut to 1 KiB
    /// for `too_large` inputs.
    pub fn new(
        kind: crate::source::SourceKind,
        position: Position,
        reason: &str,
        aggregation: Option<u16>,
        bytes: &[u8],
        event_time: Option<u64>,
    ) -> DeadLetter {
        let cut = &bytes[..bytes.len().min(if reason == "too_large" { MAX_DEAD_LETTER_RAW } else { usize::MAX })];
        DeadLetter {
            position,
            aggregation,
            reason: reason.into(),
            source: kind.name.into(),
            by_line: kind.by_line,
            raw: String::from_utf8_lossy(cut).into_owned(),
            event_time,
            detail: None,
        }
    }

    /// With the reason's detail.
    pub fn because(mut self, detail: String) -> DeadLetter {
        self.detail = Some(detail);
        self
    }
}

#[derive(Serialize)]
struct DeadLetterJson<'a> {
    reason: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    aggregation: Option<&'a str>,
    source: &'a str,
    position: String,
    raw: &'a str,
    event_time: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a str>,
}

/// Encodes a dead-letter record as one line of JSON (no newline).
pub fn encode_dead_letter(letter: &DeadLetter, aggregations: &[AggregationConfig]) -> String {
    let position = if letter.by_line {
        format!("line {}", letter.position.offset)
    } else {
        format!("partition {} offset {}", letter.position.partition, letter.position.offset)
    };
    let json = DeadLetterJson {
        reason: &letter.reason,
        aggregation: letter.aggregation.and_then(|a| aggregations.get(usize::from(a))).map(|a| a.name.as_str()),
        source: &letter.source,
        position,
        raw: &letter.raw,
        event_time: letter.event_time,
        detail: letter.detail.as_deref(),
    };
    serde_json::to_string(&json).expect("a dead-letter record always serializes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{GroupBy, Millis, WindowConfig};
    use crate::stats::PartialStats;

    fn aggregation() -> AggregationConfig {
        AggregationConfig {
            name: "by_type_1m".into(),
            window: WindowConfig::Tumbling { size: Millis(60_000) },
            group_by: GroupBy::EventType,
        }
    }

    #[test]
    fn encodes_a_metrics_record_exactly() {
        let mut p = PartialStats::default();
        let u = CompactString::from("u1");
        p.add(true, Some(10.0), Some(1.5), Some(&u));
        p.add(false, Some(30.0), None, Some(&u));
        let key = WindowKey { aggregation: 0, start: 1_764_230_400_000, end: 1_764_230_460_000, key: "click".into() };
        let line = encode_metric(&(key, p.finish()), &aggregation(), 42);
        assert_eq!(
            line,
            r#"{"aggregation":"by_type_1m","window":"tumbling","window_start":1764230400000,"window_end":1764230460000,"group_by":"event_type","key":"click","count":2,"error_count":1,"error_rate":50.0,"unique_users":1,"latency_ms":{"count":2,"min":10.0,"max":30.0,"mean":20.0,"p50":10.0,"p90":30.0,"p95":30.0,"p99":30.0},"value":{"count":1,"sum":1.5,"mean":1.5,"min":1.5,"max":1.5},"emitted_at":42}"#
        );
    }

    #[test]
    fn statistics_without_values_are_null() {
        let mut p = PartialStats::default();
        p.add(false, None, None, None);
        let key = WindowKey { aggregation: 0, start: 0, end: 60_000, key: "x".into() };
        let line = encode_metric(&(key, p.finish()), &aggregation(), 1);
        assert!(line.contains(r#""latency_ms":{"count":0,"min":null,"max":null,"mean":null,"p50":null"#), "{line}");
        assert!(line.contains(r#""value":{"count":0,"sum":null"#), "{line}");
    }

    #[test]
    fn encodes_dead_letters() {
        let letter = DeadLetter {
            position: Position { partition: 0, offset: 123 },
            aggregation: Some(0),
            reason: "late".into(),
            source: "file".into(),
            by_line: true,
            raw: "{\"a\":1}".into(),
            event_time: Some(1_764_230_400_123),
            detail: None,
        };
        assert_eq!(
            encode_dead_letter(&letter, &[aggregation()]),
            r#"{"reason":"late","aggregation":"by_type_1m","source":"file","position":"line 123","raw":"{\"a\":1}","event_time":1764230400123}"#
        );
        let invalid = DeadLetter {
            aggregation: None,
            by_line: false,
            reason: "invalid_json".into(),
            event_time: None,
            detail: Some("expected value at line 1 column 2".into()),
            ..letter
        };
        assert_eq!(
            encode_dead_letter(&invalid, &[]),
            r#"{"reason":"invalid_json","source":"file","position":"partition 0 offset 123","raw":"{\"a\":1}","event_time":null,"detail":"expected value at line 1 column 2"}"#
        );
    }
}
