//! The Kafka source: one consumer per worker, assigned the partitions the worker owns
//! (`partition % peers == worker`, not consumer-group balancing), each partition read through
//! its own queue so that it keeps its own watermark. A partition's position is the offset after
//! its last message, and it can start there; positions are also committed to the consumer group
//! every few seconds (and at the end) so that lag shows in standard Kafka tools, but the group's
//! offsets are not rtsa's truth (`start: committed` reads from them on a fresh start).

use super::{OwnedPartitions, Partition, PartitionPosition, Poll, Source, SourceError, SourceKind};
use crate::config::{KafkaConfig, KafkaSourceConfig, KafkaStart};
use crate::error::Error;
use crate::kafka::{Resume, Resuming, client_config};
use rdkafka::ClientContext;
use rdkafka::consumer::CommitMode;
use rdkafka::consumer::base_consumer::PartitionQueue;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

/// Logs client errors, except the end-of-partition events that `stop_at: end` asks for.
#[derive(Default)]
pub struct SourceContext {
    /// Each partition's end (last stable offset, for a read-committed consumer) as librdkafka's
    /// statistics last reported it: what the backlog is measured against.
    ends: std::sync::Mutex<std::collections::HashMap<i32, i64>>,
}

impl ClientContext for SourceContext {
    fn stats(&self, statistics: rdkafka::Statistics) {
        let mut ends = self.ends.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        for topic in statistics.topics.values() {
            for (partition, stats) in &topic.partitions {
                let end = if stats.ls_offset >= 0 { stats.ls_offset } else { stats.hi_offset };
                if *partition >= 0 && end >= 0 {
                    ends.insert(*partition, end);
                }
            }
        }
    }
    fn error(&self, error: KafkaError, reason: &str) {
        let end_of_partition = matches!(error, KafkaError::PartitionEOF(_))
            || error.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::PartitionEOF);
        if !end_of_partition {
            tracing::error!(%error, reason, "kafka source");
        }
    }
}

impl ConsumerContext for SourceContext {}

fn kafka_error(what: String, e: KafkaError) -> SourceError {
    SourceError::io(what, std::io::Error::other(e.to_string()))
}

/// How often each partition commits its position to the consumer group (for lag in standard
/// tools; rtsa's own positions are what the partitions report).
const COMMIT_INTERVAL: Duration = Duration::from_secs(5);
/// How long seeking a resumed partition back may take.
const SEEK_TIMEOUT: Duration = Duration::from_secs(10);

/// The events topic as a source: its partition count is asked of the broker once, at start.
pub struct KafkaSource {
    kafka: KafkaConfig,
    source: KafkaSourceConfig,
    partitions: u32,
}

impl KafkaSource {
    /// Asks the broker how many partitions the topic has (an error when it does not exist).
    pub fn connect(kafka: &KafkaConfig, source: &KafkaSourceConfig) -> Result<KafkaSource, Error> {
        let partitions = crate::kafka::partition_count(kafka, &source.topic)?;
        Ok(KafkaSource { kafka: kafka.clone(), source: source.clone(), partitions })
    }
}

impl Source for KafkaSource {
    fn kind(&self) -> SourceKind {
        SourceKind { name: "kafka", by_line: false }
    }
    fn partition_count(&self) -> u32 {
        self.partitions
    }
    /// A topic of one partition is read on a thread of its own and parsed by every worker.
    fn fed_to_every_worker(&self) -> bool {
        true
    }
    fn open(&self, indexes: &[u32], from: &[(u32, PartitionPosition)]) -> Result<OwnedPartitions, SourceError> {
        open_partitions(&self.kafka, &self.source, indexes, from)
    }
}

/// Opens the partitions `indexes` of the source topic with one consumer, each at its position in
/// `from`, else where `source.start` says.
pub fn open_partitions(
    kafka: &KafkaConfig,
    source: &KafkaSourceConfig,
    indexes: &[u32],
    from: &[(u32, PartitionPosition)],
) -> Result<OwnedPartitions, SourceError> {
    if indexes.is_empty() {
        return Ok(Vec::new());
    }
    let mut config = client_config(kafka);
    config
        .set("group.id", &source.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", if source.stop_at.is_some() { "true" } else { "false" })
        .set("auto.offset.reset", if source.start == KafkaStart::Latest { "latest" } else { "earliest" })
        .set("isolation.level", "read_committed")
        .set("fetch.wait.max.ms", "10")
        .set("queued.min.messages", "200000")
        // Once a partition's queue holds queued.min.messages, librdkafka postpones its next fetch
        // by this long (1 s by default): the workers drained the queue in a fraction of that and
        // then waited, which held a backlog to about 200,000 events a second per partition.
        .set("fetch.queue.backoff.ms", "10")
        .set("fetch.message.max.bytes", "4194304")
        // Partition ends for rtsa_kafka_lag_messages, delivered by the poll the source makes anyway.
        .set("statistics.interval.ms", "1000");
    for (key, value) in &kafka.properties {
        config.set(key, value);
    }
    let consumer: Arc<BaseConsumer<SourceContext>> = Arc::new(
        config
            .create_with_context(SourceContext::default())
            .map_err(|e| kafka_error(format!("kafka {}", kafka.bootstrap_servers), e))?,
    );
    let start = match source.start {
        KafkaStart::Earliest => Offset::Beginning,
        KafkaStart::Latest => Offset::End,
        KafkaStart::Committed => Offset::Stored,
    };
    let mut assignment = TopicPartitionList::new();
    for p in indexes {
        let offset = match from.iter().find(|(index, _)| index == p) {
            Some((_, at)) => Offset::Offset(at.next as i64),
            None => start,
        };
        assignment
            .add_partition_offset(&source.topic, *p as i32, offset)
            .map_err(|e| kafka_error(format!("topic {} partition {p}", source.topic), e))?;
    }
    consumer.assign(&assignment).map_err(|e| kafka_error(format!("topic {}", source.topic), e))?;
    indexes
        .iter()
        .map(|p| {
            let queue =
                consumer.split_partition_queue(&source.topic, *p as i32).ok_or_else(|| SourceError::Unsupported {
                    what: format!("topic {} partition {p}", source.topic),
                    reason: "no such partition".to_owned(),
                })?;
            let partition = KafkaPartition {
                consumer: consumer.clone(),
                queue,
                topic: source.topic.clone(),
                partition: *p as i32,
                stop_at_end: source.stop_at.is_some(),
                next: from.iter().find(|(index, _)| index == p).map(|(_, at)| at.next),
                resuming: from.iter().find(|(index, _)| index == p).map(|(_, at)| Resuming::at(at.next)),
                committed: None,
                last_commit: Instant::now(),
            };
            Ok((*p, Box::new(partition) as Box<dyn Partition>))
        })
        .collect()
}

/// One partition of the events topic.
pub struct KafkaPartition {
    consumer: Arc<BaseConsumer<SourceContext>>,
    queue: PartitionQueue<SourceContext>,
    topic: String,
    partition: i32,
    stop_at_end: bool,
    /// The offset after the last message delivered (unknown until one is, without a position).
    next: Option<u64>,
    /// Opened at a position: until the message there arrives, how far back it was sought.
    resuming: Option<Resuming>,
    committed: Option<u64>,
    last_commit: Instant,
}

impl KafkaPartition {
    /// Commits the position to the consumer group now and then, without waiting for the broker.
    fn commit_now_and_then(&mut self) {
        let Some(next) = self.next.filter(|n| Some(*n) != self.committed) else { return };
        if self.last_commit.elapsed() < COMMIT_INTERVAL {
            return;
        }
        self.last_commit = Instant::now();
        let mut list = TopicPartitionList::new();
        if list.add_partition_offset(&self.topic, self.partition, Offset::Offset(next as i64)).is_ok() {
            match self.consumer.commit(&list, CommitMode::Async) {
                Ok(()) => self.committed = Some(next),
                Err(e) => tracing::debug!(error = %e, "committing a consumer offset"),
            }
        }
    }
}

impl Partition for KafkaPartition {
    fn poll(&mut self, budget: usize, emit: &mut dyn FnMut(&[u8], u64)) -> Result<Poll, SourceError> {
        // Serve the consumer's events (errors, commits); its messages all go to partition queues.
        if let Some(Err(e)) = self.consumer.poll(Duration::ZERO) {
            tracing::warn!(error = %e, "kafka consumer");
        }
        let mut status = Poll::Ready;
        for _ in 0..budget {
            match self.queue.poll(Duration::ZERO) {
                None => {
                    status = Poll::Pending;
                    break;
                }
                Some(Ok(message)) => {
                    let offset = message.offset() as u64;
                    if let Some(resuming) = self.resuming.as_mut() {
                        match resuming.judge(offset) {
                            Resume::Drop => continue,
                            Resume::SeekBack(to) => {
                                tracing::debug!(
                                    partition = self.partition,
                                    resume_at = resuming.at,
                                    got = offset,
                                    to,
                                    "seeking back"
                                );
                                let seek = self.consumer.seek(
                                    &self.topic,
                                    self.partition,
                                    Offset::Offset(to as i64),
                                    SEEK_TIMEOUT,
                                );
                                if let Err(e) = seek {
                                    return Err(kafka_error(
                                        format!("topic {} partition {}: seeking to {to}", self.topic, self.partition),
                                        e,
                                    ));
                                }
                                status = Poll::Pending;
                                break;
                            }
                            Resume::Deliver => {
                                tracing::debug!(
                                    partition = self.partition,
                                    at = resuming.at,
                                    first = offset,
                                    "resumed"
                                );
                                if offset > resuming.at {
                                    tracing::warn!(
                                        partition = self.partition,
                                        from = resuming.at,
                                        to = offset,
                                        "offsets missing from the topic after the checkpoint's position"
                                    );
                                }
                                self.resuming = None;
                            }
                        }
                    }
                    if self.next.is_some_and(|next| offset < next) {
                        // Delivered already (a fetch from before a seek).
                        continue;
                    }
                    emit(message.payload().unwrap_or(&[]), offset);
                    self.next = Some(offset + 1);
                }
                Some(Err(KafkaError::PartitionEOF(_))) => {
                    if self.stop_at_end {
                        status = Poll::Finished;
                        break;
                    }
                }
                Some(Err(e)) => {
                    // Transient broker errors are retried by librdkafka; report and carry on.
                    tracing::warn!(topic = %self.topic, partition = self.partition, error = %e, "kafka fetch");
                    status = Poll::Pending;
                    break;
                }
            }
        }
        if status == Poll::Finished {
            self.last_commit = Instant::now() - COMMIT_INTERVAL;
        }
        self.commit_now_and_then();
        Ok(status)
    }

    fn position(&self) -> PartitionPosition {
        PartitionPosition { next: self.next.unwrap_or(0), lines: 0 }
    }
    fn backlog(&self) -> Option<u64> {
        let ends = self.consumer.context().ends.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let end = *ends.get(&self.partition)?;
        Some(end.saturating_sub(self.next.map_or(0, |n| n as i64)).max(0) as u64)
    }
}

impl Drop for KafkaPartition {
    fn drop(&mut self) {
        // The last position, so that lag reads zero after a finished replay.
        if let Some(next) = self.next.filter(|n| Some(*n) != self.committed) {
            let mut list = TopicPartitionList::new();
            if list.add_partition_offset(&self.topic, self.partition, Offset::Offset(next as i64)).is_ok()
                && let Err(e) = self.consumer.commit(&list, CommitMode::Sync)
            {
                tracing::debug!(error = %e, "committing the last consumer offset");
            }
        }
    }
}
