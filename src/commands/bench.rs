//! `rtsa bench`: pre-generates events as JSON lines in memory (so the disk is not measured),
//! runs the full pipeline of a config with sinks that only count, and prints one JSON line:
//! `{"events":N,"workers":W,"seconds":S,"events_per_sec":X,"peak_rss_mb":M}`.

use super::{load_config, print_line};
use crate::config::{
    AggregationConfig, AnomalyConfig, Config, Direction, EventMetric, EventRule, GeneratorConfig, GroupBy, Levels,
    Metric, Millis, Severity, SourceConfig, ThresholdRule, WindowConfig,
};
use crate::error::Error;
use crate::run::{self, Output, RunOptions};
use crate::sources::generator::generate_partitions;
use dataflows::alerts::{Alert, AlertKind};
use dataflows::control::{Counters, RunControl};
use dataflows::memory::MemorySource;
use dataflows::operators::batch_sink::BatchWriter;
use hdrhistogram::Histogram;
use serde::Serialize;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::Mutex;

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
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..))]
    pub partitions: u32,
    /// Generator seed.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Events per second of event time in the generated data.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
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
    /// Write to the config's sinks (an InfluxDB or Redis sink, say) instead of only counting.
    #[arg(long)]
    pub sinks: bool,
    /// Serve /metrics and the dashboard on the config's `http.listen` while benchmarking (to
    /// measure what they cost); off by default, so a benchmark never takes a running engine's port.
    #[arg(long)]
    pub http: bool,
}

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
    /// With `--sinks` and checkpoints on: the checkpoints completed, and the size and write time
    /// of the last one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoints: Option<CheckpointReport>,
}

/// What `rtsa bench --sinks` says of checkpoints.
#[derive(Debug, serde::Serialize)]
pub struct CheckpointReport {
    /// Checkpoints completed.
    pub completed: u64,
    /// Bytes the last one wrote.
    pub last_bytes: u64,
    /// How long the last one took to write, ms.
    pub last_ms: u64,
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

/// Latency percentiles of one kind of alert, ms.
#[derive(Debug, Serialize)]
pub struct LatencyReport {
    /// Alerts measured.
    pub count: u64,
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

fn report(histogram: &Histogram<u64>) -> LatencyReport {
    let ms = |us: u64| (us as f64 / 10.0).round() / 100.0;
    LatencyReport {
        count: histogram.len(),
        p50: ms(histogram.value_at_quantile(0.5)),
        p99: ms(histogram.value_at_quantile(0.99)),
        max: ms(histogram.max()),
    }
}

/// Records how long alerts took: single-event alerts from their event's time (the live
/// generator stamps events with the wall clock), window alerts from the moment the watermark
/// passed the window's end (`window_end + max_out_of_orderness`).
struct LatencyWriter {
    events: Arc<Mutex<Histogram<u64>>>,
    windows: Arc<Mutex<Histogram<u64>>>,
    out_of_orderness_ms: u64,
    control: Arc<RunControl>,
}

impl BatchWriter<Alert> for LatencyWriter {
    fn write_batch(&mut self, batch: &[Alert]) {
        // Windows closed by the stop itself are not measured: the watermark did not pass them.
        if self.control.stop_requested() {
            return;
        }
        let now_us =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64);
        for alert in batch {
            let (histogram, since_ms) = match alert.kind {
                AlertKind::Event => (&self.events, alert.time),
                _ => (&self.windows, alert.window_end + self.out_of_orderness_ms),
            };
            let latency = now_us.saturating_sub(since_ms * 1000).max(1);
            let _ = histogram.lock().unwrap_or_else(|p| p.into_inner()).record(latency);
        }
    }
    fn close(&mut self) {}
}

fn alert_latency(args: &BenchArgs, mut config: Config) -> Result<ExitCode, Error> {
    let generator = GeneratorConfig {
        rate: args.rate,
        count: 0,
        seed: args.seed,
        partitions: std::num::NonZeroU32::new(args.partitions).unwrap_or(std::num::NonZeroU32::MIN),
        start_ms: None,
        event_time_rate: Some(args.rate),
        out_of_order_fraction: 0.0,
        late_fraction: 0.0,
        ..GeneratorConfig::default()
    };
    config.source = SourceConfig::Generator(generator.clone());
    let pipeline = &mut config.pipeline;
    pipeline.aggregations.push(AggregationConfig {
        name: "bench_by_type_1s".into(),
        window: WindowConfig::Tumbling { size: Millis(1_000) },
        group_by: GroupBy::EventType,
    });
    let mut levels = Levels::default();
    levels.set(Severity::Critical, 500.0);
    pipeline.anomalies = vec![
        AnomalyConfig::Event(EventRule {
            name: "bench_slow_event".into(),
            metric: Some(EventMetric::LatencyMs),
            levels,
            event_type: None,
            status: None,
            severity: Severity::Critical,
            group_by: GroupBy::UserId,
            cooldown: Some(Millis(0)),
        }),
        AnomalyConfig::Threshold(ThresholdRule {
            name: "bench_every_window".into(),
            aggregation: "bench_by_type_1s".into(),
            metric: Metric::Count,
            direction: Direction::Above,
            levels: Levels { low: Some(0.0), ..Levels::default() },
            min_count: 1,
            cooldown: Some(Millis(0)),
        }),
    ];
    pipeline.alerts.conditions = None;
    pipeline.alerts.severity_levels.clear();
    let control = Arc::new(RunControl::default());
    let new_histogram =
        || Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds")));
    let (events, windows) = (new_histogram(), new_histogram());
    let writer = LatencyWriter {
        events: events.clone(),
        windows: windows.clone(),
        out_of_orderness_ms: config.pipeline.watermark.max_out_of_orderness.0,
        control: control.clone(),
    };
    eprintln!(
        "rtsa bench: alert latency at {} events/s for {} s on {} workers (watermark trails by {}) …",
        args.rate, args.seconds, args.workers, config.pipeline.watermark.max_out_of_orderness
    );
    let stopper = control.clone();
    let seconds = args.seconds;
    std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs(seconds));
        stopper.request_stop();
    });
    let options = RunOptions { workers: usize::from(args.workers), ..RunOptions::default() };
    let source =
        Arc::new(crate::sources::generator::GeneratorSource::new(&generator, dataflows::control::wall_clock_ms()));
    let output = Output::CountWithAlerts(Box::new(writer));
    let summary = run::run(Arc::new(config), &options, source, output, control.clone(), None)?;
    let processed = Counters::get(&control.counters.events_in);
    let elapsed = summary.elapsed.as_secs_f64();
    let line = serde_json::json!({
        "events": processed,
        "workers": args.workers,
        "seconds": (elapsed * 1000.0).round() / 1000.0,
        "events_per_sec": (processed as f64 / elapsed).round(),
        "peak_rss_mb": (peak_rss_mb() * 10.0).round() / 10.0,
        "event_alert_ms": report(&events.lock().unwrap_or_else(|p| p.into_inner())),
        "window_alert_ms": report(&windows.lock().unwrap_or_else(|p| p.into_inner())),
    });
    print_line(&line.to_string());
    Ok(ExitCode::SUCCESS)
}

/// Runs `rtsa bench`.
pub fn bench(args: &BenchArgs) -> Result<ExitCode, Error> {
    let config = load_config(args.config.as_deref())?;
    if args.alert_latency {
        return alert_latency(args, config);
    }
    eprintln!("rtsa bench: generating {} events in {} partitions …", args.events, args.partitions);
    let partitions = generate_partitions(args.events, args.partitions, args.seed, args.event_time_rate);
    let bytes: usize = partitions.iter().map(|p| p.byte_len()).sum();
    eprintln!(
        "rtsa bench: {:.1} MiB of JSON; running {} aggregations on {} workers …",
        bytes as f64 / 1048576.0,
        config.pipeline.aggregations.len(),
        args.workers
    );
    let control = Arc::new(RunControl::default());
    // The generated events cannot be read again: a benchmark with checkpoints always starts over.
    let options = RunOptions { workers: usize::from(args.workers), fresh: args.sinks, ..RunOptions::default() };
    let checkpointed = args.sinks && config.checkpoint.store != crate::config::CheckpointStoreKind::None;
    let source = Arc::new(MemorySource::new(partitions));
    let output = if args.sinks { Output::Configured } else { Output::Count };
    let (server, live) = if args.http { crate::http::serve(&config, 0, &control)? } else { None }.unzip();
    // The input is freed after the clock stops, as it was generated before it started (freeing
    // 736 MiB took 50 ms of one thread: a serial tail in the figure of any worker count).
    let summary = run::run(Arc::new(config), &options, source.clone(), output, control.clone(), live)?;
    drop(server);
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
        checkpoints: checkpointed.then(|| CheckpointReport {
            completed: Counters::get(&control.counters.checkpoints),
            last_bytes: Counters::get(&control.counters.checkpoint_bytes),
            last_ms: Counters::get(&control.counters.checkpoint_duration_ms),
        }),
    };
    let line = serde_json::to_string(&report).map_err(|e| Error::Internal(format!("the report: {e}")))?;
    print_line(&line);
    drop(source);
    Ok(ExitCode::SUCCESS)
}
