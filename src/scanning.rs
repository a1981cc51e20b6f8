//! One typed scan configuration, [`ScanPlan`], that `scan`, `rescan` and `demo` build (from the
//! command line, from the inventory's selection, from the lab), and the engine that runs it:
//! plan → validated job → the scheduler → the writers and the inventory. A run keeps its plan
//! for `scan --resume`.

use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bleedwatch_probe::StarttlsMode;
use bleedwatch_probe::scan::{run_scan, ScanEvent, ScanItem, SchedulerOptions, TargetHost};
use bleedwatch_probe::{EndpointOptions, EndpointResult, Verdict};
use bleedwatch_targets::{ExclusionSet, HostRef, PortList, Shard, SweepWalk, TargetSet, Transport};
use bleedwatch_wire::ProtocolVersion;
use clap::Args;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::args::{parse_duration, probe_mode, starttls_mode_parser, DbArgs, OutputArgs, TimeoutArgs};
use crate::sinks::{ResultSinks, UntestedTarget};
use crate::sweep::{ShardTracker, SweepRequest, SweepWorker};

/// What to scan and how: every option of `scan` but where the run is recorded.
#[derive(Args, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ScanPlan {
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
    /// or a STARTTLS dialect.
    #[arg(long, default_value = "auto", value_name = "PROTO", value_parser = starttls_mode_parser(), ignore_case = true)]
    #[serde(with = "crate::args::starttls_serde")]
    pub starttls: StarttlsMode,
    /// How long to wait for a server to speak first when finding out what a port speaks.
    #[arg(long, value_name = "DURATION", default_value = "3s", value_parser = parse_duration)]
    pub banner_wait: Duration,
    /// Also test the mail exchangers of DOMAIN (MX records) on port 25 with SMTP STARTTLS.
    #[arg(long, value_name = "DOMAIN")]
    pub mx: Vec<String>,
    /// Never test these (same syntax as targets, without ports).
    #[arg(long, value_delimiter = ',')]
    pub exclude: Vec<String>,
    /// Never test what FILE lists (same syntax as --exclude, # comments).
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
    /// Visit targets × ports in a pseudo-random order drawn from SEED (the same seed, the same
    /// order), spreading the load over hosts and subnets. Without it, targets are scanned in order.
    #[arg(long, value_name = "SEED")]
    pub seed: Option<u64>,
    /// Scan shard K of N (K from 0) of the seeded order: the N shards are disjoint and together
    /// cover every endpoint once. Needs --seed, or --sweep (which keeps one).
    #[arg(long, value_name = "K/N", value_parser = parse_shard)]
    pub shard: Option<String>,
    /// New endpoints started per second overall, evenly spaced (no bursts).
    #[arg(long, value_name = "N")]
    pub rate: Option<f64>,
    /// New endpoints started per second in one /24 (IPv6: /64).
    #[arg(long, value_name = "N")]
    pub max_rate: Option<f64>,
    /// Endpoints tested at once.
    #[arg(short, long, default_value_t = 256)]
    pub concurrency: usize,
    /// Endpoints tested at once on one address (be gentle with fragile devices).
    #[arg(long, default_value_t = 4)]
    pub per_host: usize,
    #[command(flatten)]
    #[serde(flatten)]
    pub timeouts: TimeoutArgs,
    #[command(flatten)]
    #[serde(flatten)]
    pub output: OutputArgs,
    /// No summary table and no progress bar.
    #[arg(short, long)]
    pub quiet: bool,
}

impl Default for ScanPlan {
    /// The command line's defaults (a test holds them to it).
    fn default() -> Self {
        ScanPlan {
            targets: Vec::new(),
            input_list: Vec::new(),
            ports: "443".into(),
            udp: false,
            starttls: StarttlsMode::Auto,
            banner_wait: Duration::from_secs(3),
            mx: Vec::new(),
            exclude: Vec::new(),
            exclude_file: Vec::new(),
            dns_server: None,
            sni: None,
            no_sni_retry: false,
            versions: Vec::new(),
            prove: None,
            seed: None,
            shard: None,
            rate: None,
            max_rate: None,
            concurrency: 256,
            per_host: 4,
            timeouts: TimeoutArgs::default(),
            output: OutputArgs::default(),
            quiet: false,
        }
    }
}

/// Just the plan, to read a stored run's argument list (runs of earlier versions kept those).
#[derive(clap::Parser, Debug)]
struct PlanOnly {
    #[command(flatten)]
    plan: ScanPlan,
}

/// `--shard K/N`, checked and kept as written.
fn parse_shard(text: &str) -> std::result::Result<String, String> {
    text.parse::<Shard>().map(|shard| shard.to_string()).map_err(|e| e.to_string())
}

/// The order a job visits its targets in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Spec by spec, address by address, port by port.
    Sequential,
    /// One shard of the pseudo-random walk `seed` selects.
    Walk { seed: u64, shard: Shard },
}

/// A validated plan, ready for the scheduler.
pub struct ScanJob {
    pub targets: TargetSet,
    pub order: Order,
    /// From --exclude and each --exclude-file; an address in any of them is skipped.
    pub exclusions: Vec<ExclusionSet>,
    pub endpoint: EndpointOptions,
    pub scheduler: SchedulerOptions,
}

impl ScanPlan {
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

    /// The validated job, with `extra` targets (the `--mx` exchangers) added to the ones given.
    pub fn compile(&self, extra: Vec<String>) -> Result<ScanJob> {
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
        let mode = probe_mode(self.prove)?;
        if self.concurrency == 0 || self.per_host == 0 {
            bail!("--concurrency and --per-host must be at least 1");
        }
        for (flag, rate) in [("--rate", self.rate), ("--max-rate", self.max_rate)] {
            if rate.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
                bail!("{flag} must be a positive number of endpoints per second");
            }
        }
        let shard = self.shard.as_deref().map(str::parse::<Shard>).transpose().context("--shard")?;
        let order = match (self.seed, shard) {
            (Some(seed), shard) => Order::Walk { seed, shard: shard.unwrap_or_default() },
            (None, Some(shard)) if shard.count > 1 => bail!("--shard needs --seed (every shard must walk the same order), or --sweep, which keeps one"),
            (None, _) => Order::Sequential,
        };
        let job = ScanJob {
            targets,
            order,
            exclusions,
            endpoint: EndpointOptions {
                mode,
                timeouts: self.timeouts.timeouts(),
                versions,
                sni_retry: !self.no_sni_retry,
                tls13_fallback: true,
                sni_override: self.sni.clone(),
                starttls: self.starttls,
                banner_wait: self.banner_wait,
            },
            scheduler: SchedulerOptions {
                concurrency: self.concurrency,
                per_host: self.per_host,
                dns_server: self.dns_server,
                rate: self.rate,
                subnet_rate: self.max_rate,
            },
        };
        tracing::debug!(
            endpoints = %job.targets.len_hint(),
            ports = %self.ports,
            versions = ?job.endpoint.versions.iter().map(ToString::to_string).collect::<Vec<_>>(),
            starttls = crate::args::starttls_mode_name(self.starttls),
            mode = ?job.endpoint.mode,
            timeouts = ?job.endpoint.timeouts,
            concurrency = self.concurrency,
            per_host = self.per_host,
            exclusions = self.exclude.len() + self.exclude_file.len(),
            "scan plan"
        );
        Ok(job)
    }

    /// What a sweep's workers must agree on: the plan without the worker's own settings (its
    /// shard, pace, concurrency and outputs); the seed is kept by the sweep.
    pub fn sweep_identity(&self) -> Result<serde_json::Value> {
        let defaults = ScanPlan::default();
        let identity = ScanPlan {
            seed: None,
            shard: None,
            rate: None,
            max_rate: None,
            concurrency: defaults.concurrency,
            per_host: defaults.per_host,
            output: defaults.output,
            quiet: false,
            ..self.clone()
        };
        Ok(serde_json::to_value(identity)?)
    }

    /// The plan as a run keeps it for `--resume` (one JSON document).
    pub fn to_stored(&self) -> Result<Vec<String>> {
        Ok(vec![serde_json::to_string(self).context("storing the scan plan")?])
    }

    /// The plan a run kept: a JSON document, or (runs of earlier versions) the `scan` arguments.
    pub fn from_stored(arguments: &[String]) -> Result<ScanPlan> {
        if let [document] = arguments {
            if document.starts_with('{') {
                return serde_json::from_str(document).context("--resume: the stored plan of the unfinished scan no longer reads");
            }
        }
        let words = std::iter::once("scan".to_owned()).chain(arguments.iter().map(|a| if a == "-iL" { "--input-list".to_owned() } else { a.clone() }));
        let parsed = <PlanOnly as clap::Parser>::try_parse_from(words).context("--resume: the stored arguments of the unfinished scan no longer parse")?;
        Ok(parsed.plan)
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

/// Where a scan records: nowhere, a new run in the inventory, the last unfinished run, resumed,
/// or the run of a sweep shared with other workers.
pub enum Inventory {
    None,
    Record(DbArgs),
    Resume(DbArgs),
    Sweep { db: DbArgs, name: String },
}

/// What the inventory writer task is asked to do.
enum Persist {
    Result(Box<EndpointResult>),
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
    /// This worker's shard, when the run is a sweep's.
    pub sweep: Option<SweepWorker>,
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

/// How often a sweep worker records its shard's progress (a replaced worker re-tests at most
/// this much; the inventory keeps the first observation of each endpoint).
const SWEEP_PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// The endpoints of a job in its order.
enum Endpoints<'a> {
    Sequential(bleedwatch_targets::Endpoints<'a>),
    Walk(SweepWalk<'a>),
}

/// A job's endpoints as scheduler items, exclusions left out before anything is handed out; a
/// sweep's positions are reported to its shard's tracker as they are handed out.
struct OrderedItems<'a> {
    endpoints: Endpoints<'a>,
    exclusions: &'a [ExclusionSet],
    tracker: Option<std::sync::Arc<ShardTracker>>,
}

impl Iterator for OrderedItems<'_> {
    type Item = ScanItem;

    fn next(&mut self) -> Option<ScanItem> {
        loop {
            let (position, endpoint) = match &mut self.endpoints {
                Endpoints::Sequential(iter) => (None, iter.next()?),
                Endpoints::Walk(walk) => match walk.next() {
                    Some((position, endpoint)) => (Some(position), endpoint),
                    None => {
                        if let Some(tracker) = &self.tracker {
                            tracker.exhausted(walk.cursor());
                        }
                        return None;
                    }
                },
            };
            if self.exclusions.iter().any(|x| x.excludes(&endpoint.host)) {
                continue;
            }
            let key = endpoint.to_string();
            if let (Some(tracker), Some(position)) = (&self.tracker, position) {
                tracker.handed_out(position, &key);
            }
            return Some(ScanItem {
                host: match endpoint.host {
                    HostRef::Ip(ip) => TargetHost::Ip(ip),
                    HostRef::Name(name) => TargetHost::Name(name),
                },
                port: endpoint.port,
                udp: endpoint.transport == Transport::Udp,
                key,
            });
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

/// The debug log's line for each endpoint (never payload bytes: verdicts, status, lengths).
fn log_result(r: &EndpointResult) {
    let endpoint = crate::output::socket_label(&r.address, r.port);
    tracing::debug!(
        endpoint = %endpoint,
        transport = r.transport,
        host = r.host.as_deref().unwrap_or(""),
        service = %r.service,
        status = ?r.status,
        verdict = r.heartbleed.as_str(),
        reason = r.reason.as_deref().unwrap_or(""),
        duration_ms = r.duration_ms,
        "endpoint finished"
    );
    for (version, verdict) in &r.versions {
        tracing::trace!(endpoint = %endpoint, version = %version, verdict = verdict.as_str(), "version verdict");
    }
}

/// Runs a plan, feeding every result to `sinks` (and the inventory). Returns the number of
/// vulnerable endpoints.
pub async fn execute(job: ScanJob, sinks: &mut ResultSinks, recording: Option<&Recording>) -> Result<u64> {
    let (tx, mut rx) = mpsc::channel::<ScanEvent>(1024);
    let ScanJob { targets, order, exclusions, endpoint, scheduler } = job;
    let sweep = recording.and_then(|r| r.sweep.as_ref());
    let items = OrderedItems {
        endpoints: match order {
            Order::Sequential => Endpoints::Sequential(targets.iter()),
            Order::Walk { seed, shard } => Endpoints::Walk(SweepWalk::new(&targets, seed, shard, sweep.map_or(0, |w| w.start))),
        },
        exclusions: &exclusions,
        tracker: sweep.map(|w| w.tracker.clone()),
    };
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
            let progress = sweep.map(|w| (w.tracker.clone(), w.store.clone(), w.sweep.clone(), w.shard));
            let task = tokio::spawn(async move {
                let mut last_progress = std::time::Instant::now();
                while let Some(msg) = db_rx.recv().await {
                    let done = match msg {
                        Persist::Result(result) => {
                            store.record(run, &result, None).await.context("recording the result in the inventory")?;
                            continue;
                        }
                        // A sweep's shard keeps its progress as one number, not a row per target.
                        Persist::Done(key) if progress.is_some() => key,
                        // After the item's results are stored: a kill before this re-tests the item on
                        // resume, and the store keeps the first observation.
                        Persist::Done(key) => {
                            store.plan_targets(run, [key.clone()]).await?;
                            store.mark_target_done(run, &key).await?;
                            key
                        }
                        Persist::Untested(key) => {
                            store.plan_targets(run, [key.clone()]).await?;
                            store.mark_target_untested(run, &key).await?;
                            key
                        }
                    };
                    if let Some((tracker, store, sweep, shard)) = &progress {
                        tracker.done(&done);
                        if last_progress.elapsed() >= SWEEP_PROGRESS_EVERY {
                            last_progress = std::time::Instant::now();
                            let position = u64::try_from(tracker.positions_done()).unwrap_or(u64::MAX);
                            store.record_shard_progress(sweep, shard.index, position).await.context("recording the shard's progress")?;
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
                    log_result(&r);
                    if let Err(e) = sinks.add(&r) {
                        first_error.get_or_insert(e);
                    }
                    if let Some(tx) = &db_tx {
                        let _ = tx.send(Persist::Result(r)).await;
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
                ScanEvent::Excluded { .. } => {
                    tracing::debug!("excluded endpoint skipped");
                    sinks.progress.inc(1)
                }
                ScanEvent::ResolveFailed { name, port, error } => {
                    tracing::debug!(%name, port, %error, "name did not resolve");
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
    if let Some(worker) = sweep {
        worker.record_progress().await.context("recording the shard's progress")?;
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

/// Opens the inventory and starts a run of `plan` (or, resuming, finds the last unfinished run and
/// its plan); returns the plan to scan with and what the run found before it was resumed.
async fn start_recording(plan: ScanPlan, inventory: Inventory) -> Result<(ScanPlan, Option<Recording>, EarlierFindings)> {
    match inventory {
        Inventory::None | Inventory::Sweep { .. } => Ok((plan, None, EarlierFindings::default())),
        Inventory::Record(db) => {
            let store = db.open().await?;
            // Stored without --db (where the run is recorded is not part of what was scanned).
            let run = store.start_run("scan", &plan.to_stored()?).await?;
            tracing::debug!(run = run.0, "scan run started");
            Ok((plan, Some(Recording { store, run, resume: false, sweep: None }), EarlierFindings::default()))
        }
        Inventory::Resume(db) => {
            let store = db.open_existing().await?;
            let runs = store.unfinished_runs(Some("scan")).await?;
            let Some(last) = runs.into_iter().max_by_key(|r| r.started_at_ms) else { bail!("--resume: no unfinished scan in the inventory") };
            let resumed = ScanPlan::from_stored(&last.arguments)?;
            let (_, done) = store.target_counts(last.id).await?;
            let earlier = EarlierFindings::of(&store, last.id).await?;
            eprintln!(
                "bleedwatch: resuming scan run {} ({done} targets already done; {} vulnerable, {} not conclusively tested so far)",
                last.id.0, earlier.vulnerable, earlier.untested
            );
            Ok((resumed, Some(Recording { store, run: last.id, resume: true, sweep: None }), earlier))
        }
    }
}

/// `scan` and `rescan`: runs `plan`, recording as `inventory` says, writes the outputs and the
/// summary, and returns the exit code (of the whole run, when resumed).
pub async fn run_plan(plan: ScanPlan, inventory: Inventory) -> Result<u8> {
    if let Inventory::Sweep { db, name } = inventory {
        return run_sweep_worker(plan, db, &name).await;
    }
    let (plan, recording, earlier) = start_recording(plan, inventory).await?;
    let code = scan_and_report(&plan, recording.as_ref(), earlier).await;
    if let Some(rec) = &recording {
        rec.store.finish_run(rec.run, if code.is_ok() { "finished" } else { "failed" }).await?;
    }
    code
}

/// `scan --sweep NAME`: joins (or creates) the sweep, scans this worker's shard from where it
/// stopped, and marks it finished. The exit code is the worker's (0: its shard is done); the
/// sweep's findings are in the inventory, under the sweep's one run.
async fn run_sweep_worker(mut plan: ScanPlan, db: DbArgs, name: &str) -> Result<u8> {
    if !plan.mx.is_empty() {
        bail!("--sweep cannot take --mx: every worker must see the same targets");
    }
    let shard = plan.shard.as_deref().map(str::parse::<Shard>).transpose().context("--shard")?.unwrap_or_default();
    // Counted before the sweep gives its seed (the count does not depend on it).
    let total = ScanPlan { seed: Some(0), ..plan.clone() }.compile(Vec::new())?.targets.len_hint();
    let store = db.open().await?;
    let identity = plan.sweep_identity()?;
    let arguments = plan.to_stored()?;
    let request = SweepRequest { name, seed: plan.seed, shard, plan: &identity, arguments: &arguments, total };
    let Some(worker) = crate::sweep::join(store.clone(), request).await? else { return Ok(0) };
    plan.seed = Some(worker.sweep.seed);
    plan.shard = Some(shard.to_string());
    let run = worker.sweep.run;
    let recording = Recording { store, run, resume: false, sweep: Some(worker) };
    scan_and_report(&plan, Some(&recording), EarlierFindings::default()).await?;
    if let Some(worker) = &recording.sweep {
        if worker.store.finish_shard(&worker.sweep, shard.index).await? {
            eprintln!("bleedwatch: sweep {name:?} finished: every shard is done (scan run {run})");
        } else {
            eprintln!("bleedwatch: shard {shard} of sweep {name:?} finished");
        }
    }
    Ok(0)
}

async fn scan_and_report(plan: &ScanPlan, recording: Option<&Recording>, earlier: EarlierFindings) -> Result<u8> {
    let mx = plan.mx_targets().await?;
    if !plan.mx.is_empty() && mx.is_empty() && plan.targets.is_empty() && plan.input_list.is_empty() {
        bail!("--mx: no mail exchangers found");
    }
    let job = plan.compile(mx)?;
    let (json, csv) = (plan.output.json.as_deref(), plan.output.csv.as_deref());
    let json_on_stdout = json.is_some_and(crate::output::is_stdout) || csv.is_some_and(crate::output::is_stdout);
    // A resumed scan adds to the files the killed one wrote.
    let resumed = recording.is_some_and(|r| r.resume);
    let (total, start) = match job.order {
        Order::Sequential => (job.targets.len_hint(), 0),
        Order::Walk { shard, .. } => (shard.len(job.targets.len_hint()), recording.and_then(|r| r.sweep.as_ref()).map_or(0, |w| w.start)),
    };
    let mut sinks = ResultSinks::new(json, csv, total, !plan.quiet, resumed)?;
    if start > 0 {
        sinks.progress.set_position(u64::try_from(start).unwrap_or(u64::MAX));
        sinks.progress.reset_eta();
    }
    let vulnerable = execute(job, &mut sinks, recording).await?;
    if !plan.quiet && !json_on_stdout {
        sinks.print_summary(&mut std::io::stdout().lock())?;
    } else if !plan.quiet {
        sinks.print_summary(&mut std::io::stderr().lock())?;
    }
    std::io::stdout().flush()?;
    Ok(exit_code(vulnerable + earlier.vulnerable, sinks.untested() + earlier.untested))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// `scan` arguments through clap, as the command line gives them.
    fn parse_plan(args: &[&str]) -> ScanPlan {
        <PlanOnly as clap::Parser>::try_parse_from(std::iter::once("scan").chain(args.iter().copied())).unwrap().plan
    }

    /// What `scan`, `rescan` and `demo` build by hand starts where the command line starts.
    #[test]
    fn the_default_plan_is_the_command_lines() {
        assert_eq!(ScanPlan::default(), parse_plan(&[]));
    }

    /// The plan a run keeps for `--resume` reads back as it was; so do the argument lists that runs
    /// of earlier versions kept.
    #[test]
    fn stored_plans_read_back() {
        let plan = parse_plan(&["127.0.0.1", "--input-list", "t.txt", "-p", "443,8443", "--starttls", "smtp", "--prove", "16", "--connect-timeout", "2", "--json", "out.jsonl", "--banner-wait", "500ms"]);
        assert_eq!(ScanPlan::from_stored(&plan.to_stored().unwrap()).unwrap(), plan);
        let legacy = ["127.0.0.1", "-iL", "t.txt", "-p", "443,8443", "--starttls", "smtp", "--prove", "16", "--connect-timeout", "2s", "--json", "out.jsonl", "--banner-wait", "500ms"].map(String::from);
        assert_eq!(ScanPlan::from_stored(&legacy).unwrap(), plan);
        assert!(ScanPlan::from_stored(&["--no-such-option".to_owned()]).is_err());
    }

    #[test]
    fn exit_codes_never_read_safe_for_what_was_not_tested() {
        assert_eq!(exit_code(0, 0), 0);
        assert_eq!(exit_code(2, 5), 1);
        assert_eq!(exit_code(0, 1), 3);
    }

    #[test]
    fn u_makes_target_ports_udp_unless_they_say_tcp() {
        let plan = parse_plan(&["-u", "127.0.0.1:4433", "127.0.0.2:tcp/443", "127.0.0.3", "-p", "53,T:443"]);
        let job = plan.compile(Vec::new()).unwrap();
        let endpoints: Vec<String> = job.targets.iter().map(|e| e.to_string()).collect();
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
