//! Checkpoints: what one worker saves at a checkpoint time C, how it is split into key shards and
//! merged back under any number of workers, and the hooks through which operators hand over
//! their state.
//!
//! The protocol (the `checkpoint_gate` operator runs it; `docs/architecture.md` says why it is
//! correct): worker 0 holds a gate that the sources may not pass; when a checkpoint is due it
//! holds the gate at C, every source stops reading once its capability reaches C, and once the
//! probe on the sinks shows everything before C written, each worker takes its [`Taken`] — the
//! state of its operators, its partitions' positions and, on the writing worker, its sinks'
//! positions — and hands it to the [`CheckpointStore`], which writes it beside the pipeline.
//! Nothing at or after C exists anywhere in the dataflow while the state is taken, so the state
//! is exactly that of the inputs before C.

use crate::alerts::dedup::DedupSnapshot;
use crate::detect::pattern::PatternSnapshot;
use crate::detect::rare_sequence::SessionsSnapshot;
use crate::operators::event_source::PartitionSnapshot;
use crate::operators::pattern_alerts::PatternInput;
use crate::operators::rare_sequences::SessionStep;
use crate::operators::session_windows::{OpenSession, SessionKey};
use crate::operators::window_partials::PaneEntry;
use crate::shard::Sharded;
use crate::sink::SinkPosition;
use compact_str::CompactString;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

/// The keyed state of one worker (or of one shard, or merged for a worker of a restart), each
/// kind by the shard of its key.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StateSnapshot {
    /// Open panes of tumbling and sliding windows (partials: every worker may hold some of a key).
    pub panes: Sharded<PaneEntry>,
    /// Open sessions of session windows.
    pub sessions: Sharded<(SessionKey, Vec<OpenSession>)>,
    /// Window rules: z-score histories and cooldowns.
    pub window_rules: crate::detect::window_rules::WindowJudgeSnapshot,
    /// Pattern matchers.
    pub patterns: PatternSnapshot,
    /// Pattern inputs read before C whose event time is not final yet.
    pub pattern_pending: Sharded<PatternInput>,
    /// Sessions' last events (rare sequences).
    pub sequence_sessions: SessionsSnapshot,
    /// Session steps read before C whose event time is not final yet.
    pub sequence_pending: Sharded<SessionStep>,
    /// Learned transition counts: (prev, next, count).
    pub transitions: Sharded<(CompactString, CompactString, u64)>,
    /// Cooldowns of pattern and rare-sequence alerts.
    pub sequence_dedup: DedupSnapshot,
    /// Cooldowns of single-event alerts.
    pub event_dedup: DedupSnapshot,
}

/// Calls `$apply` with every field of a [`StateSnapshot`] (by path), so that a new kind of state
/// is listed once.
macro_rules! fields {
    ($apply:ident) => {
        $apply!(panes);
        $apply!(sessions);
        $apply!(window_rules.histories);
        $apply!(window_rules.dedup);
        $apply!(patterns);
        $apply!(pattern_pending);
        $apply!(sequence_sessions);
        $apply!(sequence_pending);
        $apply!(transitions);
        $apply!(sequence_dedup);
        $apply!(event_dedup);
    };
}

/// Moves the shards of `from` into `by_shard` (one [`StateSnapshot`] per shard).
fn split_into<T>(
    from: &mut Sharded<T>,
    by_shard: &mut BTreeMap<u32, StateSnapshot>,
    field: impl Fn(&mut StateSnapshot) -> &mut Sharded<T>,
) {
    for (shard, entries) in std::mem::take(from).into_shards() {
        field(by_shard.entry(shard).or_default()).insert_shard(shard, entries);
    }
}

impl StateSnapshot {
    /// The snapshot split by shard (how the store keeps it: one entry per shard and worker).
    pub fn split(mut self) -> BTreeMap<u32, StateSnapshot> {
        let mut out = BTreeMap::new();
        macro_rules! split {
            ($($f:ident).+) => {
                split_into(&mut self.$($f).+, &mut out, |t| &mut t.$($f).+)
            };
        }
        fields!(split);
        out
    }

    /// Adds the entries of `other` (another worker's part of the same shards, or other shards).
    pub fn merge(&mut self, mut other: StateSnapshot) {
        macro_rules! merge {
            ($($f:ident).+) => {
                self.$($f).+.extend(std::mem::take(&mut other.$($f).+))
            };
        }
        fields!(merge);
    }

    /// Only the shards worker `worker` of `peers` owns.
    pub fn owned_by(mut self, worker: usize, peers: usize) -> StateSnapshot {
        macro_rules! own {
            ($($f:ident).+) => {
                self.$($f).+ = std::mem::take(&mut self.$($f).+).owned_by(worker, peers)
            };
        }
        fields!(own);
        self
    }

    /// Entries of every kind.
    pub fn len(&self) -> usize {
        let mut n = 0;
        macro_rules! count {
            ($($f:ident).+) => {
                n += self.$($f).+.len()
            };
        }
        fields!(count);
        n
    }

    /// Whether there is no state at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The open windows, as a resume reports them: one per key's pane (a worker holds each
    /// (aggregation, pane, key) once) and per open session.
    pub fn open_windows(&self) -> usize {
        self.panes.len() + self.sessions.entries().map(|(_, sessions)| sessions.len()).sum::<usize>()
    }
}

/// What each sink set had written at C (one position per configured sink, in config order).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SinkPositions {
    /// Metrics sinks.
    pub metrics: Vec<SinkPosition>,
    /// Alert channels.
    pub alerts: Vec<SinkPosition>,
    /// Dead-letter sinks.
    pub dead_letters: Vec<SinkPosition>,
}

/// One worker's checkpoint at time C, as it hands it to the store.
#[derive(Debug, Default)]
pub struct Taken {
    /// The checkpoint time C: everything before it is in, nothing at or after it.
    pub time: u64,
    /// The worker (global index).
    pub worker: usize,
    /// Its partitions' positions and watermarks.
    pub partitions: Vec<PartitionSnapshot>,
    /// Its sinks' positions (the writing worker only).
    pub sinks: Option<SinkPositions>,
    /// Its operators' keyed state.
    pub state: StateSnapshot,
    /// Why the checkpoint cannot be used (a sink could not make its output durable).
    pub failed: Option<String>,
}

/// Where checkpoints go (the `rtsa` package's Redis store implements it): it writes beside the
/// pipeline, retrying while the store is away, and never blocks the caller.
pub trait CheckpointStore: Send + Sync {
    /// Whether worker 0 should start a checkpoint now: the interval has passed since the last one
    /// and the store is not still writing an earlier one.
    fn due(&self) -> bool;
    /// Takes one worker's checkpoint (returns at once).
    fn submit(&self, taken: Taken);
    /// Whether the checkpoint at `time` has been written completely (its manifest exists).
    fn completed(&self, time: u64) -> bool;
}

/// What a worker of a resumed run starts from.
#[derive(Clone, Debug, Default)]
pub struct Restore {
    /// The checkpoint time C the sources continue from.
    pub time: u64,
    /// The positions of the partitions this worker owns now.
    pub partitions: Vec<PartitionSnapshot>,
    /// The keyed state of the shards this worker owns now.
    pub state: StateSnapshot,
}

type Hook = Box<dyn FnMut(&mut Taken)>;

/// How operators take part in checkpoints, per worker: each shares its state with a hook that
/// adds it to a [`Taken`] ([`Hooks::share`]), and takes its restored state when it is built.
/// With checkpoints off, hooks are not kept and nothing is restored.
#[derive(Clone, Default)]
pub struct Hooks {
    on: bool,
    hooks: Rc<RefCell<Vec<Hook>>>,
    restored: Rc<RefCell<StateSnapshot>>,
    /// The checkpoint time the run resumed from (0 for a fresh run).
    pub resumed_at: u64,
}

impl Hooks {
    /// No checkpoints.
    pub fn off() -> Hooks {
        Hooks::default()
    }

    /// Checkpoints on, starting from `restored` (empty for a fresh run) at `resumed_at`.
    pub fn on(restored: StateSnapshot, resumed_at: u64) -> Hooks {
        Hooks { on: true, hooks: Rc::default(), restored: Rc::new(RefCell::new(restored)), resumed_at }
    }

    /// An operator's state, shared with its checkpoint hook: `take` adds it to a checkpoint
    /// (the hook is kept only with checkpoints on). The operator borrows it once per activation.
    pub fn share<S: 'static>(&self, state: S, mut take: impl FnMut(&mut S, &mut Taken) + 'static) -> Rc<RefCell<S>> {
        let shared = Rc::new(RefCell::new(state));
        if self.on {
            let held = shared.clone();
            let hook: Hook = Box::new(move |checkpoint| take(&mut held.borrow_mut(), checkpoint));
            self.hooks.borrow_mut().push(hook);
        }
        shared
    }

    /// Whether checkpoints are on (the hooks run at each one).
    pub fn enabled(&self) -> bool {
        self.on
    }

    /// Takes a part of the restored state (empty for a fresh run).
    pub fn restored<T: Default>(&self, field: impl FnOnce(&mut StateSnapshot) -> &mut T) -> T {
        std::mem::take(field(&mut self.restored.borrow_mut()))
    }

    /// Runs every hook: the worker's checkpoint at `time`.
    pub fn take(&self, time: u64, worker: usize) -> Taken {
        let mut taken = Taken { time, worker, ..Taken::default() };
        for hook in self.hooks.borrow_mut().iter_mut() {
            hook(&mut taken);
        }
        taken
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shard::shard_of;

    #[test]
    fn a_snapshot_split_by_shard_and_merged_for_any_worker_count_is_the_same_state() {
        let mut state = StateSnapshot::default();
        for i in 0..300u32 {
            let key = CompactString::from(format!("k{i}"));
            state.transitions.push(shard_of(&key), (key.clone(), "next".into(), u64::from(i)));
            state
                .sequence_pending
                .push(shard_of(&key), SessionStep { ts: u64::from(i), session: key.clone(), event_type: "a".into() });
        }
        let total = state.clone().len();
        for peers in [1usize, 2, 3] {
            let mut merged = StateSnapshot::default();
            for worker in 0..peers {
                let mut mine = StateSnapshot::default();
                for (_, shard) in state.clone().split() {
                    mine.merge(shard.owned_by(worker, peers));
                }
                merged.merge(mine);
            }
            assert_eq!(merged.len(), total, "{peers} workers");
            let sorted = |s: &StateSnapshot| {
                let mut t: Vec<_> = s.transitions.entries().cloned().collect();
                t.sort();
                t
            };
            assert_eq!(sorted(&merged), sorted(&state));
        }
        let text = serde_json::to_string(&state).unwrap();
        assert_eq!(serde_json::from_str::<StateSnapshot>(&text).unwrap(), state);
        assert_eq!(serde_json::from_str::<StateSnapshot>("{}").unwrap(), StateSnapshot::default());
    }
}
