//! The scanner and the lab against real, unmodified OpenSSL 1.0.1f (vulnerable),
//! 1.0.1g (fixed) and 1.0.1f built without heartbeats, from `../shared/data/openssl/` (skipped, loudly,
//! when that directory is not beside the repository). These are ground truth: the verdicts asserted
//! here are what those servers and clients really do, and the lab must give the same ones.
//!
//! `s_server` quirks that shape these tests (see the README there): one connection at a time; `-www`
//! sleeps 1 s per heartbeat read during the handshake; echo mode and `-dtls1` drop the connection after
//! a heartbeat; answers under ~4 KiB stay in the handshake write buffer; `-dtls1` aborts on claims above
//! 16365 bytes.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bleedwatch_lab::dtls::{DtlsLabOptions, LabDtlsServer};
use bleedwatch_lab::{Behaviour, LabConfig, LabIdentity, LabServer};
use bleedwatch_probe::conn::Timeouts;
use bleedwatch_probe::dtls::probe_dtls_endpoint;
use bleedwatch_probe::{probe_endpoint, EndpointOptions, EndpointResult, EndpointTarget, ProbeMode, ScanStatus, Verdict};
use bleedwatch_wire::ProtocolVersion;

use crate::servers::{bind_loopback_shim, shared_openssl_dir, KeyKind, OpenSsl101, S101Server};

/// Generous but bounded: `-www` costs a second per heartbeat, and versions queue behind each other.
fn opts(mode: ProbeMode) -> EndpointOptions {
    EndpointOptions {
        mode,
        timeouts: Timeouts { connect: Duration::from_secs(5), handshake: Duration::from_secs(10), heartbeat: Duration::from_secs(8) },
        ..EndpointOptions::default()
    }
}

async fn scan_tcp(addr: SocketAddr, mode: ProbeMode) -> EndpointResult {
    let target = EndpointTarget { addr, host: None };
    tokio::time::timeout(Duration::from_secs(120), probe_endpoint(&target, &opts(mode))).await.expect("the scan is bounded")
}

async fn scan_udp(addr: SocketAddr) -> EndpointResult {
    let target = EndpointTarget { addr, host: None };
    tokio::time::timeout(Duration::from_secs(120), probe_dtls_endpoint(&target, &opts(ProbeMode::Safe))).await.expect("the scan is bounded")
}

/// The `evidence.kind` of the connection that decided `version` (the last one that negotiated it, or
/// else the last one that offered it), read from the JSON contract.
fn evidence_kind(r: &EndpointResult, version: &str) -> Option<String> {
    let json = serde_json::to_value(r).unwrap();
    let details = json["details"].as_array().cloned().unwrap_or_default();
    let decided = details.iter().rev().find(|d| d["negotiated"] == version).or_else(|| details.iter().rev().find(|d| d["offered"] == version))?;
    decided["evidence"]["kind"].as_str().map(str::to_owned)
}

/// Per-version verdicts as names, for comparisons that print well.
fn verdicts(r: &EndpointResult) -> BTreeMap<String, Verdict> {
    r.versions.clone()
}

/// Checks `version`'s verdict and, for safe verdicts, the evidence named in `details`.
fn expect(r: &EndpointResult, version: &str, verdict: Verdict, evidence: Option<&str>) {
    assert_eq!(r.versions.get(version), Some(&verdict), "{version}: {r:#?}");
    if let Some(kind) = evidence {
        assert_eq!(evidence_kind(r, version).as_deref(), Some(kind), "{version}: evidence: {:#}", serde_json::to_value(r).unwrap()["details"]);
    }
}

const TLS: [&str; 4] = ["tls1.2", "tls1.1", "tls1.0", "ssl3"];

/// What each real build answers over TCP, in each `s_server` mode. 1.0.1f echoes the unpadded test
/// heartbeat (4500 bytes: its answer leaves the 4 KiB write buffer at once). 1.0.1g drops it: with
/// `-www` it goes on to echo the honest heartbeat; in echo mode it drops the connection (a close that
/// proves nothing), and only a follow-up connection with the honest heartbeat alone shows that bounds are
/// checked. Without heartbeat code, TLS 1.2 and SSLv3 alert on the heartbeat record, TLS 1.0/1.1 ignore it
/// and alert on the sentinel; the ServerHello never carries the extension.
fn expected_tcp(build: OpenSsl101, www: bool) -> (Verdict, Option<&'static str>) {
    match (build, www) {
        (OpenSsl101::F, _) => (Verdict::Vulnerable, Some("test-heartbeat-echoed")),
        (OpenSsl101::G, true) => (Verdict::NotVulnerable, Some("honest-heartbeat-echoed")),
        (OpenSsl101::G, false) => (Verdict::NotVulnerable, Some("honest-heartbeat-echoed-on-follow-up")),
        (OpenSsl101::FNoHeartbeats, _) => (Verdict::NoHeartbeat, Some("fatal-alert-after-records")),
    }
}

async fn tcp_case(build: OpenSsl101, www: bool) {
    let args: &[&str] = if www { &["-www"] } else { &[] };
    let Some(server) = S101Server::start(build, KeyKind::Rsa, args) else { return };
    let r = scan_tcp(server.addr, ProbeMode::Safe).await;
    assert_eq!(r.status, ScanStatus::Success, "{r:#?}\n{}", server.output());
    let (verdict, evidence) = expected_tcp(build, www);
    assert_eq!(r.heartbleed, verdict, "{build:?} www={www}: {r:#?}");
    for v in TLS {
        expect(&r, v, verdict, evidence);
    }
    let tls12 = r.details.iter().rev().find(|d| d.negotiated.as_deref() == Some("tls1.2")).unwrap();
    let extension = tls12.heartbeat_extension.is_some();
    assert_eq!(extension, build != OpenSsl101::FNoHeartbeats, "{tls12:#?}");
    let c = r.certificate.as_ref().unwrap();
    assert_eq!((c.subject.as_str(), c.key_type.as_str()), ("CN=openssl101.test", "rsa"));
    assert!(r.leak.is_none(), "the safe probe reads no memory");
}

#[tokio::test]
async fn openssl101_tcp_www_101f_is_vulnerable() {
    tcp_case(OpenSsl101::F, true).await;
}

#[tokio::test]
async fn openssl101_tcp_echo_101f_is_vulnerable() {
    tcp_case(OpenSsl101::F, false).await;
}

#[tokio::test]
async fn openssl101_tcp_www_101g_is_not_vulnerable() {
    tcp_case(OpenSsl101::G, true).await;
}

#[tokio::test]
async fn openssl101_tcp_echo_101g_is_not_vulnerable_by_follow_up() {
    tcp_case(OpenSsl101::G, false).await;
}

#[tokio::test]
async fn openssl101_tcp_www_nohb_has_no_heartbeat() {
    tcp_case(OpenSsl101::FNoHeartbeats, true).await;
}

#[tokio::test]
async fn openssl101_tcp_echo_nohb_has_no_heartbeat() {
    tcp_case(OpenSsl101::FNoHeartbeats, false).await;
}

/// `-ssl3` / `-tls1`: the one version the server speaks is vulnerable; the others are not supported
/// (refused, or answered in the server's own version and tested there).
#[tokio::test]
async fn openssl101_single_version_servers_are_vulnerable_at_that_version() {
    for (flag, only) in [("-ssl3", "ssl3"), ("-tls1", "tls1.0")] {
        let Some(server) = S101Server::start(OpenSsl101::F, KeyKind::Rsa, &["-www", flag]) else { return };
        let r = scan_tcp(server.addr, ProbeMode::Safe).await;
        assert_eq!(r.heartbleed, Verdict::Vulnerable, "{flag}: {r:#?}");
        for v in TLS {
            let want = if v == only { Verdict::Vulnerable } else { Verdict::NotSupported };
            assert_eq!(r.versions.get(v), Some(&want), "{flag} {v}: {r:#?}");
        }
        assert_eq!(evidence_kind(&r, only).as_deref(), Some("test-heartbeat-echoed"), "{flag}: {:#?}", r.details);
    }
}

#[tokio::test]
async fn openssl101_ecdsa_certificate_101f_is_vulnerable() {
    let Some(server) = S101Server::start(OpenSsl101::F, KeyKind::Ecdsa, &["-www"]) else { return };
    let r = scan_tcp(server.addr, ProbeMode::Safe).await;
    assert_eq!(r.heartbleed, Verdict::Vulnerable, "{r:#?}");
    expect(&r, "tls1.2", Verdict::Vulnerable, Some("test-heartbeat-echoed"));
    let c = r.certificate.as_ref().unwrap();
    assert_eq!(c.key_type, "ec", "{c:#?}");
    // The suite 1.0.1f chose needs the ECDSA key.
    let tls12 = r.details.iter().find(|d| d.negotiated.as_deref() == Some("tls1.2")).unwrap();
    assert!(tls12.cipher.as_deref().unwrap_or("").contains("ECDSA"), "{tls12:#?}");
}

/// `--prove 16`: 1.0.1f returns 16 bytes of its memory; only their count and SHA-256 are reported.
#[tokio::test]
async fn openssl101_prove_16_reports_16_leaked_bytes_by_count_and_hash() {
    let Some(server) = S101Server::start(OpenSsl101::F, KeyKind::Rsa, &["-www"]) else { return };
    let r = scan_tcp(server.addr, ProbeMode::Prove { overread: 16 }).await;
    assert_eq!(r.heartbleed, Verdict::Vulnerable, "{r:#?}");
    let leak = r.leak.as_ref().expect("a leak was proven");
    assert_eq!(leak.leaked_bytes, 16);
    assert_eq!(leak.sha256.len(), 64);
    assert!(leak.sha256.bytes().all(|b| b.is_ascii_hexdigit()));
    let json = serde_json::to_value(&r).unwrap();
    let keys: Vec<&String> = json["leak"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["leaked_bytes", "sha256"], "nothing but the count and the hash");
}

/// `-dtls1` (DTLS 1.0 only; our DTLS 1.2 hello is answered in DTLS 1.0). 1.0.1f echoes the 4500-byte
/// test heartbeat in a datagram of its own; 1.0.1g drops it and the association with it (silence, which
/// proves nothing), so the follow-up association's honest heartbeat decides; without heartbeat code the
/// record draws a fatal unexpected_message.
fn expected_dtls(build: OpenSsl101) -> (Verdict, &'static str) {
    match build {
        OpenSsl101::F => (Verdict::Vulnerable, "test-heartbeat-echoed"),
        OpenSsl101::G => (Verdict::NotVulnerable, "honest-heartbeat-echoed-on-follow-up"),
        OpenSsl101::FNoHeartbeats => (Verdict::NoHeartbeat, "fatal-alert-after-records"),
    }
}

async fn dtls_case(build: OpenSsl101) {
    let Some(server) = S101Server::start(build, KeyKind::Rsa, &["-dtls1"]) else { return };
    let r = scan_udp(server.addr).await;
    assert_eq!((r.transport.as_str(), r.service.as_str(), r.status), ("udp", "dtls", ScanStatus::Success), "{r:#?}\n{}", server.output());
    let (verdict, evidence) = expected_dtls(build);
    assert_eq!(r.heartbleed, verdict, "{build:?}: {r:#?}\n{}", server.output());
    expect(&r, "dtls1.0", verdict, Some(evidence));
    assert_eq!(r.versions.get("dtls1.2"), Some(&Verdict::NotSupported), "{r:#?}");
}

#[tokio::test]
async fn openssl101_dtls_101f_is_vulnerable() {
    dtls_case(OpenSsl101::F).await;
}

#[tokio::test]
async fn openssl101_dtls_101g_is_not_vulnerable() {
    dtls_case(OpenSsl101::G).await;
}

#[tokio::test]
async fn openssl101_dtls_nohb_has_no_heartbeat() {
    dtls_case(OpenSsl101::FNoHeartbeats).await;
}

// --- the lab against the same real servers ---

/// The DTLS lab's shell as `s_server -dtls1` has it: one association at a time.
fn s_server_dtls1() -> DtlsLabOptions {
    DtlsLabOptions { one_association: true, ..DtlsLabOptions::default() }
}

fn behaviour_of(build: OpenSsl101) -> Behaviour {
    match build {
        OpenSsl101::F => Behaviour::Vulnerable,
        OpenSsl101::G => Behaviour::Fixed,
        OpenSsl101::FNoHeartbeats => Behaviour::NoHeartbeat,
    }
}

/// Per-version verdicts with the evidence kind and the reason of each version, for a side-by-side
/// comparison.
fn verdicts_and_evidence(r: &EndpointResult) -> Vec<(String, Verdict, Option<String>, Option<String>)> {
    let json = serde_json::to_value(r).unwrap();
    let details = json["details"].as_array().cloned().unwrap_or_default();
    let reason = |version: &str| {
        let decided = details.iter().rev().find(|d| d["negotiated"] == version)?;
        decided["reason"].as_str().map(str::to_owned)
    };
    verdicts(r)
        .into_iter()
        .map(|(v, verdict)| {
            let decided = verdict != Verdict::NotSupported;
            (v.clone(), verdict, evidence_kind(r, &v).filter(|_| decided), reason(&v).filter(|_| decided))
        })
        .collect()
}

/// The lab's TCP server imitates `s_server -www` and, with [`LabConfig::echo_mode`], `s_server` in echo
/// mode: the same probe gives it the same per-version verdicts, and the same evidence, as the real build.
#[tokio::test]
async fn openssl101_lab_tcp_matches_real_s_server_www_and_echo() {
    for www in [true, false] {
        for build in OpenSsl101::ALL {
            let args: &[&str] = if www { &["-www"] } else { &[] };
            let Some(server) = S101Server::start(build, KeyKind::Rsa, args) else { return };
            let real = scan_tcp(server.addr, ProbeMode::Safe).await;
            drop(server);
            let identity = Arc::new(LabIdentity::rsa_lab(&["lab.openssl101.test"]).unwrap());
            let cfg = LabConfig::new(behaviour_of(build), identity);
            let lab = LabServer::bind("127.0.0.1:0".parse().unwrap(), if www { cfg } else { cfg.echo_mode() }).await.unwrap();
            let imitation = scan_tcp(lab.local_addr(), ProbeMode::Safe).await;
            lab.stop();
            assert_eq!(verdicts_and_evidence(&imitation), verdicts_and_evidence(&real), "{build:?} www={www}: lab {imitation:#?}\nreal {real:#?}");
            assert_eq!(imitation.heartbleed, real.heartbleed);
        }
    }
}

/// The lab's DTLS server imitates `s_server -dtls1` (DTLS 1.0 only, one association at a time).
#[tokio::test]
async fn openssl101_lab_dtls_matches_real_s_server_dtls1() {
    for build in OpenSsl101::ALL {
        let Some(server) = S101Server::start(build, KeyKind::Rsa, &["-dtls1"]) else { return };
        let real = scan_udp(server.addr).await;
        drop(server);
        let identity = Arc::new(LabIdentity::rsa_lab(&["lab.openssl101.test"]).unwrap());
        let cfg = LabConfig::new(behaviour_of(build), identity).with_versions(&[ProtocolVersion::DTLS1_0]);
        let lab = LabDtlsServer::bind_with("127.0.0.1:0".parse().unwrap(), cfg, s_server_dtls1()).await.unwrap();
        let imitation = scan_udp(lab.local_addr()).await;
        lab.stop();
        assert_eq!(verdicts_and_evidence(&imitation), verdicts_and_evidence(&real), "{build:?}: lab {imitation:#?}\nreal {real:#?}");
        assert_eq!(imitation.heartbleed, real.heartbleed);
    }
}

/// Keeps the shim's build in this module's tests even when only the client tests run.
#[test]
fn openssl101_shim_builds() {
    let Some(dir) = shared_openssl_dir() else { return };
    assert!(bind_loopback_shim(&dir).is_file());
}

/// Runs a real 1.0.1f `s_client -msg` against `addr`, sends one heartbeat with its `B` command once the
/// handshake is done, and returns what it printed after about three seconds.
fn s_client_heartbeat_log(addr: SocketAddr) -> Option<String> {
    let dir = shared_openssl_dir()?;
    let (out, err) = (tempfile::NamedTempFile::new().unwrap(), tempfile::NamedTempFile::new().unwrap());
    let client = OpenSsl101::F.s_client(&dir, &["-msg", "-tls1_2", "-connect", &addr.to_string()], out.reopen().unwrap().into(), err.reopen().unwrap().into());
    {
        use std::io::Write;
        // s_client reads its terminal only once the handshake is done; the line waits in the pipe.
        let mut stdin = client.stdin.as_ref().unwrap();
        stdin.write_all(b"B\n").unwrap();
    }
    std::thread::sleep(Duration::from_secs(3));
    drop(client);
    // -msg lines go to standard output, "HEARTBEATING" to standard error.
    Some(std::fs::read_to_string(out.path()).unwrap() + &std::fs::read_to_string(err.path()).unwrap())
}

/// The honeypot's server (the lab as 1.0.1f) and a real 1.0.1f `s_server -www` meet the same real 1.0.1f
/// `s_client` alike: a completed TLS 1.2 handshake, and its heartbeat (the `B` command, padded, inside the
/// encrypted session) answered. The honeypot records it as an honest, encrypted heartbeat.
#[tokio::test]
async fn openssl101_honeypot_answers_a_real_s_client_heartbeat_like_101f() {
    let Some(server) = S101Server::start(OpenSsl101::F, KeyKind::Rsa, &["-www"]) else { return };
    let addr = server.addr;
    let real = tokio::task::spawn_blocking(move || s_client_heartbeat_log(addr)).await.unwrap().unwrap();
    drop(server);
    let identity = Arc::new(LabIdentity::rsa_lab(&["honeypot.openssl101.test"]).unwrap());
    let honeypot = LabServer::bind("127.0.0.1:0".parse().unwrap(), LabConfig::new(Behaviour::Vulnerable, identity)).await.unwrap();
    let addr = honeypot.local_addr();
    let imitation = tokio::task::spawn_blocking(move || s_client_heartbeat_log(addr)).await.unwrap().unwrap();
    let events = honeypot.events();
    honeypot.stop();
    for (who, log) in [("real 1.0.1f", &real), ("honeypot", &imitation)] {
        assert!(log.contains("Protocol  : TLSv1.2"), "{who}: the handshake completes: {log}");
        assert!(log.contains("HEARTBEATING"), "{who}: s_client sent its heartbeat: {log}");
        assert!(log.lines().any(|l| l.starts_with("<<<") && l.contains("HeartbeatResponse")), "{who}: the heartbeat is answered: {log}");
    }
    let heartbeats: Vec<_> = events
        .iter()
        .filter_map(|(_, e)| match e {
            bleedwatch_lab::LabEvent::Heartbeat { overread, padding, answered, encrypted, .. } => Some((*overread, *padding, *answered, *encrypted)),
            _ => None,
        })
        .collect();
    // s_client's heartbeat: 18 payload bytes, 16 of padding, nothing to over-read — "honest".
    assert_eq!(heartbeats, vec![(0, 16, true, true)], "{events:?}");
}

// --- single connections: the facts the endpoint verdicts above rest on ---

use bleedwatch_probe::conn::run_probe;
use bleedwatch_probe::dtls::{run_dtls_probe, DtlsProbeConfig};
use bleedwatch_probe::heartbleed::HeartbeatRequest;
use bleedwatch_probe::{ConnectionVerdict, ProbeConfig};

fn connection_timeouts() -> Timeouts {
    Timeouts { connect: Duration::from_secs(5), handshake: Duration::from_secs(10), heartbeat: Duration::from_secs(4) }
}

/// One request alone, as a follow-up connection sends it: `len` payload bytes and `padding`.
fn alone(cfg: &mut ProbeConfig, len: usize, padding: usize) {
    cfg.test_request = HeartbeatRequest { claimed_len: len as u16, payload: vec![0x5a; len], padding };
    cfg.honest_request = None;
    cfg.send_sentinel = false;
}

/// Over DTLS, 1.0.1f echoes an unpadded heartbeat whose answer exceeds its 4 KiB write buffer and
/// stays silent to one of 512 bytes (its answer is lost with the association): that silence is not
/// evidence of anything.
#[tokio::test]
async fn openssl101_dtls_101f_echoes_4500_bytes_and_is_silent_to_512() {
    let Some(server) = S101Server::start(OpenSsl101::F, KeyKind::Rsa, &["-dtls1"]) else { return };
    for (len, echoed) in [(4500, true), (512, false)] {
        let mut cfg = DtlsProbeConfig::new(ProtocolVersion::DTLS1_0, None, ProbeMode::Safe);
        alone(&mut cfg.probe, len, 0);
        let outcome = run_dtls_probe(server.addr, cfg, &connection_timeouts()).await.unwrap();
        assert_eq!(outcome.negotiated, Some(ProtocolVersion::DTLS1_0), "{len}: {:#?}", outcome.log);
        assert_eq!(outcome.verdict == ConnectionVerdict::Vulnerable, echoed, "{len}: {:?} {:#?}\n{}", outcome.verdict, outcome.log, server.output());
        assert_ne!(outcome.verdict, ConnectionVerdict::NotVulnerable, "{len}");
    }
}

/// 1.0.1g in the modes that drop the connection after a heartbeat (TCP echo mode, `-dtls1`): the
/// unpadded 4500-byte heartbeat gets no answer, and the padded one sent alone on a connection of its
/// own — the follow-up — is echoed. That echo, not the close, is what shows the bounds check. (A fresh
/// server for each: see the next test for what an abandoned DTLS association does to `s_server`.)
#[tokio::test]
async fn openssl101_101g_drops_unpadded_and_echoes_a_padded_heartbeat_sent_alone() {
    for dtls in [false, true] {
        for (padding, echoed) in [(0, false), (16, true)] {
            let args: &[&str] = if dtls { &["-dtls1"] } else { &[] };
            let Some(server) = S101Server::start(OpenSsl101::G, KeyKind::Rsa, args) else { return };
            let outcome = if dtls {
                let mut cfg = DtlsProbeConfig::new(ProtocolVersion::DTLS1_0, None, ProbeMode::Safe);
                alone(&mut cfg.probe, 4500, padding);
                run_dtls_probe(server.addr, cfg, &connection_timeouts()).await.unwrap()
            } else {
                let mut cfg = ProbeConfig::with_payload(ProtocolVersion::TLS1_2, None, ProbeMode::Safe, 4500);
                alone(&mut cfg, 4500, padding);
                run_probe(server.addr, cfg, &connection_timeouts()).await.unwrap()
            };
            // The probe calls an echo of its first request "vulnerable"; here that request is valid.
            assert_eq!(
                outcome.verdict == ConnectionVerdict::Vulnerable,
                echoed,
                "dtls={dtls} padding={padding}: {:?} {:#?}\n{}",
                outcome.verdict,
                outcome.log,
                server.output()
            );
            assert_ne!(outcome.verdict, ConnectionVerdict::NotVulnerable);
        }
    }
}

/// `s_server -dtls1` serves one association at a time, and one that a peer started and abandoned
/// after the HelloVerifyRequest (as a probe does when it checks, with a new ClientHello, that its
/// association was dropped) holds it: 1.0.1 sets no DTLS timer there, so a ClientHello from any other
/// address is never answered. A DTLS follow-up must therefore go on with the association it started
/// (same socket, the cookie it was given), not open another one. The lab, with one association, does
/// the same.
#[tokio::test]
async fn openssl101_dtls_s_server_is_held_by_an_abandoned_cookie_exchange() {
    let Some(server) = S101Server::start(OpenSsl101::G, KeyKind::Rsa, &["-dtls1"]) else { return };
    held_by_an_abandoned_cookie_exchange(server.addr).await;
    drop(server);
    let identity = Arc::new(LabIdentity::rsa_lab(&["lab.openssl101.test"]).unwrap());
    let cfg = LabConfig::new(Behaviour::Fixed, identity).with_versions(&[ProtocolVersion::DTLS1_0]);
    let lab = LabDtlsServer::bind_with("127.0.0.1:0".parse().unwrap(), cfg, s_server_dtls1()).await.unwrap();
    held_by_an_abandoned_cookie_exchange(lab.local_addr()).await;
    lab.stop();
}

async fn held_by_an_abandoned_cookie_exchange(addr: SocketAddr) {
    use bleedwatch_wire::dtls::{client_hello_body, encode_handshake, DtlsRecordEncoder};
    use bleedwatch_wire::hello::ClientHelloSpec;
    use bleedwatch_wire::{ContentType, HandshakeType};
    let abandoned = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let spec = ClientHelloSpec::probe(ProtocolVersion::DTLS1_0, [7; 32], None);
    let hello = DtlsRecordEncoder::new(ProtocolVersion::DTLS1_0, 0)
        .encode(ContentType::HANDSHAKE, &encode_handshake(HandshakeType::CLIENT_HELLO, 0, &client_hello_body(&spec)))
        .unwrap();
    abandoned.send_to(&hello, addr).await.unwrap();
    let mut buf = vec![0u8; 2048];
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), abandoned.recv_from(&mut buf)).await.expect("a HelloVerifyRequest").unwrap();
    assert_eq!((buf[0], buf[13]), (22, HandshakeType::HELLO_VERIFY_REQUEST.0), "{:02x?}", &buf[..n]);
    // Another peer, with a valid padded heartbeat alone: no ServerHello ever comes.
    let mut cfg = DtlsProbeConfig::new(ProtocolVersion::DTLS1_0, None, ProbeMode::Safe);
    alone(&mut cfg.probe, 4500, 16);
    let outcome = run_dtls_probe(addr, cfg, &connection_timeouts()).await.unwrap();
    assert_eq!(outcome.negotiated, None, "{:?} {:#?}", outcome.verdict, outcome.log);
    assert!(matches!(outcome.verdict, ConnectionVerdict::Inconclusive(_)), "{:?} {:#?}", outcome.verdict, outcome.log);
    drop(abandoned);
}
