//! The client test over loopback TCP against the lab's TLS client, which behaves like OpenSSL 1.0.1f,
//! 1.0.1g and a build without heartbeats (checked against real s_client captures in the lab crate).

use std::time::Duration;

use bleedwatch_lab::client::run_lab_client;
use bleedwatch_lab::Behaviour;
use bleedwatch_clienttest::{serve_client_tests, ClientTestOptions};
use bleedwatch_probe::conn::Timeouts;
use bleedwatch_probe::{ProbeMode, Verdict};
use bleedwatch_wire::ProtocolVersion;

/// Options for testing the one client a test starts, with generous timeouts for a loaded machine.
pub fn one_client(mode: ProbeMode) -> ClientTestOptions {
    ClientTestOptions {
        mode,
        timeouts: Timeouts { connect: Duration::from_secs(5), handshake: Duration::from_secs(20), heartbeat: Duration::from_secs(20) },
        max_clients: Some(1),
        starttls: None,
    }
}

async fn test_client(behaviour: Behaviour, version: ProtocolVersion, mode: ProbeMode) -> bleedwatch_clienttest::ClientTestResult {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let opts = one_client(mode);
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    let server = tokio::spawn(serve_client_tests(listener, opts, tx));
    let started = std::time::Instant::now();
    let client = tokio::spawn(run_lab_client(addr, behaviour, version, Duration::from_secs(20)));
    let result = tokio::time::timeout(Duration::from_secs(30), rx.recv()).await.unwrap().unwrap();
    // Decided by the client's answers, not by waiting out a deadline.
    assert!(started.elapsed() < Duration::from_secs(10), "{behaviour:?}: {:?}", started.elapsed());
    let _ = client.await;
    let _ = server.await;
    result
}

#[tokio::test]
async fn vulnerable_fixed_and_heartbeatless_clients() {
    for version in [ProtocolVersion::TLS1_2, ProtocolVersion::TLS1_0] {
        let r = test_client(Behaviour::Vulnerable, version, ProbeMode::Safe).await;
        assert_eq!(r.verdict, Verdict::Vulnerable, "{r:#?}");
        assert!(r.leak.is_none());
        assert_eq!(r.tls_version.as_deref(), Some(version.name().unwrap()));
        let r = test_client(Behaviour::Fixed, version, ProbeMode::Safe).await;
        assert_eq!(r.verdict, Verdict::NotVulnerable, "{r:#?}");
        // TLS 1.0 without heartbeat code ignores the record; the sentinel's alert still decides.
        let r = test_client(Behaviour::NoHeartbeat, version, ProbeMode::Safe).await;
        assert_eq!(r.verdict, Verdict::NoHeartbeat, "{r:#?}");
    }
}

#[tokio::test]
async fn prove_mode_counts_a_clients_canary_leak() {
    let r = test_client(Behaviour::Vulnerable, ProtocolVersion::TLS1_2, ProbeMode::Prove { overread: 24 }).await;
    assert_eq!(r.verdict, Verdict::Vulnerable);
    assert_eq!(r.leak.as_ref().unwrap().leaked_bytes, 24);
}
