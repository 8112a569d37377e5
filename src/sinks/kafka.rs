//! Kafka topics as sinks: one message per record, batched and compressed by the producer,
//! retried by librdkafka without a time limit while the broker is away; a record that cannot be
//! delivered at all (a permanent error) fails the run instead of vanishing.

use crate::config::KafkaConfig;
use crate::kafka::producer_config;
use rdkafka::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How long closing a sink waits for the last records to be acknowledged.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(120);

/// Counts and remembers delivery failures.
#[derive(Default)]
pub struct DeliveryReport {
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl ClientContext for DeliveryReport {}

impl ProducerContext for DeliveryReport {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((error, _)) = result {
            self.failed.fetch_add(1, Ordering::Relaxed);
            tracing::error!(%error, "kafka delivery failed");
            let mut first = self.first_error.lock().unwrap_or_else(|p| p.into_inner());
            first.get_or_insert_with(|| error.to_string());
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
    pub fn open(kafka: &KafkaConfig, topic: &str) -> Result<KafkaTopic, String> {
        let producer = producer_config(kafka)
            .create_with_context(DeliveryReport::default())
            .map_err(|e| format!("kafka {}: cannot create a producer: {e}", kafka.bootstrap_servers))?;
        Ok(KafkaTopic { producer, topic: topic.to_owned(), brokers: kafka.bootstrap_servers.clone() })
    }

    /// Enqueues one message, waiting while the producer's queue is full.
    pub fn send(&self, key: Option<&str>, payload: &[u8]) -> Result<(), String> {
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
                Err((e, _)) => return Err(format!("kafka topic {}: {e}", self.topic)),
            }
        }
    }

    /// Serves delivery reports; an error if any record failed for good.
    pub fn poll(&self) -> Result<(), String> {
        self.producer.poll(Duration::ZERO);
        self.check()
    }

    /// Waits until every enqueued record is acknowledged.
    pub fn flush(&self) -> Result<(), String> {
        self.producer.flush(FLUSH_TIMEOUT).map_err(|e| {
            format!("kafka {} topic {}: records not acknowledged in time: {e}", self.brokers, self.topic)
        })?;
        self.check()
    }

    fn check(&self) -> Result<(), String> {
        let report = self.producer.context();
        match report.failed.load(Ordering::Relaxed) {
            0 => Ok(()),
            n => Err(format!(
                "kafka topic {}: {n} records could not be delivered ({})",
                self.topic,
                report.first_error.lock().unwrap_or_else(|p| p.into_inner()).clone().unwrap_or_default()
            )),
        }
    }
}
