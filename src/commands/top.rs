//! `rtsa top`: a terminal view of a running engine's `/metrics` (as `vector top`), refreshed
//! every second: rates, watermark lag, backpressure, open windows, alerts, checkpoints and the
//! Kafka source's lag. The scrape is parsed by `prometheus-parse`; the view is a pure function
//! of two readings.

use crate::error::Error;
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// `rtsa top`.
#[derive(Debug, clap::Args)]
pub struct TopArgs {
    /// The engine's HTTP address (`http.listen`; process I of a cluster listens on port + I).
    #[arg(long, default_value = "http://127.0.0.1:9898")]
    pub url: String,
    /// Seconds between refreshes.
    #[arg(long, default_value_t = 1.0)]
    pub interval: f64,
    /// The bearer token, when the engine requires one (`http.token_env`): the name of the
    /// environment variable that holds it.
    #[arg(long)]
    pub token_env: Option<String>,
}

/// One scrape: each sample's value by (metric name, sorted labels).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Reading {
    samples: BTreeMap<(String, Vec<(String, String)>), f64>,
}

impl Reading {
    /// Parses the text of `/metrics`.
    pub fn parse(text: &str) -> Result<Reading, String> {
        let lines = text.lines().map(|l| Ok(l.to_owned()));
        let scrape = prometheus_parse::Scrape::parse(lines).map_err(|e| format!("not a metrics page: {e}"))?;
        let mut samples = BTreeMap::new();
        for sample in scrape.samples {
            let value = match sample.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => continue,
            };
            let mut labels: Vec<(String, String)> = sample.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            labels.sort();
            samples.insert((sample.metric, labels), value);
        }
        if !samples.keys().any(|(name, _)| name.starts_with("rtsa_")) {
            return Err("no rtsa_* metrics there: is it an rtsa engine?".into());
        }
        Ok(Reading { samples })
    }

    /// The value of an unlabelled metric.
    fn get(&self, name: &str) -> Option<f64> {
        self.samples.get(&(name.to_owned(), Vec::new())).copied()
    }

    /// The values of a labelled metric by its one label's value.
    fn by_label(&self, name: &str) -> Vec<(String, f64)> {
        self.samples
            .iter()
            .filter(|((n, labels), _)| n == name && labels.len() == 1)
            .map(|((_, labels), v)| (labels[0].1.clone(), *v))
            .collect()
    }

    /// The sum over every label of a metric.
    fn total(&self, name: &str) -> f64 {
        self.samples.iter().filter(|((n, _), _)| n == name).map(|(_, v)| v).sum()
    }
}

fn grouped(n: f64) -> String {
    let whole = n.round() as i64;
    let digits = whole.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if whole < 0 { format!("-{out}") } else { out }
}

/// The screen for `now`, with rates against `before` (taken `elapsed` earlier).
pub fn render(url: &str, now: &Reading, before: Option<(&Reading, Duration)>) -> String {
    let rate = |name: &str| -> String {
        match before {
            Some((before, elapsed)) if elapsed > Duration::ZERO => {
                let delta = (now.total(name) - before.total(name)).max(0.0);
                format!("{:>12}/s", grouped(delta / elapsed.as_secs_f64()))
            }
            _ => format!("{:>14}", "…"),
        }
    };
    let total = |name: &str| format!("total {}", grouped(now.total(name)));
    let mut out = Vec::new();
    out.push(format!("rtsa top — {url} (every second; Ctrl-C quits)"));
    if let Some(up) = now.get("rtsa_uptime_seconds") {
        out.push(format!("up {}", crate::config::Millis(up as u64 * 1000)));
    }
    out.push(String::new());
    out.push(format!("{:<16}{}   {}", "events in", rate("rtsa_events_in_total"), total("rtsa_events_in_total")));
    out.push(format!("{:<16}{}   {}", "late", rate("rtsa_late_events_total"), total("rtsa_late_events_total")));
    out.push(format!(
        "{:<16}{}   {}",
        "invalid",
        rate("rtsa_invalid_events_total"),
        total("rtsa_invalid_events_total")
    ));
    out.push(format!(
        "{:<16}{}   {}",
        "metrics records",
        rate("rtsa_metrics_records_total"),
        total("rtsa_metrics_records_total")
    ));
    out.push(format!(
        "{:<16}{}   {}",
        "dead letters",
        rate("rtsa_dead_letters_total"),
        total("rtsa_dead_letters_total")
    ));
    let watermark = now.get("rtsa_watermark_ms").filter(|w| *w > 0.0);
    let watermark = match watermark.and_then(|w| chrono::DateTime::from_timestamp_millis(w as i64)) {
        Some(at) => format!(
            "{}   lag {:.1} s",
            at.format("%Y-%m-%dT%H:%M:%SZ"),
            now.get("rtsa_watermark_lag_seconds").unwrap_or(0.0)
        ),
        None => "no event yet".into(),
    };
    out.push(format!("{:<16}{watermark}", "watermark"));
    out.push(format!(
        "{:<16}{} epochs ahead of the sinks",
        "backpressure",
        grouped(now.get("rtsa_backpressure_epochs").unwrap_or(0.0))
    ));
    out.push(format!("{:<16}{}", "open windows", grouped(now.get("rtsa_open_windows").unwrap_or(0.0))));
    let severities = now.by_label("rtsa_alerts_total");
    let alerts = if severities.is_empty() {
        "none".to_owned()
    } else {
        severities.iter().map(|(s, n)| format!("{s} {}", grouped(*n))).collect::<Vec<_>>().join("  ")
    };
    let undelivered = now.total("rtsa_alerts_undelivered_total");
    out.push(format!("{:<16}{alerts}   undelivered {}", "alerts", grouped(undelivered)));
    let (sum, count) = (now.get("rtsa_emit_latency_seconds_sum"), now.get("rtsa_emit_latency_seconds_count"));
    if let (Some(sum), Some(count)) = (sum, count)
        && count > 0.0
    {
        out.push(format!("{:<16}mean {:.1} ms over {} records", "emit latency", 1000.0 * sum / count, grouped(count)));
    }
    let checkpoints = now.get("rtsa_checkpoints_total").unwrap_or(0.0);
    if checkpoints > 0.0 {
        out.push(format!(
            "{:<16}{} done, last {:.0} ms and {:.1} MB, {} failed, {} store retries",
            "checkpoints",
            grouped(checkpoints),
            1000.0 * now.get("rtsa_checkpoint_duration_seconds").unwrap_or(0.0),
            now.get("rtsa_checkpoint_bytes").unwrap_or(0.0) / 1e6,
            grouped(now.get("rtsa_checkpoint_failures_total").unwrap_or(0.0)),
            grouped(now.get("rtsa_checkpoint_retries_total").unwrap_or(0.0)),
        ));
    }
    let lags = now.by_label("rtsa_kafka_lag_messages");
    if !lags.is_empty() {
        let each: Vec<String> = lags.iter().map(|(p, n)| format!("p{p} {}", grouped(*n))).collect();
        out.push(format!(
            "{:<16}{} messages ({})",
            "kafka lag",
            grouped(now.total("rtsa_kafka_lag_messages")),
            each.join(", ")
        ));
    }
    out.join("\n")
}

/// Runs `rtsa top` until Ctrl-C.
pub fn top(args: &TopArgs, stop: Arc<AtomicBool>) -> Result<(), Error> {
    let base = args.url.trim_end_matches('/');
    let base = if base.contains("://") { base.to_owned() } else { format!("http://{base}") };
    let url = format!("{base}/metrics");
    let token = match &args.token_env {
        Some(name) => Some(std::env::var(name).map_err(|_| Error::Usage(format!("--token-env: {name} is not set")))?),
        None => None,
    };
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| Error::Run(format!("cannot start an HTTP client: {e}")))?;
    let interval = Duration::from_secs_f64(args.interval.max(0.1));
    let mut before: Option<(Reading, Instant)> = None;
    let mut stdout = std::io::stdout();
    while !stop.load(Ordering::SeqCst) {
        let mut request = client.get(&url);
        if let Some(token) = &token {
            request = request.bearer_auth(token);
        }
        let fetched = request
            .send()
            .and_then(|r| r.error_for_status())
            .and_then(|r| r.text())
            .map_err(|e| format!("cannot read {url}: {}", e.without_url()))
            .and_then(|text| Reading::parse(&text));
        let screen = match &fetched {
            Ok(reading) => render(base.as_str(), reading, before.as_ref().map(|(r, at)| (r, at.elapsed()))),
            Err(e) if before.is_none() => {
                return Err(Error::Run(format!("{e} (is rtsa run serving http.listen there?)")));
            }
            Err(e) => format!("rtsa top — {base}\n\n{e}; retrying"),
        };
        // Clear the screen and draw from the top left.
        let _ = writeln!(stdout, "\x1b[2J\x1b[H{}", screen.replace('\n', "\r\n"));
        let _ = stdout.flush();
        if let Ok(reading) = fetched {
            before = Some((reading, Instant::now()));
        }
        let until = Instant::now() + interval;
        while Instant::now() < until && !stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCRAPE: &str = "# HELP rtsa_events_in Inputs read.\n# TYPE rtsa_events_in counter\nrtsa_events_in_total 3000\n\
        # TYPE rtsa_late_events counter\nrtsa_late_events_total{aggregation=\"a\"} 4\nrtsa_late_events_total{aggregation=\"b\"} 6\n\
        # TYPE rtsa_watermark_ms gauge\nrtsa_watermark_ms 1764230400000\n# TYPE rtsa_watermark_lag_seconds gauge\nrtsa_watermark_lag_seconds 5.5\n\
        # TYPE rtsa_alerts counter\nrtsa_alerts_total{severity=\"critical\"} 2\n\
        # TYPE rtsa_kafka_lag_messages gauge\nrtsa_kafka_lag_messages{partition=\"0\"} 10\nrtsa_kafka_lag_messages{partition=\"1\"} 5\n# EOF\n";

    #[test]
    fn the_screen_shows_rates_watermark_alerts_and_lag() {
        let now = Reading::parse(SCRAPE).unwrap();
        let before = Reading::parse(&SCRAPE.replace("rtsa_events_in_total 3000", "rtsa_events_in_total 1000")).unwrap();
        let screen = render("http://127.0.0.1:9898", &now, Some((&before, Duration::from_secs(2))));
        assert!(
            screen.lines().any(|l| l.starts_with("events in") && l.contains("1,000/s") && l.contains("total 3,000")),
            "{screen}"
        );
        assert!(screen.lines().any(|l| l.starts_with("late") && l.contains("total 10")), "{screen}");
        assert!(screen.contains("2025-11-27T08:00:00Z   lag 5.5 s"), "{screen}");
        assert!(screen.contains("critical 2"), "{screen}");
        assert!(screen.contains("15 messages (p0 10, p1 5)"), "{screen}");
        // The first screen has no rates yet.
        assert!(render("u", &now, None).lines().any(|l| l.starts_with("events in") && l.contains('…')));
        assert!(Reading::parse("<html>not metrics</html>").is_err());
    }
}
