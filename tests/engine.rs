//! The engine against the brute-force reference, and against itself with more workers.

use crate::reference::{self, RefAggregation, RefWindow};
use crate::util::{assert_same_lines, memory_partitions, run_memory};
pub use crate::util::{comparable, read_jsonl};
use dataflows::control::{Counters, RunControl};
use rtsa::config::{GeneratorConfig, Millis};
use rtsa::sources::generator::Generator;
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;

const START: u64 = 1_764_230_400_000;

pub fn aggregations_yaml() -> &'static str {
    r#"
aggregations:
  - { name: by_type_1m, window: { kind: tumbling, size: 1m }, group_by: event_type }
  - { name: by_type_3m_sliding, window: { kind: sliding, size: 3m, slide: 1m }, group_by: event_type }
  - { name: by_user_30s, window: { kind: tumbling, size: 30s }, group_by: user_id }
  - { name: by_user_sessions, window: { kind: session, gap: 10s }, group_by: user_id }
  - { name: all_20s_sliding, window: { kind: sliding, size: 20s, slide: 5s }, group_by: none }
  - { name: by_session_1m, window: { kind: tumbling, size: 1m }, group_by: session_id }
"#
}

pub fn reference_aggregations() -> Vec<RefAggregation> {
    let a =
        |name: &str, window, group_by: &str| RefAggregation { name: name.into(), window, group_by: group_by.into() };
    vec![
        a("by_type_1m", RefWindow::Tumbling(60_000), "event_type"),
        a("by_type_3m_sliding", RefWindow::Sliding(180_000, 60_000), "event_type"),
        a("by_user_30s", RefWindow::Tumbling(30_000), "user_id"),
        a("by_user_sessions", RefWindow::Session(10_000), "user_id"),
        a("all_20s_sliding", RefWindow::Sliding(20_000, 5_000), "none"),
        a("by_session_1m", RefWindow::Tumbling(60_000), "session_id"),
    ]
}

/// Generated partitions with out-of-order, late and invalid inputs mixed in.
pub fn test_partitions(partitions: u32, per_partition: u64, seed: u64) -> Vec<Vec<Vec<u8>>> {
    let config = GeneratorConfig {
        count: per_partition * u64::from(partitions),
        rate: 0,
        seed,
        partitions: std::num::NonZeroU32::new(partitions).unwrap(),
        start_ms: Some(START),
        event_time_rate: Some(40 * u64::from(partitions)),
        users: std::num::NonZeroU64::new(150).unwrap(),
        out_of_order_fraction: 0.05,
        max_delay: Millis(4_000),
        late_fraction: 0.02,
        late_delay: Millis(40_000),
        incidents: false,
        error_bursts: true,
    };
    let invalid: [&[u8]; 6] = [
        b"{not json",
        br#"{"timestamp":1764230400000}"#,
        br#"{"event_type":"click","timestamp":"noon"}"#,
        b"[1,2]",
        b"{\"event_type\":\"\xff\",\"timestamp\":1}",
        br#"{"event_type":"click","timestamp":1764230400000,"latency_ms":-3}"#,
    ];
    (0..partitions)
        .map(|p| {
            let mut generator = Generator::new(&config, START, p, partitions);
            let mut lines = Vec::new();
            let mut line = Vec::new();
            let mut n = 0;
            while generator.next_json(&mut line) {
                lines.push(line.clone());
                n += 1;
                if n % 997 == 0 {
                    lines.push(invalid[(n / 997) % invalid.len()].to_vec());
                }
            }
            // An RFC 3339 timestamp and an event with only the required fields.
            lines.push(br#"{"event_type":"click","timestamp":"2025-11-27T08:02:00.5Z","user_id":"user_rfc","latency_ms":12.5}"#.to_vec());
            lines.push(br#"{"event_type":"bare","timestamp":1764230521000}"#.to_vec());
            lines
        })
        .collect()
}

pub fn config_yaml(dir: &Path) -> String {
    format!(
        r#"
watermark: {{ max_out_of_orderness: 5s }}
{aggregations}
sinks:
  metrics: [ {{ kind: jsonl, path: {metrics} }} ]
  dead_letter: {{ kind: jsonl, path: {dead} }}
"#,
        aggregations = aggregations_yaml(),
        metrics = dir.join("metrics.jsonl").display(),
        dead = dir.join("dead_letter.jsonl").display()
    )
}

pub struct EngineRun {
    pub metrics: Vec<Value>,
    pub dead_letters: Vec<Value>,
    pub control: Arc<RunControl>,
}

/// Runs the config `yaml` over in-memory `partitions` with `workers` workers.
pub fn run_yaml(yaml: &str, partitions: &[Vec<Vec<u8>>], workers: usize) -> Arc<RunControl> {
    run_memory(yaml, memory_partitions(partitions), workers)
}

pub fn run_engine(partitions: &[Vec<Vec<u8>>], workers: usize) -> EngineRun {
    let dir = tempfile::tempdir().unwrap();
    let control = run_yaml(&config_yaml(dir.path()), partitions, workers);
    EngineRun {
        metrics: read_jsonl(&dir.path().join("metrics.jsonl")),
        dead_letters: read_jsonl(&dir.path().join("dead_letter.jsonl")),
        control,
    }
}

#[test]
fn every_record_matches_the_brute_force_reference() {
    let partitions = test_partitions(3, 6_000, 11);
    let expected = reference::compute(&partitions, &reference_aggregations(), 5_000);
    let run = run_engine(&partitions, 1);
    let problems = reference::compare(&run.metrics, &expected);
    assert!(problems.is_empty(), "{} differences, first: {:#?}", problems.len(), &problems[..problems.len().min(20)]);
    assert_eq!(run.metrics.len(), expected.windows.len());
    // Sanity of the data itself: it has every kind of window and some late events.
    assert!(expected.windows.len() > 1_000, "{}", expected.windows.len());
    assert!(expected.late.values().sum::<u64>() > 100, "{:?}", expected.late);

    let mut late_by_aggregation = std::collections::BTreeMap::<String, u64>::new();
    let mut invalid = 0;
    for d in &run.dead_letters {
        let position = d["position"].as_str().unwrap();
        assert!(position.starts_with("partition "), "{d}");
        assert!(d["raw"].is_string(), "{d}");
        match d["reason"].as_str().unwrap() {
            "late" => *late_by_aggregation.entry(d["aggregation"].as_str().unwrap().to_owned()).or_default() += 1,
            _ => invalid += 1,
        }
    }
    assert_eq!(late_by_aggregation, expected.late);
    assert_eq!(invalid, expected.invalid);
    assert_eq!(Counters::get(&run.control.counters.invalid_events), expected.invalid);
    assert_eq!(Counters::get(&run.control.counters.late_events), expected.late.values().sum::<u64>());
}

#[test]
fn one_and_four_workers_give_identical_results() {
    let partitions = test_partitions(5, 3_000, 12);
    let one = run_engine(&partitions, 1);
    let four = run_engine(&partitions, 4);
    assert!(one.metrics.len() > 500);
    assert_eq!(comparable(&one.metrics), comparable(&four.metrics));
    let letters = |run: &EngineRun| {
        let mut lines: Vec<String> = run.dead_letters.iter().map(|d| d.to_string()).collect();
        lines.sort();
        lines
    };
    assert_eq!(letters(&one), letters(&four));
}

#[test]
fn two_workers_with_one_partition_match_the_reference() {
    let partitions = test_partitions(1, 8_000, 13);
    let expected = reference::compute(&partitions, &reference_aggregations(), 5_000);
    let run = run_engine(&partitions, 2);
    let problems = reference::compare(&run.metrics, &expected);
    assert!(problems.is_empty(), "{} differences, first: {:#?}", problems.len(), &problems[..problems.len().min(20)]);
}

#[test]
fn results_do_not_depend_on_the_flush_slots_or_the_progress_mode() {
    // With 1 s epochs each window end's keys are spread over flush slots (window rules first,
    // then a pause until their alerts are out); with 1 ms epochs there is no room for slots and
    // every key is flushed at `end - 1`. Records, dead letters and alerts must be the same.
    let partitions = test_partitions(3, 3_000, 14);
    let run = |epoch: &str, progress: &str| {
        let dir = tempfile::tempdir().unwrap();
        let path = |name: &str| dir.path().join(name).display().to_string();
        let yaml = format!(
            r#"
watermark: {{ max_out_of_orderness: 5s, epoch: {epoch} }}
engine: {{ progress: {progress} }}
{aggregations}
anomalies:
  - {{ kind: threshold, name: every_minute, aggregation: by_type_1m, metric: count, levels: {{ low: 0 }}, cooldown: 0s }}
  - {{ kind: zscore, name: users_z, aggregation: by_user_30s, metric: count, history: 4, min_history: 2,
      levels: {{ low: 0.5 }}, cooldown: 0s }}
sinks:
  metrics: [ {{ kind: jsonl, path: {metrics} }} ]
  alerts: [ {{ kind: jsonl, path: {alerts} }} ]
  dead_letter: {{ kind: jsonl, path: {dead} }}
"#,
            aggregations = aggregations_yaml(),
            metrics = path("metrics.jsonl"),
            alerts = path("alerts.jsonl"),
            dead = path("dead_letter.jsonl")
        );
        run_yaml(&yaml, &partitions, 2);
        let sorted = |name: &str| {
            let mut lines: Vec<String> = read_jsonl(&dir.path().join(name))
                .into_iter()
                .map(|mut v| {
                    v.as_object_mut().unwrap().remove("emitted_at");
                    v.to_string()
                })
                .collect();
            lines.sort();
            lines
        };
        (sorted("metrics.jsonl"), sorted("dead_letter.jsonl"), sorted("alerts.jsonl"))
    };
    let slotted = run("1s", "eager");
    let single = run("1ms", "eager");
    // Demand-mode progress changes when workers hear of each other, not what they compute.
    assert_eq!(run("1s", "demand"), slotted, "demand-mode progress gives other results");
    assert!(slotted.0.len() > 500 && slotted.2.len() > 20, "{} records, {} alerts", slotted.0.len(), slotted.2.len());
    assert_eq!(slotted.0, single.0, "metrics differ");
    assert_eq!(slotted.1, single.1, "dead letters differ");
    assert_eq!(slotted.2, single.2, "alerts differ");
}

/// Runs the test config over `file` in chunks of `chunk_bytes` with `workers` workers; returns
/// the metrics (without `emitted_at`) and the dead letters, in the order written.
fn run_file(file: &Path, chunk_bytes: u64, workers: usize) -> (Vec<Value>, Vec<Value>) {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let yaml = format!(
        "source: {{ kind: file, path: {} }}\nengine: {{ read_chunk_bytes: {chunk_bytes} }}\n{}",
        file.display(),
        config_yaml(dir)
    );
    let config = Arc::new(rtsa::config::load_str(&yaml, Vec::new()).unwrap_or_else(|e| panic!("{e}\nin:\n{yaml}")));
    let source: Arc<dyn dataflows::source::Source> = rtsa::sources::open(&config, START).unwrap().into();
    let options = rtsa::run::RunOptions { workers, ..rtsa::run::RunOptions::default() };
    rtsa::run::run(config, &options, source, rtsa::run::Output::Configured, Arc::new(RunControl::default()), None)
        .unwrap();
    let mut metrics = read_jsonl(&dir.join("metrics.jsonl"));
    metrics.iter_mut().for_each(|m| drop(m.as_object_mut().unwrap().remove("emitted_at")));
    (metrics, read_jsonl(&dir.join("dead_letter.jsonl")))
}

#[test]
fn a_file_read_by_one_two_and_four_workers_gives_the_records_and_dead_letters_of_one_reader() {
    let partitions = test_partitions(1, 8_000, 15);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.jsonl");
    let mut text = Vec::new();
    for (i, line) in partitions[0].iter().enumerate() {
        text.extend_from_slice(line);
        // Blank lines and CRLF count as lines of the file, as a single reader counts them.
        text.extend_from_slice(if i % 500 == 0 { b"\r\n\n" } else { b"\n" });
    }
    std::fs::write(&file, &text).unwrap();
    let expected = reference::compute(&partitions, &reference_aggregations(), 5_000);
    // Chunks of 4 KiB: about 200 of them, so each worker judges many against the others'.
    let one = run_file(&file, 4096, 1);
    let problems = reference::compare(&one.0, &expected);
    assert!(problems.is_empty(), "{} differences, first: {:#?}", problems.len(), &problems[..problems.len().min(20)]);
    assert!(one.1.len() > 100, "late and invalid lines: {}", one.1.len());
    // Chunks smaller than a line too: most are empty, a line belongs to the chunk it starts in.
    for (workers, chunk_bytes) in [(2, 4096), (4, 4096), (3, 100)] {
        let many = run_file(&file, chunk_bytes, workers);
        for (what, a, b) in [("metrics", &one.0, &many.0), ("dead letters", &one.1, &many.1)] {
            assert_same_lines(&format!("{workers} workers, chunks of {chunk_bytes} bytes: {what}"), a, b);
        }
    }
    // The single reader of today (in-memory lines, offsets from 0) judges every line the same.
    let memory = run_engine(&partitions, 2);
    assert_eq!(comparable(&memory.metrics), comparable(&one.0));
    let letter = |d: &Value, line: u64| (d["reason"].clone(), d["aggregation"].clone(), d["raw"].clone(), line);
    let by_offset: Vec<_> = memory
        .dead_letters
        .iter()
        .map(|d| {
            let offset: u64 = d["position"].as_str().unwrap().rsplit(' ').next().unwrap().parse().unwrap();
            // The file has a blank line after every 500th input.
            letter(d, offset + 1 + offset.div_ceil(500))
        })
        .collect();
    let by_line: Vec<_> = one
        .1
        .iter()
        .map(|d| letter(d, d["position"].as_str().unwrap().strip_prefix("line ").unwrap().parse().unwrap()))
        .collect();
    assert_eq!(by_line, by_offset);
}
