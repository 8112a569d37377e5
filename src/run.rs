//! Running a pipeline: timely configuration from the command line (threads, process index,
//! hostfile), partition ownership (`partition % peers == worker`), sinks opened once on the
//! worker that writes them, and the worker loop.

use crate::config::{Config, ProgressMode};
use crate::error::Error;
use crate::sinks::Sinks;
use dataflows::alerts::Alert;
use dataflows::control::RunControl;
use dataflows::operators::batch_sink::BatchWriter;
use dataflows::pipeline::{self, PipelineIo};
use dataflows::source::{OwnedPartitions, Source};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How the workers of this process are wired.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterOptions {
    /// This process's index, `0..processes`.
    pub process: usize,
    /// Number of processes.
    pub processes: usize,
    /// File of `host:port` lines, one per process, in process order.
    pub hostfile: PathBuf,
}

/// Run-time knobs from the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunOptions {
    /// Worker threads in this process.
    pub workers: usize,
    /// Multi-process wiring, if any.
    pub cluster: Option<ClusterOptions>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions { workers: 1, cluster: None }
    }
}

/// Where the results go.
pub enum Output {
    /// The config's sinks (output topics are created first where missing).
    Configured,
    /// Only count records (benchmarks).
    Count,
    /// Count metrics and dead letters; alerts to this writer (latency benchmarks).
    CountWithAlerts(Box<dyn BatchWriter<Alert> + Send>),
}

/// What a finished run reports.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RunSummary {
    /// Wall time of the dataflow, from start to the last record written.
    pub elapsed: Duration,
}

/// Runs the metrics pipeline to completion (end of a bounded input, or a stop request).
pub fn run(
    config: Arc<Config>,
    options: &RunOptions,
    source: Arc<dyn Source>,
    output: Output,
    control: Arc<RunControl>,
) -> Result<RunSummary, Error> {
    let timely_config = timely_config(options, config.pipeline.engine.progress)?;
    let writes_here = options.cluster.as_ref().is_none_or(|c| c.process == 0);
    let sinks: Option<Writers> = match output {
        _ if !writes_here => None,
        Output::Count => Some(Writers::counting(&control)),
        Output::CountWithAlerts(alerts) => Some(Writers { alerts, ..Writers::counting(&control) }),
        Output::Configured => {
            crate::kafka::ensure_output_topics(&config)?;
            Some(Writers::of(crate::sinks::open_all(&config, &control)?))
        }
    };
    let writers = Arc::new(Mutex::new(sinks));
    let kind = source.kind();
    let partition_count = source.partition_count();

    let started = Instant::now();
    let worker_control = control.clone();
    let workers_here = options.workers.max(1);
    let guards = timely::execute(timely_config, move |worker| {
        let index = worker.index();
        if config.pipeline.engine.pin_workers {
            pin_worker(index, workers_here);
        }
        let peers = worker.peers();
        let owned: Vec<u32> = (0..partition_count).filter(|p| *p as usize % peers == index).collect();
        let partitions: OwnedPartitions = source.open(&owned, &[]).unwrap_or_else(|e| {
            worker_control.fail(format!("cannot open the source: {e}"));
            Vec::new()
        });
        let taken = if index == 0 { writers.lock().ok().and_then(|mut w| w.take()) } else { None };
        let writers = taken.unwrap_or_else(|| Writers::counting(&worker_control));
        let io = PipelineIo {
            kind,
            partitions,
            metrics: writers.metrics,
            dead_letters: writers.dead_letters,
            alerts: writers.alerts,
        };
        let control = worker_control.clone();
        worker.dataflow::<u64, _, _>(|scope| pipeline::build(scope, &config.pipeline, io, control));
        while worker.step_or_park(Some(Duration::from_millis(50))) {}
    })
    .map_err(|e| Error::Run(format!("cannot start the workers: {e}")))?;
    for result in guards.join() {
        result.map_err(|e| Error::Internal(format!("a worker failed: {e}")))?;
    }
    let elapsed = started.elapsed();
    match control.failure() {
        Some(failure) => Err(Error::Run(failure)),
        None => Ok(RunSummary { elapsed }),
    }
}

/// Runs the pipeline of a config from its own source.
pub fn run_configured(
    config: Arc<Config>,
    options: &RunOptions,
    output: Output,
    control: Arc<RunControl>,
) -> Result<RunSummary, Error> {
    // One start time for the generator in every worker of this process.
    let source = crate::sources::open(&config, dataflows::control::wall_clock_ms())?;
    run(config, options, Arc::from(source), output, control)
}

/// The writers of a run, handed to worker 0 (the others count what they receive: nothing).
struct Writers {
    metrics: Box<dyn BatchWriter<dataflows::record::WindowRecord> + Send>,
    dead_letters: Box<dyn BatchWriter<dataflows::record::DeadLetter> + Send>,
    alerts: Box<dyn BatchWriter<Alert> + Send>,
}

impl Writers {
    fn of(sinks: Sinks) -> Writers {
        Writers {
            metrics: Box::new(sinks.metrics),
            dead_letters: Box::new(sinks.dead_letters),
            alerts: Box::new(sinks.alerts),
        }
    }
    fn counting(control: &Arc<RunControl>) -> Writers {
        Writers::of(Sinks::counting(control))
    }
}

fn timely_config(options: &RunOptions, progress: ProgressMode) -> Result<timely::Config, Error> {
    let workers = options.workers.max(1);
    let Some(cluster) = &options.cluster else {
        let communication = if workers == 1 {
            timely::CommunicationConfig::Thread
        } else {
            timely::CommunicationConfig::Process(workers)
        };
        return Ok(timely::Config { communication, worker: worker_config(progress) });
    };
    if cluster.process >= cluster.processes {
        return Err(Error::Usage(format!(
            "--process {} must be below --processes {}",
            cluster.process, cluster.processes
        )));
    }
    let text = std::fs::read_to_string(&cluster.hostfile)
        .map_err(|e| Error::Usage(format!("cannot read hostfile {}: {e}", cluster.hostfile.display())))?;
    let addresses: Vec<String> = text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect();
    if addresses.len() < cluster.processes {
        return Err(Error::Usage(format!(
            "hostfile {} lists {} addresses, --processes is {}",
            cluster.hostfile.display(),
            addresses.len(),
            cluster.processes
        )));
    }
    Ok(timely::Config {
        communication: timely::CommunicationConfig::Cluster {
            threads: workers,
            process: cluster.process,
            addresses: addresses[..cluster.processes].to_vec(),
            report: false,
            zerocopy: false,
        },
        worker: worker_config(progress),
    })
}

/// By default workers send their progress after every step ("eager") rather than only when they
/// are the last holder of a timestamp ("demand"): when every worker flushes the same window slot,
/// demand mode lets each wait for the others to speak first, and the merge of that slot starts a
/// step or more late. The price is a progress message per step, small beside the data.
fn worker_config(mode: ProgressMode) -> timely::WorkerConfig {
    let mode = match mode {
        ProgressMode::Eager => timely::worker::ProgressMode::Eager,
        ProgressMode::Demand => timely::worker::ProgressMode::Demand,
    };
    timely::WorkerConfig::default().progress_mode(mode)
}

/// Pins the calling worker thread to core `index mod cores` (of the cores this process may use)
/// when the process has several workers and they fit on the cores. A single worker is left to
/// the scheduler: there is no other worker for it to take turns with, and two one-worker
/// engines on one machine would otherwise share the first core.
fn pin_worker(index: usize, workers: usize) {
    if workers < 2 {
        return;
    }
    let Some(cores) = core_affinity::get_core_ids().filter(|cores| !cores.is_empty()) else { return };
    if workers > cores.len() {
        tracing::debug!(workers, cores = cores.len(), "more workers than cores: not pinned");
        return;
    }
    if !core_affinity::set_for_current(cores[index % cores.len()]) {
        tracing::debug!(index, "could not pin the worker to a core");
    }
}
