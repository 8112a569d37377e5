//! Sinks: where metrics records and dead letters go. Encoders live in `record`; this module
//! opens the configured outputs and writes batches to them.

pub mod console;
pub mod jsonl;
pub mod kafka;
pub mod queued;
pub mod redis;
pub mod webhook;

use crate::alerts::route::Router;
use crate::alerts::{Alert, describe_alert_coloured, encode_alert};
use crate::config::{AggregationConfig, Config, SinkConfig};
use crate::control::{Counters, RunControl};
use crate::operators::batch_sink::BatchWriter;
use crate::record::{DeadLetter, WindowRecord, describe_metric, encode_dead_letter, encode_metric, metric_key};
use jsonl::JsonlFile;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Wall-clock milliseconds (for `emitted_at`).
pub fn wall_clock_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// One opened output.
enum Output {
    Jsonl(JsonlFile),
    /// `only`: the aggregation indexes to print (all when `None`).
    Console {
        json: bool,
        only: Option<Vec<u16>>,
    },
    Kafka(kafka::KafkaTopic),
    /// Redis or a webhook, delivering from a bounded queue on its own thread.
    Queued(queued::QueuedChannel),
}

/// Channel kinds in the order of the bits of `Encoded::channels`.
const CHANNEL_KINDS: [&str; 5] = ["jsonl", "console", "kafka", "redis", "webhook"];

fn channel_bit(kind: &str) -> u8 {
    1 << CHANNEL_KINDS.iter().position(|k| *k == kind).unwrap_or(0)
}

fn open_outputs(sinks: &[SinkConfig], config: &Config, control: &Arc<RunControl>) -> Result<Vec<(u8, Output)>, String> {
    sinks
        .iter()
        .map(|sink| {
            match sink {
                SinkConfig::Jsonl(j) => JsonlFile::open(&j.path)
                    .map(Output::Jsonl)
                    .map_err(|e| format!("cannot open {} for writing: {e}", j.path.display())),
                SinkConfig::Console(c) => {
                    let only = (!c.aggregations.is_empty()).then(|| {
                        let wanted = |a: &AggregationConfig| c.aggregations.contains(&a.name);
                        (0..config.aggregations.len() as u16)
                            .filter(|i| wanted(&config.aggregations[usize::from(*i)]))
                            .collect()
                    });
                    Ok(Output::Console { json: c.json, only })
                }
                SinkConfig::Kafka(k) => kafka::KafkaTopic::open(&config.kafka, &k.topic).map(Output::Kafka),
                SinkConfig::Redis(r) => {
                    let channel = redis::RedisChannel::open(r)?;
                    let retry = queued::Retry {
                        retries: u32::MAX,
                        backoff: std::time::Duration::from_millis(100),
                        max_backoff: std::time::Duration::from_secs(30),
                    };
                    Ok(Output::Queued(queued::QueuedChannel::start(
                        "redis".into(),
                        r.queue,
                        retry,
                        channel,
                        control.clone(),
                    )))
                }
                SinkConfig::Webhook(w) => {
                    let channel = webhook::WebhookChannel::open(w)?;
                    let retry = queued::Retry {
                        retries: w.retries,
                        backoff: w.backoff.as_duration(),
                        max_backoff: std::time::Duration::from_secs(30),
                    };
                    Ok(Output::Queued(queued::QueuedChannel::start(
                        "webhook".into(),
                        w.queue,
                        retry,
                        channel,
                        control.clone(),
                    )))
                }
            }
            .map(|output| (channel_bit(sink.kind_name()), output))
        })
        .collect()
}

/// One encoded record: its JSON line, its Kafka key, and its aggregation (for console filters).
struct Encoded {
    json: String,
    key: Option<String>,
    aggregation: Option<u16>,
    readable: Option<String>,
    /// Bits of the channel kinds it goes to (see `CHANNEL_KINDS`).
    channels: u8,
}

fn write_all(outputs: &mut [(u8, Output)], records: &[Encoded]) -> Result<(), String> {
    for (bit, output) in outputs {
        let routed: Vec<&Encoded> = records.iter().filter(|r| r.channels & *bit != 0).collect();
        let records = routed.as_slice();
        match output {
            Output::Jsonl(file) => {
                let path = file.path().display().to_string();
                let io = |e: std::io::Error| format!("{path}: {e}");
                for record in records {
                    file.write_line(&record.json).map_err(io)?;
                }
                file.flush().map_err(io)?;
            }
            Output::Console { json, only } => {
                let shown = |r: &&&Encoded| match (only.as_ref(), r.aggregation) {
                    (Some(only), Some(a)) => only.contains(&a),
                    _ => true,
                };
                let lines = records.iter().filter(shown).map(|r| match (&r.readable, *json) {
                    (Some(readable), false) => readable.as_str(),
                    _ => r.json.as_str(),
                });
                console::print_lines(lines).map_err(|e| format!("stdout: {e}"))?;
            }
            Output::Kafka(topic) => {
                for record in records {
                    topic.send(record.key.as_deref(), record.json.as_bytes())?;
                }
                topic.poll()?;
            }
            Output::Queued(channel) => {
                for record in records {
                    channel.offer(record.key.as_deref().unwrap_or(""), &record.json);
                }
            }
        }
    }
    Ok(())
}

fn close_all(outputs: &mut [(u8, Output)]) -> Result<(), String> {
    for (_, output) in outputs {
        match output {
            Output::Jsonl(file) => file.flush().map_err(|e| format!("{}: {e}", file.path().display()))?,
            Output::Console { .. } => {}
            Output::Kafka(topic) => topic.flush()?,
            Output::Queued(channel) => channel.close(),
        }
    }
    Ok(())
}

/// Encodes a batch of records for the outputs.
type Encoder<D> = Box<dyn Fn(&[D]) -> Vec<Encoded> + Send>;

/// Writes records of one kind (metrics records, dead letters) to their configured outputs.
pub struct RecordWriter<D> {
    what: &'static str,
    outputs: Vec<(u8, Output)>,
    encode: Encoder<D>,
    written: fn(&Counters) -> &std::sync::atomic::AtomicU64,
    control: Arc<RunControl>,
}

impl<D> BatchWriter<D> for RecordWriter<D> {
    fn write_batch(&mut self, batch: &[D]) {
        match write_all(&mut self.outputs, &(self.encode)(batch)) {
            Ok(()) => Counters::add((self.written)(&self.control.counters), batch.len() as u64),
            Err(e) => self.control.fail(format!("{} sink: {e}", self.what)),
        }
    }
    fn close(&mut self) {
        if let Err(e) = close_all(&mut self.outputs) {
            self.control.fail(format!("{} sink: {e}", self.what));
        }
    }
}

/// Opens the configured metrics sinks.
pub fn metrics_writer(config: &Config, control: Arc<RunControl>) -> Result<RecordWriter<WindowRecord>, String> {
    let outputs = open_outputs(&config.sinks.metrics, config, &control)?;
    let readable = outputs.iter().any(|(_, o)| matches!(o, Output::Console { json: false, .. }));
    let aggregations = config.aggregations.clone();
    let encode = move |batch: &[WindowRecord]| {
        let emitted_at = wall_clock_ms();
        batch
            .iter()
            .map(|r| {
                let aggregation = &aggregations[usize::from(r.0.aggregation)];
                Encoded {
                    json: encode_metric(r, aggregation, emitted_at),
                    key: Some(metric_key(r, aggregation)),
                    aggregation: Some(r.0.aggregation),
                    readable: readable.then(|| describe_metric(r, aggregation)),
                    channels: u8::MAX,
                }
            })
            .collect()
    };
    Ok(RecordWriter { what: "metrics", outputs, encode: Box::new(encode), written: |c| &c.metrics_records, control })
}

/// Opens the configured dead-letter sink.
pub fn dead_letter_writer(config: &Config, control: Arc<RunControl>) -> Result<RecordWriter<DeadLetter>, String> {
    let outputs = open_outputs(std::slice::from_ref(&config.sinks.dead_letter), config, &control)?;
    let aggregations = config.aggregations.clone();
    let encode = move |batch: &[DeadLetter]| {
        batch
            .iter()
            .map(|d| Encoded {
                json: encode_dead_letter(d, &aggregations),
                key: Some(format!("{}|{}", d.position.partition, d.position.offset)),
                aggregation: None,
                readable: None,
                channels: u8::MAX,
            })
            .collect()
    };
    Ok(RecordWriter { what: "dead-letter", outputs, encode: Box::new(encode), written: |c| &c.dead_letters, control })
}

/// Opens the configured alert channels, with the routes of `alerts.routes`.
pub fn alert_writer(config: &Config, control: Arc<RunControl>) -> Result<RecordWriter<Alert>, String> {
    let outputs = open_outputs(&config.sinks.alerts, config, &control)?;
    let readable = outputs.iter().any(|(_, o)| matches!(o, Output::Console { json: false, .. }));
    let router = Router::new(config.alerts.routes.clone());
    let colour = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let encode = move |batch: &[Alert]| {
        let emitted_at = wall_clock_ms();
        batch
            .iter()
            .map(|alert| Encoded {
                json: encode_alert(alert, emitted_at),
                key: Some(alert.alert_id()),
                aggregation: None,
                readable: readable.then(|| describe_alert_coloured(alert, colour)),
                channels: CHANNEL_KINDS
                    .iter()
                    .filter(|kind| router.routes_to(alert, kind))
                    .fold(0, |bits, kind| bits | channel_bit(kind)),
            })
            .collect()
    };
    Ok(RecordWriter { what: "alert", outputs, encode: Box::new(encode), written: |c| &c.alerts, control })
}

/// A writer that only counts (what `rtsa bench` uses, so that it measures the engine).
pub struct CountingWriter {
    control: Arc<RunControl>,
    counter: fn(&Counters) -> &std::sync::atomic::AtomicU64,
}

impl CountingWriter {
    /// Counts records into one of the run's counters.
    pub fn new(control: Arc<RunControl>, counter: fn(&Counters) -> &std::sync::atomic::AtomicU64) -> CountingWriter {
        CountingWriter { control, counter }
    }
}

impl<D> BatchWriter<D> for CountingWriter {
    fn write_batch(&mut self, batch: &[D]) {
        Counters::add((self.counter)(&self.control.counters), batch.len() as u64);
    }
    fn close(&mut self) {}
}
