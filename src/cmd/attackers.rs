//! `bleedwatch attackers`: Heartbleed attempts (honeypot, captures) by source.

use std::io::{self, Write};

use anyhow::Result;
use bleedwatch_store::AttackFilter;
use clap::{Args, ValueEnum};

use crate::args::{DbArgs, JsonArgs};
use crate::output::{write_json_lines, write_table};

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
    #[arg(long, value_name = "WHEN", value_parser = crate::args::parse_since)]
    pub since: Option<i64>,
    /// List every attempt instead of one line per source address.
    #[arg(long)]
    pub attempts: bool,
    #[command(flatten)]
    pub output: JsonArgs,
}

/// `bleedwatch attackers`: Heartbleed attempts (honeypot, captures) grouped by source. Exit code 1
/// when an attack listed succeeded (a captured server answered: memory may have leaked).
pub async fn run(args: AttackersArgs) -> Result<u8> {
    let store = args.db.open_existing().await?;
    let filter = AttackFilter {
        origin: args.origin.map(|o| o.as_str().to_owned()),
        source_address: args.source.clone(),
        since_ms: args.since,
        ..AttackFilter::default()
    };
    if args.attempts {
        let attacks = store.attacks(&filter).await?;
        if let Some(path) = &args.output.json {
            write_json_lines(path, &attacks)?;
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
    if let Some(path) = &args.output.json {
        write_json_lines(path, &attackers)?;
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
