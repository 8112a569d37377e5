//! `rtsa tail`: consumes the metrics or alerts topic (read-committed) and prints one line per
//! record, readable or raw JSON.

use crate::error::Error;
use crate::kafka::client_config;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use serde_json::Value;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// What to tail.
#[derive(Debug, clap::Args)]
pub struct TailArgs {
    /// Brokers, `host:port[,host:port…]`.
    #[arg(long)]
    pub brokers: String,
    /// Topic to read.
    #[arg(long)]
    pub topic: String,
    /// Start at the beginning of the topic instead of its end.
    #[arg(long)]
    pub from_beginning: bool,
    /// Print each record's raw JSON.
    #[arg(long)]
    pub json: bool,
    /// Stop after this many records.
    #[arg(long)]
    pub max_records: Option<u64>,
    /// Stop after this long without a record (for example `5s`).
    #[arg(long)]
    pub idle_exit: Option<String>,
    /// A config whose `kafka:` section to use (security settings, properties, the SASL password
    /// from its `sasl_password_env`); --brokers overrides its bootstrap_servers.
    #[arg(long)]
    pub config: Option<std::path::PathBuf>,
}

/// One readable line for a metrics or alert record (raw text for anything else).
pub fn describe(payload: &[u8]) -> String {
    let Ok(v) = serde_json::from_slice::<Value>(payload) else {
        return String::from_utf8_lossy(payload).into_owned();
    };
    let time = |key: &str| {
        v[key]
            .as_i64()
            .and_then(chrono::DateTime::from_timestamp_millis)
            .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_else(|| v[key].to_string())
    };
    if v.get("alert_id").is_some() {
        return format!(
            "[{}] {} {} {}={}: {}",
            v["severity"].as_str().unwrap_or("?"),
            v["rule"].as_str().unwrap_or("?"),
            time("window_start"),
            v["group_by"].as_str().unwrap_or("?"),
            v["key"].as_str().unwrap_or("?"),
            v["message"].as_str().unwrap_or("")
        );
    }
    if v.get("aggregation").is_some() && v.get("count").is_some() {
        let mut line = format!(
            "{} {} {}..{} {}={} count={} errors={:.2}% users={}",
            v["aggregation"].as_str().unwrap_or("?"),
            v["window"].as_str().unwrap_or("?"),
            time("window_start"),
            time("window_end"),
            v["group_by"].as_str().unwrap_or("?"),
            v["key"].as_str().unwrap_or("?"),
            v["count"],
            v["error_rate"].as_f64().unwrap_or(0.0),
            v["unique_users"]
        );
        if let (Some(p50), Some(p99)) = (v["latency_ms"]["p50"].as_f64(), v["latency_ms"]["p99"].as_f64()) {
            line.push_str(&format!(" p50={p50:.1}ms p99={p99:.1}ms"));
        }
        return line;
    }
    v.to_string()
}

/// Runs `rtsa tail` until Ctrl-C (or the limits); returns the number of records printed.
pub fn tail(args: &TailArgs, stop: Arc<AtomicBool>) -> Result<u64, Error> {
    let idle = args
        .idle_exit
        .as_deref()
        .map(|t| crate::config::Millis::parse(t).map(|m| m.as_duration()))
        .transpose()
        .map_err(|e| Error::Usage(format!("--idle-exit: {e}")))?;
    let kafka = super::kafka_section(args.config.as_deref(), &args.brokers)?;
    let mut config = client_config(&kafka);
    config
        .set("group.id", format!("rtsa-tail-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed");
    let consumer: BaseConsumer =
        config.create().map_err(|e| Error::kafka(&args.brokers, format!("cannot create a consumer: {e}")))?;
    let partitions = crate::kafka::partition_count(&kafka, &args.topic)?;
    let mut assignment = TopicPartitionList::new();
    for p in 0..partitions {
        let offset = if args.from_beginning { Offset::Beginning } else { Offset::End };
        assignment
            .add_partition_offset(&args.topic, p as i32, offset)
            .map_err(|e| Error::kafka(&args.brokers, format!("topic {} partition {p}: {e}", args.topic)))?;
    }
    consumer.assign(&assignment).map_err(|e| Error::kafka(&args.brokers, format!("cannot assign partitions: {e}")))?;
    let stdout = std::io::stdout();
    let mut printed = 0u64;
    let mut last = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        if args.max_records.is_some_and(|m| printed >= m) || idle.is_some_and(|i| last.elapsed() >= i) {
            break;
        }
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(e)) => tracing::warn!(error = %e, "kafka"),
            Some(Ok(message)) => {
                let payload = message.payload().unwrap_or(&[]);
                let line = if args.json { String::from_utf8_lossy(payload).into_owned() } else { describe(payload) };
                let mut out = stdout.lock();
                if writeln!(out, "{line}").and_then(|_| out.flush()).is_err() {
                    break;
                }
                printed += 1;
                last = Instant::now();
            }
        }
    }
    Ok(printed)
}
