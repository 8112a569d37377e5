//! The event source of a partition read by every worker of a process (a file, or a live input
//! cut into chunks by a reader thread, `feed`): each worker reads and parses the chunks it owns,
//! publishes their summaries, and judges each chunk once every earlier chunk's summary is in
//! (`chunks`), so the decisions are a single reader's.
//!
//! Everything judged from chunk `c` is sent at the epoch of the watermark before its first input,
//! a time that depends on the file alone: the records, dead letters and their order are the same
//! for any number of workers. A worker holds its capability at the epoch of the watermark before
//! its oldest chunk not yet judged, as far as the summaries before it are in: every later chunk's
//! time is at or after it.
//!
//! With checkpoints, the capability never passes the checkpoint gate, and a chunk whose time is
//! at or after the gate waits (parsed) until the gate has moved. Since chunk times only grow
//! with the chunk index, what was sent before a checkpoint at C is exactly the chunks before the
//! first whose time is C or later: the first reader records that cut ([`Prefix::cut`]) as the
//! partition's position — the byte offset where that chunk starts, the lines before it and the
//! largest timestamp before it, the same record a single reader writes — and a resumed run cuts
//! its chunks from there, with any number of workers.
//!
//! A live input may go quiet. A single reader's capability then follows the wall clock (the
//! idleness rule of `event_source::worker_watermark`), and what arrives later is judged against
//! it. Here a worker with every chunk cut so far judged asks the input to append a floor chunk
//! instead (`ChunkedInput::raise_floor`), with the same value; the capabilities follow it as they
//! follow any chunk, and what arrives after it is judged against it.

use crate::admission::{Clock, Judge};
use crate::chunks::{ChunkReader, ChunkTable, ChunkedInput, ParsedChunk, Prefix};
use crate::control::{Counters, RunControl, wall_clock_ms};
use crate::operators::event_source::{
    PartitionSnapshot, SourceContext, SourceOperator, SourceStreams, Told, advance_caps, lagging, source_caps,
    wall_clock_watermark,
};
use crate::window::epoch_of;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};
use timely::dataflow::Scope;

/// How soon a worker waiting for another's chunk summary, or held back by slow sinks, looks again.
const WAIT_INTERVAL: Duration = Duration::from_millis(1);
/// How many chunks a worker parses ahead of the one it is waiting to judge.
const PARSE_AHEAD: usize = 4;
/// How often an input's backlog (a Kafka partition's lag) is reported.
const BACKLOG_REPORT_EVERY: Duration = Duration::from_secs(1);

/// One worker's share of a chunked partition.
pub struct ChunkShare {
    /// The partition's index (in dead-letter positions).
    pub partition: u32,
    /// The input.
    pub input: Arc<dyn ChunkedInput>,
    /// The chunks' summaries, shared by the workers of the process.
    pub table: Arc<ChunkTable>,
    /// This worker's index among the readers.
    pub reader: usize,
    /// How many workers read.
    pub readers: usize,
    /// The partition before the first chunk (where a resumed run continues).
    pub start: Prefix,
}

impl ChunkShare {
    /// The shares of `readers` workers of one input whose first chunk follows `start`.
    pub fn split(partition: u32, input: Arc<dyn ChunkedInput>, readers: usize, start: Prefix) -> Vec<ChunkShare> {
        // Folders of the summaries: each reader's prefix, and the checkpoints' cut (the last).
        let table = Arc::new(ChunkTable::new(readers.max(1) + 1));
        (0..readers.max(1))
            .map(|reader| ChunkShare {
                partition,
                input: input.clone(),
                table: table.clone(),
                reader,
                readers: readers.max(1),
                start,
            })
            .collect()
    }
}

/// What the chunked source needs to know.
pub struct ChunkedSourceSpec {
    /// What every source needs.
    pub context: SourceContext,
    /// This worker's share.
    pub share: ChunkShare,
}

/// One worker's reading state.
struct ChunkState {
    share: ChunkShare,
    reader: Box<dyn ChunkReader>,
    /// The next chunk of this worker's to read.
    next_own: u64,
    /// Chunks parsed, oldest first, waiting for the summaries before them.
    parsed: VecDeque<ParsedChunk>,
    /// Judged chunks' memory, for reuse.
    spare: Vec<ParsedChunk>,
    prefix: Prefix,
    /// The epoch of the last watermark this worker told the others.
    told: Told,
}

impl ChunkState {
    /// The oldest chunk of this worker's not yet judged (the chunk count when none is left).
    fn oldest_unjudged(&self) -> u64 {
        self.parsed.front().map_or(self.next_own, |c| c.index)
    }

    /// Reads and parses this worker's next chunk and publishes its summary.
    fn parse_next(&mut self, max_bytes: usize, clock: Clock, control: &RunControl) -> Result<(), String> {
        let index = self.next_own;
        let mut chunk = self.spare.pop().unwrap_or_default();
        self.reader
            .read(index, &mut chunk.lines)
            .map_err(|e| format!("source partition {}: {e}", self.share.partition))?;
        Counters::add(&control.counters.events_in, chunk.lines.lines.len() as u64);
        let summary = chunk.parse(index, max_bytes, clock);
        self.share.table.publish(index, summary);
        self.parsed.push_back(chunk);
        self.next_own += self.share.readers as u64;
        Ok(())
    }
}

/// Builds the chunked source of this worker.
pub fn chunked_source<'s>(scope: Scope<'s, u64>, spec: ChunkedSourceSpec) -> SourceStreams<'s> {
    let SourceOperator {
        builder,
        events: mut events_out,
        dead_letters: mut dead_out,
        watermarks: mut watermark_out,
        streams,
    } = SourceOperator::new(scope, "ChunkedSource");
    let activator = scope.activator_for(builder.operator_info().address);
    let worker = scope.index();

    builder.build(move |capabilities| {
        let ChunkedSourceSpec { context, mut share } = spec;
        let SourceContext { kind, aggregations, watermark, engine, control, sinks_probe, gate, hooks, late_counters } =
            context;
        let max_ahead = engine.max_inflight_epochs.get().saturating_mul(watermark.epoch.0);
        let out_of_orderness = watermark.max_out_of_orderness.0;
        let epoch = watermark.epoch.0;
        let max_bytes = engine.max_event_bytes.get();
        let max_future_skew = watermark.max_future_skew.0.map(|skew| skew.0);
        let idle_timeout = watermark.idle_timeout.as_duration();
        // A resumed run's capability starts at its checkpoint's time, and a single reader judges
        // against it: nothing before it is on time any more.
        share.start.floor = share.start.floor.max(hooks.resumed_at);
        if share.reader == 0 {
            // The partition's position at a checkpoint: the cut at its time, folded on from the
            // last checkpoint's (their times only grow).
            let (table, cut_folder, partition) = (share.table.clone(), share.readers, share.partition);
            match hooks.enabled() {
                true => {
                    hooks.share(share.start, move |last, taken| {
                        let cut = last.cut(&table, taken.time, out_of_orderness, epoch);
                        *last = cut;
                        table.folded(cut_folder, cut.next);
                        taken.partitions.push(PartitionSnapshot {
                            index: partition,
                            position: cut.position(),
                            max_timestamp: cut.max_timestamp,
                        });
                    });
                }
                false => table.folded(cut_folder, u64::MAX),
            }
        }
        let mut state = match share.input.reader() {
            Ok(reader) => Some(ChunkState {
                next_own: share.reader as u64,
                prefix: share.start,
                share,
                reader,
                parsed: VecDeque::new(),
                spare: Vec::new(),
                told: Told::default(),
            }),
            Err(e) => {
                control.fail(format!("cannot open the source: {e}"));
                None
            }
        };
        let caps = source_caps(capabilities, hooks.resumed_at);
        let mut caps = state.as_ref().map(|_| caps);
        let (mut pending, mut letters) = (Vec::new(), Vec::new());
        let mut backlog_reported: Option<Instant> = None;

        move |_frontiers| {
            let (Some((event_cap, dead_cap, watermark_cap)), Some(state)) = (caps.as_mut(), state.as_mut()) else {
                return;
            };
            // With checkpoints on, a stop is a last checkpoint at the gate (the gate's business).
            if (control.stop_requested() && gate.is_none()) || control.failure().is_some() {
                caps = None;
                return;
            }
            let limit = gate.as_ref().and_then(|gate| gate.with_frontier(|f| f.first().copied()));
            // Backpressure: do not read further while the sinks lag too far behind.
            if lagging(&sinks_probe, *event_cap.time(), epoch, max_ahead, &control) {
                activator.activate_after(WAIT_INTERVAL);
                return;
            }
            let count = match state.share.input.chunk_count() {
                Ok(count) => count,
                Err(e) => {
                    control.fail(format!("source partition {}: {e}", state.share.partition));
                    caps = None;
                    return;
                }
            };
            let mut progressed = false;
            if state.parsed.len() < PARSE_AHEAD && state.next_own < count.count {
                if let Err(e) = state.parse_next(max_bytes, Clock::now(max_future_skew), &control) {
                    control.fail(e);
                    caps = None;
                    return;
                }
                progressed = true;
            }
            let judge = Judge { kind, aggregations: &aggregations, late_counters: &late_counters, control: &control };
            while let Some(front) = state.parsed.front() {
                let index = front.index;
                state.prefix.advance(&state.share.table, index);
                if state.prefix.next != index {
                    break;
                }
                // Never below the capability (a resumed run's first chunk is at or after its
                // checkpoint's time by construction; this only guards the invariant).
                let at = epoch_of(state.prefix.watermark(out_of_orderness), epoch).max(*event_cap.time());
                if limit.is_some_and(|limit| at >= limit) {
                    // At or after the checkpoint gate: it waits until the gate has moved.
                    break;
                }
                let mut chunk = state.parsed.pop_front().expect("a front chunk");
                chunk.judge(&state.prefix, state.share.partition, out_of_orderness, &judge, &mut pending, &mut letters);
                state.spare.push(chunk);
                if !pending.is_empty() {
                    events_out.activate().session(&event_cap.delayed(&at)).give_container(&mut pending);
                }
                if !letters.is_empty() {
                    dead_out.activate().session(&dead_cap.delayed(&at)).give_iterator(letters.drain(..));
                }
                progressed = true;
            }
            let upto = state.oldest_unjudged();
            if count.complete && upto >= count.count {
                caps = None;
                return;
            }
            state.prefix.advance(&state.share.table, upto);
            state.share.table.folded(state.share.reader, state.prefix.next);
            if !progressed && state.prefix.next >= count.count {
                // Everything cut so far is judged: the input is quiet (or slower than the workers).
                let floor = idle_floor(&state.prefix, wall_clock_ms(), out_of_orderness, idle_timeout, epoch);
                progressed = floor.is_some_and(|floor| state.share.input.raise_floor(idle_timeout, floor));
            }
            if state.share.reader == 0 && backlog_reported.is_none_or(|at| at.elapsed() >= BACKLOG_REPORT_EVERY) {
                backlog_reported = Some(Instant::now());
                if let Some(backlog) = state.share.input.backlog() {
                    control.counters.kafka_lag.set(&state.share.partition.to_string(), backlog);
                }
            }
            let w = state.prefix.watermark(out_of_orderness);
            control.watermarks.publish(worker, w);
            if state.told.anew(w, epoch) {
                watermark_out.activate().session(&*watermark_cap).give((worker as u32, w));
            }
            advance_caps([event_cap, dead_cap, watermark_cap], w, epoch, limit);
            if progressed {
                activator.activate();
            } else {
                activator.activate_after(WAIT_INTERVAL);
            }
        }
    });

    streams
}

/// The floor a quiet live input is raised to: the time a single reader's capability follows when
/// its only partition is idle (`event_source::wall_clock_watermark`, in epochs), if that is
/// above the watermark now; `None` before anything was read and for a replay of old events.
fn idle_floor(prefix: &Prefix, wall: u64, out_of_orderness: u64, idle_timeout: Duration, epoch: u64) -> Option<u64> {
    prefix.max_timestamp?;
    let idle = u64::try_from(idle_timeout.as_millis()).unwrap_or(u64::MAX);
    let watermark = wall_clock_watermark(wall, prefix.seen(out_of_orderness), out_of_orderness, idle)?;
    let floor = epoch_of(watermark, epoch);
    (floor > epoch_of(prefix.watermark(out_of_orderness), epoch)).then_some(floor)
}

#[cfg(test)]
mod tests {
    use super::*;

    const WALL: u64 = 1_764_230_400_000;

    #[test]
    fn a_quiet_live_input_is_raised_to_the_single_readers_idle_watermark() {
        let prefix = |max| Prefix { max_timestamp: max, ..Prefix::default() };
        let idle = Duration::from_secs(10);
        // A single reader: wall - out_of_orderness - idle_timeout, as an epoch.
        assert_eq!(idle_floor(&prefix(Some(WALL - 60_000)), WALL + 500, 5_000, idle, 1_000), Some(WALL - 15_000));
        assert_eq!(idle_floor(&prefix(Some(WALL - 7 * 86_400_000)), WALL, 5_000, idle, 1_000), None, "a replay holds");
        assert_eq!(idle_floor(&prefix(None), WALL, 5_000, idle, 1_000), None, "nothing read: nothing to follow");
        assert_eq!(idle_floor(&prefix(Some(WALL)), WALL, 5_000, idle, 1_000), None, "not above the watermark");
        let raised = Prefix { floor: WALL - 15_000, ..prefix(Some(WALL - 60_000)) };
        assert_eq!(idle_floor(&raised, WALL + 500, 5_000, idle, 1_000), None, "raised already");
        assert_eq!(idle_floor(&raised, WALL + 1_000, 5_000, idle, 1_000), Some(WALL - 14_000), "an epoch later");
    }
}
