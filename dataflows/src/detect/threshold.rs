//! Threshold detection: a value against per-severity levels, above or below.

use crate::spec::{Direction, Levels, Severity};

/// The most severe level that `value` crosses, with that level.
pub fn crossed(levels: &Levels, direction: Direction, value: f64) -> Option<(Severity, f64)> {
    Severity::ALL.iter().find_map(|severity| {
        let level = levels.get(*severity)?;
        let crosses = match direction {
            Direction::Above => value > level,
            Direction::Below => value < level,
            Direction::Both => value.abs() > level,
        };
        crosses.then_some((*severity, level))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_severe_crossed_level_wins() {
        let levels = Levels { critical: Some(10.0), high: Some(5.0), medium: None, low: Some(1.0) };
        assert_eq!(crossed(&levels, Direction::Above, 12.5), Some((Severity::Critical, 10.0)));
        assert_eq!(crossed(&levels, Direction::Above, 7.0), Some((Severity::High, 5.0)));
        assert_eq!(crossed(&levels, Direction::Above, 2.0), Some((Severity::Low, 1.0)));
        assert_eq!(crossed(&levels, Direction::Above, 1.0), None);
        let below = Levels { critical: Some(1.0), high: Some(5.0), ..Levels::default() };
        assert_eq!(crossed(&below, Direction::Below, 0.5), Some((Severity::Critical, 1.0)));
        assert_eq!(crossed(&below, Direction::Below, 3.0), Some((Severity::High, 5.0)));
        assert_eq!(
            crossed(&Levels { high: Some(3.0), ..Levels::default() }, Direction::Both, -4.0),
            Some((Severity::High, 3.0))
        );
    }
}
