//! `rtsa produce`: sends generated events, or the lines of a JSONL file, to a Kafka topic, keyed
//! by `user_id`, with a progress bar on a terminal and a summary with events/s at the end.

use super::generate::GenerateArgs;
use crate::error::Error;
use crate::sinks::kafka::KafkaTopic;
use crate::sources::file::read_bounded_line;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::{BufReader, IsTerminal};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// What to produce.
#[derive(Debug, clap::Args)]
pub struct ProduceArgs {
    /// Brokers, `host:port[,host:port…]`.
    #[arg(long)]
    pub brokers: String,
    /// Topic to write to.
    #[arg(long, default_value = "events")]
    pub topic: String,
    /// The generated events (ignored with --file).
    #[command(flatten)]
    pub events: GenerateArgs,
    /// Send the lines of this JSONL file instead of generated events (invalid lines too, as they are).
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// Disable the idempotent producer (for brokers without it).
    #[arg(long)]
    pub no_idempotence: bool,
    /// A config whose `kafka:` section to use (security settings, properties, the SASL password
    /// from its `sasl_password_env`); --brokers overrides its bootstrap_servers.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// The key of an event line: its `user_id`, if it has one.
fn user_key(line: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Keyed<'a> {
        #[serde(borrow)]
        user_id: Option<std::borrow::Cow<'a, str>>,
    }
    serde_json::from_slice::<Keyed>(line).ok()?.user_id.map(|u| u.into_owned())
}

/// Runs `rtsa produce`; returns the number of events sent.
pub fn produce(args: &ProduceArgs) -> Result<u64, Error> {
    let mut kafka = super::kafka_section(args.config.as_deref(), &args.brokers)?;
    kafka.idempotence &= !args.no_idempotence;
    let topic = KafkaTopic::open(&kafka, &args.topic)?;
    let total = if args.file.is_some() || args.events.count == 0 { None } else { Some(args.events.count) };
    let bar = if std::io::stderr().is_terminal() {
        let bar = total.map_or_else(ProgressBar::new_spinner, ProgressBar::new);
        bar.set_style(
            ProgressStyle::with_template("{spinner} {bar:40} {pos}/{len} events, {per_sec}, eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let started = Instant::now();
    let mut sent = 0u64;
    let pace = |sent: u64| {
        if args.events.rate > 0 {
            let due = Duration::from_secs_f64(sent as f64 / args.events.rate as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
    };
    let mut line = Vec::new();
    match &args.file {
        Some(path) => {
            let file = std::fs::File::open(path).map_err(|e| Error::io(path.display().to_string(), e))?;
            let mut reader = BufReader::with_capacity(1 << 20, file);
            while read_bounded_line(&mut reader, &mut line, usize::MAX - 1)
                .map_err(|e| Error::io(path.display().to_string(), e))?
            {
                if line.iter().all(|b| b.is_ascii_whitespace()) {
                    continue;
                }
                pace(sent);
                topic.send(user_key(&line).as_deref(), &line)?;
                sent += 1;
                if sent.is_multiple_of(1024) {
                    topic.poll()?;
                    bar.set_position(sent);
                }
            }
        }
        None => {
            let mut generator = args.events.generator();
            while let Some(event) = generator.next_event() {
                line.clear();
                serde_json::to_writer(&mut line, &event)
                    .map_err(|e| Error::Internal(format!("an event does not serialize: {e}")))?;
                pace(sent);
                topic.send(Some(&event.user_id), &line)?;
                sent += 1;
                if sent.is_multiple_of(1024) {
                    topic.poll()?;
                    bar.set_position(sent);
                }
            }
        }
    }
    bar.set_position(sent);
    topic.flush()?;
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "rtsa produce: {sent} events to {} in {seconds:.2} s ({:.0} events/s)",
        args.topic,
        sent as f64 / seconds.max(1e-9)
    );
    Ok(sent)
}
