//! In-memory partitions of JSON lines: what `rtsa bench` and the tests feed the pipeline with,
//! so that a measurement times the engine and not the disk.

use crate::chunks::{ChunkCount, ChunkLines, ChunkReader, ChunkedInput};
use crate::source::{OwnedPartitions, Partition, PartitionPosition, Poll, Source, SourceError, SourceKind, start_of};
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
    /// Appends one line whose bytes `fill` appends to the buffer it is given (a reader's next
    /// line, without a copy through a buffer of its own), if `fill` says there was one; whatever
    /// it appended is dropped when it says there was none or fails.
    pub fn push_with<E>(&mut self, fill: impl FnOnce(&mut Vec<u8>) -> Result<bool, E>) -> Result<bool, E> {
        let start = self.bytes.len();
        let filled = fill(&mut self.bytes);
        match filled {
            Ok(true) => self.ends.push(self.bytes.len()),
            Ok(false) | Err(_) => self.bytes.truncate(start),
        }
        filled
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
    /// A partition over `lines`, from line index `next`.
    pub fn new(lines: Arc<MemoryLines>, next: usize) -> MemoryPartition {
        MemoryPartition { lines, next }
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

    fn position(&self) -> PartitionPosition {
        PartitionPosition { next: self.next as u64, lines: 0 }
    }
}

/// Pre-loaded partitions of JSON lines as a source (benchmarks, tests).
#[derive(Clone, Debug, Default)]
pub struct MemorySource {
    partitions: Vec<Arc<MemoryLines>>,
}

impl MemorySource {
    /// A source with one partition per element.
    pub fn new(partitions: Vec<Arc<MemoryLines>>) -> MemorySource {
        MemorySource { partitions }
    }
}

impl Source for MemorySource {
    fn kind(&self) -> SourceKind {
        SourceKind { name: "memory", by_line: false }
    }
    fn partition_count(&self) -> u32 {
        self.partitions.len() as u32
    }
    fn open(&self, indexes: &[u32], from: &[(u32, PartitionPosition)]) -> Result<OwnedPartitions, SourceError> {
        indexes
            .iter()
            .map(|&p| {
                let lines = self.partitions.get(p as usize).cloned().ok_or_else(|| SourceError::Unsupported {
                    what: format!("memory partition {p}"),
                    reason: "no such partition".to_owned(),
                })?;
                let next = (start_of(from, p).next as usize).min(lines.len());
                Ok((p, Box::new(MemoryPartition::new(lines, next)) as Box<dyn Partition>))
            })
            .collect()
    }
}

/// In-memory lines as chunks of `lines_per_chunk` lines, for the workers to read together;
/// offsets are line indexes, as in a [`MemoryPartition`].
pub struct MemoryChunks {
    lines: Arc<MemoryLines>,
    lines_per_chunk: usize,
}

impl MemoryChunks {
    /// `lines` in chunks of `lines_per_chunk` (at least 1).
    pub fn new(lines: Arc<MemoryLines>, lines_per_chunk: usize) -> MemoryChunks {
        MemoryChunks { lines, lines_per_chunk: lines_per_chunk.max(1) }
    }
}

impl ChunkedInput for MemoryChunks {
    fn chunk_count(&self) -> Result<ChunkCount, SourceError> {
        Ok(ChunkCount { count: self.lines.len().div_ceil(self.lines_per_chunk) as u64, complete: true })
    }
    fn reader(&self) -> Result<Box<dyn ChunkReader>, SourceError> {
        Ok(Box::new(MemoryChunks { lines: self.lines.clone(), lines_per_chunk: self.lines_per_chunk }))
    }
}

impl ChunkReader for MemoryChunks {
    fn read(&mut self, index: u64, out: &mut ChunkLines) -> Result<(), SourceError> {
        out.clear();
        let start = (index as usize).saturating_mul(self.lines_per_chunk).min(self.lines.len());
        let end = start.saturating_add(self.lines_per_chunk).min(self.lines.len());
        for i in start..end {
            out.push((i - start) as u64, self.lines.line(i));
        }
        out.span = (end - start) as u64;
        out.end = end as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_reports_its_position_and_resumes_there() {
        let mut lines = MemoryLines::default();
        for line in ["a", "b", "c"] {
            lines.push(line.as_bytes());
        }
        let source = MemorySource::new(vec![Arc::new(lines)]);
        let mut parts = source.open(&[0], &[]).expect("partition 0 exists");
        let mut seen = Vec::new();
        parts[0].1.poll(2, &mut |bytes, offset| seen.push((bytes.to_vec(), offset))).expect("reads");
        assert_eq!(parts[0].1.position(), PartitionPosition { next: 2, lines: 0 });
        let mut resumed = source.open(&[0], &[(0, parts[0].1.position())]).expect("partition 0 exists");
        assert_eq!(
            resumed[0].1.poll(10, &mut |bytes, offset| seen.push((bytes.to_vec(), offset))).ok(),
            Some(Poll::Finished)
        );
        assert_eq!(seen, vec![(b"a".to_vec(), 0), (b"b".to_vec(), 1), (b"c".to_vec(), 2)]);
        let mut lines = MemoryLines::default();
        lines.push(b"x");
        assert_eq!(
            lines.push_with(|bytes| Ok::<_, ()>({
                bytes.extend_from_slice(b"yz");
                true
            })),
            Ok(true)
        );
        assert_eq!(
            lines.push_with(|bytes| Ok::<_, ()>({
                bytes.push(b'!');
                false
            })),
            Ok(false)
        );
        assert_eq!(
            lines.push_with(|bytes| {
                bytes.push(b'?');
                Err(())
            }),
            Err(())
        );
        assert_eq!((lines.len(), lines.byte_len(), lines.line(1)), (2, 3, &b"yz"[..]), "only the line said to be one");
    }
}
