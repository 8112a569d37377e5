//! z-scores (CONTRACT section 5): `(x - mean) / stddev` over the key's previous `history`
//! windows (population standard deviation), with at least `min_history` windows and a stddev
//! above zero.

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// The last `history` values of one (rule, key).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    values: VecDeque<f64>,
}

impl History {
    /// The z-score of `x` against the history (before `x` joins it), if defined.
    pub fn zscore(&self, x: f64, min_history: usize) -> Option<f64> {
        let n = self.values.len();
        if n < min_history || n == 0 {
            return None;
        }
        let mean = self.values.iter().sum::<f64>() / n as f64;
        let variance = self.values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n as f64;
        let stddev = variance.sqrt();
        (stddev > 0.0).then(|| (x - mean) / stddev)
    }

    /// Adds a value, keeping the last `history`.
    pub fn push(&mut self, x: f64, history: usize) {
        self.values.push_back(x);
        while self.values.len() > history {
            self.values.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_definition() {
        let mut h = History::default();
        for v in [10.0, 12.0, 8.0, 10.0] {
            h.push(v, 4);
        }
        // mean 10, population stddev sqrt(2)
        let z = h.zscore(13.0, 3).unwrap();
        assert!((z - 3.0 / 2f64.sqrt()).abs() < 1e-12);
        assert_eq!(h.zscore(13.0, 5), None, "too little history");
        h.push(100.0, 4);
        assert_eq!(h.values.len(), 4, "only the last `history` values are kept");
        let mut flat = History::default();
        (0..5).for_each(|_| flat.push(7.0, 10));
        assert_eq!(flat.zscore(9.0, 1), None, "zero stddev: no z-score");
    }
}
