//! `rtsa topics create`: creates the events, metrics, alerts and dead-letter topics of a config
//! with the configured partitions and replication; existing topics are left as they are.

use crate::config::{Config, SinkConfig, SourceConfig};
use crate::kafka::client_config;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;
use std::collections::BTreeSet;
use std::time::Duration;

/// The topics a config reads and writes (defaults where the config names none).
pub fn topics_of(config: &Config) -> Vec<String> {
    let mut topics = BTreeSet::new();
    match &config.source {
        SourceConfig::Kafka(k) => topics.insert(k.topic.clone()),
        _ => topics.insert("events".to_owned()),
    };
    let mut metrics = false;
    for sink in
        config.sinks.metrics.iter().chain(&config.sinks.alerts).chain(std::iter::once(&config.sinks.dead_letter))
    {
        if let SinkConfig::Kafka(k) = sink {
            topics.insert(k.topic.clone());
            metrics = true;
        }
    }
    if !metrics {
        topics.insert("metrics".to_owned());
        topics.insert("events-dead-letter".to_owned());
    }
    topics.insert(config.kafka.alerts_topic.clone());
    topics.into_iter().collect()
}

/// Creates `topics`; returns one line per topic saying what happened.
pub fn create_topics(config: &Config, topics: &[String]) -> Result<Vec<String>, String> {
    let brokers = &config.kafka.bootstrap_servers;
    let admin: AdminClient<DefaultClientContext> =
        client_config(&config.kafka).create().map_err(|e| format!("kafka {brokers}: cannot create a client: {e}"))?;
    let new: Vec<NewTopic> = topics
        .iter()
        .map(|t| {
            NewTopic::new(
                t,
                config.kafka.partitions as i32,
                TopicReplication::Fixed(config.kafka.replication_factor as i32),
            )
        })
        .collect();
    let options = AdminOptions::new()
        .operation_timeout(Some(Duration::from_secs(30)))
        .request_timeout(Some(Duration::from_secs(30)));
    let results = futures_executor::block_on(admin.create_topics(&new, &options))
        .map_err(|e| format!("kafka {brokers}: cannot create topics: {e}"))?;
    results
        .into_iter()
        .map(|result| match result {
            Ok(topic) => Ok(format!("created {topic} ({} partitions)", config.kafka.partitions)),
            Err((topic, RDKafkaErrorCode::TopicAlreadyExists)) => Ok(format!("exists  {topic} (left as it is)")),
            Err((topic, code)) => Err(format!("kafka {brokers}: cannot create topic {topic}: {code}")),
        })
        .collect()
}
