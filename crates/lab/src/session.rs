//! One lab connection as a sans-IO state machine that behaves, on the wire, like an `openssl s_server`
//! of OpenSSL 1.0.1f (vulnerable), 1.0.1g (fixed) or 1.0.1f built with `-DOPENSSL_NO_HEARTBEATS`.
//!
//! Matched against the real captures in `../shared/data/pcap/openssl-1.0.1f-lab/` (see the crate's
//! integration tests): one record per handshake message, ServerHello extensions in OpenSSL's order
//! (renegotiation_info, ec_point_formats, session_ticket, heartbeat), heartbeat responses of
//! `3 + payload + 16` bytes split into 16 KiB records with random padding, and OpenSSL 1.0.1's 4 KiB
//! handshake write buffer — so a long response sent mid-handshake shows only its full 16 KiB records,
//! and a short one waits in the buffer until a flush. Over-read bytes are canary bytes, never memory.
//!
//! Handshakes complete for TLS 1.0–1.2 with the AES-CBC and AES-GCM suites of [`SuiteSpec`] (RSA, DHE,
//! ECDHE key exchange; see [`crate::tls12`]): then heartbeats are answered inside the encrypted
//! session by the same [`heartbeat_action`], with no write buffer any more (1.0.1 frees it once the
//! handshake is done), and application data gets a short page, as `s_server -www` does. Suites 1.0.1f
//! chooses but the lab cannot run (DES, 3DES, RC4, CAMELLIA, SEED, IDEA) and SSLv3 still end with a
//! fatal handshake_failure at the ClientKeyExchange. Renegotiation is refused (no_renegotiation).
//!
//! An owner that wants the established session for itself (`bleedwatch client-test
//! --after-handshake` sends its heartbeats there) calls [`LabSession::hand_over_records`]: from the
//! client's Finished on, the client's records are decrypted and handed over
//! ([`LabSession::take_peer_records`]) instead of being answered, and the owner writes with
//! [`LabSession::send_encrypted`].

use std::sync::Arc;

use bleedwatch_wire::alert::{Alert, AlertLevel};
use bleedwatch_wire::handshake::{ClientHello, HandshakeReassembler};
use bleedwatch_wire::heartbeat::{HeartbeatMessage, HeartbeatMessageType, MIN_PADDING};
use bleedwatch_wire::hello::{encode_certificate, encode_handshake, encode_server_hello_done, ServerHelloSpec};
use bleedwatch_wire::record::{encode_records, Deframer, MAX_FRAGMENT_LEN};
use bleedwatch_wire::types::KeyExchange;
use bleedwatch_wire::{AlertDescription, CipherSuite, ContentType, ExtensionType, HandshakeType, ProtocolVersion};
use rand::RngCore;

use crate::identity::{LabIdentity, SigningKey};
use crate::kx::{rsa_premaster, server_key_exchange, EphemeralKey, KxError, NAMED_CURVE_P256};
use crate::suites;
use crate::tls12::{
    constant_time_eq, derive_keys, master_secret, verify_data, RecordError, RecordProtection, Side, SuiteSpec, Transcript,
    MASTER_SECRET_LEN, VERIFY_DATA_LEN,
};

/// Which OpenSSL the lab imitates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Behaviour {
    /// 1.0.1f: answers every heartbeat, reading past the request (canary bytes here).
    Vulnerable,
    /// 1.0.1g: drops heartbeats that fail `1 + 2 + payload + 16 <= record length`.
    Fixed,
    /// 1.0.1f with `-DOPENSSL_NO_HEARTBEATS`: no extension, heartbeat records are unexpected.
    NoHeartbeat,
}

/// OpenSSL 1.0.1's handshake write buffer (`BIO_f_buffer`, 4096 bytes).
const HANDSHAKE_BUFFER: usize = 4096;

/// Filler for over-read bytes: never memory, always recognisable.
pub const CANARY: &[u8] = b"BLEEDWATCH-LAB-CANARY-NOT-MEMORY;";

#[derive(Debug, Clone)]
pub struct LabConfig {
    pub behaviour: Behaviour,
    /// Versions the server accepts (like `-ssl3`, `-tls1`, or all of them).
    pub versions: Vec<ProtocolVersion>,
    pub identity: Arc<LabIdentity>,
    /// Like `s_server` without `-www` (echo mode): a heartbeat read during the handshake makes
    /// `SSL_accept` return without a socket error, which s_server takes as fatal — it drops the
    /// connection at once, and what waited in the write buffer is lost. With `-www` (the default here)
    /// it retries and the handshake goes on.
    pub drop_after_handshake_heartbeat: bool,
}

impl LabConfig {
    pub fn new(behaviour: Behaviour, identity: Arc<LabIdentity>) -> Self {
        LabConfig { behaviour, versions: ProtocolVersion::PROBEABLE_TLS.to_vec(), identity, drop_after_handshake_heartbeat: false }
    }

    pub fn with_versions(mut self, versions: &[ProtocolVersion]) -> Self {
        self.versions = versions.to_vec();
        self
    }

    /// `s_server`'s echo mode: see [`LabConfig::drop_after_handshake_heartbeat`].
    pub fn echo_mode(mut self) -> Self {
        self.drop_after_handshake_heartbeat = true;
        self
    }
}

/// Something a client did that a honeypot or test wants to know about (no payload bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabEvent {
    ClientHello { version: ProtocolVersion, negotiated: Option<ProtocolVersion>, offers_heartbeat: bool, server_name: Option<String> },
    Heartbeat {
        version: ProtocolVersion,
        record_len: usize,
        claimed: u16,
        present: usize,
        padding: usize,
        /// Claimed bytes not in the request: what a real 1.0.1f would have read from memory.
        overread: usize,
        answered: bool,
        /// Response bytes that reached the wire at once (the rest waits in the write buffer).
        flushed: bool,
        /// The request came inside the encrypted session (after the client's ChangeCipherSpec).
        encrypted: bool,
    },
    Alert { sent: bool, alert: String },
}

/// A record the client sent inside the established session, decrypted (see
/// [`LabSession::hand_over_records`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerRecord {
    pub content_type: ContentType,
    pub plaintext: Vec<u8>,
}

/// [`LabSession::send_encrypted`] before both Finished messages were exchanged (or after the session
/// closed): there are no keys to write with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the TLS session is not established")]
pub struct NotEstablished;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    AwaitClientHello,
    AwaitClientKeyExchange,
    AwaitChangeCipherSpec,
    AwaitFinished,
    Established,
    Closed,
}

/// What the server flight settled, kept for the client's key exchange.
struct Negotiated {
    suite: CipherSuite,
    kx: KeyExchange,
    client_version: ProtocolVersion,
    client_random: [u8; 32],
    server_random: [u8; 32],
    /// The DHE or ECDHE secret behind the ServerKeyExchange.
    ephemeral: Option<EphemeralKey>,
    /// The session_ticket extension was echoed, so a NewSessionTicket must precede the CCS.
    ticket: bool,
}

/// Keys derived at the ClientKeyExchange, waiting for the ChangeCipherSpecs that switch them on.
struct PendingKeys {
    spec: SuiteSpec,
    master: [u8; MASTER_SECRET_LEN],
    ticket: bool,
    client_write: Option<RecordProtection>,
    server_write: Option<RecordProtection>,
}

/// Longest request awaited before the lab page is sent anyway.
const REQUEST_LIMIT: usize = 8192;
/// OpenSSL's default session ticket lifetime hint and ticket size, as seen in
/// `s_client-1.0.1f-normal-session-legit-heartbeat-1.0.1f-tls12.pcap` (300 s, 160 bytes).
const TICKET_LIFETIME_HINT: u32 = 300;
const TICKET_LEN: usize = 160;

pub struct LabSession {
    cfg: LabConfig,
    state: State,
    deframer: Deframer,
    handshake: HandshakeReassembler,
    version: ProtocolVersion,
    out: HandshakeWriteBuffer,
    events: Vec<LabEvent>,
    transcript: Transcript,
    negotiated: Option<Box<Negotiated>>,
    pending: Option<Box<PendingKeys>>,
    /// Opens client records once the client's ChangeCipherSpec has arrived.
    read: Option<RecordProtection>,
    /// Seals server records once the server's ChangeCipherSpec has gone out.
    write: Option<RecordProtection>,
    suite: Option<CipherSuite>,
    request: Vec<u8>,
    /// Once established, the client's records go to `peer_records` instead of the lab's handlers.
    hand_over: bool,
    peer_records: Vec<PeerRecord>,
}

/// OpenSSL 1.0.1's handshake write path: a `BIO_f_buffer` of 4096 bytes in front of the socket.
/// Bytes in `wire` have reached the network; bytes in `buffer` wait for a flush.
#[derive(Debug, Default)]
pub struct HandshakeWriteBuffer {
    buffer: Vec<u8>,
    wire: Vec<u8>,
}

impl HandshakeWriteBuffer {
    /// `bf_write`: buffer if it fits (strictly), else fill the buffer, flush it, and write a large
    /// remainder straight through. This is what keeps the tail of a long heartbeat response off the
    /// wire in the middle of a handshake.
    pub fn write(&mut self, mut data: &[u8]) {
        let free = HANDSHAKE_BUFFER - self.buffer.len();
        if free > data.len() {
            self.buffer.extend_from_slice(data);
            return;
        }
        if !self.buffer.is_empty() {
            self.buffer.extend_from_slice(&data[..free]);
            data = &data[free..];
            self.flush();
        }
        if data.len() >= HANDSHAKE_BUFFER {
            self.wire.extend_from_slice(data);
            data = &[];
        }
        self.buffer.extend_from_slice(data);
    }

    pub fn flush(&mut self) {
        self.wire.append(&mut self.buffer);
    }

    /// Writes `data` as records of `typ`, one write per record as `do_ssl3_write` does.
    pub fn write_records(&mut self, typ: ContentType, version: ProtocolVersion, data: &[u8]) {
        let mut record = Vec::with_capacity(data.len().min(MAX_FRAGMENT_LEN) + 5);
        if data.is_empty() {
            encode_records(&mut record, typ, version, &[], MAX_FRAGMENT_LEN);
            self.write(&record);
        }
        for chunk in data.chunks(MAX_FRAGMENT_LEN) {
            record.clear();
            encode_records(&mut record, typ, version, chunk, MAX_FRAGMENT_LEN);
            self.write(&record);
        }
    }

    pub fn take_wire(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.wire)
    }

    /// `BIO_free` of the buffer (`SSL_free` does not flush): what waited is lost.
    pub fn discard(&mut self) {
        self.buffer.clear();
    }

    pub fn wire_len(&self) -> usize {
        self.wire.len()
    }
}

/// What OpenSSL 1.0.1 does with one heartbeat record, by behaviour (shared by the lab server and the
/// lab client: the bug and the fix are the same on both sides).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeartbeatAction {
    /// Send this heartbeat_response message (3 + payload + 16 bytes; over-read bytes are canary).
    Respond(Vec<u8>),
    /// Drop silently (1.0.1g's bounds check, or not a request).
    Drop,
    /// Unknown record type: fatal unexpected_message (SSLv3 and TLS 1.2 without heartbeat code).
    Alert,
    /// Unknown record type, ignored (TLS 1.0 and 1.1 without heartbeat code).
    Ignore,
}

/// Decides what 1.0.1f / 1.0.1g / a no-heartbeat build does with `fragment`, and the event to log.
pub fn heartbeat_action(behaviour: Behaviour, version: ProtocolVersion, fragment: &[u8]) -> (HeartbeatAction, Option<LabEvent>) {
    if behaviour == Behaviour::NoHeartbeat {
        // ssl3_read_bytes: TLS 1.0 and 1.1 ignore unknown record types; SSLv3 and TLS 1.2 alert.
        let action = if version == ProtocolVersion::TLS1_0 || version == ProtocolVersion::TLS1_1 {
            HeartbeatAction::Ignore
        } else {
            HeartbeatAction::Alert
        };
        return (action, None);
    }
    let Ok(msg) = HeartbeatMessage::parse(fragment) else { return (HeartbeatAction::Drop, None) };
    if msg.kind != HeartbeatMessageType::REQUEST {
        return (HeartbeatAction::Drop, None);
    }
    let present = msg.body.len().min(msg.payload_length as usize);
    let answered = match behaviour {
        Behaviour::Fixed => fragment.len() >= 3 + MIN_PADDING && msg.passes_bounds_check(),
        _ => true,
    };
    let event = LabEvent::Heartbeat {
        version,
        record_len: fragment.len(),
        claimed: msg.payload_length,
        present,
        padding: msg.padding_len().unwrap_or(0),
        overread: msg.missing_payload(),
        answered,
        flushed: false,
        encrypted: false,
    };
    if !answered {
        return (HeartbeatAction::Drop, Some(event));
    }
    let claimed = msg.payload_length as usize;
    let mut response = Vec::with_capacity(3 + claimed + MIN_PADDING);
    response.push(HeartbeatMessageType::RESPONSE.0);
    response.extend_from_slice(&msg.payload_length.to_be_bytes());
    response.extend_from_slice(&msg.body[..present]);
    // Where 1.0.1f copies memory, the lab copies canary bytes.
    response.extend(CANARY.iter().cycle().take(claimed - present));
    let mut pad = [0u8; MIN_PADDING];
    rand::thread_rng().fill_bytes(&mut pad);
    response.extend_from_slice(&pad);
    (HeartbeatAction::Respond(response), Some(event))
}

impl LabSession {
    pub fn new(cfg: LabConfig) -> Self {
        LabSession {
            cfg,
            state: State::AwaitClientHello,
            deframer: Deframer::new(),
            handshake: HandshakeReassembler::default(),
            version: ProtocolVersion::TLS1_0,
            out: HandshakeWriteBuffer::default(),
            events: Vec::new(),
            transcript: Transcript::default(),
            negotiated: None,
            pending: None,
            read: None,
            write: None,
            suite: None,
            request: Vec::new(),
            hand_over: false,
            peer_records: Vec::new(),
        }
    }

    /// From the completed handshake on, hand every record the client sends to the owner, decrypted
    /// ([`LabSession::take_peer_records`]), instead of answering it as the lab: no heartbeat
    /// answers, no page, no renegotiation refusal, and alerts do not close the session. The owner
    /// speaks for the server with [`LabSession::send_encrypted`]. Records that fail decryption still
    /// end the session with a fatal alert.
    pub fn hand_over_records(&mut self) {
        self.hand_over = true;
    }

    /// The client's records since the last call (only with [`LabSession::hand_over_records`]).
    pub fn take_peer_records(&mut self) -> Vec<PeerRecord> {
        std::mem::take(&mut self.peer_records)
    }

    /// Sends `data` as records of `typ` (split at 16 KiB) in the established session, encrypted and
    /// flushed at once.
    pub fn send_encrypted(&mut self, typ: ContentType, data: &[u8]) -> Result<(), NotEstablished> {
        if self.state != State::Established || self.write.is_none() {
            return Err(NotEstablished);
        }
        self.send(typ, self.version, data);
        Ok(())
    }

    /// The version of the completed handshake, if there is one.
    pub fn established_version(&self) -> Option<ProtocolVersion> {
        (self.state == State::Established).then_some(self.version)
    }

    /// Bytes that reached the "wire" (left the write buffer).
    pub fn take_output(&mut self) -> Vec<u8> {
        self.out.take_wire()
    }

    pub fn take_events(&mut self) -> Vec<LabEvent> {
        std::mem::take(&mut self.events)
    }

    /// True once the server has given up on the connection; the shell closes the socket.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// True once both Finished messages have been exchanged and records are encrypted both ways.
    pub fn is_established(&self) -> bool {
        self.state == State::Established
    }

    /// The suite of the completed handshake, if there is one.
    pub fn established_suite(&self) -> Option<CipherSuite> {
        self.suite.filter(|_| self.state == State::Established)
    }

    pub fn feed(&mut self, data: &[u8]) {
        if self.state == State::Closed {
            return;
        }
        if self.deframer.push(data).is_err() {
            return self.close();
        }
        while self.state != State::Closed {
            let (typ, version, fragment) = match self.deframer.next_record() {
                Ok(Some(r)) => (r.header.content_type, r.header.version, r.fragment.to_vec()),
                Ok(None) => return,
                // OpenSSL answers a bad record header with no alert before a version is set.
                Err(_) => return self.fatal_or_close(AlertDescription::DECODE_ERROR),
            };
            let (fragment, encrypted) = match self.read.as_mut() {
                None => (fragment, false),
                Some(read) => match read.open(typ, version, &fragment) {
                    Ok(plaintext) => (plaintext, true),
                    Err(RecordError::Overflow) => return self.fatal(AlertDescription::RECORD_OVERFLOW, self.version),
                    Err(RecordError::BadRecordMac) => return self.fatal(AlertDescription::BAD_RECORD_MAC, self.version),
                },
            };
            if self.hand_over && self.state == State::Established {
                self.peer_records.push(PeerRecord { content_type: typ, plaintext: fragment });
                continue;
            }
            self.on_record(typ, version, &fragment, encrypted);
        }
    }

    fn close(&mut self) {
        self.state = State::Closed;
    }

    fn flush(&mut self) {
        self.out.flush();
    }

    /// Writes `data` as records of `typ`: plaintext until the server's ChangeCipherSpec, sealed after.
    /// Once the handshake is done 1.0.1 has freed its write buffer, so everything goes out at once.
    fn send(&mut self, typ: ContentType, version: ProtocolVersion, data: &[u8]) {
        match self.write.as_mut() {
            Some(write) => {
                let records = write.seal_records(typ, version, data);
                self.out.write(&records);
            }
            None => self.out.write_records(typ, version, data),
        }
        if self.state == State::Established {
            self.flush();
        }
    }

    /// A fatal alert is flushed at once (`ssl3_dispatch_alert`), then the server gives up.
    fn fatal(&mut self, description: AlertDescription, record_version: ProtocolVersion) {
        let alert = Alert::fatal(description);
        self.send(ContentType::ALERT, record_version, &alert.encode());
        self.flush();
        self.events.push(LabEvent::Alert { sent: true, alert: alert.to_string() });
        self.close();
    }

    fn warning(&mut self, description: AlertDescription) {
        let alert = Alert { level: AlertLevel::WARNING, description };
        self.send(ContentType::ALERT, self.version, &alert.encode());
        self.flush();
        self.events.push(LabEvent::Alert { sent: true, alert: alert.to_string() });
    }

    fn fatal_or_close(&mut self, description: AlertDescription) {
        match self.state {
            State::AwaitClientHello => self.close(),
            _ => self.fatal(description, self.version),
        }
    }

    fn on_record(&mut self, typ: ContentType, record_version: ProtocolVersion, fragment: &[u8], encrypted: bool) {
        match (self.state, typ) {
            (State::Closed, _) => {}
            (State::AwaitClientHello, ContentType::HANDSHAKE) => {
                self.handshake.push(fragment);
                match self.handshake.next_message() {
                    Ok(Some(m)) if m.typ == HandshakeType::CLIENT_HELLO => {
                        let body = m.body.to_vec();
                        self.on_client_hello(&body, record_version);
                    }
                    Ok(None) => {}
                    Ok(Some(_)) | Err(_) => self.close(),
                }
            }
            // OpenSSL's version-flexible method only accepts a handshake record first.
            (State::AwaitClientHello, _) => self.close(),
            // 1.0.1 processes heartbeats whenever they come, in the handshake or after it.
            (_, ContentType::HEARTBEAT) => self.on_heartbeat(fragment, encrypted),
            (_, ContentType::HANDSHAKE) => self.on_handshake(fragment),
            (_, ContentType::ALERT) => {
                if let Ok(alert) = Alert::parse(fragment) {
                    self.events.push(LabEvent::Alert { sent: false, alert: alert.to_string() });
                    if alert.is_fatal() || alert.description == AlertDescription::CLOSE_NOTIFY {
                        self.close();
                    }
                }
            }
            (State::AwaitChangeCipherSpec, ContentType::CHANGE_CIPHER_SPEC) => self.on_change_cipher_spec(fragment),
            (State::Established, ContentType::APPLICATION_DATA) => self.on_application_data(fragment),
            _ => self.fatal(AlertDescription::UNEXPECTED_MESSAGE, self.version),
        }
    }

    fn on_handshake(&mut self, fragment: &[u8]) {
        self.handshake.push(fragment);
        while self.state != State::Closed {
            let (typ, body) = match self.handshake.next_message() {
                Ok(None) => return,
                Ok(Some(m)) => (m.typ, m.body.to_vec()),
                Err(_) => return self.fatal(AlertDescription::ILLEGAL_PARAMETER, self.version),
            };
            match (self.state, typ) {
                (State::AwaitClientKeyExchange, HandshakeType::CLIENT_KEY_EXCHANGE) => self.on_client_key_exchange(&body),
                (State::AwaitFinished, HandshakeType::FINISHED) => self.on_finished(&body),
                // A renegotiating ClientHello: refused, the connection goes on.
                (State::Established, HandshakeType::CLIENT_HELLO) => self.warning(AlertDescription::NO_RENEGOTIATION),
                // ssl3_get_message: anything but the expected message is unexpected.
                _ => return self.fatal(AlertDescription::UNEXPECTED_MESSAGE, self.version),
            }
        }
    }

    fn choose_version(&self, client_version: ProtocolVersion) -> Option<ProtocolVersion> {
        let ceiling = client_version.0.min(ProtocolVersion::TLS1_2.0);
        self.cfg.versions.iter().copied().filter(|v| v.0 <= ceiling && v.0 >= ProtocolVersion::SSL3.0).max()
    }

    /// Sends a handshake message and adds it to the transcript.
    fn send_handshake(&mut self, message: &[u8]) {
        self.transcript.push(message);
        self.send(ContentType::HANDSHAKE, self.version, message);
    }

    fn on_client_hello(&mut self, body: &[u8], record_version: ProtocolVersion) {
        let hello = match ClientHello::parse(body) {
            Ok(h) => h,
            Err(_) => return self.fatal(AlertDescription::DECODE_ERROR, record_version),
        };
        let negotiated = self.choose_version(hello.version);
        self.events.push(LabEvent::ClientHello {
            version: hello.version,
            negotiated,
            offers_heartbeat: hello.heartbeat_mode().is_some(),
            server_name: hello.server_name().map(str::to_owned),
        });
        let Some(version) = negotiated else {
            // ssl3_get_client_hello: wrong version, alert in the client's version.
            let v = if hello.version.0 >> 8 == 3 { hello.version } else { record_version };
            return self.fatal(AlertDescription::PROTOCOL_VERSION, v);
        };
        self.version = version;
        let groups = hello.extension(ExtensionType::SUPPORTED_GROUPS);
        let ecdhe_ok = match groups {
            None => true,
            Some(data) => data.get(2..).is_some_and(|list| list.chunks_exact(2).any(|c| u16::from_be_bytes([c[0], c[1]]) == NAMED_CURVE_P256)),
        };
        let identity = self.cfg.identity.clone();
        let Some((suite, kx)) = suites::choose(&hello.cipher_suites, identity.is_rsa(), version == ProtocolVersion::TLS1_2, ecdhe_ok) else {
            return self.fatal(AlertDescription::HANDSHAKE_FAILURE, version);
        };
        self.transcript.push(&encode_handshake(HandshakeType::CLIENT_HELLO, body));

        let spec = openssl_server_hello(&hello, version, suite, kx, self.cfg.behaviour, true);
        let random = spec.random;
        let ticket = spec.extensions.iter().any(|(t, _)| *t == ExtensionType::SESSION_TICKET);
        self.send_handshake(&spec.encode());
        self.send_handshake(&encode_certificate(&identity.chain));
        let mut ephemeral = None;
        if kx != KeyExchange::Rsa {
            match server_key_exchange(kx, &identity.key, version == ProtocolVersion::TLS1_2, hello.random, &random) {
                Ok((ske, key)) => {
                    self.send_handshake(&encode_handshake(HandshakeType::SERVER_KEY_EXCHANGE, &ske));
                    ephemeral = Some(key);
                }
                Err(_) => return self.fatal(AlertDescription::INTERNAL_ERROR, version),
            }
        }
        self.send_handshake(&encode_server_hello_done());
        self.flush(); // SSL3_ST_SW_FLUSH at the end of the flight
        let mut client_random = [0u8; 32];
        client_random.iter_mut().zip(hello.random).for_each(|(d, s)| *d = *s);
        self.negotiated = Some(Box::new(Negotiated {
            suite,
            kx,
            client_version: hello.version,
            client_random,
            server_random: random,
            ephemeral,
            ticket,
        }));
        self.suite = Some(suite);
        self.state = State::AwaitClientKeyExchange;
    }

    fn on_client_key_exchange(&mut self, body: &[u8]) {
        let Some(negotiated) = self.negotiated.take() else {
            return self.fatal(AlertDescription::INTERNAL_ERROR, self.version);
        };
        // A suite 1.0.1f would run but the lab cannot (or SSLv3): fail the way a broken server does.
        let spec = match SuiteSpec::for_suite(negotiated.suite) {
            Some(spec) if self.version != ProtocolVersion::SSL3 => spec,
            _ => return self.fatal(AlertDescription::HANDSHAKE_FAILURE, self.version),
        };
        let premaster = match (&negotiated.ephemeral, &self.cfg.identity.key) {
            (Some(ephemeral), _) => match ephemeral.premaster(body) {
                Ok(premaster) => premaster,
                Err(KxError::Decode) => return self.fatal(AlertDescription::DECODE_ERROR, self.version),
                // ssl3_get_client_key_exchange: an unusable point or DH value is a handshake_failure.
                Err(_) => return self.fatal(AlertDescription::HANDSHAKE_FAILURE, self.version),
            },
            (None, SigningKey::Rsa(key)) if negotiated.kx == KeyExchange::Rsa => {
                rsa_premaster(key, body, self.version, negotiated.client_version)
            }
            _ => return self.fatal(AlertDescription::HANDSHAKE_FAILURE, self.version),
        };
        self.transcript.push(&encode_handshake(HandshakeType::CLIENT_KEY_EXCHANGE, body));
        let hash = spec.prf_hash(self.version);
        let master = master_secret(hash, &premaster, &negotiated.client_random, &negotiated.server_random);
        let keys = derive_keys(&spec, self.version, &master, &negotiated.client_random, &negotiated.server_random);
        self.pending = Some(Box::new(PendingKeys {
            spec,
            master,
            ticket: negotiated.ticket,
            client_write: Some(keys.client_write),
            server_write: Some(keys.server_write),
        }));
        self.state = State::AwaitChangeCipherSpec;
    }

    fn on_change_cipher_spec(&mut self, fragment: &[u8]) {
        if fragment != [1] {
            return self.fatal(AlertDescription::ILLEGAL_PARAMETER, self.version);
        }
        // A CCS in the middle of a handshake message would split it across keys.
        if self.handshake.is_mid_message() {
            return self.fatal(AlertDescription::UNEXPECTED_MESSAGE, self.version);
        }
        let Some(read) = self.pending.as_mut().and_then(|p| p.client_write.take()) else {
            return self.fatal(AlertDescription::INTERNAL_ERROR, self.version);
        };
        self.read = Some(read);
        self.state = State::AwaitFinished;
    }

    fn on_finished(&mut self, body: &[u8]) {
        let Some(mut pending) = self.pending.take() else {
            return self.fatal(AlertDescription::INTERNAL_ERROR, self.version);
        };
        if body.len() != VERIFY_DATA_LEN {
            return self.fatal(AlertDescription::DECODE_ERROR, self.version);
        }
        let hash = pending.spec.prf_hash(self.version);
        let expected = verify_data(hash, &pending.master, Side::Client, &self.transcript);
        if !constant_time_eq(body, &expected) {
            return self.fatal(AlertDescription::DECRYPT_ERROR, self.version);
        }
        self.transcript.push(&encode_handshake(HandshakeType::FINISHED, body));
        if pending.ticket {
            // An opaque ticket: the lab never resumes, so there is nothing to put in it.
            let mut ticket = vec![0u8; TICKET_LEN];
            rand::thread_rng().fill_bytes(&mut ticket);
            let mut nst = Vec::with_capacity(6 + TICKET_LEN);
            nst.extend_from_slice(&TICKET_LIFETIME_HINT.to_be_bytes());
            nst.extend_from_slice(&(TICKET_LEN as u16).to_be_bytes());
            nst.extend_from_slice(&ticket);
            self.send_handshake(&encode_handshake(HandshakeType::NEW_SESSION_TICKET, &nst));
        }
        self.send(ContentType::CHANGE_CIPHER_SPEC, self.version, &[1]);
        self.write = pending.server_write.take();
        let server_verify = verify_data(hash, &pending.master, Side::Server, &self.transcript);
        self.send_handshake(&encode_handshake(HandshakeType::FINISHED, &server_verify));
        self.flush();
        self.state = State::Established;
    }

    /// Like `s_server -www`: once a request line is in, answer with a page and close.
    fn on_application_data(&mut self, fragment: &[u8]) {
        let room = REQUEST_LIMIT.saturating_sub(self.request.len());
        self.request.extend_from_slice(&fragment[..fragment.len().min(room)]);
        if !self.request.contains(&b'\n') && self.request.len() < REQUEST_LIMIT {
            return;
        }
        let page = self.lab_page();
        self.send(ContentType::APPLICATION_DATA, self.version, page.as_bytes());
        self.warning(AlertDescription::CLOSE_NOTIFY);
        self.close();
    }

    fn lab_page(&self) -> String {
        let imitates = match self.cfg.behaviour {
            Behaviour::Vulnerable => "OpenSSL 1.0.1f (vulnerable to Heartbleed: over-reads are answered with canary bytes, never memory)",
            Behaviour::Fixed => "OpenSSL 1.0.1g (Heartbleed fixed)",
            Behaviour::NoHeartbeat => "OpenSSL 1.0.1f built without heartbeats",
        };
        let suite = self.suite.map(|s| s.name().map(str::to_owned).unwrap_or_else(|| format!("{:#06x}", s.0))).unwrap_or_default();
        let version = self.version.name().unwrap_or("unknown");
        format!(
            "HTTP/1.0 200 ok\r\nContent-type: text/html\r\n\r\n<HTML><BODY BGCOLOR=\"#ffffff\">\n<pre>\n\
             This is the bleedwatch lab, a TLS server that behaves like {imitates}.\n\
             Protocol: {version}\nCipher: {suite}\n</pre></BODY></HTML>\r\n"
        )
    }

    fn on_heartbeat(&mut self, fragment: &[u8], encrypted: bool) {
        let version = self.version;
        let (action, event) = heartbeat_action(self.cfg.behaviour, version, fragment);
        let before = self.out.wire_len();
        // Whether the heartbeat code ran, after which ssl3_read_bytes returns to the application.
        let returns_to_application = matches!(action, HeartbeatAction::Respond(_) | HeartbeatAction::Drop);
        match action {
            HeartbeatAction::Respond(response) => self.send(ContentType::HEARTBEAT, version, &response),
            HeartbeatAction::Alert => self.fatal(AlertDescription::UNEXPECTED_MESSAGE, version),
            HeartbeatAction::Drop | HeartbeatAction::Ignore => {}
        }
        if let Some(mut event) = event {
            if let LabEvent::Heartbeat { flushed, encrypted: inside, .. } = &mut event {
                *flushed = self.out.wire_len() > before;
                *inside = encrypted;
            }
            self.events.push(event);
        }
        if returns_to_application && self.cfg.drop_after_handshake_heartbeat && !matches!(self.state, State::Established | State::Closed) {
            self.out.discard();
            self.close();
        }
    }
}

/// Fuzz entry point: arbitrary client bytes into each lab behaviour.
pub fn fuzz_client_bytes(data: &[u8], identity: Arc<LabIdentity>) {
    for behaviour in [Behaviour::Vulnerable, Behaviour::Fixed, Behaviour::NoHeartbeat] {
        let mut session = LabSession::new(LabConfig::new(behaviour, identity.clone()));
        for piece in data.chunks(data.first().map(|b| *b as usize + 1).unwrap_or(1)) {
            session.feed(piece);
            let _ = session.take_output();
        }
        let _ = session.take_events();
    }
}

/// The ServerHello OpenSSL 1.0.1f sends for `hello` (shared by the TLS and DTLS lab servers): a
/// random whose first four bytes are the time, no session id when a ticket will be issued
/// (`ssl_get_new_session`), and `ssl_add_serverhello_tlsext`'s extensions in its order —
/// renegotiation_info, ec_point_formats (for ECC suites, when `ec_point_formats` applies),
/// session_ticket, heartbeat (unless built without heartbeats). Extensions 1.0.1f did not know
/// (extended_master_secret, encrypt_then_mac, ...) are not acknowledged.
pub fn openssl_server_hello(
    hello: &ClientHello<'_>,
    version: ProtocolVersion,
    suite: bleedwatch_wire::CipherSuite,
    kx: KeyExchange,
    behaviour: Behaviour,
    ec_point_formats: bool,
) -> ServerHelloSpec {
    let mut rng = rand::thread_rng();
    let mut random = [0u8; 32];
    rng.fill_bytes(&mut random);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as u32).unwrap_or(0);
    random[..4].copy_from_slice(&now.to_be_bytes());
    let ticket = version != ProtocolVersion::SSL3 && hello.extension(ExtensionType::SESSION_TICKET).is_some();
    let mut session_id = vec![0u8; if ticket { 0 } else { 32 }];
    rng.fill_bytes(&mut session_id);
    let mut extensions = Vec::new();
    if hello.signals_renegotiation_info() {
        extensions.push((ExtensionType::RENEGOTIATION_INFO, vec![0]));
    }
    let ecc = matches!(kx, KeyExchange::EcdheRsa | KeyExchange::EcdheEcdsa);
    if ec_point_formats && ecc && hello.extension(ExtensionType::EC_POINT_FORMATS).is_some() {
        extensions.push((ExtensionType::EC_POINT_FORMATS, vec![3, 0, 1, 2]));
    }
    if ticket {
        extensions.push((ExtensionType::SESSION_TICKET, vec![]));
    }
    if behaviour != Behaviour::NoHeartbeat && hello.heartbeat_mode().is_some() {
        extensions.push((ExtensionType::HEARTBEAT, vec![1]));
    }
    ServerHelloSpec { version, random, session_id, cipher_suite: suite, extensions }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::tls12::ConnectionKeys;
    use bleedwatch_wire::codec::{put_prefixed, Prefix};
    use bleedwatch_wire::handshake::ServerHello;
    use bleedwatch_wire::hello::ClientHelloSpec;
    use rsa::Pkcs1v15Encrypt;

    const VERSION: ProtocolVersion = ProtocolVersion::TLS1_2;
    const AES128_SHA: CipherSuite = CipherSuite(0x002f);

    fn records(bytes: &[u8]) -> Vec<(ContentType, Vec<u8>)> {
        let mut d = Deframer::new();
        d.push(bytes).unwrap();
        let mut out = Vec::new();
        while let Some(r) = d.next_record().unwrap() {
            out.push((r.header.content_type, r.fragment.to_vec()));
        }
        out
    }

    fn record(typ: ContentType, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_records(&mut out, typ, VERSION, data, MAX_FRAGMENT_LEN);
        out
    }

    /// Takes a session through an RSA handshake as a client; returns the client's keys.
    fn handshake(session: &mut LabSession) -> ConnectionKeys {
        let identity = session.cfg.identity.clone();
        let SigningKey::Rsa(key) = &identity.key else { panic!("RSA lab identity expected") };
        let client_random = [0x22u8; 32];
        let mut spec = ClientHelloSpec::probe(VERSION, client_random, None);
        spec.cipher_suites = vec![AES128_SHA];
        let hello = spec.encode();
        let mut transcript = Transcript::default();
        transcript.push(&hello);
        session.feed(&record(ContentType::HANDSHAKE, &hello));
        let mut reassembler = HandshakeReassembler::default();
        let mut server_random = Vec::new();
        for (_, fragment) in records(&session.take_output()) {
            reassembler.push(&fragment);
            while let Some(m) = reassembler.next_message().unwrap() {
                transcript.push(&encode_handshake(m.typ, m.body));
                if m.typ == HandshakeType::SERVER_HELLO {
                    server_random = ServerHello::parse(m.body).unwrap().random.to_vec();
                }
            }
        }
        let mut premaster = VERSION.0.to_be_bytes().to_vec();
        premaster.extend_from_slice(&[0x33; 46]);
        let encrypted = key.to_public_key().encrypt(&mut rand::thread_rng(), Pkcs1v15Encrypt, &premaster).unwrap();
        let mut body = Vec::new();
        put_prefixed(&mut body, Prefix::U16, |o| o.extend_from_slice(&encrypted));
        let cke = encode_handshake(HandshakeType::CLIENT_KEY_EXCHANGE, &body);
        transcript.push(&cke);
        let spec = SuiteSpec::for_suite(AES128_SHA).unwrap();
        let hash = spec.prf_hash(VERSION);
        let master = master_secret(hash, &premaster, &client_random, &server_random);
        let mut keys = derive_keys(&spec, VERSION, &master, &client_random, &server_random);
        let finished = encode_handshake(HandshakeType::FINISHED, &verify_data(hash, &master, Side::Client, &transcript));
        let mut flight = record(ContentType::HANDSHAKE, &cke);
        flight.extend(record(ContentType::CHANGE_CIPHER_SPEC, &[1]));
        flight.extend(keys.client_write.seal_records(ContentType::HANDSHAKE, VERSION, &finished));
        session.feed(&flight);
        // NewSessionTicket, CCS, Finished: the server Finished is the first record under the new keys.
        let reply = records(&session.take_output());
        assert_eq!(reply.len(), 3, "{reply:?}");
        keys.server_write.open(ContentType::HANDSHAKE, VERSION, &reply[2].1).unwrap();
        keys
    }

    /// Echo mode (`s_server` without `-www`): the first heartbeat read mid-handshake ends the
    /// connection; an answer of 4 KiB or more is on the wire by then, a shorter one is lost with the
    /// buffer, and nothing after the heartbeat is read. `-www` reads on and alerts on the sentinel.
    #[test]
    fn echo_mode_drops_the_connection_after_a_handshake_heartbeat() {
        let identity = Arc::new(LabIdentity::rsa_lab(&["localhost"]).unwrap());
        let hello = {
            let mut spec = ClientHelloSpec::probe(VERSION, [0x22; 32], None);
            spec.cipher_suites = vec![AES128_SHA];
            record(ContentType::HANDSHAKE, &spec.encode())
        };
        let heartbeat = |len: usize, padding: usize| {
            record(ContentType::HEARTBEAT, &bleedwatch_wire::heartbeat::encode(HeartbeatMessageType::REQUEST, len as u16, &vec![7; len], &vec![0; padding]))
        };
        let sentinel = record(ContentType::HANDSHAKE, &encode_handshake(HandshakeType::HELLO_REQUEST, &[]));
        for (behaviour, echo, len, padding, want) in [
            (Behaviour::Vulnerable, true, 4500, 0, vec![ContentType::HEARTBEAT]),
            (Behaviour::Vulnerable, true, 512, 0, vec![]),
            (Behaviour::Fixed, true, 4500, 0, vec![]),
            (Behaviour::Fixed, false, 4500, 0, vec![ContentType::HEARTBEAT, ContentType::ALERT]),
            (Behaviour::Vulnerable, false, 512, 0, vec![ContentType::HEARTBEAT, ContentType::HEARTBEAT, ContentType::ALERT]),
        ] {
            let mut cfg = LabConfig::new(behaviour, identity.clone());
            if echo {
                cfg = cfg.echo_mode();
            }
            let mut lab = LabSession::new(cfg);
            lab.feed(&hello);
            assert!(!lab.take_output().is_empty());
            let mut bytes = heartbeat(len, padding);
            bytes.extend(heartbeat(len, 16));
            bytes.extend(&sentinel);
            lab.feed(&bytes);
            let sent: Vec<ContentType> = records(&lab.take_output()).into_iter().map(|(t, _)| t).collect();
            assert_eq!(sent, want, "{behaviour:?} echo={echo} {len}");
            assert!(lab.is_closed());
        }
    }

    fn session() -> LabSession {
        let identity = Arc::new(LabIdentity::rsa_lab(&["localhost"]).unwrap());
        LabSession::new(LabConfig::new(Behaviour::Fixed, identity))
    }

    #[test]
    fn handed_over_session_delivers_client_records_and_sends_for_the_owner() {
        let mut lab = session();
        lab.hand_over_records();
        assert_eq!(lab.send_encrypted(ContentType::HEARTBEAT, b"early"), Err(NotEstablished));
        assert!(lab.take_output().is_empty());
        assert_eq!(lab.established_version(), None);
        let mut keys = handshake(&mut lab);
        assert_eq!(lab.established_version(), Some(VERSION));
        assert_eq!(lab.established_suite(), Some(AES128_SHA));

        // The owner's records go out encrypted, at once, in order.
        lab.send_encrypted(ContentType::HEARTBEAT, &[1, 0, 2, 7, 7]).unwrap();
        lab.send_encrypted(ContentType::HANDSHAKE, &encode_handshake(HandshakeType::HELLO_REQUEST, &[])).unwrap();
        let sent = records(&lab.take_output());
        assert_eq!(sent.iter().map(|(t, _)| *t).collect::<Vec<_>>(), [ContentType::HEARTBEAT, ContentType::HANDSHAKE]);
        assert_eq!(keys.server_write.open(ContentType::HEARTBEAT, VERSION, &sent[0].1).unwrap(), [1, 0, 2, 7, 7]);
        assert_eq!(keys.server_write.open(ContentType::HANDSHAKE, VERSION, &sent[1].1).unwrap(), [0, 0, 0, 0]);

        // The client's records come back decrypted and unanswered: a heartbeat request the lab
        // would answer, a request line it would serve a page for, an alert that would close it.
        let request = [1, 0, 1, 9].into_iter().chain([0u8; 16]).collect::<Vec<_>>();
        let mut bytes = keys.client_write.seal_records(ContentType::HEARTBEAT, VERSION, &request);
        bytes.extend(keys.client_write.seal_records(ContentType::APPLICATION_DATA, VERSION, b"GET / HTTP/1.0\n"));
        bytes.extend(keys.client_write.seal_records(ContentType::ALERT, VERSION, &[1, 0]));
        bytes.extend(keys.client_write.seal_records(ContentType::HANDSHAKE, VERSION, &encode_handshake(HandshakeType::CLIENT_HELLO, &[3, 3])));
        lab.feed(&bytes);
        assert!(lab.take_output().is_empty(), "the lab answered for the owner");
        assert!(!lab.is_closed());
        let got = lab.take_peer_records();
        assert_eq!(
            got.iter().map(|r| r.content_type).collect::<Vec<_>>(),
            [ContentType::HEARTBEAT, ContentType::APPLICATION_DATA, ContentType::ALERT, ContentType::HANDSHAKE]
        );
        assert_eq!(got[0].plaintext, request);
        assert_eq!(got[1].plaintext, b"GET / HTTP/1.0\n");
        assert!(lab.take_peer_records().is_empty());
        assert!(!lab.take_events().iter().any(|e| matches!(e, LabEvent::Heartbeat { .. })));

        // A record that fails authentication still ends the session, as before.
        let mut bad = keys.client_write.seal_records(ContentType::APPLICATION_DATA, VERSION, b"x");
        let last = bad.len() - 1;
        bad[last] ^= 1;
        lab.feed(&bad);
        assert!(lab.is_closed());
        assert!(lab.take_peer_records().is_empty());
        assert_eq!(lab.send_encrypted(ContentType::HEARTBEAT, b"late"), Err(NotEstablished));
    }

    #[test]
    fn without_hand_over_the_lab_answers_as_before() {
        let mut lab = session();
        let mut keys = handshake(&mut lab);
        let request = [1, 0, 1, 9].into_iter().chain([0u8; 16]).collect::<Vec<_>>();
        lab.feed(&keys.client_write.seal_records(ContentType::HEARTBEAT, VERSION, &request));
        let answer = records(&lab.take_output());
        assert_eq!(answer.len(), 1);
        let response = keys.server_write.open(ContentType::HEARTBEAT, VERSION, &answer[0].1).unwrap();
        assert_eq!(&response[..4], [2, 0, 1, 9]);
        assert!(lab.take_peer_records().is_empty());
        // The owner may still write into a session it did not take over.
        lab.send_encrypted(ContentType::APPLICATION_DATA, b"hi").unwrap();
        let sent = records(&lab.take_output());
        assert_eq!(keys.server_write.open(ContentType::APPLICATION_DATA, VERSION, &sent[0].1).unwrap(), b"hi");
    }
}
