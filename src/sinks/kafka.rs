//! Kafka topics as sinks: one message per record (metrics keyed `{aggregation}|{window_start}|{key}`,
//! alerts by `alert_id`, dead letters by `partition|offset`), batched and compressed by the
//! producer, retried by librdkafka without a time limit while the broker is away; a record that
//! cannot be delivered at all (a permanent error) fails the run instead of vanishing. Its
//! position is, per output partition, the offset after the last acknowledged record (or the
//! partition's end at the first checkpoint, for a partition not written since).
//!
//! Exactly-once without broker transactions (CONTRACT 7): this process's worker 0 is the only
//! writer of its topics, and on resume it reads every partition back from the offsets the
//! checkpoint recorded to the end, proving it reached the end offsets fetched first, and skips
//! the records whose keys it finds there when the replay produces them again (one skip per
//! copy found: a late event's dead letters share a key, one per aggregation).

use crate::config::KafkaConfig;
use crate::kafka::{Resume, Resuming, producer_config};
use dataflows::alerts::{Alert, encode_alert};
use dataflows::control::wall_clock_ms;
use dataflows::record::{DeadLetter, WindowRecord, dead_letter_key, encode_dead_letter, encode_metric, metric_key};
use dataflows::sink::{Sink, SinkError, SinkPosition};
use dataflows::spec::{AggregationConfig, SinkKind};
use rdkafka::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::{BTreeMap, HashMap};
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
    kafka: KafkaConfig,
    /// Per partition, its end at the first checkpoint (after a flush: what had been written) or
    /// at the checkpoint resumed from; fetched only when checkpoints ask for it.
    baseline: Option<BTreeMap<u32, u64>>,
    /// Keys already in the topic after the checkpoint resumed from, with how many copies.
    skip: HashMap<String, u32>,
}

/// Reads `topic` back from `from` (per partition) to its end; returns the keys found, with how
/// many copies, and how many records were read.
///
/// The end is where the broker stops serving records: every partition read at least to the end
/// offset fetched first, then nothing new for [`QUIET`]. The end offsets alone are not enough:
/// a broker may report them late (tansu's cached watermarks), and the last batch a writer killed
/// with `kill -9` had in flight can land after it died; a read-back that stopped short would
/// write those records again. A writer still alive is not fenced (no broker transactions).
fn read_back(
    kafka: &KafkaConfig,
    topic: &str,
    from: &BTreeMap<u32, u64>,
) -> Result<(HashMap<String, u32>, u64), SinkError> {
    let what = format!("kafka {} topic {topic}", kafka.bootstrap_servers);
    let fail = |reason: String| SinkError::service(what.clone(), reason, true);
    // The ends first: reading must reach them, so nothing written before the crash is missed.
    let mut short_of_end = BTreeMap::new();
    let mut resuming = BTreeMap::new();
    let mut assignment = TopicPartitionList::new();
    for (p, end) in end_offsets(kafka, topic)? {
        let start = from.get(&p).copied().unwrap_or(0);
        if end > start {
            short_of_end.insert(p as i32, end as i64);
        }
        resuming.insert(p as i32, Resuming::at(start));
        assignment
            .add_partition_offset(topic, p as i32, Offset::Offset(start as i64))
            .map_err(|e| fail(format!("partition {p}: {e}")))?;
    }
    let mut config = crate::kafka::client_config(kafka);
    config
        .set("group.id", format!("rtsa-resume-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false");
    let consumer: BaseConsumer = config.create().map_err(|e| fail(format!("cannot create a consumer: {e}")))?;
    let timeout = kafka.connect_timeout.as_duration();
    tracing::debug!(topic, ?from, ends = ?short_of_end, "reading back");
    consumer.assign(&assignment).map_err(|e| fail(format!("cannot assign partitions: {e}")))?;
    let mut keys: HashMap<String, u32> = HashMap::new();
    let mut read = 0u64;
    let mut read_to: BTreeMap<i32, i64> = BTreeMap::new();
    let deadline = std::time::Instant::now() + timeout.max(Duration::from_secs(30));
    let mut last_record = std::time::Instant::now();
    while !short_of_end.is_empty() || last_record.elapsed() < QUIET {
        if std::time::Instant::now() > deadline {
            return Err(fail(format!("could not read back to the end offsets {short_of_end:?} in time")));
        }
        let message = match consumer.poll(Duration::from_millis(50)) {
            None => continue,
            Some(Err(e)) => {
                tracing::warn!(error = %e, "kafka read-back");
                continue;
            }
            Some(Ok(message)) => message,
        };
        let (partition, offset) = (message.partition(), message.offset());
        // Seek back where the broker answered a fetch inside a batch with the next one.
        match resuming.get_mut(&partition).map(|r| r.judge(offset as u64)) {
            Some(Resume::Drop) => continue,
            Some(Resume::SeekBack(to)) => {
                consumer
                    .seek(topic, partition, Offset::Offset(to as i64), timeout)
                    .map_err(|e| fail(format!("partition {partition}: seeking to {to}: {e}")))?;
                continue;
            }
            Some(Resume::Deliver) => {
                resuming.remove(&partition);
            }
            None => {}
        }
        // Each offset counts once (a fetch from before a seek may still arrive).
        let last = read_to.entry(partition).or_insert(-1);
        if offset <= *last {
            continue;
        }
        *last = offset;
        last_record = std::time::Instant::now();
        read += 1;
        let key = message.key().map(|k| String::from_utf8_lossy(k).into_owned()).unwrap_or_default();
        *keys.entry(key).or_insert(0) += 1;
        if short_of_end.get(&partition).is_some_and(|end| offset + 1 >= *end) {
            short_of_end.remove(&partition);
        }
    }
    Ok((keys, read))
}

/// How long a read-back waits for more records after the last one (and past the end offsets).
const QUIET: Duration = Duration::from_millis(500);

/// Per partition of `topic`, its end offset now.
fn end_offsets(kafka: &KafkaConfig, topic: &str) -> Result<BTreeMap<u32, u64>, SinkError> {
    let what = format!("kafka {} topic {topic}", kafka.bootstrap_servers);
    let partitions =
        crate::kafka::partition_count(kafka, topic).map_err(|e| SinkError::service(what.clone(), e, true))?;
    let consumer: BaseConsumer = crate::kafka::client_config(kafka)
        .create()
        .map_err(|e| SinkError::service(what.clone(), format!("cannot create a client: {e}"), true))?;
    let mut ends = BTreeMap::new();
    for p in 0..partitions {
        let (_, high) = consumer
            .fetch_watermarks(topic, p as i32, kafka.connect_timeout.as_duration())
            .map_err(|e| SinkError::service(what.clone(), format!("partition {p}: {e}"), true))?;
        ends.insert(p, high.max(0) as u64);
    }
    Ok(ends)
}

impl KafkaSink {
    /// A sink writing to `topic`.
    pub fn open(
        kafka: &KafkaConfig,
        topic: &str,
        aggregations: Arc<Vec<AggregationConfig>>,
    ) -> Result<KafkaSink, SinkError> {
        Ok(KafkaSink {
            topic: KafkaTopic::open(kafka, topic)?,
            aggregations,
            baseline: None,
            kafka: kafka.clone(),
            skip: HashMap::new(),
        })
    }

    fn send_all(&mut self, messages: impl Iterator<Item = (String, String)>) -> Result<(), SinkError> {
        for (key, payload) in messages {
            if let Some(copies) = self.skip.get_mut(&key).filter(|n| **n > 0) {
                // Written before the crash, after the checkpoint: the replay's copy is the same record.
                *copies -= 1;
                continue;
            }
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
        let aggregations = self.aggregations.clone();
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
        let aggregations = self.aggregations.clone();
        self.send_all(batch.iter().map(|d| (dead_letter_key(d), encode_dead_letter(d, &aggregations))))
    }
    fn flush(&mut self) -> Result<(), SinkError> {
        self.topic.flush()
    }
    fn position(&mut self) -> Result<SinkPosition, SinkError> {
        self.topic.flush()?;
        let mut ends = match &self.baseline {
            Some(baseline) => baseline.clone(),
            None => self.baseline.insert(end_offsets(&self.kafka, &self.topic.topic)?).clone(),
        };
        for (partition, end) in self.topic.acknowledged() {
            let at = ends.entry(partition).or_insert(0);
            *at = (*at).max(end);
        }
        tracing::debug!(topic = %self.topic.topic, ?ends, "position");
        Ok(SinkPosition::Offsets(ends.into_iter().collect()))
    }
    fn resume(&mut self, written: &SinkPosition) -> Result<(), SinkError> {
        let SinkPosition::Offsets(offsets) = written else {
            return Err(SinkError::Unsupported {
                what: format!("kafka sink {}", self.topic.topic),
                reason: format!("cannot resume from {written:?}"),
            });
        };
        let from: BTreeMap<u32, u64> = offsets.iter().copied().collect();
        let (skip, read) = read_back(&self.kafka, &self.topic.topic, &from)?;
        if read > 0 {
            tracing::info!(topic = %self.topic.topic, read, "records after the checkpoint read back; their replay is skipped");
        }
        self.skip = skip;
        self.baseline = Some(from);
        Ok(())
    }
}
