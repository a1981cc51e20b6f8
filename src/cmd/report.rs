//! `bleedwatch report`: the response report for decision makers, from the inventory. One
//! self-contained HTML file (executive summary first, inline SVG charts, details; no script, nothing
//! loaded from anywhere, prints cleanly), plus the same data as JSON and the endpoints as CSV
//! (formula cells neutralised). The work is done by `bleedwatch-report`.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use bleedwatch_report::{gather, render_csv, render_html, render_json};
use bleedwatch_store::Store;
use clap::Args;

use crate::args::DbArgs;
use crate::clock::now_ms;
use crate::output::is_stdout;

#[derive(Args, Debug, Clone)]
pub struct ReportArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Write the HTML report to FILE (`-` for standard output).
    #[arg(long, value_name = "FILE", default_value = "bleedwatch-report.html")]
    pub out: PathBuf,
    /// Also write the report's data as one JSON document to FILE (`-` for standard output).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Also write the endpoints as CSV to FILE (`-` for standard output).
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
}

/// Writes the report (and the exports asked for). Exit code 0: a report is a document, not a
/// verdict (`status` exits 1 when an endpoint is vulnerable).
pub async fn run(args: ReportArgs) -> Result<u8> {
    let store = args.db.open_existing().await?;
    let data = gather(&store, now_ms()).await.context("reading the inventory for the report")?;
    store.close().await;
    write_output(&args.out, render_html(&data).as_bytes())?;
    if let Some(path) = &args.json {
        write_output(path, render_json(&data)?.as_bytes())?;
    }
    if let Some(path) = &args.csv {
        write_output(path, render_csv(&data)?.as_bytes())?;
    }
    let summary = &data.summary;
    let written: Vec<String> = [Some(&args.out), args.json.as_ref(), args.csv.as_ref()]
        .into_iter()
        .flatten()
        .filter(|p| !is_stdout(p))
        .map(|p| p.display().to_string())
        .collect();
    if !written.is_empty() {
        eprintln!(
            "bleedwatch: wrote {}: {} endpoints, {} exposed, {} still vulnerable, {} ready to notify",
            written.join(", "),
            summary.endpoints,
            summary.affected,
            summary.vulnerable,
            summary.notify_ready
        );
    }
    Ok(0)
}

/// Writes the HTML report of `store` to `path` (`demo` does, beside its other files).
pub async fn write_html(store: &Store, path: &Path) -> Result<()> {
    let data = gather(store, now_ms()).await.context("reading the inventory for the report")?;
    write_output(path, render_html(&data).as_bytes())
}

/// Writes `bytes` to `path` (`-` is standard output). A file is written beside its final name and
/// renamed, so a report being opened is never half-written.
fn write_output(path: &Path, bytes: &[u8]) -> Result<()> {
    if is_stdout(path) {
        let mut out = BufWriter::new(io::stdout().lock());
        out.write_all(bytes)?;
        out.flush()?;
        return Ok(());
    }
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let result = File::create(&partial)
        .and_then(|mut file| file.write_all(bytes).and_then(|()| file.sync_all()))
        .and_then(|()| std::fs::rename(&partial, path));
    if let Err(error) = result {
        let _ = std::fs::remove_file(&partial);
        return Err(error).with_context(|| format!("cannot write {}", path.display()));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::test_support::{scan_result, scratch_dir};

    /// The command end to end on a SQLite inventory: the three files are written, and what came
    /// from the network stays inert in each.
    #[tokio::test]
    async fn writes_html_json_and_csv() {
        let dir = scratch_dir("report-exports");
        let db = DbArgs { db: Some(dir.join("inv.db").display().to_string()) };
        let store = db.open().await.unwrap();
        let run = store.start_run("scan", &[]).await.unwrap();
        store.record(run, &scan_result("192.0.2.1", "vulnerable", "CN=<script>alert(1)</script>", "a"), None).await.unwrap();
        store.record(run, &scan_result("192.0.2.2", "not-vulnerable", "=cmd|' /C calc'!A0", "b"), None).await.unwrap();
        store.finish_run(run, "finished").await.unwrap();
        store.close().await;

        let args = ReportArgs {
            db,
            out: dir.join("report.html"),
            json: Some(dir.join("report.json")),
            csv: Some(dir.join("report.csv")),
        };
        assert_eq!(super::run(args).await.unwrap(), 0);
        let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
        assert!(html.starts_with("<!DOCTYPE html>") && html.contains("id=\"chart-funnel\""));
        assert!(!html.contains("<script"));
        let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
        assert_eq!(json["summary"]["vulnerable"], 1);
        let csv = std::fs::read_to_string(dir.join("report.csv")).unwrap();
        assert!(csv.starts_with("address,port,transport,"), "{csv}");
        assert_eq!(csv.lines().count(), 3);
        assert!(!dir.join("report.html.partial").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_unwritable_path_is_a_clear_error() {
        let dir = scratch_dir("report-unwritable");
        let path = dir.join("missing").join("report.html");
        let error = write_output(&path, b"x").unwrap_err();
        assert!(format!("{error:#}").contains("cannot write"), "{error:#}");
        assert!(!dir.join("missing").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
