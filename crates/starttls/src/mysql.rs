//! MySQL / MariaDB client/server protocol: the SSL request.
//!
//! Client: read the server's initial handshake packet (protocol version 10), check the CLIENT_SSL
//! capability flag (0x0800), then send the SSL Request packet (sequence id 1, CLIENT_SSL set) and
//! start TLS straight away: the server sends nothing in between.

use std::hash::{BuildHasher, Hasher};

use crate::session::{printable_bytes, Session};
use crate::{ClientDialect, ClientProgress, Protocol, ServerDialect, ServerParams, ServerProgress};

pub(crate) const CLIENT_LONG_PASSWORD: u32 = 0x0000_0001;
pub(crate) const CLIENT_FOUND_ROWS: u32 = 0x0000_0002;
pub(crate) const CLIENT_LONG_FLAG: u32 = 0x0000_0004;
pub(crate) const CLIENT_CONNECT_WITH_DB: u32 = 0x0000_0008;
pub(crate) const CLIENT_PROTOCOL_41: u32 = 0x0000_0200;
pub(crate) const CLIENT_INTERACTIVE: u32 = 0x0000_0400;
pub(crate) const CLIENT_SSL: u32 = 0x0000_0800;
pub(crate) const CLIENT_TRANSACTIONS: u32 = 0x0000_2000;
pub(crate) const CLIENT_SECURE_CONNECTION: u32 = 0x0000_8000;
pub(crate) const CLIENT_MULTI_STATEMENTS: u32 = 0x0001_0000;
pub(crate) const CLIENT_MULTI_RESULTS: u32 = 0x0002_0000;
pub(crate) const CLIENT_PLUGIN_AUTH: u32 = 0x0008_0000;

/// Packet header: 3-byte little-endian payload length, 1-byte sequence id.
const HEADER_LEN: usize = 4;
/// utf8_general_ci, understood by every server since 4.1.
const CHARSET_UTF8: u8 = 0x21;
const MAX_PACKET: u32 = 16 * 1024 * 1024;

/// What the client learnt from the greeting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Greeting {
    pub server_version: String,
    pub connection_id: u32,
    pub capabilities: u32,
    pub charset: Option<u8>,
}

/// Parses a protocol-10 handshake payload (after the version byte has been checked).
pub(crate) fn parse_greeting(payload: &[u8]) -> Result<Greeting, String> {
    let body = payload.get(1..).ok_or("empty greeting")?;
    let nul = body.iter().position(|&b| b == 0).ok_or("server version not terminated")?;
    let server_version = printable_bytes(body.get(..nul).unwrap_or_default());
    let rest = body.get(nul + 1..).unwrap_or_default();
    // connection id (4), auth-plugin-data part 1 (8), filler (1), capability flags low (2)
    let id = rest.get(..4).ok_or("greeting ends before the connection id")?;
    let connection_id = u32::from_le_bytes([id[0], id[1], id[2], id[3]]);
    let low = match rest.get(13..15) {
        Some(low) => u32::from(u16::from_le_bytes([low[0], low[1]])),
        // Pre-4.1 servers may end here: no capability flags, so no SSL.
        None => 0,
    };
    let charset = rest.get(15).copied();
    let high = rest.get(18..20).map(|high| u32::from(u16::from_le_bytes([high[0], high[1]]))).unwrap_or(0);
    Ok(Greeting { server_version, connection_id, capabilities: low | (high << 16), charset })
}

/// The SSL Request packet (sequence id 1): capability flags with CLIENT_SSL, max packet size,
/// character set, 23 zero bytes. Pre-4.1 servers get the short 4.0 form.
pub(crate) fn ssl_request(greeting: &Greeting) -> Vec<u8> {
    let wanted = CLIENT_LONG_PASSWORD
        | CLIENT_LONG_FLAG
        | CLIENT_PROTOCOL_41
        | CLIENT_TRANSACTIONS
        | CLIENT_SECURE_CONNECTION
        | CLIENT_MULTI_RESULTS
        | CLIENT_PLUGIN_AUTH;
    let flags = (wanted & greeting.capabilities) | CLIENT_SSL;
    let mut payload = Vec::with_capacity(32);
    if greeting.capabilities & CLIENT_PROTOCOL_41 != 0 {
        payload.extend_from_slice(&flags.to_le_bytes());
        payload.extend_from_slice(&MAX_PACKET.to_le_bytes());
        payload.push(greeting.charset.filter(|&c| c != 0).unwrap_or(CHARSET_UTF8));
        payload.extend_from_slice(&[0u8; 23]);
    } else {
        payload.extend_from_slice(&(flags as u16).to_le_bytes());
        payload.extend_from_slice(&MAX_PACKET.to_le_bytes()[..3]);
    }
    packet(1, &payload)
}

fn packet(sequence: u8, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&len.to_le_bytes()[..3]);
    out.push(sequence);
    out.extend_from_slice(payload);
    out
}

/// The next whole packet `(sequence, payload)`, consumed from the session.
fn next_packet(session: &mut Session) -> Result<Option<(u8, Vec<u8>)>, String> {
    let pending = session.pending();
    let Some(header) = pending.get(..HEADER_LEN) else { return Ok(None) };
    let len = u32::from_le_bytes([header[0], header[1], header[2], 0]) as usize;
    let sequence = header[3];
    if len > session.limits.max_reply {
        return Err(format!("packet of {len} bytes exceeds the {}-byte cap", session.limits.max_reply));
    }
    let Some(payload) = pending.get(HEADER_LEN..HEADER_LEN + len) else { return Ok(None) };
    let payload = payload.to_vec();
    session.consume(HEADER_LEN + len);
    Ok(Some((sequence, payload)))
}

/// `(code, message)` of an ERR packet payload.
fn parse_error(payload: &[u8]) -> (u16, String) {
    let code = payload.get(1..3).map(|c| u16::from_le_bytes([c[0], c[1]])).unwrap_or(0);
    let mut text = payload.get(3..).unwrap_or_default();
    if text.first() == Some(&b'#') {
        text = text.get(6..).unwrap_or_default();
    }
    (code, printable_bytes(text))
}

#[derive(Debug)]
pub(crate) struct Client;

impl Client {
    pub(crate) fn new() -> Self {
        Client
    }
}

impl ClientDialect for Client {
    fn start(&mut self, _session: &mut Session) -> Vec<u8> {
        Vec::new()
    }

    fn advance(&mut self, session: &mut Session) -> ClientProgress {
        let (sequence, payload) = match next_packet(session) {
            Ok(Some(packet)) => packet,
            Ok(None) => return ClientProgress::NeedMore,
            Err(reason) => return ClientProgress::Failed(reason),
        };
        if sequence != 0 {
            return ClientProgress::Failed(format!("greeting has sequence id {sequence}, expected 0"));
        }
        match payload.first() {
            Some(10) => {}
            Some(0xff) => {
                let (code, text) = parse_error(&payload);
                session.note(&format!("S: ERR {code} {text}"));
                return ClientProgress::Failed(format!("server refused the connection: error {code}: {text}"));
            }
            Some(version) => {
                session.note(&format!("S: handshake protocol version {version}"));
                return ClientProgress::Unsupported(format!("handshake protocol version {version} has no SSL"));
            }
            None => return ClientProgress::Failed("empty greeting packet".to_string()),
        }
        let greeting = match parse_greeting(&payload) {
            Ok(greeting) => greeting,
            Err(reason) => return ClientProgress::Failed(format!("malformed greeting: {reason}")),
        };
        session.note(&format!(
            "S: greeting v10, server version {:?}, connection id {}, capabilities 0x{:08x}",
            greeting.server_version, greeting.connection_id, greeting.capabilities
        ));
        if greeting.capabilities & CLIENT_SSL == 0 {
            return ClientProgress::Unsupported("server does not offer CLIENT_SSL (0x0800)".to_string());
        }
        let request = ssl_request(&greeting);
        session.note("C: SSL request (sequence id 1, CLIENT_SSL)");
        ClientProgress::Ready { send_first: request }
    }

    fn protocol(&self) -> Option<Protocol> {
        Some(Protocol::Mysql)
    }
}

#[derive(Debug)]
pub(crate) struct Server {
    version: String,
}

impl Server {
    pub(crate) fn new(params: &ServerParams) -> Self {
        Server { version: format!("5.7.44-{}", params.banner.replace('\0', "")) }
    }
}

const SERVER_CAPABILITIES: u32 = CLIENT_LONG_PASSWORD
    | CLIENT_FOUND_ROWS
    | CLIENT_LONG_FLAG
    | CLIENT_CONNECT_WITH_DB
    | CLIENT_PROTOCOL_41
    | CLIENT_INTERACTIVE
    | CLIENT_SSL
    | CLIENT_TRANSACTIONS
    | CLIENT_SECURE_CONNECTION
    | CLIENT_MULTI_STATEMENTS
    | CLIENT_MULTI_RESULTS
    | CLIENT_PLUGIN_AUTH;

/// Random-enough scramble bytes without a random-number dependency: std's hasher keys are
/// random per process. The scramble only matters for authentication, which happens after TLS.
fn scramble() -> [u8; 20] {
    let mut out = [0u8; 20];
    for (i, chunk) in out.chunks_mut(8).enumerate() {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_usize(i);
        let bytes = hasher.finish().to_le_bytes();
        for (slot, byte) in chunk.iter_mut().zip(bytes) {
            // Printable, non-NUL, like the servers' own scrambles.
            *slot = 0x21 + byte % 0x5e;
        }
    }
    out
}

impl ServerDialect for Server {
    fn start(&mut self, session: &mut Session) -> Vec<u8> {
        let scramble = scramble();
        let mut payload = vec![10];
        payload.extend_from_slice(self.version.as_bytes());
        payload.push(0);
        payload.extend_from_slice(&1u32.to_le_bytes());
        payload.extend_from_slice(&scramble[..8]);
        payload.push(0);
        payload.extend_from_slice(&(SERVER_CAPABILITIES as u16).to_le_bytes());
        payload.push(CHARSET_UTF8);
        payload.extend_from_slice(&0x0002u16.to_le_bytes()); // SERVER_STATUS_AUTOCOMMIT
        payload.extend_from_slice(&((SERVER_CAPABILITIES >> 16) as u16).to_le_bytes());
        payload.push(21);
        payload.extend_from_slice(&[0u8; 10]);
        payload.extend_from_slice(&scramble[8..]);
        payload.push(0);
        payload.extend_from_slice(b"mysql_native_password\0");
        session.note(&format!("S: greeting v10, server version {:?}, capabilities 0x{SERVER_CAPABILITIES:08x}", self.version));
        packet(0, &payload)
    }

    fn advance(&mut self, session: &mut Session) -> ServerProgress {
        let (sequence, payload) = match next_packet(session) {
            Ok(Some(packet)) => packet,
            Ok(None) => return ServerProgress::NeedMore,
            Err(reason) => return ServerProgress::Close { send_last: Vec::new(), reason },
        };
        let flags = match payload.get(..4) {
            Some(f) if payload.len() >= 32 => u32::from_le_bytes([f[0], f[1], f[2], f[3]]),
            _ => payload.get(..2).map(|f| u32::from(u16::from_le_bytes([f[0], f[1]]))).unwrap_or(0),
        };
        let is_ssl_request = sequence == 1 && flags & CLIENT_SSL != 0 && (payload.len() == 32 || payload.len() == 5);
        if is_ssl_request {
            session.note("C: SSL request");
            return ServerProgress::StartTls { send_first: Vec::new() };
        }
        session.note(&format!("C: packet seq {sequence}, {} bytes, capabilities 0x{flags:08x}, no SSL request", payload.len()));
        let mut error = vec![0xff];
        error.extend_from_slice(&3159u16.to_le_bytes());
        error.extend_from_slice(b"#HY000Connections using insecure transport are prohibited while --require_secure_transport=ON.");
        ServerProgress::Close {
            send_last: packet(sequence.wrapping_add(1), &error),
            reason: "client did not ask for SSL".to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{assert_all_cuts, client_result, kind, no_panic_on_garbage, server_result};
    use crate::{ClientParams, ServerStep, Step};

    /// A greeting shaped like MariaDB's, with chosen capability flags.
    fn mariadb_greeting(capabilities: u32) -> Vec<u8> {
        let mut payload = vec![10];
        payload.extend_from_slice(b"5.5.5-10.11.19-MariaDB-0+deb12u1\0");
        payload.extend_from_slice(&7u32.to_le_bytes());
        payload.extend_from_slice(b"abcdefgh\0");
        payload.extend_from_slice(&(capabilities as u16).to_le_bytes());
        payload.push(45);
        payload.extend_from_slice(&2u16.to_le_bytes());
        payload.extend_from_slice(&((capabilities >> 16) as u16).to_le_bytes());
        payload.push(21);
        payload.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0x1d, 0, 0, 0]);
        payload.extend_from_slice(b"ijklmnopqrst\0mysql_native_password\0");
        packet(0, &payload)
    }

    #[test]
    fn recorded_mariadb_greeting() {
        // Recorded from MariaDB 10.11.19 (tests/data/README.md): CLIENT_SSL set, charset 8.
        let greeting = include_bytes!("../tests/data/mariadb-greeting.bin");
        let parsed = parse_greeting(&greeting[4..]).unwrap();
        assert_eq!(parsed.server_version, "5.5.5-10.11.19-MariaDB-0+deb12u1");
        assert_ne!(parsed.capabilities & CLIENT_SSL, 0);
        let step = assert_all_cuts(Protocol::Mysql, &ClientParams::default(), greeting);
        let Step::Ready { send_first, .. } = step else { panic!("{step:?}") };
        assert_eq!(&send_first[..4], &[32, 0, 0, 1]);
        assert_eq!(send_first[12], 8, "server charset echoed");
    }

    #[test]
    fn ssl_offered_gives_a_32_byte_request() {
        let greeting = mariadb_greeting(0xf7fe_ffff);
        let step = assert_all_cuts(Protocol::Mysql, &ClientParams::default(), &greeting);
        let Step::Ready { send_first, leftover, transcript } = step else { panic!("{step:?}") };
        assert!(leftover.is_empty());
        assert!(transcript.contains("10.11.19-MariaDB"), "{transcript}");
        assert_eq!(&send_first[..4], &[32, 0, 0, 1]);
        assert_eq!(send_first.len(), 36);
        let flags = u32::from_le_bytes(send_first[4..8].try_into().unwrap());
        assert_ne!(flags & CLIENT_SSL, 0);
        assert_ne!(flags & CLIENT_PROTOCOL_41, 0);
        assert_eq!(send_first[12], 45, "server charset echoed");
        assert!(send_first[13..].iter().all(|&b| b == 0));
    }

    #[test]
    fn no_ssl_error_and_malformed() {
        assert_eq!(kind(&client_result(Protocol::Mysql, ClientParams::default(), &mariadb_greeting(0xf7fe_ffff & !CLIENT_SSL))), "unsupported");
        let mut error = vec![0xff];
        error.extend_from_slice(&1130u16.to_le_bytes());
        error.extend_from_slice(b"Host '10.0.0.1' is not allowed to connect to this MariaDB server");
        let step = client_result(Protocol::Mysql, ClientParams::default(), &packet(0, &error));
        assert!(matches!(&step, Step::Failed { reason, .. } if reason.contains("1130") && reason.contains("not allowed")), "{step:?}");
        assert_eq!(kind(&client_result(Protocol::Mysql, ClientParams::default(), &packet(0, &[9, b'3', 0]))), "unsupported");
        assert_eq!(kind(&client_result(Protocol::Mysql, ClientParams::default(), &packet(1, &[10]))), "failed");
        assert_eq!(kind(&client_result(Protocol::Mysql, ClientParams::default(), &packet(0, &[10, b'x']))), "failed");
        // Pre-4.1 greeting without capability flags.
        assert_eq!(kind(&client_result(Protocol::Mysql, ClientParams::default(), &packet(0, b"\x0a3.23\0\x01\0\0\0abcdefgh\0"))), "unsupported");
        // An absurd length is refused at the header.
        assert_eq!(kind(&client_result(Protocol::Mysql, ClientParams::default(), &[0xff, 0xff, 0xff, 0])), "failed");
    }

    #[test]
    fn pre_41_server_gets_short_request() {
        let greeting = Greeting { server_version: "4.0".into(), connection_id: 1, capabilities: CLIENT_SSL | CLIENT_LONG_PASSWORD, charset: None };
        let request = ssl_request(&greeting);
        assert_eq!(request.len(), 4 + 5);
        assert_eq!(request[3], 1);
    }

    #[test]
    fn server_role() {
        let mut server = crate::ServerDialogue::new(Protocol::Mysql, ServerParams::default());
        let greeting = server.start();
        assert_eq!(greeting[3], 0);
        assert_eq!(greeting[4], 10);
        let parsed = parse_greeting(&greeting[4..]).unwrap();
        assert_eq!(parsed.capabilities, SERVER_CAPABILITIES);
        assert_eq!(parsed.server_version, "5.7.44-bleedwatch");
        let request = ssl_request(&parsed);
        assert!(matches!(server.feed(&request), ServerStep::StartTls { ref send_first, .. } if send_first.is_empty()));
        // A full login without SSL is refused with ERR 3159.
        let mut login = vec![0u8; 40];
        login[..4].copy_from_slice(&(CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION).to_le_bytes());
        let step = server_result(Protocol::Mysql, &packet(1, &login));
        assert!(matches!(step, ServerStep::Close { ref send_last, .. } if send_last[4] == 0xff && send_last[3] == 2), "{step:?}");
    }

    #[test]
    fn garbage_never_panics() {
        no_panic_on_garbage(Protocol::Mysql);
    }
}
