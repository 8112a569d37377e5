//! Checkpoints in the real Redis: kill -9 at random moments and restarts with other worker
//! counts give every metrics record and dead letter exactly once, equal to a run without
//! crashes — in JSONL files and in Kafka topics read back with kafka-python; a run after the end
//! adds nothing; `--fresh` starts over; a changed config is refused.

use crate::util::{comparable, read_jsonl, rtsa, unique};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

/// A config over `events` writing to `out/`, with checkpoints named `name` (or none).
fn config(dir: &Path, events: &Path, out: &str, checkpoint: Option<(&str, &str)>) -> std::path::PathBuf {
    let mut text = format!(
        r#"
source: {{ kind: file, path: {events} }}
watermark: {{ max_out_of_orderness: 5s, idle_timeout: 10s, epoch: 1s }}
engine: {{ status_interval: 0s, read_chunk_bytes: 262144 }}
aggregations:
  - {{ name: by_type_1m, window: {{ kind: tumbling, size: 1m }}, group_by: event_type }}
  - {{ name: by_type_5m_sliding, window: {{ kind: sliding, size: 5m, slide: 1m }}, group_by: event_type }}
  - {{ name: by_user_1m, window: {{ kind: tumbling, size: 1m }}, group_by: user_id }}
  - {{ name: by_user_sessions, window: {{ kind: session, gap: 30s }}, group_by: user_id }}
sinks:
  metrics: [ {{ kind: jsonl, path: {out}/metrics.jsonl }} ]
  alerts: []
  dead_letter: {{ kind: jsonl, path: {out}/dead.jsonl }}
"#,
        events = events.display(),
        out = dir.join(out).display()
    );
    if let Some((name, url)) = checkpoint {
        text.push_str(&format!("checkpoint: {{ store: redis, url: \"{url}\", interval: 50ms, name: {name} }}\n"));
    }
    let path = dir.join(format!("{out}.yaml"));
    std::fs::write(&path, text).unwrap();
    path
}

fn events(dir: &Path, count: u32) -> std::path::PathBuf {
    let path = dir.join("events.jsonl");
    let out = rtsa()
        .args(["generate", "--count", &count.to_string(), "--start-ms", "1764230400000", "--event-time-rate", "2000"])
        .output()
        .unwrap();
    assert!(out.status.success());
    std::fs::write(&path, out.stdout).unwrap();
    path
}

/// The metrics and dead letters under `dir/cp` are those under `dir/plain`, each once.
fn assert_same_output(dir: &Path, what: &str) {
    for file in ["metrics.jsonl", "dead.jsonl"] {
        let expected = comparable(&read_jsonl(&dir.join("plain").join(file)));
        let got = comparable(&read_jsonl(&dir.join("cp").join(file)));
        assert!(!expected.is_empty());
        assert_eq!(got.len(), expected.len(), "{file}: every record once");
        assert!(got == expected, "{file}: {what}");
    }
}

/// `rtsa run`, logging how it reads its source.
fn run(config: &Path, args: &[&str]) -> std::process::Output {
    rtsa().arg("run").arg("--config").arg(config).args(args).env("RUST_LOG", "rtsa::run=info").output().unwrap()
}

#[test]
fn kill_9_five_times_and_rescaled_restarts_give_every_record_exactly_once() {
    let services = crate::services_or_skip!();
    let dir = tempfile::tempdir().unwrap();
    let events = events(dir.path(), 150_000);
    let name = unique("ckpt-kill");
    let plain = config(dir.path(), &events, "plain", None);
    let checkpointed = config(dir.path(), &events, "cp", Some((&name, &services.redis_url)));
    assert!(run(&plain, &[]).status.success());

    // Five kills at varied moments, each restart with another worker count.
    let mut resumed = 0;
    for (i, workers) in ["1", "2", "3", "1", "2"].iter().enumerate() {
        let mut args = vec!["run", "--config", checkpointed.to_str().unwrap(), "--workers", workers];
        if i == 0 {
            args.push("--fresh");
        }
        let mut child = rtsa().args(&args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(300 + 170 * i as u64));
        child.kill().unwrap();
        let out = child.wait_with_output().unwrap();
        resumed += String::from_utf8_lossy(&out.stderr).matches("resuming from checkpoint").count();
    }
    let last = run(&checkpointed, &["--workers", "3"]);
    let stderr = String::from_utf8_lossy(&last.stderr);
    assert!(last.status.success(), "{stderr}");
    resumed += stderr.matches("resuming from checkpoint").count();
    assert!(resumed >= 2, "the restarts resumed from checkpoints ({resumed} times)");

    assert_same_output(dir.path(), "the same records as a run without crashes");

    // A run after the end adds nothing.
    let again = run(&checkpointed, &[]);
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("nothing to do"));
    let lines = read_jsonl(&dir.path().join("cp/metrics.jsonl")).len();
    assert_eq!(lines, comparable(&read_jsonl(&dir.path().join("plain/metrics.jsonl"))).len());

    // A changed config is refused (exit 2) until --fresh.
    let changed = std::fs::read_to_string(&checkpointed).unwrap().replace("gap: 30s", "gap: 40s");
    let changed_path = dir.path().join("changed.yaml");
    std::fs::write(&changed_path, changed).unwrap();
    let refused = run(&changed_path, &[]);
    assert_eq!(refused.status.code(), Some(2));
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("aggregations") && said.contains("--fresh"), "{said}");
    let fresh = run(&changed_path, &["--fresh"]);
    assert!(fresh.status.success(), "{}", String::from_utf8_lossy(&fresh.stderr));
    assert!(String::from_utf8_lossy(&fresh.stderr).contains("starting over"));
}

/// Starts `rtsa run` with `args` and kills it with SIGKILL once `wait` returns; what it said.
fn run_and_kill(config: &Path, args: &[&str], wait: impl FnOnce()) -> String {
    let mut child = rtsa()
        .arg("run")
        .arg("--config")
        .arg(config)
        .args(args)
        .env("RUST_LOG", "rtsa::run=info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait();
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Dead letters read back from a topic, comparable across runs.
fn dead_letters_of(topic: &str) -> Vec<String> {
    let letters: Vec<serde_json::Value> =
        crate::kafka::read_topic(topic).iter().map(|m| serde_json::from_str(&m.value).unwrap()).collect();
    comparable(&letters)
}

#[test]
fn kafka_topics_hold_every_record_once_across_kill_9_without_broker_transactions() {
    // Three partitions, each read by its owner; one partition, cut into chunks by a reader
    // thread and parsed by every worker (read by the one worker of the 1-worker restart).
    for partitions in [3, 1] {
        every_record_once_across_kill_9(partitions);
    }
}

fn every_record_once_across_kill_9(partitions: u32) {
    let services = crate::services_or_skip!();
    let dir = tempfile::tempdir().unwrap();
    let (topics, plain) = crate::kafka::setup(dir.path(), &format!("ckpt-kafka-p{partitions}"), partitions);
    crate::kafka::produce(dir.path(), &topics.events, 60_000);
    // The same pipeline with checkpoints, into topics of its own (created at its start).
    let (metrics, dead) = (unique("ckpt-kafka-metrics-cp"), unique("ckpt-kafka-dl-cp"));
    let text = std::fs::read_to_string(&plain)
        .unwrap()
        .replace(&topics.metrics, &metrics)
        .replace(&topics.dead_letters, &dead);
    let name = unique("ckpt-kafka");
    let checkpointed = dir.path().join("checkpointed.yaml");
    std::fs::write(
        &checkpointed,
        format!(
            "{text}checkpoint: {{ store: redis, url: \"{}\", interval: 50ms, name: {name} }}\n",
            services.redis_url
        ),
    )
    .unwrap();
    assert!(run(&plain, &[]).status.success());

    let mut said = String::new();
    let mut execution = None;
    for (i, workers) in ["2", "1", "3", "2"].iter().enumerate() {
        let mut args = vec!["--workers", workers];
        if i == 0 {
            args.push("--fresh");
        }
        // Killed once it has completed a checkpoint of its own, and a little later each time (a
        // fixed time from the start was before the first checkpoint on a loaded machine).
        said += &run_and_kill(&checkpointed, &args, || {
            let ours = wait_for_manifest(&services.redis_url, &name, |m| m["execution"].as_u64() > execution);
            assert_eq!(ours["finished"], false, "killed before the end of its input");
            execution = ours["execution"].as_u64();
            std::thread::sleep(Duration::from_millis(150 * i as u64));
        });
    }
    let last = run(&checkpointed, &["--workers", "2"]);
    said += &String::from_utf8_lossy(&last.stderr);
    assert!(last.status.success(), "{partitions} partitions: {said}");
    let resumed = said.matches("resuming from checkpoint").count();
    assert!(resumed >= 2, "{partitions} partitions: the restarts resumed from checkpoints ({resumed} times): {said}");
    let fed = said.matches("reading the source on a thread of its own").count();
    assert_eq!(fed, if partitions == 1 { 4 } else { 0 }, "runs of 2 and 3 workers feed one partition: {said}");

    // Every metrics record once (read back with kafka-python), each equal to the reference.
    let records = crate::kafka::metrics_of(&metrics);
    let mut keys: Vec<String> =
        records.iter().map(|r| format!("{}|{}|{}", r["aggregation"], r["window_start"], r["key"])).collect();
    keys.sort();
    let total = keys.len();
    keys.dedup();
    assert_eq!(keys.len(), total, "no metrics record twice");
    crate::kafka::assert_matches_reference(&topics.events, partitions, &records);
    assert_eq!(comparable(&records), comparable(&crate::kafka::metrics_of(&topics.metrics)));
    // Dead letters once each too: the same as the run without crashes.
    let expected = dead_letters_of(&topics.dead_letters);
    assert!(!expected.is_empty());
    assert_eq!(dead_letters_of(&dead), expected);
}

/// The manifest of checkpoint `name` in the Redis at `url`, if there is one.
fn manifest(url: &str, name: &str) -> Option<serde_json::Value> {
    let mut connection = redis::Client::open(url).ok()?.get_connection().ok()?;
    let text: Option<String> = redis::Commands::get(&mut connection, format!("{{{name}}}:checkpoint:manifest")).ok()?;
    text.map(|t| serde_json::from_str(&t).unwrap())
}

/// Waits (up to a minute) until `ready` holds for the manifest of `name`.
fn wait_for_manifest(url: &str, name: &str, ready: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(m) = manifest(url, name).filter(&ready) {
            return m;
        }
        assert!(std::time::Instant::now() < deadline, "no such checkpoint manifest of {name}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The PID of the `rtsa run --process {index}` that the `rtsa cluster` with PID `cluster` started.
fn cluster_process(cluster: u32, index: usize) -> u32 {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // The parent PID is the second field after the parenthesised command name.
            let parent = stat.rsplit(')').next().and_then(|rest| rest.split_whitespace().nth(1));
            let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let args: Vec<&str> = cmdline.split('\0').collect();
            let is_index = args.windows(2).any(|w| w[0] == "--process" && w[1] == index.to_string());
            if parent == Some(&cluster.to_string()) && is_index {
                return pid;
            }
        }
        assert!(std::time::Instant::now() < deadline, "process {index} of the cluster {cluster} not found");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn one_process_then_a_cluster_of_two_whose_killed_process_the_cluster_restarts() {
    let services = crate::services_or_skip!();
    let dir = tempfile::tempdir().unwrap();
    let events = events(dir.path(), 300_000);
    let name = unique("ckpt-cluster");
    let plain = config(dir.path(), &events, "plain", None);
    let checkpointed = config(dir.path(), &events, "cp", Some((&name, &services.redis_url)));
    assert!(run(&plain, &[]).status.success());

    // One process with two workers, killed once it has completed a checkpoint.
    let mut single = rtsa()
        .args(["run", "--fresh", "--workers", "2", "--config"])
        .arg(&checkpointed)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let first = wait_for_manifest(&services.redis_url, &name, |m| m["time"].as_u64() > Some(0));
    single.kill().unwrap();
    single.wait().unwrap();
    assert_eq!(first["finished"], false, "killed before the end of its input");

    // A cluster of two processes resumes it; once the cluster has completed a checkpoint of its
    // own, its process 1 is killed, and the cluster command restarts both from that checkpoint.
    let log = dir.path().join("cluster.log");
    let mut cluster = rtsa()
        .args(["cluster", "--processes", "2", "--workers", "1", "--config"])
        .arg(&checkpointed)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let execution = first["execution"].as_u64().unwrap();
    let ours = wait_for_manifest(&services.redis_url, &name, |m| m["execution"].as_u64() > Some(execution));
    assert_eq!(ours["workers"], 2, "the cluster's checkpoint is written by its two workers");
    assert_eq!(ours["finished"], false, "the cluster is killed before the end of its input");
    let victim = cluster_process(cluster.id(), 1);
    assert!(std::process::Command::new("kill").args(["-9", &victim.to_string()]).status().unwrap().success());
    let status = cluster.wait().unwrap();
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "{said}");
    assert!(said.contains("process 1 was killed by signal 9; restarting the cluster"), "{said}");
    assert_eq!(said.matches("[p0] rtsa: resuming from checkpoint").count(), 2, "{said}");

    assert_same_output(dir.path(), "the same records as a run without crashes");
    assert_eq!(manifest(&services.redis_url, &name).unwrap()["finished"], true);
}

#[test]
fn a_run_goes_on_while_redis_is_down_and_its_next_checkpoint_completes() {
    crate::services_or_skip!();
    let dir = tempfile::tempdir().unwrap();
    let port = crate::util::free_port();
    let port_arg = port.to_string();
    let command =
        ["/usr/bin/redis-server", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--port", &port_arg];
    let mut redis = crate::util::OwnServer::start(crate::util::command_line(command), port);
    let url = format!("redis://127.0.0.1:{port}");
    let name = unique("ckpt-redis-down");
    // A paced generator (about six seconds of wall time), so that Redis can be away mid-run.
    let write = |out: &str, rate: u32, checkpoint: &str| {
        let path = dir.path().join(format!("{out}.yaml"));
        let text = format!(
            r#"
source: {{ kind: generator, count: 36000, rate: {rate}, seed: 5, partitions: 2, start_ms: 1764230400000, event_time_rate: 1000, users: 200 }}
watermark: {{ max_out_of_orderness: 5s, idle_timeout: 10s, epoch: 1s }}
engine: {{ status_interval: 0s, read_chunk_bytes: 262144 }}
aggregations:
  - {{ name: by_type_1m, window: {{ kind: tumbling, size: 1m }}, group_by: event_type }}
  - {{ name: by_user_sessions, window: {{ kind: session, gap: 30s }}, group_by: user_id }}
sinks:
  metrics: [ {{ kind: jsonl, path: {out}/metrics.jsonl }} ]
  alerts: []
  dead_letter: {{ kind: jsonl, path: {out}/dead.jsonl }}
{checkpoint}
"#,
            out = dir.path().join(out).display()
        );
        std::fs::write(&path, text).unwrap();
        path
    };
    let plain = write("plain", 0, "");
    let checkpoint = format!("checkpoint: {{ store: redis, url: \"{url}\", interval: 100ms, name: {name} }}");
    let checkpointed = write("cp", 6000, &checkpoint);
    assert!(run(&plain, &[]).status.success());

    let log = dir.path().join("run.log");
    let mut child = rtsa()
        .args(["run", "--config"])
        .arg(&checkpointed)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let before = wait_for_manifest(&url, &name, |m| m["time"].as_u64() > Some(0));
    redis.kill();
    std::thread::sleep(Duration::from_millis(1_500));
    assert!(child.try_wait().unwrap().is_none(), "the run goes on without its checkpoint store");
    // Back, empty (no persistence): the next checkpoint is written whole.
    redis.restart();
    let after = wait_for_manifest(&url, &name, |m| m["time"].as_u64() > before["time"].as_u64());
    assert_eq!(after["finished"], false, "a checkpoint completed while the run was still going");
    let status = child.wait().unwrap();
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "{said}");
    assert!(said.contains("retrying"), "the outage is logged: {said}");
    let retries = said
        .split("store retries")
        .next()
        .and_then(|head| head.rsplit(' ').nth(1))
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0);
    assert!(retries > 0, "the outage is counted: {said}");
    assert_eq!(manifest(&url, &name).unwrap()["finished"], true);

    assert_same_output(dir.path(), "nothing lost or repeated while Redis was away");
}

#[test]
fn a_run_killed_before_its_first_checkpoint_writes_nothing_twice() {
    let services = crate::services_or_skip!();
    let dir = tempfile::tempdir().unwrap();
    let events = events(dir.path(), 150_000);
    let name = unique("ckpt-origin");
    let plain = config(dir.path(), &events, "plain", None);
    let checkpointed = config(dir.path(), &events, "cp", Some((&name, &services.redis_url)));
    // No checkpoint within the run: only its origin is recorded.
    let text = std::fs::read_to_string(&checkpointed).unwrap().replace("interval: 50ms", "interval: 1h");
    std::fs::write(&checkpointed, text).unwrap();
    assert!(run(&plain, &[]).status.success());

    let mut child = rtsa()
        .args(["run", "--fresh", "--config"])
        .arg(&checkpointed)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let dead = dir.path().join("cp/dead.jsonl");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::fs::metadata(&dead).map_or(0, |m| m.len()) == 0 {
        assert!(std::time::Instant::now() < deadline, "no dead letter written");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let origin = manifest(&services.redis_url, &name).expect("the origin is recorded");
    assert_eq!(origin["time"], 0);
    assert!(origin["origin"].is_object(), "{origin}");

    let last = run(&checkpointed, &[]);
    let said = String::from_utf8_lossy(&last.stderr);
    assert!(last.status.success(), "{said}");
    assert!(said.contains("ended before its first checkpoint"), "{said}");
    assert_same_output(dir.path(), "the same records as a run without crashes, once each");
}
