//! `bleedwatch status`: the response funnel, per owner.

use std::io::{self, Write};

use anyhow::Result;
use bleedwatch_store::assess::State;
use bleedwatch_store::views::{funnel, state_totals};
use bleedwatch_store::AlertFilter;
use clap::Args;

use crate::args::{DbArgs, JsonArgs};
use crate::clock::now_ms;
use crate::output::{write_json_lines, write_table, yes_no};

#[derive(Args, Debug, Clone)]
pub struct StatusArgs {
    #[command(flatten)]
    pub db: DbArgs,
    #[command(flatten)]
    pub output: JsonArgs,
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

/// `bleedwatch status`: endpoints per state, per owner, internet-facing first, then the products
/// `audit` found carrying a vulnerable OpenSSL. Exit code 1 when an endpoint is vulnerable (as
/// `scan`) or a product carries a vulnerable copy (as `audit`).
pub async fn run(args: StatusArgs) -> Result<u8> {
    let store = args.db.open_existing().await?;
    let assessed = store.assess_all(now_ms()).await?;
    let rows = funnel(&assessed);
    let totals = state_totals(&assessed);
    let vulnerable = totals.get(&State::Vulnerable).copied().unwrap_or(0);
    let products = store.products(&assessed).await?;
    let carrying: Vec<_> = products.iter().filter(|p| p.carries_vulnerable_openssl()).collect();
    let exit_code = u8::from(vulnerable > 0 || !carrying.is_empty());
    if let Some(path) = &args.output.json {
        write_json_lines(path, &rows)?;
        return Ok(exit_code);
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
    if !products.is_empty() {
        let copies: usize = carrying.iter().map(|p| p.count("vulnerable")).sum();
        let incomplete = products.iter().filter(|p| !p.complete).count();
        writeln!(
            out,
            "{} audited on disk, {} carry a vulnerable OpenSSL ({copies} vulnerable copies){}",
            products.len(),
            carrying.len(),
            if incomplete > 0 { format!(", {incomplete} audits incomplete") } else { String::new() }
        )?;
        for product in &carrying {
            writeln!(out, "  {}: {} vulnerable copies", product.asset, product.count("vulnerable"))?;
        }
    }
    let notices = store.notice_counts().await?;
    writeln!(
        out,
        "notices: {} sent, {} pending, {} uncertain, {} failed",
        notices.sent, notices.pending, notices.uncertain, notices.failed
    )?;
    if notices.uncertain > 0 {
        writeln!(out, "(uncertain: a killed notify run may have sent them; `notify --resend-uncertain` sends them again)")?;
    }
    Ok(exit_code)
}
