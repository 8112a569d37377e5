//! `rtsa cluster`: starts P local `rtsa run` processes wired into one timely cluster by a
//! generated hostfile on free 127.0.0.1 ports, prefixes their output with the process index,
//! stops them all on Ctrl-C or when one fails, and exits with the worst exit code.

use crate::error::Error;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

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

/// Runs the cluster; returns the worst exit code of its processes.
pub fn cluster(args: &ClusterArgs, stop: Arc<AtomicBool>, hostfile_dir: &Path) -> Result<ExitCode, Error> {
    let processes = usize::from(args.processes);
    let ports = free_ports(processes).map_err(|e| Error::io("cannot find free ports", e))?;
    let hostfile = hostfile_dir.join(format!("rtsa-cluster-{}.hosts", std::process::id()));
    let text: String = ports.iter().map(|p| format!("127.0.0.1:{p}\n")).collect();
    std::fs::write(&hostfile, text).map_err(|e| Error::io(hostfile.display().to_string(), e))?;
    let exe = std::env::current_exe().map_err(|e| Error::io("cannot find the rtsa binary", e))?;
    let mut children = Vec::new();
    let mut forwarders = Vec::new();
    for index in 0..processes {
        let mut command = Command::new(&exe);
        command
            .arg("run")
            .args(["--workers", &args.workers.to_string()])
            .args(["--processes", &processes.to_string(), "--process", &index.to_string()])
            .arg("--hostfile")
            .arg(&hostfile)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(config) = &args.config {
            command.arg("--config").arg(config);
        }
        let mut child = command.spawn().map_err(|e| Error::io(format!("cannot start process {index}"), e))?;
        if let Some(out) = child.stdout.take() {
            forwarders.push(forward(format!("[p{index}]"), out, false));
        }
        if let Some(err) = child.stderr.take() {
            forwarders.push(forward(format!("[p{index}]"), err, true));
        }
        children.push(Some(child));
    }
    let mut worst = 0;
    let mut stopping = false;
    while children.iter().any(Option::is_some) {
        if stop.load(Ordering::Relaxed) && !stopping {
            stopping = true;
            children.iter().flatten().for_each(|c| signal(c, "-INT"));
        }
        let mut failed = None;
        for (index, slot) in children.iter_mut().enumerate() {
            let Some(child) = slot else { continue };
            if let Ok(Some(status)) = child.try_wait() {
                let code = status.code().unwrap_or(1);
                worst = worst.max(code);
                *slot = None;
                if code != 0 {
                    failed = Some((index, code));
                }
            }
        }
        if let Some((index, code)) = failed
            && !stopping
        {
            stopping = true;
            eprintln!("rtsa cluster: process {index} exited with {code}; stopping the others");
            children.iter().flatten().for_each(|c| signal(c, "-TERM"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    for f in forwarders {
        let _ = f.join();
    }
    let _ = std::fs::remove_file(&hostfile);
    Ok(ExitCode::from(worst.clamp(0, 255) as u8))
}
