//! Running a pipeline: timely configuration from the command line (threads, process index,
//! hostfile), partition ownership (`partition % peers == worker`), sinks opened once on the
//! worker that writes them, and the worker loop.

use crate::alerts::Alert;
use crate::config::{Config, ProgressMode};
use crate::control::RunControl;
use crate::dataflows::metrics::{self, PipelineIo};
use crate::operators::batch_sink::BatchWriter;
use crate::record::{DeadLetter, WindowRecord};
use crate::sinks::{CountingWriter, alert_writer, dead_letter_writer, metrics_writer};
use crate::sources::memory::{MemoryLines, MemoryPartition};
use crate::sources::{self, Partition, SourceKind};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use thiserror::Error;

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

/// Where the events come from.
#[derive(Clone)]
pub enum Input {
    /// The config's source.
    Configured,
    /// Pre-loaded partitions of JSON lines (benchmarks, tests).
    Memory(Vec<Arc<MemoryLines>>),
}

/// Where the results go.
pub enum Output {
    /// The config's sinks.
    Configured,
    /// Only count records (benchmarks).
    Count,
    /// Count metrics and dead letters; alerts to this writer (latency benchmarks).
    CountWithAlerts(Box<dyn BatchWriter<Alert> + Send>),
}

/// A failed run.
#[derive(Debug, Error)]
pub enum RunError {
    /// Wrong command-line wiring (hostfile, process index).
    #[error("{0}")]
    Usage(String),
    /// A failure while running (a source or sink error, a worker that died).
    #[error("{0}")]
    Runtime(String),
}

/// What a finished run reports.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RunSummary {
    /// Wall time of the dataflow, from start to the last record written.
    pub elapsed: Duration,
}

/// The sinks of a run, opened before the workers start and handed to worker 0.
struct Writers {
    metrics: Box<dyn BatchWriter<WindowRecord> + Send>,
    dead_letters: Box<dyn BatchWriter<DeadLetter> + Send>,
    alerts: Box<dyn BatchWriter<Alert> + Send>,
}

impl Writers {
    /// Writers that only count (benchmarks, and workers that receive nothing).
    fn counting(control: &Arc<RunControl>) -> Writers {
        Writers {
            metrics: Box::new(CountingWriter::new(control.clone(), |c| &c.metrics_records)),
            dead_letters: Box::new(CountingWriter::new(control.clone(), |c| &c.dead_letters)),
            alerts: Box::new(CountingWriter::new(control.clone(), |c| &c.alerts)),
        }
    }

    /// The configured sinks.
    fn open(config: &Config, control: &Arc<RunControl>) -> Result<Writers, String> {
        Ok(Writers {
            metrics: Box::new(metrics_writer(config, control.clone())?),
            dead_letters: Box::new(dead_letter_writer(config, control.clone())?),
            alerts: Box::new(alert_writer(config, control.clone())?),
        })
    }
}

/// Runs the metrics pipeline to completion (end of a bounded input, or a stop request).
pub fn run(
    config: Arc<Config>,
    options: &RunOptions,
    input: Input,
    output: Output,
    control: Arc<RunControl>,
) -> Result<RunSummary, RunError> {
    let timely_config = timely_config(options, config.engine.progress)?;
    let writes_here = options.cluster.as_ref().is_none_or(|c| c.process == 0);
    let writers: Option<Writers> = match output {
        _ if !writes_here => None,
        Output::Count => Some(Writers::counting(&control)),
        Output::CountWithAlerts(alerts) => Some(Writers { alerts, ..Writers::counting(&control) }),
        Output::Configured => Some(Writers::open(&config, &control).map_err(RunError::Runtime)?),
    };
    let writers = Arc::new(Mutex::new(writers));
    let (kind, partition_count) = match &input {
        Input::Configured => sources::describe(&config).map_err(RunError::Runtime)?,
        Input::Memory(lines) => (SourceKind { name: "memory", by_line: false }, lines.len() as u32),
    };
    // One start time for the generator in every worker of this process.
    let start_ms = crate::sinks::wall_clock_ms();

    let started = Instant::now();
    let worker_control = control.clone();
    let workers_here = options.workers.max(1);
    let guards = timely::execute(timely_config, move |worker| {
        let index = worker.index();
        if config.engine.pin_workers {
            pin_worker(index, workers_here);
        }
        let peers = worker.peers();
        let owned: Vec<u32> = (0..partition_count).filter(|p| *p as usize % peers == index).collect();
        let partitions: Vec<(u32, Box<dyn Partition>)> = match &input {
            Input::Configured => sources::open_partitions(&config, &owned, start_ms).unwrap_or_else(|e| {
                worker_control.fail(format!("cannot open the source: {e}"));
                Vec::new()
            }),
            Input::Memory(lines) => owned
                .iter()
                .map(|p| (*p, Box::new(MemoryPartition::new(lines[*p as usize].clone())) as Box<dyn Partition>))
                .collect(),
        };
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
        worker.dataflow::<u64, _, _>(|scope| metrics::build(scope, &config, io, control));
        while worker.step_or_park(Some(Duration::from_millis(50))) {}
    })
    .map_err(|e| RunError::Runtime(format!("cannot start the workers: {e}")))?;
    for result in guards.join() {
        result.map_err(|e| RunError::Runtime(format!("a worker failed: {e}")))?;
    }
    let elapsed = started.elapsed();
    match control.failure() {
        Some(failure) => Err(RunError::Runtime(failure)),
        None => Ok(RunSummary { elapsed }),
    }
}

fn timely_config(options: &RunOptions, progress: ProgressMode) -> Result<timely::Config, RunError> {
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
        return Err(RunError::Usage(format!(
            "--process {} must be below --processes {}",
            cluster.process, cluster.processes
        )));
    }
    let text = std::fs::read_to_string(&cluster.hostfile)
        .map_err(|e| RunError::Usage(format!("cannot read hostfile {}: {e}", cluster.hostfile.display())))?;
    let addresses: Vec<String> = text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect();
    if addresses.len() < cluster.processes {
        return Err(RunError::Usage(format!(
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
