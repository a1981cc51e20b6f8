//! The scheduler (`run_scan`, behind `bleedwatch scan`) against listeners this test owns on many
//! loopback addresses: how many connections are open at once overall and per address, item
//! accounting for `--resume`, and names resolved side by side through a slow DNS server.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bleedwatch_probe::conn::Timeouts;
use bleedwatch_probe::StarttlsMode;
use bleedwatch_probe::scan::{run_scan, ScanEvent, ScanItem, SchedulerOptions, TargetHost};
use bleedwatch_probe::EndpointOptions;
use bleedwatch_wire::ProtocolVersion;
use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::{RData, Record, RecordType};

/// How long a listener keeps each connection open before closing it: long enough for the scheduler
/// to fill every slot it is allowed.
const HOLD: Duration = Duration::from_millis(250);

/// Connections open at once, overall and per address, as the listeners saw them.
#[derive(Default)]
struct OpenCount {
    now: usize,
    max: usize,
    per_address_now: HashMap<IpAddr, usize>,
    per_address_max: HashMap<IpAddr, usize>,
    /// When each connection was accepted.
    accepted: Vec<Instant>,
}

/// A block of loopback addresses of its own, so that parallel test runs do not meet.
fn address_block() -> [u8; 2] {
    let pid = std::process::id();
    [60 + (pid % 150) as u8, (pid / 150 % 250) as u8]
}

/// One endpoint test per connection: direct TLS 1.2 only, no detection, no TLS 1.3 fallback. The
/// listener's close ends it.
fn one_connection_each() -> EndpointOptions {
    EndpointOptions {
        versions: vec![ProtocolVersion::TLS1_2],
        starttls: StarttlsMode::Off,
        tls13_fallback: false,
        sni_retry: false,
        timeouts: Timeouts { connect: Duration::from_secs(5), handshake: Duration::from_secs(10), heartbeat: Duration::from_secs(5) },
        ..EndpointOptions::default()
    }
}

/// Listens on every `address` × `port`; each connection is counted while open, held for [`HOLD`],
/// then closed without a word.
async fn listeners(addresses: &[IpAddr], ports: usize) -> (Vec<u16>, Arc<Mutex<OpenCount>>, Vec<tokio::task::JoinHandle<()>>) {
    let count = Arc::new(Mutex::new(OpenCount::default()));
    let mut tasks = Vec::new();
    let mut port_numbers = Vec::new();
    // The first address picks free ports; the others of the block are unused, so the same
    // numbers are free there too.
    while port_numbers.len() < ports {
        let first = tokio::net::TcpListener::bind(SocketAddr::new(addresses[0], 0)).await.unwrap();
        let port = first.local_addr().unwrap().port();
        let mut bound = vec![first];
        for &ip in &addresses[1..] {
            match tokio::net::TcpListener::bind(SocketAddr::new(ip, port)).await {
                Ok(l) => bound.push(l),
                Err(_) => break,
            }
        }
        if bound.len() < addresses.len() {
            continue;
        }
        port_numbers.push(port);
        for listener in bound {
            let count = count.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else { return };
                    let ip = stream.local_addr().unwrap().ip();
                    let count = count.clone();
                    tokio::spawn(async move {
                        {
                            let mut c = count.lock().unwrap();
                            c.now += 1;
                            c.accepted.push(Instant::now());
                            c.max = c.max.max(c.now);
                            let here = c.per_address_now.entry(ip).or_default();
                            *here += 1;
                            let here = *here;
                            let max = c.per_address_max.entry(ip).or_default();
                            *max = (*max).max(here);
                        }
                        tokio::time::sleep(HOLD).await;
                        {
                            let mut c = count.lock().unwrap();
                            c.now -= 1;
                            *c.per_address_now.entry(ip).or_default() -= 1;
                        }
                        drop(stream);
                    });
                }
            }));
        }
    }
    (port_numbers, count, tasks)
}

/// Host by host, as the target iterator gives them: every port of one address before the next.
fn host_major_items(addresses: &[IpAddr], ports: &[u16]) -> Vec<ScanItem> {
    addresses
        .iter()
        .flat_map(|&ip| ports.iter().map(move |&port| ScanItem { host: TargetHost::Ip(ip), port, udp: false, key: format!("{ip}:{port}") }))
        .collect()
}

/// Runs the scan and returns its events in order.
async fn scan(items: Vec<ScanItem>, sched: SchedulerOptions) -> Vec<ScanEvent> {
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let collect = tokio::spawn(async move {
        let mut events = Vec::new();
        while let Some(event) = rx.recv().await {
            events.push(event);
        }
        events
    });
    let run = run_scan(items.into_iter(), |_| false, one_connection_each(), sched, tx);
    tokio::time::timeout(Duration::from_secs(120), run).await.expect("the scan did not end");
    collect.await.unwrap()
}

/// Every item is reported done exactly once, after each of its results.
fn assert_items_accounted(events: &[ScanEvent], keys: &[String]) {
    let mut results_seen: HashMap<String, usize> = HashMap::new();
    let mut done: HashMap<String, usize> = HashMap::new();
    for event in events {
        match event {
            ScanEvent::Result(r) => {
                let key = format!("{}:{}", r.address, r.port);
                assert!(!done.contains_key(&key), "a result of {key} came after its item was done");
                *results_seen.entry(key).or_default() += 1;
            }
            ScanEvent::ItemDone { key } => *done.entry(key.clone()).or_default() += 1,
            _ => {}
        }
    }
    for key in keys {
        assert_eq!(done.get(key), Some(&1), "{key} done {:?} times", done.get(key));
        assert_eq!(results_seen.get(key), Some(&1), "{key}");
    }
    assert_eq!(done.len(), keys.len());
}

/// `-p` many ports over many addresses with `--per-host` well below `--concurrency`: the overall
/// slots are all used, every address gets its share, and no address ever gets more than its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_host_limit_does_not_starve_the_overall_one() {
    let [a, b] = address_block();
    let addresses: Vec<IpAddr> = (1..=16).map(|i| IpAddr::V4(Ipv4Addr::new(127, a, b, i))).collect();
    let (ports, count, tasks) = listeners(&addresses, 16).await;
    let items = host_major_items(&addresses, &ports);
    let keys: Vec<String> = items.iter().map(|i| i.key.clone()).collect();
    let (concurrency, per_host) = (24, 2);
    let started = Instant::now();
    let events = scan(items, SchedulerOptions { concurrency, per_host, dns_server: None, ..SchedulerOptions::default() }).await;
    let elapsed = started.elapsed();
    for task in tasks {
        task.abort();
    }
    assert_items_accounted(&events, &keys);
    let c = count.lock().unwrap();
    // 256 endpoints, each one connection of HOLD: 24 at a time is about 11 rounds.
    assert_eq!(c.max, concurrency, "most connections open at once (took {elapsed:?})");
    for ip in &addresses {
        let most = c.per_address_max.get(ip).copied().unwrap_or(0);
        assert!(most <= per_host, "{ip} had {most} connections open at once");
        assert!(most >= 1, "{ip} was never connected to");
    }
    assert!(elapsed < HOLD * 256 / 12, "took {elapsed:?}");
}

/// The overall limit binds as well: more addresses than slots, one port each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overall_limit_holds() {
    let [a, b] = address_block();
    let addresses: Vec<IpAddr> = (101..=140).map(|i| IpAddr::V4(Ipv4Addr::new(127, a, b, i))).collect();
    let (ports, count, tasks) = listeners(&addresses, 2).await;
    let items = host_major_items(&addresses, &ports);
    let keys: Vec<String> = items.iter().map(|i| i.key.clone()).collect();
    let events = scan(items, SchedulerOptions { concurrency: 16, per_host: 4, dns_server: None, ..SchedulerOptions::default() }).await;
    for task in tasks {
        task.abort();
    }
    assert_items_accounted(&events, &keys);
    let c = count.lock().unwrap();
    assert_eq!(c.max, 16);
    assert!(c.per_address_max.values().all(|&m| m <= 2));
}

/// A DNS server that answers every query after `delay`, each on its own task: `nameN.test` has the
/// A record 127.0.0.1, anything else does not exist.
async fn slow_dns_server(delay: Duration) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let socket = Arc::new(tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let addr = socket.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut buf = [0u8; 512];
        // Bounded: a test needs a few dozen queries.
        for _ in 0..256 {
            let Ok((n, peer)) = socket.recv_from(&mut buf).await else { return };
            let Ok(query) = Message::from_vec(&buf[..n]) else { continue };
            let socket = socket.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let mut resp = Message::new();
                resp.set_id(query.id()).set_message_type(MessageType::Response).set_op_code(OpCode::Query).set_recursion_available(true);
                resp.set_recursion_desired(query.recursion_desired());
                for q in query.queries() {
                    resp.add_query(q.clone());
                    let name = q.name().to_ascii();
                    if name.starts_with("name") && name.ends_with(".test.") {
                        if q.query_type() == RecordType::A {
                            resp.add_answer(Record::from_rdata(q.name().clone(), 60, RData::A(Ipv4Addr::LOCALHOST.into())));
                        }
                    } else {
                        resp.set_response_code(ResponseCode::NXDomain);
                    }
                }
                let _ = socket.send_to(&resp.to_vec().unwrap(), peer).await;
            });
        }
    });
    (addr, task)
}

/// Names are resolved side by side: twelve names behind a DNS server that takes 400 ms per answer
/// cost about one answer's time, not twelve; a name that does not exist is reported and done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_are_resolved_side_by_side() {
    let delay = Duration::from_millis(400);
    let (server, dns) = slow_dns_server(delay).await;
    // A port where nothing listens: every address is refused at once.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut names: Vec<String> = (0..12).map(|i| format!("name{i}.test")).collect();
    names.push("missing.test".into());
    let items: Vec<ScanItem> =
        names.iter().map(|n| ScanItem { host: TargetHost::Name(n.clone()), port: closed, udp: false, key: format!("{n}:{closed}") }).collect();
    let started = Instant::now();
    let events = scan(items, SchedulerOptions { concurrency: 256, per_host: 4, dns_server: Some(server), ..SchedulerOptions::default() }).await;
    let elapsed = started.elapsed();
    dns.abort();
    let results = events.iter().filter(|e| matches!(e, ScanEvent::Result(_))).count();
    assert_eq!(results, 12, "{events:#?}");
    assert!(events.iter().any(|e| matches!(e, ScanEvent::ResolveFailed { name, .. } if name == "missing.test")), "{events:#?}");
    let done = events.iter().filter(|e| matches!(e, ScanEvent::ItemDone { .. })).count();
    assert_eq!(done, names.len());
    assert!(elapsed < delay * 4, "resolving {} names took {elapsed:?}", names.len());
}

/// The most connections accepted within any `window` (the listeners' clocks jitter by a few
/// milliseconds under load, so a window, not the smallest gap, tells a burst).
fn most_within(accepted: &[Instant], window: Duration) -> usize {
    let mut times = accepted.to_vec();
    times.sort();
    times.iter().enumerate().map(|(i, t)| times[i..].iter().take_while(|u| **u - *t < window).count()).max().unwrap_or(0)
}

/// `--rate`: new endpoints evenly spaced overall, never a burst, though the slots would allow all
/// of them at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_spaces_new_endpoints_evenly() {
    let [a, b] = address_block();
    let addresses: Vec<IpAddr> = (141..=156).map(|i| IpAddr::V4(Ipv4Addr::new(127, a, b, i))).collect();
    let (ports, count, tasks) = listeners(&addresses, 2).await;
    let items = host_major_items(&addresses, &ports);
    let keys: Vec<String> = items.iter().map(|i| i.key.clone()).collect();
    let started = Instant::now();
    let events = scan(items, SchedulerOptions { concurrency: 64, per_host: 4, rate: Some(40.0), ..SchedulerOptions::default() }).await;
    let elapsed = started.elapsed();
    for task in tasks {
        task.abort();
    }
    assert_items_accounted(&events, &keys);
    let accepted = count.lock().unwrap().accepted.clone();
    assert_eq!(accepted.len(), 32);
    // 32 starts 25 ms apart: 775 ms at least; about 4 in any 100 ms, never a burst.
    assert!(elapsed >= Duration::from_millis(770), "took {elapsed:?}");
    let burst = most_within(&accepted, Duration::from_millis(100));
    assert!(burst <= 7, "{burst} connections within 100 ms");
    let per_second = most_within(&accepted, Duration::from_secs(1));
    assert!(per_second <= 41, "{per_second} connections in one second");
}

/// `--max-rate`: one /24 gets at most its own rate, however many slots are free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_subnet_rate_limits_one_slash_24() {
    let [a, b] = address_block();
    let addresses: Vec<IpAddr> = (161..=168).map(|i| IpAddr::V4(Ipv4Addr::new(127, a, b, i))).collect();
    let (ports, count, tasks) = listeners(&addresses, 2).await;
    let items = host_major_items(&addresses, &ports);
    let keys: Vec<String> = items.iter().map(|i| i.key.clone()).collect();
    let started = Instant::now();
    let events = scan(items, SchedulerOptions { concurrency: 64, per_host: 4, subnet_rate: Some(20.0), ..SchedulerOptions::default() }).await;
    let elapsed = started.elapsed();
    for task in tasks {
        task.abort();
    }
    assert_items_accounted(&events, &keys);
    let accepted = count.lock().unwrap().accepted.clone();
    assert_eq!(accepted.len(), 16);
    // 16 starts 50 ms apart in one /24.
    assert!(elapsed >= Duration::from_millis(740), "took {elapsed:?}");
    let burst = most_within(&accepted, Duration::from_millis(200));
    assert!(burst <= 7, "{burst} connections within 200 ms");
    let per_second = most_within(&accepted, Duration::from_secs(1));
    assert!(per_second <= 21, "{per_second} connections in one second");
}
