//! Timely operators, one per file, each an extension trait or a builder function.

pub mod alert_dedup;
pub mod batch_sink;
pub mod checkpoint_gate;
pub mod chunked_source;
pub mod event_alerts;
pub mod event_source;
pub mod pattern_alerts;
pub mod rare_sequences;
pub mod session_windows;
pub mod stash;
pub mod window_alerts;
pub mod window_partials;
pub mod window_results;
