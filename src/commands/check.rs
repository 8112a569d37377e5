//! `rtsa check`: validates a config (every problem at once, with its key path) and prints the
//! pipeline it describes, detectors included.

use crate::cli::{config_failure, print_line};
use crate::config::{self, Config, KafkaStart, SinkConfig, SourceConfig};
use std::path::Path;
use std::process::ExitCode;

/// Runs `rtsa check --config path`.
pub fn check_command(path: &Path) -> ExitCode {
    match config::load_file(path) {
        Ok(config) => {
            print_line(&format!("{} is valid.\n{}", path.display(), describe(&config)));
            ExitCode::SUCCESS
        }
        Err(errors) => config_failure(path, &errors),
    }
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
        config.watermark.max_out_of_orderness, config.watermark.idle_timeout, config.watermark.epoch
    ));
    out.push_str(&format!("aggregations ({}):\n", config.aggregations.len()));
    for a in &config.aggregations {
        out.push_str(&format!("  - {}: {} by {}\n", a.name, a.window, a.group_by.field_name()));
    }
    let list = |sinks: &[SinkConfig]| {
        if sinks.is_empty() {
            "none".to_owned()
        } else {
            sinks.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(", ")
        }
    };
    let rules = crate::detect::rules::compile(config);
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
        out.push_str(&format!("anomaly detection (cooldown {}):\n{detectors}", config.alerts.cooldown));
    }
    out.push_str(&format!("metrics sinks: {}\n", list(&config.sinks.metrics)));
    out.push_str(&format!("alert sinks: {}\n", list(&config.sinks.alerts)));
    out.push_str(&format!("dead-letter sink: {}\n", config.sinks.dead_letter));
    out
}
