//! A channel that delivers on its own thread from a bounded queue, so that a slow or failing
//! service never stalls the pipeline: when the queue is full, the alert is dropped, counted and
//! logged; when delivery fails for good, it is counted and logged too.

use dataflows::alerts::{Alert, encode_alert};
use dataflows::control::{Counters, RunControl, wall_clock_ms};
use dataflows::sink::{Sink, SinkError};
use dataflows::spec::SinkKind;
use std::sync::Arc;
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::Duration;

/// One message: its idempotency key and its JSON body.
pub type Delivery = (String, String);

/// Why a delivery failed, and whether a retry may help.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryError {
    /// A timeout, a connection error, a 5xx: try again later.
    pub retryable: bool,
    /// What the service said.
    pub reason: String,
}

impl DeliveryError {
    /// A failure that a retry may mend.
    pub fn transient(reason: impl ToString) -> DeliveryError {
        DeliveryError { retryable: true, reason: reason.to_string() }
    }
    /// A failure that a retry will not mend.
    pub fn permanent(reason: impl ToString) -> DeliveryError {
        DeliveryError { retryable: false, reason: reason.to_string() }
    }
}

/// Delivers one message.
pub trait Deliver: Send + 'static {
    /// Delivers `body` with `key`.
    fn deliver(&mut self, key: &str, body: &str) -> Result<(), DeliveryError>;
}

/// Counts an alert out of the queue when its delivery ends, however it ends.
struct Dequeued<'a>(&'a RunControl);

impl Drop for Dequeued<'_> {
    fn drop(&mut self) {
        self.0.counters.alerts_queued.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The sending side of a queued channel.
pub struct QueuedChannel {
    name: String,
    sender: Option<SyncSender<Delivery>>,
    thread: Option<JoinHandle<()>>,
    control: Arc<RunControl>,
}

/// How a queued channel retries.
#[derive(Clone, Copy, Debug)]
pub struct Retry {
    /// Attempts after the first one (`u32::MAX`: until delivered).
    pub retries: u32,
    /// First backoff; doubled per attempt up to `max_backoff`.
    pub backoff: Duration,
    /// Longest backoff.
    pub max_backoff: Duration,
}

impl QueuedChannel {
    /// Starts the delivery thread.
    pub fn start(
        name: String,
        queue: usize,
        retry: Retry,
        mut deliver: impl Deliver,
        control: Arc<RunControl>,
    ) -> Result<QueuedChannel, SinkError> {
        let (sender, receiver) = sync_channel::<Delivery>(queue.max(1));
        let counter = control.clone();
        let thread_name = name.clone();
        let thread = std::thread::Builder::new()
            .name(format!("rtsa-{name}"))
            .spawn(move || {
                for (key, body) in receiver {
                    let _delivered = Dequeued(&counter);
                    let mut wait = retry.backoff;
                    let mut attempt = 0u32;
                    loop {
                        match deliver.deliver(&key, &body) {
                            Ok(()) => break,
                            Err(DeliveryError { retryable: true, reason }) if attempt < retry.retries => {
                                tracing::warn!(channel = %thread_name, %key, attempt, %reason, "alert delivery failed; retrying");
                                std::thread::sleep(wait);
                                wait = (wait * 2).min(retry.max_backoff);
                                attempt += 1;
                            }
                            Err(DeliveryError { reason, .. }) => {
                                Counters::add(&counter.counters.alerts_undelivered, 1);
                                counter.counters.undelivered_by_channel.add(&thread_name, 1);
                                tracing::error!(channel = %thread_name, %key, %reason, "alert not delivered");
                                break;
                            }
                        }
                    }
                }
            })
            .map_err(|e| SinkError::io(format!("{name} channel: cannot start its delivery thread"), e))?;
        Ok(QueuedChannel { name, sender: Some(sender), thread: Some(thread), control })
    }

    /// Enqueues a message without waiting; a full queue drops it (counted, logged).
    pub fn offer(&self, key: &str, body: &str) {
        let Some(sender) = &self.sender else { return };
        match sender.try_send((key.to_owned(), body.to_owned())) {
            Ok(()) => Counters::add(&self.control.counters.alerts_queued, 1),
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                Counters::add(&self.control.counters.alerts_undelivered, 1);
                self.control.counters.undelivered_by_channel.add(&self.name, 1);
                tracing::error!(channel = %self.name, %key, "alert channel queue full; alert dropped");
            }
        }
    }

    /// Waits until the queue is delivered (or given up).
    pub fn close(&mut self) {
        self.sender = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for QueuedChannel {
    fn drop(&mut self) {
        self.close();
    }
}

/// A queued channel as an alert sink: each alert's JSON, keyed by its `alert_id`.
pub struct QueuedSink {
    kind: SinkKind,
    channel: QueuedChannel,
}

impl QueuedSink {
    /// Alerts of a sink of `kind`, delivered by `channel`.
    pub fn new(kind: SinkKind, channel: QueuedChannel) -> QueuedSink {
        QueuedSink { kind, channel }
    }
}

impl Sink for QueuedSink {
    fn kind(&self) -> SinkKind {
        self.kind
    }
    fn write_alerts(&mut self, batch: &[Alert]) -> Result<(), SinkError> {
        let emitted_at = wall_clock_ms();
        for alert in batch {
            self.channel.offer(&alert.alert_id(), &encode_alert(alert, emitted_at));
        }
        Ok(())
    }
    fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
    fn close(&mut self) -> Result<(), SinkError> {
        self.channel.close();
        Ok(())
    }
}
