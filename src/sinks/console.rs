//! The console: one line per record on standard output.

use std::io::Write;

/// Writes lines to standard output under one lock per batch.
pub fn print_lines<'a>(lines: impl Iterator<Item = &'a str>) -> std::io::Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for line in lines {
        out.write_all(line.as_bytes())?;
        out.write_all(b"\n")?;
    }
    out.flush()
}
