//! `bleedwatch clients`: the TLS clients `client-test` tested, and their verdicts.

use std::io::{self, Write};

use anyhow::Result;
use bleedwatch_store::{ClientTestFilter, CLIENT_VERDICTS};
use clap::Args;

use crate::args::{DbArgs, JsonArgs};
use crate::output::{socket_label, write_json_lines, write_table};

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
    #[arg(long, value_name = "WHEN", value_parser = crate::args::parse_since)]
    pub since: Option<i64>,
    #[command(flatten)]
    pub output: JsonArgs,
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
pub async fn run(args: ClientsArgs) -> Result<u8> {
    let store = args.db.open_existing().await?;
    let filter = ClientTestFilter {
        client_address: args.client.as_deref().map(|c| c.parse::<std::net::IpAddr>().map(|ip| ip.to_string()).unwrap_or_else(|_| c.to_owned())),
        verdict: args.verdict.clone(),
        run: None,
        since_ms: args.since,
        latest_only: args.latest,
    };
    let tests = store.client_tests(&filter).await?;
    if let Some(path) = &args.output.json {
        write_json_lines(path, &tests)?;
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_are_checked() {
        assert!(parse_client_verdict("vulnerable").is_ok());
        assert!(parse_client_verdict("not-supported").unwrap_err().contains("no-heartbeat"));
    }
}
