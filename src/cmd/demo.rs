//! `bleedwatch demo`: starts a built-in loopback lab — servers that behave like vulnerable, fixed and
//! heartbeat-less OpenSSL, version-restricted ones, a silent one and a closed port — scans it for real
//! with the same engine as `scan` (a [`ScanPlan`] built here), prints the results, writes them as
//! JSON lines, checks every verdict against what each lab server is, plays the response on the
//! vulnerable server, and writes the HTML report of it all.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use bleedwatch_lab::{Behaviour, LabCa, LabConfig, LabIdentity, LabServer, LabServerHandle};
use bleedwatch_probe::Verdict;
use bleedwatch_wire::ProtocolVersion;
use clap::Args;
use tokio::net::TcpListener;

use crate::args::{DbArgs, JsonArgs, OutputArgs, TimeoutArgs};
use crate::scanning::{execute, Recording, ScanPlan};
use crate::sinks::ResultSinks;

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
    /// Where to write the HTML report [default: beside the JSON lines, ending in .html].
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// The SMTP relay for the last step, telling users (STARTTLS unless on loopback) [default: a
    /// relay answering on 127.0.0.1:25, else the notices are shown as a dry run].
    #[arg(long, value_name = "HOST:PORT")]
    pub smtp: Option<String>,
    /// Who the demo's notice goes to.
    #[arg(long, value_name = "ADDRESS", default_value = "root@localhost")]
    pub notify_to: String,
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
    // The vulnerable server's certificate comes from the demo's own CA, so that its revocation
    // can be verified at the end of the response.
    let ca = LabCa::generate("bleedwatch demo CA")?;
    let rsa = Arc::new(ca.issue(&["vulnerable.lab.bleedwatch.test"], bleedwatch_lab::identity::LAB_RSA_KEY_A, 1)?);
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

    let scan = ScanPlan {
        targets: entries.iter().map(|e| e.addr.to_string()).collect(),
        banner_wait: Duration::from_secs(2),
        concurrency: 64,
        timeouts: TimeoutArgs::all(Duration::from_secs(2)),
        output: OutputArgs { json: Some(args.json.clone()), csv: None },
        ..ScanPlan::default()
    };
    let job = scan.compile(Vec::new())?;
    let mut sinks = ResultSinks::new(Some(&args.json), None, entries.len() as u128, true, false)?;
    let store = DbArgs::at(args.db.clone()).open().await?;
    let run = store.start_run("demo", &[]).await?;
    let recording = Recording { store, run, resume: false, sweep: None };
    execute(job, &mut sinks, Some(&recording)).await?;
    recording.store.finish_run(run, "finished").await?;
    sinks.print_summary(&mut std::io::stdout().lock())?;
    silent_task.abort();

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
    mismatches += response_workflow(&scan, &recording, &mut servers, entries[0].addr, &ca).await?;
    mismatches += verified_revocation(&recording, &args.db, &ca, entries[0].addr).await?;
    mismatches += notify_users(&args, entries[0].addr).await?;
    drop(servers);
    let report = args.report.clone().unwrap_or_else(|| args.json.with_extension("html"));
    crate::cmd::report::write_html(&recording.store, &report).await?;
    recording.store.close().await;
    println!("\nresults written to {} and recorded in the inventory {} (try: bleedwatch status --db {})", args.json.display(), args.db, args.db);
    println!("the response report: {} (open it in a browser)", report.display());
    if mismatches == 0 {
        println!("lab check: all {} verdicts and every response state as expected", entries.len());
        Ok(0)
    } else {
        println!("lab check: {mismatches} verdicts differ from the lab's truth");
        Ok(2)
    }
}

/// The response, played on the lab's vulnerable server: patched but the same key reissued (by the
/// demo CA), then re-keyed. Each step is a real rescan recorded in the inventory; the inventory's assessment must
/// follow (fixed with `reissued-same-key`, then `re-keyed`). Returns the number of mismatches.
async fn response_workflow(
    scan: &ScanPlan,
    recording: &Recording,
    servers: &mut Vec<LabServerHandle>,
    vulnerable: SocketAddr,
    ca: &LabCa,
) -> Result<usize> {
    let names = ["vulnerable.lab.bleedwatch.test"];
    let steps: [(&str, LabIdentity, &str, Option<&str>); 2] = [
        (
            "patched to 1.0.1g, certificate reissued on the SAME key",
            ca.issue(&names, bleedwatch_lab::identity::LAB_RSA_KEY_A, 2)?,
            "fixed",
            Some("reissued-same-key"),
        ),
        ("re-keyed: a new certificate on a NEW key", LabIdentity::generate_ecdsa(&names)?, "re-keyed", None),
    ];
    println!("\nThe response, on {vulnerable}:");
    let mut mismatches = 0;
    for (what, identity, expected_state, expected_flag) in steps {
        // Replace the server: same address, fixed behaviour, the step's certificate.
        if !servers.is_empty() {
            servers.remove(0).stop();
        }
        let cfg = LabConfig::new(Behaviour::Fixed, Arc::new(identity));
        let mut bound = None;
        for _ in 0..50 {
            // The stopped listener is released asynchronously; retry briefly.
            match LabServer::bind(vulnerable, cfg.clone()).await {
                Ok(s) => {
                    bound = Some(s);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        servers.insert(0, bound.with_context(|| format!("cannot listen on {vulnerable} again"))?);
        let step_scan = ScanPlan { targets: vec![vulnerable.to_string()], output: OutputArgs::default(), quiet: true, ..scan.clone() };
        let mut sinks = ResultSinks::new(None, None, 1, false, false)?;
        // Each step is its own run: a run records an endpoint once.
        let run = recording.store.start_run("demo", &[vulnerable.to_string()]).await?;
        let step = Recording { store: recording.store.clone(), run, resume: false, sweep: None };
        execute(step_scan.compile(Vec::new())?, &mut sinks, Some(&step)).await?;
        recording.store.finish_run(run, "finished").await?;
        let assessed = recording.store.assess_all(crate::clock::now_ms()).await?;
        let Some(found) = assessed.iter().find(|a| a.endpoint.address == vulnerable.ip().to_string() && a.endpoint.port == vulnerable.port()) else {
            println!("  MISMATCH: {vulnerable} is not in the inventory");
            mismatches += 1;
            continue;
        };
        let state = serde_json::to_value(found.assessment.state)?.as_str().unwrap_or("?").to_string();
        let flags: Vec<String> = found
            .assessment
            .flags
            .iter()
            .filter_map(|f| serde_json::to_value(f).ok())
            .filter_map(|v| v.get("flag").or_else(|| v.get("kind")).and_then(|k| k.as_str()).map(str::to_owned).or_else(|| v.as_str().map(str::to_owned)))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        println!("  {what}: state {state}{}", if flags.is_empty() { String::new() } else { format!(", flags {}", flags.join(", ")) });
        if state != expected_state || expected_flag.is_some_and(|f| !flags.iter().any(|x| x == f)) {
            println!("  MISMATCH: expected {expected_state}{}", expected_flag.map(|f| format!(" with {f}")).unwrap_or_default());
            mismatches += 1;
        }
    }
    Ok(mismatches)
}

/// The end of the funnel, verified: the demo CA revokes both certificates on the exposed key
/// (serials 1 and 2) in a CRL it signs, and `revocation check` runs as a user would run it, with
/// the CA as trust anchor (`--ca-file`) and the CRL as a file (`--crl`). The endpoint must become
/// `notify-ready`. Returns the number of mismatches.
async fn verified_revocation(recording: &Recording, db: &str, ca: &LabCa, vulnerable: SocketAddr) -> Result<usize> {
    let dir = std::env::temp_dir().join(format!("bleedwatch-demo-ca-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let (ca_file, crl_file) = (dir.join("demo-ca.pem"), dir.join("demo-ca.crl"));
    std::fs::write(&ca_file, ca.cert_pem())?;
    std::fs::write(&crl_file, ca.crl(&[1, 2])?)?;
    println!("
The demo CA revokes the certificates on the exposed key; revocation check, verified against it:");
    let check = crate::cmd::revocation::RevocationCheckArgs {
        db: DbArgs::at(db.to_owned()),
        certs: Vec::new(),
        ca_file: Some(ca_file),
        issuer: Vec::new(),
        crl: vec![crl_file.display().to_string()],
        ocsp: Vec::new(),
        no_crl: false,
        no_ocsp: true,
        timeout: Duration::from_secs(10),
        output: JsonArgs { json: None },
    };
    let checked = crate::cmd::revocation::run_check(check).await;
    let _ = std::fs::remove_dir_all(&dir);
    checked?;
    let assessed = recording.store.assess_all(crate::clock::now_ms()).await?;
    let state = assessed
        .iter()
        .find(|a| a.endpoint.address == vulnerable.ip().to_string() && a.endpoint.port == vulnerable.port())
        .and_then(|a| serde_json::to_value(a.assessment.state).ok())
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| "missing".to_owned());
    println!("  revoked (CRL verified against the demo CA): state {state}");
    if state != "notify-ready" {
        println!("  MISMATCH: expected notify-ready");
        return Ok(1);
    }
    println!("  next: tell users to change their passwords");
    Ok(0)
}

/// The funnel's last step: the vulnerable server's users told to change their passwords, through
/// `notify` itself — by SMTP when a relay is given or one answers on 127.0.0.1:25, else as its dry
/// run (who would get what, or why the endpoint is still held back). A relay given with `--smtp`
/// that does not take the notice is a mismatch.
async fn notify_users(args: &DemoArgs, vulnerable: SocketAddr) -> Result<usize> {
    use tokio::io::AsyncBufReadExt;
    let recipients = args.json.with_extension("recipients.csv");
    std::fs::write(&recipients, format!("endpoint,address,name,locale\n{vulnerable},{},Lab users,en\n", args.notify_to))
        .with_context(|| format!("writing {}", recipients.display()))?;
    let relay = match &args.smtp {
        Some(relay) => Some(relay.clone()),
        None => {
            // A local MTA greets with 220 at once; anything else is no relay for the demo.
            let greeting = tokio::time::timeout(Duration::from_millis(700), async {
                let stream = tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, 25)).await.ok()?;
                let mut line = String::new();
                tokio::io::BufReader::new(stream).read_line(&mut line).await.ok()?;
                Some(line)
            })
            .await;
            greeting.ok().flatten().filter(|l| l.starts_with("220")).map(|_| "127.0.0.1:25".to_owned())
        }
    };
    match &relay {
        Some(relay) => println!("\nUsers notified, through the SMTP relay {relay} (recipients: {}):", recipients.display()),
        None => println!("\nUsers notified: no SMTP relay on 127.0.0.1:25 (give --smtp HOST:PORT), so the dry run (recipients: {}):", recipients.display()),
    }
    let notify = crate::cmd::notify::NotifyArgs {
        db: DbArgs::at(args.db.clone()),
        recipients,
        template: None,
        html_template: None,
        incident: "CVE-2014-0160".to_owned(),
        dry_run: relay.is_none(),
        smtp: relay,
        from: Some("bleedwatch demo <security@localhost>".to_owned()),
        smtp_auth_file: None,
        smtp_ca: None,
        smtp_starttls: false,
        rate: Duration::from_secs(1),
        attempts: 2,
        smtp_timeout: Duration::from_secs(10),
        resend_uncertain: false,
        retry_failed: false,
    };
    match crate::cmd::notify::run(notify).await {
        Ok(0) => Ok(0),
        Ok(_) => {
            println!("  the relay did not take every notice (see above)");
            Ok(usize::from(args.smtp.is_some()))
        }
        Err(error) => {
            println!("  notify failed: {error:#}");
            Ok(usize::from(args.smtp.is_some()))
        }
    }
}
