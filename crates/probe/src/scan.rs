//! The scheduler: takes targets lazily, resolves names to every address, honours exclusions and
//! concurrency caps (overall and per host), and emits one result per endpoint as soon as it is known.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;

use crate::options::{EndpointOptions, EndpointTarget};
use crate::pace::{Pacer, SubnetPacer};
use crate::reach::probe_endpoint;
use crate::result::EndpointResult;

/// A target as the scheduler sees it: an address or a name still to resolve, and a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetHost {
    Ip(IpAddr),
    Name(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanItem {
    pub host: TargetHost,
    pub port: u16,
    /// UDP ports are tested with DTLS.
    pub udp: bool,
    /// How the item is named for resume bookkeeping (e.g. `10.0.0.1:443`, `mail.example:25`).
    pub key: String,
}

/// What the scheduler reports.
#[derive(Debug)]
pub enum ScanEvent {
    Result(Box<EndpointResult>),
    /// An address left out because it is excluded.
    Excluded { address: IpAddr, port: u16 },
    /// A name that did not resolve; nothing was tested for it.
    ResolveFailed { name: String, port: u16, error: String },
    /// Every endpoint of this item has been reported (sent after its last result).
    ItemDone { key: String },
}

#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    /// Endpoints under test at once, over all hosts.
    pub concurrency: usize,
    /// Endpoints under test at once on one address (fragile devices: PEERS.md pitfall 9).
    pub per_host: usize,
    /// Resolve names through this DNS server instead of the system resolver.
    pub dns_server: Option<SocketAddr>,
    /// New endpoints started per second, overall, evenly spaced (`None`: as fast as the slots allow).
    pub rate: Option<f64>,
    /// New endpoints started per second in one /24 (IPv4) or /64 (IPv6).
    pub subnet_rate: Option<f64>,
}

impl Default for SchedulerOptions {
    fn default() -> Self {
        SchedulerOptions { concurrency: 256, per_host: 4, dns_server: None, rate: None, subnet_rate: None }
    }
}

/// Every address of `name` (A and AAAA), through `dns_server` when given.
async fn resolve(name: &str, port: u16, dns_server: Option<SocketAddr>) -> Result<Vec<SocketAddr>, String> {
    let mut addrs: Vec<SocketAddr> = match dns_server {
        Some(server) => crate::dns::resolve_addrs(name, server).await.map_err(|e| e.to_string())?.into_iter().map(|ip| SocketAddr::new(ip, port)).collect(),
        None => tokio::net::lookup_host((name, port)).await.map_err(|e| e.to_string())?.collect(),
    };
    addrs.sort();
    addrs.dedup();
    Ok(addrs)
}

/// Names resolved at once: enough to keep the slots busy behind slow resolvers, few enough not
/// to flood one.
const RESOLVE_AT_ONCE: usize = 32;

/// Endpoints read ahead of the free slots, per slot of `--concurrency`: room to reach other hosts
/// when the targets list gives one host's many ports in a row (`-p 1-1024` over a /24), while
/// memory stays bounded (about 100 bytes an endpoint) however large the target list.
const READ_AHEAD_PER_SLOT: usize = 256;

/// An item whose endpoints are under test or waiting: the last one to finish reports it done.
struct ItemProgress {
    key: String,
    remaining: AtomicUsize,
}

/// An endpoint waiting for a slot.
struct Pending {
    addr: SocketAddr,
    host: Option<String>,
    udp: bool,
    item: Arc<ItemProgress>,
}

/// One address's queue and how many of its endpoints are under test.
#[derive(Default)]
struct HostQueue {
    waiting: VecDeque<Pending>,
    running: usize,
    /// True while the address is in the dispatcher's round-robin line.
    in_line: bool,
}

/// The dispatcher's state: endpoints waiting per address, and addresses that may start one more,
/// served in turn so that every address gets its share of the overall slots.
struct Dispatch {
    hosts: HashMap<IpAddr, HostQueue>,
    line: VecDeque<IpAddr>,
    per_host: usize,
    /// Endpoints waiting in `hosts`.
    waiting: usize,
    running: usize,
}

impl Dispatch {
    fn new(per_host: usize) -> Self {
        Dispatch { hosts: HashMap::new(), line: VecDeque::new(), per_host: per_host.max(1), waiting: 0, running: 0 }
    }

    fn push(&mut self, pending: Pending) {
        let ip = pending.addr.ip();
        let host = self.hosts.entry(ip).or_default();
        host.waiting.push_back(pending);
        self.waiting += 1;
        if !host.in_line && host.running < self.per_host {
            host.in_line = true;
            self.line.push_back(ip);
        }
    }

    /// The next endpoint to start, from the address whose turn it is.
    fn next(&mut self) -> Option<Pending> {
        while let Some(ip) = self.line.pop_front() {
            let Some(host) = self.hosts.get_mut(&ip) else { continue };
            host.in_line = false;
            let Some(pending) = host.waiting.pop_front() else { continue };
            host.running += 1;
            if !host.waiting.is_empty() && host.running < self.per_host {
                host.in_line = true;
                self.line.push_back(ip);
            }
            self.waiting -= 1;
            self.running += 1;
            return Some(pending);
        }
        None
    }

    /// An endpoint of `ip` finished: its address may start another, and is forgotten when idle
    /// (a scan of a /8 must not keep sixteen million entries).
    fn finished(&mut self, ip: IpAddr) {
        self.running = self.running.saturating_sub(1);
        let Some(host) = self.hosts.get_mut(&ip) else { return };
        host.running = host.running.saturating_sub(1);
        if host.waiting.is_empty() {
            if host.running == 0 {
                self.hosts.remove(&ip);
            }
        } else if !host.in_line {
            host.in_line = true;
            self.line.push_back(ip);
        }
    }
}

/// A name's addresses, or why it has none.
type Resolved = (ScanItem, Result<Vec<SocketAddr>, String>);

/// Runs a scan. `items` is consumed lazily, at most a bounded window ahead of the endpoints under
/// test. Endpoints are started from every address in turn: at most `per_host` at once on one
/// address and `concurrency` overall, and an endpoint waiting for its address never holds an
/// overall slot. Names are resolved concurrently. `excluded` decides per address. Results go to
/// `events` in completion order, each item's [`ScanEvent::ItemDone`] after its last result.
pub async fn run_scan<I, X>(items: I, excluded: X, opts: EndpointOptions, sched: SchedulerOptions, events: mpsc::Sender<ScanEvent>)
where
    I: Iterator<Item = ScanItem>,
    X: Fn(IpAddr) -> bool,
{
    let opts = Arc::new(opts);
    let concurrency = sched.concurrency.max(1);
    let read_ahead = concurrency.saturating_mul(READ_AHEAD_PER_SLOT);
    let mut items = items.fuse();
    let mut exhausted = false;
    let mut dispatch = Dispatch::new(sched.per_host);
    let mut tasks: JoinSet<IpAddr> = JoinSet::new();
    let mut task_hosts: HashMap<tokio::task::Id, IpAddr> = HashMap::new();
    let resolvers = Arc::new(Semaphore::new(RESOLVE_AT_ONCE));
    let (resolved_tx, mut resolved_rx) = mpsc::channel::<Resolved>(RESOLVE_AT_ONCE);
    let mut resolving = 0usize;
    let mut pacer = sched.rate.and_then(Pacer::per_second);
    let mut subnet_pacer = sched.subnet_rate.and_then(SubnetPacer::per_second);
    loop {
        while dispatch.running < concurrency {
            let Some(Pending { addr, host, udp, item }) = dispatch.next() else { break };
            if pacer.is_some() || subnet_pacer.is_some() {
                pace(&mut pacer, &mut subnet_pacer, addr.ip()).await;
            }
            let (opts, events) = (opts.clone(), events.clone());
            let handle = tasks.spawn(async move {
                let target = EndpointTarget { addr, host };
                let result = if udp { crate::dtls::probe_dtls_endpoint(&target, &opts).await } else { probe_endpoint(&target, &opts).await };
                let _ = events.send(ScanEvent::Result(Box::new(result))).await;
                if item.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
                    let _ = events.send(ScanEvent::ItemDone { key: item.key.clone() }).await;
                }
                addr.ip()
            });
            task_hosts.insert(handle.id(), addr.ip());
        }
        // A free slot that no waiting endpoint may take: read further for other addresses.
        let may_read = !exhausted && dispatch.running < concurrency && dispatch.line.is_empty() && dispatch.waiting + resolving < read_ahead;
        if may_read {
            match items.next() {
                None => exhausted = true,
                Some(item) => match item.host.clone() {
                    TargetHost::Ip(ip) => {
                        let addr = SocketAddr::new(ip, item.port);
                        enqueue(&mut dispatch, item, vec![addr], &excluded, &events).await;
                    }
                    TargetHost::Name(name) => {
                        resolving += 1;
                        let (resolvers, resolved_tx, dns_server) = (resolvers.clone(), resolved_tx.clone(), sched.dns_server);
                        tokio::spawn(async move {
                            let _permit = resolvers.acquire_owned().await;
                            let addrs = resolve(&name, item.port, dns_server).await;
                            let _ = resolved_tx.send((item, addrs)).await;
                        });
                    }
                },
            }
            continue;
        }
        // Nothing runs and nothing is awaited: the targets are exhausted (an address with waiting
        // endpoints and nothing running is always in line, so nothing is left behind).
        if tasks.is_empty() && resolving == 0 {
            break;
        }
        tokio::select! {
            Some(joined) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                let ip = match joined {
                    Ok((id, ip)) => { task_hosts.remove(&id); Some(ip) }
                    Err(e) => task_hosts.remove(&e.id()),
                };
                if let Some(ip) = ip {
                    dispatch.finished(ip);
                }
            }
            Some((item, addrs)) = resolved_rx.recv(), if resolving > 0 => {
                resolving -= 1;
                match addrs {
                    Ok(addrs) => enqueue(&mut dispatch, item, addrs, &excluded, &events).await,
                    Err(error) => {
                        let TargetHost::Name(name) = item.host else { continue };
                        let _ = events.send(ScanEvent::ResolveFailed { name, port: item.port, error }).await;
                        let _ = events.send(ScanEvent::ItemDone { key: item.key }).await;
                    }
                }
            }
            else => break,
        }
    }
}

/// Waits until `ip` may start a new endpoint under both pacers, and books that start.
async fn pace(pacer: &mut Option<Pacer>, subnet_pacer: &mut Option<SubnetPacer>, ip: IpAddr) {
    let now = std::time::Instant::now();
    let mut start = subnet_pacer.as_ref().map_or(now, |p| p.earliest(ip, now));
    start = pacer.as_ref().map_or(start, |p| p.earliest(start));
    if let Some(p) = pacer {
        p.book(start);
    }
    if let Some(p) = subnet_pacer {
        p.book(ip, start, now);
    }
    if start > now {
        tokio::time::sleep_until(start.into()).await;
    }
}

/// Queues an item's addresses (all of a name's, or the one given), reporting excluded ones; an
/// item with nothing left to test is done at once.
async fn enqueue<X: Fn(IpAddr) -> bool>(dispatch: &mut Dispatch, item: ScanItem, addrs: Vec<SocketAddr>, excluded: &X, events: &mpsc::Sender<ScanEvent>) {
    let (addrs, skipped): (Vec<_>, Vec<_>) = addrs.into_iter().partition(|addr| !excluded(addr.ip()));
    for addr in skipped {
        let _ = events.send(ScanEvent::Excluded { address: addr.ip(), port: addr.port() }).await;
    }
    if addrs.is_empty() {
        let _ = events.send(ScanEvent::ItemDone { key: item.key }).await;
        return;
    }
    let host = match item.host {
        TargetHost::Name(name) => Some(name),
        TargetHost::Ip(_) => None,
    };
    let progress = Arc::new(ItemProgress { key: item.key, remaining: AtomicUsize::new(addrs.len()) });
    for addr in addrs {
        dispatch.push(Pending { addr, host: host.clone(), udp: item.udp, item: progress.clone() });
    }
}
