//! Key shards: every piece of keyed operator state belongs to one of [`SHARDS`] shards, computed
//! from the same hash the exchange pacts route by ([`route_hash`]). A shard is owned by worker
//! `shard % peers`, so state snapshot under one worker count can be loaded under another: each
//! worker takes the shards it now owns (Flink's key groups).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The number of key shards (fixed: a checkpoint taken with one count is not read with another).
pub const SHARDS: u32 = 256;

/// The hash that routes records between workers (exchange pacts): FxHash, fixed for a build.
pub fn route_hash(value: impl std::hash::Hash) -> u64 {
    use std::hash::Hasher;
    let mut hasher = rustc_hash::FxHasher::default();
    value.hash(&mut hasher);
    hasher.finish()
}

/// The shard of a key (whatever the exchange hashes).
pub fn shard_of(key: impl std::hash::Hash) -> u32 {
    (route_hash(key) % u64::from(SHARDS)) as u32
}

/// What an exchange pact routes a key by: its shard, so that worker `shard % peers` receives the
/// key (timely sends a record to worker `hash % peers`), the worker that owns the key's state.
pub fn exchange_by(key: impl std::hash::Hash) -> u64 {
    u64::from(shard_of(key))
}

/// Entries of keyed state grouped by shard.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sharded<T> {
    shards: BTreeMap<u32, Vec<T>>,
}

impl<T> Default for Sharded<T> {
    fn default() -> Self {
        Sharded { shards: BTreeMap::new() }
    }
}

impl<T> Sharded<T> {
    /// Adds an entry to a shard.
    pub fn push(&mut self, shard: u32, entry: T) {
        self.shards.entry(shard % SHARDS).or_default().push(entry);
    }
    /// Every entry, shard by shard.
    pub fn into_entries(self) -> impl Iterator<Item = T> {
        self.shards.into_values().flatten()
    }
    /// The shards worker `worker` of `peers` owns.
    pub fn owned_by(self, worker: usize, peers: usize) -> Sharded<T> {
        let shards = self.shards.into_iter().filter(|(shard, _)| *shard as usize % peers.max(1) == worker).collect();
        Sharded { shards }
    }
    /// Merges another set of shards into this one.
    pub fn extend(&mut self, other: Sharded<T>) {
        for (shard, entries) in other.shards {
            self.shards.entry(shard).or_default().extend(entries);
        }
    }
    /// Every entry, by reference.
    pub fn entries(&self) -> impl Iterator<Item = &T> {
        self.shards.values().flatten()
    }
    /// The shards and their entries.
    pub fn into_shards(self) -> impl Iterator<Item = (u32, Vec<T>)> {
        self.shards.into_iter()
    }
    /// Adds entries to one shard.
    pub fn insert_shard(&mut self, shard: u32, entries: Vec<T>) {
        self.shards.entry(shard % SHARDS).or_default().extend(entries);
    }
    /// The number of entries.
    pub fn len(&self) -> usize {
        self.shards.values().map(Vec::len).sum()
    }
    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.shards.values().all(Vec::is_empty)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shard_has_one_owner_for_any_worker_count() {
        let mut all = Sharded::default();
        for key in 0..1_000u32 {
            all.push(shard_of(key), key);
        }
        for peers in 1..5 {
            let mut seen: Vec<u32> = (0..peers).flat_map(|w| all.clone().owned_by(w, peers).into_entries()).collect();
            seen.sort_unstable();
            assert_eq!(seen, (0..1_000).collect::<Vec<_>>(), "{peers} workers");
        }
    }
}
