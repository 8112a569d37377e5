//! The input event (CONTRACT section 2) and its parser.
//!
//! The parser is the hottest code of the engine: it borrows strings from the input (serde's
//! `borrow`), keeps short strings inline (`CompactString`, no heap allocation up to 24 bytes) and
//! classifies every failure into a dead-letter reason.

mod fast_path;

use compact_str::CompactString;
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::fmt;

/// A valid event, as it travels through the dataflow.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// The kind of event (`click`, `login`, …).
    pub event_type: CompactString,
    /// The acting user, if any.
    pub user_id: Option<CompactString>,
    /// The session, if any.
    pub session_id: Option<CompactString>,
    /// Event time, Unix milliseconds.
    pub timestamp: u64,
    /// Latency in milliseconds, if measured.
    pub latency_ms: Option<f64>,
    /// A numeric value, if any.
    pub value: Option<f64>,
    /// `status == "error"`.
    pub is_error: bool,
    /// Watermark of the event's source partition just before it was read (set by the source);
    /// operators use it to decide, deterministically, which windows the event is on time for.
    pub watermark: u64,
}

impl crate::spec::GroupBy {
    /// The group key of an event, or `None` when the event lacks the grouping field.
    #[inline]
    pub fn key_of(self, event: &Event) -> Option<&str> {
        match self {
            crate::spec::GroupBy::EventType => Some(&event.event_type),
            crate::spec::GroupBy::UserId => event.user_id.as_deref(),
            crate::spec::GroupBy::SessionId => event.session_id.as_deref(),
            crate::spec::GroupBy::None => Some("*"),
        }
    }
}

/// Whether an event has the given type and status (`error`, or anything else for `ok`); an
/// absent condition matches any event.
#[inline]
pub fn event_matches(
    event_type: Option<&str>,
    status: Option<crate::spec::Status>,
    actual_type: &str,
    is_error: bool,
) -> bool {
    event_type.is_none_or(|t| t == actual_type) && status.is_none_or(|s| s.matches(is_error))
}

/// Why an input is not a valid event: the dead-letter `reason`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
pub enum InvalidReason {
    /// Not parseable as JSON.
    InvalidJson,
    /// Valid JSON, but not an object.
    NotObject,
    /// A required field is missing.
    MissingField,
    /// A field has the wrong type (or a timestamp that cannot be read).
    BadType,
    /// A value that is not allowed: a negative latency, a number a window's sum cannot hold
    /// exactly, a timestamp after the year 9999, an empty event type or group key.
    BadValue,
    /// Longer than `engine.max_event_bytes`.
    TooLarge,
    /// Not UTF-8.
    NotUtf8,
    /// Stamped further ahead of the wall clock than `watermark.max_future_skew` (a broken clock).
    Future,
}

impl InvalidReason {
    /// Every reason, in declaration order (`reason as usize` is its position).
    pub const ALL: [InvalidReason; 8] = [
        InvalidReason::InvalidJson,
        InvalidReason::NotObject,
        InvalidReason::MissingField,
        InvalidReason::BadType,
        InvalidReason::BadValue,
        InvalidReason::TooLarge,
        InvalidReason::NotUtf8,
        InvalidReason::Future,
    ];

    /// The contract's name of the reason.
    pub fn as_str(self) -> &'static str {
        match self {
            InvalidReason::InvalidJson => "invalid_json",
            InvalidReason::NotObject => "not_object",
            InvalidReason::MissingField => "missing_field",
            InvalidReason::BadType => "bad_type",
            InvalidReason::BadValue => "bad_value",
            InvalidReason::TooLarge => "too_large",
            InvalidReason::NotUtf8 => "not_utf8",
            InvalidReason::Future => "future",
        }
    }
}

#[cfg(test)]
mod reason_tests {
    use super::InvalidReason;

    #[test]
    fn all_lists_every_reason_at_its_own_position() {
        for (i, reason) in InvalidReason::ALL.iter().enumerate() {
            assert_eq!(*reason as usize, i, "{}", reason.as_str());
        }
    }
}

/// A rejected input: the reason and a short human detail.
#[derive(Clone, Debug, PartialEq)]
pub struct Invalid {
    /// Dead-letter reason.
    pub reason: InvalidReason,
    /// What exactly was wrong, for logs.
    pub detail: String,
}

impl Invalid {
    fn new(reason: InvalidReason, detail: impl Into<String>) -> Invalid {
        Invalid { reason, detail: detail.into() }
    }
}

#[derive(Deserialize)]
struct RawEvent<'a> {
    #[serde(borrow)]
    event_type: Cow<'a, str>,
    #[serde(borrow, default)]
    user_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    session_id: Option<Cow<'a, str>>,
    timestamp: Timestamp,
    #[serde(default)]
    latency_ms: Option<f64>,
    #[serde(default)]
    value: Option<f64>,
    #[serde(borrow, default)]
    status: Option<Cow<'a, str>>,
}

/// Event time, read from an integer of milliseconds or an RFC 3339 string.
struct Timestamp(u64);

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TimestampVisitor;
        impl Visitor<'_> for TimestampVisitor {
            type Value = Timestamp;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an integer of Unix milliseconds or an RFC 3339 string")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Timestamp, E> {
                Ok(Timestamp(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Timestamp, E> {
                u64::try_from(v).map(Timestamp).map_err(|_| E::custom("timestamp before 1970"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Timestamp, E> {
                let parsed = chrono::DateTime::parse_from_rfc3339(v)
                    .map_err(|e| E::custom(format!("timestamp {v:?} is not RFC 3339: {e}")))?;
                u64::try_from(parsed.timestamp_millis()).map(Timestamp).map_err(|_| E::custom("timestamp before 1970"))
            }
        }
        deserializer.deserialize_any(TimestampVisitor)
    }
}

/// The latest event time accepted, 9999-12-31T23:59:59.999Z (the last RFC 3339 can write): far
/// enough below `u64::MAX` that no window, session or slot arithmetic can overflow.
pub const MAX_TIMESTAMP_MS: u64 = 253_402_300_799_999;

/// The largest magnitude of a `latency_ms` or `value` accepted. Sums are kept as fixed-point
/// integers with 40 fractional bits in an `i128` (`stats::FixedSum`, ±1.5e26): with values up
/// to 1e15 a window's sum stays exact for more than 10^11 events; a larger value would saturate.
pub const MAX_ABS_VALUE: f64 = 1e15;

/// The longest `latency_ms` accepted (about 31 years): percentile buckets (3 significant digits
/// over nanoseconds) reach 2^62 ns, 4.6e12 ms; a longer latency would be bucketed wrong.
pub const MAX_LATENCY_MS: f64 = 1e12;

/// Parses one input (a line or a message) into an event, or says why it is invalid.
#[inline]
pub fn parse_event(bytes: &[u8], max_bytes: usize) -> Result<Event, Invalid> {
    parse_with(bytes, max_bytes, true)
}

/// [`parse_event`] without the fast path: what the fast path is held to (tests, benchmarks).
#[doc(hidden)]
pub fn parse_event_by_serde(bytes: &[u8], max_bytes: usize) -> Result<Event, Invalid> {
    parse_with(bytes, max_bytes, false)
}

fn parse_with(bytes: &[u8], max_bytes: usize, fast: bool) -> Result<Event, Invalid> {
    if bytes.len() > max_bytes {
        return Err(Invalid::new(InvalidReason::TooLarge, format!("{} bytes, limit {max_bytes}", bytes.len())));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| Invalid::new(InvalidReason::NotUtf8, e.to_string()))?;
    let raw = match fast.then(|| fast_path::parse(text)).flatten() {
        Some(raw) => raw,
        None => serde_json::from_str::<RawEvent>(text).map_err(|e| classify(text, e))?,
    };
    for (name, number) in [("latency_ms", raw.latency_ms), ("value", raw.value)] {
        if number.is_some_and(|v| !v.is_finite()) {
            return Err(Invalid::new(InvalidReason::BadValue, format!("{name} is not finite")));
        }
    }
    if raw.latency_ms.is_some_and(|l| l < 0.0) {
        return Err(Invalid::new(InvalidReason::BadValue, "latency_ms is negative"));
    }
    if let Some(l) = raw.latency_ms.filter(|l| *l > MAX_LATENCY_MS) {
        return Err(Invalid::new(
            InvalidReason::BadValue,
            format!("latency_ms {l:e} is beyond 1e12 ms: its percentile bucket could not be kept to 3 digits"),
        ));
    }
    for (name, number) in [("latency_ms", raw.latency_ms), ("value", raw.value)] {
        if let Some(v) = number.filter(|v| v.abs() > MAX_ABS_VALUE) {
            return Err(Invalid::new(
                InvalidReason::BadValue,
                format!("{name} {v:e} is beyond ±1e15: a window's sum of such values cannot be kept exactly"),
            ));
        }
    }
    if raw.timestamp.0 > MAX_TIMESTAMP_MS {
        return Err(Invalid::new(
            InvalidReason::BadValue,
            format!("timestamp {} is after 9999-12-31T23:59:59.999Z", raw.timestamp.0),
        ));
    }
    for (name, text) in [
        ("event_type", Some(&raw.event_type)),
        ("user_id", raw.user_id.as_ref()),
        ("session_id", raw.session_id.as_ref()),
    ] {
        if text.is_some_and(|t| t.is_empty()) {
            return Err(Invalid::new(InvalidReason::BadValue, format!("{name} is empty")));
        }
    }
    Ok(Event {
        event_type: CompactString::from(raw.event_type.as_ref()),
        user_id: raw.user_id.map(|u| CompactString::from(u.as_ref())),
        session_id: raw.session_id.map(|s| CompactString::from(s.as_ref())),
        timestamp: raw.timestamp.0,
        latency_ms: raw.latency_ms,
        value: raw.value,
        is_error: raw.status.as_deref() == Some("error"),
        watermark: 0,
    })
}

fn classify(text: &str, error: serde_json::Error) -> Invalid {
    use serde_json::error::Category;
    let detail = error.to_string();
    let reason = match error.classify() {
        Category::Io | Category::Syntax | Category::Eof => {
            if detail.contains("number out of range") {
                InvalidReason::BadValue
            } else {
                InvalidReason::InvalidJson
            }
        }
        Category::Data => {
            if !text.trim_start().starts_with('{') {
                InvalidReason::NotObject
            } else if detail.starts_with("missing field") {
                InvalidReason::MissingField
            } else {
                InvalidReason::BadType
            }
        }
    };
    Invalid::new(reason, detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 1 << 16;

    fn reason(input: &[u8]) -> InvalidReason {
        parse_event(input, MAX).unwrap_err().reason
    }

    #[test]
    fn parses_the_contract_example() {
        let line = br#"{"event_id":"e-1","event_type":"click","user_id":"user_42","session_id":"s-42-7",
 "timestamp":1764230400123,"latency_ms":87.5,"value":12.0,"status":"ok"}"#;
        let e = parse_event(line, MAX).unwrap();
        assert_eq!(e.event_type, "click");
        assert_eq!(e.user_id.as_deref(), Some("user_42"));
        assert_eq!(e.session_id.as_deref(), Some("s-42-7"));
        assert_eq!(e.timestamp, 1_764_230_400_123);
        assert_eq!(e.latency_ms, Some(87.5));
        assert_eq!(e.value, Some(12.0));
        assert!(!e.is_error);
    }

    #[test]
    fn optional_fields_may_be_missing_or_null_and_unknown_ones_are_ignored() {
        let e = parse_event(
            br#"{"event_type":"x","timestamp":5,"user_id":null,"extra":{"a":[1,2]},"status":"error"}"#,
            MAX,
        )
        .unwrap();
        assert_eq!(e.user_id, None);
        assert_eq!(e.latency_ms, None);
        assert!(e.is_error);
    }

    #[test]
    fn reads_rfc3339_timestamps() {
        let e = parse_event(br#"{"event_type":"x","timestamp":"2025-11-27T08:00:00.123Z"}"#, MAX).unwrap();
        assert_eq!(e.timestamp, 1_764_230_400_123);
        let e = parse_event(br#"{"event_type":"x","timestamp":"2025-11-27T09:00:00.123+01:00"}"#, MAX).unwrap();
        assert_eq!(e.timestamp, 1_764_230_400_123);
    }

    #[test]
    fn timestamps_from_0_to_the_year_9999_are_read_and_later_ones_refused() {
        assert_eq!(parse_event(br#"{"event_type":"x","timestamp":0}"#, MAX).unwrap().timestamp, 0);
        let last = parse_event(br#"{"event_type":"x","timestamp":"9999-12-31T23:59:59.999Z"}"#, MAX).unwrap();
        assert_eq!(last.timestamp, MAX_TIMESTAMP_MS);
        let line = format!(r#"{{"event_type":"x","timestamp":{}}}"#, MAX_TIMESTAMP_MS + 1);
        assert_eq!(reason(line.as_bytes()), InvalidReason::BadValue);
        assert_eq!(reason(br#"{"event_type":"x","timestamp":18446744073709551615}"#), InvalidReason::BadValue);
        // Beyond u64, JSON reads a float: not an integer of milliseconds.
        assert_eq!(reason(br#"{"event_type":"x","timestamp":18446744073709551616}"#), InvalidReason::BadType);
    }

    #[test]
    fn escaped_strings_are_unescaped() {
        let e = parse_event(br#"{"event_type":"a\"b\u00e9","timestamp":1}"#, MAX).unwrap();
        assert_eq!(e.event_type, "a\"bé");
    }

    #[test]
    fn every_invalid_kind_has_its_reason() {
        assert_eq!(reason(b"{not json"), InvalidReason::InvalidJson);
        assert_eq!(reason(b""), InvalidReason::InvalidJson);
        assert_eq!(reason(br#"{"event_type":"x","timestamp":1} trailing"#), InvalidReason::InvalidJson);
        assert_eq!(reason(b"[1,2,3]"), InvalidReason::NotObject);
        assert_eq!(reason(b"42"), InvalidReason::NotObject);
        assert_eq!(reason(br#"{"timestamp":1}"#), InvalidReason::MissingField);
        assert_eq!(reason(br#"{"event_type":"x"}"#), InvalidReason::MissingField);
        assert_eq!(reason(br#"{"event_type":7,"timestamp":1}"#), InvalidReason::BadType);
        assert_eq!(reason(br#"{"event_type":"x","timestamp":"yesterday"}"#), InvalidReason::BadType);
        assert_eq!(reason(br#"{"event_type":"x","timestamp":-5}"#), InvalidReason::BadType);
        assert_eq!(reason(br#"{"event_type":"x","timestamp":1.5}"#), InvalidReason::BadType);
        assert_eq!(reason(br#"{"event_type":"x","timestamp":1,"latency_ms":"fast"}"#), InvalidReason::BadType);
        assert_eq!(reason(br#"{"event_type":"x","timestamp":1,"latency_ms":-1}"#), InvalidReason::BadValue);
        assert_eq!(reason(br#"{"event_type":"x","timestamp":1,"value":1e999}"#), InvalidReason::BadValue);
        assert_eq!(reason(br#"{"event_type":"x","timestamp":1,"value":NaN}"#), InvalidReason::InvalidJson);
        assert_eq!(reason(b"{\"event_type\":\"\xff\",\"timestamp\":1}"), InvalidReason::NotUtf8);
        assert_eq!(reason(br#"{"event_type":"","timestamp":1}"#), InvalidReason::BadValue, "an empty event type");
        assert_eq!(reason(br#"{"event_type":"x","user_id":"","timestamp":1}"#), InvalidReason::BadValue);
        assert_eq!(reason(br#"{"event_type":"x","session_id":"","timestamp":1}"#), InvalidReason::BadValue);
        assert_eq!(reason(br#"{"event_type":"x","timestamp":1,"value":-1e308}"#), InvalidReason::BadValue);
        assert_eq!(reason(br#"{"event_type":"x","timestamp":1,"latency_ms":2e12}"#), InvalidReason::BadValue);
        let detail = parse_event(br#"{"event_type":"x","timestamp":1,"value":-1e308}"#, MAX).unwrap_err().detail;
        assert_eq!(detail, "value -1e308 is beyond ±1e15: a window's sum of such values cannot be kept exactly");
        let big = format!(r#"{{"event_type":"{}","timestamp":1}}"#, "x".repeat(100));
        assert_eq!(parse_event(big.as_bytes(), 50).unwrap_err().reason, InvalidReason::TooLarge);
    }
}
