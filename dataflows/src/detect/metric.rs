//! Reading a named metric (`error_rate`, `latency_ms.p99`, `value.sum`, …) out of a window result.

use crate::spec::Metric;
use crate::stats::WindowResult;

/// The value of `metric` in `result`, or `None` when the window has no such values.
pub fn metric_value(result: &WindowResult, metric: Metric) -> Option<f64> {
    let s = &result.scalar;
    let l = &s.latency;
    let v = &s.value;
    let some = |count: u64, x: f64| (count > 0).then_some(x);
    let percentile = |i: usize| result.latency_percentiles().map(|p| p[i]);
    match metric {
        Metric::Count => Some(s.count as f64),
        Metric::ErrorCount => Some(s.errors as f64),
        Metric::ErrorRate => some(s.count, result.error_rate()),
        Metric::UniqueUsers => Some(result.unique_users as f64),
        Metric::LatencyCount => Some(l.count as f64),
        Metric::LatencyMin => some(l.count, l.min.get()),
        Metric::LatencyMax => some(l.count, l.max.get()),
        Metric::LatencyMean => some(l.count, l.sum.to_f64() / l.count as f64),
        Metric::LatencyP50 => percentile(0),
        Metric::LatencyP90 => percentile(1),
        Metric::LatencyP95 => percentile(2),
        Metric::LatencyP99 => percentile(3),
        Metric::ValueCount => Some(v.count as f64),
        Metric::ValueSum => some(v.count, v.sum.to_f64()),
        Metric::ValueMean => some(v.count, v.sum.to_f64() / v.count as f64),
        Metric::ValueMin => some(v.count, v.min.get()),
        Metric::ValueMax => some(v.count, v.max.get()),
    }
}

/// The unit a metric is shown with in messages.
pub fn unit(metric: Metric) -> &'static str {
    if metric == Metric::ErrorRate {
        "%"
    } else if metric.as_str().starts_with("latency_ms.") && metric != Metric::LatencyCount {
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
        for metric in Metric::ALL {
            assert!(metric_value(&r, *metric).is_some(), "{metric}");
        }
        assert_eq!(metric_value(&r, Metric::ErrorRate), Some(50.0));
        assert_eq!(metric_value(&r, Metric::ValueSum), Some(2.0));
        assert_eq!(metric_value(&r, Metric::LatencyMax), Some(20.0));
    }
}
