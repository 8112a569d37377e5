//! Kafka topics as sinks: one message per record (metrics keyed `{aggregation}|{window_start}|{key}`,
//! alerts by `alert_id`, dead letters by `partition|offset`), batched and compressed by the
//! producer, retried by librdkafka without a time limit while the broker is away; a record that
//! cannot be delivered at all (a permanent error) fails the run instead of vanishing. Its
//! position is, per output partition, the offset after the last acknowledged record.

use crate::config::KafkaConfig;
use crate::kafka::producer_config;
use dataflows::alerts::{Alert, encode_alert};
use dataflows::control::wall_clock_ms;
use dataflows::record::{DeadLetter, WindowRecord, dead_letter_key, encode_dead_letter, encode_metric, metric_key};
use dataflows::sink::{Sink, SinkError, SinkPosition};
use dataflows::spec::{AggregationConfig, SinkKind};
use rdkafka::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long closing a sink waits for the last records to be acknowledged.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(120);

/// Counts and remembers delivery failures, and the acknowledged end of every partition.
#[derive(Default)]
pub struct DeliveryReport {
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
    acknowledged: Mutex<BTreeMap<i32, i64>>,
}

impl ClientContext for DeliveryReport {}

impl ProducerContext for DeliveryReport {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(message) => {
                let mut ends = self.acknowledged.lock().unwrap_or_else(|p| p.into_inner());
                let end = ends.entry(message.partition()).or_insert(0);
                *end = (*end).max(message.offset() + 1);
            }
            Err((error, _)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                tracing::error!(%error, "kafka delivery failed");
                let mut first = self.first_error.lock().unwrap_or_else(|p| p.into_inner());
                first.get_or_insert_with(|| error.to_string());
            }
        }
    }
}

/// A producer bound to one topic.
pub struct KafkaTopic {
    producer: BaseProducer<DeliveryReport>,
    topic: String,
    brokers: String,
}

impl KafkaTopic {
    /// Creates the producer (it connects lazily; errors surface on delivery).
    pub fn open(kafka: &KafkaConfig, topic: &str) -> Result<KafkaTopic, SinkError> {
        let producer = producer_config(kafka).create_with_context(DeliveryReport::default()).map_err(|e| {
            SinkError::service(
                format!("kafka {}", kafka.bootstrap_servers),
                format!("cannot create a producer: {e}"),
                false,
            )
        })?;
        Ok(KafkaTopic { producer, topic: topic.to_owned(), brokers: kafka.bootstrap_servers.clone() })
    }

    fn what(&self) -> String {
        format!("kafka {} topic {}", self.brokers, self.topic)
    }

    /// Enqueues one message, waiting while the producer's queue is full.
    pub fn send(&self, key: Option<&str>, payload: &[u8]) -> Result<(), SinkError> {
        loop {
            let mut record = BaseRecord::<str, [u8]>::to(&self.topic).payload(payload);
            if let Some(key) = key {
                record = record.key(key);
            }
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    self.producer.poll(Duration::from_millis(100));
                }
                Err((e, _)) => return Err(SinkError::service(self.what(), e, false)),
            }
        }
    }

    /// Serves delivery reports; an error if any record failed for good.
    pub fn poll(&self) -> Result<(), SinkError> {
        self.producer.poll(Duration::ZERO);
        self.check()
    }

    /// Waits until every enqueued record is acknowledged.
    pub fn flush(&self) -> Result<(), SinkError> {
        self.producer
            .flush(FLUSH_TIMEOUT)
            .map_err(|e| SinkError::service(self.what(), format!("records not acknowledged in time: {e}"), true))?;
        self.check()
    }

    /// Per partition, the offset after the last acknowledged record.
    pub fn acknowledged(&self) -> Vec<(u32, u64)> {
        let ends = self.producer.context().acknowledged.lock().unwrap_or_else(|p| p.into_inner());
        ends.iter().map(|(p, end)| (*p as u32, *end as u64)).collect()
    }

    fn check(&self) -> Result<(), SinkError> {
        let report = self.producer.context();
        match report.failed.load(Ordering::Relaxed) {
            0 => Ok(()),
            n => Err(SinkError::service(
                self.what(),
                format!(
                    "{n} records could not be delivered ({})",
                    report.first_error.lock().unwrap_or_else(|p| p.into_inner()).clone().unwrap_or_default()
                ),
                false,
            )),
        }
    }
}

/// A Kafka topic as a sink of records.
pub struct KafkaSink {
    topic: KafkaTopic,
    aggregations: Arc<Vec<AggregationConfig>>,
}

impl KafkaSink {
    /// A sink writing to `topic`.
    pub fn open(
        kafka: &KafkaConfig,
        topic: &str,
        aggregations: Arc<Vec<AggregationConfig>>,
    ) -> Result<KafkaSink, SinkError> {
        Ok(KafkaSink { topic: KafkaTopic::open(kafka, topic)?, aggregations })
    }

    fn send_all(&self, messages: impl Iterator<Item = (String, String)>) -> Result<(), SinkError> {
        for (key, payload) in messages {
            self.topic.send(Some(&key), payload.as_bytes())?;
        }
        self.topic.poll()
    }
}

impl Sink for KafkaSink {
    fn kind(&self) -> SinkKind {
        SinkKind::Kafka
    }
    fn write_metrics(&mut self, batch: &[WindowRecord]) -> Result<(), SinkError> {
        let emitted_at = wall_clock_ms();
        let aggregations = &self.aggregations;
        self.send_all(batch.iter().map(|r| {
            let aggregation = &aggregations[usize::from(r.0.aggregation)];
            (metric_key(r, aggregation), encode_metric(r, aggregation, emitted_at))
        }))
    }
    fn write_alerts(&mut self, batch: &[Alert]) -> Result<(), SinkError> {
        let emitted_at = wall_clock_ms();
        self.send_all(batch.iter().map(|a| (a.alert_id(), encode_alert(a, emitted_at))))
    }
    fn write_dead_letters(&mut self, batch: &[DeadLetter]) -> Result<(), SinkError> {
        let aggregations = &self.aggregations;
        self.send_all(batch.iter().map(|d| (dead_letter_key(d), encode_dead_letter(d, aggregations))))
    }
    fn flush(&mut self) -> Result<(), SinkError> {
        self.topic.flush()
    }
    fn position(&mut self) -> Result<SinkPosition, SinkError> {
        self.topic.flush()?;
        Ok(SinkPosition::Offsets(self.topic.acknowledged()))
    }
}
