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
    with_user_settings(config, kafka)
}

/// The user's `kafka.properties` and the SASL password, set last so that they override rtsa's
/// own settings.
fn with_user_settings(mut config: ClientConfig, kafka: &KafkaConfig) -> ClientConfig {
    for (key, value) in &kafka.properties {
        config.set(key, value);
    }
    if let Some(password) = &kafka.sasl_password {
        config.set("sasl.password", password.expose());
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
    with_user_settings(config, kafka)
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
                        "not reachable within {} (kafka.connect_timeout): {e}{}",
                        crate::config::Millis(limit.as_millis() as u64),
                        what_it_may_mean(kafka)
                    ),
                ));
            }
        }
    }
}

/// What a broker that never answers may mean with the security settings of `kafka`: librdkafka
/// reports a refused SASL login, or a TLS handshake that failed, as a transport failure only.
fn what_it_may_mean(kafka: &KafkaConfig) -> String {
    let property = |key: &str| kafka.properties.get(key).map(|v| v.to_ascii_uppercase());
    let protocol = property("security.protocol").unwrap_or_else(|| "PLAINTEXT".to_owned());
    let mut hints = Vec::new();
    if protocol.starts_with("SASL") {
        let mechanism =
            property("sasl.mechanisms").or_else(|| property("sasl.mechanism")).unwrap_or_else(|| "GSSAPI".into());
        let user = kafka.properties.get("sasl.username").map_or("(no sasl.username)", String::as_str);
        let password = match (&kafka.sasl_password_env, &kafka.sasl_password_file) {
            (Some(env), _) => format!("the password from ${env}"),
            (_, Some(file)) => format!("the password in {}", file.display()),
            _ => "no password (kafka.sasl_password_env)".to_owned(),
        };
        hints.push(format!(
            "with {protocol} the brokers close the connection when the login fails: check sasl.username {user}, {password} and the mechanism {mechanism}"
        ));
    }
    if protocol.ends_with("SSL") {
        let ca = kafka.properties.get("ssl.ca.location").map_or("the system's CAs", String::as_str);
        hints.push(format!(
            "a TLS handshake that fails looks the same: check that the brokers' certificate is trusted by {ca} and names the host in bootstrap_servers"
        ));
    }
    if hints.is_empty() { String::new() } else { format!("; {}", hints.join("; ")) }
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
    // Brokers that cannot be reached (or refuse the login) are asked again for
    // kafka.connect_timeout and then named with what it may mean, not left to the admin
    // request's own timeout.
    metadata(kafka, None)?;
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

/// A partition read from a position (a checkpoint's), not yet past it: the Kafka source
/// resuming, and a Kafka sink reading back what it wrote after a checkpoint.
///
/// Kafka brokers answer a fetch at an offset inside a record batch with the whole batch, and the
/// client drops the records before the offset. Some brokers (tansu, the test broker) answer with
/// the next batch instead, so a resumed partition would silently skip the rest of the batch it
/// stopped in. A partition opened at offset N whose first message is after N is therefore sought
/// back (1, 2, 4 … offsets before N) until a fetch starts at or before N; the records before N are
/// dropped. On a broker that behaves, the first message is N and nothing is sought.
#[derive(Clone, Copy, Debug)]
pub struct Resuming {
    /// The position.
    pub at: u64,
    back: u64,
}

/// What a resumed partition does with a message at `offset`.
#[derive(Debug, PartialEq, Eq)]
pub enum Resume {
    /// At or past the position after a fetch that started at or before it: deliver, done resuming.
    Deliver,
    /// Before the position: drop it.
    Drop,
    /// Past the position on the first fetch: seek back to this offset.
    SeekBack(u64),
}

impl Resuming {
    /// A partition opened at `at`.
    pub fn at(at: u64) -> Resuming {
        Resuming { at, back: 0 }
    }

    /// What to do with a message at `offset`.
    pub fn judge(&mut self, offset: u64) -> Resume {
        if offset < self.at {
            // The fetch started at or before the position: what comes from here is contiguous.
            self.back = u64::MAX;
            return Resume::Drop;
        }
        if offset == self.at || self.back == u64::MAX || self.back >= self.at {
            // At the position, or already before it once, or sought back to the beginning (the
            // records in between are gone: retention or compaction).
            return Resume::Deliver;
        }
        self.back = (self.back * 2).max(1);
        Resume::SeekBack(self.at.saturating_sub(self.back))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resumed_partition_seeks_back_until_a_fetch_starts_at_or_before_its_position() {
        // A broker that answers a fetch at 8196 with the batch at 11692.
        let mut r = Resuming::at(8196);
        assert_eq!(r.judge(11692), Resume::SeekBack(8195));
        assert_eq!(r.judge(11692), Resume::SeekBack(8194));
        assert_eq!(r.judge(11692), Resume::SeekBack(8192));
        // Sought to 8192, inside the batch that starts at 5855: that batch comes whole.
        assert_eq!(r.judge(5855), Resume::Drop);
        assert_eq!(r.judge(8195), Resume::Drop);
        assert_eq!(r.judge(8196), Resume::Deliver);
        // A broker that behaves: the first message is the position.
        assert_eq!(Resuming::at(42).judge(42), Resume::Deliver);
        // Records gone from the topic (retention): sought back to the beginning, then delivered.
        let mut gone = Resuming::at(3);
        assert_eq!(gone.judge(10), Resume::SeekBack(2));
        assert_eq!(gone.judge(10), Resume::SeekBack(1));
        assert_eq!(gone.judge(10), Resume::SeekBack(0));
        assert_eq!(gone.judge(10), Resume::Deliver);
    }
}
