//! Generative tests of the parser: whatever the bytes, every input is either an event that keeps
//! the contract's invariants or an invalid input with a reason — never a panic — and the fast
//! path decides exactly as serde_json does (the same event to the bit, or the same reason and
//! detail).

use dataflows::event::{MAX_ABS_VALUE, MAX_LATENCY_MS, MAX_TIMESTAMP_MS, parse_event, parse_event_by_serde};
use proptest::prelude::*;
use serde_json::Value;

/// Checks one input's outcome.
fn judged(bytes: &[u8]) -> Result<(), TestCaseError> {
    // Debug output tells -0.0 from 0.0: the values must be the same bits.
    let (fast, serde) =
        (format!("{:?}", parse_event(bytes, 4_096)), format!("{:?}", parse_event_by_serde(bytes, 4_096)));
    prop_assert_eq!(fast, serde, "{}", String::from_utf8_lossy(bytes));
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

/// A JSON-like token: the number, string and literal spellings at the fast path's edges.
fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => "-?[1-9][0-9]{0,3}(\\.[0-9]{1,3})?",
        6 => "\"[a-z]{1,5}\"",
        3 => Just("null".to_owned()),
        1 => Just("nul".to_owned()),
        1 => Just("true".to_owned()),
        1 => Just("false".to_owned()),
        1 => Just("{}".to_owned()),
        1 => Just("[1]".to_owned()),
        1 => Just(r#"{"event_type":"x"}"#.to_owned()),
        1 => "-?(0|[1-9][0-9]{0,17}|0[0-9]{1,3})(\\.[0-9]{0,17})?([eE][+-]?[0-9]{0,3})?",
        1 => "-?[0-9]{0,4}\\.?[0-9]{0,4}",
        1 => "\"[a-z_\\\\\"\u{1}\t é]{0,8}\"",
        1 => "\"(event_type|timestamp|user_id|session_id|latency_ms|value|status|error)\"",
        1 => Just("\"2025-11-27T08:00:00.123Z\"".to_owned()),
        1 => Just("1764230400000".to_owned()),
        1 => Just("253402300799999".to_owned()),
        1 => Just("253402300799999.0".to_owned()),
        1 => Just("1e999".to_owned()),
    ]
}

/// A flat object written token by token: the event's fields (some twice) and others, any
/// whitespace, now and then a missing or extra separator.
fn flat_object() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        Just("event_type"),
        Just("timestamp"),
        Just("user_id"),
        Just("session_id"),
        Just("latency_ms"),
        Just("value"),
        Just("status"),
        Just("event_id"),
        Just("event\\u005ftype"),
    ];
    // JSON's whitespace, now and then a vertical tab (which is not).
    let space = || prop_oneof![30 => "[ \t\r\n]{0,2}", 1 => Just("\u{b}".to_owned())];
    let member = (key, space(), token(), space(), prop_oneof![8 => Just(","), 1 => Just(""), 1 => Just(",,")]);
    // Mostly with a valid event type and timestamp somewhere, so that many are events.
    let core = |key: &'static str, value: &'static str| {
        prop::option::weighted(
            0.9,
            (Just(key), Just(String::new()), Just(value.to_owned()), Just(String::new()), Just(",")),
        )
    };
    let members = (
        prop::collection::vec(member, 0..4),
        core("event_type", "\"click\""),
        core("timestamp", "1764230400000"),
        any::<prop::sample::Index>(),
        any::<prop::sample::Index>(),
    )
        .prop_map(|(mut members, event_type, timestamp, i, j)| {
            for (core, at) in [(event_type, i), (timestamp, j)] {
                if let Some(core) = core {
                    members.insert(at.index(members.len() + 1), core);
                }
            }
            members
        });
    (space(), members, space(), prop_oneof![8 => Just(""), 1 => Just("x"), 1 => Just("}")]).prop_map(
        |(lead, members, tail, junk)| {
            let mut text = format!("{lead}{{");
            for (i, (key, before, value, after, comma)) in members.iter().enumerate() {
                let comma = if i + 1 == members.len() { "" } else { comma };
                text.push_str(&format!("{before}\"{key}\"{after}:{before}{value}{after}{comma}"));
            }
            text.push_str(&format!("}}{tail}{junk}"));
            text
        },
    )
}

proptest! {
    // About a fifth are events; the rest fail somewhere, each of which must be left to serde_json.
    #![proptest_config(ProptestConfig::with_cases(10_000))]

    #[test]
    fn flat_objects_are_read_as_serde_json_reads_them(text in flat_object()) {
        judged(text.as_bytes())?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn common_events_take_the_fast_path_and_read_the_same(
        timestamp in 0..MAX_TIMESTAMP_MS + 10,
        integer in 0..100_000u64,
        fraction in "[0-9]{1,9}",
        negative in any::<bool>(),
        user in "[a-z0-9_-]{0,12}",
    ) {
        let sign = if negative { "-" } else { "" };
        let text = format!(
            r#"{{"event_id":"e-1","event_type":"click","user_id":"{user}","timestamp":{timestamp},"latency_ms":{integer}.{fraction},"value":{sign}{integer},"status":"error"}}"#
        );
        judged(text.as_bytes())?;
    }

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
