//! The pipeline description the dataflows build from: aggregations and their windows, event-time
//! settings, engine limits, detector rules and alert routing. Serde structs with documented fields
//! and named defaults; the `rtsa` package reads them from YAML (with connectors' sections beside
//! them) and validates them.

mod anomalies;
mod duration;

pub use anomalies::{
    AlertsConfig, AnomalyConfig, Direction, EventMetric, EventRule, Levels, Metric, PatternRule, PatternStep,
    RareSequenceRule, RouteConfig, RuleKind, SeedConditions, SeedLevels, Severity, SinkKind, Status, ThresholdRule,
    ZscoreRule,
};
pub use duration::{InvalidDuration, Millis, OrOff};

use serde::{Deserialize, Serialize};
use std::fmt;
use std::num::{NonZeroU64, NonZeroUsize};

/// What the dataflows need of a config: everything but where events come from and go to.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Pipeline {
    /// Event-time progress: out-of-orderness, idleness and the epoch granularity.
    pub watermark: WatermarkConfig,
    /// Run-time limits of the engine.
    pub engine: EngineConfig,
    /// The windowed aggregations; each yields metrics records named after it.
    pub aggregations: Vec<AggregationConfig>,
    /// Detector rules.
    pub anomalies: Vec<AnomalyConfig>,
    /// Alert conditions of the seed's shape, routes and the default cooldown.
    pub alerts: AlertsConfig,
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
    /// An event stamped further than this ahead of the wall clock when it is read is a dead
    /// letter (`future`) and never advances a watermark; `off` accepts any time up to 9999.
    #[serde(default = "default_max_future_skew")]
    pub max_future_skew: OrOff,
}

impl Default for WatermarkConfig {
    fn default() -> Self {
        WatermarkConfig {
            max_out_of_orderness: default_max_out_of_orderness(),
            idle_timeout: default_idle_timeout(),
            epoch: default_epoch(),
            max_future_skew: default_max_future_skew(),
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
fn default_max_future_skew() -> OrOff {
    OrOff(Some(Millis(3_600_000)))
}

/// The `engine:` section: run-time limits.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EngineConfig {
    /// Largest accepted event in bytes; a longer one goes to the dead-letter sink as `too_large`.
    #[serde(default = "default_max_event_bytes")]
    pub max_event_bytes: NonZeroUsize,
    /// Most events a source reads in one scheduling step before yielding to other operators.
    #[serde(default = "default_max_events_per_step")]
    pub max_events_per_step: NonZeroUsize,
    /// How many epochs a source may read ahead of what the sinks have written (backpressure).
    #[serde(default = "default_max_inflight_epochs")]
    pub max_inflight_epochs: NonZeroU64,
    /// A file (or a regular file on stdin) is cut into chunks of about this many bytes, at line
    /// boundaries, which the workers of the process read and parse side by side; a pipe or a
    /// Kafka topic of one partition is cut into chunks of at most about this many bytes as it
    /// arrives (smaller when the input has nothing more for now).
    #[serde(default = "default_read_chunk_bytes")]
    pub read_chunk_bytes: NonZeroU64,
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
    /// How often the engine's own counters go to the InfluxDB sinks that write them
    /// (`engine_metrics`), besides once at the end of a run.
    #[serde(default = "default_metrics_interval")]
    pub metrics_interval: Millis,
    /// After SIGINT/SIGTERM, the longest the engine takes to drain and flush before it gives up,
    /// says what it could not flush and exits 1.
    #[serde(default = "default_shutdown_timeout")]
    pub shutdown_timeout: Millis,
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
            read_chunk_bytes: default_read_chunk_bytes(),
            pin_workers: default_pin_workers(),
            status_interval: default_status_interval(),
            progress: ProgressMode::default(),
            shutdown_timeout: default_shutdown_timeout(),
            metrics_interval: default_metrics_interval(),
        }
    }
}

/// The largest `engine.read_chunk_bytes` accepted.
pub const MAX_READ_CHUNK_BYTES: u64 = 1 << 30;

fn default_read_chunk_bytes() -> NonZeroU64 {
    NonZeroU64::new(1 << 20).unwrap_or(NonZeroU64::MIN)
}

fn default_max_event_bytes() -> NonZeroUsize {
    NonZeroUsize::new(64 * 1024).unwrap_or(NonZeroUsize::MIN)
}
fn default_max_events_per_step() -> NonZeroUsize {
    NonZeroUsize::new(4_096).unwrap_or(NonZeroUsize::MIN)
}
fn default_max_inflight_epochs() -> NonZeroU64 {
    NonZeroU64::new(120).unwrap_or(NonZeroU64::MIN)
}
fn default_pin_workers() -> bool {
    true
}
fn default_metrics_interval() -> Millis {
    Millis(10_000)
}
fn default_shutdown_timeout() -> Millis {
    Millis(30_000)
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
    /// Whether its keys are few (event types, or the one key `*`), so that a live view can
    /// walk, chart and show all of them; users and sessions can be millions.
    pub fn has_few_keys(self) -> bool {
        matches!(self, GroupBy::EventType | GroupBy::None)
    }

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
