//! Redis as an alert channel: `XADD` to a capped stream and `PUBLISH` on a channel, once per
//! alert id (a `SET NX` guard in the same script), so a replay overwrites nothing and adds
//! nothing. Connection failures are retried with backoff until the alert is delivered.
//!
//! Redis as a metrics sink (CONTRACT 4.2): the latest window of every (aggregation, key) as a
//! hash at `{key_prefix}:metrics:{aggregation}:{key}`, the record's fields flattened, its TTL
//! renewed on every write; a script compares `window_start`, so an older window never replaces
//! a newer one (a replay, or sliding windows arriving out of order). A batch is one pipeline;
//! while Redis is away the sink retries with backoff and holds the pipeline back.

use super::queued::{Deliver, DeliveryError};
use crate::config::RedisSinkConfig;
use dataflows::control::wall_clock_ms;
use dataflows::record::{Stat, WindowRecord, flat_statistics};
use dataflows::sink::{Sink, SinkError};
use dataflows::spec::{AggregationConfig, SinkKind};
use std::sync::Arc;
use std::time::Duration;

const SCRIPT: &str = r"
if redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[3]) then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'alert_id', ARGV[1], 'alert', ARGV[2])
  redis.call('PUBLISH', ARGV[5], ARGV[2])
  return 1
end
return 0
";

/// Delivers alerts to Redis.
pub struct RedisChannel {
    client: redis::Client,
    connection: Option<redis::Connection>,
    script: redis::Script,
    config: RedisSinkConfig,
}

/// The Redis URL of a sink: its own, else `$RTSA_REDIS_URL`, else the local default.
pub fn redis_url(config: &RedisSinkConfig) -> String {
    url_or_default(config.url.as_deref())
}

/// A configured Redis URL, else `$RTSA_REDIS_URL`, else the local default (every Redis sink and
/// the checkpoint store).
pub fn url_or_default(url: Option<&str>) -> String {
    url.map(str::to_owned)
        .or_else(|| std::env::var("RTSA_REDIS_URL").ok())
        .unwrap_or_else(|| "redis://127.0.0.1:6379".to_owned())
}

/// A Redis URL without its credentials, for messages.
pub fn display_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}{}", &url[..scheme + 3], &url[at + 1..]),
        _ => url.to_owned(),
    }
}

/// Whether a Redis error is a refusal a retry will not mend: of the credentials, or of the
/// server's TLS certificate (not signed by the CA trusted, not for this host name).
pub fn is_refusal(e: &redis::RedisError) -> bool {
    e.kind() == redis::ErrorKind::AuthenticationFailed
        || matches!(e.code(), Some("NOPERM" | "NOAUTH" | "WRONGPASS"))
        || e.to_string().contains("certificate")
}

/// A client for the sink's server, with the password of `password_env` and, for `rediss://`,
/// the CA of `tls_ca_file`. It tries one connection: a refused password is an error now (the
/// run stops before it reads anything); a server that is away is not (writes retry).
fn client(config: &RedisSinkConfig) -> Result<redis::Client, SinkError> {
    connect(&redis_url(config), config.password_env.as_deref(), config.tls_ca_file.as_deref())
}

/// A client for `url` with the password of `password_env` and, for `rediss://`, the CA of
/// `tls_ca_file` (the same keys on every Redis sink and the checkpoint store). It tries one
/// connection: a refused password or certificate is an error now; a server that is away is not.
pub fn connect(
    url: &str,
    password_env: Option<&str>,
    tls_ca_file: Option<&std::path::Path>,
) -> Result<redis::Client, SinkError> {
    let url = url.to_owned();
    let shown = display_url(&url);
    let unusable = |reason: String| SinkError::Unsupported { what: format!("redis {shown}"), reason };
    let mut info: redis::ConnectionInfo =
        url.as_str().parse().map_err(|e: redis::RedisError| unusable(format!("bad url: {:?}", e.kind())))?;
    if let Some(variable) = password_env {
        let password = std::env::var(variable)
            .map_err(|_| unusable(format!("environment variable {variable} (password_env) is not set")))?;
        let settings = info.redis_settings().clone().set_password(password);
        info = info.set_redis_settings(settings);
    }
    let client = match tls_ca_file {
        Some(path) if url.starts_with("rediss://") => {
            let root_cert =
                std::fs::read(path).map_err(|e| unusable(format!("tls_ca_file {}: {e}", path.display())))?;
            redis::Client::build_with_tls(info, redis::TlsCertificates { client_tls: None, root_cert: Some(root_cert) })
        }
        Some(_) => return Err(unusable("tls_ca_file is set but the url is not rediss://".to_owned())),
        None => redis::Client::open(info),
    }
    .map_err(|e| unusable(e.to_string()))?;
    match client.get_connection_with_timeout(Duration::from_secs(3)) {
        Err(e) if is_refusal(&e) => {
            let what = if e.to_string().contains("certificate") {
                "its TLS certificate is not trusted"
            } else {
                "the server refused the credentials"
            };
            Err(SinkError::service(format!("redis {shown}"), format!("{what}: {e}"), false))
        }
        Err(e) if e.is_connection_refusal() || e.is_timeout() || e.is_io_error() => {
            tracing::warn!(redis = %shown, error = %e, "redis is not reachable yet; writes will retry");
            Ok(client)
        }
        Err(e) => Err(SinkError::service(format!("redis {shown}"), e, false)),
        Ok(_) => Ok(client),
    }
}

impl RedisChannel {
    /// A channel for `config` (connects lazily).
    pub fn open(config: &RedisSinkConfig) -> Result<RedisChannel, SinkError> {
        Ok(RedisChannel {
            client: client(config)?,
            connection: None,
            script: redis::Script::new(SCRIPT),
            config: config.clone(),
        })
    }
}

/// Writes a window's hash unless the stored one is of a later window; renews the TTL.
const LATEST_WINDOW: &str = r"
local current = redis.call('HGET', KEYS[1], 'window_start')
if current and tonumber(current) > tonumber(ARGV[1]) then
  return 0
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
";

/// The hash of a metrics record: the record's fields flattened (a null statistic left out).
pub fn hash_fields(
    record: &WindowRecord,
    aggregation: &AggregationConfig,
    emitted_at: u64,
) -> Vec<(&'static str, String)> {
    let (key, result) = record;
    let mut fields = vec![
        ("aggregation", aggregation.name.clone()),
        ("window", aggregation.window.kind_name().to_owned()),
        ("group_by", aggregation.group_by.field_name().to_owned()),
        ("key", key.key.to_string()),
        ("window_start", key.start.to_string()),
        ("window_end", key.end.to_string()),
    ];
    fields.extend(flat_statistics(result).into_iter().map(|(name, stat)| match stat {
        Stat::Int(n) => (name, n.to_string()),
        Stat::Float(f) => (name, f.to_string()),
    }));
    fields.push(("emitted_at", emitted_at.to_string()));
    fields
}

/// The latest window per (aggregation, key) as Redis hashes.
pub struct RedisMetricsSink {
    client: redis::Client,
    connection: Option<redis::Connection>,
    prefix: String,
    ttl_ms: u64,
    aggregations: Arc<Vec<AggregationConfig>>,
    name: String,
}

impl RedisMetricsSink {
    /// A sink for `config` (connects on the first write).
    pub fn open(
        config: &RedisSinkConfig,
        aggregations: Arc<Vec<AggregationConfig>>,
    ) -> Result<RedisMetricsSink, SinkError> {
        let name = format!("redis {}", display_url(&redis_url(config)));
        Ok(RedisMetricsSink {
            client: client(config)?,
            connection: None,
            prefix: config.key_prefix.clone(),
            ttl_ms: config.ttl.0.max(1),
            aggregations,
            name,
        })
    }

    fn write_once(&mut self, batch: &[WindowRecord], emitted_at: u64) -> redis::RedisResult<()> {
        if self.connection.is_none() {
            self.connection = Some(self.client.get_connection_with_timeout(Duration::from_secs(5))?);
        }
        let mut pipe = redis::pipe();
        for record in batch {
            let aggregation = &self.aggregations[usize::from(record.0.aggregation)];
            let key = format!("{}:metrics:{}:{}", self.prefix, aggregation.name, record.0.key);
            let command = pipe.cmd("EVAL").arg(LATEST_WINDOW).arg(1).arg(key).arg(record.0.start).arg(self.ttl_ms);
            for (field, value) in hash_fields(record, aggregation, emitted_at) {
                command.arg(field).arg(value);
            }
            command.ignore();
        }
        let Some(connection) = self.connection.as_mut() else { return Ok(()) };
        pipe.query::<()>(connection)
    }
}

impl Sink for RedisMetricsSink {
    fn kind(&self) -> SinkKind {
        SinkKind::Redis
    }
    fn write_metrics(&mut self, batch: &[WindowRecord]) -> Result<(), SinkError> {
        let emitted_at = wall_clock_ms();
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.write_once(batch, emitted_at) {
                Ok(()) => return Ok(()),
                Err(e) if is_refusal(&e) => {
                    return Err(SinkError::service(format!("{} metrics sink", self.name), e, false));
                }
                Err(e) => {
                    // Connection lost, server away or loading: try again, holding the pipeline back.
                    tracing::warn!(sink = %self.name, error = %e, ?backoff, "redis metrics write failed; retrying");
                    self.connection = None;
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
    }
    fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

impl Deliver for RedisChannel {
    fn deliver(&mut self, key: &str, body: &str) -> Result<(), DeliveryError> {
        if self.connection.is_none() {
            let connection =
                self.client.get_connection_with_timeout(std::time::Duration::from_secs(5)).map_err(|e| {
                    if is_refusal(&e) {
                        DeliveryError::permanent(format!("the server refused the credentials: {e}"))
                    } else {
                        DeliveryError::transient(format!("connect: {e}"))
                    }
                })?;
            self.connection = Some(connection);
        }
        let Some(connection) = self.connection.as_mut() else {
            return Err(DeliveryError::transient("not connected"));
        };
        let result: redis::RedisResult<i64> = self
            .script
            .key(format!("{}:seen:{key}", self.config.stream))
            .key(&self.config.stream)
            .arg(key)
            .arg(body)
            .arg(self.config.dedup_ttl.0)
            .arg(self.config.maxlen)
            .arg(&self.config.channel)
            .invoke(connection);
        result.map(|_| ()).map_err(|e| {
            self.connection = None;
            if is_refusal(&e) { DeliveryError::permanent(e) } else { DeliveryError::transient(e) }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_their_credentials() {
        assert_eq!(display_url("redis://alice:s3cret@127.0.0.1:6379/0"), "redis://127.0.0.1:6379/0");
        assert_eq!(display_url("rediss://:pw@localhost:6380"), "rediss://localhost:6380");
        assert_eq!(display_url("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
    }
}
