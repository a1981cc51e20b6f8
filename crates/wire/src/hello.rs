//! Encoders for handshake messages: the probe's ClientHello, and the server flight used by the test
//! servers, the client test server and the honeypot.

use crate::codec::{put_prefixed, put_u16, put_u8, Prefix};
use crate::handshake::HANDSHAKE_HEADER_LEN;
use crate::heartbeat::HeartbeatMode;
use crate::types::{CipherSuite, ExtensionType, HandshakeType, ProtocolVersion};

/// Wraps a body in a handshake header (type, 24-bit length).
pub fn encode_handshake(typ: HandshakeType, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HANDSHAKE_HEADER_LEN + body.len());
    put_u8(&mut out, typ.0);
    put_prefixed(&mut out, Prefix::U24, |o| o.extend_from_slice(body));
    out
}

fn put_extension(out: &mut Vec<u8>, typ: ExtensionType, body: impl FnOnce(&mut Vec<u8>)) {
    put_u16(out, typ.0);
    put_prefixed(out, Prefix::U16, body);
}

/// Curves offered: the NIST curves OpenSSL 1.0.1 knows, plus X25519 for modern servers.
const SUPPORTED_GROUPS: [u16; 4] = [23, 24, 25, 29];
/// Signature algorithms (TLS 1.2): SHA-256/384/512/1 with RSA and ECDSA, plus DSA-SHA1 and RSA-PSS.
const SIGNATURE_ALGORITHMS: [u16; 12] =
    [0x0401, 0x0501, 0x0601, 0x0201, 0x0403, 0x0503, 0x0603, 0x0203, 0x0804, 0x0805, 0x0806, 0x0202];

/// What goes into a probe ClientHello.
#[derive(Debug, Clone)]
pub struct ClientHelloSpec {
    /// `client_version`: the highest version offered.
    pub version: ProtocolVersion,
    pub random: [u8; 32],
    pub cipher_suites: Vec<CipherSuite>,
    /// Sent as server_name when set (PEERS.md pitfall 4: some servers need it, some reject it).
    pub server_name: Option<String>,
    /// Offer the heartbeat extension (pitfall 1: without it some servers never enable heartbeats).
    pub heartbeat: Option<HeartbeatMode>,
    /// DTLS only: the cookie from a HelloVerifyRequest.
    pub cookie: Option<Vec<u8>>,
}

impl ClientHelloSpec {
    /// A broad probe hello for `version` with the heartbeat extension.
    pub fn probe(version: ProtocolVersion, random: [u8; 32], server_name: Option<String>) -> Self {
        ClientHelloSpec {
            version,
            random,
            cipher_suites: CipherSuite::BROAD_OFFER.to_vec(),
            server_name,
            heartbeat: Some(HeartbeatMode::PEER_ALLOWED_TO_SEND),
            cookie: None,
        }
    }

    /// The ClientHello handshake message (header included).
    pub fn encode(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(512);
        put_u16(&mut body, self.version.0);
        body.extend_from_slice(&self.random);
        put_u8(&mut body, 0); // empty session id
        if self.version.is_dtls() {
            put_prefixed(&mut body, Prefix::U8, |o| o.extend_from_slice(self.cookie.as_deref().unwrap_or(&[])));
        }
        put_prefixed(&mut body, Prefix::U16, |o| {
            for suite in &self.cipher_suites {
                put_u16(o, suite.0);
            }
        });
        put_prefixed(&mut body, Prefix::U8, |o| o.push(0)); // null compression only
        let mut exts = Vec::with_capacity(256);
        if let Some(name) = &self.server_name {
            put_extension(&mut exts, ExtensionType::SERVER_NAME, |o| {
                put_prefixed(o, Prefix::U16, |o| {
                    put_u8(o, 0);
                    put_prefixed(o, Prefix::U16, |o| o.extend_from_slice(name.as_bytes()));
                })
            });
        }
        put_extension(&mut exts, ExtensionType::SUPPORTED_GROUPS, |o| {
            put_prefixed(o, Prefix::U16, |o| SUPPORTED_GROUPS.iter().for_each(|g| put_u16(o, *g)))
        });
        put_extension(&mut exts, ExtensionType::EC_POINT_FORMATS, |o| put_prefixed(o, Prefix::U8, |o| o.push(0)));
        if self.version == ProtocolVersion::TLS1_2 || self.version == ProtocolVersion::DTLS1_2 {
            put_extension(&mut exts, ExtensionType::SIGNATURE_ALGORITHMS, |o| {
                put_prefixed(o, Prefix::U16, |o| SIGNATURE_ALGORITHMS.iter().for_each(|a| put_u16(o, *a)))
            });
        }
        put_extension(&mut exts, ExtensionType::SESSION_TICKET, |_| {});
        if let Some(mode) = self.heartbeat {
            put_extension(&mut exts, ExtensionType::HEARTBEAT, |o| o.push(mode.0));
        }
        // Some TLS terminators (F5 and others) hang on hellos of 256 to 511 bytes; pad past them as
        // OpenSSL 1.0.1g and later do.
        let unpadded = HANDSHAKE_HEADER_LEN + body.len() + 2 + exts.len();
        if !self.version.is_dtls() && (256..512).contains(&unpadded) {
            let pad = (512 - unpadded).saturating_sub(4);
            put_extension(&mut exts, ExtensionType::PADDING, |o| o.extend(std::iter::repeat_n(0, pad)));
        }
        put_prefixed(&mut body, Prefix::U16, |o| o.extend_from_slice(&exts));
        encode_handshake(HandshakeType::CLIENT_HELLO, &body)
    }
}

/// What goes into a ServerHello built by our own servers.
#[derive(Debug, Clone)]
pub struct ServerHelloSpec {
    pub version: ProtocolVersion,
    pub random: [u8; 32],
    pub session_id: Vec<u8>,
    pub cipher_suite: CipherSuite,
    /// In the order they should appear on the wire.
    pub extensions: Vec<(ExtensionType, Vec<u8>)>,
}

impl ServerHelloSpec {
    pub fn encode(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(128);
        put_u16(&mut body, self.version.0);
        body.extend_from_slice(&self.random);
        put_prefixed(&mut body, Prefix::U8, |o| o.extend_from_slice(&self.session_id));
        put_u16(&mut body, self.cipher_suite.0);
        put_u8(&mut body, 0);
        // No extensions at all means no extensions block, as OpenSSL does.
        if !self.extensions.is_empty() {
            put_prefixed(&mut body, Prefix::U16, |o| {
                for (typ, data) in &self.extensions {
                    put_extension(o, *typ, |o| o.extend_from_slice(data));
                }
            });
        }
        encode_handshake(HandshakeType::SERVER_HELLO, &body)
    }
}

/// A TLS 1.0–1.2 Certificate message carrying `chain` (DER, leaf first).
pub fn encode_certificate(chain: &[Vec<u8>]) -> Vec<u8> {
    let mut body = Vec::new();
    put_prefixed(&mut body, Prefix::U24, |o| {
        for cert in chain {
            put_prefixed(o, Prefix::U24, |o| o.extend_from_slice(cert));
        }
    });
    encode_handshake(HandshakeType::CERTIFICATE, &body)
}

pub fn encode_server_hello_done() -> Vec<u8> {
    encode_handshake(HandshakeType::SERVER_HELLO_DONE, &[])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handshake::{parse_certificate_list, ClientHello, HandshakeReassembler, ServerHello};

    fn parse_one(bytes: &[u8]) -> (HandshakeType, Vec<u8>) {
        let mut h = HandshakeReassembler::default();
        h.push(bytes);
        let m = h.next_message().unwrap().unwrap();
        (m.typ, m.body.to_vec())
    }

    #[test]
    fn client_hello_round_trips_for_every_version() {
        for v in ProtocolVersion::PROBEABLE_TLS {
            let spec = ClientHelloSpec::probe(v, [7; 32], Some("example.org".into()));
            let (typ, body) = parse_one(&spec.encode());
            assert_eq!(typ, HandshakeType::CLIENT_HELLO);
            let ch = ClientHello::parse(&body).unwrap();
            assert_eq!(ch.version, v);
            assert_eq!(ch.server_name(), Some("example.org"));
            assert_eq!(ch.heartbeat_mode(), Some(HeartbeatMode::PEER_ALLOWED_TO_SEND));
            assert!(ch.signals_renegotiation_info());
            assert_eq!(ch.cipher_suites.len(), CipherSuite::BROAD_OFFER.len());
            let len = spec.encode().len();
            assert!(!(256..512).contains(&len), "hello of {len} bytes is in the F5 hang range");
        }
    }

    #[test]
    fn dtls_hello_carries_cookie() {
        let mut spec = ClientHelloSpec::probe(ProtocolVersion::DTLS1_2, [1; 32], None);
        spec.cookie = Some(vec![9, 9, 9]);
        let (_, body) = parse_one(&spec.encode());
        let ch = ClientHello::parse(&body).unwrap();
        assert_eq!(ch.cookie, Some(&[9u8, 9, 9][..]));
    }

    #[test]
    fn server_flight_round_trips() {
        let sh = ServerHelloSpec {
            version: ProtocolVersion::TLS1_2,
            random: [3; 32],
            session_id: vec![5; 32],
            cipher_suite: CipherSuite::TLS_RSA_WITH_AES_128_CBC_SHA,
            extensions: vec![(ExtensionType::RENEGOTIATION_INFO, vec![0]), (ExtensionType::HEARTBEAT, vec![1])],
        };
        let (_, body) = parse_one(&sh.encode());
        let parsed = ServerHello::parse(&body).unwrap();
        assert_eq!(parsed.cipher_suite, CipherSuite::TLS_RSA_WITH_AES_128_CBC_SHA);
        assert_eq!(parsed.heartbeat_mode(), Some(HeartbeatMode::PEER_ALLOWED_TO_SEND));

        let chain = vec![vec![1u8; 10], vec![2u8; 20]];
        let (typ, body) = parse_one(&encode_certificate(&chain));
        assert_eq!(typ, HandshakeType::CERTIFICATE);
        assert_eq!(parse_certificate_list(&body).unwrap(), vec![&chain[0][..], &chain[1][..]]);
        assert_eq!(encode_server_hello_done(), vec![14, 0, 0, 0]);
    }
}
