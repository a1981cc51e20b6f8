//! Output helpers every command shares: files or standard output, JSON lines, CSV cells that
//! spreadsheets cannot run, plain text tables, and text from the network made printable.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

// One neutraliser and one printable filter for the workspace: the report crate's.
pub use bleedwatch_report::{neutralize_csv_cell, printable};

/// Opens `path` for writing; `-` is standard output.
pub fn open_output(path: &Path) -> Result<Box<dyn Write + Send>> {
    Ok(open_output_at(path, false)?.0)
}

/// Opens `path` for writing, or with `append` for appending (a resumed scan adds to what the killed
/// one wrote); `-` is standard output. Also says whether the file already held something.
pub fn open_output_at(path: &Path, append: bool) -> Result<(Box<dyn Write + Send>, bool)> {
    if path.as_os_str() == "-" {
        return Ok((Box::new(BufWriter::new(io::stdout())), false));
    }
    if !append {
        let file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
        return Ok((Box::new(BufWriter::new(file)), false));
    }
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(path)
        .with_context(|| format!("cannot open {} to append", path.display()))?;
    let length = file.metadata().with_context(|| format!("cannot read {}", path.display()))?.len();
    if length > 0 {
        // A line cut by the kill must not swallow the first new one.
        use std::io::{Read, Seek, SeekFrom};
        let mut last = [0u8; 1];
        file.seek(SeekFrom::Start(length - 1))?;
        file.read_exact(&mut last)?;
        if last[0] != b'\n' {
            file.write_all(b"\n")?;
        }
    }
    Ok((Box::new(BufWriter::new(file)), length > 0))
}

/// Whether `path` means standard output (`-`).
pub fn is_stdout(path: &Path) -> bool {
    path.as_os_str() == "-"
}

pub fn write_json_line<T: Serialize + ?Sized>(out: &mut dyn Write, value: &T) -> Result<()> {
    serde_json::to_writer(&mut *out, value)?;
    out.write_all(b"\n")?;
    Ok(())
}

/// Writes `items` as JSON lines to `path` (`-` for standard output).
pub fn write_json_lines<T: Serialize>(path: &Path, items: impl IntoIterator<Item = T>) -> Result<()> {
    let mut out = open_output(path)?;
    for item in items {
        write_json_line(&mut out, &item)?;
    }
    out.flush()?;
    Ok(())
}

pub fn yes_no(value: bool) -> &'static str {
    if value {
        "yes"
    } else {
        "no"
    }
}

/// The first 16 hex digits of a hash, for tables.
pub fn short_hash(hash: &str) -> String {
    hash.chars().take(16).collect()
}

/// `192.0.2.1:443`, `[2001:db8::1]:443`.
pub fn socket_label(address: &str, port: u16) -> String {
    if address.contains(':') {
        format!("[{address}]:{port}")
    } else {
        format!("{address}:{port}")
    }
}

/// A plain text table; cells from the network are made printable and long ones cut.
pub fn write_table(out: &mut dyn Write, header: &[&str], rows: &[Vec<String>]) -> io::Result<()> {
    const MAX_CELL: usize = 60;
    let clean = |cell: &str| {
        let text = printable(cell);
        if text.chars().count() > MAX_CELL {
            format!("{}…", text.chars().take(MAX_CELL - 1).collect::<String>())
        } else {
            text
        }
    };
    let rows: Vec<Vec<String>> = rows.iter().map(|row| row.iter().map(|c| clean(c)).collect()).collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(width) = widths.get_mut(i) {
                *width = (*width).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        cells
            .iter()
            .enumerate()
            .map(|(i, cell)| {
                let width = widths.get(i).copied().unwrap_or(0);
                if i == last { (*cell).to_owned() } else { format!("{cell:<width$}") }
            })
            .collect::<Vec<_>>()
            .join("  ")
    };
    writeln!(out, "{}", line(header.to_vec()))?;
    for row in &rows {
        writeln!(out, "{}", line(row.iter().map(String::as_str).collect()))?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_and_stay_printable() {
        let mut out = Vec::new();
        let rows = vec![vec!["a".to_owned(), "CN=\u{1b}[31mx".to_owned()], vec!["longer".to_owned(), "y".to_owned()]];
        write_table(&mut out, &["K", "V"], &rows).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text, "K       V\na       CN=?[31mx\nlonger  y\n");
    }
}
