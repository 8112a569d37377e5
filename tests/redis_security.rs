//! Redis with authentication and TLS, for the metrics sink and the alert channel: servers of the
//! test's own (`redis-server --requirepass`, an ACL user, `--tls-port` with a test CA), a right
//! password writes, a wrong one is a clear error at start that never shows the secret.

use crate::util::{free_port, rtsa};
use std::path::Path;

/// A redis-server of the test's own on `port` with extra arguments.
fn server(port: u16, args: &[&str]) -> crate::util::OwnServer {
    let base = ["/usr/bin/redis-server", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"];
    crate::util::OwnServer::start(crate::util::command_line(base.iter().chain(args)), port)
}

/// A config with a Redis metrics sink and a Redis alert channel at `redis` (extra keys `extra`).
fn config(dir: &Path, redis: &str, extra: &str) -> std::path::PathBuf {
    let path = dir.join("redis.yaml");
    std::fs::write(
        &path,
        format!(
            r#"
source: {{ kind: generator, count: 3000, rate: 0, seed: 2, start_ms: 1764230400000, event_time_rate: 100 }}
aggregations:
  - {{ name: by_type_1m, window: {{ kind: tumbling, size: 1m }}, group_by: event_type }}
anomalies:
  - {{ kind: threshold, name: every_window, aggregation: by_type_1m, metric: count, levels: {{ low: 0 }}, cooldown: 0s }}
sinks:
  metrics: [ {{ kind: redis, url: "{redis}", key_prefix: secure {extra} }} ]
  alerts: [ {{ kind: redis, url: "{redis}", stream: secure-alerts {extra} }} ]
  dead_letter: {{ kind: jsonl, path: {dead} }}
"#,
            dead = dir.join("dead.jsonl").display()
        ),
    )
    .unwrap();
    path
}

fn keys(url: &str, pattern: &str) -> usize {
    let mut connection = redis::Client::open(url).unwrap().get_connection().unwrap();
    redis::cmd("KEYS").arg(pattern).query::<Vec<String>>(&mut connection).unwrap().len()
}

#[test]
fn a_password_and_an_acl_user_are_used_and_a_wrong_one_is_refused_at_once() {
    crate::services_or_skip!();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _server = server(
        port,
        &[
            "--port",
            &port.to_string(),
            "--requirepass",
            "right-pw",
            "--user",
            "alice",
            "on",
            ">alice-pw",
            "~*",
            "&*",
            "+@all",
        ],
    );
    let url = format!("redis://127.0.0.1:{port}");

    // The default user's password from password_env.
    let path = config(dir.path(), &url, ", password_env: RTSA_TEST_REDIS_PASSWORD");
    let out = rtsa().env("RTSA_TEST_REDIS_PASSWORD", "right-pw").args(["run", "--config"]).arg(&path).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let authed = format!("redis://:right-pw@127.0.0.1:{port}");
    assert!(keys(&authed, "secure:metrics:by_type_1m:*") >= 8);
    assert!(keys(&authed, "secure-alerts") == 1, "the alert stream exists");

    // An ACL user in the URL, its password from password_env.
    let path =
        config(dir.path(), &format!("redis://alice@127.0.0.1:{port}"), ", password_env: RTSA_TEST_REDIS_PASSWORD");
    let out = rtsa().env("RTSA_TEST_REDIS_PASSWORD", "alice-pw").args(["run", "--config"]).arg(&path).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // A wrong password: exit 1 at once, naming the server, not the secret.
    let started = std::time::Instant::now();
    let out = rtsa().env("RTSA_TEST_REDIS_PASSWORD", "wrong-pw").args(["run", "--config"]).arg(&path).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "took {:?}", started.elapsed());
    assert!(
        stderr.contains(&format!("redis redis://127.0.0.1:{port}")) && stderr.contains("refused the credentials"),
        "{stderr}"
    );
    assert!(!stderr.contains("wrong-pw") && !stderr.contains("alice-pw"), "a secret was printed: {stderr}");
}

#[test]
fn rediss_with_a_ca_file_writes_over_tls() {
    crate::services_or_skip!();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    crate::util::test_certificates(d);
    let port = free_port();
    let path = |name: &str| d.join(name).display().to_string();
    let _server = server(
        port,
        &[
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--tls-cert-file",
            &path("server.pem"),
            "--tls-key-file",
            &path("server.key"),
            "--tls-ca-cert-file",
            &path("ca.pem"),
            "--tls-auth-clients",
            "no",
        ],
    );
    let url = format!("rediss://localhost:{port}");
    let config_path = config(d, &url, &format!(", tls_ca_file: {}", path("ca.pem")));
    let out = rtsa().args(["run", "--config"]).arg(&config_path).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let ca = std::fs::read(d.join("ca.pem")).unwrap();
    let client =
        redis::Client::build_with_tls(url.as_str(), redis::TlsCertificates { client_tls: None, root_cert: Some(ca) })
            .unwrap();
    let mut connection = client.get_connection().unwrap();
    let written: Vec<String> = redis::cmd("KEYS").arg("secure:metrics:*").query(&mut connection).unwrap();
    assert!(written.len() >= 8, "{written:?}");

    // Without the CA the server's certificate is not trusted: a clear error, not a hang.
    let config_path = config(d, &url, "");
    let out = rtsa().args(["run", "--config"]).arg(&config_path).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("TLS certificate is not trusted"), "{stderr}");
}
