//! The lab server over DTLS 1.0 / 1.2: a sans-IO session per peer that behaves on the wire like
//! `openssl s_server -dtls1` of OpenSSL 1.0.1f (vulnerable), 1.0.1g (fixed) or 1.0.1f built without
//! heartbeats, with the cookie exchange on, and a tokio UDP shell that keeps one session per source
//! address (bounded in number, expired when idle).
//!
//! DTLS 1.2 did not exist in 1.0.1; the lab's DTLS 1.2 is what 1.0.2-beta1 (also vulnerable) would do,
//! with the same heartbeat code. What the lab reproduces from 1.0.1f's DTLS code (`d1_srvr.c`,
//! `d1_pkt.c`, `d1_both.c`), checked against the real capture in the tests below:
//! - a ClientHello without a cookie gets a HelloVerifyRequest (message_seq 0, record sequence 0, version
//!   DTLS 1.0, a 20-byte cookie); one with a wrong cookie gets a fatal handshake_failure;
//! - the flight continues both sequence spaces: ServerHello is message 1 in record 1; every message is
//!   its own record, fragmented to the MTU, written through OpenSSL's 4 KiB `BIO_f_buffer`, so the
//!   whole flight leaves as one datagram at the end;
//! - DTLS 1.0 ignores the elliptic-curve extensions (`s->version != DTLS1_VERSION` in `t1_lib.c`):
//!   no ec_point_formats in the ServerHello, P-256 regardless of supported_groups;
//! - records of another version (after the ClientHello), of another epoch, or replayed are dropped
//!   silently; handshake messages are reassembled and taken in message_seq order;
//! - a heartbeat is answered with `3 + payload + 16` bytes in one record (over-read bytes are canary
//!   bytes). The record goes through the 4 KiB buffer: a response record of at least the buffer's size
//!   is written at once as its own datagram (the captures' 4128- and 4532-byte datagrams), a shorter one
//!   stays in the buffer;
//! - after a heartbeat record (answered or dropped) `dtls1_read_bytes` returns -1 to the application
//!   without a socket error, which `s_server -dtls1` takes as a failed `SSL_accept`: it drops the
//!   association at once. What waited in the buffer is lost (`SSL_free` does not flush), the rest of
//!   the datagram is never read, no flight is retransmitted, and the peer's next ClientHello starts a new
//!   association (HelloVerifyRequest again). So, as in the real captures, a heartbeat whose answer is
//!   under ~4 KiB gets silence (`bleedwatch-dtls-probe-512-…`, `hbprobe-unpadded-4000-…`), a 4500-byte
//!   one its echo (`hbprobe-unpadded-4500-…`);
//! - the next handshake message after ServerHelloDone must be a ClientKeyExchange: anything else (our
//!   probe's HelloRequest sentinel) draws a fatal unexpected_message alert, and a ClientKeyExchange a
//!   fatal handshake_failure (the lab never completes a DTLS handshake);
//! - without heartbeat code, a heartbeat record is an unexpected record: fatal unexpected_message (DTLS
//!   never ignores unknown record types, unlike TLS 1.0/1.1).
//!
//! Where 1.0.1f's `dtls1_write_bytes` would hit `OPENSSL_assert(len <= 16384)` and abort the whole
//! server (a heartbeat claiming more than 16365 bytes), the lab refuses the request, drops it and logs a
//! [`DtlsLabEvent::RefusedHeartbeat`].

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bleedwatch_wire::alert::Alert;
use bleedwatch_wire::dtls::{
    encode_handshake_fragment, encode_hello_verify_request, handshake_fragments, is_rc4, DtlsHandshakeReassembler, DtlsRecordEncoder,
    DtlsRecordHeader, FragmentDisposition, ReassemblyLimits, HANDSHAKE_HEADER_LEN, MAX_DATAGRAM_LEN, RECORD_HEADER_LEN,
};
use bleedwatch_wire::handshake::ClientHello;
use bleedwatch_wire::heartbeat::HeartbeatMessage;
use bleedwatch_wire::hello::encode_certificate;
use bleedwatch_wire::types::KeyExchange;
use bleedwatch_wire::{AlertDescription, CipherSuite, ContentType, ExtensionType, HandshakeType, ProtocolVersion};
use rand::RngCore;
use sha1::{Digest, Sha1};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

use crate::kx::{server_key_exchange, NAMED_CURVE_P256};
use crate::session::{heartbeat_action, Behaviour, HeartbeatAction, LabConfig, LabEvent};
use crate::suites;

/// OpenSSL 1.0.1's handshake write buffer (`BIO_f_buffer`).
const WRITE_BUFFER: usize = 4096;
/// The largest claim 1.0.1f's DTLS code survives: `3 + claim + 16` must fit one 16384-byte record.
pub const MAX_SURVIVABLE_CLAIM: u16 = 16365;
/// 1.0.1f's initial retransmission timeout (`dtls1_start_timer`), doubled up to 60 s.
const INITIAL_TIMEOUT: Duration = Duration::from_secs(1);
const MAX_TIMEOUT: Duration = Duration::from_secs(60);
/// `DTLS1_TMO_ALERT_COUNT`: after this many timeouts the handshake fails.
const MAX_TIMEOUTS: u32 = 12;
/// Records per datagram we look at before giving up on a datagram.
const MAX_RECORDS_PER_DATAGRAM: usize = 64;
/// Datagrams queued (read from the socket but not processed) per session.
const MAX_QUEUED_DATAGRAMS: usize = 32;

/// What the DTLS lab needs beyond [`LabConfig`].
#[derive(Debug, Clone)]
pub struct DtlsLabOptions {
    /// Largest datagram the server writes (OpenSSL's `d1->mtu`).
    pub mtu: usize,
    /// Sessions held at once; datagrams from further peers are dropped (and logged).
    pub max_sessions: usize,
    /// A session with no datagram for this long is forgotten.
    pub idle: Duration,
    /// Events kept by the shell (oldest dropped first).
    pub max_events: usize,
    /// One association at a time on the one socket, as `s_server -dtls1` has: every datagram, whoever
    /// sent it, goes to the current association, and answers go to the last sender (`BIO_dgram`). So a
    /// peer that starts a cookie exchange and walks away holds the server: the next peer's ClientHello
    /// is a stale message to that association (1.0.1 sets no timer there to end it).
    pub one_association: bool,
}

impl Default for DtlsLabOptions {
    fn default() -> Self {
        DtlsLabOptions { mtu: 1400, max_sessions: 64, idle: Duration::from_secs(30), max_events: 10_000, one_association: false }
    }
}

/// Something a DTLS client did (no payload bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DtlsLabEvent {
    /// The same events as over TCP: ClientHello, heartbeat, alert.
    Lab(LabEvent),
    /// A ClientHello without a cookie was answered with a HelloVerifyRequest.
    HelloVerifyRequest,
    /// A heartbeat that would have crashed OpenSSL 1.0.1f (claim above 16365), dropped instead.
    RefusedHeartbeat { claimed: u16, record_len: usize },
    /// The retransmission timer ran out and the flight was sent again.
    Retransmitted { timeouts: u32 },
    /// A heartbeat ended the association, as it does in `s_server -dtls1`: what waited in the write
    /// buffer was lost, and the peer's next ClientHello starts over.
    AssociationDropped,
    /// A datagram from a new peer was dropped because the session table is full.
    SessionLimit,
}

/// `BIO_f_buffer` in front of a datagram socket: every write that reaches the socket is one datagram.
#[derive(Debug, Default)]
struct DatagramWriteBuffer {
    buffer: Vec<u8>,
    datagrams: Vec<Vec<u8>>,
}

impl DatagramWriteBuffer {
    /// `buffer_write`: keep it if it fits, else fill the buffer and flush it (a datagram that may end in
    /// part of a record, as on the real server), and write what is left straight through when it is at
    /// least a buffer long.
    fn write(&mut self, mut data: &[u8]) {
        let free = WRITE_BUFFER - self.buffer.len();
        if free >= data.len() {
            self.buffer.extend_from_slice(data);
            return;
        }
        if !self.buffer.is_empty() {
            let (head, rest) = data.split_at(free);
            self.buffer.extend_from_slice(head);
            data = rest;
            self.flush();
        }
        if data.len() >= WRITE_BUFFER {
            self.datagrams.push(data.to_vec());
            return;
        }
        self.buffer.extend_from_slice(data);
    }

    fn flush(&mut self) {
        if !self.buffer.is_empty() {
            self.datagrams.push(std::mem::take(&mut self.buffer));
        }
    }

    /// `BIO_free` of the buffer: what waited is lost.
    fn discard(&mut self) {
        self.buffer.clear();
    }

    fn pending(&self) -> usize {
        self.buffer.len()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    AwaitClientHello,
    AwaitClientKeyExchange,
    Closed,
}

/// DTLS replay window (`dtls1_record_replay_check`): the highest sequence seen and a 64-record bitmap.
#[derive(Debug, Default)]
struct ReplayWindow {
    max: Option<u64>,
    map: u64,
}

impl ReplayWindow {
    fn is_replay(&self, seq: u64) -> bool {
        match self.max {
            None => false,
            Some(max) if seq > max => false,
            Some(max) => max - seq >= 64 || self.map & (1u64 << (max - seq)) != 0,
        }
    }

    fn mark(&mut self, seq: u64) {
        match self.max {
            Some(max) if seq <= max => {
                if max - seq < 64 {
                    self.map |= 1u64 << (max - seq);
                }
            }
            Some(max) => {
                let shift = seq - max;
                self.map = if shift < 64 { (self.map << shift) | 1 } else { 1 };
                self.max = Some(seq);
            }
            None => {
                self.map = 1;
                self.max = Some(seq);
            }
        }
    }
}

/// One DTLS association of the lab server, sans-IO. Feed it the peer's datagrams and timer expiries;
/// send the datagrams it queues.
pub struct LabDtlsSession {
    cfg: LabConfig,
    opts: DtlsLabOptions,
    versions: Vec<ProtocolVersion>,
    cookie: Vec<u8>,
    state: State,
    version: ProtocolVersion,
    encoder: DtlsRecordEncoder,
    next_write_seq: u16,
    reassembler: DtlsHandshakeReassembler,
    replay: ReplayWindow,
    out: DatagramWriteBuffer,
    /// Datagrams received but not yet read (still "in the socket").
    queued: VecDeque<Vec<u8>>,
    /// The rest of the datagram being read (OpenSSL's `rbuf`).
    current: Vec<u8>,
    flight: Vec<(HandshakeType, u16, Vec<u8>)>,
    timer: Option<Instant>,
    timeout: Duration,
    timeouts: u32,
    events: Vec<DtlsLabEvent>,
}

impl LabDtlsSession {
    /// A session whose HelloVerifyRequest carries `cookie` (the shell derives it from the peer's
    /// address, as `s_server` does). The DTLS versions accepted are those in `cfg.versions`, or DTLS 1.2
    /// and 1.0 when it names none.
    pub fn new(cfg: LabConfig, opts: DtlsLabOptions, cookie: Vec<u8>) -> Self {
        let mut versions: Vec<ProtocolVersion> = cfg.versions.iter().copied().filter(|v| v.is_dtls()).collect();
        if versions.is_empty() {
            versions = vec![ProtocolVersion::DTLS1_2, ProtocolVersion::DTLS1_0];
        }
        LabDtlsSession {
            cfg,
            opts,
            versions,
            cookie,
            state: State::AwaitClientHello,
            version: ProtocolVersion::DTLS1_0,
            encoder: DtlsRecordEncoder::new(ProtocolVersion::DTLS1_0, 0),
            next_write_seq: 0,
            reassembler: DtlsHandshakeReassembler::new(0, ReassemblyLimits::default()),
            replay: ReplayWindow::default(),
            out: DatagramWriteBuffer::default(),
            queued: VecDeque::new(),
            current: Vec::new(),
            flight: Vec::new(),
            timer: None,
            timeout: INITIAL_TIMEOUT,
            timeouts: 0,
            events: Vec::new(),
        }
    }

    /// Datagrams that reached the network, in order.
    pub fn take_datagrams(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.out.datagrams)
    }

    pub fn take_events(&mut self) -> Vec<DtlsLabEvent> {
        std::mem::take(&mut self.events)
    }

    /// True once the server gave up on the association; the shell forgets it.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// When the retransmission timer runs out.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.state == State::Closed {
            None
        } else {
            self.timer
        }
    }

    /// One datagram from the peer: it waits behind earlier ones, then everything readable is processed.
    pub fn feed_datagram(&mut self, now: Instant, datagram: &[u8]) {
        if self.state == State::Closed || datagram.len() > MAX_DATAGRAM_LEN {
            return;
        }
        if self.queued.len() >= MAX_QUEUED_DATAGRAMS {
            // A full socket buffer drops datagrams.
            return;
        }
        self.queued.push_back(datagram.to_vec());
        self.read(now);
    }

    /// `dtls1_handle_timeout`: when the timer ran out, retransmit the flight (each message flushed on its
    /// own, the first together with anything waiting in the buffer) and double the timeout.
    pub fn handle_timeout(&mut self, now: Instant) {
        let expired = matches!(self.timer, Some(t) if now >= t);
        if self.state != State::AwaitClientKeyExchange || !expired {
            return;
        }
        self.timeouts += 1;
        if self.timeouts > MAX_TIMEOUTS {
            self.timer = None;
            self.state = State::Closed;
            return;
        }
        self.timeout = (self.timeout * 2).min(MAX_TIMEOUT);
        self.timer = Some(now + self.timeout);
        for (typ, seq, body) in self.flight.clone() {
            self.write_handshake(typ, seq, &body);
            self.out.flush();
        }
        self.events.push(DtlsLabEvent::Retransmitted { timeouts: self.timeouts });
    }

    /// Reads records the way `dtls1_get_record` / `dtls1_read_bytes` do: one datagram at a time, record
    /// by record, until the association ends.
    fn read(&mut self, now: Instant) {
        let mut records_in_datagram = 0;
        loop {
            if self.state == State::Closed {
                return;
            }
            if self.current.is_empty() {
                let Some(next) = self.queued.pop_front() else { return };
                self.current = next;
                records_in_datagram = 0;
                continue;
            }
            records_in_datagram += 1;
            let Some((header, fragment)) = self.next_record(records_in_datagram) else { continue };
            self.on_record(now, header, &fragment);
        }
    }

    /// Takes the next record off the current datagram; a malformed one drops the rest of the datagram.
    fn next_record(&mut self, index: usize) -> Option<(DtlsRecordHeader, Vec<u8>)> {
        let parsed = DtlsRecordHeader::parse(&self.current).ok().and_then(|header| {
            let end = RECORD_HEADER_LEN + header.length as usize;
            self.current.get(RECORD_HEADER_LEN..end).map(|fragment| (header, fragment.to_vec(), end))
        });
        match parsed {
            Some((header, fragment, end)) if index <= MAX_RECORDS_PER_DATAGRAM => {
                self.current.drain(..end);
                Some((header, fragment))
            }
            _ => {
                self.current.clear();
                None
            }
        }
    }

    /// Processes one record.
    fn on_record(&mut self, now: Instant, header: DtlsRecordHeader, fragment: &[u8]) {
        // dtls1_get_record's silent drops: another version once one is set, another epoch, replays,
        // empty records.
        if self.state != State::AwaitClientHello && header.version != self.version {
            return;
        }
        if header.epoch != 0 || self.replay.is_replay(header.sequence) || fragment.is_empty() {
            return;
        }
        self.replay.mark(header.sequence);
        match header.content_type {
            ContentType::HANDSHAKE => self.on_handshake_record(now, fragment),
            ContentType::HEARTBEAT => self.on_heartbeat(fragment),
            ContentType::ALERT => {
                if let Ok(alert) = Alert::parse(fragment) {
                    self.events.push(DtlsLabEvent::Lab(LabEvent::Alert { sent: false, alert: alert.to_string() }));
                    if alert.is_fatal() || alert.description == AlertDescription::CLOSE_NOTIFY {
                        self.state = State::Closed;
                    }
                }
            }
            // A ChangeCipherSpec before the handshake allows one is dropped (`change_cipher_spec_ok`).
            ContentType::CHANGE_CIPHER_SPEC => {}
            _ => self.fatal(AlertDescription::UNEXPECTED_MESSAGE),
        }
    }

    /// `s_server -dtls1` after `SSL_accept` returned without a socket error: the association is freed
    /// without a flush or an alert, and the buffered bytes never reach the wire.
    fn drop_association(&mut self) {
        self.out.discard();
        self.current.clear();
        self.state = State::Closed;
        self.timer = None;
        self.events.push(DtlsLabEvent::AssociationDropped);
    }

    fn on_handshake_record(&mut self, now: Instant, fragment: &[u8]) {
        let Ok(fragments) = handshake_fragments(fragment) else {
            return self.fatal(AlertDescription::ILLEGAL_PARAMETER);
        };
        for f in &fragments {
            match self.reassembler.push(f) {
                Ok(FragmentDisposition::Accepted | FragmentDisposition::Stale | FragmentDisposition::TooFarAhead) => {}
                Err(_) => return self.fatal(AlertDescription::ILLEGAL_PARAMETER),
            }
        }
        while self.state != State::Closed {
            let Some(message) = self.reassembler.next_message() else { return };
            match (self.state, message.typ) {
                (State::AwaitClientHello, HandshakeType::CLIENT_HELLO) => self.on_client_hello(now, &message.body),
                (State::AwaitClientHello, _) => return self.fatal(AlertDescription::UNEXPECTED_MESSAGE),
                // The lab cannot finish a handshake; say so the way a failing server does.
                (State::AwaitClientKeyExchange, HandshakeType::CLIENT_KEY_EXCHANGE) => return self.fatal(AlertDescription::HANDSHAKE_FAILURE),
                // ssl3_check_client_hello reads any message, then ssl3_get_client_key_exchange finds the
                // reused message is not the one it wants.
                (State::AwaitClientKeyExchange, _) => return self.fatal(AlertDescription::UNEXPECTED_MESSAGE),
                (State::Closed, _) => return,
            }
        }
    }

    fn choose_version(&self, client: ProtocolVersion) -> Option<ProtocolVersion> {
        if !client.is_dtls() {
            return None;
        }
        self.versions.iter().copied().filter(|v| v.rank() <= client.rank()).max_by_key(|v| v.rank())
    }

    fn on_client_hello(&mut self, now: Instant, body: &[u8]) {
        let Ok(hello) = ClientHello::parse(body) else {
            return self.fatal(AlertDescription::DECODE_ERROR);
        };
        match hello.cookie {
            None | Some([]) => return self.send_hello_verify_request(),
            Some(cookie) if cookie != self.cookie.as_slice() => return self.fatal(AlertDescription::HANDSHAKE_FAILURE),
            Some(_) => {}
        }
        let negotiated = self.choose_version(hello.version);
        self.events.push(DtlsLabEvent::Lab(LabEvent::ClientHello {
            version: hello.version,
            negotiated,
            offers_heartbeat: hello.heartbeat_mode().is_some(),
            server_name: hello.server_name().map(str::to_owned),
        }));
        let Some(version) = negotiated else {
            return self.fatal(AlertDescription::PROTOCOL_VERSION);
        };
        self.version = version;
        self.encoder.set_version(version);
        let dtls12 = version == ProtocolVersion::DTLS1_2;
        // 1.0.1f ignores supported_groups and ec_point_formats for DTLS 1.0 and uses s_server's P-256.
        let ecdhe_ok = !dtls12
            || match hello.extension(ExtensionType::SUPPORTED_GROUPS) {
                None => true,
                Some(data) => data.get(2..).is_some_and(|list| list.chunks_exact(2).any(|c| u16::from_be_bytes([c[0], c[1]]) == NAMED_CURVE_P256)),
            };
        // Stream ciphers are not allowed in DTLS.
        let offered: Vec<CipherSuite> = hello.cipher_suites.iter().copied().filter(|s| !is_rc4(*s)).collect();
        let identity = self.cfg.identity.clone();
        let Some((suite, kx)) = suites::choose(&offered, identity.is_rsa(), dtls12, ecdhe_ok) else {
            return self.fatal(AlertDescription::HANDSHAKE_FAILURE);
        };

        // DTLS 1.0 in 1.0.1f sends no EC extension.
        let spec = crate::session::openssl_server_hello(&hello, version, suite, kx, self.cfg.behaviour, dtls12);
        let random = spec.random;
        let server_hello = spec.encode();
        let mut flight = vec![(HandshakeType::SERVER_HELLO, without_tls_header(&server_hello))];
        flight.push((HandshakeType::CERTIFICATE, without_tls_header(&encode_certificate(&identity.chain))));
        if kx != KeyExchange::Rsa {
            match server_key_exchange(kx, &identity.key, dtls12, hello.random, &random) {
                Ok((ske, _ephemeral)) => flight.push((HandshakeType::SERVER_KEY_EXCHANGE, ske)),
                Err(_) => return self.fatal(AlertDescription::INTERNAL_ERROR),
            }
        }
        flight.push((HandshakeType::SERVER_HELLO_DONE, Vec::new()));
        self.flight.clear();
        for (typ, body) in flight {
            let seq = self.next_write_seq;
            self.next_write_seq = self.next_write_seq.wrapping_add(1);
            self.write_handshake(typ, seq, &body);
            self.flight.push((typ, seq, body));
        }
        self.out.flush(); // SSL3_ST_SW_FLUSH
        self.state = State::AwaitClientKeyExchange;
        self.timeout = INITIAL_TIMEOUT;
        self.timer = Some(now + self.timeout);
    }

    fn send_hello_verify_request(&mut self) {
        let seq = self.next_write_seq;
        self.next_write_seq = self.next_write_seq.wrapping_add(1);
        // RFC 6347 §4.2.1: DTLS 1.0 in the HelloVerifyRequest whatever will be negotiated.
        let body = encode_hello_verify_request(ProtocolVersion::DTLS1_0, &self.cookie);
        self.write_handshake(HandshakeType::HELLO_VERIFY_REQUEST, seq, &body);
        self.out.flush();
        self.events.push(DtlsLabEvent::HelloVerifyRequest);
    }

    /// `dtls1_do_write`: fragments sized so that the buffered datagram stays within the MTU, one record
    /// each, flushing first when less than a header's worth of room is left.
    fn write_handshake(&mut self, typ: HandshakeType, seq: u16, body: &[u8]) {
        let mtu = self.opts.mtu.max(RECORD_HEADER_LEN + HANDSHAKE_HEADER_LEN + 1);
        let mut offset = 0usize;
        loop {
            let mut room = mtu.saturating_sub(self.out.pending() + RECORD_HEADER_LEN);
            if room <= HANDSHAKE_HEADER_LEN {
                self.out.flush();
                room = mtu - RECORD_HEADER_LEN;
            }
            let take = (room - HANDSHAKE_HEADER_LEN).min(body.len() - offset);
            let fragment = encode_handshake_fragment(typ, seq, body, offset, take);
            self.write_record(ContentType::HANDSHAKE, &fragment);
            offset += take;
            if offset >= body.len() {
                return;
            }
        }
    }

    fn write_record(&mut self, typ: ContentType, fragment: &[u8]) {
        if let Ok(record) = self.encoder.encode(typ, fragment) {
            self.out.write(&record);
        }
    }

    /// `ssl3_send_alert` + `dtls1_dispatch_alert`: a fatal alert is flushed at once, then the server gives
    /// up on the association.
    fn fatal(&mut self, description: AlertDescription) {
        let alert = Alert::fatal(description);
        self.write_record(ContentType::ALERT, &alert.encode());
        self.out.flush();
        self.events.push(DtlsLabEvent::Lab(LabEvent::Alert { sent: true, alert: alert.to_string() }));
        self.state = State::Closed;
        self.timer = None;
    }

    fn on_heartbeat(&mut self, fragment: &[u8]) {
        if self.cfg.behaviour == Behaviour::Vulnerable {
            if let Ok(msg) = HeartbeatMessage::parse(fragment) {
                if msg.payload_length > MAX_SURVIVABLE_CLAIM {
                    // The real 1.0.1f aborts here, taking every association with it; the lab refuses,
                    // says so, and ends this one.
                    self.events.push(DtlsLabEvent::RefusedHeartbeat { claimed: msg.payload_length, record_len: fragment.len() });
                    return self.drop_association();
                }
            }
        }
        let (action, event) = heartbeat_action(self.cfg.behaviour, self.version, fragment);
        let mut flushed = false;
        match action {
            HeartbeatAction::Respond(response) => {
                let before = self.out.datagrams.len();
                self.write_record(ContentType::HEARTBEAT, &response);
                flushed = self.out.datagrams.len() > before;
            }
            HeartbeatAction::Drop | HeartbeatAction::Ignore => {}
            // d1_pkt.c: DTLS has no "ignore unknown record types" rule.
            HeartbeatAction::Alert => self.fatal(AlertDescription::UNEXPECTED_MESSAGE),
        }
        if let Some(mut event) = event {
            if let LabEvent::Heartbeat { flushed: f, .. } = &mut event {
                *f = flushed;
            }
            self.events.push(DtlsLabEvent::Lab(event));
        }
        if self.state != State::Closed {
            self.drop_association();
        }
    }
}

/// A TLS-framed handshake message (4-byte header) as its body.
fn without_tls_header(message: &[u8]) -> Vec<u8> {
    message.get(4..).unwrap_or_default().to_vec()
}

/// The cookie for `peer`: SHA-1 over a per-server secret and the peer's address, 20 bytes like
/// `s_server`'s HMAC-SHA1 cookie.
fn cookie_for(secret: &[u8; 32], peer: &SocketAddr) -> Vec<u8> {
    let mut h = Sha1::new();
    h.update(secret);
    h.update(peer.to_string().as_bytes());
    h.finalize().to_vec()
}

/// Events seen by a DTLS lab server, with the peer's address.
pub type DtlsEventLog = Arc<Mutex<VecDeque<(SocketAddr, DtlsLabEvent)>>>;

pub struct LabDtlsServer;

/// A running DTLS lab server; dropping it stops it.
pub struct LabDtlsServerHandle {
    addr: SocketAddr,
    task: JoinHandle<()>,
    events: DtlsEventLog,
    sessions: Arc<Mutex<usize>>,
}

impl LabDtlsServer {
    /// A DTLS lab server on `addr` with the default [`DtlsLabOptions`].
    pub async fn bind(addr: SocketAddr, cfg: LabConfig) -> std::io::Result<LabDtlsServerHandle> {
        LabDtlsServer::bind_with(addr, cfg, DtlsLabOptions::default()).await
    }

    pub async fn bind_with(addr: SocketAddr, cfg: LabConfig, opts: DtlsLabOptions) -> std::io::Result<LabDtlsServerHandle> {
        let socket = UdpSocket::bind(addr).await?;
        let addr = socket.local_addr()?;
        let events: DtlsEventLog = Arc::default();
        let sessions = Arc::new(Mutex::new(0));
        let task = tokio::spawn(serve(socket, cfg, opts, events.clone(), sessions.clone()));
        Ok(LabDtlsServerHandle { addr, task, events, sessions })
    }
}

impl LabDtlsServerHandle {
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Everything clients did so far (the most recent `max_events`).
    pub fn events(&self) -> Vec<(SocketAddr, DtlsLabEvent)> {
        self.events.lock().map(|e| e.iter().cloned().collect()).unwrap_or_default()
    }

    /// Sessions currently held.
    pub fn session_count(&self) -> usize {
        self.sessions.lock().map(|n| *n).unwrap_or(0)
    }

    pub fn stop(self) {
        self.task.abort();
    }
}

impl Drop for LabDtlsServerHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Peer {
    session: LabDtlsSession,
    last_seen: Instant,
    /// Where answers go: the peer itself, or with one association, whoever sent last.
    reply_to: SocketAddr,
}

fn record_events(log: &DtlsEventLog, max: usize, peer: SocketAddr, events: Vec<DtlsLabEvent>) {
    if let Ok(mut l) = log.lock() {
        for e in events {
            if l.len() >= max {
                l.pop_front();
            }
            l.push_back((peer, e));
        }
    }
}

async fn serve(socket: UdpSocket, cfg: LabConfig, opts: DtlsLabOptions, log: DtlsEventLog, count: Arc<Mutex<usize>>) {
    let mut secret = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut secret);
    let mut peers: HashMap<SocketAddr, Peer> = HashMap::new();
    let mut buf = vec![0u8; MAX_DATAGRAM_LEN + 1];
    loop {
        let now = Instant::now();
        let next_timer = peers.values().filter_map(|p| p.session.poll_timeout()).min();
        let next_expiry = peers.values().map(|p| p.last_seen + opts.idle).min();
        let wake = [next_timer, next_expiry].into_iter().flatten().min().unwrap_or(now + opts.idle);
        tokio::select! {
            received = socket.recv_from(&mut buf) => {
                let Ok((n, sender)) = received else { continue };
                let now = Instant::now();
                // With one association, the current one (whoever it belongs to) gets every datagram.
                let key = if opts.one_association { peers.keys().next().copied().unwrap_or(sender) } else { sender };
                if !peers.contains_key(&key) {
                    if peers.len() >= opts.max_sessions {
                        record_events(&log, opts.max_events, sender, vec![DtlsLabEvent::SessionLimit]);
                        continue;
                    }
                    let session = LabDtlsSession::new(cfg.clone(), opts.clone(), cookie_for(&secret, &sender));
                    peers.insert(key, Peer { session, last_seen: now, reply_to: sender });
                }
                if let Some(p) = peers.get_mut(&key) {
                    p.last_seen = now;
                    p.reply_to = sender;
                    p.session.feed_datagram(now, buf.get(..n).unwrap_or_default());
                }
            }
            _ = tokio::time::sleep_until(tokio::time::Instant::from_std(wake)) => {
                let now = Instant::now();
                for p in peers.values_mut() {
                    p.session.handle_timeout(now);
                }
            }
        }
        let now = Instant::now();
        for p in peers.values_mut() {
            for datagram in p.session.take_datagrams() {
                let _ = socket.send_to(&datagram, p.reply_to).await;
            }
            record_events(&log, opts.max_events, p.reply_to, p.session.take_events());
        }
        // 1.0.1f's s_server starts over after a failed association; the next ClientHello from the same
        // address is a new session.
        peers.retain(|_, p| !p.session.is_closed() && now.saturating_duration_since(p.last_seen) < opts.idle);
        if let Ok(mut c) = count.lock() {
            *c = peers.len();
        }
    }
}

/// Fuzz entry point: arbitrary client datagrams (cut from `data`) into each lab behaviour.
pub fn fuzz_client_datagrams(data: &[u8], identity: Arc<crate::LabIdentity>) {
    let now = Instant::now();
    for behaviour in [Behaviour::Vulnerable, Behaviour::Fixed, Behaviour::NoHeartbeat] {
        let mut s = LabDtlsSession::new(LabConfig::new(behaviour, identity.clone()), DtlsLabOptions::default(), vec![1; 20]);
        for piece in data.chunks(data.first().map(|b| *b as usize + 1).unwrap_or(1)) {
            s.feed_datagram(now, piece);
            let _ = s.take_datagrams();
        }
        s.handle_timeout(now + Duration::from_secs(2));
        let _ = s.take_events();
    }
}

/// Reads a datagram transcript as kept in `tests/data/*.datagrams` (see the README there): one line
/// per datagram in capture order, `c2s HEX` or `s2c HEX`. Returns (from the client?, bytes).
pub fn parse_datagram_transcript(text: &str) -> Result<Vec<(bool, Vec<u8>)>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(n, line)| {
            let (dir, hex) = line.split_once(' ').ok_or_else(|| format!("line {}: expected `c2s HEX` or `s2c HEX`", n + 1))?;
            let from_client = match dir {
                "c2s" => true,
                "s2c" => false,
                other => return Err(format!("line {}: unknown direction {other:?}", n + 1)),
            };
            let bytes = hex::decode(hex.trim()).map_err(|e| format!("line {}: {e}", n + 1))?;
            Ok((from_client, bytes))
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::identity::LAB_RSA_KEY_A;
    use crate::{LabIdentity, CANARY};
    use bleedwatch_wire::dtls::{encode_handshake, records, DtlsMessage};
    use bleedwatch_wire::handshake::{parse_certificate_list, parse_hello_verify_request, ServerHello};
    use bleedwatch_wire::heartbeat::HeartbeatMessageType;

    /// The recorded datagrams of the real 1.0.1f DTLS association: (from the client?, bytes).
    fn recorded() -> Vec<(bool, Vec<u8>)> {
        let path = format!("{}/tests/data/hbprobe-101f-dtls1.datagrams", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        super::parse_datagram_transcript(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// What a record looks like without what is random: header fields, and per handshake fragment its
    /// header; for a ServerHello the fields that are not random; for heartbeats the claim.
    #[derive(Debug, PartialEq, Eq)]
    enum Shape {
        Record { typ: ContentType, version: ProtocolVersion, epoch: u16, seq: u64, len: u16 },
        Fragment { typ: HandshakeType, len: u32, seq: u16, offset: u32, frag_len: u32 },
        HelloVerify { version: ProtocolVersion, cookie_len: usize },
        ServerHello { version: ProtocolVersion, cipher: u16, session_id_len: usize, extensions: Vec<(u16, Vec<u8>)> },
        Heartbeat { kind: u8, claim: u16 },
        Alert(Vec<u8>),
    }

    fn shapes(datagram: &[u8]) -> Vec<Shape> {
        let mut out = Vec::new();
        for rec in records(datagram) {
            let rec = rec.unwrap();
            let h = rec.header;
            out.push(Shape::Record { typ: h.content_type, version: h.version, epoch: h.epoch, seq: h.sequence, len: h.length });
            match h.content_type {
                ContentType::HANDSHAKE => {
                    for f in handshake_fragments(rec.fragment).unwrap() {
                        let fh = f.header;
                        out.push(Shape::Fragment { typ: fh.typ, len: fh.length, seq: fh.message_seq, offset: fh.fragment_offset, frag_len: fh.fragment_length });
                        if fh.typ == HandshakeType::HELLO_VERIFY_REQUEST {
                            let (version, cookie) = parse_hello_verify_request(f.body).unwrap();
                            out.push(Shape::HelloVerify { version, cookie_len: cookie.len() });
                        }
                        if fh.typ == HandshakeType::SERVER_HELLO {
                            let sh = ServerHello::parse(f.body).unwrap();
                            out.push(Shape::ServerHello {
                                version: sh.version,
                                cipher: sh.cipher_suite.0,
                                session_id_len: sh.session_id.len(),
                                extensions: sh.extensions.iter().map(|e| (e.typ.0, e.data.to_vec())).collect(),
                            });
                        }
                    }
                }
                ContentType::HEARTBEAT => {
                    let hb = HeartbeatMessage::parse(rec.fragment).unwrap();
                    out.push(Shape::Heartbeat { kind: hb.kind.0, claim: hb.payload_length });
                }
                ContentType::ALERT => out.push(Shape::Alert(rec.fragment.to_vec())),
                _ => {}
            }
        }
        out
    }

    fn real_chain_and_cookie(rec: &[(bool, Vec<u8>)]) -> (Vec<Vec<u8>>, Vec<u8>) {
        let mut cookie = Vec::new();
        let mut reassembler = DtlsHandshakeReassembler::new(0, ReassemblyLimits::default());
        let mut chain = Vec::new();
        for (from_client, d) in rec.iter().filter(|(c, _)| !c) {
            assert!(!from_client);
            for r in records(d) {
                let r = r.unwrap();
                if r.header.content_type == ContentType::HANDSHAKE {
                    reassembler.push_record(r.fragment).unwrap();
                }
            }
            while let Some(DtlsMessage { typ, body, .. }) = reassembler.next_message() {
                if typ == HandshakeType::HELLO_VERIFY_REQUEST {
                    cookie = parse_hello_verify_request(&body).unwrap().1.to_vec();
                }
                if typ == HandshakeType::CERTIFICATE {
                    chain = parse_certificate_list(&body).unwrap().into_iter().map(<[u8]>::to_vec).collect();
                }
            }
        }
        (chain, cookie)
    }

    fn lab(behaviour: Behaviour, versions: &[ProtocolVersion], mtu: usize) -> LabDtlsSession {
        let identity = Arc::new(LabIdentity::rsa_lab(&["dtls.lab.test"]).unwrap());
        LabDtlsSession::new(LabConfig::new(behaviour, identity).with_versions(versions), DtlsLabOptions { mtu, ..Default::default() }, vec![7; 20])
    }

    /// The recorded client datagrams fed to a lab configured like the recorded server (1.0.1f
    /// `-dtls1`, its certificate, its cookie) give datagrams of the same number, sizes and shapes:
    /// HelloVerifyRequest, the four-record flight in one datagram, and the 4115-byte heartbeat
    /// response in a datagram of its own (too big for the 4 KiB buffer), record sequence 5.
    #[test]
    fn matches_the_real_openssl_101f_dtls_server() {
        let rec = recorded();
        let (chain, cookie) = real_chain_and_cookie(&rec);
        assert_eq!(cookie.len(), 20);
        let identity = Arc::new(LabIdentity::with_chain(chain, LAB_RSA_KEY_A).unwrap());
        let cfg = LabConfig::new(Behaviour::Vulnerable, identity).with_versions(&[ProtocolVersion::DTLS1_0]);
        let mut session = LabDtlsSession::new(cfg, DtlsLabOptions { mtu: MAX_DATAGRAM_LEN, ..Default::default() }, cookie);
        let now = Instant::now();
        let mut expected: Vec<Vec<u8>> = Vec::new();
        let mut got: Vec<Vec<u8>> = Vec::new();
        for (from_client, datagram) in &rec {
            if *from_client {
                session.feed_datagram(now, datagram);
                got.extend(session.take_datagrams());
            } else {
                expected.push(datagram.clone());
            }
        }
        assert_eq!(got.iter().map(Vec::len).collect::<Vec<_>>(), vec![48, 1382, 4128]);
        assert_eq!(got.iter().map(Vec::len).collect::<Vec<_>>(), expected.iter().map(Vec::len).collect::<Vec<_>>());
        for (g, e) in got.iter().zip(&expected) {
            assert_eq!(shapes(g), shapes(e));
        }
        // The 4096 over-read bytes are canary bytes.
        let response = records(&got[2]).next().unwrap().unwrap();
        let hb = HeartbeatMessage::parse(response.fragment).unwrap();
        assert_eq!(hb.kind, HeartbeatMessageType::RESPONSE);
        assert_eq!(hb.body.len(), 4096 + 16);
        assert_eq!(&hb.body[..CANARY.len()], CANARY);
        let events = session.take_events();
        assert!(events.contains(&DtlsLabEvent::HelloVerifyRequest));
        assert!(events.iter().any(|e| matches!(e, DtlsLabEvent::Lab(LabEvent::Heartbeat { claimed: 4096, overread: 4096, answered: true, flushed: true, .. }))));
    }

    /// Drives `session` through the cookie exchange and the flight with a ClientHello from `spec`;
    /// returns the records sent so far and the record encoder for what comes next.
    fn handshake(session: &mut LabDtlsSession, version: ProtocolVersion, now: Instant) -> (Vec<Vec<u8>>, DtlsRecordEncoder) {
        use bleedwatch_wire::dtls::{client_hello_body, dtls_cipher_suites};
        use bleedwatch_wire::hello::ClientHelloSpec;
        let mut enc = DtlsRecordEncoder::new(ProtocolVersion::DTLS1_0, 0);
        let mut spec = ClientHelloSpec::probe(version, [3; 32], None);
        // ECDHE first, so that the flight has a ServerKeyExchange and the EC extension question arises.
        let mut suites = vec![CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA];
        suites.extend(dtls_cipher_suites(&spec.cipher_suites));
        spec.cipher_suites = suites;
        session.feed_datagram(now, &enc.encode(ContentType::HANDSHAKE, &encode_handshake(HandshakeType::CLIENT_HELLO, 0, &client_hello_body(&spec))).unwrap());
        let hvr = session.take_datagrams();
        assert_eq!(hvr.len(), 1);
        spec.cookie = Some(vec![7; 20]);
        session.feed_datagram(now, &enc.encode(ContentType::HANDSHAKE, &encode_handshake(HandshakeType::CLIENT_HELLO, 1, &client_hello_body(&spec))).unwrap());
        (session.take_datagrams(), enc)
    }

    fn heartbeat(claim: u16, payload: usize, padding: usize) -> Vec<u8> {
        bleedwatch_wire::heartbeat::encode(HeartbeatMessageType::REQUEST, claim, &vec![0x42; payload], &vec![0; padding])
    }

    fn all_shapes(datagrams: &[Vec<u8>]) -> Vec<Shape> {
        datagrams.iter().flat_map(|d| shapes(d)).collect()
    }

    /// Our probe's old datagram (the real capture `bleedwatch-dtls-probe-512-…`): unpadded test, padded
    /// honest, HelloRequest sentinel. The 512-byte answer stays in the 4 KiB buffer and is lost with the
    /// association: nothing reaches the wire, no flight is retransmitted, and a new ClientHello from the
    /// same peer starts over.
    #[test]
    fn small_answers_are_lost_with_the_association() {
        let now = Instant::now();
        for behaviour in [Behaviour::Vulnerable, Behaviour::Fixed] {
            let mut s = lab(behaviour, &[], 1400);
            let (flight, mut enc) = handshake(&mut s, ProtocolVersion::DTLS1_2, now);
            assert!(!flight.is_empty());
            enc.set_version(ProtocolVersion::DTLS1_2);
            s.take_events();
            let mut datagram = enc.encode(ContentType::HEARTBEAT, &heartbeat(512, 512, 0)).unwrap();
            datagram.extend(enc.encode(ContentType::HEARTBEAT, &heartbeat(512, 512, 16)).unwrap());
            datagram.extend(enc.encode(ContentType::HANDSHAKE, &encode_handshake(HandshakeType::HELLO_REQUEST, 2, &[])).unwrap());
            s.feed_datagram(now, &datagram);
            assert!(s.take_datagrams().is_empty(), "{behaviour:?}");
            assert!(s.is_closed() && s.poll_timeout().is_none(), "{behaviour:?}: no retransmission flushes the buffer");
            let events = s.take_events();
            let answered = behaviour == Behaviour::Vulnerable;
            // Only the first heartbeat was read; it was answered (into the buffer) or dropped.
            assert_eq!(events.iter().filter(|e| matches!(e, DtlsLabEvent::Lab(LabEvent::Heartbeat { .. }))).count(), 1, "{events:?}");
            assert!(
                events.iter().any(|e| matches!(e, DtlsLabEvent::Lab(LabEvent::Heartbeat { padding: 0, answered: a, flushed: false, .. }) if *a == answered)),
                "{events:?}"
            );
            assert_eq!(events.last(), Some(&DtlsLabEvent::AssociationDropped));
            s.feed_datagram(now, &datagram);
            assert!(s.take_datagrams().is_empty());
        }
    }

    /// An answer of at least the buffer's size leaves at once, in a datagram of its own (the capture
    /// `hbprobe-unpadded-4500-…`), before the association is dropped; 1.0.1g answers only padded requests.
    #[test]
    fn large_answers_leave_before_the_association_is_dropped() {
        let now = Instant::now();
        for (behaviour, padding, answered) in [(Behaviour::Vulnerable, 0, true), (Behaviour::Fixed, 0, false), (Behaviour::Fixed, 16, true)] {
            let mut s = lab(behaviour, &[ProtocolVersion::DTLS1_0], 1400);
            let (_, mut enc) = handshake(&mut s, ProtocolVersion::DTLS1_0, now);
            let mut datagram = enc.encode(ContentType::HEARTBEAT, &heartbeat(4500, 4500, padding)).unwrap();
            datagram.extend(enc.encode(ContentType::HEARTBEAT, &heartbeat(4500, 4500, 16)).unwrap());
            s.feed_datagram(now, &datagram);
            let out = s.take_datagrams();
            assert!(s.is_closed());
            if answered {
                assert_eq!(out.len(), 1, "{behaviour:?}");
                assert_eq!(out[0].len(), 13 + 3 + 4500 + 16);
                assert!(matches!(shapes(&out[0])[1], Shape::Heartbeat { kind: 2, claim: 4500 }));
            } else {
                assert!(out.is_empty(), "{behaviour:?}: the honest heartbeat behind the dropped one is never read");
            }
        }
    }

    #[test]
    fn no_heartbeat_build_alerts_and_offers_no_extension() {
        let now = Instant::now();
        let mut s = lab(Behaviour::NoHeartbeat, &[], 1400);
        let (flight, mut enc) = handshake(&mut s, ProtocolVersion::DTLS1_2, now);
        let sh = all_shapes(&flight).into_iter().find_map(|sh| match sh {
            Shape::ServerHello { extensions, version, .. } => Some((version, extensions)),
            _ => None,
        });
        let (version, extensions) = sh.unwrap();
        assert_eq!(version, ProtocolVersion::DTLS1_2);
        assert!(!extensions.iter().any(|(t, _)| *t == ExtensionType::HEARTBEAT.0));
        // DTLS 1.2 acknowledges ec_point_formats; DTLS 1.0 (below) does not.
        assert!(extensions.iter().any(|(t, _)| *t == ExtensionType::EC_POINT_FORMATS.0));
        enc.set_version(ProtocolVersion::DTLS1_2);
        s.feed_datagram(now, &enc.encode(ContentType::HEARTBEAT, &heartbeat(512, 512, 0)).unwrap());
        assert_eq!(all_shapes(&s.take_datagrams()).last(), Some(&Shape::Alert(vec![2, 10])));
        assert!(s.is_closed());
    }

    #[test]
    fn claims_that_would_crash_101f_are_refused_not_answered() {
        let now = Instant::now();
        let mut s = lab(Behaviour::Vulnerable, &[ProtocolVersion::DTLS1_0], 1400);
        let (_, mut enc) = handshake(&mut s, ProtocolVersion::DTLS1_0, now);
        s.take_events();
        s.feed_datagram(now, &enc.encode(ContentType::HEARTBEAT, &heartbeat(16366, 0, 0)).unwrap());
        assert!(s.take_datagrams().is_empty());
        assert_eq!(s.take_events(), vec![DtlsLabEvent::RefusedHeartbeat { claimed: 16366, record_len: 3 }, DtlsLabEvent::AssociationDropped]);
        assert!(s.is_closed());
        // The largest survivable claim is answered with a full 16384-byte record, written at once.
        let mut s = lab(Behaviour::Vulnerable, &[ProtocolVersion::DTLS1_0], 1400);
        let (_, mut enc) = handshake(&mut s, ProtocolVersion::DTLS1_0, now);
        s.feed_datagram(now, &enc.encode(ContentType::HEARTBEAT, &heartbeat(16365, 0, 0)).unwrap());
        let out = s.take_datagrams();
        assert_eq!(out.len(), 1);
        assert!(matches!(shapes(&out[0])[0], Shape::Record { typ: ContentType::HEARTBEAT, version: ProtocolVersion::DTLS1_0, epoch: 0, len: 16384, .. }));
    }

    #[test]
    fn cookie_version_and_record_checks() {
        let now = Instant::now();
        // A wrong cookie is a fatal handshake_failure.
        let mut s = lab(Behaviour::Vulnerable, &[], 1400);
        let mut enc = DtlsRecordEncoder::new(ProtocolVersion::DTLS1_0, 0);
        let mut spec = bleedwatch_wire::hello::ClientHelloSpec::probe(ProtocolVersion::DTLS1_0, [1; 32], None);
        spec.cookie = Some(vec![9; 20]);
        let body = bleedwatch_wire::dtls::client_hello_body(&spec);
        s.feed_datagram(now, &enc.encode(ContentType::HANDSHAKE, &encode_handshake(HandshakeType::CLIENT_HELLO, 0, &body)).unwrap());
        assert_eq!(all_shapes(&s.take_datagrams()).last(), Some(&Shape::Alert(vec![2, 40])));
        // A DTLS 1.2-only lab refuses a DTLS 1.0 client; a DTLS 1.0 lab takes a DTLS 1.2 client down.
        let mut s = lab(Behaviour::Vulnerable, &[ProtocolVersion::DTLS1_2], 1400);
        let (out, _) = handshake(&mut s, ProtocolVersion::DTLS1_0, now);
        assert_eq!(all_shapes(&out).last(), Some(&Shape::Alert(vec![2, 70])));
        let mut s = lab(Behaviour::Vulnerable, &[ProtocolVersion::DTLS1_0], 1400);
        let (out, mut enc) = handshake(&mut s, ProtocolVersion::DTLS1_2, now);
        let shapes_out = all_shapes(&out);
        assert!(shapes_out.iter().any(|sh| matches!(sh, Shape::ServerHello { version: ProtocolVersion::DTLS1_0, extensions, .. }
            if !extensions.iter().any(|(t, _)| *t == ExtensionType::EC_POINT_FORMATS.0))));
        // After the hello: another record version, another epoch, or a replayed sequence is dropped.
        s.take_events();
        enc.set_version(ProtocolVersion::DTLS1_2);
        s.feed_datagram(now, &enc.encode(ContentType::HEARTBEAT, &heartbeat(32, 32, 16)).unwrap());
        assert!(s.take_events().is_empty());
        let mut other_epoch = DtlsRecordEncoder::new(ProtocolVersion::DTLS1_0, 1);
        s.feed_datagram(now, &other_epoch.encode(ContentType::HEARTBEAT, &heartbeat(32, 32, 16)).unwrap());
        assert!(s.take_events().is_empty());
        enc.set_version(ProtocolVersion::DTLS1_0);
        // A warning alert is read and logged without ending the association.
        let record = enc.encode(ContentType::ALERT, &[1, 90]).unwrap();
        s.feed_datagram(now, &record);
        assert_eq!(s.take_events().len(), 1);
        s.feed_datagram(now, &record);
        assert!(s.take_events().is_empty(), "replayed record processed twice");
        assert!(!s.is_closed());
    }

    #[test]
    fn flights_are_fragmented_to_the_mtu_and_reassemble() {
        let now = Instant::now();
        let mut s = lab(Behaviour::Vulnerable, &[], 300);
        let (out, _) = handshake(&mut s, ProtocolVersion::DTLS1_2, now);
        assert!(out.len() > 3, "{}", out.len());
        assert!(out.iter().all(|d| d.len() <= 300));
        let mut r = DtlsHandshakeReassembler::new(1, ReassemblyLimits::default());
        for d in &out {
            for rec in records(d) {
                r.push_record(rec.unwrap().fragment).unwrap();
            }
        }
        let types: Vec<_> = std::iter::from_fn(|| r.next_message()).map(|m| m.typ).collect();
        assert_eq!(types, vec![HandshakeType::SERVER_HELLO, HandshakeType::CERTIFICATE, HandshakeType::SERVER_KEY_EXCHANGE, HandshakeType::SERVER_HELLO_DONE]);
    }

    #[test]
    fn retransmissions_are_bounded() {
        let now = Instant::now();
        let mut s = lab(Behaviour::Vulnerable, &[], 1400);
        handshake(&mut s, ProtocolVersion::DTLS1_2, now);
        let mut rounds = 0;
        while let Some(t) = s.poll_timeout() {
            s.handle_timeout(t);
            s.take_datagrams();
            rounds += 1;
            assert!(rounds <= MAX_TIMEOUTS + 1);
        }
        assert!(s.is_closed());
        assert_eq!(rounds, MAX_TIMEOUTS + 1);
    }

    #[test]
    fn replay_window() {
        let mut w = ReplayWindow::default();
        assert!(!w.is_replay(5));
        w.mark(5);
        assert!(w.is_replay(5));
        assert!(!w.is_replay(3));
        w.mark(3);
        assert!(w.is_replay(3));
        w.mark(100);
        assert!(w.is_replay(5), "outside the window counts as stale");
        assert!(!w.is_replay(99));
    }

    #[test]
    fn arbitrary_datagrams_never_panic() {
        let identity = Arc::new(LabIdentity::rsa_lab(&["fuzz.test"]).unwrap());
        let mut seed = 0x1234_5678u32;
        for len in [0usize, 1, 12, 13, 14, 40, 200, 1000] {
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                    (seed >> 16) as u8
                })
                .collect();
            fuzz_client_datagrams(&data, identity.clone());
            let mut framed = vec![22, 0xfe, 0xff, 0, 0, 0, 0, 0, 0, 0, 0];
            framed.extend_from_slice(&(data.len() as u16).to_be_bytes());
            framed.extend_from_slice(&data);
            fuzz_client_datagrams(&framed, identity.clone());
        }
    }

    /// With one association, as in `s_server -dtls1`: a peer that walked away after the
    /// HelloVerifyRequest holds the server, another peer's ClientHello is not answered; once that
    /// association ends (a heartbeat drops it), the next peer is served.
    #[tokio::test]
    async fn one_association_is_held_by_an_abandoned_cookie_exchange() {
        let identity = Arc::new(LabIdentity::rsa_lab(&["dtls.lab.test"]).unwrap());
        let opts = DtlsLabOptions { one_association: true, ..Default::default() };
        let server = LabDtlsServer::bind_with("127.0.0.1:0".parse().unwrap(), LabConfig::new(Behaviour::Fixed, identity), opts).await.unwrap();
        let spec = bleedwatch_wire::hello::ClientHelloSpec::probe(ProtocolVersion::DTLS1_0, [1; 32], None);
        let hello = DtlsRecordEncoder::new(ProtocolVersion::DTLS1_0, 0)
            .encode(ContentType::HANDSHAKE, &encode_handshake(HandshakeType::CLIENT_HELLO, 0, &bleedwatch_wire::dtls::client_hello_body(&spec)))
            .unwrap();
        let mut buf = vec![0u8; 4096];
        let (first, second) = (UdpSocket::bind("127.0.0.1:0").await.unwrap(), UdpSocket::bind("127.0.0.1:0").await.unwrap());
        first.send_to(&hello, server.local_addr()).await.unwrap();
        let n = tokio::time::timeout(Duration::from_secs(2), first.recv(&mut buf)).await.unwrap().unwrap();
        assert_eq!(shapes(&buf[..n])[2], Shape::HelloVerify { version: ProtocolVersion::DTLS1_0, cookie_len: 20 });
        second.send_to(&hello, server.local_addr()).await.unwrap();
        assert!(tokio::time::timeout(Duration::from_millis(400), second.recv(&mut buf)).await.is_err(), "the held server answered another peer");
        assert_eq!(server.session_count(), 1);
        // The first peer's heartbeat (unpadded: 1.0.1g drops it) ends its association.
        let mut enc = DtlsRecordEncoder::new(ProtocolVersion::DTLS1_0, 0);
        enc.encode(ContentType::HANDSHAKE, &[]).unwrap(); // record 0 was the ClientHello
        first.send_to(&enc.encode(ContentType::HEARTBEAT, &heartbeat(32, 32, 0)).unwrap(), server.local_addr()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(server.session_count(), 0);
        second.send_to(&hello, server.local_addr()).await.unwrap();
        let n = tokio::time::timeout(Duration::from_secs(2), second.recv(&mut buf)).await.unwrap().unwrap();
        assert_eq!(shapes(&buf[..n])[2], Shape::HelloVerify { version: ProtocolVersion::DTLS1_0, cookie_len: 20 });
        server.stop();
    }

    #[tokio::test]
    async fn shell_bounds_sessions_and_expires_idle_ones() {
        let identity = Arc::new(LabIdentity::rsa_lab(&["dtls.lab.test"]).unwrap());
        let opts = DtlsLabOptions { max_sessions: 2, idle: Duration::from_millis(300), ..Default::default() };
        let server = LabDtlsServer::bind_with("127.0.0.1:0".parse().unwrap(), LabConfig::new(Behaviour::Vulnerable, identity), opts).await.unwrap();
        let mut spec = bleedwatch_wire::hello::ClientHelloSpec::probe(ProtocolVersion::DTLS1_2, [1; 32], None);
        spec.cipher_suites = bleedwatch_wire::dtls::dtls_cipher_suites(&spec.cipher_suites);
        let hello = DtlsRecordEncoder::new(ProtocolVersion::DTLS1_0, 0)
            .encode(ContentType::HANDSHAKE, &encode_handshake(HandshakeType::CLIENT_HELLO, 0, &bleedwatch_wire::dtls::client_hello_body(&spec)))
            .unwrap();
        let mut clients = Vec::new();
        for _ in 0..3 {
            let c = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            c.connect(server.local_addr()).await.unwrap();
            c.send(&hello).await.unwrap();
            clients.push(c);
        }
        let mut buf = vec![0u8; 2048];
        let mut answered = 0;
        for c in &clients {
            if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(500), c.recv(&mut buf)).await {
                assert_eq!(shapes(&buf[..n])[2], Shape::HelloVerify { version: ProtocolVersion::DTLS1_0, cookie_len: 20 });
                answered += 1;
            }
        }
        assert_eq!(answered, 2);
        assert!(server.events().iter().any(|(_, e)| *e == DtlsLabEvent::SessionLimit));
        // Idle sessions are forgotten, after which a new peer is served again.
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert_eq!(server.session_count(), 0);
        let c = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        c.connect(server.local_addr()).await.unwrap();
        c.send(&hello).await.unwrap();
        assert!(tokio::time::timeout(Duration::from_secs(2), c.recv(&mut buf)).await.unwrap().is_ok());
        server.stop();
    }
}
