//! Line sources: a JSONL file or standard input, one partition; dead letters name line numbers,
//! and a file's position is the byte offset of its next line (with the lines read so far), so a
//! run can resume in the middle of a file.
//!
//! Lines longer than the event size limit are cut at `max_bytes + 1` (so the parser reports them
//! as `too_large`) and the rest of the line is skipped without being held in memory. Standard
//! input is read by a helper thread so that a worker never blocks on it.

use super::{OwnedPartitions, Partition, PartitionPosition, Poll, Source, SourceError, SourceKind, start_of};
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, TryRecvError, sync_channel};

/// Reads one line into `line` (without its `\n` or `\r\n`), keeping at most `max + 1` bytes.
/// Returns false at the end of input.
pub fn read_bounded_line(reader: &mut impl BufRead, line: &mut Vec<u8>, max: usize) -> std::io::Result<bool> {
    read_counted_line(reader, line, max).map(|read| read > 0)
}

/// [`read_bounded_line`], returning how many bytes of input the line took (its newline
/// included); 0 at the end of input.
pub fn read_counted_line(reader: &mut impl BufRead, line: &mut Vec<u8>, max: usize) -> std::io::Result<u64> {
    line.clear();
    let mut taken = 0u64;
    loop {
        let available = match reader.fill_buf() {
            Ok(buf) => buf,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            break;
        }
        let (chunk, found_newline) = match memchr_newline(available) {
            Some(i) => (&available[..i], true),
            None => (available, false),
        };
        let room = (max + 1).saturating_sub(line.len());
        line.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let used = chunk.len() + usize::from(found_newline);
        reader.consume(used);
        taken += used as u64;
        if found_newline {
            break;
        }
    }
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(taken)
}

fn memchr_newline(bytes: &[u8]) -> Option<usize> {
    // SIMD search: the byte-by-byte loop was most of the line reader's share of a file run.
    memchr::memchr(b'\n', bytes)
}

/// A JSONL file as a source of one partition.
pub struct FileSource {
    path: PathBuf,
    max_bytes: usize,
}

impl FileSource {
    /// The file at `path` (opened by the worker that owns its partition).
    pub fn new(path: &Path, max_bytes: usize) -> FileSource {
        FileSource { path: path.to_owned(), max_bytes }
    }
}

impl Source for FileSource {
    fn kind(&self) -> SourceKind {
        SourceKind { name: "file", by_line: true }
    }
    fn partition_count(&self) -> u32 {
        1
    }
    fn open(&self, indexes: &[u32], from: &[(u32, PartitionPosition)]) -> Result<OwnedPartitions, SourceError> {
        indexes
            .iter()
            .map(|&p| {
                let partition = LinePartition::open_file(&self.path, self.max_bytes, start_of(from, p))?;
                Ok((p, Box::new(partition) as Box<dyn Partition>))
            })
            .collect()
    }
}

/// Standard input as a source of one partition (it cannot resume: what was read is gone).
pub struct StdinSource {
    max_bytes: usize,
    taken: Mutex<bool>,
}

impl StdinSource {
    /// Standard input, lines of at most `max_bytes`.
    pub fn new(max_bytes: usize) -> StdinSource {
        StdinSource { max_bytes, taken: Mutex::new(false) }
    }
}

impl Source for StdinSource {
    fn kind(&self) -> SourceKind {
        SourceKind { name: "stdin", by_line: true }
    }
    fn partition_count(&self) -> u32 {
        1
    }
    fn open(&self, indexes: &[u32], from: &[(u32, PartitionPosition)]) -> Result<OwnedPartitions, SourceError> {
        let mut out: OwnedPartitions = Vec::new();
        for &p in indexes {
            if start_of(from, p) != PartitionPosition::default() {
                return Err(SourceError::Unsupported {
                    what: "stdin".to_owned(),
                    reason: "cannot resume from a position: what was read is gone".to_owned(),
                });
            }
            let mut taken = self.taken.lock().unwrap_or_else(|e| e.into_inner());
            if std::mem::replace(&mut *taken, true) {
                return Err(SourceError::Unsupported {
                    what: "stdin".to_owned(),
                    reason: "is one partition and can be opened once".to_owned(),
                });
            }
            out.push((p, Box::new(LinePartition::stdin(self.max_bytes))));
        }
        Ok(out)
    }
}

/// A file or stdin as one partition.
pub struct LinePartition {
    input: LineInput,
    line_number: u64,
    /// Bytes of input consumed (the offset of the next line, for a file).
    consumed: u64,
    line: Vec<u8>,
    max_bytes: usize,
}

enum LineInput {
    File { reader: BufReader<File>, path: String },
    Channel(Receiver<std::io::Result<Vec<u8>>>),
}

impl LinePartition {
    /// Opens a JSONL file at `from` (the byte offset of a line and the lines before it).
    pub fn open_file(path: &Path, max_bytes: usize, from: PartitionPosition) -> Result<LinePartition, SourceError> {
        let what = path.display().to_string();
        let mut file = File::open(path).map_err(|source| SourceError::io(&what, source))?;
        if from.next > 0 {
            file.seek(SeekFrom::Start(from.next)).map_err(|source| SourceError::io(&what, source))?;
        }
        Ok(LinePartition {
            input: LineInput::File { reader: BufReader::with_capacity(1 << 20, file), path: what },
            line_number: from.lines,
            consumed: from.next,
            line: Vec::new(),
            max_bytes,
        })
    }

    /// Reads standard input on a helper thread.
    pub fn stdin(max_bytes: usize) -> LinePartition {
        LinePartition::from_reader(std::io::stdin(), max_bytes)
    }

    /// Reads any blocking reader on a helper thread.
    pub fn from_reader(read: impl Read + Send + 'static, max_bytes: usize) -> LinePartition {
        let (sender, receiver) = sync_channel(4_096);
        std::thread::spawn(move || {
            let mut reader = BufReader::new(read);
            loop {
                let mut line = Vec::new();
                match read_bounded_line(&mut reader, &mut line, max_bytes) {
                    Ok(true) => {
                        if sender.send(Ok(line)).is_err() {
                            return;
                        }
                    }
                    Ok(false) => return,
                    Err(e) => {
                        let _ = sender.send(Err(e));
                        return;
                    }
                }
            }
        });
        LinePartition { input: LineInput::Channel(receiver), line_number: 0, consumed: 0, line: Vec::new(), max_bytes }
    }
}

fn is_blank(line: &[u8]) -> bool {
    line.iter().all(|b| b.is_ascii_whitespace())
}

impl Partition for LinePartition {
    fn poll(&mut self, budget: usize, emit: &mut dyn FnMut(&[u8], u64)) -> Result<Poll, SourceError> {
        for _ in 0..budget {
            match &mut self.input {
                LineInput::File { reader, path } => {
                    let taken = read_counted_line(reader, &mut self.line, self.max_bytes)
                        .map_err(|source| SourceError::io(path.as_str(), source))?;
                    if taken == 0 {
                        return Ok(Poll::Finished);
                    }
                    self.consumed += taken;
                    self.line_number += 1;
                    if !is_blank(&self.line) {
                        emit(&self.line, self.line_number);
                    }
                }
                LineInput::Channel(receiver) => match receiver.try_recv() {
                    Ok(Ok(line)) => {
                        self.line_number += 1;
                        self.consumed += line.len() as u64 + 1;
                        if !is_blank(&line) {
                            emit(&line, self.line_number);
                        }
                    }
                    Ok(Err(source)) => return Err(SourceError::Io { what: "stdin".to_owned(), source }),
                    Err(TryRecvError::Empty) => return Ok(Poll::Pending),
                    Err(TryRecvError::Disconnected) => return Ok(Poll::Finished),
                },
            }
        }
        Ok(Poll::Ready)
    }

    fn position(&self) -> PartitionPosition {
        PartitionPosition { next: self.consumed, lines: self.line_number }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn lines(input: &str, max: usize) -> Vec<String> {
        let mut reader = BufReader::with_capacity(4, Cursor::new(input.as_bytes().to_vec()));
        let mut line = Vec::new();
        let mut out = Vec::new();
        while read_bounded_line(&mut reader, &mut line, max).unwrap() {
            out.push(String::from_utf8(line.clone()).unwrap());
        }
        out
    }

    #[test]
    fn splits_lines_and_cuts_long_ones() {
        assert_eq!(lines("ab\ncd\r\n\nlast", 100), vec!["ab", "cd", "", "last"]);
        assert_eq!(lines("0123456789\nx\n", 3), vec!["0123", "x"]);
    }

    #[test]
    fn numbers_lines_and_skips_blank_ones() {
        let data = "a\n\n  \nb\n";
        let mut partition = LinePartition::from_reader(Cursor::new(data.as_bytes().to_vec()), 100);
        let mut seen = Vec::new();
        loop {
            match partition
                .poll(10, &mut |bytes, line| seen.push((String::from_utf8_lossy(bytes).into_owned(), line)))
                .unwrap()
            {
                Poll::Finished => break,
                _ => std::thread::yield_now(),
            }
        }
        assert_eq!(seen, vec![("a".to_owned(), 1), ("b".to_owned(), 4)]);
    }

    fn read_all(partition: &mut LinePartition, budget: usize) -> (Vec<(String, u64)>, Poll) {
        let mut seen = Vec::new();
        let poll = partition
            .poll(budget, &mut |bytes, line| seen.push((String::from_utf8_lossy(bytes).into_owned(), line)))
            .unwrap();
        (seen, poll)
    }

    #[test]
    fn a_file_resumes_at_its_reported_position() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        std::fs::write(&path, "one\r\n\ntwo\nthree\nfour").unwrap();
        let mut first = LinePartition::open_file(&path, 100, PartitionPosition::default()).unwrap();
        let (seen, _) = read_all(&mut first, 3);
        assert_eq!(seen, vec![("one".to_owned(), 1), ("two".to_owned(), 3)]);
        assert_eq!(first.position(), PartitionPosition { next: 10, lines: 3 });
        let mut resumed = LinePartition::open_file(&path, 100, first.position()).unwrap();
        let (rest, poll) = read_all(&mut resumed, 10);
        assert_eq!(rest, vec![("three".to_owned(), 4), ("four".to_owned(), 5)]);
        assert_eq!(poll, Poll::Finished);
        assert_eq!(resumed.position().next, std::fs::metadata(&path).unwrap().len());
    }

    #[test]
    fn stdin_cannot_resume() {
        let source = StdinSource::new(100);
        let from = [(0, PartitionPosition { next: 5, lines: 1 })];
        assert!(matches!(source.open(&[0], &from), Err(SourceError::Unsupported { .. })));
    }
}
