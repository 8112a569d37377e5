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
//!
//! A file's chunks are all known when it is opened; a live input (a pipe, a Kafka partition) is
//! cut into chunks as it arrives by one reader thread (`feed`), so the chunk count grows, and a
//! quiet live input gets chunks without inputs that carry a watermark *floor*: the wall-clock
//! watermark a single reader's capability follows while its only partition is idle.

use crate::admission::{Admitted, Clock, Judge, admit};
use crate::event::Event;
use crate::record::{DeadLetter, Position};
use crate::source::{PartitionPosition, SourceError};
use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

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
    /// A watermark floor the chunk raises the partition to (0: none): a quiet live input's
    /// wall-clock watermark, in a chunk without inputs.
    pub floor: u64,
}

impl ChunkLines {
    /// Empties it, keeping the memory.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.lines.clear();
        self.span = 0;
        self.end = 0;
        self.floor = 0;
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

/// How many chunks a partition is cut into so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkCount {
    /// Chunks `0..count` can be read (some may be empty).
    pub count: u64,
    /// No chunk will be added: the input ends after them.
    pub complete: bool,
}

/// A partition that can be read as independent chunks.
pub trait ChunkedInput: Send + Sync {
    /// How many chunks there are so far (a file's are all known when it is opened; a live
    /// input's grow as it arrives). An error when reading the input failed.
    fn chunk_count(&self) -> Result<ChunkCount, SourceError>;
    /// A reader for one worker.
    fn reader(&self) -> Result<Box<dyn ChunkReader>, SourceError>;
    /// For an input cut as it arrives: when nothing has arrived for `quiet`, appends a chunk
    /// without inputs that raises the watermark to `floor` (unless a floor at least as high is
    /// there already); whether it did. A file has no such thing.
    fn raise_floor(&self, _quiet: Duration, _floor: u64) -> bool {
        false
    }
    /// How many inputs wait to be read, where the input knows (a Kafka partition's lag).
    fn backlog(&self) -> Option<u64> {
        None
    }
}

/// Reads chunks of a [`ChunkedInput`].
pub trait ChunkReader {
    /// Reads chunk `index` into `out` (cleared first). Each chunk is read once, by its owner.
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
    /// The watermark floor it raises the partition to (0: none).
    pub floor: u64,
}

/// The summaries of a partition's chunks, published by the worker that parsed each. It forgets
/// a summary once every folder of summaries (each worker's [`Prefix`], and the checkpoints'
/// cut) has folded it in, so a live input read for days keeps only the chunks in flight.
#[derive(Debug)]
pub struct ChunkTable {
    inner: Mutex<Summaries>,
}

#[derive(Debug)]
struct Summaries {
    /// The index of `slots[0]`.
    first: u64,
    slots: VecDeque<Option<ChunkSummary>>,
    /// Per folder, the first chunk it has not folded in.
    folded: Vec<u64>,
}

impl ChunkTable {
    /// A table whose summaries are folded by `folders` folders.
    pub fn new(folders: usize) -> ChunkTable {
        ChunkTable { inner: Mutex::new(Summaries { first: 0, slots: VecDeque::new(), folded: vec![0; folders] }) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Summaries> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Publishes the summary of chunk `index` (once).
    pub fn publish(&self, index: u64, summary: ChunkSummary) {
        let mut table = self.lock();
        let Some(at) = index.checked_sub(table.first) else { return };
        let at = at as usize;
        if table.slots.len() <= at {
            table.slots.resize(at + 1, None);
        }
        table.slots[at].get_or_insert(summary);
    }

    /// The summary of chunk `index`, once published (and until every folder has folded it in).
    #[cfg(test)]
    fn get(&self, index: u64) -> Option<ChunkSummary> {
        self.lock().get(index)
    }

    /// Records that folder `folder` has folded in every chunk before `next`, and forgets the
    /// summaries every folder has.
    pub fn folded(&self, folder: usize, next: u64) {
        let mut table = self.lock();
        let Some(mark) = table.folded.get_mut(folder) else { return };
        *mark = (*mark).max(next);
        let upto = table.folded.iter().copied().min().unwrap_or(next);
        while table.first < upto && !table.slots.is_empty() {
            table.slots.pop_front();
            table.first += 1;
        }
    }

    /// How many summaries it holds (published or awaited) between the oldest any folder needs
    /// and the newest published.
    #[cfg(test)]
    fn held(&self) -> usize {
        self.lock().slots.len()
    }
}

impl Summaries {
    /// The summary of chunk `index`, if published and not yet forgotten.
    fn get(&self, index: u64) -> Option<ChunkSummary> {
        let at = index.checked_sub(self.first)?;
        self.slots.get(at as usize).copied().flatten()
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
    /// The highest watermark floor of the chunks before `next` (or the time a resumed run
    /// starts at).
    pub floor: u64,
}

impl Prefix {
    /// The prefix before the first chunk of an input opened at `position`, whose largest
    /// timestamp so far was `max_timestamp` (a resumed run's partition).
    pub fn at(position: PartitionPosition, max_timestamp: Option<u64>) -> Prefix {
        Prefix { next: 0, max_timestamp, offsets: position.lines, end: position.next, floor: 0 }
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
        let table = table.lock();
        while crate::window::epoch_of(self.watermark(out_of_orderness), epoch) < time {
            let Some(summary) = table.get(self.next) else { break };
            self.fold(summary);
        }
        self
    }

    /// Folds in the published summaries from `next` up to (not including) `upto`, stopping at the
    /// first one not yet published.
    pub fn advance(&mut self, table: &ChunkTable, upto: u64) {
        let table = table.lock();
        while self.next < upto {
            let Some(summary) = table.get(self.next) else { break };
            self.fold(summary);
        }
    }

    fn fold(&mut self, summary: ChunkSummary) {
        self.max_timestamp = self.max_timestamp.max(summary.max_timestamp);
        self.offsets += summary.span;
        self.end = summary.end;
        self.floor = self.floor.max(summary.floor);
        self.next += 1;
    }

    /// The watermark of the first input of chunk `next`: the largest timestamp before it less
    /// the out-of-orderness, or the floor when that is higher.
    pub fn watermark(&self, out_of_orderness: u64) -> u64 {
        watermark_of(self.max_timestamp, out_of_orderness, self.floor)
    }

    /// The watermark of the inputs before chunk `next`, floors left out: whether they are live
    /// data is judged from it.
    pub fn seen(&self, out_of_orderness: u64) -> u64 {
        watermark_of(self.max_timestamp, out_of_orderness, 0)
    }
}

/// A watermark: the largest timestamp less the out-of-orderness, or `floor` when that is higher.
#[inline]
fn watermark_of(max_timestamp: Option<u64>, out_of_orderness: u64, floor: u64) -> u64 {
    max_timestamp.map_or(0, |ts| ts.saturating_sub(out_of_orderness)).max(floor)
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
        ChunkSummary { max_timestamp, span: self.lines.span, end: self.lines.end, floor: self.lines.floor }
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
            let watermark = watermark_of(max_timestamp, out_of_orderness, prefix.floor);
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
        let table = ChunkTable::new(1);
        table.publish(0, ChunkSummary { max_timestamp: Some(50), span: 3, end: 30, floor: 0 });
        table.publish(2, ChunkSummary { max_timestamp: Some(90), span: 2, end: 50, floor: 0 });
        let mut prefix = Prefix::at(PartitionPosition { next: 7, lines: 1 }, Some(20));
        prefix.advance(&table, 4);
        assert_eq!(prefix, Prefix { next: 1, max_timestamp: Some(50), offsets: 4, end: 30, floor: 0 });
        table.publish(1, ChunkSummary { max_timestamp: None, span: 1, end: 40, floor: 0 });
        prefix.advance(&table, 2);
        assert_eq!(prefix, Prefix { next: 2, max_timestamp: Some(50), offsets: 5, end: 40, floor: 0 }, "stops at upto");
        prefix.advance(&table, 4);
        assert_eq!(prefix, Prefix { next: 3, max_timestamp: Some(90), offsets: 7, end: 50, floor: 0 });
        assert_eq!(prefix.watermark(100), 0);
        assert_eq!(prefix.watermark(10), 80);
        assert_eq!(prefix.position(), PartitionPosition { next: 50, lines: 7 });
    }

    #[test]
    fn a_cut_is_the_first_chunk_sent_at_or_after_the_checkpoint() {
        let table = ChunkTable::new(1);
        for (i, max) in [(0, 1_500), (1, 2_600), (2, 9_000)] {
            table.publish(i, ChunkSummary { max_timestamp: Some(max), span: 10, end: (i + 1) * 100, floor: 0 });
        }
        let start = Prefix::at(PartitionPosition::default(), None);
        // Chunk times (epochs of 1000, no out-of-orderness): 0, 1000, 2000.
        assert_eq!(start.cut(&table, 0, 0, 1_000).next, 0);
        assert_eq!(start.cut(&table, 1_000, 0, 1_000).next, 1);
        let cut = start.cut(&table, 1_500, 0, 1_000);
        assert_eq!((cut.next, cut.position()), (2, PartitionPosition { next: 200, lines: 20 }));
        assert_eq!(start.cut(&table, 50_000, 0, 1_000).next, 3, "everything sent: the end of the input");
    }

    #[test]
    fn a_floor_raises_the_watermark_but_not_what_was_seen() {
        let table = ChunkTable::new(1);
        table.publish(0, ChunkSummary { max_timestamp: Some(10_000), span: 2, end: 20, floor: 0 });
        table.publish(1, ChunkSummary { max_timestamp: None, span: 0, end: 20, floor: 50_000 });
        table.publish(2, ChunkSummary { max_timestamp: Some(80_000), span: 1, end: 30, floor: 0 });
        let mut prefix = Prefix::at(PartitionPosition::default(), None);
        prefix.advance(&table, 1);
        assert_eq!((prefix.watermark(1_000), prefix.seen(1_000)), (9_000, 9_000));
        prefix.advance(&table, 2);
        assert_eq!((prefix.watermark(1_000), prefix.seen(1_000)), (50_000, 9_000), "the floor, above the data");
        prefix.advance(&table, 3);
        assert_eq!((prefix.watermark(1_000), prefix.seen(1_000)), (79_000, 79_000), "the data, above the floor");
        assert_eq!(prefix.position(), PartitionPosition { next: 30, lines: 3 });
    }

    #[test]
    fn the_table_forgets_what_every_folder_has_folded_in() {
        let table = ChunkTable::new(2);
        for i in 0..5 {
            table.publish(i, ChunkSummary { max_timestamp: Some(i), span: 1, end: i + 1, floor: 0 });
        }
        table.folded(0, 4);
        assert_eq!((table.held(), table.get(0).is_some()), (5, true), "folder 1 still needs chunk 0");
        table.folded(1, 2);
        assert_eq!((table.held(), table.get(1), table.get(2).map(|s| s.end)), (3, None, Some(3)));
        table.publish(1, ChunkSummary::default());
        assert_eq!(table.held(), 3, "a summary published late, once forgotten, is not taken back");
        let mut prefix = Prefix { next: 2, offsets: 2, end: 2, max_timestamp: Some(1), floor: 0 };
        prefix.advance(&table, 9);
        assert_eq!((prefix.next, prefix.max_timestamp), (5, Some(4)));
    }
}
