//! The commands, one file each, each owning its arguments; what several of them share (loading a
//! config, printing a line, the stop signal) is here.
//!
//! | file | command |
//! |---|---|
//! | `run.rs` | `rtsa run`: a pipeline until its input ends or a signal |
//! | `check.rs` | `rtsa check`: validate a config, print its pipeline |
//! | `generate.rs` | `rtsa generate`: synthetic events as JSON lines |
//! | `bench.rs` | `rtsa bench`: throughput and alert latency |
//! | `cluster.rs` | `rtsa cluster`: P local processes as one cluster |
//! | `produce.rs` | `rtsa produce`: events into a Kafka topic |
//! | `tail.rs` | `rtsa tail`: a metrics or alerts topic, readable |
//! | `topics.rs` | `rtsa topics create`: the topics of a config |

pub mod bench;
pub mod check;
pub mod cluster;
pub mod generate;
pub mod produce;
pub mod run;
pub mod tail;
pub mod top;
pub mod topics;

use crate::config::{self, Config};
use crate::error::Error;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Prints a line on stdout; a closed pipe (`rtsa check … | head`) is not an error.
pub fn print_line(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}").and_then(|_| out.flush());
}

/// A flag set by SIGINT/SIGTERM, for commands that run until stopped.
pub fn stop_flag() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let on_signal = flag.clone();
    if let Err(e) = ctrlc::set_handler(move || on_signal.store(true, Ordering::SeqCst)) {
        tracing::warn!(error = %e, "cannot install the signal handler");
    }
    flag
}

/// Loads a config file, or the embedded default when `path` is `None` (both with `RTSA__*`
/// overrides from the environment).
pub fn load_config(path: Option<&Path>) -> Result<Config, Error> {
    match path {
        None => config::load_default(std::env::vars())
            .map_err(|errors| Error::Config { origin: "(the embedded default)".to_owned(), errors }),
        Some(path) => {
            config::load_file(path).map_err(|errors| Error::Config { origin: path.display().to_string(), errors })
        }
    }
}

/// The `kafka:` section of a config (the embedded default's without one, with `RTSA__KAFKA__*`
/// overrides either way) with `brokers` as its bootstrap servers: what `produce` and `tail`
/// connect with, security settings included.
pub fn kafka_section(config: Option<&Path>, brokers: &str) -> Result<crate::config::KafkaConfig, Error> {
    let mut kafka = load_config(config)?.kafka;
    kafka.bootstrap_servers = brokers.to_owned();
    Ok(kafka)
}
