//! Each stateful operator on its own, as differential's `tests/reduce.rs` does: feed it a stream
//! of timed records, `capture` its output, `extract` it and compare with what it must produce, so
//! a bug points at its operator rather than at a record of the whole pipeline.

use dataflows::alerts::{Alert, AlertKind};
use dataflows::checkpoint::Hooks;
use dataflows::control::RunControl;
use dataflows::detect::rules::{self, Rules};
use dataflows::event::Event;
use dataflows::memory::{MemoryLines, MemorySource};
use dataflows::operators::alert_dedup::DedupAlerts;
use dataflows::operators::batch_sink::{BatchSink, BatchWriter};
use dataflows::operators::event_alerts::EventAlerts;
use dataflows::operators::event_source::{EventSourceSpec, SourceContext, SourceStreams, event_source};
use dataflows::operators::pattern_alerts::PatternAlerts;
use dataflows::operators::rare_sequences::RareSequenceAlerts;
use dataflows::operators::session_windows::SessionWindows;
use dataflows::operators::window_alerts::WindowAlerts;
use dataflows::operators::window_partials::WindowPartials;
use dataflows::operators::window_results::WindowResults;
use dataflows::record::WindowRecord;
use dataflows::source::Source;
use dataflows::spec::{AggregationConfig, AnomalyConfig, Pipeline, Severity};
use dataflows::window::{AggregationPlan, FlushSlots};
use std::sync::{Arc, Mutex};
use timely::dataflow::channels::pact::Pipeline as Pipelined;
use timely::dataflow::operators::capture::Extract;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::Map;
use timely::dataflow::operators::{Capture, ToStream};
use timely::dataflow::{ProbeHandle, Scope, StreamVec};

/// A pipeline spec from YAML sections (aggregations, anomalies, alerts).
fn pipeline(yaml: &str) -> Pipeline {
    #[derive(serde::Deserialize)]
    struct Sections {
        aggregations: Vec<AggregationConfig>,
        #[serde(default)]
        anomalies: Vec<AnomalyConfig>,
    }
    let sections: Sections = serde_yaml_ng::from_str(yaml).expect("valid sections");
    Pipeline { aggregations: sections.aggregations, anomalies: sections.anomalies, ..Pipeline::default() }
}

/// Sends each record at its own time.
fn at_times<'s, D: Clone + 'static>(scope: Scope<'s, u64>, records: Vec<(u64, D)>) -> StreamVec<'s, u64, D> {
    records.to_stream(scope).unary(Pipelined, "AtTimes", |_cap, _info| {
        move |input, output| {
            input.for_each_stamp(|cap, batches| {
                for batch in batches {
                    let batch: &mut Vec<(u64, D)> = batch;
                    for (time, record) in batch.drain(..) {
                        output.session(&cap.delayed(&time, 0)).give(record);
                    }
                }
            });
        }
    })
}

/// An event as the source sends it: at the epoch of its timestamp, judged against `watermark`.
fn event(ts: u64, event_type: &str, user: &str, session: &str, is_error: bool) -> (u64, Event) {
    let event = Event {
        event_type: event_type.into(),
        user_id: Some(user.into()),
        session_id: Some(session.into()),
        timestamp: ts,
        latency_ms: Some((ts % 1_000) as f64),
        value: None,
        is_error,
        watermark: 0,
    };
    (ts - ts % 1_000, event)
}

/// (time, aggregation, start, end, key, count) of captured window records, sorted.
fn windows(captured: Vec<(u64, Vec<WindowRecord>)>) -> Vec<(u64, u16, i64, u64, String, u64)> {
    let mut out: Vec<_> = captured
        .into_iter()
        .flat_map(|(t, records)| {
            records.into_iter().map(move |(k, r)| (t, k.aggregation, k.start, k.end, k.key.to_string(), r.scalar.count))
        })
        .collect();
    out.sort();
    out
}

/// (time, rule, key, window_start, suppressed) of captured alerts, sorted.
fn alerts(captured: Vec<(u64, Vec<Alert>)>) -> Vec<(u64, String, String, i64, u64)> {
    let mut out: Vec<_> = captured
        .into_iter()
        .flat_map(|(t, alerts)| {
            alerts.into_iter().map(move |a| (t, a.rule.to_string(), a.key.to_string(), a.window_start, a.suppressed))
        })
        .collect();
    out.sort();
    out
}

#[test]
fn event_source_judges_lateness_per_partition_and_advances_event_time() {
    let lines = |texts: &[&str]| {
        let mut m = MemoryLines::default();
        texts.iter().for_each(|t| m.push(t.as_bytes()));
        Arc::new(m)
    };
    let source = MemorySource::new(vec![
        lines(&[
            r#"{"event_type":"a","timestamp":10500}"#,
            r#"{"event_type":"a","timestamp":30000}"#,
            r#"{"event_type":"a","timestamp":2000}"#,
            "not json",
        ]),
        lines(&[r#"{"event_type":"b","timestamp":3000}"#]),
    ]);
    let spec = pipeline("aggregations: [ { name: t, window: { kind: tumbling, size: 10s } } ]");
    let control = Arc::new(RunControl::default());
    let counted = control.clone();
    let (events, letters) = timely::example(move |scope| {
        let partitions = source.open(&[0, 1], &[]).expect("memory partitions open");
        let mut watermark = spec.watermark.clone();
        watermark.max_out_of_orderness = dataflows::spec::Millis(5_000);
        let context = SourceContext {
            kind: source.kind(),
            aggregations: AggregationPlan::from_config(&spec.aggregations),
            watermark,
            engine: spec.engine.clone(),
            control: control.clone(),
            sinks_probe: ProbeHandle::new(),
            gate: None,
            hooks: Hooks::off(),
            late_counters: vec![control.counters.late_by_aggregation.handle("t")],
        };
        let spec = EventSourceSpec { context, partitions, restored: Vec::new() };
        let SourceStreams { events, dead_letters, .. } = event_source(scope, spec);
        (events.map(|e| (e.timestamp, e.watermark)).capture(), dead_letters.capture())
    });
    let mut events: Vec<(u64, u64, u64)> = events
        .extract()
        .into_iter()
        .flat_map(|(t, events)| events.into_iter().map(move |(ts, watermark)| (t, ts, watermark)))
        .collect();
    events.sort();
    // Partition 1's event at 3000 is on time: its own partition's watermark is 0 (partition 0's
    // 25000 does not make it late). Partition 0's 2000 came after its watermark reached 25000.
    // Every event is sent at the source's capability (here still 0: partition 1 holds it back),
    // not at its own epoch, so what was sent before a time is what was read before it.
    assert_eq!(events, vec![(0, 3_000, 0), (0, 10_500, 0), (0, 30_000, 5_500)]);
    let mut letters: Vec<(String, u32, u64)> = letters
        .extract()
        .into_iter()
        .flat_map(|(_, l)| l.into_iter().map(|l| (l.reason.to_string(), l.position.partition, l.position.offset)))
        .collect();
    letters.sort();
    assert_eq!(letters, vec![("invalid_json".into(), 0, 3), ("late".into(), 0, 2)]);
    // The labelled counters behind rtsa_late_events_total{aggregation} and
    // rtsa_invalid_events_total{reason} count the same.
    assert_eq!(counted.counters.late_by_aggregation.values(), vec![("t".to_owned(), 1)]);
    assert_eq!(counted.counters.invalid_by_reason.values(), vec![("invalid_json".to_owned(), 1)]);
}

#[test]
fn window_partials_and_results_emit_each_window_once_at_its_slot() {
    let spec = pipeline(
        r#"
aggregations:
  - { name: t, window: { kind: tumbling, size: 10s }, group_by: event_type }
  - { name: s, window: { kind: sliding, size: 20s, slide: 10s }, group_by: none }
"#,
    );
    let input = vec![
        event(1_000, "a", "u1", "s1", false),
        event(9_999, "a", "u2", "s1", true),
        event(12_000, "b", "u1", "s2", false),
    ];
    let plans = AggregationPlan::from_config(&spec.aggregations);
    let slots = FlushSlots::new(&plans, &[], 1_000);
    let expected_slots = slots.clone();
    let captured = timely::example(move |scope| {
        at_times(scope, input)
            .window_partials(&plans, slots, None, &Hooks::off(), Default::default())
            .window_results()
            .capture()
    });
    let records = windows(captured.extract());
    // Two narrow aggregations: slots 0 and 1, inserted at end - 4 and end - 2.
    let at = |end: u64, aggregation: u16| expected_slots.insert_time(end, expected_slots.slot_of(aggregation, "a"));
    assert_eq!((at(10_000, 0), at(10_000, 1)), (9_996, 9_998));
    assert_eq!(
        records,
        vec![
            (at(10_000, 0), 0, 0, 10_000, "a".into(), 2),
            (at(10_000, 1), 1, -10_000, 10_000, "*".into(), 2),
            (at(20_000, 0), 0, 10_000, 20_000, "b".into(), 1),
            (at(20_000, 1), 1, 0, 20_000, "*".into(), 3),
            (at(30_000, 1), 1, 10_000, 30_000, "*".into(), 1),
        ]
    );
}

#[test]
fn session_windows_close_at_the_epoch_of_last_plus_gap() {
    let spec = pipeline("aggregations: [ { name: sessions, window: { kind: session, gap: 5s }, group_by: user_id } ]");
    let input = vec![
        event(1_000, "a", "u1", "s1", false),
        event(4_000, "a", "u1", "s1", false),
        event(2_000, "a", "u2", "s2", false),
        event(20_000, "a", "u1", "s3", false),
        // Arrives out of order and bridges nothing: 9000 - 4000 is not below the gap.
        event(9_000, "a", "u1", "s1", false),
    ];
    let plans = AggregationPlan::from_config(&spec.aggregations);
    let captured = timely::example(move |scope| {
        at_times(scope, input).session_windows(&plans, 1_000, &Hooks::off(), Default::default()).capture()
    });
    assert_eq!(
        windows(captured.extract()),
        vec![
            (6_000, 0, 2_000, 7_000, "u2".into(), 1),
            (8_000, 0, 1_000, 9_000, "u1".into(), 2),
            (13_000, 0, 9_000, 14_000, "u1".into(), 1),
            (24_000, 0, 20_000, 25_000, "u1".into(), 1),
        ]
    );
}

fn window_record(end: u64, key: &str, count: u64) -> (u64, WindowRecord) {
    let mut stats = dataflows::stats::PartialStats::default();
    (0..count).for_each(|i| stats.add(i % 2 == 0, Some(10.0), None, None));
    let key = dataflows::record::WindowKey { aggregation: 0, start: end as i64 - 10_000, end, key: key.into() };
    (end - 1, (key, stats.finish()))
}

fn compiled(yaml: &str) -> Arc<Rules> {
    Arc::new(rules::compile(&pipeline(yaml)))
}

#[test]
fn window_alerts_judge_thresholds_with_cooldowns() {
    let yaml = r#"
aggregations: [ { name: t, window: { kind: tumbling, size: 10s }, group_by: event_type } ]
anomalies:
  - { kind: threshold, name: busy, aggregation: t, metric: count, levels: { high: 3 }, cooldown: 15s }
"#;
    let (rules, aggregations) = (compiled(yaml), Arc::new(pipeline(yaml).aggregations));
    let input = vec![
        window_record(10_000, "a", 5),
        window_record(10_000, "b", 2),
        window_record(20_000, "a", 9),
        window_record(30_000, "a", 4),
    ];
    let captured = timely::example(move |scope| {
        at_times(scope, input).window_alerts(rules, aggregations, &Hooks::off()).capture()
    });
    // The window ending at 20000 is within 15 s of the alert at 10000: suppressed, then counted.
    assert_eq!(
        alerts(captured.extract()),
        vec![(9_999, "busy".into(), "a".into(), 0, 0), (29_999, "busy".into(), "a".into(), 20_000, 1)]
    );
}

#[test]
fn event_alerts_fire_as_events_arrive_once_per_cooldown() {
    let yaml = r#"
aggregations: [ { name: t, window: { kind: tumbling, size: 10s } } ]
anomalies:
  - { kind: event, name: failed_login, event_type: login, status: error, group_by: user_id, cooldown: 5s }
"#;
    let rules = compiled(yaml);
    let input = vec![
        event(1_000, "login", "u1", "s1", true),
        event(2_000, "login", "u1", "s1", true),
        event(3_000, "login", "u1", "s1", false),
        event(7_000, "login", "u1", "s1", true),
        event(7_500, "login", "u2", "s2", true),
    ];
    let captured = timely::example(move |scope| at_times(scope, input).event_alerts(rules, &Hooks::off()).capture());
    assert_eq!(
        alerts(captured.extract()),
        vec![
            (1_000, "failed_login".into(), "u1".into(), 1_000, 0),
            (7_000, "failed_login".into(), "u1".into(), 7_000, 1),
            (7_000, "failed_login".into(), "u2".into(), 7_500, 0),
        ]
    );
}

#[test]
fn pattern_alerts_see_a_keys_events_in_event_time_order() {
    let yaml = r#"
aggregations: [ { name: t, window: { kind: tumbling, size: 10s } } ]
anomalies:
  - { kind: pattern, name: brute, group_by: user_id, within: 1m, severity: high,
      steps: [ { event_type: login, status: error, repeat: 3 }, { event_type: login, status: ok } ] }
"#;
    let rules = compiled(yaml);
    // Sent out of order: the success (4000) arrives before the third failure (3000).
    let input = vec![
        event(1_000, "login", "u1", "s1", true),
        event(2_000, "login", "u1", "s1", true),
        event(4_000, "login", "u1", "s1", false),
        event(3_000, "login", "u1", "s1", true),
    ];
    let captured = timely::example(move |scope| {
        at_times(scope, input)
            .pattern_alerts(rules, 1_000, &Hooks::off())
            .dedup_alerts(compiled(yaml), &Hooks::off())
            .capture()
    });
    assert_eq!(alerts(captured.extract()), vec![(4_000, "brute".into(), "u1".into(), 1_000, 0)]);
}

#[test]
fn rare_sequence_alerts_judge_transitions_against_what_was_learned_before() {
    let yaml = r#"
aggregations: [ { name: t, window: { kind: tumbling, size: 10s } } ]
anomalies:
  - { kind: rare_sequence, name: rare, max_probability: 0.2, min_support: 5 }
"#;
    let rules = compiled(yaml);
    let mut input = Vec::new();
    for i in 0..6u64 {
        let session = format!("s{i}");
        input.push(event(1_000 + i * 10, "view", "u", &session, false));
        input.push(event(1_001 + i * 10, "click", "u", &session, false));
    }
    input.push(event(5_000, "view", "u", "x", false));
    input.push(event(5_001, "export", "u", "x", false));
    let captured = timely::example(move |scope| {
        at_times(scope, input).rare_sequence_alerts(rules, 1_000, &Hooks::off()).capture()
    });
    let found = alerts(captured.extract());
    assert_eq!(found, vec![(5_000, "rare".into(), "x".into(), 5_000, 0)]);
}

#[test]
fn dedup_alerts_orders_by_time_before_it_suppresses() {
    let yaml = r#"
aggregations: [ { name: t, window: { kind: tumbling, size: 10s } } ]
anomalies:
  - { kind: rare_sequence, name: r, cooldown: 10s }
"#;
    let rules = compiled(yaml);
    let alert = |time: u64| {
        (time - time % 1_000, Alert::new("r", AlertKind::RareSequence, Severity::Medium, time).about("session_id", "s"))
    };
    // The later alert arrives first; in event-time order, 1000 is emitted and 5000 suppressed.
    let input = vec![alert(5_000), alert(1_000), alert(12_000)];
    let captured = timely::example(move |scope| at_times(scope, input).dedup_alerts(rules, &Hooks::off()).capture());
    assert_eq!(
        alerts(captured.extract()),
        vec![(1_000, "r".into(), "s".into(), 1_000, 0), (12_000, "r".into(), "s".into(), 12_000, 1)]
    );
}

#[test]
fn a_batch_sink_writes_one_sorted_batch_per_time_then_closes() {
    struct Recorder(Arc<Mutex<Vec<Vec<u32>>>>, Arc<Mutex<bool>>);
    impl BatchWriter<u32> for Recorder {
        fn write_batch(&mut self, batch: &[u32]) {
            self.0.lock().unwrap().push(batch.to_vec());
        }
        fn close(&mut self) {
            *self.1.lock().unwrap() = true;
        }
    }
    let (batches, closed) = (Arc::new(Mutex::new(Vec::new())), Arc::new(Mutex::new(false)));
    let writer = Recorder(batches.clone(), closed.clone());
    timely::example(move |scope| {
        at_times(scope, vec![(2, 7u32), (1, 9), (2, 3), (1, 4)]).batch_sink(
            "Recorder",
            Box::new(writer),
            &Hooks::off(),
            |p| &mut p.metrics,
        );
    });
    assert_eq!(*batches.lock().unwrap(), vec![vec![4, 9], vec![3, 7]]);
    assert!(*closed.lock().unwrap());
}

/// What a source sent: (time, timestamp, watermark) per event and (time, reason, aggregation,
/// offset) per dead letter, each sorted.
type Sent = (Vec<(u64, u64, u64)>, Vec<(u64, String, Option<u16>, u64)>);

/// Runs a source on `workers` worker threads and collects what it sent.
fn sent_by<F>(workers: usize, build: F) -> Sent
where
    F: Fn(Scope<'_, u64>, usize) -> SourceStreams<'_> + Send + Sync + 'static,
{
    let events = Arc::new(Mutex::new(Vec::new()));
    let letters = Arc::new(Mutex::new(Vec::new()));
    let (e, l) = (events.clone(), letters.clone());
    timely::execute(timely::Config::process(workers), move |worker| {
        let (e, l) = (e.clone(), l.clone());
        let index = worker.index();
        worker.dataflow::<u64, _, _>(|scope| {
            let SourceStreams { events, dead_letters, .. } = build(scope, index);
            events.sink(Pipelined, "Events", move |(input, _)| {
                input.for_each(|cap, batch| {
                    let t = *cap.least().expect("a time");
                    e.lock().unwrap().extend(batch.iter().map(|ev| (t, ev.timestamp, ev.watermark)));
                });
            });
            dead_letters.sink(Pipelined, "DeadLetters", move |(input, _)| {
                input.for_each(|cap, batch| {
                    let t = *cap.least().expect("a time");
                    l.lock()
                        .unwrap()
                        .extend(batch.iter().map(|d| (t, d.reason.to_string(), d.aggregation, d.position.offset)));
                });
            });
        });
    })
    .expect("workers start")
    .join();
    let mut events = std::mem::take(&mut *events.lock().unwrap());
    let mut letters = std::mem::take(&mut *letters.lock().unwrap());
    events.sort();
    letters.sort();
    (events, letters)
}

/// Shuffled event times with invalid lines, late events for two window shapes and a session.
fn disordered_lines(count: usize, seed: u64) -> Arc<MemoryLines> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
    let mut lines = MemoryLines::default();
    for i in 0..count {
        let line = match rng.gen_range(0..40) {
            0 => "{not json".to_owned(),
            1 => r#"{"event_type":"a"}"#.to_owned(),
            2 => r#"{"event_type":"a","timestamp":253402300799999}"#.to_owned(),
            _ => {
                let ts = (i as u64) * 100 + rng.gen_range(0..20_000);
                let kind = ["a", "b", "c"][rng.gen_range(0..3)];
                format!(r#"{{"event_type":"{kind}","user_id":"u{}","timestamp":{ts}}}"#, rng.gen_range(0..5))
            }
        };
        lines.push(line.as_bytes());
    }
    Arc::new(lines)
}

#[test]
fn a_partition_read_in_chunks_by_any_number_of_workers_is_judged_as_by_one_reader() {
    use dataflows::memory::MemoryChunks;
    use dataflows::operators::chunked_source::{ChunkShare, ChunkedSourceSpec, chunked_source};
    let lines = disordered_lines(3_000, 7);
    let spec = pipeline(
        "aggregations: [ { name: t, window: { kind: tumbling, size: 10s } },
                         { name: s, window: { kind: sliding, size: 30s, slide: 10s }, group_by: user_id },
                         { name: u, window: { kind: session, gap: 5s }, group_by: user_id } ]",
    );
    let mut watermark = spec.watermark.clone();
    watermark.max_out_of_orderness = dataflows::spec::Millis(8_000);
    watermark.max_future_skew = dataflows::spec::OrOff(Some(dataflows::spec::Millis(86_400_000)));
    // Both sources alike but for their input (the in-memory source's kind).
    let context = {
        let (plans, engine) = (AggregationPlan::from_config(&spec.aggregations), spec.engine.clone());
        let control = Arc::new(RunControl::default());
        Arc::new(move || SourceContext {
            kind: dataflows::source::SourceKind { name: "memory", by_line: false },
            aggregations: plans.clone(),
            watermark: watermark.clone(),
            engine: engine.clone(),
            control: control.clone(),
            sinks_probe: ProbeHandle::new(),
            gate: None,
            hooks: Hooks::off(),
            late_counters: Vec::new(),
        })
    };
    let (one_reader, one_reader_letters) = {
        let (lines, context) = (lines.clone(), context.clone());
        sent_by(1, move |scope, _| {
            let source = MemorySource::new(vec![lines.clone()]);
            let partitions = source.open(&[0], &[]).expect("memory partition opens");
            event_source(scope, EventSourceSpec { context: context(), partitions, restored: Vec::new() })
        })
    };
    let untimed = |sent: &Sent| {
        let mut events: Vec<_> = sent.0.iter().map(|(_, ts, w)| (*ts, *w)).collect();
        let mut letters: Vec<_> = sent.1.iter().map(|(_, r, a, o)| (r.clone(), *a, *o)).collect();
        events.sort();
        letters.sort();
        (events, letters)
    };
    let reference = untimed(&(one_reader, one_reader_letters));
    assert!(reference.1.iter().any(|l| l.0 == "late") && reference.1.iter().any(|l| l.0 == "future"));
    assert!(reference.0.len() > 2_000, "most events are on time: {}", reference.0.len());
    for lines_per_chunk in [1, 7, 500] {
        let mut by_workers = Vec::new();
        for workers in [1, 2, 4] {
            let shares = Arc::new(Mutex::new(
                ChunkShare::split(
                    0,
                    Arc::new(MemoryChunks::new(lines.clone(), lines_per_chunk)),
                    workers,
                    Default::default(),
                )
                .into_iter()
                .map(Some)
                .collect::<Vec<_>>(),
            ));
            let context = context.clone();
            let sent = sent_by(workers, move |scope, index| {
                let share = shares.lock().unwrap()[index].take().expect("one share a worker");
                let spec = ChunkedSourceSpec { context: context(), share };
                chunked_source(scope, spec)
            });
            assert_eq!(untimed(&sent), reference, "{workers} workers, chunks of {lines_per_chunk} lines");
            by_workers.push(sent);
        }
        // Sent at the same times too: the sinks write the same batches in the same order.
        assert!(by_workers.windows(2).all(|w| w[0] == w[1]), "chunks of {lines_per_chunk} lines");
    }
    // The same partition cut into chunks as it is polled, by a reader thread (a pipe, a Kafka
    // partition): as the in-memory partition delivers, the chunks are full or end at its budget.
    for chunk_bytes in [1, 300, 1 << 20] {
        let mut by_workers = Vec::new();
        for workers in [1, 2, 4] {
            let partition = Box::new(dataflows::memory::MemoryPartition::new(lines.clone(), 0));
            let feed = dataflows::feed::ChunkFeed::start(partition, Default::default(), chunk_bytes, 2 * workers)
                .expect("the reader thread starts");
            let shares = Arc::new(Mutex::new(
                ChunkShare::split(0, feed, workers, Default::default()).into_iter().map(Some).collect::<Vec<_>>(),
            ));
            let context = context.clone();
            let sent = sent_by(workers, move |scope, index| {
                let share = shares.lock().unwrap()[index].take().expect("one share a worker");
                chunked_source(scope, ChunkedSourceSpec { context: context(), share })
            });
            assert_eq!(untimed(&sent), reference, "{workers} workers, a feed of {chunk_bytes}-byte chunks");
            by_workers.push(sent);
        }
        // The in-memory partition always has more until it ends, so the chunks and their times
        // are the same for any number of workers.
        assert!(by_workers.windows(2).all(|w| w[0] == w[1]), "a feed of {chunk_bytes}-byte chunks");
    }
}
