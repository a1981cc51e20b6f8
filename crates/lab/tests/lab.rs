//! Fidelity of the lab server against real OpenSSL 1.0.1f / 1.0.1g: the recorded client bytes are fed
//! to a lab session configured like the recorded server, and what the lab puts on the wire must have
//! the same shape as what the real server sent — the same records (types and lengths), the same
//! ServerHello (version, cipher, extensions in order), and heartbeat responses of the same size, with
//! the same bytes kept back in the handshake write buffer.

use std::sync::Arc;

use bleedwatch_lab::identity::LAB_RSA_KEY_A;
use bleedwatch_lab::{Behaviour, LabConfig, LabEvent, LabIdentity, LabSession, CANARY};
use bleedwatch_wire::handshake::{parse_certificate_list, HandshakeReassembler, ServerHello};
use bleedwatch_wire::heartbeat::HeartbeatMessage;
use bleedwatch_wire::record::Deframer;
use bleedwatch_wire::{ContentType, HandshakeType, ProtocolVersion};

fn recorded(name: &str, dir: &str) -> Vec<u8> {
    let path = format!("{}/../probe/tests/data/{name}.{dir}.bin", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// What one server record looks like, without the parts that are random or come from memory.
#[derive(Debug, PartialEq, Eq)]
enum Shape {
    ServerHello { version: ProtocolVersion, cipher: u16, session_id_len: usize, extensions: Vec<(u16, Vec<u8>)> },
    Handshake { typ: HandshakeType, len: usize },
    /// SKE lengths vary with the size of the random DH value; compare the kind only.
    ServerKeyExchange,
    Heartbeat { record_len: usize, payload_length: u16 },
    /// A further record of a heartbeat message longer than one record.
    HeartbeatContinuation { record_len: usize },
    Alert(Vec<u8>),
    Other { typ: ContentType, len: usize },
}

fn shapes(stream: &[u8]) -> (Vec<(ProtocolVersion, Shape)>, Vec<Vec<u8>>) {
    let mut d = Deframer::new();
    d.push(stream).unwrap();
    let mut out = Vec::new();
    let mut heartbeats = Vec::new();
    // Bytes of the current heartbeat message still to come in later records.
    let mut continuation = 0usize;
    while let Some(r) = d.next_record().unwrap() {
        let v = r.header.version;
        match r.header.content_type {
            ContentType::HANDSHAKE => {
                let mut h = HandshakeReassembler::default();
                h.push(r.fragment);
                while let Some(m) = h.next_message().unwrap() {
                    let shape = match m.typ {
                        HandshakeType::SERVER_HELLO => {
                            let sh = ServerHello::parse(m.body).unwrap();
                            Shape::ServerHello {
                                version: sh.version,
                                cipher: sh.cipher_suite.0,
                                session_id_len: sh.session_id.len(),
                                extensions: sh.extensions.iter().map(|e| (e.typ.0, e.data.to_vec())).collect(),
                            }
                        }
                        HandshakeType::SERVER_KEY_EXCHANGE => Shape::ServerKeyExchange,
                        typ => Shape::Handshake { typ, len: m.body.len() },
                    };
                    out.push((v, shape));
                }
            }
            ContentType::HEARTBEAT if continuation > 0 => {
                continuation = continuation.saturating_sub(r.fragment.len());
                out.push((v, Shape::HeartbeatContinuation { record_len: r.fragment.len() }));
            }
            ContentType::HEARTBEAT => {
                let hb = HeartbeatMessage::parse(r.fragment).unwrap();
                continuation = (3 + hb.payload_length as usize + 16).saturating_sub(r.fragment.len());
                heartbeats.push(r.fragment.to_vec());
                out.push((v, Shape::Heartbeat { record_len: r.fragment.len(), payload_length: hb.payload_length }));
            }
            ContentType::ALERT => out.push((v, Shape::Alert(r.fragment.to_vec()))),
            typ => out.push((v, Shape::Other { typ, len: r.fragment.len() })),
        }
    }
    (out, heartbeats)
}

/// Runs the lab on the recorded client bytes and checks it against the recorded server bytes.
fn check(name: &str, behaviour: Behaviour, versions: &[ProtocolVersion]) -> Vec<LabEvent> {
    let real = recorded(name, "s2c");
    let mut d = Deframer::new();
    d.push(&real).unwrap();
    let (real_shapes, real_heartbeats) = shapes(&real);
    // Present the real server's certificate so that the Certificate message is byte-identical.
    let real_chain = {
        let mut chain = Vec::new();
        let mut h = HandshakeReassembler::default();
        while let Some(r) = d.next_record().unwrap() {
            if r.header.content_type == ContentType::HANDSHAKE {
                h.push(r.fragment);
                while let Some(m) = h.next_message().unwrap() {
                    if m.typ == HandshakeType::CERTIFICATE {
                        chain = parse_certificate_list(m.body).unwrap().into_iter().map(<[u8]>::to_vec).collect();
                    }
                }
            }
        }
        chain
    };
    let identity = LabIdentity::with_chain(real_chain, LAB_RSA_KEY_A).unwrap();
    let mut session = LabSession::new(LabConfig::new(behaviour, Arc::new(identity)).with_versions(versions));
    let client = recorded(name, "c2s");
    // Feed record by record, as a real client's segments would arrive, collecting the wire output.
    let mut lab_out = Vec::new();
    for chunk in client.chunks(1000) {
        session.feed(chunk);
        lab_out.extend(session.take_output());
    }
    let (lab_shapes, lab_heartbeats) = shapes(&lab_out);
    assert_eq!(lab_shapes, real_shapes, "{name}: lab output differs from real OpenSSL");
    for (lab, real) in lab_heartbeats.iter().zip(&real_heartbeats) {
        let (lab, real) = (HeartbeatMessage::parse(lab).unwrap(), HeartbeatMessage::parse(real).unwrap());
        // The echoed request bytes are identical; past them, the real server sent memory and the lab
        // canary bytes.
        let echoed = recorded_request_payload(name).len().min(real.body.len());
        assert_eq!(lab.body[..echoed], real.body[..echoed], "{name}: echoed payload");
        if lab.body.len() > echoed {
            assert_eq!(lab.body[echoed..echoed + 8], CANARY[..8], "{name}: over-read is canary");
        }
    }
    session.take_events()
}

/// The payload bytes the recorded client actually put in its first heartbeat.
fn recorded_request_payload(name: &str) -> Vec<u8> {
    let mut d = Deframer::new();
    d.push(&recorded(name, "c2s")).unwrap();
    while let Some(r) = d.next_record().unwrap() {
        if r.header.content_type == ContentType::HEARTBEAT {
            let hb = HeartbeatMessage::parse(r.fragment).unwrap();
            return hb.body[..hb.body.len().min(hb.payload_length as usize)].to_vec();
        }
    }
    Vec::new()
}

const ALL: &[ProtocolVersion] = &ProtocolVersion::PROBEABLE_TLS;

#[test]
fn vulnerable_like_101f_over_tls12_and_tls10() {
    // nmap: DHE chosen from its list, one 16384-byte response record, the 19-byte tail kept back.
    check("nmap-101f-tls12", Behaviour::Vulnerable, ALL);
    check("nmap-101f-tls10", Behaviour::Vulnerable, &[ProtocolVersion::TLS1_0]);
    check("testssl-101f", Behaviour::Vulnerable, ALL);
}

#[test]
fn vulnerable_like_101f_to_the_memory_safe_probe() {
    // sslyze: ECDHE, no heartbeat extension offered, yet the unpadded request is answered.
    let events = check("sslyze-101f", Behaviour::Vulnerable, ALL);
    assert!(events.iter().any(|e| matches!(e, LabEvent::Heartbeat { answered: true, overread: 0, padding: 0, .. })));
}

#[test]
fn vulnerable_like_101f_over_ssl3() {
    check("hbprobe-101f-ssl3", Behaviour::Vulnerable, &[ProtocolVersion::SSL3]);
}

#[test]
fn fixed_like_101g_drops_silently() {
    for name in ["nmap-101g-tls12", "nmap-101g-tls10", "sslyze-101g"] {
        let events = check(name, Behaviour::Fixed, ALL);
        assert!(events.iter().any(|e| matches!(e, LabEvent::Heartbeat { answered: false, .. })), "{name}");
    }
}

#[test]
fn no_heartbeat_build() {
    check("hbprobe-nohb-tls12", Behaviour::NoHeartbeat, ALL);
    check("nmap-nohb-tls10", Behaviour::NoHeartbeat, ALL);
    check("nmap-nohb-tls12", Behaviour::NoHeartbeat, ALL);
}

#[test]
fn short_heartbeat_answers_wait_in_the_write_buffer_until_a_flush() {
    let identity = Arc::new(LabIdentity::rsa_lab(&["localhost"]).unwrap());
    let mut session = LabSession::new(LabConfig::new(Behaviour::Vulnerable, identity));
    let hello = bleedwatch_wire::hello::ClientHelloSpec::probe(ProtocolVersion::TLS1_2, [1; 32], None).encode();
    let mut client = Vec::new();
    bleedwatch_wire::record::encode_records(&mut client, ContentType::HANDSHAKE, ProtocolVersion::TLS1_0, &hello, 16384);
    session.feed(&client);
    assert!(!session.take_output().is_empty());
    // A 100-byte honest heartbeat: the answer stays buffered (as measured on real 1.0.1f/g).
    let mut hb = Vec::new();
    let req = bleedwatch_wire::heartbeat::encode(bleedwatch_wire::heartbeat::HeartbeatMessageType::REQUEST, 100, &[5; 100], &[0; 16]);
    bleedwatch_wire::record::encode_records(&mut hb, ContentType::HEARTBEAT, ProtocolVersion::TLS1_2, &req, 16384);
    session.feed(&hb);
    assert!(session.take_output().is_empty());
    // A fatal alert flushes the buffer: answer first, then the alert.
    let mut sentinel = Vec::new();
    bleedwatch_wire::record::encode_records(&mut sentinel, ContentType::HANDSHAKE, ProtocolVersion::TLS1_2, &[0, 0, 0, 0], 16384);
    session.feed(&sentinel);
    let (out, _) = shapes(&session.take_output());
    assert_eq!(
        out.iter().map(|(_, s)| s).collect::<Vec<_>>(),
        vec![&Shape::Heartbeat { record_len: 119, payload_length: 100 }, &Shape::Alert(vec![2, 10])]
    );
    assert!(session.is_closed());
}

#[test]
fn lab_fuzz_corpus_replays_without_panic() {
    let identity = Arc::new(LabIdentity::rsa_lab(&["fuzz.test"]).unwrap());
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/lab_client_bytes");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        bleedwatch_lab::session::fuzz_client_bytes(&bytes, identity.clone());
        n += 1;
    }
    assert!(n > 0, "empty corpus {}", dir.display());
}

/// The lab client fed what the malicious server of a client-side capture sent must answer as the
/// real s_client did: the same heartbeat response records (lengths, claims, what stays buffered)
/// and the same alerts.
fn check_client(name: &str, behaviour: Behaviour, version: ProtocolVersion) {
    use bleedwatch_lab::client::LabClient;
    let mut client = LabClient::new(behaviour, version);
    client.take_output();
    client.feed(&recorded(name, "s2c"));
    let (lab, _) = shapes(&client.take_output());
    let (real, _) = shapes(&recorded(name, "c2s"));
    // Skip the real client's ClientHello (its cipher list is 1.0.1f's own); compare what follows.
    let real_after_hello: Vec<_> = real.into_iter().filter(|(_, s)| !matches!(s, Shape::Handshake { typ: HandshakeType::CLIENT_HELLO, .. })).collect();
    let lab_records: Vec<_> = lab.into_iter().filter(|(_, s)| !matches!(s, Shape::Handshake { .. })).collect();
    assert_eq!(lab_records, real_after_hello, "{name}");
}

#[test]
fn lab_client_answers_like_real_openssl_clients() {
    let v12 = ProtocolVersion::TLS1_2;
    check_client("client-101f-safe-tls12", Behaviour::Vulnerable, v12);
    check_client("client-101f-honest-tls12", Behaviour::Vulnerable, v12);
    check_client("client-101f-overread-tls12", Behaviour::Vulnerable, v12);
    check_client("client-101f-overread-tls10", Behaviour::Vulnerable, ProtocolVersion::TLS1_0);
    check_client("client-101f-overread65535-tls12", Behaviour::Vulnerable, v12);
    check_client("client-101f-overread-nohbext-tls12", Behaviour::Vulnerable, v12);
    check_client("client-101g-safe-tls12", Behaviour::Fixed, v12);
    check_client("client-101g-honest-tls12", Behaviour::Fixed, v12);
    check_client("client-101g-overread-tls12", Behaviour::Fixed, v12);
    check_client("client-nohb-safe-tls12", Behaviour::NoHeartbeat, v12);
    check_client("client-nohb-safe-tls10", Behaviour::NoHeartbeat, ProtocolVersion::TLS1_0);
}
