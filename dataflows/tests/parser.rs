//! Generative tests of the parser: whatever the bytes, every input is either an event that keeps
//! the contract's invariants or an invalid input with a reason — never a panic.

use dataflows::event::{MAX_ABS_VALUE, MAX_LATENCY_MS, MAX_TIMESTAMP_MS, parse_event};
use proptest::prelude::*;
use serde_json::Value;

/// Checks one input's outcome.
fn judged(bytes: &[u8]) -> Result<(), TestCaseError> {
    match parse_event(bytes, 4_096) {
        Ok(event) => {
            prop_assert!(!event.event_type.is_empty());
            prop_assert!(event.timestamp <= MAX_TIMESTAMP_MS);
            for v in [event.latency_ms, event.value].into_iter().flatten() {
                prop_assert!(v.is_finite() && v.abs() <= MAX_ABS_VALUE, "{v}");
            }
            prop_assert!(event.latency_ms.is_none_or(|l| (0.0..=MAX_LATENCY_MS).contains(&l)));
            prop_assert!(event.user_id.as_deref() != Some("") && event.session_id.as_deref() != Some(""));
        }
        Err(invalid) => {
            prop_assert!(!invalid.reason.as_str().is_empty());
            prop_assert!(!invalid.detail.is_empty(), "{:?} without a detail", invalid.reason);
        }
    }
    Ok(())
}

/// Any JSON value, with the event's own field names over-represented.
fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "[a-z_ é\"\\\\]{0,12}".prop_map(Value::String),
        Just(Value::String("2025-11-27T08:00:00.123Z".into())),
        Just(Value::String("9999-12-31T23:59:59.999Z".into())),
        Just(Value::String(String::new())),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        let field = prop_oneof![
            Just("event_type".to_owned()),
            Just("timestamp".to_owned()),
            Just("user_id".to_owned()),
            Just("session_id".to_owned()),
            Just("latency_ms".to_owned()),
            Just("value".to_owned()),
            Just("status".to_owned()),
            "[a-z]{1,6}",
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(field, inner, 0..8).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn arbitrary_bytes_are_an_event_or_a_dead_letter(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        judged(&bytes)?;
    }

    #[test]
    fn arbitrary_json_is_an_event_or_a_dead_letter(value in json()) {
        judged(value.to_string().as_bytes())?;
    }

    #[test]
    fn events_with_any_field_values_are_an_event_or_a_dead_letter(
        event_type in "[a-z]{0,3}",
        timestamp in prop_oneof![any::<u64>(), 0..2_000_000_000_000u64, Just(MAX_TIMESTAMP_MS), Just(MAX_TIMESTAMP_MS + 1)],
        latency in prop::option::of(any::<f64>()),
        value in prop::option::of(prop_oneof![any::<f64>(), Just(1e15), Just(-1e15), Just(1.0000001e15), Just(-1e308)]),
        user in prop::option::of("[a-z]{0,2}"),
    ) {
        let mut object = serde_json::Map::new();
        object.insert("event_type".into(), Value::from(event_type));
        object.insert("timestamp".into(), Value::from(timestamp));
        let number = |f: f64| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number);
        if let Some(l) = latency { object.insert("latency_ms".into(), number(l)); }
        if let Some(v) = value { object.insert("value".into(), number(v)); }
        if let Some(u) = user { object.insert("user_id".into(), Value::from(u)); }
        judged(Value::Object(object).to_string().as_bytes())?;
    }
}
