//! Pipelines: one file per pipeline, each building the dataflow graph of one worker.

pub mod metrics;
