//! Sources: partitions of raw inputs (bytes plus a position) that the event-source operator reads
//! in bounded batches. Each partition has its own watermark; partitions are owned by global
//! worker index (`partition % peers == index`).

pub mod file;
pub mod generator;
pub mod kafka;
pub mod memory;

use crate::config::{Config, SourceConfig};
use thiserror::Error;

/// What a poll of a partition found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Poll {
    /// It delivered its budget and may have more right away.
    Ready,
    /// Nothing more is available now; poll again later.
    Pending,
    /// It has delivered everything it will ever deliver.
    Finished,
}

/// A failure of a source (reading a file, a broker, …).
#[derive(Debug, Error)]
pub enum SourceError {
    /// An I/O failure, with what was being read.
    #[error("{what}: {source}")]
    Io {
        /// What was being read.
        what: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// One partition of a source.
pub trait Partition {
    /// Delivers up to `budget` inputs to `emit` as (bytes, offset or line number).
    fn poll(&mut self, budget: usize, emit: &mut dyn FnMut(&[u8], u64)) -> Result<Poll, SourceError>;
}

/// The partitions a worker owns: (partition index, reader).
pub type OwnedPartitions = Vec<(u32, Box<dyn Partition>)>;

/// How a source names itself and its positions in dead letters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SourceKind {
    /// `file`, `stdin`, `generator`, `memory`, `kafka`.
    pub name: &'static str,
    /// Positions are line numbers (`line N`), not `partition P offset O`.
    pub by_line: bool,
}

/// The source of a config: its kind and how many partitions it has (for Kafka, asked of the
/// broker).
pub fn describe(config: &Config) -> Result<(SourceKind, u32), String> {
    Ok(match &config.source {
        SourceConfig::File(_) => (SourceKind { name: "file", by_line: true }, 1),
        SourceConfig::Stdin(_) => (SourceKind { name: "stdin", by_line: true }, 1),
        SourceConfig::Generator(g) => (SourceKind { name: "generator", by_line: false }, g.partitions),
        SourceConfig::Kafka(k) => {
            (SourceKind { name: "kafka", by_line: false }, crate::kafka::partition_count(&config.kafka, &k.topic)?)
        }
    })
}

/// Opens the partitions `indexes` of the config's source (called by the worker that owns them).
/// `start_ms` is the generator's start time when the config leaves it to the wall clock, fixed
/// once per run so that every worker and process agrees.
pub fn open_partitions(config: &Config, indexes: &[u32], start_ms: u64) -> Result<OwnedPartitions, SourceError> {
    let max_bytes = config.engine.max_event_bytes;
    if let SourceConfig::Kafka(k) = &config.source {
        return kafka::open_partitions(&config.kafka, k, indexes);
    }
    indexes
        .iter()
        .map(|&index| {
            let partition: Box<dyn Partition> = match &config.source {
                SourceConfig::File(f) => Box::new(file::LinePartition::open_file(&f.path, max_bytes)?),
                SourceConfig::Stdin(_) => Box::new(file::LinePartition::stdin(max_bytes)),
                SourceConfig::Generator(g) => {
                    let generator = generator::Generator::new(g, g.start_ms.unwrap_or(start_ms), index, g.partitions);
                    Box::new(generator::GeneratorPartition::new(generator, g.rate, g.partitions))
                }
                SourceConfig::Kafka(_) => unreachable!("handled above"),
            };
            Ok((index, partition))
        })
        .collect()
}
