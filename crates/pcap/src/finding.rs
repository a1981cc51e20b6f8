//! What the detector reports. One flat record per finding (so that JSON lines and CSV carry the same
//! columns), with counts and lengths only: leaked memory is sensitive, so no payload byte is kept.

use serde::{Deserialize, Serialize};

/// What was seen. Plaintext kinds come from readable heartbeat headers (before ChangeCipherSpec);
/// `encrypted_*` kinds are inferred from record sizes and timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A request claiming more payload than its record holds: the over-read (Heartbleed itself).
    HeartbeatOverflow,
    /// A request whose payload fits but with less than the 16 bytes of padding RFC 6520 requires: a
    /// non-exploiting probe (a fixed OpenSSL drops it silently, a vulnerable one answers).
    HeartbeatUnpadded,
    /// A heartbeat record too short to hold its own header.
    HeartbeatMalformed,
    /// A valid plaintext request from the client, reported only because Zeek notices it.
    HeartbeatPlaintextRequest,
    /// The peer answered an over-reading request: memory beyond what was sent came back.
    HeartbeatResponseLeak,
    /// The peer answered an invalid (unpadded) request: it is vulnerable, but nothing beyond the
    /// request's own bytes came back.
    HeartbeatResponseToInvalid,
    /// A response to a valid request, reported only because Zeek notices it.
    HeartbeatResponse,
    /// A response to no request seen in the capture.
    HeartbeatResponseUnsolicited,
    /// An encrypted heartbeat before any application data (scanners attack right after the
    /// handshake). Severity depends on the answer: none (suspicious), longer (attack), not longer
    /// (an in-bounds heartbeat, benign).
    EncryptedHeartbeatBeforeData,
    /// An encrypted heartbeat within the first minute of the connection, after application data
    /// (Zeek's "Heartbeat within first minute").
    EncryptedHeartbeatEarly,
    /// An encrypted heartbeat record shorter than the negotiated cipher's minimum for a request with
    /// 16 bytes of padding.
    EncryptedHeartbeatOddLength,
    /// The encrypted answer is longer than the encrypted request: the peer sent back more than it was
    /// given.
    EncryptedHeartbeatSuccess,
    /// Far more heartbeats one way than the other (Zeek's SSL_Heartbeat_Many_Requests).
    ManyRequests,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::HeartbeatOverflow => "heartbeat_overflow",
            Kind::HeartbeatUnpadded => "heartbeat_unpadded",
            Kind::HeartbeatMalformed => "heartbeat_malformed",
            Kind::HeartbeatPlaintextRequest => "heartbeat_plaintext_request",
            Kind::HeartbeatResponseLeak => "heartbeat_response_leak",
            Kind::HeartbeatResponseToInvalid => "heartbeat_response_to_invalid",
            Kind::HeartbeatResponse => "heartbeat_response",
            Kind::HeartbeatResponseUnsolicited => "heartbeat_response_unsolicited",
            Kind::EncryptedHeartbeatBeforeData => "encrypted_heartbeat_before_data",
            Kind::EncryptedHeartbeatEarly => "encrypted_heartbeat_early",
            Kind::EncryptedHeartbeatOddLength => "encrypted_heartbeat_odd_length",
            Kind::EncryptedHeartbeatSuccess => "encrypted_heartbeat_success",
            Kind::ManyRequests => "many_requests",
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How much a finding weighs, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Context, not an attack (e.g. a Zeek notice on a benign heartbeat).
    Info,
    /// Looks like an attack but cannot be confirmed (encrypted, unanswered).
    Suspicious,
    /// An invalid request that does not over-read: a scanner's probe.
    Probe,
    /// An over-reading request.
    Attack,
    /// The victim answered an invalid request: vulnerable, and memory may have leaked.
    Success,
}

impl Severity {
    /// True for anything that counts as an attack attempt (probe or worse, or an unconfirmed one).
    pub fn is_attempt(self) -> bool {
        self >= Severity::Suspicious
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Suspicious => "suspicious",
            Severity::Probe => "probe",
            Severity::Attack => "attack",
            Severity::Success => "success",
        }
    }
}

/// Zeek's heartbleed notice types, named as `notice.log` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Notice {
    Attack,
    AttackSuccess,
    OddLength,
    ManyRequests,
}

impl Notice {
    pub fn name(self) -> &'static str {
        match self {
            Notice::Attack => "Heartbleed::SSL_Heartbeat_Attack",
            Notice::AttackSuccess => "Heartbleed::SSL_Heartbeat_Attack_Success",
            Notice::OddLength => "Heartbleed::SSL_Heartbeat_Odd_Length",
            Notice::ManyRequests => "Heartbleed::SSL_Heartbeat_Many_Requests",
        }
    }
}

/// One finding on one connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// The capture it came from.
    pub file: String,
    /// When the record behind the finding completed, RFC 3339 UTC.
    pub time: String,
    /// The same instant as seconds since the Unix epoch.
    pub ts: f64,
    /// Connection number within the file, in order of first packet.
    pub connection: u64,
    /// `tcp` or `udp` (DTLS).
    pub transport: String,
    /// The connection's client (originator) and server (responder).
    pub src_ip: String,
    pub src_port: u16,
    pub dst_ip: String,
    pub dst_port: u16,
    /// Who sent the heartbeat request, as `ip:port`.
    pub attacker: String,
    /// Who was asked (and, for responses, who answered), as `ip:port`.
    pub victim: String,
    /// `client-to-server` (a client attacking a server) or `server-to-client` (a malicious server
    /// reading a client's memory).
    pub direction: String,
    pub kind: Kind,
    pub severity: Severity,
    /// The Zeek notice this finding corresponds to (`Heartbleed::SSL_Heartbeat_Attack`, ...), if Zeek's
    /// heartbleed script would raise one here.
    pub notice: Option<String>,
    /// Zeek's message text for that notice.
    pub notice_msg: Option<String>,
    /// Zeek's `n` field for that notice.
    pub notice_n: Option<u64>,
    pub encrypted: bool,
    /// Negotiated version (ServerHello) or, failing that, the record version.
    pub tls_version: Option<String>,
    /// Negotiated cipher suite, when the ServerHello was seen.
    pub cipher: Option<String>,
    /// Length of the record behind the finding (request or first response record).
    pub record_length: Option<u32>,
    /// The heartbeat's claimed payload_length (plaintext only).
    pub payload_length: Option<u32>,
    /// Payload bytes the request actually carried (plaintext only).
    pub payload_present: Option<u32>,
    /// Record length of the request a response answers.
    pub request_record_length: Option<u32>,
    /// Heartbeat records of the answer.
    pub response_records: Option<u32>,
    /// Record bytes of the answer that reached the capture.
    pub response_bytes: Option<u64>,
    /// Bytes that came back beyond what the requester sent. Plaintext: exact payload bytes. Encrypted:
    /// an estimate, answer minus request record bytes.
    pub leaked_bytes: Option<u64>,
}
