//! Deduplication (CONTRACT section 5): an alert of the same rule and key within `cooldown`
//! (event time) of the last one emitted is suppressed; the next one emitted carries the number
//! suppressed. A cooldown counts as at least 1 ms: two alerts of one rule and key at the same
//! millisecond (two slow events of one type stamped alike) would carry the same `alert_id`, so
//! the second is suppressed here too — every channel sees each id once, as Redis and webhooks
//! would keep only one of them anyway.

use super::Alert;
use crate::shard::Sharded;
use compact_str::CompactString;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

/// The last alert emitted for a (rule, key) and how many were suppressed since.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastEmitted {
    /// Its event time.
    pub time: u64,
    /// Alerts suppressed since.
    pub suppressed: u64,
}

/// Cooldowns as a checkpoint stores them: ((rule, key), last emitted) by key shard.
pub type DedupSnapshot = Sharded<((CompactString, CompactString), LastEmitted)>;

/// Cooldown state per (rule, key).
#[derive(Debug, Default)]
pub struct Dedup {
    last: FxHashMap<(CompactString, CompactString), LastEmitted>,
    admitted: u64,
}

impl Dedup {
    /// Whether `alert` is emitted (then with its `suppressed` count set) or suppressed.
    pub fn admit(&mut self, alert: &mut Alert, cooldown: u64) -> bool {
        let key = (alert.rule.clone(), alert.key.clone());
        match self.last.get_mut(&key) {
            Some(last) if alert.time < last.time.saturating_add(cooldown.max(1)) && alert.time >= last.time => {
                last.suppressed += 1;
                false
            }
            Some(last) => {
                alert.suppressed = last.suppressed;
                *last = LastEmitted { time: alert.time.max(last.time), suppressed: 0 };
                self.admitted += 1;
                true
            }
            None => {
                self.last.insert(key, LastEmitted { time: alert.time, suppressed: 0 });
                self.admitted += 1;
                true
            }
        }
    }

    /// Forgets keys whose cooldown ended before `time` and that have nothing suppressed, so the
    /// state stays bounded on an endless run.
    pub fn forget_before(&mut self, time: u64, max_cooldown: u64) {
        self.last.retain(|_, last| last.suppressed > 0 || last.time.saturating_add(max_cooldown) > time);
    }

    /// The cooldowns by shard; `shard` gives the shard of a (rule, key), as the operator that
    /// owns this state receives its alerts.
    pub fn snapshot(&self, shard: impl Fn(&str, &str) -> u32) -> DedupSnapshot {
        let mut out = Sharded::default();
        for ((rule, key), last) in &self.last {
            out.push(shard(rule, key), ((rule.clone(), key.clone()), *last));
        }
        out
    }

    /// The cooldowns by the shard of (rule, key): how the alert operators exchange their input.
    pub fn by_shard(&self) -> DedupSnapshot {
        self.snapshot(|rule, key| crate::shard::shard_of((rule, key)))
    }

    /// Adds the cooldowns of the shards in `snapshot`.
    pub fn restore(&mut self, snapshot: DedupSnapshot) {
        self.last.extend(snapshot.into_entries());
    }

    /// Keys remembered.
    pub fn len(&self) -> usize {
        self.last.len()
    }

    /// Whether no key is remembered.
    pub fn is_empty(&self) -> bool {
        self.last.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::tests::sample;

    #[test]
    fn no_cooldown_still_means_one_alert_per_millisecond() {
        let mut dedup = Dedup::default();
        let at = |time: u64| {
            let mut alert = sample();
            alert.time = time;
            alert
        };
        assert!(dedup.admit(&mut at(1_000), 0));
        assert!(!dedup.admit(&mut at(1_000), 0), "same rule, key and millisecond: the same alert id");
        let mut next = at(1_001);
        assert!(dedup.admit(&mut next, 0));
        assert_eq!(next.suppressed, 1);
    }

    #[test]
    fn a_burst_yields_a_handful_of_alerts() {
        let mut dedup = Dedup::default();
        let mut emitted = Vec::new();
        // 10,000 anomalous one-minute windows of one key, cooldown 5 minutes.
        for i in 0..10_000u64 {
            let mut alert = sample();
            alert.time = 1_000_000 + i * 60_000;
            alert.window_start = alert.time as i64 - 60_000;
            if dedup.admit(&mut alert, 300_000) {
                emitted.push(alert);
            }
        }
        assert_eq!(emitted.len(), 2_000);
        assert_eq!(emitted[0].suppressed, 0);
        assert!(
            emitted[1..].iter().all(|a| a.suppressed == 4),
            "every emitted alert carries the 4 suppressed before it"
        );
        // A burst within one cooldown: one alert.
        let mut dedup = Dedup::default();
        let admitted = (0..10_000u64)
            .filter(|i| {
                let mut alert = sample();
                alert.time = 5_000_000 + i;
                dedup.admit(&mut alert, 300_000)
            })
            .count();
        assert_eq!(admitted, 1);
    }

    #[test]
    fn keys_and_rules_are_independent_and_state_is_bounded() {
        let mut dedup = Dedup::default();
        for key in ["a", "b"] {
            for rule in ["r1", "r2"] {
                let mut alert = sample();
                alert.key = key.into();
                alert.rule = rule.into();
                assert!(dedup.admit(&mut alert, 300_000));
            }
        }
        assert_eq!(dedup.len(), 4);
        let mut restored = Dedup::default();
        restored.restore(dedup.snapshot(|rule, key| crate::shard::shard_of((rule, key))));
        assert_eq!(restored.len(), 4);
        let mut again = sample();
        again.key = "a".into();
        again.rule = "r1".into();
        again.time += 1;
        assert!(!restored.admit(&mut again, 300_000), "a restored cooldown still suppresses");
        dedup.forget_before(sample().time + 300_001, 300_000);
        assert!(dedup.is_empty());
    }
}
