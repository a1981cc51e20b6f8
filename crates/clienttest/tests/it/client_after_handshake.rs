//! `client-test --after-handshake` over loopback TCP: the lab's TLS server session completes the
//! handshake and the tester sends its heartbeats and HelloRequest encrypted. The clients are built
//! from the lab's own parts — its ECDHE key exchange, PRF, record protection and OpenSSL 1.0.1
//! heartbeat code (`heartbeat_action`) — and behave like 1.0.1f, 1.0.1g and a build without
//! heartbeats once the handshake is done, renegotiating on a HelloRequest as 1.0.1's s_client does.
//! (The lab's `LabClient` stops at the Certificate, so it cannot be used here.)

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bleedwatch_lab::kx::server_key_exchange;
use bleedwatch_lab::session::{heartbeat_action, HeartbeatAction};
use bleedwatch_lab::tls12::{derive_keys, master_secret, verify_data, RecordProtection, Side, SuiteSpec, Transcript};
use bleedwatch_lab::{Behaviour, LabIdentity};
use bleedwatch_clienttest::{serve_client_tests_with, ClientTestResult, ServerFactory};
use bleedwatch_probe::{ProbeMode, Verdict};
use bleedwatch_wire::codec::{put_prefixed, Prefix, Reader};
use bleedwatch_wire::handshake::{HandshakeReassembler, ServerHello};
use bleedwatch_wire::hello::{encode_handshake, ClientHelloSpec};
use bleedwatch_wire::record::{encode_records, Deframer, MAX_FRAGMENT_LEN};
use bleedwatch_wire::types::KeyExchange;
use bleedwatch_wire::{CipherSuite, ContentType, HandshakeType, ProtocolVersion};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn lab_factory() -> ServerFactory {
    bleedwatch_clienttest::lab_server_factory(Arc::new(LabIdentity::rsa_lab(&["localhost"]).unwrap()))
}

const SUITE: CipherSuite = CipherSuite(0xc013); // ECDHE-RSA-AES128-SHA: CBC, TLS 1.0 to 1.2

/// The curve point in a ServerKeyExchange for a named curve: curve_type, curve, point<1..255>.
fn ske_point(body: &[u8]) -> Vec<u8> {
    let mut r = Reader::new(body);
    assert_eq!(r.u8("curve_type").unwrap(), 3);
    r.u16("named_curve").unwrap();
    r.vec8("point").unwrap().to_vec()
}

/// What the client did after the handshake.
#[derive(Debug, Default)]
struct Done {
    established: bool,
    heartbeats_answered: usize,
    renegotiated: bool,
    alert_sent: bool,
}

/// A TLS client completing an ECDHE-RSA handshake, then handling heartbeats like `behaviour`.
struct SessionClient {
    behaviour: Behaviour,
    version: ProtocolVersion,
    identity: Arc<LabIdentity>,
    deframer: Deframer,
    handshake: HandshakeReassembler,
    transcript: Transcript,
    client_random: [u8; 32],
    server_random: Vec<u8>,
    server_point: Vec<u8>,
    master: Option<[u8; 48]>,
    write: Option<RecordProtection>,
    read: Option<RecordProtection>,
    pending_read: Option<RecordProtection>,
    out: Vec<u8>,
    closed: bool,
    done: Done,
}

impl SessionClient {
    fn new(behaviour: Behaviour, version: ProtocolVersion) -> Self {
        let client_random = [0x44u8; 32];
        let mut spec = ClientHelloSpec::probe(version, client_random, Some("localhost".into()));
        spec.cipher_suites = vec![SUITE];
        if behaviour == Behaviour::NoHeartbeat {
            spec.heartbeat = None;
        }
        let hello = spec.encode();
        let mut transcript = Transcript::default();
        transcript.push(&hello);
        let mut out = Vec::new();
        encode_records(&mut out, ContentType::HANDSHAKE, ProtocolVersion::TLS1_0, &hello, MAX_FRAGMENT_LEN);
        SessionClient {
            behaviour,
            version,
            // Only signs the client's own (unsent) ServerKeyExchange-shaped key share.
            identity: Arc::new(LabIdentity::rsa_lab(&["client"]).unwrap()),
            deframer: Deframer::new(),
            handshake: HandshakeReassembler::default(),
            transcript,
            client_random,
            server_random: Vec::new(),
            server_point: Vec::new(),
            master: None,
            write: None,
            read: None,
            pending_read: None,
            out,
            closed: false,
            done: Done::default(),
        }
    }

    fn send(&mut self, typ: ContentType, data: &[u8]) {
        match self.write.as_mut() {
            Some(write) => self.out.extend(write.seal_records(typ, self.version, data)),
            None => encode_records(&mut self.out, typ, self.version, data, MAX_FRAGMENT_LEN),
        }
    }

    fn feed(&mut self, data: &[u8]) {
        self.deframer.push(data).unwrap();
        while !self.closed {
            let Some(r) = self.deframer.next_record().unwrap() else { return };
            let (typ, version, fragment) = (r.header.content_type, r.header.version, r.fragment.to_vec());
            let plaintext = match self.read.as_mut() {
                Some(read) => read.open(typ, version, &fragment).unwrap(),
                None => fragment,
            };
            match typ {
                ContentType::HANDSHAKE => self.on_handshake(&plaintext),
                ContentType::CHANGE_CIPHER_SPEC => self.read = self.pending_read.take(),
                ContentType::HEARTBEAT => {
                    assert!(self.done.established, "heartbeat before the handshake completed");
                    match heartbeat_action(self.behaviour, self.version, &plaintext).0 {
                        HeartbeatAction::Respond(response) => {
                            self.send(ContentType::HEARTBEAT, &response);
                            self.done.heartbeats_answered += 1;
                        }
                        HeartbeatAction::Alert => {
                            self.send(ContentType::ALERT, &[2, 10]);
                            self.done.alert_sent = true;
                            self.closed = true;
                        }
                        HeartbeatAction::Drop | HeartbeatAction::Ignore => {}
                    }
                }
                ContentType::ALERT => self.closed |= plaintext.first() == Some(&2),
                other => panic!("unexpected {other} record"),
            }
        }
    }

    fn on_handshake(&mut self, fragment: &[u8]) {
        self.handshake.push(fragment);
        while let Some(m) = self.handshake.next_message().unwrap() {
            let (typ, body) = (m.typ, m.body.to_vec());
            if self.done.established {
                // ssl3_read_bytes: a HelloRequest in an established session starts a renegotiation.
                assert_eq!(typ, HandshakeType::HELLO_REQUEST);
                let mut spec = ClientHelloSpec::probe(self.version, [0x55; 32], None);
                spec.cipher_suites = vec![SUITE];
                self.send(ContentType::HANDSHAKE, &spec.encode());
                self.done.renegotiated = true;
                continue;
            }
            let message = encode_handshake(typ, &body);
            match typ {
                HandshakeType::SERVER_HELLO => {
                    let hello = ServerHello::parse(&body).unwrap();
                    assert_eq!(hello.cipher_suite, SUITE);
                    self.version = hello.version;
                    self.server_random = hello.random.to_vec();
                }
                HandshakeType::SERVER_KEY_EXCHANGE => self.server_point = ske_point(&body),
                HandshakeType::SERVER_HELLO_DONE => {
                    self.transcript.push(&message);
                    self.client_flight();
                    continue;
                }
                HandshakeType::FINISHED => {
                    let spec = SuiteSpec::for_suite(SUITE).unwrap();
                    let expected = verify_data(spec.prf_hash(self.version), &self.master.unwrap(), Side::Server, &self.transcript);
                    assert_eq!(body, expected, "server Finished");
                    self.done.established = true;
                }
                _ => {}
            }
            self.transcript.push(&message);
        }
    }

    /// ClientKeyExchange (ECDHE), ChangeCipherSpec, Finished.
    fn client_flight(&mut self) {
        let tls12 = self.version == ProtocolVersion::TLS1_2;
        let (share, ephemeral) = server_key_exchange(KeyExchange::EcdheRsa, &self.identity.key, tls12, &self.client_random, &self.server_random).unwrap();
        let mut server_share = Vec::new();
        put_prefixed(&mut server_share, Prefix::U8, |o| o.extend_from_slice(&self.server_point));
        let premaster = ephemeral.premaster(&server_share).unwrap();
        let mut cke_body = Vec::new();
        put_prefixed(&mut cke_body, Prefix::U8, |o| o.extend_from_slice(&ske_point(&share)));
        let cke = encode_handshake(HandshakeType::CLIENT_KEY_EXCHANGE, &cke_body);
        self.transcript.push(&cke);
        let spec = SuiteSpec::for_suite(SUITE).unwrap();
        let hash = spec.prf_hash(self.version);
        let master = master_secret(hash, &premaster, &self.client_random, &self.server_random);
        let keys = derive_keys(&spec, self.version, &master, &self.client_random, &self.server_random);
        let finished = encode_handshake(HandshakeType::FINISHED, &verify_data(hash, &master, Side::Client, &self.transcript));
        self.send(ContentType::HANDSHAKE, &cke);
        self.send(ContentType::CHANGE_CIPHER_SPEC, &[1]);
        self.write = Some(keys.client_write);
        self.send(ContentType::HANDSHAKE, &finished);
        self.transcript.push(&finished);
        self.pending_read = Some(keys.server_write);
        self.master = Some(master);
    }
}

async fn run_client(addr: SocketAddr, mut client: SessionClient) -> Done {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut buf = vec![0u8; 32 * 1024];
    let run = async {
        loop {
            let out = std::mem::take(&mut client.out);
            if !out.is_empty() && stream.write_all(&out).await.is_err() {
                break;
            }
            if client.closed {
                break;
            }
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => client.feed(&buf[..n]),
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(20), run).await;
    client.done
}

async fn test_after_handshake(behaviour: Behaviour, version: ProtocolVersion, mode: ProbeMode) -> (ClientTestResult, Done) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let opts = crate::client_lab::one_client(mode);
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    let server = tokio::spawn(serve_client_tests_with(listener, opts, Some(lab_factory()), tx));
    let started = Instant::now();
    let client = tokio::spawn(run_client(addr, SessionClient::new(behaviour, version)));
    let result = tokio::time::timeout(Duration::from_secs(30), rx.recv()).await.unwrap().unwrap();
    // Decided by the client's answers, not by waiting out a deadline.
    assert!(started.elapsed() < Duration::from_secs(10), "{behaviour:?}: {:?}", started.elapsed());
    let done = client.await.unwrap();
    server.await.unwrap();
    assert!(done.established, "{behaviour:?} {version}: handshake did not complete: {result:#?}");
    assert!(result.after_handshake);
    assert_eq!(result.tls_version.as_deref(), Some(version.name().unwrap()));
    (result, done)
}

#[tokio::test]
async fn vulnerable_fixed_and_heartbeatless_clients_after_the_handshake() {
    for version in [ProtocolVersion::TLS1_2, ProtocolVersion::TLS1_0] {
        // 1.0.1f: answers the honest heartbeat, then echoes the unpadded one.
        let (r, done) = test_after_handshake(Behaviour::Vulnerable, version, ProbeMode::Safe).await;
        assert_eq!(r.verdict, Verdict::Vulnerable, "{r:#?}");
        assert_eq!(done.heartbeats_answered, 2);
        assert!(r.log.iter().any(|l| l.contains("answered the honest heartbeat")), "{r:#?}");
        assert!(r.log.iter().any(|l| l.contains("answered the test heartbeat")), "{r:#?}");
        assert!(r.leak.is_none());

        // 1.0.1g: answers the honest heartbeat, drops the test one, renegotiates on the HelloRequest.
        let (r, done) = test_after_handshake(Behaviour::Fixed, version, ProbeMode::Safe).await;
        assert_eq!(r.verdict, Verdict::NotVulnerable, "{r:#?}");
        assert_eq!(done.heartbeats_answered, 1);
        assert!(done.renegotiated);
        assert!(r.reason.as_deref().unwrap().contains("test heartbeat dropped"), "{r:#?}");

        // No heartbeat code: TLS 1.2 alerts on the heartbeat record; TLS 1.0 ignores it, and the
        // HelloRequest behind it shows it was read.
        let (r, done) = test_after_handshake(Behaviour::NoHeartbeat, version, ProbeMode::Safe).await;
        assert_eq!(r.verdict, Verdict::NoHeartbeat, "{r:#?}");
        assert_eq!(done.heartbeats_answered, 0);
        if version == ProtocolVersion::TLS1_2 {
            assert!(done.alert_sent);
            assert!(r.reason.as_deref().unwrap().contains("unexpected_message"), "{r:#?}");
        } else {
            assert!(done.renegotiated);
            assert!(r.reason.as_deref().unwrap().contains("HelloRequest"), "{r:#?}");
        }
    }
}

#[tokio::test]
async fn prove_mode_counts_a_clients_canary_leak_after_the_handshake() {
    let (r, _) = test_after_handshake(Behaviour::Vulnerable, ProtocolVersion::TLS1_2, ProbeMode::Prove { overread: 24 }).await;
    assert_eq!(r.verdict, Verdict::Vulnerable);
    assert_eq!(r.leak.as_ref().unwrap().leaked_bytes, 24);
}
