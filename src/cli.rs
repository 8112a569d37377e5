//! The command line: clap parsing and dispatch only. Each command is a file in `commands/` that
//! owns its arguments; `main` prints the error a command returns and picks the exit code.

use crate::commands::{self, bench, check, cluster, generate, produce, run, tail, top, topics};
use crate::error::Error;
use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// rtsa: real-time streaming analytics on timely dataflow.
#[derive(Debug, Parser)]
#[command(name = "rtsa", version, about)]
pub struct Cli {
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the pipeline of a config (without one: the embedded default, until Ctrl-C).
    Run(run::RunArgs),
    /// Validate a config and print the pipeline it would build.
    Check(check::CheckArgs),
    /// Write synthetic events as JSON lines to stdout (deterministic for a seed).
    Generate(generate::GenerateArgs),
    /// Measure throughput: pre-generate events in memory, run the pipeline, print one JSON line.
    Bench(bench::BenchArgs),
    /// Start P local `rtsa run` processes wired into one cluster.
    Cluster(cluster::ClusterArgs),
    /// Send generated events (or a JSONL file) to a Kafka topic.
    Produce(produce::ProduceArgs),
    /// Print the records of a metrics or alerts topic.
    Tail(tail::TailArgs),
    /// Manage the Kafka topics of a config.
    Topics(topics::TopicsArgs),
    /// Watch a running engine's /metrics in the terminal, refreshed every second.
    Top(top::TopArgs),
}

/// Runs the command; the exit code on success (a cluster's worst process), the error otherwise.
pub fn dispatch(cli: Cli) -> Result<ExitCode, Error> {
    match cli.command {
        Command::Run(args) => run::run(args),
        Command::Check(args) => check::check(&args),
        Command::Generate(args) => generate::generate(&args),
        Command::Bench(args) => bench::bench(&args),
        Command::Cluster(args) => cluster::cluster(&args, commands::stop_flag(), &std::env::temp_dir()),
        Command::Produce(args) => produce::produce(&args).map(|_| ExitCode::SUCCESS),
        Command::Tail(args) => tail::tail(&args, commands::stop_flag()).map(|_| ExitCode::SUCCESS),
        Command::Topics(args) => topics::topics(&args),
        Command::Top(args) => top::top(&args, commands::stop_flag()).map(|_| ExitCode::SUCCESS),
    }
}
