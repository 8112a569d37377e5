//! What a sink connector implements, and how the pipeline's sink operators fan a batch out to
//! the configured sinks.
//!
//! A sink kind is one type behind [`Sink`]: it is opened once (by the `rtsa` package, from one
//! `match` over the config), encodes its own records with pure encoders (JSON lines, Kafka key
//! and payload, line protocol, hash fields), writes batches, flushes, closes, and says what it has
//! written ([`SinkPosition`]) so that a checkpoint can record it and a resumed run can drop or
//! skip what was written after it ([`Sink::resume`]). A sink takes metrics records, alerts and/or
//! dead letters; which ones a kind takes is checked when the config is loaded.

use crate::alerts::Alert;
use crate::alerts::route::Router;
use crate::control::{Counters, RunControl};
use crate::operators::batch_sink::BatchWriter;
use crate::record::{DeadLetter, WindowRecord};
use crate::spec::SinkKind;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use thiserror::Error;

/// What a sink has written so far, as a checkpoint records it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SinkPosition {
    /// Nothing to record: the sink's output is idempotent (keyed by alert id or record key) or
    /// not kept (the console).
    #[default]
    Idempotent,
    /// The length of a file, in bytes.
    Bytes(u64),
    /// Per output partition, the offset after the last record acknowledged.
    Offsets(Vec<(u32, u64)>),
}

/// A failure of a sink, saying whose fault it is and whether a retry may help.
#[derive(Debug, Error)]
pub enum SinkError {
    /// Writing failed (a file, standard output): the environment's fault.
    #[error("{what}: {source}")]
    Io {
        /// What was being written.
        what: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// An external service refused or failed (a broker, Redis, InfluxDB, a webhook).
    #[error("{what}: {reason}")]
    Service {
        /// The service and what was asked of it.
        what: String,
        /// What it said.
        reason: String,
        /// Whether a retry may help (a timeout, a 5xx) or not (a bad token, a missing topic).
        retryable: bool,
    },
    /// The sink cannot do what was asked: a config or usage problem.
    #[error("{what}: {reason}")]
    Unsupported {
        /// The sink.
        what: String,
        /// Why.
        reason: String,
    },
}

impl SinkError {
    /// An I/O failure of `what`.
    pub fn io(what: impl Into<String>, source: std::io::Error) -> SinkError {
        SinkError::Io { what: what.into(), source }
    }
    /// A service failure of `what`.
    pub fn service(what: impl Into<String>, reason: impl ToString, retryable: bool) -> SinkError {
        SinkError::Service { what: what.into(), reason: reason.to_string(), retryable }
    }
    /// Whether a retry may help.
    pub fn retryable(&self) -> bool {
        match self {
            SinkError::Io { .. } => true,
            SinkError::Service { retryable, .. } => *retryable,
            SinkError::Unsupported { .. } => false,
        }
    }
}

fn unsupported(sink: &(impl Sink + ?Sized), records: &str) -> SinkError {
    SinkError::Unsupported { what: format!("{} sink", sink.kind()), reason: format!("does not take {records}") }
}

/// One opened sink.
pub trait Sink: Send {
    /// Its kind (what alert routes name it by).
    fn kind(&self) -> SinkKind;
    /// Writes a batch of metrics records (one window end's records, sorted).
    fn write_metrics(&mut self, batch: &[WindowRecord]) -> Result<(), SinkError> {
        let _ = batch;
        Err(unsupported(self, "metrics records"))
    }
    /// Writes a batch of alerts (those routed to this sink).
    fn write_alerts(&mut self, batch: &[Alert]) -> Result<(), SinkError> {
        let _ = batch;
        Err(unsupported(self, "alerts"))
    }
    /// Writes a batch of dead letters.
    fn write_dead_letters(&mut self, batch: &[DeadLetter]) -> Result<(), SinkError> {
        let _ = batch;
        Err(unsupported(self, "dead letters"))
    }
    /// Makes what was written so far durable (or at least handed to the service).
    fn flush(&mut self) -> Result<(), SinkError>;
    /// Flushes and releases the sink at the end of the run.
    fn close(&mut self) -> Result<(), SinkError> {
        self.flush()
    }
    /// What the sink has written so far (after a flush), for a checkpoint.
    fn position(&mut self) -> Result<SinkPosition, SinkError> {
        Ok(SinkPosition::Idempotent)
    }
    /// Called once before the first write of a run resumed from a checkpoint, with what the sink
    /// had written then: the sink drops (a file is truncated) or learns to skip (a topic is read
    /// back) what it wrote after it. Idempotent sinks have nothing to do.
    fn resume(&mut self, written: &SinkPosition) -> Result<(), SinkError> {
        match written {
            SinkPosition::Idempotent => Ok(()),
            other => Err(SinkError::Unsupported {
                what: format!("{} sink", self.kind()),
                reason: format!("cannot resume from {other:?}"),
            }),
        }
    }
}

/// The three kinds of records sinks take, and how each reaches a sink.
pub trait Record: Sized {
    /// What the records are called in errors (`metrics`, `alert`, `dead-letter`).
    const ROLE: &'static str;
    /// Writes `batch` to `sink`.
    fn write_to(sink: &mut dyn Sink, batch: &[Self]) -> Result<(), SinkError>;
    /// The counter of records written.
    fn counter(counters: &Counters) -> &AtomicU64;
    /// Counts a written batch by label where the metrics have one (alerts by severity).
    fn tally(batch: &[Self], counters: &Counters) {
        let _ = (batch, counters);
    }
    /// The records of `batch` that a sink of `kind` receives: all of them, but for alerts, which
    /// go only where their routes say.
    fn for_sink<'a>(batch: &'a [Self], router: Option<&Router>, kind: SinkKind) -> Cow<'a, [Self]>
    where
        Self: Clone,
    {
        let _ = (router, kind);
        Cow::Borrowed(batch)
    }
}

impl Record for WindowRecord {
    const ROLE: &'static str = "metrics";
    fn write_to(sink: &mut dyn Sink, batch: &[Self]) -> Result<(), SinkError> {
        sink.write_metrics(batch)
    }
    fn counter(counters: &Counters) -> &AtomicU64 {
        &counters.metrics_records
    }
}

impl Record for Alert {
    const ROLE: &'static str = "alert";
    fn write_to(sink: &mut dyn Sink, batch: &[Self]) -> Result<(), SinkError> {
        sink.write_alerts(batch)
    }
    fn counter(counters: &Counters) -> &AtomicU64 {
        &counters.alerts
    }
    fn tally(batch: &[Self], counters: &Counters) {
        for alert in batch {
            counters.alerts_by_severity.add(alert.severity.as_str(), 1);
        }
    }
    fn for_sink<'a>(batch: &'a [Self], router: Option<&Router>, kind: SinkKind) -> Cow<'a, [Self]> {
        match router {
            Some(router) => Cow::Owned(batch.iter().filter(|a| router.routes_to(a, kind)).cloned().collect()),
            None => Cow::Borrowed(batch),
        }
    }
}

impl Record for DeadLetter {
    const ROLE: &'static str = "dead-letter";
    fn write_to(sink: &mut dyn Sink, batch: &[Self]) -> Result<(), SinkError> {
        sink.write_dead_letters(batch)
    }
    fn counter(counters: &Counters) -> &AtomicU64 {
        &counters.dead_letters
    }
}

/// The sinks of one kind of record: every batch goes to each of them (alerts only to the sinks
/// their routes name), and is counted. With no sinks it only counts (what `rtsa bench` uses).
pub struct SinkSet<R> {
    sinks: Vec<Box<dyn Sink>>,
    /// Records written, per sink (`rtsa_records_out_total{sink="metrics/jsonl"}`).
    written: Vec<Arc<AtomicU64>>,
    router: Option<Router>,
    control: Arc<RunControl>,
    _records: std::marker::PhantomData<fn(&R)>,
}

impl<R: Record> SinkSet<R> {
    /// Writes to `sinks`, counting into `control`.
    pub fn new(sinks: Vec<Box<dyn Sink>>, control: Arc<RunControl>) -> SinkSet<R> {
        let written = sinks
            .iter()
            .map(|sink| control.counters.records_out.handle(&format!("{}/{}", R::ROLE, sink.kind())))
            .collect();
        SinkSet { sinks, written, router: None, control, _records: std::marker::PhantomData }
    }
    /// Only counts.
    pub fn counting(control: Arc<RunControl>) -> SinkSet<R> {
        SinkSet::new(Vec::new(), control)
    }
}

impl SinkSet<Alert> {
    /// Sends each alert only to the sinks its routes name.
    pub fn routed(mut self, router: Router) -> SinkSet<Alert> {
        self.router = Some(router);
        self
    }
}

impl<R: Record> SinkSet<R> {
    /// Hands each sink what it had written at the checkpoint resumed from (one position per
    /// sink, in config order).
    pub fn resume(&mut self, written: &[SinkPosition]) -> Result<(), SinkError> {
        if written.len() != self.sinks.len() {
            return Err(SinkError::Unsupported {
                what: format!("{} sinks", R::ROLE),
                reason: format!(
                    "the checkpoint recorded {} of them, the config has {}: the sinks changed since (rtsa run --fresh starts over)",
                    written.len(),
                    self.sinks.len()
                ),
            });
        }
        for (sink, position) in self.sinks.iter_mut().zip(written) {
            sink.resume(position)?;
        }
        Ok(())
    }
}

impl<R: Record + Clone> BatchWriter<R> for SinkSet<R> {
    fn checkpoint(&mut self) -> Result<Vec<SinkPosition>, String> {
        self.sinks
            .iter_mut()
            .map(|sink| {
                sink.flush()
                    .and_then(|()| sink.position())
                    .map_err(|e| format!("{} sink {}: {e}", R::ROLE, sink.kind()))
            })
            .collect()
    }
    fn write_batch(&mut self, batch: &[R]) {
        let router = self.router.as_ref();
        let written =
            self.sinks.iter_mut().zip(&self.written).try_for_each(|(sink, counter)| -> Result<(), SinkError> {
                let records = R::for_sink(batch, router, sink.kind());
                if records.is_empty() {
                    return Ok(());
                }
                R::write_to(sink.as_mut(), &records)?;
                Counters::add(counter, records.len() as u64);
                Ok(())
            });
        match written {
            Ok(()) => {
                Counters::add(R::counter(&self.control.counters), batch.len() as u64);
                R::tally(batch, &self.control.counters);
            }
            Err(e) => self.control.fail(format!("{} sink: {e}", R::ROLE)),
        }
    }
    fn close(&mut self) {
        for sink in &mut self.sinks {
            if let Err(e) = sink.close() {
                self.control.fail(format!("{} sink: {e}", R::ROLE));
            }
        }
    }
}
