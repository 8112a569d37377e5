//! Two processes wired by a hostfile give the same results as one.

use crate::util::{comparable, read_jsonl, rtsa};
pub use crate::util::{free_port, wait_for_port};
use std::path::Path;

fn config(dir: &Path, out: &str) -> std::path::PathBuf {
    let path = dir.join(format!("{out}.yaml"));
    std::fs::write(
        &path,
        format!(
            r#"
source: {{ kind: generator, count: 40000, rate: 0, seed: 3, partitions: 4, start_ms: 1764230400000,
          event_time_rate: 400, users: 300, late_delay: 40s }}
{aggregations}
sinks:
  metrics: [ {{ kind: jsonl, path: {metrics} }} ]
  dead_letter: {{ kind: jsonl, path: {dead} }}
"#,
            aggregations = crate::engine::aggregations_yaml(),
            metrics = dir.join(out).join("metrics.jsonl").display(),
            dead = dir.join(out).join("dead.jsonl").display()
        ),
    )
    .unwrap();
    path
}

#[test]
fn two_processes_equal_one() {
    let dir = tempfile::tempdir().unwrap();
    let single = config(dir.path(), "single");
    let status = rtsa().args(["run", "--workers", "2", "--config"]).arg(&single).status().unwrap();
    assert!(status.success());

    let pair = config(dir.path(), "pair");
    let hostfile = dir.path().join("hosts");
    std::fs::write(&hostfile, format!("127.0.0.1:{}\n127.0.0.1:{}\n", free_port(), free_port())).unwrap();
    let children: Vec<_> = (0..2)
        .map(|p| {
            rtsa()
                .args(["run", "--workers", "2", "--processes", "2", "--process", &p.to_string(), "--hostfile"])
                .arg(&hostfile)
                .arg("--config")
                .arg(&pair)
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    let one = read_jsonl(&dir.path().join("single/metrics.jsonl"));
    let two = read_jsonl(&dir.path().join("pair/metrics.jsonl"));
    assert!(one.len() > 500, "{}", one.len());
    assert_eq!(comparable(&one), comparable(&two));
    let dead = |p: &str| {
        let mut d: Vec<String> = read_jsonl(&dir.path().join(p)).iter().map(|v| v.to_string()).collect();
        d.sort();
        d
    };
    assert_eq!(dead("single/dead.jsonl"), dead("pair/dead.jsonl"));
}
