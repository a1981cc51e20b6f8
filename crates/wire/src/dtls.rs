//! DTLS 1.0 / 1.2 (RFC 4347, RFC 6347) framing, sans-IO: the 13-byte record header with epoch and
//! 48-bit sequence number, several records per datagram, the 12-byte handshake header with message
//! sequence and fragment offset/length, a reassembler for fragments that arrive out of order,
//! overlapping or twice, fragmenting a message to fit an MTU, and HelloVerifyRequest encoding.
//!
//! Handshake message *bodies* are the TLS ones (DTLS only adds the ClientHello cookie, which
//! [`crate::hello::ClientHelloSpec`] and [`crate::handshake::ClientHello`] already handle), so the
//! hello parsers and encoders are shared with TLS; this module only changes the framing.
//!
//! Like the rest of the crate, nothing here trusts a length from the peer: a datagram is walked with
//! [`Reader`], a record or message longer than its cap is rejected before anything is allocated for
//! it, and the reassembler bounds how many messages and bytes it holds.

use std::collections::BTreeMap;

use crate::codec::{put_u16, put_u24, put_u48, put_u8, Reader};
use crate::error::WireError;
use crate::handshake::HANDSHAKE_HEADER_LEN as TLS_HANDSHAKE_HEADER_LEN;
use crate::hello::ClientHelloSpec;
use crate::record::{MAX_CIPHERTEXT_LEN, MAX_FRAGMENT_LEN};
use crate::types::{CipherSuite, ContentType, HandshakeType, ProtocolVersion};

/// type (1) + version (2) + epoch (2) + sequence_number (6) + length (2).
pub const RECORD_HEADER_LEN: usize = 13;
/// msg_type (1) + length (3) + message_seq (2) + fragment_offset (3) + fragment_length (3).
pub const HANDSHAKE_HEADER_LEN: usize = 12;
/// Record sequence numbers are 48 bits and must not wrap within an epoch (RFC 6347 §4.1).
pub const MAX_SEQUENCE: u64 = (1 << 48) - 1;
/// The largest UDP payload; no datagram can be longer.
pub const MAX_DATAGRAM_LEN: usize = 65_507;
/// A conservative path MTU for what we send (IPv6's 1280 minimum less IP/UDP headers leaves 1232;
/// typical Ethernet paths carry 1472). Records are never split across datagrams.
pub const DEFAULT_MTU: usize = 1200;

/// True when `raw` could start a DTLS record: a known content type and DTLS's major version 0xfe
/// (minor 0xff for 1.0, 0xfd for 1.2; 0xfc is what DTLS 1.3 peers may put in legacy fields).
pub fn looks_like_dtls_header(raw: &[u8]) -> bool {
    matches!(raw, [t, 0xfe, minor, ..] if (20..=24).contains(t) && *minor >= 0xfc)
}

fn first_five(bytes: &[u8]) -> [u8; 5] {
    let mut raw = [0u8; 5];
    for (dst, src) in raw.iter_mut().zip(bytes) {
        *dst = *src;
    }
    raw
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtlsRecordHeader {
    pub content_type: ContentType,
    pub version: ProtocolVersion,
    pub epoch: u16,
    /// 48-bit record sequence number.
    pub sequence: u64,
    pub length: u16,
}

impl DtlsRecordHeader {
    /// Parses the 13-byte header at the front of `bytes`. Anything that is not a plausible DTLS header
    /// is [`WireError::NotTls`] (with the first bytes), a length above the ciphertext limit is
    /// [`WireError::RecordTooLong`].
    pub fn parse(bytes: &[u8]) -> Result<DtlsRecordHeader, WireError> {
        if !looks_like_dtls_header(bytes) {
            return Err(WireError::NotTls(first_five(bytes)));
        }
        let mut r = Reader::new(bytes);
        let content_type = ContentType(r.u8("dtls_record.type")?);
        let version = ProtocolVersion(r.u16("dtls_record.version")?);
        let epoch = r.u16("dtls_record.epoch")?;
        let sequence = r.u48("dtls_record.sequence_number")?;
        let length = r.u16("dtls_record.length")?;
        if length as usize > MAX_CIPHERTEXT_LEN {
            return Err(WireError::RecordTooLong { length: length as usize, limit: MAX_CIPHERTEXT_LEN });
        }
        Ok(DtlsRecordHeader { content_type, version, epoch, sequence, length })
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        put_u8(out, self.content_type.0);
        put_u16(out, self.version.0);
        put_u16(out, self.epoch);
        put_u48(out, self.sequence & MAX_SEQUENCE);
        put_u16(out, self.length);
    }
}

/// One record of a datagram, borrowing its fragment from the datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtlsRecord<'a> {
    pub header: DtlsRecordHeader,
    pub fragment: &'a [u8],
}

/// The records of one datagram, in order. A malformed or truncated record ends the walk with one
/// error: RFC 6347 §4.1.2.7 has the rest of such a datagram discarded, and a record never continues in
/// the next datagram.
#[derive(Debug, Clone)]
pub struct DatagramRecords<'a> {
    reader: Reader<'a>,
    done: bool,
}

/// Walks the records of `datagram`.
pub fn records(datagram: &[u8]) -> DatagramRecords<'_> {
    DatagramRecords { reader: Reader::new(datagram), done: false }
}

impl<'a> Iterator for DatagramRecords<'a> {
    type Item = Result<DtlsRecord<'a>, WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.reader.is_empty() {
            return None;
        }
        let mut peek = self.reader.clone();
        let result = peek.take(RECORD_HEADER_LEN.min(peek.left()), "dtls_record.header").and_then(|head| {
            if head.len() < RECORD_HEADER_LEN {
                // A few stray bytes that are not even a header: say what they look like.
                return Err(if looks_like_dtls_header(head) {
                    WireError::Truncated { what: "dtls_record.header", needed: RECORD_HEADER_LEN - head.len() }
                } else {
                    WireError::NotTls(first_five(head))
                });
            }
            let header = DtlsRecordHeader::parse(head)?;
            let fragment = peek.take(header.length as usize, "dtls_record.fragment")?;
            Ok(DtlsRecord { header, fragment })
        });
        match result {
            Ok(record) => {
                self.reader = peek;
                Some(Ok(record))
            }
            Err(err) => {
                self.done = true;
                Some(Err(err))
            }
        }
    }
}

/// Writes records for one direction of one epoch, numbering them.
#[derive(Debug, Clone)]
pub struct DtlsRecordEncoder {
    version: ProtocolVersion,
    epoch: u16,
    next_sequence: u64,
}

impl DtlsRecordEncoder {
    pub fn new(version: ProtocolVersion, epoch: u16) -> Self {
        DtlsRecordEncoder { version, epoch, next_sequence: 0 }
    }

    /// Later records carry `version` (e.g. once the peer negotiated one).
    pub fn set_version(&mut self, version: ProtocolVersion) {
        self.version = version;
    }

    pub fn version(&self) -> ProtocolVersion {
        self.version
    }

    pub fn epoch(&self) -> u16 {
        self.epoch
    }

    /// The sequence number the next record will get.
    pub fn next_sequence(&self) -> u64 {
        self.next_sequence
    }

    /// One record of `content_type` holding `fragment`, with the next sequence number.
    pub fn encode(&mut self, content_type: ContentType, fragment: &[u8]) -> Result<Vec<u8>, WireError> {
        if fragment.len() > MAX_FRAGMENT_LEN {
            return Err(WireError::RecordTooLong { length: fragment.len(), limit: MAX_FRAGMENT_LEN });
        }
        if self.next_sequence > MAX_SEQUENCE {
            return Err(WireError::invalid("dtls_record.sequence_number", "sequence numbers exhausted for this epoch"));
        }
        let header = DtlsRecordHeader {
            content_type,
            version: self.version,
            epoch: self.epoch,
            sequence: self.next_sequence,
            length: fragment.len() as u16,
        };
        self.next_sequence += 1;
        let mut out = Vec::with_capacity(RECORD_HEADER_LEN + fragment.len());
        header.encode(&mut out);
        out.extend_from_slice(fragment);
        Ok(out)
    }
}

/// Packs whole records into datagrams of at most `mtu` bytes, in order. A record longer than `mtu` gets a
/// datagram of its own (records are never split).
pub fn pack_datagrams(records: &[Vec<u8>], mtu: usize) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    let mut current: Vec<u8> = Vec::new();
    for record in records {
        if !current.is_empty() && current.len() + record.len() > mtu {
            out.push(std::mem::take(&mut current));
        }
        current.extend_from_slice(record);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// The DTLS handshake header of one message fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtlsHandshakeHeader {
    pub typ: HandshakeType,
    /// Length of the whole message body.
    pub length: u32,
    pub message_seq: u16,
    pub fragment_offset: u32,
    pub fragment_length: u32,
}

impl DtlsHandshakeHeader {
    pub fn encode(&self, out: &mut Vec<u8>) {
        put_u8(out, self.typ.0);
        put_u24(out, self.length);
        put_u16(out, self.message_seq);
        put_u24(out, self.fragment_offset);
        put_u24(out, self.fragment_length);
    }

    /// Whether this fragment carries the whole message.
    pub fn is_whole(&self) -> bool {
        self.fragment_offset == 0 && self.fragment_length == self.length
    }
}

/// One handshake fragment as found in a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtlsHandshakeFragment<'a> {
    pub header: DtlsHandshakeHeader,
    pub body: &'a [u8],
}

/// Parses every handshake fragment of one handshake record (a record may hold several). Fragments
/// whose offset and length overrun the message length are rejected here.
pub fn handshake_fragments(record_fragment: &[u8]) -> Result<Vec<DtlsHandshakeFragment<'_>>, WireError> {
    let mut r = Reader::new(record_fragment);
    let mut out = Vec::new();
    while !r.is_empty() {
        let typ = HandshakeType(r.u8("dtls_handshake.type")?);
        let length = r.u24("dtls_handshake.length")?;
        let message_seq = r.u16("dtls_handshake.message_seq")?;
        let fragment_offset = r.u24("dtls_handshake.fragment_offset")?;
        let fragment_length = r.u24("dtls_handshake.fragment_length")?;
        if u64::from(fragment_offset) + u64::from(fragment_length) > u64::from(length) {
            return Err(WireError::invalid(
                "dtls_handshake.fragment",
                format!("offset {fragment_offset} + length {fragment_length} exceeds message length {length}"),
            ));
        }
        let body = r.take(fragment_length as usize, "dtls_handshake.fragment_body")?;
        out.push(DtlsHandshakeFragment {
            header: DtlsHandshakeHeader { typ, length, message_seq, fragment_offset, fragment_length },
            body,
        });
    }
    Ok(out)
}

/// The fragment of a handshake message covering `body[offset..offset + len]` (cut to the body),
/// with its header.
pub fn encode_handshake_fragment(typ: HandshakeType, message_seq: u16, body: &[u8], offset: usize, len: usize) -> Vec<u8> {
    let piece = body.get(offset..).unwrap_or_default();
    let piece = &piece[..len.min(piece.len())];
    let mut out = Vec::with_capacity(HANDSHAKE_HEADER_LEN + piece.len());
    DtlsHandshakeHeader {
        typ,
        length: body.len() as u32,
        message_seq,
        fragment_offset: offset as u32,
        fragment_length: piece.len() as u32,
    }
    .encode(&mut out);
    out.extend_from_slice(piece);
    out
}

/// One handshake message as a single fragment (header + body).
pub fn encode_handshake(typ: HandshakeType, message_seq: u16, body: &[u8]) -> Vec<u8> {
    encode_handshake_fragment(typ, message_seq, body, 0, body.len())
}

/// Splits one handshake message into fragments whose bodies are at most `max_fragment_body` bytes (at
/// least one byte each; an empty message is one empty fragment). Each comes with its header.
pub fn encode_handshake_fragments(typ: HandshakeType, message_seq: u16, body: &[u8], max_fragment_body: usize) -> Vec<Vec<u8>> {
    if body.is_empty() {
        return vec![encode_handshake(typ, message_seq, body)];
    }
    let step = max_fragment_body.max(1);
    (0..body.len()).step_by(step).map(|offset| encode_handshake_fragment(typ, message_seq, body, offset, step)).collect()
}

/// Encodes a flight of handshake messages as records (one fragment per record) packed into datagrams of
/// at most `mtu` bytes, fragmenting messages that do not fit, the way OpenSSL's `dtls1_do_write` fills
/// each datagram before starting the next.
pub fn encode_flight(
    encoder: &mut DtlsRecordEncoder,
    messages: &[(HandshakeType, u16, &[u8])],
    mtu: usize,
) -> Result<Vec<Vec<u8>>, WireError> {
    let overhead = RECORD_HEADER_LEN + HANDSHAKE_HEADER_LEN;
    let mtu = mtu.max(overhead + 1);
    let mut datagrams = Vec::new();
    let mut current: Vec<u8> = Vec::new();
    for &(typ, seq, body) in messages {
        let mut offset = 0usize;
        loop {
            let mut room = mtu.saturating_sub(current.len() + overhead);
            if room == 0 || (room < body.len() - offset && room < 64 && !current.is_empty()) {
                // Too little room left for a useful fragment: start a new datagram.
                datagrams.push(std::mem::take(&mut current));
                room = mtu - overhead;
            }
            let take = room.min(body.len() - offset).min(MAX_FRAGMENT_LEN - HANDSHAKE_HEADER_LEN);
            let fragment = encode_handshake_fragment(typ, seq, body, offset, take);
            current.extend_from_slice(&encoder.encode(ContentType::HANDSHAKE, &fragment)?);
            offset += take;
            if offset >= body.len() {
                break;
            }
        }
    }
    if !current.is_empty() {
        datagrams.push(current);
    }
    Ok(datagrams)
}

/// The DTLS ClientHello body for `spec` (the TLS body with the cookie, which `ClientHelloSpec` writes
/// for DTLS versions), without any handshake header.
pub fn client_hello_body(spec: &ClientHelloSpec) -> Vec<u8> {
    let framed = spec.encode();
    framed.get(TLS_HANDSHAKE_HEADER_LEN..).unwrap_or_default().to_vec()
}

/// The suites a DTLS ClientHello may offer: stream ciphers (RC4) are forbidden in DTLS (RFC 6347 §4.1.2.2).
pub fn dtls_cipher_suites(suites: &[CipherSuite]) -> Vec<CipherSuite> {
    suites.iter().copied().filter(|s| !is_rc4(*s)).collect()
}

/// RC4 suites, which DTLS does not allow.
pub fn is_rc4(suite: CipherSuite) -> bool {
    matches!(suite.0, 0x0003 | 0x0004 | 0x0005 | 0x0017 | 0x0018 | 0x0020 | 0x0024 | 0x0028 | 0x002b | 0x008a | 0x008e | 0x0092 | 0xc002 | 0xc007 | 0xc00c | 0xc011 | 0xc016 | 0xc033)
}

/// A HelloVerifyRequest body: server_version and the cookie (at most 255 bytes; longer is cut, since
/// only our own servers encode these).
pub fn encode_hello_verify_request(version: ProtocolVersion, cookie: &[u8]) -> Vec<u8> {
    let cookie = cookie.get(..255).unwrap_or(cookie);
    let mut out = Vec::with_capacity(3 + cookie.len());
    put_u16(&mut out, version.0);
    put_u8(&mut out, cookie.len() as u8);
    out.extend_from_slice(cookie);
    out
}

/// Limits for [`DtlsHandshakeReassembler`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReassemblyLimits {
    /// Longest message body accepted (checked on the first fragment's header, before allocating).
    pub max_message_len: usize,
    /// How far ahead of the next expected message_seq a fragment may be and still be kept
    /// (OpenSSL keeps 10); further ones are dropped.
    pub max_ahead: u16,
    /// Total body bytes held for messages not yet complete or not yet taken.
    pub max_buffered: usize,
}

impl Default for ReassemblyLimits {
    fn default() -> Self {
        ReassemblyLimits {
            max_message_len: crate::handshake::DEFAULT_MAX_MESSAGE,
            max_ahead: 10,
            max_buffered: 256 * 1024,
        }
    }
}

/// What happened to a pushed fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FragmentDisposition {
    /// Stored (or already had these bytes).
    Accepted,
    /// For a message already delivered: a retransmission.
    Stale,
    /// Too far ahead of the next expected message; dropped.
    TooFarAhead,
}

/// A complete handshake message, in message_seq order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DtlsMessage {
    pub typ: HandshakeType,
    pub message_seq: u16,
    pub body: Vec<u8>,
}

#[derive(Debug)]
struct PartialMessage {
    typ: HandshakeType,
    body: Vec<u8>,
    /// One bit per body byte received.
    received: Vec<u8>,
    received_count: usize,
}

impl PartialMessage {
    fn new(typ: HandshakeType, len: usize) -> Self {
        PartialMessage { typ, body: vec![0; len], received: vec![0; len.div_ceil(8)], received_count: 0 }
    }

    fn is_complete(&self) -> bool {
        self.received_count == self.body.len()
    }

    fn add(&mut self, offset: usize, bytes: &[u8]) {
        for (i, byte) in bytes.iter().enumerate() {
            let at = offset + i;
            let (slot, bit) = (at / 8, 1u8 << (at % 8));
            let (Some(mark), Some(dst)) = (self.received.get_mut(slot), self.body.get_mut(at)) else { return };
            // The first copy of a byte wins; retransmissions carry the same bytes anyway.
            if *mark & bit == 0 {
                *mark |= bit;
                *dst = *byte;
                self.received_count += 1;
            }
        }
    }
}

/// Reassembles handshake messages from fragments that may arrive in any order, overlap, or repeat, and
/// hands them out strictly in message_seq order. Memory is bounded by [`ReassemblyLimits`].
#[derive(Debug)]
pub struct DtlsHandshakeReassembler {
    next_seq: u16,
    pending: BTreeMap<u16, PartialMessage>,
    buffered: usize,
    limits: ReassemblyLimits,
}

impl DtlsHandshakeReassembler {
    /// Expects `next_seq` first (0 for a fresh handshake).
    pub fn new(next_seq: u16, limits: ReassemblyLimits) -> Self {
        DtlsHandshakeReassembler { next_seq, pending: BTreeMap::new(), buffered: 0, limits }
    }

    /// The message_seq the next delivered message will have.
    pub fn next_seq(&self) -> u16 {
        self.next_seq
    }

    /// Whether any fragment of a not-yet-delivered message is held.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Adds one fragment. Errors mean the peer contradicts itself (a message whose type or length
    /// changes between fragments, a fragment past the end) or exceeds a cap.
    pub fn push(&mut self, fragment: &DtlsHandshakeFragment<'_>) -> Result<FragmentDisposition, WireError> {
        let h = fragment.header;
        if h.message_seq < self.next_seq {
            return Ok(FragmentDisposition::Stale);
        }
        if h.message_seq - self.next_seq > self.limits.max_ahead {
            return Ok(FragmentDisposition::TooFarAhead);
        }
        let length = h.length as usize;
        let offset = h.fragment_offset as usize;
        if offset + fragment.body.len() > length || fragment.body.len() != h.fragment_length as usize {
            return Err(WireError::invalid("dtls_handshake.fragment", "fragment exceeds its message"));
        }
        match self.pending.get_mut(&h.message_seq) {
            Some(partial) => {
                if partial.typ != h.typ || partial.body.len() != length {
                    return Err(WireError::invalid(
                        "dtls_handshake.fragment",
                        format!("message {} changed type or length between fragments", h.message_seq),
                    ));
                }
                partial.add(offset, fragment.body);
            }
            None => {
                if length > self.limits.max_message_len {
                    return Err(WireError::HandshakeTooLong { length, limit: self.limits.max_message_len });
                }
                if self.buffered + length > self.limits.max_buffered {
                    return Err(WireError::BufferFull { limit: self.limits.max_buffered });
                }
                let mut partial = PartialMessage::new(h.typ, length);
                partial.add(offset, fragment.body);
                self.buffered += length;
                self.pending.insert(h.message_seq, partial);
            }
        }
        Ok(FragmentDisposition::Accepted)
    }

    /// Parses a handshake record and pushes all its fragments; returns how many were stale (already
    /// delivered), which tells a peer's retransmission from new data.
    pub fn push_record(&mut self, record_fragment: &[u8]) -> Result<usize, WireError> {
        let mut stale = 0;
        for fragment in handshake_fragments(record_fragment)? {
            if self.push(&fragment)? == FragmentDisposition::Stale {
                stale += 1;
            }
        }
        Ok(stale)
    }

    /// The next message in sequence, once all its bytes are in.
    pub fn next_message(&mut self) -> Option<DtlsMessage> {
        if !self.pending.get(&self.next_seq)?.is_complete() {
            return None;
        }
        let partial = self.pending.remove(&self.next_seq)?;
        self.buffered = self.buffered.saturating_sub(partial.body.len());
        let message = DtlsMessage { typ: partial.typ, message_seq: self.next_seq, body: partial.body };
        self.next_seq = self.next_seq.wrapping_add(1);
        Some(message)
    }
}

/// Fuzz entry point: walks `data` as a datagram and feeds every handshake record to a reassembler.
/// Must never panic.
pub fn fuzz_datagram(data: &[u8]) {
    let mut reassembler = DtlsHandshakeReassembler::new(0, ReassemblyLimits::default());
    for record in records(data) {
        let Ok(record) = record else { break };
        if record.header.content_type == ContentType::HANDSHAKE {
            let _ = reassembler.push_record(record.fragment);
            while let Some(message) = reassembler.next_message() {
                crate::fuzzing::handshake_message(message.typ, &message.body);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::handshake::{parse_hello_verify_request, ClientHello, ServerHello};
    use crate::heartbeat::HeartbeatMode;
    use proptest::prelude::*;

    /// Datagrams 2 and 4 of `openssl-1.0.1f-lab/hbprobe-heartbleed-vulnerable-1.0.1f-dtls1.pcap`: the
    /// real OpenSSL 1.0.1f `-dtls1` server's HelloVerifyRequest, and the start of its ServerHello record.
    const REAL_HELLO_VERIFY_REQUEST: &str =
        "16feff00000000000000000023030000170000000000000017feff144d897e8086ac995d790f8644fb970b2c714cb30c";
    const REAL_SERVER_HELLO_RECORD: &str = "16feff0000000000000001005e020000520001000000000052feff0ce2ae186f92c0e4fe47f1076cc42dfbc9a6c7c3a0ac3e38fef5d2d37e735c132074ea57ce1d4d75f7944aef593b7e7dd53fda8411232382edd3f129410176dd97c01400000aff01000100000f000101";

    #[test]
    fn parses_the_real_hello_verify_request() {
        let datagram = hex::decode(REAL_HELLO_VERIFY_REQUEST).unwrap();
        let recs: Vec<_> = records(&datagram).collect::<Result<_, _>>().unwrap();
        assert_eq!(recs.len(), 1);
        let h = recs[0].header;
        assert_eq!((h.content_type, h.version, h.epoch, h.sequence, h.length), (ContentType::HANDSHAKE, ProtocolVersion::DTLS1_0, 0, 0, 35));
        let frags = handshake_fragments(recs[0].fragment).unwrap();
        assert_eq!(frags.len(), 1);
        assert_eq!(frags[0].header.typ, HandshakeType::HELLO_VERIFY_REQUEST);
        assert!(frags[0].header.is_whole());
        let (version, cookie) = parse_hello_verify_request(frags[0].body).unwrap();
        assert_eq!(version, ProtocolVersion::DTLS1_0);
        assert_eq!(cookie.len(), 20);
        // Our encoder writes the same bytes.
        let mut enc = DtlsRecordEncoder::new(ProtocolVersion::DTLS1_0, 0);
        let hvr = encode_handshake(HandshakeType::HELLO_VERIFY_REQUEST, 0, &encode_hello_verify_request(version, cookie));
        assert_eq!(enc.encode(ContentType::HANDSHAKE, &hvr).unwrap(), datagram);
    }

    #[test]
    fn parses_the_real_server_hello() {
        let datagram = hex::decode(REAL_SERVER_HELLO_RECORD).unwrap();
        let record = records(&datagram).next().unwrap().unwrap();
        assert_eq!(record.header.sequence, 1);
        let mut r = DtlsHandshakeReassembler::new(1, ReassemblyLimits::default());
        assert_eq!(r.push_record(record.fragment).unwrap(), 0);
        let m = r.next_message().unwrap();
        assert_eq!((m.typ, m.message_seq), (HandshakeType::SERVER_HELLO, 1));
        let sh = ServerHello::parse(&m.body).unwrap();
        assert_eq!(sh.version, ProtocolVersion::DTLS1_0);
        assert_eq!(sh.cipher_suite, CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA);
        assert_eq!(sh.heartbeat_mode(), Some(HeartbeatMode::PEER_ALLOWED_TO_SEND));
    }

    #[test]
    fn several_records_per_datagram_and_bad_tails() {
        let mut enc = DtlsRecordEncoder::new(ProtocolVersion::DTLS1_2, 0);
        let mut datagram = enc.encode(ContentType::HANDSHAKE, &encode_handshake(HandshakeType::SERVER_HELLO_DONE, 4, &[])).unwrap();
        datagram.extend(enc.encode(ContentType::ALERT, &[2, 10]).unwrap());
        datagram.extend(enc.encode(ContentType::HEARTBEAT, &[2, 0, 0]).unwrap());
        let recs: Vec<_> = records(&datagram).collect::<Result<_, _>>().unwrap();
        assert_eq!(recs.iter().map(|r| (r.header.content_type, r.header.sequence)).collect::<Vec<_>>(), vec![
            (ContentType::HANDSHAKE, 0),
            (ContentType::ALERT, 1),
            (ContentType::HEARTBEAT, 2)
        ]);
        // A record whose length runs past the datagram: the good records first, then one error, then nothing.
        let mut cut = datagram.clone();
        cut.truncate(cut.len() - 1);
        let got: Vec<_> = records(&cut).collect();
        assert_eq!(got.len(), 3);
        assert!(got[2].is_err());
        // Trailing garbage.
        let mut junk = datagram[..25].to_vec();
        junk.extend_from_slice(b"xyz");
        let got: Vec<_> = records(&junk).collect();
        assert!(matches!(got.last(), Some(Err(WireError::NotTls(_)))));
        // TLS, not DTLS.
        assert!(matches!(records(&[22, 3, 3, 0, 1, 0]).next(), Some(Err(WireError::NotTls(_)))));
        // An impossible length is refused at the header.
        let mut big = Vec::new();
        DtlsRecordHeader { content_type: ContentType::HEARTBEAT, version: ProtocolVersion::DTLS1_0, epoch: 0, sequence: 0, length: 0xffff }
            .encode(&mut big);
        assert!(matches!(records(&big).next(), Some(Err(WireError::RecordTooLong { .. }))));
    }

    #[test]
    fn encoder_numbers_records_and_refuses_oversize() {
        let mut enc = DtlsRecordEncoder::new(ProtocolVersion::DTLS1_0, 3);
        let a = enc.encode(ContentType::ALERT, &[1, 0]).unwrap();
        let b = enc.encode(ContentType::ALERT, &[1, 0]).unwrap();
        assert_eq!(&a[3..11], &[0, 3, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&b[3..11], &[0, 3, 0, 0, 0, 0, 0, 1]);
        assert!(enc.encode(ContentType::HEARTBEAT, &vec![0; MAX_FRAGMENT_LEN + 1]).is_err());
        assert_eq!(enc.next_sequence(), 2);
    }

    #[test]
    fn dtls_client_hello_round_trips_without_rc4() {
        let mut spec = ClientHelloSpec::probe(ProtocolVersion::DTLS1_2, [5; 32], Some("dtls.example".into()));
        spec.cipher_suites = dtls_cipher_suites(&spec.cipher_suites);
        spec.cookie = Some(vec![7; 20]);
        let body = client_hello_body(&spec);
        let hello = ClientHello::parse(&body).unwrap();
        assert_eq!(hello.version, ProtocolVersion::DTLS1_2);
        assert_eq!(hello.cookie, Some(&[7u8; 20][..]));
        assert_eq!(hello.server_name(), Some("dtls.example"));
        assert_eq!(hello.heartbeat_mode(), Some(HeartbeatMode::PEER_ALLOWED_TO_SEND));
        assert!(hello.cipher_suites.iter().all(|s| !is_rc4(*s)));
        assert!(hello.cipher_suites.contains(&CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA));
        // A DTLS hello fits one small datagram.
        assert!(body.len() + HANDSHAKE_HEADER_LEN + RECORD_HEADER_LEN < DEFAULT_MTU);
    }

    #[test]
    fn flights_fit_the_mtu_and_reassemble() {
        let cert = vec![0xabu8; 3000];
        let hello = vec![1u8; 80];
        let messages: Vec<(HandshakeType, u16, &[u8])> =
            vec![(HandshakeType::SERVER_HELLO, 1, &hello), (HandshakeType::CERTIFICATE, 2, &cert), (HandshakeType::SERVER_HELLO_DONE, 3, &[])];
        let mut enc = DtlsRecordEncoder::new(ProtocolVersion::DTLS1_0, 0);
        let datagrams = encode_flight(&mut enc, &messages, 1000).unwrap();
        assert!(datagrams.len() >= 4, "{}", datagrams.len());
        assert!(datagrams.iter().all(|d| d.len() <= 1000));
        let mut r = DtlsHandshakeReassembler::new(1, ReassemblyLimits::default());
        for d in &datagrams {
            for rec in records(d) {
                r.push_record(rec.unwrap().fragment).unwrap();
            }
        }
        let got: Vec<_> = std::iter::from_fn(|| r.next_message()).map(|m| (m.typ, m.body.len())).collect();
        assert_eq!(got, vec![(HandshakeType::SERVER_HELLO, 80), (HandshakeType::CERTIFICATE, 3000), (HandshakeType::SERVER_HELLO_DONE, 0)]);
    }

    #[test]
    fn reassembler_caps_and_contradictions() {
        let limits = ReassemblyLimits { max_message_len: 100, max_ahead: 2, max_buffered: 150 };
        let mut r = DtlsHandshakeReassembler::new(0, limits);
        let frag = |seq: u16, len: u32, off: u32, body: &'static [u8]| DtlsHandshakeFragment {
            header: DtlsHandshakeHeader { typ: HandshakeType::CERTIFICATE, length: len, message_seq: seq, fragment_offset: off, fragment_length: body.len() as u32 },
            body,
        };
        // Over the per-message cap, refused on the first fragment's header.
        assert!(matches!(r.push(&frag(0, 101, 0, b"x")), Err(WireError::HandshakeTooLong { length: 101, limit: 100 })));
        // Too far ahead: dropped, not an error.
        assert_eq!(r.push(&frag(3, 10, 0, b"x")).unwrap(), FragmentDisposition::TooFarAhead);
        assert_eq!(r.push(&frag(0, 100, 0, b"ab")).unwrap(), FragmentDisposition::Accepted);
        // The total cap counts declared lengths.
        assert!(matches!(r.push(&frag(1, 60, 0, b"x")), Err(WireError::BufferFull { .. })));
        // A length that changes between fragments is a contradiction.
        assert!(r.push(&frag(0, 99, 2, b"cd")).is_err());
        // Past the end.
        assert!(r.push(&frag(0, 100, 99, b"cd")).is_err());
        assert!(r.next_message().is_none());
        // Stale after delivery.
        let mut r = DtlsHandshakeReassembler::new(0, ReassemblyLimits::default());
        r.push(&frag(0, 2, 0, b"ok")).unwrap();
        assert_eq!(r.next_message().unwrap().body, b"ok");
        assert_eq!(r.push(&frag(0, 2, 0, b"ok")).unwrap(), FragmentDisposition::Stale);
        // A record whose fragment overruns its message is rejected by the parser.
        let mut bad = Vec::new();
        DtlsHandshakeHeader { typ: HandshakeType::CERTIFICATE, length: 4, message_seq: 1, fragment_offset: 3, fragment_length: 2 }.encode(&mut bad);
        bad.extend_from_slice(b"zz");
        assert!(handshake_fragments(&bad).is_err());
    }

    #[test]
    fn packing_keeps_records_whole() {
        let recs = vec![vec![1u8; 500], vec![2u8; 500], vec![3u8; 1500], vec![4u8; 10]];
        let d = pack_datagrams(&recs, 1200);
        assert_eq!(d.iter().map(Vec::len).collect::<Vec<_>>(), vec![1000, 1500, 10]);
    }

    /// A message cut into fragments by `cuts`, each fragment possibly sent several times, as records.
    fn fragment_records(body: &[u8], seq: u16, cuts: &[usize], overlap: usize) -> Vec<Vec<u8>> {
        let mut bounds: Vec<usize> = cuts.iter().map(|c| c % (body.len() + 1)).collect();
        bounds.push(0);
        bounds.push(body.len());
        bounds.sort_unstable();
        bounds.dedup();
        if body.is_empty() {
            return vec![encode_handshake(HandshakeType::CERTIFICATE, seq, body)];
        }
        bounds
            .windows(2)
            .map(|w| {
                // Overlapping fragments: start a little early.
                let start = w[0].saturating_sub(overlap);
                let part = &body[start..w[1]];
                let mut f = Vec::new();
                DtlsHandshakeHeader {
                    typ: HandshakeType::CERTIFICATE,
                    length: body.len() as u32,
                    message_seq: seq,
                    fragment_offset: start as u32,
                    fragment_length: part.len() as u32,
                }
                .encode(&mut f);
                f.extend_from_slice(part);
                f
            })
            .collect()
    }

    proptest! {
        /// However a flight's messages are fragmented, overlapped, duplicated and reordered, the same
        /// messages come out, in order.
        #[test]
        fn any_fragmentation_and_order_gives_the_same_messages(
            bodies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..600), 1..4),
            cuts in proptest::collection::vec(0usize..600, 0..12),
            overlap in 0usize..20,
            order in proptest::collection::vec(any::<u16>(), 0..64),
            duplicates in proptest::collection::vec(any::<u16>(), 0..8),
        ) {
            let mut fragments: Vec<Vec<u8>> = Vec::new();
            for (i, body) in bodies.iter().enumerate() {
                fragments.extend(fragment_records(body, 5 + i as u16, &cuts, overlap));
            }
            for d in &duplicates {
                let pick = fragments[*d as usize % fragments.len()].clone();
                fragments.push(pick);
            }
            // A permutation driven by `order`.
            for (i, o) in order.iter().enumerate() {
                let n = fragments.len();
                fragments.swap(i % n, *o as usize % n);
            }
            let mut r = DtlsHandshakeReassembler::new(5, ReassemblyLimits::default());
            let mut got = Vec::new();
            for f in &fragments {
                r.push_record(f).unwrap();
                while let Some(m) = r.next_message() {
                    got.push(m.body);
                }
            }
            prop_assert_eq!(got, bodies);
            prop_assert!(!r.has_pending());
        }

        /// Whatever the MTU, a flight comes back whole and no datagram exceeds the MTU.
        #[test]
        fn flights_round_trip_at_any_mtu(mtu in 40usize..3000, len in 0usize..5000) {
            let body: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let messages: Vec<(HandshakeType, u16, &[u8])> = vec![(HandshakeType::CERTIFICATE, 0, &body), (HandshakeType::SERVER_HELLO_DONE, 1, &[])];
            let mut enc = DtlsRecordEncoder::new(ProtocolVersion::DTLS1_2, 0);
            let datagrams = encode_flight(&mut enc, &messages, mtu).unwrap();
            let floor = RECORD_HEADER_LEN + HANDSHAKE_HEADER_LEN + 1;
            prop_assert!(datagrams.iter().all(|d| d.len() <= mtu.max(floor)));
            let mut r = DtlsHandshakeReassembler::new(0, ReassemblyLimits::default());
            let mut seqs = Vec::new();
            for d in &datagrams {
                for rec in records(d) {
                    let rec = rec.unwrap();
                    seqs.push(rec.header.sequence);
                    r.push_record(rec.fragment).unwrap();
                }
            }
            prop_assert_eq!(seqs, (0..enc.next_sequence()).collect::<Vec<_>>());
            prop_assert_eq!(r.next_message().map(|m| m.body), Some(body));
            prop_assert_eq!(r.next_message().map(|m| m.typ), Some(HandshakeType::SERVER_HELLO_DONE));
        }

        #[test]
        fn arbitrary_datagrams_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            fuzz_datagram(&bytes);
            let mut framed = hex::decode("16feff00000000000000000000").unwrap();
            framed[11..13].copy_from_slice(&(bytes.len() as u16).to_be_bytes());
            framed.extend_from_slice(&bytes);
            fuzz_datagram(&framed);
        }
    }
}
