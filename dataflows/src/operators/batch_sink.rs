//! A sink operator: gathers records on worker 0, and when the frontier passes a time hands that
//! time's records, sorted, to a writer — so writes are batched per epoch and in a deterministic
//! order whatever the number of workers.

use std::collections::BTreeMap;
use timely::ExchangeData;
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;

/// Where a batch sink writes.
pub trait BatchWriter<D> {
    /// Writes one batch (the records of one time, sorted).
    fn write_batch(&mut self, batch: &[D]);
    /// Called once when the input is exhausted: flush and close.
    fn close(&mut self);
}

/// Extension trait: batch sinks.
pub trait BatchSink<D> {
    /// Writes the stream's records with `writer` on worker 0.
    fn batch_sink(self, name: &str, writer: Box<dyn BatchWriter<D>>);
    /// Writes the stream's records with `writer` on worker 0 as soon as they arrive (sorted
    /// within each arrival), without waiting for the frontier: for alerts, which must leave at
    /// once and carry their own idempotency key.
    fn immediate_sink(self, name: &str, writer: Box<dyn BatchWriter<D>>);
}

impl<D: ExchangeData + Ord> BatchSink<D> for StreamVec<'_, u64, D> {
    fn batch_sink(self, name: &str, mut writer: Box<dyn BatchWriter<D>>) {
        let mut stash: BTreeMap<u64, Vec<D>> = BTreeMap::new();
        let mut closed = false;
        self.sink(Exchange::new(|_: &D| 0), name, move |(input, frontier)| {
            input.for_each_stamp(|cap, batches| {
                let time = *cap.least().expect("totally ordered times have a least element");
                let entry = stash.entry(time).or_default();
                for batch in batches {
                    entry.append(batch);
                }
            });
            while let Some(entry) = stash.first_entry() {
                if frontier.less_equal(entry.key()) {
                    break;
                }
                let mut batch = entry.remove();
                batch.sort_unstable();
                writer.write_batch(&batch);
            }
            if frontier.is_empty() && !closed {
                closed = true;
                writer.close();
            }
        });
    }

    fn immediate_sink(self, name: &str, mut writer: Box<dyn BatchWriter<D>>) {
        let mut closed = false;
        let mut batch = Vec::new();
        self.sink(Exchange::new(|_: &D| 0), name, move |(input, frontier)| {
            input.for_each_stamp(|_cap, batches| {
                for b in batches {
                    batch.append(b);
                }
            });
            if !batch.is_empty() {
                batch.sort_unstable();
                writer.write_batch(&batch);
                batch.clear();
            }
            if frontier.is_empty() && !closed {
                closed = true;
                writer.close();
            }
        });
    }
}
