//! Writers for scan results: JSON lines, CSV, the summary table and the progress bar. The engine
//! knows none of these; it only emits results.

use std::io::{self, IsTerminal, Write};
use std::path::Path;

use anyhow::Result;
use bleedwatch_probe::{EndpointResult, ScanStatus, Verdict};
use indicatif::{ProgressBar, ProgressStyle};

use crate::output::{neutralize_csv_cell, open_output_at, printable};

pub const CSV_HEADER: &[&str] = &[
    "address", "port", "transport", "host", "sni", "status", "heartbleed", "reason", "ssl3", "tls1.0", "tls1.1", "tls1.2",
    "tls1.3", "cert_subject", "cert_issuer", "cert_not_after", "spki_sha256", "cert_sha256", "leaked_bytes",
];

fn status_name(s: ScanStatus) -> String {
    serde_json::to_value(s).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

pub fn csv_row(r: &EndpointResult) -> Vec<String> {
    let version = |v: &str| r.versions.get(v).map(|x| x.as_str().to_string()).unwrap_or_default();
    let cert = r.certificate.as_ref();
    vec![
        r.address.clone(),
        r.port.to_string(),
        r.transport.to_string(),
        r.host.clone().unwrap_or_default(),
        r.sni.clone().unwrap_or_default(),
        status_name(r.status),
        r.heartbleed.as_str().to_string(),
        r.reason.clone().unwrap_or_default(),
        version("ssl3"),
        version("tls1.0"),
        version("tls1.1"),
        version("tls1.2"),
        version("tls1.3"),
        cert.map(|c| c.subject.clone()).unwrap_or_default(),
        cert.map(|c| c.issuer.clone()).unwrap_or_default(),
        cert.map(|c| c.not_after.clone()).unwrap_or_default(),
        cert.map(|c| c.spki_sha256.clone()).unwrap_or_default(),
        cert.map(|c| c.cert_sha256.clone()).unwrap_or_default(),
        r.leak.as_ref().map(|l| l.leaked_bytes.to_string()).unwrap_or_default(),
    ]
    .into_iter()
    .map(|c| neutralize_csv_cell(&c))
    .collect()
}

/// One line of the summary table, kept instead of the whole result so a large scan stays small.
pub struct SummaryRow {
    endpoint: String,
    verdict: Verdict,
    versions: String,
    subject: String,
    reason: String,
}

/// A target that produced no endpoint to test: a name that did not resolve. It is reported like an
/// endpoint (status `dns-error`, heartbleed `inconclusive`, address null) so that no output reads
/// as if it had been tested.
#[derive(Debug, Clone, serde::Serialize)]
pub struct UntestedTarget {
    /// Always null: no address was found.
    pub address: Option<String>,
    pub port: u16,
    pub transport: &'static str,
    /// The name as given.
    pub host: Option<String>,
    pub service: &'static str,
    pub sni: Option<String>,
    pub status: &'static str,
    pub heartbleed: Verdict,
    /// The resolver's error.
    pub reason: Option<String>,
    pub versions: std::collections::BTreeMap<String, Verdict>,
    pub certificate: Option<()>,
    pub chain: [(); 0],
    pub details: [(); 0],
    pub started_at: String,
    pub duration_ms: u64,
}

impl UntestedTarget {
    pub fn unresolved(name: &str, port: u16, transport: &'static str, error: &str) -> UntestedTarget {
        UntestedTarget {
            address: None,
            port,
            transport,
            host: Some(name.to_owned()),
            service: "unknown",
            sni: None,
            status: "dns-error",
            heartbleed: Verdict::Inconclusive,
            reason: Some(error.to_owned()),
            versions: Default::default(),
            certificate: None,
            chain: [],
            details: [],
            started_at: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
            duration_ms: 0,
        }
    }

    fn csv_row(&self) -> Vec<String> {
        let mut row = vec![String::new(); CSV_HEADER.len()];
        let cells = [
            ("port", self.port.to_string()),
            ("transport", self.transport.to_owned()),
            ("host", self.host.clone().unwrap_or_default()),
            ("status", self.status.to_owned()),
            ("heartbleed", self.heartbleed.as_str().to_owned()),
            ("reason", self.reason.clone().unwrap_or_default()),
        ];
        for (column, value) in cells {
            if let Some(i) = CSV_HEADER.iter().position(|c| *c == column) {
                row[i] = neutralize_csv_cell(&value);
            }
        }
        row
    }
}

/// Collects what the summary needs and writes JSON lines and CSV as results arrive.
pub struct ResultSinks {
    json: Option<Box<dyn Write + Send>>,
    csv: Option<csv::Writer<Box<dyn Write + Send>>>,
    rows: Vec<SummaryRow>,
    /// Per overall verdict; targets that could not be tested count as `inconclusive`.
    pub counts: std::collections::BTreeMap<&'static str, u64>,
    pub unreachable: u64,
    /// Names that did not resolve (also in `counts` as inconclusive).
    pub unresolved: u64,
    pub progress: ProgressBar,
}

/// Endpoints whose rows the table keeps at most; the counts always cover everything.
const MAX_TABLE_ROWS: usize = 10_000;

impl ResultSinks {
    /// Writers for a scan; with `append` (a resumed scan) the files keep what they hold and the
    /// CSV header is written only to an empty file.
    pub fn new(json: Option<&Path>, csv_path: Option<&Path>, total_hint: u128, show_progress: bool, append: bool) -> Result<Self> {
        let json = json.map(|p| open_output_at(p, append).map(|(w, _)| w)).transpose()?;
        let csv = match csv_path {
            Some(p) => {
                let (out, had_rows) = open_output_at(p, append)?;
                let mut w = csv::Writer::from_writer(out);
                if !had_rows {
                    w.write_record(CSV_HEADER)?;
                }
                Some(w)
            }
            None => None,
        };
        // Not under a debug log (-v): the log lines and the bar would overwrite each other.
        let progress = if show_progress && io::stderr().is_terminal() && !tracing::enabled!(tracing::Level::DEBUG) {
            let bar = ProgressBar::new(total_hint.min(u64::MAX as u128) as u64);
            bar.set_style(
                ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} endpoints ({per_sec}, eta {eta}) {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar
        } else {
            ProgressBar::hidden()
        };
        Ok(ResultSinks { json, csv, rows: Vec::new(), counts: Default::default(), unreachable: 0, unresolved: 0, progress })
    }

    pub fn add(&mut self, r: &EndpointResult) -> Result<()> {
        if let Some(out) = self.json.as_mut() {
            serde_json::to_writer(&mut *out, r)?;
            out.write_all(b"\n")?;
            out.flush()?;
        }
        if let Some(w) = self.csv.as_mut() {
            w.write_record(csv_row(r))?;
            w.flush()?;
        }
        *self.counts.entry(r.heartbleed.as_str()).or_default() += 1;
        let unreachable = matches!(r.status, ScanStatus::ConnectionRefused | ScanStatus::ConnectionTimeout);
        if unreachable {
            self.unreachable += 1;
        } else if self.rows.len() < MAX_TABLE_ROWS || r.heartbleed == Verdict::Vulnerable {
            let host = r.host.as_deref().map(|h| format!(" ({h})")).unwrap_or_default();
            let addr = if r.address.contains(':') { format!("[{}]", r.address) } else { r.address.clone() };
            self.rows.push(SummaryRow {
                endpoint: format!("{addr}:{}{host}", r.port),
                verdict: r.heartbleed,
                versions: r
                    .versions
                    .iter()
                    .filter(|(_, v)| **v != Verdict::NotSupported)
                    .map(|(k, v)| format!("{k}={}", short(*v)))
                    .collect::<Vec<_>>()
                    .join(" "),
                subject: r.certificate.as_ref().map(|c| c.subject.clone()).unwrap_or_default(),
                reason: r.reason.clone().unwrap_or_default(),
            });
        }
        if r.heartbleed == Verdict::Vulnerable {
            self.progress.set_message(format!("{} vulnerable", self.counts.get("vulnerable").copied().unwrap_or(0)));
        }
        self.progress.inc(1);
        Ok(())
    }

    /// Reports a target that could not be tested, in every output and in the counts.
    pub fn add_untested(&mut self, t: &UntestedTarget) -> Result<()> {
        if let Some(out) = self.json.as_mut() {
            serde_json::to_writer(&mut *out, t)?;
            out.write_all(b"\n")?;
            out.flush()?;
        }
        if let Some(w) = self.csv.as_mut() {
            w.write_record(t.csv_row())?;
            w.flush()?;
        }
        *self.counts.entry(t.heartbleed.as_str()).or_default() += 1;
        self.unresolved += 1;
        if self.rows.len() < MAX_TABLE_ROWS {
            let name = t.host.clone().unwrap_or_default();
            let port = if t.transport == "udp" { format!("udp/{}", t.port) } else { t.port.to_string() };
            self.rows.push(SummaryRow {
                endpoint: format!("{name}:{port}"),
                verdict: t.heartbleed,
                versions: String::new(),
                subject: String::new(),
                reason: format!("{}: {}", t.status, t.reason.as_deref().unwrap_or_default()),
            });
        }
        self.progress.inc(1);
        Ok(())
    }

    /// Endpoints and targets without a conclusive verdict (inconclusive, unreachable, unresolved).
    pub fn untested(&self) -> u64 {
        self.counts.get(Verdict::Inconclusive.as_str()).copied().unwrap_or(0)
    }

    pub fn finish(&mut self) -> Result<()> {
        self.progress.finish_and_clear();
        if let Some(out) = self.json.as_mut() {
            out.flush()?;
        }
        if let Some(w) = self.csv.as_mut() {
            w.flush()?;
        }
        Ok(())
    }

    pub fn vulnerable(&self) -> u64 {
        self.counts.get("vulnerable").copied().unwrap_or(0)
    }

    /// The human summary: a table of endpoints, most urgent first, and totals.
    pub fn print_summary(&mut self, out: &mut dyn Write) -> io::Result<()> {
        self.rows.sort_by_key(|r| (rank(r.verdict), r.endpoint.clone()));
        let width = self.rows.iter().map(|r| r.endpoint.len()).max().unwrap_or(8).max(8);
        writeln!(out, "{:<width$}  {:<14}  {:<44}  CERTIFICATE / REASON", "ENDPOINT", "HEARTBLEED", "VERSIONS")?;
        for r in &self.rows {
            let tail = if r.verdict == Verdict::Inconclusive || r.subject.is_empty() { &r.reason } else { &r.subject };
            writeln!(out, "{:<width$}  {:<14}  {:<44}  {}", r.endpoint, r.verdict.as_str(), r.versions, printable(tail))?;
        }
        let total: u64 = self.counts.values().sum();
        let parts: Vec<String> = self.counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
        let mut notes = Vec::new();
        if self.unreachable > 0 {
            notes.push(format!("{} unreachable, not listed", self.unreachable));
        }
        if self.unresolved > 0 {
            notes.push(format!("{} {} not resolve", self.unresolved, if self.unresolved == 1 { "name did" } else { "names did" }));
        }
        let notes = if notes.is_empty() { String::new() } else { format!(" ({})", notes.join("; ")) };
        writeln!(out, "\n{total} endpoints: {}{notes}", parts.join(", "))
    }
}

fn rank(v: Verdict) -> u8 {
    match v {
        Verdict::Vulnerable => 0,
        Verdict::Inconclusive => 1,
        Verdict::NotVulnerable => 2,
        Verdict::NoHeartbeat => 3,
        Verdict::NotApplicable => 4,
        Verdict::NotSupported => 5,
    }
}

fn short(v: Verdict) -> &'static str {
    match v {
        Verdict::Vulnerable => "VULN",
        Verdict::NotVulnerable => "ok",
        Verdict::NoHeartbeat => "no-hb",
        Verdict::NotApplicable => "n/a",
        Verdict::NotSupported => "-",
        Verdict::Inconclusive => "?",
    }
}
