//! `rtsa bench`: pre-generates events as JSON lines in memory (so the disk is not measured),
//! runs the full pipeline of a config with sinks that only count, and prints one JSON line:
//! `{"events":N,"workers":W,"seconds":S,"events_per_sec":X,"peak_rss_mb":M}`.

use crate::cli::{BenchArgs, load_config};
use crate::config::GeneratorConfig;
use crate::control::{Counters, RunControl};
use crate::run::{self, Input, Output, RunOptions};
use crate::sources::generator::Generator;
use crate::sources::memory::MemoryLines;
use serde::Serialize;
use std::process::ExitCode;
use std::sync::Arc;

/// The final line of `rtsa bench` (CONTRACT section 8).
#[derive(Debug, Serialize)]
pub struct BenchReport {
    /// Events processed.
    pub events: u64,
    /// Worker threads.
    pub workers: usize,
    /// Wall time of the run, s.
    pub seconds: f64,
    /// Throughput.
    pub events_per_sec: f64,
    /// Peak resident set size of the process, MiB.
    pub peak_rss_mb: f64,
}

/// Generates `events` events over `partitions` partitions (in parallel, one thread per core).
pub fn generate_partitions(events: u64, partitions: u32, seed: u64, event_time_rate: u64) -> Vec<Arc<MemoryLines>> {
    let config = GeneratorConfig {
        count: events,
        rate: 0,
        seed,
        partitions,
        start_ms: Some(1_764_230_400_000),
        event_time_rate: Some(event_time_rate),
        ..GeneratorConfig::default()
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(partitions as usize).max(1);
    let mut results: Vec<Option<Arc<MemoryLines>>> = vec![None; partitions as usize];
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let config = &config;
                scope.spawn(move || {
                    (0..partitions)
                        .filter(|p| *p as usize % threads == t)
                        .map(|p| {
                            let mut generator = Generator::new(config, 1_764_230_400_000, p, partitions);
                            let mut lines = MemoryLines::default();
                            let mut line = Vec::new();
                            while generator.next_json(&mut line) {
                                lines.push(&line);
                            }
                            (p, Arc::new(lines))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for handle in handles {
            for (p, lines) in handle.join().expect("generator threads do not panic") {
                results[p as usize] = Some(lines);
            }
        }
    });
    results.into_iter().map(|r| r.expect("every partition was generated")).collect()
}

/// Peak resident set size of this process in MiB (`VmHWM`), 0 when unknown.
pub fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Runs `rtsa bench`.
pub fn bench_command(args: BenchArgs) -> ExitCode {
    let config = match load_config(args.config.as_deref()) {
        Ok(config) => config,
        Err(code) => return code,
    };
    if args.partitions == 0 || args.event_time_rate == 0 {
        eprintln!("rtsa: error: --partitions and --event-time-rate must be above 0");
        return ExitCode::from(2);
    }
    eprintln!("rtsa bench: generating {} events in {} partitions …", args.events, args.partitions);
    let partitions = generate_partitions(args.events, args.partitions, args.seed, args.event_time_rate);
    let bytes: usize = partitions.iter().map(|p| p.byte_len()).sum();
    eprintln!(
        "rtsa bench: {:.1} MiB of JSON; running {} aggregations on {} workers …",
        bytes as f64 / 1048576.0,
        config.aggregations.len(),
        args.workers
    );
    let control = Arc::new(RunControl::default());
    let options = RunOptions { workers: usize::from(args.workers), cluster: None };
    let summary = match run::run(Arc::new(config), &options, Input::Memory(partitions), Output::Count, control.clone())
    {
        Ok(summary) => summary,
        Err(e) => {
            eprintln!("rtsa: error: {e}");
            return ExitCode::from(1);
        }
    };
    let seconds = summary.elapsed.as_secs_f64();
    let events = Counters::get(&control.counters.events_in);
    eprintln!(
        "rtsa bench: {} metrics records, {} dead letters ({} late, {} invalid)",
        Counters::get(&control.counters.metrics_records),
        Counters::get(&control.counters.dead_letters),
        Counters::get(&control.counters.late_events),
        Counters::get(&control.counters.invalid_events),
    );
    let report = BenchReport {
        events,
        workers: usize::from(args.workers),
        seconds: (seconds * 1000.0).round() / 1000.0,
        events_per_sec: (events as f64 / seconds).round(),
        peak_rss_mb: (peak_rss_mb() * 10.0).round() / 10.0,
    };
    println!("{}", serde_json::to_string(&report).expect("the report serializes"));
    ExitCode::SUCCESS
}
