//! The HTTP server of a running engine: `/metrics` read by the reference Python client's strict
//! OpenMetrics parser and checked against the run's own records, `/health`, the dashboard page
//! in real headless Chromium (its DOM against the metrics records; a screenshot kept under
//! `target/test-artifacts/`), `rtsa top` in tmux, a port already taken, and the bearer token.

use crate::util::{free_port, read_jsonl, rtsa, tools, wait_for_port};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// GETs `url`: (status, body).
fn get(url: &str, token: Option<&str>) -> (u16, String) {
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let mut request = client.get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = response.status().as_u16();
    (status, response.text().unwrap())
}

/// Runs `rtsa run --config path` with its HTTP server (the tests' default turns it off).
fn serve(config: &Path, stdin: Stdio) -> Child {
    rtsa()
        .env_remove("RTSA__HTTP__LISTEN")
        .args(["run", "--config"])
        .arg(config)
        .stdin(stdin)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn interrupt(child: &Child) {
    let _ = Command::new("kill").args(["-INT", &child.id().to_string()]).status();
}

/// Events of a generator plus hostile lines, as the text of a JSONL input: (text, lines).
fn input_with_invalid_lines() -> (String, u64) {
    let generated = rtsa()
        .args([
            "generate",
            "--count",
            "5000",
            "--start-ms",
            "1764230400000",
            "--event-time-rate",
            "100",
            "--seed",
            "11",
        ])
        .output()
        .unwrap();
    assert!(generated.status.success());
    let mut text = String::from_utf8(generated.stdout).unwrap();
    for line in [
        "not json",
        "{\"event_type\":\"click\"}",
        "{\"event_type\":\"click\",\"timestamp\":\"yesterday\"}",
        "[1,2,3]",
        "{\"event_type\":\"\",\"timestamp\":1764230400000}",
    ] {
        text.push_str(line);
        text.push('\n');
    }
    // Late for the 10 s windows: far behind the stream's watermark.
    text.push_str("{\"event_type\":\"click\",\"timestamp\":1764230400001}\n");
    let lines = text.lines().count() as u64;
    (text, lines)
}

/// `{sample name: {labels: value}}` of a metrics text, parsed by prometheus_client.
fn parse_openmetrics(python: &str, text: &str) -> (BTreeMap<String, BTreeMap<String, f64>>, BTreeMap<String, String>) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/openmetrics.py");
    let mut child = Command::new(python)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "prometheus_client refused the text: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let parsed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let samples = serde_json::from_value(parsed["samples"].clone()).unwrap();
    let types = serde_json::from_value(parsed["types"].clone()).unwrap();
    (samples, types)
}

#[test]
fn metrics_and_health_agree_with_what_the_run_wrote() {
    let Some(tools) = tools("http::metrics", &["RTSA_PYTHON"]) else { return };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = dir.path().join("c.yaml");
    std::fs::write(
        &config,
        format!(
            r#"
source: {{ kind: stdin }}
watermark: {{ max_out_of_orderness: 2s }}
engine: {{ status_interval: 0s }}
aggregations:
  - {{ name: by_type_10s, window: {{ kind: tumbling, size: 10s }}, group_by: event_type }}
  - {{ name: by_user_sessions, window: {{ kind: session, gap: 5s }}, group_by: user_id }}
sinks:
  metrics: [ {{ kind: jsonl, path: {m} }} ]
  alerts: []
  dead_letter: {{ kind: jsonl, path: {d} }}
http: {{ listen: "127.0.0.1:{port}" }}
"#,
            m = dir.path().join("m.jsonl").display(),
            d = dir.path().join("d.jsonl").display(),
        ),
    )
    .unwrap();
    let (text, lines) = input_with_invalid_lines();
    let mut child = serve(&config, Stdio::piped());
    wait_for_port(port, "the HTTP server");
    let (status, body) = get(&format!("http://127.0.0.1:{port}/health"), None);
    assert_eq!(status, 200, "{body}");
    let health: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], "running");

    // Everything is read, but stdin stays open: the engine runs on with what it counted.
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(text.as_bytes()).unwrap();
    stdin.flush().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let metrics = loop {
        let (status, body) = get(&format!("http://127.0.0.1:{port}/metrics"), None);
        assert_eq!(status, 200);
        if body.lines().any(|l| l == format!("rtsa_events_in_total {lines}")) {
            break body;
        }
        assert!(Instant::now() < deadline, "the engine did not read {lines} lines:\n{body}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let (samples, types) = parse_openmetrics(&tools[0], &metrics);
    for name in [
        "rtsa_events_in",
        "rtsa_late_events",
        "rtsa_invalid_events",
        "rtsa_records_out",
        "rtsa_alerts",
        "rtsa_alerts_undelivered",
        "rtsa_checkpoints",
    ] {
        assert_eq!(types.get(name).map(String::as_str), Some("counter"), "{name}");
    }
    for name in ["rtsa_watermark_ms", "rtsa_watermark_lag_seconds", "rtsa_backpressure_epochs", "rtsa_open_windows"] {
        assert_eq!(types.get(name).map(String::as_str), Some("gauge"), "{name}");
    }
    for name in ["rtsa_emit_latency_seconds", "rtsa_alert_latency_seconds"] {
        assert_eq!(types.get(name).map(String::as_str), Some("histogram"), "{name}");
    }
    assert_eq!(samples["rtsa_events_in_total"][""], lines as f64);
    let watermark = samples["rtsa_watermark_ms"][""];
    assert!(watermark > 1_764_230_400_000.0, "watermark {watermark}");
    let sessions_open = samples["rtsa_open_windows"][""];
    assert!(sessions_open > 0.0, "open windows while stdin is open: {sessions_open}");
    let late_by_aggregation = samples["rtsa_late_events_total"].clone();
    let invalid_by_reason = samples["rtsa_invalid_events_total"].clone();

    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The counters say what the dead-letter sink holds, reason by reason.
    let letters = read_jsonl(&dir.path().join("d.jsonl"));
    let mut late = BTreeMap::new();
    let mut invalid = BTreeMap::new();
    for letter in &letters {
        let reason = letter["reason"].as_str().unwrap().to_owned();
        if reason == "late" {
            *late.entry(format!("aggregation={}", letter["aggregation"].as_str().unwrap())).or_insert(0.0) += 1.0;
        } else {
            *invalid.entry(format!("reason={reason}")).or_insert(0.0) += 1.0;
        }
    }
    assert_eq!(invalid.values().sum::<f64>(), 5.0, "{invalid:?}");
    assert_eq!(invalid_by_reason, invalid);
    assert!(late.get("aggregation=by_type_10s").is_some_and(|n| *n >= 1.0), "{late:?}");
    for (aggregation, n) in &late_by_aggregation {
        assert_eq!(late.get(aggregation).copied().unwrap_or(0.0), *n, "{aggregation}");
    }
}

#[test]
fn the_dashboard_in_chromium_shows_the_records_the_sinks_wrote() {
    let Some(tools) = tools("http::dashboard", &["RTSA_PYTHON", "RTSA_CHROMIUM"]) else { return };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = dir.path().join("c.yaml");
    let metrics = dir.path().join("m.jsonl");
    std::fs::write(
        &config,
        format!(
            r#"
source: {{ kind: generator, rate: 3000 }}
watermark: {{ max_out_of_orderness: 500ms }}
engine: {{ status_interval: 0s }}
aggregations:
  - {{ name: by_type_2s, window: {{ kind: tumbling, size: 2s }}, group_by: event_type }}
  - {{ name: by_type_4s_sliding, window: {{ kind: sliding, size: 4s, slide: 2s }}, group_by: event_type }}
  - {{ name: by_user_sessions, window: {{ kind: session, gap: 2s }}, group_by: user_id }}
anomalies:
  - {{ kind: threshold, name: busy_type, aggregation: by_type_2s, metric: count, direction: above, min_count: 1, levels: {{ medium: 300, high: 600 }} }}
sinks:
  metrics: [ {{ kind: jsonl, path: {m} }} ]
  alerts: [ {{ kind: jsonl, path: {a} }} ]
  dead_letter: {{ kind: jsonl, path: {d} }}
http: {{ listen: "127.0.0.1:{port}" }}
"#,
            m = metrics.display(),
            a = dir.path().join("a.jsonl").display(),
            d = dir.path().join("d.jsonl").display(),
        ),
    )
    .unwrap();
    let child = serve(&config, Stdio::null());
    wait_for_port(port, "the HTTP server");
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let screenshot = artifacts.join("dashboard.png");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/dashboard.py");
    let page = Command::new(&tools[0])
        .arg(script)
        .args([&format!("http://127.0.0.1:{port}/"), screenshot.to_str().unwrap(), "6"])
        .env("RTSA_CHROMIUM", &tools[1])
        .output()
        .unwrap();
    interrupt(&child);
    let out = child.wait_with_output().unwrap();
    assert!(page.status.success(), "the browser script failed: {}", String::from_utf8_lossy(&page.stderr));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let shown: Value = serde_json::from_slice(&page.stdout).unwrap();

    // Alive: fed by the server-sent events, with a rate and a watermark.
    assert_eq!(shown["connection"], "live", "{shown}");
    assert_eq!(shown["status"], "running");
    let rate: f64 = shown["rate"].as_str().unwrap().replace(',', "").parse().unwrap_or(0.0);
    // The generator's 3000/s, as the page measures it between two updates (loose: the tests
    // share two cores).
    assert!(rate > 300.0, "events per second shown: {}", shown["rate"]);
    assert!(shown["watermark_lag"].as_str().unwrap().contains("behind the wall clock"), "{shown}");
    // Every row the page shows is a record the metrics sink wrote, with the same count.
    let records: Vec<Value> = read_jsonl(&metrics);
    let written: BTreeMap<(String, String, i64), u64> = records
        .iter()
        .map(|r| {
            let id = (
                r["aggregation"].as_str().unwrap().to_owned(),
                r["key"].as_str().unwrap().to_owned(),
                r["window_start"].as_i64().unwrap(),
            );
            (id, r["count"].as_u64().unwrap())
        })
        .collect();
    let rows = shown["rows"].as_array().unwrap();
    for aggregation in ["by_type_2s", "by_type_4s_sliding", "by_user_sessions"] {
        assert!(rows.iter().any(|r| r["aggregation"] == aggregation), "no row of {aggregation}: {shown}");
    }
    for row in rows {
        let id = (
            row["aggregation"].as_str().unwrap().to_owned(),
            row["key"].as_str().unwrap().to_owned(),
            row["window_start"].as_i64().unwrap(),
        );
        assert_eq!(written.get(&id).copied(), row["count"].as_u64(), "row {row} against the metrics records");
    }
    // The event types of the by-type tables are those of the records.
    let types: std::collections::BTreeSet<&str> =
        rows.iter().filter(|r| r["aggregation"] == "by_type_2s").map(|r| r["key"].as_str().unwrap()).collect();
    assert!(types.contains("click") && types.contains("page_view"), "{types:?}");
    // The open windows so far, the alerts and the charts are there too.
    assert!(shown["so_far"].as_array().unwrap().iter().any(|r| r["events"].as_u64().unwrap_or(0) > 0), "{shown}");
    let alerts: Vec<Value> = read_jsonl(&dir.path().join("a.jsonl"));
    let alert_ids: std::collections::BTreeSet<&str> = alerts.iter().map(|a| a["alert_id"].as_str().unwrap()).collect();
    let shown_alerts = shown["alerts"].as_array().unwrap();
    assert!(!shown_alerts.is_empty(), "{shown}");
    assert!(shown_alerts.iter().all(|id| alert_ids.contains(id.as_str().unwrap())), "{shown}");
    assert!(shown["charts"].as_u64().unwrap() >= 5, "rate chart and two per by-type aggregation: {shown}");
    let png = std::fs::read(&screenshot).unwrap();
    assert!(png.starts_with(b"\x89PNG") && png.len() > 20_000, "screenshot {} bytes", png.len());
}

#[test]
fn rtsa_top_in_a_terminal_shows_the_rates() {
    if Command::new("tmux").arg("-V").output().is_err() {
        assert!(std::env::var("RTSA_REQUIRE_SERVICES").is_err(), "tmux is missing (scripts/services.sh installs it)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = dir.path().join("c.yaml");
    std::fs::write(
        &config,
        format!(
            "source: {{ kind: generator, rate: 2000 }}\nengine: {{ status_interval: 0s }}\naggregations: [ {{ name: t, window: {{ kind: tumbling, size: 10s }} }} ]\nsinks: {{ metrics: [], alerts: [], dead_letter: {{ kind: jsonl, path: {} }} }}\nhttp: {{ listen: \"127.0.0.1:{port}\" }}\n",
            dir.path().join("d.jsonl").display()
        ),
    )
    .unwrap();
    let child = serve(&config, Stdio::null());
    wait_for_port(port, "the HTTP server");
    let session = crate::util::unique("rtsa-top").replace('-', "_");
    let top = format!("{} top --url http://127.0.0.1:{port}", env!("CARGO_BIN_EXE_rtsa"));
    let started = Command::new("tmux")
        .args(["new-session", "-d", "-s", &session, "-x", "120", "-y", "30", &top])
        .status()
        .unwrap();
    assert!(started.success());
    std::thread::sleep(Duration::from_millis(3500));
    let screen = Command::new("tmux").args(["capture-pane", "-p", "-t", &session]).output().unwrap();
    let _ = Command::new("tmux").args(["send-keys", "-t", &session, "C-c"]).status();
    std::thread::sleep(Duration::from_millis(300));
    let _ = Command::new("tmux").args(["kill-session", "-t", &session]).output();
    interrupt(&child);
    let _ = child.wait_with_output();
    let screen = String::from_utf8_lossy(&screen.stdout).into_owned();
    let events = screen.lines().find(|l| l.starts_with("events in")).unwrap_or_else(|| panic!("{screen}"));
    let rate: f64 = events.split_whitespace().nth(2).unwrap().trim_end_matches("/s").replace(',', "").parse().unwrap();
    // The generator's 2000/s, as top measures it between two scrapes (loose: the tests share
    // two cores).
    assert!((200.0..20_000.0).contains(&rate), "the generator's 2000/s, as top shows it: {screen}");
    assert!(screen.contains("watermark") && screen.contains("lag"), "{screen}");
}

#[test]
fn a_port_already_taken_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let out = rtsa()
        .env("RTSA__HTTP__LISTEN", format!("127.0.0.1:{port}"))
        .env("RTSA__SOURCE__COUNT", "10")
        .args(["run"])
        .current_dir(tempfile::tempdir().unwrap().path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("http.listen 127.0.0.1:{port}: cannot listen there")), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_token_is_required_when_one_is_set_and_off_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = dir.path().join("c.yaml");
    let body = |listen: &str| {
        format!(
            "source: {{ kind: generator, rate: 100 }}\nengine: {{ status_interval: 0s }}\naggregations: [ {{ name: t, window: {{ kind: tumbling, size: 10s }} }} ]\nsinks: {{ metrics: [], alerts: [], dead_letter: {{ kind: jsonl, path: {} }} }}\nhttp: {{ {listen} }}\n",
            dir.path().join("d.jsonl").display()
        )
    };
    // Listening beyond loopback without a token is a config error, with its key.
    std::fs::write(&config, body("listen: \"0.0.0.0:9898\"")).unwrap();
    let out = rtsa().env_remove("RTSA__HTTP__LISTEN").args(["check", "--config"]).arg(&config).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("http.token_env: required when http.listen (0.0.0.0:9898)"));

    std::fs::write(&config, body(&format!("listen: \"127.0.0.1:{port}\", token_env: RTSA_TEST_HTTP_TOKEN"))).unwrap();
    let mut command = rtsa();
    command.env_remove("RTSA__HTTP__LISTEN").env("RTSA_TEST_HTTP_TOKEN", "s3cret-token");
    let child =
        command.args(["run", "--config"]).arg(&config).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    wait_for_port(port, "the HTTP server");
    let base = format!("http://127.0.0.1:{port}");
    assert_eq!(get(&format!("{base}/metrics"), None).0, 401);
    assert_eq!(get(&format!("{base}/metrics"), Some("wrong")).0, 401);
    assert_eq!(get(&format!("{base}/metrics"), Some("s3cret-token")).0, 200);
    assert_eq!(get(&format!("{base}/?token=s3cret-token"), None).0, 200);
    interrupt(&child);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("s3cret-token"), "the token was printed: {stderr}");
}

#[test]
fn each_process_of_a_cluster_serves_its_own_counters_on_the_next_port() {
    let dir = tempfile::tempdir().unwrap();
    // Two free ports in a row.
    let port = loop {
        let port = free_port();
        if port < u16::MAX && std::net::TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            break port;
        }
    };
    let config = dir.path().join("c.yaml");
    std::fs::write(
        &config,
        format!(
            "source: {{ kind: generator, rate: 2000, partitions: 4 }}\nwatermark: {{ max_out_of_orderness: 500ms }}\nengine: {{ status_interval: 0s }}\naggregations: [ {{ name: t, window: {{ kind: tumbling, size: 2s }}, group_by: event_type }} ]\nsinks: {{ metrics: [ {{ kind: jsonl, path: {m} }} ], alerts: [], dead_letter: {{ kind: jsonl, path: {d} }} }}\nhttp: {{ listen: \"127.0.0.1:{port}\" }}\n",
            m = dir.path().join("m.jsonl").display(),
            d = dir.path().join("d.jsonl").display()
        ),
    )
    .unwrap();
    let child = rtsa()
        .env_remove("RTSA__HTTP__LISTEN")
        .args(["cluster", "--processes", "2", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_port(port, "process 0's HTTP server");
    wait_for_port(port + 1, "process 1's HTTP server");
    std::thread::sleep(Duration::from_secs(4));
    let states: Vec<Value> = [port, port + 1]
        .iter()
        .map(|p| serde_json::from_str(&get(&format!("http://127.0.0.1:{p}/api/state"), None).1).unwrap())
        .collect();
    let metrics: Vec<String> =
        [port, port + 1].iter().map(|p| get(&format!("http://127.0.0.1:{p}/metrics"), None).1).collect();
    interrupt(&child);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains(&format!("[p1] rtsa: dashboard on http://127.0.0.1:{}/", port + 1)), "{stderr}");
    for (process, state) in states.iter().enumerate() {
        assert_eq!(state["process"], process as u64);
        // Each reads its own partitions: both count events.
        assert!(state["counters"]["events_in"].as_u64().unwrap() > 1000, "process {process}: {state}");
    }
    // Process 0 writes the records and shows them; process 1 only its counters.
    assert!(!states[0]["aggregations"][0]["rows"].as_array().unwrap().is_empty(), "{}", states[0]);
    assert!(states[1]["aggregations"][0]["rows"].as_array().unwrap().is_empty(), "{}", states[1]);
    assert!(
        metrics[0].contains("rtsa_metrics_records_total") && !metrics[0].contains("rtsa_metrics_records_total 0\n")
    );
    assert!(metrics[1].contains("rtsa_metrics_records_total 0\n"), "{}", metrics[1]);
}
