//! Window assignment (CONTRACT section 3): pure functions over timestamps.
//!
//! Tumbling and sliding windows are aligned to the Unix epoch; a tumbling window is a sliding one
//! whose slide equals its size. Windows are built from *panes* of length `slide`: an event lands
//! in one pane, and a window is the union of the `size / slide` panes it covers, so the per-event
//! cost does not grow with the number of overlapping windows.

use crate::config::{AggregationConfig, GroupBy, WindowConfig};
use crate::event::Event;

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
    #[inline]
    pub fn last_end_of_pane(&self, pane_start: u64) -> u64 {
        pane_start + self.size
    }

    /// Ends of every window that contains `ts`, earliest first.
    pub fn window_ends(&self, ts: u64) -> impl Iterator<Item = u64> + use<> {
        let first = self.pane_start(ts) + self.slide;
        let slide = self.slide;
        (0..self.panes_per_window()).map(move |k| first + k * slide)
    }

    /// Every window `[start, end)` that contains `ts`, earliest first (start may be negative).
    pub fn windows(&self, ts: u64) -> impl Iterator<Item = (i64, u64)> + use<> {
        let size = self.size;
        self.window_ends(ts).map(move |end| (end as i64 - size as i64, end))
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
                    late_for_some: pane + w.slide <= watermark,
                    on_time_for_some: w.last_end_of_pane(pane) > watermark,
                }
            }
            Shape::Session { .. } => Lateness { late_for_some: ts < watermark, on_time_for_some: ts >= watermark },
        }
    }
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
    fn panes_cover_their_windows() {
        let w = FixedWindows { size: 300, slide: 100 };
        assert_eq!(w.pane_start(250), 200);
        assert_eq!(w.last_end_of_pane(200), 500);
        assert_eq!(w.window_ends(250).last(), Some(w.last_end_of_pane(w.pane_start(250))));
    }
}
