//! `rtsa topics create`: creates the events, metrics, alerts and dead-letter topics of a config
//! with the configured partitions and replication; existing topics are left as they are.

use super::{load_config, print_line};
use crate::config::{Config, SinkRole, SourceConfig};
use crate::error::Error;
use crate::kafka::create_topics;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;

/// The topics a config reads and writes (defaults where the config names none).
pub fn topics_of(config: &Config) -> Vec<String> {
    let mut topics = BTreeSet::new();
    match &config.source {
        SourceConfig::Kafka(k) => topics.insert(k.topic.clone()),
        _ => topics.insert("events".to_owned()),
    };
    let outputs = config.output_topics();
    if outputs.is_empty() {
        for role in [SinkRole::Metrics, SinkRole::DeadLetters] {
            topics.insert(role.default_topic(&config.kafka).to_owned());
        }
    }
    topics.extend(outputs);
    topics.insert(SinkRole::Alerts.default_topic(&config.kafka).to_owned());
    topics.into_iter().collect()
}

/// `rtsa topics …`.
#[derive(Debug, clap::Args)]
pub struct TopicsArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: TopicsCommand,
}

/// The `rtsa topics` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum TopicsCommand {
    /// Create the events, metrics, alerts and dead-letter topics (existing ones are left alone).
    Create {
        /// Brokers, `host:port[,host:port…]` (overrides the config's kafka.bootstrap_servers).
        #[arg(long)]
        brokers: String,
        /// The config whose topics and partition counts to use (default: the defaults).
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

/// Runs `rtsa topics …`.
pub fn topics(args: &TopicsArgs) -> Result<ExitCode, Error> {
    let TopicsCommand::Create { brokers, config } = &args.command;
    let mut config = load_config(config.as_deref())?;
    config.kafka.bootstrap_servers = brokers.clone();
    for created in create_topics(&config.kafka, &topics_of(&config))? {
        print_line(&created.to_string());
    }
    Ok(ExitCode::SUCCESS)
}
