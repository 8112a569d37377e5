//! Sink connectors: one type per sink kind, each implementing the dataflows' [`Sink`] trait with
//! its own pure encoders, and one `match` from the config to it ([`open`]). [`open_all`] opens
//! the sinks of a config into the three sets the pipeline writes (metrics, dead letters, alerts).
//!
//! | file | owns |
//! |---|---|
//! | `jsonl.rs` | JSON lines appended to a file; truncated to a checkpoint's length on resume |
//! | `console.rs` | readable or JSON lines on standard output |
//! | `kafka.rs` | one message per record, keyed; the producer's delivery reports |
//! | `redis.rs` (alerts) | `XADD` + `PUBLISH`, once per alert id |
//! | `webhook.rs` | alerts: HTTP POST with an idempotency key and an HMAC signature |
//! | `influxdb/` | metrics, alerts and engine counters as line protocol (`line_protocol.rs`), batched, gzipped, retried |
//! | `redis.rs` (metrics) | the latest window per (aggregation, key) as a hash with a TTL |
//! | `queued.rs` | delivery from a bounded queue on a thread of its own (Redis, webhooks) |

pub mod console;
pub mod influxdb;
pub mod jsonl;
pub mod kafka;
pub mod queued;
pub mod redis;
pub mod webhook;

use crate::config::{Config, SinkConfig, SinkRole};
use crate::error::Error;
use dataflows::alerts::Alert;
use dataflows::alerts::route::Router;
use dataflows::control::RunControl;
use dataflows::record::{DeadLetter, WindowRecord};
pub use dataflows::sink::{Sink, SinkError, SinkPosition, SinkSet};
use dataflows::spec::SinkKind;
use std::sync::Arc;
use std::time::Duration;

/// An HTTP client with a timeout per request, trusting the CA of `ca_file` besides the system's
/// roots (for a server whose certificate a private CA signed).
pub fn http_client(timeout: Duration, ca_file: Option<&std::path::Path>) -> Result<reqwest::blocking::Client, String> {
    let mut builder = reqwest::blocking::Client::builder().timeout(timeout);
    if let Some(path) = ca_file {
        let pem = std::fs::read(path).map_err(|e| format!("tls_ca_file {}: {e}", path.display()))?;
        let certificate = reqwest::Certificate::from_pem(&pem)
            .map_err(|e| format!("tls_ca_file {}: not a PEM certificate: {e}", path.display()))?;
        builder = builder.add_root_certificate(certificate);
    }
    builder.build().map_err(|e| e.to_string())
}

/// Opens one sink of `role`: the one place a sink kind meets its implementation.
pub fn open(
    role: SinkRole,
    sink: &SinkConfig,
    config: &Config,
    control: &Arc<RunControl>,
) -> Result<Box<dyn Sink>, SinkError> {
    let aggregations = Arc::new(config.pipeline.aggregations.clone());
    Ok(match sink {
        SinkConfig::Jsonl(j) => Box::new(jsonl::JsonlSink::open(&j.path, aggregations)?),
        SinkConfig::Console(c) => Box::new(console::ConsoleSink::new(c.json, &c.aggregations, aggregations)),
        SinkConfig::Kafka(k) => {
            Box::new(kafka::KafkaSink::open(&config.kafka, &config.topic_of(role, k), aggregations)?)
        }
        SinkConfig::Redis(r) if role == SinkRole::Metrics => Box::new(redis::RedisMetricsSink::open(r, aggregations)?),
        SinkConfig::Influxdb(i) => {
            let engine = (role == SinkRole::Metrics).then(|| config.pipeline.engine.metrics_interval.as_duration());
            Box::new(influxdb::InfluxSink::open(i, aggregations, engine, control.clone())?)
        }
        SinkConfig::Redis(r) => {
            let retry = queued::Retry {
                retries: u32::MAX,
                backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(30),
            };
            let channel = redis::RedisChannel::open(r)?;
            let queue = queued::QueuedChannel::start("redis".into(), r.queue, retry, channel, control.clone())?;
            Box::new(queued::QueuedSink::new(SinkKind::Redis, queue))
        }
        SinkConfig::Webhook(w) => {
            let retry = queued::Retry {
                retries: w.retries,
                backoff: w.backoff.as_duration(),
                max_backoff: Duration::from_secs(30),
            };
            let channel = webhook::WebhookChannel::open(w)?;
            let queue = queued::QueuedChannel::start("webhook".into(), w.queue, retry, channel, control.clone())?;
            Box::new(queued::QueuedSink::new(SinkKind::Webhook, queue))
        }
    })
}

/// The sinks of a run, by the records they take.
pub struct Sinks {
    /// Metrics sinks.
    pub metrics: SinkSet<WindowRecord>,
    /// Dead-letter sinks.
    pub dead_letters: SinkSet<DeadLetter>,
    /// Alert channels, with the routes of `alerts.routes`.
    pub alerts: SinkSet<Alert>,
}

impl Sinks {
    /// What every sink holds now (each flushed first), as a checkpoint records it.
    pub fn positions(&mut self) -> Result<dataflows::checkpoint::SinkPositions, String> {
        use dataflows::operators::batch_sink::BatchWriter;
        Ok(dataflows::checkpoint::SinkPositions {
            metrics: self.metrics.checkpoint()?,
            alerts: self.alerts.checkpoint()?,
            dead_letters: self.dead_letters.checkpoint()?,
        })
    }
}

impl Sinks {
    /// Sinks that only count (benchmarks, and workers that receive nothing).
    pub fn counting(control: &Arc<RunControl>) -> Sinks {
        Sinks {
            metrics: SinkSet::counting(control.clone()),
            dead_letters: SinkSet::counting(control.clone()),
            alerts: SinkSet::counting(control.clone()),
        }
    }
}

/// Opens every sink of a config (before the workers start, so that a bad path is a clean error).
pub fn open_all(config: &Config, control: &Arc<RunControl>) -> Result<Sinks, Error> {
    let mut metrics = Vec::new();
    let mut dead_letters = Vec::new();
    let mut alerts = Vec::new();
    for (role, _, sink) in config.sinks() {
        let opened = open(role, sink, config, control)?;
        match role {
            SinkRole::Metrics => metrics.push(opened),
            SinkRole::DeadLetters => dead_letters.push(opened),
            SinkRole::Alerts => alerts.push(opened),
        }
    }
    let routes = &config.pipeline.alerts.routes;
    let alerts = SinkSet::new(alerts, control.clone());
    Ok(Sinks {
        metrics: SinkSet::new(metrics, control.clone()),
        dead_letters: SinkSet::new(dead_letters, control.clone()),
        alerts: if routes.is_empty() { alerts } else { alerts.routed(Router::new(routes.clone())) },
    })
}
