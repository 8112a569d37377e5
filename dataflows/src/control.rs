//! What the workers of one process share: the stop request (SIGINT/SIGTERM), the first runtime
//! failure, and the engine's counters.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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
