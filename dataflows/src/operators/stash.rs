//! Buffers that hold records until the frontier says they are final, with the capabilities to
//! send what they produce: the two ways operators here order their input.

use std::collections::BTreeMap;
use timely::dataflow::operators::{Capability, InputCapability};
use timely::progress::frontier::MutableAntichain;

/// Records stashed by the timely time they arrived at, released one time at a time, in time
/// order, once the frontier has passed it.
pub struct TimeStash<D> {
    stash: BTreeMap<u64, (Capability<u64>, Vec<D>)>,
}

impl<D> Default for TimeStash<D> {
    fn default() -> Self {
        TimeStash { stash: BTreeMap::new() }
    }
}

impl<D> TimeStash<D> {
    /// Stashes a message's records under its time.
    pub fn push<'a>(&mut self, cap: &InputCapability<u64>, batches: impl Iterator<Item = &'a mut Vec<D>>)
    where
        D: 'a,
    {
        let time = *cap.least().expect("totally ordered times have a least element");
        let entry = self.stash.entry(time).or_insert_with(|| (cap.delayed(&time, 0), Vec::new()));
        for batch in batches {
            entry.1.append(batch);
        }
    }

    /// The earliest stashed time the frontier has passed, with its capability and records.
    pub fn pop_ready(&mut self, frontier: &MutableAntichain<u64>) -> Option<(Capability<u64>, Vec<D>)> {
        let entry = self.stash.first_entry()?;
        if frontier.less_equal(entry.key()) {
            return None;
        }
        Some(entry.remove())
    }
}

/// Records stashed by their own event time, released in event-time order once the frontier has
/// passed that time, each with a capability for the epoch of its event time (retained from the
/// message that brought it), so that what they produce is sent at a time that does not depend
/// on arrival.
pub struct EventTimeStash<D> {
    epoch: u64,
    pending: BTreeMap<u64, Vec<D>>,
    caps: BTreeMap<u64, Capability<u64>>,
}

impl<D: Ord> EventTimeStash<D> {
    /// An empty stash for epochs of `epoch` ms.
    pub fn new(epoch: u64) -> EventTimeStash<D> {
        EventTimeStash { epoch, pending: BTreeMap::new(), caps: BTreeMap::new() }
    }

    /// Stashes a record with event time `ts` (the message's time must not be later than the
    /// epoch of `ts`).
    pub fn push(&mut self, cap: &InputCapability<u64>, ts: u64, record: D) {
        let at = ts - ts % self.epoch;
        self.caps.entry(at).or_insert_with(|| cap.delayed(&at, 0));
        self.pending.entry(ts).or_default().push(record);
    }

    /// Stashes a record restored from a checkpoint, with a capability of the operator's own
    /// (records pending at a checkpoint have event times at or after it).
    pub fn push_restored(&mut self, cap: &Capability<u64>, ts: u64, record: D) {
        let at = ts - ts % self.epoch;
        self.caps.entry(at).or_insert_with(|| cap.delayed(&at.max(*cap.time())));
        self.pending.entry(ts).or_default().push(record);
    }

    /// The records not released yet (for a checkpoint).
    pub fn pending(&self) -> impl Iterator<Item = &D> {
        self.pending.values().flatten()
    }

    /// Hands every record whose event time the frontier has passed to `each`, in (event time,
    /// record) order, with the capability of its epoch; then drops capabilities no longer needed.
    pub fn release(&mut self, frontier: &MutableAntichain<u64>, mut each: impl FnMut(&Capability<u64>, u64, D)) {
        let done = frontier.frontier().first().copied().unwrap_or(u64::MAX);
        while let Some(entry) = self.pending.first_entry() {
            let ts = *entry.key();
            if ts >= done {
                break;
            }
            let mut records = entry.remove();
            records.sort_unstable();
            let cap = &self.caps[&(ts - ts % self.epoch)];
            for record in records {
                each(cap, ts, record);
            }
        }
        let (epoch, pending) = (self.epoch, &self.pending);
        self.caps.retain(|at, _| *at >= done || pending.range(*at..at.saturating_add(epoch)).next().is_some());
    }

    /// The frontier's time, for pruning state (`u64::MAX` once the input is exhausted).
    pub fn done(frontier: &MutableAntichain<u64>) -> u64 {
        frontier.frontier().first().copied().unwrap_or(u64::MAX)
    }
}
