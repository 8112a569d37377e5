//! Generative tests of the whole pipeline: random event streams — out of order, late, with
//! duplicate timestamps, extreme and tiny values, invalid lines — run with 1 and 3 workers and
//! compared, record by record, with the brute-force reference.

use crate::reference::{self, RefAggregation, RefWindow, exact_sum};
use crate::util::{comparable, memory_partitions, read_jsonl, run_memory};
use proptest::prelude::*;
use serde_json::Value;

const START: u64 = 1_764_230_400_000;

const AGGREGATIONS: &str = r#"
aggregations:
  - { name: by_type_10s, window: { kind: tumbling, size: 10s }, group_by: event_type }
  - { name: all_20s_sliding, window: { kind: sliding, size: 20s, slide: 5s }, group_by: none }
  - { name: by_user_sessions, window: { kind: session, gap: 4s }, group_by: user_id }
  - { name: by_session_10s, window: { kind: tumbling, size: 10s }, group_by: session_id }
"#;

fn reference_aggregations() -> Vec<RefAggregation> {
    let a =
        |name: &str, window, group_by: &str| RefAggregation { name: name.into(), window, group_by: group_by.into() };
    vec![
        a("by_type_10s", RefWindow::Tumbling(10_000), "event_type"),
        a("all_20s_sliding", RefWindow::Sliding(20_000, 5_000), "none"),
        a("by_user_sessions", RefWindow::Session(4_000), "user_id"),
        a("by_session_10s", RefWindow::Tumbling(10_000), "session_id"),
    ]
}

/// A number of 2^-10 steps, or an extreme: values the fixed-point sums hold exactly, so the
/// engine's sums must equal the exactly rounded reference sums.
fn number() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => (-40_960i64..40_960).prop_map(|k| k as f64 / 1024.0),
        1 => Just(0.0),
        1 => Just(1e15),
        1 => Just(-1e15),
        1 => (1i64..1_000_000).prop_map(|k| k as f64 * 1e9),
    ]
}

/// One input line: an event (`step` ms after the previous one's base time, moved back by up to
/// `back` ms to make it out of order or late), or an invalid line.
fn line() -> impl Strategy<Value = (u64, u64, Option<Value>)> {
    let event = (
        prop::sample::select(vec!["a", "b", "c"]),
        prop::option::of(0u32..6),
        prop::option::of(0u32..4),
        prop::option::of(prop_oneof![Just(0.0), (0u64..4_000_000).prop_map(|k| k as f64 / 1024.0), Just(1e12)]),
        prop::option::of(number()),
        any::<bool>(),
    )
        .prop_map(|(event_type, user, session, latency, value, error)| {
            let mut o = serde_json::Map::new();
            o.insert("event_type".into(), event_type.into());
            if let Some(u) = user {
                o.insert("user_id".into(), format!("u{u}").into());
            }
            if let Some(s) = session {
                o.insert("session_id".into(), format!("s{s}").into());
            }
            if let Some(l) = latency {
                o.insert("latency_ms".into(), l.into());
            }
            if let Some(v) = value {
                o.insert("value".into(), v.into());
            }
            o.insert("status".into(), if error { "error" } else { "ok" }.into());
            Some(Value::Object(o))
        });
    let step = prop_oneof![4 => 0u64..700, 1 => Just(0u64)];
    let back = prop_oneof![6 => Just(0u64), 2 => 0u64..3_000, 1 => 5_000u64..30_000];
    (step, back, prop_oneof![12 => event, 1 => Just(None)])
}

/// Partitions of lines from the generated steps.
fn partitions(spec: Vec<Vec<(u64, u64, Option<Value>)>>) -> Vec<Vec<Vec<u8>>> {
    spec.into_iter()
        .map(|lines| {
            let mut base = START;
            lines
                .into_iter()
                .map(|(step, back, event)| {
                    base += step;
                    match event {
                        Some(Value::Object(mut o)) => {
                            o.insert("timestamp".into(), base.saturating_sub(back).into());
                            Value::Object(o).to_string().into_bytes()
                        }
                        _ => b"{\"event_type\":\"a\",\"timestamp\":\"never\"}".to_vec(),
                    }
                })
                .collect()
        })
        .collect()
}

fn run(partitions: &[Vec<Vec<u8>>], workers: usize) -> (Vec<Value>, Vec<Value>) {
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        r#"
watermark: {{ max_out_of_orderness: 2s }}
{AGGREGATIONS}
sinks:
  metrics: [ {{ kind: jsonl, path: {metrics} }} ]
  dead_letter: {{ kind: jsonl, path: {dead} }}
"#,
        metrics = dir.path().join("metrics.jsonl").display(),
        dead = dir.path().join("dead.jsonl").display()
    );
    run_memory(&yaml, memory_partitions(partitions), workers);
    (read_jsonl(&dir.path().join("metrics.jsonl")), read_jsonl(&dir.path().join("dead.jsonl")))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn random_streams_match_the_reference_for_one_and_three_workers(
        spec in prop::collection::vec(prop::collection::vec(line(), 1..120), 1..4)
    ) {
        let partitions = partitions(spec);
        let expected = reference::compute(&partitions, &reference_aggregations(), 2_000);
        let (metrics, letters) = run(&partitions, 1);
        let problems = reference::compare(&metrics, &expected);
        prop_assert!(problems.is_empty(), "{} differences, first: {:#?}", problems.len(), &problems[..problems.len().min(10)]);
        let late = letters.iter().filter(|l| l["reason"] == "late").count() as u64;
        prop_assert_eq!(late, expected.late.values().sum::<u64>());
        prop_assert_eq!(letters.len() as u64 - late, expected.invalid);
        let (three, three_letters) = run(&partitions, 3);
        prop_assert_eq!(comparable(&metrics), comparable(&three));
        prop_assert_eq!(comparable(&letters), comparable(&three_letters));
    }
}

#[test]
fn the_reference_sums_exactly() {
    assert_eq!(exact_sum(&[1e15, 0.125, -1e15]), 0.125);
    assert_eq!(exact_sum(&[0.1; 10]), 1.0);
    assert_eq!(exact_sum(&[1e100, 1.0, -1e100]), 1.0);
    assert_eq!(exact_sum(&[]), 0.0);
}

#[test]
fn the_generated_streams_hold_what_they_are_meant_to_test() {
    // The property above is only as good as its streams: late and invalid inputs, out-of-order
    // and duplicate timestamps, and extreme values must all occur.
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = prop::collection::vec(prop::collection::vec(line(), 1..120), 1..4);
    let (mut late, mut invalid, mut extreme, mut duplicate) = (0, 0, 0, 0);
    for _ in 0..40 {
        let parts = partitions(strategy.new_tree(&mut runner).unwrap().current());
        let expected = reference::compute(&parts, &reference_aggregations(), 2_000);
        late += expected.late.values().sum::<u64>();
        invalid += expected.invalid;
        for lines in &parts {
            let stamps: Vec<u64> =
                lines.iter().filter_map(|l| serde_json::from_slice::<Value>(l).ok()?["timestamp"].as_u64()).collect();
            duplicate += stamps.windows(2).filter(|w| w[0] == w[1]).count();
            extreme += lines.iter().filter(|l| String::from_utf8_lossy(l).contains("1000000000000000")).count();
        }
    }
    assert!(late > 0 && invalid > 0 && extreme > 0 && duplicate > 0, "{late} {invalid} {extreme} {duplicate}");
}
