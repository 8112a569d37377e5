//! `rtsa generate`: synthetic events as JSON lines on stdout, deterministic for a seed, paced to
//! a rate of wall time when asked.

use crate::config::GeneratorConfig;
use crate::error::Error;
use crate::sources::generator::Generator;
use dataflows::control::wall_clock_ms;
use std::io::Write;
use std::num::{NonZeroU32, NonZeroU64};
use std::process::ExitCode;

/// The generator's flags, shared by `rtsa generate` and `rtsa produce`.
#[derive(Debug, clap::Args)]
pub struct GenerateArgs {
    /// Number of events (0 = endless).
    #[arg(long, default_value_t = 10_000)]
    pub count: u64,
    /// Events per second of wall time (0 = as fast as possible).
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Seed: the same seed gives the same events.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Event time of the first event, Unix ms (default: now).
    #[arg(long)]
    pub start_ms: Option<u64>,
    /// Events per second of event time (default: --rate, or 10000 when --rate is 0).
    #[arg(long)]
    pub event_time_rate: Option<u64>,
    /// Number of distinct users.
    #[arg(long, default_value_t = 5_000)]
    pub users: u64,
    /// Inject the known incidents (an error burst, a brute-force login, a latency spike, a very
    /// slow call, a never-seen transition) at known times after the start.
    #[arg(long)]
    pub incidents: bool,
}

impl GenerateArgs {
    /// A one-partition generator for these flags.
    pub fn generator(&self) -> Generator {
        let config = GeneratorConfig {
            count: self.count,
            rate: self.rate,
            seed: self.seed,
            start_ms: self.start_ms,
            event_time_rate: self.event_time_rate,
            users: NonZeroU64::new(self.users).unwrap_or(NonZeroU64::MIN),
            partitions: NonZeroU32::MIN,
            incidents: self.incidents,
            ..GeneratorConfig::default()
        };
        Generator::new(&config, self.start_ms.unwrap_or_else(wall_clock_ms), 0, 1)
    }
}

/// Runs `rtsa generate`.
pub fn generate(args: &GenerateArgs) -> Result<ExitCode, Error> {
    let mut generator = args.generator();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut line = Vec::new();
    let started = std::time::Instant::now();
    let mut written = 0u64;
    let written_ok = |result: std::io::Result<()>| match result {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Error::io("writing to stdout", e)),
        _ => Ok(()),
    };
    while generator.next_json(&mut line) {
        if args.rate > 0 {
            let due = std::time::Duration::from_secs_f64(written as f64 / args.rate as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                let _ = out.flush();
                std::thread::sleep(wait);
            }
        }
        line.push(b'\n');
        if let Err(e) = out.write_all(&line) {
            written_ok(Err(e))?;
            return Ok(ExitCode::SUCCESS);
        }
        written += 1;
    }
    written_ok(out.flush())?;
    Ok(ExitCode::SUCCESS)
}
