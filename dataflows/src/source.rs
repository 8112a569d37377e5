//! What a source connector implements: a [`Source`] names itself, counts its partitions and
//! opens the ones a worker owns, each from a [`PartitionPosition`] (so a checkpoint can record
//! where every partition stands and a restart can continue there); a [`Partition`] delivers raw
//! inputs (bytes plus their offset or line number) in bounded batches. Each partition has its
//! own watermark; partitions are owned by global worker index (`partition % peers == index`).

use serde::{Deserialize, Serialize};
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

/// Where a partition's reading stands: enough to continue right after the last input delivered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PartitionPosition {
    /// The next input: a byte offset (files), a message offset (Kafka), an index (generator,
    /// in-memory partitions).
    pub next: u64,
    /// Lines read so far, blank ones included (files and stdin: the next line is `lines + 1`).
    pub lines: u64,
}

/// A failure of a source, saying whose fault it is.
#[derive(Debug, Error)]
pub enum SourceError {
    /// Reading failed (a file, a broker): the environment's fault; a retry may help.
    #[error("{what}: {source}")]
    Io {
        /// What was being read.
        what: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The source cannot do what was asked (resume stdin, read a topic that does not exist):
    /// the user's input or config; retrying will not help.
    #[error("{what}: {reason}")]
    Unsupported {
        /// What was asked of.
        what: String,
        /// Why it cannot be done.
        reason: String,
    },
}

impl SourceError {
    /// An I/O failure of `what`.
    pub fn io(what: impl Into<String>, source: std::io::Error) -> SourceError {
        SourceError::Io { what: what.into(), source }
    }
    /// Whether retrying may help.
    pub fn retryable(&self) -> bool {
        matches!(self, SourceError::Io { .. })
    }
}

/// One partition of a source (`Send`: a live input of one partition is read on a thread of its
/// own, `feed`).
pub trait Partition: Send {
    /// Delivers up to `budget` inputs to `emit` as (bytes, offset or line number).
    fn poll(&mut self, budget: usize, emit: &mut dyn FnMut(&[u8], u64)) -> Result<Poll, SourceError>;
    /// Where reading stands after the inputs delivered so far.
    fn position(&self) -> PartitionPosition;
    /// How many inputs wait between the position and the partition's end, where the source
    /// knows (a Kafka partition's lag); reported as `rtsa_kafka_lag_messages`.
    fn backlog(&self) -> Option<u64> {
        None
    }
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

/// A source of events: one per run, shared by the workers, each of which opens its partitions.
pub trait Source: Send + Sync {
    /// How it names itself in dead letters.
    fn kind(&self) -> SourceKind;
    /// How many partitions it has (fixed for the run).
    fn partition_count(&self) -> u32;
    /// For a source of one partition that can be cut into chunks read independently (a file):
    /// the chunks from `from` on, so that every worker of the process reads and parses a share
    /// of it. `None` (the default) for sources read in order only.
    fn chunked(
        &self,
        _from: PartitionPosition,
    ) -> Result<Option<std::sync::Arc<dyn crate::chunks::ChunkedInput>>, SourceError> {
        Ok(None)
    }
    /// Whether a source of one partition that cannot be cut in advance is worth reading on a
    /// thread of its own and cutting into chunks as it arrives, so that every worker parses a
    /// share (a pipe, a Kafka partition: `feed`). `false` (the default) where the one partition
    /// is as cheap to make as to read (the generator, memory) or may block (a named pipe).
    fn fed_to_every_worker(&self) -> bool {
        false
    }
    /// Opens the partitions `indexes`, each from its position in `from` (from the start when
    /// absent).
    fn open(&self, indexes: &[u32], from: &[(u32, PartitionPosition)]) -> Result<OwnedPartitions, SourceError>;
}

/// The position `from` gives partition `index`, or the start.
pub fn start_of(from: &[(u32, PartitionPosition)], index: u32) -> PartitionPosition {
    from.iter().find(|(p, _)| *p == index).map(|(_, at)| *at).unwrap_or_default()
}
