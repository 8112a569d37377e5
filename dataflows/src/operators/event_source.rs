//! The event source: reads this worker's partitions in bounded batches, parses, decides lateness
//! per event against its own partition's watermark, and advances event time.
//!
//! Outputs valid events (each stamped with the watermark it was judged against) and dead
//! letters. The operator holds one capability per output at the epoch of its watermark: the
//! minimum over its partitions that are neither finished nor idle. Every input is sent at the
//! capability (the window an event belongs to is decided from its own timestamp), so a
//! partition's position when the capability moves to a time C is exactly what was sent before C:
//! what a checkpoint at C records.
//!
//! With checkpoints on, the capability never passes the checkpoint gate (`checkpoint_gate`), and
//! reading pauses while it is at the gate: nothing at or after a checkpoint time is sent until
//! every worker has taken its checkpoint. A stop request is then the gate's business (a last
//! checkpoint), not the source's.

use crate::admission::{Clock, Judge, admit};
use crate::checkpoint::Hooks;
use crate::control::{Counters, RunControl};
use crate::event::Event;
use crate::record::{DeadLetter, Position};
use crate::source::{Partition, PartitionPosition, Poll, SourceKind};
use crate::spec::{EngineConfig, WatermarkConfig};
use crate::window::{AggregationPlan, epoch_of};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::{ProbeHandle, Scope, StreamVec};

/// How soon a source with nothing to read looks again.
const POLL_INTERVAL: Duration = Duration::from_millis(1);
/// Data whose watermark is within this much of the wall clock counts as live.
const LIVE_WINDOW_MS: u64 = 5 * 60_000;
/// How soon a source held back by slow sinks looks again.
const BACKPRESSURE_INTERVAL: Duration = Duration::from_millis(1);

/// How often the partitions' backlogs (a Kafka source's lag) are reported.
const BACKLOG_REPORT_EVERY: Duration = Duration::from_secs(1);
/// How many steps' worth of events (`engine.max_events_per_step` each) a source reads ahead
/// while it is held at the checkpoint gate, so that parsing goes on while the pipeline drains.
/// On a replay the drain takes 60–300 ms (the sinks trail the sources by up to
/// `engine.max_inflight_epochs`); 16 steps covered 20–30 ms of it and checkpoints every second
/// cost ~8% of wall time, 64 steps (262,144 events a worker at the default step, ~70 MB) bring
/// that to ~1.5% (BENCHMARKS.md). On live data the drain is one epoch and the buffer stays small.
const READ_AHEAD_STEPS: usize = 64;

/// What every source operator needs besides its input.
pub struct SourceContext {
    /// How the source names itself in dead letters.
    pub kind: SourceKind,
    /// The aggregations, for lateness.
    pub aggregations: Vec<AggregationPlan>,
    /// Watermark settings.
    pub watermark: WatermarkConfig,
    /// Batch and size limits.
    pub engine: EngineConfig,
    /// Stop requests, failures, counters.
    pub control: Arc<RunControl>,
    /// The frontier of what has reached the sinks, for backpressure.
    pub sinks_probe: ProbeHandle<u64>,
    /// The checkpoint gate's frontier, with checkpoints on: the capability stays at or below it.
    pub gate: Option<ProbeHandle<u64>>,
    /// Checkpoint hooks: the partitions' positions are taken here, and a resumed run starts
    /// at the checkpoint's time.
    pub hooks: Hooks,
    /// The late counter of each aggregation (by index), shared by the workers.
    pub late_counters: Vec<Arc<AtomicU64>>,
}

/// Whether a source whose capability is at `cap_time` is too far ahead of what the sinks have
/// written (`max_ahead`, event time) to read on; reports how far, in epochs.
pub(crate) fn lagging(
    sinks_probe: &ProbeHandle<u64>,
    cap_time: u64,
    epoch: u64,
    max_ahead: u64,
    control: &RunControl,
) -> bool {
    let ahead = sinks_probe.with_frontier(|f| f.first().map(|done| cap_time.saturating_sub(*done)));
    Counters::set(&control.counters.backpressure_epochs, ahead.unwrap_or(0) / epoch.max(1));
    ahead.is_some_and(|ahead| ahead > max_ahead)
}

/// A source's three capabilities (events, dead letters, watermarks) from its builder, at
/// `resumed_at`: a resumed run continues at its checkpoint's time, and nothing before it is sent
/// again.
pub(crate) fn source_caps(
    mut capabilities: Vec<Capability<u64>>,
    resumed_at: u64,
) -> (Capability<u64>, Capability<u64>, Capability<u64>) {
    for cap in capabilities.iter_mut() {
        cap.downgrade(&resumed_at);
    }
    let watermark = capabilities.pop().expect("three outputs");
    let dead = capabilities.pop().expect("three outputs");
    let event = capabilities.pop().expect("three outputs");
    (event, dead, watermark)
}

/// Moves a source's three capabilities (events, dead letters, watermarks) to the epoch of its
/// watermark `watermark`, never past the checkpoint gate `limit`, when that is later.
pub(crate) fn advance_caps(caps: [&mut Capability<u64>; 3], watermark: u64, epoch: u64, limit: Option<u64>) {
    let target = epoch_of(watermark, epoch).min(limit.unwrap_or(u64::MAX));
    if target > *caps[0].time() {
        for cap in caps {
            cap.downgrade(&target);
        }
    }
}

/// The epoch of the last watermark a worker told the others (workers of other processes follow
/// it when all their partitions are idle).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Told(Option<u64>);

impl Told {
    /// Whether `watermark` enters an epoch (of `epoch` ms) the others have not been told of (and
    /// if so, remembers that they now are).
    pub(crate) fn anew(&mut self, watermark: u64, epoch: u64) -> bool {
        let at = epoch_of(watermark, epoch);
        let new = self.0.is_none_or(|told| at > told);
        if new {
            self.0 = Some(at);
        }
        new
    }
}

/// What the event source needs to know.
pub struct EventSourceSpec {
    /// What every source needs.
    pub context: SourceContext,
    /// This worker's partitions: (partition index, reader).
    pub partitions: Vec<(u32, Box<dyn Partition>)>,
    /// The watermarks of this worker's partitions at the checkpoint resumed from.
    pub restored: Vec<PartitionSnapshot>,
}

/// Per-partition reading state.
struct PartitionState {
    index: u32,
    reader: Box<dyn Partition>,
    max_timestamp: Option<u64>,
    finished: bool,
    last_data: Instant,
}

impl PartitionState {
    /// The watermark: the largest timestamp read minus the allowed out-of-orderness.
    fn watermark(&self, out_of_orderness: u64) -> u64 {
        self.max_timestamp.map_or(0, |ts| ts.saturating_sub(out_of_orderness))
    }
}

/// Where one partition stands, as a checkpoint stores it: its reading position and the largest
/// timestamp read (its watermark's base). Partitions are their own shards.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionSnapshot {
    /// The partition.
    pub index: u32,
    /// Where reading continues.
    pub position: PartitionPosition,
    /// The largest timestamp read, if any.
    pub max_timestamp: Option<u64>,
}

/// What the event source of one worker knows: its partitions, what it read since it last sent,
/// and the watermark it last told the other workers.
pub struct SourceState {
    kind: SourceKind,
    partitions: Vec<PartitionState>,
    aggregations: Vec<AggregationPlan>,
    engine: EngineConfig,
    out_of_orderness: u64,
    epoch: u64,
    /// How far ahead of the wall clock an event may be stamped (`None`: any time).
    max_future_skew: Option<u64>,
    /// Events read since the last send.
    pending: Vec<Event>,
    letters: Vec<DeadLetter>,
    next_partition: usize,
    /// The epoch of the last watermark this worker told the others.
    told: Told,
    /// The partitions' positions when the capability reached the checkpoint gate: what a
    /// checkpoint there records while the source reads ahead (see [`READ_AHEAD_STEPS`]).
    at_gate: Option<Vec<PartitionSnapshot>>,
    /// The late counter of each aggregation, by index.
    late_counters: Vec<Arc<AtomicU64>>,
    /// When the partitions' backlogs were last reported.
    backlog_reported: Option<Instant>,
}

impl SourceState {
    /// Reads up to the step's budget from the partitions (round robin), judging each event
    /// against its partition's watermark or `cap_time`, whichever is later. Returns whether some
    /// partition may have more right away.
    fn read(&mut self, cap_time: u64, now: Instant, control: &RunControl) -> bool {
        let mut ready = false;
        let count = self.partitions.len();
        let budget = self.engine.max_events_per_step.get().div_ceil(count.max(1));
        let (out_of_orderness, max_bytes) = (self.out_of_orderness, self.engine.max_event_bytes.get());
        // The wall clock and the latest acceptable event time, read once per step.
        let clock = Clock::now(self.max_future_skew);
        let judge =
            Judge { kind: self.kind, aggregations: &self.aggregations, late_counters: &self.late_counters, control };
        for step in 0..count {
            let partition = &mut self.partitions[(self.next_partition + step) % count];
            if partition.finished {
                continue;
            }
            let mut read = 0u64;
            let PartitionState { index, reader, max_timestamp, .. } = partition;
            let (pending, letters) = (&mut self.pending, &mut self.letters);
            let polled = reader.poll(budget, &mut |bytes, offset| {
                read += 1;
                let position = Position { partition: *index, offset };
                let partition_watermark = max_timestamp.map_or(0, |ts: u64| ts.saturating_sub(out_of_orderness));
                // An idle partition may have let the capability run ahead of its watermark.
                let judged_against = partition_watermark.max(cap_time);
                let admitted = admit(bytes, max_bytes, clock);
                if let Some(ts) = admitted.timestamp() {
                    *max_timestamp = Some(max_timestamp.map_or(ts, |m| m.max(ts)));
                }
                judge.judge(admitted, bytes, position, judged_against, pending, letters);
            });
            Counters::add(&control.counters.events_in, read);
            if read > 0 {
                partition.last_data = now;
            }
            match polled {
                Ok(Poll::Ready) => ready = true,
                Ok(Poll::Pending) => {}
                Ok(Poll::Finished) => partition.finished = true,
                Err(e) => {
                    control.fail(format!("source partition {}: {e}", partition.index));
                    partition.finished = true;
                }
            }
        }
        self.next_partition = (self.next_partition + 1) % count.max(1);
        if self.backlog_reported.is_none_or(|at| now.duration_since(at) >= BACKLOG_REPORT_EVERY) {
            self.backlog_reported = Some(now);
            for partition in &self.partitions {
                if let Some(backlog) = partition.reader.backlog() {
                    control.counters.kafka_lag.set(&partition.index.to_string(), backlog);
                }
            }
        }
        ready
    }

    fn all_finished(&self) -> bool {
        self.partitions.iter().all(|p| p.finished)
    }

    /// The lowest watermark of the partitions that are neither finished nor idle, if any.
    fn active_watermark(&self, now: Instant, idle_timeout: Duration) -> Option<u64> {
        self.partitions
            .iter()
            .filter(|p| !p.finished && now.duration_since(p.last_data) < idle_timeout)
            .map(|p| p.watermark(self.out_of_orderness))
            .min()
    }

    /// The most advanced watermark any partition has seen.
    fn seen_watermark(&self) -> u64 {
        self.partitions.iter().map(|p| p.watermark(self.out_of_orderness)).max().unwrap_or(0)
    }

    /// Whether `watermark` enters an epoch the other workers have not been told of (and if so,
    /// remembers that they now are).
    fn tell(&mut self, watermark: u64) -> bool {
        self.told.anew(watermark, self.epoch)
    }

    /// Where every partition stands (for a checkpoint; partitions are their own shards).
    pub fn snapshot(&self) -> Vec<PartitionSnapshot> {
        self.partitions
            .iter()
            .map(|p| PartitionSnapshot {
                index: p.index,
                position: p.reader.position(),
                max_timestamp: p.max_timestamp,
            })
            .collect()
    }
}

/// The watermark of a worker (CONTRACT section 3, idleness).
///
/// `active` is the lowest watermark of its partitions that are neither finished nor idle. When
/// every open partition is idle it stops holding the others back: it follows the most advanced
/// other worker (`peer`, of any process); with none, it follows the wall clock
/// (`wall - out_of_orderness - idle_timeout`), but only for live data — what it has `seen` is
/// within [`LIVE_WINDOW_MS`] of the wall clock — because a replay of old events would otherwise
/// turn late after a pause; else it holds where it is (`held`), as Flink does when all its
/// inputs are idle.
pub fn worker_watermark(
    active: Option<u64>,
    peer: Option<u64>,
    wall: u64,
    seen: u64,
    held: u64,
    out_of_orderness: u64,
    idle_timeout: u64,
) -> u64 {
    match (active, peer) {
        (Some(watermark), _) => watermark,
        (None, Some(peer)) => peer,
        (None, None) => wall_clock_watermark(wall, seen, out_of_orderness, idle_timeout).unwrap_or(held),
    }
}

/// The watermark of a source whose partitions are all idle and that has no other worker to
/// follow: the wall clock less the out-of-orderness and the idle timeout, but only for live data
/// — what it has `seen` (its most advanced watermark) is within [`LIVE_WINDOW_MS`] of the wall
/// clock; `None` for a replay of old events, which holds where it is.
pub(crate) fn wall_clock_watermark(wall: u64, seen: u64, out_of_orderness: u64, idle_timeout: u64) -> Option<u64> {
    (wall.saturating_sub(seen) < LIVE_WINDOW_MS)
        .then(|| wall.saturating_sub(out_of_orderness.saturating_add(idle_timeout)))
}

/// What an event source produces.
pub struct SourceStreams<'s> {
    /// Valid events, each stamped with the watermark it was judged against.
    pub events: StreamVec<'s, u64, Event>,
    /// Invalid and late inputs.
    pub dead_letters: StreamVec<'s, u64, DeadLetter>,
    /// (worker, watermark) whenever a worker with active partitions reaches a new epoch: for the
    /// workers of other processes, so that one whose partitions are all idle can follow them.
    pub watermarks: StreamVec<'s, u64, (u32, u64)>,
}

/// An output of a source operator.
pub(crate) type SourceOutput<D> = OutputBuilder<u64, timely::container::CapacityContainerBuilder<Vec<D>>>;

/// A source operator's builder and its three outputs: events, dead letters, watermarks.
pub(crate) struct SourceOperator<'s> {
    pub builder: OperatorBuilder<'s, u64>,
    pub events: SourceOutput<Event>,
    pub dead_letters: SourceOutput<DeadLetter>,
    pub watermarks: SourceOutput<(u32, u64)>,
    pub streams: SourceStreams<'s>,
}

impl<'s> SourceOperator<'s> {
    /// A source operator named `name`, with its three outputs.
    pub(crate) fn new(scope: Scope<'s, u64>, name: &str) -> SourceOperator<'s> {
        let mut builder = OperatorBuilder::new(name.to_owned(), scope);
        let (events_out, events) = builder.new_output();
        let (dead_out, dead_letters) = builder.new_output();
        let (watermark_out, watermarks) = builder.new_output();
        SourceOperator {
            builder,
            events: OutputBuilder::from(events_out),
            dead_letters: OutputBuilder::from(dead_out),
            watermarks: OutputBuilder::from(watermark_out),
            streams: SourceStreams { events, dead_letters, watermarks },
        }
    }
}

/// Builds the event source of this worker.
pub fn event_source<'s>(scope: Scope<'s, u64>, spec: EventSourceSpec) -> SourceStreams<'s> {
    let SourceOperator {
        builder,
        events: mut events_out,
        dead_letters: mut dead_out,
        watermarks: mut watermark_out,
        streams,
    } = SourceOperator::new(scope, "EventSource");
    let activator = scope.activator_for(builder.operator_info().address);
    let worker = scope.index();

    builder.build(move |capabilities| {
        let EventSourceSpec { context, partitions, restored } = spec;
        let SourceContext { kind, aggregations, watermark, engine, control, sinks_probe, gate, hooks, late_counters } =
            context;
        let max_ahead = engine.max_inflight_epochs.get().saturating_mul(watermark.epoch.0);
        let out_of_orderness = watermark.max_out_of_orderness.0;
        let epoch = watermark.epoch.0;
        let idle_timeout = watermark.idle_timeout.as_duration();
        let partitions: Vec<PartitionState> = partitions
            .into_iter()
            .map(|(index, reader)| PartitionState {
                index,
                reader,
                max_timestamp: restored.iter().find(|r| r.index == index).and_then(|r| r.max_timestamp),
                finished: false,
                last_data: Instant::now(),
            })
            .collect();
        let caps = source_caps(capabilities, hooks.resumed_at);
        let mut caps = if partitions.is_empty() { None } else { Some(caps) };
        let source = SourceState {
            kind,
            partitions,
            aggregations,
            engine,
            out_of_orderness,
            epoch,
            max_future_skew: watermark.max_future_skew.0.map(|skew| skew.0),
            pending: Vec::new(),
            letters: Vec::new(),
            next_partition: 0,
            told: Told::default(),
            at_gate: None,
            late_counters,
            backlog_reported: None,
        };
        let state = hooks.share(source, |state, checkpoint| {
            checkpoint.partitions.extend(state.at_gate.clone().unwrap_or_else(|| state.snapshot()))
        });

        move |_frontiers| {
            let Some((event_cap, dead_cap, watermark_cap)) = caps.as_mut() else { return };
            let mut state = state.borrow_mut();
            let now = Instant::now();
            // With checkpoints on, a stop is a last checkpoint at the gate: the source goes on
            // until it reaches the gate and keeps its capability there.
            let stopping = control.stop_requested() && gate.is_none();
            let limit = gate.as_ref().and_then(|gate| gate.with_frontier(|f| f.first().copied()));
            let at_gate = limit.is_some_and(|limit| *event_cap.time() >= limit);
            // Backpressure: do not read further while the sinks lag too far behind.
            let lagging = lagging(&sinks_probe, *event_cap.time(), epoch, max_ahead, &control);
            if at_gate && !lagging && state.pending.len() < READ_AHEAD_STEPS * state.engine.max_events_per_step.get() {
                // Held at the gate (the pipeline drains to a checkpoint there, or worker 0 has not
                // moved it yet): read and parse ahead, sending nothing. The events are sent at
                // the capability once the gate has passed, so at or after it, as if read then —
                // each judged against the same capability time — and a checkpoint at the gate
                // records the positions from before them.
                if state.at_gate.is_none() {
                    state.at_gate = Some(state.snapshot());
                }
                let cap_time = *event_cap.time();
                state.read(cap_time, now, &control);
            }
            if (lagging || at_gate) && !stopping {
                activator.activate_after(BACKPRESSURE_INTERVAL);
                return;
            }
            state.at_gate = None;
            let ready = !stopping && state.read(*event_cap.time(), now, &control);
            if !state.pending.is_empty() {
                // The whole batch as one message: no copy of each event into a new container.
                events_out.activate().session(&*event_cap).give_container(&mut state.pending);
            }
            if !state.letters.is_empty() {
                dead_out.activate().session(&*dead_cap).give_iterator(state.letters.drain(..));
            }
            if stopping || state.all_finished() {
                caps = None;
                return;
            }
            let active = state.active_watermark(now, idle_timeout);
            if let Some(w) = active {
                control.watermarks.publish(worker, w);
                if state.tell(w) {
                    watermark_out.activate().session(&*watermark_cap).give((worker as u32, w));
                }
            }
            // The peers and the wall clock matter only to a worker whose partitions are all idle.
            let (peer, wall) = match active {
                Some(_) => (None, 0),
                None => (control.watermarks.max_of_others(worker), crate::control::wall_clock_ms()),
            };
            let watermark = worker_watermark(
                active,
                peer,
                wall,
                state.seen_watermark(),
                *event_cap.time(),
                out_of_orderness,
                idle_timeout.as_millis() as u64,
            );
            advance_caps([event_cap, dead_cap, watermark_cap], watermark, epoch, limit);
            if ready {
                activator.activate();
            } else {
                activator.activate_after(POLL_INTERVAL);
            }
        }
    });

    streams
}

#[cfg(test)]
mod tests {
    use super::*;

    const WALL: u64 = 1_764_230_400_000;

    #[test]
    fn an_active_partition_sets_the_watermark() {
        assert_eq!(worker_watermark(Some(500), Some(9_000), WALL, 500, 0, 5_000, 10_000), 500);
    }

    #[test]
    fn an_idle_worker_follows_its_most_advanced_peer() {
        assert_eq!(worker_watermark(None, Some(9_000), WALL, 500, 0, 5_000, 10_000), 9_000);
    }

    #[test]
    fn an_idle_worker_alone_follows_the_wall_clock_only_for_live_data() {
        let live = WALL - 60_000;
        assert_eq!(worker_watermark(None, None, WALL, live, 7, 5_000, 10_000), WALL - 15_000);
        // A replay of last week's events holds where it is: following the wall clock would make
        // everything after a pause late.
        let replay = WALL - 7 * 86_400_000;
        assert_eq!(worker_watermark(None, None, WALL, replay, 7, 5_000, 10_000), 7);
    }

    #[test]
    fn the_state_reads_judges_and_reports_where_each_partition_stands() {
        let mut lines = crate::memory::MemoryLines::default();
        for line in [
            r#"{"event_type":"a","timestamp":10000}"#,
            "{broken",
            r#"{"event_type":"a","timestamp":20000}"#,
            r#"{"event_type":"a","timestamp":253402300799999}"#,
            r#"{"event_type":"a","timestamp":1000}"#,
        ] {
            lines.push(line.as_bytes());
        }
        let reader = Box::new(crate::memory::MemoryPartition::new(std::sync::Arc::new(lines), 0));
        let plan = AggregationPlan::from_config(&[crate::spec::AggregationConfig {
            name: "a".into(),
            window: crate::spec::WindowConfig::Tumbling { size: crate::spec::Millis(5_000) },
            group_by: crate::spec::GroupBy::EventType,
        }]);
        let mut state = SourceState {
            kind: SourceKind { name: "memory", by_line: false },
            partitions: vec![PartitionState {
                index: 3,
                reader,
                max_timestamp: None,
                finished: false,
                last_data: Instant::now(),
            }],
            aggregations: plan,
            engine: EngineConfig {
                max_events_per_step: std::num::NonZeroUsize::new(10).unwrap(),
                ..EngineConfig::default()
            },
            out_of_orderness: 2_000,
            epoch: 1_000,
            max_future_skew: Some(3_600_000),
            pending: Vec::new(),
            letters: Vec::new(),
            next_partition: 0,
            told: Told::default(),
            at_gate: None,
            late_counters: vec![Arc::new(AtomicU64::new(0))],
            backlog_reported: None,
        };
        let control = RunControl::default();
        state.read(0, Instant::now(), &control);
        assert!(state.all_finished());
        let reasons: Vec<&str> = state.letters.iter().map(|l| l.reason.as_str()).collect();
        assert_eq!(reasons, vec!["invalid_json", "future", "late"], "ts 1000 is late once the watermark is 18000");
        // The labelled counters of /metrics count the same.
        assert_eq!(Counters::get(&state.late_counters[0]), 1);
        let by_reason = control.counters.invalid_by_reason.values();
        assert_eq!(by_reason, vec![("future".to_owned(), 1), ("invalid_json".to_owned(), 1)]);
        assert!(state.letters[1].detail.as_deref().is_some_and(|d| d.contains("ahead of the wall clock")));
        assert_eq!(state.pending.len(), 2);
        assert_eq!(
            state.snapshot(),
            vec![PartitionSnapshot {
                index: 3,
                position: PartitionPosition { next: 5, lines: 0 },
                max_timestamp: Some(20_000)
            }]
        );
        assert_eq!(
            state.active_watermark(Instant::now(), Duration::from_secs(10)),
            None,
            "finished partitions are not active"
        );
        assert_eq!(state.seen_watermark(), 18_000, "the event from the year 9999 moved no watermark");
        assert!(state.tell(18_000) && !state.tell(18_500) && state.tell(19_000));
    }

    #[test]
    fn no_timestamp_overflows_the_policy() {
        assert_eq!(worker_watermark(None, None, 0, 0, 3, u64::MAX, u64::MAX), 0);
        assert_eq!(worker_watermark(Some(u64::MAX), None, 0, 0, 0, 0, 0), u64::MAX);
    }
}
