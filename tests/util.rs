//! What the integration tests share: the binary, ports, JSONL files, in-memory runs, and the
//! local services started by `scripts/services.sh` (a test that needs one and finds it missing
//! says so and is skipped, unless `RTSA_REQUIRE_SERVICES` is set, as `scripts/test.sh` does, and
//! then it fails with the same message).

use dataflows::control::RunControl;
use dataflows::memory::{MemoryLines, MemorySource};
use rtsa::run::{self, Output, RunOptions};
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

/// The `rtsa` binary under test.
pub fn rtsa() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_rtsa"));
    // Tests run in parallel: none serves the dashboard on the default port unless it asks to
    // (`env_remove("RTSA__HTTP__LISTEN")` and `http.listen` in its config).
    command.env("RTSA__HTTP__LISTEN", "off");
    command
}

/// Asserts that two runs' outputs hold the same lines in the same order, naming the first
/// difference (they are thousands of lines: a plain `assert_eq!` would print them all).
pub fn assert_same_lines<T: PartialEq + std::fmt::Debug>(what: &str, a: &[T], b: &[T]) {
    let first = a.iter().zip(b).position(|(x, y)| x != y);
    assert!(
        a.len() == b.len() && first.is_none(),
        "{what}: {} against {}, first difference at {first:?}: {:?}",
        a.len(),
        b.len(),
        first.map(|i| (&a[i], &b[i]))
    );
}

/// A port nothing listens on (for servers the tests start themselves).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Waits until something listens on `port` of 127.0.0.1.
pub fn wait_for_port(port: u16, what: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "{what} did not start");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A name (of a topic, a database, a key prefix) that no other test, or earlier run against the
/// same servers, uses.
pub fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{name}-{}-{}", std::process::id(), nanos % 1_000_000_000)
}

/// POSTs a form through plain HTTP; the answer's body.
pub fn post_form(url: &str, pairs: &[(&str, &str)]) -> String {
    let encoded = reqwest::Url::parse_with_params("http://form/", pairs).unwrap();
    reqwest::blocking::Client::new()
        .post(url)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(encoded.query().unwrap_or_default().to_owned())
        .send()
        .unwrap()
        .text()
        .unwrap()
}

/// The records of a JSONL file (none when it does not exist).
pub fn read_jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: bad line {l}: {e}", path.display())))
        .collect()
}

/// Records without `emitted_at`, sorted: what must be identical between runs.
pub fn comparable(records: &[Value]) -> Vec<String> {
    let mut lines: Vec<String> = records
        .iter()
        .map(|r| {
            let mut r = r.clone();
            r.as_object_mut().expect("records are objects").remove("emitted_at");
            r.to_string()
        })
        .collect();
    lines.sort();
    lines
}

/// Lines of each partition as in-memory partitions.
pub fn memory_partitions(partitions: &[Vec<Vec<u8>>]) -> Vec<Arc<MemoryLines>> {
    partitions
        .iter()
        .map(|lines| {
            let mut m = MemoryLines::default();
            lines.iter().for_each(|l| m.push(l));
            Arc::new(m)
        })
        .collect()
}

/// Runs the config `yaml` (its own sinks) over in-memory `partitions` with `workers` workers.
pub fn run_memory(yaml: &str, partitions: Vec<Arc<MemoryLines>>, workers: usize) -> Arc<RunControl> {
    let config = rtsa::config::load_str(yaml, Vec::new()).unwrap_or_else(|e| panic!("{e}\nin:\n{yaml}"));
    let control = Arc::new(RunControl::default());
    let options = RunOptions { workers, ..RunOptions::default() };
    run::run(
        Arc::new(config),
        &options,
        Arc::new(MemorySource::new(partitions)),
        Output::Configured,
        control.clone(),
        None,
    )
    .unwrap();
    control
}

/// The local services of `scripts/services.sh start` (from `target/services.env`).
pub struct Services {
    /// Kafka brokers, `host:port`.
    pub brokers: String,
    /// `redis://127.0.0.1:PORT`.
    pub redis_url: String,
    /// A Python with kafka-python, for reading topics back independently.
    pub python: String,
    /// The tansu binary, for tests that start a broker of their own.
    pub tansu: String,
}

/// The values of the environment variables `names` (tools that `scripts/services.sh` installs,
/// such as `RTSA_PYTHON` and `RTSA_CHROMIUM`), or `None` when one is missing (a failure with
/// `RTSA_REQUIRE_SERVICES` set, as under `scripts/test.sh`).
pub fn tools(test: &str, names: &[&str]) -> Option<Vec<String>> {
    let missing: Vec<&str> = names.iter().copied().filter(|n| std::env::var(n).is_err()).collect();
    if !missing.is_empty() {
        let message = format!("{test}: needs {} (run the tests with scripts/test.sh)", missing.join(", "));
        assert!(std::env::var("RTSA_REQUIRE_SERVICES").is_err(), "{message}");
        eprintln!("skipped: {message}");
        return None;
    }
    Some(names.iter().map(|n| std::env::var(n).unwrap_or_default()).collect())
}

/// The services, or `None` (saying on stderr what is missing) when the tests were not started by
/// `scripts/test.sh`; with `RTSA_REQUIRE_SERVICES` set a missing one fails the test instead.
pub fn services(test: &str) -> Option<Services> {
    let names = ["RTSA_KAFKA_BROKERS", "RTSA_REDIS_URL", "RTSA_PYTHON", "RTSA_TANSU"];
    let missing: Vec<&str> = names.iter().copied().filter(|n| std::env::var(n).is_err()).collect();
    if !missing.is_empty() {
        let message = format!(
            "{test}: needs the local services, but {} not set: run the tests with scripts/test.sh \
             (or scripts/services.sh start && source target/services.env)",
            missing.join(", ") + if missing.len() == 1 { " is" } else { " are" }
        );
        assert!(std::env::var("RTSA_REQUIRE_SERVICES").is_err(), "{message}");
        eprintln!("skipped: {message}");
        return None;
    }
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    Some(Services {
        brokers: var("RTSA_KAFKA_BROKERS"),
        redis_url: var("RTSA_REDIS_URL"),
        python: var("RTSA_PYTHON"),
        tansu: var("RTSA_TANSU"),
    })
}

/// The services, or return from the test (see [`services`]).
#[macro_export]
macro_rules! services_or_skip {
    () => {
        match $crate::util::services(module_path!()) {
            Some(services) => services,
            None => return,
        }
    };
}

/// A test CA and a server certificate for `localhost` and 127.0.0.1 in `dir`: `ca.pem`,
/// `server.pem`, `server.key` (made with the openssl command).
pub fn test_certificates(dir: &Path) {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl").args(args).current_dir(dir).output().unwrap();
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=rtsa test CA",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    std::fs::write(dir.join("san.ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n").unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    ]);
}

/// A server of a test's own (a redis-server, an influxd): started from its program and
/// arguments, waited for on its port, killed (-9, by PID) when dropped; `kill` then `restart`
/// brings it back on the same port and data.
pub struct OwnServer {
    command: Vec<std::ffi::OsString>,
    /// The port it listens on.
    pub port: u16,
    child: Option<std::process::Child>,
}

impl OwnServer {
    /// Starts `command` (program first), which listens on `port`.
    pub fn start(command: Vec<std::ffi::OsString>, port: u16) -> OwnServer {
        let program = Path::new(&command[0]);
        assert!(program.exists(), "{} is missing: run the tests with scripts/test.sh", program.display());
        let mut server = OwnServer { command, port, child: None };
        server.restart();
        server
    }

    /// Starts it again (after `kill`).
    pub fn restart(&mut self) {
        let child = Command::new(&self.command[0])
            .args(&self.command[1..])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        wait_for_port(self.port, &self.command[0].to_string_lossy());
    }

    /// kill -9: connections break mid-stream, nothing is flushed beyond what was fsynced.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// stunnel4 accepting TLS on `tls_port` of 127.0.0.1 with the test certificate of `dir` (see
/// [`test_certificates`]) and forwarding to `plain_port`; stopped when dropped.
pub fn stunnel(dir: &Path, tls_port: u16, plain_port: u16) -> OwnServer {
    let path = |name: &str| dir.join(name).display().to_string();
    std::fs::write(
        dir.join("stunnel.conf"),
        format!(
            "foreground = yes\npid =\n[tls]\naccept = 127.0.0.1:{tls_port}\nconnect = 127.0.0.1:{plain_port}\ncert = {}\nkey = {}\n",
            path("server.pem"),
            path("server.key")
        ),
    )
    .unwrap();
    OwnServer::start(command_line(["/usr/bin/stunnel4", &path("stunnel.conf")]), tls_port)
}

/// A command line as `OwnServer` takes it.
pub fn command_line<S: AsRef<std::ffi::OsStr>>(parts: impl IntoIterator<Item = S>) -> Vec<std::ffi::OsString> {
    parts.into_iter().map(|p| p.as_ref().to_owned()).collect()
}
