//! In-memory partitions of JSON lines: what `rtsa bench` and the tests feed the pipeline with,
//! so that a measurement times the engine and not the disk.

use super::{Partition, Poll, SourceError};
use std::sync::Arc;

/// JSON lines held in memory as one buffer plus line boundaries.
#[derive(Clone, Debug, Default)]
pub struct MemoryLines {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl MemoryLines {
    /// Appends one line (without newline).
    pub fn push(&mut self, line: &[u8]) {
        self.bytes.extend_from_slice(line);
        self.ends.push(self.bytes.len());
    }
    /// Number of lines.
    pub fn len(&self) -> usize {
        self.ends.len()
    }
    /// Whether there are no lines.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }
    /// Total bytes.
    pub fn byte_len(&self) -> usize {
        self.bytes.len()
    }
    /// Line `i`.
    pub fn line(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.bytes[start..self.ends[i]]
    }
}

/// A partition reading shared in-memory lines; offsets are line indexes.
pub struct MemoryPartition {
    lines: Arc<MemoryLines>,
    next: usize,
}

impl MemoryPartition {
    /// A partition over `lines`.
    pub fn new(lines: Arc<MemoryLines>) -> MemoryPartition {
        MemoryPartition { lines, next: 0 }
    }
}

impl Partition for MemoryPartition {
    fn poll(&mut self, budget: usize, emit: &mut dyn FnMut(&[u8], u64)) -> Result<Poll, SourceError> {
        let end = (self.next + budget).min(self.lines.len());
        for i in self.next..end {
            emit(self.lines.line(i), i as u64);
        }
        self.next = end;
        Ok(if end == self.lines.len() { Poll::Finished } else { Poll::Ready })
    }
}
