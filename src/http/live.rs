//! The live view of a running engine: the latest record of each (aggregation, key), a short
//! history of the per-type windows for the charts, the latest alerts, the open windows so far,
//! and the latency histograms of `/metrics`. Process 0's sinks feed it through [`Tapped`]; the
//! dashboard reads a [`Live::snapshot`] every second.

use super::histogram::Histogram;
use dataflows::alerts::{Alert, encode_alert};
use dataflows::control::{RunControl, wall_clock_ms};
use dataflows::operators::batch_sink::BatchWriter;
use dataflows::record::WindowRecord;
use dataflows::sink::SinkPosition;
use dataflows::spec::{AggregationConfig, WindowConfig};
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Rows kept per aggregation (the newest windows' busiest keys).
const ROWS_KEPT: usize = 50;
/// Rows an aggregation's table shows.
const ROWS_SHOWN: usize = 15;
/// Windows a chart shows.
const CHART_WINDOWS: usize = 30;
/// Keys a chart shows (series); later keys are left out of the chart, not of the table.
const CHART_KEYS: usize = 12;
/// Alerts kept for the page.
const ALERTS_KEPT: usize = 50;
/// How often the watermark is sampled for the emit latency.
const WATERMARK_SAMPLE: Duration = Duration::from_millis(10);
/// How long watermark samples are kept (a window record later than this after its watermark
/// passed is observed in the last bucket).
const WATERMARK_KEPT_MS: u64 = 10 * 60_000;

/// One (aggregation, key)'s latest window, as the table shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Row {
    /// The group key.
    pub key: String,
    /// Window start, ms.
    pub window_start: i64,
    /// Window end, ms.
    pub window_end: u64,
    /// Events.
    pub count: u64,
    /// Error events.
    pub error_count: u64,
    /// Percent of events that were errors.
    pub error_rate: f64,
    /// Distinct users.
    pub unique_users: u64,
    /// Latency percentiles (ms), if the window had latencies.
    pub p50: Option<f64>,
    /// 95th percentile.
    pub p95: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
    /// Sum of `value`, if the window had values.
    pub value_sum: Option<f64>,
    /// Which batch of the sinks brought it (sessions of one batch have different windows).
    #[serde(skip)]
    pub batch: u64,
}

impl Row {
    /// The row of a metrics record.
    pub fn of(record: &WindowRecord) -> Row {
        let (key, result) = record;
        let s = &result.scalar;
        let percentiles = result.latency_percentiles();
        Row {
            key: key.key.to_string(),
            window_start: key.start,
            window_end: key.end,
            count: s.count,
            error_count: s.errors,
            error_rate: result.error_rate(),
            unique_users: result.unique_users,
            p50: percentiles.map(|p| p[0]),
            p95: percentiles.map(|p| p[2]),
            p99: percentiles.map(|p| p[3]),
            value_sum: (s.value.count > 0).then(|| s.value.sum.to_f64()),
            batch: 0,
        }
    }
}

/// What the page shows of one aggregation.
#[derive(Debug, Default)]
struct Table {
    /// The latest row of each key (at most `2 * ROWS_KEPT`; trimmed to the newest windows'
    /// busiest `ROWS_KEPT`).
    rows: HashMap<String, Row>,
    /// Records taken in.
    records: u64,
    /// Session windows: the newest are those of the latest batch, not of the latest start.
    sessions: bool,
    /// (window start → key → (count, p99)) of the last windows, for charted aggregations.
    history: BTreeMap<i64, BTreeMap<String, (u64, Option<f64>)>>,
}

impl Table {
    fn add(&mut self, row: Row, charted: bool) {
        self.records += 1;
        if charted {
            let window = self.history.entry(row.window_start).or_default();
            if window.len() < CHART_KEYS || window.contains_key(&row.key) {
                window.insert(row.key.clone(), (row.count, row.p99));
            }
            while self.history.len() > CHART_WINDOWS {
                self.history.pop_first();
            }
        }
        match self.rows.get_mut(&row.key) {
            Some(existing) if existing.window_start > row.window_start => {}
            Some(existing) => *existing = row,
            None => {
                self.rows.insert(row.key.clone(), row);
                if self.rows.len() > 2 * ROWS_KEPT {
                    let kept = self.sorted(ROWS_KEPT);
                    self.rows = kept.into_iter().map(|r| (r.key.clone(), r)).collect();
                }
            }
        }
    }

    /// The newest windows' rows, busiest first.
    fn sorted(&self, limit: usize) -> Vec<Row> {
        let mut rows: Vec<Row> = self.rows.values().cloned().collect();
        let newest = |r: &Row| if self.sessions { r.batch as i64 } else { r.window_start };
        rows.sort_by(|a, b| newest(b).cmp(&newest(a)).then(b.count.cmp(&a.count)).then_with(|| a.key.cmp(&b.key)));
        rows.truncate(limit);
        rows
    }

    /// The chart's data, aligned as uPlot takes it: window starts, and per key its counts and
    /// p99s (null where the key had no record in a window).
    fn chart(&self) -> Value {
        let x: Vec<i64> = self.history.keys().copied().collect();
        let mut keys: Vec<&String> = self.history.values().flat_map(|w| w.keys()).collect();
        keys.sort();
        keys.dedup();
        let series: Vec<Value> = keys
            .into_iter()
            .take(CHART_KEYS)
            .map(|key| {
                let count: Vec<Option<u64>> = self.history.values().map(|w| w.get(key).map(|v| v.0)).collect();
                let p99: Vec<Option<f64>> = self.history.values().map(|w| w.get(key).and_then(|v| v.1)).collect();
                json!({ "key": key, "count": count, "p99": p99 })
            })
            .collect();
        json!({ "x": x, "series": series })
    }
}

#[derive(Debug, Default)]
struct State {
    tables: Vec<Table>,
    alerts: VecDeque<Value>,
    /// Metrics batches taken in.
    batches: u64,
}

/// The live view shared by the sinks' tap, the HTTP handlers and the watermark sampler.
#[derive(Debug)]
pub struct Live {
    control: Arc<RunControl>,
    aggregations: Vec<AggregationConfig>,
    process: usize,
    started_at: u64,
    state: Mutex<State>,
    /// (watermark, wall clock when first seen), oldest first.
    watermarks: Mutex<VecDeque<(u64, u64)>>,
    /// Wall time from the watermark passing a window's end to its record leaving the sinks.
    pub emit_latency: Histogram,
    /// Alert latency by alert kind (see [`Live::observe_alerts`]).
    alert_latency: Mutex<BTreeMap<&'static str, Arc<Histogram>>>,
}

/// Whether an aggregation's windows are charted: fixed windows over few keys.
fn charted(aggregation: &AggregationConfig) -> bool {
    !matches!(aggregation.window, WindowConfig::Session { .. }) && aggregation.group_by.has_few_keys()
}

/// When the watermark was first seen at or past `time` (wall-clock ms) in `samples` (watermark,
/// wall clock; both ascending), if it has been.
fn passed(samples: &VecDeque<(u64, u64)>, time: u64) -> Option<u64> {
    let at = samples.partition_point(|(watermark, _)| *watermark < time);
    samples.get(at).map(|(_, wall)| *wall)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Live {
    /// The live view of a run of `aggregations` in process `process`.
    pub fn new(control: Arc<RunControl>, aggregations: Vec<AggregationConfig>, process: usize) -> Arc<Live> {
        let tables = aggregations
            .iter()
            .map(|a| Table { sessions: matches!(a.window, WindowConfig::Session { .. }), ..Table::default() })
            .collect();
        Arc::new(Live {
            control,
            aggregations,
            process,
            started_at: wall_clock_ms(),
            state: Mutex::new(State { tables, alerts: VecDeque::new(), batches: 0 }),
            watermarks: Mutex::new(VecDeque::new()),
            emit_latency: Histogram::latency(),
            alert_latency: Mutex::new(BTreeMap::new()),
        })
    }

    /// The run's shared state and counters.
    pub fn control(&self) -> &Arc<RunControl> {
        &self.control
    }

    /// The configured aggregations.
    pub fn aggregations(&self) -> &[AggregationConfig] {
        &self.aggregations
    }

    /// This process's index.
    pub fn process(&self) -> usize {
        self.process
    }

    /// Wall-clock ms when the view started.
    pub fn started_at(&self) -> u64 {
        self.started_at
    }

    /// Samples the watermark every few milliseconds until the process ends, so that a record's
    /// emit latency can be measured from when the watermark passed its window's end.
    pub fn sample_watermarks(self: &Arc<Live>) {
        let live = Arc::downgrade(self);
        let spawned = std::thread::Builder::new().name("rtsa-live".into()).spawn(move || {
            while let Some(live) = live.upgrade() {
                live.sample(wall_clock_ms());
                drop(live);
                std::thread::sleep(WATERMARK_SAMPLE);
            }
        });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start the watermark sampler; emit latencies are not measured");
        }
    }

    fn sample(&self, now: u64) {
        let Some(watermark) = self.control.watermarks.min() else { return };
        let mut samples = lock(&self.watermarks);
        if samples.back().is_none_or(|(last, _)| watermark > *last) {
            samples.push_back((watermark, now));
        }
        while samples.front().is_some_and(|(_, at)| at + WATERMARK_KEPT_MS < now) && samples.len() > 1 {
            samples.pop_front();
        }
    }

    /// Takes in metrics records that left the sinks at `now`.
    pub fn observe_metrics(&self, batch: &[WindowRecord], now: u64) {
        {
            let samples = lock(&self.watermarks);
            for (key, _) in batch {
                if let Some(passed) = passed(&samples, key.end) {
                    self.emit_latency.observe(now.saturating_sub(passed) as f64 / 1000.0);
                }
            }
        }
        let mut state = lock(&self.state);
        state.batches += 1;
        let batch_number = state.batches;
        for record in batch {
            let index = usize::from(record.0.aggregation);
            let (Some(table), Some(aggregation)) = (state.tables.get_mut(index), self.aggregations.get(index)) else {
                continue;
            };
            table.add(Row { batch: batch_number, ..Row::of(record) }, charted(aggregation));
        }
    }

    /// Takes in alerts that left the channels at `now`. A window alert's latency runs from the
    /// watermark passing its window's end; a single-event, pattern or rare-sequence alert's from
    /// its event's timestamp, observed only when that is within the last hour of the wall clock
    /// (live data, not a replay).
    pub fn observe_alerts(&self, batch: &[Alert], now: u64) {
        for alert in batch {
            let since = match alert.aggregation {
                Some(_) => passed(&lock(&self.watermarks), alert.window_end),
                None => Some(alert.time).filter(|t| *t <= now && now - *t < 3_600_000),
            };
            if let Some(since) = since {
                self.alert_histogram(alert.kind.rule_kind().as_str())
                    .observe(now.saturating_sub(since) as f64 / 1000.0);
            }
        }
        let mut state = lock(&self.state);
        for alert in batch {
            let encoded = encode_alert(alert, now);
            if let Ok(value) = serde_json::from_str::<Value>(&encoded) {
                state.alerts.push_front(value);
            }
        }
        state.alerts.truncate(ALERTS_KEPT);
    }

    fn alert_histogram(&self, kind: &'static str) -> Arc<Histogram> {
        lock(&self.alert_latency).entry(kind).or_insert_with(|| Arc::new(Histogram::latency())).clone()
    }

    /// The alert latency histograms by kind.
    pub fn alert_latencies(&self) -> Vec<(&'static str, Arc<Histogram>)> {
        lock(&self.alert_latency).iter().map(|(kind, h)| (*kind, h.clone())).collect()
    }

    /// `running`, `stopping` or `failing` (with the failure).
    pub fn status(&self) -> (&'static str, Option<String>) {
        match self.control.failure() {
            Some(failure) => ("failing", Some(failure)),
            None if self.control.stop_requested() => ("stopping", None),
            None => ("running", None),
        }
    }

    /// Everything the page shows, at wall-clock `now`.
    pub fn snapshot(&self, now: u64) -> Value {
        use dataflows::control::Counters;
        let c = &self.control.counters;
        let watermark = self.control.watermarks.min();
        let open = self.control.live.open_windows();
        let state = lock(&self.state);
        let aggregations: Vec<Value> = self
            .aggregations
            .iter()
            .enumerate()
            .map(|(index, aggregation)| {
                let table = &state.tables[index];
                let open = open
                    .iter()
                    .find(|w| usize::from(w.aggregation) == index)
                    .map(|w| json!({ "window_start": w.window_start, "window_end": w.window_end, "keys": w.keys }));
                json!({
                    "name": aggregation.name,
                    "window": aggregation.window.kind_name(),
                    "group_by": aggregation.group_by.field_name(),
                    "rows": table.sorted(ROWS_SHOWN),
                    "records": table.records,
                    "open": open,
                    "chart": charted(aggregation).then(|| table.chart()),
                })
            })
            .collect();
        let (status, failure) = self.status();
        json!({
            "process": self.process,
            "now": now,
            "started_at": self.started_at,
            "status": status,
            "failure": failure,
            "counters": {
                "events_in": Counters::get(&c.events_in),
                "invalid": Counters::get(&c.invalid_events),
                "late": Counters::get(&c.late_events),
                "metrics_records": Counters::get(&c.metrics_records),
                "dead_letters": Counters::get(&c.dead_letters),
                "alerts": Counters::get(&c.alerts),
                "backpressure_epochs": Counters::get(&c.backpressure_epochs),
                "open_windows": c.open_windows.total(),
                "checkpoints": Counters::get(&c.checkpoints),
            },
            "watermark": watermark,
            "watermark_lag_seconds": watermark.map(|w| now.saturating_sub(w) as f64 / 1000.0),
            "aggregations": aggregations,
            "alerts": state.alerts,
        })
    }
}

/// Records the live view takes in.
pub trait Observed: Sized {
    /// Hands `batch`, written at `now`, to `live`.
    fn observe(live: &Live, batch: &[Self], now: u64);
}

impl Observed for WindowRecord {
    fn observe(live: &Live, batch: &[Self], now: u64) {
        live.observe_metrics(batch, now);
    }
}

impl Observed for Alert {
    fn observe(live: &Live, batch: &[Self], now: u64) {
        live.observe_alerts(batch, now);
    }
}

/// A writer that hands what it writes to the live view after the sinks have it.
pub struct Tapped<R> {
    inner: Box<dyn BatchWriter<R> + Send>,
    live: Arc<Live>,
}

impl<R: Observed + 'static> Tapped<R> {
    /// Taps `inner`.
    pub fn boxed(inner: Box<dyn BatchWriter<R> + Send>, live: Arc<Live>) -> Box<dyn BatchWriter<R> + Send> {
        Box::new(Tapped { inner, live })
    }
}

impl<R: Observed> BatchWriter<R> for Tapped<R> {
    fn write_batch(&mut self, batch: &[R]) {
        self.inner.write_batch(batch);
        R::observe(&self.live, batch, wall_clock_ms());
    }
    fn close(&mut self) {
        self.inner.close();
    }
    fn checkpoint(&mut self) -> Result<Vec<SinkPosition>, String> {
        self.inner.checkpoint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(key: &str, start: i64, count: u64) -> Row {
        Row {
            key: key.into(),
            window_start: start,
            window_end: start as u64 + 60_000,
            count,
            error_count: 0,
            error_rate: 0.0,
            unique_users: 1,
            p50: Some(1.0),
            p95: Some(2.0),
            p99: Some(count as f64),
            value_sum: None,
            batch: 0,
        }
    }

    #[test]
    fn a_table_keeps_the_latest_window_of_each_key_and_the_busiest_of_many() {
        let mut table = Table::default();
        table.add(row("a", 0, 5), true);
        table.add(row("b", 0, 9), true);
        table.add(row("a", 60_000, 3), true);
        // An older window never replaces a newer one.
        table.add(row("a", 0, 100), true);
        let rows = table.sorted(10);
        assert_eq!(
            rows.iter().map(|r| (r.key.as_str(), r.window_start)).collect::<Vec<_>>(),
            [("a", 60_000), ("b", 0)]
        );
        // The chart aligns the keys on the windows, null where a key had no record.
        assert_eq!(
            table.chart(),
            json!({ "x": [0, 60_000], "series": [
                { "key": "a", "count": [100, 3], "p99": [100.0, 3.0] },
                { "key": "b", "count": [9, null], "p99": [9.0, null] },
            ]})
        );
        // Many keys: the table stays bounded, keeping the newest windows' busiest.
        let mut many = Table::default();
        for i in 0..1_000u64 {
            many.add(row(&format!("u{i}"), 0, i), false);
        }
        assert!(many.rows.len() <= 2 * ROWS_KEPT);
        assert_eq!(many.records, 1_000);
        assert_eq!(many.sorted(1)[0].key, "u999");
        assert!(many.history.is_empty());
    }

    #[test]
    fn the_status_is_running_stopping_or_failing() {
        let control = Arc::new(RunControl::default());
        let live = Live::new(control.clone(), Vec::new(), 0);
        assert_eq!(live.status(), ("running", None));
        control.request_stop();
        assert_eq!(live.status(), ("stopping", None));
        control.fail("metrics sink: disk full".into());
        assert_eq!(live.status(), ("failing", Some("metrics sink: disk full".to_owned())));
    }

    #[test]
    fn the_emit_latency_runs_from_the_watermark_passing_the_window_end() {
        let control = Arc::new(RunControl::default());
        let live = Live::new(control.clone(), Vec::new(), 0);
        control.watermarks.publish(0, 50_000);
        live.sample(1_000);
        control.watermarks.publish(0, 60_000);
        live.sample(1_010);
        control.watermarks.publish(0, 61_000);
        live.sample(1_020);
        let samples = lock(&live.watermarks);
        assert_eq!(passed(&samples, 60_000), Some(1_010));
        assert_eq!(passed(&samples, 55_000), Some(1_010));
        assert_eq!(passed(&samples, 70_000), None);
    }
}
