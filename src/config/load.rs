//! Loading a config: YAML text → environment overrides → sections → validation.
//!
//! Every problem is collected, each with its key path (`aggregations[2].window.size: …`), so a
//! user sees all of them at once instead of fixing one per run.

use super::{
    AggregationConfig, AlertsConfig, AnomalyConfig, CheckpointConfig, CheckpointStoreKind, Config, ConsoleSinkConfig,
    EngineConfig, EventRule, FileSourceConfig, GeneratorConfig, GroupBy, HttpConfig, HttpListen, InfluxApi,
    InfluxSinkConfig, JsonlSinkConfig, KafkaConfig, KafkaSinkConfig, KafkaSourceConfig, Levels, PatternRule, Pipeline,
    RareSequenceRule, RedisSinkConfig, SinkConfig, SinkRole, SinksConfig, SourceConfig, StdinSourceConfig,
    ThresholdRule, WatermarkConfig, WebhookSinkConfig, WindowConfig, ZscoreRule,
};
use serde::de::DeserializeOwned;
use serde_yaml_ng::{Mapping, Value};
use std::collections::HashSet;
use std::fmt;
use std::path::Path;

/// Every problem found in a config, one per line, each starting with its key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<String>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("\n"))
    }
}

impl std::error::Error for ConfigErrors {}

/// Reads and validates a config file, applying `RTSA__SECTION__KEY` overrides from the environment.
pub fn load_file(path: &Path) -> Result<Config, ConfigErrors> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigErrors(vec![format!("{}: cannot read the config: {e}", path.display())]))?;
    load_str(&text, std::env::vars())
}

/// The embedded default (what `rtsa run` runs without `--config`) with the environment's
/// `RTSA__*` overrides applied, validated like a file.
pub fn load_default(env: impl IntoIterator<Item = (String, String)>) -> Result<Config, ConfigErrors> {
    let text = serde_yaml_ng::to_string(&Config::embedded_default()).expect("the embedded default serializes");
    load_str(&text, env)
}

/// Parses and validates config text with the given environment (only `RTSA__*` variables are used).
pub fn load_str(text: &str, env: impl IntoIterator<Item = (String, String)>) -> Result<Config, ConfigErrors> {
    let env: Vec<(String, String)> = env.into_iter().collect();
    let mut root: Value = if text.trim().is_empty() {
        Value::Mapping(Mapping::new())
    } else {
        serde_yaml_ng::from_str(text).map_err(|e| ConfigErrors(vec![format!("config: not valid YAML: {e}")]))?
    };
    if root.is_null() {
        root = Value::Mapping(Mapping::new());
    }
    let mut errors = Vec::new();
    apply_env_overrides(&mut root, env.iter().cloned(), &mut errors);
    let Value::Mapping(map) = root else {
        return Err(ConfigErrors(vec!["config: the top level must be a mapping of sections".to_owned()]));
    };

    const SECTIONS: [&str; 10] = [
        "source",
        "kafka",
        "watermark",
        "engine",
        "aggregations",
        "sinks",
        "anomalies",
        "alerts",
        "checkpoint",
        "http",
    ];
    for key in map.keys() {
        let name = key.as_str().unwrap_or("?");
        if !SECTIONS.contains(&name) {
            errors.push(format!("{name}: unknown section, expected one of {}", SECTIONS.join(", ")));
        }
    }

    let source = map
        .get("source")
        .filter(|v| !v.is_null())
        .and_then(|v| tagged_at_path(v.clone(), "source", &mut errors))
        .unwrap_or(SourceConfig::Generator(GeneratorConfig::default()));
    let kafka: KafkaConfig = section(&map, "kafka", &mut errors).unwrap_or_default();
    let watermark: WatermarkConfig = section(&map, "watermark", &mut errors).unwrap_or_default();
    let engine: EngineConfig = section(&map, "engine", &mut errors).unwrap_or_default();
    let aggregations: Vec<AggregationConfig> = list_section(&map, "aggregations", at_path, &mut errors);
    let sinks = sinks_section(&map, &mut errors);

    let anomalies: Vec<AnomalyConfig> = list_section(&map, "anomalies", tagged_at_path, &mut errors);
    let alerts: AlertsConfig = section(&map, "alerts", &mut errors).unwrap_or_default();
    let pipeline = Pipeline { watermark, engine, aggregations, anomalies, alerts };
    let checkpoint: CheckpointConfig = section(&map, "checkpoint", &mut errors).unwrap_or_default();
    let http: HttpConfig = section(&map, "http", &mut errors).unwrap_or_default();
    let mut config = Config { source, kafka, sinks, checkpoint, http, pipeline };
    config.kafka.sasl_password = kafka_password(&config.kafka, &env, &mut errors);
    validate(&config, &mut errors);
    if errors.is_empty() { Ok(config) } else { Err(ConfigErrors(errors)) }
}

/// librdkafka properties that hold secrets, which belong in the environment or a file.
const SECRET_PROPERTIES: [&str; 3] = ["sasl.password", "ssl.key.password", "ssl.keystore.password"];

/// The SASL password from `kafka.sasl_password_env` (looked up in `env`) or
/// `kafka.sasl_password_file`; a secret written into `kafka.properties` is refused.
fn kafka_password(kafka: &KafkaConfig, env: &[(String, String)], errors: &mut Vec<String>) -> Option<super::Secret> {
    for key in SECRET_PROPERTIES {
        if kafka.properties.contains_key(key) {
            errors.push(format!(
                "kafka.properties.{key}: a secret does not belong in the config text; put the SASL password in an environment variable named by kafka.sasl_password_env, or in a file named by kafka.sasl_password_file"
            ));
        }
    }
    match (&kafka.sasl_password_env, &kafka.sasl_password_file) {
        (Some(_), Some(_)) => {
            errors.push(
                "kafka.sasl_password_file: give the password one way, sasl_password_env or sasl_password_file"
                    .to_owned(),
            );
            None
        }
        (Some(name), None) => match env.iter().find(|(k, _)| k == name) {
            Some((_, value)) if !value.is_empty() => Some(super::Secret::new(value.clone())),
            _ => {
                errors.push(format!("kafka.sasl_password_env: the environment variable {name} is not set"));
                None
            }
        },
        (None, Some(path)) => match std::fs::read_to_string(path) {
            Ok(text) => match text.trim_end_matches(['\r', '\n']) {
                "" => {
                    errors.push(format!("kafka.sasl_password_file: {} is empty", path.display()));
                    None
                }
                password => Some(super::Secret::new(password.to_owned())),
            },
            Err(e) => {
                errors.push(format!("kafka.sasl_password_file: cannot read {}: {e}", path.display()));
                None
            }
        },
        (None, None) => None,
    }
}

/// Deserializes one top-level section, recording its errors with their full key path.
fn section<T: DeserializeOwned>(map: &Mapping, name: &str, errors: &mut Vec<String>) -> Option<T> {
    let value = map.get(name)?;
    if value.is_null() {
        return None;
    }
    at_path(value.clone(), name, errors)
}

fn at_path<T: DeserializeOwned>(value: Value, prefix: &str, errors: &mut Vec<String>) -> Option<T> {
    match serde_path_to_error::deserialize::<_, T>(value) {
        Ok(v) => Some(v),
        Err(e) => {
            let inner = e.path().to_string();
            let path = if inner == "." {
                prefix.to_owned()
            } else if inner.starts_with('[') {
                format!("{prefix}{inner}")
            } else {
                format!("{prefix}.{inner}")
            };
            errors.push(format!("{path}: {}", e.into_inner()));
            None
        }
    }
}

/// Config enums tagged by `kind`. serde reports an error inside one of them at the enum itself (the
/// value is buffered before the variant reads it), so a value that fails is read again as its
/// variant's own type, whose error names the field at fault.
trait KindTagged: DeserializeOwned {
    /// Reads `body` (the mapping without `kind`) as variant `kind`, records its errors, and
    /// returns whether there were any (false for an unknown kind too).
    fn variant_errors(kind: &str, body: Value, path: &str, errors: &mut Vec<String>) -> bool;
}

fn fails<T: DeserializeOwned>(body: Value, path: &str, errors: &mut Vec<String>) -> bool {
    at_path::<T>(body, path, errors).is_none()
}

impl KindTagged for SourceConfig {
    fn variant_errors(kind: &str, body: Value, path: &str, errors: &mut Vec<String>) -> bool {
        match kind {
            "file" => fails::<FileSourceConfig>(body, path, errors),
            "stdin" => fails::<StdinSourceConfig>(body, path, errors),
            "generator" => fails::<GeneratorConfig>(body, path, errors),
            "kafka" => fails::<KafkaSourceConfig>(body, path, errors),
            _ => false,
        }
    }
}

impl KindTagged for SinkConfig {
    fn variant_errors(kind: &str, body: Value, path: &str, errors: &mut Vec<String>) -> bool {
        match kind {
            "jsonl" => fails::<JsonlSinkConfig>(body, path, errors),
            "console" => fails::<ConsoleSinkConfig>(body, path, errors),
            "kafka" => fails::<KafkaSinkConfig>(body, path, errors),
            "redis" => fails::<RedisSinkConfig>(body, path, errors),
            "webhook" => fails::<WebhookSinkConfig>(body, path, errors),
            "influxdb" => fails::<InfluxSinkConfig>(body, path, errors),
            _ => false,
        }
    }
}

impl KindTagged for AnomalyConfig {
    fn variant_errors(kind: &str, body: Value, path: &str, errors: &mut Vec<String>) -> bool {
        match kind {
            "threshold" => fails::<ThresholdRule>(body, path, errors),
            "zscore" => fails::<ZscoreRule>(body, path, errors),
            "pattern" => fails::<PatternRule>(body, path, errors),
            "rare_sequence" => fails::<RareSequenceRule>(body, path, errors),
            "event" => fails::<EventRule>(body, path, errors),
            _ => false,
        }
    }
}

/// [`at_path`] for a `kind`-tagged enum: on failure, the variant's own error where it has one.
fn tagged_at_path<T: KindTagged>(value: Value, path: &str, errors: &mut Vec<String>) -> Option<T> {
    let mut own = Vec::new();
    if let Some(parsed) = at_path::<T>(value.clone(), path, &mut own) {
        return Some(parsed);
    }
    let refined = match value {
        Value::Mapping(mut body) => match body.remove("kind") {
            Some(Value::String(kind)) => T::variant_errors(&kind, Value::Mapping(body), path, errors),
            _ => false,
        },
        _ => false,
    };
    if !refined {
        errors.extend(own);
    }
    None
}

/// Reads one value of a list at `path`, recording its errors.
type Read<T> = fn(Value, &str, &mut Vec<String>) -> Option<T>;

/// Deserializes a list element by element, so that each bad element is reported.
fn list_of<T>(value: &Value, path: &str, read: Read<T>, errors: &mut Vec<String>) -> Vec<T> {
    match value {
        Value::Sequence(items) => items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| read(item.clone(), &format!("{path}[{i}]"), errors))
            .collect(),
        Value::Null => Vec::new(),
        _ => {
            errors.push(format!("{path}: expected a list"));
            Vec::new()
        }
    }
}

fn list_section<T>(map: &Mapping, name: &str, read: Read<T>, errors: &mut Vec<String>) -> Vec<T> {
    map.get(name).map(|v| list_of(v, name, read, errors)).unwrap_or_default()
}

fn sinks_section(map: &Mapping, errors: &mut Vec<String>) -> SinksConfig {
    let mut sinks = SinksConfig::default();
    let Some(value) = map.get("sinks") else { return sinks };
    let Value::Mapping(inner) = value else {
        if !value.is_null() {
            errors.push("sinks: expected a mapping with metrics, alerts and dead_letter".to_owned());
        }
        return sinks;
    };
    for key in inner.keys() {
        let name = key.as_str().unwrap_or("?");
        if !["metrics", "alerts", "dead_letter"].contains(&name) {
            errors.push(format!("sinks.{name}: unknown key, expected one of metrics, alerts, dead_letter"));
        }
    }
    if let Some(v) = inner.get("metrics") {
        sinks.metrics = list_of(v, "sinks.metrics", tagged_at_path, errors);
    }
    if let Some(v) = inner.get("alerts") {
        sinks.alerts = list_of(v, "sinks.alerts", tagged_at_path, errors);
    }
    if let Some(v) = inner.get("dead_letter")
        && let Some(sink) = tagged_at_path::<SinkConfig>(v.clone(), "sinks.dead_letter", errors)
    {
        sinks.dead_letter = sink;
    }
    sinks
}

/// Applies `RTSA__SECTION__KEY=value` overrides: segments are lower-cased, numeric segments index
/// lists, and the value is read as a YAML scalar (so `8`, `true` and `30s` all work).
fn apply_env_overrides(root: &mut Value, env: impl IntoIterator<Item = (String, String)>, errors: &mut Vec<String>) {
    let mut overrides: Vec<(String, String)> = env.into_iter().filter(|(k, _)| k.starts_with("RTSA__")).collect();
    overrides.sort();
    for (name, text) in overrides {
        let segments: Vec<String> = name["RTSA__".len()..].split("__").map(|s| s.to_ascii_lowercase()).collect();
        if segments.iter().any(|s| s.is_empty()) {
            errors.push(format!("{name}: malformed override, write RTSA__SECTION__KEY=value"));
            continue;
        }
        let value: Value = serde_yaml_ng::from_str(&text).unwrap_or(Value::String(text.clone()));
        if let Err(problem) = set_path(root, &segments, value) {
            errors.push(format!("{name}: {problem}"));
        }
    }
}

/// Why an `RTSA__…` override cannot be applied.
#[derive(Debug, thiserror::Error)]
enum OverrideError {
    #[error("{0:?} is not a list index")]
    NotAnIndex(String),
    #[error("index {index} is past the end of a list of {len}")]
    PastTheEnd { index: usize, len: usize },
    #[error("cannot set {0:?} inside a scalar value")]
    InsideScalar(String),
}

fn set_path(node: &mut Value, segments: &[String], value: Value) -> Result<(), OverrideError> {
    let Some((first, rest)) = segments.split_first() else {
        *node = value;
        return Ok(());
    };
    if node.is_null() {
        *node = Value::Mapping(Mapping::new());
    }
    match node {
        Value::Mapping(map) => {
            let key = Value::String(first.clone());
            let child = map.entry(key).or_insert(Value::Null);
            set_path(child, rest, value)
        }
        Value::Sequence(items) => {
            let index: usize = first.parse().map_err(|_| OverrideError::NotAnIndex(first.clone()))?;
            let len = items.len();
            let child = items.get_mut(index).ok_or(OverrideError::PastTheEnd { index, len })?;
            set_path(child, rest, value)
        }
        _ => Err(OverrideError::InsideScalar(first.clone())),
    }
}

fn validate_alerts(config: &Config, errors: &mut Vec<String>) {
    let pipeline = &config.pipeline;
    let aggregation_exists = |name: &str| pipeline.aggregations.iter().any(|a| a.name == name);
    let mut names = HashSet::new();
    let levels_ok = |path: &str, levels: &Levels, errors: &mut Vec<String>| {
        if levels.is_empty() {
            errors.push(format!("{path}.levels: set at least one of critical, high, medium, low"));
        }
    };
    for (i, rule) in pipeline.anomalies.iter().enumerate() {
        let path = format!("anomalies[{i}]");
        if rule.name().trim().is_empty() {
            errors.push(format!("{path}.name: must not be empty"));
        } else if !names.insert(rule.name()) {
            errors.push(format!("{path}.name: {:?} is used by an earlier rule", rule.name()));
        }
        let window_rule = |aggregation: &str, errors: &mut Vec<String>| {
            if !aggregation_exists(aggregation) {
                errors.push(format!("{path}.aggregation: no aggregation is named {aggregation:?}"));
            }
        };
        match rule {
            AnomalyConfig::Threshold(r) => {
                window_rule(&r.aggregation, errors);
                levels_ok(&path, &r.levels, errors);
            }
            AnomalyConfig::Zscore(r) => {
                window_rule(&r.aggregation, errors);
                levels_ok(&path, &r.levels, errors);
                if r.history == 0 || r.min_history == 0 || r.min_history > r.history {
                    errors.push(format!("{path}.min_history: must be between 1 and history ({})", r.history));
                }
            }
            AnomalyConfig::Pattern(r) => {
                if r.steps.is_empty() {
                    errors.push(format!("{path}.steps: at least one step is needed"));
                }
                if !matches!(r.group_by, GroupBy::UserId | GroupBy::SessionId) {
                    errors.push(format!("{path}.group_by: must be user_id or session_id"));
                }
                if r.within.0 == 0 {
                    errors.push(format!("{path}.within: must be above 0"));
                }
            }
            AnomalyConfig::RareSequence(r) => {
                if !(r.max_probability > 0.0 && r.max_probability < 1.0) {
                    errors.push(format!("{path}.max_probability: must be between 0 and 1"));
                }
            }
            AnomalyConfig::Event(r) => match r.metric {
                Some(_) => levels_ok(&path, &r.levels, errors),
                None if r.event_type.is_none() && r.status.is_none() => {
                    errors.push(format!("{path}: set a metric with levels, or event_type and/or status to match"))
                }
                None => {}
            },
        }
    }
    let alerts = &pipeline.alerts;
    if let Some(name) = &alerts.aggregation
        && !aggregation_exists(name)
    {
        errors.push(format!("alerts.aggregation: no aggregation is named {name:?}"));
    }
    if (alerts.conditions.is_some() || !alerts.severity_levels.is_empty()) && alerts.aggregation.is_none() {
        let tumbling = pipeline.aggregations.iter().any(|a| matches!(a.window, WindowConfig::Tumbling { .. }));
        if !tumbling {
            errors.push(
                "alerts.aggregation: name the aggregation the conditions watch (there is no tumbling one)".to_owned(),
            );
        }
    }
    for (i, route) in alerts.routes.iter().enumerate() {
        if route.channels.is_empty() {
            errors.push(format!("alerts.routes[{i}].channels: name at least one channel"));
        }
        for channel in &route.channels {
            if !config.sinks.alerts.iter().any(|s| s.kind() == *channel) {
                errors.push(format!("alerts.routes[{i}].channels: no alert sink of kind {channel:?}"));
            }
        }
    }
    for (role, path, sink) in config.sinks() {
        if !sink.takes(role) {
            let what = match role {
                SinkRole::Metrics => "metrics records",
                SinkRole::Alerts => "alerts",
                SinkRole::DeadLetters => "dead letters",
            };
            errors.push(format!("{path}: {} sinks do not take {what}", sink.kind()));
        }
    }
}

/// Checks what serde cannot: relations between fields and limits.
/// The longest window, gap, epoch or out-of-orderness: with event times up to the year 9999
/// (`dataflows::event::MAX_TIMESTAMP_MS`), no window arithmetic comes near `u64::MAX`.
const MAX_WINDOW_MS: u64 = 100 * 365 * 86_400_000;

fn validate(config: &Config, errors: &mut Vec<String>) {
    if let HttpListen::At(address) = config.http.listen
        && !address.ip().is_loopback()
        && config.http.token_env.is_none()
    {
        errors.push(format!(
            "http.token_env: required when http.listen ({address}) is not a loopback address: name an environment variable holding a bearer token"
        ));
    }
    let checkpoint = &config.checkpoint;
    if checkpoint.store == CheckpointStoreKind::Redis {
        if checkpoint.name.is_empty() || checkpoint.name.contains(['{', '}', ' ', ':']) {
            errors.push("checkpoint.name: must be a non-empty name without spaces, colons or braces".to_owned());
        }
        if checkpoint.interval.0 == 0 {
            errors.push("checkpoint.interval: must be above 0".to_owned());
        }
        if checkpoint.ttl.0 < 60_000 {
            errors.push("checkpoint.ttl: must be at least 1m".to_owned());
        }
        if let SourceConfig::Generator(generator) = &config.source
            && generator.start_ms.is_none()
        {
            errors.push("source.start_ms: set it with checkpoints on: a resumed generator must produce the same events, so its event time cannot start at the wall clock".to_owned());
        }
        if matches!(config.source, SourceConfig::Stdin(_)) {
            errors.push("checkpoint.store: standard input cannot be read again after a restart; use a file or Kafka source, or store: none".to_owned());
        }
    }
    let pipeline = &config.pipeline;
    let epoch = pipeline.watermark.epoch.0;
    let watermark = &pipeline.watermark;
    for (name, ms) in [
        ("epoch", watermark.epoch.0),
        ("max_out_of_orderness", watermark.max_out_of_orderness.0),
        ("idle_timeout", watermark.idle_timeout.0),
    ] {
        if ms > MAX_WINDOW_MS {
            errors.push(format!("watermark.{name}: must be at most 100 years"));
        }
    }
    if epoch == 0 {
        errors.push("watermark.epoch: must be at least 1ms".to_owned());
    }
    if pipeline.engine.read_chunk_bytes.get() > dataflows::spec::MAX_READ_CHUNK_BYTES {
        errors.push("engine.read_chunk_bytes: must be at most 1073741824 (1 GiB)".to_owned());
    }
    if let SourceConfig::Generator(g) = &config.source {
        for (name, fraction) in [("out_of_order_fraction", g.out_of_order_fraction), ("late_fraction", g.late_fraction)]
        {
            if !(0.0..=1.0).contains(&fraction) {
                errors.push(format!("source.{name}: must be between 0 and 1"));
            }
        }
        if g.event_time_rate == Some(0) {
            errors.push("source.event_time_rate: must be above 0".to_owned());
        }
    }
    if let SourceConfig::Kafka(k) = &config.source {
        if k.topic.trim().is_empty() {
            errors.push("source.topic: must not be empty".to_owned());
        }
        if k.group_id.trim().is_empty() {
            errors.push("source.group_id: must not be empty".to_owned());
        }
    }
    if config.kafka.bootstrap_servers.trim().is_empty() {
        errors.push("kafka.bootstrap_servers: must not be empty".to_owned());
    }
    if pipeline.aggregations.is_empty() && errors.iter().all(|e| !e.starts_with("aggregations")) {
        errors.push("aggregations: at least one aggregation is needed".to_owned());
    }
    if pipeline.aggregations.len() > usize::from(u16::MAX) {
        errors.push("aggregations: too many".to_owned());
    }
    let mut names = HashSet::new();
    for (i, a) in pipeline.aggregations.iter().enumerate() {
        let path = format!("aggregations[{i}]");
        if a.name.trim().is_empty() {
            errors.push(format!("{path}.name: must not be empty"));
        } else if a.name.contains('|') {
            errors.push(format!("{path}.name: must not contain '|' (it separates the parts of record keys)"));
        } else if !names.insert(a.name.as_str()) {
            errors.push(format!("{path}.name: {:?} is used by an earlier aggregation", a.name));
        }
        let multiple = |what: &str, ms: u64, errors: &mut Vec<String>| {
            if ms > MAX_WINDOW_MS {
                errors.push(format!("{path}.window.{what}: must be at most 100 years"));
            } else if ms == 0 {
                errors.push(format!("{path}.window.{what}: must be above 0"));
            } else if epoch > 0 && !ms.is_multiple_of(epoch) {
                errors.push(format!(
                    "{path}.window.{what}: must be a multiple of watermark.epoch ({})",
                    pipeline.watermark.epoch
                ));
            }
        };
        match a.window {
            WindowConfig::Tumbling { size } => multiple("size", size.0, errors),
            WindowConfig::Sliding { size, slide } => {
                multiple("size", size.0, errors);
                multiple("slide", slide.0, errors);
                if slide.0 > 0 && size.0 % slide.0 != 0 {
                    errors.push(format!("{path}.window.size: must be a multiple of slide"));
                } else if slide.0 > 0 && size.0 / slide.0 > 1_000 {
                    errors.push(format!("{path}.window.slide: at most 1000 windows may overlap (size / slide)"));
                }
            }
            WindowConfig::Session { gap } => {
                if gap.0 == 0 {
                    errors.push(format!("{path}.window.gap: must be above 0"));
                } else if gap.0 > MAX_WINDOW_MS {
                    errors.push(format!("{path}.window.gap: must be at most 100 years"));
                }
            }
        }
    }
    validate_alerts(config, errors);
    let mut paths = HashSet::new();
    for (_, path, sink) in config.sinks() {
        if let SinkConfig::Console(c) = sink {
            for (i, name) in c.aggregations.iter().enumerate() {
                if !pipeline.aggregations.iter().any(|a| &a.name == name) {
                    errors.push(format!("{path}.aggregations[{i}]: no aggregation is named {name:?}"));
                }
            }
        }
        if let SinkConfig::Kafka(k) = sink
            && k.topic.as_deref().is_some_and(|t| t.trim().is_empty())
        {
            errors.push(format!("{path}.topic: must not be empty"));
        }
        if let SinkConfig::Influxdb(i) = sink {
            if !(i.url.starts_with("http://") || i.url.starts_with("https://")) {
                errors.push(format!("{path}.url: must start with http:// or https://"));
            }
            let misplaced = match i.api {
                InfluxApi::V1 => {
                    [("org", i.org.is_some()), ("bucket", i.bucket.is_some()), ("token_env", i.token_env.is_some())]
                }
                InfluxApi::V2 => [
                    ("database", i.database.is_some()),
                    ("username", i.username.is_some()),
                    ("password_env", i.password_env.is_some()),
                ],
            };
            for (field, set) in misplaced {
                if set {
                    errors.push(format!("{path}.{field}: not a setting of api {}", i.api.as_str()));
                }
            }
        }
        if let SinkConfig::Jsonl(j) = sink {
            if j.path.as_os_str().is_empty() {
                errors.push(format!("{path}.path: must not be empty"));
            } else if !paths.insert(j.path.clone()) {
                errors.push(format!("{path}.path: {} is written by another sink", j.path.display()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{GroupBy, Millis};

    fn no_env() -> Vec<(String, String)> {
        Vec::new()
    }

    #[test]
    fn reads_the_contract_example() {
        let text = r#"
source:
  kind: file
  path: events.jsonl
kafka:
  bootstrap_servers: "127.0.0.1:9092"
watermark:
  max_out_of_orderness: 30s
  idle_timeout: 10s
aggregations:
  - name: by_type_1m
    window: { kind: tumbling, size: 1m }
    group_by: event_type
  - name: by_user_sessions
    window: { kind: session, gap: 30m }
    group_by: user_id
sinks:
  metrics:
    - { kind: jsonl, path: out/metrics.jsonl }
  alerts:
    - { kind: jsonl, path: out/alerts.jsonl }
  dead_letter: { kind: jsonl, path: out/dead_letter.jsonl }
"#;
        let config = load_str(text, no_env()).unwrap();
        assert_eq!(config.pipeline.watermark.max_out_of_orderness, Millis(30_000));
        assert_eq!(config.pipeline.aggregations[1].window, WindowConfig::Session { gap: Millis(1_800_000) });
        assert_eq!(config.pipeline.aggregations[1].group_by, GroupBy::UserId);
    }

    #[test]
    fn lists_every_problem_with_its_key_path() {
        let text = r#"
source: { kind: file, path: x.jsonl, colour: blue }
watermark: { max_out_of_orderness: soon }
aggregations:
  - name: a
    window: { kind: tumbling, size: 1m }
  - name: a
    window: { kind: sliding, size: 5m, slide: 2m }
  - name: c
    window: { kind: sliding, size: 5m, slide: 90s }
    group_by: planet
extra: 1
"#;
        let errors = load_str(text, no_env()).unwrap_err().0;
        let has = |needle: &str| errors.iter().any(|e| e.contains(needle));
        assert!(has("source.colour: unknown field `colour`"), "{errors:#?}");
        assert!(has("watermark.max_out_of_orderness: invalid duration"), "{errors:#?}");
        assert!(has("aggregations[1].name: \"a\" is used by an earlier aggregation"), "{errors:#?}");
        assert!(has("aggregations[1].window.size: must be a multiple of slide"), "{errors:#?}");
        assert!(has("aggregations[2].group_by"), "{errors:#?}");
        assert!(has("extra: unknown section"), "{errors:#?}");
        assert!(errors.len() >= 6, "{errors:#?}");
    }

    #[test]
    fn errors_inside_kind_tagged_sections_name_the_field() {
        let text = r#"
source: { kind: generator, rate: fast }
sinks:
  metrics: [ { kind: jsonl, path: m.jsonl }, { kind: console, json: maybe } ]
  alerts: [ { kind: webhook, url: "http://127.0.0.1:1/", timeout: soon } ]
  dead_letter: { kind: kafka, topic: dl, acks: all }
anomalies:
  - { kind: zscore, name: z, aggregation: a, metric: count, history: many }
  - { kind: teleport, name: t }
"#;
        let errors = load_str(text, no_env()).unwrap_err().0;
        let has = |prefix: &str| errors.iter().any(|e| e.starts_with(prefix));
        for path in [
            "source.rate: invalid type",
            "sinks.metrics[1].json: invalid type",
            "sinks.alerts[0].timeout: invalid duration",
            "sinks.dead_letter.acks: unknown field `acks`",
            "anomalies[0].history: invalid type",
            "anomalies[1].kind: unknown variant `teleport`",
        ] {
            assert!(has(path), "no {path:?} in {errors:#?}");
        }
    }

    #[test]
    fn environment_overrides_win() {
        let text = "aggregations:\n  - { name: a, window: { kind: tumbling, size: 1m } }\n";
        let env = vec![
            ("RTSA__WATERMARK__MAX_OUT_OF_ORDERNESS".to_owned(), "45s".to_owned()),
            ("RTSA__KAFKA__BOOTSTRAP_SERVERS".to_owned(), "127.0.0.1:19092".to_owned()),
            ("RTSA__AGGREGATIONS__0__NAME".to_owned(), "renamed".to_owned()),
            ("HOME".to_owned(), "/root".to_owned()),
        ];
        let config = load_str(text, env).unwrap();
        assert_eq!(config.pipeline.watermark.max_out_of_orderness, Millis(45_000));
        assert_eq!(config.kafka.bootstrap_servers, "127.0.0.1:19092");
        assert_eq!(config.pipeline.aggregations[0].name, "renamed");
    }

    #[test]
    fn bad_override_is_reported() {
        let text = "aggregations:\n  - { name: a, window: { kind: tumbling, size: 1m } }\n";
        let env = vec![("RTSA__AGGREGATIONS__7__NAME".to_owned(), "x".to_owned())];
        let errors = load_str(text, env).unwrap_err().0;
        assert!(errors[0].starts_with("RTSA__AGGREGATIONS__7__NAME: index 7"), "{errors:?}");
    }

    #[test]
    fn durations_beyond_a_hundred_years_are_refused() {
        let text = r#"
watermark: { max_out_of_orderness: 1000y }
aggregations:
  - { name: a, window: { kind: tumbling, size: 200y } }
  - { name: b, window: { kind: session, gap: 300y } }
"#;
        let errors = load_str(text, no_env()).unwrap_err().0;
        for path in ["watermark.max_out_of_orderness", "aggregations[0].window.size", "aggregations[1].window.gap"] {
            assert!(errors.contains(&format!("{path}: must be at most 100 years")), "{path}: {errors:#?}");
        }
        let text = "watermark: { max_future_skew: off }\naggregations: [ { name: a, window: { kind: tumbling, size: 1m } } ]\n";
        assert_eq!(load_str(text, no_env()).unwrap().pipeline.watermark.max_future_skew, crate::config::OrOff(None));
    }

    #[test]
    fn window_sizes_must_fit_the_epoch() {
        let text =
            "watermark: { epoch: 1s }\naggregations:\n  - { name: a, window: { kind: tumbling, size: 1500ms } }\n";
        let errors = load_str(text, no_env()).unwrap_err().0;
        assert_eq!(errors, vec!["aggregations[0].window.size: must be a multiple of watermark.epoch (1s)".to_owned()]);
    }

    #[test]
    fn embedded_default_takes_environment_overrides() {
        let plain = load_default(no_env()).expect("valid");
        assert_eq!(format!("{plain:?}"), format!("{:?}", Config::embedded_default()));
        let env = [("RTSA__ENGINE__STATUS_INTERVAL".to_owned(), "2s".to_owned())];
        assert_eq!(load_default(env).expect("valid").pipeline.engine.status_interval, Millis(2_000));
        let env = [("RTSA__SOURCE__RATE".to_owned(), "many".to_owned())];
        let errors = load_default(env).unwrap_err().0;
        assert_eq!(errors, vec!["source.rate: invalid type: string \"many\", expected u64".to_owned()]);
    }

    #[test]
    fn a_misspelt_status_is_an_error_not_ok() {
        // Regression: `status: eror` was accepted and silently meant "ok".
        let text = r#"
aggregations: [ { name: a, window: { kind: tumbling, size: 1m } } ]
anomalies:
  - { kind: pattern, name: p, within: 1m, steps: [ { event_type: login, status: eror } ] }
  - { kind: event, name: e, status: fail }
"#;
        let errors = load_str(text, no_env()).unwrap_err().0;
        assert!(
            errors.iter().any(|e| e.starts_with("anomalies[0].steps[0].status: unknown variant `eror`")),
            "{errors:#?}"
        );
        assert!(errors.iter().any(|e| e.starts_with("anomalies[1].status: unknown variant `fail`")), "{errors:#?}");
    }

    #[test]
    fn a_misspelt_metric_route_kind_channel_or_compression_is_an_error() {
        let text = r#"
kafka: { compression: lz5 }
aggregations: [ { name: a, window: { kind: tumbling, size: 1m } } ]
anomalies:
  - { kind: threshold, name: t, aggregation: a, metric: latency_ms.p98, levels: { low: 1 } }
  - { kind: event, name: e, metric: latency, levels: { low: 1 } }
alerts:
  routes: [ { kind: [treshold], channels: [jsonl] }, { channels: [pager] } ]
"#;
        let errors = load_str(text, no_env()).unwrap_err().0;
        for prefix in [
            "kafka.compression: unknown variant `lz5`",
            "anomalies[0].metric: unknown variant `latency_ms.p98`",
            "anomalies[1].metric: unknown variant `latency`",
            "alerts.routes[0].kind[0]: unknown variant `treshold`",
        ] {
            assert!(errors.iter().any(|e| e.starts_with(prefix)), "no {prefix:?} in {errors:#?}");
        }
        // Zero where zero means nothing: rejected by the types (NonZero*), every one at once.
        let text = r#"
source: { kind: generator, partitions: 0 }
kafka: { partitions: 0 }
engine: { max_events_per_step: 0 }
aggregations: [ { name: a, window: { kind: tumbling, size: 1m } } ]
anomalies:
  - { kind: pattern, name: p, within: 1m, steps: [ { event_type: login, repeat: 0 } ] }
"#;
        let errors = load_str(text, no_env()).unwrap_err().0;
        for prefix in [
            "source.partitions: invalid value: integer `0`",
            "kafka.partitions: invalid value: integer `0`",
            "engine.max_events_per_step: invalid value: integer `0`",
            "anomalies[0].steps[0].repeat: invalid value: integer `0`",
        ] {
            assert!(errors.iter().any(|e| e.starts_with(prefix)), "no {prefix:?} in {errors:#?}");
        }
    }

    #[test]
    fn a_sasl_password_comes_from_the_environment_or_a_file_never_the_config() {
        let env = vec![("KAFKA_PASSWORD".to_owned(), "s3cret".to_owned())];
        let aggregations = "aggregations: [ { name: t, window: { kind: tumbling, size: 1m } } ]\n";
        let config =
            load_str(&format!("{aggregations}kafka: {{ sasl_password_env: KAFKA_PASSWORD }}"), env.clone()).unwrap();
        assert_eq!(config.kafka.sasl_password.as_ref().map(|s| s.expose()), Some("s3cret"));
        assert_eq!(format!("{:?}", config.kafka.sasl_password), "Some(***)");
        assert!(!serde_yaml_ng::to_string(&config).unwrap().contains("s3cret"));
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), "from-a-file\n").unwrap();
        let text = format!("{aggregations}kafka: {{ sasl_password_file: {} }}", file.path().display());
        let config = load_str(&text, Vec::new()).unwrap();
        assert_eq!(config.kafka.sasl_password.as_ref().map(|s| s.expose()), Some("from-a-file"));
        // Every problem at once, each with its key.
        let errors = load_str(
            &format!("{aggregations}kafka: {{ sasl_password_env: MISSING, properties: {{ sasl.password: oops, sasl.username: u }} }}"),
            env,
        )
        .unwrap_err()
        .0;
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].starts_with("kafka.properties.sasl.password: a secret does not belong"), "{errors:?}");
        assert!(errors[1].starts_with("kafka.sasl_password_env: the environment variable MISSING is not set"));
        assert!(errors.iter().all(|e| !e.contains("oops")), "{errors:?}");
    }

    #[test]
    fn an_alert_kafka_sink_without_a_topic_writes_the_alerts_topic() {
        // Regression: it wrote `alerts` while `rtsa topics create` made `kafka.alerts_topic`.
        let text = r#"
kafka: { alerts_topic: team-alerts }
aggregations: [ { name: a, window: { kind: tumbling, size: 1m } } ]
sinks:
  metrics: [ { kind: kafka } ]
  alerts: [ { kind: kafka } ]
  dead_letter: { kind: kafka }
"#;
        let config = load_str(text, no_env()).unwrap();
        assert_eq!(config.output_topics(), vec!["events-dead-letter", "metrics", "team-alerts"]);
        let SinkConfig::Kafka(alerts) = &config.sinks.alerts[0] else { panic!("a kafka sink") };
        assert_eq!(config.topic_of(SinkRole::Alerts, alerts), "team-alerts");
    }

    #[test]
    fn the_default_yaml_is_the_embedded_default() {
        // Regression: config/default.yaml said it was the embedded default and lacked its alerts.
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/default.yaml");
        let file = load_file(&path).expect("config/default.yaml is valid");
        let embedded = load_default(no_env()).expect("the embedded default is valid");
        assert_eq!(format!("{file:#?}"), format!("{embedded:#?}"));
    }

    #[test]
    fn embedded_default_is_valid() {
        let config = Config::embedded_default();
        let mut errors = Vec::new();
        validate(&config, &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
    }
}
