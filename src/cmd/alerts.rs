//! `bleedwatch alerts`: watch alerts, and acknowledging them.

use std::io::{self, Write};

use anyhow::{bail, Result};
use bleedwatch_store::views::rfc3339_ms;
use bleedwatch_store::AlertFilter;
use clap::Args;

use crate::args::{DbArgs, JsonArgs};
use crate::clock::now_ms;
use crate::output::{short_hash, write_json_lines, write_table};

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
    #[command(flatten)]
    pub output: JsonArgs,
}

/// `bleedwatch alerts`: watch alerts (a stolen key back, an unexpected certificate, a regression).
/// Exit code 1 when open alerts are listed.
pub async fn run(args: AlertsArgs) -> Result<u8> {
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
    if let Some(path) = &args.output.json {
        write_json_lines(path, &alerts)?;
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
