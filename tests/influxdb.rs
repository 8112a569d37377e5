//! InfluxDB and Redis metrics sinks against the real servers of `scripts/services.sh`: InfluxDB
//! 1.x read back through `/query`, VictoriaMetrics (the v2 write API) through `/api/v1/export`,
//! Redis hashes through a Redis client — each compared with the JSONL sink's records.

use crate::util::{free_port, post_form, read_jsonl, rtsa};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

fn v1_url() -> String {
    std::env::var("RTSA_INFLUXDB_V1_URL").unwrap_or_default()
}

fn v2_url() -> String {
    std::env::var("RTSA_INFLUXDB_V2_URL").unwrap_or_default()
}

/// A database or measurement name no other test uses (InfluxQL names: no dashes).
fn unique(name: &str) -> String {
    crate::util::unique(name).replace('-', "_")
}

/// An InfluxQL query through plain HTTP, times in ms: `(series name, columns, rows)`.
fn query(url: &str, database: &str, q: &str) -> Vec<(String, Vec<String>, Vec<Vec<Value>>)> {
    let text = post_form(&format!("{url}/query"), &[("db", database), ("q", q), ("epoch", "ms")]);
    let response: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{q}: {e}: {text}"));
    let mut out = Vec::new();
    for result in response["results"].as_array().unwrap() {
        assert!(result.get("error").is_none(), "{q}: {result}");
        for series in result["series"].as_array().into_iter().flatten() {
            let columns =
                series["columns"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()).collect();
            let rows = series["values"].as_array().unwrap().iter().map(|r| r.as_array().unwrap().clone()).collect();
            out.push((series["name"].as_str().unwrap().to_owned(), columns, rows));
        }
    }
    out
}

/// The points of a measurement as maps of column → value.
fn points(url: &str, database: &str, measurement: &str) -> Vec<BTreeMap<String, Value>> {
    query(url, database, &format!("SELECT * FROM {measurement}"))
        .into_iter()
        .flat_map(|(_, columns, rows)| {
            rows.into_iter().map(move |row| columns.iter().cloned().zip(row).collect::<BTreeMap<_, _>>())
        })
        .collect()
}

/// A record's statistics as (field, value) pairs, named as the InfluxDB points name them.
fn flattened(record: &Value) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    for field in ["count", "error_count", "error_rate", "unique_users", "window_end"] {
        out.push((field.to_owned(), record[field].as_f64().unwrap()));
    }
    for (group, prefix) in [("latency_ms", "latency"), ("value", "value")] {
        for (name, value) in record[group].as_object().unwrap() {
            if let Some(v) = value.as_f64() {
                out.push((format!("{prefix}_{name}"), v));
            }
        }
    }
    out
}

/// Equal up to the last bits a JSON float keeps (serde_json's default parser may be off by an
/// ulp, and sinks print floats their own way).
fn same(got: Option<f64>, want: f64) -> bool {
    got.is_some_and(|g| (g - want).abs() <= 1e-12 * want.abs().max(1.0))
}

fn config(dir: &Path, sinks: &str) -> std::path::PathBuf {
    let events = dir.join("events.jsonl");
    let out = rtsa()
        .args(["generate", "--count", "6000", "--start-ms", "1764230400000", "--event-time-rate", "50", "--seed", "4"])
        .output()
        .unwrap();
    std::fs::write(&events, out.stdout).unwrap();
    let path = dir.join("influx.yaml");
    std::fs::write(
        &path,
        format!(
            r#"
source: {{ kind: file, path: {events} }}
engine: {{ metrics_interval: 1s }}
aggregations:
  - {{ name: by_type_1m, window: {{ kind: tumbling, size: 1m }}, group_by: event_type }}
  - {{ name: by_user_sessions, window: {{ kind: session, gap: 30s }}, group_by: user_id }}
anomalies:
  - {{ kind: threshold, name: busy, aggregation: by_type_1m, metric: count, levels: {{ low: 100 }}, cooldown: 0s }}
{sinks}
"#,
            events = events.display()
        ),
    )
    .unwrap();
    path
}

#[test]
fn metrics_alerts_and_engine_counters_reach_influxdb_v1_and_v2() {
    crate::services_or_skip!();
    let dir = tempfile::tempdir().unwrap();
    let database = unique("rtsa_test");
    query(&v1_url(), "", &format!("CREATE DATABASE {database}"));
    // VictoriaMetrics keeps no bucket label: a measurement of the test's own tells its points.
    let measurement = unique("rtsa_metrics");
    let sinks = format!(
        r#"
sinks:
  metrics:
    - {{ kind: jsonl, path: {metrics} }}
    - {{ kind: influxdb, api: v1, url: "{v1}", database: {database} }}
    - {{ kind: influxdb, api: v2, url: "{v2}", org: rtsa, bucket: rtsa, measurement: {measurement}, engine_metrics: false }}
  alerts:
    - {{ kind: jsonl, path: {alerts} }}
    - {{ kind: influxdb, api: v1, url: "{v1}", database: {database} }}
  dead_letter: {{ kind: jsonl, path: {dead} }}
"#,
        metrics = dir.path().join("metrics.jsonl").display(),
        alerts = dir.path().join("alerts.jsonl").display(),
        dead = dir.path().join("dead.jsonl").display(),
        v1 = v1_url(),
        v2 = v2_url()
    );
    let out = rtsa().args(["run", "--config"]).arg(config(dir.path(), &sinks)).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let records = read_jsonl(&dir.path().join("metrics.jsonl"));
    assert!(records.len() > 100, "{}", records.len());

    // InfluxDB 1.x: one point per record, at window_start, every statistic equal.
    let stored = points(&v1_url(), &database, "rtsa_metrics");
    assert_eq!(stored.len(), records.len());
    let by_id: BTreeMap<(String, String, i64), &BTreeMap<String, Value>> = stored
        .iter()
        .map(|p| {
            (
                (
                    p["aggregation"].as_str().unwrap().to_owned(),
                    p["key"].as_str().unwrap().to_owned(),
                    p["time"].as_i64().unwrap(),
                ),
                p,
            )
        })
        .collect();
    for record in &records {
        let id = (
            record["aggregation"].as_str().unwrap().to_owned(),
            record["key"].as_str().unwrap().to_owned(),
            record["window_start"].as_i64().unwrap(),
        );
        let point = by_id.get(&id).unwrap_or_else(|| panic!("no point for {id:?}"));
        assert_eq!(point["window"], record["window"]);
        assert_eq!(point["group_by"], record["group_by"]);
        for (field, want) in flattened(record) {
            assert!(same(point[&field].as_f64(), want), "{id:?} {field}: {} vs {want}", point[&field]);
        }
        assert!(point.get("latency_p99").is_none_or(|v| !v.is_null()) || record["latency_ms"]["p99"].is_null());
    }

    // Alerts and the engine's counters.
    let alerts = read_jsonl(&dir.path().join("alerts.jsonl"));
    let alert_points = points(&v1_url(), &database, "rtsa_alerts");
    assert!(!alerts.is_empty());
    let ids = |v: Vec<String>| v.into_iter().collect::<std::collections::BTreeSet<_>>();
    assert_eq!(
        ids(alert_points.iter().map(|p| p["alert_id"].as_str().unwrap().to_owned()).collect()),
        ids(alerts.iter().map(|a| a["alert_id"].as_str().unwrap().to_owned()).collect())
    );
    assert!(alert_points.iter().all(|p| p["rule"] == "busy" && p["kind"] == "threshold"));
    let engine = query(&v1_url(), &database, "SELECT last(events_in_total), last(records_out_total) FROM rtsa_engine");
    assert_eq!(engine[0].2[0][1].as_u64(), Some(6_000), "{engine:?}");
    assert_eq!(engine[0].2[0][2].as_u64(), Some(records.len() as u64), "{engine:?}");
    // The gauges of /metrics are fields too (open windows counted while the sink is there).
    let gauges = query(&v1_url(), &database, "SELECT last(open_windows), last(backpressure_epochs) FROM rtsa_engine");
    assert!(gauges[0].2[0][1].as_u64().is_some(), "{gauges:?}");

    // VictoriaMetrics (the v2 write API): a series per field, the same values.
    let selector = format!(r#"{{__name__=~"{measurement}_.*"}}"#);
    let wanted: usize = records.iter().map(|r| flattened(r).len()).sum();
    let mut exported: BTreeMap<(String, String, String, i64), f64> = BTreeMap::new();
    // Rows become searchable within a second or so of their write.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while exported.len() < wanted && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(300));
        exported.clear();
        let export = post_form(&format!("{}/api/v1/export", v2_url()), &[("match[]", &selector)]);
        for line in export.lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            let m = &v["metric"];
            let field = m["__name__"].as_str().unwrap().trim_start_matches(&format!("{measurement}_")).to_owned();
            for (value, time) in v["values"].as_array().unwrap().iter().zip(v["timestamps"].as_array().unwrap()) {
                let id = (
                    m["aggregation"].as_str().unwrap().to_owned(),
                    m["key"].as_str().unwrap().to_owned(),
                    field.clone(),
                    time.as_i64().unwrap(),
                );
                exported.insert(id, value.as_f64().unwrap());
            }
        }
    }
    for record in &records {
        for (field, want) in flattened(record) {
            let id = (
                record["aggregation"].as_str().unwrap().to_owned(),
                record["key"].as_str().unwrap().to_owned(),
                field.clone(),
                record["window_start"].as_i64().unwrap(),
            );
            // VictoriaMetrics keeps 12 significant decimal digits of a value.
            let got = exported.get(&id).copied();
            assert!(got.is_some_and(|g| (g - want).abs() <= 1e-11 * want.abs().max(1.0)), "{id:?}: {got:?} vs {want}");
        }
    }
}

#[test]
fn redis_hashes_hold_the_latest_window_of_every_key_with_a_ttl() {
    let services = crate::services_or_skip!();
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique("test");
    let sinks = format!(
        r#"
sinks:
  metrics:
    - {{ kind: jsonl, path: {metrics} }}
    - {{ kind: redis, url: "{redis}", key_prefix: {prefix}, ttl: 10m }}
  dead_letter: {{ kind: jsonl, path: {dead} }}
"#,
        metrics = dir.path().join("metrics.jsonl").display(),
        dead = dir.path().join("dead.jsonl").display(),
        redis = services.redis_url
    );
    let out = rtsa().args(["run", "--config"]).arg(config(dir.path(), &sinks)).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut latest: BTreeMap<(String, String), Value> = BTreeMap::new();
    for record in read_jsonl(&dir.path().join("metrics.jsonl")) {
        let id = (record["aggregation"].as_str().unwrap().to_owned(), record["key"].as_str().unwrap().to_owned());
        if latest.get(&id).is_none_or(|r| r["window_start"].as_i64() < record["window_start"].as_i64()) {
            latest.insert(id, record);
        }
    }
    let mut redis = redis::Client::open(services.redis_url.as_str()).unwrap().get_connection().unwrap();
    let keys: Vec<String> = redis::cmd("KEYS").arg(format!("{prefix}:metrics:*")).query(&mut redis).unwrap();
    assert_eq!(keys.len(), latest.len());
    for ((aggregation, key), record) in &latest {
        let name = format!("{prefix}:metrics:{aggregation}:{key}");
        let hash: BTreeMap<String, String> = redis::cmd("HGETALL").arg(&name).query(&mut redis).unwrap();
        assert_eq!(hash["window_start"], record["window_start"].to_string(), "{name}");
        for (field, want) in flattened(record) {
            assert!(same(hash[&field].parse::<f64>().ok(), want), "{name} {field}: {} vs {want}", hash[&field]);
        }
        let ttl: i64 = redis::cmd("PTTL").arg(&name).query(&mut redis).unwrap();
        assert!(ttl > 0 && ttl <= 600_000, "{name}: ttl {ttl}");
    }
}

#[test]
fn a_refused_write_is_a_clear_error_naming_the_sink() {
    crate::services_or_skip!();
    let dir = tempfile::tempdir().unwrap();
    let missing = unique("no_such_database");
    let sinks = format!(
        r#"
sinks:
  metrics: [ {{ kind: influxdb, api: v1, url: "{v1}", database: {missing} }} ]
  dead_letter: {{ kind: jsonl, path: {dead} }}
"#,
        v1 = v1_url(),
        dead = dir.path().join("dead.jsonl").display()
    );
    let out = rtsa().args(["run", "--config"]).arg(config(dir.path(), &sinks)).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("influxdb {} (v1) sink: the write was refused: HTTP 404", v1_url())), "{stderr}");
    assert!(stderr.contains("database not found"), "{stderr}");

    // A server that refuses the token (as InfluxDB 2.x does): 401, and the token never printed.
    let refusing = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", refusing.local_addr().unwrap());
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for mut stream in refusing.incoming().flatten() {
            let mut buffer = [0u8; 65536];
            let _ = stream.read(&mut buffer);
            let body = r#"{"code":"unauthorized","message":"unauthorized access"}"#;
            let _ = write!(
                stream,
                "HTTP/1.1 401 Unauthorized\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let sinks = format!(
        r#"
sinks:
  metrics: [ {{ kind: influxdb, api: v2, url: "{url}", org: o, bucket: b, token_env: RTSA_TEST_INFLUX_TOKEN }} ]
  dead_letter: {{ kind: jsonl, path: {dead} }}
"#,
        dead = dir.path().join("dead.jsonl").display()
    );
    let out = rtsa()
        .env("RTSA_TEST_INFLUX_TOKEN", "t0ps3cret")
        .args(["run", "--config"])
        .arg(config(dir.path(), &sinks))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("HTTP 401") && stderr.contains("unauthorized access"), "{stderr}");
    assert!(!stderr.contains("t0ps3cret"), "the token was printed: {stderr}");
}

/// An InfluxDB 1.x of the test's own (free ports, its own data folder).
struct OwnInflux(crate::util::OwnServer);

impl OwnInflux {
    fn start(dir: &Path) -> OwnInflux {
        std::fs::create_dir_all(dir).unwrap();
        let (port, rpc) = (free_port(), free_port());
        let config = dir.join("influxdb.conf");
        std::fs::write(
            &config,
            format!(
                "reporting-disabled = true\nbind-address = \"127.0.0.1:{rpc}\"\n[meta]\n  dir = \"{d}/meta\"\n[data]\n  dir = \"{d}/data\"\n  wal-dir = \"{d}/wal\"\n[http]\n  bind-address = \"127.0.0.1:{port}\"\n  log-enabled = false\n[ifql]\n  enabled = false\n[monitor]\n  store-enabled = false\n",
                d = dir.display()
            ),
        )
        .unwrap();
        let command = crate::util::command_line([
            std::ffi::OsStr::new("/usr/bin/influxd"),
            "-config".as_ref(),
            config.as_os_str(),
        ]);
        OwnInflux(crate::util::OwnServer::start(command, port))
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.0.port)
    }
}

#[test]
fn influxdb_away_mid_run_loses_nothing() {
    crate::services_or_skip!();
    let dir = tempfile::tempdir().unwrap();
    let mut influx = OwnInflux::start(&dir.path().join("influxdb"));
    query(&influx.url(), "", "CREATE DATABASE away");
    let path = dir.path().join("away.yaml");
    std::fs::write(
        &path,
        format!(
            r#"
source: {{ kind: generator, rate: 3000, count: 15000, partitions: 2, seed: 5, event_time_rate: 3000 }}
watermark: {{ max_out_of_orderness: 1s }}
aggregations:
  - {{ name: by_type_1s, window: {{ kind: tumbling, size: 1s }}, group_by: event_type }}
sinks:
  metrics:
    - {{ kind: jsonl, path: {metrics} }}
    - {{ kind: influxdb, api: v1, url: "{url}", database: away, linger: 100ms, engine_metrics: false }}
  dead_letter: {{ kind: jsonl, path: {dead} }}
"#,
            metrics = dir.path().join("metrics.jsonl").display(),
            dead = dir.path().join("dead.jsonl").display(),
            url = influx.url()
        ),
    )
    .unwrap();
    let run = rtsa().args(["run", "--config"]).arg(&path).stderr(std::process::Stdio::piped()).spawn().unwrap();
    // InfluxDB goes away (kill -9) for 2 s in the middle of the 5 s run, and comes back.
    std::thread::sleep(std::time::Duration::from_millis(1_500));
    influx.0.kill();
    std::thread::sleep(std::time::Duration::from_millis(2_000));
    influx.0.restart();
    let out = run.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let records = read_jsonl(&dir.path().join("metrics.jsonl"));
    let stored = points(&influx.url(), "away", "rtsa_metrics");
    assert!(records.len() > 20, "{}", records.len());
    assert_eq!(stored.len(), records.len(), "points lost while InfluxDB was away");
    let total = |values: Vec<f64>| values.into_iter().sum::<f64>();
    assert_eq!(
        total(stored.iter().map(|p| p["count"].as_f64().unwrap()).collect()),
        total(records.iter().map(|r| r["count"].as_f64().unwrap()).collect())
    );
}
