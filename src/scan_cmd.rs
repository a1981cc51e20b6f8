//! `bleedwatch scan`: raw arguments → a validated plan → the scheduler → the writers.

use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bleedwatch_probe::conn::Timeouts;
use bleedwatch_probe::heartbleed::MAX_PROVE_OVERREAD;
use bleedwatch_probe::scan::{run_scan, ScanEvent, ScanItem, SchedulerOptions, TargetHost};
use bleedwatch_probe::prelude::StarttlsMode;
use bleedwatch_probe::{EndpointOptions, ProbeMode, Verdict};
use bleedwatch_targets::{ExclusionSet, HostRef, PortList, TargetSet, Transport};
use bleedwatch_wire::ProtocolVersion;
use clap::Args;
use tokio::sync::mpsc;

use crate::output::{ResultSinks, UntestedTarget};

#[derive(Args, Debug, Clone)]
pub struct ScanArgs {
    /// Targets: host, host:port, IPv4/IPv6 ([v6]:port), CIDR (10.0.0.0/24), ranges (10.0.0.1-50,
    /// 10.0.1-3.1-254, 2001:db8::1-ff).
    pub targets: Vec<String>,
    /// Read targets from a file (one or more per line, # comments).
    #[arg(long = "input-list", visible_alias = "iL", value_name = "FILE")]
    pub input_list: Vec<PathBuf>,
    /// Ports for targets without their own: 443, 443,8443, 1-1024, udp/4433 (DTLS), T:443,U:4433.
    #[arg(short, long, default_value = "443")]
    pub ports: String,
    /// Ports that do not say their transport are UDP (DTLS), in -p and on targets (host:4433);
    /// tcp/443, T:443 and host:tcp/443 stay TCP.
    #[arg(short = 'u', long)]
    pub udp: bool,
    /// How to reach TLS: auto (direct TLS or STARTTLS, found out per port), none (direct TLS only),
    /// or a dialect: smtp, lmtp, imap, pop3, ftp, xmpp, xmpp-server, ldap, nntp, sieve, postgres,
    /// mysql, rdp, irc.
    #[arg(long, default_value = "auto", value_name = "PROTO")]
    pub starttls: String,
    /// How long to wait for a server to speak first when finding out what a port speaks.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    pub banner_wait: Duration,
    /// Also test the mail exchangers of DOMAIN (MX records) on port 25 with SMTP STARTTLS.
    #[arg(long, value_name = "DOMAIN")]
    pub mx: Vec<String>,
    /// Never test these (same syntax as targets, without ports).
    #[arg(long, value_delimiter = ',')]
    pub exclude: Vec<String>,
    #[arg(long, value_name = "FILE")]
    pub exclude_file: Vec<PathBuf>,
    /// Resolve names through this DNS server (IP:port) instead of the system resolver.
    #[arg(long, value_name = "ADDR")]
    pub dns_server: Option<std::net::SocketAddr>,
    /// SNI name to send instead of the target's name.
    #[arg(long)]
    pub sni: Option<String>,
    /// Do not retry without SNI when a server refuses the hello with SNI.
    #[arg(long)]
    pub no_sni_retry: bool,
    /// Protocol versions to test (default all of ssl3, tls1.0, tls1.1, tls1.2).
    #[arg(long, value_delimiter = ',')]
    pub versions: Vec<String>,
    /// Opt-in proof: over-read this many bytes (at most 64) of server memory. Only a count and a
    /// SHA-256 of the leaked bytes are reported; the bytes are never stored or logged.
    #[arg(long, value_name = "BYTES", num_args = 0..=1, default_missing_value = "16")]
    pub prove: Option<u16>,
    /// Endpoints tested at once.
    #[arg(short, long, default_value_t = 256)]
    pub concurrency: usize,
    /// Endpoints tested at once on one address (be gentle with fragile devices).
    #[arg(long, default_value_t = 4)]
    pub per_host: usize,
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub connect_timeout: Duration,
    /// Limit from connect to the end of the server's hello flight.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub handshake_timeout: Duration,
    /// Limit for the heartbeat answer once our heartbeats are sent.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub heartbeat_timeout: Duration,
    /// Write one JSON object per endpoint to FILE (- for standard output).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write CSV to FILE (- for standard output).
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// No summary table and no progress bar.
    #[arg(short, long)]
    pub quiet: bool,
    #[command(flatten)]
    pub db: crate::cmd_inventory::DbArgs,
    /// Do not record results in the inventory.
    #[arg(long, conflicts_with = "resume")]
    pub no_db: bool,
    /// Resume the last scan that did not finish (killed, crashed), with its own arguments: targets it
    /// completed are skipped, nothing is recorded twice.
    #[arg(long)]
    pub resume: bool,
}

/// Just the scan arguments, to re-read a stored run's command line.
#[derive(clap::Parser, Debug)]
struct StoredScan {
    #[command(flatten)]
    args: ScanArgs,
}

/// A validated scan.
pub struct ScanPlan {
    pub targets: TargetSet,
    /// From --exclude and each --exclude-file; an address in any of them is skipped.
    pub exclusions: Vec<ExclusionSet>,
    pub endpoint: EndpointOptions,
    pub scheduler: SchedulerOptions,
}

impl ScanArgs {
    pub fn plan(&self) -> Result<ScanPlan> {
        self.plan_with(Vec::new())
    }

    /// Targets for `--mx`: every mail exchanger of each domain, on port 25 (SMTP STARTTLS, found by
    /// the port and the banner).
    pub async fn mx_targets(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for domain in &self.mx {
            let exchangers = bleedwatch_probe::dns::resolve_mx(domain, self.dns_server).await?;
            for mx in exchangers {
                eprintln!("bleedwatch: {domain}: mail exchanger {} (preference {})", mx.host, mx.preference);
                out.push(format!("{}:25", mx.host));
            }
        }
        Ok(out)
    }

    /// The plan, with `extra` targets added to the ones given.
    pub fn plan_with(&self, extra: Vec<String>) -> Result<ScanPlan> {
        // -u: every port that does not say its transport (`4433`, `host:4433`) is UDP; `tcp/443`,
        // `T:443` and `host:tcp/443` stay TCP. The --mx exchangers are SMTP: always TCP.
        let default = if self.udp { Transport::Udp } else { Transport::Tcp };
        let ports = PortList::parse_with_default(&self.ports, default).context("--ports")?;
        let mut specs = bleedwatch_targets::parse_targets_with(&self.targets, default)?;
        specs.extend(bleedwatch_targets::parse_targets(&extra)?);
        for file in &self.input_list {
            specs.extend(bleedwatch_targets::read_target_file_with(file, default)?);
        }
        if specs.is_empty() && self.mx.is_empty() {
            bail!("no targets: give hosts, addresses or ranges, -iL FILE, or --mx DOMAIN");
        }
        let mut exclusions = vec![bleedwatch_targets::parse_exclusions(&self.exclude)?];
        for file in &self.exclude_file {
            exclusions.push(bleedwatch_targets::read_exclusion_file(file)?);
        }
        let targets = TargetSet::from_specs(specs, ports);
        let versions = parse_versions(&self.versions, true).context("--versions")?;
        let mode = match self.prove {
            None => ProbeMode::Safe,
            Some(0) => bail!("--prove needs at least 1 byte"),
            Some(n) if n > MAX_PROVE_OVERREAD => bail!("--prove reads at most {MAX_PROVE_OVERREAD} bytes"),
            Some(n) => ProbeMode::Prove { overread: n },
        };
        let starttls = match self.starttls.to_ascii_lowercase().as_str() {
            "auto" => StarttlsMode::Auto,
            "none" | "off" | "tls" => StarttlsMode::Off,
            name => StarttlsMode::Force(name.parse().map_err(|e| anyhow::anyhow!("--starttls: {e}"))?),
        };
        if self.concurrency == 0 || self.per_host == 0 {
            bail!("--concurrency and --per-host must be at least 1");
        }
        Ok(ScanPlan {
            targets,
            exclusions,
            endpoint: EndpointOptions {
                mode,
                timeouts: Timeouts { connect: self.connect_timeout, handshake: self.handshake_timeout, heartbeat: self.heartbeat_timeout },
                versions,
                sni_retry: !self.no_sni_retry,
                tls13_fallback: true,
                sni_override: self.sni.clone(),
                starttls,
                banner_wait: self.banner_wait,
            },
            scheduler: SchedulerOptions { concurrency: self.concurrency, per_host: self.per_host, dns_server: self.dns_server },
        })
    }
}

/// Protocol version names (`tls1.2`, `TLSv1.0`, `ssl3`, and with `dtls` also `dtls1.2`); none
/// given means every one.
pub fn parse_versions(names: &[String], dtls: bool) -> Result<Vec<ProtocolVersion>> {
    let mut all = ProtocolVersion::PROBEABLE_TLS.to_vec();
    if dtls {
        all.extend([ProtocolVersion::DTLS1_2, ProtocolVersion::DTLS1_0]);
    }
    if names.is_empty() {
        return Ok(all);
    }
    names
        .iter()
        .map(|v| match ProtocolVersion::from_name(v) {
            Some(p) if all.contains(&p) => Ok(p),
            _ => bail!("unknown version {v:?} (use {})", all.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(", ")),
        })
        .collect()
}

/// What the inventory writer task is asked to do.
enum Persist {
    Result(serde_json::Value),
    Done(String),
    /// The item is done but nothing of it was tested (its name did not resolve).
    Untested(String),
}

/// Where results are recorded besides the outputs: the inventory run, and whether it is a resumed
/// one (targets it already finished are skipped).
pub struct Recording {
    pub store: bleedwatch_store::Store,
    pub run: bleedwatch_store::RunId,
    pub resume: bool,
}

/// What a run found before a resume, for the exit code: the scan's answer covers the whole run.
#[derive(Debug, Default, Clone, Copy)]
pub struct EarlierFindings {
    pub vulnerable: u64,
    /// Inconclusive endpoints and targets that could not be tested.
    pub untested: u64,
}

impl EarlierFindings {
    async fn of(store: &bleedwatch_store::Store, run: bleedwatch_store::RunId) -> Result<EarlierFindings> {
        let counts = store.run_verdict_counts(run).await?;
        let count = |verdict: Verdict| counts.get(verdict.as_str()).copied().unwrap_or(0).max(0) as u64;
        let unresolved = store.untested_targets(run).await?.max(0) as u64;
        Ok(EarlierFindings { vulnerable: count(Verdict::Vulnerable), untested: count(Verdict::Inconclusive) + unresolved })
    }
}

/// The exit code of `scan` and `rescan`: 1 when something is vulnerable, else 3 ("incomplete")
/// when something was not conclusively tested, else 0.
pub fn exit_code(vulnerable: u64, untested: u64) -> u8 {
    if vulnerable > 0 {
        1
    } else if untested > 0 {
        3
    } else {
        0
    }
}

/// Items a resumed run asks the inventory about at once.
const RESUME_BATCH: usize = 512;

/// Leaves out the items a resumed run already finished, asking the inventory a batch of keys at a
/// time, so memory stays bounded whatever the run's size (a /8 is 16 million targets). The scheduler
/// pulls items from a plain iterator; the query runs on this thread through `block_in_place`.
struct SkipDone<I> {
    items: I,
    store: bleedwatch_store::Store,
    run: bleedwatch_store::RunId,
    runtime: tokio::runtime::Handle,
    ready: std::collections::VecDeque<ScanItem>,
    error: std::sync::Arc<std::sync::Mutex<Option<anyhow::Error>>>,
}

impl<I: Iterator<Item = ScanItem>> Iterator for SkipDone<I> {
    type Item = ScanItem;

    fn next(&mut self) -> Option<ScanItem> {
        loop {
            if let Some(item) = self.ready.pop_front() {
                return Some(item);
            }
            let batch: Vec<ScanItem> = self.items.by_ref().take(RESUME_BATCH).collect();
            if batch.is_empty() {
                return None;
            }
            let keys: Vec<String> = batch.iter().map(|i| i.key.clone()).collect();
            let (store, run, runtime) = (&self.store, self.run, &self.runtime);
            match tokio::task::block_in_place(|| runtime.block_on(store.done_among(run, &keys))) {
                Ok(done) => self.ready.extend(batch.into_iter().filter(|i| !done.contains(&i.key))),
                Err(e) => {
                    // Stop rather than scan (and record) what may be done already.
                    let mut slot = self.error.lock().unwrap_or_else(|p| p.into_inner());
                    slot.get_or_insert(anyhow::Error::new(e).context("--resume: reading the finished targets"));
                    return None;
                }
            }
        }
    }
}

/// A name that did not resolve, waiting for its item's key (which says the transport).
struct Unresolved {
    name: String,
    port: u16,
    error: String,
}

impl Unresolved {
    /// The transport, when `key` is this target's item key (`name:443` or `name:udp/4433`).
    fn transport_for(&self, key: &str) -> Option<&'static str> {
        let rest = key.strip_prefix(self.name.as_str())?.strip_prefix(':')?;
        if rest == self.port.to_string() {
            Some("tcp")
        } else if rest.strip_prefix("udp/") == Some(self.port.to_string().as_str()) {
            Some("udp")
        } else {
            None
        }
    }
}

/// Runs a plan, feeding every result to `sinks` (and the inventory). Returns the number of
/// vulnerable endpoints.
pub async fn execute(plan: ScanPlan, sinks: &mut ResultSinks, recording: Option<&Recording>) -> Result<u64> {
    let (tx, mut rx) = mpsc::channel::<ScanEvent>(1024);
    let ScanPlan { targets, exclusions, endpoint, scheduler } = plan;
    let items = targets.iter().filter(|e| !exclusions.iter().any(|x| x.excludes(&e.host))).map(|e| {
        let key = e.to_string();
        ScanItem {
            host: match e.host {
                HostRef::Ip(ip) => TargetHost::Ip(ip),
                HostRef::Name(name) => TargetHost::Name(name),
            },
            port: e.port,
            udp: e.transport == Transport::Udp,
            key,
        }
    });
    let resume_error = std::sync::Arc::new(std::sync::Mutex::new(None));
    let items: Box<dyn Iterator<Item = ScanItem> + Send + '_> = match recording {
        Some(rec) if rec.resume => {
            if tokio::runtime::Handle::current().runtime_flavor() != tokio::runtime::RuntimeFlavor::MultiThread {
                bail!("--resume needs the multi-threaded runtime");
            }
            Box::new(SkipDone {
                items,
                store: rec.store.clone(),
                run: rec.run,
                runtime: tokio::runtime::Handle::current(),
                ready: Default::default(),
                error: resume_error.clone(),
            })
        }
        _ => Box::new(items),
    };
    let excluded = |ip: IpAddr| exclusions.iter().any(|x| x.contains(ip));
    let scan = run_scan(items, excluded, endpoint, scheduler, tx);
    // The inventory is written by its own task, so the scanner never waits on the database; results
    // and "item done" marks stay in order on that one channel.
    let (db_tx, db_task) = match recording {
        Some(rec) => {
            let (db_tx, mut db_rx) = mpsc::channel::<Persist>(4096);
            let (store, run) = (rec.store.clone(), rec.run);
            let task = tokio::spawn(async move {
                while let Some(msg) = db_rx.recv().await {
                    match msg {
                        Persist::Result(json) => crate::cmd_inventory::persist(&store, run, &json).await.map(|_| ())?,
                        // After the item's results are stored: a kill before this re-tests the item on
                        // resume, and the store keeps the first observation.
                        Persist::Done(key) => {
                            store.plan_targets(run, [key.clone()]).await?;
                            store.mark_target_done(run, &key).await?;
                        }
                        Persist::Untested(key) => {
                            store.plan_targets(run, [key.clone()]).await?;
                            store.mark_target_untested(run, &key).await?;
                        }
                    }
                }
                anyhow::Ok(())
            });
            (Some(db_tx), Some(task))
        }
        None => (None, None),
    };
    let consume = async {
        let mut first_error = None;
        let mut unresolved: Vec<Unresolved> = Vec::new();
        while let Some(event) = rx.recv().await {
            match event {
                ScanEvent::Result(r) => {
                    if let Err(e) = sinks.add(&r) {
                        first_error.get_or_insert(e);
                    }
                    if let Some(tx) = &db_tx {
                        match serde_json::to_value(&*r) {
                            Ok(json) => {
                                let _ = tx.send(Persist::Result(json)).await;
                            }
                            Err(e) => {
                                first_error.get_or_insert(e.into());
                            }
                        }
                    }
                }
                ScanEvent::ItemDone { key } => {
                    let failed = unresolved.iter().position(|u| u.transport_for(&key).is_some());
                    let persist = match failed.map(|i| unresolved.swap_remove(i)) {
                        Some(u) => {
                            let transport = u.transport_for(&key).unwrap_or("tcp");
                            if let Err(e) = sinks.add_untested(&UntestedTarget::unresolved(&u.name, u.port, transport, &u.error)) {
                                first_error.get_or_insert(e);
                            }
                            Persist::Untested(key)
                        }
                        None => Persist::Done(key),
                    };
                    if let Some(tx) = &db_tx {
                        let _ = tx.send(persist).await;
                    }
                }
                ScanEvent::Excluded { .. } => sinks.progress.inc(1),
                ScanEvent::ResolveFailed { name, port, error } => {
                    sinks.progress.suspend(|| eprintln!("bleedwatch: {name}:{port}: cannot resolve: {error}"));
                    // Reported when its item is done: the item's key says TCP or UDP.
                    unresolved.push(Unresolved { name, port, error });
                }
            }
        }
        // Never dropped silently, even if the scheduler did not report the item done.
        for u in unresolved {
            if let Err(e) = sinks.add_untested(&UntestedTarget::unresolved(&u.name, u.port, "tcp", &u.error)) {
                first_error.get_or_insert(e);
            }
        }
        first_error
    };
    let ((), error) = tokio::join!(scan, consume);
    drop(db_tx);
    if let Some(task) = db_task {
        task.await.context("inventory writer")?.context("recording results in the inventory")?;
    }
    if let Some(e) = resume_error.lock().unwrap_or_else(|p| p.into_inner()).take() {
        return Err(e);
    }
    if let Some(e) = error {
        return Err(e.context("writing results"));
    }
    sinks.finish()?;
    Ok(sinks.vulnerable())
}

/// Opens the inventory and starts (or resumes) the run; returns the arguments to scan with, and
/// what the run found before it was resumed.
async fn start_recording(args: ScanArgs, argv: Vec<String>) -> Result<(ScanArgs, Option<Recording>, EarlierFindings)> {
    if args.no_db {
        return Ok((args, None, EarlierFindings::default()));
    }
    if args.resume {
        let store = args.db.open_existing().await?;
        let runs = store.unfinished_runs(Some("scan")).await?;
        let Some(last) = runs.into_iter().max_by_key(|r| r.started_at_ms) else { bail!("--resume: no unfinished scan in the inventory") };
        let stored = <StoredScan as clap::Parser>::try_parse_from(std::iter::once("scan".to_string()).chain(last.arguments.iter().cloned()))
            .context("--resume: the stored arguments of the unfinished scan no longer parse")?;
        let mut resumed = stored.args;
        resumed.db = args.db.clone();
        resumed.resume = true;
        let (_, done) = store.target_counts(last.id).await?;
        let earlier = EarlierFindings::of(&store, last.id).await?;
        eprintln!(
            "bleedwatch: resuming scan run {} ({done} targets already done; {} vulnerable, {} not conclusively tested so far)",
            last.id.0, earlier.vulnerable, earlier.untested
        );
        return Ok((resumed, Some(Recording { store, run: last.id, resume: true }), earlier));
    }
    let store = args.db.open().await?;
    // Stored without --db (where the run is recorded is not part of what was scanned).
    let mut stored = Vec::new();
    let mut skip_next = false;
    for a in argv {
        if skip_next {
            skip_next = false;
        } else if a == "--db" {
            skip_next = true;
        } else if !a.starts_with("--db=") {
            stored.push(if a == "-iL" { "--input-list".to_string() } else { a });
        }
    }
    let run = store.start_run("scan", &stored).await?;
    Ok((args, Some(Recording { store, run, resume: false }), EarlierFindings::default()))
}

pub async fn run(args: ScanArgs) -> Result<u8> {
    // The command line after `bleedwatch scan`, stored with the run for --resume.
    run_with_argv(args, std::env::args().skip(2).collect()).await
}

/// Like [`run`], storing `argv` (scan arguments) with the run.
pub async fn run_with_argv(args: ScanArgs, argv: Vec<String>) -> Result<u8> {
    let (args, recording, earlier) = start_recording(args, argv).await?;
    let code = scan_and_report(&args, recording.as_ref(), earlier).await;
    if let Some(rec) = &recording {
        rec.store.finish_run(rec.run, if code.is_ok() { "finished" } else { "failed" }).await?;
    }
    code
}

async fn scan_and_report(args: &ScanArgs, recording: Option<&Recording>, earlier: EarlierFindings) -> Result<u8> {
    let mx = args.mx_targets().await?;
    if !args.mx.is_empty() && mx.is_empty() && args.targets.is_empty() && args.input_list.is_empty() {
        bail!("--mx: no mail exchangers found");
    }
    let plan = args.plan_with(mx)?;
    let json_on_stdout = args.json.as_deref().is_some_and(|p| p.as_os_str() == "-") || args.csv.as_deref().is_some_and(|p| p.as_os_str() == "-");
    // A resumed scan adds to the files the killed one wrote.
    let mut sinks = ResultSinks::new(args.json.as_deref(), args.csv.as_deref(), plan.targets.len_hint(), !args.quiet, args.resume)?;
    let vulnerable = execute(plan, &mut sinks, recording).await?;
    if !args.quiet && !json_on_stdout {
        sinks.print_summary(&mut std::io::stdout().lock())?;
    } else if !args.quiet {
        sinks.print_summary(&mut std::io::stderr().lock())?;
    }
    std::io::stdout().flush()?;
    Ok(exit_code(vulnerable + earlier.vulnerable, sinks.untested() + earlier.untested))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_never_read_safe_for_what_was_not_tested() {
        assert_eq!(exit_code(0, 0), 0);
        assert_eq!(exit_code(2, 5), 1);
        assert_eq!(exit_code(0, 1), 3);
    }

    #[test]
    fn u_makes_target_ports_udp_unless_they_say_tcp() {
        let args = <StoredScan as clap::Parser>::try_parse_from(["scan", "-u", "127.0.0.1:4433", "127.0.0.2:tcp/443", "127.0.0.3", "-p", "53,T:443"]).unwrap().args;
        let plan = args.plan().unwrap();
        let endpoints: Vec<String> = plan.targets.iter().map(|e| e.to_string()).collect();
        assert_eq!(endpoints, ["127.0.0.1:udp/4433", "127.0.0.2:443", "127.0.0.3:443", "127.0.0.3:udp/53"]);
    }

    #[test]
    fn unresolved_names_find_their_item_by_key() {
        let u = Unresolved { name: "mail.example".into(), port: 4433, error: "nx".into() };
        assert_eq!(u.transport_for("mail.example:4433"), Some("tcp"));
        assert_eq!(u.transport_for("mail.example:udp/4433"), Some("udp"));
        assert_eq!(u.transport_for("mail.example:443"), None);
        assert_eq!(u.transport_for("mail.example.org:4433"), None);
    }

    /// A resumed run skips what the run finished, and reads ahead of the scheduler at most one batch
    /// of targets: memory does not grow with the run.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn resume_skips_finished_targets_a_batch_at_a_time() {
        let store = bleedwatch_store::Store::open("sqlite::memory:").await.unwrap();
        let run = store.start_run("scan", &[]).await.unwrap();
        let key = |i: u32| format!("10.0.{}.{}:443", i / 256, i % 256);
        let finished: Vec<String> = (0..3000).filter(|i| i % 3 == 0).map(key).collect();
        store.plan_targets(run, finished.clone()).await.unwrap();
        for k in &finished {
            store.mark_target_done(run, k).await.unwrap();
        }
        let pulled = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let source = {
            let pulled = pulled.clone();
            (0..3000u32).map(move |i| {
                pulled.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                ScanItem { host: TargetHost::Ip(IpAddr::from([10, 0, (i / 256) as u8, (i % 256) as u8])), port: 443, udp: false, key: key(i) }
            })
        };
        let mut items = SkipDone { items: source, store, run, runtime: tokio::runtime::Handle::current(), ready: Default::default(), error: Default::default() };
        let first = items.next().unwrap();
        assert_eq!(first.key, "10.0.0.1:443");
        assert!(pulled.load(std::sync::atomic::Ordering::SeqCst) <= RESUME_BATCH, "read ahead of the scheduler");
        let rest: Vec<String> = items.map(|i| i.key).collect();
        assert_eq!(rest.len() + 1, 2000);
        assert!(rest.iter().all(|k| !finished.contains(k)));
    }
}
