//! The Redis checkpoint store: reads the newest complete checkpoint at start, and writes new ones
//! beside the pipeline on a thread of its own.
//!
//! The workers hand their [`Taken`] parts to the store without waiting; the writer thread writes
//! each worker's shards and part in one MULTI/EXEC, retrying with backoff while Redis is away.
//! Process 0 then waits for every worker's part (of every process), writes the manifest last and
//! only then deletes the checkpoint before it. A newer checkpoint that is complete in this
//! process supersedes one still being retried, so a slow or absent Redis delays checkpoints
//! (counted, logged) but never holds the pipeline or grows memory without bound.

use super::{FORMAT, Keys, Manifest, WorkerPart, differences, fingerprint};
use crate::config::{CheckpointConfig, Config};
use crate::error::Error;
use dataflows::checkpoint::{CheckpointStore, Restore, SinkPositions, StateSnapshot, Taken};
use dataflows::control::{Counters, RunControl, wall_clock_ms};
use dataflows::shard::SHARDS;
use redis::Commands;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long reading the checkpoint at start may wait for Redis.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the end of a run waits for the last checkpoint to be written.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(60);
/// The first and the longest pause between retries of a write.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(5));

/// A checkpoint found at start, and what this process resumes from.
pub struct Resumed {
    /// Its manifest.
    pub manifest: Manifest,
    /// Every worker's part, by the worker that wrote it.
    pub parts: Vec<WorkerPart>,
}

impl Resumed {
    /// The sinks' positions at the checkpoint (the writing worker's).
    pub fn sinks(&self) -> Option<&SinkPositions> {
        self.manifest.origin.as_ref().or_else(|| self.parts.iter().find_map(|p| p.sinks.as_ref()))
    }
}

/// Where a run starts: the execution number, and the checkpoint resumed from, if any.
pub struct Start {
    /// This run's execution number.
    pub execution: u64,
    /// The checkpoint resumed from.
    pub resumed: Option<Resumed>,
}

/// A connection to the checkpoint store's Redis.
#[derive(Clone)]
pub struct Store {
    client: redis::Client,
    keys: Keys,
    config: CheckpointConfig,
    shown: String,
}

impl Store {
    /// Opens the store of `config` (connects lazily; a refused password is an error now).
    pub fn open(config: &CheckpointConfig) -> Result<Store, Error> {
        let url = crate::sinks::redis::url_or_default(config.url.as_deref());
        let client = crate::sinks::redis::connect(&url, config.password_env.as_deref(), config.tls_ca_file.as_deref())
            .map_err(|e| Error::Checkpoint { name: config.name.clone(), what: e.to_string(), user: false })?;
        Ok(Store {
            client,
            keys: Keys::new(&config.name),
            config: config.clone(),
            shown: crate::sinks::redis::display_url(&url),
        })
    }

    fn error(&self, what: impl std::fmt::Display, user: bool) -> Error {
        Error::Checkpoint { name: self.config.name.clone(), what: format!("redis {}: {what}", self.shown), user }
    }

    /// A connection, retried with backoff for up to [`START_TIMEOUT`].
    fn connection(&self) -> Result<redis::Connection, Error> {
        let started = Instant::now();
        let mut pause = BACKOFF.0;
        loop {
            match self.client.get_connection_with_timeout(Duration::from_secs(3)) {
                Ok(connection) => return Ok(connection),
                Err(e) if started.elapsed() < START_TIMEOUT && !crate::sinks::redis::is_refusal(&e) => {
                    tracing::warn!(redis = %self.shown, error = %e, "checkpoint store not reachable; retrying");
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(BACKOFF.1);
                }
                Err(e) => return Err(self.error(format!("cannot connect: {e}"), false)),
            }
        }
    }

    /// Deletes every checkpoint of the pipeline (`rtsa run --fresh`); returns how many keys.
    pub fn delete_all(&self) -> Result<usize, Error> {
        let mut connection = self.connection()?;
        delete_matching(&mut connection, &self.keys.all_pattern()).map_err(|e| self.error(e, false))
    }

    /// Reads the newest complete checkpoint, refuses it when it was taken under another config,
    /// and clears what an earlier run of the same execution number left half-written (process 0).
    pub fn start(&self, config: &Config, process: usize) -> Result<Start, Error> {
        let mut connection = self.connection()?;
        let text: Option<String> = connection.get(self.keys.manifest()).map_err(|e| self.error(e, false))?;
        let manifest = match text {
            None => None,
            Some(text) => Some(serde_json::from_str::<Manifest>(&text).map_err(|e| {
                self.error(format!("the manifest cannot be read ({e}); rtsa run --fresh starts over"), true)
            })?),
        };
        let execution = manifest.as_ref().map_or(0, |m| m.execution) + 1;
        if process == 0 {
            delete_matching(&mut connection, &self.keys.execution_pattern(execution))
                .map_err(|e| self.error(e, false))?;
        }
        let Some(manifest) = manifest else { return Ok(Start { execution, resumed: None }) };
        if manifest.format != FORMAT || manifest.shards != SHARDS {
            return Err(self.error(
                format!("the checkpoint has format {} with {} shards, this build reads format {FORMAT} with {SHARDS}; rtsa run --fresh starts over", manifest.format, manifest.shards),
                true,
            ));
        }
        let changed = differences(&manifest.fingerprint, &fingerprint(config));
        if !changed.is_empty() {
            return Err(self.error(
                format!(
                    "the checkpoint at {} was taken under a config whose {} differ; restore that config, or start over with rtsa run --fresh (which deletes it)",
                    manifest.time,
                    changed.join(", ")
                ),
                true,
            ));
        }
        let mut parts = Vec::with_capacity(manifest.workers);
        for worker in 0..manifest.workers {
            let key = self.keys.worker(manifest.execution, manifest.time, worker);
            let text: Option<String> = connection.get(&key).map_err(|e| self.error(e, false))?;
            let text = text.ok_or_else(|| {
                self.error(format!("{key} is missing (expired?); rtsa run --fresh starts over"), false)
            })?;
            parts.push(serde_json::from_str(&text).map_err(|e| self.error(format!("{key}: {e}"), false))?);
        }
        Ok(Start { execution, resumed: Some(Resumed { manifest, parts }) })
    }

    /// Writes the origin of a fresh run (see [`Manifest::origin`]) under the execution number
    /// before `execution`, so that every process of this run, and a run after a kill, still
    /// computes `execution` as its own.
    fn write_origin(&self, execution: u64, fingerprint: &serde_json::Value, sinks: SinkPositions) -> Result<(), Error> {
        let manifest = Manifest {
            completed_at: wall_clock_ms(),
            origin: Some(sinks),
            ..Manifest::empty(execution.saturating_sub(1), fingerprint)
        };
        let text = serde_json::to_string(&manifest).map_err(|e| self.error(e, false))?;
        let mut connection = self.connection()?;
        redis::cmd("SET")
            .arg(self.keys.manifest())
            .arg(text)
            .arg("PX")
            .arg(self.config.ttl.0)
            .query::<()>(&mut connection)
            .map_err(|e| self.error(format!("cannot write the origin of the run: {e}"), false))
    }

    /// What global worker `worker` of `peers` resumes from: the partitions it now owns and the
    /// state of the key shards it now owns, merged over every worker that wrote them.
    pub fn restore(&self, resumed: &Resumed, worker: usize, peers: usize) -> Result<Restore, Error> {
        let m = &resumed.manifest;
        let partitions = resumed
            .parts
            .iter()
            .flat_map(|p| p.partitions.iter().copied())
            .filter(|p| p.index as usize % peers == worker)
            .collect();
        let mut connection = self.connection()?;
        let owned: Vec<u32> = (0..SHARDS).filter(|s| *s as usize % peers == worker).collect();
        let mut pipe = redis::pipe();
        for shard in &owned {
            pipe.hgetall(self.keys.shard(m.execution, m.time, *shard));
        }
        let shards: Vec<BTreeMap<String, Vec<u8>>> = pipe.query(&mut connection).map_err(|e| self.error(e, false))?;
        let mut state = StateSnapshot::default();
        for (shard, fields) in owned.iter().zip(shards) {
            for (writer, bytes) in fields {
                let part: StateSnapshot = postcard::from_bytes(&bytes)
                    .map_err(|e| self.error(format!("shard {shard} of worker {writer}: {e}"), false))?;
                state.merge(part);
            }
        }
        Ok(Restore { time: m.time, partitions, state })
    }

    /// Marks the run finished (all input read, everything written): a later run has nothing to
    /// do. A run that ended before its first checkpoint gets a manifest that says only that.
    fn mark_finished(&self, execution: u64, fingerprint: &serde_json::Value) -> Result<(), Error> {
        let mut connection = self.connection()?;
        let text: Option<String> = connection.get(self.keys.manifest()).map_err(|e| self.error(e, false))?;
        let mut manifest = text
            .and_then(|t| serde_json::from_str::<Manifest>(&t).ok())
            .unwrap_or_else(|| Manifest { finished: true, ..Manifest::empty(execution, fingerprint) });
        manifest.finished = true;
        manifest.completed_at = wall_clock_ms();
        let text = serde_json::to_string(&manifest).map_err(|e| self.error(e, false))?;
        let ttl = self.config.ttl.0;
        let () = redis::cmd("SET")
            .arg(self.keys.manifest())
            .arg(text)
            .arg("PX")
            .arg(ttl)
            .query(&mut connection)
            .map_err(|e| self.error(e, false))?;
        Ok(())
    }
}

/// Deletes the keys matching `pattern`; returns how many.
fn delete_matching(connection: &mut redis::Connection, pattern: &str) -> redis::RedisResult<usize> {
    let keys: Vec<String> = connection.scan_match::<_, String>(pattern)?.collect::<Result<_, _>>()?;
    for chunk in keys.chunks(500) {
        let () = connection.del(chunk)?;
    }
    Ok(keys.len())
}

/// What the writer thread and the workers share.
struct Shared {
    interval: Duration,
    last_started: Mutex<Option<Instant>>,
    in_flight: AtomicBool,
    /// The time of the newest checkpoint known complete (0: none).
    completed: AtomicU64,
    control: Arc<RunControl>,
}

/// The store's side in the pipeline ([`CheckpointStore`]): hands parts to the writer thread.
pub struct Writer {
    store: Store,
    execution: u64,
    fingerprint: serde_json::Value,
    shared: Arc<Shared>,
    parts: Mutex<Option<Sender<Taken>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// Where this process stands in a cluster, for the writer.
pub struct Cluster {
    /// This process's index.
    pub process: usize,
    /// Workers in this process.
    pub workers_here: usize,
    /// Workers in all processes.
    pub peers: usize,
}

impl Writer {
    /// Starts the writer thread of this process.
    pub fn start(
        store: Store,
        execution: u64,
        resumed_at: u64,
        fingerprint: serde_json::Value,
        cluster: Cluster,
        control: Arc<RunControl>,
        previous: Option<(u64, u64, usize)>,
    ) -> Writer {
        let shared = Arc::new(Shared {
            interval: store.config.interval.as_duration(),
            last_started: Mutex::new(Some(Instant::now())),
            in_flight: AtomicBool::new(false),
            completed: AtomicU64::new(resumed_at),
            control,
        });
        let (sender, receiver) = std::sync::mpsc::channel();
        let (thread_store, thread_fingerprint) = (store.clone(), fingerprint.clone());
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("rtsa-checkpoints".to_owned())
            .spawn(move || {
                let mut writing = Writing {
                    store: thread_store,
                    execution,
                    fingerprint: thread_fingerprint,
                    cluster,
                    shared: thread_shared,
                    // The checkpoint resumed from is deleted once this run has one of its own.
                    last: previous,
                    connection: None,
                };
                writing.run(receiver);
            })
            .ok();
        Writer { store, execution, fingerprint, shared, parts: Mutex::new(Some(sender)), thread: Mutex::new(thread) }
    }

    /// Records where the sinks stand before this fresh run writes anything (process 0, before
    /// the workers start).
    pub fn write_origin(&self, sinks: SinkPositions) -> Result<(), Error> {
        self.store.write_origin(self.execution, &self.fingerprint, sinks)
    }

    /// After the last part is written, marks the run finished (process 0, at the end of an
    /// input read to its end).
    pub fn finish(&self) -> Result<(), Error> {
        self.drain();
        self.store.mark_finished(self.execution, &self.fingerprint)
    }

    /// The newest checkpoint known complete.
    pub fn newest(&self) -> u64 {
        self.shared.completed.load(Ordering::Acquire)
    }

    /// Waits until every part handed over has been written or given up (the end of a run), for
    /// at most a minute: a store that is away is then left behind, and the checkpoint with it.
    pub fn drain(&self) {
        drop(self.parts.lock().unwrap_or_else(|p| p.into_inner()).take());
        let Some(thread) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() else { return };
        let started = Instant::now();
        while !thread.is_finished() {
            if started.elapsed() > DRAIN_TIMEOUT {
                tracing::warn!("the last checkpoint could not be written in time; the one before it stays");
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = thread.join();
    }
}

impl CheckpointStore for Writer {
    fn due(&self) -> bool {
        if self.shared.in_flight.load(Ordering::Acquire) {
            return false;
        }
        let mut last = self.shared.last_started.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_some_and(|at| at.elapsed() < self.shared.interval) {
            return false;
        }
        *last = Some(Instant::now());
        self.shared.in_flight.store(true, Ordering::Release);
        true
    }

    fn submit(&self, taken: Taken) {
        // A stop checkpoint may come without `due`; a part is never refused.
        self.shared.in_flight.store(true, Ordering::Release);
        if let Some(sender) = self.parts.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            let _ = sender.send(taken);
        }
    }

    fn completed(&self, time: u64) -> bool {
        self.shared.completed.load(Ordering::Acquire) >= time
    }
}

/// The writer thread's state.
struct Writing {
    store: Store,
    execution: u64,
    fingerprint: serde_json::Value,
    cluster: Cluster,
    shared: Arc<Shared>,
    /// The last complete checkpoint (time, workers) of this execution, to delete after the next.
    last: Option<(u64, u64, usize)>,
    connection: Option<redis::Connection>,
}

/// The parts of one checkpoint time gathered from this process's workers.
type Gathered = BTreeMap<u64, Vec<Taken>>;

impl Writing {
    fn run(&mut self, parts: Receiver<Taken>) {
        let mut gathered: Gathered = BTreeMap::new();
        let mut open = true;
        while open || !gathered.is_empty() {
            match parts.recv_timeout(Duration::from_millis(50)) {
                Ok(taken) => gathered.entry(taken.time).or_default().push(taken),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => open = false,
            }
            gather(&parts, &mut gathered);
            let Some(time) = newest_complete(&gathered, self.cluster.workers_here) else {
                if !open {
                    // The run ended with parts that never completed in this process.
                    gathered.clear();
                }
                continue;
            };
            let mine = gathered.remove(&time).unwrap_or_default();
            for (older, _) in gathered.range(..time) {
                tracing::warn!(checkpoint = older, "checkpoint superseded before it was written");
            }
            gathered.retain(|t, _| *t > time);
            self.write(time, mine, &parts, &mut gathered);
            if gathered.is_empty() {
                self.shared.in_flight.store(false, Ordering::Release);
            }
        }
    }

    /// Writes this process's parts of checkpoint `time`, and on process 0 the manifest; gives up
    /// when a newer checkpoint is complete in this process first.
    fn write(&mut self, time: u64, mine: Vec<Taken>, parts: &Receiver<Taken>, gathered: &mut Gathered) {
        let started = Instant::now();
        let shared = self.shared.clone();
        let counters = &shared.control.counters;
        if let Some(failed) = mine.iter().find_map(|t| t.failed.clone()) {
            tracing::error!(checkpoint = time, reason = %failed, "checkpoint not taken");
            Counters::add(&counters.checkpoint_failures, 1);
            return;
        }
        let (commands, bytes) = match self.encode(time, mine) {
            Ok(encoded) => encoded,
            Err(e) => {
                tracing::error!(checkpoint = time, error = %e, "checkpoint cannot be encoded");
                Counters::add(&counters.checkpoint_failures, 1);
                return;
            }
        };
        let workers_here = self.cluster.workers_here;
        let mut superseded = || {
            gather(parts, gathered);
            newest_complete(gathered, workers_here).is_some()
        };
        let encoded = started.elapsed();
        let written = self.retrying("write a checkpoint", |c| commands.query::<()>(c), &mut superseded).is_some();
        tracing::debug!(
            checkpoint = time,
            bytes,
            encode_ms = encoded.as_millis() as u64,
            write_ms = (started.elapsed() - encoded).as_millis() as u64,
            "checkpoint parts written"
        );
        let done = written
            && if self.cluster.process == 0 {
                self.complete(time, bytes, &mut superseded)
            } else {
                self.await_manifest(time, &mut superseded)
            };
        if done {
            shared.completed.fetch_max(time, Ordering::AcqRel);
            Counters::add(&counters.checkpoints, 1);
            Counters::set(&counters.checkpoint_duration_ms, started.elapsed().as_millis() as u64);
            Counters::set(&counters.checkpoint_bytes, bytes);
            Counters::set(&counters.last_checkpoint, shared.completed.load(Ordering::Acquire));
            tracing::info!(checkpoint = time, bytes, ms = started.elapsed().as_millis() as u64, "checkpoint complete");
        } else {
            Counters::add(&counters.checkpoint_failures, 1);
        }
    }

    /// One MULTI/EXEC with every part and shard of this process's workers at `time`.
    fn encode(&self, time: u64, mine: Vec<Taken>) -> Result<(redis::Pipeline, u64), String> {
        let keys = &self.store.keys;
        let ttl = self.store.config.ttl.0;
        let mut pipe = redis::pipe();
        pipe.atomic();
        let mut bytes = 0u64;
        for taken in mine {
            let open_windows = taken.state.open_windows();
            let mut shards = Vec::new();
            for (shard, state) in taken.state.split() {
                let blob = postcard::to_stdvec(&state).map_err(|e| format!("shard {shard}: {e}"))?;
                bytes += blob.len() as u64;
                let key = keys.shard(self.execution, time, shard);
                pipe.hset(&key, taken.worker, blob).ignore();
                pipe.pexpire(&key, ttl as i64).ignore();
                shards.push(shard);
            }
            let part = WorkerPart { partitions: taken.partitions, sinks: taken.sinks, shards, open_windows };
            let text = serde_json::to_string(&part).map_err(|e| e.to_string())?;
            bytes += text.len() as u64;
            pipe.cmd("SET").arg(keys.worker(self.execution, time, taken.worker)).arg(text).arg("PX").arg(ttl).ignore();
        }
        Ok((pipe, bytes))
    }

    /// Process 0: waits for every worker's part, writes the manifest, then deletes the checkpoint
    /// before it.
    fn complete(&mut self, time: u64, bytes: u64, mut superseded: impl FnMut() -> bool) -> bool {
        let keys = self.store.keys.clone();
        let (execution, peers) = (self.execution, self.cluster.peers);
        let worker_keys: Vec<String> = (0..peers).map(|w| keys.worker(execution, time, w)).collect();
        let mut pause = Duration::from_millis(2);
        let parts: Vec<String> = loop {
            let read = self.retrying(
                "read the workers' parts",
                |c| c.mget::<_, Vec<Option<String>>>(&worker_keys),
                &mut superseded,
            );
            let Some(read) = read else { return false };
            if read.iter().all(Option::is_some) {
                break read.into_iter().flatten().collect();
            }
            if superseded() {
                return false;
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(200));
        };
        let (mut partitions, mut open_windows) = (0usize, 0usize);
        for text in &parts {
            let part: WorkerPart = serde_json::from_str(text).unwrap_or_default();
            partitions += part.partitions.len();
            open_windows += part.open_windows;
        }
        let manifest = Manifest {
            format: FORMAT,
            execution,
            time,
            workers: peers,
            shards: SHARDS,
            partitions,
            open_windows,
            bytes,
            completed_at: wall_clock_ms(),
            finished: false,
            fingerprint: self.fingerprint.clone(),
            origin: None,
        };
        let Ok(text) = serde_json::to_string(&manifest) else { return false };
        let ttl = self.store.config.ttl.0;
        let set = |c: &mut redis::Connection| {
            redis::cmd("SET").arg(keys.manifest()).arg(&text).arg("PX").arg(ttl).query::<()>(c)
        };
        if self.retrying("write the manifest", set, &mut superseded).is_none() {
            return false;
        }
        // Only now is the checkpoint before it garbage.
        if let Some((old_execution, old_time, old_workers)) = self.last.replace((execution, time, peers)) {
            let mut old: Vec<String> = (0..old_workers).map(|w| keys.worker(old_execution, old_time, w)).collect();
            old.extend((0..SHARDS).map(|s| keys.shard(old_execution, old_time, s)));
            let delete = |c: &mut redis::Connection| c.del::<_, ()>(&old);
            if self.retrying("delete the checkpoint before", delete, || true).is_none() {
                tracing::warn!(checkpoint = old_time, "the checkpoint before could not be deleted; its keys expire");
            }
        }
        true
    }

    /// Other processes: the checkpoint is complete once the manifest says so.
    fn await_manifest(&mut self, time: u64, mut superseded: impl FnMut() -> bool) -> bool {
        let key = self.store.keys.manifest();
        loop {
            let read = self.retrying("read the manifest", |c| c.get::<_, Option<String>>(&key), &mut superseded);
            let Some(text) = read else { return false };
            let at = text.and_then(|t| serde_json::from_str::<Manifest>(&t).ok()).map_or(0, |m| m.time);
            if at >= time {
                return true;
            }
            if superseded() {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Writing {
    /// Runs `op` on the connection, reconnecting and retrying with backoff while Redis fails;
    /// `None` once `give_up` says so (between attempts).
    fn retrying<T>(
        &mut self,
        what: &str,
        mut op: impl FnMut(&mut redis::Connection) -> redis::RedisResult<T>,
        mut give_up: impl FnMut() -> bool,
    ) -> Option<T> {
        let mut pause = BACKOFF.0;
        let mut attempts = 0u64;
        loop {
            if self.connection.is_none() {
                self.connection = self.store.client.get_connection_with_timeout(Duration::from_secs(3)).ok();
            }
            if let Some(connection) = self.connection.as_mut() {
                match op(connection) {
                    Ok(value) => {
                        if attempts > 0 {
                            tracing::info!(attempts, "checkpoint store reachable again");
                        }
                        return Some(value);
                    }
                    Err(e) => {
                        tracing::warn!(redis = %self.store.shown, error = %e, "cannot {what}; retrying");
                        self.connection = None;
                    }
                }
            } else if attempts.is_multiple_of(10) {
                tracing::warn!(redis = %self.store.shown, "checkpoint store not reachable; retrying");
            }
            attempts += 1;
            Counters::add(&self.shared.control.counters.checkpoint_retries, 1);
            if give_up() {
                return None;
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(BACKOFF.1);
        }
    }
}

/// Adds the parts waiting in the channel.
fn gather(parts: &Receiver<Taken>, gathered: &mut Gathered) {
    while let Ok(taken) = parts.try_recv() {
        gathered.entry(taken.time).or_default().push(taken);
    }
}

/// The newest checkpoint time for which every worker of this process has handed its part.
fn newest_complete(gathered: &Gathered, workers_here: usize) -> Option<u64> {
    gathered.iter().rev().find(|(_, parts)| parts.len() >= workers_here).map(|(time, _)| *time)
}
