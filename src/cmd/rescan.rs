//! `bleedwatch rescan`: the inventory chooses the targets (not yet fixed, stale, or still in the
//! response), and the scan engine tests them with a plan built here, recording the results.

use std::io::{self, Write};
use std::time::Duration;

use anyhow::Result;
use bleedwatch_store::Store;
use clap::Args;

use crate::args::{parse_duration, DbArgs, JsonArgs, OutputArgs};
use crate::clock::now_ms;
use crate::output::write_table;
use crate::scanning::{run_plan, Inventory, ScanPlan};

/// What `bleedwatch rescan` selects, and where the new results go.
#[derive(Args, Debug, Clone)]
pub struct RescanArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Also re-test endpoints whose last observation is older than this (e.g. 7d, 12h).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub stale_after: Option<Duration>,
    /// Also re-test endpoints still in the response (fixed, re-keyed or revoked, not notify-ready):
    /// a new scan is how re-keying is seen.
    #[arg(long)]
    pub in_progress: bool,
    /// Print the targets and why, without scanning.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub output: JsonArgs,
}

/// The rescan targets with their reasons, honouring `--in-progress`.
pub async fn rescan_selection(store: &Store, args: &RescanArgs) -> Result<Vec<bleedwatch_store::views::RescanTarget>> {
    let stale_ms = args.stale_after.map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    Ok(store.rescan_targets(now_ms(), stale_ms, args.in_progress).await?)
}

/// `rescan --dry-run`: the table of what would be tested.
async fn run_dry_run(args: &RescanArgs) -> Result<u8> {
    let store = args.db.open_existing().await?;
    let selection = rescan_selection(&store, args).await?;
    let mut out = io::stdout().lock();
    let rows: Vec<Vec<String>> = selection.iter().map(|t| vec![t.target.clone(), t.reason.clone()]).collect();
    write_table(&mut out, &["TARGET", "WHY"], &rows)?;
    writeln!(out, "\n{} targets", selection.len())?;
    Ok(0)
}

pub async fn run(args: RescanArgs) -> Result<u8> {
    if args.dry_run {
        return run_dry_run(&args).await;
    }
    let store = args.db.open_existing().await?;
    let selection = rescan_selection(&store, &args).await?;
    store.close().await;
    tracing::debug!(targets = selection.len(), "rescan selection");
    for target in &selection {
        tracing::trace!(target = %target.target, why = %target.reason, "rescan target");
    }
    if selection.is_empty() {
        println!("nothing to rescan: every endpoint is fixed and fresh");
        return Ok(0);
    }
    let plan = ScanPlan {
        targets: selection.into_iter().map(|t| t.target).collect(),
        output: OutputArgs { json: args.output.json, csv: None },
        ..ScanPlan::default()
    };
    run_plan(plan, Inventory::Record(args.db)).await
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::test_support::{scan_result, scratch_dir};

    /// The vulnerable endpoint is chosen; the fixed one is not.
    #[tokio::test]
    async fn selection_is_what_is_not_fixed() {
        let dir = scratch_dir("rescan");
        let db = DbArgs::at(dir.join("inv.db").display().to_string());
        let store = db.open().await.unwrap();
        let run = store.start_run("scan", &[]).await.unwrap();
        store.record(run, &scan_result("192.0.2.1", "vulnerable", "CN=a", "1"), None).await.unwrap();
        store.record(run, &scan_result("192.0.2.2", "not-vulnerable", "CN=b", "2"), None).await.unwrap();
        let select = RescanArgs { db, stale_after: None, in_progress: false, dry_run: true, output: JsonArgs::default() };
        let targets: Vec<String> = rescan_selection(&store, &select).await.unwrap().into_iter().map(|t| t.target).collect();
        assert_eq!(targets, ["192.0.2.1:443"]);
        store.close().await;
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
