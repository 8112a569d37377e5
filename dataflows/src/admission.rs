//! What becomes of one input: a valid event on time for some aggregation, a `late` dead letter for
//! each aggregation whose window has closed, or an invalid input's dead letter (CONTRACT
//! sections 2 and 3).
//!
//! Two steps, so that a source can parse in parallel and judge in order: [`admit`] parses and
//! rejects what is not an event (it needs only the input and the wall clock); [`Judge::judge`]
//! decides lateness against the watermark of the input's partition just before it (which needs
//! every earlier input of the partition) and counts what it found.

use crate::control::{Counters, RunControl};
use crate::event::{Event, InvalidReason, parse_event};
use crate::record::{DeadLetter, Position};
use crate::source::SourceKind;
use crate::spec::Millis;
use crate::window::AggregationPlan;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

/// An input parsed, before its lateness is judged.
#[derive(Clone, Debug, PartialEq)]
pub enum Admitted {
    /// A valid event (its watermark not yet set).
    Event(Event),
    /// Not an event: the dead-letter reason, what exactly was wrong, and the event time when the
    /// input had a readable one (a broken clock's).
    Rejected {
        /// The dead-letter reason.
        reason: InvalidReason,
        /// What exactly was wrong.
        detail: String,
        /// The input's event time, if readable.
        event_time: Option<u64>,
    },
}

impl Admitted {
    /// The timestamp that advances the partition's watermark: a valid event's (a broken
    /// clock's never does).
    #[inline]
    pub fn timestamp(&self) -> Option<u64> {
        match self {
            Admitted::Event(event) => Some(event.timestamp),
            Admitted::Rejected { .. } => None,
        }
    }
}

/// The latest event time accepted when reading, from the wall clock and
/// `watermark.max_future_skew` (read once per batch of inputs).
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    /// The wall clock, Unix ms.
    pub wall: u64,
    /// The latest acceptable event time (`None`: any).
    pub latest: Option<u64>,
}

impl Clock {
    /// The clock now, for a source with `max_future_skew` (ms; `None`: off).
    pub fn now(max_future_skew: Option<u64>) -> Clock {
        let wall = crate::control::wall_clock_ms();
        Clock { wall, latest: max_future_skew.map(|skew| wall.saturating_add(skew)) }
    }
}

/// Parses `bytes` (at most `max_bytes`) and rejects an event stamped after `clock.latest`.
#[inline]
pub fn admit(bytes: &[u8], max_bytes: usize, clock: Clock) -> Admitted {
    match parse_event(bytes, max_bytes) {
        Err(invalid) => Admitted::Rejected { reason: invalid.reason, detail: invalid.detail, event_time: None },
        Ok(event) if clock.latest.is_some_and(|latest| event.timestamp > latest) => {
            let latest = clock.latest.unwrap_or(clock.wall);
            let detail = format!(
                "timestamp {} is {:.0} s ahead of the wall clock (watermark.max_future_skew {})",
                event.timestamp,
                event.timestamp.saturating_sub(clock.wall) as f64 / 1000.0,
                Millis(latest - clock.wall)
            );
            Admitted::Rejected { reason: InvalidReason::Future, detail, event_time: Some(event.timestamp) }
        }
        Ok(event) => Admitted::Event(event),
    }
}

/// Judges admitted inputs of one source and counts what it finds.
pub struct Judge<'a> {
    /// How the source names itself in dead letters.
    pub kind: SourceKind,
    /// The aggregations.
    pub aggregations: &'a [AggregationPlan],
    /// The late counter of each aggregation, by index.
    pub late_counters: &'a [Arc<AtomicU64>],
    /// Where the invalid and late counts go.
    pub control: &'a RunControl,
}

impl Judge<'_> {
    /// Judges `admitted`, read from `bytes` at `position`, against `watermark` (its
    /// partition's, just before it): an event on time for some aggregation goes to `events`
    /// (stamped with the watermark), a dead letter for each aggregation it is late for and for
    /// a rejected input to `letters`.
    #[inline]
    pub fn judge(
        &self,
        admitted: Admitted,
        bytes: &[u8],
        position: Position,
        watermark: u64,
        events: &mut Vec<Event>,
        letters: &mut Vec<DeadLetter>,
    ) {
        let kind = self.kind;
        let counters = &self.control.counters;
        match admitted {
            Admitted::Rejected { reason, detail, event_time } => {
                Counters::add(&counters.invalid_events, 1);
                counters.invalid_by_reason.add(reason, 1);
                tracing::debug!(reason = reason.as_str(), detail = %detail, "invalid event");
                let letter = DeadLetter::new(kind, position, reason.as_str(), None, bytes, event_time);
                letters.push(letter.because(detail));
            }
            Admitted::Event(mut event) => {
                event.watermark = watermark;
                let mut on_time = false;
                for plan in self.aggregations {
                    if plan.group_key(&event).is_none() {
                        continue;
                    }
                    let lateness = plan.lateness(event.timestamp, watermark);
                    if lateness.late_for_some {
                        Counters::add(&counters.late_events, 1);
                        if let Some(counter) = self.late_counters.get(usize::from(plan.index)) {
                            Counters::add(counter, 1);
                        }
                        let at = Some(event.timestamp);
                        letters.push(DeadLetter::new(kind, position, "late", Some(plan.index), bytes, at));
                    }
                    on_time |= lateness.on_time_for_some;
                }
                if on_time {
                    events.push(event);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broken_clock_is_rejected_with_its_event_time_and_moves_no_watermark() {
        let clock = Clock { wall: 1_000_000, latest: Some(1_060_000) };
        let ahead = admit(br#"{"event_type":"a","timestamp":2000000}"#, 1_000, clock);
        assert!(matches!(
            &ahead,
            Admitted::Rejected { reason: InvalidReason::Future, event_time: Some(2_000_000), detail }
                if detail.contains("1000 s ahead")
        ));
        assert_eq!(ahead.timestamp(), None);
        let fine = admit(br#"{"event_type":"a","timestamp":1000}"#, 1_000, clock);
        assert_eq!(fine.timestamp(), Some(1_000));
        let off = Clock { wall: 0, latest: None };
        assert_eq!(admit(br#"{"event_type":"a","timestamp":2000000}"#, 1_000, off).timestamp(), Some(2_000_000));
    }
}
