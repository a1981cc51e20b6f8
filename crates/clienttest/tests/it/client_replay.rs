//! The client test against real OpenSSL clients: the recorded client bytes of the shared lab's
//! client-side captures, fed to the sans-IO client tester configured to have sent the recorded
//! malicious server's heartbeat.

use bleedwatch_clienttest::ClientTester;
use bleedwatch_probe::conn::StreamTest;
use bleedwatch_probe::heartbleed::HeartbeatRequest;
use bleedwatch_probe::result::{classify, Verdict};
use bleedwatch_wire::heartbeat::HeartbeatMessage;
use bleedwatch_wire::record::Deframer;
use bleedwatch_wire::ContentType;

fn data(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/../probe/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// The first heartbeat request the recorded server sent.
fn recorded_request(name: &str) -> HeartbeatRequest {
    let mut d = Deframer::new();
    d.push(&data(&format!("{name}.s2c.bin"))).unwrap();
    while let Some(r) = d.next_record().unwrap() {
        if r.header.content_type == ContentType::HEARTBEAT {
            let hb = HeartbeatMessage::parse(r.fragment).unwrap();
            let present = hb.body.len().min(hb.payload_length as usize);
            return HeartbeatRequest { claimed_len: hb.payload_length, payload: hb.body[..present].to_vec(), padding: hb.body.len() - present };
        }
    }
    panic!("{name}: no heartbeat from the server");
}

fn replay(name: &str, as_honest: bool) -> ClientTester {
    let request = recorded_request(name);
    let mut tester = if as_honest {
        // A test request the client never saw, so only the honest one can be answered.
        let never_sent = HeartbeatRequest { claimed_len: 99, payload: vec![0xab; 99], padding: 0 };
        ClientTester::with_requests(never_sent, Some(request))
    } else {
        ClientTester::with_requests(request, None)
    };
    for chunk in data(&format!("{name}.c2s.bin")).chunks(1000) {
        tester.feed(chunk);
        tester.take_output();
    }
    tester.feed_eof();
    tester
}

fn verdict(name: &str) -> (Verdict, Option<usize>) {
    let t = replay(name, false);
    (classify(t.outcome()).0, t.outcome().leak.as_ref().map(|l| l.leaked_bytes))
}

#[test]
fn vulnerable_101f_clients() {
    // The memory-safe probe: the client echoes our own unpadded bytes.
    assert_eq!(verdict("client-101f-safe-tls12"), (Verdict::Vulnerable, None));
    // Over-reads: 16381 leaked bytes in the one record that reached the wire.
    assert_eq!(verdict("client-101f-overread-tls12"), (Verdict::Vulnerable, Some(16381)));
    assert_eq!(verdict("client-101f-overread-tls10"), (Verdict::Vulnerable, Some(16381)));
    assert_eq!(verdict("client-101f-overread-nohbext-tls12"), (Verdict::Vulnerable, Some(16381)));
    // A 65535 claim: four 16 KiB records; the first decides (and is what is counted).
    assert_eq!(verdict("client-101f-overread65535-tls12"), (Verdict::Vulnerable, Some(16381)));
}

#[test]
fn a_silent_fixed_client_is_not_called_safe_from_a_close() {
    // The recorded 1.0.1g clients drop the one heartbeat silently; the recorded *server* then closed.
    // Without the honest heartbeat and the sentinel behind it, nothing shows the client read the
    // request: the close that ends the replay proves nothing.
    for name in ["client-101g-safe-tls12", "client-101g-overread-tls12"] {
        let t = replay(name, false);
        assert_eq!(classify(t.outcome()).0, Verdict::Inconclusive, "{name}");
        assert_eq!(t.outcome().evidence().inconclusive().map(|w| w.to_string().contains("closed")), Some(true), "{name}");
    }
}

#[test]
fn honest_heartbeats_are_answered_by_fixed_and_vulnerable_clients_alike() {
    for name in ["client-101f-honest-tls12", "client-101g-honest-tls12"] {
        assert_eq!(classify(replay(name, true).outcome()).0, Verdict::NotVulnerable, "{name}");
    }
}

#[test]
fn clients_without_heartbeats() {
    // Fatal unexpected_message alerts: evidence.
    assert_eq!(verdict("client-nohb-safe-tls12").0, Verdict::NoHeartbeat);
    // At TLS 1.0 the build ignores the record and the recorded server closes: the evidence is the
    // ClientHello, which offers no heartbeat extension (every client with the bug offers it).
    let t = replay("client-nohb-safe-tls10", false);
    assert_eq!(classify(t.outcome()).0, Verdict::NoHeartbeat);
    assert_eq!(serde_json::to_value(t.outcome().evidence()).unwrap()["kind"], "heartbeat-extension-declined");
    assert_eq!(verdict("client-openssl3-safe-tls12").0, Verdict::NoHeartbeat);
    let t = replay("client-openssl3-safe-tls12", false);
    assert_eq!(t.hello().heartbeat_mode, None);
}
