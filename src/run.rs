//! Running a pipeline: timely configuration from the command line (threads, process index,
//! hostfile), partition ownership (`partition % peers == worker`), sinks opened once on the
//! worker that writes them, and the worker loop.

use crate::checkpoint::redis::{Cluster, Store, Writer};
use crate::config::{CheckpointStoreKind, Config, ProgressMode};
use crate::error::Error;
use crate::http::live::{Live, Tapped};
use crate::sinks::Sinks;
use dataflows::alerts::Alert;
use dataflows::checkpoint::{CheckpointStore, Hooks, Restore, SinkPositions};
use dataflows::chunks::{ChunkedInput, Prefix};
use dataflows::control::RunControl;
use dataflows::feed::ChunkFeed;
use dataflows::operators::batch_sink::BatchWriter;
use dataflows::operators::chunked_source::ChunkShare;
use dataflows::pipeline::{self, PipelineIo};
use dataflows::source::{OwnedPartitions, PartitionPosition, Source, SourceError};
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
    /// With checkpoints on: delete the pipeline's checkpoint and start over.
    pub fresh: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions { workers: 1, cluster: None, fresh: false }
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
    live: Option<Arc<Live>>,
) -> Result<RunSummary, Error> {
    let timely_config = timely_config(options, config.pipeline.engine.progress)?;
    let writes_here = options.cluster.as_ref().is_none_or(|c| c.process == 0);
    let workers_here = options.workers.max(1);
    let process = options.cluster.as_ref().map_or(0, |c| c.process);
    let peers = workers_here * options.cluster.as_ref().map_or(1, |c| c.processes);
    let checkpoints = match (&output, config.checkpoint.store) {
        (Output::Configured, CheckpointStoreKind::Redis) => {
            let Some(prepared) = Prepared::start(&config, options, process, peers, &control)? else {
                return Ok(RunSummary { elapsed: Duration::ZERO });
            };
            Some(prepared)
        }
        _ => None,
    };
    let sinks: Option<Writers> = match output {
        _ if !writes_here => None,
        Output::Count => Some(Writers::counting(&control)),
        Output::CountWithAlerts(alerts) => Some(Writers { alerts, ..Writers::counting(&control) }),
        Output::Configured => {
            crate::kafka::ensure_output_topics(&config)?;
            let mut sinks = crate::sinks::open_all(&config, &control)?;
            if let Some(positions) = checkpoints.as_ref().and_then(|c| c.sinks.as_ref()) {
                sinks.metrics.resume(&positions.metrics)?;
                sinks.alerts.resume(&positions.alerts)?;
                sinks.dead_letters.resume(&positions.dead_letters)?;
            }
            if let Some(prepared) = checkpoints.as_ref().filter(|c| c.origin_needed) {
                prepared.writer.write_origin(sinks.positions().map_err(Error::Run)?)?;
            }
            Some(Writers::of(sinks))
        }
    };
    // The dashboard sees what process 0's sinks wrote, after they wrote it.
    let sinks = match (sinks, live) {
        (Some(w), Some(live)) => Some(Writers {
            metrics: Tapped::boxed(w.metrics, live.clone()),
            alerts: Tapped::boxed(w.alerts, live),
            dead_letters: w.dead_letters,
        }),
        (sinks, _) => sinks,
    };
    let writer = checkpoints.as_ref().map(|c| c.writer.clone());
    // Set when the workers left at a stop's checkpoint rather than by draining to the end.
    let stopped_at_checkpoint = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let restores: Vec<Option<Restore>> = checkpoints.map(|c| c.restores).unwrap_or_default();
    // Where partition 0 stands at the checkpoint resumed from (a file read in chunks goes on there).
    let resumed_first = restores.iter().flatten().flat_map(|r| r.partitions.iter()).find(|p| p.index == 0).copied();
    let restores = Arc::new(Mutex::new(restores));
    let writers = Arc::new(Mutex::new(sinks));
    let kind = source.kind();
    let partition_count = source.partition_count();
    // A file is read by every worker of process 0, chunk by chunk, from where it stands; a
    // live input of one partition is cut into chunks by a reader thread and parsed by every
    // worker of process 0.
    let from = resumed_first.map(|p| p.position).unwrap_or_default();
    let chunked = match process {
        0 => chunked_input(source.as_ref(), resumed_first.map(|p| p.position), workers_here, &config)
            .map_err(|e| Error::Run(format!("cannot open the source: {e}")))?,
        _ => None,
    };
    let reads_in_chunks = chunked.is_some();
    let start = Prefix::at(from, resumed_first.and_then(|p| p.max_timestamp));
    let shares: Mutex<Vec<Option<ChunkShare>>> = Mutex::new(
        chunked
            .map(|input| ChunkShare::split(0, input, workers_here, start).into_iter().map(Some).collect())
            .unwrap_or_default(),
    );

    let started = Instant::now();
    let worker_control = control.clone();
    let store = writer.clone();
    let stopped = stopped_at_checkpoint.clone();
    let guards = timely::execute(timely_config, move |worker| {
        let index = worker.index();
        if config.pipeline.engine.pin_workers {
            pin_worker(index, workers_here);
        }
        let peers = worker.peers();
        let restore = restores.lock().ok().and_then(|mut r| r.get_mut(index % workers_here).and_then(Option::take));
        let restore = restore.unwrap_or_default();
        let from: Vec<(u32, PartitionPosition)> = restore.partitions.iter().map(|p| (p.index, p.position)).collect();
        let chunks = shares.lock().ok().and_then(|mut s| s.get_mut(index % workers_here).and_then(Option::take));
        let owned: Vec<u32> = match reads_in_chunks {
            true => Vec::new(),
            false => (0..partition_count).filter(|p| *p as usize % peers == index).collect(),
        };
        let partitions: OwnedPartitions = source.open(&owned, &from).unwrap_or_else(|e| {
            worker_control.fail(format!("cannot open the source: {e}"));
            Vec::new()
        });
        let taken = if index == 0 { writers.lock().ok().and_then(|mut w| w.take()) } else { None };
        let writers = taken.unwrap_or_else(|| Writers::counting(&worker_control));
        let io = PipelineIo {
            kind,
            partitions,
            chunks,
            metrics: writers.metrics,
            dead_letters: writers.dead_letters,
            alerts: writers.alerts,
        };
        let control = worker_control.clone();
        let checkpoints = store.clone().map(|store| pipeline::Checkpoints {
            store: store as Arc<dyn CheckpointStore>,
            hooks: Hooks::on(restore.state, restore.time),
            partitions: restore.partitions,
            lookahead_epochs: config.checkpoint.lookahead_epochs.get(),
        });
        let gate =
            worker.dataflow::<u64, _, _>(|scope| pipeline::build(scope, &config.pipeline, io, control, checkpoints));
        let watched = gate.zip(store.clone());
        while worker.step_or_park(Some(Duration::from_millis(50))) {
            // With checkpoints, a stop ends at its checkpoint and a failure at once: neither
            // drains, so no window that is not complete is written.
            let Some((gate, store)) = &watched else { continue };
            if worker_control.failure().is_some() {
                break;
            }
            if gate.final_checkpoint().is_some_and(|at| store.completed(at)) {
                stopped.store(true, std::sync::atomic::Ordering::Relaxed);
                break;
            }
        }
        for dataflow in worker.installed_dataflows() {
            worker.drop_dataflow(dataflow);
        }
    })
    .map_err(|e| Error::Run(format!("cannot start the workers: {e}")))?;
    for result in guards.join() {
        result.map_err(|e| Error::Internal(format!("a worker failed: {e}")))?;
    }
    let elapsed = started.elapsed();
    if let Some(failure) = control.failure() {
        return Err(Error::Run(failure));
    }
    if let Some(writer) = writer {
        if stopped_at_checkpoint.load(std::sync::atomic::Ordering::Relaxed) {
            writer.drain();
            eprintln!("rtsa: stopped at checkpoint {}; a restart continues from there", writer.newest());
        } else if writes_here {
            // All input read and written: a later run has nothing to do.
            writer.finish()?;
        } else {
            writer.drain();
        }
    }
    Ok(RunSummary { elapsed })
}

/// The source as chunks every worker of this process reads a share of, where it can be: a file
/// (cut at line boundaries, `Source::chunked`), or a live input of one partition (a pipe, a Kafka
/// partition) with more than one worker here, cut as it arrives by a reader thread (`ChunkFeed`).
/// `resumed` is where partition 0 stands at the checkpoint resumed from.
fn chunked_input(
    source: &dyn Source,
    resumed: Option<PartitionPosition>,
    workers: usize,
    config: &Config,
) -> Result<Option<Arc<dyn ChunkedInput>>, SourceError> {
    let from = resumed.unwrap_or_default();
    if let Some(input) = source.chunked(from)? {
        tracing::info!(
            source = source.kind().name,
            chunks = input.chunk_count()?.count,
            workers,
            "reading the source in chunks, every worker"
        );
        return Ok(Some(input));
    }
    if workers < 2 || source.partition_count() != 1 || !source.fed_to_every_worker() {
        return Ok(None);
    }
    let positions: Vec<(u32, PartitionPosition)> = resumed.map(|at| (0, at)).into_iter().collect();
    let Some((_, partition)) = source.open(&[0], &positions)?.pop() else { return Ok(None) };
    let chunk_bytes = usize::try_from(config.pipeline.engine.read_chunk_bytes.get()).unwrap_or(usize::MAX);
    // At most two chunks a worker wait to be taken (each worker parses up to four ahead besides).
    let feed = ChunkFeed::start(partition, from, chunk_bytes, 2 * workers)?;
    tracing::info!(
        source = source.kind().name,
        workers,
        "reading the source on a thread of its own, in chunks parsed by every worker"
    );
    Ok(Some(feed))
}

/// A run's checkpoints, prepared before the workers start.
struct Prepared {
    writer: Arc<Writer>,
    /// What each worker of this process resumes from (by local index).
    restores: Vec<Option<Restore>>,
    /// What the sinks had written at the checkpoint resumed from.
    sinks: Option<SinkPositions>,
    /// A fresh run: process 0 records where its sinks stand before it writes (the origin).
    origin_needed: bool,
}

impl Prepared {
    /// Opens the store, deletes the checkpoint with `--fresh`, reads the newest one and what
    /// each worker of this process loads; `None` when the checkpoint is of a finished run.
    fn start(
        config: &Config,
        options: &RunOptions,
        process: usize,
        peers: usize,
        control: &Arc<RunControl>,
    ) -> Result<Option<Prepared>, Error> {
        let name = &config.checkpoint.name;
        let store = Store::open(&config.checkpoint)?;
        if options.fresh && process == 0 {
            let deleted = store.delete_all()?;
            eprintln!("rtsa: --fresh: deleted checkpoint {name} ({deleted} keys); starting over");
        }
        let start = store.start(config, process)?;
        let workers_here = options.workers.max(1);
        let mut restores = Vec::with_capacity(workers_here);
        let mut resumed_at = 0;
        let mut sinks = None;
        let mut previous = None;
        let mut origin_needed = true;
        if let Some(resumed) = &start.resumed {
            let m = &resumed.manifest;
            if m.finished {
                eprintln!(
                    "rtsa: checkpoint {name} is of a run that read all its input and wrote everything; nothing to do (rtsa run --fresh starts over)"
                );
                return Ok(None);
            }
            origin_needed = false;
        }
        if let Some(resumed) = start.resumed.as_ref().filter(|r| r.manifest.origin.is_some()) {
            // Killed before its first checkpoint: from the start, its output cut back.
            sinks = resumed.sinks().cloned();
            if process == 0 {
                eprintln!(
                    "rtsa: checkpoint {name}: the run before ended before its first checkpoint; starting from the beginning of the input, its output cut back to where it began"
                );
            }
        } else if let Some(resumed) = &start.resumed {
            let m = &resumed.manifest;
            previous = Some((m.execution, m.time, m.workers));
            for local in 0..workers_here {
                restores.push(Some(store.restore(resumed, process * workers_here + local, peers)?));
            }
            resumed_at = m.time;
            sinks = resumed.sinks().cloned();
            if process == 0 {
                eprintln!(
                    "rtsa: resuming from checkpoint {}, {} partitions, {} open windows (written by {} workers; now {peers})",
                    m.time,
                    m.partitions,
                    group_thousands(m.open_windows as u64),
                    m.workers
                );
            }
        }
        let cluster = Cluster { process, workers_here, peers };
        let fingerprint = crate::checkpoint::fingerprint(config);
        let writer = Writer::start(store, start.execution, resumed_at, fingerprint, cluster, control.clone(), previous);
        Ok(Some(Prepared { writer: Arc::new(writer), restores, sinks, origin_needed }))
    }
}

/// `12345` as `12,345`.
fn group_thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Runs the pipeline of a config from its own source.
pub fn run_configured(
    config: Arc<Config>,
    options: &RunOptions,
    output: Output,
    control: Arc<RunControl>,
    live: Option<Arc<Live>>,
) -> Result<RunSummary, Error> {
    // One start time for the generator in every worker of this process.
    let source = crate::sources::open(&config, dataflows::control::wall_clock_ms())?;
    run(config, options, Arc::from(source), output, control, live)
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
