//! What the detector reports. One flat record per finding (so that JSON lines and CSV carry the same
//! columns), with counts and lengths only: leaked memory is sensitive, so no payload byte is kept.

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use crate::notice_message::NoticeMessage;

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

/// Text shared by many findings (the file name): cloning it copies a pointer. Reads as a `str`, and
/// serializes as a plain string.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SharedText(Arc<str>);

impl std::ops::Deref for SharedText {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for SharedText {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for SharedText {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl From<&str> for SharedText {
    fn from(text: &str) -> Self {
        SharedText(Arc::from(text))
    }
}

impl From<String> for SharedText {
    fn from(text: String) -> Self {
        SharedText(Arc::from(text))
    }
}

impl std::fmt::Debug for SharedText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&*self.0, f)
    }
}

impl std::fmt::Display for SharedText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for SharedText {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for SharedText {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl PartialEq<String> for SharedText {
    fn eq(&self, other: &String) -> bool {
        *self.0 == **other
    }
}

impl Serialize for SharedText {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SharedText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(SharedText::from)
    }
}

/// A capture time to the microsecond, written as RFC 3339 in UTC (`2014-04-09T18:34:55.123456Z`)
/// when displayed or serialized, and kept as a number until then: most findings are only counted.
/// A time outside what a calendar can show is written as epoch seconds instead, never a panic.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CaptureTime {
    micros: i64,
}

impl CaptureTime {
    pub fn from_unix_micros(micros: i64) -> Self {
        CaptureTime { micros }
    }

    pub fn unix_micros(self) -> i64 {
        self.micros
    }

    fn parse(text: &str) -> Option<Self> {
        use time::format_description::well_known::Rfc3339;
        if let Ok(t) = time::OffsetDateTime::parse(text, &Rfc3339) {
            return i64::try_from(t.unix_timestamp_nanos().div_euclid(1_000)).ok().map(Self::from_unix_micros);
        }
        let secs: f64 = text.parse().ok().filter(|s: &f64| s.is_finite())?;
        Some(Self::from_unix_micros((secs * 1e6).round() as i64))
    }
}

impl std::fmt::Display for CaptureTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.micros) * 1_000) {
            Ok(t) if (0..=9999).contains(&t.year()) => {
                // Digit by digit into a fixed buffer: JSON output writes one per finding.
                let mut out = [0u8; 27];
                let mut at = 0;
                let mut put = |value: u32, width: u32, sep: u8| {
                    for i in (0..width).rev() {
                        out[at] = b'0' + (value / 10u32.pow(i) % 10) as u8;
                        at += 1;
                    }
                    out[at] = sep;
                    at += 1;
                };
                put(t.year() as u32, 4, b'-');
                put(u32::from(u8::from(t.month())), 2, b'-');
                put(u32::from(t.day()), 2, b'T');
                put(u32::from(t.hour()), 2, b':');
                put(u32::from(t.minute()), 2, b':');
                put(u32::from(t.second()), 2, b'.');
                put(t.microsecond(), 6, b'Z');
                f.write_str(std::str::from_utf8(&out).map_err(|_| std::fmt::Error)?)
            }
            _ => write!(f, "{:.6}", self.micros as f64 / 1e6),
        }
    }
}

impl std::fmt::Debug for CaptureTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "\"{self}\"")
    }
}

impl Serialize for CaptureTime {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for CaptureTime {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        CaptureTime::parse(&text).ok_or_else(|| serde::de::Error::custom(format!("not an RFC 3339 time: {text:?}")))
    }
}

/// One finding on one connection. It is plain data: addresses and times are kept as values and
/// become text only when written, the file name is shared ([`SharedText`]) and fixed names are
/// static, so a capture with millions of findings does not allocate for each one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// The capture it came from (of pieces read as one, `Joined`: the piece its connection began in).
    pub file: SharedText,
    /// When the record behind the finding completed (RFC 3339 UTC when written).
    pub time: CaptureTime,
    /// The same instant as seconds since the Unix epoch.
    pub ts: f64,
    /// Connection number within that file, in order of first packet.
    pub connection: u64,
    /// `tcp` or `udp` (DTLS).
    pub transport: Cow<'static, str>,
    /// The connection's client (originator) and server (responder).
    pub src_ip: IpAddr,
    pub src_port: u16,
    pub dst_ip: IpAddr,
    pub dst_port: u16,
    /// Who sent the heartbeat request (`ip:port`, `[ipv6]:port` when written).
    pub attacker: SocketAddr,
    /// Who was asked (and, for responses, who answered).
    pub victim: SocketAddr,
    /// `client-to-server` (a client attacking a server) or `server-to-client` (a malicious server
    /// reading a client's memory).
    pub direction: Cow<'static, str>,
    pub kind: Kind,
    pub severity: Severity,
    /// The Zeek notice this finding corresponds to (`Heartbleed::SSL_Heartbeat_Attack`, ...), if Zeek's
    /// heartbleed script would raise one here.
    pub notice: Option<Cow<'static, str>>,
    /// Zeek's message text for that notice.
    pub notice_msg: Option<NoticeMessage>,
    /// Zeek's `n` field for that notice.
    pub notice_n: Option<u64>,
    pub encrypted: bool,
    /// Negotiated version (ServerHello) or, failing that, the record version.
    pub tls_version: Option<Cow<'static, str>>,
    /// Negotiated cipher suite, when the ServerHello was seen.
    pub cipher: Option<Cow<'static, str>>,
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn capture_time_is_rfc3339_in_utc() {
        let t = CaptureTime::from_unix_micros(1_397_068_495_123_456);
        assert_eq!(t.to_string(), "2014-04-09T18:34:55.123456Z");
        assert_eq!(CaptureTime::from_unix_micros(0).to_string(), "1970-01-01T00:00:00.000000Z");
        assert_eq!(CaptureTime::parse("2014-04-09T18:34:55.123456Z"), Some(t));
        assert_eq!(serde_json::to_string(&t).unwrap(), "\"2014-04-09T18:34:55.123456Z\"");
    }

    #[test]
    fn capture_time_beyond_the_calendar_is_seconds() {
        for micros in [i64::MAX, i64::MIN, -62_167_219_200_000_001] {
            let t = CaptureTime::from_unix_micros(micros);
            let text = t.to_string();
            assert!(!text.contains('T'), "{text}");
            assert!(CaptureTime::parse(&text).is_some());
        }
        assert!(serde_json::from_str::<CaptureTime>("\"yesterday\"").is_err());
    }

    proptest! {
        /// Written and read back, a time within the calendar is the same time.
        #[test]
        fn capture_time_round_trips(micros in -62_167_219_200_000_000i64..253_402_300_800_000_000) {
            let t = CaptureTime::from_unix_micros(micros);
            let back: CaptureTime = serde_json::from_str(&serde_json::to_string(&t).unwrap()).unwrap();
            prop_assert_eq!(back, t);
        }
    }
}
