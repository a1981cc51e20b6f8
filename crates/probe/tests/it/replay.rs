//! Replays of real OpenSSL server streams (from the shared lab
//! captures) through the sans-IO probe: the same bytes a real 1.0.1f, 1.0.1g, no-heartbeat build or
//! GnuTLS sent must give the right verdict, however the stream is cut into reads.

use bleedwatch_probe::heartbleed::{ConnectionVerdict, HeartbeatRequest, HeartbleedProbe, Inconclusive, Phase, ProbeConfig, ProbeMode};
use bleedwatch_probe::result::{classify, Verdict};
use bleedwatch_wire::handshake::{ClientHello, HandshakeReassembler};
use bleedwatch_wire::heartbeat::HeartbeatMessage;
use bleedwatch_wire::record::Deframer;
use bleedwatch_wire::{ContentType, ProtocolVersion};

fn data(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The recorded client's offered version and first heartbeat request.
fn recorded_client(name: &str) -> (ProtocolVersion, HeartbeatRequest) {
    let c2s = data(&format!("{name}.c2s.bin"));
    let mut d = Deframer::new();
    d.push(&c2s).unwrap();
    let mut version = None;
    let mut hs = HandshakeReassembler::default();
    while let Some(r) = d.next_record().unwrap() {
        match r.header.content_type {
            ContentType::HANDSHAKE if version.is_none() => {
                hs.push(r.fragment);
                if let Some(m) = hs.next_message().unwrap() {
                    version = Some(ClientHello::parse(m.body).unwrap().version);
                }
            }
            ContentType::HEARTBEAT => {
                let hb = HeartbeatMessage::parse(r.fragment).unwrap();
                let present = hb.body.len().min(hb.payload_length as usize);
                return (
                    version.unwrap(),
                    HeartbeatRequest {
                        claimed_len: hb.payload_length,
                        payload: hb.body[..present].to_vec(),
                        padding: hb.body.len() - present,
                    },
                );
            }
            _ => {}
        }
    }
    panic!("{name}: no heartbeat request in the recording");
}

/// Replays the recorded server stream in reads of `chunk` bytes, then the server's FIN.
fn replay(name: &str, chunk: usize) -> bleedwatch_probe::ConnectionOutcome {
    let (version, request) = recorded_client(name);
    let mut cfg = ProbeConfig::new(version, None, ProbeMode::Safe);
    cfg.test_request = request;
    cfg.honest_request = None;
    cfg.send_sentinel = false;
    let mut probe = HeartbleedProbe::new(cfg);
    probe.take_output();
    for piece in data(&format!("{name}.s2c.bin")).chunks(chunk) {
        probe.feed(piece);
        probe.take_output();
    }
    probe.feed_eof();
    probe.into_outcome()
}

fn check(name: &str, expected: Verdict, leaked: Option<usize>) {
    for chunk in [1, 7, 1460, 16389, 1 << 20] {
        let outcome = replay(name, chunk);
        let (verdict, reason) = classify(&outcome);
        assert_eq!(verdict, expected, "{name} in reads of {chunk}: {reason:?}\n{:#?}", outcome.log);
        assert_eq!(outcome.leak.as_ref().map(|l| l.leaked_bytes), leaked, "{name}: leaked bytes");
        assert!(!outcome.chain.is_empty(), "{name}: certificate chain captured");
    }
}

#[test]
fn openssl_101f_answers_the_memory_safe_probe() {
    // sslyze's unpadded 16381-byte heartbeat: the echo is our own bytes, nothing leaked.
    check("sslyze-101f", Verdict::Vulnerable, None);
    let outcome = replay("sslyze-101f", 1 << 20);
    assert_eq!(outcome.negotiated, Some(ProtocolVersion::TLS1_2));
}

#[test]
fn openssl_101f_over_reads_are_counted_not_kept() {
    // nmap claims 16384 with 19 bytes: the one 16384-byte record that reaches the wire carries 16381
    // payload bytes, 16362 of them server memory (the capture README's figure).
    check("nmap-101f-tls12", Verdict::Vulnerable, Some(16362));
    check("nmap-101f-tls10", Verdict::Vulnerable, Some(16362));
    // Claim 16384 with no payload at all: 16381 bytes leak, in SSLv3 as well.
    check("testssl-101f", Verdict::Vulnerable, Some(16381));
    check("hbprobe-101f-ssl3", Verdict::Vulnerable, Some(16381));
    let ssl3 = replay("hbprobe-101f-ssl3", 1 << 20);
    assert_eq!(ssl3.negotiated, Some(ProtocolVersion::SSL3));
}

#[test]
fn a_close_after_the_request_proves_nothing() {
    // 1.0.1g negotiates the extension and drops nmap's request silently; nmap gives up after 5 s and
    // the connection closes. That close is no evidence (here the client even closed first): the
    // replay, which has no honest heartbeat or sentinel, is inconclusive; live scans ask again on
    // follow-up connections.
    check("nmap-101g-tls12", Verdict::Inconclusive, None);
    let outcome = replay("nmap-101g-tls12", 1 << 20);
    assert_eq!(outcome.verdict, ConnectionVerdict::Inconclusive(Inconclusive::Closed { phase: Phase::Heartbeat }));
    assert!(outcome.ended_unanswered().is_some());
}

#[test]
fn no_heartbeat_build_and_gnutls_refuse_with_an_alert() {
    check("hbprobe-nohb-tls12", Verdict::NoHeartbeat, None);
    // GnuTLS acknowledges the extension but refuses heartbeats mid-handshake.
    check("nmap-gnutls-tls12", Verdict::NotVulnerable, None);
}

#[test]
fn the_recorded_server_stream_without_its_end_is_never_safe() {
    // Cut the 1.0.1g stream before the FIN: the probe must not decide "not vulnerable" by silence.
    let (version, request) = recorded_client("nmap-101g-tls12");
    let mut cfg = ProbeConfig::new(version, None, ProbeMode::Safe);
    cfg.test_request = request;
    let mut probe = HeartbleedProbe::new(cfg);
    probe.feed(&data("nmap-101g-tls12.s2c.bin"));
    assert!(!probe.is_done());
    probe.feed_timeout();
    assert_eq!(classify(probe.outcome()).0, Verdict::Inconclusive);
}
