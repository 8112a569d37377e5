//! The Grafana dashboards query what the sinks write: after a run into the test InfluxDB, every
//! panel's InfluxQL (with Grafana's macros and the dashboards' variables at their defaults) and
//! every variable's query returns rows, and every panel names the provisioned datasource by uid.
//! The run takes checkpoints, so that the checkpoint panels have rows too; its event time runs
//! 30 times faster than the wall clock, so that 1-minute windows close before the stop (a stop
//! with checkpoints on emits no window that is not complete).

use crate::util::rtsa;
use serde_json::Value;
use std::path::Path;

fn grafana(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("grafana").join(path)
}

/// Rows of an InfluxQL query on the test InfluxDB (plain HTTP).
fn rows(database: &str, q: &str) -> usize {
    let url = std::env::var("RTSA_INFLUXDB_V1_URL").unwrap_or_default();
    let text = crate::util::post_form(&format!("{url}/query"), &[("db", database), ("epoch", "ms"), ("q", q)]);
    let v: Value = serde_json::from_str(&text).unwrap();
    let result = &v["results"][0];
    assert!(result.get("error").is_none(), "{q}: {result}");
    result["series"]
        .as_array()
        .map_or(0, |series| series.iter().map(|s| s["values"].as_array().map_or(0, Vec::len)).sum())
}

/// A dashboard query as Grafana would send it: macros and variables substituted.
fn as_sent(query: &str) -> String {
    query
        .replace("$timeFilter", "time > now() - 1h")
        .replace("$__interval", "1s")
        .replace("$user_aggregation", "by_user_1m")
        .replace("$aggregation", "by_type_1m")
        .replace("$key", ".*")
}

#[test]
fn every_panel_and_variable_of_the_dashboards_returns_rows() {
    crate::services_or_skip!();
    let provisioned = std::fs::read_to_string(grafana("provisioning/datasources/rtsa.yaml")).unwrap();
    assert!(provisioned.contains("uid: rtsa-influxdb"));
    let dir = tempfile::tempdir().unwrap();
    let database = format!("grafana_{}", std::process::id());
    let url = std::env::var("RTSA_INFLUXDB_V1_URL").unwrap_or_default();
    rows("", &format!("CREATE DATABASE {database}"));
    let path = dir.path().join("grafana.yaml");
    std::fs::write(
        &path,
        format!(
            r#"
source: {{ kind: generator, rate: 3000, event_time_rate: 100, partitions: 2, start_ms: {start} }}
watermark: {{ max_out_of_orderness: 1s }}
engine: {{ metrics_interval: 300ms, status_interval: 0s }}
aggregations:
  - {{ name: by_type_1m, window: {{ kind: tumbling, size: 1m }}, group_by: event_type }}
  - {{ name: by_user_1m, window: {{ kind: tumbling, size: 1m }}, group_by: user_id }}
anomalies:
  - {{ kind: threshold, name: every_window, aggregation: by_type_1m, metric: count, levels: {{ low: 0 }}, cooldown: 0s }}
  - {{ kind: event, name: slow, metric: latency_ms, levels: {{ high: 800 }}, group_by: event_type }}
sinks:
  metrics: [ {{ kind: influxdb, api: v1, url: "{url}", database: {database}, linger: 100ms }} ]
  alerts: [ {{ kind: influxdb, api: v1, url: "{url}", database: {database}, linger: 100ms }} ]
  dead_letter: {{ kind: jsonl, path: {dead} }}
checkpoint: {{ store: redis, interval: 500ms, name: {database}, ttl: 10m }}
"#,
            dead = dir.path().join("dead.jsonl").display(),
            start = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()
        ),
    )
    .unwrap();
    let child =
        rtsa().args(["run", "--fresh", "--config"]).arg(&path).stdout(std::process::Stdio::null()).spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_secs(4));
    let _ = std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status();
    assert!(child.wait_with_output().unwrap().status.success());

    let mut checked = 0;
    for name in ["pipeline", "windows", "alerts"] {
        let dashboard: Value =
            serde_json::from_str(&std::fs::read_to_string(grafana(&format!("dashboards/{name}.json"))).unwrap())
                .unwrap();
        for variable in dashboard["templating"]["list"].as_array().unwrap() {
            assert_eq!(variable["datasource"]["uid"], "rtsa-influxdb", "{name}: {variable}");
            let query = as_sent(variable["query"].as_str().unwrap());
            assert!(rows(&database, &query) > 0, "{name}: variable {} has no values: {query}", variable["name"]);
        }
        for panel in dashboard["panels"].as_array().unwrap() {
            assert_eq!(panel["datasource"]["uid"], "rtsa-influxdb", "{name}: {}", panel["title"]);
            for target in panel["targets"].as_array().unwrap() {
                assert_eq!(target["datasource"]["uid"], "rtsa-influxdb");
                let query = as_sent(target["query"].as_str().unwrap());
                assert!(rows(&database, &query) > 0, "{name}: panel {} has no rows: {query}", panel["title"]);
                checked += 1;
            }
        }
    }
    assert!(checked >= 15, "{checked} panel queries");
}
