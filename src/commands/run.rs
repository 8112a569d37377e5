//! `rtsa run`: runs the pipeline of a config (the embedded default without one) until a bounded
//! input ends or SIGINT/SIGTERM, with a status line every `engine.status_interval` and a summary
//! at the end.

use super::load_config;
use crate::error::Error;
use crate::run::{ClusterOptions, Output, RunOptions};
use dataflows::control::{Counters, RunControl, wall_clock_ms};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

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
    /// With checkpoints on: delete the pipeline's checkpoint and start over. (Process 0 deletes
    /// it; for several processes use `rtsa cluster --fresh`, which deletes it before any starts.)
    #[arg(long)]
    pub fresh: bool,
}

/// What a stop that ran out of time leaves behind, for its last words.
fn unfinished(control: &RunControl, timeout: Duration) -> String {
    let c = &control.counters;
    let queued = Counters::get(&c.alerts_queued);
    format!(
        "the stop did not finish within {} (engine.shutdown_timeout): {} events read; {} metrics records, {} dead letters and {} alerts written; {}windows still open and records not yet written are lost",
        crate::config::Millis(timeout.as_millis() as u64),
        Counters::get(&c.events_in),
        Counters::get(&c.metrics_records),
        Counters::get(&c.dead_letters),
        Counters::get(&c.alerts),
        if queued > 0 { format!("{queued} alerts still queued for delivery, ") } else { String::new() },
    )
}

/// A signal handler: the first SIGINT/SIGTERM drains, and the process exits 1 if that takes
/// longer than `shutdown_timeout`; one more signal a second later exits at once.
fn on_signals(control: Arc<RunControl>, shutdown_timeout: Duration, checkpoints: bool) -> Result<(), Error> {
    let first_signal = std::sync::Mutex::new(None::<Instant>);
    ctrlc::set_handler(move || {
        let mut first = first_signal.lock().unwrap_or_else(|p| p.into_inner());
        // A signal repeated within a second (a terminal and a supervisor both sending one) is the same request.
        if first.is_some_and(|at| at.elapsed() < Duration::from_secs(1)) {
            return;
        }
        if first.is_some() {
            eprintln!("rtsa: second interrupt, exiting now");
            std::process::exit(130);
        }
        *first = Some(Instant::now());
        if checkpoints {
            eprintln!("rtsa: stopping: taking a last checkpoint (Ctrl-C again to exit at once)");
        } else {
            eprintln!("rtsa: stopping: draining, flushing open windows (Ctrl-C again to exit at once)");
        }
        control.request_stop();
        let watched = control.clone();
        std::thread::spawn(move || {
            std::thread::sleep(shutdown_timeout);
            eprintln!("rtsa: error: {}", unfinished(&watched, shutdown_timeout));
            std::process::exit(1);
        });
    })
    .map_err(|e| Error::Run(format!("cannot install the signal handler: {e}")))
}

/// Runs `rtsa run`.
pub fn run(args: RunArgs) -> Result<ExitCode, Error> {
    let config = load_config(args.config.as_deref())?;
    let cluster = match (args.process, args.processes, args.hostfile) {
        (Some(process), Some(processes), Some(hostfile)) => Some(ClusterOptions { process, processes, hostfile }),
        _ => None,
    };
    let options = RunOptions { workers: usize::from(args.workers), cluster, fresh: args.fresh };
    let control = Arc::new(RunControl::default());
    let checkpoints = config.checkpoint.store != crate::config::CheckpointStoreKind::None;
    on_signals(control.clone(), config.pipeline.engine.shutdown_timeout.as_duration(), checkpoints)?;
    if args.config.is_none() {
        eprintln!(
            "rtsa: running the embedded default: generator → 4 aggregations → console and ./rtsa-out/*.jsonl (Ctrl-C to stop)"
        );
    }
    // One start time for the generator in every worker of this process.
    let source: Arc<dyn dataflows::source::Source> = Arc::from(crate::sources::open(&config, wall_clock_ms())?);
    let interval = config.pipeline.engine.status_interval.as_duration();
    let (stop_status, status_stopped) = std::sync::mpsc::channel::<()>();
    let status = (!interval.is_zero()).then(|| {
        let control = control.clone();
        std::thread::spawn(move || crate::status::report_every(interval, control, status_stopped))
    });
    let process = options.cluster.as_ref().map_or(0, |c| c.process);
    let (server, live) = crate::http::serve(&config, process, &control)?.unzip();
    let result = crate::run::run(Arc::new(config), &options, source, Output::Configured, control.clone(), live);
    drop(server);
    drop(stop_status);
    if let Some(status) = status {
        let _ = status.join();
    }
    let summary = result?;
    let c = &control.counters;
    let events = Counters::get(&c.events_in);
    let seconds = summary.elapsed.as_secs_f64();
    let checkpointed = if checkpoints {
        format!(
            "; {} checkpoints ({} failed, {} store retries)",
            Counters::get(&c.checkpoints),
            Counters::get(&c.checkpoint_failures),
            Counters::get(&c.checkpoint_retries)
        )
    } else {
        String::new()
    };
    eprintln!(
        "rtsa: done: {events} events in {seconds:.2} s ({:.0} events/s), {} metrics records, {} dead letters ({} late, {} invalid), {} alerts ({} undelivered){checkpointed}",
        events as f64 / seconds.max(1e-9),
        Counters::get(&c.metrics_records),
        Counters::get(&c.dead_letters),
        Counters::get(&c.late_events),
        Counters::get(&c.invalid_events),
        Counters::get(&c.alerts),
        Counters::get(&c.alerts_undelivered),
    );
    Ok(ExitCode::SUCCESS)
}
