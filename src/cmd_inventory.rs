//! The inventory commands: `status` (the response funnel), `endpoints`, `certs`, `alerts`,
//! `assets import`, `revocation check`, `expect` (pin a key), `attackers` (Heartbleed attempts by
//! source), `clients` (client-test history) and the target selection of `rescan`,
//! plus [`persist`], which `scan` calls to record each result. The work is done by the
//! `bleedwatch-store`, `bleedwatch-assess` and `bleedwatch-revocation` crates; this file parses
//! arguments and writes tables, JSON lines (`--json FILE`, `-` for standard output) and CSV
//! (`--csv FILE`, formula cells neutralised).

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use bleedwatch_revocation::{
    certificates_from_pem_or_der, check_certificate, fetch_issuer, select_issuer, CertificateRef, CheckOptions, CrlSource,
    HttpOptions,
};
use bleedwatch_store::assess::State;
use bleedwatch_store::views::{
    endpoint_csv_row, funnel, neutralize_csv_cell, printable, rfc3339_ms, state_totals, CertificateView, EndpointView,
    ENDPOINT_CSV_HEADER,
};
use bleedwatch_store::{
    parse_asset_csv, parse_masscan_json, parse_nmap_xml, AlertFilter, AttackFilter, CertificateRecord, ClientTestFilter,
    RecordOutcome, RevocationInput, RunId, Store, CLIENT_VERDICTS,
};
use clap::{Args, Subcommand, ValueEnum};
use serde::Serialize;

/// Where the inventory lives.
#[derive(Args, Debug, Clone, Default)]
pub struct DbArgs {
    /// Inventory database: a file path, sqlite://PATH or postgres://USER@HOST/DB
    /// [default: $XDG_DATA_HOME/bleedwatch/inventory.db, else ~/.local/share/bleedwatch/inventory.db]
    #[arg(long, value_name = "URL")]
    pub db: Option<String>,
}

impl DbArgs {
    fn location(&self) -> Result<String> {
        Ok(match &self.db {
            Some(db) => db.clone(),
            None => bleedwatch_store::default_location()?.display().to_string(),
        })
    }

    /// Opens (creating and migrating if needed) the inventory: for commands that record.
    pub async fn open(&self) -> Result<Store> {
        let location = self.location()?;
        Store::open(&location).await.with_context(|| format!("opening the inventory {}", redact_password(&location)))
    }

    /// Opens an inventory that exists, creating nothing: for commands that read it (and for those
    /// that only update what it holds). A SQLite file that is not there is "no inventory at …".
    pub async fn open_existing(&self) -> Result<Store> {
        let location = self.location()?;
        match Store::open_existing(&location).await {
            Err(error @ bleedwatch_store::StoreError::NoInventory(_)) => Err(error.into()),
            other => other.with_context(|| format!("opening the inventory {}", redact_password(&location))),
        }
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db` for messages.
fn redact_password(location: &str) -> String {
    let Some((scheme, rest)) = location.split_once("://") else { return location.to_owned() };
    let Some((credentials, host)) = rest.split_once('@') else { return location.to_owned() };
    match credentials.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => location.to_owned(),
    }
}

/// Records one scan result (a JSON line of `scan`) in the run; called by `scan` for every result.
/// A result the run already holds (a resumed scan testing an endpoint again) is kept once.
pub async fn persist(store: &Store, run: RunId, result_json: &serde_json::Value) -> Result<RecordOutcome> {
    persist_for_target(store, run, result_json, None).await
}

/// Like [`persist`], and marks the planned `target` (`scan --resume` bookkeeping) done in the same
/// transaction.
pub async fn persist_for_target(
    store: &Store,
    run: RunId,
    result_json: &serde_json::Value,
    target: Option<&str>,
) -> Result<RecordOutcome> {
    store.record(run, result_json, target).await.context("recording the result in the inventory")
}

/// What `bleedwatch rescan` takes besides the scan options.
#[derive(Args, Debug, Clone)]
pub struct RescanArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Also re-test endpoints whose last observation is older than this (e.g. 7d, 12h).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub stale_after: Option<Duration>,
    /// Also re-test endpoints still in the response (fixed, re-keyed or revoked, not notify-ready):
    /// a new scan is how re-keying is seen.
    #[arg(long)]
    pub in_progress: bool,
    /// Print the targets and why, without scanning.
    #[arg(long)]
    pub dry_run: bool,
}

/// The rescan targets with their reasons, honouring `--in-progress`.
pub async fn rescan_selection(store: &Store, args: &RescanArgs) -> Result<Vec<bleedwatch_store::views::RescanTarget>> {
    let stale_ms = args.stale_after.map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    Ok(store.rescan_targets(now_ms(), stale_ms, args.in_progress).await?)
}

/// `rescan --dry-run`: the table of what would be tested.
pub async fn run_rescan_dry_run(args: &RescanArgs) -> Result<u8> {
    let store = args.db.open_existing().await?;
    let selection = rescan_selection(&store, args).await?;
    let mut out = io::stdout().lock();
    let rows: Vec<Vec<String>> = selection.iter().map(|t| vec![t.target.clone(), t.reason.clone()]).collect();
    write_table(&mut out, &["TARGET", "WHY"], &rows)?;
    writeln!(out, "\n{} targets", selection.len())?;
    Ok(0)
}

#[derive(Args, Debug, Clone)]
pub struct StatusArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Write the funnel as JSON lines to FILE (`-` for standard output) instead of the table.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// The states in funnel order, as table columns.
const FUNNEL_COLUMNS: [(State, &str); 7] = [
    (State::Vulnerable, "VULNERABLE"),
    (State::Fixed, "FIXED"),
    (State::Rekeyed, "RE-KEYED"),
    (State::Revoked, "REVOKED"),
    (State::NotifyReady, "NOTIFY-READY"),
    (State::NeverVulnerable, "NEVER-VULN"),
    (State::Unknown, "UNKNOWN"),
];

/// `bleedwatch status`: endpoints per state, per owner, internet-facing first. Exit code 1 when
/// an endpoint is vulnerable, as `scan`.
pub async fn run_status(args: StatusArgs) -> Result<u8> {
    let store = args.db.open_existing().await?;
    let assessed = store.assess_all(now_ms()).await?;
    let rows = funnel(&assessed);
    let totals = state_totals(&assessed);
    let vulnerable = totals.get(&State::Vulnerable).copied().unwrap_or(0);
    if let Some(path) = &args.json {
        let mut out = open_output(path)?;
        for row in &rows {
            write_json_line(&mut out, row)?;
        }
        out.flush()?;
        return Ok(u8::from(vulnerable > 0));
    }
    let open_alerts = store.alerts(&AlertFilter { unacknowledged_only: true, ..AlertFilter::default() }).await?.len();
    let mut header = vec!["OWNER", "INTERNET"];
    header.extend(FUNNEL_COLUMNS.iter().map(|(_, name)| *name));
    header.push("TOTAL");
    let mut table: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            let mut cells = vec![
                if row.owner.is_empty() { "(no owner)".to_owned() } else { row.owner.clone() },
                yes_no(row.internet_facing).to_owned(),
            ];
            cells.extend(FUNNEL_COLUMNS.iter().map(|(state, _)| row.counts.get(state).copied().unwrap_or(0).to_string()));
            cells.push(row.total.to_string());
            cells
        })
        .collect();
    let mut all = vec!["(all)".to_owned(), String::new()];
    all.extend(FUNNEL_COLUMNS.iter().map(|(state, _)| totals.get(state).copied().unwrap_or(0).to_string()));
    all.push(assessed.len().to_string());
    table.push(all);
    let attacked_while_vulnerable = assessed.iter().filter(|a| a.attacks.attacked_while_vulnerable()).count();
    let mut out = io::stdout().lock();
    write_table(&mut out, &header, &table)?;
    writeln!(
        out,
        "\n{} endpoints, {vulnerable} vulnerable, {attacked_while_vulnerable} attacked while vulnerable, {open_alerts} open alerts",
        assessed.len()
    )?;
    Ok(u8::from(vulnerable > 0))
}

#[derive(Args, Debug, Clone)]
pub struct EndpointsArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Only endpoints in these states (vulnerable, fixed, re-keyed, revoked, notify-ready,
    /// never-vulnerable, unknown).
    #[arg(long, value_delimiter = ',', value_parser = parse_state)]
    pub state: Vec<State>,
    /// Only endpoints of this owner (as in the asset list).
    #[arg(long)]
    pub owner: Option<String>,
    /// Only endpoints carrying this flag (reissued-same-key, exposed-key-shared,
    /// exposed-cert-valid-until, exposed-key-returned, unexpected-certificate, exposed-key-unknown,
    /// attacked: a capture imported with `pcap --db` shows an attack on it, attacked-while-vulnerable:
    /// one that succeeded or came while it was vulnerable).
    #[arg(long)]
    pub flag: Option<String>,
    /// Only internet-facing endpoints.
    #[arg(long)]
    pub internet_facing: bool,
    /// Only endpoints at this address.
    #[arg(long)]
    pub address: Option<String>,
    /// Write one JSON object per endpoint to FILE (`-` for standard output).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write CSV to FILE (`-` for standard output).
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
}

fn parse_state(text: &str) -> std::result::Result<State, String> {
    State::parse(text).ok_or_else(|| {
        let names: Vec<&str> = State::ALL.iter().map(|s| s.as_str()).collect();
        format!("unknown state {text:?} (use {})", names.join(", "))
    })
}

/// `bleedwatch endpoints`: every endpoint with its state, flags and exposure window.
pub async fn run_endpoints(args: EndpointsArgs) -> Result<u8> {
    let store = args.db.open_existing().await?;
    let views = endpoint_views(&store, &args).await?;
    write_endpoint_views(&views, &args, &mut io::stdout().lock())?;
    Ok(0)
}

/// The endpoints `args` selects, most urgent first (funnel order, then attacked while vulnerable,
/// then internet-facing, then address).
pub async fn endpoint_views(store: &Store, args: &EndpointsArgs) -> Result<Vec<EndpointView>> {
    let mut views: Vec<EndpointView> = store
        .assess_all(now_ms())
        .await?
        .iter()
        .map(EndpointView::from)
        .filter(|v| args.state.is_empty() || args.state.contains(&v.state))
        .filter(|v| args.owner.as_ref().is_none_or(|owner| v.owner == *owner))
        .filter(|v| args.flag.as_ref().is_none_or(|flag| v.has_flag(flag)))
        .filter(|v| !args.internet_facing || v.internet_facing)
        .filter(|v| args.address.as_ref().is_none_or(|address| v.address == *address))
        .collect();
    views.sort_by_key(|v| (v.state, !v.attacked_while_vulnerable, !v.internet_facing, v.address.clone(), v.port));
    Ok(views)
}

fn write_endpoint_views(views: &[EndpointView], args: &EndpointsArgs, terminal: &mut dyn Write) -> Result<()> {
    let mut wrote_file = false;
    if let Some(path) = &args.json {
        let mut out = open_output(path)?;
        for view in views {
            write_json_line(&mut out, view)?;
        }
        out.flush()?;
        wrote_file = true;
    }
    if let Some(path) = &args.csv {
        let mut csv = csv::Writer::from_writer(open_output(path)?);
        csv.write_record(ENDPOINT_CSV_HEADER)?;
        for view in views {
            csv.write_record(endpoint_csv_row(view))?;
        }
        csv.flush()?;
        wrote_file = true;
    }
    if wrote_file {
        return Ok(());
    }
    let rows: Vec<Vec<String>> = views
        .iter()
        .map(|v| {
            vec![
                v.label(),
                v.state.as_str().to_owned(),
                v.owner.clone(),
                v.exposure.first_vulnerable.clone().unwrap_or_default(),
                v.exposure.first_fixed.clone().unwrap_or_default(),
                v.last_observed.clone().unwrap_or_default(),
                v.flag_words().join(" "),
            ]
        })
        .collect();
    write_table(terminal, &["ENDPOINT", "STATE", "OWNER", "FIRST VULNERABLE", "FIRST FIXED", "LAST SEEN", "FLAGS"], &rows)?;
    writeln!(terminal, "\n{} endpoints", views.len())?;
    Ok(())
}

#[derive(Args, Debug, Clone)]
pub struct CertsArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Only certificates whose key was exposed.
    #[arg(long)]
    pub exposed: bool,
    /// Only certificates no check has found revoked.
    #[arg(long)]
    pub unrevoked: bool,
    /// Write one JSON object per certificate to FILE (`-` for standard output).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write CSV to FILE (`-` for standard output).
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
}

const CERT_CSV_HEADER: &[&str] = &[
    "cert_sha256", "spki_sha256", "subject", "issuer", "serial", "sans", "not_after", "exposed", "revoked", "crl", "ocsp",
    "last_checked", "endpoints",
];

fn cert_csv_row(view: &CertificateView) -> Vec<String> {
    [
        view.cert_sha256.clone(),
        view.spki_sha256.clone(),
        view.subject.clone(),
        view.issuer.clone(),
        view.serial.clone(),
        view.sans.join(" "),
        view.not_after.clone(),
        yes_no(view.exposed).to_owned(),
        yes_no(view.revoked).to_owned(),
        view.revocation.get("crl").cloned().unwrap_or_default(),
        view.revocation.get("ocsp").cloned().unwrap_or_default(),
        view.last_checked.clone().unwrap_or_default(),
        view.endpoints.join(" "),
    ]
    .iter()
    .map(|cell| neutralize_csv_cell(cell))
    .collect()
}

/// `bleedwatch certs`: certificates seen, with exposure and revocation status.
pub async fn run_certs(args: CertsArgs) -> Result<u8> {
    let store = args.db.open_existing().await?;
    let views: Vec<CertificateView> = store
        .certificate_views()
        .await?
        .into_iter()
        .filter(|v| !args.exposed || v.exposed)
        .filter(|v| !args.unrevoked || !v.revoked)
        .collect();
    let mut wrote_file = false;
    if let Some(path) = &args.json {
        let mut out = open_output(path)?;
        for view in &views {
            write_json_line(&mut out, view)?;
        }
        out.flush()?;
        wrote_file = true;
    }
    if let Some(path) = &args.csv {
        let mut csv = csv::Writer::from_writer(open_output(path)?);
        csv.write_record(CERT_CSV_HEADER)?;
        for view in &views {
            csv.write_record(cert_csv_row(view))?;
        }
        csv.flush()?;
        wrote_file = true;
    }
    if !wrote_file {
        let rows: Vec<Vec<String>> = views
            .iter()
            .map(|v| {
                let revocation: Vec<String> = v.revocation.iter().map(|(method, result)| format!("{method}={result}")).collect();
                vec![
                    short_hash(&v.cert_sha256),
                    v.subject.clone(),
                    v.not_after.clone(),
                    yes_no(v.exposed).to_owned(),
                    if revocation.is_empty() { "-".to_owned() } else { revocation.join(" ") },
                    v.endpoints.len().to_string(),
                ]
            })
            .collect();
        let mut out = io::stdout().lock();
        write_table(&mut out, &["CERT SHA-256", "SUBJECT", "NOT AFTER", "EXPOSED", "REVOCATION", "ENDPOINTS"], &rows)?;
        writeln!(out, "\n{} certificates, {} with an exposed key", views.len(), views.iter().filter(|v| v.exposed).count())?;
    }
    Ok(0)
}

#[derive(Args, Debug, Clone)]
pub struct AlertsArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Only this kind (exposed-key-returned, unexpected-certificate, regressed).
    #[arg(long)]
    pub kind: Option<String>,
    /// Only alerts not yet acknowledged.
    #[arg(long)]
    pub open: bool,
    /// Acknowledge these alerts (by id) instead of listing.
    #[arg(long, value_delimiter = ',', value_name = "ID")]
    pub ack: Vec<i64>,
    /// Write one JSON object per alert to FILE (`-` for standard output).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// `bleedwatch alerts`: watch alerts (a stolen key back, an unexpected certificate, a regression).
/// Exit code 1 when open alerts are listed.
pub async fn run_alerts(args: AlertsArgs) -> Result<u8> {
    let store = args.db.open_existing().await?;
    if !args.ack.is_empty() {
        for id in &args.ack {
            if !store.acknowledge_alert(*id).await? {
                bail!("alert {id} does not exist or is already acknowledged");
            }
        }
        println!("acknowledged {} alerts", args.ack.len());
        return Ok(0);
    }
    if let Some(kind) = &args.kind {
        if bleedwatch_store::assess::AlertKind::parse(kind).is_none() {
            bail!("--kind: unknown alert kind {kind:?} (use exposed-key-returned, unexpected-certificate, regressed)");
        }
    }
    // Bring alerts up to date with the whole inventory first.
    store.assess_all(now_ms()).await?;
    let filter = AlertFilter { kind: args.kind.clone(), unacknowledged_only: args.open, ..AlertFilter::default() };
    let alerts = store.alerts(&filter).await?;
    if let Some(path) = &args.json {
        let mut out = open_output(path)?;
        for alert in &alerts {
            write_json_line(&mut out, alert)?;
        }
        out.flush()?;
    } else {
        let rows: Vec<Vec<String>> = alerts
            .iter()
            .map(|a| {
                vec![
                    a.id.to_string(),
                    rfc3339_ms(a.raised_at_ms),
                    a.endpoint.clone(),
                    a.kind.clone(),
                    a.spki_sha256.as_deref().map(short_hash).unwrap_or_default(),
                    if a.acknowledged_at_ms.is_some() { "ack".to_owned() } else { "OPEN".to_owned() },
                    a.detail.clone(),
                ]
            })
            .collect();
        let mut out = io::stdout().lock();
        write_table(&mut out, &["ID", "RAISED", "ENDPOINT", "KIND", "KEY", "STATE", "DETAIL"], &rows)?;
        writeln!(out, "\n{} alerts", alerts.len())?;
    }
    Ok(u8::from(alerts.iter().any(|a| a.acknowledged_at_ms.is_none())))
}

#[derive(Subcommand, Debug, Clone)]
pub enum AssetsCommand {
    /// Import an asset list (CSV: host, owner, criticality, internet-facing, notes) or targets
    /// (nmap -oX, masscan -oJ/-oD).
    Import(AssetsImportArgs),
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum ImportFormat {
    Csv,
    Nmap,
    Masscan,
}

#[derive(Args, Debug, Clone)]
pub struct AssetsImportArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// File format [default: from the extension: .csv, .xml (nmap), .json (masscan)].
    #[arg(long, value_enum)]
    pub format: Option<ImportFormat>,
    /// The file to import (`-` for standard input, with --format).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

fn import_format(args: &AssetsImportArgs) -> Result<ImportFormat> {
    if let Some(format) = args.format {
        return Ok(format);
    }
    let extension = args.file.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    match extension.as_deref() {
        Some("csv") => Ok(ImportFormat::Csv),
        Some("xml") => Ok(ImportFormat::Nmap),
        Some("json" | "jsonl" | "ndjson") => Ok(ImportFormat::Masscan),
        _ => bail!("{}: cannot tell the format from the name; give --format csv|nmap|masscan", args.file.display()),
    }
}

fn open_input(path: &Path) -> Result<Box<dyn BufRead>> {
    if path.as_os_str() == "-" {
        Ok(Box::new(BufReader::new(io::stdin())))
    } else {
        let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        Ok(Box::new(BufReader::new(file)))
    }
}

/// `bleedwatch assets import FILE`.
pub async fn run_assets(command: AssetsCommand) -> Result<u8> {
    match command {
        AssetsCommand::Import(args) => run_assets_import(args).await,
    }
}

pub async fn run_assets_import(args: AssetsImportArgs) -> Result<u8> {
    let format = import_format(&args)?;
    let origin = args.file.display().to_string();
    let mut input = open_input(&args.file)?;
    let store = args.db.open().await?;
    let summary = match format {
        ImportFormat::Csv => store.import_assets(&parse_asset_csv(input, &origin)?, "csv").await?,
        ImportFormat::Nmap => store.import_targets(&parse_nmap_xml(input, &origin)?, "nmap").await?,
        ImportFormat::Masscan => {
            let mut text = String::new();
            input.read_to_string(&mut text).with_context(|| format!("reading {origin}"))?;
            store.import_targets(&parse_masscan_json(&text, &origin)?, "masscan").await?
        }
    };
    match format {
        ImportFormat::Csv => {
            println!("{} assets imported; {} endpoints linked to an asset", summary.assets, summary.linked_endpoints)
        }
        ImportFormat::Nmap | ImportFormat::Masscan => {
            println!("{} new targets (bleedwatch rescan tests them)", summary.new_targets)
        }
    }
    Ok(0)
}

#[derive(Subcommand, Debug, Clone)]
pub enum RevocationCommand {
    /// Check exposed certificates against their CRLs and OCSP responders and record the results.
    Check(RevocationCheckArgs),
}

#[derive(Args, Debug, Clone)]
pub struct RevocationCheckArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Check these certificates (SHA-256) [default: every exposed certificate not yet found revoked].
    #[arg(long = "cert", value_name = "SHA256")]
    pub certs: Vec<String>,
    /// Issuer certificates (PEM bundle or DER), when the inventory and the CA-issuers URL lack them.
    #[arg(long, value_name = "FILE")]
    pub issuer: Vec<PathBuf>,
    /// Use this CRL (http:// URL or file) instead of the certificates' distribution points.
    #[arg(long, value_name = "URL|FILE")]
    pub crl: Vec<String>,
    /// Ask this OCSP responder instead of the certificates' own.
    #[arg(long, value_name = "URL")]
    pub ocsp: Vec<String>,
    #[arg(long)]
    pub no_crl: bool,
    #[arg(long)]
    pub no_ocsp: bool,
    /// Limit for each HTTP request.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Write each check as a JSON line to FILE (`-` for standard output).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// `bleedwatch revocation check`.
pub async fn run_revocation(command: RevocationCommand) -> Result<u8> {
    match command {
        RevocationCommand::Check(args) => run_revocation_check(args).await,
    }
}

#[derive(Serialize)]
struct CheckLine<'a> {
    #[serde(flatten)]
    check: &'a RevocationInput,
    subject: &'a str,
}

pub async fn run_revocation_check(args: RevocationCheckArgs) -> Result<u8> {
    let store = args.db.open_existing().await?;
    let targets = revocation_targets(&store, &args.certs).await?;
    let mut issuers = Vec::new();
    for path in &args.issuer {
        let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let found = certificates_from_pem_or_der(&bytes);
        if found.is_empty() {
            bail!("{}: no certificate in it", path.display());
        }
        issuers.extend(found);
    }
    let http = HttpOptions { timeout: args.timeout, ..HttpOptions::default() };
    let options = CheckOptions {
        crl_sources: (!args.crl.is_empty()).then(|| args.crl.iter().map(|s| CrlSource::parse(s)).collect()),
        ocsp_urls: (!args.ocsp.is_empty()).then(|| args.ocsp.clone()),
        use_crl: !args.no_crl,
        use_ocsp: !args.no_ocsp,
        http: http.clone(),
    };
    let mut json = args.json.as_deref().map(open_output).transpose()?;
    let mut rows = Vec::new();
    let mut revoked = 0;
    for (summary, reference) in &targets {
        let issuer = find_issuer(&store, reference, &issuers, &http).await?;
        let outcomes = check_certificate(reference, issuer.as_deref(), &options).await;
        if outcomes.is_empty() {
            rows.push(vec![
                short_hash(&reference.cert_sha256),
                summary.subject.clone(),
                "-".into(),
                "-".into(),
                "no CRL or OCSP location (give --crl or --ocsp)".into(),
            ]);
        }
        for outcome in outcomes {
            let check = RevocationInput {
                cert_sha256: outcome.cert_sha256.clone(),
                method: outcome.method.as_str().to_owned(),
                source: outcome.source.clone(),
                result: outcome.status.as_str().to_owned(),
                revoked_at_unix: outcome.revoked_at_unix,
                reason: outcome.reason.clone(),
                detail: outcome.detail.clone(),
                checked_at_ms: outcome.checked_at_ms,
            };
            store.record_revocation(&check).await?;
            revoked += usize::from(check.result == "revoked");
            if let Some(out) = json.as_mut() {
                write_json_line(out, &CheckLine { check: &check, subject: &summary.subject })?;
            }
            rows.push(vec![
                short_hash(&check.cert_sha256),
                summary.subject.clone(),
                format!("{} {}", check.method, check.source),
                check.result.clone(),
                check.detail.clone(),
            ]);
        }
    }
    if let Some(mut out) = json {
        out.flush()?;
    } else {
        let mut out = io::stdout().lock();
        write_table(&mut out, &["CERT SHA-256", "SUBJECT", "SOURCE", "RESULT", "DETAIL"], &rows)?;
        writeln!(out, "\n{} certificates checked, {revoked} revocations found", targets.len())?;
    }
    Ok(0)
}

/// The certificates to check: the ones named, else every exposed certificate not yet revoked.
async fn revocation_targets(store: &Store, named: &[String]) -> Result<Vec<(CertificateRecord, CertificateRef)>> {
    let hashes: BTreeSet<String> = if named.is_empty() {
        store
            .certificate_views()
            .await?
            .into_iter()
            .filter(|v| v.exposed && !v.revoked && !v.endpoints.is_empty())
            .map(|v| v.cert_sha256)
            .collect()
    } else {
        named.iter().map(|h| h.trim().to_ascii_lowercase()).collect()
    };
    let mut targets = Vec::new();
    for hash in hashes {
        let summary = store.certificate(&hash).await?.summary;
        let reference = CertificateRef {
            cert_sha256: summary.cert_sha256.clone(),
            serial: summary.serial.clone(),
            issuer: summary.issuer.clone(),
            crl_urls: summary.crl_urls.clone(),
            ocsp_urls: summary.ocsp_urls.clone(),
            ca_issuer_urls: summary.ca_issuer_urls.clone(),
        };
        targets.push((summary, reference));
    }
    Ok(targets)
}

/// The issuer certificate: given with --issuer, else known to the inventory, else fetched from the
/// certificate's CA-issuers URL (and then kept in the inventory).
async fn find_issuer(store: &Store, cert: &CertificateRef, given: &[Vec<u8>], http: &HttpOptions) -> Result<Option<Vec<u8>>> {
    if let Some(der) = select_issuer(cert, given) {
        remember_certificate(store, der).await?;
        return Ok(Some(der.to_vec()));
    }
    if let Some(known) = store.certificates_with_der_by_subject(&cert.issuer).await?.into_iter().find_map(|c| c.der) {
        return Ok(Some(known));
    }
    if cert.ca_issuer_urls.is_empty() {
        return Ok(None);
    }
    match fetch_issuer(cert, http).await {
        Ok(der) => {
            remember_certificate(store, &der).await?;
            Ok(Some(der))
        }
        Err(error) => {
            eprintln!("bleedwatch: {}: issuer certificate not fetched: {error}", short_hash(&cert.cert_sha256));
            Ok(None)
        }
    }
}

async fn remember_certificate(store: &Store, der: &[u8]) -> Result<()> {
    let summary = bleedwatch_x509::summarize(der).context("issuer certificate")?;
    let record: CertificateRecord = serde_json::from_value(serde_json::to_value(&summary)?)?;
    store.store_certificate(&record, Some(der)).await?;
    Ok(())
}

#[derive(Args, Debug, Clone)]
pub struct ExpectArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// The endpoint: ADDRESS:PORT ([v6]:PORT), or its id.
    #[arg(value_name = "ENDPOINT")]
    pub endpoint: String,
    /// The key it must present (SPKI SHA-256, as in `endpoints`); any other raises an alert.
    #[arg(value_name = "SPKI_SHA256")]
    pub spki_sha256: String,
    /// Why (kept with the pin).
    #[arg(long, default_value = "")]
    pub note: String,
    /// Remove the pin instead.
    #[arg(long)]
    pub remove: bool,
}

/// `bleedwatch expect ENDPOINT SPKI`: pin the key an endpoint must present (watch alerts on any other).
pub async fn run_expect(args: ExpectArgs) -> Result<u8> {
    let spki = args.spki_sha256.trim().to_ascii_lowercase();
    if spki.len() != 64 || !spki.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("{:?} is not a SHA-256 in hex (64 digits)", args.spki_sha256);
    }
    let store = args.db.open_existing().await?;
    let endpoints = resolve_endpoints(&store, &args.endpoint).await?;
    for endpoint in &endpoints {
        if args.remove {
            store.unpin_key(endpoint.id, &spki).await?;
            println!("{}: no longer pinned to {}", endpoint.label(), short_hash(&spki));
        } else {
            store.pin_key(endpoint.id, &spki, &args.note).await?;
            println!("{}: expects key {}", endpoint.label(), short_hash(&spki));
        }
    }
    Ok(0)
}

/// `42`, `192.0.2.1:443` or `[2001:db8::1]:443` → the matching endpoints (every server name).
async fn resolve_endpoints(store: &Store, text: &str) -> Result<Vec<bleedwatch_store::EndpointRow>> {
    if let Ok(id) = text.parse::<i64>() {
        return Ok(vec![store.endpoint(id).await?]);
    }
    let address: std::net::SocketAddr =
        text.parse().with_context(|| format!("{text:?}: give ADDRESS:PORT ([v6]:PORT) or an endpoint id"))?;
    let found = store.find_endpoints(&address.ip().to_string(), Some(address.port())).await?;
    if found.is_empty() {
        bail!("no endpoint {text} in the inventory");
    }
    Ok(found)
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum AttackOrigin {
    Honeypot,
    Pcap,
}

impl AttackOrigin {
    fn as_str(self) -> &'static str {
        match self {
            AttackOrigin::Honeypot => bleedwatch_store::ORIGIN_HONEYPOT,
            AttackOrigin::Pcap => bleedwatch_store::ORIGIN_PCAP,
        }
    }
}

#[derive(Args, Debug, Clone)]
pub struct AttackersArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Only attempts the honeypot saw, or only those found in captures (`pcap --db`).
    #[arg(long, value_enum)]
    pub origin: Option<AttackOrigin>,
    /// Only attempts from this address.
    #[arg(long, value_name = "ADDRESS")]
    pub source: Option<String>,
    /// Only attempts since this time: RFC 3339 (2014-04-08T00:00:00Z) or a duration ago (7d, 12h).
    #[arg(long, value_name = "WHEN", value_parser = parse_since)]
    pub since: Option<i64>,
    /// List every attempt instead of one line per source address.
    #[arg(long)]
    pub attempts: bool,
    /// Write one JSON object per attacker (per attempt with --attempts) to FILE (`-` for standard
    /// output) instead of the table.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// `--since`: an RFC 3339 time, or a duration before now; Unix milliseconds.
fn parse_since(text: &str) -> std::result::Result<i64, String> {
    let time = match humantime::parse_rfc3339_weak(text) {
        Ok(time) => time,
        Err(_) => {
            let ago = humantime::parse_duration(text).map_err(|_| format!("{text:?}: give a time (2014-04-08T00:00:00Z) or a duration (7d)"))?;
            SystemTime::now().checked_sub(ago).ok_or_else(|| format!("{text:?} is too long ago"))?
        }
    };
    let since = time.duration_since(UNIX_EPOCH).map_err(|_| format!("{text:?} is before 1970"))?;
    i64::try_from(since.as_millis()).map_err(|_| format!("{text:?} is out of range"))
}

/// `bleedwatch attackers`: Heartbleed attempts (honeypot, captures) grouped by source. Exit code 1
/// when an attack listed succeeded (a captured server answered: memory may have leaked).
pub async fn run_attackers(args: AttackersArgs) -> Result<u8> {
    let store = args.db.open_existing().await?;
    let filter = AttackFilter {
        origin: args.origin.map(|o| o.as_str().to_owned()),
        source_address: args.source.clone(),
        since_ms: args.since,
        ..AttackFilter::default()
    };
    if args.attempts {
        let attacks = store.attacks(&filter).await?;
        if let Some(path) = &args.json {
            let mut out = open_output(path)?;
            for attack in &attacks {
                write_json_line(&mut out, attack)?;
            }
            out.flush()?;
        } else {
            let rows: Vec<Vec<String>> = attacks
                .iter()
                .map(|a| {
                    vec![
                        a.observed_at.clone(),
                        a.origin.clone(),
                        bleedwatch_store::endpoint_label(&a.source_address, a.source_port, &a.transport, ""),
                        bleedwatch_store::endpoint_label(&a.target_address, a.target_port, &a.transport, ""),
                        a.kind.clone(),
                        a.severity.clone(),
                        a.tls_version.clone().unwrap_or_default(),
                        a.endpoint_id.map(|id| format!("endpoint {id}")).or_else(|| a.file.clone()).unwrap_or_default(),
                    ]
                })
                .collect();
            let mut out = io::stdout().lock();
            write_table(&mut out, &["TIME", "ORIGIN", "SOURCE", "TARGET", "KIND", "SEVERITY", "TLS", "WHERE"], &rows)?;
            writeln!(out, "\n{} attempts, {} succeeded", attacks.len(), attacks.iter().filter(|a| a.succeeded).count())?;
        }
        return Ok(u8::from(attacks.iter().any(|a| a.succeeded)));
    }
    let attackers = store.attackers(&filter).await?;
    if let Some(path) = &args.json {
        let mut out = open_output(path)?;
        for attacker in &attackers {
            write_json_line(&mut out, attacker)?;
        }
        out.flush()?;
    } else {
        let rows: Vec<Vec<String>> = attackers
            .iter()
            .map(|a| {
                vec![
                    a.source_address.clone(),
                    a.attempts.to_string(),
                    a.over_reads.to_string(),
                    a.probes.to_string(),
                    a.successes.to_string(),
                    a.first_seen.clone(),
                    a.last_seen.clone(),
                    a.origins.join(","),
                    a.targets.join(" "),
                ]
            })
            .collect();
        let mut out = io::stdout().lock();
        write_table(
            &mut out,
            &["SOURCE", "ATTEMPTS", "OVER-READS", "PROBES", "SUCCESSES", "FIRST SEEN", "LAST SEEN", "ORIGIN", "TARGETS"],
            &rows,
        )?;
        let attempts: i64 = attackers.iter().map(|a| a.attempts).sum();
        writeln!(out, "\n{} attackers, {attempts} attempts", attackers.len())?;
    }
    Ok(u8::from(attackers.iter().any(|a| a.successes > 0)))
}

#[derive(Args, Debug, Clone)]
pub struct ClientsArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Only this client address.
    #[arg(long, value_name = "ADDRESS")]
    pub client: Option<String>,
    /// Only this verdict (vulnerable, not-vulnerable, no-heartbeat, inconclusive).
    #[arg(long, value_parser = parse_client_verdict)]
    pub verdict: Option<String>,
    /// Only the latest test of each client (address and service): where each client stands now.
    #[arg(long)]
    pub latest: bool,
    /// Only tests since this time: RFC 3339 or a duration ago (7d, 12h).
    #[arg(long, value_name = "WHEN", value_parser = parse_since)]
    pub since: Option<i64>,
    /// Write one JSON object per test to FILE (`-` for standard output) instead of the table.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

fn parse_client_verdict(text: &str) -> std::result::Result<String, String> {
    if CLIENT_VERDICTS.contains(&text) {
        Ok(text.to_owned())
    } else {
        Err(format!("unknown verdict {text:?} (use {})", CLIENT_VERDICTS.join(", ")))
    }
}

/// `bleedwatch clients`: the TLS clients `client-test` tested, newest first. Exit code 1 when a
/// listed test found a vulnerable client.
pub async fn run_clients(args: ClientsArgs) -> Result<u8> {
    let store = args.db.open_existing().await?;
    let filter = ClientTestFilter {
        client_address: args.client.as_deref().map(|c| c.parse::<std::net::IpAddr>().map(|ip| ip.to_string()).unwrap_or_else(|_| c.to_owned())),
        verdict: args.verdict.clone(),
        run: None,
        since_ms: args.since,
        latest_only: args.latest,
    };
    let tests = store.client_tests(&filter).await?;
    if let Some(path) = &args.json {
        let mut out = open_output(path)?;
        for test in &tests {
            write_json_line(&mut out, test)?;
        }
        out.flush()?;
    } else {
        let rows: Vec<Vec<String>> = tests
            .iter()
            .map(|t| {
                vec![
                    t.tested_at.clone(),
                    socket_label(&t.client_address, t.client_port),
                    t.service.clone(),
                    t.offered_version.clone().unwrap_or_else(|| "?".into()),
                    t.heartbeat_mode.clone().unwrap_or_else(|| "not offered".into()),
                    t.verdict.clone(),
                    t.leaked_bytes.map(|n| format!("{n} bytes leaked")).or_else(|| t.reason.clone()).unwrap_or_default(),
                ]
            })
            .collect();
        let mut out = io::stdout().lock();
        write_table(&mut out, &["TIME", "CLIENT", "SERVICE", "OFFERED", "HEARTBEAT", "VERDICT", "DETAIL"], &rows)?;
        let vulnerable = tests.iter().filter(|t| t.verdict == "vulnerable").count();
        writeln!(out, "\n{} client tests, {vulnerable} vulnerable", tests.len())?;
    }
    Ok(u8::from(tests.iter().any(|t| t.verdict == "vulnerable")))
}

// ---- output helpers ----

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)).unwrap_or(0)
}

/// `192.0.2.1:443`, `[2001:db8::1]:443`.
fn socket_label(address: &str, port: u16) -> String {
    if address.contains(':') {
        format!("[{address}]:{port}")
    } else {
        format!("{address}:{port}")
    }
}

fn yes_no(value: bool) -> &'static str {
    if value {
        "yes"
    } else {
        "no"
    }
}

fn short_hash(hash: &str) -> String {
    hash.chars().take(16).collect()
}

/// Opens `path` for writing; `-` is standard output.
fn open_output(path: &Path) -> Result<Box<dyn Write + Send>> {
    if path.as_os_str() == "-" {
        Ok(Box::new(BufWriter::new(io::stdout())))
    } else {
        let file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
        Ok(Box::new(BufWriter::new(file)))
    }
}

fn write_json_line<T: Serialize>(out: &mut dyn Write, value: &T) -> Result<()> {
    serde_json::to_writer(&mut *out, value)?;
    out.write_all(b"\n")?;
    Ok(())
}

/// A plain text table; cells from the network are made printable and long ones cut.
fn write_table(out: &mut dyn Write, header: &[&str], rows: &[Vec<String>]) -> io::Result<()> {
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

    #[test]
    fn passwords_are_not_printed() {
        assert_eq!(redact_password("postgres://bw:s3cret@db.example/inv"), "postgres://bw:***@db.example/inv");
        assert_eq!(redact_password("postgres://bw@db/inv"), "postgres://bw@db/inv");
        assert_eq!(redact_password("/var/lib/inv.db"), "/var/lib/inv.db");
    }

    #[test]
    fn import_format_from_extension() {
        let args = |file: &str, format| AssetsImportArgs { db: DbArgs::default(), format, file: file.into() };
        assert_eq!(import_format(&args("a.CSV", None)).unwrap(), ImportFormat::Csv);
        assert_eq!(import_format(&args("scan.xml", None)).unwrap(), ImportFormat::Nmap);
        assert_eq!(import_format(&args("m.json", None)).unwrap(), ImportFormat::Masscan);
        assert_eq!(import_format(&args("-", Some(ImportFormat::Csv))).unwrap(), ImportFormat::Csv);
        assert!(import_format(&args("list.txt", None)).is_err());
    }

    #[test]
    fn since_takes_a_time_or_a_duration() {
        assert_eq!(parse_since("2014-04-08T16:57:00Z").unwrap(), 1_396_976_220_000);
        let day_ago = parse_since("1d").unwrap();
        assert!((now_ms() - 86_400_000 - day_ago).abs() < 60_000, "{day_ago}");
        assert!(parse_since("last tuesday").unwrap_err().contains("duration"));
        assert!(parse_client_verdict("vulnerable").is_ok());
        assert!(parse_client_verdict("not-supported").unwrap_err().contains("no-heartbeat"));
    }

    #[test]
    fn states_parse_with_a_helpful_error() {
        assert_eq!(parse_state("re-keyed").unwrap(), State::Rekeyed);
        assert!(parse_state("done").unwrap_err().contains("notify-ready"));
    }

    fn result(address: &str, verdict: &str, cert: &str) -> serde_json::Value {
        serde_json::json!({
            "address": address, "port": 443, "transport": "tcp", "host": null, "service": "tls", "sni": null,
            "status": "success", "heartbleed": verdict, "reason": null, "versions": {"tls1.2": verdict},
            "certificate": {"subject": "CN==cmd|' /C calc'!A0", "issuer": "CN=ca", "serial": "01", "sans": [],
                "not_before": "2026-01-01T00:00:00Z", "not_after": "2099-01-01T00:00:00Z", "not_before_unix": 1767225600,
                "not_after_unix": 4_070_908_800_i64, "spki_sha256": format!("k{cert}"), "cert_sha256": cert, "key_type": "rsa",
                "key_bits": 2048, "signature_algorithm": "sha256WithRSAEncryption", "self_signed": false,
                "crl_urls": [], "ocsp_urls": [], "ca_issuer_urls": []},
            "chain": [], "details": [], "started_at": "2026-11-28T10:00:00.000Z", "duration_ms": 3
        })
    }

    /// `endpoints` JSON lines and CSV from a real (SQLite) inventory; CSV cells are neutralised.
    #[tokio::test]
    async fn endpoints_exports() {
        let dir = std::env::temp_dir().join(format!("bleedwatch-cmd-inventory-{}-{}", std::process::id(), now_ms()));
        std::fs::create_dir_all(&dir).unwrap();
        let db = DbArgs { db: Some(dir.join("inv.db").display().to_string()) };
        let store = db.open().await.unwrap();
        let run = store.start_run("scan", &[]).await.unwrap();
        persist(&store, run, &result("192.0.2.1", "vulnerable", "c1")).await.unwrap();
        persist(&store, run, &result("192.0.2.2", "not-vulnerable", "c2")).await.unwrap();
        let again = persist(&store, run, &result("192.0.2.1", "vulnerable", "c1")).await.unwrap();
        assert!(matches!(again, RecordOutcome::AlreadyRecorded { .. }));
        let csv_path = dir.join("endpoints.csv");
        let json_path = dir.join("endpoints.jsonl");
        let args = EndpointsArgs {
            db,
            state: vec![State::Vulnerable],
            owner: None,
            flag: None,
            internet_facing: false,
            address: None,
            json: Some(json_path.clone()),
            csv: Some(csv_path.clone()),
        };
        let views = endpoint_views(&store, &args).await.unwrap();
        assert_eq!(views.len(), 1);
        write_endpoint_views(&views, &args, &mut Vec::new()).unwrap();
        let json = std::fs::read_to_string(&json_path).unwrap();
        let line: serde_json::Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
        assert_eq!(line["address"], "192.0.2.1");
        assert_eq!(line["state"], "vulnerable");
        assert_eq!(line["spkis_seen"], serde_json::json!(["kc1"]));
        let csv = std::fs::read_to_string(&csv_path).unwrap();
        assert!(csv.starts_with("address,port,transport,"), "{csv}");
        assert!(csv.contains("192.0.2.1,443,tcp"), "{csv}");
        // A cert view through the CSV writer: the formula subject is neutralised.
        let certs = store.certificate_views().await.unwrap();
        let row = cert_csv_row(certs.iter().find(|c| c.cert_sha256 == "c1").unwrap());
        assert_eq!(row[2], "CN==cmd|' /C calc'!A0", "starts with C: left alone");
        let mut formula = certs[0].clone();
        formula.subject = "=cmd|' /C calc'!A0".into();
        assert_eq!(cert_csv_row(&formula)[2], "'=cmd|' /C calc'!A0");
        let select = RescanArgs { db: args.db.clone(), stale_after: None, in_progress: false, dry_run: true };
        let targets: Vec<String> = rescan_selection(&store, &select).await.unwrap().into_iter().map(|t| t.target).collect();
        assert_eq!(targets, ["192.0.2.1:443"]);
        store.close().await;
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
