//! The Heartbleed probe for one TLS connection, as a sans-IO state machine.
//!
//! The probe sends a ClientHello offering one version, reads the server's flight up to
//! ServerHelloDone, then sends three records in the version the server negotiated:
//!
//! 1. the **test heartbeat**: a request whose claimed payload is entirely present but which carries
//!    no padding. A vulnerable OpenSSL (1.0.1–1.0.1f) echoes it — our own bytes, no server memory; a
//!    fixed one (1.0.1g's `1 + 2 + payload + 16 > length` rule) silently drops it. In `--prove` mode
//!    the claim exceeds the bytes sent by a small bounded amount, and the reply shows real leaked
//!    bytes (counted and hashed, never kept).
//! 2. an **honest heartbeat** (valid, padded), large enough that OpenSSL 1.0.1's 4 KiB handshake write
//!    buffer flushes its answer at once. A server that processes heartbeats but checks bounds answers
//!    this one and not the first: that is "not vulnerable" without waiting for a timeout.
//! 3. a **sentinel**: a HelloRequest, which no server accepts from a client. The fatal alert it draws
//!    (OpenSSL flushes its buffer before a fatal alert) proves that every earlier record was processed,
//!    so a server without heartbeat support, or one that ignores them, also gets a verdict at once.
//!
//! Records are processed in order, so whichever of our heartbeats is answered first decides. The
//! verdict is taken the moment the deciding bytes arrive: a vulnerable server may hold the connection
//! open afterwards. Silence, resets and unparseable replies are never read as "safe".

use bleedwatch_wire::alert::Alert;
use bleedwatch_wire::handshake::{parse_certificate_list, HandshakeReassembler, ServerHello};
use bleedwatch_wire::heartbeat::{self, HeartbeatMessage, HeartbeatMessageType, HeartbeatMode, MIN_PADDING};
use bleedwatch_wire::hello::{encode_handshake, ClientHelloSpec};
use bleedwatch_wire::record::{encode_records, Deframer, MAX_FRAGMENT_LEN};
use bleedwatch_wire::{AlertDescription, CipherSuite, ContentType, HandshakeType, ProtocolVersion, WireError};
use bleedwatch_verdict::Evidence;
use sha2::{Digest, Sha256};


/// Payload size of the test and honest heartbeats. Responses (payload + 19 bytes) must exceed
/// OpenSSL 1.0.1's 4 KiB handshake write buffer to be flushed at once (measured in the shared lab
/// captures: 4000 bytes stayed buffered, 4200 were answered).
pub const DEFAULT_PAYLOAD_LEN: usize = 4500;
/// Largest over-read `--prove` mode will ask for.
pub const MAX_PROVE_OVERREAD: u16 = 64;
/// Cap on the bytes of the server's whole first flight (hello, certificates, key exchange).
pub const DEFAULT_MAX_FLIGHT: usize = 256 * 1024;
/// OpenSSL stops after five consecutive warning alerts; so do we.
pub const MAX_WARNING_ALERTS: u32 = 5;

/// One heartbeat request as sent: the claimed length, the payload bytes actually present, and how much
/// padding follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatRequest {
    pub claimed_len: u16,
    pub payload: Vec<u8>,
    pub padding: usize,
}

impl HeartbeatRequest {
    pub fn encode(&self) -> Vec<u8> {
        heartbeat::encode(HeartbeatMessageType::REQUEST, self.claimed_len, &self.payload, &vec![0; self.padding])
    }

    /// Bytes a reply may carry beyond what we sent (the over-read), 0 for the memory-safe test.
    pub fn overread(&self) -> usize {
        (self.claimed_len as usize).saturating_sub(self.payload.len())
    }

    /// Does `response` answer this request? The type must be "response", the claimed length must equal
    /// ours and every payload byte present in the reply (up to what we sent) must echo ours. Partial
    /// replies count: mid-handshake, OpenSSL sends only the first 16 KiB record of a long answer.
    pub fn is_answered_by(&self, response: &HeartbeatMessage<'_>) -> bool {
        if response.kind != HeartbeatMessageType::RESPONSE || response.payload_length != self.claimed_len {
            return false;
        }
        let echoed = response.body.len().min(self.payload.len());
        // Require a meaningful echo so that a stray reply cannot match by chance.
        echoed >= self.payload.len().min(16) && response.body[..echoed] == self.payload[..echoed]
    }
}

/// How the test heartbeat is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeMode {
    /// The memory-safe test: the claimed payload is present, only the padding is missing.
    Safe,
    /// Opt-in: claim `overread` bytes more than we send, to show that memory really leaks.
    Prove { overread: u16 },
}

#[derive(Debug, Clone)]
pub struct ProbeConfig {
    /// `client_version` of the ClientHello; the probe follows whatever the server negotiates below it.
    pub version: ProtocolVersion,
    pub server_name: Option<String>,
    pub test_request: HeartbeatRequest,
    /// `None` only for replays of recorded sessions that had no such request.
    pub honest_request: Option<HeartbeatRequest>,
    pub send_sentinel: bool,
    /// A follow-up connection: send the honest heartbeat (and the sentinel) without the test one, to
    /// learn whether the server answers heartbeats at all where a first connection ended unanswered.
    pub honest_only: bool,
    pub max_flight: usize,
    pub client_random: [u8; 32],
}

/// A fresh pair of requests for one connection: the test heartbeat (unpadded; in `--prove` mode
/// over-reading) and the honest one, each `payload_len` bytes of random data behind a marker.
/// Shared by every transport (TLS, DTLS) and by the client test, so the verdict logic is one.
pub fn heartbeat_requests(mode: ProbeMode, payload_len: usize) -> (HeartbeatRequest, HeartbeatRequest) {
    use rand::{RngCore, SeedableRng};
    // The payloads only need to be unpredictable enough that no reply matches them by chance; a fast
    // generator seeded from the OS-backed one keeps 9 KB of filler per connection cheap.
    let mut rng = rand::rngs::SmallRng::from_rng(rand::thread_rng()).unwrap_or_else(|_| rand::rngs::SmallRng::seed_from_u64(0x5eed));
    let payload_len = payload_len.clamp(16, u16::MAX as usize - MAX_PROVE_OVERREAD as usize);
    let mut test_payload = vec![0u8; payload_len];
    rng.fill_bytes(&mut test_payload);
    test_payload[..16].copy_from_slice(b"bleedwatch-test ");
    let mut honest_payload = vec![0u8; payload_len];
    rng.fill_bytes(&mut honest_payload);
    honest_payload[..16].copy_from_slice(b"bleedwatch-hones");
    let overread = match mode {
        ProbeMode::Safe => 0,
        ProbeMode::Prove { overread } => overread.min(MAX_PROVE_OVERREAD),
    };
    (
        HeartbeatRequest { claimed_len: (payload_len + overread as usize) as u16, payload: test_payload, padding: 0 },
        HeartbeatRequest { claimed_len: payload_len as u16, payload: honest_payload, padding: MIN_PADDING },
    )
}

/// What a heartbeat message from the peer means for our two requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judgement {
    /// It answers the test heartbeat: the peer skips the bounds check. With an over-reading test
    /// request, `leak` says how many bytes came back beyond what we sent (count and digest only).
    TestAnswered { leak: Option<LeakEvidence> },
    /// It answers the honest heartbeat: since requests are handled in order and the test one came
    /// first, the test one was dropped.
    HonestAnswered,
    /// A request from the peer, a response to something else, or noise: proves nothing.
    Unrelated,
}

/// Judges one heartbeat message against the requests we sent.
pub fn judge(test: &HeartbeatRequest, honest: Option<&HeartbeatRequest>, msg: &HeartbeatMessage<'_>) -> Judgement {
    if test.is_answered_by(msg) {
        let leak = (test.overread() > 0).then(|| {
            let sent = test.payload.len();
            let leaked = &msg.body[sent.min(msg.body.len())..msg.body.len().min(test.claimed_len as usize)];
            LeakEvidence { leaked_bytes: leaked.len(), sha256: hex::encode(Sha256::digest(leaked)) }
        });
        return Judgement::TestAnswered { leak };
    }
    if honest.is_some_and(|h| h.is_answered_by(msg)) {
        return Judgement::HonestAnswered;
    }
    Judgement::Unrelated
}

/// The records sent after the server's flight, in order, and a log line naming them: the test
/// heartbeat (left out on a follow-up connection), the honest heartbeat, the sentinel HelloRequest.
/// Shared by TLS and DTLS; the DTLS probe gives the HelloRequest its message_seq when it frames it.
pub(crate) fn heartbeat_records(cfg: &ProbeConfig) -> (Vec<(ContentType, Vec<u8>)>, String) {
    let mut records = Vec::with_capacity(3);
    let mut parts = Vec::with_capacity(3);
    if !cfg.honest_only {
        let t = &cfg.test_request;
        records.push((ContentType::HEARTBEAT, t.encode()));
        parts.push(format!("test heartbeat (claims {}, carries {}, padding {})", t.claimed_len, t.payload.len(), t.padding));
    }
    if let Some(honest) = &cfg.honest_request {
        records.push((ContentType::HEARTBEAT, honest.encode()));
        parts.push(format!("honest heartbeat ({} + {} padding)", honest.payload.len(), honest.padding));
    }
    if cfg.send_sentinel {
        records.push((ContentType::HANDSHAKE, encode_handshake(HandshakeType::HELLO_REQUEST, &[])));
        parts.push("sentinel HelloRequest".to_owned());
    }
    let follow_up = if cfg.honest_only { " (follow-up: no test heartbeat)" } else { "" };
    (records, format!("sent {}{follow_up}", parts.join(", ")))
}

impl ProbeConfig {
    /// A probe with fresh random payloads.
    pub fn new(version: ProtocolVersion, server_name: Option<String>, mode: ProbeMode) -> Self {
        ProbeConfig::with_payload(version, server_name, mode, DEFAULT_PAYLOAD_LEN)
    }

    /// A probe whose heartbeats carry `payload_len` bytes (DTLS keeps them inside one datagram).
    pub fn with_payload(version: ProtocolVersion, server_name: Option<String>, mode: ProbeMode, payload_len: usize) -> Self {
        use rand::RngCore;
        let (test_request, honest_request) = heartbeat_requests(mode, payload_len);
        let mut client_random = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut client_random);
        ProbeConfig {
            version,
            server_name,
            test_request,
            honest_request: Some(honest_request),
            send_sentinel: true,
            honest_only: false,
            max_flight: DEFAULT_MAX_FLIGHT,
            client_random,
        }
    }
}

pub use bleedwatch_verdict::{Inconclusive, Phase};

/// The verdict for one connection (one offered version).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionVerdict {
    /// The test heartbeat was answered: the server skips the bounds check.
    Vulnerable,
    /// The honest heartbeat was answered and the test one was not: bounds are checked.
    NotVulnerable,
    /// The peer answered our records with a fatal alert (`Some`), or (client test only, `None`) answered
    /// the sentinel behind our heartbeats without answering them: it read them and refused. A close or
    /// silence is never this: it proves nothing. Whether the refusal means "no heartbeat support" or
    /// "refuses heartbeats" depends on the extension.
    HeartbeatRefused { alert: Option<AlertDescription> },
    /// The server refused the offered version before a ServerHello (alert or close).
    VersionRejected { alert: Option<AlertDescription> },
    Inconclusive(Inconclusive),
}

/// What `--prove` saw leak: only a count and a digest, never the bytes (the contract's type).
pub use bleedwatch_verdict::LeakEvidence;

/// What an alert from the server does to a probe's connection.
pub(crate) enum AlertEffect {
    /// Fatal, or close_notify: the connection is over; the state decides what that means.
    Ends(Alert),
    /// A warning, counted and tolerated.
    Tolerated,
    /// Malformed ("not tested", never "safe": PEERS.md pitfall 4), or too many warnings.
    Inconclusive(String),
}

/// Reads an alert the server sent (TLS and DTLS probes alike), counting warnings in
/// `warning_alerts`; returns the log line for it, if it could be read, and its effect.
pub(crate) fn server_alert(fragment: &[u8], warning_alerts: &mut u32) -> (Option<String>, AlertEffect) {
    let alert = match Alert::parse(fragment) {
        Ok(alert) => alert,
        Err(err) => return (None, AlertEffect::Inconclusive(format!("malformed alert: {err}"))),
    };
    let line = Some(format!("server sent alert {alert}"));
    if alert.is_fatal() || alert.description == AlertDescription::CLOSE_NOTIFY {
        return (line, AlertEffect::Ends(alert));
    }
    *warning_alerts += 1;
    if *warning_alerts > MAX_WARNING_ALERTS {
        return (line, AlertEffect::Inconclusive("too many warning alerts".into()));
    }
    (line, AlertEffect::Tolerated)
}

/// Everything one connection learned, kept even when the verdict is inconclusive.
#[derive(Debug, Clone)]
pub struct ConnectionOutcome {
    pub offered: ProtocolVersion,
    pub negotiated: Option<ProtocolVersion>,
    pub cipher_suite: Option<CipherSuite>,
    pub heartbeat_extension: Option<HeartbeatMode>,
    pub chain: Vec<Vec<u8>>,
    pub verdict: ConnectionVerdict,
    pub leak: Option<LeakEvidence>,
    /// Set when this outcome comes from follow-up connections: how the first connection ended, unanswered.
    pub first_connection: Option<Inconclusive>,
    /// A short, human-readable log of what happened (no payload bytes), at most [`MAX_LOG_LINES`] lines.
    pub log: Vec<String>,
}

/// Lines kept in an outcome's log, so that a chatty or hostile peer cannot grow the JSON and the inventory.
pub const MAX_LOG_LINES: usize = 100;

impl ConnectionOutcome {
    /// A connection that has offered `offered` and heard nothing yet: inconclusive (waiting for the
    /// ServerHello) until something decides.
    pub fn started(offered: ProtocolVersion, log: Vec<String>) -> Self {
        ConnectionOutcome {
            offered,
            negotiated: None,
            cipher_suite: None,
            heartbeat_extension: None,
            chain: Vec::new(),
            verdict: ConnectionVerdict::Inconclusive(Inconclusive::Timeout { phase: Phase::ServerHello }),
            leak: None,
            first_connection: None,
            log,
        }
    }

    /// Adds a line to the log, up to [`MAX_LOG_LINES`]; one more line says that the rest was dropped.
    pub fn note(&mut self, line: impl Into<String>) {
        match self.log.len() {
            n if n < MAX_LOG_LINES => self.log.push(line.into()),
            n if n == MAX_LOG_LINES => self.log.push("(further log lines dropped)".into()),
            _ => {}
        }
    }

    /// Whether the connection ended without a word after our records (a close, a dropped association):
    /// only follow-up connections can turn that into evidence.
    /// Not when the peer declined the heartbeat extension: that already decides (see [`Self::evidence`]).
    pub fn ended_unanswered(&self) -> Option<&Inconclusive> {
        self.ended_after_records().filter(|_| self.heartbeat_extension.is_some())
    }

    fn ended_after_records(&self) -> Option<&Inconclusive> {
        match &self.verdict {
            ConnectionVerdict::Inconclusive(why @ (Inconclusive::Closed { phase: Phase::Heartbeat } | Inconclusive::AssociationDropped)) => Some(why),
            _ => None,
        }
    }

    /// The typed evidence this outcome's verdict stands on.
    pub fn evidence(&self) -> Evidence {
        match (&self.verdict, &self.first_connection) {
            (ConnectionVerdict::Vulnerable, _) => Evidence::TestHeartbeatEchoed,
            (ConnectionVerdict::NotVulnerable, None) => Evidence::HonestHeartbeatEchoed,
            (ConnectionVerdict::NotVulnerable, Some(first)) => Evidence::HonestHeartbeatEchoedOnFollowUp { first_connection: first.clone() },
            (ConnectionVerdict::HeartbeatRefused { alert: Some(alert) }, None) => Evidence::FatalAlertAfterRecords { alert: alert.to_string() },
            (ConnectionVerdict::HeartbeatRefused { alert: Some(alert) }, Some(first)) => {
                Evidence::FatalAlertOnFollowUp { alert: alert.to_string(), first_connection: first.clone() }
            }
            (ConnectionVerdict::HeartbeatRefused { alert: None }, _) => Evidence::SentinelAnsweredHeartbeatsNot,
            (ConnectionVerdict::VersionRejected { alert }, _) => Evidence::VersionRefused { alert: alert.map(|a| a.to_string()) },
            // Every OpenSSL with the bug acknowledges the heartbeat extension whenever it is offered
            // (1.0.1's hello code adds it unconditionally when heartbeats are compiled in; see the
            // shared captures): a peer that declined it and then ended without a word has none.
            (ConnectionVerdict::Inconclusive(why), _) if self.heartbeat_extension.is_none() && self.ended_after_records().is_some() => {
                Evidence::HeartbeatExtensionDeclined { then: why.clone() }
            }
            (ConnectionVerdict::Inconclusive(why), _) => Evidence::Inconclusive { why: why.clone() },
        }
    }

    /// Takes what a ServerHello tells (version, suite, heartbeat extension); returns the version and
    /// a line saying so, for the log.
    pub(crate) fn take_server_hello(&mut self, hello: &ServerHello<'_>) -> (ProtocolVersion, String) {
        let negotiated = hello.negotiated_version();
        self.negotiated = Some(negotiated);
        self.cipher_suite = Some(hello.cipher_suite);
        self.heartbeat_extension = hello.heartbeat_mode();
        let line = format!(
            "ServerHello {negotiated}, {}, heartbeat extension {}",
            hello.cipher_suite,
            hello.heartbeat_mode().map(|m| m.name()).unwrap_or("absent")
        );
        (negotiated, line)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    AwaitServerFlight,
    AwaitHeartbeatAnswer,
    Done,
}

/// The probe for one connection. Feed it what the server sends; send what it queues.
pub struct HeartbleedProbe {
    cfg: ProbeConfig,
    state: State,
    deframer: Deframer,
    handshake: HandshakeReassembler,
    outbox: Vec<u8>,
    flight_bytes: usize,
    warning_alerts: u32,
    record_version: ProtocolVersion,
    outcome: ConnectionOutcome,
}

impl HeartbleedProbe {
    pub fn new(cfg: ProbeConfig) -> Self {
        let hello = ClientHelloSpec::probe(cfg.version, cfg.client_random, cfg.server_name.clone()).encode();
        // The ClientHello goes in a TLS 1.0 record (SSLv3 for an SSLv3 offer), as OpenSSL does: some old
        // servers reject record versions they do not know.
        let record_version = if cfg.version == ProtocolVersion::SSL3 { ProtocolVersion::SSL3 } else { ProtocolVersion::TLS1_0 };
        let mut outbox = Vec::with_capacity(hello.len() + 5);
        encode_records(&mut outbox, ContentType::HANDSHAKE, record_version, &hello, MAX_FRAGMENT_LEN);
        let outcome = ConnectionOutcome::started(cfg.version, vec![format!("sent ClientHello offering {}", cfg.version)]);
        HeartbleedProbe {
            deframer: Deframer::new(),
            handshake: HandshakeReassembler::new(cfg.max_flight),
            cfg,
            state: State::AwaitServerFlight,
            outbox,
            flight_bytes: 0,
            warning_alerts: 0,
            record_version,
            outcome,
        }
    }

    /// Bytes to send now.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.outbox)
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The phase we are in, for timeout and reset reports.
    pub fn phase(&self) -> Phase {
        match self.state {
            State::AwaitServerFlight if self.outcome.negotiated.is_none() => Phase::ServerHello,
            State::AwaitServerFlight => Phase::ServerFlight,
            _ => Phase::Heartbeat,
        }
    }

    /// Bytes from the server.
    pub fn feed(&mut self, data: &[u8]) {
        if self.state == State::Done {
            return;
        }
        if let Err(err) = self.deframer.push(data) {
            self.fail_wire(err);
            return;
        }
        while self.state != State::Done {
            let record = match self.deframer.next_record() {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(err) => {
                    self.fail_wire(err);
                    return;
                }
            };
            let (typ, version, fragment) = (record.header.content_type, record.header.version, record.fragment.to_vec());
            self.on_record(typ, version, &fragment);
        }
    }

    /// The server closed its side (FIN).
    pub fn feed_eof(&mut self) {
        match self.state {
            State::Done => {}
            // A close proves nothing about our records: a load balancer, an IPS, a connection limit or an
            // error path closes too. Follow-up connections may still get evidence (see `endpoint`).
            State::AwaitHeartbeatAnswer => {
                self.outcome.note("server closed the connection without answering a heartbeat or sending an alert");
                self.finish(ConnectionVerdict::Inconclusive(Inconclusive::Closed { phase: Phase::Heartbeat }));
            }
            State::AwaitServerFlight if self.outcome.negotiated.is_none() && self.deframer.pending().is_empty() && self.flight_bytes == 0 => {
                self.outcome.note("server closed the connection before a ServerHello");
                self.finish(ConnectionVerdict::VersionRejected { alert: None });
            }
            State::AwaitServerFlight => {
                let phase = self.phase();
                self.finish(ConnectionVerdict::Inconclusive(Inconclusive::Closed { phase }));
            }
        }
    }

    /// The connection was reset or failed; never read as "safe".
    pub fn feed_reset(&mut self) {
        if self.state != State::Done {
            let phase = self.phase();
            self.finish(ConnectionVerdict::Inconclusive(Inconclusive::Reset { phase }));
        }
    }

    /// The deadline passed.
    pub fn feed_timeout(&mut self) {
        if self.state != State::Done {
            let phase = self.phase();
            self.finish(ConnectionVerdict::Inconclusive(Inconclusive::Timeout { phase }));
        }
    }

    pub fn outcome(&self) -> &ConnectionOutcome {
        &self.outcome
    }

    pub fn into_outcome(self) -> ConnectionOutcome {
        self.outcome
    }

    fn finish(&mut self, verdict: ConnectionVerdict) {
        self.outcome.verdict = verdict;
        self.state = State::Done;
    }

    fn protocol_error(&mut self, detail: impl Into<String>) {
        let phase = self.phase();
        self.finish(ConnectionVerdict::Inconclusive(Inconclusive::ProtocolError { phase, detail: detail.into() }));
    }

    fn fail_wire(&mut self, err: WireError) {
        match err {
            WireError::NotTls(first) if self.flight_bytes == 0 && self.outcome.negotiated.is_none() => {
                self.finish(ConnectionVerdict::Inconclusive(Inconclusive::NotTls { first_bytes: hex::encode(first) }))
            }
            err => self.protocol_error(err.to_string()),
        }
    }

    fn on_record(&mut self, typ: ContentType, version: ProtocolVersion, fragment: &[u8]) {
        if self.state == State::AwaitServerFlight {
            self.flight_bytes += fragment.len() + 5;
            if self.flight_bytes > self.cfg.max_flight {
                return self.protocol_error(format!("server flight exceeds {} bytes", self.cfg.max_flight));
            }
        }
        if let Some(negotiated) = self.outcome.negotiated {
            if version != negotiated && typ != ContentType::ALERT {
                self.outcome.note(format!("record version {version} differs from negotiated {negotiated}"));
            }
        }
        match typ {
            ContentType::HANDSHAKE => self.on_handshake(fragment),
            ContentType::ALERT => self.on_alert(fragment),
            ContentType::HEARTBEAT => self.on_heartbeat(fragment),
            other => self.protocol_error(format!("unexpected {other} record")),
        }
    }

    fn on_handshake(&mut self, fragment: &[u8]) {
        if self.state != State::AwaitServerFlight {
            // Anything after the flight (e.g. a HelloRequest) does not change the heartbeat verdict.
            self.outcome.note("ignored handshake record after the server flight");
            return;
        }
        self.handshake.push(fragment);
        loop {
            let msg = match self.handshake.next_message() {
                Ok(Some(m)) => (m.typ, m.body.to_vec()),
                Ok(None) => return,
                Err(err) => return self.protocol_error(err.to_string()),
            };
            self.on_handshake_message(msg.0, &msg.1);
            if self.state != State::AwaitServerFlight {
                return;
            }
        }
    }

    fn on_handshake_message(&mut self, typ: HandshakeType, body: &[u8]) {
        match typ {
            HandshakeType::SERVER_HELLO => {
                let hello = match ServerHello::parse(body) {
                    Ok(h) => h,
                    Err(err) => return self.protocol_error(format!("bad ServerHello: {err}")),
                };
                let (negotiated, line) = self.outcome.take_server_hello(&hello);
                self.outcome.note(line);
                if negotiated.rank() > self.cfg.version.rank() || negotiated == ProtocolVersion::TLS1_3 || negotiated.0 >> 8 != 3 {
                    return self.protocol_error(format!("server chose {negotiated}, above the offered {}", self.cfg.version));
                }
                // Every later record of ours uses the negotiated version (PEERS.md pitfall 2).
                self.record_version = negotiated;
            }
            HandshakeType::CERTIFICATE => match parse_certificate_list(body) {
                Ok(list) => self.outcome.chain = list.into_iter().map(<[u8]>::to_vec).collect(),
                Err(err) => self.protocol_error(format!("bad Certificate: {err}")),
            },
            HandshakeType::SERVER_HELLO_DONE => {
                if self.outcome.negotiated.is_none() {
                    return self.protocol_error("ServerHelloDone before ServerHello");
                }
                self.send_heartbeats();
            }
            HandshakeType::HELLO_REQUEST
            | HandshakeType::SERVER_KEY_EXCHANGE
            | HandshakeType::CERTIFICATE_REQUEST
            | HandshakeType::CERTIFICATE_STATUS => {}
            other => self.outcome.note(format!("ignored {other} in the server flight")),
        }
    }

    fn send_heartbeats(&mut self) {
        let version = self.record_version;
        let mut out = Vec::with_capacity(2 * DEFAULT_PAYLOAD_LEN + 64);
        let (records, note) = heartbeat_records(&self.cfg);
        for (typ, body) in records {
            encode_records(&mut out, typ, version, &body, MAX_FRAGMENT_LEN);
        }
        self.outbox.extend_from_slice(&out);
        self.outcome.note(format!("{note} in {version} records"));
        self.state = State::AwaitHeartbeatAnswer;
    }

    fn on_alert(&mut self, fragment: &[u8]) {
        let (line, effect) = server_alert(fragment, &mut self.warning_alerts);
        if let Some(line) = line {
            self.outcome.note(line);
        }
        let alert = match effect {
            AlertEffect::Ends(alert) => alert,
            AlertEffect::Tolerated => return,
            AlertEffect::Inconclusive(why) => return self.protocol_error(why),
        };
        match self.state {
            State::AwaitServerFlight if self.outcome.negotiated.is_none() => {
                self.finish(ConnectionVerdict::VersionRejected { alert: Some(alert.description) })
            }
            State::AwaitServerFlight => {
                let phase = self.phase();
                self.finish(ConnectionVerdict::Inconclusive(Inconclusive::Alert { phase, alert: alert.to_string() }))
            }
            // close_notify says "goodbye", not "I read your records and refuse them": as a close.
            State::AwaitHeartbeatAnswer if alert.description == AlertDescription::CLOSE_NOTIFY => {
                self.finish(ConnectionVerdict::Inconclusive(Inconclusive::Closed { phase: Phase::Heartbeat }))
            }
            State::AwaitHeartbeatAnswer => self.finish(ConnectionVerdict::HeartbeatRefused { alert: Some(alert.description) }),
            State::Done => {}
        }
    }

    fn on_heartbeat(&mut self, fragment: &[u8]) {
        let msg = match HeartbeatMessage::parse(fragment) {
            Ok(m) => m,
            Err(err) => {
                self.outcome.note(format!("ignored malformed heartbeat record: {err}"));
                return;
            }
        };
        if self.state != State::AwaitHeartbeatAnswer {
            // Unsolicited: proves nothing (PEERS.md: nmap called a server vulnerable for this).
            self.outcome.note("ignored unsolicited heartbeat before our request");
            return;
        }
        match judge(&self.cfg.test_request, self.cfg.honest_request.as_ref(), &msg) {
            Judgement::TestAnswered { leak } => {
                self.outcome.note(format!(
                    "test heartbeat answered: response claims {}, {} bytes in this record",
                    msg.payload_length,
                    msg.body.len()
                ));
                self.outcome.leak = leak;
                return self.finish(ConnectionVerdict::Vulnerable);
            }
            Judgement::HonestAnswered => {
                self.outcome.note("honest heartbeat answered, test heartbeat dropped");
                return self.finish(ConnectionVerdict::NotVulnerable);
            }
            Judgement::Unrelated => {}
        }
        self.outcome.note(format!(
            "ignored heartbeat {} that does not answer our requests (claims {})",
            if msg.kind == HeartbeatMessageType::RESPONSE { "response" } else { "request" },
            msg.payload_length
        ));
    }
}

/// Fuzz entry point: arbitrary server bytes, cut at arbitrary places, followed by each possible end.
pub fn fuzz_server_bytes(data: &[u8]) {
    let cfg = ProbeConfig::new(ProtocolVersion::TLS1_2, Some("fuzz.test".into()), ProbeMode::Safe);
    let mut probe = HeartbleedProbe::new(cfg);
    let _ = probe.take_output();
    for piece in data.chunks(data.first().map(|b| *b as usize + 1).unwrap_or(1)) {
        probe.feed(piece);
        let _ = probe.take_output();
    }
    probe.feed_eof();
    let _ = probe.outcome();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(claim: u16, payload: &[u8], padding: usize) -> HeartbeatRequest {
        HeartbeatRequest { claimed_len: claim, payload: payload.to_vec(), padding }
    }

    #[test]
    fn answer_matching_requires_our_bytes() {
        let req = request(20, &[7u8; 20], 0);
        let mut good = vec![2, 0, 20];
        good.extend_from_slice(&[7u8; 20]);
        good.extend_from_slice(&[0xee; 16]);
        assert!(req.is_answered_by(&HeartbeatMessage::parse(&good).unwrap()));
        // Same length, other bytes: not ours.
        let mut other = good.clone();
        other[5] = 8;
        assert!(!req.is_answered_by(&HeartbeatMessage::parse(&other).unwrap()));
        // A request, not a response.
        let mut as_request = good.clone();
        as_request[0] = 1;
        assert!(!req.is_answered_by(&HeartbeatMessage::parse(&as_request).unwrap()));
        // Too short to be a meaningful echo.
        assert!(!req.is_answered_by(&HeartbeatMessage::parse(&[2, 0, 20, 7]).unwrap()));
    }

    #[test]
    fn prove_mode_is_bounded() {
        let cfg = ProbeConfig::new(ProtocolVersion::TLS1_2, None, ProbeMode::Prove { overread: 60000 });
        assert_eq!(cfg.test_request.overread(), MAX_PROVE_OVERREAD as usize);
        let safe = ProbeConfig::new(ProtocolVersion::TLS1_2, None, ProbeMode::Safe);
        assert_eq!(safe.test_request.overread(), 0);
        assert_eq!(safe.test_request.padding, 0);
        assert!(safe.honest_request.unwrap().padding >= MIN_PADDING);
    }

    #[test]
    fn first_output_is_a_client_hello_record() {
        let mut p = HeartbleedProbe::new(ProbeConfig::new(ProtocolVersion::TLS1_1, Some("a.example".into()), ProbeMode::Safe));
        let out = p.take_output();
        assert_eq!(&out[..3], &[22, 3, 1]);
        assert!(p.take_output().is_empty());
        assert_eq!(p.phase(), Phase::ServerHello);
    }

    #[test]
    fn garbage_is_not_tls() {
        let mut p = HeartbleedProbe::new(ProbeConfig::new(ProtocolVersion::TLS1_2, None, ProbeMode::Safe));
        p.feed(b"SSH-2.0-OpenSSH_9.2\r\n");
        assert!(p.is_done());
        assert!(matches!(p.outcome().verdict, ConnectionVerdict::Inconclusive(Inconclusive::NotTls { .. })));
    }

    #[test]
    fn silence_and_resets_are_never_safe() {
        let mut p = HeartbleedProbe::new(ProbeConfig::new(ProtocolVersion::TLS1_2, None, ProbeMode::Safe));
        p.feed_timeout();
        assert!(matches!(p.outcome().verdict, ConnectionVerdict::Inconclusive(Inconclusive::Timeout { .. })));
        let mut p = HeartbleedProbe::new(ProbeConfig::new(ProtocolVersion::TLS1_2, None, ProbeMode::Safe));
        p.feed(&[22, 3, 3, 0, 10, 2]);
        p.feed_reset();
        assert!(matches!(p.outcome().verdict, ConnectionVerdict::Inconclusive(Inconclusive::Reset { phase: Phase::ServerHello })));
    }

    #[test]
    fn malformed_alert_is_inconclusive() {
        let mut p = HeartbleedProbe::new(ProbeConfig::new(ProtocolVersion::TLS1_2, None, ProbeMode::Safe));
        p.feed(&[21, 3, 3, 0, 1, 2]);
        assert!(matches!(p.outcome().verdict, ConnectionVerdict::Inconclusive(Inconclusive::ProtocolError { .. })));
    }

    #[test]
    fn a_chatty_server_cannot_grow_the_log() {
        use std::sync::Arc;
        let identity = Arc::new(bleedwatch_lab::LabIdentity::rsa_lab(&["chatty.test"]).unwrap());
        let mut server = bleedwatch_lab::LabSession::new(bleedwatch_lab::LabConfig::new(bleedwatch_lab::Behaviour::Fixed, identity));
        let mut p = HeartbleedProbe::new(ProbeConfig::new(ProtocolVersion::TLS1_2, None, ProbeMode::Safe));
        server.feed(&p.take_output());
        p.feed(&server.take_output());
        assert_eq!(p.phase(), Phase::Heartbeat);
        // After the flight, a hostile server sends thousands of heartbeat requests of its own and
        // handshake records; each would be a log line.
        for _ in 0..5000 {
            let mut noise = Vec::new();
            encode_records(&mut noise, ContentType::HEARTBEAT, ProtocolVersion::TLS1_2, &[1, 0, 0], MAX_FRAGMENT_LEN);
            encode_records(&mut noise, ContentType::HANDSHAKE, ProtocolVersion::TLS1_2, &[0, 0, 0, 0], MAX_FRAGMENT_LEN);
            p.feed(&noise);
        }
        assert!(!p.is_done(), "{:?}", p.outcome().verdict);
        assert_eq!(p.outcome().log.len(), MAX_LOG_LINES + 1, "{:?}", &p.outcome().log[..5]);
        assert_eq!(p.outcome().log.last().map(String::as_str), Some("(further log lines dropped)"));
    }

    #[test]
    fn oversized_record_header_is_rejected_at_once() {
        let mut p = HeartbleedProbe::new(ProbeConfig::new(ProtocolVersion::TLS1_2, None, ProbeMode::Safe));
        p.feed(&[22, 3, 3, 0xff, 0xff]);
        assert!(p.is_done());
    }
}
