//! `bleedwatch demo`: starts a built-in loopback lab — servers that behave like vulnerable, fixed and
//! heartbeat-less OpenSSL, version-restricted ones, a silent one and a closed port — scans it for real
//! with the same engine as `scan`, prints the results, writes them as JSON lines, and checks every
//! verdict against what each lab server is.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use bleedwatch_lab::{Behaviour, LabConfig, LabIdentity, LabServer, LabServerHandle};
use bleedwatch_probe::Verdict;
use bleedwatch_wire::ProtocolVersion;
use clap::Args;
use tokio::net::TcpListener;

use crate::output::ResultSinks;
use crate::scan_cmd::ScanArgs;

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Port the lab servers listen on (each on its own 127.0.0.x address).
    #[arg(long, default_value_t = 44300)]
    pub port: u16,
    /// Where to write the JSON lines.
    #[arg(long, default_value = "bleedwatch-demo.jsonl")]
    pub json: PathBuf,
    /// The demo's inventory (SQLite file, or postgres://...); kept apart from your real inventory.
    #[arg(long, default_value = "bleedwatch-demo.db")]
    pub db: String,
}

struct LabEntry {
    what: &'static str,
    addr: SocketAddr,
    expected: Verdict,
}

async fn bind_lab(ip: Ipv4Addr, port: u16, cfg: LabConfig) -> Result<LabServerHandle> {
    let addr = SocketAddr::new(IpAddr::V4(ip), port);
    match LabServer::bind(addr, cfg.clone()).await {
        Ok(s) => Ok(s),
        // Port taken: any free port on that address will do.
        Err(_) => LabServer::bind(SocketAddr::new(IpAddr::V4(ip), 0), cfg).await.with_context(|| format!("cannot listen on {ip}")),
    }
}

pub async fn run(args: DemoArgs) -> Result<u8> {
    let rsa = Arc::new(LabIdentity::rsa_lab(&["vulnerable.lab.bleedwatch.test"])?);
    let ecdsa = Arc::new(LabIdentity::generate_ecdsa(&["ecdsa.lab.bleedwatch.test"])?);
    let fixed_id = Arc::new(LabIdentity::self_signed(&["fixed.lab.bleedwatch.test"], bleedwatch_lab::identity::LAB_RSA_KEY_B, 7)?);
    let all = ProtocolVersion::PROBEABLE_TLS;
    let plan: Vec<(&'static str, [u8; 4], LabConfig, Verdict)> = vec![
        ("OpenSSL 1.0.1f-like, all versions", [127, 0, 0, 2], LabConfig::new(Behaviour::Vulnerable, rsa.clone()), Verdict::Vulnerable),
        ("OpenSSL 1.0.1g-like (fixed)", [127, 0, 0, 3], LabConfig::new(Behaviour::Fixed, fixed_id.clone()), Verdict::NotVulnerable),
        ("1.0.1f without heartbeats", [127, 0, 0, 4], LabConfig::new(Behaviour::NoHeartbeat, rsa.clone()), Verdict::NoHeartbeat),
        (
            "1.0.1f-like, SSLv3 only",
            [127, 0, 0, 5],
            LabConfig::new(Behaviour::Vulnerable, rsa.clone()).with_versions(&[ProtocolVersion::SSL3]),
            Verdict::Vulnerable,
        ),
        (
            "1.0.1f-like, TLS 1.0 only, ECDSA",
            [127, 0, 0, 6],
            LabConfig::new(Behaviour::Vulnerable, ecdsa.clone()).with_versions(&[ProtocolVersion::TLS1_0]),
            Verdict::Vulnerable,
        ),
        (
            "1.0.1g-like, TLS 1.1-1.2",
            [127, 0, 0, 7],
            LabConfig::new(Behaviour::Fixed, fixed_id.clone()).with_versions(&all[..2]),
            Verdict::NotVulnerable,
        ),
    ];
    let mut servers = Vec::new();
    let mut entries = Vec::new();
    for (what, ip, cfg, expected) in plan {
        let server = bind_lab(Ipv4Addr::from(ip), args.port, cfg).await?;
        entries.push(LabEntry { what, addr: server.local_addr(), expected });
        servers.push(server);
    }
    // A server that accepts and never speaks: the answer must be "inconclusive", never "safe".
    let silent = TcpListener::bind((Ipv4Addr::new(127, 0, 0, 8), args.port)).await.or(TcpListener::bind((Ipv4Addr::new(127, 0, 0, 8), 0)).await)?;
    entries.push(LabEntry { what: "accepts, never answers", addr: silent.local_addr()?, expected: Verdict::Inconclusive });
    let silent_task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = silent.accept().await {
            held.push(conn);
        }
    });
    // A closed port: unreachable is inconclusive too.
    let closed = std::net::TcpListener::bind((Ipv4Addr::new(127, 0, 0, 9), 0))?.local_addr()?;
    entries.push(LabEntry { what: "closed port", addr: closed, expected: Verdict::Inconclusive });

    println!("bleedwatch demo: a loopback lab of {} endpoints", entries.len());
    for e in &entries {
        println!("  {:<22} {}", e.addr.to_string(), e.what);
    }
    println!();

    let scan = ScanArgs {
        targets: entries.iter().map(|e| e.addr.to_string()).collect(),
        input_list: vec![],
        ports: "443".into(),
        udp: false,
        starttls: "auto".into(),
        banner_wait: Duration::from_secs(2),
        mx: vec![],
        exclude: vec![],
        exclude_file: vec![],
        dns_server: None,
        sni: None,
        no_sni_retry: false,
        versions: vec![],
        prove: None,
        concurrency: 64,
        per_host: 4,
        connect_timeout: Duration::from_secs(2),
        handshake_timeout: Duration::from_secs(2),
        heartbeat_timeout: Duration::from_secs(2),
        json: Some(args.json.clone()),
        csv: None,
        quiet: false,
        db: crate::cmd_inventory::DbArgs { db: Some(args.db.clone()) },
        no_db: false,
        resume: false,
    };
    let plan = scan.plan()?;
    let mut sinks = ResultSinks::new(Some(&args.json), None, entries.len() as u128, true)?;
    let store = scan.db.open().await?;
    let run = store.start_run("demo", &[]).await?;
    let recording = crate::scan_cmd::Recording { store, run, done: Default::default() };
    crate::scan_cmd::execute(plan, &mut sinks, Some(&recording)).await?;
    recording.store.finish_run(run, "finished").await?;
    sinks.print_summary(&mut std::io::stdout().lock())?;
    silent_task.abort();
    drop(servers);

    // Check each verdict against what the lab server is.
    let written = std::fs::read_to_string(&args.json).with_context(|| format!("reading back {}", args.json.display()))?;
    let mut mismatches = 0;
    for e in &entries {
        let found = written.lines().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()).find(|v| {
            v["address"] == e.addr.ip().to_string() && v["port"] == e.addr.port()
        });
        let got = found.as_ref().and_then(|v| v["heartbleed"].as_str()).unwrap_or("missing").to_string();
        if got != e.expected.as_str() {
            mismatches += 1;
            println!("MISMATCH {}: expected {}, got {got}", e.addr, e.expected);
        }
    }
    println!("\nresults written to {} and recorded in the inventory {} (try: bleedwatch status --db {})", args.json.display(), args.db, args.db);
    if mismatches == 0 {
        println!("lab check: all {} verdicts as expected", entries.len());
        Ok(0)
    } else {
        println!("lab check: {mismatches} verdicts differ from the lab's truth");
        Ok(2)
    }
}
