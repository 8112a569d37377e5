//! `/metrics`: the engine's counters in the OpenMetrics text format (which Prometheus scrapes),
//! with the names of CONTRACT section 10. The counters stay plain atomics on the hot path
//! ([`dataflows::control::Counters`]); a `prometheus-client` collector reads them at each scrape.
//! Labels are bounded: aggregations, reasons, sinks, severities, channels, partitions, kinds.

use super::histogram::Histogram;
use super::live::Live;
use dataflows::control::Counters;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use std::fmt::Error;
use std::sync::Arc;

/// The content type of [`encode`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The text of `/metrics` for the run that `live` watches, at wall-clock `now`.
pub fn encode(live: &Arc<Live>, now: u64) -> Result<String, Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Engine { live: live.clone(), now }));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry)?;
    Ok(text)
}

#[derive(Debug)]
struct Engine {
    live: Arc<Live>,
    now: u64,
}

/// A counter (`name` without `_total`: the encoder adds it).
fn counter(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> Result<(), Error> {
    let metric = ConstCounter::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

fn gauge<V>(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: V) -> Result<(), Error>
where
    ConstGauge<V>: EncodeMetric,
{
    let metric = ConstGauge::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

/// A counter or gauge per label value.
fn family(
    encoder: &mut DescriptorEncoder,
    (name, help, kind): (&str, &str, MetricType),
    label: &str,
    values: &[(String, u64)],
) -> Result<(), Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, kind)?;
    for (value, n) in values {
        let labels = [(label, value.as_str())];
        let mut sample = metric.encode_family(&labels)?;
        match kind {
            MetricType::Counter => ConstCounter::new(*n).encode(sample)?,
            _ => sample.encode_gauge(&(*n as i64))?,
        }
    }
    Ok(())
}

fn histograms(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    label: Option<&str>,
    histograms: &[(&str, &Histogram)],
) -> Result<(), Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Histogram)?;
    for (value, histogram) in histograms {
        let (sum, count, buckets) = histogram.read();
        match label {
            Some(label) => {
                let labels = [(label, *value)];
                metric.encode_family(&labels)?.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?
            }
            None => metric.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?,
        }
    }
    Ok(())
}

impl Collector for Engine {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), Error> {
        let live = &self.live;
        let control = live.control();
        let c = &control.counters;
        let get = Counters::get;
        counter(&mut e, "rtsa_events_in", "Inputs read from the source (valid or not).", get(&c.events_in))?;
        // Every aggregation appears, at 0 until it has a late event.
        let mut late = c.late_by_aggregation.values();
        for aggregation in live.aggregations() {
            if !late.iter().any(|(name, _)| *name == aggregation.name) {
                late.push((aggregation.name.clone(), 0));
            }
        }
        late.sort();
        let late_help = "Events left out of an aggregation's window because they were late (one per aggregation they were late for).";
        family(&mut e, ("rtsa_late_events", late_help, MetricType::Counter), "aggregation", &late)?;
        let invalid_help = "Inputs that were not valid events, by reason (each written to the dead-letter sink).";
        let invalid = c.invalid_by_reason.values();
        family(&mut e, ("rtsa_invalid_events", invalid_help, MetricType::Counter), "reason", &invalid)?;
        let out_help =
            "Records written, by output and sink kind (metrics/jsonl, alert/webhook, dead-letter/kafka, ...).";
        family(&mut e, ("rtsa_records_out", out_help, MetricType::Counter), "sink", &c.records_out.values())?;
        counter(
            &mut e,
            "rtsa_metrics_records",
            "Metrics records written (each once, whatever the number of sinks).",
            get(&c.metrics_records),
        )?;
        counter(&mut e, "rtsa_dead_letters", "Dead-letter records written.", get(&c.dead_letters))?;
        let alerts_help = "Alerts emitted after deduplication, by severity.";
        family(&mut e, ("rtsa_alerts", alerts_help, MetricType::Counter), "severity", &c.alerts_by_severity.values())?;
        let undelivered_help =
            "Alerts a channel could not deliver (its queue full, or delivery failed for good), by channel.";
        let undelivered = c.undelivered_by_channel.values();
        family(&mut e, ("rtsa_alerts_undelivered", undelivered_help, MetricType::Counter), "channel", &undelivered)?;
        gauge(
            &mut e,
            "rtsa_alerts_queued",
            "Alerts waiting in a channel's queue for delivery.",
            get(&c.alerts_queued) as i64,
        )?;
        let watermark = control.watermarks.min();
        let wm_help =
            "The pipeline's watermark on this process (event time, ms since the Unix epoch); 0 before the first event.";
        gauge(&mut e, "rtsa_watermark_ms", wm_help, watermark.unwrap_or(0) as i64)?;
        let lag = watermark.map_or(0.0, |w| self.now.saturating_sub(w) as f64 / 1000.0);
        gauge(&mut e, "rtsa_watermark_lag_seconds", "Wall clock minus the watermark, seconds.", lag)?;
        let bp_help = "How many epochs the sources have read ahead of what the sinks have written (engine.max_inflight_epochs caps it).";
        gauge(&mut e, "rtsa_backpressure_epochs", bp_help, get(&c.backpressure_epochs) as i64)?;
        let open_help =
            "Open (window, key) entries held by this process's workers: panes of fixed windows and open sessions.";
        gauge(&mut e, "rtsa_open_windows", open_help, c.open_windows.total() as i64)?;
        counter(&mut e, "rtsa_checkpoints", "Checkpoints completed (manifest written).", get(&c.checkpoints))?;
        let failures_help =
            "Checkpoints given up (superseded while the store was away, or a sink that could not flush).";
        counter(&mut e, "rtsa_checkpoint_failures", failures_help, get(&c.checkpoint_failures))?;
        counter(
            &mut e,
            "rtsa_checkpoint_retries",
            "Attempts to reach the checkpoint store that failed and were retried.",
            get(&c.checkpoint_retries),
        )?;
        let duration = get(&c.checkpoint_duration_ms) as f64 / 1000.0;
        gauge(
            &mut e,
            "rtsa_checkpoint_duration_seconds",
            "How long the last complete checkpoint took to write.",
            duration,
        )?;
        gauge(
            &mut e,
            "rtsa_checkpoint_bytes",
            "How many bytes the last complete checkpoint wrote.",
            get(&c.checkpoint_bytes) as i64,
        )?;
        let last_help = "The event time C of the newest checkpoint this process completed (ms; 0 before the first).";
        gauge(&mut e, "rtsa_last_checkpoint_ms", last_help, get(&c.last_checkpoint) as i64)?;
        let mut lags = c.kafka_lag.values();
        lags.sort_by_key(|(partition, _)| partition.parse::<u64>().unwrap_or(u64::MAX));
        let lag_help = "A Kafka source's backlog: messages between its position and the partition's end, by partition.";
        family(&mut e, ("rtsa_kafka_lag_messages", lag_help, MetricType::Gauge), "partition", &lags)?;
        let emit_help =
            "Wall time from the watermark passing a window's end to its record leaving the sinks (process 0).";
        histograms(&mut e, "rtsa_emit_latency_seconds", emit_help, None, &[("", &live.emit_latency)])?;
        let alert_latencies = live.alert_latencies();
        let by_kind: Vec<(&str, &Histogram)> = alert_latencies.iter().map(|(kind, h)| (*kind, h.as_ref())).collect();
        let alert_help = "Alert latency by rule kind: window rules from the watermark passing the window's end, event, pattern and rare-sequence rules from the event's timestamp (live data only).";
        histograms(&mut e, "rtsa_alert_latency_seconds", alert_help, Some("kind"), &by_kind)?;
        let uptime = self.now.saturating_sub(live.started_at()) as f64 / 1000.0;
        gauge(&mut e, "rtsa_uptime_seconds", "Seconds since the engine started.", uptime)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataflows::control::RunControl;
    use dataflows::spec::{AggregationConfig, GroupBy, Millis, WindowConfig};

    #[test]
    fn the_text_has_the_contract_names_with_help_and_labels() {
        let control = Arc::new(RunControl::default());
        let aggregation = |name: &str| AggregationConfig {
            name: name.into(),
            window: WindowConfig::Tumbling { size: Millis(60_000) },
            group_by: GroupBy::EventType,
        };
        let live = Live::new(control.clone(), vec![aggregation("by_type"), aggregation("other")], 0);
        Counters::add(&control.counters.events_in, 42);
        control.counters.late_by_aggregation.add("by_type", 3);
        control.counters.invalid_by_reason.add(dataflows::event::InvalidReason::InvalidJson, 2);
        control.counters.kafka_lag.set("10", 7);
        control.counters.kafka_lag.set("2", 5);
        control.watermarks.publish(0, 1_000);
        live.emit_latency.observe(0.02);
        let text = encode(&live, 3_500).unwrap();
        for line in [
            "# HELP rtsa_events_in Inputs read from the source (valid or not).",
            "# TYPE rtsa_events_in counter",
            "rtsa_events_in_total 42",
            "rtsa_late_events_total{aggregation=\"by_type\"} 3",
            "rtsa_late_events_total{aggregation=\"other\"} 0",
            "rtsa_invalid_events_total{reason=\"invalid_json\"} 2",
            "rtsa_watermark_ms 1000",
            "rtsa_watermark_lag_seconds 2.5",
            "rtsa_kafka_lag_messages{partition=\"2\"} 5",
            "rtsa_emit_latency_seconds_bucket{le=\"0.01\"} 0",
            "rtsa_emit_latency_seconds_bucket{le=\"0.025\"} 1",
            "rtsa_emit_latency_seconds_bucket{le=\"+Inf\"} 1",
            "rtsa_emit_latency_seconds_count 1",
            "# EOF",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} missing in:\n{text}");
        }
        // Partitions in numeric order.
        assert!(text.find("partition=\"2\"") < text.find("partition=\"10\""));
    }
}
