//! rtsa: the connectors (sources and sinks), the commands and the configuration around the
//! dataflows of the [`dataflows`] crate, which hold the timely graph and the pure
//! cores. `main.rs` only parses the command line and maps the outcome to an exit code.

pub mod checkpoint;
pub mod cli;
pub mod commands;
pub mod config;
pub mod error;
pub mod http;
pub mod kafka;
pub mod run;
pub mod sinks;
pub mod sources;
pub mod status;
