//! `bleedwatch audit PATH...`: every OpenSSL copy on disk (directories, archives, .debs, container
//! images) and whether it is vulnerable. The engine is the `bleedwatch-audit` crate; this file
//! chooses outputs (a table, JSON lines, CSV, the exit code) and records each audited asset's
//! findings in the inventory, where `status` and the report put them beside the endpoints the
//! asset serves.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use bleedwatch_audit::{Audit, AuditVerdict, Finding, Issue, Options};
use clap::Args;
use serde::Serialize;

use bleedwatch_store::{DiskAuditInput, DiskFinding, PackageRecord};

use crate::args::{DbArgs, OutputArgs};
use crate::clock::now_ms;
use crate::recording::arguments_without_db;
use crate::output::{is_stdout, neutralize_csv_cell, open_output, printable, write_json_line};

#[derive(Args, Debug)]
pub struct AuditArgs {
    /// Directories, files, archives (tar, tar.gz/xz/zst, zip/jar), .debs, container images
    /// (`docker save` tarballs, OCI image layouts).
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Every finding as a JSON line and as a CSV row (to standard output instead of the table).
    #[command(flatten)]
    pub output: OutputArgs,
    /// Archives opened inside archives, the outermost counting 1; deeper ones are reported, not read.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub max_depth: usize,
    /// A zip or squashfs image inside another archive is held in memory to be read (both need
    /// seeking): at most this many MiB, larger ones are reported, not read.
    #[arg(long, value_name = "MIB", default_value_t = 256)]
    pub max_zip_mib: u64,
    /// Threads reading a directory's files [default: the CPUs this process may run on].
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    /// No table (exit code and files only).
    #[arg(long, short)]
    pub quiet: bool,
    /// The host or image the files belong to, in the inventory [default, per PATH: the image's
    /// name for an image, this machine's name for a directory, else the file's name].
    #[arg(long, value_name = "NAME")]
    pub asset: Option<String>,
    #[command(flatten)]
    pub db: DbArgs,
    /// Do not record the findings in the inventory.
    #[arg(long)]
    pub no_db: bool,
}

/// Everything `audit` found over all PATHs, for output or for the inventory.
#[derive(Debug, Default, Serialize)]
pub struct AuditRun {
    pub findings: Vec<Finding>,
    pub issues: Vec<Issue>,
    pub bytes_scanned: u64,
}

impl AuditRun {
    /// 1 vulnerable; 3 incomplete (an issue, or an `unknown` verdict); else 0.
    pub fn exit_code(&self) -> u8 {
        if self.findings.iter().any(|f| f.verdict == AuditVerdict::Vulnerable) {
            1
        } else if !self.issues.is_empty() || self.findings.iter().any(|f| f.verdict == AuditVerdict::Unknown) {
            3
        } else {
            0
        }
    }
}

fn options(args: &AuditArgs) -> Options {
    let jobs = args.jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    Options { max_depth: args.max_depth.max(1), max_buffered_zip: args.max_zip_mib << 20, jobs: jobs.max(1), ..Options::default() }
}

/// The findings over `paths`, nothing printed (the inventory records these).
pub fn audit_findings(paths: &[PathBuf], options: &Options) -> AuditRun {
    let mut run = AuditRun::default();
    for path in paths {
        let Audit { findings, issues, bytes_scanned } = bleedwatch_audit::audit_path(path, options);
        run.findings.extend(findings);
        run.issues.extend(issues);
        run.bytes_scanned += bytes_scanned;
    }
    run
}

pub async fn run(args: AuditArgs) -> Result<u8> {
    let (paths, options) = (args.paths.clone(), options(&args));
    // Reading the disk blocks; the inventory is async.
    let run = tokio::task::spawn_blocking(move || audit_findings(&paths, &options)).await?;
    write_outputs(&args, &run)?;
    if !args.no_db {
        record(&args, &run).await.context("recording the audit in the inventory")?;
    }
    Ok(run.exit_code())
}

fn write_outputs(args: &AuditArgs, run: &AuditRun) -> Result<()> {
    let json_to_stdout = args.output.json.as_deref().is_some_and(is_stdout);
    let csv_to_stdout = args.output.csv.as_deref().is_some_and(is_stdout);
    if let Some(path) = args.output.json.as_deref() {
        let mut out = open_output(path)?;
        for finding in &run.findings {
            write_json_line(&mut out, finding)?;
        }
        out.flush()?;
    }
    if let Some(path) = args.output.csv.as_deref() {
        let mut w = csv::Writer::from_writer(open_output(path)?);
        w.write_record(CSV_HEADER)?;
        for finding in &run.findings {
            w.write_record(csv_row(finding).iter().map(|c| neutralize_csv_cell(c)))?;
        }
        w.flush()?;
    }
    if !args.quiet && !json_to_stdout && !csv_to_stdout {
        write_table(&mut io::stdout().lock(), run)?;
    }
    // Issues always reach standard error: an incomplete audit must not look clean.
    let mut err = io::stderr().lock();
    for issue in &run.issues {
        writeln!(err, "audit: {}: {}", printable(&location(&issue.location)), printable(&issue.message))?;
    }
    Ok(())
}

/// One audit per asset: every PATH under `--asset`, else each PATH under its own name. A PATH
/// with nothing found is recorded too: "audited, no OpenSSL" is a fact the report shows.
async fn record(args: &AuditArgs, run: &AuditRun) -> Result<()> {
    let store = args.db.open().await?;
    let run_id = store.start_run("audit", &arguments_without_db(std::env::args().skip(2))).await?;
    let audited_at_ms = now_ms();
    let mut audits: Vec<DiskAuditInput> = Vec::new();
    for path in &args.paths {
        let top = path.display().to_string();
        let from_path = |location: &[String]| location.first() == Some(&top);
        let findings: Vec<&Finding> = run.findings.iter().filter(|f| from_path(&f.location)).collect();
        let asset = match &args.asset {
            Some(name) => name.trim().to_owned(),
            None => default_asset(path, &findings),
        };
        let index = match audits.iter().position(|a| a.asset == asset) {
            Some(index) => index,
            None => {
                audits.push(DiskAuditInput { run: run_id, asset, audited_at_ms, unread: Vec::new(), findings: Vec::new() });
                audits.len() - 1
            }
        };
        let audit = &mut audits[index];
        audit.findings.extend(findings.into_iter().map(finding_input));
        audit.unread.extend(
            run.issues.iter().filter(|i| from_path(&i.location)).map(|i| format!("{}: {}", location(&i.location), i.message)),
        );
    }
    let mut result = Ok(());
    for audit in &audits {
        if let Err(error) = store.record_disk_audit(audit).await {
            result = Err(error).with_context(|| format!("the audit of {}", audit.asset));
            break;
        }
    }
    store.finish_run(run_id, if result.is_ok() { "finished" } else { "failed" }).await?;
    result
}

/// The inventory's name for what PATH holds: an image's name, this machine's name for a
/// directory, else the file's own name.
fn default_asset(path: &Path, findings: &[&Finding]) -> String {
    if let Some(image) = findings.iter().find_map(|f| f.image.clone()) {
        return image;
    }
    if path.is_dir() {
        let name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        if !name.trim().is_empty() {
            return name.trim().to_owned();
        }
    }
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| path.display().to_string())
}

fn finding_input(f: &Finding) -> DiskFinding {
    DiskFinding {
        location: f.location.clone(),
        image: f.image.clone(),
        kind: f.kind.as_str().into(),
        version: Some(f.version.clone()).filter(|v| !v.is_empty()),
        heartbeats: f.heartbeats.as_str().into(),
        package: f.package.as_ref().map(|p| PackageRecord {
            name: p.name.clone(),
            version: p.version.clone(),
            distribution: p.distribution.clone(),
            advisory: p.advisory.clone(),
        }),
        verdict: f.verdict.as_str().into(),
        reason: f.reason.clone(),
    }
}

/// Path segments from the outermost PATH inward, joined as archive paths usually are.
fn location(segments: &[String]) -> String {
    segments.join(" ! ")
}

const CSV_HEADER: &[&str] =
    &["location", "image", "kind", "version", "heartbeats", "package", "package_version", "distribution", "advisory", "verdict", "reason"];

fn csv_row(f: &Finding) -> Vec<String> {
    let package = f.package.as_ref();
    vec![
        location(&f.location),
        f.image.clone().unwrap_or_default(),
        f.kind.as_str().into(),
        f.version.clone(),
        f.heartbeats.as_str().into(),
        package.map(|p| p.name.clone()).unwrap_or_default(),
        package.map(|p| p.version.clone()).unwrap_or_default(),
        package.and_then(|p| p.distribution.clone()).unwrap_or_default(),
        package.and_then(|p| p.advisory.clone()).unwrap_or_default(),
        f.verdict.as_str().into(),
        f.reason.clone(),
    ]
}

fn write_table(out: &mut dyn Write, run: &AuditRun) -> io::Result<()> {
    let mut findings: Vec<&Finding> = run.findings.iter().collect();
    findings.sort_by(|a, b| a.verdict.cmp(&b.verdict).then_with(|| a.location.cmp(&b.location)));
    for f in &findings {
        writeln!(
            out,
            "{:<22} {:<16} {:<12} heartbeats {:<11} {}",
            f.verdict.as_str(),
            f.kind.as_str(),
            printable(&f.version),
            f.heartbeats.as_str(),
            printable(&location(&f.location))
        )?;
        if let Some(image) = &f.image {
            writeln!(out, "    image: {}", printable(image))?;
        }
        writeln!(out, "    {}", printable(&f.reason))?;
    }
    let count = |v: AuditVerdict| run.findings.iter().filter(|f| f.verdict == v).count();
    writeln!(
        out,
        "{} OpenSSL copies: {} vulnerable, {} heartbeats-disabled, {} fixed-by-distribution, {} not-affected, {} unknown; {} not fully read; {:.1} MB scanned",
        run.findings.len(),
        count(AuditVerdict::Vulnerable),
        count(AuditVerdict::HeartbeatsDisabled),
        count(AuditVerdict::FixedByDistribution),
        count(AuditVerdict::NotAffected),
        count(AuditVerdict::Unknown),
        run.issues.len(),
        run.bytes_scanned as f64 / 1e6
    )
}
