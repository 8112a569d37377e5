//! JSONL files: one JSON object per line, appended; the folder is created when missing. Its
//! position is the file's length, and a resumed run truncates the file to the length a
//! checkpoint recorded, so the file holds each record once.

use dataflows::alerts::{Alert, encode_alert};
use dataflows::control::wall_clock_ms;
use dataflows::record::{DeadLetter, WindowRecord, encode_dead_letter, encode_metric};
use dataflows::sink::{Sink, SinkError, SinkPosition};
use dataflows::spec::{AggregationConfig, SinkKind};
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// An open JSONL file.
pub struct JsonlSink {
    path: PathBuf,
    writer: BufWriter<File>,
    aggregations: Arc<Vec<AggregationConfig>>,
}

impl JsonlSink {
    /// Opens `path` for appending, creating its folder.
    pub fn open(path: &Path, aggregations: Arc<Vec<AggregationConfig>>) -> Result<JsonlSink, SinkError> {
        let io = |e| SinkError::io(format!("cannot open {} for writing", path.display()), e);
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path).map_err(io)?;
        Ok(JsonlSink { path: path.to_owned(), writer: BufWriter::with_capacity(1 << 16, file), aggregations })
    }

    fn write_lines(&mut self, lines: impl Iterator<Item = String>) -> Result<(), SinkError> {
        for line in lines {
            self.writer
                .write_all(line.as_bytes())
                .and_then(|_| self.writer.write_all(b"\n"))
                .map_err(|e| SinkError::io(self.path.display().to_string(), e))?;
        }
        self.flush()
    }
}

impl Sink for JsonlSink {
    fn kind(&self) -> SinkKind {
        SinkKind::Jsonl
    }
    fn write_metrics(&mut self, batch: &[WindowRecord]) -> Result<(), SinkError> {
        let emitted_at = wall_clock_ms();
        let aggregations = self.aggregations.clone();
        self.write_lines(
            batch.iter().map(|r| encode_metric(r, &aggregations[usize::from(r.0.aggregation)], emitted_at)),
        )
    }
    fn write_alerts(&mut self, batch: &[Alert]) -> Result<(), SinkError> {
        let emitted_at = wall_clock_ms();
        self.write_lines(batch.iter().map(|a| encode_alert(a, emitted_at)))
    }
    fn write_dead_letters(&mut self, batch: &[DeadLetter]) -> Result<(), SinkError> {
        let aggregations = self.aggregations.clone();
        self.write_lines(batch.iter().map(|d| encode_dead_letter(d, &aggregations)))
    }
    fn flush(&mut self) -> Result<(), SinkError> {
        self.writer.flush().map_err(|e| SinkError::io(self.path.display().to_string(), e))
    }
    fn position(&mut self) -> Result<SinkPosition, SinkError> {
        self.flush()?;
        let length = self.writer.get_ref().metadata().map_err(|e| SinkError::io(self.path.display().to_string(), e))?;
        Ok(SinkPosition::Bytes(length.len()))
    }
    fn resume(&mut self, written: &SinkPosition) -> Result<(), SinkError> {
        let SinkPosition::Bytes(length) = written else {
            return Err(SinkError::Unsupported {
                what: format!("jsonl sink {}", self.path.display()),
                reason: format!("cannot resume from {written:?}"),
            });
        };
        self.flush()?;
        let what = || self.path.display().to_string();
        let file = self.writer.get_ref();
        let now = file.metadata().map_err(|e| SinkError::io(what(), e))?.len();
        if now < *length {
            return Err(SinkError::Unsupported {
                what: format!("jsonl sink {}", self.path.display()),
                reason: format!("the file is shorter ({now} bytes) than the checkpoint recorded ({length} bytes)"),
            });
        }
        // Appends go to the end, so the truncated file is written on from `length`.
        file.set_len(*length).map_err(|e| SinkError::io(what(), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataflows::record::Position;

    fn letter(offset: u64) -> DeadLetter {
        DeadLetter {
            position: Position { partition: 0, offset },
            aggregation: None,
            reason: "invalid_json".into(),
            source: "file".into(),
            by_line: true,
            raw: "{".into(),
            event_time: None,
            detail: None,
        }
    }

    #[test]
    fn a_resumed_file_is_cut_to_the_checkpointed_length() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out/dead.jsonl");
        let mut sink = JsonlSink::open(&path, Arc::new(Vec::new())).unwrap();
        sink.write_dead_letters(&[letter(1), letter(2)]).unwrap();
        let at = sink.position().unwrap();
        sink.write_dead_letters(&[letter(3)]).unwrap();
        drop(sink);
        let mut resumed = JsonlSink::open(&path, Arc::new(Vec::new())).unwrap();
        resumed.resume(&at).unwrap();
        resumed.write_dead_letters(&[letter(3)]).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[2].contains("line 3") && lines[1].contains("line 2"), "{text}");
        assert!(matches!(resumed.resume(&SinkPosition::Bytes(1 << 40)), Err(SinkError::Unsupported { .. })));
    }
}
