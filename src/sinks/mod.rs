//! Sinks: where metrics records and dead letters go. Encoders live in `record`; this module
//! opens the configured outputs and writes batches to them.

pub mod console;
pub mod jsonl;
pub mod kafka;

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
}

fn open_outputs(sinks: &[SinkConfig], config: &Config) -> Result<Vec<Output>, String> {
    sinks
        .iter()
        .map(|sink| match sink {
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
        })
        .collect()
}

/// One encoded record: its JSON line, its Kafka key, and its aggregation (for console filters).
struct Encoded {
    json: String,
    key: Option<String>,
    aggregation: Option<u16>,
    readable: Option<String>,
}

fn write_all(outputs: &mut [Output], records: &[Encoded]) -> Result<(), String> {
    for output in outputs {
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
                let shown = |r: &&Encoded| match (only.as_ref(), r.aggregation) {
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
        }
    }
    Ok(())
}

fn close_all(outputs: &mut [Output]) -> Result<(), String> {
    for output in outputs {
        match output {
            Output::Jsonl(file) => file.flush().map_err(|e| format!("{}: {e}", file.path().display()))?,
            Output::Console { .. } => {}
            Output::Kafka(topic) => topic.flush()?,
        }
    }
    Ok(())
}

/// Encodes a batch of records for the outputs.
type Encoder<D> = Box<dyn Fn(&[D]) -> Vec<Encoded> + Send>;

/// Writes records of one kind (metrics records, dead letters) to their configured outputs.
pub struct RecordWriter<D> {
    what: &'static str,
    outputs: Vec<Output>,
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
    let outputs = open_outputs(&config.sinks.metrics, config)?;
    let readable = outputs.iter().any(|o| matches!(o, Output::Console { json: false, .. }));
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
                }
            })
            .collect()
    };
    Ok(RecordWriter { what: "metrics", outputs, encode: Box::new(encode), written: |c| &c.metrics_records, control })
}

/// Opens the configured dead-letter sink.
pub fn dead_letter_writer(config: &Config, control: Arc<RunControl>) -> Result<RecordWriter<DeadLetter>, String> {
    let outputs = open_outputs(std::slice::from_ref(&config.sinks.dead_letter), config)?;
    let aggregations = config.aggregations.clone();
    let encode = move |batch: &[DeadLetter]| {
        batch
            .iter()
            .map(|d| Encoded {
                json: encode_dead_letter(d, &aggregations),
                key: Some(format!("{}|{}", d.position.partition, d.position.offset)),
                aggregation: None,
                readable: None,
            })
            .collect()
    };
    Ok(RecordWriter { what: "dead-letter", outputs, encode: Box::new(encode), written: |c| &c.dead_letters, control })
}

/// A writer that only counts (what `rtsa bench` uses, so that it measures the engine).
pub struct CountingWriter {
    control: Arc<RunControl>,
    dead_letters: bool,
}

impl CountingWriter {
    /// Counts metrics records (or dead letters) into the run's counters.
    pub fn new(control: Arc<RunControl>, dead_letters: bool) -> CountingWriter {
        CountingWriter { control, dead_letters }
    }
}

impl<D> BatchWriter<D> for CountingWriter {
    fn write_batch(&mut self, batch: &[D]) {
        let counter = if self.dead_letters {
            &self.control.counters.dead_letters
        } else {
            &self.control.counters.metrics_records
        };
        Counters::add(counter, batch.len() as u64);
    }
    fn close(&mut self) {}
}
