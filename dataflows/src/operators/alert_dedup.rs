//! Deduplication of window, pattern and rare-sequence alerts: per (rule, key), in event-time
//! order (each time's alerts sorted once the frontier has passed it), so the same input yields
//! the same alerts, with the same `suppressed` counts, whatever the number of workers.

use crate::alerts::Alert;
use crate::alerts::dedup::Dedup;
use crate::checkpoint::Hooks;
use crate::detect::rules::Rules;
use crate::operators::stash::TimeStash;
use std::sync::Arc;
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;

/// Extension trait: ordered deduplication.
pub trait DedupAlerts<'s> {
    /// Suppresses alerts within their rule's cooldown of the last one emitted for the same key;
    /// the cooldowns are checkpointed through `hooks` (and restored from them).
    fn dedup_alerts(self, rules: Arc<Rules>, hooks: &Hooks) -> StreamVec<'s, u64, Alert>;
}

impl<'s> DedupAlerts<'s> for StreamVec<'s, u64, Alert> {
    fn dedup_alerts(self, rules: Arc<Rules>, hooks: &Hooks) -> StreamVec<'s, u64, Alert> {
        let route = |alert: &Alert| crate::shard::exchange_by((&alert.rule, &alert.key));
        let mut restored = Dedup::default();
        restored.restore(hooks.restored(|s| &mut s.sequence_dedup));
        let dedup = hooks.share(restored, |dedup, checkpoint| checkpoint.state.sequence_dedup.extend(dedup.by_shard()));
        self.unary_frontier(Exchange::new(route), "DedupAlerts", move |_cap, _info| {
            let mut stash: TimeStash<Alert> = TimeStash::default();
            let mut flushed = 0u64;
            move |(input, frontier), output| {
                let mut dedup = dedup.borrow_mut();
                input.for_each_stamp(|cap, batches| stash.push(&cap, batches));
                while let Some((cap, mut alerts)) = stash.pop_ready(frontier) {
                    alerts.sort_unstable();
                    let mut session = output.session(&cap);
                    for mut alert in alerts {
                        let cooldown = rules.cooldown(&alert.rule);
                        if dedup.admit(&mut alert, cooldown) {
                            session.give(alert);
                        }
                    }
                    flushed += 1;
                    if flushed.is_multiple_of(1_000) {
                        dedup.forget_before(*cap.time(), rules.max_cooldown());
                    }
                }
            }
        })
    }
}
