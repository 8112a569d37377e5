//! Source connectors: one type per source kind, each implementing the dataflows' [`Source`]
//! trait, and one `match` from the config to it ([`open`]).

pub mod file;
pub mod generator;
pub mod kafka;

use crate::config::{Config, SourceConfig};
use crate::error::Error;
pub use dataflows::source::{
    OwnedPartitions, Partition, PartitionPosition, Poll, Source, SourceError, SourceKind, start_of,
};

/// The source of a config. `start_ms` is the generator's start time when the config leaves it to
/// the wall clock, fixed once per run so that every worker and process agrees. A Kafka source
/// asks the broker for its partition count here, so a missing topic fails before the run starts.
pub fn open(config: &Config, start_ms: u64) -> Result<Box<dyn Source>, Error> {
    let max_bytes = config.pipeline.engine.max_event_bytes.get();
    Ok(match &config.source {
        SourceConfig::File(f) => {
            Box::new(file::FileSource::new(&f.path, max_bytes, config.pipeline.engine.read_chunk_bytes.get()))
        }
        SourceConfig::Stdin(_) => {
            Box::new(file::StdinSource::new(max_bytes, config.pipeline.engine.read_chunk_bytes.get()))
        }
        SourceConfig::Generator(g) => Box::new(generator::GeneratorSource::new(g, g.start_ms.unwrap_or(start_ms))),
        SourceConfig::Kafka(k) => Box::new(kafka::KafkaSource::connect(&config.kafka, k)?),
    })
}
