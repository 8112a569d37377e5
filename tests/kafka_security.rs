//! Kafka with SASL/SCRAM and with TLS, against brokers of the tests' own: a tansu on SQLite
//! storage restarted with `--authentication` after a SCRAM-SHA-256 user was created, and a tansu
//! behind stunnel4 with a test CA. `rtsa topics create`, `produce`, `run` (source and sinks) and
//! `tail` go through them; the metrics topic is read back with kafka-python over the same
//! security and compared with a run of the same events from a file. A wrong password, or a
//! certificate the client does not trust, is a clear error within `kafka.connect_timeout`.

use crate::util::{
    OwnServer, command_line, comparable, free_port, read_jsonl, rtsa, stunnel, test_certificates, tools,
};
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const EVENTS: &str = "3000";

/// The events of these tests, as a file.
fn events_file(dir: &Path) -> std::path::PathBuf {
    let out = rtsa()
        .args(["generate", "--count", EVENTS, "--start-ms", "1764230400000", "--event-time-rate", "100", "--seed", "5"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let path = dir.join("events.jsonl");
    std::fs::write(&path, out.stdout).unwrap();
    path
}

const PIPELINE: &str = r#"
watermark: { max_out_of_orderness: 2s }
engine: { status_interval: 0s }
aggregations:
  - { name: by_type_10s, window: { kind: tumbling, size: 10s }, group_by: event_type }
  - { name: by_user_sessions, window: { kind: session, gap: 5s }, group_by: user_id }
"#;

/// The records of the same events read from a file: what the secured run must write.
fn expected(dir: &Path, events: &Path) -> Vec<String> {
    let config = dir.join("file.yaml");
    let metrics = dir.join("file-metrics.jsonl");
    std::fs::write(
        &config,
        format!(
            "source: {{ kind: file, path: {} }}\n{PIPELINE}sinks: {{ metrics: [ {{ kind: jsonl, path: {} }} ], alerts: [], dead_letter: {{ kind: jsonl, path: {} }} }}\n",
            events.display(),
            metrics.display(),
            dir.join("file-dead.jsonl").display()
        ),
    )
    .unwrap();
    let out = rtsa().args(["run", "--config"]).arg(&config).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    comparable(&read_jsonl(&metrics))
}

/// A config over `brokers` with the security `kafka` settings (YAML mapping entries) and
/// `connect_timeout` (generous for a round trip on a loaded machine, short for a refusal).
fn secured_config(dir: &Path, brokers: &str, security: &str, connect_timeout: &str) -> std::path::PathBuf {
    let config = dir.join(format!("secured-{connect_timeout}.yaml"));
    std::fs::write(
        &config,
        format!(
            r#"
source: {{ kind: kafka, topic: events, group_id: secured, start: earliest, stop_at: end }}
kafka: {{ bootstrap_servers: "{brokers}", partitions: 1, connect_timeout: {connect_timeout}, {security} }}
{PIPELINE}
sinks:
  metrics: [ {{ kind: kafka, topic: metrics }} ]
  alerts: []
  dead_letter: {{ kind: kafka, topic: dead-letters }}
"#
        ),
    )
    .unwrap();
    config
}

/// topics create, produce, run and tail through the secured brokers; the metrics read back by
/// kafka-python with `reader` settings, compared with the file run.
fn round_trip(python: &str, dir: &Path, config: &Path, brokers: &str, password: &str, reader: Value) {
    let expected = expected(dir, &events_file(dir));
    let rtsa_with = |args: &[&str]| {
        let out = rtsa().env("RTSA_TEST_KAFKA_PASSWORD", password).args(args).output().unwrap();
        assert!(out.status.success(), "rtsa {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let config_path = config.to_str().unwrap();
    let created = rtsa_with(&["topics", "create", "--brokers", brokers, "--config", config_path]);
    assert!(created.contains("created events"), "{created}");
    let file = dir.join("events.jsonl");
    rtsa_with(&[
        "produce",
        "--brokers",
        brokers,
        "--topic",
        "events",
        "--config",
        config_path,
        "--file",
        file.to_str().unwrap(),
    ]);
    rtsa_with(&["run", "--config", config_path]);
    // An independent client over the same security reads what the engine wrote.
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kafka_read.py");
    let out = Command::new(python)
        .arg(script)
        .args([brokers, "metrics", "4"])
        .env("KAFKA_READ_SECURITY", reader.to_string())
        .output()
        .unwrap();
    assert!(out.status.success(), "kafka_read.py: {}", String::from_utf8_lossy(&out.stderr));
    let records: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|m| serde_json::from_str(m["value"].as_str().unwrap()).unwrap())
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(comparable(&records), expected, "the secured run's metrics topic against the file run");
    // rtsa tail reads it too.
    let tailed = rtsa_with(&[
        "tail",
        "--brokers",
        brokers,
        "--topic",
        "metrics",
        "--config",
        config_path,
        "--from-beginning",
        "--json",
        "--idle-exit",
        "3s",
    ]);
    assert_eq!(tailed.lines().count(), expected.len());
}

/// Runs `rtsa topics create` with `password` and a short connect timeout; it must fail with
/// exit 1 within the timeout (plus the client's own), saying `hint`.
fn refused(config: &Path, brokers: &str, password: &str, hints: &[&str]) {
    let started = Instant::now();
    let out = rtsa()
        .env("RTSA_TEST_KAFKA_PASSWORD", password)
        .args(["topics", "create", "--brokers", brokers, "--config"])
        .arg(config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    // The connect timeout is 4 s; the bound leaves room for a machine busy with other tests.
    assert!(started.elapsed() < Duration::from_secs(30), "took {:?}", started.elapsed());
    for hint in hints {
        assert!(stderr.contains(hint), "{hint:?} missing in: {stderr}");
    }
    assert!(!stderr.contains(password) || password.is_empty(), "the password was printed: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn scram_sha_256_round_trips_and_a_wrong_password_is_a_clear_error() {
    let Some(tools) = tools("kafka_security::scram", &["RTSA_TANSU", "RTSA_PYTHON"]) else { return };
    let (tansu, python) = (&tools[0], &tools[1]);
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let listener = format!("tcp://127.0.0.1:{port}");
    // tansu reads what follows `sqlite:///` as a path relative to its working directory, so an
    // absolute path needs one slash more.
    let storage = format!("sqlite:///{}", dir.path().join("tansu.db").display());
    let broker = |authentication: bool| {
        let mut line = vec![
            tansu.as_str(),
            "broker",
            "--listener-url",
            &listener,
            "--advertised-listener-url",
            &listener,
            "--storage-engine",
            &storage,
        ];
        if authentication {
            line.push("--authentication");
        }
        OwnServer::start(command_line(line), port)
    };
    // The first user is created while the broker does not ask for one yet.
    let mut open = broker(false);
    let created = Command::new(tansu)
        .args(["user", "create", "--broker", &listener, "--mechanism", "scram256", "rtsa-user", "the-right-password"])
        .output()
        .unwrap();
    assert!(created.status.success(), "tansu user create: {}", String::from_utf8_lossy(&created.stderr));
    open.kill();
    let _secured = broker(true);

    let brokers = format!("127.0.0.1:{port}");
    let security = "properties: { security.protocol: SASL_PLAINTEXT, sasl.mechanisms: SCRAM-SHA-256, sasl.username: rtsa-user }, sasl_password_env: RTSA_TEST_KAFKA_PASSWORD";
    let config = secured_config(dir.path(), &brokers, security, "60s");
    let reader = json!({
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-256",
        "sasl_plain_username": "rtsa-user",
        "sasl_plain_password": "the-right-password",
    });
    round_trip(python, dir.path(), &config, &brokers, "the-right-password", reader);
    refused(
        &secured_config(dir.path(), &brokers, security, "4s"),
        &brokers,
        "a-wrong-password",
        &["kafka.connect_timeout", "check sasl.username rtsa-user, the password from $RTSA_TEST_KAFKA_PASSWORD"],
    );
}

#[test]
fn tls_through_stunnel_round_trips_and_an_untrusted_certificate_is_a_clear_error() {
    let Some(tools) = tools("kafka_security::tls", &["RTSA_TANSU", "RTSA_PYTHON"]) else { return };
    let (tansu, python) = (&tools[0], &tools[1]);
    let dir = tempfile::tempdir().unwrap();
    test_certificates(dir.path());
    let (plain_port, tls_port) = (free_port(), free_port());
    // The broker listens in plain text behind stunnel and advertises stunnel's TLS port, by a
    // name the certificate holds (librdkafka checks DNS names, not IP addresses).
    let _broker = OwnServer::start(
        command_line([
            tansu.as_str(),
            "broker",
            "--listener-url",
            &format!("tcp://127.0.0.1:{plain_port}"),
            "--advertised-listener-url",
            &format!("tcp://localhost:{tls_port}"),
            "--storage-engine",
            "memory://tansu/",
        ]),
        plain_port,
    );
    let _stunnel = stunnel(dir.path(), tls_port, plain_port);
    let path = |name: &str| dir.path().join(name).display().to_string();

    let brokers = format!("localhost:{tls_port}");
    let security = format!("properties: {{ security.protocol: SSL, ssl.ca.location: {} }}", path("ca.pem"));
    let config = secured_config(dir.path(), &brokers, &security, "60s");
    let reader = json!({ "security_protocol": "SSL", "ssl_cafile": path("ca.pem"), "ssl_check_hostname": true });
    round_trip(python, dir.path(), &config, &brokers, "", reader);
    // Without the test CA the certificate is not trusted.
    let untrusted = secured_config(dir.path(), &brokers, "properties: { security.protocol: SSL }", "4s");
    refused(&untrusted, &brokers, "", &["kafka.connect_timeout", "a TLS handshake that fails looks the same"]);
}
