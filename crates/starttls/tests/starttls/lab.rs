//! The lab's vulnerable server (OpenSSL 1.0.1f on the wire) behind every STARTTLS dialect's server
//! role: the scanner must reach it with the dialect forced and find it by itself on an unusual
//! port, and call it vulnerable on every version, with the right service name.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bleedwatch_lab::{Behaviour, LabConfig, LabIdentity, LabServer};
use bleedwatch_probe::StarttlsMode;
use bleedwatch_probe::{probe_endpoint, EndpointResult, EndpointTarget, ScanStatus, Verdict};
use bleedwatch_starttls::Protocol;

use crate::scanner::options;

const LAB_NAME: &str = "lab.bleedwatch.test";

async fn scan(addr: SocketAddr, mode: StarttlsMode) -> (EndpointResult, Duration) {
    let target = EndpointTarget { addr, host: Some(LAB_NAME.to_string()) };
    let started = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(120), probe_endpoint(&target, &options(mode)))
        .await
        .unwrap_or_else(|_| panic!("scan of {addr} ({mode:?}) hung"));
    (result, started.elapsed())
}

/// What is wrong with `result` for a vulnerable lab reached as `service` (empty: nothing).
fn problems(result: &EndpointResult, service: &str, what: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut check = |ok: bool, text: String| {
        if !ok {
            found.push(format!("{what}: {text}"));
        }
    };
    check(result.service == service, format!("service {:?}, want {service:?}", result.service));
    check(result.status == ScanStatus::Success, format!("status {:?} ({:?})", result.status, result.reason));
    check(result.heartbleed == Verdict::Vulnerable, format!("verdict {:?} ({:?})", result.heartbleed, result.reason));
    for version in ["tls1.2", "tls1.1", "tls1.0", "ssl3"] {
        check(result.versions.get(version) == Some(&Verdict::Vulnerable), format!("{version}: {:?}", result.versions.get(version)));
    }
    let names_lab = result.certificate.as_ref().is_some_and(|leaf| leaf.sans.iter().any(|san| san.contains(LAB_NAME)));
    check(names_lab, "not the lab's certificate".to_string());
    found
}

/// The service `--starttls auto` must find: the dialect's, except for PostgreSQL, whose server role
/// (like PostgreSQL 17's `sslnegotiation=direct`) also takes a ClientHello straight away, so the
/// direct-TLS try that auto-detection starts with on an unknown port already reaches TLS.
fn auto_service(protocol: Protocol) -> String {
    match protocol {
        Protocol::Postgres => "tls".to_string(),
        other => format!("{}-starttls", other.name()),
    }
}

/// One lab per dialect, scanned forced and auto; the dialects run side by side, and every problem
/// of every dialect is reported at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lab_behind_every_dialect_is_found_and_vulnerable() {
    let identity = Arc::new(LabIdentity::rsa_lab(&[LAB_NAME]).unwrap());
    let mut checks = tokio::task::JoinSet::new();
    for protocol in Protocol::ALL {
        let config = LabConfig::new(Behaviour::Vulnerable, identity.clone());
        let lab = LabServer::bind_with("127.0.0.1:0".parse().unwrap(), config, None, Some(protocol)).await.unwrap();
        let addr = lab.local_addr();
        assert!(Protocol::for_port(addr.port()).is_none(), "{protocol}: lab landed on a well-known port");
        checks.spawn(async move {
            let (forced, elapsed) = scan(addr, StarttlsMode::Force(protocol)).await;
            let mut found = problems(&forced, &format!("{}-starttls", protocol.name()), &format!("{protocol} forced"));
            // Decided by the echo on every version, not by a timeout.
            if elapsed > Duration::from_secs(8) {
                found.push(format!("{protocol} forced took {elapsed:?}"));
            }
            let (auto, elapsed) = scan(addr, StarttlsMode::Auto).await;
            found.extend(problems(&auto, &auto_service(protocol), &format!("{protocol} auto")));
            if elapsed > Duration::from_secs(30) {
                found.push(format!("{protocol} auto took {elapsed:?}"));
            }
            lab.stop();
            (protocol, found)
        });
    }
    let mut checked = Vec::new();
    let mut found = Vec::new();
    while let Some(joined) = checks.join_next().await {
        let (protocol, problems) = joined.unwrap();
        checked.push(protocol);
        found.extend(problems);
    }
    assert!(found.is_empty(), "{}", found.join("\n"));
    assert_eq!(checked.len(), Protocol::ALL.len());
}
