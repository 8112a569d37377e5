//! The metrics pipeline: source → (fixed-window partials → window results,
//! session windows) → metrics sinks; invalid and late inputs → dead-letter sink.

use crate::alerts::Alert;
use crate::checkpoint::{CheckpointStore, Hooks, SinkPositions};
use crate::control::RunControl;
use crate::operators::alert_dedup::DedupAlerts;
use crate::operators::batch_sink::{BatchSink, BatchWriter};
use crate::operators::checkpoint_gate::{GateSpec, GateState, checkpoint_gate};
use crate::operators::chunked_source::{ChunkShare, ChunkedSourceSpec, chunked_source};
use crate::operators::event_alerts::EventAlerts;
use crate::operators::event_source::{EventSourceSpec, PartitionSnapshot, SourceContext, SourceStreams, event_source};
use crate::operators::pattern_alerts::PatternAlerts;
use crate::operators::rare_sequences::RareSequenceAlerts;
use crate::operators::session_windows::SessionWindows;
use crate::operators::window_alerts::WindowAlerts;
use crate::operators::window_partials::WindowPartials;
use crate::operators::window_results::{AtWindowEnds, WindowResults};
use crate::record::{DeadLetter, WindowRecord};
use crate::source::{Partition, SourceKind};
use crate::spec;
use crate::window::{AggregationPlan, FlushSlots, Shape};
use std::sync::Arc;
use timely::dataflow::ProbeHandle;
use timely::dataflow::Scope;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::{Operator, operator::empty};
use timely::dataflow::operators::vec::Broadcast;
use timely::dataflow::operators::{Concat, Concatenate, Probe};

/// What one worker reads from and writes to.
pub struct PipelineIo {
    /// How the source names itself in dead letters.
    pub kind: SourceKind,
    /// This worker's partitions.
    pub partitions: Vec<(u32, Box<dyn Partition>)>,
    /// This worker's share of a partition every worker of the process reads (a file); then
    /// `partitions` is empty.
    pub chunks: Option<ChunkShare>,
    /// Metrics sinks (only worker 0's receive records).
    pub metrics: Box<dyn BatchWriter<WindowRecord>>,
    /// Dead-letter sinks (only worker 0's receive records).
    pub dead_letters: Box<dyn BatchWriter<DeadLetter>>,
    /// Alert channels (only worker 0's receive alerts).
    pub alerts: Box<dyn BatchWriter<Alert>>,
}

/// Checkpoints of one worker: where they go, and what it resumes from.
pub struct Checkpoints {
    /// The store (shared by the workers of the process).
    pub store: Arc<dyn CheckpointStore>,
    /// The worker's hooks, holding the state it restores (if resumed).
    pub hooks: Hooks,
    /// The positions and watermarks of the partitions it owns at the checkpoint resumed from.
    pub partitions: Vec<PartitionSnapshot>,
    /// How far ahead of the most advanced source the gate is kept, in epochs.
    pub lookahead_epochs: u64,
}

/// Builds the metrics pipeline of one worker; with checkpoints, returns the gate's state (what
/// the worker loop needs to end a stopped run).
pub fn build(
    scope: Scope<'_, u64>,
    config: &spec::Pipeline,
    io: PipelineIo,
    control: Arc<RunControl>,
    checkpoints: Option<Checkpoints>,
) -> Option<GateState> {
    let plans = AggregationPlan::from_config(&config.aggregations);
    let epoch = config.watermark.epoch.0;
    // What has reached the sinks: the source reads ahead of it by at most max_inflight_epochs.
    let sinks_probe = ProbeHandle::new();
    // What the sinks have received (their inputs' frontier): what a checkpoint waits for.
    let written = ProbeHandle::new();
    let hooks = checkpoints.as_ref().map_or_else(Hooks::off, |c| c.hooks.clone());
    let (gate, restored) = match checkpoints {
        Some(c) => {
            let spec = GateSpec {
                store: c.store,
                hooks: c.hooks,
                written: written.clone(),
                lookahead: c.lookahead_epochs.saturating_mul(epoch),
                epoch,
                control: control.clone(),
            };
            (Some(checkpoint_gate(scope, spec)), c.partitions)
        }
        None => (None, Vec::new()),
    };
    let peers_control = control.clone();
    let live_control = control.clone();
    let context = SourceContext {
        kind: io.kind,
        aggregations: plans.clone(),
        watermark: config.watermark.clone(),
        engine: config.engine.clone(),
        control,
        sinks_probe: sinks_probe.clone(),
        gate: gate.as_ref().map(|(probe, _)| probe.clone()),
        hooks: hooks.clone(),
        late_counters: config
            .aggregations
            .iter()
            .map(|a| live_control.counters.late_by_aggregation.handle(&a.name))
            .collect(),
    };
    let streams = match io.chunks {
        Some(share) => chunked_source(scope, ChunkedSourceSpec { context, share }),
        None => event_source(scope, EventSourceSpec { context, partitions: io.partitions, restored }),
    };
    let SourceStreams { events, dead_letters, watermarks } = streams;
    // Every worker learns every other worker's watermark, across processes too.
    watermarks.broadcast().sink(Pipeline, "PeerWatermarks", move |(input, _frontier)| {
        input.for_each(|_time, batch| {
            for (worker, watermark) in batch.drain(..) {
                peers_control.watermarks.publish(worker as usize, watermark);
            }
        });
    });
    let rules = Arc::new(crate::detect::rules::compile(config));
    let alerted: Vec<u16> = rules.window.iter().map(|rule| rule.aggregation).collect();
    let slots = FlushSlots::new(&plans, &alerted, config.watermark.epoch.0);
    // The flush waits after the alerted slots until their alerts are out.
    let window_alerts_probe = (!rules.window.is_empty()).then(ProbeHandle::new);
    // Only the operators the aggregations need: every further reader of the event stream costs
    // a copy of every batch.
    let fixed = match plans.iter().any(|p| matches!(p.shape, Shape::Fixed(_))) {
        true => events
            .clone()
            .window_partials(&plans, slots, window_alerts_probe.clone(), &hooks, live_control.clone())
            .window_results(),
        false => empty(scope),
    };
    let sessions = match plans.iter().any(|p| matches!(p.shape, Shape::Session { .. })) {
        true => events.clone().session_windows(&plans, epoch, &hooks, live_control),
        false => empty(scope),
    };
    // Metrics leave at their window's end; alerts are judged at each slot's time.
    let records = fixed.clone().concat(sessions.clone());
    let metrics = fixed.at_window_ends().concat(sessions).probe_with(&sinks_probe);
    // Window and single-event alerts are judged and deduplicated as they arrive (fast);
    // pattern and rare-sequence alerts are ordered by event time first. Detectors without
    // rules are not built, so the event stream is not copied for them.
    let mut alerts = Vec::new();
    if let Some(probe) = &window_alerts_probe {
        let aggregations = Arc::new(config.aggregations.clone());
        alerts.push(records.window_alerts(rules.clone(), aggregations, &hooks).probe_with(probe));
    }
    let mut sequences = Vec::new();
    if !rules.pattern.is_empty() {
        sequences.push(events.clone().pattern_alerts(rules.clone(), epoch, &hooks));
    }
    if !rules.rare.is_empty() {
        sequences.push(events.clone().rare_sequence_alerts(rules.clone(), epoch, &hooks));
    }
    if !sequences.is_empty() {
        alerts.push(scope.concatenate(sequences).dedup_alerts(rules.clone(), &hooks));
    }
    if !rules.event.is_empty() {
        alerts.push(events.event_alerts(rules.clone(), &hooks));
    }
    let mut received = Vec::new();
    if !alerts.is_empty() {
        received.push(scope.concatenate(alerts).immediate_sink("AlertSink", io.alerts, &hooks, |p| &mut p.alerts));
    }
    received.push(metrics.batch_sink("MetricsSink", io.metrics, &hooks, |p: &mut SinkPositions| &mut p.metrics));
    let letters = dead_letters.probe_with(&sinks_probe);
    received.push(letters.batch_sink("DeadLetterSink", io.dead_letters, &hooks, |p| &mut p.dead_letters));
    scope.concatenate(received).probe_with(&written);
    gate.map(|(_, state)| state)
}
