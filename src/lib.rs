//! rtsa: a real-time streaming analytics engine on timely and differential dataflow.
//!
//! Events (CONTRACT section 2) are read from partitions of a source, given event time and
//! judged on time or late per partition, aggregated into tumbling, sliding and session windows,
//! and written as metrics records; invalid and late inputs go to a dead-letter sink. See
//! `docs/architecture.md` for the design and its reasons.

pub mod alerts;
pub mod bench;
pub mod cli;
pub mod commands;
pub mod config;
pub mod control;
pub mod dataflows;
pub mod detect;
pub mod event;
pub mod kafka;
pub mod operators;
pub mod record;
pub mod run;
pub mod sinks;
pub mod sources;
pub mod stats;
pub mod status;
pub mod window;
