//! Anomaly detectors: pure structs, no I/O. `rules` compiles the config (including the seed's
//! `alerts.conditions`) into the rules each detector operator applies.

pub mod metric;
pub mod pattern;
pub mod rare_sequence;
pub mod rules;
pub mod threshold;
pub mod window_rules;
pub mod zscore;
