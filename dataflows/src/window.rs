//! Window assignment (CONTRACT section 3): pure functions over timestamps.
//!
//! Tumbling and sliding windows are aligned to the Unix epoch; a tumbling window is a sliding one
//! whose slide equals its size. Windows are built from *panes* of length `slide`: an event lands
//! in one pane, and a window is the union of the `size / slide` panes it covers, so the per-event
//! cost does not grow with the number of overlapping windows.

use crate::event::Event;
use crate::spec::{AggregationConfig, GroupBy, WindowConfig};

/// A tumbling (`slide == size`) or sliding window shape, in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FixedWindows {
    /// Window length.
    pub size: u64,
    /// Distance between window starts; divides `size`.
    pub slide: u64,
}

impl FixedWindows {
    /// The fixed-window shape of a config window, or `None` for session windows.
    pub fn from_config(window: &WindowConfig) -> Option<FixedWindows> {
        match *window {
            WindowConfig::Tumbling { size } => Some(FixedWindows { size: size.0, slide: size.0 }),
            WindowConfig::Sliding { size, slide } => Some(FixedWindows { size: size.0, slide: slide.0 }),
            WindowConfig::Session { .. } => None,
        }
    }

    /// Start of the pane that holds `ts`.
    #[inline]
    pub fn pane_start(&self, ts: u64) -> u64 {
        ts - ts % self.slide
    }

    /// How many windows contain each pane (and each event).
    #[inline]
    pub fn panes_per_window(&self) -> u64 {
        self.size / self.slide
    }

    /// End of the last window that contains the pane starting at `pane_start`.
    ///
    /// Window arithmetic saturates at `u64::MAX` rather than overflow; event times stop at the
    /// year 9999 (`event::MAX_TIMESTAMP_MS`) and window lengths at 100 years, so it never has to.
    #[inline]
    pub fn last_end_of_pane(&self, pane_start: u64) -> u64 {
        pane_start.saturating_add(self.size)
    }

    /// Ends of every window that contains `ts`, earliest first.
    pub fn window_ends(&self, ts: u64) -> impl Iterator<Item = u64> + use<> {
        let first = self.pane_start(ts).saturating_add(self.slide);
        let slide = self.slide;
        (0..self.panes_per_window()).map(move |k| first.saturating_add(k.saturating_mul(slide)))
    }

    /// Every window `[start, end)` that contains `ts`, earliest first (start may be negative).
    pub fn windows(&self, ts: u64) -> impl Iterator<Item = (i64, u64)> + use<> {
        let size = i64::try_from(self.size).unwrap_or(i64::MAX);
        self.window_ends(ts).map(move |end| (i64::try_from(end).unwrap_or(i64::MAX).saturating_sub(size), end))
    }

    /// Whether a window of this shape ends at `end`.
    #[inline]
    pub fn is_window_end(&self, end: u64) -> bool {
        end.is_multiple_of(self.slide)
    }
}

/// Truncates a timestamp to its epoch (the granularity of timely timestamps).
#[inline]
pub fn epoch_of(ts: u64, epoch: u64) -> u64 {
    ts - ts % epoch
}

/// The window shape of an aggregation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// Tumbling or sliding.
    Fixed(FixedWindows),
    /// Session windows with this gap, ms.
    Session {
        /// Inactivity gap.
        gap: u64,
    },
}

/// Which windows of an aggregation an event is late or on time for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lateness {
    /// At least one window that contains the event has already been closed.
    pub late_for_some: bool,
    /// At least one window that contains the event is still open.
    pub on_time_for_some: bool,
}

/// An aggregation as the operators see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AggregationPlan {
    /// Index in the config (and in `WindowKey::aggregation`).
    pub index: u16,
    /// Window shape.
    pub shape: Shape,
    /// Grouping field.
    pub group_by: GroupBy,
}

impl AggregationPlan {
    /// The plans of the configured aggregations, in config order.
    pub fn from_config(aggregations: &[AggregationConfig]) -> Vec<AggregationPlan> {
        aggregations
            .iter()
            .enumerate()
            .map(|(i, a)| AggregationPlan {
                index: i as u16,
                shape: match FixedWindows::from_config(&a.window) {
                    Some(fixed) => Shape::Fixed(fixed),
                    None => match a.window {
                        WindowConfig::Session { gap } => Shape::Session { gap: gap.0 },
                        _ => unreachable!("only session windows have no fixed shape"),
                    },
                },
                group_by: a.group_by,
            })
            .collect()
    }

    /// The group key of an event, or `None` when the event lacks the grouping field.
    #[inline]
    pub fn group_key<'a>(&self, event: &'a Event) -> Option<&'a str> {
        self.group_by.key_of(event)
    }

    /// Lateness of an event with timestamp `ts` read when its partition's watermark was
    /// `watermark` (CONTRACT section 3): a window is closed when its end is at or below the
    /// watermark; a session event is late when its timestamp is below it.
    #[inline]
    pub fn lateness(&self, ts: u64, watermark: u64) -> Lateness {
        match self.shape {
            Shape::Fixed(w) => {
                let pane = w.pane_start(ts);
                Lateness {
                    late_for_some: pane.saturating_add(w.slide) <= watermark,
                    on_time_for_some: w.last_end_of_pane(pane) > watermark,
                }
            }
            Shape::Session { .. } => Lateness { late_for_some: ts < watermark, on_time_for_some: ts >= watermark },
        }
    }
}

/// Slots per aggregation whose keys are many (grouped by user or session).
const SLOTS_PER_WIDE_AGGREGATION: u64 = 32;

/// When, just before a window's end, each of its keys is handed to the merge.
///
/// Flushing every key of every window that ends at one moment in a single step (a minute boundary
/// closes per-minute, per-five-minute and per-user windows together) would hold a worker for tens
/// of milliseconds, and every window alert of that moment would wait behind it. Instead the
/// window's keys are spread over `slots` consecutive pairs of timestamps just below its end: a
/// key in slot `g` is merged at `end - 2·(slots - g)` (two ticks apart: until the merge stopped
/// being a differential `reduce`, a retraction took the second), so the merge of each slot is
/// complete — and its memory freed — as soon as the frontier passes that slot,
/// and the flush can be paced a slot at a time. Aggregations that window rules read come first
/// (their results leave before anything else is merged), then the rest; an aggregation grouped
/// by event type or by nothing has one slot, one grouped by user or session is spread over
/// several by a hash of the key. Every worker and process computes the same slots from the
/// config, so a key's partials always meet in the same slot.
///
/// Slot times must not reach below the earliest time at which a window's events can still be
/// in flight (the epoch holding `end - 1`): with an epoch of `epoch` ms and slides that are all
/// multiples of some `g`, there are at least `gcd(g, epoch)` timestamps between; half of that is
/// the number of slots available. With fewer than one, a window is merged at `end - 1`, all keys
/// at once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlushSlots {
    /// Number of slots (0: no slots, merge at `end - 1`).
    slots: u64,
    /// Per aggregation index: first slot and number of slots.
    ranges: Vec<(u64, u64)>,
    /// The last slot of the aggregations that window rules read: the flush pauses after it.
    last_alerted: Option<u64>,
}

impl FlushSlots {
    /// The slots of the fixed-window `plans`; `alerted` are the aggregations window rules read.
    pub fn new(plans: &[AggregationPlan], alerted: &[u16], epoch: u64) -> FlushSlots {
        let fixed: Vec<(&AggregationPlan, FixedWindows)> = plans
            .iter()
            .filter_map(|plan| match plan.shape {
                Shape::Fixed(w) => Some((plan, w)),
                Shape::Session { .. } => None,
            })
            .collect();
        let spacing = fixed.iter().fold(epoch.max(1), |g, (_, w)| gcd(g, w.slide));
        let available = spacing / 2;
        let mut ranges = vec![(0, 0); plans.iter().map(|p| usize::from(p.index) + 1).max().unwrap_or(0)];
        if available == 0 || fixed.is_empty() {
            return FlushSlots { slots: 0, ranges, last_alerted: None };
        }
        let wide = |plan: &AggregationPlan| matches!(plan.group_by, GroupBy::UserId | GroupBy::SessionId);
        let mut order: Vec<&(&AggregationPlan, FixedWindows)> = fixed.iter().collect();
        order.sort_by_key(|(plan, _)| (!alerted.contains(&plan.index), wide(plan), plan.index));
        let wanted_wide = SLOTS_PER_WIDE_AGGREGATION;
        let narrow = order.iter().filter(|(p, _)| !wide(p)).count() as u64;
        let wides = order.len() as u64 - narrow;
        // Fewer slots than wanted: narrow the wide aggregations' ranges, then share the last slot.
        let per_wide =
            available.saturating_sub(narrow).checked_div(wides).map_or(0, |share| wanted_wide.min(share).max(1));
        let mut next = 0u64;
        let mut last_alerted = None;
        for (plan, _) in order {
            let count = if wide(plan) { per_wide } else { 1 };
            let first = next.min(available - 1);
            let count = count.min(available - first);
            ranges[usize::from(plan.index)] = (first, count);
            if alerted.contains(&plan.index) {
                last_alerted = Some(first + count - 1);
            }
            next = first + count;
        }
        FlushSlots { slots: next.min(available), ranges, last_alerted }
    }

    /// Number of slots of every window end (at least one: without slots, everything is one).
    pub fn count(&self) -> u64 {
        self.slots.max(1)
    }

    /// The slot of a key of an aggregation.
    #[inline]
    pub fn slot_of(&self, aggregation: u16, key: &str) -> u64 {
        match self.ranges.get(usize::from(aggregation)) {
            Some(&(first, count)) if count > 1 => first + (crate::shard::route_hash(key) >> 32) % count,
            Some(&(first, _)) => first,
            None => 0,
        }
    }

    /// The first slot of an aggregation.
    pub fn first_slot(&self, aggregation: u16) -> u64 {
        self.ranges.get(usize::from(aggregation)).map_or(0, |r| r.0)
    }

    /// Whether the flush should pause after `slot`, so that the alerted windows are merged alone.
    pub fn pause_after(&self, slot: u64) -> bool {
        self.last_alerted == Some(slot) && slot + 1 < self.count()
    }

    /// Whether `slot` holds aggregations that window rules read.
    pub fn is_alerted(&self, slot: u64) -> bool {
        self.last_alerted.is_some_and(|last| slot <= last)
    }

    /// When a key of window `end` in `slot` is merged.
    #[inline]
    pub fn insert_time(&self, end: u64, slot: u64) -> u64 {
        if self.slots == 0 { end.saturating_sub(1) } else { end.saturating_sub(2 * (self.slots - slot)) }
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tumbling_windows_are_aligned_to_the_epoch() {
        let w = FixedWindows { size: 60_000, slide: 60_000 };
        assert_eq!(w.windows(1_764_230_400_123).collect::<Vec<_>>(), vec![(1_764_230_400_000, 1_764_230_460_000)]);
        assert_eq!(w.windows(59_999).collect::<Vec<_>>(), vec![(0, 60_000)]);
        assert_eq!(w.windows(60_000).collect::<Vec<_>>(), vec![(60_000, 120_000)]);
    }

    #[test]
    fn sliding_windows_hold_every_event_size_over_slide_times() {
        let w = FixedWindows { size: 300, slide: 100 };
        assert_eq!(w.windows(250).collect::<Vec<_>>(), vec![(0, 300), (100, 400), (200, 500)]);
        assert_eq!(w.windows(50).collect::<Vec<_>>(), vec![(-200, 100), (-100, 200), (0, 300)]);
        for ts in 0..1_000 {
            for (start, end) in w.windows(ts) {
                assert!(start <= ts as i64 && (ts as i64) < end as i64);
                assert!(w.is_window_end(end));
            }
            // No window outside the list contains ts.
            let count = (-3i64..12).filter(|k| k * 100 <= ts as i64 && (ts as i64) < k * 100 + 300).count();
            assert_eq!(count, 3);
        }
    }

    #[test]
    fn lateness_is_decided_per_window() {
        let plan = AggregationPlan {
            index: 0,
            shape: Shape::Fixed(FixedWindows { size: 300, slide: 100 }),
            group_by: GroupBy::None,
        };
        // ts 250 lies in windows ending 300, 400, 500.
        assert_eq!(plan.lateness(250, 299), Lateness { late_for_some: false, on_time_for_some: true });
        assert_eq!(plan.lateness(250, 300), Lateness { late_for_some: true, on_time_for_some: true });
        assert_eq!(plan.lateness(250, 500), Lateness { late_for_some: true, on_time_for_some: false });
        let session = AggregationPlan { shape: Shape::Session { gap: 10 }, ..plan };
        assert!(session.lateness(99, 100).late_for_some);
        assert!(session.lateness(100, 100).on_time_for_some);
    }

    #[test]
    fn no_timestamp_overflows_window_arithmetic() {
        let w = FixedWindows { size: 300_000, slide: 60_000 };
        for ts in [0, crate::event::MAX_TIMESTAMP_MS, u64::MAX] {
            let ends: Vec<u64> = w.window_ends(ts).collect();
            assert_eq!(ends.len(), 5, "{ts}");
            assert!(ends.windows(2).all(|e| e[0] <= e[1]), "{ts}: {ends:?}");
            assert!(w.windows(ts).all(|(start, end)| start < end as i64 || end > i64::MAX as u64), "{ts}");
            let plan = AggregationPlan { index: 0, shape: Shape::Fixed(w), group_by: GroupBy::None };
            let _ = (plan.lateness(ts, u64::MAX), plan.lateness(ts, 0), epoch_of(ts, 1_000));
        }
        // The last time an event may have: every window that holds it ends where it should.
        let last = crate::event::MAX_TIMESTAMP_MS;
        assert_eq!(w.window_ends(last).last(), Some(last - last % 60_000 + 300_000));
        let slots = FlushSlots::new(&default_plans(), &[], 1_000);
        assert_eq!(slots.insert_time(0, 0), 0);
        assert!(slots.insert_time(u64::MAX, slots.count() - 1) < u64::MAX);
    }

    #[test]
    fn panes_cover_their_windows() {
        let w = FixedWindows { size: 300, slide: 100 };
        assert_eq!(w.pane_start(250), 200);
        assert_eq!(w.last_end_of_pane(200), 500);
        assert_eq!(w.window_ends(250).last(), Some(w.last_end_of_pane(w.pane_start(250))));
    }

    fn default_plans() -> Vec<AggregationPlan> {
        let yaml = r#"
- { name: by_type_1m, window: { kind: tumbling, size: 1m }, group_by: event_type }
- { name: by_type_5m_sliding, window: { kind: sliding, size: 5m, slide: 1m }, group_by: event_type }
- { name: by_user_1m, window: { kind: tumbling, size: 1m }, group_by: user_id }
- { name: by_user_sessions, window: { kind: session, gap: 30s }, group_by: user_id }
"#;
        let configs: Vec<AggregationConfig> = serde_yaml_ng::from_str(yaml).expect("valid aggregations");
        AggregationPlan::from_config(&configs)
    }

    #[test]
    fn flush_slots_put_narrow_aggregations_first_and_spread_wide_ones() {
        let slots = FlushSlots::new(&default_plans(), &[], 1_000);
        assert_eq!(slots.count(), 2 + SLOTS_PER_WIDE_AGGREGATION);
        assert_eq!(slots.slot_of(0, "login"), 0);
        assert_eq!(slots.slot_of(1, "login"), 1);
        let users: std::collections::BTreeSet<u64> =
            (0..1000).map(|u| slots.slot_of(2, &format!("user_{u}"))).collect();
        assert_eq!(users, (2..2 + SLOTS_PER_WIDE_AGGREGATION).collect());
        assert!(!(0..slots.count()).any(|s| slots.pause_after(s)));
        // Every slot's time (and the tick after it) lies within the window's last epoch, in order.
        let end = 1_764_230_460_000;
        let times: Vec<u64> = (0..slots.count()).map(|s| slots.insert_time(end, s)).collect();
        assert!(times[0] >= end - 1_000 && *times.last().unwrap() + 1 < end);
        assert!(times.windows(2).all(|t| t[0] + 1 < t[1]));
        // The same slot of the next window comes later.
        assert!(slots.insert_time(end + 60_000, 0) > slots.insert_time(end, slots.count() - 1));
    }

    #[test]
    fn flush_slots_serve_alerted_aggregations_first_and_pause_after_them() {
        let slots = FlushSlots::new(&default_plans(), &[2], 1_000);
        assert!((0..100).all(|u| slots.slot_of(2, &format!("user_{u}")) < SLOTS_PER_WIDE_AGGREGATION));
        assert_eq!(slots.slot_of(0, "login"), SLOTS_PER_WIDE_AGGREGATION);
        assert!(slots.pause_after(SLOTS_PER_WIDE_AGGREGATION - 1));
        let slots = FlushSlots::new(&default_plans(), &[1], 1_000);
        assert_eq!(slots.slot_of(1, "login"), 0);
        assert!(slots.pause_after(0));
        assert!(slots.is_alerted(0) && !slots.is_alerted(1));
    }

    #[test]
    fn flush_slots_fit_between_epochs_or_fall_back_to_one() {
        let plan = |slide: u64, group_by| AggregationPlan {
            index: 0,
            shape: Shape::Fixed(FixedWindows { size: slide, slide }),
            group_by,
        };
        // Windows of 1.5 s with 1 s epochs: 500 ms between a window's end and its last epoch.
        let slots = FlushSlots::new(&[plan(1_500, GroupBy::UserId)], &[], 1_000);
        assert_eq!(slots.count(), SLOTS_PER_WIDE_AGGREGATION);
        assert!(slots.insert_time(1_500, 0) >= 1_000);
        // A narrow room: fewer slots, still inside it.
        let slots = FlushSlots::new(&[plan(10, GroupBy::UserId)], &[], 1_000);
        assert_eq!(slots.count(), 5);
        assert!(slots.insert_time(20, 0) >= 10);
        // Millisecond epochs leave no room: merge at end - 1.
        let slots = FlushSlots::new(&[plan(1_000, GroupBy::UserId)], &[], 1);
        assert_eq!((slots.count(), slots.insert_time(1_000, 0), slots.slot_of(0, "u")), (1, 999, 0));
    }
}
