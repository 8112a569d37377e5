//! Kafka end to end against a real broker (tansu, started by `scripts/services.sh start`):
//! events produced with `rtsa produce`, read by the engine, metrics and dead letters written to
//! topics and read back with an independent client (kafka-python), compared with the
//! brute-force reference applied to each partition's order as read back from the broker.

use crate::engine::{aggregations_yaml, comparable, reference_aggregations};
use crate::reference;
use crate::util::{rtsa, unique};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

// Every test here starts with `services_or_skip!()`, so these are set when they are read.
pub(crate) fn brokers() -> String {
    std::env::var("RTSA_KAFKA_BROKERS").unwrap_or_default()
}

fn python() -> String {
    std::env::var("RTSA_PYTHON").unwrap_or_default()
}

/// One message read back by kafka-python.
pub(crate) struct Message {
    pub(crate) partition: u32,
    pub(crate) offset: u64,
    pub(crate) key: Option<String>,
    pub(crate) value: String,
}

pub(crate) fn read_topic(topic: &str) -> Vec<Message> {
    read_topic_at(&brokers(), topic)
}

fn read_topic_at(brokers: &str, topic: &str) -> Vec<Message> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kafka_read.py");
    let out = Command::new(python()).arg(script).args([brokers, topic, "4"]).output().unwrap();
    assert!(out.status.success(), "kafka_read.py {topic}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            Message {
                partition: v["partition"].as_u64().unwrap() as u32,
                offset: v["offset"].as_u64().unwrap(),
                key: v["key"].as_str().map(str::to_owned),
                value: v["value"].as_str().unwrap_or_default().to_owned(),
            }
        })
        .collect()
}

pub(crate) struct Topics {
    pub(crate) events: String,
    pub(crate) metrics: String,
    pub(crate) dead_letters: String,
}

/// Writes a config reading `events` and writing the other two topics, and creates the topics.
pub(crate) fn setup(dir: &Path, name: &str, partitions: u32) -> (Topics, std::path::PathBuf) {
    let topics = Topics {
        events: unique(&format!("{name}-events")),
        metrics: unique(&format!("{name}-metrics")),
        dead_letters: unique(&format!("{name}-dl")),
    };
    let config = dir.join(format!("{name}.yaml"));
    std::fs::write(&config, config_text(&topics, &topics.metrics, partitions)).unwrap();
    let out = rtsa().args(["topics", "create", "--brokers", &brokers(), "--config"]).arg(&config).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains(&format!("created {}", topics.events)), "{stdout}");
    (topics, config)
}

fn config_text(topics: &Topics, metrics_topic: &str, partitions: u32) -> String {
    format!(
        r#"
source: {{ kind: kafka, topic: {events}, group_id: {group}, start: earliest, stop_at: end }}
kafka: {{ bootstrap_servers: "{brokers}", partitions: {partitions} }}
watermark: {{ max_out_of_orderness: 5s }}
{aggregations}
sinks:
  metrics: [ {{ kind: kafka, topic: {metrics_topic} }} ]
  dead_letter: {{ kind: kafka, topic: {dead} }}
"#,
        events = topics.events,
        group = group_of(topics),
        brokers = brokers(),
        aggregations = aggregations_yaml(),
        dead = topics.dead_letters
    )
}

/// The consumer group of a config's source.
fn group_of(topics: &Topics) -> String {
    format!("{}-group", topics.events)
}

/// The offsets the group committed, per partition, read with kafka-python.
fn committed(topic: &str, group: &str) -> Vec<u64> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kafka_committed.py");
    let out = Command::new(python()).arg(script).args([&brokers(), topic, group]).output().unwrap();
    assert!(out.status.success(), "kafka_committed.py: {}", String::from_utf8_lossy(&out.stderr));
    let offsets: std::collections::BTreeMap<String, Option<u64>> = serde_json::from_slice(&out.stdout).unwrap();
    let mut by_partition: Vec<(u32, u64)> =
        offsets.into_iter().map(|(p, o)| (p.parse().unwrap(), o.unwrap_or(0))).collect();
    by_partition.sort();
    by_partition.into_iter().map(|(_, o)| o).collect()
}

/// Produces generated events plus some invalid lines with `rtsa produce`.
pub(crate) fn produce(dir: &Path, topic: &str, count: u64) {
    let out = rtsa()
        .args(["produce", "--brokers", &brokers(), "--topic", topic, "--count", &count.to_string()])
        .args(["--start-ms", "1764230400000", "--event-time-rate", "150", "--seed", "21"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let invalid = dir.join(format!("{topic}-invalid.jsonl"));
    std::fs::write(&invalid, "{broken\n{\"timestamp\":1764230400000,\"user_id\":\"u1\"}\n[1]\n").unwrap();
    let out =
        rtsa().args(["produce", "--brokers", &brokers(), "--topic", topic, "--file"]).arg(&invalid).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// The events of each partition, in offset order, as the broker holds them.
fn partitions_of(topic: &str, partitions: u32) -> Vec<Vec<Vec<u8>>> {
    let mut out = vec![Vec::new(); partitions as usize];
    for m in read_topic(topic) {
        out[m.partition as usize].push(m.value.into_bytes());
    }
    out
}

pub(crate) fn metrics_of(topic: &str) -> Vec<Value> {
    read_topic(topic)
        .into_iter()
        .map(|m| {
            let v: Value = serde_json::from_str(&m.value).unwrap();
            let key =
                format!("{}|{}|{}", v["aggregation"].as_str().unwrap(), v["window_start"], v["key"].as_str().unwrap());
            assert_eq!(m.key.as_deref(), Some(key.as_str()), "metrics records are keyed aggregation|window_start|key");
            v
        })
        .collect()
}

fn run(config: &Path, workers: u32) {
    let out = rtsa().args(["run", "--workers", &workers.to_string(), "--config"]).arg(config).output().unwrap();
    assert!(out.status.success(), "rtsa run: {}", String::from_utf8_lossy(&out.stderr));
}

pub(crate) fn assert_matches_reference(events_topic: &str, partitions: u32, metrics: &[Value]) {
    let expected = reference::compute(&partitions_of(events_topic, partitions), &reference_aggregations(), 5_000);
    let problems = reference::compare(metrics, &expected);
    assert!(problems.is_empty(), "{} differences, first: {:#?}", problems.len(), &problems[..problems.len().min(20)]);
    assert!(metrics.len() > 200, "{}", metrics.len());
}

#[test]
fn kafka_to_kafka_matches_the_reference_in_one_and_two_processes() {
    crate::services_or_skip!();
    let dir = tempfile::tempdir().unwrap();
    let (topics, config) = setup(dir.path(), "e2e", 4);
    produce(dir.path(), &topics.events, 12_000);
    run(&config, 2);
    let one = metrics_of(&topics.metrics);
    assert_matches_reference(&topics.events, 4, &one);

    // Invalid messages reach the dead-letter topic with their partition and offset.
    let letters: Vec<Value> =
        read_topic(&topics.dead_letters).iter().map(|m| serde_json::from_str(&m.value).unwrap()).collect();
    let invalid: Vec<&Value> = letters.iter().filter(|l| l["reason"] != "late").collect();
    assert_eq!(invalid.len(), 3, "{invalid:?}");
    for letter in &invalid {
        assert!(letter["position"].as_str().unwrap().starts_with("partition "), "{letter}");
        assert_eq!(letter["source"], "kafka");
    }
    assert!(invalid.iter().any(|l| l["reason"] == "missing_field"));

    // The same topic through a cluster of 2 processes × 2 workers.
    let cluster_metrics = unique("e2e-cluster-metrics");
    let cluster_config = dir.path().join("cluster.yaml");
    std::fs::write(&cluster_config, config_text(&topics, &cluster_metrics, 4)).unwrap();
    let out =
        rtsa().args(["topics", "create", "--brokers", &brokers(), "--config"]).arg(&cluster_config).output().unwrap();
    assert!(out.status.success());
    let out = rtsa()
        .args(["cluster", "--processes", "2", "--workers", "2", "--config"])
        .arg(&cluster_config)
        .output()
        .unwrap();
    assert!(out.status.success(), "rtsa cluster: {}", String::from_utf8_lossy(&out.stderr));
    let two = metrics_of(&cluster_metrics);
    assert_eq!(comparable(&one), comparable(&two));
}

#[test]
fn one_partition_four_workers_and_seven_partitions_two_workers() {
    crate::services_or_skip!();
    for (name, partitions, workers) in [("p1w4", 1, 4), ("p7w2", 7, 2)] {
        let dir = tempfile::tempdir().unwrap();
        let (topics, config) = setup(dir.path(), name, partitions);
        produce(dir.path(), &topics.events, 6_000);
        run(&config, workers);
        assert_matches_reference(&topics.events, partitions, &metrics_of(&topics.metrics));
        // Offsets are committed to the group, so lag shows in standard tools.
        let mut ends = vec![0u64; partitions as usize];
        for m in read_topic(&topics.events) {
            ends[m.partition as usize] = ends[m.partition as usize].max(m.offset + 1);
        }
        assert_eq!(committed(&topics.events, &group_of(&topics)), ends);
        // Restarting from the committed offsets reads nothing more.
        let again = std::fs::read_to_string(&config).unwrap().replace("start: earliest", "start: committed");
        std::fs::write(&config, again).unwrap();
        let out = rtsa().args(["run", "--config"]).arg(&config).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && stderr.contains("done: 0 events"), "{stderr}");
    }
}

#[test]
fn tail_prints_the_metrics_topic() {
    crate::services_or_skip!();
    let dir = tempfile::tempdir().unwrap();
    let (topics, config) = setup(dir.path(), "tail", 2);
    produce(dir.path(), &topics.events, 2_000);
    run(&config, 1);
    let expected = read_topic(&topics.metrics).len();
    let out = rtsa()
        .args([
            "tail",
            "--brokers",
            &brokers(),
            "--topic",
            &topics.metrics,
            "--from-beginning",
            "--json",
            "--idle-exit",
            "3s",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), expected);
    let out = rtsa()
        .args(["tail", "--brokers", &brokers(), "--topic", &topics.metrics, "--from-beginning", "--max-records", "5"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 5, "{text}");
    assert!(text.lines().all(|l| l.contains("count=")), "{text}");
}

#[test]
fn a_missing_topic_is_a_clean_runtime_error() {
    crate::services_or_skip!();
    let dir = tempfile::tempdir().unwrap();
    let topics = Topics { events: unique("absent"), metrics: unique("absent-m"), dead_letters: unique("absent-dl") };
    let config = dir.path().join("absent.yaml");
    std::fs::write(&config, config_text(&topics, &topics.metrics, 1)).unwrap();
    let out = rtsa().args(["run", "--config"]).arg(&config).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains(&topics.events), "{stderr}");
}

#[test]
fn a_process_whose_partitions_are_idle_follows_the_cluster() {
    crate::services_or_skip!();
    // A replay (old timestamps) into one partition of two; no `stop_at`, so the run goes on. The
    // process that owns the empty partition must follow the other process's watermark, or no
    // window would ever close.
    let dir = tempfile::tempdir().unwrap();
    let events = unique("idle-events");
    let metrics = dir.path().join("metrics.jsonl");
    let config = dir.path().join("idle.yaml");
    std::fs::write(
        &config,
        format!(
            r#"
source: {{ kind: kafka, topic: {events}, group_id: {events}-group, start: earliest }}
kafka: {{ bootstrap_servers: "{}", partitions: 2 }}
watermark: {{ max_out_of_orderness: 1s, idle_timeout: 1s }}
aggregations:
  - {{ name: t, window: {{ kind: tumbling, size: 1m }}, group_by: none }}
sinks:
  metrics: [ {{ kind: jsonl, path: "{}" }} ]
  dead_letter: {{ kind: jsonl, path: "{}" }}
"#,
            brokers(),
            metrics.display(),
            dir.path().join("dl.jsonl").display()
        ),
    )
    .unwrap();
    let out = rtsa().args(["topics", "create", "--brokers", &brokers(), "--config"]).arg(&config).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // One user: every message has the same key, hence the same partition.
    let lines: String = (0..240)
        .map(|i| {
            format!(
                "{{\"event_type\":\"click\",\"user_id\":\"u1\",\"timestamp\":{}}}\n",
                1_764_230_400_000u64 + i * 1000
            )
        })
        .collect();
    let file = dir.path().join("events.jsonl");
    std::fs::write(&file, lines).unwrap();
    let out =
        rtsa().args(["produce", "--brokers", &brokers(), "--topic", &events, "--file"]).arg(&file).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let mut cluster = rtsa()
        .args(["cluster", "--processes", "2", "--workers", "1", "--config"])
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // The data partition's watermark ends at 238 s: the first three minutes close.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let records = loop {
        // Complete lines only: the sink may be writing.
        let text = std::fs::read_to_string(&metrics).unwrap_or_default();
        let records: Vec<Value> = text
            .split_inclusive('\n')
            .filter(|l| l.ends_with('\n'))
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        if records.len() >= 3 || std::time::Instant::now() > deadline {
            break records;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let _ = Command::new("kill").args(["-INT", &cluster.id().to_string()]).status();
    let _ = cluster.wait();
    assert!(records.len() >= 3, "windows stayed open: {records:?}");
    for (i, record) in records.iter().take(3).enumerate() {
        assert_eq!(record["window_start"], 1_764_230_400_000u64 + i as u64 * 60_000, "{record}");
        assert_eq!(record["count"], 60, "{record}");
    }
}

/// A tansu broker of the test's own (free port, memory storage), stopped by PID.
struct OwnBroker {
    address: String,
    child: std::process::Child,
}

impl OwnBroker {
    fn start() -> OwnBroker {
        let tansu =
            crate::util::services("a broker of the test's own").expect("its tests check the services first").tansu;
        let port = crate::cluster::free_port();
        let address = format!("127.0.0.1:{port}");
        let url = format!("tcp://{address}");
        let child = Command::new(tansu)
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        crate::cluster::wait_for_port(port, "tansu");
        OwnBroker { address, child }
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill").args([signal, &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
    }
    /// Runs `rtsa run --config config --workers workers` while the broker stops answering
    /// (SIGSTOP) for 2 s, `after` into the run; returns once the run has finished, successfully.
    fn stall_during_run(&self, config: &Path, workers: u32, after: std::time::Duration) {
        let mut run = rtsa()
            .args(["run", "--workers", &workers.to_string(), "--config"])
            .arg(config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(after);
        self.signal("-STOP");
        std::thread::sleep(std::time::Duration::from_secs(2));
        self.signal("-CONT");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        while run.try_wait().unwrap().is_none() {
            assert!(std::time::Instant::now() < deadline, "the run did not finish after the broker resumed");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let out = run.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        self.signal("-CONT");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_stalled_broker_delays_the_metrics_but_loses_none() {
    crate::services_or_skip!();
    let broker = OwnBroker::start();
    let dir = tempfile::tempdir().unwrap();
    let jsonl = dir.path().join("metrics.jsonl");
    let config = dir.path().join("stall.yaml");
    // A live generator for 4 s; 1-second windows close during the run, 500 ms after their end.
    std::fs::write(
        &config,
        format!(
            r#"
source: {{ kind: generator, rate: 1000, count: 4000, partitions: 2, seed: 3 }}
kafka: {{ bootstrap_servers: "{}", partitions: 2 }}
watermark: {{ max_out_of_orderness: 500ms }}
aggregations:
  - {{ name: t, window: {{ kind: tumbling, size: 1s }}, group_by: event_type }}
sinks:
  metrics: [ {{ kind: kafka, topic: stall-metrics }}, {{ kind: jsonl, path: "{}" }} ]
  dead_letter: {{ kind: jsonl, path: "{}" }}
"#,
            broker.address,
            jsonl.display(),
            dir.path().join("dl.jsonl").display()
        ),
    )
    .unwrap();
    let out =
        rtsa().args(["topics", "create", "--brokers", &broker.address, "--config"]).arg(&config).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The broker stops answering for 2 s in the middle of the run, then resumes.
    broker.stall_during_run(&config, 1, std::time::Duration::from_millis(1_500));

    let written = crate::engine::read_jsonl(&jsonl);
    assert!(written.len() > 20, "{} records", written.len());
    let in_kafka: Vec<Value> = read_topic_at(&broker.address, "stall-metrics")
        .iter()
        .map(|m| serde_json::from_str(&m.value).unwrap())
        .collect();
    assert_eq!(comparable(&in_kafka), comparable(&written), "every record in the topic exactly once");
}

#[test]
fn a_stalled_broker_pauses_the_source_and_the_results_are_unchanged() {
    crate::services_or_skip!();
    let broker = OwnBroker::start();
    // Two partitions read by one worker; one partition fed to two workers by a reader thread.
    for (partitions, workers) in [(2, 1), (1, 2)] {
        let dir = tempfile::tempdir().unwrap();
        let topic = format!("stall-events-p{partitions}");
        let config_for = |name: &str| {
            let path = dir.path().join(format!("{name}.yaml"));
            std::fs::write(
                &path,
                format!(
                    r#"
source: {{ kind: kafka, topic: {topic}, group_id: {name}, start: earliest, stop_at: end }}
kafka: {{ bootstrap_servers: "{brokers}", partitions: {partitions} }}
{aggregations}
sinks:
  metrics: [ {{ kind: jsonl, path: "{metrics}" }} ]
  dead_letter: {{ kind: jsonl, path: "{dead}" }}
"#,
                    brokers = broker.address,
                    aggregations = crate::engine::aggregations_yaml(),
                    metrics = dir.path().join(format!("{name}-metrics.jsonl")).display(),
                    dead = dir.path().join(format!("{name}-dl.jsonl")).display()
                ),
            )
            .unwrap();
            path
        };
        let (calm, stalled) = (config_for("calm"), config_for("stalled"));
        let out =
            rtsa().args(["topics", "create", "--brokers", &broker.address, "--config"]).arg(&calm).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let out = rtsa()
            .args(["produce", "--brokers", &broker.address, "--topic", &topic, "--count", "300000"])
            .args(["--start-ms", "1764230400000", "--event-time-rate", "2000", "--seed", "8"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let out = rtsa().args(["run", "--config"]).arg(&calm).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

        // The same topic again, the broker stopped (SIGSTOP) for 2 s while the source reads.
        broker.stall_during_run(&stalled, workers, std::time::Duration::from_millis(200));
        let read = |name: &str| crate::engine::read_jsonl(&dir.path().join(format!("{name}-metrics.jsonl")));
        let (before, after) = (read("calm"), read("stalled"));
        assert!(before.len() > 1_000, "{}", before.len());
        assert_eq!(comparable(&before), comparable(&after), "{partitions} partitions, {workers} workers");
    }
}

/// A config reading `events` to its end and writing metrics, alerts (to `kafka.alerts_topic`)
/// and dead letters to the topics named.
fn output_topics_config(events: &str, group: &str, outputs: [&str; 3], create: bool) -> String {
    let [metrics, alerts, dead] = outputs;
    format!(
        r#"
source: {{ kind: kafka, topic: {events}, group_id: {group}, stop_at: end }}
kafka: {{ bootstrap_servers: "{brokers}", partitions: 3, alerts_topic: {alerts}, create_topics: {create} }}
aggregations:
  - {{ name: by_type_1m, window: {{ kind: tumbling, size: 1m }}, group_by: event_type }}
anomalies:
  - {{ kind: threshold, name: every_window, aggregation: by_type_1m, metric: count, levels: {{ low: 0 }}, cooldown: 0s }}
sinks:
  metrics: [ {{ kind: kafka, topic: {metrics} }} ]
  alerts: [ {{ kind: kafka }} ]
  dead_letter: {{ kind: kafka, topic: {dead} }}
"#,
        brokers = brokers()
    )
}

#[test]
fn missing_output_topics_are_created_before_the_first_record() {
    crate::services_or_skip!();
    // Regression: with only the events topic created, the run processed its input and then failed
    // with `326 records could not be delivered (UnknownTopicOrPartition)`.
    let dir = tempfile::tempdir().unwrap();
    let events = unique("autocreate-events");
    let kafka = rtsa::config::KafkaConfig {
        bootstrap_servers: brokers(),
        partitions: std::num::NonZeroU32::new(2).unwrap(),
        ..Default::default()
    };
    rtsa::kafka::create_topics(&kafka, std::slice::from_ref(&events)).unwrap();
    produce(dir.path(), &events, 3_000);
    let path = dir.path().join("autocreate.yaml");

    let outputs = [unique("autocreate-m"), unique("autocreate-a"), unique("autocreate-dl")];
    let names = [outputs[0].as_str(), outputs[1].as_str(), outputs[2].as_str()];
    std::fs::write(&path, output_topics_config(&events, &format!("{events}-group"), names, true)).unwrap();
    let out = rtsa().args(["run", "--config"]).arg(&path).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    for topic in &outputs {
        assert!(stderr.contains(&format!("created {topic} (3 partitions)")), "{topic} not created: {stderr}");
    }
    let records = metrics_of(&outputs[0]);
    assert!(records.len() >= 8, "{} metrics records (one per event type at least)", records.len());
    let alerts = read_topic(&outputs[1]);
    assert!(!alerts.is_empty() && alerts.iter().all(|m| m.value.contains("every_window")), "alerts: {}", alerts.len());
    let invalid = read_topic(&outputs[2]).iter().filter(|m| !m.value.contains(r#""reason":"late""#)).count();
    assert_eq!(invalid, 3, "the three invalid lines are dead letters");

    // With kafka.create_topics: false a missing output topic fails the start, before any input is read.
    let outputs = [unique("nocreate-m"), unique("nocreate-a"), unique("nocreate-dl")];
    let names = [outputs[0].as_str(), outputs[1].as_str(), outputs[2].as_str()];
    let group = format!("{events}-nocreate");
    std::fs::write(&path, output_topics_config(&events, &group, names, false)).unwrap();
    let out = rtsa().args(["run", "--config"]).arg(&path).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("missing") && stderr.contains("kafka.create_topics is false"), "{stderr}");
    assert!(outputs.iter().all(|t| stderr.contains(t.as_str())), "{stderr}");
    assert_eq!(committed(&events, &group), vec![0, 0], "no input was read");
}

#[test]
fn brokers_that_cannot_be_reached_are_retried_then_a_clear_error() {
    crate::services_or_skip!();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("unreachable.yaml");
    let nobody = crate::util::free_port();
    std::fs::write(
        &path,
        format!(
            r#"
source: {{ kind: kafka, topic: events }}
kafka: {{ bootstrap_servers: "127.0.0.1:{nobody}", connect_timeout: 3s }}
aggregations: [ {{ name: t, window: {{ kind: tumbling, size: 1m }} }} ]
sinks: {{ metrics: [], dead_letter: {{ kind: jsonl, path: {dead} }} }}
"#,
            dead = dir.path().join("dead.jsonl").display()
        ),
    )
    .unwrap();
    let started = std::time::Instant::now();
    let out = rtsa().args(["run", "--config"]).arg(&path).output().unwrap();
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(took >= std::time::Duration::from_secs(2) && took < std::time::Duration::from_secs(20), "took {took:?}");
    assert!(
        stderr.contains(&format!("kafka 127.0.0.1:{nobody}: not reachable within 3s (kafka.connect_timeout)")),
        "{stderr}"
    );
}
