//! What the workers of one process share: the stop request (SIGINT/SIGTERM), the first runtime
//! failure, and the engine's counters.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

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
}

impl Counters {
    /// Adds `n` to a counter.
    #[inline]
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// Shared run state of one process.
#[derive(Debug, Default)]
pub struct RunControl {
    stop: AtomicBool,
    failure: Mutex<Option<String>>,
    /// The counters.
    pub counters: Counters,
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
