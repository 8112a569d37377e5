//! Checkpoints in the real Redis: kill -9 at random moments and restarts with other worker
//! counts give every metrics record and dead letter exactly once, equal to a run without
//! crashes; a run after the end adds nothing; `--fresh` starts over; a changed config is refused.

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
engine: {{ status_interval: 0s }}
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

fn run(config: &Path, args: &[&str]) -> std::process::Output {
    rtsa().arg("run").arg("--config").arg(config).args(args).output().unwrap()
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

    for file in ["metrics.jsonl", "dead.jsonl"] {
        let expected = comparable(&read_jsonl(&dir.path().join("plain").join(file)));
        let got = comparable(&read_jsonl(&dir.path().join("cp").join(file)));
        assert!(!expected.is_empty());
        assert_eq!(got.len(), expected.len(), "{file}: every record once");
        assert!(got == expected, "{file}: the same records as a run without crashes");
    }

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
