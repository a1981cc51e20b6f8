//! Servers that close or go mute after our records. A close (FIN), silence or a close_notify proves
//! nothing about our records: such an endpoint is `inconclusive`, unless the follow-up connections (the
//! honest heartbeat alone, then the test again) get evidence. Each server here is the lab's session
//! (checked against real OpenSSL bytes in crates/lab) behind a gate that ends the connection the way
//! a real server, a load balancer or an IPS might.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bleedwatch_lab::{Behaviour, LabConfig, LabIdentity, LabSession};
use bleedwatch_probe::conn::Timeouts;
use bleedwatch_probe::{probe_endpoint, EndpointOptions, EndpointResult, EndpointTarget, Verdict};
use bleedwatch_wire::record::{encode_records, Deframer, MAX_FRAGMENT_LEN};
use bleedwatch_wire::ProtocolVersion;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the gate does once the server's flight is out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gate {
    /// Close (FIN) as soon as the client sends anything after the flight, without passing it on.
    FinOnNextRecord,
    /// Send a close_notify alert, then FIN, on the next record.
    CloseNotifyOnNextRecord,
    /// As `openssl s_server` without `-www` (and any application whose accept loop gives up when a
    /// heartbeat interrupts the handshake): process one record after the flight, send what it
    /// produced, then close.
    OneRecordThenFin,
    /// Read and ignore everything after the flight, keep the connection open.
    MuteAfterFlight,
    /// `FinOnNextRecord` on the first connection, `MuteAfterFlight` on every later one.
    FinThenMute,
}

struct GateServer {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for GateServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn gate_server(behaviour: Behaviour, gate: Gate) -> GateServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let identity = Arc::new(LabIdentity::rsa_lab(&["gate.bleedwatch.test"]).unwrap());
    let cfg = LabConfig::new(behaviour, identity).with_versions(&[ProtocolVersion::TLS1_2]);
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = connections.clone();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let nth = counter.fetch_add(1, Ordering::SeqCst);
            let gate = match gate {
                Gate::FinThenMute if nth == 0 => Gate::FinOnNextRecord,
                Gate::FinThenMute => Gate::MuteAfterFlight,
                other => other,
            };
            tokio::spawn(serve(stream, LabSession::new(cfg.clone()), gate));
        }
    });
    GateServer { addr, connections, task }
}

async fn serve(mut stream: TcpStream, mut session: LabSession, gate: Gate) {
    let mut buf = vec![0u8; 64 * 1024];
    // Up to the server's flight: the lab answers the ClientHello with it in one go.
    loop {
        let Ok(n) = stream.read(&mut buf).await else { return };
        if n == 0 {
            return;
        }
        session.feed(&buf[..n]);
        let out = session.take_output();
        if !out.is_empty() {
            if stream.write_all(&out).await.is_err() {
                return;
            }
            break;
        }
    }
    let mut deframer = Deframer::new();
    // Bounded: a probe sends three records and waits.
    for _ in 0..64 {
        let n = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        match gate {
            Gate::FinOnNextRecord => break,
            Gate::CloseNotifyOnNextRecord => {
                let _ = stream.write_all(&[21, 3, 3, 0, 2, 1, 0]).await;
                break;
            }
            Gate::MuteAfterFlight | Gate::FinThenMute => continue,
            Gate::OneRecordThenFin => {
                if deframer.push(&buf[..n]).is_err() {
                    return;
                }
                let Ok(Some(record)) = deframer.next_record() else { continue };
                let mut one = Vec::new();
                encode_records(&mut one, record.header.content_type, record.header.version, record.fragment, MAX_FRAGMENT_LEN);
                session.feed(&one);
                let _ = stream.write_all(&session.take_output()).await;
                break;
            }
        }
    }
    let _ = stream.shutdown().await;
}

fn opts(heartbeat: Duration) -> EndpointOptions {
    EndpointOptions {
        timeouts: Timeouts { connect: Duration::from_secs(5), handshake: Duration::from_secs(10), heartbeat },
        versions: ProtocolVersion::PROBEABLE_TLS.to_vec(),
        ..EndpointOptions::default()
    }
}

async fn scan(server: &GateServer, heartbeat: Duration) -> (EndpointResult, Duration) {
    let started = Instant::now();
    let target = EndpointTarget { addr: server.addr, host: None };
    let r = tokio::time::timeout(Duration::from_secs(60), probe_endpoint(&target, &opts(heartbeat))).await.unwrap();
    (r, started.elapsed())
}

fn tls12_evidence(r: &EndpointResult) -> serde_json::Value {
    let detail = r.details.iter().find(|d| d.negotiated.as_deref() == Some("tls1.2")).unwrap();
    serde_json::to_value(&detail.evidence).unwrap()
}

#[tokio::test]
async fn a_plain_fin_after_the_flight_is_never_safe() {
    // Fixed or vulnerable behind the gate: the probe cannot tell, and must say so.
    for behaviour in [Behaviour::Fixed, Behaviour::Vulnerable] {
        let server = gate_server(behaviour, Gate::FinOnNextRecord).await;
        let (r, took) = scan(&server, Duration::from_secs(10)).await;
        assert_eq!(r.heartbleed, Verdict::Inconclusive, "{behaviour:?}: {r:#?}");
        assert_eq!(r.versions["tls1.2"], Verdict::Inconclusive, "{r:#?}");
        let evidence = tls12_evidence(&r);
        assert_eq!(evidence["kind"], "inconclusive", "{r:#?}");
        assert_eq!(evidence["why"], serde_json::json!({"kind": "closed", "phase": "heartbeat"}), "{r:#?}");
        assert!(r.reason.as_deref().unwrap_or("").contains("a close proves nothing"), "{r:#?}");
        // The follow-up was tried (and closed too), the repeat was not needed: 2 connections at TLS 1.2,
        // then each lower version is refused by the TLS 1.2-only lab.
        let detail = r.details.iter().find(|d| d.negotiated.as_deref() == Some("tls1.2")).unwrap();
        assert!(detail.log.iter().any(|l| l.starts_with("follow-up 1 (honest heartbeat alone)")), "{detail:#?}");
        assert!(!detail.log.iter().any(|l| l.starts_with("follow-up 2")), "{detail:#?}");
        assert!(took < Duration::from_secs(5), "decided by the closes, not a timeout: {took:?}");
    }
}

#[tokio::test]
async fn a_fin_after_a_hello_without_the_extension_means_no_heartbeat() {
    // Every OpenSSL with the bug acknowledges the extension we offer; the build without heartbeats
    // does not. That, not the close, is the evidence.
    let server = gate_server(Behaviour::NoHeartbeat, Gate::FinOnNextRecord).await;
    let (r, _) = scan(&server, Duration::from_secs(10)).await;
    assert_eq!(r.heartbleed, Verdict::NoHeartbeat, "{r:#?}");
    let evidence = tls12_evidence(&r);
    assert_eq!(evidence, serde_json::json!({"kind": "heartbeat-extension-declined", "then": {"kind": "closed", "phase": "heartbeat"}}));
    assert_eq!(server.connections.load(Ordering::SeqCst), 1 + 3, "no follow-up needed: {r:#?}");
}

#[tokio::test]
async fn close_notify_is_a_close_not_a_refusal() {
    let server = gate_server(Behaviour::Fixed, Gate::CloseNotifyOnNextRecord).await;
    let (r, _) = scan(&server, Duration::from_secs(10)).await;
    assert_eq!(r.versions["tls1.2"], Verdict::Inconclusive, "{r:#?}");
    assert_eq!(tls12_evidence(&r)["why"]["kind"], "closed", "{r:#?}");
}

#[tokio::test]
async fn a_server_that_closes_after_one_record_is_judged_on_follow_ups() {
    // Like 1.0.1g's s_server in echo mode: it drops the unpadded heartbeat, and closes; asked again with
    // the honest heartbeat alone it echoes it (then closes); the test again: closed again.
    let server = gate_server(Behaviour::Fixed, Gate::OneRecordThenFin).await;
    let (r, took) = scan(&server, Duration::from_secs(10)).await;
    assert_eq!(r.heartbleed, Verdict::NotVulnerable, "{r:#?}");
    let evidence = tls12_evidence(&r);
    assert_eq!(evidence["kind"], "honest-heartbeat-echoed-on-follow-up", "{r:#?}");
    assert_eq!(evidence["first_connection"], serde_json::json!({"kind": "closed", "phase": "heartbeat"}), "{r:#?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    // First connection, honest alone, test again; then one connection per lower version (refused).
    assert_eq!(server.connections.load(Ordering::SeqCst), 3 + 3, "{r:#?}");

    // Like 1.0.1f's s_server in echo mode: the test heartbeat is echoed before the close.
    let server = gate_server(Behaviour::Vulnerable, Gate::OneRecordThenFin).await;
    let (r, _) = scan(&server, Duration::from_secs(10)).await;
    assert_eq!(r.heartbleed, Verdict::Vulnerable, "{r:#?}");
    assert_eq!(tls12_evidence(&r)["kind"], "test-heartbeat-echoed");
    assert_eq!(server.connections.load(Ordering::SeqCst), 1 + 3);

    // Without heartbeats at TLS 1.2: the first record draws a fatal alert, evidence at once.
    let server = gate_server(Behaviour::NoHeartbeat, Gate::OneRecordThenFin).await;
    let (r, _) = scan(&server, Duration::from_secs(10)).await;
    assert_eq!(r.heartbleed, Verdict::NoHeartbeat, "{r:#?}");
    assert_eq!(tls12_evidence(&r), serde_json::json!({"kind": "fatal-alert-after-records", "alert": "unexpected_message"}));
}

#[tokio::test]
async fn a_server_mute_after_its_flight_costs_one_timeout_not_one_per_version() {
    let server = gate_server(Behaviour::Fixed, Gate::MuteAfterFlight).await;
    let heartbeat = Duration::from_secs(2);
    let (r, took) = scan(&server, heartbeat).await;
    assert_eq!(r.heartbleed, Verdict::Inconclusive, "{r:#?}");
    assert_eq!(tls12_evidence(&r)["why"], serde_json::json!({"kind": "timeout", "phase": "heartbeat"}));
    assert!(took >= heartbeat && took < heartbeat * 2, "one heartbeat timeout, not four: {took:?}");
    assert_eq!(server.connections.load(Ordering::SeqCst), 1, "{r:#?}");
    assert!(r.details[0].log.iter().any(|l| l.contains("not testing tls1.1, tls1.0, ssl3")), "{r:#?}");
}

#[tokio::test]
async fn a_follow_up_that_times_out_ends_the_sweep() {
    // Closed on the first connection, mute on the follow-up: one heartbeat timeout for the endpoint,
    // and the version stays inconclusive (the timeout is its last word).
    let server = gate_server(Behaviour::Fixed, Gate::FinThenMute).await;
    let heartbeat = Duration::from_secs(2);
    let (r, took) = scan(&server, heartbeat).await;
    assert_eq!(r.heartbleed, Verdict::Inconclusive, "{r:#?}");
    assert_eq!(tls12_evidence(&r)["why"], serde_json::json!({"kind": "timeout", "phase": "heartbeat"}), "{r:#?}");
    assert!(took >= heartbeat && took < heartbeat * 2, "one heartbeat timeout, not one per version: {took:?}");
    assert_eq!(server.connections.load(Ordering::SeqCst), 2, "first connection and one follow-up: {r:#?}");
}
