//! Checkpoints in Redis (CONTRACT 7): the manifest, the key layout, the config fingerprint that
//! a resumed run must match, and what each worker of a resumed run loads. The writing and the
//! reading are in [`redis`]; the protocol that takes a checkpoint is the dataflow's
//! (`dataflows::operators::checkpoint_gate`).
//!
//! Key layout (every key carries the hash tag `{name}`, so one pipeline's keys share a slot):
//!
//! | key | type | holds |
//! |---|---|---|
//! | `{name}:checkpoint:manifest` | string | the newest complete checkpoint's [`Manifest`] (JSON) |
//! | `{name}:checkpoint:E:C:worker:W` | string | worker W's [`WorkerPart`]: partitions, sink positions |
//! | `{name}:checkpoint:E:C:shard:S` | hash | field W: worker W's state of key shard S (postcard) |
//!
//! E is the execution (one more than the manifest's at start: a worker of a run that died
//! during its first checkpoint can never make a later run's checkpoint look complete), C the
//! checkpoint time.

pub mod redis;

use crate::config::Config;
use dataflows::checkpoint::SinkPositions;
use dataflows::operators::event_source::PartitionSnapshot;
use serde::{Deserialize, Serialize};

/// The version of the layout and the manifest.
pub const FORMAT: u32 = 3;

/// The newest complete checkpoint of a pipeline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Layout version ([`FORMAT`]).
    pub format: u32,
    /// The execution that wrote it.
    pub execution: u64,
    /// The checkpoint time C.
    pub time: u64,
    /// Workers (all processes) that wrote parts, `0..workers`.
    pub workers: usize,
    /// Key shards.
    pub shards: u32,
    /// Source partitions recorded.
    pub partitions: usize,
    /// Open windows and sessions in the checkpoint.
    pub open_windows: usize,
    /// Bytes written for it.
    pub bytes: u64,
    /// When it was completed (wall clock, ms).
    pub completed_at: u64,
    /// Whether the run had read all its input and written everything: nothing is left to do.
    #[serde(default)]
    pub finished: bool,
    /// What must not change for a checkpoint to be resumed (see [`fingerprint`]).
    pub fingerprint: serde_json::Value,
    /// Set on the origin of a fresh run (time 0, no parts): what its sinks held before it wrote
    /// anything. A run killed before its first checkpoint is resumed from here: its input read
    /// from the start again, its output cut back to this (JSONL) or read back and skipped
    /// (Kafka), so what it wrote before the kill is not written twice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<dataflows::checkpoint::SinkPositions>,
}

impl Manifest {
    /// A manifest of `execution` with no checkpoint in it (time 0, no parts).
    pub fn empty(execution: u64, fingerprint: &serde_json::Value) -> Manifest {
        Manifest {
            format: FORMAT,
            execution,
            time: 0,
            workers: 0,
            shards: dataflows::shard::SHARDS,
            partitions: 0,
            open_windows: 0,
            bytes: 0,
            completed_at: 0,
            finished: false,
            fingerprint: fingerprint.clone(),
            origin: None,
        }
    }
}

/// One worker's part of a checkpoint: what is not keyed state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkerPart {
    /// Its partitions' positions and watermarks.
    pub partitions: Vec<PartitionSnapshot>,
    /// Its sinks' positions (the writing worker only).
    pub sinks: Option<SinkPositions>,
    /// The shards it wrote state for.
    pub shards: Vec<u32>,
    /// Its open windows and sessions (for the manifest and the resume message).
    #[serde(default)]
    pub open_windows: usize,
}

/// The keys of one pipeline's checkpoints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// The keys of pipeline `name`.
    pub fn new(name: &str) -> Keys {
        Keys { prefix: format!("{{{name}}}:checkpoint") }
    }
    /// The manifest.
    pub fn manifest(&self) -> String {
        format!("{}:manifest", self.prefix)
    }
    /// A worker's part.
    pub fn worker(&self, execution: u64, time: u64, worker: usize) -> String {
        format!("{}:{execution}:{time}:worker:{worker}", self.prefix)
    }
    /// A key shard's state (a hash by worker).
    pub fn shard(&self, execution: u64, time: u64, shard: u32) -> String {
        format!("{}:{execution}:{time}:shard:{shard}", self.prefix)
    }
    /// Every key of one execution (a `SCAN MATCH` pattern).
    pub fn execution_pattern(&self, execution: u64) -> String {
        format!("{}:{execution}:*", self.prefix)
    }
    /// Every key of the pipeline (a `SCAN MATCH` pattern).
    pub fn all_pattern(&self) -> String {
        format!("{}:*", self.prefix)
    }
}

/// What a checkpoint depends on: the aggregations, the detector rules and alert settings, the
/// epoch and out-of-orderness (event time), the key shard count and the sinks (their positions
/// are recorded in order). A checkpoint whose fingerprint differs is refused.
pub fn fingerprint(config: &Config) -> serde_json::Value {
    let p = &config.pipeline;
    let sinks = |list: &[crate::config::SinkConfig]| list.iter().map(|s| s.kind().to_string()).collect::<Vec<_>>();
    serde_json::json!({
        "aggregations": p.aggregations,
        "rules": { "anomalies": p.anomalies, "alerts": p.alerts },
        "event_time": { "epoch": p.watermark.epoch, "max_out_of_orderness": p.watermark.max_out_of_orderness },
        "shards": dataflows::shard::SHARDS,
        "sinks": {
            "metrics": sinks(&config.sinks.metrics),
            "alerts": sinks(&config.sinks.alerts),
            "dead_letter": sinks(std::slice::from_ref(&config.sinks.dead_letter)),
        },
    })
}

/// The parts of two fingerprints that differ (by top-level name), for the refusal message.
pub fn differences(recorded: &serde_json::Value, now: &serde_json::Value) -> Vec<String> {
    let names: std::collections::BTreeSet<&String> =
        [recorded, now].iter().filter_map(|v| v.as_object()).flat_map(|m| m.keys()).collect();
    names.into_iter().filter(|name| recorded.get(name.as_str()) != now.get(name.as_str())).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataflows::checkpoint::StateSnapshot;

    #[test]
    fn a_shard_blob_survives_postcard_as_the_store_writes_it() {
        use dataflows::alerts::dedup::LastEmitted;
        use dataflows::operators::session_windows::OpenSession;
        use dataflows::operators::window_partials::PaneEntry;
        use dataflows::stats::PartialStats;
        let mut stats = PartialStats::default();
        for (i, latency) in [12.5, 250.0, 7_000.0].into_iter().enumerate() {
            stats.add(i == 1, Some(latency), Some(i as f64 * 1.5), Some(&format!("u{i}").as_str().into()));
        }
        let mut state = StateSnapshot::default();
        let pane = PaneEntry { aggregation: 2, at: 60_000, extra: false, key: "u1".into(), partial: stats.clone() };
        state.panes.push(7, pane);
        let session = OpenSession { first: 5, last: 900, stats, listed_at: 1_000 };
        state.sessions.push(7, ((3, "u1".into()), vec![session]));
        state.event_dedup.push(7, (("burst".into(), "login".into()), LastEmitted { time: 42, suppressed: 3 }));
        state.transitions.push(7, ("login".into(), "pay".into(), 9));
        let blob = postcard::to_stdvec(&state).unwrap();
        assert_eq!(postcard::from_bytes::<StateSnapshot>(&blob).unwrap(), state);
        assert!(blob.len() < serde_json::to_string(&state).unwrap().len());
    }

    #[test]
    fn keys_share_one_hash_tag() {
        let keys = Keys::new("orders");
        assert_eq!(keys.manifest(), "{orders}:checkpoint:manifest");
        assert_eq!(keys.worker(3, 1_764_230_460_000, 1), "{orders}:checkpoint:3:1764230460000:worker:1");
        assert_eq!(keys.shard(3, 60_000, 255), "{orders}:checkpoint:3:60000:shard:255");
        assert_eq!(keys.execution_pattern(3), "{orders}:checkpoint:3:*");
    }

    #[test]
    fn a_changed_aggregation_or_rule_changes_the_fingerprint_and_is_named() {
        let config = Config::embedded_default();
        let mut other = config.clone();
        other.pipeline.aggregations[0].name = "renamed".into();
        let (a, b) = (fingerprint(&config), fingerprint(&other));
        assert_eq!(differences(&a, &a), Vec::<String>::new());
        assert_eq!(differences(&a, &b), vec!["aggregations".to_owned()]);
        let mut rules = config.clone();
        rules.pipeline.alerts.cooldown = crate::config::Millis(1);
        assert_eq!(differences(&a, &fingerprint(&rules)), vec!["rules".to_owned()]);
        // What a restart may change: the source, workers, sinks' targets, the interval.
        let mut fine = config.clone();
        fine.checkpoint.interval = crate::config::Millis(1_000);
        fine.pipeline.watermark.idle_timeout = crate::config::Millis(1);
        assert_eq!(fingerprint(&fine), a);
    }
}
