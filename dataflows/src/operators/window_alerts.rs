//! Window rules (threshold, z-score) on final window records, exchanged by (aggregation, key),
//! judged and deduplicated per (rule, key) as they arrive ([`WindowJudge`]). A key's records come
//! from one worker (the one that merges the key's window results) in the order of their window ends, so
//! histories, cooldowns and results are the same for any number of workers — without waiting
//! for another frontier, which keeps window alerts within milliseconds of the watermark.

use crate::alerts::Alert;
use crate::checkpoint::Hooks;
use crate::detect::rules::Rules;
use crate::detect::window_rules::WindowJudge;
use crate::record::WindowRecord;
use crate::spec::AggregationConfig;
use std::sync::Arc;
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;

/// Extension trait: window alerts.
pub trait WindowAlerts<'s> {
    /// Applies the window rules to final window records; histories and cooldowns are
    /// checkpointed through `hooks` (and restored from them).
    fn window_alerts(
        self,
        rules: Arc<Rules>,
        aggregations: Arc<Vec<AggregationConfig>>,
        hooks: &Hooks,
    ) -> StreamVec<'s, u64, Alert>;
}

impl<'s> WindowAlerts<'s> for StreamVec<'s, u64, WindowRecord> {
    fn window_alerts(
        self,
        rules: Arc<Rules>,
        aggregations: Arc<Vec<AggregationConfig>>,
        hooks: &Hooks,
    ) -> StreamVec<'s, u64, Alert> {
        let route = |(key, _): &WindowRecord| crate::shard::exchange_by((key.aggregation, &key.key));
        let mut restored = WindowJudge::new(rules, aggregations);
        restored.restore(hooks.restored(|s| &mut s.window_rules));
        let judge = hooks.share(restored, |judge, checkpoint| {
            let snapshot = judge.snapshot();
            checkpoint.state.window_rules.histories.extend(snapshot.histories);
            checkpoint.state.window_rules.dedup.extend(snapshot.dedup);
        });
        self.unary(Exchange::new(route), "WindowAlerts", move |_cap, _info| {
            move |input, output| {
                let mut judge = judge.borrow_mut();
                input.for_each_stamp(|cap, batches| {
                    let mut records: Vec<WindowRecord> = batches.flat_map(|b| b.drain(..)).collect();
                    output.session(&cap).give_iterator(judge.judge(&mut records).into_iter());
                });
            }
        })
    }
}
