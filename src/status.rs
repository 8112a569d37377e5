//! The periodic status line of `rtsa run` (`engine.status_interval`): what has gone through the
//! engine since the start and since the last line, and how far event time has come.

use dataflows::control::{Counters, RunControl};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// The counters at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Inputs read.
    pub events: u64,
    /// Metrics records written.
    pub metrics: u64,
    /// Dead letters written.
    pub dead_letters: u64,
    /// Alerts emitted.
    pub alerts: u64,
    /// The lowest watermark the workers of this process published (ms), if any.
    pub watermark: Option<u64>,
}

impl Snapshot {
    /// Reads the counters and watermarks of a run.
    pub fn of(control: &RunControl) -> Snapshot {
        let c = &control.counters;
        Snapshot {
            events: Counters::get(&c.events_in),
            metrics: Counters::get(&c.metrics_records),
            dead_letters: Counters::get(&c.dead_letters),
            alerts: Counters::get(&c.alerts),
            watermark: control.watermarks.min(),
        }
    }
}

/// One status line: totals, the event rate since `previous` (taken `elapsed` earlier), and the
/// watermark with how far it trails `wall_ms`.
pub fn status_line(now: &Snapshot, previous: &Snapshot, elapsed: Duration, wall_ms: u64) -> String {
    let rate = (now.events - previous.events) as f64 / elapsed.as_secs_f64().max(1e-9);
    let watermark = match now.watermark {
        Some(ms) => {
            let at = chrono::DateTime::from_timestamp_millis(ms as i64)
                .map_or_else(|| ms.to_string(), |t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string());
            let behind = wall_ms.saturating_sub(ms) as f64 / 1000.0;
            format!("watermark {at} ({behind:.1} s behind the wall clock)")
        }
        None => "no watermark yet".to_owned(),
    };
    format!(
        "rtsa: status: {} events ({:.0}/s), {watermark}, {} metrics records, {} dead letters, {} alerts",
        now.events, rate, now.metrics, now.dead_letters, now.alerts
    )
}

/// Prints a status line to stderr every `interval` until `stop` is dropped or sent to.
pub fn report_every(interval: Duration, control: Arc<RunControl>, stop: Receiver<()>) {
    let mut previous = Snapshot::of(&control);
    let mut since = Instant::now();
    loop {
        match stop.recv_timeout(interval) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
        let now = Snapshot::of(&control);
        eprintln!("{}", status_line(&now, &previous, since.elapsed(), dataflows::control::wall_clock_ms()));
        previous = now;
        since = Instant::now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_line_has_totals_rate_and_watermark_lag() {
        let previous = Snapshot { events: 1_000, ..Snapshot::default() };
        let now =
            Snapshot { events: 31_000, metrics: 40, dead_letters: 2, alerts: 1, watermark: Some(1_764_230_400_000) };
        let line = status_line(&now, &previous, Duration::from_secs(30), 1_764_230_405_500);
        assert_eq!(
            line,
            "rtsa: status: 31000 events (1000/s), watermark 2025-11-27T08:00:00.000Z (5.5 s behind the wall clock), \
             40 metrics records, 2 dead letters, 1 alerts"
        );
        let line = status_line(&Snapshot::default(), &Snapshot::default(), Duration::from_secs(30), 0);
        assert!(line.contains("no watermark yet"), "{line}");
    }
}
