//! DTLS over UDP: a replay of the real OpenSSL 1.0.1f DTLS association through the sans-IO probe, the
//! DTLS lab in each behaviour over loopback UDP, real DTLS servers from Debian (OpenSSL 3 `s_server`,
//! GnuTLS `gnutls-serv`), and UDP ports that are silent or closed.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::net::{SocketAddr, UdpSocket as StdUdpSocket};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bleedwatch_lab::dtls::{DtlsLabEvent, LabDtlsServer};
use bleedwatch_lab::{Behaviour, LabConfig, LabEvent, LabIdentity};
use bleedwatch_probe::conn::Timeouts;
use bleedwatch_probe::dtls::{probe_dtls_endpoint, DtlsHeartbleedProbe, DtlsProbeConfig};
use bleedwatch_probe::heartbleed::{ConnectionVerdict, HeartbeatRequest, Inconclusive};
use bleedwatch_probe::result::classify;
use bleedwatch_probe::{EndpointOptions, EndpointResult, EndpointTarget, ProbeMode, ScanStatus, Verdict};
use bleedwatch_wire::dtls::{handshake_fragments, records};
use bleedwatch_wire::handshake::{parse_hello_verify_request, ClientHello};
use bleedwatch_wire::heartbeat::HeartbeatMessage;
use bleedwatch_wire::{ContentType, HandshakeType, ProtocolVersion};

use crate::servers::{make_cert, require, spki_sha256, KeyKind};

/// The datagrams of the real association, from the lab crate's fixture (see its README).
fn recorded() -> Vec<(bool, Vec<u8>)> {
    let path = format!("{}/../lab/tests/data/hbprobe-101f-dtls1.datagrams", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    bleedwatch_lab::dtls::parse_datagram_transcript(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The recorded client's heartbeat request, exactly as sent.
fn recorded_request(rec: &[(bool, Vec<u8>)]) -> HeartbeatRequest {
    for (from_client, d) in rec {
        for r in records(d) {
            let r = r.unwrap();
            if *from_client && r.header.content_type == ContentType::HEARTBEAT {
                let hb = HeartbeatMessage::parse(r.fragment).unwrap();
                let present = hb.body.len().min(hb.payload_length as usize);
                return HeartbeatRequest { claimed_len: hb.payload_length, payload: hb.body[..present].to_vec(), padding: hb.body.len() - present };
            }
        }
    }
    panic!("no heartbeat request in the recording");
}

fn replay_probe(rec: &[(bool, Vec<u8>)]) -> DtlsHeartbleedProbe {
    let mut cfg = DtlsProbeConfig::new(ProtocolVersion::DTLS1_0, None, ProbeMode::Safe);
    cfg.probe.test_request = recorded_request(rec);
    cfg.probe.honest_request = None;
    cfg.probe.send_sentinel = false;
    DtlsHeartbleedProbe::new(cfg, Instant::now()).unwrap()
}

/// The real 1.0.1f server's datagrams (HelloVerifyRequest, flight, the 4115-byte answer) fed to a probe
/// that sent the recorded request (claim 4096, nothing present): vulnerable, 4096 bytes over-read.
#[test]
fn replay_of_the_real_101f_dtls_association_is_vulnerable() {
    let rec = recorded();
    let mut probe = replay_probe(&rec);
    let now = Instant::now();
    probe.take_datagrams();
    let server: Vec<&Vec<u8>> = rec.iter().filter(|(c, _)| !c).map(|(_, d)| d).collect();
    assert_eq!(server.len(), 3);

    // The HelloVerifyRequest: our second ClientHello (message_seq 1) carries the real cookie.
    probe.feed_datagram(now, server[0]);
    let hello = probe.take_datagrams();
    assert_eq!(hello.len(), 1);
    let rec_hello = records(&hello[0]).next().unwrap().unwrap();
    let frag = handshake_fragments(rec_hello.fragment).unwrap().remove(0);
    assert_eq!((frag.header.typ, frag.header.message_seq), (HandshakeType::CLIENT_HELLO, 1));
    let real_cookie = {
        let r = records(server[0]).next().unwrap().unwrap();
        parse_hello_verify_request(handshake_fragments(r.fragment).unwrap()[0].body).unwrap().1.to_vec()
    };
    assert_eq!(ClientHello::parse(frag.body).unwrap().cookie, Some(real_cookie.as_slice()));

    // The flight: the heartbeat goes out at epoch 0 in DTLS 1.0, byte for byte the recorded request.
    probe.feed_datagram(now, server[1]);
    let out = probe.take_datagrams();
    assert_eq!(out.len(), 1);
    let sent = records(&out[0]).next().unwrap().unwrap();
    let recorded_hb = records(&rec[4].1).next().unwrap().unwrap();
    assert_eq!((sent.header.content_type, sent.header.version, sent.header.epoch), (ContentType::HEARTBEAT, ProtocolVersion::DTLS1_0, 0));
    assert_eq!(sent.fragment, recorded_hb.fragment);

    // The answer decides at once.
    probe.feed_datagram(now, server[2]);
    assert!(probe.is_done());
    let outcome = probe.into_outcome();
    assert_eq!(outcome.verdict, ConnectionVerdict::Vulnerable, "{:#?}", outcome.log);
    assert_eq!(classify(&outcome).0, Verdict::Vulnerable);
    assert_eq!(outcome.leak.as_ref().map(|l| l.leaked_bytes), Some(4096));
    assert_eq!(outcome.negotiated, Some(ProtocolVersion::DTLS1_0));
    assert_eq!(outcome.heartbeat_extension.map(|m| m.0), Some(1));
    assert_eq!(outcome.chain.len(), 1);
}

/// Without its answer the same recording is never "safe": the server stays silent and the association
/// is taken as dropped, which is inconclusive (only follow-ups on new associations could settle it).
#[test]
fn the_recording_without_its_answer_is_inconclusive() {
    let rec = recorded();
    let mut probe = replay_probe(&rec);
    let start = Instant::now();
    probe.take_datagrams();
    for (_, d) in rec.iter().filter(|(c, _)| !c).take(2) {
        probe.feed_datagram(start, d);
        probe.take_datagrams();
    }
    let mut steps = 0;
    while let Some(t) = probe.poll_timeout() {
        probe.handle_timeout(t);
        probe.take_datagrams();
        steps += 1;
        assert!(steps < 20);
    }
    let outcome = probe.into_outcome();
    assert_eq!(outcome.verdict, ConnectionVerdict::Inconclusive(Inconclusive::AssociationDropped), "{:#?}", outcome.log);
    assert_eq!(classify(&outcome).0, Verdict::Inconclusive);
}

fn opts(mode: ProbeMode) -> EndpointOptions {
    EndpointOptions {
        mode,
        timeouts: Timeouts { connect: Duration::from_secs(5), handshake: Duration::from_secs(15), heartbeat: Duration::from_secs(15) },
        ..EndpointOptions::default()
    }
}

async fn scan_dtls_lab(behaviour: Behaviour, versions: &[ProtocolVersion], mode: ProbeMode) -> (EndpointResult, Vec<(SocketAddr, DtlsLabEvent)>) {
    let identity = Arc::new(LabIdentity::rsa_lab(&["dtls.lab.bleedwatch.test"]).unwrap());
    let server = LabDtlsServer::bind("127.0.0.1:0".parse().unwrap(), LabConfig::new(behaviour, identity).with_versions(versions)).await.unwrap();
    let target = EndpointTarget { addr: server.local_addr(), host: None };
    let started = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(60), probe_dtls_endpoint(&target, &opts(mode))).await.unwrap();
    // Decided by answers: well inside the deadlines, which would make it inconclusive. The fixed lab,
    // like real 1.0.1g `s_server -dtls1`, drops the association silently at the unpadded heartbeat, so
    // each version waits out 2.5 s of silence (twice: first connection and "the test again").
    let bound = if behaviour == Behaviour::Fixed { Duration::from_secs(20) } else { Duration::from_secs(8) };
    assert!(started.elapsed() < bound, "{behaviour:?} took {:?}: {result:#?}", started.elapsed());
    let events = server.events();
    server.stop();
    (result, events)
}

fn check_common(r: &EndpointResult) {
    assert_eq!(r.transport, "udp");
    assert_eq!(r.service, "dtls");
    assert_eq!(r.status, ScanStatus::Success, "{r:#?}");
}

#[tokio::test]
async fn dtls_lab_vulnerable_is_vulnerable_on_both_versions() {
    let (r, events) = scan_dtls_lab(Behaviour::Vulnerable, &[], ProbeMode::Safe).await;
    check_common(&r);
    assert_eq!(r.heartbleed, Verdict::Vulnerable, "{r:#?}");
    assert_eq!(r.versions["dtls1.2"], Verdict::Vulnerable);
    assert_eq!(r.versions["dtls1.0"], Verdict::Vulnerable);
    assert!(r.leak.is_none(), "the safe probe reads no memory");
    assert!(r.certificate.as_ref().unwrap().sans.iter().any(|s| s.contains("dtls.lab.bleedwatch.test")));
    // Every request the lab saw was memory-safe and far below 1.0.1f's abort threshold.
    let heartbeats: Vec<_> = events.iter().filter_map(|(_, e)| match e {
        DtlsLabEvent::Lab(LabEvent::Heartbeat { claimed, overread, .. }) => Some((*claimed, *overread)),
        _ => None,
    }).collect();
    assert!(!heartbeats.is_empty());
    assert!(heartbeats.iter().all(|(claimed, overread)| *claimed <= 4500 && *overread == 0), "{heartbeats:?}");
    assert!(!events.iter().any(|(_, e)| matches!(e, DtlsLabEvent::RefusedHeartbeat { .. })));
}

#[tokio::test]
async fn dtls_lab_fixed_is_not_vulnerable() {
    // Like real 1.0.1g `s_server -dtls1`, the lab drops the association at the unpadded heartbeat
    // without a word; the follow-up association's honest heartbeat, echoed, decides.
    let (r, _) = scan_dtls_lab(Behaviour::Fixed, &[], ProbeMode::Safe).await;
    check_common(&r);
    assert_eq!(r.heartbleed, Verdict::NotVulnerable, "{r:#?}");
    let json = serde_json::to_value(&r).unwrap();
    for d in json["details"].as_array().unwrap() {
        assert_eq!(d["evidence"]["kind"], "honest-heartbeat-echoed-on-follow-up", "{d:#}");
    }
}

#[tokio::test]
async fn dtls_lab_without_heartbeats_has_no_heartbeat() {
    // The heartbeat record draws a fatal unexpected_message alert, and the ServerHello has no
    // heartbeat extension: no-heartbeat (not inconclusive: the alert is an answer).
    let (r, _) = scan_dtls_lab(Behaviour::NoHeartbeat, &[], ProbeMode::Safe).await;
    check_common(&r);
    assert_eq!(r.heartbleed, Verdict::NoHeartbeat, "{r:#?}");
    assert_eq!(r.versions["dtls1.2"], Verdict::NoHeartbeat);
    assert_eq!(r.versions["dtls1.0"], Verdict::NoHeartbeat);
    assert!(r.details.iter().all(|d| d.heartbeat_extension.is_none()));
}

#[tokio::test]
async fn dtls_lab_restricted_to_dtls10_negotiates_down() {
    let (r, _) = scan_dtls_lab(Behaviour::Vulnerable, &[ProtocolVersion::DTLS1_0], ProbeMode::Safe).await;
    check_common(&r);
    assert_eq!(r.heartbleed, Verdict::Vulnerable);
    assert_eq!(r.versions["dtls1.2"], Verdict::NotSupported);
    assert_eq!(r.versions["dtls1.0"], Verdict::Vulnerable);
    assert_eq!(r.details.len(), 1, "one association tested DTLS 1.0 for both offers: {r:#?}");
}

#[tokio::test]
async fn dtls_prove_mode_counts_a_bounded_leak_of_canary_bytes() {
    let (r, events) = scan_dtls_lab(Behaviour::Vulnerable, &[ProtocolVersion::DTLS1_2], ProbeMode::Prove { overread: 32 }).await;
    assert_eq!(r.heartbleed, Verdict::Vulnerable);
    let leak = r.leak.as_ref().unwrap();
    assert_eq!(leak.leaked_bytes, 32);
    use sha2::Digest;
    let canary: Vec<u8> = bleedwatch_lab::CANARY.iter().cycle().take(32).copied().collect();
    assert_eq!(leak.sha256, hex::encode(sha2::Sha256::digest(&canary)));
    assert!(events.iter().any(|(_, e)| matches!(e, DtlsLabEvent::Lab(LabEvent::Heartbeat { overread: 32, .. }))));
    let r = scan_dtls_lab(Behaviour::Fixed, &[ProtocolVersion::DTLS1_2], ProbeMode::Prove { overread: 32 }).await.0;
    assert_eq!(r.heartbleed, Verdict::NotVulnerable);
    assert!(r.leak.is_none());
}

/// A free UDP port on loopback.
fn free_udp_port() -> u16 {
    StdUdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Whether some socket has UDP port `port` bound (from /proc/net/udp and udp6).
fn udp_port_bound(port: u16) -> bool {
    let needle = format!(":{port:04X} ");
    ["/proc/net/udp", "/proc/net/udp6"].iter().any(|p| {
        std::fs::read_to_string(p).map(|t| t.lines().skip(1).any(|l| l.split_whitespace().nth(1).is_some_and(|a| format!("{a} ").ends_with(&needle)))).unwrap_or(false)
    })
}

/// A DTLS server process, killed (and reaped) when dropped. Its stdin stays open: `openssl s_server`
/// shuts down when stdin reaches its end.
struct UdpServer {
    child: Child,
    _stdin: Option<ChildStdin>,
    addr: SocketAddr,
}

impl UdpServer {
    fn start(name: &str, mut cmd: Command, port: u16) -> UdpServer {
        let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap_or_else(|e| panic!("starting {name}: {e}"));
        let stdin = child.stdin.take();
        let mut server = UdpServer { child, _stdin: stdin, addr: SocketAddr::from(([127, 0, 0, 1], port)) };
        let deadline = Instant::now() + Duration::from_secs(15);
        while !udp_port_bound(port) {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("{name} exited with {status} before binding UDP port {port}");
            }
            assert!(Instant::now() < deadline, "{name} did not bind UDP port {port} within 15 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }
}

impl Drop for UdpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn scan_real(addr: SocketAddr) -> EndpointResult {
    scan_real_within(addr, Duration::from_secs(12)).await
}

async fn scan_real_within(addr: SocketAddr, limit: Duration) -> EndpointResult {
    let started = Instant::now();
    let r = probe_dtls_endpoint(&EndpointTarget { addr, host: None }, &opts(ProbeMode::Safe)).await;
    assert!(started.elapsed() < limit, "took {:?}: {r:#?}", started.elapsed());
    r
}

fn cert(dir: &Path, kind: KeyKind, cn: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    make_cert(dir, "dtls", kind, cn)
}

/// OpenSSL 3 has no heartbeat code: no extension, and a fatal unexpected_message alert ("unexpected
/// record") for the heartbeat record. `-dtls1_2` refuses a DTLS 1.0 hello with protocol_version.
#[tokio::test]
async fn openssl3_dtls12_server_has_no_heartbeat() {
    if !require("openssl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = cert(dir.path(), KeyKind::Rsa, "dtls-s-server.test");
    let port = free_udp_port();
    let mut cmd = Command::new("openssl");
    cmd.args(["s_server", "-dtls1_2", "-accept", &format!("127.0.0.1:{port}"), "-cert"]).arg(&cert).arg("-key").arg(&key);
    let server = UdpServer::start("openssl s_server -dtls1_2", cmd, port);
    let r = scan_real(server.addr).await;
    check_common(&r);
    assert_eq!(r.heartbleed, Verdict::NoHeartbeat, "{r:#?}");
    assert_eq!(r.versions["dtls1.2"], Verdict::NoHeartbeat);
    assert_eq!(r.versions["dtls1.0"], Verdict::NotSupported);
    let d12 = r.details.iter().find(|d| d.offered == "dtls1.2").unwrap();
    assert!(d12.log.iter().any(|l| l.contains("HelloVerifyRequest")), "{d12:#?}");
    assert!(d12.log.iter().any(|l| l.contains("alert fatal unexpected_message")), "{d12:#?}");
    let c = r.certificate.as_ref().unwrap();
    assert_eq!(c.subject, "CN=dtls-s-server.test");
    assert_eq!(c.spki_sha256, spki_sha256(&cert));
}

/// GnuTLS drops the association on any record out of place during a DTLS handshake, without an alert
/// and without retransmitting its flight: the unpadded heartbeat, the honest one alone, the sentinel.
/// It then answers a new ClientHello afresh. Nothing it does mid-handshake shows that it read our
/// records, so it is `inconclusive` (association dropped) — it used to be called safe from exactly
/// this silence, which is how the real OpenSSL 1.0.1f was called safe too. The follow-up (the honest
/// heartbeat alone) is tried and gets the same silence; the repeat is not needed then.
async fn gnutls_udp(heartbeat: bool) -> EndpointResult {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = cert(dir.path(), KeyKind::Ecdsa, "dtls-gnutls.test");
    let port = free_udp_port();
    let mut cmd = Command::new("gnutls-serv");
    cmd.arg("--udp");
    if heartbeat {
        cmd.arg("--heartbeat");
    }
    cmd.args(["-p", &port.to_string(), "--x509certfile"]).arg(&cert).arg("--x509keyfile").arg(&key);
    let server = UdpServer::start("gnutls-serv --udp", cmd, port);
    // Two versions, each a first association and a follow-up that both end in a dropped association.
    let r = scan_real_within(server.addr, Duration::from_secs(20)).await;
    assert_eq!(r.transport, "udp");
    assert_eq!(r.certificate.as_ref().unwrap().spki_sha256, spki_sha256(&cert));
    if !heartbeat {
        // Without the extension acknowledged, the drop settles it: no heartbeat code there.
        assert_eq!(r.heartbleed, Verdict::NoHeartbeat, "{r:#?}");
        for d in &r.details {
            let evidence = serde_json::to_value(&d.evidence).unwrap();
            assert_eq!(evidence["kind"], "heartbeat-extension-declined", "{d:#?}");
            assert_eq!(evidence["then"]["kind"], "association-dropped", "{d:#?}");
        }
        return r;
    }
    assert_eq!(r.heartbleed, Verdict::Inconclusive, "{r:#?}");
    for d in &r.details {
        assert_eq!(d.verdict, Verdict::Inconclusive, "{d:#?}");
        let evidence = serde_json::to_value(&d.evidence).unwrap();
        assert_eq!(evidence["kind"], "inconclusive", "{d:#?}");
        assert_eq!(evidence["why"]["kind"], "association-dropped", "{d:#?}");
        assert!(d.log.iter().any(|l| l.starts_with("follow-up 1 (honest heartbeat alone)")), "{d:#?}");
        assert!(!d.log.iter().any(|l| l.starts_with("follow-up 2")), "{d:#?}");
    }
    assert_eq!(r.versions.len(), 2, "{r:#?}");
    r
}

#[tokio::test]
async fn gnutls_with_heartbeat_over_udp_gives_no_evidence() {
    if !require("gnutls-serv") {
        return;
    }
    let r = gnutls_udp(true).await;
    assert!(r.details.iter().all(|d| d.heartbeat_extension.as_deref() == Some("peer_allowed_to_send")), "{r:#?}");
}

#[tokio::test]
async fn gnutls_without_heartbeat_over_udp_has_no_heartbeat() {
    if !require("gnutls-serv") {
        return;
    }
    let r = gnutls_udp(false).await;
    assert!(r.details.iter().all(|d| d.heartbeat_extension.is_none()));
}

/// A UDP port that swallows everything: bounded retransmissions, then inconclusive, never safe.
#[tokio::test]
async fn silent_udp_port_is_inconclusive_after_bounded_retries() {
    let silent = StdUdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    let started = Instant::now();
    let r = probe_dtls_endpoint(&EndpointTarget { addr, host: None }, &opts(ProbeMode::Safe)).await;
    let took = started.elapsed();
    assert_eq!(r.heartbleed, Verdict::Inconclusive, "{r:#?}");
    assert_eq!(r.status, ScanStatus::IoTimeout);
    // 0.5 + 1 + 2 + 4 s of retransmission, one version only (silence to one hello ends the test).
    assert!(took >= Duration::from_secs(7) && took < Duration::from_secs(10), "{took:?}");
    assert_eq!(r.details.len(), 1);
    assert!(r.details[0].log.iter().filter(|l| l.starts_with("retransmission ")).count() == 3, "{:#?}", r.details[0].log);
    // Every datagram was a ClientHello: 1 + 3 retransmissions.
    silent.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 2048];
    let mut hellos = 0;
    while let Ok(n) = silent.recv(&mut buf) {
        assert_eq!(buf[0], 22);
        assert!(n < 1232);
        hellos += 1;
    }
    assert_eq!(hellos, 4);
}

#[tokio::test]
async fn closed_udp_port_is_refused_not_safe() {
    let port = free_udp_port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let started = Instant::now();
    let r = probe_dtls_endpoint(&EndpointTarget { addr, host: None }, &opts(ProbeMode::Safe)).await;
    assert_eq!(r.heartbleed, Verdict::Inconclusive);
    assert_eq!(r.status, ScanStatus::ConnectionRefused, "{r:#?}");
    assert!(started.elapsed() < Duration::from_secs(2));
}

/// What `bleedwatch scan 127.0.0.1:udp/PORT` and `-u -p PORT` run: the scheduler with a UDP item,
/// which must go to the DTLS probe (and the same port number over TCP to the TCP one).
#[tokio::test]
async fn the_scheduler_sends_udp_items_to_the_dtls_probe() {
    use bleedwatch_probe::scan::{run_scan, ScanEvent, ScanItem, SchedulerOptions, TargetHost};
    let identity = Arc::new(LabIdentity::rsa_lab(&["dtls.lab.bleedwatch.test"]).unwrap());
    let server = LabDtlsServer::bind("127.0.0.1:0".parse().unwrap(), LabConfig::new(Behaviour::Vulnerable, identity)).await.unwrap();
    let addr = server.local_addr();
    let items = [(true, "udp/"), (false, "")].map(|(udp, prefix)| ScanItem {
        host: TargetHost::Ip(addr.ip()),
        port: addr.port(),
        udp,
        key: format!("{}:{prefix}{}", addr.ip(), addr.port()),
    });
    let (events, mut received) = tokio::sync::mpsc::channel(8);
    let started = Instant::now();
    let scan = run_scan(items.into_iter(), |_| false, opts(ProbeMode::Safe), SchedulerOptions::default(), events);
    tokio::time::timeout(Duration::from_secs(60), scan).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    let mut results = Vec::new();
    while let Some(event) = received.recv().await {
        match event {
            ScanEvent::Result(result) => results.push(*result),
            ScanEvent::ItemDone { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    server.stop();
    results.sort_by(|a, b| a.transport.cmp(&b.transport));
    let [tcp, udp] = results.as_slice() else { panic!("{results:#?}") };
    check_common(udp);
    assert_eq!(udp.port, addr.port());
    assert_eq!(udp.heartbleed, Verdict::Vulnerable, "{udp:#?}");
    assert!(udp.certificate.as_ref().unwrap().sans.iter().any(|s| s.contains("dtls.lab.bleedwatch.test")));
    // Nothing listens on that port over TCP.
    assert_eq!(tcp.transport, "tcp");
    assert_eq!(tcp.status, ScanStatus::ConnectionRefused, "{tcp:#?}");
}
