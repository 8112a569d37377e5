//! Kafka client settings shared by the source, the sinks and the `produce`/`tail`/`topics`
//! commands (one place that turns the `kafka:` section into librdkafka properties), and the
//! topic administration they need: partition counts, existing topics, creating missing ones.

use crate::config::{Config, KafkaConfig};
use crate::error::Error;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaErrorCode;
use std::collections::BTreeSet;
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
    config.set("compression.type", kafka.compression.as_str());
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

/// The brokers' metadata (of `topic`, or of every topic), asked again with backoff while they
/// cannot be reached, for at most `kafka.connect_timeout`; then a clear error.
fn metadata(kafka: &KafkaConfig, topic: Option<&str>) -> Result<rdkafka::metadata::Metadata, Error> {
    let brokers = &kafka.bootstrap_servers;
    let consumer: BaseConsumer =
        client_config(kafka).create().map_err(|e| Error::kafka(brokers, format!("cannot create a client: {e}")))?;
    let limit = kafka.connect_timeout.as_duration();
    let deadline = std::time::Instant::now() + limit;
    let mut backoff = Duration::from_millis(200);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match consumer.fetch_metadata(topic, left.clamp(Duration::from_millis(100), METADATA_TIMEOUT)) {
            Ok(metadata) => return Ok(metadata),
            Err(e) if std::time::Instant::now() + backoff < deadline => {
                tracing::warn!(%brokers, error = %e, "kafka brokers not reachable yet; retrying");
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
            Err(e) => {
                return Err(Error::kafka(
                    brokers,
                    format!(
                        "not reachable within {} (kafka.connect_timeout): {e}",
                        crate::config::Millis(limit.as_millis() as u64)
                    ),
                ));
            }
        }
    }
}

/// The number of partitions of `topic`, or a readable error.
pub fn partition_count(kafka: &KafkaConfig, topic: &str) -> Result<u32, Error> {
    let brokers = &kafka.bootstrap_servers;
    let metadata = metadata(kafka, Some(topic))?;
    let topic_metadata = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .ok_or_else(|| Error::kafka_user(brokers, format!("topic {topic} does not exist")))?;
    if let Some(error) = topic_metadata.error() {
        return Err(Error::kafka_user(
            brokers,
            format!("topic {topic}: {error:?} (create it with `rtsa topics create`)"),
        ));
    }
    match topic_metadata.partitions().len() {
        0 => Err(Error::kafka_user(brokers, format!("topic {topic} has no partitions"))),
        n => Ok(n as u32),
    }
}

/// The topics that exist on the brokers.
pub fn existing_topics(kafka: &KafkaConfig) -> Result<BTreeSet<String>, Error> {
    let metadata = metadata(kafka, None)?;
    Ok(metadata.topics().iter().filter(|t| t.error().is_none()).map(|t| t.name().to_owned()).collect())
}

/// What creating a topic did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Created {
    /// The topic was created with this many partitions.
    New(String, u32),
    /// The topic existed and was left as it is.
    Existed(String),
}

impl std::fmt::Display for Created {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Created::New(topic, partitions) => write!(f, "created {topic} ({partitions} partitions)"),
            Created::Existed(topic) => write!(f, "exists  {topic} (left as it is)"),
        }
    }
}

/// Creates `topics` with `kafka.partitions` and `kafka.replication_factor`; existing ones are
/// left as they are.
pub fn create_topics(kafka: &KafkaConfig, topics: &[String]) -> Result<Vec<Created>, Error> {
    let brokers = &kafka.bootstrap_servers;
    let admin: AdminClient<DefaultClientContext> =
        client_config(kafka).create().map_err(|e| Error::kafka(brokers, format!("cannot create a client: {e}")))?;
    let partitions = kafka.partitions.get();
    let new: Vec<NewTopic> = topics
        .iter()
        .map(|t| NewTopic::new(t, partitions as i32, TopicReplication::Fixed(kafka.replication_factor.get() as i32)))
        .collect();
    let options = AdminOptions::new()
        .operation_timeout(Some(Duration::from_secs(30)))
        .request_timeout(Some(Duration::from_secs(30)));
    let results = futures_executor::block_on(admin.create_topics(&new, &options))
        .map_err(|e| Error::kafka(brokers, format!("cannot create topics: {e}")))?;
    results
        .into_iter()
        .map(|result| match result {
            Ok(topic) => Ok(Created::New(topic, partitions)),
            Err((topic, RDKafkaErrorCode::TopicAlreadyExists)) => Ok(Created::Existed(topic)),
            Err((topic, code)) => Err(Error::kafka(brokers, format!("cannot create topic {topic}: {code}"))),
        })
        .collect()
}

/// Makes sure every topic the config writes exists before the first record: the missing ones
/// are created (and said so on stderr), or, with `kafka.create_topics: false`, are an error.
pub fn ensure_output_topics(config: &Config) -> Result<(), Error> {
    let wanted = config.output_topics();
    if wanted.is_empty() {
        return Ok(());
    }
    let existing = existing_topics(&config.kafka)?;
    let missing: Vec<String> = wanted.into_iter().filter(|t| !existing.contains(t)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !config.kafka.create_topics {
        return Err(Error::kafka_user(
            &config.kafka.bootstrap_servers,
            format!(
                "output topic{} {} missing (kafka.create_topics is false: create {} with `rtsa topics create`)",
                if missing.len() == 1 { " is" } else { "s are" },
                missing.join(", "),
                if missing.len() == 1 { "it" } else { "them" }
            ),
        ));
    }
    for created in create_topics(&config.kafka, &missing)? {
        if let Created::New(..) = created {
            eprintln!("rtsa: {created}");
        }
    }
    Ok(())
}
