//! The dataflows of rtsa: the timely graph of a pipeline, its operators, and the pure
//! cores they use — event time and windows, statistics, detectors, alert records, deduplication
//! and routing — with the traits that connectors implement ([`source::Source`],
//! [`sink::Sink`]). No Kafka, Redis or HTTP code lives here: the `rtsa` package holds the
//! connectors, the commands and the binary, so the layering is a compile error, not a convention.
//!
//! Events (CONTRACT section 2) are read from partitions of a source, given event time and judged
//! on time or late per partition, aggregated into tumbling, sliding and session windows, and
//! written as metrics records; invalid and late inputs go to a dead-letter sink. See
//! `docs/architecture.md` for the design and its reasons.

pub mod admission;
pub mod alerts;
pub mod checkpoint;
pub mod chunks;
pub mod control;
pub mod detect;
pub mod event;
pub mod feed;
pub mod memory;
pub mod operators;
pub mod pipeline;
pub mod record;
pub mod shard;
pub mod sink;
pub mod source;
pub mod spec;
pub mod stats;
pub mod window;
