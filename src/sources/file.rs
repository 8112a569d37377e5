//! Line sources: a JSONL file or standard input, one partition; dead letters name line numbers,
//! and a file's position is the byte offset of its next line (with the lines read so far), so a
//! run can resume in the middle of a file.
//!
//! Lines longer than the event size limit are cut at `max_bytes + 1` (so the parser reports them
//! as `too_large`) and the rest of the line is skipped without being held in memory. Standard
//! input is read by a helper thread so that a worker never blocks on it.

use super::{OwnedPartitions, Partition, PartitionPosition, Poll, Source, SourceError, SourceKind, start_of};
use dataflows::chunks::{ChunkCount, ChunkLines, ChunkReader, ChunkedInput};
use dataflows::memory::MemoryLines;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
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
    append_counted_line(reader, line, max)
}

/// Appends the next line to `out` (without its `\n` or `\r\n`, at most `max + 1` bytes of it);
/// returns how many bytes of input the line took, 0 at the end of input.
pub fn append_counted_line(reader: &mut impl BufRead, out: &mut Vec<u8>, max: usize) -> std::io::Result<u64> {
    let start = out.len();
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
        let room = (max + 1).saturating_sub(out.len() - start);
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let used = chunk.len() + usize::from(found_newline);
        reader.consume(used);
        taken += used as u64;
        if found_newline {
            break;
        }
    }
    if out.len() > start && out.last() == Some(&b'\r') {
        out.pop();
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
    chunk_bytes: u64,
}

impl FileSource {
    /// The file at `path` (opened by the worker that owns its partition), read by every worker
    /// in chunks of about `chunk_bytes` when the run allows.
    pub fn new(path: &Path, max_bytes: usize, chunk_bytes: u64) -> FileSource {
        FileSource { path: path.to_owned(), max_bytes, chunk_bytes: chunk_bytes.max(1) }
    }
}

/// A file cut into chunks at line boundaries: chunk `i` holds the lines that start in
/// `[origin + i * chunk_bytes, origin + (i + 1) * chunk_bytes)` (none, inside a line longer than
/// a chunk), `origin` being where reading starts (a resumed run's position, a line start). Each
/// worker reads its chunks with positional reads of the one open file. The file's length is
/// taken when it is opened: like a single reader, a run reads a file, not what is appended to it
/// later.
pub struct FileChunks {
    file: Arc<File>,
    path: String,
    origin: u64,
    len: u64,
    chunk_bytes: u64,
    max_bytes: usize,
}

impl FileChunks {
    /// Opens `path` from byte `origin` (a line start) in chunks of about `chunk_bytes`, lines of
    /// at most `max_bytes`.
    pub fn open(path: &Path, chunk_bytes: u64, max_bytes: usize, origin: u64) -> Result<FileChunks, SourceError> {
        let what = path.display().to_string();
        let file = File::open(path).map_err(|source| SourceError::io(&what, source))?;
        FileChunks::of(file, what, chunk_bytes, max_bytes, origin)
    }

    /// An open regular file, called `what` in errors, from byte `origin`.
    fn of(
        file: File,
        what: String,
        chunk_bytes: u64,
        max_bytes: usize,
        origin: u64,
    ) -> Result<FileChunks, SourceError> {
        let len = file.metadata().map_err(|source| SourceError::io(&what, source))?.len();
        let chunk_bytes = chunk_bytes.max(1);
        Ok(FileChunks { file: Arc::new(file), path: what, origin: origin.min(len), len, chunk_bytes, max_bytes })
    }
}

impl ChunkedInput for FileChunks {
    fn chunk_count(&self) -> Result<ChunkCount, SourceError> {
        Ok(ChunkCount { count: (self.len - self.origin).div_ceil(self.chunk_bytes), complete: true })
    }
    fn reader(&self) -> Result<Box<dyn ChunkReader>, SourceError> {
        let at = At { file: self.file.clone(), position: 0, end: 0 };
        Ok(Box::new(FileChunkReader {
            reader: BufReader::with_capacity(READ_BUFFER_BYTES, at),
            path: self.path.clone(),
            origin: self.origin,
            len: self.len,
            chunk_bytes: self.chunk_bytes,
            max_bytes: self.max_bytes,
            scan: vec![0; SCAN_BYTES],
        }))
    }
}

/// The read buffer of a chunk reader.
const READ_BUFFER_BYTES: usize = 256 * 1024;
/// How much is read at a time to find the newline before a chunk boundary: a few lines' worth
/// (a longer line takes more reads), not a buffer's (twice per chunk).
const SCAN_BYTES: usize = 4 * 1024;

/// One worker's reader of a [`FileChunks`].
struct FileChunkReader {
    reader: BufReader<At>,
    path: String,
    origin: u64,
    len: u64,
    chunk_bytes: u64,
    max_bytes: usize,
    /// A buffer for finding line starts.
    scan: Vec<u8>,
}

impl FileChunkReader {
    /// Where chunk `index` starts: the first line start at or after `origin + index * chunk_bytes`.
    fn start_of(&mut self, index: u64) -> std::io::Result<u64> {
        let nominal = self.origin.saturating_add(index.saturating_mul(self.chunk_bytes));
        if index == 0 || nominal >= self.len {
            return Ok(nominal.min(self.len));
        }
        // A line starts at `nominal` if the byte before it ends one.
        let mut at = nominal - 1;
        while at < self.len {
            let read = self.reader.get_ref().file.read_at(&mut self.scan, at)?;
            if read == 0 {
                break;
            }
            if let Some(i) = memchr_newline(&self.scan[..read]) {
                return Ok(at + i as u64 + 1);
            }
            at += read as u64;
        }
        Ok(self.len)
    }
}

impl ChunkReader for FileChunkReader {
    fn read(&mut self, index: u64, out: &mut ChunkLines) -> Result<(), SourceError> {
        self.read_lines(index, out).map_err(|source| SourceError::io(self.path.as_str(), source))
    }
}

impl FileChunkReader {
    fn read_lines(&mut self, index: u64, out: &mut ChunkLines) -> std::io::Result<()> {
        out.clear();
        let (start, end) = (self.start_of(index)?, self.start_of(index + 1)?);
        self.reader.seek(SeekFrom::Start(start))?;
        self.reader.get_mut().end = end;
        out.end = end;
        loop {
            let begin = out.bytes.len();
            let taken = append_counted_line(&mut self.reader, &mut out.bytes, self.max_bytes)?;
            if taken == 0 {
                return Ok(());
            }
            out.span += 1;
            if is_blank(&out.bytes[begin..]) {
                out.bytes.truncate(begin);
            } else {
                out.lines.push((out.span, begin, out.bytes.len()));
            }
        }
    }
}

/// Positional reads of a shared file up to `end`.
struct At {
    file: Arc<File>,
    position: u64,
    end: u64,
}

impl Read for At {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.end.saturating_sub(self.position);
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let read = self.file.read_at(&mut buf[..want], self.position)?;
        self.position += read as u64;
        Ok(read)
    }
}

impl Seek for At {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        match to {
            SeekFrom::Start(at) => self.position = at,
            _ => return Err(std::io::Error::other("chunk reads seek from the start only")),
        }
        Ok(self.position)
    }
}

impl Source for FileSource {
    fn kind(&self) -> SourceKind {
        SourceKind { name: "file", by_line: true }
    }
    fn partition_count(&self) -> u32 {
        1
    }
    fn chunked(&self, from: PartitionPosition) -> Result<Option<Arc<dyn ChunkedInput>>, SourceError> {
        // A named pipe, a device or a file of /proc has no length to cut: read it in order.
        let what = self.path.display().to_string();
        if !std::fs::metadata(&self.path).map_err(|source| SourceError::io(&what, source))?.is_file() {
            return Ok(None);
        }
        let chunks = FileChunks::open(&self.path, self.chunk_bytes, self.max_bytes, from.next)?;
        Ok(Some(Arc::new(chunks)))
    }
    /// A named pipe, a device or a file of /proc (what cannot be cut in advance) is read on a
    /// thread of its own and parsed by every worker.
    fn fed_to_every_worker(&self) -> bool {
        true
    }
    fn open(&self, indexes: &[u32], from: &[(u32, PartitionPosition)]) -> Result<OwnedPartitions, SourceError> {
        indexes
            .iter()
            .map(|&p| Ok((p, Box::new(self.open_partition(start_of(from, p))?) as Box<dyn Partition>)))
            .collect()
    }
}

impl FileSource {
    /// The file's one partition, from `from`.
    fn open_partition(&self, from: PartitionPosition) -> Result<LinePartition, SourceError> {
        let what = self.path.display().to_string();
        if std::fs::metadata(&self.path).map_err(|source| SourceError::io(&what, source))?.is_file() {
            return LinePartition::open_file(&self.path, self.max_bytes, from);
        }
        // Its reads (and, for a named pipe, opening it) block until a writer comes: a helper
        // thread does them, so a worker never waits on it. Like standard input, what was read is
        // gone, so it cannot resume.
        fresh(from, &what)?;
        let opening = OpenOnRead { path: self.path.clone(), file: None };
        Ok(LinePartition::from_reader(opening, self.max_bytes, &what))
    }
}

/// A file opened by its first read (on the thread that reads it: opening a named pipe waits for
/// a writer).
struct OpenOnRead {
    path: PathBuf,
    file: Option<File>,
}

impl Read for OpenOnRead {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let file = match &mut self.file {
            Some(file) => file,
            None => self.file.insert(File::open(&self.path)?),
        };
        file.read(buf)
    }
}

/// Standard input as a source of one partition (it cannot resume: what was read is gone).
pub struct StdinSource {
    max_bytes: usize,
    chunk_bytes: u64,
    taken: Mutex<bool>,
}

impl StdinSource {
    /// Standard input, lines of at most `max_bytes`; read in chunks of `chunk_bytes` by every
    /// worker when it is a regular file.
    pub fn new(max_bytes: usize, chunk_bytes: u64) -> StdinSource {
        StdinSource { max_bytes, chunk_bytes, taken: Mutex::new(false) }
    }

    /// Marks standard input as opened; an error if it was.
    fn take(&self) -> Result<(), SourceError> {
        let mut taken = self.taken.lock().unwrap_or_else(|e| e.into_inner());
        match std::mem::replace(&mut *taken, true) {
            true => Err(SourceError::Unsupported {
                what: "stdin".to_owned(),
                reason: "is one partition and can be opened once".to_owned(),
            }),
            false => Ok(()),
        }
    }
}

/// Refuses to resume `what` (standard input, a named pipe) from a position.
fn fresh(position: PartitionPosition, what: &str) -> Result<(), SourceError> {
    match position == PartitionPosition::default() {
        true => Ok(()),
        false => Err(SourceError::Unsupported {
            what: what.to_owned(),
            reason: "cannot resume from a position: what was read is gone".to_owned(),
        }),
    }
}

impl Source for StdinSource {
    fn kind(&self) -> SourceKind {
        SourceKind { name: "stdin", by_line: true }
    }
    fn partition_count(&self) -> u32 {
        1
    }
    /// A regular file redirected to standard input (`rtsa run < events.jsonl`) is read in chunks
    /// by every worker from where standard input stands, as a file source is; a pipe or a
    /// terminal has no length to cut: it is read in order, by one worker or by a reader thread
    /// that cuts it into chunks as it arrives (`fed_to_every_worker`).
    fn chunked(&self, from: PartitionPosition) -> Result<Option<Arc<dyn ChunkedInput>>, SourceError> {
        use std::os::fd::AsFd;
        fresh(from, "stdin")?;
        let what = "stdin".to_owned();
        // A duplicate of the descriptor shares its offset: where a single reader would start.
        let duplicate =
            std::io::stdin().as_fd().try_clone_to_owned().map_err(|source| SourceError::io(&what, source))?;
        let mut file = File::from(duplicate);
        let Ok(metadata) = file.metadata() else { return Ok(None) };
        if !metadata.is_file() {
            return Ok(None);
        }
        let origin = file.stream_position().map_err(|source| SourceError::io(&what, source))?;
        self.take()?;
        Ok(Some(Arc::new(FileChunks::of(file, what, self.chunk_bytes, self.max_bytes, origin)?)))
    }
    /// A pipe or a terminal is read on a thread of its own and parsed by every worker.
    fn fed_to_every_worker(&self) -> bool {
        true
    }
    fn open(&self, indexes: &[u32], from: &[(u32, PartitionPosition)]) -> Result<OwnedPartitions, SourceError> {
        let mut out: OwnedPartitions = Vec::new();
        for &p in indexes {
            fresh(start_of(from, p), "stdin")?;
            self.take()?;
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
    File {
        reader: BufReader<File>,
        path: String,
    },
    /// Lines from a helper thread, in batches, with the batch being delivered and how many of
    /// its lines were.
    Channel {
        /// What is read (in errors).
        what: String,
        receiver: Receiver<std::io::Result<MemoryLines>>,
        batch: MemoryLines,
        delivered: usize,
    },
}

/// How many bytes of lines a helper thread gathers before it sends them.
const BATCH_BYTES: usize = 64 * 1024;
/// How many batches may wait for the partition to take them.
const BATCHES_WAITING: usize = 16;

/// The helper thread: reads lines and sends them in batches — one allocation and one message for
/// as many lines as the input had ready (up to [`BATCH_BYTES`]), not one a line — each as soon as
/// the next read could block (nothing left in the buffer), so a live input's lines are not held
/// back.
fn send_lines(read: impl Read, max_bytes: usize, sender: std::sync::mpsc::SyncSender<std::io::Result<MemoryLines>>) {
    let mut reader = BufReader::with_capacity(1 << 20, read);
    let mut batch = MemoryLines::default();
    loop {
        match batch.push_with(|bytes| append_counted_line(&mut reader, bytes, max_bytes).map(|taken| taken > 0)) {
            Ok(false) => {
                if !batch.is_empty() {
                    let _ = sender.send(Ok(batch));
                }
                return;
            }
            Ok(true) => {
                if (batch.byte_len() >= BATCH_BYTES || reader.buffer().is_empty())
                    && sender.send(Ok(std::mem::take(&mut batch))).is_err()
                {
                    return;
                }
            }
            Err(e) => {
                if !batch.is_empty() {
                    let _ = sender.send(Ok(std::mem::take(&mut batch)));
                }
                let _ = sender.send(Err(e));
                return;
            }
        }
    }
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
        LinePartition::from_reader(std::io::stdin(), max_bytes, "stdin")
    }

    /// Reads any blocking reader on a helper thread (`what` names it in errors).
    pub fn from_reader(read: impl Read + Send + 'static, max_bytes: usize, what: &str) -> LinePartition {
        let (sender, receiver) = sync_channel(BATCHES_WAITING);
        std::thread::spawn(move || send_lines(read, max_bytes, sender));
        LinePartition {
            input: LineInput::Channel { what: what.to_owned(), receiver, batch: MemoryLines::default(), delivered: 0 },
            line_number: 0,
            consumed: 0,
            line: Vec::new(),
            max_bytes,
        }
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
                LineInput::Channel { what, receiver, batch, delivered } => {
                    if *delivered == batch.len() {
                        match receiver.try_recv() {
                            Ok(Ok(next)) => (*batch, *delivered) = (next, 0),
                            Ok(Err(source)) => return Err(SourceError::Io { what: what.clone(), source }),
                            Err(TryRecvError::Empty) => return Ok(Poll::Pending),
                            Err(TryRecvError::Disconnected) => return Ok(Poll::Finished),
                        }
                    }
                    let line = batch.line(*delivered);
                    *delivered += 1;
                    self.line_number += 1;
                    self.consumed += line.len() as u64 + 1;
                    if !is_blank(line) {
                        emit(line, self.line_number);
                    }
                }
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
        let mut partition = LinePartition::from_reader(Cursor::new(data.as_bytes().to_vec()), 100, "test");
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
    fn a_file_read_in_chunks_of_any_size_gives_the_lines_of_one_reader() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let long = "x".repeat(40);
        let text = format!("one\r\n\ntwo\n{long}\n  \nthree\r\n{long}{long}\nfour\n\nlast");
        std::fs::write(&path, &text).unwrap();
        let mut single = LinePartition::open_file(&path, 30, PartitionPosition::default()).unwrap();
        let (expected, _) = read_all(&mut single, 100);
        // Every chunk in order: (line, line number) from `lines` lines before, the lines counted,
        // where the last chunk ends.
        let in_chunks = |chunk_bytes: u64, at: PartitionPosition| {
            let chunks = FileChunks::open(&path, chunk_bytes, 30, at.next).unwrap();
            let mut reader = chunks.reader().unwrap();
            let (mut seen, mut before) = (Vec::new(), at.lines);
            let mut lines = ChunkLines::default();
            for index in 0..chunks.chunk_count().unwrap().count {
                reader.read(index, &mut lines).unwrap();
                for (i, (offset, _, _)) in lines.lines.iter().enumerate() {
                    seen.push((String::from_utf8_lossy(lines.line(i)).into_owned(), before + offset));
                }
                before += lines.span;
            }
            (seen, before, lines.end)
        };
        for chunk_bytes in [1, 2, 3, 5, 7, 16, 64, 1 << 20] {
            let (seen, lines, _) = in_chunks(chunk_bytes, PartitionPosition::default());
            assert_eq!(seen, expected, "chunks of {chunk_bytes} bytes");
            assert_eq!(lines, 10, "every line counted once, blank ones too");
        }
        // From a position a single reader reported (a checkpoint's): the rest, in chunks.
        let mut first = LinePartition::open_file(&path, 30, PartitionPosition::default()).unwrap();
        read_all(&mut first, 4);
        let at = first.position();
        for chunk_bytes in [1, 9, 1 << 20] {
            let (seen, _, end) = in_chunks(chunk_bytes, at);
            assert_eq!(end, std::fs::metadata(&path).unwrap().len(), "the last chunk ends at the end");
            let rest: Vec<_> = expected.iter().filter(|(_, line)| *line > at.lines).cloned().collect();
            assert_eq!(seen, rest, "from byte {} in chunks of {chunk_bytes} bytes", at.next);
        }
    }

    #[test]
    fn a_file_that_is_not_regular_is_not_cut_and_never_blocks_a_poll() {
        let source = FileSource::new(Path::new("/dev/null"), 100, 1 << 20);
        assert!(source.chunked(PartitionPosition::default()).unwrap().is_none());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        std::fs::write(&path, "{}\n").unwrap();
        assert!(FileSource::new(&path, 100, 1 << 20).chunked(PartitionPosition::default()).unwrap().is_some());
        // A named pipe with no writer yet: opening it would wait, and so would a read; the
        // helper thread does both, and the partition has nothing for now.
        let fifo = dir.path().join("events.fifo");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        let source = FileSource::new(&fifo, 100, 1 << 20);
        assert!(source.chunked(PartitionPosition::default()).unwrap().is_none());
        let resumed = [(0, PartitionPosition { next: 3, lines: 1 })];
        assert!(matches!(source.open(&[0], &resumed), Err(SourceError::Unsupported { .. })), "cannot resume");
        let mut partition = source.open(&[0], &[]).unwrap().pop().unwrap().1;
        let mut seen = Vec::new();
        let mut emit = |bytes: &[u8], line: u64| seen.push((String::from_utf8_lossy(bytes).into_owned(), line));
        assert_eq!(partition.poll(10, &mut emit).unwrap(), Poll::Pending);
        let writer = std::thread::spawn(move || std::fs::write(&fifo, "a\n\nb\n").unwrap());
        while partition.poll(10, &mut emit).unwrap() != Poll::Finished {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        writer.join().unwrap();
        assert_eq!(seen, vec![("a".to_owned(), 1), ("b".to_owned(), 3)]);
    }

    #[test]
    fn a_worker_that_owns_no_partition_opens_nothing() {
        // In a cluster only process 0 reads the file: another host need not have it.
        let source = FileSource::new(Path::new("/nonexistent/events.jsonl"), 100, 1 << 20);
        assert!(source.open(&[], &[]).unwrap().is_empty());
        assert!(source.open(&[0], &[]).is_err());
    }

    #[test]
    fn stdin_cannot_resume() {
        let source = StdinSource::new(100, 1 << 20);
        let from = [(0, PartitionPosition { next: 5, lines: 1 })];
        assert!(matches!(source.open(&[0], &from), Err(SourceError::Unsupported { .. })));
    }
}
