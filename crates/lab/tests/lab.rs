//! Fidelity of the lab server against real OpenSSL 1.0.1f / 1.0.1g: the recorded client bytes are fed
//! to a lab session configured like the recorded server, and what the lab puts on the wire must have
//! the same shape as what the real server sent — the same records (types and lengths), the same
//! ServerHello (version, cipher, extensions in order), and heartbeat responses of the same size, with
//! the same bytes kept back in the handshake write buffer.

#![allow(clippy::unwrap_used, clippy::panic)]

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
    for bytes in bleedwatch_testkit::fuzz_corpus("lab_client_bytes").unwrap() {
        bleedwatch_lab::session::fuzz_client_bytes(&bytes, identity.clone());
    }
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

// ---------------------------------------------------------------------------------------------
// Completed handshakes: a minimal client written against the lab's own record layer, then real
// clients (OpenSSL s_client, curl, gnutls-cli, sslyze) over loopback TCP.
// ---------------------------------------------------------------------------------------------

mod handshakes {
    use super::*;
    use bleedwatch_lab::tls12::{derive_keys, master_secret, verify_data, RecordProtection, Side, SuiteSpec, Transcript};
    use bleedwatch_wire::codec::{put_prefixed, Prefix};
    use bleedwatch_wire::hello::{encode_handshake, ClientHelloSpec};
    use bleedwatch_wire::record::encode_records;
    use bleedwatch_wire::{CipherSuite, ExtensionType};
    use rsa::Pkcs1v15Encrypt;

    /// A TLS client reduced to RSA key transport and one offered suite: enough to take a lab session
    /// through a full handshake and talk to it encrypted.
    struct MiniClient {
        session: LabSession,
        version: ProtocolVersion,
        write: RecordProtection,
        read: RecordProtection,
        /// Server records after the handshake, decrypted: (type, wire fragment length, plaintext).
        received: Vec<(ContentType, usize, Vec<u8>)>,
    }

    fn records(bytes: &[u8]) -> Vec<(ContentType, Vec<u8>)> {
        let mut d = Deframer::new();
        d.push(bytes).unwrap();
        let mut out = Vec::new();
        while let Some(r) = d.next_record().unwrap() {
            out.push((r.header.content_type, r.fragment.to_vec()));
        }
        out
    }

    fn record(typ: ContentType, version: ProtocolVersion, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_records(&mut out, typ, version, data, 16384);
        out
    }

    impl MiniClient {
        /// Runs the handshake up to the client's Finished; `tamper_finished` flips a verify_data bit.
        fn connect(behaviour: Behaviour, version: ProtocolVersion, suite: u16, tamper_finished: bool) -> (MiniClient, Vec<(ContentType, Vec<u8>)>) {
            let identity = Arc::new(LabIdentity::rsa_lab(&["localhost"]).unwrap());
            let public = match &identity.key {
                bleedwatch_lab::identity::SigningKey::Rsa(k) => k.to_public_key(),
                _ => unreachable!(),
            };
            let mut session = LabSession::new(LabConfig::new(behaviour, identity));
            let client_random = [0x11u8; 32];
            let mut spec = ClientHelloSpec::probe(version, client_random, None);
            spec.cipher_suites = vec![CipherSuite(suite)];
            let hello = spec.encode();
            let mut transcript = Transcript::default();
            transcript.push(&hello);
            session.feed(&record(ContentType::HANDSHAKE, ProtocolVersion::TLS1_0, &hello));
            let mut h = HandshakeReassembler::default();
            let mut server_random = Vec::new();
            let mut ticket = false;
            for (typ, fragment) in records(&session.take_output()) {
                assert_eq!(typ, ContentType::HANDSHAKE);
                h.push(&fragment);
                while let Some(m) = h.next_message().unwrap() {
                    transcript.push(&encode_handshake(m.typ, m.body));
                    if m.typ == HandshakeType::SERVER_HELLO {
                        let sh = ServerHello::parse(m.body).unwrap();
                        assert_eq!(sh.cipher_suite, CipherSuite(suite));
                        server_random = sh.random.to_vec();
                        ticket = sh.extension(ExtensionType::SESSION_TICKET).is_some();
                    }
                }
            }
            assert!(ticket, "the probe hello offers a session ticket, and 1.0.1f echoes it");
            let mut premaster = version.0.to_be_bytes().to_vec();
            premaster.extend_from_slice(&[0x5a; 46]);
            let encrypted = public.encrypt(&mut rand::thread_rng(), Pkcs1v15Encrypt, &premaster).unwrap();
            let mut cke_body = Vec::new();
            put_prefixed(&mut cke_body, Prefix::U16, |o| o.extend_from_slice(&encrypted));
            let cke = encode_handshake(HandshakeType::CLIENT_KEY_EXCHANGE, &cke_body);
            transcript.push(&cke);
            let spec = SuiteSpec::for_suite(CipherSuite(suite)).unwrap();
            let hash = spec.prf_hash(version);
            let master = master_secret(hash, &premaster, &client_random, &server_random);
            let keys = derive_keys(&spec, version, &master, &client_random, &server_random);
            let (mut write, read) = (keys.client_write, keys.server_write);
            let mut verify = verify_data(hash, &master, Side::Client, &transcript);
            if tamper_finished {
                verify[0] ^= 1;
            }
            let finished = encode_handshake(HandshakeType::FINISHED, &verify);
            transcript.push(&finished);
            let mut flight = record(ContentType::HANDSHAKE, version, &cke);
            flight.extend(record(ContentType::CHANGE_CIPHER_SPEC, version, &[1]));
            flight.extend(write.seal_records(ContentType::HANDSHAKE, version, &finished));
            session.feed(&flight);
            let reply = records(&session.take_output());
            let mut client = MiniClient { session, version, write, read, received: Vec::new() };
            if !tamper_finished {
                // NewSessionTicket, CCS, then the server Finished, which must verify.
                assert_eq!(reply.iter().map(|(t, _)| *t).collect::<Vec<_>>(), [ContentType::HANDSHAKE, ContentType::CHANGE_CIPHER_SPEC, ContentType::HANDSHAKE]);
                let nst = &reply[0].1;
                assert_eq!(nst[0], HandshakeType::NEW_SESSION_TICKET.0);
                assert_eq!(nst.len(), 170, "lifetime hint + 160-byte ticket, as 1.0.1f sends");
                transcript.push(nst);
                let server_finished = client.read.open(ContentType::HANDSHAKE, version, &reply[2].1).unwrap();
                assert_eq!(server_finished, encode_handshake(HandshakeType::FINISHED, &verify_data(hash, &master, Side::Server, &transcript)));
                assert!(client.session.is_established());
            }
            (client, reply)
        }

        fn send(&mut self, typ: ContentType, data: &[u8]) {
            let bytes = self.write.seal_records(typ, self.version, data);
            self.session.feed(&bytes);
            for (typ, fragment) in records(&self.session.take_output()) {
                let plain = self.read.open(typ, self.version, &fragment).unwrap();
                self.received.push((typ, fragment.len(), plain));
            }
        }
    }

    #[test]
    fn encrypted_overread_is_answered_like_the_capture() {
        // encrypted-heartbleed-vulnerable-1.0.1f-tls12.pcap: AES128-SHA, a 3-byte heartbeat claiming
        // 16384 bytes inside the session; 1.0.1f answered 16403 bytes in records of 16432 and 64.
        let (mut client, _) = MiniClient::connect(Behaviour::Vulnerable, ProtocolVersion::TLS1_2, 0x002f, false);
        client.send(ContentType::HEARTBEAT, &[1, 0x40, 0x00]);
        let lens: Vec<_> = client.received.iter().map(|(t, len, _)| (*t, *len)).collect();
        assert_eq!(lens, [(ContentType::HEARTBEAT, 16432), (ContentType::HEARTBEAT, 64)]);
        let response: Vec<u8> = client.received.iter().flat_map(|(_, _, p)| p.clone()).collect();
        assert_eq!(response.len(), 16403);
        assert_eq!(&response[..3], &[2, 0x40, 0x00]);
        assert_eq!(&response[3..3 + CANARY.len()], CANARY);
        let events = client.session.take_events();
        assert!(
            events.iter().any(|e| matches!(e, LabEvent::Heartbeat { encrypted: true, claimed: 16384, overread: 16384, answered: true, flushed: true, .. })),
            "{events:?}"
        );
    }

    #[test]
    fn every_completable_suite_and_version_carries_heartbeats_and_data() {
        let cases = [
            (ProtocolVersion::TLS1_0, 0x002f),
            (ProtocolVersion::TLS1_0, 0x0035),
            (ProtocolVersion::TLS1_1, 0x002f),
            (ProtocolVersion::TLS1_2, 0x0035),
            (ProtocolVersion::TLS1_2, 0x003c),
            (ProtocolVersion::TLS1_2, 0x009c),
            (ProtocolVersion::TLS1_2, 0x009d),
        ];
        for (version, suite) in cases {
            let (mut client, _) = MiniClient::connect(Behaviour::Vulnerable, version, suite, false);
            // An honest heartbeat comes back whole, with fresh padding.
            let request = bleedwatch_wire::heartbeat::encode(bleedwatch_wire::heartbeat::HeartbeatMessageType::REQUEST, 5, b"hello", &[0; 16]);
            client.send(ContentType::HEARTBEAT, &request);
            let (typ, _, response) = client.received.remove(0);
            assert_eq!(typ, ContentType::HEARTBEAT);
            assert_eq!(&response[..8], &[2, 0, 5, b'h', b'e', b'l', b'l', b'o'], "{version} {suite:#06x}");
            // A request line gets the lab page, then close_notify.
            client.send(ContentType::APPLICATION_DATA, b"GET / HTTP/1.0\r\n\r\n");
            let (typ, _, page) = client.received.remove(0);
            assert_eq!(typ, ContentType::APPLICATION_DATA);
            let page = String::from_utf8(page).unwrap();
            assert!(page.starts_with("HTTP/1.0 200 ok\r\n") && page.contains("bleedwatch lab"), "{page}");
            assert_eq!(client.received.remove(0), (ContentType::ALERT, close_notify_record_len(version, suite), vec![1, 0]));
            assert!(client.session.is_closed());
        }
    }

    /// Wire size of the sealed 2-byte close_notify: GCM adds nonce and tag, CBC an IV (TLS 1.1+), the
    /// MAC and padding to a block.
    fn close_notify_record_len(version: ProtocolVersion, suite: u16) -> usize {
        match (suite, version) {
            (0x009c | 0x009d, _) => 8 + 2 + 16,
            (0x003c, _) => 16 + 48,
            (_, ProtocolVersion::TLS1_0) => 32,
            _ => 16 + 32,
        }
    }

    #[test]
    fn fixed_and_heartbeatless_labs_inside_the_session() {
        // 1.0.1g drops the over-read silently; the connection goes on.
        let (mut client, _) = MiniClient::connect(Behaviour::Fixed, ProtocolVersion::TLS1_2, 0x002f, false);
        client.send(ContentType::HEARTBEAT, &[1, 0x40, 0x00]);
        assert!(client.received.is_empty());
        assert!(client.session.take_events().iter().any(|e| matches!(e, LabEvent::Heartbeat { encrypted: true, answered: false, .. })));
        assert!(!client.session.is_closed());
        // Without heartbeat code, TLS 1.2 alerts on the unknown record type (encrypted alert)...
        let (mut client, _) = MiniClient::connect(Behaviour::NoHeartbeat, ProtocolVersion::TLS1_2, 0x002f, false);
        client.send(ContentType::HEARTBEAT, &[1, 0, 0]);
        assert_eq!(client.received.iter().map(|(t, _, p)| (*t, p.clone())).collect::<Vec<_>>(), [(ContentType::ALERT, vec![2, 10])]);
        // ...and TLS 1.0 ignores it.
        let (mut client, _) = MiniClient::connect(Behaviour::NoHeartbeat, ProtocolVersion::TLS1_0, 0x002f, false);
        client.send(ContentType::HEARTBEAT, &[1, 0, 0]);
        assert!(client.received.is_empty() && !client.session.is_closed());
    }

    #[test]
    fn wrong_finished_or_tampered_record_is_fatal() {
        let (client, reply) = MiniClient::connect(Behaviour::Vulnerable, ProtocolVersion::TLS1_2, 0x002f, true);
        // decrypt_error in the clear: the server has not switched its write side on.
        assert_eq!(reply, [(ContentType::ALERT, vec![2, 51])]);
        assert!(client.session.is_closed());

        let (mut client, _) = MiniClient::connect(Behaviour::Vulnerable, ProtocolVersion::TLS1_2, 0x009c, false);
        let mut bytes = client.write.seal_records(ContentType::APPLICATION_DATA, ProtocolVersion::TLS1_2, b"GET / HTTP/1.0\r\n");
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        client.session.feed(&bytes);
        let out = records(&client.session.take_output());
        assert_eq!(out.len(), 1);
        assert_eq!(client.read.open(out[0].0, ProtocolVersion::TLS1_2, &out[0].1).unwrap(), vec![2, 20], "bad_record_mac");
        assert!(client.session.is_closed());
    }

    #[test]
    fn renegotiation_is_refused_and_the_session_goes_on() {
        let (mut client, _) = MiniClient::connect(Behaviour::Vulnerable, ProtocolVersion::TLS1_2, 0x002f, false);
        let hello = ClientHelloSpec::probe(ProtocolVersion::TLS1_2, [3; 32], None).encode();
        client.send(ContentType::HANDSHAKE, &hello);
        assert_eq!(client.received.remove(0).2, vec![1, 100]);
        client.send(ContentType::HEARTBEAT, &bleedwatch_wire::heartbeat::encode(bleedwatch_wire::heartbeat::HeartbeatMessageType::REQUEST, 1, b"x", &[0; 16]));
        assert_eq!(client.received.remove(0).0, ContentType::HEARTBEAT);
    }

    #[test]
    fn suites_the_lab_cannot_run_still_fail_at_client_key_exchange() {
        // DES-CBC-SHA, as 1.0.1f chose for nmap: the flight goes out, the key exchange is refused.
        let identity = Arc::new(LabIdentity::rsa_lab(&["localhost"]).unwrap());
        let mut session = LabSession::new(LabConfig::new(Behaviour::Vulnerable, identity));
        let mut spec = ClientHelloSpec::probe(ProtocolVersion::TLS1_2, [1; 32], None);
        spec.cipher_suites = vec![CipherSuite(0x0009)];
        session.feed(&record(ContentType::HANDSHAKE, ProtocolVersion::TLS1_0, &spec.encode()));
        assert!(!session.take_output().is_empty());
        let cke = encode_handshake(HandshakeType::CLIENT_KEY_EXCHANGE, &[0, 2, 1, 2]);
        session.feed(&record(ContentType::HANDSHAKE, ProtocolVersion::TLS1_2, &cke));
        assert_eq!(records(&session.take_output()), [(ContentType::ALERT, vec![2, 40])]);
    }
}

mod real_clients {
    use super::*;
    use std::io::{Read, Write};
    use std::net::SocketAddr;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    use bleedwatch_lab::{LabServer, LabServerHandle};

    /// Whether a real client is installed; without it the test fails with instructions, unless the
    /// whole real-peer suite is switched off (as in tests/cli.rs).
    fn require(binary: &str) -> Option<std::path::PathBuf> {
        if std::env::var_os("BLEEDWATCH_SKIP_REAL_SERVERS").is_some() {
            return None;
        }
        // sslyze lives in the venv scripts/install-test-deps.sh makes under target/.
        let venv = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-tools/venv/bin").join(binary);
        let on_path = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).map(|d| d.join(binary)).find(|p| p.is_file()))
            .unwrap_or_default();
        let found = on_path.or_else(|| venv.is_file().then_some(venv));
        assert!(found.is_some(), "{binary} is not installed: run `bash scripts/install-test-deps.sh` (or the README's test command)");
        found
    }

    /// A lab server on a loopback port, with its own runtime so that blocking client processes can
    /// run on the test thread.
    struct Lab {
        handle: Option<LabServerHandle>,
        /// Runs the server's tasks for as long as the lab lives.
        _runtime: tokio::runtime::Runtime,
    }

    impl Lab {
        fn start(behaviour: Behaviour, identity: LabIdentity) -> Lab {
            let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            let cfg = LabConfig::new(behaviour, Arc::new(identity));
            let handle = runtime.block_on(LabServer::bind("127.0.0.1:0".parse().unwrap(), cfg)).unwrap();
            Lab { handle: Some(handle), _runtime: runtime }
        }

        fn addr(&self) -> SocketAddr {
            self.handle.as_ref().unwrap().local_addr()
        }

        fn events(&self) -> Vec<LabEvent> {
            self.handle.as_ref().unwrap().events().into_iter().map(|(_, e)| e).collect()
        }
    }

    impl Drop for Lab {
        fn drop(&mut self) {
            // Stop the listener before the runtime (dropped after this) ends its tasks.
            if let Some(h) = self.handle.take() {
                h.stop();
            }
        }
    }

    /// Runs a client with `input` on stdin; killed if it outlives `limit`. Returns stdout + stderr.
    fn run(program: &std::path::Path, args: &[&str], input: &[u8], hold_stdin: Duration, limit: Duration) -> String {
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", program.display()));
        let mut stdin = child.stdin.take().unwrap();
        let input = input.to_vec();
        // Some clients quit at end of input before the answer arrives: keep stdin open a while.
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
            let _ = stdin.flush();
            std::thread::sleep(hold_stdin);
        });
        let mut stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let out_reader = std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = stdout.read_to_end(&mut s);
            s
        });
        let err_reader = std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = stderr.read_to_end(&mut s);
            s
        });
        let deadline = Instant::now() + limit;
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = writer.join();
        let mut text = String::from_utf8_lossy(&out_reader.join().unwrap()).to_string();
        text.push_str(&String::from_utf8_lossy(&err_reader.join().unwrap()));
        text
    }

    fn s_client(lab: &Lab, version_flag: &str, cipher: Option<&str>) -> String {
        let openssl = require("openssl").unwrap();
        let connect = lab.addr().to_string();
        let mut args = vec!["s_client", "-connect", &connect, version_flag, "-msg", "-ign_eof"];
        // OpenSSL 3 refuses TLS 1.0/1.1 and SHA-1 signatures above security level 0.
        let cipher = match (cipher, version_flag) {
            (Some(c), "-tls1_2") => c.to_string(),
            (Some(c), _) => format!("{c}:@SECLEVEL=0"),
            (None, "-tls1_2") => "DEFAULT".to_string(),
            (None, _) => "DEFAULT:@SECLEVEL=0".to_string(),
        };
        args.extend(["-cipher", &cipher]);
        run(&openssl, &args, b"GET / HTTP/1.0\r\n\r\n", Duration::from_millis(0), Duration::from_secs(30))
    }

    fn assert_completed(out: &str, protocol: &str, cipher: &str) {
        assert!(out.contains(&format!("Protocol  : {protocol}")), "{protocol} {cipher}: {out}");
        assert!(out.contains(&format!("Cipher is {cipher}")) || out.contains(&format!("Cipher    : {cipher}")), "{protocol} {cipher}: {out}");
        // The server's Finished was verified (s_client prints it under -msg) and the page came back.
        assert!(out.lines().any(|l| l.starts_with("<<< ") && l.ends_with("Finished")), "{out}");
        assert!(out.contains("This is the bleedwatch lab"), "{protocol} {cipher}: page missing: {out}");
    }

    #[test]
    fn openssl_s_client_completes_handshakes_with_an_rsa_lab() {
        if require("openssl").is_none() {
            return;
        }
        let lab = Lab::start(Behaviour::Vulnerable, LabIdentity::rsa_lab(&["localhost"]).unwrap());
        let cases: &[(&str, Option<&str>, &str, &str)] = &[
            ("-tls1_2", None, "TLSv1.2", "ECDHE-RSA-AES256-GCM-SHA384"),
            ("-tls1_2", Some("ECDHE-RSA-AES128-GCM-SHA256"), "TLSv1.2", "ECDHE-RSA-AES128-GCM-SHA256"),
            ("-tls1_2", Some("ECDHE-RSA-AES128-SHA"), "TLSv1.2", "ECDHE-RSA-AES128-SHA"),
            ("-tls1_2", Some("ECDHE-RSA-AES256-SHA"), "TLSv1.2", "ECDHE-RSA-AES256-SHA"),
            ("-tls1_2", Some("ECDHE-RSA-AES256-SHA384"), "TLSv1.2", "ECDHE-RSA-AES256-SHA384"),
            ("-tls1_2", Some("AES128-SHA"), "TLSv1.2", "AES128-SHA"),
            ("-tls1_2", Some("AES256-SHA"), "TLSv1.2", "AES256-SHA"),
            ("-tls1_2", Some("AES128-GCM-SHA256"), "TLSv1.2", "AES128-GCM-SHA256"),
            ("-tls1_2", Some("AES256-SHA256"), "TLSv1.2", "AES256-SHA256"),
            ("-tls1_2", Some("DHE-RSA-AES128-GCM-SHA256"), "TLSv1.2", "DHE-RSA-AES128-GCM-SHA256"),
            ("-tls1_2", Some("DHE-RSA-AES256-SHA"), "TLSv1.2", "DHE-RSA-AES256-SHA"),
            ("-tls1_1", None, "TLSv1.1", "ECDHE-RSA-AES256-SHA"),
            ("-tls1_1", Some("AES128-SHA"), "TLSv1.1", "AES128-SHA"),
            ("-tls1_1", Some("DHE-RSA-AES128-SHA"), "TLSv1.1", "DHE-RSA-AES128-SHA"),
            ("-tls1", None, "TLSv1", "ECDHE-RSA-AES256-SHA"),
            ("-tls1", Some("AES128-SHA"), "TLSv1", "AES128-SHA"),
            ("-tls1", Some("DHE-RSA-AES256-SHA"), "TLSv1", "DHE-RSA-AES256-SHA"),
        ];
        for (flag, cipher, protocol, expect) in cases {
            let out = s_client(&lab, flag, *cipher);
            assert_completed(&out, protocol, expect);
        }
        assert!(!lab.events().iter().any(|e| matches!(e, LabEvent::Alert { sent: true, alert } if alert.starts_with("fatal"))), "{:?}", lab.events());
    }

    #[test]
    fn openssl_s_client_completes_handshakes_with_an_ecdsa_lab() {
        if require("openssl").is_none() {
            return;
        }
        let lab = Lab::start(Behaviour::Vulnerable, LabIdentity::generate_ecdsa(&["localhost"]).unwrap());
        let cases: &[(&str, Option<&str>, &str, &str)] = &[
            ("-tls1_2", None, "TLSv1.2", "ECDHE-ECDSA-AES256-GCM-SHA384"),
            ("-tls1_2", Some("ECDHE-ECDSA-AES128-GCM-SHA256"), "TLSv1.2", "ECDHE-ECDSA-AES128-GCM-SHA256"),
            ("-tls1_2", Some("ECDHE-ECDSA-AES128-SHA"), "TLSv1.2", "ECDHE-ECDSA-AES128-SHA"),
            ("-tls1_2", Some("ECDHE-ECDSA-AES128-SHA256"), "TLSv1.2", "ECDHE-ECDSA-AES128-SHA256"),
            ("-tls1_1", Some("ECDHE-ECDSA-AES128-SHA"), "TLSv1.1", "ECDHE-ECDSA-AES128-SHA"),
            ("-tls1", Some("ECDHE-ECDSA-AES256-SHA"), "TLSv1", "ECDHE-ECDSA-AES256-SHA"),
        ];
        for (flag, cipher, protocol, expect) in cases {
            let out = s_client(&lab, flag, *cipher);
            assert_completed(&out, protocol, expect);
        }
    }

    #[test]
    fn curl_gets_the_lab_page() {
        let Some(curl) = require("curl") else { return };
        let lab = Lab::start(Behaviour::Fixed, LabIdentity::rsa_lab(&["localhost"]).unwrap());
        let url = format!("https://{}/", lab.addr());
        let out = run(&curl, &["-k", "-sS", "--max-time", "20", &url], b"", Duration::ZERO, Duration::from_secs(30));
        assert!(out.contains("This is the bleedwatch lab") && out.contains("OpenSSL 1.0.1g"), "{out}");
    }

    /// gnutls-cli, an independent TLS implementation, through each key exchange and record
    /// protection the lab runs. (gnutls-cli's `--heartbeat` only lets the server ping it — its
    /// `**HEARTBEAT**` command belongs to gnutls-serv — so encrypted heartbeat requests are covered
    /// by the `handshakes` tests above.)
    #[test]
    fn gnutls_cli_completes_handshakes() {
        let Some(gnutls) = require("gnutls-cli") else { return };
        let rsa_lab = Lab::start(Behaviour::Vulnerable, LabIdentity::rsa_lab(&["localhost"]).unwrap());
        let ecdsa_lab = Lab::start(Behaviour::Vulnerable, LabIdentity::generate_ecdsa(&["localhost"]).unwrap());
        let cases = [
            (&rsa_lab, "NORMAL", "(TLS1.2-X.509)-(ECDHE-SECP256R1)-(RSA-SHA256)-(AES-256-GCM)"),
            (&rsa_lab, "NORMAL:-VERS-ALL:+VERS-TLS1.0", "(TLS1.0-X.509)-(ECDHE-SECP256R1)-(AES-256-CBC)-(SHA1)"),
            (&rsa_lab, "NORMAL:-VERS-ALL:+VERS-TLS1.1:-KX-ALL:+RSA", "(TLS1.1-X.509)-(RSA)-(AES-256-CBC)-(SHA1)"),
            (&rsa_lab, "NORMAL:-VERS-ALL:+VERS-TLS1.2:-KX-ALL:+DHE-RSA", "(TLS1.2-X.509)-(DHE-CUSTOM2048)-(RSA-SHA256)-(AES-256-GCM)"),
            (
                &rsa_lab,
                "NORMAL:-VERS-ALL:+VERS-TLS1.2:-KX-ALL:+RSA:-CIPHER-ALL:+AES-128-CBC:-MAC-ALL:+SHA256",
                "(TLS1.2-X.509)-(RSA)-(AES-128-CBC)-(SHA256)",
            ),
            (&ecdsa_lab, "NORMAL", "(TLS1.2-X.509)-(ECDHE-SECP256R1)-(ECDSA-SHA256)-(AES-256-GCM)"),
            (&ecdsa_lab, "NORMAL:-VERS-ALL:+VERS-TLS1.0", "(TLS1.0-X.509)-(ECDHE-SECP256R1)-(AES-256-CBC)-(SHA1)"),
        ];
        for (lab, priority, description) in cases {
            let port = lab.addr().port().to_string();
            let prio = format!("--priority={priority}");
            let out = run(&gnutls, &["--insecure", "--heartbeat", &prio, "-p", &port, "127.0.0.1"], b"GET / HTTP/1.0\n\n", Duration::ZERO, Duration::from_secs(30));
            assert!(out.contains("- Handshake was completed"), "{priority}: {out}");
            assert!(out.contains(&format!("- Description: {description}")), "{priority}: {out}");
            assert!(out.contains("This is the bleedwatch lab"), "{priority}: {out}");
        }
        // gnutls offers the heartbeat extension and the lab (as 1.0.1f) accepts it.
        assert!(rsa_lab.events().iter().all(|e| !matches!(e, LabEvent::ClientHello { offers_heartbeat: false, .. })));
    }

    /// sslyze's connectivity check needs real handshakes before it tests anything; then its
    /// Heartbleed check must tell the 1.0.1f lab from the 1.0.1g one.
    #[test]
    fn sslyze_tells_vulnerable_from_fixed() {
        let Some(sslyze) = require("sslyze") else { return };
        for (behaviour, verdict) in [(Behaviour::Vulnerable, "VULNERABLE - Server is vulnerable to Heartbleed"), (Behaviour::Fixed, "OK - Not vulnerable to Heartbleed")] {
            let lab = Lab::start(behaviour, LabIdentity::rsa_lab(&["localhost"]).unwrap());
            let target = lab.addr().to_string();
            let out = run(&sslyze, &["--heartbleed", &target], b"", Duration::ZERO, Duration::from_secs(120));
            assert!(out.contains(verdict), "{behaviour:?}: {out}");
            // The probe came in the clear, mid-handshake, after sslyze's own completed handshakes.
            let answered = behaviour == Behaviour::Vulnerable;
            assert!(lab.events().iter().any(|e| matches!(e, LabEvent::Heartbeat { encrypted: false, answered: a, .. } if *a == answered)), "{:?}", lab.events());
        }
    }
}

#[test]
fn lab_dtls_fuzz_corpus_replays_without_panic() {
    let identity = Arc::new(LabIdentity::rsa_lab(&["fuzz.test"]).unwrap());
    for bytes in bleedwatch_testkit::fuzz_corpus("lab_dtls_client_datagrams").unwrap() {
        bleedwatch_lab::dtls::fuzz_client_datagrams(&bytes, identity.clone());
    }
}

/// The DTLS lab against the three real `s_server -dtls1` (1.0.1f) associations recorded to show its
/// handshake write buffer (`../shared/data/pcap/openssl-1.0.1f-lab/`, README section "DTLS: answers
/// under about 4 KiB never leave the handshake write buffer"; datagrams in `tests/data/`): the client's
/// datagrams are replayed into a lab configured like the real server (DTLS 1.0, its certificate, its
/// cookie), and the lab must send the same datagrams — same number, sizes and record shapes — as the
/// real server did: silence for a 512-byte and a 4000-byte answer, the echo for a 4500-byte one.
mod dtls_write_buffer {
    use std::sync::Arc;
    use std::time::Instant;

    use bleedwatch_lab::dtls::{DtlsLabEvent, DtlsLabOptions, LabDtlsSession};
    use bleedwatch_lab::identity::LAB_RSA_KEY_A;
    use bleedwatch_lab::{Behaviour, LabConfig, LabEvent, LabIdentity};
    use bleedwatch_wire::dtls::{handshake_fragments, records, DtlsHandshakeReassembler, ReassemblyLimits, MAX_DATAGRAM_LEN};
    use bleedwatch_wire::handshake::{parse_certificate_list, parse_hello_verify_request};
    use bleedwatch_wire::heartbeat::HeartbeatMessage;
    use bleedwatch_wire::{ContentType, HandshakeType, ProtocolVersion};

    /// (from the client?, UDP payload) in capture order.
    fn recorded(name: &str) -> Vec<(bool, Vec<u8>)> {
        let path = format!("{}/tests/data/{name}.datagrams", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        bleedwatch_lab::dtls::parse_datagram_transcript(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// A datagram without what is random: per record its header fields and length, per handshake
    /// fragment its header (and the HelloVerifyRequest's cookie length), per heartbeat its type and claim.
    fn shape(datagram: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        for r in records(datagram) {
            let Ok(r) = r else {
                out.push("a cut record".into());
                break;
            };
            let h = r.header;
            out.push(format!("record {:?} {:?} epoch {} seq {} len {}", h.content_type, h.version, h.epoch, h.sequence, h.length));
            match h.content_type {
                ContentType::HANDSHAKE => {
                    for f in handshake_fragments(r.fragment).unwrap() {
                        let fh = f.header;
                        out.push(format!("  {:?} len {} seq {} at {} +{}", fh.typ, fh.length, fh.message_seq, fh.fragment_offset, fh.fragment_length));
                        if fh.typ == HandshakeType::HELLO_VERIFY_REQUEST {
                            let (version, cookie) = parse_hello_verify_request(f.body).unwrap();
                            out.push(format!("  cookie {version:?} {}", cookie.len()));
                        }
                    }
                }
                ContentType::HEARTBEAT => {
                    let hb = HeartbeatMessage::parse(r.fragment).unwrap();
                    out.push(format!("  heartbeat {:?} claim {} body {}", hb.kind, hb.payload_length, hb.body.len()));
                }
                _ => out.push(format!("  {:02x?}", r.fragment)),
            }
        }
        out
    }

    /// The real server's certificate chain and cookie.
    fn chain_and_cookie(rec: &[(bool, Vec<u8>)]) -> (Vec<Vec<u8>>, Vec<u8>) {
        let (mut chain, mut cookie) = (Vec::new(), Vec::new());
        let mut reassembler = DtlsHandshakeReassembler::new(0, ReassemblyLimits::default());
        for (_, d) in rec.iter().filter(|(c, _)| !c) {
            for r in records(d) {
                let r = r.unwrap();
                if r.header.content_type == ContentType::HANDSHAKE {
                    let _ = reassembler.push_record(r.fragment);
                }
            }
            while let Some(m) = reassembler.next_message() {
                if m.typ == HandshakeType::HELLO_VERIFY_REQUEST && cookie.is_empty() {
                    cookie = parse_hello_verify_request(&m.body).unwrap().1.to_vec();
                }
                if m.typ == HandshakeType::CERTIFICATE {
                    chain = parse_certificate_list(&m.body).unwrap().into_iter().map(<[u8]>::to_vec).collect();
                }
            }
        }
        (chain, cookie)
    }

    /// Replays the client's datagrams as the lab's UDP shell would: a closed association is forgotten
    /// and the peer's next datagram meets a new one. Returns the lab's datagrams and events.
    fn replay(name: &str) -> (Vec<Vec<u8>>, Vec<Vec<u8>>, Vec<DtlsLabEvent>) {
        let rec = recorded(name);
        let (chain, cookie) = chain_and_cookie(&rec);
        assert_eq!(cookie.len(), 20, "{name}");
        let identity = Arc::new(LabIdentity::with_chain(chain, LAB_RSA_KEY_A).unwrap());
        let cfg = LabConfig::new(Behaviour::Vulnerable, identity).with_versions(&[ProtocolVersion::DTLS1_0]);
        let opts = DtlsLabOptions { mtu: MAX_DATAGRAM_LEN, ..Default::default() };
        let new_session = || LabDtlsSession::new(cfg.clone(), opts.clone(), cookie.clone());
        let mut session = new_session();
        let (mut real, mut lab, mut events) = (Vec::new(), Vec::new(), Vec::new());
        let now = Instant::now();
        for (from_client, datagram) in rec {
            if !from_client {
                real.push(datagram);
                continue;
            }
            if session.is_closed() {
                session = new_session();
            }
            session.feed_datagram(now, &datagram);
            lab.extend(session.take_datagrams());
            events.extend(session.take_events());
        }
        // The real server sent nothing more: no retransmission of its flight (which would flush the
        // buffer), since s_server dropped the association; the 512-byte capture shows 2.5 s of that
        // silence, more than the 1 s retransmission timer.
        if let Some(timer) = session.poll_timeout() {
            session.handle_timeout(timer);
            lab.extend(session.take_datagrams());
            events.extend(session.take_events());
        }
        (real, lab, events)
    }

    fn check(name: &str, expected_sizes: &[usize]) -> Vec<DtlsLabEvent> {
        let (real, lab, events) = replay(name);
        assert_eq!(real.iter().map(Vec::len).collect::<Vec<_>>(), expected_sizes, "{name}: the capture");
        let lab_shapes: Vec<Vec<String>> = lab.iter().map(|d| shape(d)).collect();
        let real_shapes: Vec<Vec<String>> = real.iter().map(|d| shape(d)).collect();
        assert_eq!(lab_shapes, real_shapes, "{name}: the lab's datagrams differ from the real server's");
        assert_eq!(lab.iter().map(Vec::len).collect::<Vec<_>>(), expected_sizes, "{name}");
        events
    }

    fn heartbeat_events(events: &[DtlsLabEvent]) -> Vec<(u16, bool, bool)> {
        events
            .iter()
            .filter_map(|e| match e {
                DtlsLabEvent::Lab(LabEvent::Heartbeat { claimed, answered, flushed, .. }) => Some((*claimed, *answered, *flushed)),
                _ => None,
            })
            .collect()
    }

    /// Our old probe's datagram (512-byte test and honest heartbeats, HelloRequest): answered into the
    /// buffer and lost with the association; the probe's new ClientHello 2.5 s later gets a fresh
    /// HelloVerifyRequest, and no flight was retransmitted in between.
    #[test]
    fn a_512_byte_answer_never_leaves_the_buffer() {
        let events = check("probe512-101f-dtls1", &[48, 944, 48]);
        assert_eq!(heartbeat_events(&events), vec![(512, true, false)], "only the first heartbeat is read: {events:?}");
        assert!(events.contains(&DtlsLabEvent::AssociationDropped));
        assert!(!events.iter().any(|e| matches!(e, DtlsLabEvent::Retransmitted { .. })));
    }

    #[test]
    fn a_4000_byte_answer_never_leaves_the_buffer() {
        let events = check("unpadded4000-101f-dtls1", &[48, 1324]);
        assert_eq!(heartbeat_events(&events), vec![(4000, true, false)]);
    }

    /// 13 + 3 + 4500 + 16 bytes do not fit the 4 KiB buffer: written at once, as one datagram.
    #[test]
    fn a_4500_byte_answer_is_echoed_in_a_datagram_of_its_own() {
        let (_, lab, events) = replay("unpadded4500-101f-dtls1");
        check("unpadded4500-101f-dtls1", &[48, 1324, 4532]);
        assert_eq!(heartbeat_events(&events), vec![(4500, true, true)]);
        // The echo is the client's own 4500 bytes: nothing over-read.
        let (_, client) = recorded("unpadded4500-101f-dtls1").into_iter().rfind(|(c, _)| *c).unwrap();
        let request = records(&client).next().unwrap().unwrap();
        let response = records(&lab[2]).next().unwrap().unwrap();
        let (request, response) = (HeartbeatMessage::parse(request.fragment).unwrap(), HeartbeatMessage::parse(response.fragment).unwrap());
        assert_eq!(response.body[..4500], request.body[..4500]);
    }
}

/// Issue 10: every installation has its own server key (not the committed lab key), kept
/// private beside the inventory and reused on later runs.
#[test]
fn each_installation_has_its_own_private_key() {
    use std::os::unix::fs::PermissionsExt;
    let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let first = LabIdentity::per_installation(one.path(), &["honeypot.test"]).unwrap();
    let other = LabIdentity::per_installation(two.path(), &["honeypot.test"]).unwrap();
    assert!(first.is_rsa(), "RSA, so RSA key exchange clients are served");
    assert_ne!(first.key_pem, other.key_pem, "two installations, two keys");
    let lab = LabIdentity::rsa_lab(&["honeypot.test"]).unwrap();
    assert_ne!(first.key_pem, lab.key_pem, "not the committed lab key");
    let key_file = one.path().join(bleedwatch_lab::identity::INSTALLATION_KEY_FILE);
    assert_eq!(std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777, 0o600);
    let again = LabIdentity::per_installation(one.path(), &["honeypot.test"]).unwrap();
    assert_eq!(again.key_pem, first.key_pem, "reused on the next run");
    // A key others can read is refused, not used.
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let error = LabIdentity::per_installation(one.path(), &["honeypot.test"]).unwrap_err();
    assert!(error.to_string().contains("readable by others"), "{error}");
}
