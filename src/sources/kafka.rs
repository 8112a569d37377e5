//! The Kafka source: one consumer per worker, assigned the partitions the worker owns
//! (`partition % peers == worker`, not consumer-group balancing), each partition read through
//! its own queue so that it keeps its own watermark. Offsets are also stored to the consumer
//! group (auto-committed) so that lag shows in standard Kafka tools.

use super::{OwnedPartitions, Partition, Poll, SourceError};
use crate::config::{KafkaConfig, KafkaSourceConfig, KafkaStart};
use crate::kafka::client_config;
use rdkafka::ClientContext;
use rdkafka::consumer::base_consumer::PartitionQueue;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use std::sync::Arc;
use std::time::Duration;

/// Logs client errors, except the end-of-partition events that `stop_at: end` asks for.
pub struct SourceContext;

impl ClientContext for SourceContext {
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
    SourceError::Io { what, source: std::io::Error::other(e.to_string()) }
}

/// Opens the partitions `indexes` of the source topic with one consumer.
pub fn open_partitions(
    kafka: &KafkaConfig,
    source: &KafkaSourceConfig,
    indexes: &[u32],
) -> Result<OwnedPartitions, SourceError> {
    if indexes.is_empty() {
        return Ok(Vec::new());
    }
    let mut config = client_config(kafka);
    config
        .set("group.id", &source.group_id)
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "5000")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", if source.stop_at.is_some() { "true" } else { "false" })
        .set("auto.offset.reset", if source.start == KafkaStart::Latest { "latest" } else { "earliest" })
        .set("isolation.level", "read_committed")
        .set("fetch.wait.max.ms", "10")
        .set("queued.min.messages", "200000")
        .set("fetch.message.max.bytes", "4194304");
    for (key, value) in &kafka.properties {
        config.set(key, value);
    }
    let consumer: Arc<BaseConsumer<SourceContext>> = Arc::new(
        config
            .create_with_context(SourceContext)
            .map_err(|e| kafka_error(format!("kafka {}", kafka.bootstrap_servers), e))?,
    );
    let offset = match source.start {
        KafkaStart::Earliest => Offset::Beginning,
        KafkaStart::Latest => Offset::End,
        KafkaStart::Committed => Offset::Stored,
    };
    let mut assignment = TopicPartitionList::new();
    for p in indexes {
        assignment
            .add_partition_offset(&source.topic, *p as i32, offset)
            .map_err(|e| kafka_error(format!("topic {} partition {p}", source.topic), e))?;
    }
    consumer.assign(&assignment).map_err(|e| kafka_error(format!("topic {}", source.topic), e))?;
    indexes
        .iter()
        .map(|p| {
            let queue = consumer.split_partition_queue(&source.topic, *p as i32).ok_or_else(|| SourceError::Io {
                what: format!("topic {} partition {p}", source.topic),
                source: std::io::Error::other("no such partition"),
            })?;
            let partition = KafkaPartition {
                consumer: consumer.clone(),
                queue,
                topic: source.topic.clone(),
                partition: *p as i32,
                stop_at_end: source.stop_at.is_some(),
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
}

impl Partition for KafkaPartition {
    fn poll(&mut self, budget: usize, emit: &mut dyn FnMut(&[u8], u64)) -> Result<Poll, SourceError> {
        // Serve the consumer's events (errors, commits); its messages all go to partition queues.
        if let Some(Err(e)) = self.consumer.poll(Duration::ZERO) {
            tracing::warn!(error = %e, "kafka consumer");
        }
        let mut last = None;
        let mut status = Poll::Ready;
        for _ in 0..budget {
            match self.queue.poll(Duration::ZERO) {
                None => {
                    status = Poll::Pending;
                    break;
                }
                Some(Ok(message)) => {
                    emit(message.payload().unwrap_or(&[]), message.offset() as u64);
                    last = Some(message.offset());
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
        // librdkafka's rd_kafka_offset_store commits the stored offset + 1: store the last one read.
        if let Some(offset) = last
            && let Err(e) = self.consumer.store_offset(&self.topic, self.partition, offset)
        {
            tracing::debug!(error = %e, "storing a consumer offset");
        }
        Ok(status)
    }
}
