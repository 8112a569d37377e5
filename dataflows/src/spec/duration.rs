//! Humane durations in the config (`"500ms"`, `"30s"`, `"1m"`, `"2h"`), parsed by `humantime`.

use serde::{Deserialize, Deserializer, Serializer};
use std::fmt;
use std::time::Duration;

/// A duration that cannot be read: the user's config.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {text:?}: {why}")]
pub struct InvalidDuration {
    /// What was written.
    pub text: String,
    /// Why it is not a duration.
    pub why: String,
}

/// A duration written as a humane string in YAML, kept as whole milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Millis(pub u64);

impl Millis {
    /// The duration as a `std::time::Duration`.
    pub fn as_duration(self) -> Duration {
        Duration::from_millis(self.0)
    }

    /// Parses `"500ms"`, `"30s"`, `"1m"`, `"2h"`, `"1d"` (and combinations such as `"1m 30s"`).
    pub fn parse(text: &str) -> Result<Millis, InvalidDuration> {
        let invalid = |why: String| InvalidDuration { text: text.to_owned(), why };
        let duration = humantime::parse_duration(text.trim())
            .map_err(|e| invalid(format!("{e}; write it like \"500ms\", \"30s\", \"1m\" or \"2h\"")))?;
        if duration.subsec_nanos() % 1_000_000 != 0 {
            return Err(invalid("the smallest unit is a millisecond".to_owned()));
        }
        u64::try_from(duration.as_millis()).map(Millis).map_err(|_| invalid("too long".to_owned()))
    }
}

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0;
        let units = [(86_400_000, "d"), (3_600_000, "h"), (60_000, "m"), (1_000, "s")];
        for (size, unit) in units {
            if ms >= size && ms.is_multiple_of(size) {
                return write!(f, "{}{unit}", ms / size);
            }
        }
        write!(f, "{ms}ms")
    }
}

impl<'de> Deserialize<'de> for Millis {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Millis::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for Millis {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

/// A duration that can be switched off: `"off"` in YAML, else a humane duration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OrOff(pub Option<Millis>);

impl fmt::Display for OrOff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(ms) => ms.fmt(f),
            None => f.write_str("off"),
        }
    }
}

impl<'de> Deserialize<'de> for OrOff {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        if text.trim() == "off" {
            return Ok(OrOff(None));
        }
        Millis::parse(&text).map(|ms| OrOff(Some(ms))).map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for OrOff {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::{Millis, OrOff};

    #[test]
    fn a_duration_or_off() {
        let read = |text: &str| serde_json::from_value::<OrOff>(serde_json::Value::String(text.into()));
        assert_eq!(read("1h").unwrap(), OrOff(Some(Millis(3_600_000))));
        assert_eq!(read("off").unwrap(), OrOff(None));
        assert!(read("never").is_err());
        assert_eq!(OrOff(None).to_string(), "off");
    }

    #[test]
    fn parses_humane_durations() {
        assert_eq!(Millis::parse("500ms").unwrap(), Millis(500));
        assert_eq!(Millis::parse("30s").unwrap(), Millis(30_000));
        assert_eq!(Millis::parse("1m").unwrap(), Millis(60_000));
        assert_eq!(Millis::parse("2h").unwrap(), Millis(7_200_000));
        assert_eq!(Millis::parse("1m 30s").unwrap(), Millis(90_000));
        assert!(Millis::parse("soon").is_err());
        assert!(Millis::parse("").is_err());
    }

    #[test]
    fn displays_in_the_largest_whole_unit() {
        assert_eq!(Millis(60_000).to_string(), "1m");
        assert_eq!(Millis(90_000).to_string(), "90s");
        assert_eq!(Millis(1_500).to_string(), "1500ms");
        assert_eq!(Millis(7_200_000).to_string(), "2h");
    }
}
