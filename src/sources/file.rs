//! Line sources: a JSONL file or standard input, one partition, positions are line numbers.
//!
//! Lines longer than the event size limit are cut at `max_bytes + 1` (so the parser reports them
//! as `too_large`) and the rest of the line is skipped without being held in memory. Standard
//! input is read by a helper thread so that a worker never blocks on it.

use super::{Partition, Poll, SourceError};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::sync::mpsc::{Receiver, TryRecvError, sync_channel};

/// Reads one line into `line` (without its `\n` or `\r\n`), keeping at most `max + 1` bytes.
/// Returns false at the end of input.
pub fn read_bounded_line(reader: &mut impl BufRead, line: &mut Vec<u8>, max: usize) -> std::io::Result<bool> {
    line.clear();
    let mut any = false;
    loop {
        let available = match reader.fill_buf() {
            Ok(buf) => buf,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            break;
        }
        any = true;
        let (chunk, found_newline) = match memchr_newline(available) {
            Some(i) => (&available[..i], true),
            None => (available, false),
        };
        let room = (max + 1).saturating_sub(line.len());
        line.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let used = chunk.len() + usize::from(found_newline);
        reader.consume(used);
        if found_newline {
            break;
        }
    }
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(any)
}

fn memchr_newline(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|b| *b == b'\n')
}

/// A file or stdin as one partition.
pub struct LinePartition {
    input: LineInput,
    line_number: u64,
    line: Vec<u8>,
    max_bytes: usize,
}

enum LineInput {
    File { reader: BufReader<File>, path: String },
    Channel(Receiver<std::io::Result<Vec<u8>>>),
}

impl LinePartition {
    /// Opens a JSONL file.
    pub fn open_file(path: &Path, max_bytes: usize) -> Result<LinePartition, SourceError> {
        let file =
            File::open(path).map_err(|source| SourceError::Io { what: format!("{}", path.display()), source })?;
        Ok(LinePartition {
            input: LineInput::File {
                reader: BufReader::with_capacity(1 << 20, file),
                path: path.display().to_string(),
            },
            line_number: 0,
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
        LinePartition { input: LineInput::Channel(receiver), line_number: 0, line: Vec::new(), max_bytes }
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
                    let more = read_bounded_line(reader, &mut self.line, self.max_bytes)
                        .map_err(|source| SourceError::Io { what: path.clone(), source })?;
                    if !more {
                        return Ok(Poll::Finished);
                    }
                    self.line_number += 1;
                    if !is_blank(&self.line) {
                        emit(&self.line, self.line_number);
                    }
                }
                LineInput::Channel(receiver) => match receiver.try_recv() {
                    Ok(Ok(line)) => {
                        self.line_number += 1;
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
}
