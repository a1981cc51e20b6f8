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
//! them here, which is reported as `not-vulnerable` when it offered the heartbeat extension, with a
//! hint to test it again after the handshake.
//!
//! After the handshake ([`ClientTester::after_handshake`], `client-test --after-handshake`): a
//! [`HandshakeServer`] — the lab's TLS server session of `lab_server`, plugged in by the caller — completes a real
//! handshake with the client (which must accept the lab certificate), and the same two heartbeats
//! and a sentinel go out encrypted right behind the server's Finished, judged by the same [`judge`].
//! The honest heartbeat goes first there, because GnuTLS drops the connection on the unpadded test
//! heartbeat: answered, it shows the client answers heartbeats, and the test heartbeat right behind
//! it decides — echoed (vulnerable), or refused, or passed over for the sentinel (not vulnerable).
//! The sentinel is a HelloRequest, which gnutls-cli, OpenSSL 3's s_client and curl all answer with a
//! renegotiating ClientHello (a no_renegotiation warning would do as well): it proves the heartbeats
//! before it were read. A client's close_notify proves nothing, and silence stays inconclusive.

use std::net::SocketAddr;

use bleedwatch_wire::alert::Alert;
use bleedwatch_wire::handshake::{ClientHello, HandshakeReassembler};
use bleedwatch_wire::heartbeat::HeartbeatMessage;
use bleedwatch_wire::hello::{encode_handshake, encode_server_hello_done, ServerHelloSpec};
use bleedwatch_wire::record::{encode_records, Deframer, MAX_FRAGMENT_LEN};
use bleedwatch_wire::types::KeyExchange;
use bleedwatch_wire::{AlertDescription, CipherSuite, ContentType, ExtensionType, HandshakeType, ProtocolVersion, WireError};
use rand::RngCore;

use bleedwatch_probe::conn::StreamTest;
use bleedwatch_probe::heartbleed::{
    heartbeat_requests, judge, ConnectionOutcome, ConnectionVerdict, HeartbeatRequest, Inconclusive, Judgement, Phase, ProbeMode,
};
use bleedwatch_probe::result::{classify, Verdict};

/// Payload of the client test's heartbeats: like the server probe's, big enough that an OpenSSL 1.0.1
/// client's 4 KiB handshake write buffer flushes the answer (the lab captures used 4500 bytes).
pub const CLIENT_PAYLOAD_LEN: usize = 4500;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    AwaitClientHello,
    /// After-handshake mode: the server session is completing the handshake.
    Handshake,
    AwaitAnswer,
    Done,
}

/// The server side of a complete TLS 1.0–1.2 handshake with record protection, for the
/// after-handshake test. The tester has no TLS server of its own: [`lab_server_factory`] plugs in the
/// lab's server session (`bleedwatch_lab::LabSession` with `hand_over_records`).
pub trait HandshakeServer: Send {
    /// Bytes from the client, from the first byte of its ClientHello on.
    fn feed(&mut self, data: &[u8]);
    /// Bytes for the client.
    fn take_output(&mut self) -> Vec<u8>;
    /// Version and cipher suite, once both Finished messages have been exchanged.
    fn established(&self) -> Option<(ProtocolVersion, CipherSuite)>;
    /// The server gave up: a fatal alert was sent or received during the handshake, or a record
    /// failed to decrypt.
    fn is_closed(&self) -> bool;
    /// Sends `data` as records of `typ` in the established session, encrypted. False (nothing sent)
    /// when no session is established.
    fn send_encrypted(&mut self, typ: ContentType, data: &[u8]) -> bool;
    /// The client's records in the established session since the last call, decrypted, in order.
    fn take_client_records(&mut self) -> Vec<(ContentType, Vec<u8>)>;
    /// Alerts since the last call, for the log and the verdict.
    fn take_alerts(&mut self) -> Vec<SessionAlert>;
}

/// An alert the [`HandshakeServer`] sent or received (e.g. `fatal bad_certificate`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionAlert {
    /// True when the server sent it, false when the client did.
    pub sent: bool,
    pub alert: String,
    pub fatal: bool,
}

/// Makes one [`HandshakeServer`] per client.
pub type ServerFactory = std::sync::Arc<dyn Fn() -> Box<dyn HandshakeServer> + Send + Sync>;

/// Said with a refusal during the handshake when the client offered the extension.
const AFTER_HANDSHAKE_HINT: &str =
    "clients that answer heartbeats only after a completed handshake (GnuTLS) are tested with --after-handshake";

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
    pub(crate) outcome: ConnectionOutcome,
    /// After-handshake mode: the server session that completes the handshake.
    server: Option<Box<dyn HandshakeServer>>,
    /// Replaces the classified reason when the plain one would mislead.
    reason: Option<String>,
    /// Bytes of application data the client sent in the session (ignored, counted for the log).
    application_data: usize,
    /// After-handshake mode: the honest heartbeat (sent first there) was answered.
    honest_answered: bool,
    /// After-handshake mode: the client ended the session with close_notify.
    client_closed_session: bool,
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

    /// A tester that lets `server` complete the handshake and sends its heartbeats and sentinel
    /// encrypted in the established session.
    pub fn after_handshake(mode: ProbeMode, server: Box<dyn HandshakeServer>) -> Self {
        let mut tester = ClientTester::new(mode);
        tester.server = Some(server);
        tester
    }

    /// Whether this tester sends its heartbeats after the handshake.
    pub fn is_after_handshake(&self) -> bool {
        self.server.is_some()
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
            outcome: ConnectionOutcome::started(ProtocolVersion::TLS1_2, Vec::new()),
            server: None,
            reason: None,
            application_data: 0,
            honest_answered: false,
            client_closed_session: false,
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
            State::Handshake => Phase::ServerFlight,
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
            self.outcome.note("client offers no version from SSLv3 to TLS 1.2");
            return self.finish(ConnectionVerdict::VersionRejected { alert: None });
        }
        if self.server.is_some() {
            // The server session negotiates for itself; the tester only needed the hello's contents.
            self.outcome.note(format!(
                "client offered {} ({} suites, heartbeat {}); completing the handshake before any heartbeat",
                hello.version,
                hello.cipher_suites.len(),
                hello.heartbeat_mode().map(|m| m.name()).unwrap_or("not offered")
            ));
            self.state = State::Handshake;
            return;
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
        self.outcome.note(format!(
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
            (State::AwaitAnswer, ContentType::HEARTBEAT) => self.on_heartbeat_answer(fragment),
            (State::AwaitAnswer, ContentType::ALERT) => match Alert::parse(fragment) {
                Ok(alert) if alert.is_fatal() || alert.description == AlertDescription::CLOSE_NOTIFY => {
                    self.outcome.note(format!("client sent alert {alert}"));
                    self.refused_during_handshake(&format!("alert {alert}"));
                    self.finish(ConnectionVerdict::HeartbeatRefused { alert: Some(alert.description) });
                }
                Ok(alert) => self.outcome.note(format!("client sent alert {alert}")),
                Err(e) => self.protocol_error(format!("malformed alert: {e}")),
            },
            (State::AwaitAnswer, _) => self.outcome.note(format!("ignored {typ} record from the client")),
            // Mid-handshake mode reads the stream itself only until the ClientHello.
            (State::Handshake | State::Done, _) => {}
        }
    }

    /// A client that offered the heartbeat extension and refused our heartbeats in the middle of
    /// the handshake may still answer them after it: say how to find out.
    fn refused_during_handshake(&mut self, how: &str) {
        if self.server.is_none() && self.outcome.heartbeat_extension.is_some() {
            self.outcome.note(format!("the client offered the heartbeat extension but refused heartbeats during the handshake; {AFTER_HANDSHAKE_HINT}"));
            self.reason = Some(format!("heartbeat extension offered but heartbeats refused during the handshake ({how}); {AFTER_HANDSHAKE_HINT}"));
        }
    }

    /// After-handshake mode: hands the client's bytes to the server session and acts on what it
    /// reports — the completed handshake (send the heartbeats), the client's records, failures.
    fn feed_after_handshake(&mut self, data: &[u8]) {
        if self.state == State::AwaitClientHello {
            self.read_client_hello(data);
        }
        if self.state == State::Done {
            return;
        }
        let Some(server) = self.server.as_mut() else { return };
        server.feed(data);
        self.poll_server();
    }

    /// Parses the stream up to the ClientHello, for the report (the server session gets the same bytes).
    fn read_client_hello(&mut self, data: &[u8]) {
        if let Err(e) = self.deframer.push(data) {
            return self.protocol_error(e.to_string());
        }
        while self.state == State::AwaitClientHello {
            match self.deframer.next_record() {
                Ok(Some(r)) => {
                    let (typ, fragment) = (r.header.content_type, r.fragment.to_vec());
                    self.on_record(typ, &fragment);
                }
                Ok(None) => break,
                Err(WireError::NotTls(first)) => {
                    return self.finish(ConnectionVerdict::Inconclusive(Inconclusive::NotTls { first_bytes: hex::encode(first) }))
                }
                Err(e) => return self.protocol_error(e.to_string()),
            }
        }
    }

    fn poll_server(&mut self) {
        let Some(server) = self.server.as_mut() else { return };
        self.outbox.extend(server.take_output());
        let alerts = server.take_alerts();
        let established = server.established();
        let closed = server.is_closed();
        let records = server.take_client_records();
        let mut client_alert = None;
        let when = if self.state == State::Handshake { "during the handshake" } else { "in the session" };
        for a in alerts {
            let who = if a.sent { "server" } else { "client" };
            self.outcome.note(format!("{who} sent alert {} {when}", a.alert));
            if !a.sent && a.fatal {
                client_alert = Some(a.alert);
            }
        }
        if self.state == State::Handshake {
            if let Some((version, suite)) = established {
                self.outcome.negotiated = Some(version);
                self.outcome.cipher_suite = Some(suite);
                self.send_encrypted_heartbeats(version, suite);
            } else if closed {
                let phase = Phase::ServerFlight;
                return match client_alert {
                    Some(alert) => {
                        self.outcome.note(
                            "the client aborted the handshake: it must accept the lab certificate (curl -k, gnutls-cli --insecure)",
                        );
                        self.finish(ConnectionVerdict::Inconclusive(Inconclusive::Alert { phase, alert }))
                    }
                    None => self.finish(ConnectionVerdict::Inconclusive(Inconclusive::ProtocolError {
                        phase,
                        detail: "the handshake failed on the server side".into(),
                    })),
                };
            }
        }
        for (typ, plaintext) in records {
            if self.state != State::AwaitAnswer {
                break;
            }
            self.on_session_record(typ, &plaintext);
        }
        if self.state == State::AwaitAnswer && closed {
            self.protocol_error("a record from the client failed to decrypt");
        }
    }

    /// The honest heartbeat goes first here: GnuTLS treats the unpadded test heartbeat as a decoding
    /// error and drops the connection, so only an honest heartbeat sent before it can show that the
    /// client answers heartbeats at all. The test heartbeat's fate then decides: echoed (vulnerable),
    /// or passed over for the HelloRequest behind it or refused (not vulnerable).
    fn send_encrypted_heartbeats(&mut self, version: ProtocolVersion, suite: CipherSuite) {
        let Some(server) = self.server.as_mut() else { return };
        let hello_request = encode_handshake(HandshakeType::HELLO_REQUEST, &[]);
        let mut sent = true;
        if let Some(honest) = &self.honest {
            sent &= server.send_encrypted(ContentType::HEARTBEAT, &honest.encode());
        }
        sent &= server.send_encrypted(ContentType::HEARTBEAT, &self.test.encode());
        sent &= server.send_encrypted(ContentType::HANDSHAKE, &hello_request);
        self.outbox.extend(server.take_output());
        if !sent {
            return self.protocol_error("the server session could not send in the established session");
        }
        self.outcome.note(format!(
            "handshake completed ({version}, {suite}); sent encrypted {}test heartbeat (claims {}, carries {}, padding {}), sentinel (HelloRequest)",
            if self.honest.is_some() { "honest heartbeat, " } else { "" },
            self.test.claimed_len,
            self.test.payload.len(),
            self.test.padding,
        ));
        self.state = State::AwaitAnswer;
    }

    /// A decrypted record from the client in the established session, after our heartbeats.
    fn on_session_record(&mut self, typ: ContentType, plaintext: &[u8]) {
        match typ {
            ContentType::HEARTBEAT => self.on_heartbeat_answer(plaintext),
            ContentType::ALERT => match Alert::parse(plaintext) {
                Ok(alert) if alert.is_fatal() => {
                    self.outcome.note(format!("client sent alert {alert}"));
                    if self.honest_answered {
                        return self.test_refused(&format!("fatal alert {}", alert.description));
                    }
                    // Our heartbeats follow our Finished in one flight: these alerts blame the
                    // handshake's keys, not the heartbeats.
                    if [AlertDescription::BAD_RECORD_MAC, AlertDescription::DECRYPT_ERROR, AlertDescription::HANDSHAKE_FAILURE].contains(&alert.description) {
                        self.outcome.note("the alert rejects the server's Finished or keys, not our heartbeats");
                        let phase = Phase::ServerFlight;
                        return self.finish(ConnectionVerdict::Inconclusive(Inconclusive::Alert { phase, alert: alert.to_string() }));
                    }
                    self.finish(ConnectionVerdict::HeartbeatRefused { alert: Some(alert.description) });
                }
                Ok(alert) if alert.description == AlertDescription::CLOSE_NOTIFY => {
                    // An orderly close is the client's own decision: it shows nothing was read.
                    self.outcome.note(format!("client sent alert {alert}"));
                    self.client_closed_session = true;
                }
                Ok(alert) if alert.description == AlertDescription::NO_RENEGOTIATION => {
                    self.outcome.note(format!("client sent alert {alert}: it read the heartbeats before the HelloRequest and answered neither"));
                    self.sentinel_answered("declined the HelloRequest sent after them (no_renegotiation)");
                }
                Ok(alert) => self.outcome.note(format!("client sent alert {alert}")),
                Err(e) => self.protocol_error(format!("malformed alert: {e}")),
            },
            ContentType::HANDSHAKE if plaintext.first() == Some(&HandshakeType::CLIENT_HELLO.0) => {
                self.outcome.note("client renegotiated (ClientHello): it read the heartbeats before the HelloRequest and answered neither");
                self.sentinel_answered("answered the HelloRequest sent after them with a ClientHello");
            }
            ContentType::APPLICATION_DATA => {
                if self.application_data == 0 {
                    self.outcome.note("ignored application data from the client");
                }
                self.application_data += plaintext.len();
            }
            other => self.outcome.note(format!("ignored {other} record from the client")),
        }
    }

    fn on_heartbeat_answer(&mut self, fragment: &[u8]) {
        let Ok(msg) = HeartbeatMessage::parse(fragment) else {
            return self.outcome.note("ignored a malformed heartbeat record");
        };
        match judge(&self.test, self.honest.as_ref(), &msg) {
            Judgement::TestAnswered { leak } => {
                self.outcome.note(format!("client answered the test heartbeat ({} bytes in the record)", fragment.len()));
                self.outcome.leak = leak;
                self.finish(ConnectionVerdict::Vulnerable);
            }
            Judgement::HonestAnswered if self.server.is_some() => {
                // Sent first here: the test heartbeat behind it is still to be judged.
                if !self.honest_answered {
                    self.outcome.note("client answered the honest heartbeat; the test heartbeat came next");
                }
                self.honest_answered = true;
            }
            Judgement::HonestAnswered => {
                self.outcome.note("client answered the honest heartbeat and dropped the test one");
                self.finish(ConnectionVerdict::NotVulnerable);
            }
            Judgement::Unrelated => self.outcome.note("ignored a heartbeat that answers nothing of ours"),
        }
    }

    /// After-handshake mode: the honest heartbeat was answered, and then the client ended the
    /// connection instead of answering the test heartbeat, which came next: it checks bounds.
    fn test_refused(&mut self, how: &str) {
        self.reason = Some(format!("honest heartbeat answered; the unpadded test heartbeat after it was refused ({how})"));
        self.finish(ConnectionVerdict::NotVulnerable);
    }

    /// The sentinel drew an answer and the test heartbeat did not: it was read and ignored.
    fn sentinel_answered(&mut self, how: &str) {
        if self.honest_answered {
            self.reason = Some(format!("honest heartbeat answered, unpadded test heartbeat dropped: the client {how}"));
            return self.finish(ConnectionVerdict::NotVulnerable);
        }
        self.reason = Some(if self.outcome.heartbeat_extension.is_some() {
            format!("heartbeat extension negotiated but both heartbeats ignored: the client {how}")
        } else {
            format!("no heartbeat extension; heartbeats ignored: the client {how}")
        });
        self.finish(ConnectionVerdict::HeartbeatRefused { alert: None });
    }

    /// The result for reporting.
    pub fn report(&self, client: SocketAddr, service: &str) -> ClientTestResult {
        let (verdict, classified) = classify(&self.outcome);
        // Set together with the verdict it explains, where the classified reason would mislead.
        let reason = self.reason.clone().or(classified);
        ClientTestResult {
            client: client.to_string(),
            service: service.to_string(),
            time: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
            tls_version: self.outcome.negotiated.map(|v| v.to_string()),
            client_hello: self.hello.clone(),
            after_handshake: self.server.is_some(),
            verdict: if verdict == Verdict::NotSupported { Verdict::Inconclusive } else { verdict },
            reason,
            evidence: self.outcome.evidence(),
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
        if self.server.is_some() {
            return self.feed_after_handshake(data);
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
            State::AwaitAnswer if self.honest_answered => {
                self.outcome.note("client closed the connection without answering the test heartbeat");
                self.test_refused("connection closed");
            }
            State::AwaitAnswer if self.client_closed_session => {
                self.outcome.note("client closed the session itself; nothing shows it read our heartbeats");
                self.finish(ConnectionVerdict::Inconclusive(Inconclusive::Closed { phase: Phase::Heartbeat }));
            }
            // A close proves nothing about our records (the client may have given up on us for any
            // reason); only an answer, an alert or a reaction to the sentinel does.
            State::AwaitAnswer => {
                self.outcome.note("client closed the connection without answering our heartbeats or sending an alert");
                if self.server.is_none() && self.outcome.heartbeat_extension.is_some() {
                    self.reason = Some(format!(
                        "heartbeat extension offered, but the client closed the connection after our heartbeats without a word (a close proves nothing); {AFTER_HANDSHAKE_HINT}"
                    ));
                }
                self.finish(ConnectionVerdict::Inconclusive(Inconclusive::Closed { phase: Phase::Heartbeat }));
            }
            State::AwaitClientHello => self.finish(ConnectionVerdict::Inconclusive(Inconclusive::Closed { phase: Phase::ServerHello })),
            State::Handshake => {
                self.outcome.note("client closed the connection during the handshake");
                self.finish(ConnectionVerdict::Inconclusive(Inconclusive::Closed { phase: Phase::ServerFlight }));
            }
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
        if self.state == State::AwaitAnswer && self.honest_answered {
            self.outcome.note("the test heartbeat was neither answered nor refused, and the HelloRequest drew nothing");
        }
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
    /// The heartbeats went out encrypted after a completed handshake (`--after-handshake`), not
    /// in the middle of it.
    pub after_handshake: bool,
    pub verdict: Verdict,
    pub reason: Option<String>,
    /// What the verdict stands on (typed, as in the scanner's `details[].evidence`).
    pub evidence: bleedwatch_verdict::Evidence,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leak: Option<bleedwatch_probe::heartbleed::LeakEvidence>,
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use bleedwatch_wire::heartbeat::{self, HeartbeatMessageType};
    use bleedwatch_wire::hello::ClientHelloSpec;

    use super::*;

    /// What the scripted server was asked to send, and what the test makes it report next.
    #[derive(Default)]
    struct Script {
        fed: usize,
        established: bool,
        closed: bool,
        sent: Vec<(ContentType, Vec<u8>)>,
        client_records: Vec<(ContentType, Vec<u8>)>,
        alerts: Vec<SessionAlert>,
    }

    /// A stand-in for the lab's session: the tests script the handshake's outcome and the client's
    /// decrypted records; "encryption" is the identity.
    struct ScriptedServer(Arc<Mutex<Script>>);

    impl HandshakeServer for ScriptedServer {
        fn feed(&mut self, data: &[u8]) {
            self.0.lock().unwrap().fed += data.len();
        }
        fn take_output(&mut self) -> Vec<u8> {
            let mut script = self.0.lock().unwrap();
            std::mem::take(&mut script.sent).into_iter().flat_map(|(typ, data)| [vec![typ.0], data].concat()).collect()
        }
        fn established(&self) -> Option<(ProtocolVersion, CipherSuite)> {
            let script = self.0.lock().unwrap();
            script.established.then_some((ProtocolVersion::TLS1_2, CipherSuite::TLS_RSA_WITH_AES_128_CBC_SHA))
        }
        fn is_closed(&self) -> bool {
            self.0.lock().unwrap().closed
        }
        fn send_encrypted(&mut self, typ: ContentType, data: &[u8]) -> bool {
            let mut script = self.0.lock().unwrap();
            script.sent.push((typ, data.to_vec()));
            script.established
        }
        fn take_client_records(&mut self) -> Vec<(ContentType, Vec<u8>)> {
            std::mem::take(&mut self.0.lock().unwrap().client_records)
        }
        fn take_alerts(&mut self) -> Vec<SessionAlert> {
            std::mem::take(&mut self.0.lock().unwrap().alerts)
        }
    }

    fn client_hello(heartbeat: bool) -> Vec<u8> {
        let mut spec = ClientHelloSpec::probe(ProtocolVersion::TLS1_2, [5; 32], Some("client.test".into()));
        if !heartbeat {
            spec.heartbeat = None;
        }
        let mut out = Vec::new();
        encode_records(&mut out, ContentType::HANDSHAKE, ProtocolVersion::TLS1_0, &spec.encode(), MAX_FRAGMENT_LEN);
        out
    }

    type Records = Vec<(ContentType, Vec<u8>)>;

    /// A tester whose scripted handshake completes with the client's second flight; returns what
    /// the server was asked to send once it did.
    fn established(heartbeat: bool) -> (ClientTester, Arc<Mutex<Script>>, Records) {
        let script = Arc::new(Mutex::new(Script::default()));
        let mut t = ClientTester::after_handshake(ProbeMode::Safe, Box::new(ScriptedServer(script.clone())));
        assert!(t.is_after_handshake());
        t.feed(&client_hello(heartbeat));
        assert_eq!(t.state, State::Handshake);
        assert!(!t.awaiting_answer());
        assert_eq!(t.hello().server_name.as_deref(), Some("client.test"));
        script.lock().unwrap().established = true;
        t.feed(b"client key exchange, ccs, finished");
        assert!(t.awaiting_answer());
        let sent = {
            let out = t.take_output();
            assert!(!out.is_empty());
            // take_output flattened them; the order is what matters, read it back from the tester.
            let mut parts = Vec::new();
            let mut rest = &out[..];
            for (typ, len) in [(ContentType::HEARTBEAT, t.honest.as_ref().unwrap().encode().len()), (ContentType::HEARTBEAT, t.test.encode().len()), (ContentType::HANDSHAKE, 4)] {
                assert_eq!(rest[0], typ.0);
                parts.push((typ, rest[1..1 + len].to_vec()));
                rest = &rest[1 + len..];
            }
            assert!(rest.is_empty());
            parts
        };
        (t, script, sent)
    }

    fn response_to(request: &HeartbeatRequest) -> Vec<u8> {
        heartbeat::encode(HeartbeatMessageType::RESPONSE, request.claimed_len, &request.payload, &[0; 16])
    }

    fn client_sends(t: &mut ClientTester, script: &Arc<Mutex<Script>>, records: &[(ContentType, Vec<u8>)]) {
        script.lock().unwrap().client_records.extend(records.iter().cloned());
        t.feed(b"encrypted records");
    }

    #[test]
    fn honest_heartbeat_first_then_test_then_hello_request_all_encrypted() {
        let (t, script, sent) = established(true);
        assert_eq!(sent[0].1, t.honest.as_ref().unwrap().encode());
        assert_eq!(sent[1].1, t.test.encode());
        assert_eq!(sent[2].1, [HandshakeType::HELLO_REQUEST.0, 0, 0, 0]);
        // Every byte of the client reached the server session, the ClientHello included.
        assert_eq!(script.lock().unwrap().fed, client_hello(true).len() + b"client key exchange, ccs, finished".len());
        assert_eq!(t.outcome().negotiated, Some(ProtocolVersion::TLS1_2));
    }

    #[test]
    fn an_echoed_test_heartbeat_is_vulnerable() {
        let (mut t, script, _) = established(true);
        let honest = response_to(t.honest.as_ref().unwrap());
        let test = response_to(&t.test);
        client_sends(&mut t, &script, &[(ContentType::HEARTBEAT, honest), (ContentType::HEARTBEAT, test)]);
        assert!(t.is_done());
        let r = t.report("127.0.0.1:1".parse().unwrap(), "tls");
        assert_eq!(r.verdict, Verdict::Vulnerable);
        assert!(r.after_handshake);
    }

    #[test]
    fn honest_answer_alone_waits_for_the_test_heartbeats_fate() {
        // Then the connection drops (GnuTLS on the unpadded heartbeat): not vulnerable.
        let (mut t, script, _) = established(true);
        let honest = response_to(t.honest.as_ref().unwrap());
        client_sends(&mut t, &script, &[(ContentType::HEARTBEAT, honest)]);
        assert!(!t.is_done(), "one answer to the honest heartbeat decides nothing here");
        t.feed_eof();
        let r = t.report("127.0.0.1:1".parse().unwrap(), "tls");
        assert_eq!(r.verdict, Verdict::NotVulnerable);
        assert!(r.reason.unwrap().contains("honest heartbeat answered"));
        assert!(r.log.iter().any(|l| l.contains("client answered the honest heartbeat")));

        // Or the client renegotiates: the test heartbeat between was read and dropped.
        let (mut t, script, _) = established(true);
        let honest = response_to(t.honest.as_ref().unwrap());
        client_sends(&mut t, &script, &[(ContentType::HEARTBEAT, honest), (ContentType::HANDSHAKE, vec![1, 0, 0, 2, 3, 3])]);
        let r = t.report("127.0.0.1:1".parse().unwrap(), "tls");
        assert_eq!(r.verdict, Verdict::NotVulnerable);
        assert!(r.reason.unwrap().contains("test heartbeat dropped"));

        // Or nothing more comes: silence is never safe.
        let (mut t, script, _) = established(true);
        let honest = response_to(t.honest.as_ref().unwrap());
        client_sends(&mut t, &script, &[(ContentType::HEARTBEAT, honest)]);
        t.feed_timeout();
        assert_eq!(t.report("127.0.0.1:1".parse().unwrap(), "tls").verdict, Verdict::Inconclusive);
    }

    #[test]
    fn the_sentinel_tells_ignored_heartbeats_from_silence() {
        for (heartbeat, answer, verdict) in [
            (false, (ContentType::HANDSHAKE, vec![1, 0, 0, 2, 3, 3]), Verdict::NoHeartbeat),
            (true, (ContentType::ALERT, vec![1, 100]), Verdict::NotVulnerable),
        ] {
            let (mut t, script, _) = established(heartbeat);
            // Application data before it (an HTTP request) changes nothing.
            client_sends(&mut t, &script, &[(ContentType::APPLICATION_DATA, b"GET / HTTP/1.1\r\n".to_vec()), answer]);
            let r = t.report("127.0.0.1:1".parse().unwrap(), "tls");
            assert_eq!(r.verdict, verdict, "{r:#?}");
            assert!(r.reason.unwrap().contains("HelloRequest"));
        }
    }

    #[test]
    fn alerts_and_closes_after_the_handshake() {
        // OpenSSL 3 (curl, s_client): unexpected_message on the first heartbeat.
        let (mut t, script, _) = established(false);
        client_sends(&mut t, &script, &[(ContentType::ALERT, vec![2, 10])]);
        let r = t.report("127.0.0.1:1".parse().unwrap(), "tls");
        assert_eq!(r.verdict, Verdict::NoHeartbeat);
        assert!(r.reason.unwrap().contains("unexpected_message"));
        // An alert against our Finished or keys says nothing about heartbeats.
        let (mut t, script, _) = established(true);
        client_sends(&mut t, &script, &[(ContentType::ALERT, vec![2, 20])]);
        assert_eq!(t.report("127.0.0.1:1".parse().unwrap(), "tls").verdict, Verdict::Inconclusive);
        // The client closing the session itself proves nothing was read.
        let (mut t, script, _) = established(true);
        client_sends(&mut t, &script, &[(ContentType::ALERT, vec![1, 0])]);
        assert!(!t.is_done());
        t.feed_eof();
        assert_eq!(t.report("127.0.0.1:1".parse().unwrap(), "tls").verdict, Verdict::Inconclusive);
        // A bare close right after our records, with nothing answered, proves nothing.
        let (mut t, _, _) = established(true);
        t.feed_eof();
        assert_eq!(t.report("127.0.0.1:1".parse().unwrap(), "tls").verdict, Verdict::Inconclusive);
        // A record that fails to decrypt ends the session on the server's side.
        let (mut t, script, _) = established(true);
        script.lock().unwrap().closed = true;
        t.feed(b"garbage");
        assert_eq!(t.report("127.0.0.1:1".parse().unwrap(), "tls").verdict, Verdict::Inconclusive);
    }

    #[test]
    fn a_refused_certificate_is_inconclusive() {
        let script = Arc::new(Mutex::new(Script::default()));
        let mut t = ClientTester::after_handshake(ProbeMode::Safe, Box::new(ScriptedServer(script.clone())));
        t.feed(&client_hello(true));
        {
            let mut s = script.lock().unwrap();
            s.closed = true;
            s.alerts.push(SessionAlert { sent: false, alert: "fatal unknown_ca".into(), fatal: true });
        }
        t.feed(&[21, 3, 3, 0, 2, 2, 48]);
        assert!(t.is_done());
        let r = t.report("127.0.0.1:1".parse().unwrap(), "tls");
        assert_eq!(r.verdict, Verdict::Inconclusive);
        assert!(r.reason.unwrap().contains("unknown_ca"));
        assert!(r.log.iter().any(|l| l.contains("accept the lab certificate")));
        assert_eq!(r.tls_version, None);
        // A client that gives up during the handshake is no verdict either.
        let script = Arc::new(Mutex::new(Script::default()));
        let mut t = ClientTester::after_handshake(ProbeMode::Safe, Box::new(ScriptedServer(script)));
        t.feed(&client_hello(true));
        t.feed_eof();
        assert_eq!(t.report("127.0.0.1:1".parse().unwrap(), "tls").verdict, Verdict::Inconclusive);
    }

    #[test]
    fn mid_handshake_refusal_with_the_extension_points_to_after_handshake() {
        let mut t = ClientTester::new(ProbeMode::Safe);
        t.feed(&client_hello(true));
        assert!(t.awaiting_answer());
        let out = t.take_output();
        assert_eq!(out[0], ContentType::HANDSHAKE.0, "a plaintext ServerHello first");
        t.feed(&[21, 3, 3, 0, 2, 2, 10]);
        let r = t.report("127.0.0.1:1".parse().unwrap(), "tls");
        assert_eq!(r.verdict, Verdict::NotVulnerable);
        assert!(!r.after_handshake);
        assert!(r.reason.unwrap().contains("--after-handshake"));
        // Without the extension there is nothing to hint at.
        let mut t = ClientTester::new(ProbeMode::Safe);
        t.feed(&client_hello(false));
        t.feed(&[21, 3, 3, 0, 2, 2, 10]);
        let r = t.report("127.0.0.1:1".parse().unwrap(), "tls");
        assert_eq!(r.verdict, Verdict::NoHeartbeat);
        assert!(!r.reason.unwrap().contains("--after-handshake"));
    }
}
