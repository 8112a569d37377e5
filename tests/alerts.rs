//! Alerting end to end: the generator's known incidents are detected with the expected kind,
//! severity and key; quiet data raises nothing above `low`; alerts reach Redis (stream and
//! pub/sub), a webhook receiver that fails its first attempts, and the Kafka alerts topic, once
//! each, also after a replay.

use dataflows::control::{Counters, RunControl};
use dataflows::memory::{MemoryLines, MemorySource};
use rtsa::config::{self, GeneratorConfig};
use rtsa::run::{self, Output, RunOptions};
use rtsa::sources::generator::Generator;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

const START: u64 = 1_764_230_400_000;

const RULES: &str = r#"
aggregations:
  - { name: by_type_1m, window: { kind: tumbling, size: 1m }, group_by: event_type }
anomalies:
  - { kind: threshold, name: error_rate_by_type, aggregation: by_type_1m, metric: error_rate, min_count: 20,
      levels: { critical: 50, high: 30, medium: 20, low: 8 } }
  - { kind: threshold, name: p95_latency_by_type, aggregation: by_type_1m, metric: latency_ms.p95, min_count: 100,
      levels: { critical: 5000, high: 4000, low: 2500 } }
  - { kind: zscore, name: error_count_zscore, aggregation: by_type_1m, metric: error_count, history: 10, min_history: 5,
      min_count: 20, direction: above, levels: { critical: 10, high: 8, low: 4 } }
  - { kind: pattern, name: brute_force_login, group_by: user_id, within: 2m, severity: high,
      steps: [ { event_type: login, status: error, repeat: 5 }, { event_type: login, status: ok } ] }
  - { kind: rare_sequence, name: rare_transition, max_probability: 0.001, min_support: 500, severity: medium }
  - { kind: event, name: very_slow_api_call, event_type: api_call, metric: latency_ms, levels: { critical: 60000 } }
alerts: { cooldown: 5m }
"#;

fn partitions(incidents: bool, partitions: u32) -> Vec<Arc<MemoryLines>> {
    let config = GeneratorConfig {
        count: 200_000,
        rate: 0,
        seed: 5,
        partitions: std::num::NonZeroU32::new(partitions).unwrap(),
        start_ms: Some(START),
        event_time_rate: Some(100),
        users: std::num::NonZeroU64::new(2_000).unwrap(),
        incidents,
        error_bursts: incidents,
        ..GeneratorConfig::default()
    };
    (0..partitions)
        .map(|p| {
            let mut generator = Generator::new(&config, START, p, partitions);
            let mut lines = MemoryLines::default();
            let mut line = Vec::new();
            while generator.next_json(&mut line) {
                lines.push(&line);
            }
            Arc::new(lines)
        })
        .collect()
}

fn run_with(sinks: &str, input: Vec<Arc<MemoryLines>>, workers: usize) -> Arc<RunControl> {
    crate::util::run_memory(&format!("{RULES}\n{sinks}"), input, workers)
}

fn jsonl_sinks(dir: &Path) -> String {
    format!(
        r#"
sinks:
  metrics: []
  alerts: [ {{ kind: jsonl, path: {alerts} }} ]
  dead_letter: {{ kind: jsonl, path: {dead} }}
"#,
        alerts = dir.join("alerts.jsonl").display(),
        dead = dir.join("dead.jsonl").display()
    )
}

fn read_alerts(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path).unwrap_or_default().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn find<'a>(alerts: &'a [Value], rule: &str) -> Vec<&'a Value> {
    alerts.iter().filter(|a| a["rule"] == rule).collect()
}

#[test]
fn known_incidents_are_detected_and_quiet_data_stays_quiet() {
    let dir = tempfile::tempdir().unwrap();
    run_with(&jsonl_sinks(dir.path()), partitions(true, 2), 2);
    let alerts = read_alerts(&dir.path().join("alerts.jsonl"));
    let summary: Vec<String> =
        alerts.iter().map(|a| format!("{} {} {} {}", a["rule"], a["severity"], a["key"], a["window_start"])).collect();

    let burst = find(&alerts, "error_rate_by_type");
    assert!(
        burst.iter().any(|a| a["key"] == "purchase" && a["severity"] == "critical" && a["kind"] == "threshold"),
        "{summary:#?}"
    );
    let window = burst.iter().find(|a| a["key"] == "purchase" && a["severity"] == "critical").unwrap();
    let start = window["window_start"].as_i64().unwrap() as u64;
    assert!((START + 600_000..START + 720_000).contains(&start), "the burst's window: {start}");

    let zscore = find(&alerts, "error_count_zscore");
    assert!(
        zscore.iter().any(|a| a["key"] == "purchase" && a["kind"] == "zscore" && a["zscore"].as_f64().unwrap() > 10.0),
        "{summary:#?}"
    );

    let spike = find(&alerts, "p95_latency_by_type");
    assert!(spike.iter().any(|a| a["key"] == "search" && a["severity"] == "critical"), "{summary:#?}");

    let brute = find(&alerts, "brute_force_login");
    assert_eq!(brute.len(), 1, "{summary:#?}");
    assert_eq!(brute[0]["key"], "user_attacker");
    assert_eq!(brute[0]["severity"], "high");
    assert_eq!(brute[0]["kind"], "pattern");

    let rare = find(&alerts, "rare_transition");
    assert!(rare.iter().any(|a| a["key"] == "s-intruder-1" && a["kind"] == "rare_sequence"), "{summary:#?}");
    assert!(rare.iter().all(|a| a["key"] == "s-intruder-1"), "only the intruder's transition is rare: {summary:#?}");

    let slow = find(&alerts, "very_slow_api_call");
    assert_eq!(slow.len(), 1, "{summary:#?}");
    assert_eq!(slow[0]["severity"], "critical");
    assert_eq!(slow[0]["key"], "api_call");
    assert_eq!(slow[0]["observed"], 90_000.0);

    // The same data without incidents (and without the generator's periodic bursts).
    let quiet_dir = tempfile::tempdir().unwrap();
    run_with(&jsonl_sinks(quiet_dir.path()), partitions(false, 2), 2);
    let quiet = read_alerts(&quiet_dir.path().join("alerts.jsonl"));
    let loud: Vec<&Value> = quiet.iter().filter(|a| a["severity"] != "low").collect();
    assert!(loud.is_empty(), "quiet data raised: {loud:#?}");
}

#[test]
fn alerts_are_the_same_for_one_and_four_workers() {
    let canonical = |dir: &Path| {
        let mut lines: Vec<String> = read_alerts(&dir.join("alerts.jsonl"))
            .into_iter()
            .map(|mut a| {
                a.as_object_mut().unwrap().remove("emitted_at");
                a.to_string()
            })
            .collect();
        lines.sort();
        lines
    };
    let one = tempfile::tempdir().unwrap();
    run_with(&jsonl_sinks(one.path()), partitions(true, 4), 1);
    let four = tempfile::tempdir().unwrap();
    run_with(&jsonl_sinks(four.path()), partitions(true, 4), 4);
    let a = canonical(one.path());
    assert!(a.len() >= 6, "{a:#?}");
    assert_eq!(a, canonical(four.path()));
}

/// A request the receiver accepted: its headers (lower-cased names) and body.
type Request = (Vec<(String, String)>, String);

/// A webhook receiver on 127.0.0.1 that answers 500 to its first `failures` requests.
struct Receiver {
    url: String,
    requests: Arc<Mutex<Vec<Request>>>,
}

fn receiver(failures: usize) -> Receiver {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/alerts", listener.local_addr().unwrap());
    let requests = Arc::new(Mutex::new(Vec::new()));
    let seen = requests.clone();
    std::thread::spawn(move || {
        let mut served = 0usize;
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut headers = Vec::new();
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            loop {
                line.clear();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((name, value)) = line.trim_end().split_once(": ") {
                    headers.push((name.to_ascii_lowercase(), value.to_owned()));
                }
            }
            let length: usize =
                headers.iter().find(|(n, _)| n == "content-length").map_or(0, |(_, v)| v.parse().unwrap());
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            served += 1;
            let status = if served <= failures { "500 Internal Server Error" } else { "200 OK" };
            if served > failures {
                seen.lock().unwrap().push((headers, String::from_utf8(body).unwrap()));
            }
            let _ = write!(stream, "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    Receiver { url, requests }
}

fn fire_events(count: usize) -> Vec<Arc<MemoryLines>> {
    let mut lines = MemoryLines::default();
    for i in 0..count {
        let line = format!(
            r#"{{"event_type":"fire","timestamp":{},"user_id":"u{i}","latency_ms":5}}"#,
            START + i as u64 * 1_000
        );
        lines.push(line.as_bytes());
    }
    vec![Arc::new(lines)]
}

#[test]
fn alerts_reach_redis_a_flaky_webhook_and_kafka_once_each() {
    let crate::util::Services { redis_url, brokers, python, .. } = crate::services_or_skip!();
    let suffix = format!("{}-{}", std::process::id(), START % 1000);
    let stream = format!("test:alerts:{suffix}");
    let topic = format!("alerts-{suffix}");
    let receiver = receiver(2);
    let dir = tempfile::tempdir().unwrap();
    // SAFETY: set before any thread of this test reads it; other tests do not use this variable.
    unsafe { std::env::set_var("RTSA_TEST_WEBHOOK_SECRET", "s3cret") };
    let config_text = format!(
        r#"
aggregations:
  - {{ name: by_type_1m, window: {{ kind: tumbling, size: 1m }}, group_by: event_type }}
kafka: {{ bootstrap_servers: "{brokers}" }}
anomalies:
  - {{ kind: event, name: fire_event, event_type: fire, group_by: user_id, severity: critical }}
sinks:
  metrics: []
  alerts:
    - {{ kind: redis, url: "{redis_url}", stream: "{stream}", channel: "{stream}" }}
    - {{ kind: webhook, url: "{url}", retries: 5, backoff: 50ms, secret_env: RTSA_TEST_WEBHOOK_SECRET }}
    - {{ kind: kafka, topic: {topic} }}
    - {{ kind: jsonl, path: {jsonl} }}
  dead_letter: {{ kind: jsonl, path: {dead} }}
"#,
        url = receiver.url,
        jsonl = dir.path().join("alerts.jsonl").display(),
        dead = dir.path().join("dead.jsonl").display()
    );
    let config = config::load_str(&config_text, Vec::new()).unwrap();
    rtsa::kafka::create_topics(&config.kafka, std::slice::from_ref(&topic)).unwrap();

    let client = redis::Client::open(redis_url.as_str()).unwrap();
    let mut subscriber = client.get_connection().unwrap();
    let published = Arc::new(Mutex::new(Vec::<String>::new()));
    let got = published.clone();
    let channel = stream.clone();
    let (ready, wait) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut pubsub = subscriber.as_pubsub();
        pubsub.subscribe(&channel).unwrap();
        pubsub.set_read_timeout(Some(std::time::Duration::from_secs(20))).unwrap();
        ready.send(()).unwrap();
        while let Ok(message) = pubsub.get_message() {
            got.lock().unwrap().push(message.get_payload().unwrap());
        }
    });
    wait.recv().unwrap();

    let run_once = || {
        let control = Arc::new(RunControl::default());
        run::run(
            Arc::new(config.clone()),
            &RunOptions::default(),
            Arc::new(MemorySource::new(fire_events(20))),
            Output::Configured,
            control.clone(),
            None,
        )
        .unwrap();
        control
    };
    let control = run_once();
    assert_eq!(Counters::get(&control.counters.alerts), 20);
    assert_eq!(Counters::get(&control.counters.alerts_undelivered), 0);

    let mut connection = client.get_connection().unwrap();
    let length: usize = redis::cmd("XLEN").arg(&stream).query(&mut connection).unwrap();
    assert_eq!(length, 20);
    let jsonl = read_alerts(&dir.path().join("alerts.jsonl"));
    assert_eq!(jsonl.len(), 20);

    let requests = receiver.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 20, "every alert delivered once the receiver recovers");
    for (headers, body) in &requests {
        let header = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
        let alert: Value = serde_json::from_str(body).unwrap();
        assert_eq!(header("idempotency-key").as_deref(), alert["alert_id"].as_str());
        assert_eq!(header("x-rtsa-signature"), Some(rtsa::sinks::webhook::signature(b"s3cret", body.as_bytes())));
    }

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kafka_read.py");
    let out = std::process::Command::new(&python).arg(&script).args([&brokers, &topic, "4"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let messages: Vec<Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(messages.len(), 20);
    for m in &messages {
        let alert: Value = serde_json::from_str(m["value"].as_str().unwrap()).unwrap();
        assert_eq!(m["key"], alert["alert_id"], "alerts are keyed by alert_id");
    }

    // A replay: Redis keeps one entry per alert id.
    run_once();
    let length: usize = redis::cmd("XLEN").arg(&stream).query(&mut connection).unwrap();
    assert_eq!(length, 20, "a replay adds nothing to the stream");
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(published.lock().unwrap().len(), 20, "nor to the channel");
}

#[test]
fn a_dead_webhook_does_not_stall_the_pipeline_and_its_alerts_are_counted() {
    // A port nothing listens on.
    let port = crate::cluster::free_port();
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        r#"
aggregations:
  - {{ name: by_type_1m, window: {{ kind: tumbling, size: 1m }}, group_by: event_type }}
anomalies:
  - {{ kind: event, name: fire_event, event_type: fire, group_by: user_id, severity: critical }}
sinks:
  metrics: [ {{ kind: jsonl, path: {m} }} ]
  alerts:
    - {{ kind: webhook, url: "http://127.0.0.1:{port}/hook", timeout: 500ms, retries: 1, backoff: 10ms }}
    - {{ kind: jsonl, path: {a} }}
  dead_letter: {{ kind: jsonl, path: {d} }}
"#,
        m = dir.path().join("m.jsonl").display(),
        a = dir.path().join("a.jsonl").display(),
        d = dir.path().join("d.jsonl").display()
    );
    let config = config::load_str(&text, Vec::new()).unwrap();
    let control = Arc::new(RunControl::default());
    run::run(
        Arc::new(config),
        &RunOptions::default(),
        Arc::new(MemorySource::new(fire_events(20))),
        Output::Configured,
        control.clone(),
        None,
    )
    .unwrap();
    assert_eq!(read_alerts(&dir.path().join("a.jsonl")).len(), 20, "the other channels got every alert");
    assert!(!read_alerts(&dir.path().join("m.jsonl")).is_empty(), "metrics kept flowing");
    assert_eq!(Counters::get(&control.counters.alerts_undelivered), 20);
}

/// A Redis server of the test's own (port, data folder, append-only file fsynced on every write),
/// stopped by PID.
/// A redis-server of the test's own: append-only with fsync always, so a kill -9 keeps its data.
struct OwnRedis(crate::util::OwnServer);

impl OwnRedis {
    fn start(dir: &Path) -> OwnRedis {
        let port = crate::cluster::free_port();
        let port_text = port.to_string();
        let command = crate::util::command_line([
            std::ffi::OsStr::new("/usr/bin/redis-server"),
            "--bind".as_ref(),
            "127.0.0.1".as_ref(),
            "--port".as_ref(),
            port_text.as_ref(),
            "--save".as_ref(),
            "".as_ref(),
            "--appendonly".as_ref(),
            "yes".as_ref(),
            "--appendfsync".as_ref(),
            "always".as_ref(),
            "--dir".as_ref(),
            dir.as_os_str(),
        ]);
        OwnRedis(crate::util::OwnServer::start(command, port))
    }

    fn restart(&mut self) {
        self.0.restart();
    }

    fn kill(&mut self) {
        self.0.kill();
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.0.port)
    }
}

#[test]
fn webhooks_over_https_trust_the_ca_file_and_refuse_an_unknown_certificate() {
    crate::services_or_skip!();
    let dir = tempfile::tempdir().unwrap();
    crate::util::test_certificates(dir.path());
    let plain = receiver(0);
    let plain_port = plain.url.trim_start_matches("http://127.0.0.1:").split('/').next().unwrap().to_owned();
    // stunnel4 in front of the plain receiver: TLS on a port of its own, with the test CA's certificate.
    let tls_port = crate::cluster::free_port();
    let stunnel = crate::util::stunnel(dir.path(), tls_port, plain_port.parse().unwrap());
    let path = |name: &str| dir.path().join(name).display().to_string();
    let run = |ca: &str| {
        let text = format!(
            r#"
aggregations:
  - {{ name: by_type_1m, window: {{ kind: tumbling, size: 1m }}, group_by: event_type }}
anomalies:
  - {{ kind: event, name: fire_event, event_type: fire, group_by: user_id, severity: critical }}
sinks:
  metrics: []
  alerts: [ {{ kind: webhook, url: "https://localhost:{tls_port}/alerts", retries: 2, backoff: 50ms {ca} }} ]
  dead_letter: {{ kind: jsonl, path: {dead} }}
"#,
            dead = path("dead.jsonl")
        );
        let config = config::load_str(&text, Vec::new()).unwrap();
        let control = Arc::new(RunControl::default());
        let source = Arc::new(MemorySource::new(fire_events(5)));
        run::run(Arc::new(config), &RunOptions::default(), source, Output::Configured, control.clone(), None).unwrap();
        control
    };
    let trusted = run(&format!(", tls_ca_file: {}", path("ca.pem")));
    assert_eq!(plain.requests.lock().unwrap().len() as u64, Counters::get(&trusted.counters.alerts));
    assert!(Counters::get(&trusted.counters.alerts) > 0);
    assert_eq!(Counters::get(&trusted.counters.alerts_undelivered), 0);
    // Without the CA file the certificate is unknown: every alert undelivered, counted, no retries left hanging.
    let untrusted = run("");
    assert_eq!(Counters::get(&untrusted.counters.alerts_undelivered), Counters::get(&untrusted.counters.alerts));
    drop(stunnel);
}

#[test]
fn alerts_survive_a_redis_restart_once_each() {
    crate::services_or_skip!();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("redis");
    std::fs::create_dir_all(&data).unwrap();
    let mut redis = OwnRedis::start(&data);
    // A live generator for about 4 s; every event slower than 300 ms alerts (no cooldown).
    let config_text = format!(
        r#"
source: {{ kind: generator, rate: 500, count: 2000, seed: 5, partitions: 2 }}
aggregations:
  - {{ name: by_type_1m, window: {{ kind: tumbling, size: 1m }}, group_by: event_type }}
anomalies:
  - {{ kind: event, name: slow, metric: latency_ms, levels: {{ critical: 300 }}, cooldown: 0s }}
sinks:
  metrics: []
  alerts:
    - {{ kind: redis, url: "{url}", stream: "alerts", channel: "alerts" }}
    - {{ kind: jsonl, path: {jsonl} }}
  dead_letter: {{ kind: jsonl, path: {dead} }}
"#,
        url = redis.url(),
        jsonl = dir.path().join("alerts.jsonl").display(),
        dead = dir.path().join("dead.jsonl").display()
    );
    let config = config::load_str(&config_text, Vec::new()).unwrap();
    let control = Arc::new(RunControl::default());
    let running = {
        let control = control.clone();
        std::thread::spawn(move || {
            run::run_configured(Arc::new(config), &RunOptions::default(), Output::Configured, control, None)
        })
    };
    // Redis goes away mid-run (kill -9) and comes back 1.5 s later.
    std::thread::sleep(std::time::Duration::from_millis(1_500));
    let before = read_alerts(&dir.path().join("alerts.jsonl")).len();
    redis.kill();
    std::thread::sleep(std::time::Duration::from_millis(1_500));
    redis.restart();
    running.join().unwrap().unwrap();

    let alerts = read_alerts(&dir.path().join("alerts.jsonl"));
    assert!(before > 0 && alerts.len() > before + 10, "{before} alerts before the outage, {} in all", alerts.len());
    assert_eq!(Counters::get(&control.counters.alerts_undelivered), 0);
    let client = redis::Client::open(redis.url()).unwrap();
    let mut connection = client.get_connection().unwrap();
    let entries: Vec<(String, Vec<(String, String)>)> =
        redis::cmd("XRANGE").arg("alerts").arg("-").arg("+").query(&mut connection).unwrap();
    let mut in_redis: Vec<String> = entries
        .iter()
        .map(|(_, fields)| fields.iter().find(|(f, _)| f == "alert_id").expect("alert_id field").1.clone())
        .collect();
    in_redis.sort();
    let mut emitted: Vec<String> = alerts.iter().map(|a| a["alert_id"].as_str().unwrap().to_owned()).collect();
    emitted.sort();
    assert_eq!(in_redis, emitted, "every alert in the stream exactly once");
}
