//! `bleedwatch certs`: certificates seen, with exposure and revocation status.

use std::io::{self, Write};

use anyhow::Result;
use bleedwatch_store::views::CertificateView;
use clap::Args;

use crate::args::{DbArgs, OutputArgs};
use crate::output::{neutralize_csv_cell, open_output, short_hash, write_json_lines, write_table, yes_no};

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
    #[command(flatten)]
    pub output: OutputArgs,
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
pub async fn run(args: CertsArgs) -> Result<u8> {
    let store = args.db.open_existing().await?;
    let views: Vec<CertificateView> = store
        .certificate_views()
        .await?
        .into_iter()
        .filter(|v| !args.exposed || v.exposed)
        .filter(|v| !args.unrevoked || !v.revoked)
        .collect();
    let mut wrote_file = false;
    if let Some(path) = &args.output.json {
        write_json_lines(path, &views)?;
        wrote_file = true;
    }
    if let Some(path) = &args.output.csv {
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::test_support::{scan_result, scratch_dir};

    /// Certificate rows from a real (SQLite) inventory; a formula subject is neutralised.
    #[tokio::test]
    async fn csv_rows_are_neutralised() {
        let dir = scratch_dir("certs");
        let store = DbArgs::at(dir.join("inv.db").display().to_string()).open().await.unwrap();
        let run = store.start_run("scan", &[]).await.unwrap();
        store.record(run, &scan_result("192.0.2.1", "vulnerable", "CN==cmd|' /C calc'!A0", "1"), None).await.unwrap();
        let certs = store.certificate_views().await.unwrap();
        let row = cert_csv_row(certs.iter().find(|c| c.cert_sha256 == "cert-1").unwrap());
        assert_eq!(row[2], "CN==cmd|' /C calc'!A0", "starts with C: left alone");
        let mut formula = certs[0].clone();
        formula.subject = "=cmd|' /C calc'!A0".into();
        assert_eq!(cert_csv_row(&formula)[2], "'=cmd|' /C calc'!A0");
        store.close().await;
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
