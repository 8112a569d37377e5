//! The binary's commands, exit codes and error output.

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::process::{Command, Stdio};

pub use crate::util::rtsa;

#[test]
fn an_invalid_config_lists_every_problem_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        r#"
source: { kind: file }
aggregations:
  - { name: a, window: { kind: sliding, size: 5m, slide: 2m } }
  - { name: a, window: { kind: tumbling, size: 1m }, group_by: planet }
"#,
    )
    .unwrap();
    let out = rtsa().args(["check", "--config"]).arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error: ")).collect();
    assert!(errors.iter().any(|e| e.contains("source: missing field `path`")), "{stderr}");
    assert!(errors.iter().any(|e| e.contains("aggregations[0].window.size: must be a multiple of slide")), "{stderr}");
    assert!(errors.iter().any(|e| e.contains("aggregations[1].group_by")), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn check_prints_the_pipeline() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/default.yaml");
    let out = rtsa().args(["check", "--config"]).arg(&path).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("by_type_1m: tumbling 1m by event_type"), "{stdout}");
    assert!(stdout.contains("by_user_sessions: session, gap 30s by user_id"), "{stdout}");
}

#[test]
fn bad_usage_exits_2() {
    let out = rtsa().args(["run", "--workers", "0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = rtsa().args(["run", "--process", "0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_missing_input_file_is_a_runtime_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    std::fs::write(
        &path,
        format!(
            r#"
source: {{ kind: file, path: {} }}
aggregations:
  - {{ name: a, window: {{ kind: tumbling, size: 1m }} }}
sinks: {{ metrics: [], dead_letter: {{ kind: jsonl, path: {} }} }}
"#,
            dir.path().join("nope.jsonl").display(),
            dir.path().join("dl.jsonl").display()
        ),
    )
    .unwrap();
    let out = rtsa().args(["run", "--config"]).arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("nope.jsonl"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn generate_is_deterministic_per_seed() {
    let run = |seed: &str| {
        rtsa().args(["generate", "--count", "500", "--start-ms", "1764230400000", "--seed", seed]).output().unwrap()
    };
    let a = run("5");
    let b = run("5");
    let c = run("6");
    assert!(a.status.success());
    assert_eq!(a.stdout, b.stdout);
    assert_ne!(a.stdout, c.stdout);
    assert_eq!(String::from_utf8(a.stdout).unwrap().lines().count(), 500);
}

#[test]
fn stdin_to_console_json_and_dead_letters() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    let dead = dir.path().join("dl.jsonl");
    std::fs::write(
        &path,
        format!(
            r#"
source: {{ kind: stdin }}
aggregations:
  - {{ name: by_type, window: {{ kind: tumbling, size: 1m }}, group_by: event_type }}
sinks: {{ metrics: [ {{ kind: console, json: true }} ], dead_letter: {{ kind: jsonl, path: {} }} }}
"#,
            dead.display()
        ),
    )
    .unwrap();
    let mut child =
        rtsa().args(["run", "--config"]).arg(&path).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    let input = concat!(
        r#"{"event_type":"click","timestamp":1764230400000,"latency_ms":10,"user_id":"a"}"#,
        "\n",
        r#"{"event_type":"click","timestamp":1764230410000,"latency_ms":20,"user_id":"b","status":"error"}"#,
        "\n",
        "oops\n",
        r#"{"event_type":"view","timestamp":1764230470000}"#,
        "\n",
    );
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let records: Vec<serde_json::Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(records.len(), 2);
    let click = records.iter().find(|r| r["key"] == "click").unwrap();
    assert_eq!(click["count"], 2);
    assert_eq!(click["error_rate"], 50.0);
    assert_eq!(click["unique_users"], 2);
    assert_eq!(click["window_start"], 1_764_230_400_000u64);
    let letters = std::fs::read_to_string(&dead).unwrap();
    assert!(letters.contains(r#""reason":"invalid_json""#) && letters.contains(r#""position":"line 3""#), "{letters}");
}

#[test]
fn bench_ends_with_the_contract_json_line() {
    let out = rtsa().args(["bench", "--events", "20000", "--workers", "2"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let last: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(last["events"], 20000);
    assert_eq!(last["workers"], 2);
    for field in ["seconds", "events_per_sec", "peak_rss_mb"] {
        assert!(last[field].as_f64().unwrap() > 0.0, "{field}: {last}");
    }
}

#[test]
fn the_embedded_default_runs_until_sigint_then_flushes_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    // Environment overrides apply to the embedded default too: a status line every second.
    let child = rtsa()
        .arg("run")
        .env("RTSA__ENGINE__STATUS_INTERVAL", "1s")
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(3));
    let status = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    // Ctrl-C closes the open windows: every default aggregation has written records.
    let metrics = std::fs::read_to_string(dir.path().join("rtsa-out/metrics.jsonl")).unwrap();
    for name in ["by_type_1m", "by_type_5m_sliding", "by_user_1m", "by_user_sessions"] {
        assert!(metrics.contains(&format!(r#""aggregation":"{name}""#)), "{name} missing");
    }
    // The console shows the by-type aggregations as readable lines.
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.lines().any(|l| l.starts_with("by_type_1m") && l.contains("count=")), "{stdout}");
    assert!(!stdout.contains("by_user_1m"), "per-user records stay out of the console");
    let stderr = String::from_utf8(out.stderr).unwrap();
    let status: Vec<&str> = stderr.lines().filter(|l| l.starts_with("rtsa: status: ")).collect();
    assert!(!status.is_empty(), "{stderr}");
    assert!(status.iter().any(|l| l.contains(" events (") && l.contains("watermark 20")), "{stderr}");
}

#[test]
fn a_named_pipe_is_fed_to_every_worker_as_one_worker_reads_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::new();
    for i in 0..6_000u64 {
        let ts = 1_764_230_400_000 + i * 25 + (i * 7_919) % 9_000;
        match i % 89 {
            0 => text.push_str("{broken"),
            _ => text.push_str(&format!(r#"{{"event_type":"t{}","user_id":"u{}","timestamp":{ts}}}"#, i % 4, i % 30)),
        }
        text.push_str(if i % 700 == 0 { "\n\n" } else { "\n" });
    }
    let file = dir.path().join("events.jsonl");
    std::fs::write(&file, &text).unwrap();
    let source = format!("{{ kind: file, path: {} }}", file.display());
    let (expected, read) = run_source(dir.path(), "file", &source, Stdio::null(), None, 1);
    assert_eq!(read, Read::Chunks);
    assert!(expected[1].iter().any(|d| d.contains(r#""reason":"late""#)), "some events are late");
    let fifo = dir.path().join("events.fifo");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let writer = {
        let (fifo, text) = (fifo.clone(), text.clone());
        std::thread::spawn(move || std::fs::write(fifo, text).unwrap())
    };
    let source = format!("{{ kind: file, path: {} }}", fifo.display());
    let (fed, read) = run_source(dir.path(), "fifo", &source, Stdio::null(), None, 2);
    writer.join().unwrap();
    assert_eq!(read, Read::Feed, "a named pipe has no length to cut: a reader thread cuts it");
    assert_same(&fed, &expected, "a named pipe, 2 workers");
}

#[test]
fn an_idle_live_partition_stops_holding_the_watermark() {
    use std::io::BufRead;
    // One worker reads the pipe in order; two parse the chunks a reader thread cuts, the quiet
    // spell being a floor in that sequence: the same decisions.
    for workers in [1, 2] {
        let dir = tempfile::tempdir().unwrap();
        let (path, dead) = (dir.path().join("c.yaml"), dir.path().join("dl.jsonl"));
        std::fs::write(
            &path,
            format!(
                r#"
source: {{ kind: stdin }}
watermark: {{ max_out_of_orderness: 1s, idle_timeout: 1s }}
aggregations:
  - {{ name: t, window: {{ kind: tumbling, size: 2s }}, group_by: none }}
sinks: {{ metrics: [ {{ kind: console, json: true }} ], dead_letter: {{ kind: jsonl, path: {} }} }}
"#,
                dead.display()
            ),
        )
        .unwrap();
        let mut child = rtsa()
            .args(["run", "--workers", &workers.to_string(), "--config"])
            .arg(&path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
        let mut stdin = child.stdin.take().unwrap();
        writeln!(stdin, r#"{{"event_type":"a","timestamp":{}}}"#, now - 20_000).unwrap();
        stdin.flush().unwrap();
        // The input stays open: only idleness can close the window.
        let stdout = child.stdout.take().unwrap();
        let (send, receive) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let _ = send.send(line.unwrap());
            }
        });
        let line = receive
            .recv_timeout(std::time::Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("{workers} workers: the window is emitted while stdin is still open"));
        let record: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(record["count"], 1, "{workers} workers");
        // An event of that window, now closed, arriving after the quiet spell: late (judged
        // against the watermark the idle partition followed, not its last event's).
        writeln!(stdin, r#"{{"event_type":"a","timestamp":{}}}"#, now - 20_000).unwrap();
        drop(stdin);
        assert!(child.wait().unwrap().success());
        let letters = std::fs::read_to_string(&dead).unwrap();
        assert!(letters.contains(r#""reason":"late""#) && letters.contains("line 2"), "{workers} workers: {letters}");
        assert!(receive.recv_timeout(std::time::Duration::from_secs(5)).is_err(), "no second record");
    }
}

/// Runs `rtsa run --config path`, failing the test if it does not finish within `limit`.
fn run_within(path: &std::path::Path, limit: std::time::Duration) -> std::process::Output {
    let child =
        rtsa().args(["run", "--config"]).arg(path).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let id = child.id();
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(child.wait_with_output());
    });
    match finished.recv_timeout(limit) {
        Ok(output) => output.unwrap(),
        Err(_) => {
            let _ = std::process::Command::new("kill").args(["-9", &id.to_string()]).status();
            panic!("rtsa run did not finish within {limit:?}");
        }
    }
}

#[test]
fn hostile_timestamps_and_values_are_dead_letters_and_change_nothing_else() {
    // Regressions: one event at u64::MAX hung a run; one stamped two hours ahead (a broken clock)
    // or in the year 9999 made the rest late; -1e308 saturated a sum; "" was a key of its own.
    let dir = tempfile::tempdir().unwrap();
    let out = rtsa()
        .args([
            "generate",
            "--count",
            "20000",
            "--start-ms",
            "1764230400000",
            "--event-time-rate",
            "200",
            "--seed",
            "9",
        ])
        .output()
        .unwrap();
    let mut lines: Vec<String> = String::from_utf8(out.stdout).unwrap().lines().map(str::to_owned).collect();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    let hostile = [
        r#"{"event_type":"click","timestamp":18446744073709551615}"#.to_owned(),
        format!(r#"{{"event_type":"click","timestamp":{}}}"#, now + 2 * 3_600_000),
        r#"{"event_type":"click","timestamp":"9999-12-31T23:59:59.999Z"}"#.to_owned(),
        r#"{"event_type":"click","timestamp":1764230400500,"value":-1e308}"#.to_owned(),
        r#"{"event_type":"","timestamp":1764230400500}"#.to_owned(),
        r#"{"event_type":"click","user_id":"","timestamp":1764230400500}"#.to_owned(),
    ];
    for (i, line) in hostile.iter().enumerate() {
        lines.insert(100 + i * 1_000, line.clone());
    }
    let events = dir.path().join("events.jsonl");
    std::fs::write(&events, lines.join("\n") + "\n").unwrap();
    let path = dir.path().join("hostile.yaml");
    std::fs::write(
        &path,
        format!(
            r#"
source: {{ kind: file, path: {events} }}
watermark: {{ max_out_of_orderness: 5s }}
aggregations:
  - {{ name: by_type, window: {{ kind: tumbling, size: 1m }}, group_by: event_type }}
  - {{ name: sessions, window: {{ kind: session, gap: 30s }}, group_by: user_id }}
sinks:
  metrics: [ {{ kind: jsonl, path: {metrics} }} ]
  dead_letter: {{ kind: jsonl, path: {dead} }}
"#,
            events = events.display(),
            metrics = dir.path().join("metrics.jsonl").display(),
            dead = dir.path().join("dead.jsonl").display()
        ),
    )
    .unwrap();
    let out = run_within(&path, std::time::Duration::from_secs(60));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let letters = crate::util::read_jsonl(&dir.path().join("dead.jsonl"));
    let reasons = |reason: &str| letters.iter().filter(|l| l["reason"] == reason).count();
    assert_eq!(reasons("future"), 2, "now + 2 h and the year 9999");
    assert_eq!(reasons("bad_value"), 4, "u64::MAX, -1e308, an empty event type, an empty user id");
    assert!(
        letters.iter().filter(|l| l["reason"] != "late").all(|l| l["detail"].is_string()),
        "every invalid one says why"
    );
    // The generator's own late events (0.1%) are all the late there is: nothing else turned late.
    let late = reasons("late");
    assert!(late < 20 * 2 * 2, "{late} late dead letters: the hostile events moved a watermark");
    let metrics = crate::util::read_jsonl(&dir.path().join("metrics.jsonl"));
    let counted: u64 =
        metrics.iter().filter(|m| m["aggregation"] == "by_type").map(|m| m["count"].as_u64().unwrap()).sum();
    let late_by_type = letters.iter().filter(|l| l["reason"] == "late" && l["aggregation"] == "by_type").count() as u64;
    assert_eq!(counted + late_by_type, 20_000, "every valid event is counted or late");
    assert!(metrics.iter().all(|m| m["key"] != "" && m["value"]["sum"].as_f64().is_none_or(|s| s.abs() < 1e12)));
}

#[test]
fn a_stop_that_cannot_flush_ends_within_the_shutdown_timeout_and_says_what_was_lost() {
    // A webhook that accepts connections and never answers: its alerts cannot be delivered, and
    // closing the channel would wait for every retry.
    let black_hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/alerts", black_hole.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in black_hole.incoming().flatten() {
            held.push(stream);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stuck.yaml");
    std::fs::write(
        &path,
        format!(
            r#"
source: {{ kind: generator, rate: 2000, partitions: 2 }}
engine: {{ shutdown_timeout: 2s, status_interval: 0s }}
aggregations:
  - {{ name: t, window: {{ kind: tumbling, size: 1m }}, group_by: event_type }}
anomalies:
  - {{ kind: event, name: every_login, event_type: login, group_by: user_id, cooldown: 0s }}
sinks:
  metrics: []
  alerts: [ {{ kind: webhook, url: "{url}", timeout: 5s, retries: 5 }} ]
  dead_letter: {{ kind: jsonl, path: {dead} }}
"#,
            dead = dir.path().join("dead.jsonl").display()
        ),
    )
    .unwrap();
    let child =
        rtsa().args(["run", "--config"]).arg(&path).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1_500));
    let _ = std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status();
    let stopped = std::time::Instant::now();
    let out = child.wait_with_output().unwrap();
    let took = stopped.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(took < std::time::Duration::from_secs(10), "took {took:?} to stop");
    assert!(stderr.contains("did not finish within 2s (engine.shutdown_timeout)"), "{stderr}");
    assert!(stderr.contains("alerts still queued for delivery"), "{stderr}");
}

/// The metrics and dead letters of `rtsa run` over standard input (`stdin`, written `feed` if it
/// is a pipe) with `workers` workers and chunks of 4 KiB, times of writing left out; and how
/// the run read its input.
fn run_stdin(
    dir: &std::path::Path,
    name: &str,
    stdin: Stdio,
    feed: Option<&[u8]>,
    workers: u32,
) -> ([Vec<String>; 2], Read) {
    run_source(dir, name, "{ kind: stdin }", stdin, feed, workers)
}

/// [`run_stdin`] with the config's `source` (a YAML flow mapping).
fn run_source(
    dir: &std::path::Path,
    name: &str,
    source: &str,
    stdin: Stdio,
    feed: Option<&[u8]>,
    workers: u32,
) -> ([Vec<String>; 2], Read) {
    let (metrics, dead) = (dir.join(format!("{name}-metrics.jsonl")), dir.join(format!("{name}-dead.jsonl")));
    let config = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &config,
        format!(
            r#"
source: {source}
watermark: {{ max_out_of_orderness: 5s }}
engine: {{ read_chunk_bytes: 4096 }}
aggregations:
  - {{ name: by_type, window: {{ kind: tumbling, size: 1m }}, group_by: event_type }}
  - {{ name: by_user, window: {{ kind: sliding, size: 2m, slide: 1m }}, group_by: user_id }}
sinks: {{ metrics: [ {{ kind: jsonl, path: {} }} ], dead_letter: {{ kind: jsonl, path: {} }} }}
http: {{ listen: "off" }}
"#,
            metrics.display(),
            dead.display()
        ),
    )
    .unwrap();
    let mut child = rtsa()
        .args(["run", "--workers", &workers.to_string(), "--config"])
        .arg(&config)
        .env("RUST_LOG", "rtsa=info")
        .stdin(stdin)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(bytes) = feed {
        child.stdin.take().unwrap().write_all(bytes).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let outputs = [metrics, dead].map(|path| {
        let text = std::fs::read_to_string(path).unwrap();
        text.lines()
            .map(|l| {
                let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
                v.as_object_mut().unwrap().remove("emitted_at");
                v.to_string()
            })
            .collect()
    });
    let read = match () {
        _ if stderr.contains("reading the source in chunks") => Read::Chunks,
        _ if stderr.contains("reading the source on a thread of its own") => Read::Feed,
        _ => Read::OneWorker,
    };
    (outputs, read)
}

/// How a run read standard input, as its log says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Read {
    /// A regular file: cut into chunks up front, every worker reads some.
    Chunks,
    /// A pipe: cut into chunks by a reader thread as it arrives, every worker parses some.
    Feed,
    /// In order, by one worker.
    OneWorker,
}

/// Asserts that two runs wrote the same records and dead letters, in the same order.
fn assert_same(a: &[Vec<String>; 2], b: &[Vec<String>; 2], what: &str) {
    crate::util::assert_same_lines(&format!("{what}: records"), &a[0], &b[0]);
    crate::util::assert_same_lines(&format!("{what}: dead letters"), &a[1], &b[1]);
}

#[test]
fn stdin_is_read_by_every_worker_as_one_worker_reads_a_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = Vec::new();
    let mut starts = Vec::new();
    for i in 0..12_000u64 {
        starts.push(text.len() as u64);
        // Disordered by up to 9 s against a 5 s allowance: some events are late.
        let ts = 1_764_230_400_000 + i * 25 + (i * 7_919) % 9_000;
        match i % 97 {
            0 => text.extend_from_slice(b"oops"),
            _ => text.extend_from_slice(
                format!(
                    r#"{{"event_type":"t{}","user_id":"u{}","timestamp":{ts},"latency_ms":{}.5}}"#,
                    i % 5,
                    i % 40,
                    i % 300
                )
                .as_bytes(),
            ),
        }
        text.extend_from_slice(if i % 500 == 0 { b"\r\n\n" } else { b"\n" });
    }
    let file = dir.path().join("events.jsonl");
    std::fs::write(&file, &text).unwrap();

    // A pipe and one worker: read in order, as a single reader does.
    let (piped, read) = run_stdin(dir.path(), "pipe", Stdio::piped(), Some(&text), 1);
    assert_eq!(read, Read::OneWorker, "a pipe has no length to cut");
    assert!(
        piped[0].len() > 100 && piped[1].len() > 100,
        "{} records, {} dead letters",
        piped[0].len(),
        piped[1].len()
    );
    assert!(piped[1].iter().any(|d| d.contains(r#""reason":"late""#)));
    assert!(piped[1].iter().any(|d| d.contains(r#""reason":"invalid_json""#) && d.contains(r#""position":"line 99""#)));
    // A pipe and more workers: a reader thread cuts it into chunks, every worker parses some.
    for workers in [2, 3] {
        let (fed, read) = run_stdin(dir.path(), &format!("pipe{workers}"), Stdio::piped(), Some(&text), workers);
        assert_eq!(read, Read::Feed, "{workers} workers");
        assert_same(&fed, &piped, &format!("a pipe, {workers} workers"));
    }
    // The file itself on standard input: every worker reads chunks of it.
    for workers in [1, 2, 3] {
        let stdin = Stdio::from(File::open(&file).unwrap());
        let (redirected, read) = run_stdin(dir.path(), &format!("file{workers}"), stdin, None, workers);
        assert_eq!(read, Read::Chunks, "{workers} workers: read in chunks");
        assert_same(&redirected, &piped, &format!("{workers} workers"));
    }
    // Standard input already part-way through the file: both read from there, and count lines
    // from there.
    let at = starts[5_001];
    let mut partway = File::open(&file).unwrap();
    partway.seek(SeekFrom::Start(at)).unwrap();
    let (redirected, read) = run_stdin(dir.path(), "partway", Stdio::from(partway), None, 2);
    assert_eq!(read, Read::Chunks);
    let (piped, _) = run_stdin(dir.path(), "partway-pipe", Stdio::piped(), Some(&text[at as usize..]), 1);
    assert_same(&redirected, &piped, "part-way");
    // Input 5,044 is "oops": line 44 counted from input 5,001 (no blank line between).
    assert!(
        redirected[1].iter().any(|d| d.contains(r#""reason":"invalid_json""#) && d.contains(r#""position":"line 44""#))
    );
}
