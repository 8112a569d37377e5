//! Rare-sequence detection: the learned probability of each event-type transition within
//! sessions, `count(prev → next) / count(prev → *)`; a transition whose probability (before it
//! is counted) is under a bound, once `prev` has at least `min_support` transitions, is rare.

use compact_str::CompactString;
use rustc_hash::FxHashMap;

/// Transition counts learned so far.
#[derive(Clone, Debug, Default)]
pub struct TransitionModel {
    pairs: FxHashMap<(CompactString, CompactString), u64>,
    totals: FxHashMap<CompactString, u64>,
}

impl TransitionModel {
    /// The learned probability of `prev → next` and the support of `prev`.
    pub fn probability(&self, prev: &str, next: &str) -> (f64, u64) {
        let support = self.totals.get(prev).copied().unwrap_or(0);
        let seen = self.pairs.get(&(CompactString::from(prev), CompactString::from(next))).copied().unwrap_or(0);
        (if support == 0 { 0.0 } else { seen as f64 / support as f64 }, support)
    }

    /// Learns one transition.
    pub fn learn(&mut self, prev: &str, next: &str) {
        *self.totals.entry(prev.into()).or_insert(0) += 1;
        *self.pairs.entry((prev.into(), next.into())).or_insert(0) += 1;
    }

    /// Judges `prev → next` against what was learned before it, then learns it. Returns the
    /// probability and support when the transition is rare.
    pub fn judge_and_learn(
        &mut self,
        prev: &str,
        next: &str,
        min_support: u64,
        max_probability: f64,
    ) -> Option<(f64, u64)> {
        let (probability, support) = self.probability(prev, next);
        self.learn(prev, next);
        (support >= min_support && probability < max_probability).then_some((probability, support))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_never_seen_transition_is_rare_after_enough_support() {
        let mut model = TransitionModel::default();
        for i in 0..1_000 {
            let next = if i % 2 == 0 { "click" } else { "search" };
            assert_eq!(model.judge_and_learn("page_view", next, 1_000, 0.01), None);
        }
        assert_eq!(model.judge_and_learn("page_view", "admin_export", 1_000, 0.01), Some((0.0, 1_000)));
        assert_eq!(model.judge_and_learn("page_view", "click", 1_000, 0.01), None, "a common one is not");
        assert_eq!(model.judge_and_learn("login", "admin_export", 1_000, 0.01), None, "too little support");
    }
}
