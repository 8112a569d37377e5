//! `rtsa check`: validates a config (every problem at once, with its key path) and prints the
//! pipeline it describes, detectors included.

use super::{load_config, print_line};
use crate::config::{Config, KafkaStart, SinkConfig, SourceConfig};
use crate::error::Error;
use std::path::PathBuf;
use std::process::ExitCode;

/// `rtsa check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The YAML config.
    #[arg(long)]
    pub config: PathBuf,
}

/// Runs `rtsa check --config path`.
pub fn check(args: &CheckArgs) -> Result<ExitCode, Error> {
    let config = load_config(Some(&args.config))?;
    print_line(&format!("{} is valid.\n{}", args.config.display(), describe(&config)));
    Ok(ExitCode::SUCCESS)
}

/// A readable description of the pipeline, as printed by `rtsa check`.
pub fn describe(config: &Config) -> String {
    let mut out = String::new();
    let source = match &config.source {
        SourceConfig::File(f) => format!("file {} (1 partition)", f.path.display()),
        SourceConfig::Stdin(_) => "stdin (1 partition)".to_owned(),
        SourceConfig::Kafka(k) => format!(
            "kafka topic {} at {} (group {}, from {}{})",
            k.topic,
            config.kafka.bootstrap_servers,
            k.group_id,
            match k.start {
                KafkaStart::Earliest => "the earliest offsets",
                KafkaStart::Latest => "the latest offsets",
                KafkaStart::Committed => "the committed offsets",
            },
            if k.stop_at.is_some() { ", until the end" } else { "" }
        ),
        SourceConfig::Generator(g) => format!(
            "generator: {} events, {} partitions, seed {}, {}",
            if g.count == 0 { "endless".to_owned() } else { g.count.to_string() },
            g.partitions,
            g.seed,
            if g.rate == 0 { "as fast as possible".to_owned() } else { format!("{} events/s", g.rate) }
        ),
    };
    out.push_str(&format!("source: {source}\n"));
    out.push_str(&format!(
        "watermark: max out-of-orderness {}, idle timeout {}, epoch {}\n",
        config.pipeline.watermark.max_out_of_orderness,
        config.pipeline.watermark.idle_timeout,
        config.pipeline.watermark.epoch
    ));
    out.push_str(&format!("aggregations ({}):\n", config.pipeline.aggregations.len()));
    for a in &config.pipeline.aggregations {
        out.push_str(&format!("  - {}: {} by {}\n", a.name, a.window, a.group_by.field_name()));
    }
    let list = |sinks: &[SinkConfig]| {
        if sinks.is_empty() {
            "none".to_owned()
        } else {
            sinks.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(", ")
        }
    };
    let rules = dataflows::detect::rules::compile(&config.pipeline);
    let names = |kind: &str, names: Vec<&str>| {
        if names.is_empty() { String::new() } else { format!("  - {kind}: {}\n", names.join(", ")) }
    };
    let detectors = [
        names("window rules (threshold, z-score)", rules.window.iter().map(|r| r.name.as_str()).collect()),
        names("single-event rules", rules.event.iter().map(|r| r.name.as_str()).collect()),
        names("pattern rules", rules.pattern.iter().map(|r| r.name.as_str()).collect()),
        names("rare-sequence rules", rules.rare.iter().map(|r| r.name.as_str()).collect()),
    ]
    .concat();
    if detectors.is_empty() {
        out.push_str("anomaly detection: none\n");
    } else {
        out.push_str(&format!("anomaly detection (cooldown {}):\n{detectors}", config.pipeline.alerts.cooldown));
    }
    out.push_str(&format!("metrics sinks: {}\n", list(&config.sinks.metrics)));
    out.push_str(&format!("alert sinks: {}\n", list(&config.sinks.alerts)));
    out.push_str(&format!("dead-letter sink: {}\n", config.sinks.dead_letter));
    match (config.http.listen, &config.http.token_env) {
        (crate::config::HttpListen::Off, _) => out.push_str("http: off\n"),
        (listen, token) => out.push_str(&format!(
            "http: dashboard, /metrics and /health on {listen}{}\n",
            token.as_ref().map(|name| format!(" (bearer token from ${name})")).unwrap_or_default()
        )),
    }
    out
}
