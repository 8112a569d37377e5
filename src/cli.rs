//! The command line: clap commands and their mapping to exit codes (0 success, 1 runtime
//! failure, 2 bad usage or invalid config), with one readable error line per problem.

use crate::commands::cluster::{self, ClusterArgs};
use crate::commands::produce::{self, ProduceArgs};
use crate::commands::tail::{self, TailArgs};
use crate::commands::topics;
use crate::config::{self, Config, GeneratorConfig};
use crate::control::RunControl;
use crate::run::{self, ClusterOptions, Input, Output, RunError, RunOptions};
use crate::sources::generator::Generator;
use clap::{Parser, Subcommand};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

/// rtsa: real-time streaming analytics on timely and differential dataflow.
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
    Run(RunArgs),
    /// Validate a config and print the pipeline it would build.
    Check {
        /// The YAML config.
        #[arg(long)]
        config: PathBuf,
    },
    /// Write synthetic events as JSON lines to stdout (deterministic for a seed).
    Generate(GenerateArgs),
    /// Measure throughput: pre-generate events in memory, run the pipeline, print one JSON line.
    Bench(BenchArgs),
    /// Start P local `rtsa run` processes wired into one cluster.
    Cluster(ClusterArgs),
    /// Send generated events (or a JSONL file) to a Kafka topic.
    Produce(ProduceArgs),
    /// Print the records of a metrics or alerts topic.
    Tail(TailArgs),
    /// Manage the Kafka topics of a config.
    Topics {
        /// What to do.
        #[command(subcommand)]
        command: TopicsCommand,
    },
}

/// `rtsa topics …`.
#[derive(Debug, Subcommand)]
pub enum TopicsCommand {
    /// Create the events, metrics, alerts and dead-letter topics (existing ones are left alone).
    Create {
        /// Brokers, `host:port[,host:port…]` (overrides the config's kafka.bootstrap_servers).
        #[arg(long)]
        brokers: String,
        /// The config whose topics and partition counts to use (default: the defaults).
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

/// `rtsa run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The YAML config; without it, the embedded default runs.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Worker threads in this process.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub workers: u16,
    /// This process's index in a cluster (with --processes and --hostfile).
    #[arg(long, requires_all = ["processes", "hostfile"])]
    pub process: Option<usize>,
    /// Number of processes in the cluster.
    #[arg(long, requires_all = ["process", "hostfile"])]
    pub processes: Option<usize>,
    /// File of host:port lines, one per process.
    #[arg(long, requires_all = ["process", "processes"])]
    pub hostfile: Option<PathBuf>,
}

/// The generator's flags, shared by `rtsa generate` and `rtsa produce`.
#[derive(Debug, clap::Args)]
pub struct GenerateArgs {
    /// Number of events (0 = endless).
    #[arg(long, default_value_t = 10_000)]
    pub count: u64,
    /// Events per second of wall time (0 = as fast as possible).
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Seed: the same seed gives the same events.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Event time of the first event, Unix ms (default: now).
    #[arg(long)]
    pub start_ms: Option<u64>,
    /// Events per second of event time (default: --rate, or 10000 when --rate is 0).
    #[arg(long)]
    pub event_time_rate: Option<u64>,
    /// Number of distinct users.
    #[arg(long, default_value_t = 5_000)]
    pub users: u64,
    /// Inject the known incidents (an error burst, a brute-force login, a latency spike, a very
    /// slow call, a never-seen transition) at known times after the start.
    #[arg(long)]
    pub incidents: bool,
}

impl GenerateArgs {
    /// A one-partition generator for these flags.
    pub fn generator(&self) -> Generator {
        let config = GeneratorConfig {
            count: self.count,
            rate: self.rate,
            seed: self.seed,
            start_ms: self.start_ms,
            event_time_rate: self.event_time_rate,
            users: self.users.max(1),
            partitions: 1,
            incidents: self.incidents,
            ..GeneratorConfig::default()
        };
        Generator::new(&config, self.start_ms.unwrap_or_else(crate::sinks::wall_clock_ms), 0, 1)
    }
}

/// `rtsa bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Events to generate and process.
    #[arg(long, default_value_t = 1_000_000)]
    pub events: u64,
    /// Worker threads.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..))]
    pub workers: u16,
    /// A config whose aggregations to run (default: the embedded default's).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Partitions the events are spread over.
    #[arg(long, default_value_t = 4)]
    pub partitions: u32,
    /// Generator seed.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Events per second of event time in the generated data.
    #[arg(long, default_value_t = 10_000)]
    pub event_time_rate: u64,
    /// Measure alert latency instead of throughput: a live generator at --rate events/s for
    /// --seconds, a single-event rule and a window rule; reports event-in → alert-out and
    /// watermark-passes-window-end → alert-out percentiles.
    #[arg(long)]
    pub alert_latency: bool,
    /// Events per second of the live generator (with --alert-latency).
    #[arg(long, default_value_t = 100_000)]
    pub rate: u64,
    /// How long to run (with --alert-latency); the default crosses a minute boundary, where the
    /// per-minute windows of the embedded default close together with the benchmark's own.
    #[arg(long, default_value_t = 65)]
    pub seconds: u64,
}

/// Parses the command line, runs the command and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    match cli.command {
        Command::Run(args) => run_command(args),
        Command::Check { config } => crate::commands::check::check_command(&config),
        Command::Generate(args) => generate_command(args),
        Command::Bench(args) => crate::bench::bench_command(args),
        Command::Cluster(args) => {
            let stop = stop_flag();
            let dir = std::env::temp_dir();
            match cluster::cluster(&args, stop, &dir) {
                Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
                Err(e) => runtime_failure(&e),
            }
        }
        Command::Produce(args) => match produce::produce(&args) {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => runtime_failure(&e),
        },
        Command::Tail(args) => match tail::tail(&args, stop_flag()) {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => runtime_failure(&e),
        },
        Command::Topics { command: TopicsCommand::Create { brokers, config } } => {
            let mut config = match load_config(config.as_deref()) {
                Ok(config) => config,
                Err(code) => return code,
            };
            config.kafka.bootstrap_servers = brokers;
            let topics = topics::topics_of(&config);
            match topics::create_topics(&config, &topics) {
                Ok(lines) => {
                    lines.iter().for_each(|l| print_line(l));
                    ExitCode::SUCCESS
                }
                Err(e) => runtime_failure(&e),
            }
        }
    }
}

/// Prints a line on stdout; a closed pipe (`rtsa check … | head`) is not an error.
pub fn print_line(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}").and_then(|_| out.flush());
}

fn runtime_failure(message: &str) -> ExitCode {
    eprintln!("rtsa: error: {message}");
    ExitCode::from(1)
}

/// A flag set by SIGINT/SIGTERM, for commands that run until stopped.
fn stop_flag() -> Arc<std::sync::atomic::AtomicBool> {
    let flag = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let on_signal = flag.clone();
    if let Err(e) = ctrlc::set_handler(move || on_signal.store(true, std::sync::atomic::Ordering::SeqCst)) {
        tracing::warn!(error = %e, "cannot install the signal handler");
    }
    flag
}

/// Prints a config's problems, one per line, and returns exit code 2.
pub fn config_failure(path: &Path, errors: &config::ConfigErrors) -> ExitCode {
    eprintln!("rtsa: invalid config {}:", path.display());
    for problem in &errors.0 {
        eprintln!("error: {problem}");
    }
    ExitCode::from(2)
}

/// Loads a config file, or the embedded default when `path` is `None` (both with `RTSA__*`
/// overrides from the environment).
pub fn load_config(path: Option<&Path>) -> Result<Config, ExitCode> {
    match path {
        None => config::load_default(std::env::vars())
            .map_err(|errors| config_failure(Path::new("(the embedded default)"), &errors)),
        Some(path) => config::load_file(path).map_err(|errors| config_failure(path, &errors)),
    }
}

fn run_command(args: RunArgs) -> ExitCode {
    let config = match load_config(args.config.as_deref()) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let cluster = match (args.process, args.processes, args.hostfile) {
        (Some(process), Some(processes), Some(hostfile)) => Some(ClusterOptions { process, processes, hostfile }),
        _ => None,
    };
    let options = RunOptions { workers: usize::from(args.workers), cluster };
    let control = Arc::new(RunControl::default());
    let on_signal = control.clone();
    let first_signal = std::sync::Mutex::new(None::<std::time::Instant>);
    if let Err(e) = ctrlc::set_handler(move || {
        let mut first = first_signal.lock().unwrap_or_else(|p| p.into_inner());
        // A signal repeated within a second (a terminal and a supervisor both sending one) is the same request.
        if first.is_some_and(|at| at.elapsed() < std::time::Duration::from_secs(1)) {
            return;
        }
        if first.is_some() {
            eprintln!("rtsa: second interrupt, exiting now");
            std::process::exit(130);
        }
        *first = Some(std::time::Instant::now());
        eprintln!("rtsa: stopping: draining, flushing open windows (Ctrl-C again to exit at once)");
        on_signal.request_stop();
    }) {
        eprintln!("rtsa: error: cannot install the signal handler: {e}");
        return ExitCode::from(1);
    }
    if args.config.is_none() {
        eprintln!(
            "rtsa: running the embedded default: generator → 4 aggregations → console and ./rtsa-out/*.jsonl (Ctrl-C to stop)"
        );
    }
    let interval = config.engine.status_interval.as_duration();
    let (stop_status, status_stopped) = std::sync::mpsc::channel::<()>();
    let status = (!interval.is_zero()).then(|| {
        let control = control.clone();
        std::thread::spawn(move || crate::status::report_every(interval, control, status_stopped))
    });
    let result = run::run(Arc::new(config), &options, Input::Configured, Output::Configured, control.clone());
    drop(stop_status);
    if let Some(status) = status {
        let _ = status.join();
    }
    match result {
        Ok(summary) => {
            let c = &control.counters;
            let events = crate::control::Counters::get(&c.events_in);
            let seconds = summary.elapsed.as_secs_f64();
            eprintln!(
                "rtsa: done: {events} events in {seconds:.2} s ({:.0} events/s), {} metrics records, {} dead letters ({} late, {} invalid), {} alerts ({} undelivered)",
                events as f64 / seconds.max(1e-9),
                crate::control::Counters::get(&c.metrics_records),
                crate::control::Counters::get(&c.dead_letters),
                crate::control::Counters::get(&c.late_events),
                crate::control::Counters::get(&c.invalid_events),
                crate::control::Counters::get(&c.alerts),
                crate::control::Counters::get(&c.alerts_undelivered),
            );
            ExitCode::SUCCESS
        }
        Err(RunError::Usage(message)) => {
            eprintln!("rtsa: error: {message}");
            ExitCode::from(2)
        }
        Err(RunError::Runtime(message)) => {
            eprintln!("rtsa: error: {message}");
            ExitCode::from(1)
        }
    }
}

fn generate_command(args: GenerateArgs) -> ExitCode {
    let mut generator = args.generator();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut line = Vec::new();
    let started = std::time::Instant::now();
    let mut written = 0u64;
    while generator.next_json(&mut line) {
        if args.rate > 0 {
            let due = std::time::Duration::from_secs_f64(written as f64 / args.rate as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                let _ = out.flush();
                std::thread::sleep(wait);
            }
        }
        line.push(b'\n');
        if let Err(e) = out.write_all(&line) {
            return write_failure(e);
        }
        written += 1;
    }
    match out.flush() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => write_failure(e),
    }
}

fn write_failure(e: std::io::Error) -> ExitCode {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        return ExitCode::SUCCESS;
    }
    eprintln!("rtsa: error: writing to stdout: {e}");
    ExitCode::from(1)
}
