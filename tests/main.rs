//! One integration-test binary with a module per area (as ripgrep does).

mod alerts;
mod checkpoints;
mod cli;
mod cluster;
mod config_files;
mod engine;
mod generative;
mod grafana;
mod http;
mod influxdb;
mod kafka;
mod kafka_security;
mod redis_security;
mod reference;
mod util;
