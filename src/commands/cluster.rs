//! `rtsa cluster`: starts P local `rtsa run` processes wired into one timely cluster by a
//! generated hostfile on free 127.0.0.1 ports, prefixes their output with the process index,
//! stops them all on Ctrl-C or when one fails, and exits with the worst exit code.
//!
//! With checkpoints on, a process that dies takes the whole cluster down and back up from the
//! last checkpoint (Flink's full-restart strategy), with backoff, up to `--max-restarts` times.
//! What to do about a death is decided by [`decide`], a pure function; this file's rest is the
//! process plumbing around it.

use super::load_config;
use crate::checkpoint::redis::Store;
use crate::config::CheckpointStoreKind;
use crate::error::Error;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// What to start.
#[derive(Debug, clap::Args)]
pub struct ClusterArgs {
    /// Number of processes.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub processes: u16,
    /// Worker threads per process.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub workers: u16,
    /// The config every process runs (default: the embedded default).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// With checkpoints on: how many times a cluster whose process died is restarted from its
    /// last checkpoint before the command gives up (0: never).
    #[arg(long, default_value_t = 3)]
    pub max_restarts: u32,
    /// With checkpoints on: delete the pipeline's checkpoint and start over (the first start
    /// only; a restart always resumes).
    #[arg(long)]
    pub fresh: bool,
}

/// How a process ended, in words (`exited with 1`, `was killed by signal 9`).
fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        (None, None) => "ended".to_owned(),
    }
}

/// What the supervisor does after a process failed.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Stop the rest and start the cluster again after this delay.
    Restart { delay: Duration, attempt: u32 },
    /// Stop the rest and exit; the reason is said.
    GiveUp(String),
}

/// The restart policy: a config or usage error (exit 2) is not restarted, since it would fail
/// the same way; without checkpoints a restart would start over and write again what was
/// written, so there is none (as in Flink); otherwise restart with a doubling delay
/// (1 s, 2 s, 4 s … at most 30 s) until `max_restarts` restarts have been made.
pub fn decide(status: ExitStatus, checkpoints: bool, restarts: u32, max_restarts: u32) -> Decision {
    if status.code() == Some(2) {
        return Decision::GiveUp("a config or usage error is not restarted".to_owned());
    }
    if !checkpoints {
        return Decision::GiveUp(
            "not restarting: checkpoints are off, so a restart would start over and write its output again (set checkpoint.store)"
                .to_owned(),
        );
    }
    if restarts >= max_restarts {
        return Decision::GiveUp(format!(
            "not restarting: {restarts} restarts made already (--max-restarts {max_restarts})"
        ));
    }
    let delay = Duration::from_secs(1u64 << restarts.min(5)).min(Duration::from_secs(30));
    Decision::Restart { delay, attempt: restarts + 1 }
}

fn free_ports(n: usize) -> std::io::Result<Vec<u16>> {
    // Hold every listener until all ports are chosen, so no port is handed out twice.
    let listeners: Vec<std::net::TcpListener> =
        (0..n).map(|_| std::net::TcpListener::bind("127.0.0.1:0")).collect::<Result<_, _>>()?;
    listeners.iter().map(|l| l.local_addr().map(|a| a.port())).collect()
}

fn forward(prefix: String, stream: impl Read + Send + 'static, to_stderr: bool) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if to_stderr {
                let _ = writeln!(std::io::stderr().lock(), "{prefix} {line}");
            } else {
                let _ = writeln!(std::io::stdout().lock(), "{prefix} {line}");
            }
        }
    })
}

fn signal(child: &Child, name: &str) {
    let _ = Command::new("kill").args([name, &child.id().to_string()]).status();
}

/// One start of the cluster's processes.
struct Processes {
    children: Vec<Option<Child>>,
    forwarders: Vec<std::thread::JoinHandle<()>>,
    hostfile: PathBuf,
}

/// How one start of the cluster ended.
enum Ended {
    /// Every process exited by itself, or after a stop request; the worst exit code.
    Done(i32),
    /// Process `index` failed with `status`; the others are still running.
    Failed { index: usize, status: ExitStatus },
}

impl Processes {
    fn start(args: &ClusterArgs, hostfile_dir: &Path) -> Result<Processes, Error> {
        let processes = usize::from(args.processes);
        let ports = free_ports(processes).map_err(|e| Error::io("cannot find free ports", e))?;
        let hostfile = hostfile_dir.join(format!("rtsa-cluster-{}.hosts", std::process::id()));
        let text: String = ports.iter().map(|p| format!("127.0.0.1:{p}\n")).collect();
        std::fs::write(&hostfile, text).map_err(|e| Error::io(hostfile.display().to_string(), e))?;
        let exe = std::env::current_exe().map_err(|e| Error::io("cannot find the rtsa binary", e))?;
        let mut started = Processes { children: Vec::new(), forwarders: Vec::new(), hostfile };
        for index in 0..processes {
            let mut command = Command::new(&exe);
            command
                .arg("run")
                .args(["--workers", &args.workers.to_string()])
                .args(["--processes", &processes.to_string(), "--process", &index.to_string()])
                .arg("--hostfile")
                .arg(&started.hostfile)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            if let Some(config) = &args.config {
                command.arg("--config").arg(config);
            }
            let mut child = match command.spawn() {
                Ok(child) => child,
                Err(e) => {
                    started.kill_all();
                    return Err(Error::io(format!("cannot start process {index}"), e));
                }
            };
            if let Some(out) = child.stdout.take() {
                started.forwarders.push(forward(format!("[p{index}]"), out, false));
            }
            if let Some(err) = child.stderr.take() {
                started.forwarders.push(forward(format!("[p{index}]"), err, true));
            }
            started.children.push(Some(child));
        }
        Ok(started)
    }

    /// Waits until every process has exited (forwarding a stop request to them), or until one
    /// fails while no stop was requested.
    fn supervise(&mut self, stop: &AtomicBool) -> Ended {
        let mut worst = 0;
        let mut stopping = false;
        while self.children.iter().any(Option::is_some) {
            if stop.load(Ordering::Relaxed) && !stopping {
                stopping = true;
                self.children.iter().flatten().for_each(|c| signal(c, "-INT"));
            }
            let mut failed: Option<(usize, ExitStatus)> = None;
            for (index, slot) in self.children.iter_mut().enumerate() {
                let Some(child) = slot else { continue };
                if let Ok(Some(status)) = child.try_wait() {
                    *slot = None;
                    worst = worst.max(status.code().unwrap_or(1));
                    // The others fail soon after a peer dies; a death by signal is the cause.
                    let cause = failed.is_none_or(|(_, s)| s.signal().is_none() && status.signal().is_some());
                    if !status.success() && cause {
                        failed = Some((index, status));
                    }
                }
            }
            if let Some((index, status)) = failed
                && !stopping
            {
                return Ended::Failed { index, status };
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ended::Done(worst)
    }

    /// Stops the processes still running: `-TERM` lets them drain, `-KILL` is for a restart,
    /// which resumes from the checkpoint anyway. Returns the worst exit code among them.
    fn stop_rest(&mut self, how: &str) -> i32 {
        self.children.iter().flatten().for_each(|c| signal(c, how));
        let mut worst = 0;
        for child in self.children.iter_mut().filter_map(Option::take) {
            let mut child = child;
            if let Ok(status) = child.wait() {
                worst = worst.max(status.code().unwrap_or(1));
            }
        }
        worst
    }

    fn kill_all(&mut self) {
        self.stop_rest("-KILL");
    }

    /// Waits for the output of every process to be forwarded, removes the hostfile.
    fn finish(self) {
        for f in self.forwarders {
            let _ = f.join();
        }
        let _ = std::fs::remove_file(&self.hostfile);
    }
}

/// Sleeps `delay`, returning early (false) on a stop request.
fn wait_unless_stopped(delay: Duration, stop: &AtomicBool) -> bool {
    let until = Instant::now() + delay;
    while Instant::now() < until {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    !stop.load(Ordering::Relaxed)
}

/// Runs the cluster; returns the worst exit code of its processes.
pub fn cluster(args: &ClusterArgs, stop: Arc<AtomicBool>, hostfile_dir: &Path) -> Result<ExitCode, Error> {
    // The config is read here only to know whether a restart can resume; the processes read it
    // again and report its errors themselves.
    let checkpoint = load_config(args.config.as_deref())
        .ok()
        .map(|config| config.checkpoint)
        .filter(|checkpoint| checkpoint.store != CheckpointStoreKind::None);
    if args.fresh
        && let Some(checkpoint) = &checkpoint
    {
        // Deleted here, before any process reads it: with `run --fresh` on process 0, another
        // process could resume from the checkpoint that is about to go.
        let deleted = Store::open(checkpoint)?.delete_all()?;
        eprintln!("rtsa cluster: --fresh: deleted checkpoint {} ({deleted} keys); starting over", checkpoint.name);
    }
    let checkpoints = checkpoint.is_some();
    let mut restarts = 0;
    loop {
        let mut processes = Processes::start(args, hostfile_dir)?;
        let ended = processes.supervise(&stop);
        let (index, status) = match ended {
            Ended::Done(worst) => {
                processes.finish();
                return Ok(ExitCode::from(worst.clamp(0, 255) as u8));
            }
            Ended::Failed { index, status } => (index, status),
        };
        let what = describe(status);
        match decide(status, checkpoints, restarts, args.max_restarts) {
            Decision::GiveUp(reason) => {
                eprintln!("rtsa cluster: process {index} {what}; {reason}; stopping the others");
                let worst = processes.stop_rest("-TERM").max(status.code().unwrap_or(1));
                processes.finish();
                return Ok(ExitCode::from(worst.clamp(1, 255) as u8));
            }
            Decision::Restart { delay, attempt } => {
                eprintln!(
                    "rtsa cluster: process {index} {what}; restarting the cluster from its last checkpoint in {} s (restart {attempt} of {})",
                    delay.as_secs(),
                    args.max_restarts
                );
                processes.kill_all();
                processes.finish();
                if !wait_unless_stopped(delay, &stop) {
                    eprintln!("rtsa cluster: stopped before the restart");
                    return Ok(ExitCode::from(1));
                }
                restarts = attempt;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exited(code: i32) -> ExitStatus {
        ExitStatus::from_raw(code << 8)
    }

    fn killed(signal: i32) -> ExitStatus {
        ExitStatus::from_raw(signal)
    }

    #[test]
    fn a_death_restarts_with_doubling_delays_up_to_the_limit() {
        let restart = |n| decide(killed(9), true, n, 3);
        assert_eq!(restart(0), Decision::Restart { delay: Duration::from_secs(1), attempt: 1 });
        assert_eq!(restart(1), Decision::Restart { delay: Duration::from_secs(2), attempt: 2 });
        assert_eq!(restart(2), Decision::Restart { delay: Duration::from_secs(4), attempt: 3 });
        assert!(matches!(restart(3), Decision::GiveUp(r) if r.contains("--max-restarts 3")));
        assert_eq!(decide(exited(1), true, 9, 20), Decision::Restart { delay: Duration::from_secs(30), attempt: 10 });
        assert_eq!(describe(killed(9)), "was killed by signal 9");
        assert_eq!(describe(exited(1)), "exited with 1");
    }

    #[test]
    fn config_errors_and_runs_without_checkpoints_are_not_restarted() {
        assert!(matches!(decide(exited(2), true, 0, 3), Decision::GiveUp(r) if r.contains("config")));
        assert!(matches!(decide(killed(9), false, 0, 3), Decision::GiveUp(r) if r.contains("checkpoint.store")));
        assert!(matches!(decide(exited(1), true, 0, 0), Decision::GiveUp(_)));
    }
}
