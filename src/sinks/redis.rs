//! Redis as an alert channel: `XADD` to a capped stream and `PUBLISH` on a channel, once per
//! alert id (a `SET NX` guard in the same script), so a replay overwrites nothing and adds
//! nothing. Connection failures are retried with backoff until the alert is delivered.

use super::queued::{Deliver, DeliveryError};
use crate::config::RedisSinkConfig;
use dataflows::sink::SinkError;

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
    config
        .url
        .clone()
        .or_else(|| std::env::var("RTSA_REDIS_URL").ok())
        .unwrap_or_else(|| "redis://127.0.0.1:6379".to_owned())
}

impl RedisChannel {
    /// A channel for `config` (connects lazily).
    pub fn open(config: &RedisSinkConfig) -> Result<RedisChannel, SinkError> {
        let url = redis_url(config);
        let unusable = |reason: String| SinkError::Unsupported { what: format!("redis {url}"), reason };
        let mut info: redis::ConnectionInfo = url.as_str().parse().map_err(|e| unusable(format!("bad url: {e}")))?;
        if let Some(variable) = &config.password_env {
            let password = std::env::var(variable)
                .map_err(|_| unusable(format!("environment variable {variable} (password_env) is not set")))?;
            let settings = info.redis_settings().clone().set_password(password);
            info = info.set_redis_settings(settings);
        }
        let client = redis::Client::open(info).map_err(|e| unusable(e.to_string()))?;
        Ok(RedisChannel { client, connection: None, script: redis::Script::new(SCRIPT), config: config.clone() })
    }
}

impl Deliver for RedisChannel {
    fn deliver(&mut self, key: &str, body: &str) -> Result<(), DeliveryError> {
        if self.connection.is_none() {
            let connection = self
                .client
                .get_connection_with_timeout(std::time::Duration::from_secs(5))
                .map_err(|e| DeliveryError::transient(format!("connect: {e}")))?;
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
            DeliveryError::transient(e)
        })
    }
}
