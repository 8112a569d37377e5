//! The checkpoint gate: a frontier that the sources' capabilities may not pass, and the
//! operator on every worker that takes the worker's checkpoint when the gate is held.
//!
//! Worker 0 holds the gate's capability a lookahead ahead of the most advanced source's
//! watermark (one epoch on live data, up to the event time of 50 ms of reading on a replay), so
//! that the sources run freely. When its store says a checkpoint is due, it sends the time C of
//! its capability to every worker (broadcast, at time C). Each worker's `CheckpointTaker` keeps
//! the message's capability, so the gate cannot pass C until every worker lets go: the sources
//! stop at C, nothing at or after C is sent anywhere, and once the probe on the sinks' inputs
//! shows everything before C received, the worker runs its checkpoint hooks (its operators'
//! state, its partitions' positions, and on worker 0 its sinks' positions after a flush), hands
//! the result to the store and lets go. The store writes it beside the pipeline.
//!
//! With a stop requested, worker 0 sends a last checkpoint and holds the gate there for good:
//! the pipeline stops at C without emitting windows that are not complete, and the run ends once
//! the store reports the checkpoint complete (see `finished`).

use crate::checkpoint::{CheckpointStore, Hooks};
use crate::control::RunControl;
use crate::window::epoch_of;
use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::vec::Broadcast;
use timely::dataflow::operators::{Capability, Probe};
use timely::dataflow::{ProbeHandle, Scope, StreamVec};

/// How often worker 0 moves the gate and the takers look at the sinks' probe.
const GATE_POLL: Duration = Duration::from_millis(1);

/// What the gate needs.
pub struct GateSpec {
    /// Where checkpoints go, and whether one is due.
    pub store: Arc<dyn CheckpointStore>,
    /// This worker's checkpoint hooks.
    pub hooks: Hooks,
    /// What the sinks have received.
    pub written: ProbeHandle<u64>,
    /// The most the gate is kept ahead of the most advanced source (it follows the sources'
    /// pace: one epoch on live data, more on a fast replay).
    pub lookahead: u64,
    /// The epoch, ms.
    pub epoch: u64,
    /// Stop requests and failures.
    pub control: Arc<RunControl>,
}

/// How far ahead of the leading source the gate is kept: the event time the sources cover in
/// about [`PACE_WINDOW`] of wall time, at least one epoch and at most the configured lookahead.
/// On live data (event time at wall speed) that is one epoch, so a checkpoint waits at most an
/// epoch for the sources to reach it; a replay runs far faster than wall time and gets a wide
/// gate, so the sources rarely wait for worker 0 to move it.
struct Pace {
    epoch: u64,
    most: u64,
    sample: Option<(std::time::Instant, u64)>,
    current: u64,
}

/// The wall time whose worth of event time the gate is kept ahead.
const PACE_WINDOW: Duration = Duration::from_millis(50);

impl Pace {
    fn new(epoch: u64, most: u64) -> Pace {
        Pace { epoch: epoch.max(1), most: most.max(epoch), sample: None, current: epoch.max(1) }
    }

    /// The lookahead now, given the leading source's epoch.
    fn lookahead(&mut self, leader: u64) -> u64 {
        let now = std::time::Instant::now();
        match self.sample {
            // Until a source has a watermark there is no pace to measure.
            None => self.sample = Some((now, leader)).filter(|_| leader > 0),
            Some((at, was)) if now.duration_since(at) >= PACE_WINDOW * 2 => {
                let elapsed = now.duration_since(at).as_secs_f64();
                let speed = leader.saturating_sub(was) as f64 / elapsed.max(1e-9);
                let wanted = (speed * PACE_WINDOW.as_secs_f64()) as u64;
                self.current = wanted.div_ceil(self.epoch).saturating_mul(self.epoch).clamp(self.epoch, self.most);
                self.sample = Some((now, leader));
            }
            Some(_) => {}
        }
        self.current
    }
}

/// The state of a worker's gate that its worker loop reads.
#[derive(Clone, Default)]
pub struct GateState {
    final_checkpoint: Rc<Cell<Option<u64>>>,
}

impl GateState {
    /// The time of the stop checkpoint this worker took, if a stop has been taken.
    pub fn final_checkpoint(&self) -> Option<u64> {
        self.final_checkpoint.get()
    }
}

/// Builds the gate on this worker; returns its frontier (for the sources) and its state.
pub fn checkpoint_gate(scope: Scope<'_, u64>, spec: GateSpec) -> (ProbeHandle<u64>, GateState) {
    let GateSpec { store, hooks, written, lookahead, epoch, control } = spec;
    let lookahead = lookahead.max(epoch).max(1);
    let resumed_at = hooks.resumed_at;
    let worker = scope.index();

    // Worker 0's commands: (checkpoint time, whether it is the last), each sent at its time.
    let mut builder = OperatorBuilder::new("CheckpointCommands".to_owned(), scope);
    let activator = scope.activator_for(builder.operator_info().address);
    let (commands_out, commands) = builder.new_output();
    let mut commands_out =
        OutputBuilder::<_, timely::container::CapacityContainerBuilder<Vec<(u64, bool)>>>::from(commands_out);
    let commander_written = written.clone();
    let commander_store = store.clone();
    builder.build(move |mut capabilities| {
        let mut cap: Option<Capability<u64>> = capabilities.pop().filter(|_| worker == 0);
        if let Some(cap) = cap.as_mut() {
            cap.downgrade(&resumed_at.saturating_add(lookahead));
        }
        let mut last = Some(resumed_at).filter(|at| *at > 0);
        let mut stopped = false;
        let mut pace = Pace::new(epoch, lookahead);
        move |_frontiers| {
            let Some(held) = cap.as_mut() else { return };
            activator.activate_after(GATE_POLL);
            let Some(received) = commander_written.with_frontier(|f| f.first().copied()) else {
                // Everything is written: the run is over.
                cap = None;
                return;
            };
            if stopped {
                return;
            }
            let at = *held.time();
            let stopping = control.stop_requested();
            if stopping && control.failure().is_some() {
                // A failure ends the run without a checkpoint; the last complete one stays.
                stopped = true;
                return;
            }
            // A stop's checkpoint may be at the time of the last one (nothing new since): the
            // takers then only mark it as the last.
            let new = last.is_none_or(|last| at > last);
            if stopping || (new && commander_store.due()) {
                tracing::debug!(at, stopping, received, "checkpoint requested");
                commands_out.activate().session(&*held).give((at, stopping));
                last = Some(at);
                if stopping {
                    stopped = true;
                    return;
                }
            }
            // Just ahead of the most advanced source (or of the sinks, when no source is active).
            let leader = control.watermarks.max().map_or(0, |w| epoch_of(w, epoch));
            let ahead = pace.lookahead(leader);
            let next = leader.max(epoch_of(received, epoch)).max(resumed_at).saturating_add(ahead);
            if next > at {
                held.downgrade(&next);
            }
        }
    });

    // Every worker: take the checkpoint once the sinks have received everything before C.
    let state = GateState::default();
    let final_checkpoint = state.final_checkpoint.clone();
    let gate: StreamVec<'_, u64, ()> =
        commands.broadcast().unary_frontier::<CapacityContainerBuilder<Vec<()>>, _, _, _>(
            Pipeline,
            "CheckpointTaker",
            move |_cap, info| {
                let activator = scope.activator_for(info.address);
                let mut held: Vec<(Capability<u64>, u64, bool)> = Vec::new();
                let mut taken_at: Option<u64> = None;
                move |(input, _frontier), _output| {
                    input.for_each_stamp(|cap, batches| {
                        for batch in batches {
                            for (at, last) in batch.drain(..) {
                                held.push((cap.delayed(&at, 0), at, last));
                            }
                        }
                    });
                    held.retain(|(_, at, last)| {
                        let frontier = written.with_frontier(|f| f.first().copied());
                        tracing::trace!(at, ?frontier, "checkpoint pending");
                        match frontier {
                            Some(f) if f < *at => return true,
                            // The sinks stand exactly at C: every source is held at C or finished, and
                            // nothing at or after C has been sent anywhere.
                            Some(f) if f == *at => {}
                            // Every source finished before reaching C, so the pipeline ran past it: the
                            // state is no longer that of C. No checkpoint; the run ends by draining.
                            _ => return false,
                        }
                        if taken_at.is_none_or(|done| done < *at) {
                            let started = std::time::Instant::now();
                            store.submit(hooks.take(*at, worker));
                            tracing::debug!(at, worker, us = started.elapsed().as_micros() as u64, "checkpoint taken");
                            taken_at = Some(*at);
                        }
                        if *last {
                            final_checkpoint.set(Some(*at));
                            // The gate stays at C for good: keep a capability there.
                            return true;
                        }
                        false
                    });
                    if held.iter().any(|(_, at, _)| written.less_than(at)) {
                        activator.activate_after(GATE_POLL);
                    }
                }
            },
        );
    let (probe, _) = gate.probe();
    (probe, state)
}
