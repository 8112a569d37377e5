//! Sinks: where metrics records and dead letters go. Encoders live in `record`; this module
//! opens the configured outputs and writes batches to them.

pub mod console;
pub mod jsonl;

use crate::config::{AggregationConfig, SinkConfig};
use crate::control::{Counters, RunControl};
use crate::operators::batch_sink::BatchWriter;
use crate::record::{DeadLetter, WindowRecord, describe_metric, encode_dead_letter, encode_metric};
use jsonl::JsonlFile;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Wall-clock milliseconds (for `emitted_at`).
pub fn wall_clock_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// One opened output.
enum Output {
    Jsonl(JsonlFile),
    /// `only`: the aggregation indexes to print (all when `None`).
    Console {
        json: bool,
        only: Option<Vec<u16>>,
    },
}

fn open_outputs(configs: &[SinkConfig], aggregations: &[AggregationConfig]) -> Result<Vec<Output>, String> {
    configs
        .iter()
        .map(|config| match config {
            SinkConfig::Jsonl(j) => JsonlFile::open(&j.path)
                .map(Output::Jsonl)
                .map_err(|e| format!("cannot open {} for writing: {e}", j.path.display())),
            SinkConfig::Console(c) => {
                let only = (!c.aggregations.is_empty()).then(|| {
                    let wanted = |a: &AggregationConfig| c.aggregations.contains(&a.name);
                    (0..aggregations.len() as u16).filter(|i| wanted(&aggregations[usize::from(*i)])).collect()
                });
                Ok(Output::Console { json: c.json, only })
            }
        })
        .collect()
}

/// The metrics sinks of a run.
pub struct MetricsWriter {
    outputs: Vec<Output>,
    aggregations: Arc<Vec<AggregationConfig>>,
    control: Arc<RunControl>,
}

impl MetricsWriter {
    /// Opens the configured metrics sinks.
    pub fn open(
        configs: &[SinkConfig],
        aggregations: Arc<Vec<AggregationConfig>>,
        control: Arc<RunControl>,
    ) -> Result<MetricsWriter, String> {
        Ok(MetricsWriter { outputs: open_outputs(configs, &aggregations)?, aggregations, control })
    }

    fn try_write(&mut self, batch: &[WindowRecord]) -> std::io::Result<()> {
        let emitted_at = wall_clock_ms();
        let lines: Vec<String> = batch
            .iter()
            .map(|r| encode_metric(r, &self.aggregations[usize::from(r.0.aggregation)], emitted_at))
            .collect();
        for output in &mut self.outputs {
            match output {
                Output::Jsonl(file) => {
                    for line in &lines {
                        file.write_line(line)?;
                    }
                    file.flush()?;
                }
                Output::Console { json, only } => {
                    let shown = |r: &WindowRecord| only.as_ref().is_none_or(|o| o.contains(&r.0.aggregation));
                    let text: Vec<String> = batch
                        .iter()
                        .zip(&lines)
                        .filter(|(r, _)| shown(r))
                        .map(|(r, line)| {
                            if *json {
                                line.clone()
                            } else {
                                describe_metric(r, &self.aggregations[usize::from(r.0.aggregation)])
                            }
                        })
                        .collect();
                    console::print_lines(text.iter().map(String::as_str))?;
                }
            }
        }
        Ok(())
    }
}

impl BatchWriter<WindowRecord> for MetricsWriter {
    fn write_batch(&mut self, batch: &[WindowRecord]) {
        Counters::add(&self.control.counters.metrics_records, batch.len() as u64);
        if let Err(e) = self.try_write(batch) {
            self.control.fail(format!("metrics sink: {e}"));
        }
    }
    fn close(&mut self) {
        for output in &mut self.outputs {
            if let Output::Jsonl(file) = output
                && let Err(e) = file.flush()
            {
                self.control.fail(format!("metrics sink {}: {e}", file.path().display()));
            }
        }
    }
}

/// The dead-letter sink of a run.
pub struct DeadLetterWriter {
    outputs: Vec<Output>,
    aggregations: Arc<Vec<AggregationConfig>>,
    control: Arc<RunControl>,
}

impl DeadLetterWriter {
    /// Opens the configured dead-letter sink.
    pub fn open(
        config: &SinkConfig,
        aggregations: Arc<Vec<AggregationConfig>>,
        control: Arc<RunControl>,
    ) -> Result<DeadLetterWriter, String> {
        Ok(DeadLetterWriter {
            outputs: open_outputs(std::slice::from_ref(config), &aggregations)?,
            aggregations,
            control,
        })
    }

    fn try_write(&mut self, batch: &[DeadLetter]) -> std::io::Result<()> {
        let lines: Vec<String> = batch.iter().map(|d| encode_dead_letter(d, &self.aggregations)).collect();
        for output in &mut self.outputs {
            match output {
                Output::Jsonl(file) => {
                    for line in &lines {
                        file.write_line(line)?;
                    }
                    file.flush()?;
                }
                Output::Console { .. } => console::print_lines(lines.iter().map(String::as_str))?,
            }
        }
        Ok(())
    }
}

impl BatchWriter<DeadLetter> for DeadLetterWriter {
    fn write_batch(&mut self, batch: &[DeadLetter]) {
        Counters::add(&self.control.counters.dead_letters, batch.len() as u64);
        if let Err(e) = self.try_write(batch) {
            self.control.fail(format!("dead-letter sink: {e}"));
        }
    }
    fn close(&mut self) {}
}

/// A writer that only counts (what `rtsa bench` uses, so that it measures the engine).
pub struct CountingWriter {
    control: Arc<RunControl>,
    dead_letters: bool,
}

impl CountingWriter {
    /// Counts metrics records (or dead letters) into the run's counters.
    pub fn new(control: Arc<RunControl>, dead_letters: bool) -> CountingWriter {
        CountingWriter { control, dead_letters }
    }
}

impl<D> BatchWriter<D> for CountingWriter {
    fn write_batch(&mut self, batch: &[D]) {
        let counter = if self.dead_letters {
            &self.control.counters.dead_letters
        } else {
            &self.control.counters.metrics_records
        };
        Counters::add(counter, batch.len() as u64);
    }
    fn close(&mut self) {}
}
