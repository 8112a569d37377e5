//! A partition read in order by one reader thread and cut into chunks as its inputs arrive, so
//! that every worker of the process parses a share of it (`chunks`, `chunked_source`): a pipe
//! on standard input, a Kafka partition with a backlog.
//!
//! The thread polls the partition as a single reader would and cuts what it delivers into
//! chunks: a chunk ends when it holds `chunk_bytes`, or as soon as the partition has nothing
//! more for now, so a live input's inputs are not held back waiting for a chunk to fill. Each
//! chunk records where the partition stands after it (a checkpoint's position) and how many
//! line numbers it spans, so dead letters, positions and lateness are a single reader's.
//!
//! When the input goes quiet, a worker with nothing left to judge may append a chunk without
//! inputs carrying a watermark *floor* ([`ChunkedInput::raise_floor`]): the wall-clock watermark
//! a single reader's capability follows while its only partition is idle. Appended to the same
//! sequence as the chunks, under the same lock, it is one fact every worker folds in at the same
//! place, so whatever arrives after it is judged against it by whichever worker parses it.
//!
//! The thread stops reading while `max_waiting` chunks wait for their owners (memory stays
//! bounded when the workers are slower than the input), and leaves when the feed is dropped,
//! dropping the partition on its own thread (a Kafka partition commits its last offset then).

use crate::chunks::{ChunkCount, ChunkLines, ChunkReader, ChunkedInput};
use crate::source::{Partition, PartitionPosition, Poll, SourceError};
use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How soon the reader thread polls a partition that had nothing again.
const POLL_INTERVAL: Duration = Duration::from_millis(1);
/// How many inputs the reader thread asks of the partition at a time.
const POLL_BUDGET: usize = 1_024;
/// How often the partition's backlog is asked for.
const BACKLOG_EVERY: Duration = Duration::from_secs(1);
/// How long the reader thread waits for room before it looks whether the feed was dropped.
const ROOM_CHECK: Duration = Duration::from_millis(100);
/// How many chunks' memory the workers hand back for reuse.
const MAX_SPARE: usize = 4;

/// One partition cut into chunks by a reader thread of its own.
pub struct ChunkFeed {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

struct Shared {
    state: Mutex<FeedState>,
    /// Signalled when a chunk is taken (room for the reader thread) or the feed is dropped.
    room: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, FeedState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

struct FeedState {
    /// Chunks cut and not yet read by their owner, by index.
    waiting: BTreeMap<u64, ChunkLines>,
    /// How many chunks have been cut (floors included).
    count: u64,
    /// The partition has delivered everything (or failed).
    complete: bool,
    /// Why reading failed, until a worker reports it.
    error: Option<SourceError>,
    /// When the last chunk with inputs was cut (or the feed started).
    last_input: Instant,
    /// The highest floor appended.
    floor: u64,
    /// Where the input continues after the last chunk cut (a partition position's `next`).
    end: u64,
    /// The partition's backlog, as last asked.
    backlog: Option<u64>,
    /// Chunks' memory handed back by the workers, for the reader thread to reuse.
    spare: Vec<ChunkLines>,
    /// The feed was dropped: the reader thread leaves.
    closing: bool,
    /// What was cut, for the log: chunks with inputs, inputs, and how often the thread waited
    /// for room.
    cut_chunks: u64,
    cut_inputs: u64,
    waited: u64,
}

impl ChunkFeed {
    /// Starts a reader thread on `partition`, opened at `from`, cutting chunks of about
    /// `chunk_bytes` and reading on while fewer than `max_waiting` wait for their owners.
    pub fn start(
        partition: Box<dyn Partition>,
        from: PartitionPosition,
        chunk_bytes: usize,
        max_waiting: usize,
    ) -> Result<Arc<ChunkFeed>, SourceError> {
        let shared = Arc::new(Shared {
            state: Mutex::new(FeedState {
                waiting: BTreeMap::new(),
                count: 0,
                complete: false,
                error: None,
                last_input: Instant::now(),
                floor: 0,
                end: from.next,
                backlog: None,
                spare: Vec::new(),
                closing: false,
                cut_chunks: 0,
                cut_inputs: 0,
                waited: 0,
            }),
            room: Condvar::new(),
        });
        let reader =
            FeedThread { shared: shared.clone(), chunk_bytes: chunk_bytes.max(1), max_waiting: max_waiting.max(1) };
        let thread = std::thread::Builder::new()
            .name("rtsa-feed".to_owned())
            .spawn(move || reader.run(partition, from))
            .map_err(|e| SourceError::io("the source's reader thread", e))?;
        Ok(Arc::new(ChunkFeed { shared, thread: Mutex::new(Some(thread)) }))
    }
}

impl Drop for ChunkFeed {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.closing = true;
        tracing::debug!(
            chunks = state.count,
            with_inputs = state.cut_chunks,
            inputs = state.cut_inputs,
            floor = state.floor,
            waited_for_room = state.waited,
            "the source's reader thread is done"
        );
        drop(state);
        self.shared.room.notify_all();
        let thread = self.thread.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

/// The reader thread's side.
struct FeedThread {
    shared: Arc<Shared>,
    chunk_bytes: usize,
    max_waiting: usize,
}

impl FeedThread {
    fn run(self, mut partition: Box<dyn Partition>, from: PartitionPosition) {
        let mut chunk = ChunkLines::default();
        // Where the partition stood before the chunk being filled.
        let mut before = from;
        let mut backlog_asked: Option<Instant> = None;
        loop {
            if self.shared.lock().closing {
                return;
            }
            let base = before.lines;
            let polled = partition.poll(POLL_BUDGET, &mut |bytes, offset| chunk.push(offset.wrapping_sub(base), bytes));
            let after = partition.position();
            if backlog_asked.is_none_or(|at| at.elapsed() >= BACKLOG_EVERY) {
                backlog_asked = Some(Instant::now());
                self.shared.lock().backlog = partition.backlog();
            }
            let full = chunk.bytes.len() >= self.chunk_bytes;
            match polled {
                // A chunk ends when it is full, or as soon as the partition has nothing more now.
                Ok(Poll::Ready) if !full => {}
                Ok(Poll::Pending) if chunk.lines.is_empty() && after == before => std::thread::sleep(POLL_INTERVAL),
                Ok(Poll::Ready | Poll::Pending) => {
                    chunk = self.cut(chunk, before, after, false);
                    before = after;
                }
                Ok(Poll::Finished) => {
                    self.cut(chunk, before, after, true);
                    return;
                }
                Err(e) => {
                    let mut state = self.shared.lock();
                    state.error = Some(e);
                    state.complete = true;
                    return;
                }
            }
        }
    }

    /// Appends `chunk` (the inputs between `before` and `after`) for its owner, once there is
    /// room; returns memory for the next chunk.
    fn cut(
        &self,
        mut chunk: ChunkLines,
        before: PartitionPosition,
        after: PartitionPosition,
        last: bool,
    ) -> ChunkLines {
        chunk.span = after.lines.wrapping_sub(before.lines);
        chunk.end = after.next;
        let mut state = self.shared.lock();
        if state.waiting.len() >= self.max_waiting {
            state.waited += 1;
        }
        while state.waiting.len() >= self.max_waiting && !state.closing {
            state = self.shared.room.wait_timeout(state, ROOM_CHECK).unwrap_or_else(|p| p.into_inner()).0;
        }
        if !chunk.lines.is_empty() {
            state.last_input = Instant::now();
            state.cut_chunks += 1;
            state.cut_inputs += chunk.lines.len() as u64;
        }
        if !chunk.lines.is_empty() || after != before {
            let index = state.count;
            state.waiting.insert(index, chunk);
            state.count += 1;
        }
        state.end = after.next;
        state.complete = last;
        let mut next = state.spare.pop().unwrap_or_default();
        next.clear();
        next
    }
}

impl ChunkedInput for ChunkFeed {
    fn chunk_count(&self) -> Result<ChunkCount, SourceError> {
        let mut state = self.shared.lock();
        match state.error.take() {
            Some(e) => Err(e),
            None => Ok(ChunkCount { count: state.count, complete: state.complete }),
        }
    }

    fn reader(&self) -> Result<Box<dyn ChunkReader>, SourceError> {
        Ok(Box::new(FeedReader { shared: self.shared.clone() }))
    }

    fn raise_floor(&self, quiet: Duration, floor: u64) -> bool {
        let mut state = self.shared.lock();
        if state.complete || state.closing || floor <= state.floor || state.last_input.elapsed() < quiet {
            return false;
        }
        let index = state.count;
        let chunk = ChunkLines { end: state.end, floor, ..ChunkLines::default() };
        state.waiting.insert(index, chunk);
        state.count += 1;
        state.floor = floor;
        true
    }

    fn backlog(&self) -> Option<u64> {
        self.shared.lock().backlog
    }
}

/// A worker's reader of a feed: takes the chunks it owns.
struct FeedReader {
    shared: Arc<Shared>,
}

impl ChunkReader for FeedReader {
    fn read(&mut self, index: u64, out: &mut ChunkLines) -> Result<(), SourceError> {
        let mut state = self.shared.lock();
        let Some(mut chunk) = state.waiting.remove(&index) else {
            return Err(SourceError::Unsupported {
                what: format!("chunk {index}"),
                reason: "was not cut, or was read already".to_owned(),
            });
        };
        std::mem::swap(out, &mut chunk);
        if state.spare.len() < MAX_SPARE {
            state.spare.push(chunk);
        }
        drop(state);
        self.shared.room.notify_one();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    /// A partition of numbered lines that has nothing to deliver every few polls.
    struct Stuttering {
        lines: VecDeque<String>,
        line: u64,
        polls: u64,
    }

    impl Partition for Stuttering {
        fn poll(&mut self, budget: usize, emit: &mut dyn FnMut(&[u8], u64)) -> Result<Poll, SourceError> {
            self.polls += 1;
            if self.polls.is_multiple_of(3) {
                return Ok(Poll::Pending);
            }
            for _ in 0..budget.min(2) {
                let Some(line) = self.lines.pop_front() else { return Ok(Poll::Finished) };
                self.line += 1;
                if !line.is_empty() {
                    emit(line.as_bytes(), self.line);
                }
            }
            Ok(if self.lines.is_empty() { Poll::Finished } else { Poll::Ready })
        }
        fn position(&self) -> PartitionPosition {
            PartitionPosition { next: self.line * 10, lines: self.line }
        }
    }

    fn read_all(feed: &ChunkFeed) -> Vec<ChunkLines> {
        let mut reader = feed.reader().expect("a reader");
        let mut chunks = Vec::new();
        let mut next = 0;
        loop {
            let count = feed.chunk_count().expect("reads");
            while next < count.count {
                let mut chunk = ChunkLines::default();
                reader.read(next, &mut chunk).expect("a chunk cut");
                chunks.push(chunk);
                next += 1;
            }
            if count.complete && next == count.count {
                return chunks;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn chunks_hold_every_line_once_numbered_as_one_reader_numbers_them() {
        let lines: VecDeque<String> =
            (0..50).map(|i| if i % 7 == 3 { String::new() } else { format!("l{i}") }).collect();
        let partition = Stuttering { lines: lines.clone(), line: 4, polls: 0 };
        let from = PartitionPosition { next: 40, lines: 4 };
        let feed = ChunkFeed::start(Box::new(partition), from, 8, 2).expect("starts");
        let chunks = read_all(&feed);
        assert!(chunks.len() > 5, "cut small: {}", chunks.len());
        let (mut lines_before, mut seen) = (4, Vec::new());
        for chunk in &chunks {
            for (i, (offset, _, _)) in chunk.lines.iter().enumerate() {
                seen.push((lines_before + offset, String::from_utf8_lossy(chunk.line(i)).into_owned()));
            }
            lines_before += chunk.span;
            assert_eq!(chunk.end, lines_before * 10, "each chunk ends where the partition stood after it");
        }
        let expected: Vec<(u64, String)> =
            lines.iter().enumerate().filter(|(_, l)| !l.is_empty()).map(|(i, l)| (5 + i as u64, l.clone())).collect();
        assert_eq!(seen, expected);
        assert_eq!(lines_before, 54, "blank lines are counted");
    }

    /// A partition that delivers nothing until it is told to.
    struct Quiet(Arc<Mutex<Vec<String>>>, u64);

    impl Partition for Quiet {
        fn poll(&mut self, _budget: usize, emit: &mut dyn FnMut(&[u8], u64)) -> Result<Poll, SourceError> {
            for line in std::mem::take(&mut *self.0.lock().unwrap()) {
                emit(line.as_bytes(), self.1);
                self.1 += 1;
            }
            Ok(Poll::Pending)
        }
        fn position(&self) -> PartitionPosition {
            PartitionPosition { next: self.1, lines: 0 }
        }
    }

    #[test]
    fn a_quiet_input_takes_a_floor_in_its_sequence_and_data_after_it() {
        let arriving = Arc::new(Mutex::new(vec!["a".to_owned()]));
        let feed = ChunkFeed::start(Box::new(Quiet(arriving.clone(), 0)), PartitionPosition::default(), 1 << 20, 8)
            .expect("starts");
        while feed.chunk_count().unwrap().count < 1 {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(!feed.raise_floor(Duration::from_secs(60), 5_000), "not quiet for a minute");
        std::thread::sleep(Duration::from_millis(20));
        assert!(feed.raise_floor(Duration::from_millis(10), 5_000));
        assert!(!feed.raise_floor(Duration::from_millis(10), 5_000), "one floor at a time, rising");
        arriving.lock().unwrap().push("b".to_owned());
        while feed.chunk_count().unwrap().count < 3 {
            std::thread::sleep(Duration::from_millis(1));
        }
        let mut reader = feed.reader().unwrap();
        let mut chunk = ChunkLines::default();
        let mut sequence = Vec::new();
        for index in 0..3 {
            reader.read(index, &mut chunk).unwrap();
            sequence.push((chunk.lines.len(), chunk.floor, chunk.end));
        }
        assert_eq!(sequence, vec![(1, 0, 1), (0, 5_000, 1), (1, 0, 2)]);
        assert!(reader.read(1, &mut chunk).is_err(), "a chunk is read once");
    }

    #[test]
    fn the_reader_thread_waits_for_room_and_leaves_when_the_feed_is_dropped() {
        let lines: VecDeque<String> = (0..10_000).map(|i| format!("line {i}")).collect();
        let feed =
            ChunkFeed::start(Box::new(Stuttering { lines, line: 0, polls: 0 }), PartitionPosition::default(), 4, 3)
                .expect("starts");
        std::thread::sleep(Duration::from_millis(50));
        let count = feed.chunk_count().unwrap();
        assert_eq!((count.count, count.complete), (3, false), "three chunks wait; the thread waits for room");
        drop(feed);
    }
}
