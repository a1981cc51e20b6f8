//! The client test against real, unmodified OpenSSL 1.0.1f (vulnerable), 1.0.1g (fixed) and 1.0.1f
//! built without heartbeats as `s_client`, from `../shared/data/openssl/` (skipped, loudly, when that
//! directory is not beside the repository). These are ground truth: the verdicts asserted here are
//! what those clients really do.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use bleedwatch_clienttest::{serve_client_tests, ClientTestOptions, ClientTestResult};
use bleedwatch_probe::conn::Timeouts;
use bleedwatch_probe::{ProbeMode, Verdict};

use bleedwatch_testkit::{shared_openssl_dir, OpenSsl101, S101Client};

fn start_s_client(build: OpenSsl101, addr: SocketAddr, version_flag: &str) -> Option<S101Client> {
    let dir = shared_openssl_dir()?;
    Some(build.s_client(&dir, &["-connect", &addr.to_string(), version_flag], Stdio::null(), Stdio::null()))
}

async fn client_case(build: OpenSsl101, version_flag: &str, mode: ProbeMode) -> Option<ClientTestResult> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let opts = ClientTestOptions {
        mode,
        timeouts: Timeouts { connect: Duration::from_secs(5), handshake: Duration::from_secs(10), heartbeat: Duration::from_secs(8) },
        max_clients: Some(1),
        starttls: None,
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    let server = tokio::spawn(serve_client_tests(listener, opts, tx));
    let Some(client) = start_s_client(build, addr, version_flag) else {
        server.abort();
        return None;
    };
    let started = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(30), rx.recv()).await.expect("the client test is bounded").unwrap();
    // Decided by what the client answered, not by waiting out a deadline.
    assert!(started.elapsed() < Duration::from_secs(6), "{build:?} {version_flag}: {:?}: {result:#?}", started.elapsed());
    drop(client);
    let _ = server.await;
    Some(result)
}

/// 1.0.1f's client echoes the unpadded test heartbeat mid-handshake; 1.0.1g's drops it and echoes the
/// honest one; without heartbeat code TLS 1.2 alerts on the heartbeat and TLS 1.0 ignores it and
/// alerts on the sentinel.
#[tokio::test]
async fn openssl101_s_client_verdicts() {
    for (flag, version) in [("-tls1_2", "tls1.2"), ("-tls1", "tls1.0")] {
        for (build, verdict) in [(OpenSsl101::F, Verdict::Vulnerable), (OpenSsl101::G, Verdict::NotVulnerable), (OpenSsl101::FNoHeartbeats, Verdict::NoHeartbeat)] {
            let Some(r) = client_case(build, flag, ProbeMode::Safe).await else { return };
            assert_eq!(r.verdict, verdict, "{build:?} {flag}: {r:#?}");
            assert_eq!(r.tls_version.as_deref(), Some(version), "{r:#?}");
            assert_eq!(r.client_hello.heartbeat_mode.is_some(), build != OpenSsl101::FNoHeartbeats, "{r:#?}");
            assert!(r.leak.is_none());
        }
    }
}

/// `--prove 16` against a real 1.0.1f client: 16 bytes of its memory, reported by count and hash.
#[tokio::test]
async fn openssl101_s_client_prove_16() {
    for flag in ["-tls1_2", "-tls1"] {
        let Some(r) = client_case(OpenSsl101::F, flag, ProbeMode::Prove { overread: 16 }).await else { return };
        assert_eq!(r.verdict, Verdict::Vulnerable, "{flag}: {r:#?}");
        let leak = r.leak.as_ref().unwrap();
        assert_eq!(leak.leaked_bytes, 16, "{r:#?}");
        assert_eq!(leak.sha256.len(), 64);
    }
    let Some(r) = client_case(OpenSsl101::G, "-tls1_2", ProbeMode::Prove { overread: 16 }).await else { return };
    assert_eq!(r.verdict, Verdict::NotVulnerable, "{r:#?}");
    assert!(r.leak.is_none());
}
