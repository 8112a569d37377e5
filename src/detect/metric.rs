//! Reading a named metric (`error_rate`, `latency_ms.p99`, `value.sum`, …) out of a window result.

use crate::stats::WindowResult;

/// The value of `metric` in `result`, or `None` when the window has no such values.
pub fn metric_value(result: &WindowResult, metric: &str) -> Option<f64> {
    let s = &result.scalar;
    let l = &s.latency;
    let v = &s.value;
    let some = |count: u64, x: f64| (count > 0).then_some(x);
    let percentile = |i: usize| result.latency_percentiles().map(|p| p[i]);
    match metric {
        "count" => Some(s.count as f64),
        "error_count" => Some(s.errors as f64),
        "error_rate" => some(s.count, 100.0 * s.errors as f64 / s.count as f64),
        "unique_users" => Some(result.unique_users as f64),
        "latency_ms.count" => Some(l.count as f64),
        "latency_ms.min" => some(l.count, l.min.get()),
        "latency_ms.max" => some(l.count, l.max.get()),
        "latency_ms.mean" => some(l.count, l.sum.to_f64() / l.count as f64),
        "latency_ms.p50" => percentile(0),
        "latency_ms.p90" => percentile(1),
        "latency_ms.p95" => percentile(2),
        "latency_ms.p99" => percentile(3),
        "value.count" => Some(v.count as f64),
        "value.sum" => some(v.count, v.sum.to_f64()),
        "value.mean" => some(v.count, v.sum.to_f64() / v.count as f64),
        "value.min" => some(v.count, v.min.get()),
        "value.max" => some(v.count, v.max.get()),
        _ => None,
    }
}

/// The unit a metric is shown with in messages.
pub fn unit(metric: &str) -> &'static str {
    if metric == "error_rate" {
        "%"
    } else if metric.starts_with("latency_ms.") && metric != "latency_ms.count" {
        "ms"
    } else {
        ""
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::PartialStats;

    #[test]
    fn every_configurable_metric_can_be_read() {
        let mut p = PartialStats::default();
        p.add(true, Some(10.0), Some(2.0), None);
        p.add(false, Some(20.0), None, None);
        let r = p.finish();
        for metric in crate::config::METRICS {
            assert!(metric_value(&r, metric).is_some(), "{metric}");
        }
        assert_eq!(metric_value(&r, "error_rate"), Some(50.0));
        assert_eq!(metric_value(&r, "value.sum"), Some(2.0));
        assert_eq!(metric_value(&r, "latency_ms.max"), Some(20.0));
    }
}
