//! The fast path of the event parser: one pass over the bytes of an event of the common shape —
//! a flat object whose strings have no escapes and whose numbers are plain — reading the fields
//! the pipeline uses and checking the syntax of the others, without serde's per-field dispatch.
//!
//! It accepts only inputs for which it is sure to read exactly what `serde_json` reads: anything
//! else (an escape, a nested value, an exponent, a long number, a duplicate or missing field, a
//! timestamp written as text, a syntax error) gives `None` and the input goes to `serde_json`,
//! which then also words the error. So every verdict and every value is serde_json's; a
//! property test holds the two to that on arbitrary input (`tests/parser.rs`).

use super::{RawEvent, Timestamp};
use std::borrow::Cow;

/// Reads `text` (valid UTF-8) as an event of the common shape, or `None` to leave it to
/// serde_json.
pub(super) fn parse(text: &str) -> Option<RawEvent<'_>> {
    let mut scan = Scan { text, bytes: text.as_bytes(), at: 0 };
    let (mut event_type, mut timestamp) = (None, None);
    let mut event = RawEvent {
        event_type: Cow::Borrowed(""),
        user_id: None,
        session_id: None,
        timestamp: Timestamp(0),
        latency_ms: None,
        value: None,
        status: None,
    };
    let mut seen = 0u8;
    scan.whitespace();
    scan.byte(b'{')?;
    scan.whitespace();
    if scan.peek()? == b'}' {
        return None;
    }
    loop {
        let key = scan.string()?;
        scan.whitespace();
        scan.byte(b':')?;
        scan.whitespace();
        let field = match key {
            "event_type" => 0,
            "user_id" => 1,
            "session_id" => 2,
            "timestamp" => 3,
            "latency_ms" => 4,
            "value" => 5,
            "status" => 6,
            _ => 7,
        };
        if field < 7 {
            // serde's derive refuses a field given twice.
            if seen & (1 << field) != 0 {
                return None;
            }
            seen |= 1 << field;
        }
        match field {
            0 => event_type = Some(scan.string()?),
            1 => event.user_id = scan.optional_string()?.map(Cow::Borrowed),
            2 => event.session_id = scan.optional_string()?.map(Cow::Borrowed),
            3 => timestamp = Some(scan.milliseconds()?),
            4 => event.latency_ms = scan.optional_number()?,
            5 => event.value = scan.optional_number()?,
            6 => event.status = scan.optional_string()?.map(Cow::Borrowed),
            _ => scan.skip_value()?,
        }
        scan.whitespace();
        match scan.next()? {
            b',' => scan.whitespace(),
            b'}' => break,
            _ => return None,
        }
    }
    scan.whitespace();
    if scan.at != scan.bytes.len() {
        return None;
    }
    event.event_type = Cow::Borrowed(event_type?);
    event.timestamp = Timestamp(timestamp?);
    Some(event)
}

/// Exact powers of ten (every one up to 1e22 is a double).
const POW10: [f64; 16] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15];

/// The most digits of a number read here: below 2^53, so the digits are an exact double.
const MAX_DIGITS: usize = 15;

struct Scan<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Scan<'a> {
    #[inline]
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    #[inline]
    fn next(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.at += 1;
        Some(byte)
    }

    #[inline]
    fn byte(&mut self, expected: u8) -> Option<()> {
        (self.next()? == expected).then_some(())
    }

    /// JSON's whitespace: space, tab, newline, carriage return.
    #[inline]
    fn whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    /// A string without escapes or control characters.
    #[inline]
    fn string(&mut self) -> Option<&'a str> {
        self.byte(b'"')?;
        let start = self.at;
        // The event's strings are short: a plain loop beats a vectorized search's set-up.
        let length = self.bytes[start..].iter().position(|b| matches!(b, b'"' | b'\\' | 0..0x20))?;
        if self.bytes[start + length] != b'"' {
            return None;
        }
        self.at = start + length + 1;
        // A quote is never inside a UTF-8 character: both ends are character boundaries.
        self.text.get(start..self.at - 1)
    }

    /// `null` or a string.
    #[inline]
    fn optional_string(&mut self) -> Option<Option<&'a str>> {
        if self.peek()? == b'n' {
            self.literal(b"null")?;
            return Some(None);
        }
        self.string().map(Some)
    }

    #[inline]
    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.at + word.len();
        (self.bytes.get(self.at..end)? == word).then(|| self.at = end)
    }

    /// A non-negative integer of at most 15 digits (a timestamp in milliseconds).
    #[inline]
    fn milliseconds(&mut self) -> Option<u64> {
        let (digits, value) = self.digits()?;
        // A fraction or an exponent makes serde_json read a float: a bad type, its error.
        match self.peek() {
            Some(b'.' | b'e' | b'E') => None,
            _ => (digits > 0).then_some(value),
        }
    }

    /// `null` or a number of at most 15 digits without an exponent, read as serde_json reads it.
    #[inline]
    fn optional_number(&mut self) -> Option<Option<f64>> {
        if self.peek()? == b'n' {
            self.literal(b"null")?;
            return Some(None);
        }
        let negative = self.peek()? == b'-';
        if negative {
            self.at += 1;
        }
        let (integer_digits, integer) = self.digits()?;
        if integer_digits == 0 {
            return None;
        }
        let value = match self.peek() {
            Some(b'e' | b'E') => return None,
            Some(b'.') => {
                self.at += 1;
                let (fraction_digits, fraction) = self.fraction_digits()?;
                if fraction_digits == 0 || integer_digits + fraction_digits > MAX_DIGITS {
                    return None;
                }
                if let Some(b'e' | b'E') = self.peek() {
                    return None;
                }
                // serde_json: the digits as one integer over a power of ten, both exact, so the
                // one division rounds correctly (as with its `float_roundtrip` feature too).
                let significand = integer * 10u64.pow(fraction_digits as u32) + fraction;
                significand as f64 / POW10[fraction_digits]
            }
            // serde_json reads a non-negative integer as u64 and a negative one as i64 (and
            // `-0` as -0.0), then as f64: below 2^53 all the same as this.
            _ => integer as f64,
        };
        Some(Some(if negative { -value } else { value }))
    }

    /// The digits of an integer part: up to 15, refusing a leading zero before another digit
    /// (not JSON); how many there were and their value.
    #[inline]
    fn digits(&mut self) -> Option<(usize, u64)> {
        let start = self.at;
        let read = self.fraction_digits()?;
        if read.0 > 1 && self.bytes[start] == b'0' {
            return None;
        }
        Some(read)
    }

    /// Up to 15 decimal digits (any first one); how many there were and their value.
    #[inline]
    fn fraction_digits(&mut self) -> Option<(usize, u64)> {
        let start = self.at;
        let mut value = 0u64;
        while let Some(digit @ b'0'..=b'9') = self.peek() {
            if self.at - start == MAX_DIGITS {
                return None;
            }
            value = value * 10 + u64::from(digit - b'0');
            self.at += 1;
        }
        Some((self.at - start, value))
    }

    /// Checks the syntax of a value the pipeline does not use: a string, a number, `true`,
    /// `false` or `null` (an object or array goes to serde_json).
    #[inline]
    fn skip_value(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(|_| ()),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => {
                if self.peek()? == b'-' {
                    self.at += 1;
                }
                if self.digits()?.0 == 0 {
                    return None;
                }
                if self.peek() == Some(b'.') {
                    self.at += 1;
                    if self.fraction_digits()?.0 == 0 {
                        return None;
                    }
                }
                match self.peek() {
                    Some(b'e' | b'E') => None,
                    _ => Some(()),
                }
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn takes_the_common_shape_and_leaves_the_rest_to_serde_json() {
        let line = r#"{"event_id":"e-0-1","event_type":"api_call","user_id":"user_1118","session_id":"s-1118-1","timestamp":1764230400000,"latency_ms":51.065,"value":-0,"status":"ok","n":null,"b":true,"f":0.007}"#;
        let event = parse(line).expect("the generator's shape is read here");
        assert_eq!((event.event_type.as_ref(), event.timestamp.0), ("api_call", 1_764_230_400_000));
        assert_eq!(event.latency_ms, Some(51.065));
        assert!(event.value.is_some_and(|v| v == 0.0 && v.is_sign_negative()), "-0 is -0.0, as serde_json reads it");
        assert_eq!(event.status.as_deref(), Some("ok"));
        for other in [
            r#"{"event_type":"a\"b","timestamp":1}"#,
            r#"{"event_type":"a","timestamp":"2025-11-27T08:00:00Z"}"#,
            r#"{"event_type":"a","timestamp":1,"latency_ms":1e3}"#,
            r#"{"event_type":"a","timestamp":1,"latency_ms":1234567890.1234567}"#,
            r#"{"event_type":"a","timestamp":01}"#,
            r#"{"event_type":"a","timestamp":1,"value":-01.5}"#,
            r#"{"event_type":"a","timestamp":1,"timestamp":2}"#,
            r#"{"event_type":"a","timestamp":1,"extra":{"nested":1}}"#,
            r#"{"event_type":"a","timestamp":1,}"#,
            r#"{"event_type":"a","timestamp":1} x"#,
            r#"{"timestamp":1}"#,
        ] {
            assert!(parse(other).is_none(), "{other}");
        }
    }
}
