//! `bleedwatch revocation check`: CRL and OCSP checks of exposed certificates. The issuer that
//! verifies an answer is the next certificate on a chain from the exposed certificate (its DER,
//! kept by the inventory) to a trust anchor (`--ca-file`, else the system roots), built from the
//! certificates given, known to the inventory, or fetched from the CA-issuers URL.

use std::collections::BTreeSet;
use std::io::{self, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bleedwatch_revocation::{
    certificates_from_pem_or_der, check_certificate, resolve_issuer, CertificateRef, CheckOptions, CrlSource, HttpOptions,
    RevocationError, TrustAnchors, TrustedIssuer,
};
use bleedwatch_assess::is_expired;
use bleedwatch_store::{CertificateRecord, RevocationInput, Store};
use clap::{Args, Subcommand};
use serde::Serialize;

use crate::args::{parse_duration, DbArgs, JsonArgs};
use crate::clock::now_ms;
use crate::output::{open_output, short_hash, write_json_line, write_table};

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
    /// Trust anchors for a private PKI (PEM bundle or DER) instead of the system roots: answers
    /// count only when signed by an issuer whose chain ends at one of them.
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Issuer and intermediate certificates (PEM bundle or DER), when the inventory and the
    /// CA-issuers URL lack them; used only on a chain that reaches a trust anchor.
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
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub timeout: Duration,
    #[command(flatten)]
    pub output: JsonArgs,
}

/// `bleedwatch revocation check`.
pub async fn run(command: RevocationCommand) -> Result<u8> {
    match command {
        RevocationCommand::Check(args) => run_check(args).await,
    }
}

#[derive(Serialize)]
struct CheckLine<'a> {
    #[serde(flatten)]
    check: &'a RevocationInput,
    subject: &'a str,
}

pub async fn run_check(args: RevocationCheckArgs) -> Result<u8> {
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
    let anchors = match &args.ca_file {
        Some(path) => {
            let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            TrustAnchors::from_pem_or_der(&bytes, &path.display().to_string())?
        }
        None => TrustAnchors::system(),
    };
    tracing::debug!(anchors = anchors.len(), origin = anchors.origin(), "trust anchors");
    let http = HttpOptions { timeout: args.timeout, ..HttpOptions::default() };
    let options = CheckOptions {
        crl_sources: (!args.crl.is_empty()).then(|| args.crl.iter().map(|s| CrlSource::parse(s)).collect()),
        ocsp_urls: (!args.ocsp.is_empty()).then(|| args.ocsp.clone()),
        use_crl: !args.no_crl,
        use_ocsp: !args.no_ocsp,
        http: http.clone(),
    };
    let mut json = args.output.json.as_deref().map(open_output).transpose()?;
    let mut rows = Vec::new();
    let mut revoked = 0;
    let mut expired = 0;
    let now_ms = now_ms();
    for (summary, reference) in &targets {
        // An expired certificate counts as retired (see `exposed-cert-expired`), and CAs drop
        // expired certificates from their CRLs: checked only when named.
        if args.certs.is_empty() && is_expired(summary.not_after_unix, now_ms) {
            rows.push(vec![
                short_hash(&reference.cert_sha256),
                summary.subject.clone(),
                "-".into(),
                "expired".into(),
                format!("expired {}: retired, not checked", summary.not_after),
            ]);
            expired += 1;
            continue;
        }
        let issuer = find_issuer(&store, reference, &issuers, &anchors, &http).await?;
        let outcomes = check_certificate(reference, &issuer, &options).await;
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
                unknown_reason: outcome.unknown_reason.map(|why| why.as_str().to_owned()),
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
                match &check.unknown_reason {
                    Some(why) => format!("{} ({why})", check.result),
                    None => check.result.clone(),
                },
                check.detail.clone(),
            ]);
        }
    }
    if let Some(mut out) = json {
        out.flush()?;
    } else {
        let mut out = io::stdout().lock();
        write_table(&mut out, &["CERT SHA-256", "SUBJECT", "SOURCE", "RESULT", "DETAIL"], &rows)?;
        let skipped = if expired > 0 { format!(" ({expired} expired, not checked)") } else { String::new() };
        writeln!(out, "\n{} certificates checked{skipped}, {revoked} revocations found", targets.len() - expired)?;
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

/// The certificate's verified issuer: a chain from its DER (kept by the inventory) to a trust
/// anchor through the certificates given with --issuer, those the inventory knows under the
/// names on the way, and (failing those) what the CA-issuers URL serves. The issuer found is
/// kept in the inventory. Why there is none is the `unknown` every check then records.
async fn find_issuer(
    store: &Store,
    cert: &CertificateRef,
    given: &[Vec<u8>],
    anchors: &TrustAnchors,
    http: &HttpOptions,
) -> Result<Result<TrustedIssuer, RevocationError>> {
    let Some(leaf) = store.certificate(&cert.cert_sha256).await?.der else {
        return Ok(Err(RevocationError::Untrusted(
            "the inventory has no DER of this certificate (recorded by an older bleedwatch), so its chain cannot be verified".to_owned(),
        )));
    };
    let mut candidates = given.to_vec();
    // Two levels up by name is as deep as servers' chains go in practice; names only find
    // candidates, the chain check decides.
    let mut wanted = vec![cert.issuer.clone()];
    for _ in 0..2 {
        let mut next = Vec::new();
        for subject in wanted {
            for known in store.certificates_with_der_by_subject(&subject).await? {
                if let Some(der) = known.der {
                    if !candidates.contains(&der) {
                        candidates.push(der);
                    }
                    if known.summary.issuer != subject {
                        next.push(known.summary.issuer);
                    }
                }
            }
        }
        wanted = next;
    }
    let issuer = resolve_issuer(cert, &leaf, &candidates, anchors, http).await;
    if let Ok(issuer) = &issuer {
        remember_certificate(store, issuer.der()).await?;
        tracing::debug!(cert = %cert.cert_sha256, path = issuer.path(), "issuer verified");
    }
    Ok(issuer)
}

async fn remember_certificate(store: &Store, der: &[u8]) -> Result<()> {
    let summary = bleedwatch_x509::summarize(der).context("issuer certificate")?;
    let record: CertificateRecord = serde_json::from_value(serde_json::to_value(&summary)?)?;
    store.store_certificate(&record, Some(der)).await?;
    Ok(())
}
