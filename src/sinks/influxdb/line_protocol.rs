//! InfluxDB line protocol: pure encoders of metrics records, alerts and the engine's counters as
//! points (CONTRACT 4.1), tested against exact strings.
//!
//! `measurement,tag=value,… field=value,… timestamp` with the measurement's commas and spaces
//! escaped, tag keys and values and field keys with commas, equals signs and spaces escaped (a
//! newline, which the protocol cannot carry, as the two characters `\n`),
//! string fields quoted (quotes and backslashes escaped), integers with an `i` suffix, tags sorted
//! by key, no empty tag value (such a tag is left out), timestamps in milliseconds.

use dataflows::alerts::Alert;
use dataflows::record::{Stat, WindowRecord, flat_statistics};
use dataflows::spec::AggregationConfig;
use std::fmt::Write;

/// A field value.
#[derive(Clone, Debug, PartialEq)]
pub enum Field {
    /// An integer (`12i`).
    Int(i64),
    /// A float (`12.5`; whole floats keep a decimal point only if Rust prints one).
    Float(f64),
    /// A string (`"quoted"`).
    Text(String),
}

/// Escapes `special` characters with a backslash. Backslashes themselves are not escaped
/// outside string fields (InfluxDB reads `\\` there as two backslashes); a newline, which the
/// protocol cannot carry, is written as the two characters `\n`.
fn escape(out: &mut String, text: &str, special: &[char]) {
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            c if special.contains(&c) => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
}

/// One point as a line (no newline).
pub fn line(measurement: &str, tags: &[(&str, &str)], fields: &[(&str, Field)], timestamp_ms: i64) -> String {
    let mut out = String::with_capacity(256);
    escape(&mut out, measurement, &[',', ' ']);
    let mut tags: Vec<&(&str, &str)> = tags.iter().filter(|(_, v)| !v.is_empty()).collect();
    tags.sort_by(|a, b| a.0.cmp(b.0));
    for (key, value) in tags {
        out.push(',');
        escape(&mut out, key, &[',', '=', ' ']);
        out.push('=');
        escape(&mut out, value, &[',', '=', ' ']);
    }
    let mut first = true;
    for (key, value) in fields {
        out.push(if first { ' ' } else { ',' });
        first = false;
        escape(&mut out, key, &[',', '=', ' ']);
        out.push('=');
        match value {
            Field::Int(i) => {
                let _ = write!(out, "{i}i");
            }
            Field::Float(f) => {
                let _ = write!(out, "{f:?}");
            }
            Field::Text(text) => {
                out.push('"');
                for c in text.chars() {
                    if c == '"' || c == '\\' {
                        out.push('\\');
                    }
                    out.push(c);
                }
                out.push('"');
            }
        }
    }
    let _ = write!(out, " {timestamp_ms}");
    out
}

/// The point of a metrics record: tags aggregation, window, group_by, key; a null statistic is
/// left out; timestamp `window_start`.
pub fn metric_line(measurement: &str, record: &WindowRecord, aggregation: &AggregationConfig) -> String {
    let (key, result) = record;
    let mut fields: Vec<(&str, Field)> = flat_statistics(result)
        .into_iter()
        .map(|(name, stat)| match stat {
            Stat::Int(n) => (name, Field::Int(n as i64)),
            Stat::Float(f) => (name, Field::Float(f)),
        })
        .collect();
    fields.push(("window_end", Field::Int(key.end as i64)));
    let tags = [
        ("aggregation", aggregation.name.as_str()),
        ("window", aggregation.window.kind_name()),
        ("group_by", aggregation.group_by.field_name()),
        ("key", key.key.as_str()),
    ];
    line(measurement, &tags, &fields, key.start)
}

/// The point of an alert: tags rule, kind, severity, aggregation, key; timestamp `window_start`
/// (the event's time for single-event alerts).
pub fn alert_line(measurement: &str, alert: &Alert) -> String {
    let mut fields = vec![("observed", Field::Float(alert.observed.get()))];
    if let Some(threshold) = alert.threshold {
        fields.push(("threshold", Field::Float(threshold.get())));
    }
    if let Some(z) = alert.zscore {
        fields.push(("zscore", Field::Float(z.get())));
    }
    fields.push(("suppressed", Field::Int(alert.suppressed as i64)));
    fields.push(("alert_id", Field::Text(alert.alert_id())));
    fields.push(("message", Field::Text(alert.message.clone())));
    let tags = [
        ("rule", alert.rule.as_str()),
        ("kind", alert.kind.as_str(alert.threshold.is_some())),
        ("severity", alert.severity.as_str()),
        ("aggregation", alert.aggregation.as_deref().unwrap_or("")),
        ("key", alert.key.as_str()),
    ];
    line(measurement, &tags, &fields, alert.window_start)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataflows::alerts::AlertKind;
    use dataflows::record::WindowKey;
    use dataflows::spec::{GroupBy, Millis, Severity, WindowConfig};
    use dataflows::stats::PartialStats;

    #[test]
    fn escapes_measurements_tags_fields_and_strings() {
        let tags = [("b key", "x,y=z w"), ("a", "plain"), ("empty", "")];
        let fields =
            [("f,1", Field::Int(-3)), ("s", Field::Text(r#"say "hi" \ bye"#.into())), ("x", Field::Float(0.5))];
        assert_eq!(
            line("my measure,m", &tags, &fields, 1_764_230_400_000),
            r#"my\ measure\,m,a=plain,b\ key=x\,y\=z\ w f\,1=-3i,s="say \"hi\" \\ bye",x=0.5 1764230400000"#
        );
        assert_eq!(line("m", &[("k", r"back\slash")], &[("f", Field::Float(2.0))], -5), r"m,k=back\slash f=2.0 -5");
        assert_eq!(line("m", &[("k", "two\nlines")], &[("f", Field::Int(1))], 0), r"m,k=two\nlines f=1i 0");
    }

    #[test]
    fn a_metrics_record_is_one_point_with_null_statistics_left_out() {
        let aggregation = AggregationConfig {
            name: "by_type_1m".into(),
            window: WindowConfig::Tumbling { size: Millis(60_000) },
            group_by: GroupBy::EventType,
        };
        let mut p = PartialStats::default();
        p.add(true, Some(10.0), None, Some(&"u1".into()));
        p.add(false, Some(30.0), None, None);
        let key =
            WindowKey { aggregation: 0, start: 1_764_230_400_000, end: 1_764_230_460_000, key: "log in, now".into() };
        assert_eq!(
            metric_line("rtsa_metrics", &(key, p.finish()), &aggregation),
            "rtsa_metrics,aggregation=by_type_1m,group_by=event_type,key=log\\ in\\,\\ now,window=tumbling \
             count=2i,error_count=1i,error_rate=50.0,unique_users=1i,latency_count=2i,latency_min=10.0,\
             latency_max=30.0,latency_mean=20.0,latency_p50=10.0,latency_p90=30.0,latency_p95=30.0,\
             latency_p99=30.0,value_count=0i,window_end=1764230460000i 1764230400000"
        );
    }

    #[test]
    fn an_alert_is_one_point() {
        let alert = Alert::new("slow", AlertKind::Event, Severity::Critical, 1_764_230_400_123)
            .about("user_id", "u=1")
            .observed("latency_ms", 900.0, Some(500.0))
            .saying(r#"latency_ms 900 above 500 in one "click" event"#.into());
        let id = alert.alert_id();
        assert_eq!(
            alert_line("rtsa_alerts", &alert),
            format!(
                r#"rtsa_alerts,key=u\=1,kind=threshold,rule=slow,severity=critical observed=900.0,threshold=500.0,suppressed=0i,alert_id="{id}",message="latency_ms 900 above 500 in one \"click\" event" 1764230400123"#
            )
        );
    }
}
