//! The scheduler: takes targets lazily, resolves names to every address, honours exclusions and
//! concurrency caps (overall and per host), and emits one result per endpoint as soon as it is known.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use crate::endpoint::{probe_endpoint, EndpointOptions, EndpointTarget};
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
}

impl Default for SchedulerOptions {
    fn default() -> Self {
        SchedulerOptions { concurrency: 256, per_host: 4, dns_server: None }
    }
}

/// Per-address semaphores, dropped again when no endpoint of that address is in flight so that a
/// scan of a /8 does not keep sixteen million entries.
#[derive(Default, Clone)]
struct HostLimits {
    map: Arc<Mutex<HashMap<IpAddr, Arc<Semaphore>>>>,
}

impl HostLimits {
    fn semaphore(&self, ip: IpAddr, per_host: usize) -> Arc<Semaphore> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(ip).or_insert_with(|| Arc::new(Semaphore::new(per_host.max(1)))).clone()
    }

    fn release(&self, ip: IpAddr, sem: Arc<Semaphore>, permit: OwnedSemaphorePermit) {
        drop(permit);
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        // Two references: the map's and ours. Nobody else waits on it, so forget it.
        if Arc::strong_count(&sem) == 2 {
            map.remove(&ip);
        }
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

/// Runs a scan. `items` is consumed lazily: at most `concurrency` endpoints are in memory at once.
/// `excluded` decides per address. Results go to `events` in completion order.
pub async fn run_scan<I, X>(items: I, excluded: X, opts: EndpointOptions, sched: SchedulerOptions, events: mpsc::Sender<ScanEvent>)
where
    I: Iterator<Item = ScanItem>,
    X: Fn(IpAddr) -> bool,
{
    let opts = Arc::new(opts);
    let global = Arc::new(Semaphore::new(sched.concurrency.max(1)));
    let hosts = HostLimits::default();
    let mut tasks = tokio::task::JoinSet::new();
    for item in items {
        let addrs: Vec<(SocketAddr, Option<String>)> = match &item.host {
            TargetHost::Ip(ip) => vec![(SocketAddr::new(*ip, item.port), None)],
            TargetHost::Name(name) => match resolve(name, item.port, sched.dns_server).await {
                Ok(addrs) => addrs.into_iter().map(|a| (a, Some(name.clone()))).collect(),
                Err(e) => {
                    let _ = events.send(ScanEvent::ResolveFailed { name: name.clone(), port: item.port, error: e.to_string() }).await;
                    let _ = events.send(ScanEvent::ItemDone { key: item.key.clone() }).await;
                    continue;
                }
            },
        };
        let udp = item.udp;
        let (addrs, skipped): (Vec<_>, Vec<_>) = addrs.into_iter().partition(|(addr, _)| !excluded(addr.ip()));
        for (addr, _) in skipped {
            let _ = events.send(ScanEvent::Excluded { address: addr.ip(), port: addr.port() }).await;
        }
        if addrs.is_empty() {
            let _ = events.send(ScanEvent::ItemDone { key: item.key.clone() }).await;
            continue;
        }
        // The last of the item's endpoints to finish reports the item done.
        let remaining = Arc::new(std::sync::atomic::AtomicUsize::new(addrs.len()));
        for (addr, host) in addrs {
            let Ok(permit) = global.clone().acquire_owned().await else { return };
            // Reap finished tasks so the set does not grow with the target list.
            while tasks.try_join_next().is_some() {}
            let (opts, hosts, events, per_host) = (opts.clone(), hosts.clone(), events.clone(), sched.per_host);
            let (remaining, key) = (remaining.clone(), item.key.clone());
            tasks.spawn(async move {
                let sem = hosts.semaphore(addr.ip(), per_host);
                let Ok(host_permit) = sem.clone().acquire_owned().await else { return };
                let target = EndpointTarget { addr, host };
                let result = if udp { crate::dtls::probe_dtls_endpoint(&target, &opts).await } else { probe_endpoint(&target, &opts).await };
                hosts.release(addr.ip(), sem, host_permit);
                drop(permit);
                let _ = events.send(ScanEvent::Result(Box::new(result))).await;
                if remaining.fetch_sub(1, std::sync::atomic::Ordering::AcqRel) == 1 {
                    let _ = events.send(ScanEvent::ItemDone { key }).await;
                }
            });
        }
    }
    while tasks.join_next().await.is_some() {}
}
