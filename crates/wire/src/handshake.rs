//! Handshake messages: reassembly from record fragments (several messages per record, one message
//! across records) and zero-copy parsers for the hellos and the certificate list.

use crate::codec::Reader;
use crate::error::WireError;
use crate::heartbeat::HeartbeatMode;
use crate::types::{CipherSuite, ExtensionType, HandshakeType, ProtocolVersion};

pub const HANDSHAKE_HEADER_LEN: usize = 4;
/// Default cap on one handshake message. Certificate chains are the largest legitimate messages;
/// 128 KiB is far above any real chain and keeps a hostile peer from making us buffer megabytes.
pub const DEFAULT_MAX_MESSAGE: usize = 128 * 1024;

/// A complete handshake message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandshakeMessage<'a> {
    pub typ: HandshakeType,
    pub body: &'a [u8],
}

/// Collects handshake record fragments and yields whole messages.
#[derive(Debug)]
pub struct HandshakeReassembler {
    buf: Vec<u8>,
    start: usize,
    max_message: usize,
}

impl Default for HandshakeReassembler {
    fn default() -> Self {
        HandshakeReassembler::new(DEFAULT_MAX_MESSAGE)
    }
}

impl HandshakeReassembler {
    pub fn new(max_message: usize) -> Self {
        HandshakeReassembler { buf: Vec::new(), start: 0, max_message }
    }

    /// True when a message has started but not finished (bytes are waiting for more fragments).
    pub fn is_mid_message(&self) -> bool {
        self.start < self.buf.len()
    }

    pub fn push(&mut self, fragment: &[u8]) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(fragment);
    }

    /// The next whole message; `Ok(None)` if more fragments are needed. A message announcing more than
    /// the cap fails as soon as its header is seen.
    pub fn next_message(&mut self) -> Result<Option<HandshakeMessage<'_>>, WireError> {
        let pending = &self.buf[self.start..];
        if pending.len() < HANDSHAKE_HEADER_LEN {
            return Ok(None);
        }
        let len = u32::from_be_bytes([0, pending[1], pending[2], pending[3]]) as usize;
        if len > self.max_message {
            return Err(WireError::HandshakeTooLong { length: len, limit: self.max_message });
        }
        if pending.len() < HANDSHAKE_HEADER_LEN + len {
            return Ok(None);
        }
        let begin = self.start + HANDSHAKE_HEADER_LEN;
        self.start = begin + len;
        Ok(Some(HandshakeMessage { typ: HandshakeType(self.buf[begin - HANDSHAKE_HEADER_LEN]), body: &self.buf[begin..begin + len] }))
    }
}

/// A hello extension, kept raw so unknown ones survive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extension<'a> {
    pub typ: ExtensionType,
    pub data: &'a [u8],
}

fn parse_extensions<'a>(r: &mut Reader<'a>, what: &'static str) -> Result<Vec<Extension<'a>>, WireError> {
    // The extensions block is optional in both hellos (SSLv3 and minimal TLS hellos omit it).
    if r.is_empty() {
        return Ok(Vec::new());
    }
    let mut block = Reader::new(r.vec16(what)?);
    let mut out = Vec::new();
    while !block.is_empty() {
        let typ = ExtensionType(block.u16(what)?);
        let data = block.vec16(what)?;
        out.push(Extension { typ, data });
    }
    Ok(out)
}

fn find_extension<'a>(exts: &[Extension<'a>], typ: ExtensionType) -> Option<&'a [u8]> {
    exts.iter().find(|e| e.typ == typ).map(|e| e.data)
}

fn heartbeat_mode_of(exts: &[Extension<'_>]) -> Option<HeartbeatMode> {
    find_extension(exts, ExtensionType::HEARTBEAT).and_then(|d| d.first().copied()).map(HeartbeatMode)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientHello<'a> {
    pub version: ProtocolVersion,
    pub random: &'a [u8],
    pub session_id: &'a [u8],
    /// DTLS only: the cookie echoed after a HelloVerifyRequest.
    pub cookie: Option<&'a [u8]>,
    pub cipher_suites: Vec<CipherSuite>,
    pub compression_methods: &'a [u8],
    pub extensions: Vec<Extension<'a>>,
}

impl<'a> ClientHello<'a> {
    pub fn parse(body: &'a [u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(body);
        let version = ProtocolVersion(r.u16("client_hello.version")?);
        let random = r.take(32, "client_hello.random")?;
        let session_id = r.vec8("client_hello.session_id")?;
        let cookie = if version.is_dtls() { Some(r.vec8("client_hello.cookie")?) } else { None };
        let suites = r.vec16("client_hello.cipher_suites")?;
        if suites.len() % 2 != 0 {
            return Err(WireError::invalid("client_hello.cipher_suites", "odd length"));
        }
        let cipher_suites = suites.chunks_exact(2).map(|c| CipherSuite(u16::from_be_bytes([c[0], c[1]]))).collect();
        let compression_methods = r.vec8("client_hello.compression_methods")?;
        let extensions = parse_extensions(&mut r, "client_hello.extensions")?;
        r.expect_end("client_hello")?;
        Ok(ClientHello { version, random, session_id, cookie, cipher_suites, compression_methods, extensions })
    }

    pub fn heartbeat_mode(&self) -> Option<HeartbeatMode> {
        heartbeat_mode_of(&self.extensions)
    }

    pub fn extension(&self, typ: ExtensionType) -> Option<&'a [u8]> {
        find_extension(&self.extensions, typ)
    }

    /// The host_name entry of the server_name extension, if present and well-formed.
    pub fn server_name(&self) -> Option<&'a str> {
        let data = self.extension(ExtensionType::SERVER_NAME)?;
        let mut r = Reader::new(data);
        let mut list = Reader::new(r.vec16("sni").ok()?);
        while !list.is_empty() {
            let kind = list.u8("sni.type").ok()?;
            let name = list.vec16("sni.name").ok()?;
            if kind == 0 {
                return std::str::from_utf8(name).ok();
            }
        }
        None
    }

    /// Whether the client signals secure renegotiation (SCSV or the extension).
    pub fn signals_renegotiation_info(&self) -> bool {
        self.cipher_suites.contains(&CipherSuite::TLS_EMPTY_RENEGOTIATION_INFO_SCSV)
            || self.extension(ExtensionType::RENEGOTIATION_INFO).is_some()
    }

    /// Versions from supported_versions (TLS 1.3 clients), newest value first as sent.
    pub fn supported_versions(&self) -> Vec<ProtocolVersion> {
        let Some(data) = self.extension(ExtensionType::SUPPORTED_VERSIONS) else { return Vec::new() };
        let mut r = Reader::new(data);
        let Ok(list) = r.vec8("supported_versions") else { return Vec::new() };
        list.chunks_exact(2).map(|c| ProtocolVersion(u16::from_be_bytes([c[0], c[1]]))).collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerHello<'a> {
    pub version: ProtocolVersion,
    pub random: &'a [u8],
    pub session_id: &'a [u8],
    pub cipher_suite: CipherSuite,
    pub compression_method: u8,
    pub extensions: Vec<Extension<'a>>,
}

impl<'a> ServerHello<'a> {
    pub fn parse(body: &'a [u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(body);
        let version = ProtocolVersion(r.u16("server_hello.version")?);
        let random = r.take(32, "server_hello.random")?;
        let session_id = r.vec8("server_hello.session_id")?;
        let cipher_suite = CipherSuite(r.u16("server_hello.cipher_suite")?);
        let compression_method = r.u8("server_hello.compression_method")?;
        let extensions = parse_extensions(&mut r, "server_hello.extensions")?;
        r.expect_end("server_hello")?;
        Ok(ServerHello { version, random, session_id, cipher_suite, compression_method, extensions })
    }

    pub fn heartbeat_mode(&self) -> Option<HeartbeatMode> {
        heartbeat_mode_of(&self.extensions)
    }

    pub fn extension(&self, typ: ExtensionType) -> Option<&'a [u8]> {
        find_extension(&self.extensions, typ)
    }

    /// The version actually negotiated: supported_versions (TLS 1.3) wins over the legacy field.
    pub fn negotiated_version(&self) -> ProtocolVersion {
        match self.extension(ExtensionType::SUPPORTED_VERSIONS) {
            Some(&[hi, lo]) => ProtocolVersion(u16::from_be_bytes([hi, lo])),
            _ => self.version,
        }
    }
}

/// The certificate_list of a TLS 1.0–1.2 Certificate message: DER certificates, leaf first.
pub fn parse_certificate_list(body: &[u8]) -> Result<Vec<&[u8]>, WireError> {
    let mut r = Reader::new(body);
    let mut list = Reader::new(r.vec24("certificate.list")?);
    r.expect_end("certificate")?;
    let mut out = Vec::new();
    while !list.is_empty() {
        out.push(list.vec24("certificate.entry")?);
    }
    Ok(out)
}

/// DTLS HelloVerifyRequest: the cookie to echo in the second ClientHello.
pub fn parse_hello_verify_request(body: &[u8]) -> Result<(ProtocolVersion, &[u8]), WireError> {
    let mut r = Reader::new(body);
    let version = ProtocolVersion(r.u16("hello_verify_request.version")?);
    let cookie = r.vec8("hello_verify_request.cookie")?;
    r.expect_end("hello_verify_request")?;
    Ok((version, cookie))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ServerHello body sent by the real OpenSSL 1.0.1f server in
    /// `openssl-1.0.1f-lab/hbprobe-heartbleed-vulnerable-1.0.1f-ssl3.pcap` (SSLv3, ECDHE suite,
    /// renegotiation_info, ec_point_formats, heartbeat).
    const OPENSSL_101F_SSL3_SERVER_HELLO: &str = "0300723e1b2f565e627dae02ff2c9b930651055e3c5db01a6ded922957c3d95c032520763308bf03f8565a0c28d374944c03e02c081bf1b322fad6d8770ed175ca5126c014000012ff01000100000b000403000102000f000101";

    #[test]
    fn parses_real_openssl_server_hello() {
        let body = hex::decode(OPENSSL_101F_SSL3_SERVER_HELLO).unwrap();
        let sh = ServerHello::parse(&body).unwrap();
        assert_eq!(sh.version, ProtocolVersion::SSL3);
        assert_eq!(sh.session_id.len(), 32);
        assert_eq!(sh.cipher_suite, CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA);
        assert_eq!(sh.heartbeat_mode(), Some(HeartbeatMode::PEER_ALLOWED_TO_SEND));
        let types: Vec<_> = sh.extensions.iter().map(|e| e.typ).collect();
        assert_eq!(types, vec![ExtensionType::RENEGOTIATION_INFO, ExtensionType::EC_POINT_FORMATS, ExtensionType::HEARTBEAT]);
    }

    #[test]
    fn server_hello_without_extensions_block() {
        // OpenSSL 1.0.1f built without heartbeats answering a hello with no extensions (nmap).
        let body = hex::decode("0301f91828649f8580c691bfbe037aff088ab49a1f2b40327a8596d7df060f26533a20ac4cd4d51244c26e82507ae0edb1af4321b01981c22ab961d5dd37e22ee873790004 00".replace(' ', "")).unwrap();
        let sh = ServerHello::parse(&body).unwrap();
        assert!(sh.extensions.is_empty());
        assert_eq!(sh.heartbeat_mode(), None);
    }

    #[test]
    fn truncated_and_trailing_hellos_fail_cleanly() {
        let body = hex::decode(OPENSSL_101F_SSL3_SERVER_HELLO).unwrap();
        // Cutting right after the compression method leaves a valid hello without extensions.
        let no_extensions_end = 2 + 32 + 1 + 32 + 2 + 1;
        for cut in (0..body.len()).filter(|c| *c != no_extensions_end) {
            assert!(ServerHello::parse(&body[..cut]).is_err(), "cut at {cut}");
        }
        assert!(ServerHello::parse(&body[..no_extensions_end]).unwrap().extensions.is_empty());
        let mut long = body.clone();
        long.push(0);
        assert!(ServerHello::parse(&long).is_err());
    }

    #[test]
    fn reassembles_messages_across_and_within_fragments() {
        let mut stream = Vec::new();
        for (typ, len) in [(2u8, 70usize), (11, 3000), (14, 0)] {
            stream.push(typ);
            stream.extend_from_slice(&(len as u32).to_be_bytes()[1..]);
            stream.extend(std::iter::repeat_n(typ, len));
        }
        for chunk in [1usize, 3, 7, 100, 5000] {
            let mut h = HandshakeReassembler::default();
            let mut got = Vec::new();
            for piece in stream.chunks(chunk) {
                h.push(piece);
                while let Some(m) = h.next_message().unwrap() {
                    got.push((m.typ, m.body.len()));
                }
            }
            assert_eq!(
                got,
                vec![(HandshakeType::SERVER_HELLO, 70), (HandshakeType::CERTIFICATE, 3000), (HandshakeType::SERVER_HELLO_DONE, 0)]
            );
            assert!(!h.is_mid_message());
        }
    }

    #[test]
    fn oversized_message_rejected_at_header() {
        let mut h = HandshakeReassembler::new(1000);
        h.push(&[11, 0, 0x10, 0]);
        assert!(matches!(h.next_message(), Err(WireError::HandshakeTooLong { length: 4096, limit: 1000 })));
    }

    #[test]
    fn certificate_list() {
        let body = [0, 0, 9, 0, 0, 2, 0xaa, 0xbb, 0, 0, 1, 0xcc];
        assert_eq!(parse_certificate_list(&body).unwrap(), vec![&[0xaa, 0xbb][..], &[0xcc][..]]);
        assert!(parse_certificate_list(&body[..8]).is_err());
        assert!(parse_certificate_list(&[0, 0, 5, 0, 0, 9, 1, 2]).is_err());
    }
}
