//! JSONL files: one JSON object per line, appended; the folder is created when missing.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// An open JSONL file.
pub struct JsonlFile {
    path: PathBuf,
    writer: BufWriter<File>,
}

impl JsonlFile {
    /// Opens `path` for appending, creating its folder.
    pub fn open(path: &Path) -> std::io::Result<JsonlFile> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(JsonlFile { path: path.to_owned(), writer: BufWriter::with_capacity(1 << 16, file) })
    }

    /// Appends one line.
    pub fn write_line(&mut self, line: &str) -> std::io::Result<()> {
        self.writer.write_all(line.as_bytes())?;
        self.writer.write_all(b"\n")
    }

    /// Flushes buffered lines to the file.
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.writer.flush()
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
