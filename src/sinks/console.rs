//! The console: one line per record on standard output, readable (alerts coloured by severity on
//! a terminal) or raw JSON, optionally only some aggregations' metrics.

use dataflows::alerts::{Alert, describe_alert_coloured, encode_alert};
use dataflows::control::wall_clock_ms;
use dataflows::record::{DeadLetter, WindowRecord, describe_metric, encode_dead_letter, encode_metric};
use dataflows::sink::{Sink, SinkError};
use dataflows::spec::{AggregationConfig, SinkKind};
use std::io::Write;
use std::sync::Arc;

/// Standard output as a sink.
pub struct ConsoleSink {
    json: bool,
    /// The aggregation indexes whose metrics to print (all when `None`).
    only: Option<Vec<u16>>,
    colour: bool,
    aggregations: Arc<Vec<AggregationConfig>>,
}

impl ConsoleSink {
    /// Prints raw JSON with `json`, else readable lines; metrics of `only` these aggregation names
    /// (all when empty).
    pub fn new(json: bool, only: &[String], aggregations: Arc<Vec<AggregationConfig>>) -> ConsoleSink {
        let only = (!only.is_empty()).then(|| {
            (0..aggregations.len() as u16).filter(|i| only.contains(&aggregations[usize::from(*i)].name)).collect()
        });
        let colour = std::io::IsTerminal::is_terminal(&std::io::stdout());
        ConsoleSink { json, only, colour, aggregations }
    }
}

/// Writes lines to standard output under one lock per batch.
pub fn print_lines(lines: impl Iterator<Item = String>) -> Result<(), SinkError> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let io = |e| SinkError::io("stdout", e);
    for line in lines {
        out.write_all(line.as_bytes()).map_err(io)?;
        out.write_all(b"\n").map_err(io)?;
    }
    out.flush().map_err(io)
}

impl Sink for ConsoleSink {
    fn kind(&self) -> SinkKind {
        SinkKind::Console
    }
    fn write_metrics(&mut self, batch: &[WindowRecord]) -> Result<(), SinkError> {
        let emitted_at = wall_clock_ms();
        let shown = batch.iter().filter(|r| self.only.as_ref().is_none_or(|only| only.contains(&r.0.aggregation)));
        print_lines(shown.map(|r| {
            let aggregation = &self.aggregations[usize::from(r.0.aggregation)];
            if self.json { encode_metric(r, aggregation, emitted_at) } else { describe_metric(r, aggregation) }
        }))
    }
    fn write_alerts(&mut self, batch: &[Alert]) -> Result<(), SinkError> {
        let emitted_at = wall_clock_ms();
        print_lines(
            batch
                .iter()
                .map(|a| if self.json { encode_alert(a, emitted_at) } else { describe_alert_coloured(a, self.colour) }),
        )
    }
    fn write_dead_letters(&mut self, batch: &[DeadLetter]) -> Result<(), SinkError> {
        print_lines(batch.iter().map(|d| encode_dead_letter(d, &self.aggregations)))
    }
    fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}
