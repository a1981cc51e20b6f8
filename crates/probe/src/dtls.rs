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
//! Why 4500-byte heartbeats: OpenSSL 1.0.1 writes mid-handshake records through a buffer of about
//! 4 KiB and flushes it only when a write does not fit. The real 1.0.1f `s_server -dtls1` echoes an
//! unpadded 4500-byte heartbeat at once, and keeps the answer to a 4000-byte or a 512-byte one in that
//! buffer for good (captures in `shared/data/pcap/openssl-1.0.1f-lab/`, DTLS section): a small probe
//! hears nothing from a vulnerable server. 4500 bytes also stays far below the claim of 16365 above
//! which 1.0.1f's DTLS code aborts the server (`OPENSSL_assert`); the probe claims at most
//! [`MAX_DTLS_CLAIM`]. The datagram is therefore about 9.1 KB (two heartbeat records of 4503 and 4519
//! bytes plus a 25-byte HelloRequest, each behind a 13-byte header), and the echo about 4.5 KB: above a
//! 1500-byte Ethernet MTU, both travel as IP fragments. A path that drops fragments delivers neither:
//! the probe then hears nothing and says `inconclusive`, never "safe".
//!
//! What real servers do with that datagram, and how each case is read:
//! - OpenSSL 1.0.1f echoes the test heartbeat (4519 bytes, flushed at once): `vulnerable`. OpenSSL's
//!   DTLS read path then returns to the application, and `s_server` drops the association.
//! - OpenSSL 1.0.1g drops the test heartbeat silently and returns to the application the same way, so
//!   `s_server` drops the association without a word: that proves nothing by itself, and the sweep's
//!   follow-up connections (the honest heartbeat alone, then the test again) get the evidence.
//! - OpenSSL 3 and 1.0.1f built without heartbeats send a fatal unexpected_message alert.
//! - GnuTLS aborts the handshake on the unpadded heartbeat and goes silent, without an alert and without
//!   retransmitting its flight.
//! - After [`DtlsProbeConfig::silence`] of total silence (not even the server's own retransmission of
//!   its flight) the association is taken as dropped: `inconclusive` (association dropped), which the
//!   sweep's follow-ups on new associations may settle. The probe sends no new ClientHello on the old
//!   socket to ask: `s_server -dtls1` serves one association at a time and would stay stuck on a cookie
//!   exchange we abandon, unable to answer the follow-ups. A server that retransmits its flight still
//!   holds the association and gets our datagram again (RFC 6347 §4.2.4), a bounded number of times.
//!
//! Datagrams from the server can be reordered on the way back. "Vulnerable" is decided the moment an
//! echo of the test heartbeat arrives; the reassuring outcomes (honest answer, fatal alert, dropped
//! association) are held for a short linger in case a test answer was overtaken. Silence after the
//! bounded retries is `inconclusive`, never safe.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bleedwatch_wire::dtls::{
    client_hello_body, dtls_cipher_suites, encode_flight, encode_handshake, records,
    DtlsHandshakeReassembler, DtlsRecordEncoder, ReassemblyLimits, DEFAULT_MTU, MAX_DATAGRAM_LEN,
};
use bleedwatch_wire::handshake::{parse_certificate_list, parse_hello_verify_request, ServerHello};
use bleedwatch_wire::heartbeat::HeartbeatMessage;
use bleedwatch_wire::hello::ClientHelloSpec;
use bleedwatch_wire::{ContentType, HandshakeType, ProtocolVersion, WireError};
use tokio::net::UdpSocket;

use crate::conn::{ConnectError, Timeouts};
use crate::endpoint::{build_result, initial_sni, sweep_versions, Attempt, AttemptFailure, ResultContext};
use crate::heartbleed::{
    heartbeat_records, judge, server_alert, AlertEffect, ConnectionOutcome, ConnectionVerdict, Inconclusive, Judgement, Phase, ProbeConfig,
    ProbeMode,
};
use crate::options::{EndpointOptions, EndpointTarget};
use crate::result::EndpointResult;

/// Payload of the test and honest heartbeats over DTLS: answers (payload + 19 bytes) must exceed OpenSSL
/// 1.0.1's ~4 KiB handshake write buffer to leave it (the real 1.0.1f echoes 4100 and 4500, not 4000 or
/// 512), and claims must stay far below the 16365 at which 1.0.1f's DTLS code aborts.
pub const DTLS_PAYLOAD_LEN: usize = crate::heartbleed::DEFAULT_PAYLOAD_LEN;
/// No DTLS heartbeat we send ever claims more: OpenSSL 1.0.1f's `dtls1_write_bytes` asserts
/// `3 + claim + 16 <= 16384` and so aborts the whole server process for claims above 16365.
pub const MAX_DTLS_CLAIM: u16 = 8192;
/// Versions tested when the options name no DTLS version, newest first.
pub const DEFAULT_DTLS_VERSIONS: [ProtocolVersion; 2] = [ProtocolVersion::DTLS1_2, ProtocolVersion::DTLS1_0];
/// A server that keeps sending datagrams is cut off after this many.
pub const MAX_DATAGRAMS: usize = 512;
/// Cookie exchanges accepted before the server is considered broken.
pub const MAX_HELLO_VERIFY_REQUESTS: u32 = 3;
/// Records read from one datagram; the rest of a longer datagram is discarded.
pub const MAX_RECORDS_PER_DATAGRAM: usize = 64;

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
    /// Largest datagram we send during the handshake (hellos are fragmented to fit). The heartbeat
    /// datagram is larger by necessity (see the module notes) and left to IP fragmentation.
    pub mtu: usize,
    pub retransmit: Retransmit,
    /// How long the association may stay completely silent after our heartbeats before we check
    /// whether the server dropped it. Longer than the 1 s after which OpenSSL and GnuTLS retransmit their
    /// flight, so that a server still waiting on us shows itself first.
    pub silence: Duration,
    /// How long a reassuring outcome (honest answer, fatal alert, dropped association) waits for a test
    /// answer that the network may have reordered behind it.
    pub linger: Duration,
}

impl DtlsProbeConfig {
    /// A probe with fresh random payloads of [`DTLS_PAYLOAD_LEN`] bytes.
    pub fn new(version: ProtocolVersion, server_name: Option<String>, mode: ProbeMode) -> Self {
        DtlsProbeConfig::for_attempt(&Attempt { version, sni: server_name, honest_only: false }, mode)
    }

    /// The probe for one connection of the version sweep (a first test or a follow-up).
    pub fn for_attempt(attempt: &Attempt, mode: ProbeMode) -> Self {
        DtlsProbeConfig {
            probe: attempt.probe_config(mode, DTLS_PAYLOAD_LEN),
            mtu: DEFAULT_MTU,
            retransmit: Retransmit::default(),
            silence: Duration::from_millis(2500),
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

/// The probe for one DTLS association. Feed it datagrams and timer expiries (with the current time);
/// send the datagrams it queues; wake it at [`DtlsHeartbleedProbe::poll_timeout`].
pub struct DtlsHeartbleedProbe {
    cfg: DtlsProbeConfig,
    state: State,
    encoder: DtlsRecordEncoder,
    handshake: DtlsHandshakeReassembler,
    outbox: Vec<Vec<u8>>,
    /// Our last ClientHello (message_seq, body), to send again.
    client_hello: (u16, Vec<u8>),
    retries: u32,
    interval: Duration,
    timer: Option<Instant>,
    last_sent: Option<Instant>,
    linger_until: Option<Instant>,
    pending: Option<ConnectionVerdict>,
    hello_verify_requests: u32,
    /// Server datagrams since our heartbeats went out: any sign that it still holds the association.
    heard_since_heartbeats: usize,
    flight_bytes: usize,
    warning_alerts: u32,
    datagrams: usize,
    valid_records: usize,
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
        let outcome = ConnectionOutcome::started(p.version, vec![format!("sent DTLS ClientHello offering {}", p.version)]);
        let mut probe = DtlsHeartbleedProbe {
            // Hellos go in DTLS 1.0 records, as OpenSSL's DTLS 1.2 client does, so that DTLS 1.0-only
            // servers accept them; later records use the negotiated version.
            encoder: DtlsRecordEncoder::new(ProtocolVersion::DTLS1_0, 0),
            handshake: DtlsHandshakeReassembler::new(0, ReassemblyLimits { max_buffered: p.max_flight, ..ReassemblyLimits::default() }),
            state: State::Hello,
            outbox: Vec::new(),
            client_hello: (0, Self::hello_body(p, None)),
            retries: 0,
            interval: cfg.retransmit.initial,
            timer: None,
            last_sent: None,
            linger_until: None,
            pending: None,
            hello_verify_requests: 0,
            heard_since_heartbeats: 0,
            flight_bytes: 0,
            warning_alerts: 0,
            datagrams: 0,
            valid_records: 0,
            outcome,
            cfg,
        };
        probe.send_client_hello(now);
        Ok(probe)
    }

    fn hello_body(p: &ProbeConfig, cookie: Option<Vec<u8>>) -> Vec<u8> {
        let mut spec = ClientHelloSpec::probe(p.version, p.client_random, p.server_name.clone());
        spec.cipher_suites = dtls_cipher_suites(&spec.cipher_suites);
        spec.cookie = cookie;
        client_hello_body(&spec)
    }

    /// Datagrams to send now, in order.
    pub fn take_datagrams(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.outbox)
    }

    /// When [`DtlsHeartbleedProbe::handle_timeout`] must be called next (retransmission, silence check
    /// or the end of the linger); `None` once done.
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

    /// A timer ran out: retransmit (bounded), check whether a silent server is still there, give up, or
    /// settle the pending verdict.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.state == State::Linger {
            if self.linger_until.is_some_and(|t| now >= t) {
                self.settle();
            }
            return;
        }
        match self.timer {
            Some(t) if now >= t => {}
            _ => return,
        }
        match self.state {
            State::Hello | State::ServerFlight => {
                if self.retries >= self.cfg.retransmit.max_retries {
                    return self.give_up();
                }
                self.retries += 1;
                self.interval = (self.interval * 2).min(self.cfg.retransmit.max_interval);
                self.note(format!("retransmission {} of our ClientHello", self.retries));
                self.send_client_hello(now);
            }
            State::Heartbeat if self.heard_since_heartbeats == 0 => {
                // Not a word since our heartbeats, not even a retransmitted flight: the server dropped
                // (or ignores) our association. That proves nothing; the sweep's follow-ups ask on new
                // associations. No new ClientHello on this socket: a server that handles one
                // association at a time (`openssl s_server -dtls1`) stays stuck on a cookie exchange we
                // would abandon, and could not answer the follow-ups (found on the real 1.0.1g).
                self.note(format!("no datagram from the server for {:?} after our heartbeats, not even a retransmission of its flight", self.cfg.silence));
                self.linger(now, ConnectionVerdict::Inconclusive(Inconclusive::AssociationDropped));
            }
            State::Heartbeat => {
                // The server is alive but answered nothing: send our datagram again, a bounded number of
                // times, then give up.
                if self.retries >= self.cfg.retransmit.max_retries {
                    return self.give_up();
                }
                self.resend_heartbeats(now);
            }
            State::Linger | State::Done => {}
        }
    }

    fn give_up(&mut self) {
        self.note(format!("no deciding answer after {} retransmissions", self.retries));
        let phase = self.phase();
        self.finish(ConnectionVerdict::Inconclusive(Inconclusive::Timeout { phase }));
    }

    fn settle(&mut self) {
        let verdict = self.pending.take().unwrap_or(ConnectionVerdict::Inconclusive(Inconclusive::Timeout { phase: Phase::Heartbeat }));
        self.finish(verdict);
    }

    /// The overall deadline passed.
    pub fn feed_timeout(&mut self) {
        match self.state {
            State::Done => {}
            // The linger only waits for a test answer that might overtake; its verdict stands.
            State::Linger => self.settle(),
            _ => {
                let phase = self.phase();
                self.finish(ConnectionVerdict::Inconclusive(Inconclusive::Timeout { phase }));
            }
        }
    }

    /// An ICMP port unreachable (or other socket error) came back. Before the server said anything this
    /// means nothing listens (`port_unreachable`) or the socket failed; afterwards the association is
    /// broken. Never "safe".
    pub fn feed_unreachable(&mut self, detail: &str, port_unreachable: bool) {
        match self.state {
            State::Done => {}
            State::Linger => self.settle(),
            _ => {
                self.note(format!("socket error: {detail}"));
                if self.valid_records == 0 && port_unreachable {
                    self.finish(ConnectionVerdict::Inconclusive(Inconclusive::Refused));
                } else if self.valid_records == 0 {
                    self.finish(ConnectionVerdict::Inconclusive(Inconclusive::ConnectFailed { detail: detail.to_string() }));
                } else {
                    let phase = self.phase();
                    self.finish(ConnectionVerdict::Inconclusive(Inconclusive::Reset { phase }));
                }
            }
        }
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
        if self.state == State::Heartbeat {
            self.heard_since_heartbeats += 1;
        }
        for (index, record) in records(datagram).enumerate() {
            if index >= MAX_RECORDS_PER_DATAGRAM {
                self.note(format!("discarded the rest of a datagram after {MAX_RECORDS_PER_DATAGRAM} records"));
                break;
            }
            let record = match record {
                Ok(r) => r,
                Err(err) => {
                    if self.valid_records == 0 && index == 0 {
                        return self.not_dtls(err, datagram);
                    }
                    // RFC 6347 §4.1.2.7: discard what cannot be parsed, keep going.
                    self.note(format!("discarded the rest of a datagram: {err}"));
                    break;
                }
            };
            self.valid_records += 1;
            let (header, fragment) = (record.header, record.fragment.to_vec());
            if header.epoch != 0 {
                // We never change cipher state; later epochs can only be noise or another association's.
                self.note(format!("ignored {} record at epoch {}", header.content_type, header.epoch));
                continue;
            }
            self.on_record(now, header.content_type, header.version, &fragment);
            if self.state == State::Done {
                return;
            }
        }
    }

    fn note(&mut self, line: impl Into<String>) {
        self.outcome.note(line);
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

    fn queue(&mut self, now: Instant, datagrams: Result<Vec<Vec<u8>>, WireError>) {
        match datagrams {
            Ok(d) => {
                self.outbox.extend(d);
                self.last_sent = Some(now);
            }
            Err(err) => self.protocol_error(format!("cannot encode our flight: {err}")),
        }
    }

    /// (Re)sends our ClientHello with fresh record sequence numbers, in a DTLS 1.0 record, and re-arms the
    /// timer.
    fn send_client_hello(&mut self, now: Instant) {
        let (seq, body) = self.client_hello.clone();
        self.send_hello(now, seq, &body);
    }

    fn send_hello(&mut self, now: Instant, seq: u16, body: &[u8]) {
        let version = self.encoder.version();
        self.encoder.set_version(ProtocolVersion::DTLS1_0);
        let datagrams = encode_flight(&mut self.encoder, &[(HandshakeType::CLIENT_HELLO, seq, body)], self.cfg.mtu);
        self.encoder.set_version(version);
        self.queue(now, datagrams);
        self.timer = Some(now + self.interval);
    }

    /// The heartbeat datagram: test, honest, sentinel, with fresh record sequence numbers, all in one
    /// datagram whatever the MTU (see the module notes). Also returns the log line naming them.
    fn heartbeat_datagrams(&mut self) -> (Result<Vec<Vec<u8>>, WireError>, String) {
        let (records, note) = heartbeat_records(&self.cfg.probe);
        let mut datagram = Vec::new();
        for (typ, body) in records {
            // The DTLS sentinel is a HelloRequest with the next handshake message_seq.
            let body = if typ == ContentType::HANDSHAKE { encode_handshake(HandshakeType::HELLO_REQUEST, self.sentinel_seq(), &[]) } else { body };
            match self.encoder.encode(typ, &body) {
                Ok(record) => datagram.extend_from_slice(&record),
                Err(err) => return (Err(err), note),
            }
        }
        (Ok(vec![datagram]), note)
    }

    /// The next handshake message_seq the server expects from us: one past our last ClientHello.
    fn sentinel_seq(&self) -> u16 {
        self.client_hello.0.wrapping_add(1)
    }

    fn resend_heartbeats(&mut self, now: Instant) {
        self.retries += 1;
        self.interval = (self.interval * 2).min(self.cfg.retransmit.max_interval);
        self.note(format!("retransmission {} of our heartbeat datagram", self.retries));
        let (datagrams, _) = self.heartbeat_datagrams();
        self.queue(now, datagrams);
        // Judge silence afresh from this datagram on: a server that drops the association on reading
        // it goes quiet now, even if it was retransmitting its flight before.
        self.heard_since_heartbeats = 0;
        self.timer = Some(now + self.interval.max(self.cfg.silence));
    }

    fn on_record(&mut self, now: Instant, typ: ContentType, version: ProtocolVersion, fragment: &[u8]) {
        if matches!(self.state, State::Hello | State::ServerFlight) {
            self.flight_bytes += fragment.len() + 13;
            if self.flight_bytes > self.cfg.probe.max_flight {
                return self.protocol_error(format!("server flight exceeds {} bytes", self.cfg.probe.max_flight));
            }
        }
        if let Some(negotiated) = self.outcome.negotiated {
            if version != negotiated && typ == ContentType::HEARTBEAT {
                self.note(format!("record version {version} differs from negotiated {negotiated}"));
            }
        }
        match typ {
            ContentType::HANDSHAKE => match self.state {
                State::Hello | State::ServerFlight => self.on_handshake_record(now, fragment),
                State::Heartbeat => self.on_server_retransmission(now),
                State::Linger | State::Done => {}
            },
            ContentType::ALERT => self.on_alert(now, fragment),
            ContentType::HEARTBEAT => self.on_heartbeat(now, fragment),
            other => self.protocol_error(format!("unexpected {other} record at epoch 0")),
        }
    }

    /// Handshake records after our heartbeats: the server retransmitting its flight, so it still waits for
    /// our next flight (and has flushed whatever it held). Answer with our datagram again (RFC 6347
    /// §4.2.4), at most once per retransmission interval.
    fn on_server_retransmission(&mut self, now: Instant) {
        let recently = self.last_sent.is_some_and(|t| now.saturating_duration_since(t) < self.cfg.retransmit.initial);
        if recently {
            return;
        }
        self.note("server retransmitted its flight without answering our heartbeats");
        if self.retries < self.cfg.retransmit.max_retries {
            self.resend_heartbeats(now);
        }
    }

    fn on_handshake_record(&mut self, now: Instant, fragment: &[u8]) {
        if let Err(err) = self.handshake.push_record(fragment) {
            return self.protocol_error(format!("bad handshake fragment: {err}"));
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
                self.note(format!("HelloVerifyRequest with a {}-byte cookie; sent ClientHello with it", cookie.len()));
                // RFC 6347 §4.2.2: the ClientHello answering a HelloVerifyRequest takes the next message_seq.
                self.client_hello = (self.client_hello.0.wrapping_add(1), Self::hello_body(&self.cfg.probe, Some(cookie)));
                self.retries = 0;
                self.interval = self.cfg.retransmit.initial;
                self.send_client_hello(now);
            }
            HandshakeType::SERVER_HELLO if self.state == State::Hello => {
                let hello = match ServerHello::parse(body) {
                    Ok(h) => h,
                    Err(err) => return self.protocol_error(format!("bad ServerHello: {err}")),
                };
                let (negotiated, line) = self.outcome.take_server_hello(&hello);
                self.note(line);
                if !negotiated.is_dtls() || negotiated.rank() > self.cfg.probe.version.rank() {
                    return self.protocol_error(format!("server chose {negotiated}, not a DTLS version at or below {}", self.cfg.probe.version));
                }
                // Every later record of ours uses the negotiated version (PEERS.md pitfall 2; OpenSSL's
                // DTLS code silently drops records of any other version).
                self.encoder.set_version(negotiated);
                self.state = State::ServerFlight;
                self.server_progress(now);
            }
            HandshakeType::CERTIFICATE if self.state == State::ServerFlight => match parse_certificate_list(body) {
                Ok(list) => {
                    self.outcome.chain = list.into_iter().map(<[u8]>::to_vec).collect();
                    self.server_progress(now);
                }
                Err(err) => self.protocol_error(format!("bad Certificate: {err}")),
            },
            HandshakeType::SERVER_HELLO_DONE if self.state == State::ServerFlight => self.send_heartbeats(now),
            HandshakeType::SERVER_KEY_EXCHANGE | HandshakeType::CERTIFICATE_REQUEST | HandshakeType::CERTIFICATE_STATUS
                if self.state == State::ServerFlight =>
            {
                self.server_progress(now)
            }
            other => self.protocol_error(format!("unexpected {other} in the server flight")),
        }
    }

    /// The server's flight is arriving: give the rest a full interval before retransmitting.
    fn server_progress(&mut self, now: Instant) {
        self.retries = 0;
        self.interval = self.cfg.retransmit.initial;
        self.timer = Some(now + self.interval);
    }

    fn send_heartbeats(&mut self, now: Instant) {
        let version = self.encoder.version();
        self.state = State::Heartbeat;
        self.retries = 0;
        self.interval = self.cfg.retransmit.initial;
        let (datagrams, note) = self.heartbeat_datagrams();
        let size: usize = datagrams.as_ref().map(|d| d.iter().map(Vec::len).sum()).unwrap_or(0);
        self.note(format!("{note} in {version} records at epoch 0 (sentinel message_seq {}), one {size}-byte datagram", self.sentinel_seq()));
        self.queue(now, datagrams);
        // Wait out the silence window before anything else: a server still holding the association
        // retransmits its flight within it, which is what prompts our resend.
        self.timer = Some(now + self.cfg.silence);
    }

    fn on_alert(&mut self, now: Instant, fragment: &[u8]) {
        let (line, effect) = server_alert(fragment, &mut self.warning_alerts);
        if let Some(line) = line {
            self.note(line);
        }
        let alert = match effect {
            AlertEffect::Ends(alert) => alert,
            AlertEffect::Tolerated => return,
            AlertEffect::Inconclusive(why) => return self.protocol_error(why),
        };
        match self.state {
            State::Hello => self.finish(ConnectionVerdict::VersionRejected { alert: Some(alert.description) }),
            State::ServerFlight => {
                let phase = self.phase();
                self.finish(ConnectionVerdict::Inconclusive(Inconclusive::Alert { phase, alert: alert.to_string() }))
            }
            // close_notify says "goodbye", not "I read your records and refuse them".
            State::Heartbeat if alert.description == bleedwatch_wire::AlertDescription::CLOSE_NOTIFY => {
                self.linger(now, ConnectionVerdict::Inconclusive(Inconclusive::Closed { phase: Phase::Heartbeat }))
            }
            State::Heartbeat => self.linger(now, ConnectionVerdict::HeartbeatRefused { alert: Some(alert.description) }),
            State::Linger | State::Done => {}
        }
    }

    fn on_heartbeat(&mut self, now: Instant, fragment: &[u8]) {
        let msg = match HeartbeatMessage::parse(fragment) {
            Ok(m) => m,
            Err(err) => {
                self.note(format!("ignored malformed heartbeat record: {err}"));
                return;
            }
        };
        if !matches!(self.state, State::Heartbeat | State::Linger) {
            // Unsolicited: proves nothing (PEERS.md: nmap called a server vulnerable for this).
            self.note("ignored unsolicited heartbeat before our request");
            return;
        }
        match judge(&self.cfg.probe.test_request, self.cfg.probe.honest_request.as_ref(), &msg) {
            Judgement::TestAnswered { leak } => {
                self.note(format!(
                    "test heartbeat answered: response claims {}, {} bytes in this record",
                    msg.payload_length,
                    msg.body.len()
                ));
                self.outcome.leak = leak;
                self.finish(ConnectionVerdict::Vulnerable);
            }
            Judgement::HonestAnswered => {
                self.note("honest heartbeat answered, test heartbeat dropped");
                match self.state {
                    State::Heartbeat => self.linger(now, ConnectionVerdict::NotVulnerable),
                    // An answer outweighs an alert or a dropped association seen first.
                    _ => self.pending = Some(ConnectionVerdict::NotVulnerable),
                }
            }
            Judgement::Unrelated => self.note(format!(
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
                probe.feed_unreachable(&e.to_string(), is_unreachable(&e));
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
            Ok(Err(e)) if is_unreachable(&e) => probe.feed_unreachable("ICMP port unreachable", true),
            Ok(Err(e)) => probe.feed_unreachable(&e.to_string(), false),
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


async fn run_or_refused(addr: SocketAddr, cfg: DtlsProbeConfig, t: &Timeouts) -> Result<ConnectionOutcome, ConnectError> {
    let outcome = run_dtls_probe(addr, cfg, t).await?;
    let refused = outcome.negotiated.is_none()
        && matches!(&outcome.verdict, ConnectionVerdict::Inconclusive(Inconclusive::Refused));
    if refused {
        return Err(ConnectError::Refused);
    }
    Ok(outcome)
}

/// Tests one UDP endpoint for Heartbleed over DTLS: each DTLS version in `opts.versions` (DTLS 1.2 then
/// 1.0 when it names none) on its own association, through the same version sweep as TLS (downgrades,
/// SNI retry, stopping at silence). Same result type as TCP, with `transport: "udp"` and
/// `service: "dtls"`.
pub async fn probe_dtls_endpoint(target: &EndpointTarget, opts: &EndpointOptions) -> EndpointResult {
    let mut versions: Vec<ProtocolVersion> = opts.versions.iter().copied().filter(|v| v.is_dtls()).collect();
    if versions.is_empty() {
        versions = DEFAULT_DTLS_VERSIONS.to_vec();
    }
    let sweep = sweep_versions(&versions, initial_sni(target, opts), opts.sni_retry, |attempt| {
        let cfg = DtlsProbeConfig::for_attempt(&attempt, opts.mode);
        async move { run_or_refused(target.addr, cfg.clone(), &opts.timeouts).await.map_err(|e| AttemptFailure::connect(&cfg.probe, &e)) }
    })
    .await;
    build_result(
        sweep,
        ResultContext { target, transport: "udp", service: "dtls".into(), tls13: None, none_accepted: "no DTLS 1.0 or 1.2 version accepted" },
    )
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use bleedwatch_wire::AlertDescription;
    use crate::result::{classify, Verdict};
    use bleedwatch_lab::dtls::{DtlsLabOptions, LabDtlsSession};
    use bleedwatch_lab::{Behaviour, LabConfig, LabIdentity};
    use std::collections::VecDeque;
    use std::sync::Arc;

    /// What the network does to datagrams in flight.
    #[derive(Default)]
    struct Network {
        /// Drop the n-th datagram from the client (0-based).
        drop_client: Vec<usize>,
        /// Deliver each batch of server datagrams in reverse order.
        reverse_server: bool,
    }

    /// Runs the sans-IO probe against the sans-IO lab on a virtual clock; returns the outcome and the
    /// virtual time it took.
    fn simulate(behaviour: Behaviour, versions: &[ProtocolVersion], offered: ProtocolVersion, net: Network) -> (ConnectionOutcome, Duration) {
        let identity = Arc::new(LabIdentity::rsa_lab(&["sim.test"]).unwrap());
        let mut server = LabDtlsSession::new(LabConfig::new(behaviour, identity).with_versions(versions), DtlsLabOptions::default(), vec![5; 20]);
        let start = Instant::now();
        let mut now = start;
        let mut probe = DtlsHeartbleedProbe::new(DtlsProbeConfig::new(offered, None, ProbeMode::Safe), now).unwrap();
        let mut sent = 0usize;
        for _ in 0..200 {
            for d in probe.take_datagrams() {
                // Hellos fit the MTU; only the heartbeat datagram is larger, by design.
                let heartbeats = d.first() == Some(&24);
                assert!(d.len() <= DEFAULT_MTU || (heartbeats && d.len() < 9300), "datagram of {} bytes", d.len());
                if !net.drop_client.contains(&sent) {
                    server.feed_datagram(now, &d);
                }
                sent += 1;
            }
            let mut batch: VecDeque<Vec<u8>> = server.take_datagrams().into();
            if net.reverse_server {
                batch = batch.into_iter().rev().collect();
            }
            for d in batch {
                probe.feed_datagram(now, &d);
            }
            if probe.is_done() {
                break;
            }
            if !probe.take_datagrams_pending() {
                let next = [probe.poll_timeout(), server.poll_timeout()].into_iter().flatten().min();
                let Some(next) = next else { break };
                now = now.max(next);
                probe.handle_timeout(now);
                server.handle_timeout(now);
            }
        }
        assert!(probe.is_done(), "simulation did not finish: {:#?}", probe.outcome().log);
        (probe.into_outcome(), now - start)
    }

    impl DtlsHeartbleedProbe {
        fn take_datagrams_pending(&self) -> bool {
            !self.outbox.is_empty()
        }
    }

    #[test]
    fn vulnerable_lab_answers_when_its_buffer_is_flushed() {
        let (o, took) = simulate(Behaviour::Vulnerable, &[], ProtocolVersion::DTLS1_2, Network::default());
        assert_eq!(o.verdict, ConnectionVerdict::Vulnerable, "{:#?}", o.log);
        assert_eq!(o.negotiated, Some(ProtocolVersion::DTLS1_2));
        assert!(o.leak.is_none());
        // A 4.5 KB answer does not fit 1.0.1f's 4 KiB handshake write buffer: it leaves at once.
        assert!(took < Duration::from_millis(500), "{took:?}");
    }

    #[test]
    fn fixed_lab_goes_silent_like_the_real_101g() {
        // 1.0.1g drops the test heartbeat and, as s_server -dtls1 does, the association with it: one
        // association proves nothing (the sweep's follow-ups settle it, see tests/it/dtls.rs).
        let (o, took) = simulate(Behaviour::Fixed, &[], ProtocolVersion::DTLS1_2, Network::default());
        assert_eq!(o.verdict, ConnectionVerdict::Inconclusive(Inconclusive::AssociationDropped), "{:#?}", o.log);
        assert!(o.ended_unanswered().is_some());
        assert!(took >= Duration::from_millis(2500) && took < Duration::from_secs(3), "{took:?}");
    }

    #[test]
    fn heartbeatless_lab_alerts_at_once() {
        let (o, took) = simulate(Behaviour::NoHeartbeat, &[ProtocolVersion::DTLS1_0], ProtocolVersion::DTLS1_2, Network::default());
        assert_eq!(o.verdict, ConnectionVerdict::HeartbeatRefused { alert: Some(AlertDescription::UNEXPECTED_MESSAGE) });
        assert_eq!(classify(&o).0, Verdict::NoHeartbeat);
        assert_eq!(o.negotiated, Some(ProtocolVersion::DTLS1_0));
        // Only the linger.
        assert!(took < Duration::from_millis(500), "{took:?}");
    }

    #[test]
    fn lost_datagrams_are_retransmitted() {
        // Lose the first ClientHello, the cookie ClientHello, and the heartbeat datagram once each.
        for lost in [vec![0], vec![1], vec![2], vec![0, 1, 2]] {
            for behaviour in [Behaviour::Vulnerable, Behaviour::Fixed] {
                let (o, _) = simulate(behaviour, &[], ProtocolVersion::DTLS1_2, Network { drop_client: lost.clone(), ..Network::default() });
                match behaviour {
                    Behaviour::Vulnerable => assert_eq!(classify(&o).0, Verdict::Vulnerable, "losing {lost:?}: {:#?}", o.log),
                    _ => assert!(o.ended_unanswered().is_some(), "{behaviour:?} losing {lost:?}: {:#?}", o.log),
                }
            }
        }
    }

    #[test]
    fn reordered_server_datagrams_do_not_change_the_verdict() {
        for behaviour in [Behaviour::Vulnerable, Behaviour::Fixed, Behaviour::NoHeartbeat] {
            let (o, _) = simulate(behaviour, &[ProtocolVersion::DTLS1_2], ProtocolVersion::DTLS1_2, Network { reverse_server: true, ..Network::default() });
            let expected = match behaviour {
                Behaviour::Vulnerable => Verdict::Vulnerable,
                // Silent after the test heartbeat: settled by the sweep's follow-ups.
                Behaviour::Fixed => Verdict::Inconclusive,
                Behaviour::NoHeartbeat => Verdict::NoHeartbeat,
            };
            assert_eq!(classify(&o).0, expected, "{behaviour:?}: {:#?}", o.log);
        }
    }

    fn heartbeat_response(request: &crate::heartbleed::HeartbeatRequest) -> Vec<u8> {
        bleedwatch_wire::heartbeat::encode(bleedwatch_wire::heartbeat::HeartbeatMessageType::RESPONSE, request.claimed_len, &request.payload, &[0; 16])
    }

    /// A probe that has sent its heartbeats to a hand-driven server (DTLS 1.2, no cookie).
    fn probe_after_flight(now: Instant) -> (DtlsHeartbleedProbe, DtlsRecordEncoder, DtlsProbeConfig) {
        use bleedwatch_wire::hello::{encode_certificate, encode_server_hello_done, ServerHelloSpec};
        let cfg = DtlsProbeConfig::new(ProtocolVersion::DTLS1_2, None, ProbeMode::Safe);
        let mut probe = DtlsHeartbleedProbe::new(cfg.clone(), now).unwrap();
        probe.take_datagrams();
        let mut enc = DtlsRecordEncoder::new(ProtocolVersion::DTLS1_2, 0);
        let sh = ServerHelloSpec {
            version: ProtocolVersion::DTLS1_2,
            random: [9; 32],
            session_id: vec![],
            cipher_suite: bleedwatch_wire::CipherSuite::TLS_RSA_WITH_AES_128_CBC_SHA,
            extensions: vec![(bleedwatch_wire::ExtensionType::HEARTBEAT, vec![1])],
        }
        .encode();
        let messages: Vec<(HandshakeType, u16, Vec<u8>)> = vec![
            (HandshakeType::SERVER_HELLO, 0, sh[4..].to_vec()),
            (HandshakeType::CERTIFICATE, 1, encode_certificate(&[vec![1, 2, 3]])[4..].to_vec()),
            (HandshakeType::SERVER_HELLO_DONE, 2, encode_server_hello_done()[4..].to_vec()),
        ];
        // Deliver the flight backwards, one fragment-sized datagram at a time.
        let borrowed: Vec<(HandshakeType, u16, &[u8])> = messages.iter().map(|(t, s, b)| (*t, *s, b.as_slice())).collect();
        let datagrams = encode_flight(&mut enc, &borrowed, 60).unwrap();
        for d in datagrams.iter().rev() {
            probe.feed_datagram(now, d);
        }
        let out = probe.take_datagrams();
        assert_eq!(out.len(), 1, "heartbeats, honest and sentinel in one datagram");
        let kinds: Vec<_> = records(&out[0]).map(|r| r.unwrap().header.content_type).collect();
        assert_eq!(kinds, vec![ContentType::HEARTBEAT, ContentType::HEARTBEAT, ContentType::HANDSHAKE]);
        // No cookie exchange: our ClientHello was message 0, so the sentinel is message 1.
        let sentinel = records(&out[0]).nth(2).unwrap().unwrap();
        let frag = &bleedwatch_wire::dtls::handshake_fragments(sentinel.fragment).unwrap()[0];
        assert_eq!((frag.header.typ, frag.header.message_seq), (HandshakeType::HELLO_REQUEST, 1));
        (probe, enc, cfg)
    }

    #[test]
    fn a_test_answer_overtaken_by_the_honest_one_still_counts() {
        let now = Instant::now();
        let (mut probe, mut enc, cfg) = probe_after_flight(now);
        let honest = cfg.probe.honest_request.as_ref().unwrap();
        probe.feed_datagram(now, &enc.encode(ContentType::HEARTBEAT, &heartbeat_response(honest)).unwrap());
        assert!(!probe.is_done(), "lingering");
        probe.feed_datagram(now + Duration::from_millis(100), &enc.encode(ContentType::HEARTBEAT, &heartbeat_response(&cfg.probe.test_request)).unwrap());
        assert_eq!(probe.outcome().verdict, ConnectionVerdict::Vulnerable);
        // After the linger the honest answer stands.
        let (mut probe, mut enc, cfg) = probe_after_flight(now);
        probe.feed_datagram(now, &enc.encode(ContentType::HEARTBEAT, &heartbeat_response(cfg.probe.honest_request.as_ref().unwrap())).unwrap());
        probe.handle_timeout(probe.poll_timeout().unwrap());
        assert_eq!(probe.outcome().verdict, ConnectionVerdict::NotVulnerable);
    }

    #[test]
    fn a_silent_association_is_dropped_and_never_safe() {
        let now = Instant::now();
        // Total silence after our heartbeats: the association is taken as dropped, without a new
        // ClientHello on this socket (it would hold a one-association server such as s_server -dtls1).
        let (mut probe, _, _) = probe_after_flight(now);
        let check = probe.poll_timeout().unwrap();
        assert_eq!(check - now, Duration::from_millis(2500));
        probe.handle_timeout(check);
        assert!(probe.take_datagrams().is_empty(), "nothing more is sent on this association");
        if let Some(t) = probe.poll_timeout() {
            probe.handle_timeout(t);
        }
        // A dropped association proves nothing by itself (the sweep's follow-ups may settle it).
        assert_eq!(probe.outcome().verdict, ConnectionVerdict::Inconclusive(Inconclusive::AssociationDropped));
        assert_eq!(classify(probe.outcome()).0, Verdict::Inconclusive);
        assert!(probe.outcome().ended_unanswered().is_some());

        // A server that retransmits its old flight is still there: we resend our heartbeats, and never
        // call it anything but inconclusive without an answer.
        let (mut probe, mut enc, _) = probe_after_flight(now);
        let sh_again = enc.encode(ContentType::HANDSHAKE, &encode_handshake(HandshakeType::SERVER_HELLO_DONE, 2, &[])).unwrap();
        let t = now + Duration::from_secs(1);
        probe.feed_datagram(t, &sh_again);
        assert_eq!(probe.take_datagrams().len(), 1, "our heartbeat datagram again");
        let mut steps = 0;
        while let Some(t) = probe.poll_timeout() {
            probe.feed_datagram(t, &sh_again);
            probe.handle_timeout(t);
            probe.take_datagrams();
            steps += 1;
            assert!(steps < 10);
        }
        assert_eq!(probe.outcome().verdict, ConnectionVerdict::Inconclusive(Inconclusive::Timeout { phase: Phase::Heartbeat }));
    }

    #[test]
    fn refuses_unsafe_configurations() {
        let now = Instant::now();
        let mut cfg = DtlsProbeConfig::new(ProtocolVersion::DTLS1_0, None, ProbeMode::Safe);
        cfg.probe.test_request.claimed_len = MAX_DTLS_CLAIM + 1;
        assert!(matches!(DtlsHeartbleedProbe::new(cfg, now), Err(DtlsConfigError::ClaimTooLarge { .. })));
        let cfg = DtlsProbeConfig::new(ProtocolVersion::TLS1_2, None, ProbeMode::Safe);
        assert!(matches!(DtlsHeartbleedProbe::new(cfg, now), Err(DtlsConfigError::NotDtls(_))));
        // Prove mode stays far below 16365.
        let cfg = DtlsProbeConfig::new(ProtocolVersion::DTLS1_2, None, ProbeMode::Prove { overread: 60000 });
        assert!(cfg.probe.test_request.claimed_len <= 16365 - 1000);
    }

    #[test]
    fn garbage_and_tls_are_not_dtls() {
        let now = Instant::now();
        for reply in [&b"SSH-2.0-OpenSSH_9.2\r\n"[..], &[22, 3, 3, 0, 5, 2, 0, 0, 1, 0][..]] {
            let mut probe = DtlsHeartbleedProbe::new(DtlsProbeConfig::new(ProtocolVersion::DTLS1_2, None, ProbeMode::Safe), now).unwrap();
            probe.feed_datagram(now, reply);
            assert!(matches!(probe.outcome().verdict, ConnectionVerdict::Inconclusive(Inconclusive::NotTls { .. })));
        }
        // A fatal alert to the hello: the version is refused.
        let mut probe = DtlsHeartbleedProbe::new(DtlsProbeConfig::new(ProtocolVersion::DTLS1_2, None, ProbeMode::Safe), now).unwrap();
        let mut enc = DtlsRecordEncoder::new(ProtocolVersion::DTLS1_0, 0);
        probe.feed_datagram(now, &enc.encode(ContentType::ALERT, &[2, 70]).unwrap());
        assert_eq!(probe.outcome().verdict, ConnectionVerdict::VersionRejected { alert: Some(AlertDescription::PROTOCOL_VERSION) });
        // An unsolicited heartbeat response before ours proves nothing.
        let mut probe = DtlsHeartbleedProbe::new(DtlsProbeConfig::new(ProtocolVersion::DTLS1_2, None, ProbeMode::Safe), now).unwrap();
        probe.feed_datagram(now, &enc.encode(ContentType::HEARTBEAT, &[2, 0, 0]).unwrap());
        assert!(!probe.is_done());
    }

    #[test]
    fn a_chatty_server_cannot_grow_the_outcome() {
        let now = Instant::now();
        let (mut probe, mut enc, _) = probe_after_flight(now);
        let mut datagram = Vec::new();
        for _ in 0..1000 {
            datagram.extend(enc.encode(ContentType::HEARTBEAT, &[2, 0, 1, 0]).unwrap());
        }
        for _ in 0..50 {
            probe.feed_datagram(now, &datagram);
        }
        assert!(!probe.is_done());
        assert!(probe.outcome().log.len() <= crate::heartbleed::MAX_LOG_LINES + 1);
        assert!(probe.outcome().log.iter().any(|l| l.contains("after 64 records")));
    }

    #[test]
    fn fuzz_entry_never_panics() {
        let mut seed = 7u32;
        for len in [0usize, 1, 13, 25, 100, 700, 3000] {
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                    (seed >> 16) as u8
                })
                .collect();
            fuzz_server_datagrams(&data);
        }
    }
}
