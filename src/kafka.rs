//! Kafka client settings shared by the source, the sinks and the `produce`/`tail`/`topics`
//! commands: one place that turns the `kafka:` section into librdkafka properties.

use crate::config::KafkaConfig;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use std::time::Duration;

/// How long metadata requests may take before the broker is reported unreachable.
pub const METADATA_TIMEOUT: Duration = Duration::from_secs(15);

/// The base client config: brokers plus the user's extra properties.
pub fn client_config(kafka: &KafkaConfig) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &kafka.bootstrap_servers);
    config.set("client.id", "rtsa");
    for (key, value) in &kafka.properties {
        config.set(key, value);
    }
    config
}

/// Producer settings: acknowledged by all replicas, retried without limit (nothing is dropped
/// while the broker is away), compressed and batched.
pub fn producer_config(kafka: &KafkaConfig) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &kafka.bootstrap_servers);
    config.set("client.id", "rtsa");
    config.set("acks", "all");
    config.set("enable.idempotence", if kafka.idempotence { "true" } else { "false" });
    config.set("compression.type", &kafka.compression);
    config.set("linger.ms", "20");
    config.set("batch.num.messages", "10000");
    config.set("queue.buffering.max.messages", "1000000");
    config.set("message.timeout.ms", "0");
    config.set("retry.backoff.ms", "200");
    config.set("retry.backoff.max.ms", "5000");
    for (key, value) in &kafka.properties {
        config.set(key, value);
    }
    config
}

/// The number of partitions of `topic`, or a readable error.
pub fn partition_count(kafka: &KafkaConfig, topic: &str) -> Result<u32, String> {
    let consumer: BaseConsumer = client_config(kafka)
        .create()
        .map_err(|e| format!("kafka {}: cannot create a client: {e}", kafka.bootstrap_servers))?;
    let metadata = consumer
        .fetch_metadata(Some(topic), METADATA_TIMEOUT)
        .map_err(|e| format!("kafka {}: cannot read metadata of topic {topic}: {e}", kafka.bootstrap_servers))?;
    let topic_metadata = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .ok_or_else(|| format!("kafka {}: topic {topic} does not exist", kafka.bootstrap_servers))?;
    if let Some(error) = topic_metadata.error() {
        return Err(format!(
            "kafka {}: topic {topic}: {:?} (create it with `rtsa topics create`)",
            kafka.bootstrap_servers, error
        ));
    }
    match topic_metadata.partitions().len() {
        0 => Err(format!("kafka {}: topic {topic} has no partitions", kafka.bootstrap_servers)),
        n => Ok(n as u32),
    }
}
