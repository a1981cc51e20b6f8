//! The Heartbleed probe over DTLS 1.0 / 1.2 (UDP): a sans-IO state machine, a thin tokio shell, and the
//! per-endpoint test. The verdict logic is the TLS probe's ([`heartbeat_requests`], [`judge`],
//! [`ConnectionOutcome`], [`classify`]); only the transport differs.
//!
//! The exchange: ClientHello (heartbeat extension) → HelloVerifyRequest → ClientHello with the cookie →
//! ServerHello … ServerHelloDone (reassembled from fragments in any order) → one datagram holding, at
//! epoch 0 in the negotiated version:
//!
//! 1. the **test heartbeat** (payload present, no padding): answered by a vulnerable OpenSSL, dropped by
//!    a fixed one;
//! 2. the **honest heartbeat** (padded): answered by any server that processes heartbeats;
//! 3. a **sentinel** HelloRequest with the next handshake message_seq. OpenSSL's DTLS server takes it
//!    as the next handshake message, finds it is not a ClientKeyExchange and sends a fatal
//!    unexpected_message alert, and a fatal alert flushes its write buffer (`dtls1_dispatch_alert`), so
//!    the alert arrives after any heartbeat answer it was holding.
//!
//! Why one datagram: a datagram arrives whole or not at all, and OpenSSL processes its records in order,
//! so an answer to the honest heartbeat (or the sentinel's alert) proves the test heartbeat before it
//! was processed too. Records in separate datagrams could be lost or reordered, and an answered honest
//! heartbeat would then prove nothing.
//!
//! Why small heartbeats: OpenSSL 1.0.1f's DTLS code calls `OPENSSL_assert(len <= 16384)` on the response
//! and so aborts the server for any claim above 16365; the probe claims [`DTLS_PAYLOAD_LEN`] bytes (plus
//! at most 64 in `--prove` mode) and refuses to send anything above [`MAX_DTLS_CLAIM`]. At that size the
//! whole datagram fits a 1232-byte IPv6-safe MTU. OpenSSL 1.0.1 writes mid-handshake records through a
//! 4 KiB buffer, so a small answer waits there until the server's next flush: the sentinel's alert, or
//! its own handshake retransmission timer (1 s), or until our retransmission wakes it. OpenSSL's DTLS
//! read path also stops after each heartbeat record and resumes only when another datagram arrives, so
//! the probe's bounded retransmissions (500 ms, doubling, 3 times) double as the wake-up.
//!
//! Datagrams from the server can be reordered on the way back. "Vulnerable" is decided the moment an
//! echo of the test heartbeat arrives; the reassuring outcomes (honest answer, fatal alert) are held for
//! a short linger in case a test answer was overtaken. Silence after the retries is `inconclusive`,
//! never safe.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use bleedwatch_wire::alert::Alert;
use bleedwatch_wire::dtls::{
    client_hello_body, dtls_cipher_suites, encode_flight, encode_handshake, pack_datagrams, records, DtlsHandshakeReassembler,
    DtlsRecordEncoder, ReassemblyLimits, DEFAULT_MTU, MAX_DATAGRAM_LEN,
};
use bleedwatch_wire::handshake::{parse_certificate_list, parse_hello_verify_request, ServerHello};
use bleedwatch_wire::heartbeat::HeartbeatMessage;
use bleedwatch_wire::hello::ClientHelloSpec;
use bleedwatch_wire::{AlertDescription, ContentType, HandshakeType, ProtocolVersion, WireError};
use tokio::net::UdpSocket;

use crate::conn::{connect_failure_outcome, ConnectError, Timeouts};
use crate::endpoint::{EndpointOptions, EndpointTarget};
use crate::heartbleed::{
    heartbeat_requests, judge, ConnectionOutcome, ConnectionVerdict, Inconclusive, Judgement, LeakEvidence, Phase,
    ProbeConfig, ProbeMode, DEFAULT_MAX_FLIGHT, MAX_WARNING_ALERTS,
};
use crate::result::{classify, EndpointResult, ScanStatus, Verdict, VersionDetail};

/// Payload of the test and honest heartbeats over DTLS: far below OpenSSL 1.0.1f's 16365-byte abort
/// threshold, and small enough that both heartbeats and the sentinel share one 1232-byte datagram.
pub const DTLS_PAYLOAD_LEN: usize = 512;
/// No DTLS heartbeat we send ever claims more: OpenSSL 1.0.1f's `dtls1_write_bytes` asserts
/// `3 + claim + 16 <= 16384` and so aborts the whole server process for claims above 16365.
pub const MAX_DTLS_CLAIM: u16 = 8192;
/// Versions tested when the options name no DTLS version, newest first.
pub const DEFAULT_DTLS_VERSIONS: [ProtocolVersion; 2] = [ProtocolVersion::DTLS1_2, ProtocolVersion::DTLS1_0];
/// A server that keeps sending datagrams is cut off after this many.
pub const MAX_DATAGRAMS: usize = 512;
/// Cookie exchanges accepted before the server is considered broken.
pub const MAX_HELLO_VERIFY_REQUESTS: u32 = 3;

/// Bounded retransmission of our last flight (RFC 6347 §4.2.4): wait `initial`, then double, at most
/// `max_retries` times; after that the phase times out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retransmit {
    pub initial: Duration,
    pub max_retries: u32,
    pub max_interval: Duration,
}

impl Default for Retransmit {
    fn default() -> Self {
        Retransmit { initial: Duration::from_millis(500), max_retries: 3, max_interval: Duration::from_secs(8) }
    }
}

/// The DTLS probe's configuration: the TLS probe's, plus what a datagram transport needs.
#[derive(Debug, Clone)]
pub struct DtlsProbeConfig {
    /// Version offered, SNI, the two heartbeat requests, whether to send the sentinel, flight cap,
    /// client random: the same fields as for TLS.
    pub probe: ProbeConfig,
    /// Largest datagram we send.
    pub mtu: usize,
    pub retransmit: Retransmit,
    /// How long a reassuring outcome (honest answer, fatal alert) waits for a test answer that the
    /// network may have reordered behind it.
    pub linger: Duration,
}

impl DtlsProbeConfig {
    /// A probe with fresh random payloads of [`DTLS_PAYLOAD_LEN`] bytes.
    pub fn new(version: ProtocolVersion, server_name: Option<String>, mode: ProbeMode) -> Self {
        use rand::RngCore;
        let (test_request, honest_request) = heartbeat_requests(mode, DTLS_PAYLOAD_LEN);
        let mut client_random = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut client_random);
        DtlsProbeConfig {
            probe: ProbeConfig {
                version,
                server_name,
                test_request,
                honest_request: Some(honest_request),
                send_sentinel: true,
                max_flight: DEFAULT_MAX_FLIGHT,
                client_random,
            },
            mtu: DEFAULT_MTU,
            retransmit: Retransmit::default(),
            linger: Duration::from_millis(300),
        }
    }
}

/// A configuration the probe refuses to run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DtlsConfigError {
    #[error("{0} is not a DTLS version")]
    NotDtls(ProtocolVersion),
    /// Would risk crashing an OpenSSL 1.0.1f server (it aborts on claims above 16365).
    #[error("a DTLS heartbeat claiming {claimed} bytes exceeds the safe limit of {limit}")]
    ClaimTooLarge { claimed: u16, limit: u16 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// ClientHello sent; waiting for HelloVerifyRequest or ServerHello.
    Hello,
    /// ServerHello seen; reading the rest of the flight.
    ServerFlight,
    /// Heartbeats and sentinel sent.
    Heartbeat,
    /// A reassuring outcome is pending; a test answer may still arrive.
    Linger,
    Done,
}

/// What our last flight was, to send it again.
#[derive(Debug, Clone)]
enum Flight {
    ClientHello { message_seq: u16, body: Vec<u8> },
    Heartbeats,
}

/// The probe for one DTLS association. Feed it datagrams and timer expiries (with the current time);
/// send the datagrams it queues; wake it at [`DtlsHeartbleedProbe::poll_timeout`].
pub struct DtlsHeartbleedProbe {
    cfg: DtlsProbeConfig,
    state: State,
    encoder: DtlsRecordEncoder,
    handshake: DtlsHandshakeReassembler,
    outbox: Vec<Vec<u8>>,
    flight: Flight,
    retries: u32,
    interval: Duration,
    timer: Option<Instant>,
    linger_until: Option<Instant>,
    pending: Option<ConnectionVerdict>,
    hello_verify_requests: u32,
    /// message_seq of our latest ClientHello (0, or 1 after a cookie exchange).
    last_client_hello_seq: u16,
    flight_bytes: usize,
    warning_alerts: u32,
    datagrams: usize,
    valid_records: usize,
    ignored_retransmissions: usize,
    outcome: ConnectionOutcome,
}

impl DtlsHeartbleedProbe {
    /// Queues the first ClientHello. Refuses versions that are not DTLS and heartbeats that could crash a
    /// vulnerable OpenSSL.
    pub fn new(cfg: DtlsProbeConfig, now: Instant) -> Result<Self, DtlsConfigError> {
        let p = &cfg.probe;
        if !p.version.is_dtls() {
            return Err(DtlsConfigError::NotDtls(p.version));
        }
        for request in std::iter::once(&p.test_request).chain(p.honest_request.iter()) {
            if request.claimed_len > MAX_DTLS_CLAIM {
                return Err(DtlsConfigError::ClaimTooLarge { claimed: request.claimed_len, limit: MAX_DTLS_CLAIM });
            }
        }
        let mut spec = ClientHelloSpec::probe(p.version, p.client_random, p.server_name.clone());
        spec.cipher_suites = dtls_cipher_suites(&spec.cipher_suites);
        let body = client_hello_body(&spec);
        let outcome = ConnectionOutcome {
            offered: p.version,
            negotiated: None,
            cipher_suite: None,
            heartbeat_extension: None,
            chain: Vec::new(),
            verdict: ConnectionVerdict::Inconclusive(Inconclusive::Timeout { phase: Phase::ServerHello }),
            leak: None,
            log: vec![format!("sent DTLS ClientHello offering {}", p.version)],
        };
        let mut probe = DtlsHeartbleedProbe {
            // Hellos go in DTLS 1.0 records, as OpenSSL's DTLS 1.2 client does, so that DTLS 1.0-only
            // servers accept them; later records use the negotiated version.
            encoder: DtlsRecordEncoder::new(ProtocolVersion::DTLS1_0, 0),
            handshake: DtlsHandshakeReassembler::new(0, ReassemblyLimits { max_buffered: p.max_flight, ..ReassemblyLimits::default() }),
            state: State::Hello,
            outbox: Vec::new(),
            flight: Flight::ClientHello { message_seq: 0, body },
            retries: 0,
            interval: cfg.retransmit.initial,
            timer: None,
            linger_until: None,
            pending: None,
            hello_verify_requests: 0,
            last_client_hello_seq: 0,
            flight_bytes: 0,
            warning_alerts: 0,
            datagrams: 0,
            valid_records: 0,
            ignored_retransmissions: 0,
            outcome,
            cfg,
        };
        probe.send_flight(now);
        Ok(probe)
    }

    /// Datagrams to send now, in order.
    pub fn take_datagrams(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.outbox)
    }

    /// When [`DtlsHeartbleedProbe::handle_timeout`] must be called next (retransmission or the end of the
    /// linger); `None` once done.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Done => None,
            State::Linger => self.linger_until,
            _ => self.timer,
        }
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    pub fn phase(&self) -> Phase {
        match self.state {
            State::Hello => Phase::ServerHello,
            State::ServerFlight => Phase::ServerFlight,
            _ => Phase::Heartbeat,
        }
    }

    pub fn outcome(&self) -> &ConnectionOutcome {
        &self.outcome
    }

    pub fn into_outcome(self) -> ConnectionOutcome {
        self.outcome
    }

    /// The retransmission timer or the linger ran out: send the last flight again, or give up, or settle
    /// the pending verdict.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            State::Done => {}
            State::Linger => {
                if self.linger_until.is_some_and(|t| now >= t) {
                    let verdict = self.pending.take().unwrap_or(ConnectionVerdict::Inconclusive(Inconclusive::Timeout { phase: Phase::Heartbeat }));
                    self.finish(verdict);
                }
            }
            _ => {
                match self.timer {
                    Some(t) if now >= t => {}
                    _ => return,
                }
                if self.retries >= self.cfg.retransmit.max_retries {
                    self.outcome.log.push(format!("no answer after {} retransmissions", self.retries));
                    let phase = self.phase();
                    return self.finish(ConnectionVerdict::Inconclusive(Inconclusive::Timeout { phase }));
                }
                self.retries += 1;
                self.interval = (self.interval * 2).min(self.cfg.retransmit.max_interval);
                self.outcome.log.push(format!("retransmission {} of our last flight", self.retries));
                self.send_flight(now);
            }
        }
    }

    /// The overall deadline passed.
    pub fn feed_timeout(&mut self) {
        match self.state {
            State::Done => {}
            // The linger only waits for a test answer that might overtake; its verdict stands.
            State::Linger => {
                let verdict = self.pending.take().unwrap_or(ConnectionVerdict::Inconclusive(Inconclusive::Timeout { phase: Phase::Heartbeat }));
                self.finish(verdict);
            }
            _ => {
                let phase = self.phase();
                self.finish(ConnectionVerdict::Inconclusive(Inconclusive::Timeout { phase }));
            }
        }
    }

    /// An ICMP port unreachable (or other socket error) came back. Before the server said anything this
    /// means nothing listens; afterwards the association is broken. Never "safe".
    pub fn feed_unreachable(&mut self, detail: &str) {
        if self.state == State::Done {
            return;
        }
        if self.state == State::Linger {
            return self.feed_timeout();
        }
        self.outcome.log.push(format!("socket error: {detail}"));
        if self.valid_records == 0 {
            self.finish(ConnectionVerdict::Inconclusive(Inconclusive::ConnectFailed { detail: detail.to_string() }));
        } else {
            let phase = self.phase();
            self.finish(ConnectionVerdict::Inconclusive(Inconclusive::Reset { phase }));
        }
    }

    /// True when the association failed before the server sent anything valid because the port is
    /// unreachable: the shell reports that as a refused connection.
    pub fn unreachable_before_any_answer(&self) -> bool {
        self.valid_records == 0 && matches!(self.outcome.verdict, ConnectionVerdict::Inconclusive(Inconclusive::ConnectFailed { .. }))
    }

    /// One datagram from the server.
    pub fn feed_datagram(&mut self, now: Instant, datagram: &[u8]) {
        if self.state == State::Done {
            return;
        }
        self.datagrams += 1;
        if self.datagrams > MAX_DATAGRAMS {
            return self.protocol_error(format!("more than {MAX_DATAGRAMS} datagrams from the server"));
        }
        for (index, record) in records(datagram).enumerate() {
            let record = match record {
                Ok(r) => r,
                Err(err) => {
                    if self.valid_records == 0 && index == 0 {
                        return self.not_dtls(err, datagram);
                    }
                    // RFC 6347 §4.1.2.7: discard what cannot be parsed, keep going.
                    self.outcome.log.push(format!("discarded the rest of a datagram: {err}"));
                    break;
                }
            };
            self.valid_records += 1;
            let (header, fragment) = (record.header, record.fragment.to_vec());
            if header.epoch != 0 {
                // We never change cipher state; later epochs can only be noise or another association's.
                self.outcome.log.push(format!("ignored {} record at epoch {}", header.content_type, header.epoch));
                continue;
            }
            self.on_record(now, header.content_type, header.version, &fragment);
            if self.state == State::Done {
                return;
            }
        }
    }

    fn not_dtls(&mut self, err: WireError, datagram: &[u8]) {
        match err {
            WireError::NotTls(_) => {
                let first: Vec<u8> = datagram.iter().take(8).copied().collect();
                self.finish(ConnectionVerdict::Inconclusive(Inconclusive::NotTls { first_bytes: hex::encode(first) }))
            }
            err => self.protocol_error(err.to_string()),
        }
    }

    fn finish(&mut self, verdict: ConnectionVerdict) {
        self.outcome.verdict = verdict;
        self.state = State::Done;
        self.timer = None;
        self.linger_until = None;
    }

    fn protocol_error(&mut self, detail: impl Into<String>) {
        let phase = self.phase();
        self.finish(ConnectionVerdict::Inconclusive(Inconclusive::ProtocolError { phase, detail: detail.into() }));
    }

    /// Settles on `verdict` after the linger, unless a test answer arrives first.
    fn linger(&mut self, now: Instant, verdict: ConnectionVerdict) {
        if self.cfg.linger.is_zero() {
            return self.finish(verdict);
        }
        self.pending = Some(verdict);
        self.state = State::Linger;
        self.timer = None;
        self.linger_until = Some(now + self.cfg.linger);
    }

    /// (Re)sends the last flight with fresh record sequence numbers and re-arms the timer.
    fn send_flight(&mut self, now: Instant) {
        let datagrams = match self.flight.clone() {
            Flight::ClientHello { message_seq, body } => {
                encode_flight(&mut self.encoder, &[(HandshakeType::CLIENT_HELLO, message_seq, &body)], self.cfg.mtu)
            }
            Flight::Heartbeats => self.heartbeat_datagrams(),
        };
        match datagrams {
            Ok(d) => self.outbox.extend(d),
            Err(err) => return self.protocol_error(format!("cannot encode our flight: {err}")),
        }
        self.timer = Some(now + self.interval);
    }

    fn heartbeat_datagrams(&mut self) -> Result<Vec<Vec<u8>>, WireError> {
        let mut recs = vec![self.encoder.encode(ContentType::HEARTBEAT, &self.cfg.probe.test_request.encode())?];
        if let Some(honest) = &self.cfg.probe.honest_request {
            recs.push(self.encoder.encode(ContentType::HEARTBEAT, &honest.encode())?);
        }
        if self.cfg.probe.send_sentinel {
            // The next message_seq the server expects from us: one past our last ClientHello.
            let seq = self.last_client_hello_seq.wrapping_add(1);
            recs.push(self.encoder.encode(ContentType::HANDSHAKE, &encode_handshake(HandshakeType::HELLO_REQUEST, seq, &[]))?);
        }
        Ok(pack_datagrams(&recs, self.cfg.mtu))
    }

    fn on_record(&mut self, now: Instant, typ: ContentType, version: ProtocolVersion, fragment: &[u8]) {
        if matches!(self.state, State::Hello | State::ServerFlight) {
            self.flight_bytes += fragment.len() + 13;
            if self.flight_bytes > self.cfg.probe.max_flight {
                return self.protocol_error(format!("server flight exceeds {} bytes", self.cfg.probe.max_flight));
            }
        }
        if let Some(negotiated) = self.outcome.negotiated {
            if version != negotiated && typ != ContentType::ALERT && typ != ContentType::HANDSHAKE {
                self.outcome.log.push(format!("record version {version} differs from negotiated {negotiated}"));
            }
        }
        match typ {
            ContentType::HANDSHAKE => self.on_handshake_record(now, fragment),
            ContentType::ALERT => self.on_alert(now, fragment),
            ContentType::HEARTBEAT => self.on_heartbeat(now, fragment),
            other => self.protocol_error(format!("unexpected {other} record at epoch 0")),
        }
    }

    fn on_handshake_record(&mut self, now: Instant, fragment: &[u8]) {
        if !matches!(self.state, State::Hello | State::ServerFlight) {
            // The server retransmitting its flight (its timer ran out before our records arrived, or it
            // flushes buffered heartbeat answers together with it): nothing new for the verdict.
            self.ignored_retransmissions += 1;
            if self.ignored_retransmissions == 1 {
                self.outcome.log.push("server retransmitted handshake records after its flight".into());
            }
            return;
        }
        match self.handshake.push_record(fragment) {
            Ok(0) => {}
            Ok(stale) => {
                self.ignored_retransmissions += stale;
            }
            Err(err) => return self.protocol_error(format!("bad handshake fragment: {err}")),
        }
        while matches!(self.state, State::Hello | State::ServerFlight) {
            let Some(message) = self.handshake.next_message() else { return };
            self.on_handshake_message(now, message.typ, &message.body);
        }
    }

    fn on_handshake_message(&mut self, now: Instant, typ: HandshakeType, body: &[u8]) {
        match typ {
            HandshakeType::HELLO_VERIFY_REQUEST if self.state == State::Hello => {
                let cookie = match parse_hello_verify_request(body) {
                    Ok((_, cookie)) if !cookie.is_empty() => cookie.to_vec(),
                    Ok(_) => return self.protocol_error("HelloVerifyRequest with an empty cookie"),
                    Err(err) => return self.protocol_error(format!("bad HelloVerifyRequest: {err}")),
                };
                self.hello_verify_requests += 1;
                if self.hello_verify_requests > MAX_HELLO_VERIFY_REQUESTS {
                    return self.protocol_error("server keeps sending HelloVerifyRequests");
                }
                let p = &self.cfg.probe;
                let mut spec = ClientHelloSpec::probe(p.version, p.client_random, p.server_name.clone());
                spec.cipher_suites = dtls_cipher_suites(&spec.cipher_suites);
                spec.cookie = Some(cookie.clone());
                self.last_client_hello_seq = self.last_client_hello_seq.wrapping_add(1);
                self.flight = Flight::ClientHello { message_seq: self.last_client_hello_seq, body: client_hello_body(&spec) };
                self.outcome.log.push(format!("HelloVerifyRequest with a {}-byte cookie; sent ClientHello with it", cookie.len()));
                self.restart_retransmission(now);
            }
            HandshakeType::SERVER_HELLO if self.state == State::Hello => {
                let hello = match ServerHello::parse(body) {
                    Ok(h) => h,
                    Err(err) => return self.protocol_error(format!("bad ServerHello: {err}")),
                };
                let negotiated = hello.negotiated_version();
                self.outcome.negotiated = Some(negotiated);
                self.outcome.cipher_suite = Some(hello.cipher_suite);
                self.outcome.heartbeat_extension = hello.heartbeat_mode();
                self.outcome.log.push(format!(
                    "ServerHello {negotiated}, {}, heartbeat extension {}",
                    hello.cipher_suite,
                    hello.heartbeat_mode().map(|m| m.name()).unwrap_or("absent")
                ));
                if !negotiated.is_dtls() || negotiated.rank() > self.cfg.probe.version.rank() {
                    return self.protocol_error(format!("server chose {negotiated}, not a DTLS version at or below {}", self.cfg.probe.version));
                }
                // Every later record of ours uses the negotiated version (PEERS.md pitfall 2; OpenSSL's
                // DTLS code silently drops records of any other version).
                self.encoder.set_version(negotiated);
                self.state = State::ServerFlight;
                self.restart_timer(now);
            }
            HandshakeType::CERTIFICATE if self.state == State::ServerFlight => match parse_certificate_list(body) {
                Ok(list) => self.outcome.chain = list.into_iter().map(<[u8]>::to_vec).collect(),
                Err(err) => self.protocol_error(format!("bad Certificate: {err}")),
            },
            HandshakeType::SERVER_HELLO_DONE if self.state == State::ServerFlight => self.send_heartbeats(now),
            HandshakeType::SERVER_KEY_EXCHANGE | HandshakeType::CERTIFICATE_REQUEST | HandshakeType::CERTIFICATE_STATUS | HandshakeType::HELLO_REQUEST
                if self.state == State::ServerFlight =>
            {
                self.restart_timer(now)
            }
            other => self.protocol_error(format!("unexpected {other} in the server flight")),
        }
    }

    /// A new flight of ours: count retransmissions from zero and send it now.
    fn restart_retransmission(&mut self, now: Instant) {
        self.retries = 0;
        self.interval = self.cfg.retransmit.initial;
        self.send_flight(now);
    }

    /// The server made progress: wait a full interval again before retransmitting.
    fn restart_timer(&mut self, now: Instant) {
        self.retries = 0;
        self.interval = self.cfg.retransmit.initial;
        self.timer = Some(now + self.interval);
    }

    fn send_heartbeats(&mut self, now: Instant) {
        let version = self.encoder.version();
        self.flight = Flight::Heartbeats;
        self.state = State::Heartbeat;
        let t = &self.cfg.probe.test_request;
        let mut note = format!("sent test heartbeat (claims {}, carries {}, padding {})", t.claimed_len, t.payload.len(), t.padding);
        if let Some(h) = &self.cfg.probe.honest_request {
            note.push_str(&format!(", honest heartbeat ({} + {} padding)", h.payload.len(), h.padding));
        }
        if self.cfg.probe.send_sentinel {
            note.push_str(&format!(", sentinel HelloRequest (message_seq {})", self.last_client_hello_seq.wrapping_add(1)));
        }
        self.outcome.log.push(format!("{note} in {version} records at epoch 0"));
        self.restart_retransmission(now);
    }

    fn on_alert(&mut self, now: Instant, fragment: &[u8]) {
        let alert = match Alert::parse(fragment) {
            Ok(a) => a,
            // An unparseable alert means "not tested", never "safe" (PEERS.md pitfall 4).
            Err(err) => return self.protocol_error(format!("malformed alert: {err}")),
        };
        self.outcome.log.push(format!("server sent alert {alert}"));
        if !alert.is_fatal() && alert.description != AlertDescription::CLOSE_NOTIFY {
            self.warning_alerts += 1;
            if self.warning_alerts > MAX_WARNING_ALERTS {
                self.protocol_error("too many warning alerts");
            }
            return;
        }
        match self.state {
            State::Hello => self.finish(ConnectionVerdict::VersionRejected { alert: Some(alert.description) }),
            State::ServerFlight => {
                let phase = self.phase();
                self.finish(ConnectionVerdict::Inconclusive(Inconclusive::Alert { phase, alert: alert.to_string() }))
            }
            State::Heartbeat => self.linger(now, ConnectionVerdict::HeartbeatRefused { alert: Some(alert.description) }),
            State::Linger | State::Done => {}
        }
    }

    fn on_heartbeat(&mut self, now: Instant, fragment: &[u8]) {
        let msg = match HeartbeatMessage::parse(fragment) {
            Ok(m) => m,
            Err(err) => {
                self.outcome.log.push(format!("ignored malformed heartbeat record: {err}"));
                return;
            }
        };
        if !matches!(self.state, State::Heartbeat | State::Linger) {
            // Unsolicited: proves nothing (PEERS.md: nmap called a server vulnerable for this).
            self.outcome.log.push("ignored unsolicited heartbeat before our request".into());
            return;
        }
        match judge(&self.cfg.probe.test_request, self.cfg.probe.honest_request.as_ref(), &msg) {
            Judgement::TestAnswered { leak } => {
                self.outcome.log.push(format!(
                    "test heartbeat answered: response claims {}, {} bytes in this record",
                    msg.payload_length,
                    msg.body.len()
                ));
                self.outcome.leak = leak;
                self.finish(ConnectionVerdict::Vulnerable);
            }
            Judgement::HonestAnswered => {
                self.outcome.log.push("honest heartbeat answered, test heartbeat dropped".into());
                match self.state {
                    State::Heartbeat => self.linger(now, ConnectionVerdict::NotVulnerable),
                    // An answer outweighs an alert that arrived first.
                    _ => self.pending = Some(ConnectionVerdict::NotVulnerable),
                }
            }
            Judgement::Unrelated => self.outcome.log.push(format!(
                "ignored heartbeat that does not answer our requests (type {}, claims {})",
                msg.kind.0, msg.payload_length
            )),
        }
    }
}

/// Runs one DTLS probe over UDP to the end. A socket that cannot be set up, or a port that answers
/// with ICMP unreachable before anything else, is an `Err`; everything else is an outcome.
pub async fn run_dtls_probe(addr: SocketAddr, cfg: DtlsProbeConfig, t: &Timeouts) -> Result<ConnectionOutcome, ConnectError> {
    let local: SocketAddr = if addr.is_ipv4() { (std::net::Ipv4Addr::UNSPECIFIED, 0).into() } else { (std::net::Ipv6Addr::UNSPECIFIED, 0).into() };
    let socket = UdpSocket::bind(local).await.map_err(|e| ConnectError::Other(e.to_string()))?;
    // A connected UDP socket only hears this peer and reports ICMP port unreachable as an error.
    socket.connect(addr).await.map_err(|e| ConnectError::Other(e.to_string()))?;
    let probe = DtlsHeartbleedProbe::new(cfg, Instant::now()).map_err(|e| ConnectError::Other(e.to_string()))?;
    let outcome = drive(&socket, probe, t).await;
    Ok(outcome)
}

fn is_unreachable(e: &std::io::Error) -> bool {
    matches!(e.kind(), std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::ConnectionReset)
}

async fn drive(socket: &UdpSocket, mut probe: DtlsHeartbleedProbe, t: &Timeouts) -> ConnectionOutcome {
    let handshake_deadline = Instant::now() + t.handshake;
    let mut heartbeat_deadline: Option<Instant> = None;
    let mut buf = vec![0u8; MAX_DATAGRAM_LEN + 1];
    loop {
        for datagram in probe.take_datagrams() {
            if let Err(e) = socket.send(&datagram).await {
                probe.feed_unreachable(&e.to_string());
                break;
            }
        }
        if probe.phase() == Phase::Heartbeat && heartbeat_deadline.is_none() {
            heartbeat_deadline = Some(Instant::now() + t.heartbeat);
        }
        if probe.is_done() {
            break;
        }
        let deadline = heartbeat_deadline.unwrap_or(handshake_deadline);
        let wake = probe.poll_timeout().map_or(deadline, |t| t.min(deadline));
        match tokio::time::timeout_at(tokio::time::Instant::from_std(wake), socket.recv(&mut buf)).await {
            Ok(Ok(n)) => probe.feed_datagram(Instant::now(), buf.get(..n).unwrap_or_default()),
            Ok(Err(e)) if is_unreachable(&e) => probe.feed_unreachable("ICMP port unreachable"),
            Ok(Err(e)) => probe.feed_unreachable(&e.to_string()),
            Err(_) => {
                let now = Instant::now();
                if now >= deadline {
                    probe.feed_timeout();
                } else {
                    probe.handle_timeout(now);
                }
            }
        }
    }
    probe.into_outcome()
}

/// Alerts that may mean "not with that SNI" (PEERS.md pitfall 4).
fn sni_may_be_the_problem(o: &ConnectionOutcome) -> bool {
    matches!(
        o.verdict,
        ConnectionVerdict::VersionRejected {
            alert: Some(AlertDescription::UNRECOGNIZED_NAME | AlertDescription::HANDSHAKE_FAILURE | AlertDescription::ILLEGAL_PARAMETER)
        }
    ) || matches!(&o.verdict, ConnectionVerdict::Inconclusive(Inconclusive::ProtocolError { .. }))
}

async fn run_or_refused(addr: SocketAddr, cfg: DtlsProbeConfig, t: &Timeouts) -> Result<ConnectionOutcome, ConnectError> {
    let outcome = run_dtls_probe(addr, cfg, t).await?;
    let refused = outcome.negotiated.is_none()
        && matches!(&outcome.verdict, ConnectionVerdict::Inconclusive(Inconclusive::ConnectFailed { detail }) if detail.contains("unreachable"));
    if refused {
        return Err(ConnectError::Refused);
    }
    Ok(outcome)
}

/// Tests one UDP endpoint for Heartbleed over DTLS: each DTLS version in `opts.versions` (DTLS 1.2 then
/// 1.0 when it names none) on its own association, following downgrades and retrying without SNI when
/// SNI is refused. Same result type as TCP, with `transport: "udp"` and `service: "dtls"`.
pub async fn probe_dtls_endpoint(target: &EndpointTarget, opts: &EndpointOptions) -> EndpointResult {
    let started = SystemTime::now();
    let clock = Instant::now();
    let mut versions: Vec<ProtocolVersion> = opts.versions.iter().copied().filter(|v| v.is_dtls()).collect();
    if versions.is_empty() {
        versions = DEFAULT_DTLS_VERSIONS.to_vec();
    }
    versions.sort_by_key(|v| std::cmp::Reverse(v.rank()));
    versions.dedup();

    let mut per_version: BTreeMap<ProtocolVersion, (Verdict, Option<String>)> = BTreeMap::new();
    let mut details = Vec::new();
    let mut chain: Vec<Vec<u8>> = Vec::new();
    let mut leak: Option<LeakEvidence> = None;
    let mut sni = opts.sni_override.clone().or_else(|| target.host.clone().filter(|h| h.parse::<std::net::IpAddr>().is_err()));
    let mut sni_worked: Option<bool> = None;
    let mut status = ScanStatus::Success;

    for &version in &versions {
        if per_version.contains_key(&version) {
            continue;
        }
        let cfg = DtlsProbeConfig::new(version, sni.clone(), opts.mode);
        let mut outcome = match run_or_refused(target.addr, cfg.clone(), &opts.timeouts).await {
            Ok(o) => o,
            Err(err) => {
                status = match err {
                    ConnectError::Refused => ScanStatus::ConnectionRefused,
                    ConnectError::Timeout => ScanStatus::ConnectionTimeout,
                    ConnectError::Other(_) => ScanStatus::ConnectionFailed,
                };
                let o = connect_failure_outcome(&cfg.probe, &err);
                details.push(VersionDetail::from_outcome(&o, cfg.probe.server_name.is_some()));
                per_version.insert(version, classify(&o));
                break;
            }
        };
        let mut used_sni = cfg.probe.server_name.is_some();
        if used_sni && opts.sni_retry && sni_worked != Some(true) && sni_may_be_the_problem(&outcome) {
            if let Ok(retry) = run_or_refused(target.addr, DtlsProbeConfig::new(version, None, opts.mode), &opts.timeouts).await {
                if retry.negotiated.is_some() {
                    details.push(VersionDetail::from_outcome(&outcome, true));
                    outcome = retry;
                    used_sni = false;
                    sni = None;
                }
            }
        }
        if outcome.negotiated.is_some() && sni_worked.is_none() {
            sni_worked = Some(used_sni);
        }
        if chain.is_empty() && !outcome.chain.is_empty() {
            chain = outcome.chain.clone();
        }
        if leak.is_none() {
            leak = outcome.leak.clone();
        }
        details.push(VersionDetail::from_outcome(&outcome, used_sni));
        let (verdict, reason) = classify(&outcome);
        match outcome.negotiated {
            // Answered below the offer: the versions in between are not supported, and this association
            // already tested the negotiated one.
            Some(negotiated) if negotiated != version => {
                for &v in versions.iter().filter(|v| v.rank() > negotiated.rank() && v.rank() <= version.rank()) {
                    per_version.entry(v).or_insert((Verdict::NotSupported, Some(format!("server negotiated {negotiated}"))));
                }
                per_version.insert(negotiated, (verdict, reason));
            }
            _ => {
                per_version.insert(version, (verdict, reason));
            }
        }
        match outcome.verdict {
            ConnectionVerdict::Inconclusive(Inconclusive::NotTls { .. }) => {
                status = ScanStatus::NotTls;
                break;
            }
            // Silence to one hello after every retransmission: the next will fare no better.
            ConnectionVerdict::Inconclusive(Inconclusive::Timeout { phase: Phase::ServerHello }) => break,
            _ => {}
        }
    }

    let accepted_any = per_version.values().any(|(v, _)| *v != Verdict::NotSupported);
    let mut heartbleed = per_version.values().fold(Verdict::NotSupported, |acc, (v, _)| Verdict::worst(acc, *v));
    let mut reason = per_version.values().filter(|(v, _)| *v == heartbleed).find_map(|(_, r)| r.clone());
    if !accepted_any && status == ScanStatus::Success {
        heartbleed = Verdict::Inconclusive;
        reason = Some("no DTLS 1.0 or 1.2 version accepted".into());
        status = ScanStatus::HandshakeError;
    }
    if status != ScanStatus::Success && heartbleed != Verdict::Vulnerable {
        heartbleed = Verdict::Inconclusive;
    }
    if heartbleed == Verdict::Inconclusive && status == ScanStatus::Success {
        status = status_for_inconclusive(&details);
    }
    let summaries: Vec<_> = chain.iter().filter_map(|der| bleedwatch_x509::summarize(der).ok()).collect();
    EndpointResult {
        address: target.addr.ip().to_string(),
        port: target.addr.port(),
        transport: "udp",
        host: target.host.clone(),
        service: "dtls".into(),
        sni: if sni_worked == Some(true) { sni } else { None },
        status,
        heartbleed,
        reason,
        versions: per_version.into_iter().map(|(v, (verdict, _))| (v.to_string(), verdict)).collect(),
        certificate: summaries.first().cloned(),
        chain: summaries,
        leak,
        details,
        started_at: humantime::format_rfc3339_millis(started).to_string(),
        duration_ms: clock.elapsed().as_millis() as u64,
    }
}

/// The scan status for an inconclusive endpoint, from the reason of the last inconclusive version (the
/// TCP endpoint test's rule).
fn status_for_inconclusive(details: &[VersionDetail]) -> ScanStatus {
    let reason = details.iter().rev().find(|d| d.verdict == Verdict::Inconclusive).and_then(|d| d.reason.clone()).unwrap_or_default();
    if reason.starts_with("timeout") {
        ScanStatus::IoTimeout
    } else if reason.starts_with("protocol error") || reason.starts_with("alert") {
        ScanStatus::ProtocolError
    } else {
        ScanStatus::HandshakeError
    }
}

/// Fuzz entry point: arbitrary server datagrams (cut from `data`) into a DTLS 1.2 probe, then each end.
pub fn fuzz_server_datagrams(data: &[u8]) {
    let Ok(mut probe) = DtlsHeartbleedProbe::new(DtlsProbeConfig::new(ProtocolVersion::DTLS1_2, Some("fuzz.test".into()), ProbeMode::Safe), Instant::now())
    else {
        return;
    };
    let now = Instant::now();
    for piece in data.chunks(data.first().map(|b| *b as usize + 1).unwrap_or(1)) {
        probe.feed_datagram(now, piece);
        let _ = probe.take_datagrams();
    }
    probe.handle_timeout(now + Duration::from_secs(60));
    probe.feed_timeout();
    let _ = probe.outcome();
}
