//! What the workers of one process share: the stop request (SIGINT/SIGTERM), the first runtime
//! failure, and the engine's counters.

use crate::event::InvalidReason;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

/// Engine counters (exported as `rtsa_*` metrics).
#[derive(Debug, Default)]
pub struct Counters {
    /// Inputs read from sources (valid or not).
    pub events_in: AtomicU64,
    /// Inputs that were not valid events.
    pub invalid_events: AtomicU64,
    /// (event, aggregation) pairs left out because the event was late.
    pub late_events: AtomicU64,
    /// Metrics records written.
    pub metrics_records: AtomicU64,
    /// Dead-letter records written.
    pub dead_letters: AtomicU64,
    /// Alerts emitted (after deduplication).
    pub alerts: AtomicU64,
    /// Alerts a channel could not deliver (queue full, or delivery failed for good).
    pub alerts_undelivered: AtomicU64,
    /// Alerts waiting in a channel's queue for delivery.
    pub alerts_queued: AtomicU64,
    /// How many epochs the sources have read ahead of what the sinks have written (a gauge:
    /// the latest any source saw; `engine.max_inflight_epochs` caps it).
    pub backpressure_epochs: AtomicU64,
    /// Checkpoints completed (manifest written).
    pub checkpoints: AtomicU64,
    /// Checkpoints given up (superseded while the store was away, or a sink that could not
    /// flush).
    pub checkpoint_failures: AtomicU64,
    /// Attempts to reach the checkpoint store that failed and were retried.
    pub checkpoint_retries: AtomicU64,
    /// How long the last complete checkpoint took to write, ms (a gauge).
    pub checkpoint_duration_ms: AtomicU64,
    /// How many bytes the last complete checkpoint wrote (a gauge).
    pub checkpoint_bytes: AtomicU64,
    /// The time C (event time, ms) of the newest checkpoint this process completed, 0 before the
    /// first (a gauge).
    pub last_checkpoint: AtomicU64,
    /// (event, aggregation) pairs left out as late, by aggregation name.
    pub late_by_aggregation: PerLabel,
    /// Invalid inputs by reason (`invalid_json`, `future`, …).
    pub invalid_by_reason: ReasonCounts,
    /// Records written, by `{role}/{sink kind}` (`metrics/jsonl`, `alerts/webhook`, …).
    pub records_out: PerLabel,
    /// Alerts emitted, by severity.
    pub alerts_by_severity: PerLabel,
    /// Alerts a channel could not deliver, by channel.
    pub undelivered_by_channel: PerLabel,
    /// A Kafka source's backlog (messages between its position and the partition's end), by
    /// partition (a gauge each).
    pub kafka_lag: PerLabel,
    /// Open (window, key) entries on this process's workers: panes and sessions (a gauge, the
    /// sum of what each worker last reported).
    pub open_windows: PerLabel,
}

/// A counter per [`InvalidReason`], indexed by the reason: counting one is an atomic add, with
/// no lock and no lookup by name (a file of hostile lines counts one per line).
#[derive(Debug, Default)]
pub struct ReasonCounts([AtomicU64; InvalidReason::ALL.len()]);

impl ReasonCounts {
    /// Adds `n` to the count of `reason`.
    #[inline]
    pub fn add(&self, reason: InvalidReason, n: u64) {
        Counters::add(&self.0[reason as usize], n);
    }
    /// The reasons counted so far with their counts, in name order (as [`PerLabel::values`]).
    pub fn values(&self) -> Vec<(String, u64)> {
        let mut values: Vec<(String, u64)> = InvalidReason::ALL
            .iter()
            .map(|reason| (reason.as_str().to_owned(), Counters::get(&self.0[*reason as usize])))
            .filter(|(_, n)| *n > 0)
            .collect();
        values.sort();
        values
    }
}

/// A counter (or gauge) per label value, for the `rtsa_*{label}` metrics. Label values are few
/// (aggregations, reasons, sinks, severities, partitions), never per user or per key. A hot
/// path takes a [`handle`](PerLabel::handle) once and adds to it without the lock.
#[derive(Debug, Default)]
pub struct PerLabel(Mutex<BTreeMap<String, Arc<AtomicU64>>>);

impl PerLabel {
    /// The counter of `label`, created at 0 the first time.
    pub fn handle(&self, label: &str) -> Arc<AtomicU64> {
        let mut map = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(counter) = map.get(label) {
            return counter.clone();
        }
        map.entry(label.to_owned()).or_default().clone()
    }
    /// Adds `n` to the counter of `label`.
    pub fn add(&self, label: &str, n: u64) {
        Counters::add(&self.handle(label), n);
    }
    /// Sets the gauge of `label`.
    pub fn set(&self, label: &str, value: u64) {
        Counters::set(&self.handle(label), value);
    }
    /// Every label with its value, in label order.
    pub fn values(&self) -> Vec<(String, u64)> {
        let map = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        map.iter().map(|(label, counter)| (label.clone(), Counters::get(counter))).collect()
    }
    /// The sum over every label.
    pub fn total(&self) -> u64 {
        self.values().iter().map(|(_, v)| v).sum()
    }
}

impl Counters {
    /// Adds `n` to a counter.
    #[inline]
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
    /// Sets a gauge.
    #[inline]
    pub fn set(gauge: &AtomicU64, value: u64) {
        gauge.store(value, Ordering::Relaxed);
    }
    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// Slots for the watermarks that the workers publish (by global worker index, modulo).
const WATERMARK_SLOTS: usize = 256;

/// The latest watermark of each worker (0 = none yet): this process's workers publish theirs
/// directly, other processes' arrive through the dataflow. A worker whose partitions are all idle
/// follows its peers instead of holding them back.
#[derive(Debug)]
pub struct WorkerWatermarks([AtomicU64; WATERMARK_SLOTS]);

impl Default for WorkerWatermarks {
    fn default() -> Self {
        WorkerWatermarks(std::array::from_fn(|_| AtomicU64::new(0)))
    }
}

impl WorkerWatermarks {
    /// Publishes worker `worker`'s watermark.
    pub fn publish(&self, worker: usize, watermark: u64) {
        self.0[worker % WATERMARK_SLOTS].store(watermark, Ordering::Relaxed);
    }
    /// The lowest watermark published by any worker, if any.
    pub fn min(&self) -> Option<u64> {
        self.0.iter().map(|w| w.load(Ordering::Relaxed)).filter(|w| *w > 0).min()
    }
    /// The largest watermark published by any worker, if any.
    pub fn max(&self) -> Option<u64> {
        self.0.iter().map(|w| w.load(Ordering::Relaxed)).filter(|w| *w > 0).max()
    }
    /// The largest watermark published by another worker, if any.
    pub fn max_of_others(&self, worker: usize) -> Option<u64> {
        let me = worker % WATERMARK_SLOTS;
        self.0
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != me)
            .map(|(_, w)| w.load(Ordering::Relaxed))
            .filter(|w| *w > 0)
            .max()
    }
}

/// Shared run state of one process.
#[derive(Debug, Default)]
pub struct RunControl {
    stop: AtomicBool,
    failure: Mutex<Option<String>>,
    /// The counters.
    pub counters: Counters,
    /// The workers' watermarks.
    pub watermarks: WorkerWatermarks,
    /// What the workers report for a live view (off unless a dashboard is served).
    pub live: LiveReports,
}

impl RunControl {
    /// Asks the sources to stop reading and the pipeline to drain.
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }
    /// Whether a stop was requested.
    pub fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
    /// Records a runtime failure (the first one wins) and asks the pipeline to stop.
    pub fn fail(&self, message: String) {
        tracing::error!(%message, "pipeline failure");
        let mut failure = self.failure.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        failure.get_or_insert(message);
        self.request_stop();
    }
    /// The first runtime failure, if any.
    pub fn failure(&self) -> Option<String> {
        self.failure.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }
}

/// Wall-clock milliseconds since the Unix epoch (for `emitted_at`, live watermarks, status lines).
pub fn wall_clock_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// When an operator reports to [`LiveReports`]: at most every [`LiveReports::EVERY`], and once
/// more after its state last changed (the operator asks to be woken for it), so an idle engine
/// shows its final state without being woken again and again.
#[derive(Debug, Default)]
pub struct ReportPacing {
    last: Option<std::time::Instant>,
    dirty: bool,
}

/// What an operator should do about its live report.
#[derive(Debug, PartialEq, Eq)]
pub enum Report {
    /// Report now.
    Now,
    /// Nothing changed since the last report.
    Idle,
    /// Ask to be activated again after this long, then report.
    After(std::time::Duration),
}

impl ReportPacing {
    /// At an activation at `now`, in which the state `changed` or not.
    pub fn poll(&mut self, changed: bool, now: std::time::Instant) -> Report {
        self.dirty |= changed;
        if !self.dirty {
            return Report::Idle;
        }
        match self.last.map(|last| now.saturating_duration_since(last)) {
            Some(since) if since < LiveReports::EVERY => Report::After(LiveReports::EVERY - since),
            _ => {
                self.last = Some(now);
                self.dirty = false;
                Report::Now
            }
        }
    }
}

/// The counts so far of one aggregation's newest open window on one worker (for the live
/// dashboard, before the window closes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenWindow {
    /// The aggregation's index.
    pub aggregation: u16,
    /// The window's start, ms.
    pub window_start: u64,
    /// The window's end, ms.
    pub window_end: u64,
    /// (key, events, errors) so far, the busiest keys first.
    pub keys: Vec<(String, u64, u64)>,
}

/// What the workers report for a live view of the engine: open windows so far and the number
/// of open (window, key) entries. Reporting costs a look at the clock per operator activation
/// and, twice a second, a walk over the newest panes; it is off until [`LiveReports::enable`].
#[derive(Debug, Default)]
pub struct LiveReports {
    enabled: AtomicBool,
    open: Mutex<BTreeMap<(usize, u16), OpenWindow>>,
}

impl LiveReports {
    /// How often a worker reports.
    pub const EVERY: std::time::Duration = std::time::Duration::from_millis(500);

    /// Turns reporting on (the HTTP server does, when it serves a dashboard).
    pub fn enable(&self) {
        self.enabled.store(true, Ordering::Relaxed);
    }
    /// Whether anyone listens.
    #[inline]
    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }
    /// Worker `worker`'s newest open windows (replacing what it reported before).
    pub fn publish(&self, worker: usize, windows: Vec<OpenWindow>) {
        let mut open = self.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        open.retain(|(w, _), _| *w != worker);
        for window in windows {
            open.insert((worker, window.aggregation), window);
        }
    }
    /// The newest open window of each aggregation, summed over the workers that reported it
    /// (a worker still on an older window is left out of the newer one).
    pub fn open_windows(&self) -> Vec<OpenWindow> {
        let open = self.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // Per aggregation: the newest window, and (events, errors) by key summed over workers.
        type Summed = (OpenWindow, BTreeMap<String, (u64, u64)>);
        let mut merged: BTreeMap<u16, Summed> = BTreeMap::new();
        for window in open.values() {
            let entry = merged
                .entry(window.aggregation)
                .or_insert_with(|| (OpenWindow { keys: Vec::new(), ..window.clone() }, BTreeMap::new()));
            if window.window_start > entry.0.window_start {
                *entry = (OpenWindow { keys: Vec::new(), ..window.clone() }, BTreeMap::new());
            }
            if window.window_start == entry.0.window_start {
                for (key, events, errors) in &window.keys {
                    let sum = entry.1.entry(key.clone()).or_default();
                    sum.0 += events;
                    sum.1 += errors;
                }
            }
        }
        merged
            .into_values()
            .map(|(mut window, keys)| {
                window.keys = keys.into_iter().map(|(k, (events, errors))| (k, events, errors)).collect();
                window.keys.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                window
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn reports_are_paced_and_the_last_change_is_always_reported() {
        let mut pacing = ReportPacing::default();
        let t0 = Instant::now();
        assert_eq!(pacing.poll(false, t0), Report::Idle);
        assert_eq!(pacing.poll(true, t0), Report::Now);
        // A change soon after: reported when the interval is up, even if nothing else happens.
        assert_eq!(pacing.poll(true, t0 + Duration::from_millis(100)), Report::After(Duration::from_millis(400)));
        assert_eq!(pacing.poll(false, t0 + Duration::from_millis(500)), Report::Now);
        assert_eq!(pacing.poll(false, t0 + Duration::from_millis(2000)), Report::Idle);
    }

    #[test]
    fn open_windows_sum_the_workers_on_the_newest_window() {
        let live = LiveReports::default();
        let window = |start: u64, keys: &[(&str, u64)]| OpenWindow {
            aggregation: 0,
            window_start: start,
            window_end: start + 10,
            keys: keys.iter().map(|(k, n)| (k.to_string(), *n, 0)).collect(),
        };
        live.publish(0, vec![window(10, &[("a", 3), ("b", 1)])]);
        live.publish(1, vec![window(10, &[("b", 4)])]);
        live.publish(2, vec![window(0, &[("a", 100)])]);
        assert_eq!(live.open_windows(), vec![window(10, &[("b", 5), ("a", 3)])]);
        // A worker's new report replaces its old one.
        live.publish(1, Vec::new());
        assert_eq!(live.open_windows(), vec![window(10, &[("a", 3), ("b", 1)])]);
    }
}
