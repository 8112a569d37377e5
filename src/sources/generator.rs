//! The synthetic event generator: deterministic for a seed and partition.
//!
//! It models a busy web product: skewed event types, Zipf-distributed users with sessions,
//! log-normal latencies with rare spikes, error bursts for one event type at a time, a share of
//! events delivered out of order within `max_delay`, and a small share delayed by `late_delay`
//! (beyond the watermark, so they are late). Partitions are independent streams whose seeds are
//! derived from the seed and the partition index.
//!
//! With `incidents: true` it also injects known incidents at known times after the start
//! ([`INCIDENTS`]): an error burst of `purchase` (10–12 min, 80% errors), a brute-force login
//! sequence of `user_attacker` (15 min: six failed logins, then a success), a latency spike of
//! `search` (20–21 min, ×20), one `api_call` of 90 s (22 min, `user_slow`), and a never-seen
//! transition `page_view → admin_export` in session `s-intruder-1` (25 min). Bursts and spikes
//! apply to every partition; the scripted events go to partition 0.

use super::{OwnedPartitions, Partition, PartitionPosition, Poll, Source, SourceError, SourceKind, start_of};
use crate::config::GeneratorConfig;
use dataflows::memory::MemoryLines;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, LogNormal, Zipf};
use rustc_hash::FxHashMap;
use serde::Serialize;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Instant;

/// Event types with their relative weights, typical latency (ms) and base error rate.
const EVENT_TYPES: [(&str, u32, f64, f64); 8] = [
    ("page_view", 40, 80.0, 0.005),
    ("click", 25, 40.0, 0.005),
    ("search", 12, 150.0, 0.01),
    ("api_call", 8, 60.0, 0.02),
    ("add_to_cart", 6, 90.0, 0.01),
    ("login", 5, 200.0, 0.05),
    ("purchase", 3, 300.0, 0.02),
    ("logout", 1, 30.0, 0.0),
];

/// A session ends after this much event time without events from its user.
const SESSION_IDLE_MS: u64 = 10 * 60_000;
/// Every this much event time the most active users change (users take breaks), so that
/// per-user sessions end as they do in real traffic.
const USER_ROTATION_MS: u64 = 10 * 60_000;
/// Every this much event time, one event type has an error burst …
const BURST_PERIOD_MS: u64 = 10 * 60_000;
/// … lasting this long, with this error rate.
const BURST_LENGTH_MS: u64 = 30_000;
const BURST_ERROR_RATE: f64 = 0.3;

/// The incident schedule, in ms after the start: (name, from, to).
pub const INCIDENTS: [(&str, u64, u64); 5] = [
    ("purchase_error_burst", 600_000, 720_000),
    ("brute_force_login", 900_000, 912_000),
    ("search_latency_spike", 1_200_000, 1_260_000),
    ("slow_api_call", 1_320_000, 1_320_001),
    ("never_seen_transition", 1_500_000, 1_501_000),
];

fn scripted_incidents(start_ms: u64) -> Vec<GeneratedEvent> {
    let event =
        |offset: u64, event_type: &'static str, user: &str, session: &str, latency: f64, error: bool| GeneratedEvent {
            event_id: format!("incident-{offset}-{event_type}"),
            event_type,
            user_id: user.to_owned(),
            session_id: session.to_owned(),
            timestamp: start_ms + offset,
            latency_ms: Some(latency),
            value: None,
            status: if error { "error" } else { "ok" },
        };
    let mut events: Vec<GeneratedEvent> =
        (0..6).map(|i| event(900_000 + i * 2_000, "login", "user_attacker", "s-attacker-1", 180.0, true)).collect();
    events.push(event(912_000, "login", "user_attacker", "s-attacker-1", 150.0, false));
    events.push(event(1_320_000, "api_call", "user_slow", "s-slow-1", 90_000.0, false));
    events.push(event(1_500_000, "page_view", "user_intruder", "s-intruder-1", 40.0, false));
    events.push(event(1_501_000, "admin_export", "user_intruder", "s-intruder-1", 900.0, false));
    events
}

/// One generated event, serialized as a contract event (CONTRACT section 2).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GeneratedEvent {
    /// Unique id: `e-{partition}-{sequence}`.
    pub event_id: String,
    /// Event type.
    pub event_type: &'static str,
    /// `user_{rank}`.
    pub user_id: String,
    /// `s-{rank}-{n}`.
    pub session_id: String,
    /// Event time, ms.
    pub timestamp: u64,
    /// Latency, ms (absent for some event types).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    /// Value (absent for most event types).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// `ok` or `error`.
    pub status: &'static str,
}

/// The generator of one partition.
pub struct Generator {
    rng: SmallRng,
    partition: u32,
    sequence: u64,
    count: Option<u64>,
    start_ms: u64,
    ms_per_event: f64,
    users: Zipf<f64>,
    user_count: u64,
    sessions: FxHashMap<u64, (u64, u32)>,
    type_weight_total: u32,
    out_of_order_fraction: f64,
    max_delay: u64,
    late_fraction: f64,
    late_delay: u64,
    incidents: bool,
    error_bursts: bool,
    scripted: std::collections::VecDeque<GeneratedEvent>,
}

impl Generator {
    /// The generator of partition `partition` of `partitions`, whose first event is at `start_ms`.
    pub fn new(config: &GeneratorConfig, start_ms: u64, partition: u32, partitions: u32) -> Generator {
        let partitions = partitions.max(1);
        let count = (config.count > 0).then(|| {
            let base = config.count / u64::from(partitions);
            base + u64::from(u64::from(partition) < config.count % u64::from(partitions))
        });
        let seed = config.seed ^ (u64::from(partition) + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        Generator {
            rng: SmallRng::seed_from_u64(seed),
            partition,
            sequence: 0,
            count,
            start_ms,
            ms_per_event: 1000.0 * f64::from(partitions) / config.effective_event_time_rate().max(1) as f64,
            users: Zipf::new(config.users.get(), 1.1).expect("Zipf parameters are valid for users >= 1"),
            user_count: config.users.get(),
            sessions: FxHashMap::default(),
            type_weight_total: EVENT_TYPES.iter().map(|t| t.1).sum(),
            out_of_order_fraction: config.out_of_order_fraction,
            max_delay: config.max_delay.0,
            late_fraction: config.late_fraction,
            late_delay: config.late_delay.0,
            incidents: config.incidents,
            error_bursts: config.error_bursts,
            scripted: if config.incidents && partition == 0 {
                scripted_incidents(start_ms).into()
            } else {
                Default::default()
            },
        }
    }

    /// The next event, or `None` when the partition's count is reached.
    pub fn next_event(&mut self) -> Option<GeneratedEvent> {
        if self.count.is_some_and(|c| self.sequence >= c) {
            return None;
        }
        let sequence = self.sequence;
        self.sequence += 1;
        let now = self.start_ms + (sequence as f64 * self.ms_per_event) as u64;
        if self.scripted.front().is_some_and(|e| e.timestamp <= now) {
            return self.scripted.pop_front();
        }
        let since_start = now.saturating_sub(self.start_ms);
        let incident = |name: &str| {
            self.incidents && INCIDENTS.iter().any(|(n, from, to)| *n == name && (*from..*to).contains(&since_start))
        };
        let purchase_burst = incident("purchase_error_burst");
        let search_spike = incident("search_latency_spike");

        let mut pick = self.rng.gen_range(0..self.type_weight_total);
        let type_index = EVENT_TYPES
            .iter()
            .position(|t| {
                if pick < t.1 {
                    true
                } else {
                    pick -= t.1;
                    false
                }
            })
            .unwrap_or(0);
        let (event_type, _, typical_latency, base_error_rate) = EVENT_TYPES[type_index];

        let rank = self.users.sample(&mut self.rng) as u64;
        let user = (rank - 1 + (now / USER_ROTATION_MS) * 7_919) % self.user_count + 1;
        let session = self.sessions.entry(user).or_insert((now, 1));
        if now.saturating_sub(session.0) > SESSION_IDLE_MS {
            session.1 += 1;
        }
        session.0 = now;
        let session_number = session.1;

        let burst = now / BURST_PERIOD_MS;
        let in_burst = self.error_bursts
            && now % BURST_PERIOD_MS < BURST_LENGTH_MS
            && (burst as usize) % EVENT_TYPES.len() == type_index;
        let error_rate = if purchase_burst && event_type == "purchase" {
            0.8
        } else if in_burst {
            BURST_ERROR_RATE
        } else {
            base_error_rate
        };
        let is_error = self.rng.gen_bool(error_rate);

        let latency_ms = (event_type != "logout").then(|| {
            let spread = LogNormal::new(typical_latency.ln(), 0.5).expect("log-normal parameters are valid");
            let mut latency: f64 = spread.sample(&mut self.rng);
            if self.rng.gen_bool(0.005) {
                latency *= self.rng.gen_range(10.0..30.0);
            }
            if is_error {
                latency *= 2.0;
            }
            if search_spike && event_type == "search" {
                latency *= 20.0;
            }
            (latency * 1000.0).round() / 1000.0
        });
        let value = match event_type {
            "purchase" => {
                let amount: f64 = LogNormal::new(40f64.ln(), 0.8).expect("valid").sample(&mut self.rng);
                Some((amount * 100.0).round() / 100.0)
            }
            "add_to_cart" => Some(f64::from(self.rng.gen_range(1..=5u32))),
            _ => None,
        };

        let roll: f64 = self.rng.r#gen();
        let delay = if roll < self.late_fraction {
            self.late_delay + self.rng.gen_range(0..1_000)
        } else if roll < self.late_fraction + self.out_of_order_fraction {
            self.rng.gen_range(0..=self.max_delay)
        } else {
            0
        };

        Some(GeneratedEvent {
            event_id: format!("e-{}-{sequence}", self.partition),
            event_type,
            user_id: format!("user_{user}"),
            session_id: format!("s-{user}-{session_number}"),
            timestamp: now.saturating_sub(delay),
            latency_ms,
            value,
            status: if is_error { "error" } else { "ok" },
        })
    }

    /// Generates and drops events until `next` have been generated (the partition's position).
    pub fn skip(&mut self, next: u64) {
        while self.sequence < next && self.next_event().is_some() {}
    }

    /// Writes the next event as one JSON line (without newline) into `out`; false when done.
    pub fn next_json(&mut self, out: &mut Vec<u8>) -> bool {
        out.clear();
        match self.next_event() {
            Some(event) => {
                serde_json::to_writer(&mut *out, &event).expect("writing JSON to memory cannot fail");
                true
            }
            None => false,
        }
    }
}

/// The generator as a source: `config.partitions` independent partitions; a partition's
/// position is the index of its next event, and it resumes there by generating and dropping the
/// events before it (deterministic per seed, so the rest is the same as without the restart).
pub struct GeneratorSource {
    config: GeneratorConfig,
    start_ms: u64,
}

impl GeneratorSource {
    /// The generator of `config`, its first event at `start_ms`.
    pub fn new(config: &GeneratorConfig, start_ms: u64) -> GeneratorSource {
        GeneratorSource { config: config.clone(), start_ms }
    }
}

impl Source for GeneratorSource {
    fn kind(&self) -> SourceKind {
        SourceKind { name: "generator", by_line: false }
    }
    fn partition_count(&self) -> u32 {
        self.config.partitions.get()
    }
    fn open(&self, indexes: &[u32], from: &[(u32, PartitionPosition)]) -> Result<OwnedPartitions, SourceError> {
        Ok(indexes
            .iter()
            .map(|&p| {
                let mut generator = Generator::new(&self.config, self.start_ms, p, self.config.partitions.get());
                generator.skip(start_of(from, p).next);
                let partition = GeneratorPartition::new(generator, self.config.rate, self.config.partitions.get());
                (p, Box::new(partition) as Box<dyn Partition>)
            })
            .collect())
    }
}

/// Generates `events` events over `partitions` partitions (in parallel, one thread per core) as
/// in-memory JSON lines: what `rtsa bench`, the criterion benches and the tests feed the engine
/// with, so that a measurement times the engine and not the generator or the disk.
pub fn generate_partitions(events: u64, partitions: u32, seed: u64, event_time_rate: u64) -> Vec<Arc<MemoryLines>> {
    let config = GeneratorConfig {
        count: events,
        rate: 0,
        seed,
        partitions: NonZeroU32::new(partitions).unwrap_or(NonZeroU32::MIN),
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
            // A generator thread only panics on a bug; re-raise it here rather than hide it.
            for (p, lines) in handle.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)) {
                results[p as usize] = Some(lines);
            }
        }
    });
    results.into_iter().flatten().collect()
}

/// A generator partition paced to a rate of wall time (0 = as fast as possible).
pub struct GeneratorPartition {
    generator: Generator,
    events_per_sec: f64,
    started: Option<Instant>,
    produced: u64,
    buffer: Vec<u8>,
}

impl GeneratorPartition {
    /// Paces `generator` to its share of `total_rate` events per second over `partitions`.
    pub fn new(generator: Generator, total_rate: u64, partitions: u32) -> GeneratorPartition {
        let events_per_sec = total_rate as f64 / f64::from(partitions.max(1));
        GeneratorPartition { generator, events_per_sec, started: None, produced: 0, buffer: Vec::new() }
    }
}

impl Partition for GeneratorPartition {
    fn poll(&mut self, budget: usize, emit: &mut dyn FnMut(&[u8], u64)) -> Result<Poll, SourceError> {
        let allowed = if self.events_per_sec > 0.0 {
            let started = *self.started.get_or_insert_with(Instant::now);
            let due = (started.elapsed().as_secs_f64() * self.events_per_sec) as u64;
            (due.saturating_sub(self.produced) as usize).min(budget)
        } else {
            budget
        };
        for _ in 0..allowed {
            let offset = self.generator.sequence;
            if !self.generator.next_json(&mut self.buffer) {
                return Ok(Poll::Finished);
            }
            self.produced += 1;
            emit(&self.buffer, offset);
        }
        if self.generator.count.is_some_and(|c| self.generator.sequence >= c) {
            return Ok(Poll::Finished);
        }
        Ok(if allowed == budget { Poll::Ready } else { Poll::Pending })
    }

    fn position(&self) -> PartitionPosition {
        PartitionPosition { next: self.generator.sequence, lines: 0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> GeneratorConfig {
        GeneratorConfig { count: 2_000, rate: 0, start_ms: Some(1_764_230_400_000), ..GeneratorConfig::default() }
    }

    #[test]
    fn same_seed_same_events() {
        let a: Vec<_> = std::iter::from_fn({
            let mut g = Generator::new(&config(), 1_764_230_400_000, 0, 1);
            move || g.next_event()
        })
        .collect();
        let b: Vec<_> = std::iter::from_fn({
            let mut g = Generator::new(&config(), 1_764_230_400_000, 0, 1);
            move || g.next_event()
        })
        .collect();
        assert_eq!(a.len(), 2_000);
        assert_eq!(a, b);
        let mut other = Generator::new(&GeneratorConfig { seed: 8, ..config() }, 1_764_230_400_000, 0, 1);
        assert_ne!(other.next_event(), Some(a[0].clone()));
    }

    #[test]
    fn a_partition_resumes_at_its_position_with_the_same_events() {
        let source =
            GeneratorSource::new(&GeneratorConfig { partitions: NonZeroU32::MIN, ..config() }, 1_764_230_400_000);
        let read = |from: &[(u32, PartitionPosition)], budget: usize| {
            let mut parts = source.open(&[0], from).unwrap();
            let mut lines = Vec::new();
            parts[0].1.poll(budget, &mut |bytes, offset| lines.push((bytes.to_vec(), offset))).unwrap();
            (lines, parts[0].1.position())
        };
        let (all, _) = read(&[], 2_000);
        let (head, at) = read(&[], 700);
        assert_eq!(at, PartitionPosition { next: 700, lines: 0 });
        let (tail, _) = read(&[(0, at)], 2_000);
        assert_eq!([head, tail].concat(), all);
    }

    #[test]
    fn counts_are_split_over_partitions() {
        let total: usize = (0..3)
            .map(|p| {
                let mut g = Generator::new(&config(), 0, p, 3);
                std::iter::from_fn(move || g.next_event()).count()
            })
            .sum();
        assert_eq!(total, 2_000);
    }

    #[test]
    fn events_are_valid_and_some_are_out_of_order() {
        let mut g = Generator::new(&GeneratorConfig { count: 20_000, ..config() }, 1_764_230_400_000, 0, 1);
        let mut buffer = Vec::new();
        let mut max_ts = 0;
        let mut disordered = 0;
        let mut types = std::collections::HashSet::new();
        while g.next_json(&mut buffer) {
            let event = dataflows::event::parse_event(&buffer, 1 << 16).expect("generated events are valid");
            if event.timestamp < max_ts {
                disordered += 1;
            }
            max_ts = max_ts.max(event.timestamp);
            types.insert(event.event_type.to_string());
        }
        assert!(disordered > 50, "{disordered}");
        assert_eq!(types.len(), EVENT_TYPES.len());
    }
}
