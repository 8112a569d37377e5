//! The YAML configuration: the connectors' sections (source, Kafka, sinks) beside the pipeline
//! description the dataflows build from ([`dataflows::spec`], re-exported here).
//!
//! Loading, environment overrides and validation (every problem at once, with its key path) live
//! in [`load`]; the embedded default pipeline of `rtsa run` without `--config` is [`Config::embedded_default`].

mod load;

pub use dataflows::spec::*;
pub use load::{ConfigErrors, load_default, load_file, load_str};

use serde::{Deserialize, Serialize};
use std::fmt;
use std::num::{NonZeroU32, NonZeroU64};
use std::path::PathBuf;

/// The whole pipeline description.
#[derive(Clone, Debug, Serialize)]
pub struct Config {
    /// Where events come from.
    pub source: SourceConfig,
    /// Connection settings shared by every Kafka source and sink.
    pub kafka: KafkaConfig,
    /// Where metrics, alerts and dead letters go.
    pub sinks: SinksConfig,
    /// Checkpoints (off by default).
    #[serde(default)]
    pub checkpoint: CheckpointConfig,
    /// The HTTP server: `/metrics`, `/health`, the live dashboard.
    #[serde(default)]
    pub http: HttpConfig,
    /// Watermarks, engine limits, aggregations, detector rules and alerting.
    #[serde(flatten)]
    pub pipeline: Pipeline,
}

/// Where events come from (`source.kind`).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SourceConfig {
    /// A JSONL file, one event per line; one partition.
    File(FileSourceConfig),
    /// Standard input, one event per line; one partition.
    Stdin(StdinSourceConfig),
    /// The built-in synthetic event generator.
    Generator(GeneratorConfig),
    /// A Kafka topic; its partitions are spread over the workers.
    Kafka(KafkaSourceConfig),
}

/// `source.kind: kafka`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KafkaSourceConfig {
    /// The events topic.
    #[serde(default = "default_events_topic")]
    pub topic: String,
    /// Consumer group; offsets are committed to it so that lag shows in standard Kafka tools.
    #[serde(default = "default_group_id")]
    pub group_id: String,
    /// Where to start reading.
    #[serde(default)]
    pub start: KafkaStart,
    /// `end`: read to the end of every partition (partition EOF), then finish like a file;
    /// absent: run until stopped.
    #[serde(default)]
    pub stop_at: Option<KafkaStopAt>,
}

/// `source.start`.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum KafkaStart {
    /// The first offset of every partition.
    #[default]
    Earliest,
    /// Only messages produced after the start.
    Latest,
    /// The consumer group's committed offsets (earliest where there are none).
    Committed,
}

/// `source.stop_at`.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum KafkaStopAt {
    /// Stop at the end of every partition.
    End,
}

fn default_events_topic() -> String {
    "events".to_owned()
}
fn default_group_id() -> String {
    "rtsa".to_owned()
}

/// `source.kind: file`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileSourceConfig {
    /// Path of the JSONL file.
    pub path: PathBuf,
}

/// `source.kind: stdin`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StdinSourceConfig {}

/// `source.kind: generator`: deterministic synthetic events (see `sources::generator`).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GeneratorConfig {
    /// Events per second of wall time over all partitions; 0 = as fast as possible.
    #[serde(default = "default_generator_rate")]
    pub rate: u64,
    /// Events in all; 0 = endless.
    #[serde(default)]
    pub count: u64,
    /// Seed of the pseudo-random generator: the same seed gives the same events.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Number of independent partitions (each with its own watermark), spread over the workers.
    #[serde(default = "default_generator_partitions")]
    pub partitions: NonZeroU32,
    /// Event time of the first event, in Unix milliseconds; absent = the wall clock at start.
    #[serde(default)]
    pub start_ms: Option<u64>,
    /// Events per second of event time over all partitions; absent = `rate`, or 10000 when `rate` is 0.
    #[serde(default)]
    pub event_time_rate: Option<u64>,
    /// Number of distinct users (Zipf-distributed activity).
    #[serde(default = "default_users")]
    pub users: NonZeroU64,
    /// Share of events delivered out of order, by up to `max_delay`.
    #[serde(default = "default_out_of_order_fraction")]
    pub out_of_order_fraction: f64,
    /// Largest delay of an out-of-order event; keep it within `watermark.max_out_of_orderness`.
    #[serde(default = "default_max_delay")]
    pub max_delay: Millis,
    /// Share of events delayed by `late_delay`, beyond the watermark, so that they are late.
    #[serde(default = "default_late_fraction")]
    pub late_fraction: f64,
    /// Delay of a late event.
    #[serde(default = "default_late_delay")]
    pub late_delay: Millis,
    /// Inject known incidents at known times after the start (see `sources::generator`).
    #[serde(default)]
    pub incidents: bool,
    /// Every 10 minutes of event time, one event type has 30 s of 30% errors.
    #[serde(default = "default_true")]
    pub error_bursts: bool,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        GeneratorConfig {
            rate: default_generator_rate(),
            count: 0,
            seed: default_seed(),
            partitions: default_generator_partitions(),
            start_ms: None,
            event_time_rate: None,
            users: default_users(),
            out_of_order_fraction: default_out_of_order_fraction(),
            max_delay: default_max_delay(),
            late_fraction: default_late_fraction(),
            late_delay: default_late_delay(),
            incidents: false,
            error_bursts: true,
        }
    }
}

impl GeneratorConfig {
    /// Events per second of event time over all partitions.
    pub fn effective_event_time_rate(&self) -> u64 {
        match self.event_time_rate {
            Some(rate) => rate,
            None if self.rate > 0 => self.rate,
            None => 10_000,
        }
    }
}

fn default_generator_rate() -> u64 {
    1_000
}
fn default_seed() -> u64 {
    7
}
fn default_generator_partitions() -> NonZeroU32 {
    NonZeroU32::new(4).unwrap_or(NonZeroU32::MIN)
}
fn default_users() -> NonZeroU64 {
    NonZeroU64::new(5_000).unwrap_or(NonZeroU64::MIN)
}
fn default_out_of_order_fraction() -> f64 {
    0.01
}
fn default_max_delay() -> Millis {
    Millis(2_000)
}
fn default_late_fraction() -> f64 {
    0.001
}
fn default_late_delay() -> Millis {
    Millis(120_000)
}

/// The `kafka:` section, shared by the Kafka source and sinks (used from the Kafka issue on).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Comma-separated `host:port` list of brokers.
    #[serde(default = "default_bootstrap_servers")]
    pub bootstrap_servers: String,
    /// Partitions of the topics that `rtsa topics create` (and `rtsa run`, for missing output
    /// topics) makes.
    #[serde(default = "default_topic_partitions")]
    pub partitions: NonZeroU32,
    /// Replication factor of the topics rtsa makes.
    #[serde(default = "default_replication_factor")]
    pub replication_factor: NonZeroU32,
    /// Whether `rtsa run` creates the output topics that do not exist yet (else a missing one is
    /// an error at start, before any input is read).
    #[serde(default = "default_true")]
    pub create_topics: bool,
    /// Idempotent producer (no duplicates from retries); needs broker support.
    #[serde(default = "default_true")]
    pub idempotence: bool,
    /// Compression of produced batches: none, gzip, snappy, lz4, zstd.
    #[serde(default)]
    pub compression: Compression,
    /// Extra librdkafka properties for every client (for example `fetch.max.bytes`).
    #[serde(default)]
    pub properties: std::collections::BTreeMap<String, String>,
    /// How long rtsa keeps asking brokers that cannot be reached at start before it gives up
    /// (exit 1).
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: Millis,
    /// Topic of alert records: what an alert Kafka sink without `topic:` writes to.
    #[serde(default = "default_alerts_topic")]
    pub alerts_topic: String,
    /// The environment variable holding the SASL password (`sasl.username` and
    /// `sasl.mechanisms` go in `properties`).
    #[serde(default)]
    pub sasl_password_env: Option<String>,
    /// A file holding the SASL password (one line), instead of `sasl_password_env`.
    #[serde(default)]
    pub sasl_password_file: Option<PathBuf>,
    /// The SASL password, read from `sasl_password_env` or `sasl_password_file` when the config
    /// is loaded; never serialized, printed or logged.
    #[serde(skip)]
    pub sasl_password: Option<Secret>,
}

/// A secret read from the environment or a file: shown as `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(secret: String) -> Secret {
        Secret(secret)
    }
    /// The secret itself, for the client that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            bootstrap_servers: default_bootstrap_servers(),
            partitions: default_topic_partitions(),
            replication_factor: default_replication_factor(),
            idempotence: true,
            create_topics: true,
            connect_timeout: default_connect_timeout(),
            compression: Compression::default(),
            properties: Default::default(),
            alerts_topic: default_alerts_topic(),
            sasl_password_env: None,
            sasl_password_file: None,
            sasl_password: None,
        }
    }
}

fn default_topic_partitions() -> NonZeroU32 {
    NonZeroU32::new(4).unwrap_or(NonZeroU32::MIN)
}
fn default_replication_factor() -> NonZeroU32 {
    NonZeroU32::MIN
}
fn default_true() -> bool {
    true
}
fn default_connect_timeout() -> Millis {
    Millis(30_000)
}

/// `kafka.compression`: how produced batches are compressed.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    /// Not compressed.
    None,
    /// gzip.
    Gzip,
    /// Snappy.
    Snappy,
    /// LZ4 (fast, the default).
    #[default]
    Lz4,
    /// Zstandard.
    Zstd,
}

impl Compression {
    /// librdkafka's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}
fn default_alerts_topic() -> String {
    "alerts".to_owned()
}

fn default_bootstrap_servers() -> String {
    "127.0.0.1:9092".to_owned()
}

/// The `sinks:` section.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SinksConfig {
    /// Sinks of metrics records.
    #[serde(default = "default_metrics_sinks")]
    pub metrics: Vec<SinkConfig>,
    /// Sinks of alert records.
    #[serde(default)]
    pub alerts: Vec<SinkConfig>,
    /// Sink of invalid and late events.
    #[serde(default = "default_dead_letter_sink")]
    pub dead_letter: SinkConfig,
}

impl Default for SinksConfig {
    fn default() -> Self {
        SinksConfig { metrics: default_metrics_sinks(), alerts: Vec::new(), dead_letter: default_dead_letter_sink() }
    }
}

fn default_metrics_sinks() -> Vec<SinkConfig> {
    vec![SinkConfig::Console(ConsoleSinkConfig::default())]
}
fn default_dead_letter_sink() -> SinkConfig {
    SinkConfig::Jsonl(JsonlSinkConfig { path: PathBuf::from("rtsa-out/dead_letter.jsonl") })
}

/// One sink (`kind: jsonl | console`).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SinkConfig {
    /// Appends one JSON object per line to a file.
    Jsonl(JsonlSinkConfig),
    /// Prints one readable line per record to standard output.
    Console(ConsoleSinkConfig),
    /// Produces one message per record to a Kafka topic.
    Kafka(KafkaSinkConfig),
    /// Alerts only: `XADD` to a capped stream and `PUBLISH` on a channel.
    Redis(RedisSinkConfig),
    /// Alerts only: HTTP POST of each alert's JSON.
    Webhook(WebhookSinkConfig),
    /// Metrics records, alerts and the engine's counters as InfluxDB points.
    Influxdb(InfluxSinkConfig),
}

/// `kind: influxdb`: InfluxDB 1.x (`api: v1`) or 2.x (`api: v2`, or anything that takes its write
/// API, such as VictoriaMetrics).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct InfluxSinkConfig {
    /// Which write API.
    pub api: InfluxApi,
    /// The server, `http://host:port`.
    pub url: String,
    /// v1: the database (default `rtsa`).
    #[serde(default)]
    pub database: Option<String>,
    /// v1: the user, if the server has authentication on.
    #[serde(default)]
    pub username: Option<String>,
    /// v1: the environment variable holding the user's password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// v2: the organisation (default `rtsa`).
    #[serde(default)]
    pub org: Option<String>,
    /// v2: the bucket (default `rtsa`).
    #[serde(default)]
    pub bucket: Option<String>,
    /// v2: the environment variable holding the API token (`Authorization: Token …`).
    #[serde(default)]
    pub token_env: Option<String>,
    /// Measurement of metrics records.
    #[serde(default = "default_measurement")]
    pub measurement: String,
    /// Measurement of alerts (when the sink is an alert channel).
    #[serde(default = "default_alerts_measurement")]
    pub alerts_measurement: String,
    /// Whether a metrics sink also writes the engine's counters (`rtsa_engine`) every
    /// `engine.metrics_interval` and at the end.
    #[serde(default = "default_true")]
    pub engine_metrics: bool,
    /// Lines per write.
    #[serde(default = "default_influx_batch")]
    pub batch_size: std::num::NonZeroUsize,
    /// The longest a line waits for its batch to fill.
    #[serde(default = "default_influx_linger")]
    pub linger: Millis,
    /// Timeout of one write.
    #[serde(default = "default_webhook_timeout")]
    pub timeout: Millis,
    /// For an `https://` URL: a CA certificate (PEM) to trust besides the system's roots.
    #[serde(default)]
    pub tls_ca_file: Option<PathBuf>,
}

/// `api` of an InfluxDB sink.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum InfluxApi {
    /// `/write?db=…`.
    V1,
    /// `/api/v2/write?org=…&bucket=…`.
    V2,
}

impl InfluxApi {
    /// As written in configs.
    pub fn as_str(self) -> &'static str {
        match self {
            InfluxApi::V1 => "v1",
            InfluxApi::V2 => "v2",
        }
    }
}

fn default_measurement() -> String {
    "rtsa_metrics".to_owned()
}
fn default_alerts_measurement() -> String {
    "rtsa_alerts".to_owned()
}
fn default_influx_batch() -> std::num::NonZeroUsize {
    std::num::NonZeroUsize::new(5_000).unwrap_or(std::num::NonZeroUsize::MIN)
}
fn default_influx_linger() -> Millis {
    Millis(1_000)
}

/// `kind: redis`: as an alert channel, a capped stream and a pub/sub channel; as a metrics sink,
/// the latest window of every (aggregation, key) as a hash (CONTRACT 4.2).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RedisSinkConfig {
    /// `redis://host:port[/db]`; default: `$RTSA_REDIS_URL`, else `redis://127.0.0.1:6379`.
    #[serde(default)]
    pub url: Option<String>,
    /// Metrics: hashes live at `{key_prefix}:metrics:{aggregation}:{key}`.
    #[serde(default = "default_key_prefix")]
    pub key_prefix: String,
    /// Metrics: each hash expires this long after its last write.
    #[serde(default = "default_redis_ttl")]
    pub ttl: Millis,
    /// Stream alerts are appended to.
    #[serde(default = "default_redis_stream")]
    pub stream: String,
    /// Pub/sub channel alerts are published on.
    #[serde(default = "default_redis_stream")]
    pub channel: String,
    /// Approximate cap of the stream's length.
    #[serde(default = "default_redis_maxlen")]
    pub maxlen: u64,
    /// How long an alert id is remembered, so that a replay does not add it again.
    #[serde(default = "default_redis_dedup_ttl")]
    pub dedup_ttl: Millis,
    /// Environment variable holding the password, if any (the user, for an ACL user, goes in
    /// the URL: `redis://alice@host:6379`).
    #[serde(default)]
    pub password_env: Option<String>,
    /// With a `rediss://` URL: the CA certificate (PEM) the server's certificate must chain to
    /// (default: the system's roots).
    #[serde(default)]
    pub tls_ca_file: Option<PathBuf>,
    /// Alerts waiting for delivery before new ones are dropped (and counted).
    #[serde(default = "default_channel_queue")]
    pub queue: usize,
}

/// `kind: webhook` (alert sinks).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WebhookSinkConfig {
    /// The URL alerts are POSTed to.
    pub url: String,
    /// Timeout of one attempt.
    #[serde(default = "default_webhook_timeout")]
    pub timeout: Millis,
    /// Attempts after the first one, with exponential backoff.
    #[serde(default = "default_webhook_retries")]
    pub retries: u32,
    /// Wait before the first retry (doubled for each next one, at most 30 s).
    #[serde(default = "default_webhook_backoff")]
    pub backoff: Millis,
    /// Environment variable holding the HMAC-SHA256 secret; each request then carries
    /// `X-Rtsa-Signature: sha256=<hex of HMAC(body)>`.
    #[serde(default)]
    pub secret_env: Option<String>,
    /// File holding the secret (instead of `secret_env`).
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// Alerts waiting for delivery before new ones are dropped (and counted).
    #[serde(default = "default_channel_queue")]
    pub queue: usize,
    /// For an `https://` URL: a CA certificate (PEM) to trust besides the system's roots.
    #[serde(default)]
    pub tls_ca_file: Option<PathBuf>,
}

fn default_key_prefix() -> String {
    "rtsa".to_owned()
}
fn default_redis_ttl() -> Millis {
    Millis(3_600_000)
}
fn default_redis_stream() -> String {
    "rtsa:alerts".to_owned()
}
fn default_redis_maxlen() -> u64 {
    100_000
}
fn default_redis_dedup_ttl() -> Millis {
    Millis(86_400_000)
}
fn default_channel_queue() -> usize {
    10_000
}
fn default_webhook_timeout() -> Millis {
    Millis(5_000)
}
fn default_webhook_retries() -> u32 {
    5
}
fn default_webhook_backoff() -> Millis {
    Millis(200)
}

impl SinkConfig {
    /// The sink's kind, as routes name channels.
    pub fn kind(&self) -> SinkKind {
        match self {
            SinkConfig::Jsonl(_) => SinkKind::Jsonl,
            SinkConfig::Console(_) => SinkKind::Console,
            SinkConfig::Kafka(_) => SinkKind::Kafka,
            SinkConfig::Redis(_) => SinkKind::Redis,
            SinkConfig::Webhook(_) => SinkKind::Webhook,
            SinkConfig::Influxdb(_) => SinkKind::Influxdb,
        }
    }

    /// Whether a sink of this kind takes the records of `role`.
    pub fn takes(&self, role: SinkRole) -> bool {
        match self {
            SinkConfig::Jsonl(_) | SinkConfig::Console(_) | SinkConfig::Kafka(_) => true,
            SinkConfig::Redis(_) | SinkConfig::Influxdb(_) => role != SinkRole::DeadLetters,
            SinkConfig::Webhook(_) => role == SinkRole::Alerts,
        }
    }
}

/// What a sink receives: which list of `sinks:` it is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SinkRole {
    /// `sinks.metrics`.
    Metrics,
    /// `sinks.alerts`.
    Alerts,
    /// `sinks.dead_letter`.
    DeadLetters,
}

impl SinkRole {
    /// The topic a Kafka sink of this role writes when it names none: the one place the
    /// defaults live (`rtsa topics create` and the sinks both ask here).
    pub fn default_topic(self, kafka: &KafkaConfig) -> &str {
        match self {
            SinkRole::Metrics => "metrics",
            SinkRole::Alerts => &kafka.alerts_topic,
            SinkRole::DeadLetters => "events-dead-letter",
        }
    }
}

/// `kind: kafka`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KafkaSinkConfig {
    /// The topic; absent: `metrics` for metrics, `kafka.alerts_topic` for alerts,
    /// `events-dead-letter` for dead letters ([`SinkRole::default_topic`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
}

/// `kind: jsonl`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct JsonlSinkConfig {
    /// File to append to; its folder is created when missing.
    pub path: PathBuf,
}

/// `kind: console`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConsoleSinkConfig {
    /// Print raw JSON instead of the readable line.
    #[serde(default)]
    pub json: bool,
    /// Metrics of only these aggregations (by name); empty = all.
    #[serde(default)]
    pub aggregations: Vec<String>,
}

impl fmt::Display for SinkConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SinkConfig::Jsonl(c) => write!(f, "jsonl {}", c.path.display()),
            SinkConfig::Kafka(c) => write!(f, "kafka topic {}", c.topic.as_deref().unwrap_or("(the default)")),
            SinkConfig::Redis(c) => write!(f, "redis stream {} and channel {}", c.stream, c.channel),
            SinkConfig::Webhook(c) => write!(f, "webhook {}", c.url),
            SinkConfig::Influxdb(c) => write!(f, "influxdb {} ({})", c.url, c.api.as_str()),
            SinkConfig::Console(c) => {
                write!(f, "console{}", if c.json { " (json)" } else { "" })?;
                if !c.aggregations.is_empty() {
                    write!(f, " of {}", c.aggregations.join(", "))?;
                }
                Ok(())
            }
        }
    }
}

impl Config {
    /// Every sink with its role and its key path (`sinks.metrics[1]`).
    pub fn sinks(&self) -> impl Iterator<Item = (SinkRole, String, &SinkConfig)> {
        let s = &self.sinks;
        let metrics = s.metrics.iter().enumerate().map(|(i, k)| (SinkRole::Metrics, format!("sinks.metrics[{i}]"), k));
        let alerts = s.alerts.iter().enumerate().map(|(i, k)| (SinkRole::Alerts, format!("sinks.alerts[{i}]"), k));
        let dead = std::iter::once((SinkRole::DeadLetters, "sinks.dead_letter".to_owned(), &s.dead_letter));
        metrics.chain(alerts).chain(dead)
    }

    /// The topic a Kafka sink of `role` writes.
    pub fn topic_of(&self, role: SinkRole, sink: &KafkaSinkConfig) -> String {
        sink.topic.clone().unwrap_or_else(|| role.default_topic(&self.kafka).to_owned())
    }

    /// The topics the config's Kafka sinks write.
    pub fn output_topics(&self) -> Vec<String> {
        let mut topics: Vec<String> = self
            .sinks()
            .filter_map(|(role, _, sink)| match sink {
                SinkConfig::Kafka(k) => Some(self.topic_of(role, k)),
                _ => None,
            })
            .collect();
        topics.sort();
        topics.dedup();
        topics
    }

    /// The pipeline of `rtsa run` without `--config`: an endless generator at a modest rate,
    /// the four default aggregations, console and JSONL output under `./rtsa-out/`.
    pub fn embedded_default() -> Config {
        let minute = Millis(60_000);
        let aggregation = |name: &str, window, group_by| AggregationConfig { name: name.to_owned(), window, group_by };
        let jsonl = |file: &str| SinkConfig::Jsonl(JsonlSinkConfig { path: PathBuf::from("rtsa-out").join(file) });
        let pipeline = Pipeline {
            watermark: WatermarkConfig::default(),
            engine: EngineConfig::default(),
            aggregations: vec![
                aggregation("by_type_1m", WindowConfig::Tumbling { size: minute }, GroupBy::EventType),
                aggregation(
                    "by_type_5m_sliding",
                    WindowConfig::Sliding { size: Millis(300_000), slide: minute },
                    GroupBy::EventType,
                ),
                aggregation("by_user_1m", WindowConfig::Tumbling { size: minute }, GroupBy::UserId),
                aggregation("by_user_sessions", WindowConfig::Session { gap: Millis(30_000) }, GroupBy::UserId),
            ],
            anomalies: Vec::new(),
            alerts: AlertsConfig {
                conditions: Some(SeedConditions { error_rate_threshold: Some(5.0), latency_threshold: Some(2_000.0) }),
                severity_levels: [(Severity::Critical, SeedLevels { error_rate: Some(20.0), latency: Some(5_000.0) })]
                    .into_iter()
                    .collect(),
                ..AlertsConfig::default()
            },
        };
        Config {
            source: SourceConfig::Generator(GeneratorConfig::default()),
            kafka: KafkaConfig::default(),
            sinks: SinksConfig {
                metrics: vec![
                    SinkConfig::Console(ConsoleSinkConfig {
                        json: false,
                        aggregations: vec!["by_type_1m".to_owned(), "by_type_5m_sliding".to_owned()],
                    }),
                    jsonl("metrics.jsonl"),
                ],
                alerts: vec![SinkConfig::Console(ConsoleSinkConfig::default()), jsonl("alerts.jsonl")],
                dead_letter: jsonl("dead_letter.jsonl"),
            },
            checkpoint: CheckpointConfig::default(),
            http: HttpConfig::default(),
            pipeline,
        }
    }
}

/// `http:` (CONTRACT 6 and 10): one server per process.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// `host:port` to listen on (`127.0.0.1:9898`), or `off`. With several processes, process
    /// I listens on port + I.
    #[serde(default)]
    pub listen: HttpListen,
    /// The environment variable holding a bearer token that every request must carry
    /// (`Authorization: Bearer …`, or `?token=…` for the page); required when `listen` is not a
    /// loopback address.
    #[serde(default)]
    pub token_env: Option<String>,
}

/// `http.listen`: an address, or `off`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpListen {
    /// No HTTP server.
    Off,
    /// Listen here.
    At(std::net::SocketAddr),
}

impl Default for HttpListen {
    fn default() -> Self {
        HttpListen::At(std::net::SocketAddr::from(([127, 0, 0, 1], 9898)))
    }
}

impl HttpListen {
    /// The address process `process` of a cluster listens on (port + process), if any.
    pub fn for_process(self, process: usize) -> Option<std::net::SocketAddr> {
        match self {
            HttpListen::Off => None,
            HttpListen::At(mut address) if address.port() != 0 => {
                address.set_port(address.port().saturating_add(process as u16));
                Some(address)
            }
            HttpListen::At(address) => Some(address),
        }
    }
}

impl fmt::Display for HttpListen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpListen::Off => f.write_str("off"),
            HttpListen::At(address) => write!(f, "{address}"),
        }
    }
}

impl Serialize for HttpListen {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HttpListen {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        if text.trim() == "off" {
            return Ok(HttpListen::Off);
        }
        let text = text.trim().replace("localhost:", "127.0.0.1:");
        text.parse().map(HttpListen::At).map_err(|_| {
            serde::de::Error::custom(format!("{text:?} is not an address: write host:port (127.0.0.1:9898) or off"))
        })
    }
}

/// `checkpoint.store`.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CheckpointStoreKind {
    /// No checkpoints: a restart starts over.
    #[default]
    None,
    /// Checkpoints in Redis.
    Redis,
}

/// `checkpoint:` (CONTRACT 7 and 8).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CheckpointConfig {
    /// Where checkpoints go.
    #[serde(default)]
    pub store: CheckpointStoreKind,
    /// `redis://host:port[/db]` or `rediss://…`; default: `$RTSA_REDIS_URL`, else
    /// `redis://127.0.0.1:6379`.
    #[serde(default)]
    pub url: Option<String>,
    /// Environment variable holding the Redis password, if any.
    #[serde(default)]
    pub password_env: Option<String>,
    /// With `rediss://`: the CA certificate (PEM) the server's certificate must chain to.
    #[serde(default)]
    pub tls_ca_file: Option<PathBuf>,
    /// Wall time between checkpoints.
    #[serde(default = "default_checkpoint_interval")]
    pub interval: Millis,
    /// The pipeline's name: the prefix of its keys (one name per pipeline).
    #[serde(default = "default_checkpoint_name")]
    pub name: String,
    /// How long checkpoint keys live without being replaced (a safety net: an abandoned
    /// pipeline's state expires).
    #[serde(default = "default_checkpoint_ttl")]
    pub ttl: Millis,
    /// At most how many epochs ahead of the most advanced source the checkpoint gate is kept (it
    /// follows the sources' pace: one epoch on live data, so a checkpoint or a stop waits at most
    /// about an epoch for the sources to reach it; wider on a fast replay).
    #[serde(default = "default_checkpoint_lookahead")]
    pub lookahead_epochs: NonZeroU64,
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        CheckpointConfig {
            store: CheckpointStoreKind::None,
            url: None,
            password_env: None,
            tls_ca_file: None,
            interval: default_checkpoint_interval(),
            name: default_checkpoint_name(),
            ttl: default_checkpoint_ttl(),
            lookahead_epochs: default_checkpoint_lookahead(),
        }
    }
}

fn default_checkpoint_interval() -> Millis {
    Millis(5_000)
}
fn default_checkpoint_name() -> String {
    "rtsa".to_owned()
}
fn default_checkpoint_ttl() -> Millis {
    Millis(7 * 86_400_000)
}
fn default_checkpoint_lookahead() -> NonZeroU64 {
    NonZeroU64::new(120).unwrap_or(NonZeroU64::MIN)
}
