//! End-to-end over loopback TCP: the scanner against lab servers in every behaviour and version
//! restriction. The deadlines are long on purpose: a verdict that needed a timeout would show up as
//! "inconclusive" (timeouts are never "safe"), so passing proves the probe decided from answers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bleedwatch_lab::{Behaviour, LabConfig, LabIdentity, LabServer};
use bleedwatch_probe::conn::Timeouts;
use bleedwatch_probe::{probe_endpoint, EndpointOptions, EndpointResult, EndpointTarget, ProbeMode, Verdict};
use bleedwatch_wire::ProtocolVersion;

fn opts(mode: ProbeMode) -> EndpointOptions {
    EndpointOptions {
        mode,
        timeouts: Timeouts { connect: Duration::from_secs(5), handshake: Duration::from_secs(20), heartbeat: Duration::from_secs(20) },
        ..EndpointOptions::default()
    }
}

async fn scan_lab(behaviour: Behaviour, versions: &[ProtocolVersion], mode: ProbeMode) -> EndpointResult {
    let identity = Arc::new(LabIdentity::rsa_lab(&["lab.bleedwatch.test"]).unwrap());
    let server = LabServer::bind("127.0.0.1:0".parse::<SocketAddr>().unwrap(), LabConfig::new(behaviour, identity).with_versions(versions))
        .await
        .unwrap();
    let target = EndpointTarget { addr: server.local_addr(), host: None };
    let started = std::time::Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(60), probe_endpoint(&target, &opts(mode))).await.unwrap();
    // Well under any deadline: decided by answers, not silence.
    assert!(started.elapsed() < Duration::from_secs(10), "{behaviour:?} took {:?}", started.elapsed());
    server.stop();
    result
}

fn versions(r: &EndpointResult) -> Vec<(String, Verdict)> {
    r.versions.iter().map(|(k, v)| (k.clone(), *v)).collect()
}

#[tokio::test]
async fn vulnerable_lab_is_vulnerable_on_every_version() {
    let r = scan_lab(Behaviour::Vulnerable, &ProtocolVersion::PROBEABLE_TLS, ProbeMode::Safe).await;
    assert_eq!(r.heartbleed, Verdict::Vulnerable, "{r:#?}");
    for v in ["ssl3", "tls1.0", "tls1.1", "tls1.2"] {
        assert_eq!(r.versions[v], Verdict::Vulnerable, "{v}: {r:#?}");
    }
    assert!(r.leak.is_none(), "the safe probe reads no memory");
    let cert = r.certificate.as_ref().unwrap();
    assert!(cert.sans.iter().any(|s| s.contains("lab.bleedwatch.test")), "{cert:?}");
}

#[tokio::test]
async fn fixed_lab_is_not_vulnerable_without_waiting() {
    let r = scan_lab(Behaviour::Fixed, &ProtocolVersion::PROBEABLE_TLS, ProbeMode::Safe).await;
    assert_eq!(r.heartbleed, Verdict::NotVulnerable, "{r:#?}");
    assert!(r.details.iter().all(|d| d.reason.as_deref().unwrap_or("").contains("honest heartbeat answered")), "{r:#?}");
}

#[tokio::test]
async fn heartbeatless_lab_has_no_heartbeat_at_every_version() {
    // TLS 1.0/1.1 silently ignore heartbeat records; the sentinel's alert still decides at once.
    let r = scan_lab(Behaviour::NoHeartbeat, &ProtocolVersion::PROBEABLE_TLS, ProbeMode::Safe).await;
    assert_eq!(r.heartbleed, Verdict::NoHeartbeat, "{r:#?}");
    assert_eq!(versions(&r).len(), 4);
}

#[tokio::test]
async fn version_restricted_labs() {
    let r = scan_lab(Behaviour::Vulnerable, &[ProtocolVersion::SSL3], ProbeMode::Safe).await;
    assert_eq!(r.heartbleed, Verdict::Vulnerable);
    assert_eq!(
        versions(&r),
        vec![
            ("ssl3".into(), Verdict::Vulnerable),
            ("tls1.0".into(), Verdict::NotSupported),
            ("tls1.1".into(), Verdict::NotSupported),
            ("tls1.2".into(), Verdict::NotSupported)
        ]
    );
    let r = scan_lab(Behaviour::Fixed, &[ProtocolVersion::TLS1_0], ProbeMode::Safe).await;
    assert_eq!(r.heartbleed, Verdict::NotVulnerable);
    assert_eq!(r.versions["tls1.0"], Verdict::NotVulnerable);
    assert_eq!(r.versions["ssl3"], Verdict::NotSupported);
    assert_eq!(r.versions["tls1.2"], Verdict::NotSupported);
}

#[tokio::test]
async fn prove_mode_counts_a_bounded_leak_of_canary_bytes() {
    let r = scan_lab(Behaviour::Vulnerable, &[ProtocolVersion::TLS1_2], ProbeMode::Prove { overread: 32 }).await;
    assert_eq!(r.heartbleed, Verdict::Vulnerable);
    let leak = r.leak.as_ref().unwrap();
    assert_eq!(leak.leaked_bytes, 32);
    // The digest is of the lab's canary bytes, and the result carries no bytes at all.
    use sha2::Digest;
    let canary: Vec<u8> = bleedwatch_lab::CANARY.iter().cycle().take(32).copied().collect();
    assert_eq!(leak.sha256, hex::encode(sha2::Sha256::digest(&canary)));
    let json = serde_json::to_string(&r).unwrap();
    assert!(!json.contains("CANARY"), "leaked bytes never appear in output");
    // A fixed server drops the over-read: no leak.
    let r = scan_lab(Behaviour::Fixed, &[ProtocolVersion::TLS1_2], ProbeMode::Prove { overread: 32 }).await;
    assert_eq!(r.heartbleed, Verdict::NotVulnerable);
    assert!(r.leak.is_none());
}

#[tokio::test]
async fn closed_port_is_inconclusive_not_safe() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let r = probe_endpoint(&EndpointTarget { addr, host: None }, &opts(ProbeMode::Safe)).await;
    assert_eq!(r.heartbleed, Verdict::Inconclusive);
    assert_eq!(r.status, bleedwatch_probe::ScanStatus::ConnectionRefused);
}
