//! Timely and differential operators, one per file, each an extension trait or a builder function.

pub mod alert_dedup;
pub mod batch_sink;
pub mod event_alerts;
pub mod event_source;
pub mod pattern_alerts;
pub mod rare_sequences;
pub mod session_windows;
pub mod stash;
pub mod window_alerts;
pub mod window_partials;
pub mod window_results;

/// The hash that routes records between workers (exchange pacts): FxHash, fixed for a build.
pub fn route_hash(value: impl std::hash::Hash) -> u64 {
    use std::hash::Hasher;
    let mut hasher = rustc_hash::FxHasher::default();
    value.hash(&mut hasher);
    hasher.finish()
}
