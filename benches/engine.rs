//! Criterion benches: the parser, window assignment, the percentile scan, a partition cut into
//! chunks by a reader thread, and the whole pipeline on 100k events (four partitions, and one
//! partition read by one worker or fed to two).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dataflows::chunks::{ChunkLines, ChunkedInput};
use dataflows::control::RunControl;
use dataflows::event::{parse_event, parse_event_by_serde};
use dataflows::feed::ChunkFeed;
use dataflows::memory::{MemoryPartition, MemorySource};
use dataflows::source::{OwnedPartitions, PartitionPosition, Source, SourceError, SourceKind};
use dataflows::stats::{PartialStats, percentile_buckets};
use dataflows::window::FixedWindows;
use rtsa::config::Config;
use rtsa::run::{self, Output, RunOptions};
use std::hint::black_box;
use std::sync::Arc;

fn parser(c: &mut Criterion) {
    let lines = rtsa::sources::generator::generate_partitions(10_000, 1, 7, 10_000);
    let lines = &lines[0];
    let mut group = c.benchmark_group("parser");
    group.throughput(Throughput::Elements(lines.len() as u64));
    group.bench_function("parse_event x10k", |b| {
        b.iter(|| {
            for i in 0..lines.len() {
                black_box(parse_event(lines.line(i), 1 << 16).ok());
            }
        })
    });
    group.bench_function("parse_event_by_serde x10k", |b| {
        b.iter(|| {
            for i in 0..lines.len() {
                black_box(parse_event_by_serde(lines.line(i), 1 << 16).ok());
            }
        })
    });
    group.finish();
}

fn windows(c: &mut Criterion) {
    let sliding = FixedWindows { size: 300_000, slide: 60_000 };
    c.bench_function("window_ends sliding 5m/1m", |b| {
        let mut ts = 1_764_230_400_000u64;
        b.iter(|| {
            ts += 7;
            black_box(sliding.window_ends(black_box(ts)).sum::<u64>())
        })
    });
}

fn percentiles(c: &mut Criterion) {
    let mut partial = PartialStats::default();
    for i in 0..100_000u64 {
        partial.add(false, Some((i % 5_000) as f64 * 0.37 + 0.1), None, None);
    }
    let buckets = partial.buckets.into_sorted();
    c.bench_function("percentile_buckets over a 100k-latency window", |b| {
        b.iter(|| black_box(percentile_buckets(&buckets)))
    });
    c.bench_function("PartialStats::add", |b| {
        let mut p = PartialStats::default();
        let mut x = 0.0;
        b.iter(|| {
            x += 0.37;
            p.add(false, Some(black_box(x % 900.0)), Some(1.0), None)
        })
    });
}

/// The embedded default's pipeline over `source` with `workers` workers, its sinks only counting.
fn run_embedded_default(config: &Arc<Config>, source: Arc<dyn Source>, workers: usize) -> run::RunSummary {
    let options = RunOptions { workers, ..RunOptions::default() };
    run::run(config.clone(), &options, source, Output::Count, Arc::new(RunControl::default()), None).unwrap()
}

fn pipeline(c: &mut Criterion) {
    let partitions = rtsa::sources::generator::generate_partitions(100_000, 4, 7, 10_000);
    let config = Arc::new(Config::embedded_default());
    let mut group = c.benchmark_group("pipeline");
    group.sample_size(10);
    group.throughput(Throughput::Elements(100_000));
    for workers in [1, 2] {
        group.bench_function(format!("embedded default aggregations, 100k events, {workers} workers"), |b| {
            b.iter(|| run_embedded_default(&config, Arc::new(MemorySource::new(partitions.clone())), workers))
        });
    }
    group.finish();
}

/// A partition cut into 1 MiB chunks by a reader thread and every chunk taken, as a worker takes
/// its own: the reader thread's cost per input, without the parsing.
fn feed(c: &mut Criterion) {
    let lines = rtsa::sources::generator::generate_partitions(100_000, 1, 7, 10_000).remove(0);
    let mut group = c.benchmark_group("feed");
    group.throughput(Throughput::Elements(lines.len() as u64));
    group.bench_function("100k inputs cut into 1 MiB chunks and taken", |b| {
        b.iter(|| {
            let partition = Box::new(MemoryPartition::new(lines.clone(), 0));
            let feed = ChunkFeed::start(partition, PartitionPosition::default(), 1 << 20, 4).unwrap();
            let mut reader = feed.reader().unwrap();
            let (mut chunk, mut next, mut inputs) = (ChunkLines::default(), 0, 0);
            loop {
                let count = feed.chunk_count().unwrap();
                while next < count.count {
                    reader.read(next, &mut chunk).unwrap();
                    inputs += chunk.lines.len();
                    next += 1;
                }
                if count.complete && next == count.count {
                    break;
                }
                std::thread::yield_now();
            }
            assert_eq!(inputs, lines.len());
        })
    });
    group.finish();
}

/// An in-memory source of one partition that asks to be fed to every worker, as a pipe and a
/// Kafka topic of one partition do.
struct Fed(MemorySource);

impl Source for Fed {
    fn kind(&self) -> SourceKind {
        self.0.kind()
    }
    fn partition_count(&self) -> u32 {
        self.0.partition_count()
    }
    fn fed_to_every_worker(&self) -> bool {
        true
    }
    fn open(&self, indexes: &[u32], from: &[(u32, PartitionPosition)]) -> Result<OwnedPartitions, SourceError> {
        self.0.open(indexes, from)
    }
}

fn one_partition(c: &mut Criterion) {
    let partitions = rtsa::sources::generator::generate_partitions(100_000, 1, 7, 10_000);
    let config = Arc::new(Config::embedded_default());
    let mut group = c.benchmark_group("one partition");
    group.sample_size(10);
    group.throughput(Throughput::Elements(100_000));
    for (name, workers, fed) in [("read by 1 worker", 1, false), ("fed to 2 workers", 2, true)] {
        group.bench_function(format!("embedded default aggregations, 100k events, {name}"), |b| {
            b.iter(|| {
                let memory = MemorySource::new(partitions.clone());
                let source: Arc<dyn Source> = if fed { Arc::new(Fed(memory)) } else { Arc::new(memory) };
                run_embedded_default(&config, source, workers)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, parser, windows, percentiles, feed, pipeline, one_partition);
criterion_main!(benches);
