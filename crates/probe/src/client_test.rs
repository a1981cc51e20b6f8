//! Testing TLS *clients* for Heartbleed: a sans-IO server that answers a client's ClientHello with a
//! ServerHello and then — before any Certificate, as a malicious server would — sends the same two
//! heartbeats the server probe sends (an unpadded test heartbeat and an honest one) and a sentinel
//! (ServerHelloDone where a Certificate must come), so that a vulnerable OpenSSL 1.0.1–1.0.1f client
//! is recognised by its echo, a fixed one by its answer to the honest heartbeat, and one without
//! heartbeat support by the fatal alert the sentinel draws: no timeout is needed for any of them.
//!
//! This covers clients that answer heartbeats during the handshake, which every OpenSSL 1.0.1 client
//! does (the shared lab captures show 1.0.1f and 1.0.1g clients answering right after the
//! ServerHello). A client that answers heartbeats only after a completed handshake (GnuTLS) refuses
//! them here, which is reported as `not-vulnerable` when it offered the heartbeat extension.

use std::net::SocketAddr;

use bleedwatch_wire::alert::Alert;
use bleedwatch_wire::handshake::{ClientHello, HandshakeReassembler};
use bleedwatch_wire::heartbeat::HeartbeatMessage;
use bleedwatch_wire::hello::{encode_server_hello_done, ServerHelloSpec};
use bleedwatch_wire::record::{encode_records, Deframer, MAX_FRAGMENT_LEN};
use bleedwatch_wire::types::KeyExchange;
use bleedwatch_wire::{AlertDescription, CipherSuite, ContentType, ExtensionType, HandshakeType, ProtocolVersion, WireError};
use rand::RngCore;

use crate::conn::StreamTest;
use crate::heartbleed::{
    heartbeat_requests, judge, ConnectionOutcome, ConnectionVerdict, HeartbeatRequest, Inconclusive, Judgement, Phase, ProbeMode,
};
use crate::result::{classify, Verdict};

/// Payload of the client test's heartbeats: like the server probe's, big enough that an OpenSSL 1.0.1
/// client's 4 KiB handshake write buffer flushes the answer (the lab captures used 4500 bytes).
pub const CLIENT_PAYLOAD_LEN: usize = 4500;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    AwaitClientHello,
    AwaitAnswer,
    Done,
}

/// What the client offered in its hello.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ClientHelloInfo {
    pub version: Option<String>,
    pub heartbeat_mode: Option<String>,
    pub server_name: Option<String>,
    pub cipher_suites: usize,
}

pub struct ClientTester {
    state: State,
    deframer: Deframer,
    handshake: HandshakeReassembler,
    outbox: Vec<u8>,
    test: HeartbeatRequest,
    honest: Option<HeartbeatRequest>,
    hello: ClientHelloInfo,
    outcome: ConnectionOutcome,
}

/// Picks a suite the client offered for a TLS ≤ 1.2 ServerHello. The handshake never gets past the
/// hello, so any real suite will do; AES128-SHA first, as the malicious server of the lab captures.
fn pick_suite(offered: &[CipherSuite]) -> Option<CipherSuite> {
    if offered.contains(&CipherSuite::TLS_RSA_WITH_AES_128_CBC_SHA) {
        return Some(CipherSuite::TLS_RSA_WITH_AES_128_CBC_SHA);
    }
    offered.iter().copied().find(|s| s.key_exchange() != KeyExchange::Other)
}

impl ClientTester {
    pub fn new(mode: ProbeMode) -> Self {
        let (test, honest) = heartbeat_requests(mode, CLIENT_PAYLOAD_LEN);
        ClientTester::with_requests(test, Some(honest))
    }

    /// A tester sending exactly these requests (for replays of recorded sessions).
    pub fn with_requests(test: HeartbeatRequest, honest: Option<HeartbeatRequest>) -> Self {
        ClientTester {
            state: State::AwaitClientHello,
            deframer: Deframer::new(),
            handshake: HandshakeReassembler::default(),
            outbox: Vec::new(),
            test,
            honest,
            hello: ClientHelloInfo::default(),
            outcome: ConnectionOutcome {
                offered: ProtocolVersion::TLS1_2,
                negotiated: None,
                cipher_suite: None,
                heartbeat_extension: None,
                chain: Vec::new(),
                verdict: ConnectionVerdict::Inconclusive(Inconclusive::Timeout { phase: Phase::ServerHello }),
                leak: None,
                log: Vec::new(),
            },
        }
    }

    pub fn hello(&self) -> &ClientHelloInfo {
        &self.hello
    }

    pub fn outcome(&self) -> &ConnectionOutcome {
        &self.outcome
    }

    fn finish(&mut self, verdict: ConnectionVerdict) {
        self.outcome.verdict = verdict;
        self.state = State::Done;
    }

    fn phase(&self) -> Phase {
        match self.state {
            State::AwaitClientHello => Phase::ServerHello,
            _ => Phase::Heartbeat,
        }
    }

    fn protocol_error(&mut self, detail: impl Into<String>) {
        let phase = self.phase();
        self.finish(ConnectionVerdict::Inconclusive(Inconclusive::ProtocolError { phase, detail: detail.into() }));
    }

    fn on_client_hello(&mut self, body: &[u8]) {
        let hello = match ClientHello::parse(body) {
            Ok(h) => h,
            Err(e) => return self.protocol_error(format!("bad ClientHello: {e}")),
        };
        self.hello = ClientHelloInfo {
            version: Some(hello.version.to_string()),
            heartbeat_mode: hello.heartbeat_mode().map(|m| m.name().to_string()),
            server_name: hello.server_name().map(str::to_owned),
            cipher_suites: hello.cipher_suites.len(),
        };
        self.outcome.offered = hello.version;
        self.outcome.heartbeat_extension = hello.heartbeat_mode();
        let supported = hello.supported_versions();
        let speaks_tls12_or_older = supported.is_empty() || supported.iter().any(|v| v.0 <= ProtocolVersion::TLS1_2.0 && v.0 >= ProtocolVersion::SSL3.0);
        if !speaks_tls12_or_older || hello.version.0 < ProtocolVersion::SSL3.0 {
            self.outcome.log.push("client offers no version from SSLv3 to TLS 1.2".into());
            return self.finish(ConnectionVerdict::VersionRejected { alert: None });
        }
        let version = ProtocolVersion(hello.version.0.min(ProtocolVersion::TLS1_2.0));
        let Some(suite) = pick_suite(&hello.cipher_suites) else {
            return self.protocol_error("client offers no TLS 1.2-or-older cipher suite");
        };
        self.outcome.negotiated = Some(version);
        self.outcome.cipher_suite = Some(suite);

        let mut random = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut random);
        let mut session_id = vec![0u8; 32];
        rand::thread_rng().fill_bytes(&mut session_id);
        let mut extensions = Vec::new();
        if hello.signals_renegotiation_info() {
            extensions.push((ExtensionType::RENEGOTIATION_INFO, vec![0]));
        }
        if hello.heartbeat_mode().is_some() {
            extensions.push((ExtensionType::HEARTBEAT, vec![1]));
        }
        let server_hello = ServerHelloSpec { version, random, session_id, cipher_suite: suite, extensions }.encode();
        let mut out = Vec::new();
        encode_records(&mut out, ContentType::HANDSHAKE, version, &server_hello, MAX_FRAGMENT_LEN);
        encode_records(&mut out, ContentType::HEARTBEAT, version, &self.test.encode(), MAX_FRAGMENT_LEN);
        if let Some(honest) = &self.honest {
            encode_records(&mut out, ContentType::HEARTBEAT, version, &honest.encode(), MAX_FRAGMENT_LEN);
        }
        encode_records(&mut out, ContentType::HANDSHAKE, version, &encode_server_hello_done(), MAX_FRAGMENT_LEN);
        self.outbox = out;
        self.outcome.log.push(format!(
            "client offered {} ({} suites, heartbeat {}); sent ServerHello {version} {suite}, test and honest heartbeats, sentinel",
            hello.version,
            hello.cipher_suites.len(),
            hello.heartbeat_mode().map(|m| m.name()).unwrap_or("not offered")
        ));
        self.state = State::AwaitAnswer;
    }

    fn on_record(&mut self, typ: ContentType, fragment: &[u8]) {
        match (self.state, typ) {
            (State::AwaitClientHello, ContentType::HANDSHAKE) => {
                self.handshake.push(fragment);
                match self.handshake.next_message() {
                    Ok(Some(m)) if m.typ == HandshakeType::CLIENT_HELLO => {
                        let body = m.body.to_vec();
                        self.on_client_hello(&body);
                    }
                    Ok(Some(m)) => {
                        let typ = m.typ;
                        self.protocol_error(format!("expected ClientHello, got {typ}"));
                    }
                    Ok(None) => {}
                    Err(e) => self.protocol_error(e.to_string()),
                }
            }
            (State::AwaitClientHello, ContentType::ALERT) => {
                let alert = Alert::parse(fragment).map(|a| a.description).ok();
                self.finish(ConnectionVerdict::VersionRejected { alert });
            }
            (State::AwaitClientHello, other) => self.protocol_error(format!("expected a handshake record, got {other}")),
            (State::AwaitAnswer, ContentType::HEARTBEAT) => {
                let Ok(msg) = HeartbeatMessage::parse(fragment) else { return };
                match judge(&self.test, self.honest.as_ref(), &msg) {
                    Judgement::TestAnswered { leak } => {
                        self.outcome.log.push(format!("client answered the test heartbeat ({} bytes in the record)", fragment.len()));
                        self.outcome.leak = leak;
                        self.finish(ConnectionVerdict::Vulnerable);
                    }
                    Judgement::HonestAnswered => {
                        self.outcome.log.push("client answered the honest heartbeat and dropped the test one".into());
                        self.finish(ConnectionVerdict::NotVulnerable);
                    }
                    Judgement::Unrelated => self.outcome.log.push("ignored a heartbeat that answers nothing of ours".into()),
                }
            }
            (State::AwaitAnswer, ContentType::ALERT) => match Alert::parse(fragment) {
                Ok(alert) if alert.is_fatal() || alert.description == AlertDescription::CLOSE_NOTIFY => {
                    self.outcome.log.push(format!("client sent alert {alert}"));
                    self.finish(ConnectionVerdict::HeartbeatRefused { alert: Some(alert.description) });
                }
                Ok(alert) => self.outcome.log.push(format!("client sent alert {alert}")),
                Err(e) => self.protocol_error(format!("malformed alert: {e}")),
            },
            (State::AwaitAnswer, _) => self.outcome.log.push(format!("ignored {typ} record from the client")),
            (State::Done, _) => {}
        }
    }

    /// The result for reporting.
    pub fn report(&self, client: SocketAddr, service: &str) -> ClientTestResult {
        let (verdict, reason) = classify(&self.outcome);
        ClientTestResult {
            client: client.to_string(),
            service: service.to_string(),
            time: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
            tls_version: self.outcome.negotiated.map(|v| v.to_string()),
            client_hello: self.hello.clone(),
            verdict: if verdict == Verdict::NotSupported { Verdict::Inconclusive } else { verdict },
            reason,
            leak: self.outcome.leak.clone(),
            log: self.outcome.log.clone(),
        }
    }
}

impl StreamTest for ClientTester {
    fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.outbox)
    }

    fn feed(&mut self, data: &[u8]) {
        if self.state == State::Done {
            return;
        }
        if let Err(e) = self.deframer.push(data) {
            return self.protocol_error(e.to_string());
        }
        while self.state != State::Done {
            match self.deframer.next_record() {
                Ok(Some(r)) => {
                    let (typ, fragment) = (r.header.content_type, r.fragment.to_vec());
                    self.on_record(typ, &fragment);
                }
                Ok(None) => break,
                Err(WireError::NotTls(first)) if self.state == State::AwaitClientHello => {
                    return self.finish(ConnectionVerdict::Inconclusive(Inconclusive::NotTls { first_bytes: hex::encode(first) }))
                }
                Err(e) => return self.protocol_error(e.to_string()),
            }
        }
    }

    fn feed_eof(&mut self) {
        match self.state {
            State::AwaitAnswer => {
                self.outcome.log.push("client closed the connection without answering".into());
                self.finish(ConnectionVerdict::HeartbeatRefused { alert: None });
            }
            State::AwaitClientHello => self.finish(ConnectionVerdict::Inconclusive(Inconclusive::Closed { phase: Phase::ServerHello })),
            State::Done => {}
        }
    }

    fn feed_reset(&mut self) {
        if self.state != State::Done {
            let phase = self.phase();
            self.finish(ConnectionVerdict::Inconclusive(Inconclusive::Reset { phase }));
        }
    }

    fn feed_timeout(&mut self) {
        if self.state != State::Done {
            let phase = self.phase();
            self.finish(ConnectionVerdict::Inconclusive(Inconclusive::Timeout { phase }));
        }
    }

    fn is_done(&self) -> bool {
        self.state == State::Done
    }

    fn awaiting_answer(&self) -> bool {
        self.state == State::AwaitAnswer
    }
}

/// One line of `bleedwatch client-test` output.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ClientTestResult {
    /// The client's address and port.
    pub client: String,
    /// `tls`, or the STARTTLS dialect the client went through (e.g. `smtp`).
    pub service: String,
    pub time: String,
    /// The version the test spoke (the client's offer, capped at TLS 1.2).
    pub tls_version: Option<String>,
    pub client_hello: ClientHelloInfo,
    pub verdict: Verdict,
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leak: Option<crate::heartbleed::LeakEvidence>,
    pub log: Vec<String>,
}

/// Fuzz entry point: arbitrary client bytes into the client tester.
pub fn fuzz_client_bytes(data: &[u8]) {
    let mut t = ClientTester::new(ProbeMode::Safe);
    for piece in data.chunks(data.first().map(|b| *b as usize + 1).unwrap_or(1)) {
        t.feed(piece);
        let _ = t.take_output();
    }
    t.feed_eof();
}

/// Options for [`serve_client_tests`].
#[derive(Debug, Clone)]
pub struct ClientTestOptions {
    pub mode: ProbeMode,
    pub timeouts: crate::conn::Timeouts,
    /// Stop after this many clients (None: run until the task is dropped).
    pub max_clients: Option<usize>,
    /// Play the server side of this STARTTLS dialogue first (e.g. an SMTP server offering STARTTLS,
    /// so an MTA relaying through us is tested as a TLS client).
    pub starttls: Option<bleedwatch_starttls::Protocol>,
}

/// Accepts clients on `listener`, tests each (concurrently), and sends one result per client.
/// `service` names what the client spoke before TLS (`tls` for direct TLS).
pub async fn serve_client_tests(listener: tokio::net::TcpListener, opts: ClientTestOptions, results: tokio::sync::mpsc::Sender<ClientTestResult>) {
    let mut served = 0usize;
    let mut tasks = tokio::task::JoinSet::new();
    while opts.max_clients.is_none_or(|max| served < max) {
        let Ok((mut stream, peer)) = listener.accept().await else { continue };
        served += 1;
        let (opts, results) = (opts.clone(), results.clone());
        tasks.spawn(async move {
            let _ = stream.set_nodelay(true);
            let mut tester = ClientTester::new(opts.mode);
            let service = opts.starttls.map(|p| p.name()).unwrap_or("tls");
            if let Some(protocol) = opts.starttls {
                let params = bleedwatch_starttls::ServerParams { hostname: "client-test.bleedwatch.invalid".into(), ..Default::default() };
                let deadline = tokio::time::Instant::now() + opts.timeouts.handshake;
                match bleedwatch_starttls::io::accept_starttls(&mut stream, protocol, params, deadline).await {
                    Ok(leftover) => tester.feed(&leftover),
                    Err(e) => {
                        tester.outcome.log.push(format!("{} dialogue: {e}", protocol.name()));
                        tester.feed_reset();
                        let _ = results.send(tester.report(peer, service)).await;
                        return;
                    }
                }
            }
            let tester = crate::conn::drive_test(&mut stream, tester, &opts.timeouts).await;
            let _ = results.send(tester.report(peer, service)).await;
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}
