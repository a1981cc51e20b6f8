//! `bleedwatch scan`: the command line's plan, run by the scan engine and recorded in the
//! inventory (or resumed from it).

use anyhow::Result;
use clap::Args;

use crate::args::DbArgs;
use crate::scanning::{run_plan, Inventory, ScanPlan};

#[derive(Args, Debug, Clone)]
pub struct ScanArgs {
    #[command(flatten)]
    pub plan: ScanPlan,
    #[command(flatten)]
    pub db: DbArgs,
    /// Do not record results in the inventory.
    #[arg(long, conflicts_with = "resume")]
    pub no_db: bool,
    /// Resume the last scan that did not finish (killed, crashed), with its own plan: targets it
    /// completed are skipped, nothing is recorded twice.
    #[arg(long)]
    pub resume: bool,
    /// Be one worker of the sweep NAME, shared through the inventory (PostgreSQL for many
    /// machines): the first worker creates it, the others join with the same plan; each scans its
    /// --shard K/N and a replaced worker continues where its shard stopped.
    #[arg(long, value_name = "NAME", conflicts_with_all = ["resume", "no_db"])]
    pub sweep: Option<String>,
}

pub async fn run(args: ScanArgs) -> Result<u8> {
    let inventory = if let Some(name) = args.sweep {
        Inventory::Sweep { db: args.db, name }
    } else if args.resume {
        Inventory::Resume(args.db)
    } else if args.no_db {
        Inventory::None
    } else {
        Inventory::Record(args.db)
    };
    run_plan(args.plan, inventory).await
}
