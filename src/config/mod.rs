//! The YAML configuration: serde structs with documented fields and named defaults.
//!
//! Loading, environment overrides and validation (every problem at once, with its key path) live
//! in [`load`]; the embedded default pipeline of `rtsa run` without `--config` is [`Config::embedded_default`].

mod anomalies;
mod duration;
mod load;

pub use anomalies::{
    AlertsConfig, AnomalyConfig, Direction, EventRule, Levels, PatternRule, PatternStep, RareSequenceRule, RouteConfig,
    SeedConditions, SeedLevels, Severity, ThresholdRule, ZscoreRule,
};
pub use duration::Millis;
pub use load::{ConfigErrors, METRICS, load_default, load_file, load_str};

use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::PathBuf;

/// The whole pipeline description.
#[derive(Clone, Debug, Serialize)]
pub struct Config {
    /// Where events come from.
    pub source: SourceConfig,
    /// Connection settings shared by every Kafka source and sink.
    pub kafka: KafkaConfig,
    /// Event-time progress: out-of-orderness, idleness and the epoch granularity.
    pub watermark: WatermarkConfig,
    /// Run-time limits of the engine.
    pub engine: EngineConfig,
    /// The windowed aggregations; each yields metrics records named after it.
    pub aggregations: Vec<AggregationConfig>,
    /// Where metrics, alerts and dead letters go.
    pub sinks: SinksConfig,
    /// Detector rules.
    pub anomalies: Vec<AnomalyConfig>,
    /// Alert conditions of the seed's shape, routes and the default cooldown.
    pub alerts: AlertsConfig,
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
fn default_metrics_topic() -> String {
    "metrics".to_owned()
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
    pub partitions: u32,
    /// Event time of the first event, in Unix milliseconds; absent = the wall clock at start.
    #[serde(default)]
    pub start_ms: Option<u64>,
    /// Events per second of event time over all partitions; absent = `rate`, or 10000 when `rate` is 0.
    #[serde(default)]
    pub event_time_rate: Option<u64>,
    /// Number of distinct users (Zipf-distributed activity).
    #[serde(default = "default_users")]
    pub users: u64,
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
fn default_generator_partitions() -> u32 {
    4
}
fn default_users() -> u64 {
    5_000
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
    /// Partitions of the topics that `rtsa topics create` makes.
    #[serde(default = "default_topic_partitions")]
    pub partitions: u32,
    /// Replication factor of the topics that `rtsa topics create` makes.
    #[serde(default = "default_replication_factor")]
    pub replication_factor: u32,
    /// Idempotent producer (no duplicates from retries); needs broker support.
    #[serde(default = "default_true")]
    pub idempotence: bool,
    /// Compression of produced batches: none, gzip, snappy, lz4, zstd.
    #[serde(default = "default_compression")]
    pub compression: String,
    /// Extra librdkafka properties for every client (for example `fetch.max.bytes`).
    #[serde(default)]
    pub properties: std::collections::BTreeMap<String, String>,
    /// Topic of alert records (used by `rtsa topics create`).
    #[serde(default = "default_alerts_topic")]
    pub alerts_topic: String,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            bootstrap_servers: default_bootstrap_servers(),
            partitions: default_topic_partitions(),
            replication_factor: default_replication_factor(),
            idempotence: true,
            compression: default_compression(),
            properties: Default::default(),
            alerts_topic: default_alerts_topic(),
        }
    }
}

fn default_topic_partitions() -> u32 {
    4
}
fn default_replication_factor() -> u32 {
    1
}
fn default_true() -> bool {
    true
}
fn default_compression() -> String {
    "lz4".to_owned()
}
fn default_alerts_topic() -> String {
    "alerts".to_owned()
}

fn default_bootstrap_servers() -> String {
    "127.0.0.1:9092".to_owned()
}

/// The `watermark:` section.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WatermarkConfig {
    /// How far behind the largest timestamp seen a partition's watermark trails.
    #[serde(default = "default_max_out_of_orderness")]
    pub max_out_of_orderness: Millis,
    /// Wall time after which a partition that delivers nothing stops holding the watermark back.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: Millis,
    /// Granularity of the engine's timely timestamps; window sizes and slides must be multiples.
    #[serde(default = "default_epoch")]
    pub epoch: Millis,
}

impl Default for WatermarkConfig {
    fn default() -> Self {
        WatermarkConfig {
            max_out_of_orderness: default_max_out_of_orderness(),
            idle_timeout: default_idle_timeout(),
            epoch: default_epoch(),
        }
    }
}

fn default_max_out_of_orderness() -> Millis {
    Millis(5_000)
}
fn default_idle_timeout() -> Millis {
    Millis(10_000)
}
fn default_epoch() -> Millis {
    Millis(1_000)
}

/// The `engine:` section: run-time limits.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EngineConfig {
    /// Largest accepted event in bytes; a longer one goes to the dead-letter sink as `too_large`.
    #[serde(default = "default_max_event_bytes")]
    pub max_event_bytes: usize,
    /// Most events a source reads in one scheduling step before yielding to other operators.
    #[serde(default = "default_max_events_per_step")]
    pub max_events_per_step: usize,
    /// How many epochs a source may read ahead of what the sinks have written (backpressure).
    #[serde(default = "default_max_inflight_epochs")]
    pub max_inflight_epochs: u64,
    /// Pin each worker thread to its own core (worker `i` to core `i mod cores`) when a process
    /// has no more workers than cores: otherwise the kernel tends to wake a worker on the core of
    /// the worker that woke it, and the two take turns instead of running side by side.
    #[serde(default = "default_pin_workers")]
    pub pin_workers: bool,
    /// How often `rtsa run` prints a status line to stderr (0: never).
    #[serde(default = "default_status_interval")]
    pub status_interval: Millis,
    /// When workers tell each other their progress.
    #[serde(default)]
    pub progress: ProgressMode,
}

/// `engine.progress`: when timely workers exchange progress.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ProgressMode {
    /// After every step: the lowest latency (window alerts wait for no one), a message per step
    /// per worker — the right choice up to a few dozen workers.
    #[default]
    Eager,
    /// Only when a worker is the last holder of a timestamp: fewer messages for large clusters,
    /// at the price of a step or more of latency whenever all workers release the same time.
    Demand,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            max_event_bytes: default_max_event_bytes(),
            max_events_per_step: default_max_events_per_step(),
            max_inflight_epochs: default_max_inflight_epochs(),
            pin_workers: default_pin_workers(),
            status_interval: default_status_interval(),
            progress: ProgressMode::default(),
        }
    }
}

fn default_max_event_bytes() -> usize {
    64 * 1024
}
fn default_max_events_per_step() -> usize {
    4_096
}
fn default_max_inflight_epochs() -> u64 {
    120
}
fn default_pin_workers() -> bool {
    true
}
fn default_status_interval() -> Millis {
    Millis(30_000)
}

/// One aggregation (`aggregations[i]`).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AggregationConfig {
    /// Name of the aggregation; it names its metrics records.
    pub name: String,
    /// The window: tumbling, sliding or session.
    pub window: WindowConfig,
    /// The field events are grouped by.
    #[serde(default)]
    pub group_by: GroupBy,
}

/// `aggregations[i].window`.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum WindowConfig {
    /// `[k*size, (k+1)*size)`.
    Tumbling {
        /// Window length.
        size: Millis,
    },
    /// `[k*slide, k*slide + size)`; `size` must be a multiple of `slide`.
    Sliding {
        /// Window length.
        size: Millis,
        /// Distance between window starts.
        slide: Millis,
    },
    /// Per key, a maximal run of events whose consecutive timestamps differ by less than `gap`.
    Session {
        /// Inactivity gap that ends a session.
        gap: Millis,
    },
}

impl WindowConfig {
    /// The contract's name of the window kind, as written in metrics records.
    pub fn kind_name(&self) -> &'static str {
        match self {
            WindowConfig::Tumbling { .. } => "tumbling",
            WindowConfig::Sliding { .. } => "sliding",
            WindowConfig::Session { .. } => "session",
        }
    }
}

impl fmt::Display for WindowConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WindowConfig::Tumbling { size } => write!(f, "tumbling {size}"),
            WindowConfig::Sliding { size, slide } => write!(f, "sliding {size} every {slide}"),
            WindowConfig::Session { gap } => write!(f, "session, gap {gap}"),
        }
    }
}

/// The grouping field of an aggregation.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    /// Group by `event_type`.
    EventType,
    /// Group by `user_id` (events without one are left out of the aggregation).
    UserId,
    /// Group by `session_id` (events without one are left out of the aggregation).
    SessionId,
    /// One group, key `"*"`.
    #[default]
    None,
}

impl GroupBy {
    /// The contract's name of the field, as written in metrics records.
    pub fn field_name(self) -> &'static str {
        match self {
            GroupBy::EventType => "event_type",
            GroupBy::UserId => "user_id",
            GroupBy::SessionId => "session_id",
            GroupBy::None => "none",
        }
    }
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
}

/// `kind: redis` (alert sinks).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RedisSinkConfig {
    /// `redis://host:port[/db]`; default: `$RTSA_REDIS_URL`, else `redis://127.0.0.1:6379`.
    #[serde(default)]
    pub url: Option<String>,
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
    /// Environment variable holding the password, if any.
    #[serde(default)]
    pub password_env: Option<String>,
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
    pub fn kind_name(&self) -> &'static str {
        match self {
            SinkConfig::Jsonl(_) => "jsonl",
            SinkConfig::Console(_) => "console",
            SinkConfig::Kafka(_) => "kafka",
            SinkConfig::Redis(_) => "redis",
            SinkConfig::Webhook(_) => "webhook",
        }
    }
}

/// `kind: kafka`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KafkaSinkConfig {
    /// The topic (defaults: `metrics` for metrics, `events-dead-letter` for dead letters).
    #[serde(default = "default_metrics_topic")]
    pub topic: String,
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
            SinkConfig::Kafka(c) => write!(f, "kafka topic {}", c.topic),
            SinkConfig::Redis(c) => write!(f, "redis stream {} and channel {}", c.stream, c.channel),
            SinkConfig::Webhook(c) => write!(f, "webhook {}", c.url),
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
    /// The pipeline of `rtsa run` without `--config`: an endless generator at a modest rate,
    /// the four default aggregations, console and JSONL output under `./rtsa-out/`.
    pub fn embedded_default() -> Config {
        let minute = Millis(60_000);
        let aggregation = |name: &str, window, group_by| AggregationConfig { name: name.to_owned(), window, group_by };
        let jsonl = |file: &str| SinkConfig::Jsonl(JsonlSinkConfig { path: PathBuf::from("rtsa-out").join(file) });
        Config {
            source: SourceConfig::Generator(GeneratorConfig::default()),
            kafka: KafkaConfig::default(),
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
            anomalies: Vec::new(),
            alerts: AlertsConfig {
                conditions: Some(SeedConditions { error_rate_threshold: Some(5.0), latency_threshold: Some(2_000.0) }),
                severity_levels: [(Severity::Critical, SeedLevels { error_rate: Some(20.0), latency: Some(5_000.0) })]
                    .into_iter()
                    .collect(),
                ..AlertsConfig::default()
            },
        }
    }
}
