//! A sink operator: gathers records on worker 0, and when the frontier passes a time hands that
//! time's records, sorted, to a writer — so writes are batched per epoch and in a deterministic
//! order whatever the number of workers.
//!
//! A sink operator sends nothing, but its (empty) output stream carries its input frontier: a
//! probe on it shows what the sink has received, which is what a checkpoint waits for. At a
//! checkpoint the sink writes what it still holds (all of it before the checkpoint's time), makes
//! it durable and records every sink's position.

use crate::checkpoint::{Hooks, SinkPositions, Taken};
use crate::sink::SinkPosition;
use std::collections::BTreeMap;
use timely::ExchangeData;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;

/// Where a batch sink writes.
pub trait BatchWriter<D> {
    /// Writes one batch (the records of one time, sorted).
    fn write_batch(&mut self, batch: &[D]);
    /// Called once when the input is exhausted: flush and close.
    fn close(&mut self);
    /// Makes everything written durable and says what each sink has written (for a checkpoint);
    /// an error when a sink cannot.
    fn checkpoint(&mut self) -> Result<Vec<SinkPosition>, String> {
        Ok(Vec::new())
    }
}

/// A sink's output: no records, only a frontier.
type Nothing = CapacityContainerBuilder<Vec<()>>;

/// Which of a checkpoint's [`SinkPositions`] a sink operator fills.
pub type PositionsOf = fn(&mut SinkPositions) -> &mut Vec<SinkPosition>;

/// Extension trait: batch sinks.
pub trait BatchSink<'s, D> {
    /// Writes the stream's records with `writer` on worker 0; returns the sink's (empty)
    /// output, whose frontier is what the sink has received.
    fn batch_sink(
        self,
        name: &str,
        writer: Box<dyn BatchWriter<D>>,
        hooks: &Hooks,
        positions: PositionsOf,
    ) -> StreamVec<'s, u64, ()>;
    /// Writes the stream's records with `writer` on worker 0 as soon as they arrive (sorted
    /// within each arrival), without waiting for the frontier: for alerts, which must leave at
    /// once and carry their own idempotency key.
    fn immediate_sink(
        self,
        name: &str,
        writer: Box<dyn BatchWriter<D>>,
        hooks: &Hooks,
        positions: PositionsOf,
    ) -> StreamVec<'s, u64, ()>;
}

/// What a batch sink holds: records by time, waiting for the frontier, and the writer.
struct Buffered<D> {
    stash: BTreeMap<u64, Vec<D>>,
    writer: Box<dyn BatchWriter<D>>,
    closed: bool,
}

impl<D: Ord> Buffered<D> {
    /// Writes the stashed times before `until` (all of them with `None`), in time order.
    fn write_before(&mut self, until: Option<&u64>) {
        while let Some(entry) = self.stash.first_entry() {
            if until.is_some_and(|until| entry.key() >= until) {
                break;
            }
            let mut batch = entry.remove();
            batch.sort_unstable();
            self.writer.write_batch(&batch);
        }
    }

    /// Writes everything stashed, whatever its time, as one sorted batch.
    fn write_all_as_one(&mut self) {
        if self.stash.is_empty() {
            return;
        }
        let mut batch: Vec<D> = std::mem::take(&mut self.stash).into_values().flatten().collect();
        batch.sort_unstable();
        self.writer.write_batch(&batch);
    }

    /// The checkpoint hook of the writing worker: write what is held (all of it before the
    /// checkpoint's time), then record every sink's position after a flush.
    fn checkpoint(&mut self, checkpoint: &mut Taken, positions: PositionsOf) {
        self.write_before(None);
        let sinks = checkpoint.sinks.get_or_insert_with(SinkPositions::default);
        match self.writer.checkpoint() {
            Ok(written) => *positions(sinks) = written,
            Err(e) => checkpoint.failed = Some(e),
        }
    }
}

/// When a sink writes what it received.
#[derive(Clone, Copy)]
enum Release {
    /// Each time's records once the frontier has passed that time.
    AtFrontier,
    /// Everything as soon as it arrives, as one sorted batch.
    AtOnce,
}

/// The sink operator both kinds share: records exchanged to worker 0 and stashed by time,
/// written as `release` says, the writer closed once the input is exhausted; only worker 0
/// checkpoints.
fn sink_operator<'s, D: ExchangeData + Ord>(
    stream: StreamVec<'s, u64, D>,
    name: &str,
    writer: Box<dyn BatchWriter<D>>,
    hooks: &Hooks,
    positions: PositionsOf,
    release: Release,
) -> StreamVec<'s, u64, ()> {
    let hooks = if stream.scope().index() == 0 { hooks.clone() } else { Hooks::off() };
    let buffered = Buffered { stash: BTreeMap::new(), writer, closed: false };
    let buffered = hooks.share(buffered, move |buffered, checkpoint| buffered.checkpoint(checkpoint, positions));
    stream.unary_frontier::<Nothing, _, _, _>(Exchange::new(|_: &D| 0), name, move |_cap, _info| {
        move |(input, frontier), _output| {
            let mut buffered = buffered.borrow_mut();
            input.for_each_stamp(|cap, batches| {
                let time = *cap.least().expect("totally ordered times have a least element");
                let entry = buffered.stash.entry(time).or_default();
                for batch in batches {
                    entry.append(batch);
                }
            });
            match release {
                Release::AtFrontier => buffered.write_before(frontier.frontier().first()),
                Release::AtOnce => buffered.write_all_as_one(),
            }
            if frontier.is_empty() && !buffered.closed {
                buffered.closed = true;
                buffered.writer.close();
            }
        }
    })
}

impl<'s, D: ExchangeData + Ord> BatchSink<'s, D> for StreamVec<'s, u64, D> {
    fn batch_sink(
        self,
        name: &str,
        writer: Box<dyn BatchWriter<D>>,
        hooks: &Hooks,
        positions: PositionsOf,
    ) -> StreamVec<'s, u64, ()> {
        sink_operator(self, name, writer, hooks, positions, Release::AtFrontier)
    }

    fn immediate_sink(
        self,
        name: &str,
        writer: Box<dyn BatchWriter<D>>,
        hooks: &Hooks,
        positions: PositionsOf,
    ) -> StreamVec<'s, u64, ()> {
        sink_operator(self, name, writer, hooks, positions, Release::AtOnce)
    }
}
