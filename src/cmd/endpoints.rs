//! `bleedwatch endpoints`: every endpoint with its state, flags and exposure window.

use std::io::{self, Write};

use anyhow::Result;
use bleedwatch_report::{endpoint_csv_row, ENDPOINT_CSV_HEADER};
use bleedwatch_store::assess::State;
use bleedwatch_store::views::EndpointView;
use bleedwatch_store::Store;
use clap::Args;

use crate::args::{DbArgs, OutputArgs};
use crate::clock::now_ms;
use crate::output::{open_output, write_json_lines, write_table};

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
    /// exposed-cert-valid-until, exposed-cert-expired, exposed-key-returned, unexpected-certificate, exposed-key-unknown,
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
    #[command(flatten)]
    pub output: OutputArgs,
}

fn parse_state(text: &str) -> std::result::Result<State, String> {
    State::parse(text).ok_or_else(|| {
        let names: Vec<&str> = State::ALL.iter().map(|s| s.as_str()).collect();
        format!("unknown state {text:?} (use {})", names.join(", "))
    })
}

/// `bleedwatch endpoints`: every endpoint with its state, flags and exposure window.
pub async fn run(args: EndpointsArgs) -> Result<u8> {
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
    if let Some(path) = &args.output.json {
        write_json_lines(path, views)?;
        wrote_file = true;
    }
    if let Some(path) = &args.output.csv {
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::test_support::{scan_result, scratch_dir};
    use bleedwatch_store::RecordOutcome;

    #[test]
    fn states_parse_with_a_helpful_error() {
        assert_eq!(parse_state("re-keyed").unwrap(), State::Rekeyed);
        assert!(parse_state("done").unwrap_err().contains("notify-ready"));
    }

    /// `endpoints` JSON lines and CSV from a real (SQLite) inventory.
    #[tokio::test]
    async fn endpoints_exports() {
        let dir = scratch_dir("endpoints");
        let db = DbArgs::at(dir.join("inv.db").display().to_string());
        let store = db.open().await.unwrap();
        let run = store.start_run("scan", &[]).await.unwrap();
        store.record(run, &scan_result("192.0.2.1", "vulnerable", "CN=a", "1"), None).await.unwrap();
        store.record(run, &scan_result("192.0.2.2", "not-vulnerable", "CN=b", "2"), None).await.unwrap();
        let again = store.record(run, &scan_result("192.0.2.1", "vulnerable", "CN=a", "1"), None).await.unwrap();
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
            output: OutputArgs { json: Some(json_path.clone()), csv: Some(csv_path.clone()) },
        };
        let views = endpoint_views(&store, &args).await.unwrap();
        assert_eq!(views.len(), 1);
        write_endpoint_views(&views, &args, &mut Vec::new()).unwrap();
        let json = std::fs::read_to_string(&json_path).unwrap();
        let line: serde_json::Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
        assert_eq!(line["address"], "192.0.2.1");
        assert_eq!(line["state"], "vulnerable");
        assert_eq!(line["spkis_seen"], serde_json::json!(["key-1"]));
        let csv = std::fs::read_to_string(&csv_path).unwrap();
        assert!(csv.starts_with("address,port,transport,"), "{csv}");
        assert!(csv.contains("192.0.2.1,443,tcp"), "{csv}");
        store.close().await;
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
