//! Redis as an alert channel: `XADD` to a capped stream and `PUBLISH` on a channel, once per
//! alert id (a `SET NX` guard in the same script), so a replay overwrites nothing and adds
//! nothing. Connection failures are retried with backoff until the alert is delivered.

use super::queued::Deliver;
use crate::config::RedisSinkConfig;

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
    pub fn open(config: &RedisSinkConfig) -> Result<RedisChannel, String> {
        let url = redis_url(config);
        let mut info: redis::ConnectionInfo = url.as_str().parse().map_err(|e| format!("redis url {url}: {e}"))?;
        if let Some(variable) = &config.password_env {
            let password =
                std::env::var(variable).map_err(|_| format!("redis: environment variable {variable} is not set"))?;
            let settings = info.redis_settings().clone().set_password(password);
            info = info.set_redis_settings(settings);
        }
        let client = redis::Client::open(info).map_err(|e| format!("redis {url}: {e}"))?;
        Ok(RedisChannel { client, connection: None, script: redis::Script::new(SCRIPT), config: config.clone() })
    }
}

impl Deliver for RedisChannel {
    fn deliver(&mut self, key: &str, body: &str) -> Result<(), (bool, String)> {
        if self.connection.is_none() {
            let connection = self
                .client
                .get_connection_with_timeout(std::time::Duration::from_secs(5))
                .map_err(|e| (true, format!("connect: {e}")))?;
            self.connection = Some(connection);
        }
        let connection = self.connection.as_mut().expect("connected above");
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
            (true, e.to_string())
        })
    }
}
