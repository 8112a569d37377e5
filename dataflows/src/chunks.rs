//! One partition read by every worker of a process: the input is cut into chunks (a file at line
//! boundaries), each worker reads and parses the chunks it owns (chunk `c` is worker
//! `c % workers`'), and lateness is still exactly the per-partition rule of CONTRACT section 3.
//!
//! An event's watermark is the largest timestamp of every earlier input of the partition minus
//! the out-of-orderness. For an event of chunk `c` that is the larger of the largest timestamp of
//! the chunks before `c` and the largest of the earlier inputs of `c` itself. So each worker parses
//! a chunk on its own (the expensive part) and publishes its [`ChunkSummary`] (largest timestamp,
//! how many offsets it spans) in a [`ChunkTable`]; it judges the chunk once the summaries of all
//! earlier chunks are in (a [`Prefix`]): a fold of a few numbers per chunk. Dead letters get their
//! line numbers the same way. Every decision is the one a single reader makes, for any number of
//! workers.

use crate::admission::{Admitted, Clock, Judge, admit};
use crate::event::Event;
use crate::record::{DeadLetter, Position};
use crate::source::{PartitionPosition, SourceError};
use std::sync::OnceLock;

/// The lines of one chunk: their bytes one after the other and, per line, its offset counted from
/// the chunk's start and where its bytes are.
#[derive(Debug, Default)]
pub struct ChunkLines {
    /// The lines' bytes (each cut at `max_event_bytes + 1`).
    pub bytes: Vec<u8>,
    /// Per non-blank line: (offset within the chunk, start, end) in `bytes`.
    pub lines: Vec<(u64, usize, usize)>,
    /// How many offsets the chunk spans (lines, blank ones included).
    pub span: u64,
    /// Where the input continues after the chunk (a byte offset of a file): a partition
    /// position's `next`.
    pub end: u64,
}

impl ChunkLines {
    /// Empties it, keeping the memory.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.lines.clear();
        self.span = 0;
        self.end = 0;
    }

    /// Adds a line at `offset` within the chunk.
    pub fn push(&mut self, offset: u64, line: &[u8]) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(line);
        self.lines.push((offset, start, self.bytes.len()));
    }

    /// The bytes of line `i`.
    #[inline]
    pub fn line(&self, i: usize) -> &[u8] {
        let (_, start, end) = self.lines[i];
        &self.bytes[start..end]
    }
}

/// A partition that can be read as independent chunks.
pub trait ChunkedInput: Send + Sync {
    /// How many chunks the partition is cut into (fixed when it is opened; some may be empty).
    fn chunk_count(&self) -> u64;
    /// A reader for one worker.
    fn reader(&self) -> Result<Box<dyn ChunkReader>, SourceError>;
}

/// Reads chunks of a [`ChunkedInput`].
pub trait ChunkReader {
    /// Reads chunk `index` into `out` (cleared first).
    fn read(&mut self, index: u64, out: &mut ChunkLines) -> Result<(), SourceError>;
}

/// What the other workers need to know of a chunk to judge the chunks after it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChunkSummary {
    /// The largest timestamp of its valid events, if any.
    pub max_timestamp: Option<u64>,
    /// How many offsets it spans.
    pub span: u64,
    /// Where the input continues after it.
    pub end: u64,
}

/// The summaries of a partition's chunks, published by the worker that parsed each.
#[derive(Debug)]
pub struct ChunkTable {
    summaries: Vec<OnceLock<ChunkSummary>>,
}

impl ChunkTable {
    /// A table for `count` chunks.
    pub fn new(count: u64) -> ChunkTable {
        ChunkTable { summaries: (0..count).map(|_| OnceLock::new()).collect() }
    }

    /// How many chunks.
    pub fn len(&self) -> u64 {
        self.summaries.len() as u64
    }

    /// Whether there are no chunks.
    pub fn is_empty(&self) -> bool {
        self.summaries.is_empty()
    }

    /// Publishes the summary of chunk `index` (once).
    pub fn publish(&self, index: u64, summary: ChunkSummary) {
        let _ = self.summaries[index as usize].set(summary);
    }

    /// The summary of chunk `index`, once published.
    pub fn get(&self, index: u64) -> Option<ChunkSummary> {
        self.summaries.get(index as usize).and_then(|s| s.get().copied())
    }
}

/// What a worker knows of the chunks before `next`: their largest timestamp, how many offsets
/// they span and where the input continues after them — with the partition's state before the
/// first chunk (a resumed run's position) folded in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Prefix {
    /// The first chunk not folded in.
    pub next: u64,
    /// The largest timestamp of the chunks before `next`.
    pub max_timestamp: Option<u64>,
    /// How many offsets the chunks before `next` span.
    pub offsets: u64,
    /// Where the input continues after the chunks before `next`.
    pub end: u64,
}

impl Prefix {
    /// The prefix before the first chunk of an input opened at `position`, whose largest
    /// timestamp so far was `max_timestamp` (a resumed run's partition).
    pub fn at(position: PartitionPosition, max_timestamp: Option<u64>) -> Prefix {
        Prefix { next: 0, max_timestamp, offsets: position.lines, end: position.next }
    }

    /// Where the partition stands after the chunks before `next`, as a checkpoint records it.
    pub fn position(&self) -> PartitionPosition {
        PartitionPosition { next: self.end, lines: self.offsets }
    }

    /// The first chunk whose inputs are sent at or after time `time` (the epoch of the
    /// watermark before it, in epochs of `epoch`): a checkpoint at `time` holds everything before
    /// it and nothing of it. Folds published summaries from `self` on; every chunk sent before
    /// `time` has published its summary.
    pub fn cut(mut self, table: &ChunkTable, time: u64, out_of_orderness: u64, epoch: u64) -> Prefix {
        while crate::window::epoch_of(self.watermark(out_of_orderness), epoch) < time && self.next < table.len() {
            let before = self.next;
            self.advance(table, before + 1);
            if self.next == before {
                break;
            }
        }
        self
    }

    /// Folds in the published summaries from `next` up to (not including) `upto`, stopping at the
    /// first one not yet published.
    pub fn advance(&mut self, table: &ChunkTable, upto: u64) {
        while self.next < upto {
            let Some(summary) = table.get(self.next) else { break };
            self.max_timestamp = self.max_timestamp.max(summary.max_timestamp);
            self.offsets += summary.span;
            self.end = summary.end;
            self.next += 1;
        }
    }

    /// The watermark of the first input of chunk `next`.
    pub fn watermark(&self, out_of_orderness: u64) -> u64 {
        self.max_timestamp.map_or(0, |ts| ts.saturating_sub(out_of_orderness))
    }
}

/// A chunk read and parsed, waiting to be judged.
#[derive(Debug, Default)]
pub struct ParsedChunk {
    /// Which chunk.
    pub index: u64,
    /// Its lines.
    pub lines: ChunkLines,
    /// What each line is, in order.
    pub admitted: Vec<Admitted>,
}

impl ParsedChunk {
    /// Parses chunk `index`'s `lines` (inputs of at most `max_bytes`, event times up to
    /// `clock.latest`), reusing `self`'s memory; returns the chunk's summary.
    pub fn parse(&mut self, index: u64, max_bytes: usize, clock: Clock) -> ChunkSummary {
        self.index = index;
        self.admitted.clear();
        let mut max_timestamp = None;
        for i in 0..self.lines.lines.len() {
            let admitted = admit(self.lines.line(i), max_bytes, clock);
            max_timestamp = max_timestamp.max(admitted.timestamp());
            self.admitted.push(admitted);
        }
        ChunkSummary { max_timestamp, span: self.lines.span, end: self.lines.end }
    }

    /// Judges the chunk's inputs in order, the first against `prefix` (which must have folded in
    /// every chunk before this one), each after against the inputs before it as well; the
    /// offsets of partition `partition` count on from the prefix's.
    pub fn judge(
        &mut self,
        prefix: &Prefix,
        partition: u32,
        out_of_orderness: u64,
        judge: &Judge,
        events: &mut Vec<Event>,
        letters: &mut Vec<DeadLetter>,
    ) {
        debug_assert_eq!(prefix.next, self.index, "every chunk before is folded in");
        let mut max_timestamp = prefix.max_timestamp;
        for (i, admitted) in self.admitted.drain(..).enumerate() {
            let (offset, start, end) = self.lines.lines[i];
            let watermark = max_timestamp.map_or(0, |ts| ts.saturating_sub(out_of_orderness));
            max_timestamp = max_timestamp.max(admitted.timestamp());
            let position = Position { partition, offset: prefix.offsets + offset };
            judge.judge(admitted, &self.lines.bytes[start..end], position, watermark, events, letters);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_folds_published_summaries_in_order_and_stops_at_a_gap() {
        let table = ChunkTable::new(4);
        table.publish(0, ChunkSummary { max_timestamp: Some(50), span: 3, end: 30 });
        table.publish(2, ChunkSummary { max_timestamp: Some(90), span: 2, end: 50 });
        let mut prefix = Prefix::at(PartitionPosition { next: 7, lines: 1 }, Some(20));
        prefix.advance(&table, 4);
        assert_eq!(prefix, Prefix { next: 1, max_timestamp: Some(50), offsets: 4, end: 30 });
        table.publish(1, ChunkSummary { max_timestamp: None, span: 1, end: 40 });
        prefix.advance(&table, 2);
        assert_eq!(prefix, Prefix { next: 2, max_timestamp: Some(50), offsets: 5, end: 40 }, "stops at upto");
        prefix.advance(&table, 4);
        assert_eq!(prefix, Prefix { next: 3, max_timestamp: Some(90), offsets: 7, end: 50 });
        assert_eq!(prefix.watermark(100), 0);
        assert_eq!(prefix.watermark(10), 80);
        assert_eq!(prefix.position(), PartitionPosition { next: 50, lines: 7 });
    }

    #[test]
    fn a_cut_is_the_first_chunk_sent_at_or_after_the_checkpoint() {
        let table = ChunkTable::new(3);
        for (i, max) in [(0, 1_500), (1, 2_600), (2, 9_000)] {
            table.publish(i, ChunkSummary { max_timestamp: Some(max), span: 10, end: (i + 1) * 100 });
        }
        let start = Prefix::at(PartitionPosition::default(), None);
        // Chunk times (epochs of 1000, no out-of-orderness): 0, 1000, 2000.
        assert_eq!(start.cut(&table, 0, 0, 1_000).next, 0);
        assert_eq!(start.cut(&table, 1_000, 0, 1_000).next, 1);
        let cut = start.cut(&table, 1_500, 0, 1_000);
        assert_eq!((cut.next, cut.position()), (2, PartitionPosition { next: 200, lines: 20 }));
        assert_eq!(start.cut(&table, 50_000, 0, 1_000).next, 3, "everything sent: the end of the input");
    }
}
