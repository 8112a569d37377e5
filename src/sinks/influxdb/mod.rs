//! InfluxDB as a sink of metrics records, alerts and the engine's own counters (CONTRACT 4.1):
//! line protocol over HTTP, v1 `/write?db=` or v2 `/api/v2/write?org=&bucket=` (InfluxDB 2.x,
//! or anything that takes its write API), `precision=ms`, gzip, in batches of `batch_size` lines
//! or after `linger`.
//!
//! A writer thread of its own posts the batches. While InfluxDB is away (connection errors,
//! 429, 5xx) it retries with backoff, without a limit, and the bounded queue in front of it
//! fills and then holds the pipeline back: nothing is dropped and nothing stops. A refusal that
//! a retry cannot mend (a bad token, a missing database: other 4xx) fails the run with an error
//! naming the sink. A replay writes the same series at the same timestamps, so it overwrites.

pub mod line_protocol;

use crate::config::{InfluxApi, InfluxSinkConfig};
use dataflows::alerts::Alert;
use dataflows::control::{Counters, RunControl, wall_clock_ms};
use dataflows::record::WindowRecord;
use dataflows::sink::{Sink, SinkError};
use dataflows::spec::{AggregationConfig, SinkKind};
use flate2::Compression;
use flate2::write::GzEncoder;
use line_protocol::{Field, alert_line, line, metric_line};
use std::io::Write;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Batches of lines waiting for the writer; a full queue blocks the sink (backpressure).
const QUEUED_BATCHES: usize = 64;
/// The longest wait between two attempts while InfluxDB is away.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// What the writer thread is told.
enum Message {
    Lines(Vec<String>),
    /// Post what is pending, then answer.
    Flush(SyncSender<()>),
}

/// Where and how to post.
struct Endpoint {
    client: reqwest::blocking::Client,
    url: reqwest::Url,
    authorization: Option<String>,
    /// The sink as errors name it (no secret in it).
    name: String,
}

/// A failed post: retry later, or give up.
enum PostError {
    Transient(String),
    Permanent(String),
}

impl Endpoint {
    fn open(config: &InfluxSinkConfig) -> Result<Endpoint, SinkError> {
        let base = config.url.trim_end_matches('/');
        let name = format!("influxdb {} ({})", base, config.api.as_str());
        let unusable = |reason: String| SinkError::Unsupported { what: format!("{name} sink"), reason };
        let secret = |variable: &Option<String>, key: &str| -> Result<Option<String>, SinkError> {
            variable
                .as_ref()
                .map(|v| std::env::var(v).map_err(|_| unusable(format!("environment variable {v} ({key}) is not set"))))
                .transpose()
        };
        let (path, pairs, authorization) = match config.api {
            InfluxApi::V1 => {
                let database = config.database.as_deref().unwrap_or("rtsa");
                let password = secret(&config.password_env, "password_env")?;
                let mut pairs = vec![("db", database.to_owned()), ("precision", "ms".to_owned())];
                pairs.extend(config.username.clone().map(|user| ("u", user)));
                pairs.extend(password.map(|password| ("p", password)));
                ("write", pairs, None)
            }
            InfluxApi::V2 => {
                let org = config.org.as_deref().unwrap_or("rtsa");
                let bucket = config.bucket.as_deref().unwrap_or("rtsa");
                let token = secret(&config.token_env, "token_env")?;
                let pairs =
                    vec![("org", org.to_owned()), ("bucket", bucket.to_owned()), ("precision", "ms".to_owned())];
                ("api/v2/write", pairs, token.map(|t| format!("Token {t}")))
            }
        };
        let url = reqwest::Url::parse_with_params(&format!("{base}/{path}"), &pairs)
            .map_err(|e| unusable(format!("url: {e}")))?;
        let client =
            crate::sinks::http_client(config.timeout.as_duration(), config.tls_ca_file.as_deref()).map_err(unusable)?;
        Ok(Endpoint { client, url, authorization, name })
    }

    /// Posts one batch, gzipped.
    fn post(&self, lines: &[String]) -> Result<(), PostError> {
        let mut body = GzEncoder::new(Vec::with_capacity(lines.len() * 64), Compression::fast());
        for l in lines {
            let _ = body.write_all(l.as_bytes()).and_then(|_| body.write_all(b"\n"));
        }
        let body = body.finish().map_err(|e| PostError::Permanent(format!("gzip: {e}")))?;
        let mut request = self
            .client
            .post(self.url.clone())
            .header("Content-Type", "text/plain; charset=utf-8")
            .header("Content-Encoding", "gzip")
            .body(body);
        if let Some(authorization) = &self.authorization {
            request = request.header("Authorization", authorization);
        }
        // Without the URL: its query may hold the password.
        let response = request.send().map_err(|e| PostError::Transient(e.without_url().to_string()))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let text: String = response.text().unwrap_or_default().chars().take(300).collect();
        let reason = format!("HTTP {status}: {}", text.trim());
        if status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408 {
            Err(PostError::Transient(reason))
        } else {
            Err(PostError::Permanent(reason))
        }
    }
}

/// This process's resident set size (`VmRSS`), if the system says.
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse::<u64>()
        .ok()?;
    Some(kb * 1024)
}

/// The engine's own counters as a point (CONTRACT 4.1, `rtsa_engine`).
fn engine_line(control: &RunControl, process: usize) -> String {
    let c = &control.counters;
    let now = wall_clock_ms();
    let int = |counter: &std::sync::atomic::AtomicU64| Field::Int(Counters::get(counter) as i64);
    let mut fields = vec![
        ("events_in_total", int(&c.events_in)),
        ("late_events_total", int(&c.late_events)),
        ("invalid_events_total", int(&c.invalid_events)),
        ("records_out_total", int(&c.metrics_records)),
        ("dead_letters_total", int(&c.dead_letters)),
        ("alerts_total", int(&c.alerts)),
        ("alerts_undelivered_total", int(&c.alerts_undelivered)),
    ];
    fields.push(("backpressure_epochs", int(&c.backpressure_epochs)));
    fields.push(("open_windows", Field::Int(c.open_windows.total() as i64)));
    let lags = c.kafka_lag.values();
    if !lags.is_empty() {
        fields.push(("kafka_lag_messages", Field::Int(lags.iter().map(|(_, n)| *n as i64).sum())));
    }
    fields.extend([
        ("checkpoints_total", int(&c.checkpoints)),
        ("checkpoint_failures_total", int(&c.checkpoint_failures)),
        ("checkpoint_retries_total", int(&c.checkpoint_retries)),
        ("checkpoint_bytes", int(&c.checkpoint_bytes)),
        ("checkpoint_duration_seconds", Field::Float(Counters::get(&c.checkpoint_duration_ms) as f64 / 1000.0)),
        ("last_checkpoint_ms", int(&c.last_checkpoint)),
    ]);
    if let Some(rss) = resident_bytes() {
        fields.push(("memory_rss_bytes", Field::Int(rss as i64)));
    }
    if let Some(watermark) = control.watermarks.min() {
        fields.push(("watermark_ms", Field::Int(watermark as i64)));
        fields.push(("watermark_lag_seconds", Field::Float(now.saturating_sub(watermark) as f64 / 1000.0)));
    }
    line("rtsa_engine", &[("process", &process.to_string())], &fields, now as i64)
}

/// The writer thread: batches lines, posts them, retries, adds the engine's counters.
struct Writer {
    endpoint: Endpoint,
    batch_size: usize,
    linger: Duration,
    /// Every this often an engine point, when this sink writes them.
    engine_every: Option<Duration>,
    control: Arc<RunControl>,
}

impl Writer {
    fn run(self, receiver: Receiver<Message>) {
        let mut pending: Vec<String> = Vec::new();
        let mut oldest: Option<Instant> = None;
        let mut next_engine = self.engine_every.map(|every| Instant::now() + every);
        let mut failed = false;
        loop {
            let wait = [oldest.map(|t| t + self.linger), next_engine]
                .into_iter()
                .flatten()
                .min()
                .map_or(Duration::from_secs(3600), |at| at.saturating_duration_since(Instant::now()));
            match receiver.recv_timeout(wait) {
                Ok(Message::Lines(lines)) => {
                    if !failed {
                        oldest.get_or_insert_with(Instant::now);
                        pending.extend(lines);
                    }
                }
                Ok(Message::Flush(done)) => {
                    failed |= !self.post_all(&mut pending);
                    oldest = None;
                    let _ = done.send(());
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if next_engine.is_some_and(|at| Instant::now() >= at) && !failed {
                pending.push(engine_line(&self.control, 0));
                next_engine = self.engine_every.map(|every| Instant::now() + every);
                oldest.get_or_insert_with(Instant::now);
            }
            let due = pending.len() >= self.batch_size || oldest.is_some_and(|t| t.elapsed() >= self.linger);
            if due && !failed {
                failed |= !self.post_all(&mut pending);
                oldest = None;
            }
            if failed {
                pending.clear();
            }
        }
        // The end of the run: the last counters, then everything pending.
        if !failed {
            if self.engine_every.is_some() {
                pending.push(engine_line(&self.control, 0));
            }
            self.post_all(&mut pending);
        }
    }

    /// Posts `pending` in batches, retrying transient failures without a limit; false after a
    /// permanent one (the run is failed, naming the sink).
    fn post_all(&self, pending: &mut Vec<String>) -> bool {
        for batch in pending.chunks(self.batch_size) {
            let mut backoff = Duration::from_millis(100);
            loop {
                match self.endpoint.post(batch) {
                    Ok(()) => break,
                    Err(PostError::Transient(reason)) => {
                        tracing::warn!(sink = %self.endpoint.name, %reason, ?backoff, "influxdb write failed; retrying");
                        std::thread::sleep(backoff);
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                    Err(PostError::Permanent(reason)) => {
                        self.control.fail(format!("{} sink: the write was refused: {reason}", self.endpoint.name));
                        pending.clear();
                        return false;
                    }
                }
            }
        }
        pending.clear();
        true
    }
}

/// An InfluxDB sink.
pub struct InfluxSink {
    sender: Option<SyncSender<Message>>,
    thread: Option<JoinHandle<()>>,
    aggregations: Arc<Vec<AggregationConfig>>,
    measurement: String,
    alerts_measurement: String,
    name: String,
}

impl InfluxSink {
    /// Opens the sink; with `engine_metrics`, it also writes the engine's counters every
    /// `metrics_interval` and at the end.
    pub fn open(
        config: &InfluxSinkConfig,
        aggregations: Arc<Vec<AggregationConfig>>,
        engine_metrics: Option<Duration>,
        control: Arc<RunControl>,
    ) -> Result<InfluxSink, SinkError> {
        let endpoint = Endpoint::open(config)?;
        let name = endpoint.name.clone();
        if engine_metrics.is_some() && config.engine_metrics {
            // The open (window, key) entries are counted by the workers' live reports.
            control.live.enable();
        }
        let writer = Writer {
            endpoint,
            batch_size: config.batch_size.get(),
            linger: config.linger.as_duration(),
            engine_every: engine_metrics.filter(|_| config.engine_metrics),
            control,
        };
        let (sender, receiver) = sync_channel(QUEUED_BATCHES);
        let thread = std::thread::Builder::new()
            .name("rtsa-influxdb".into())
            .spawn(move || writer.run(receiver))
            .map_err(|e| SinkError::io(format!("{name} sink: cannot start its writer thread"), e))?;
        Ok(InfluxSink {
            sender: Some(sender),
            thread: Some(thread),
            aggregations,
            measurement: config.measurement.clone(),
            alerts_measurement: config.alerts_measurement.clone(),
            name,
        })
    }

    fn send(&self, message: Message) -> Result<(), SinkError> {
        let stopped = || SinkError::service(format!("{} sink", self.name), "its writer stopped", false);
        self.sender.as_ref().ok_or_else(stopped)?.send(message).map_err(|_| stopped())
    }
}

impl Sink for InfluxSink {
    fn kind(&self) -> SinkKind {
        SinkKind::Influxdb
    }
    fn write_metrics(&mut self, batch: &[WindowRecord]) -> Result<(), SinkError> {
        let lines = batch
            .iter()
            .map(|r| metric_line(&self.measurement, r, &self.aggregations[usize::from(r.0.aggregation)]))
            .collect();
        self.send(Message::Lines(lines))
    }
    fn write_alerts(&mut self, batch: &[Alert]) -> Result<(), SinkError> {
        self.send(Message::Lines(batch.iter().map(|a| alert_line(&self.alerts_measurement, a)).collect()))
    }
    fn flush(&mut self) -> Result<(), SinkError> {
        let (done, flushed) = sync_channel(1);
        self.send(Message::Flush(done))?;
        let _ = flushed.recv();
        Ok(())
    }
    fn close(&mut self) -> Result<(), SinkError> {
        self.sender = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        Ok(())
    }
}

impl Drop for InfluxSink {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_encoded_and_errors_lose_the_password() {
        let config: InfluxSinkConfig = serde_yaml_ng::from_str(
            "{ api: v1, url: 'http://127.0.0.1:1/', database: 'my db&x', username: u, password_env: RTSA_TEST_INFLUX_PW }",
        )
        .unwrap();
        // SAFETY: this test alone reads this variable.
        unsafe { std::env::set_var("RTSA_TEST_INFLUX_PW", "s3cret") };
        let endpoint = Endpoint::open(&config).unwrap();
        assert_eq!(endpoint.url.as_str(), "http://127.0.0.1:1/write?db=my+db%26x&precision=ms&u=u&p=s3cret");
        let Err(PostError::Transient(reason)) = endpoint.post(&["m f=1i 0".to_owned()]) else {
            panic!("port 1 answers")
        };
        assert!(!reason.contains("s3cret"), "{reason}");
    }
}
