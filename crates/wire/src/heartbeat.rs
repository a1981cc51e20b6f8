//! RFC 6520 heartbeat messages. The parser keeps the *claimed* payload length apart from the bytes
//! actually present, because that difference is the whole of Heartbleed.

use crate::codec::Reader;
use crate::error::WireError;

/// Heartbeat message type (1 request, 2 response); unknown values are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HeartbeatMessageType(pub u8);

impl HeartbeatMessageType {
    pub const REQUEST: HeartbeatMessageType = HeartbeatMessageType(1);
    pub const RESPONSE: HeartbeatMessageType = HeartbeatMessageType(2);
}

/// Heartbeat extension mode (1 peer_allowed_to_send, 2 peer_not_allowed_to_send).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HeartbeatMode(pub u8);

impl HeartbeatMode {
    pub const PEER_ALLOWED_TO_SEND: HeartbeatMode = HeartbeatMode(1);
    pub const PEER_NOT_ALLOWED_TO_SEND: HeartbeatMode = HeartbeatMode(2);

    pub fn name(self) -> &'static str {
        match self.0 {
            1 => "peer_allowed_to_send",
            2 => "peer_not_allowed_to_send",
            _ => "unknown",
        }
    }
}

/// RFC 6520: at least 16 bytes of random padding follow the payload.
pub const MIN_PADDING: usize = 16;
/// type (1) + payload_length (2).
pub const HEADER_LEN: usize = 3;

/// A heartbeat message as found in one record fragment (or the reassembled plaintext).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeartbeatMessage<'a> {
    pub kind: HeartbeatMessageType,
    /// The payload length the sender claims.
    pub payload_length: u16,
    /// Every byte after the length field: payload, then padding, as far as present.
    pub body: &'a [u8],
}

impl<'a> HeartbeatMessage<'a> {
    /// Needs only the three header bytes: a message whose claim exceeds its record is still parsed,
    /// since that is exactly what a detector has to see.
    pub fn parse(fragment: &'a [u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(fragment);
        let kind = HeartbeatMessageType(r.u8("heartbeat.type")?);
        let payload_length = r.u16("heartbeat.payload_length")?;
        Ok(HeartbeatMessage { kind, payload_length, body: r.rest() })
    }

    /// The claimed payload, if the record really holds it.
    pub fn payload(&self) -> Option<&'a [u8]> {
        self.body.get(..self.payload_length as usize)
    }

    /// How many claimed payload bytes are missing from the record: the over-read a vulnerable peer
    /// fills from its memory.
    pub fn missing_payload(&self) -> usize {
        (self.payload_length as usize).saturating_sub(self.body.len())
    }

    /// Padding after the payload, if the payload is complete.
    pub fn padding_len(&self) -> Option<usize> {
        self.body.len().checked_sub(self.payload_length as usize)
    }

    /// What a fixed OpenSSL (1.0.1g) requires before answering: `1 + 2 + payload + 16 <= record`.
    pub fn passes_bounds_check(&self) -> bool {
        HEADER_LEN + self.payload_length as usize + MIN_PADDING <= HEADER_LEN + self.body.len()
    }
}

/// Encodes a heartbeat message. The claimed `payload_length` is given separately from the bytes so
/// that probes can build unpadded or over-reading requests on purpose.
pub fn encode(kind: HeartbeatMessageType, payload_length: u16, payload: &[u8], padding: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len() + padding.len());
    out.push(kind.0);
    out.extend_from_slice(&payload_length.to_be_bytes());
    out.extend_from_slice(payload);
    out.extend_from_slice(padding);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn over_read_request_parses() {
        // nmap's request: claims 0x4000, carries the 19-byte string.
        let mut frag = vec![1, 0x40, 0];
        frag.extend_from_slice(b"Nmap ssl-heartbleed");
        let hb = HeartbeatMessage::parse(&frag).unwrap();
        assert_eq!(hb.kind, HeartbeatMessageType::REQUEST);
        assert_eq!(hb.payload_length, 16384);
        assert_eq!(hb.payload(), None);
        assert_eq!(hb.missing_payload(), 16384 - 19);
        assert_eq!(hb.padding_len(), None);
        assert!(!hb.passes_bounds_check());
    }

    #[test]
    fn unpadded_and_honest_requests() {
        let unpadded = encode(HeartbeatMessageType::REQUEST, 4, b"abcd", &[]);
        let hb = HeartbeatMessage::parse(&unpadded).unwrap();
        assert_eq!(hb.payload(), Some(&b"abcd"[..]));
        assert_eq!(hb.padding_len(), Some(0));
        assert!(!hb.passes_bounds_check());

        let honest = encode(HeartbeatMessageType::REQUEST, 4, b"abcd", &[0; 16]);
        assert!(HeartbeatMessage::parse(&honest).unwrap().passes_bounds_check());
    }

    #[test]
    fn too_short_is_an_error() {
        assert!(HeartbeatMessage::parse(&[1, 0]).is_err());
        assert!(HeartbeatMessage::parse(&[]).is_err());
    }
}
