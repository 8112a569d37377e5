//! The event source: reads this worker's partitions in bounded batches, parses, decides lateness
//! per event against its own partition's watermark, and advances event time.
//!
//! Outputs valid events (each stamped with the watermark it was judged against) and dead
//! letters. The operator holds one capability per output at the epoch of its watermark: the
//! minimum over its partitions that are neither finished nor idle. An event is sent at
//! `max(its epoch, the capability)`; the window it belongs to is decided from its own timestamp.

use crate::control::{Counters, RunControl};
use crate::event::{Event, parse_event};
use crate::record::{DeadLetter, Position};
use crate::source::{Partition, Poll, SourceKind};
use crate::spec::{EngineConfig, WatermarkConfig};
use crate::window::{AggregationPlan, epoch_of};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::{ProbeHandle, Scope, StreamVec};

/// Raw text of a dead letter is cut to this many bytes for oversized inputs.
const MAX_DEAD_LETTER_RAW: usize = 1024;
/// How soon a source with nothing to read looks again.
const POLL_INTERVAL: Duration = Duration::from_millis(1);
/// Data whose watermark is within this much of the wall clock counts as live.
const LIVE_WINDOW_MS: u64 = 5 * 60_000;
/// How soon a source held back by slow sinks looks again.
const BACKPRESSURE_INTERVAL: Duration = Duration::from_millis(1);

/// What the event source needs to know.
pub struct EventSourceSpec {
    /// How the source names itself in dead letters.
    pub kind: SourceKind,
    /// This worker's partitions: (partition index, reader).
    pub partitions: Vec<(u32, Box<dyn Partition>)>,
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

/// Builds the event source of this worker.
pub fn event_source<'s>(scope: Scope<'s, u64>, spec: EventSourceSpec) -> SourceStreams<'s> {
    let mut builder = OperatorBuilder::new("EventSource".to_owned(), scope);
    let activator = scope.activator_for(builder.operator_info().address);
    let worker = scope.index();
    let (events_out, events) = builder.new_output();
    let (dead_out, dead_letters) = builder.new_output();
    let (watermark_out, watermarks) = builder.new_output();
    let mut events_out = OutputBuilder::<_, timely::container::CapacityContainerBuilder<Vec<Event>>>::from(events_out);
    let mut dead_out = OutputBuilder::<_, timely::container::CapacityContainerBuilder<Vec<DeadLetter>>>::from(dead_out);
    let mut watermark_out =
        OutputBuilder::<_, timely::container::CapacityContainerBuilder<Vec<(u32, u64)>>>::from(watermark_out);

    builder.build(move |mut capabilities| {
        let watermark_cap = capabilities.pop().expect("three outputs");
        let dead_cap = capabilities.pop().expect("three outputs");
        let event_cap = capabilities.pop().expect("three outputs");
        let EventSourceSpec { kind, partitions, aggregations, watermark, engine, control, sinks_probe } = spec;
        let max_ahead = engine.max_inflight_epochs.saturating_mul(watermark.epoch.0);
        let out_of_orderness = watermark.max_out_of_orderness.0;
        let epoch = watermark.epoch.0;
        let idle_timeout = watermark.idle_timeout.as_duration();
        let mut partitions: Vec<PartitionState> = partitions
            .into_iter()
            .map(|(index, reader)| PartitionState { index, reader, max_timestamp: None, finished: false, last_data: Instant::now() })
            .collect();
        let mut caps = if partitions.is_empty() { None } else { Some((event_cap, dead_cap, watermark_cap)) };
        // The epoch of the last watermark this worker told the others.
        let mut told_epoch = None;
        let mut pending: BTreeMap<u64, Vec<Event>> = BTreeMap::new();
        let mut letters: Vec<DeadLetter> = Vec::new();
        let mut next_partition = 0;

        move |_frontiers| {
            let Some((event_cap, dead_cap, watermark_cap)) = caps.as_mut() else { return };
            let now = Instant::now();
            let stopping = control.stop_requested();
            // Backpressure: do not read further while the sinks lag too far behind.
            let lagging = sinks_probe.with_frontier(|f| f.first().is_some_and(|done| *event_cap.time() > done + max_ahead));
            if lagging && !stopping {
                activator.activate_after(BACKPRESSURE_INTERVAL);
                return;
            }
            let mut ready = false;
            let budget = engine.max_events_per_step.div_ceil(partitions.len().max(1));
            let count = partitions.len();
            for step in 0..count {
                if stopping {
                    break;
                }
                let partition = &mut partitions[(next_partition + step) % count];
                if partition.finished {
                    continue;
                }
                let cap_time = *event_cap.time();
                let mut read = 0u64;
                let PartitionState { index, reader, max_timestamp, .. } = partition;
                let polled = reader.poll(budget, &mut |bytes, offset| {
                    read += 1;
                    let position = Position { partition: *index, offset };
                    let partition_watermark = max_timestamp.map_or(0, |ts: u64| ts.saturating_sub(out_of_orderness));
                    // An idle partition may have let the capability run ahead of its watermark.
                    let judged_against = partition_watermark.max(cap_time);
                    match parse_event(bytes, engine.max_event_bytes) {
                        Err(invalid) => {
                            Counters::add(&control.counters.invalid_events, 1);
                            tracing::debug!(reason = invalid.reason.as_str(), detail = %invalid.detail, "invalid event");
                            letters.push(dead_letter(kind, position, invalid.reason.as_str(), None, bytes, None));
                        }
                        Ok(mut event) => {
                            event.watermark = judged_against;
                            let mut on_time = false;
                            for plan in &aggregations {
                                if plan.group_key(&event).is_none() {
                                    continue;
                                }
                                let lateness = plan.lateness(event.timestamp, judged_against);
                                if lateness.late_for_some {
                                    Counters::add(&control.counters.late_events, 1);
                                    letters.push(dead_letter(kind, position, "late", Some(plan.index), bytes, Some(event.timestamp)));
                                }
                                on_time |= lateness.on_time_for_some;
                            }
                            *max_timestamp = Some(max_timestamp.map_or(event.timestamp, |m| m.max(event.timestamp)));
                            if on_time {
                                let time = epoch_of(event.timestamp, epoch).max(cap_time);
                                pending.entry(time).or_default().push(event);
                            }
                        }
                    }
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
            next_partition = (next_partition + 1) % count.max(1);

            {
                let mut events_handle = events_out.activate();
                for (time, batch) in pending.iter_mut() {
                    let cap = event_cap.delayed(time);
                    events_handle.session(&cap).give_iterator(batch.drain(..));
                }
                pending.clear();
                if !letters.is_empty() {
                    let mut dead_handle = dead_out.activate();
                    dead_handle.session(&*dead_cap).give_iterator(letters.drain(..));
                }
            }

            let all_finished = stopping || partitions.iter().all(|p| p.finished);
            if all_finished {
                caps = None;
                return;
            }
            let active = partitions.iter().filter(|p| !p.finished && now.duration_since(p.last_data) < idle_timeout);
            let watermark = match active.map(|p| p.watermark(out_of_orderness)).min() {
                Some(w) => {
                    control.watermarks.publish(worker, w);
                    if told_epoch.is_none_or(|told| epoch_of(w, epoch) > told) {
                        told_epoch = Some(epoch_of(w, epoch));
                        watermark_out.activate().session(&*watermark_cap).give((worker as u32, w));
                    }
                    w
                }
                // Every open partition is idle: stop holding the others back by following the
                // most advanced other worker (of any process); with none, follow the wall clock, but
                // only for live data (a replay of old events would otherwise turn late).
                None => {
                    let wall = crate::control::wall_clock_ms();
                    let seen = partitions.iter().map(|p| p.watermark(out_of_orderness)).max().unwrap_or(0);
                    match control.watermarks.max_of_others(worker) {
                        Some(peer) => peer,
                        None if wall.saturating_sub(seen) < LIVE_WINDOW_MS => {
                            wall.saturating_sub(out_of_orderness + idle_timeout.as_millis() as u64)
                        }
                        None => *event_cap.time(),
                    }
                }
            };
            let target = epoch_of(watermark, epoch);
            if target > *event_cap.time() {
                event_cap.downgrade(&target);
                dead_cap.downgrade(&target);
                watermark_cap.downgrade(&target);
            }
            if ready {
                activator.activate();
            } else {
                activator.activate_after(POLL_INTERVAL);
            }
        }
    });

    SourceStreams { events, dead_letters, watermarks }
}

fn dead_letter(
    kind: SourceKind,
    position: Position,
    reason: &str,
    aggregation: Option<u16>,
    bytes: &[u8],
    event_time: Option<u64>,
) -> DeadLetter {
    let cut = &bytes[..bytes.len().min(if reason == "too_large" { MAX_DEAD_LETTER_RAW } else { usize::MAX })];
    DeadLetter {
        position,
        aggregation,
        reason: reason.into(),
        source: kind.name.into(),
        by_line: kind.by_line,
        raw: String::from_utf8_lossy(cut).into_owned(),
        event_time,
    }
}
