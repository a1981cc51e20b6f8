//! RDP security negotiation ([MS-RDPBCGR] 2.2.1.1 / 2.2.1.2): X.224 Connection Request with
//! RDP_NEG_REQ, Connection Confirm with RDP_NEG_RSP or RDP_NEG_FAILURE, carried in TPKT (RFC 1006).
//!
//! Client: request PROTOCOL_SSL | PROTOCOL_HYBRID. Both start with a plain TLS handshake right
//! after the Connection Confirm (HYBRID runs CredSSP *inside* TLS), and asking for both means a
//! server that insists on Network Level Authentication still answers with TLS instead of
//! HYBRID_REQUIRED_BY_SERVER. The server's RDP_NEG_RSP selectedProtocol must be SSL (1), HYBRID
//! (2) or HYBRID_EX (8); standard RDP security (0) or RDP_NEG_FAILURE means no TLS.

use crate::session::{printable_bytes, Session};
use crate::{ClientDialect, ClientProgress, Protocol, ServerDialect, ServerProgress};

pub(crate) const PROTOCOL_RDP: u32 = 0;
pub(crate) const PROTOCOL_SSL: u32 = 1;
pub(crate) const PROTOCOL_HYBRID: u32 = 2;
pub(crate) const PROTOCOL_HYBRID_EX: u32 = 8;

const TPKT_VERSION: u8 = 3;
const TPDU_CONNECTION_REQUEST: u8 = 0xe0;
const TPDU_CONNECTION_CONFIRM: u8 = 0xd0;
const TPDU_DISCONNECT_REQUEST: u8 = 0x80;
const TYPE_RDP_NEG_REQ: u8 = 1;
const TYPE_RDP_NEG_RSP: u8 = 2;
const TYPE_RDP_NEG_FAILURE: u8 = 3;
/// Connection Confirm flag: the server supports extended client data blocks.
const EXTENDED_CLIENT_DATA_SUPPORTED: u8 = 0x01;

fn protocol_name(protocol: u32) -> &'static str {
    match protocol {
        PROTOCOL_RDP => "PROTOCOL_RDP (standard RDP security)",
        PROTOCOL_SSL => "PROTOCOL_SSL",
        PROTOCOL_HYBRID => "PROTOCOL_HYBRID (CredSSP over TLS)",
        4 => "PROTOCOL_RDSTLS",
        PROTOCOL_HYBRID_EX => "PROTOCOL_HYBRID_EX",
        _ => "unknown protocol",
    }
}

fn failure_name(code: u32) -> &'static str {
    match code {
        1 => "SSL_REQUIRED_BY_SERVER",
        2 => "SSL_NOT_ALLOWED_BY_SERVER",
        3 => "SSL_CERT_NOT_ON_SERVER",
        4 => "INCONSISTENT_FLAGS",
        5 => "HYBRID_REQUIRED_BY_SERVER",
        6 => "SSL_WITH_USER_AUTH_REQUIRED_BY_SERVER",
        _ => "unknown failure code",
    }
}

/// TPKT header + X.224 fixed part + 8-byte negotiation structure.
fn x224(code: u8, neg_type: u8, neg_flags: u8, value: u32) -> Vec<u8> {
    let mut out = vec![TPKT_VERSION, 0, 0, 19];
    // Length indicator (6 fixed bytes + 8), TPDU code, DST-REF, SRC-REF, class 0.
    let (dst, src): ([u8; 2], [u8; 2]) = if code == TPDU_CONNECTION_REQUEST { ([0, 0], [0, 0]) } else { ([0, 0], [0x12, 0x34]) };
    out.extend_from_slice(&[14, code, dst[0], dst[1], src[0], src[1], 0]);
    out.extend_from_slice(&[neg_type, neg_flags]);
    out.extend_from_slice(&8u16.to_le_bytes());
    out.extend_from_slice(&value.to_le_bytes());
    out
}

/// The connection request the client sends.
pub(crate) fn connection_request(requested: u32) -> Vec<u8> {
    x224(TPDU_CONNECTION_REQUEST, TYPE_RDP_NEG_REQ, 0, requested)
}

/// One whole TPKT, consumed from the session: the X.224 TPDU inside it.
fn next_tpkt(session: &mut Session) -> Result<Option<Vec<u8>>, String> {
    let pending = session.pending();
    let Some(header) = pending.get(..4) else { return Ok(None) };
    if header[0] != TPKT_VERSION {
        let excerpt = pending.get(..pending.len().min(32)).unwrap_or_default();
        return Err(format!("not a TPKT (version byte 0x{:02x}): {:?}", header[0], printable_bytes(excerpt)));
    }
    let length = usize::from(u16::from_be_bytes([header[2], header[3]]));
    if length < 7 {
        return Err(format!("TPKT length {length} too short for an X.224 TPDU"));
    }
    if length > session.limits.max_reply {
        return Err(format!("TPKT length {length} exceeds the {}-byte cap", session.limits.max_reply));
    }
    let Some(tpdu) = pending.get(4..length) else { return Ok(None) };
    let tpdu = tpdu.to_vec();
    session.consume(length);
    Ok(Some(tpdu))
}

/// The negotiation structure `(type, flags, value)` following the fixed part of a TPDU, if any.
fn negotiation(variable: &[u8]) -> Option<(u8, u8, u32)> {
    let neg = variable.get(..8)?;
    if u16::from_le_bytes([neg[2], neg[3]]) != 8 {
        return None;
    }
    Some((neg[0], neg[1], u32::from_le_bytes([neg[4], neg[5], neg[6], neg[7]])))
}

/// The TPDU's variable part (after LI, code, DST-REF, SRC-REF, class), bounded by LI.
fn variable_part(tpdu: &[u8]) -> Result<&[u8], String> {
    let li = usize::from(*tpdu.first().ok_or("empty TPDU")?);
    let body = tpdu.get(1..).unwrap_or_default();
    if li < 6 || li > body.len() {
        return Err(format!("X.224 length indicator {li} does not fit the {}-byte TPDU", tpdu.len()));
    }
    Ok(body.get(6..li).unwrap_or_default())
}

#[derive(Debug)]
pub(crate) struct Client;

impl Client {
    pub(crate) fn new() -> Self {
        Client
    }
}

impl ClientDialect for Client {
    fn start(&mut self, session: &mut Session) -> Vec<u8> {
        session.note("C: X.224 Connection Request, RDP_NEG_REQ requestedProtocols PROTOCOL_SSL|PROTOCOL_HYBRID");
        connection_request(PROTOCOL_SSL | PROTOCOL_HYBRID)
    }

    fn advance(&mut self, session: &mut Session) -> ClientProgress {
        let tpdu = match next_tpkt(session) {
            Ok(Some(tpdu)) => tpdu,
            Ok(None) => return ClientProgress::NeedMore,
            Err(reason) => return ClientProgress::Failed(reason),
        };
        let code = tpdu.get(1).copied().unwrap_or(0) & 0xf0;
        if code == TPDU_DISCONNECT_REQUEST {
            session.note("S: X.224 Disconnect Request");
            return ClientProgress::Failed("server sent an X.224 Disconnect Request".to_string());
        }
        if code != TPDU_CONNECTION_CONFIRM {
            return ClientProgress::Failed(format!("expected an X.224 Connection Confirm, got TPDU code 0x{code:02x}"));
        }
        let variable = match variable_part(&tpdu) {
            Ok(variable) => variable,
            Err(reason) => return ClientProgress::Failed(reason),
        };
        match negotiation(variable) {
            None if variable.is_empty() => {
                session.note("S: X.224 Connection Confirm without negotiation response");
                ClientProgress::Unsupported("server does not negotiate security: standard RDP security only".to_string())
            }
            None => ClientProgress::Failed("malformed negotiation structure in the Connection Confirm".to_string()),
            Some((TYPE_RDP_NEG_RSP, _flags, selected)) => {
                session.note(&format!("S: X.224 Connection Confirm, RDP_NEG_RSP selectedProtocol {selected} ({})", protocol_name(selected)));
                match selected {
                    PROTOCOL_SSL | PROTOCOL_HYBRID | PROTOCOL_HYBRID_EX => ClientProgress::Ready { send_first: Vec::new() },
                    PROTOCOL_RDP => ClientProgress::Unsupported("server chose standard RDP security (no TLS)".to_string()),
                    other => ClientProgress::Failed(format!("server selected protocol {other} ({}), which we did not request", protocol_name(other))),
                }
            }
            Some((TYPE_RDP_NEG_FAILURE, _flags, failure)) => {
                session.note(&format!("S: X.224 Connection Confirm, RDP_NEG_FAILURE {failure} ({})", failure_name(failure)));
                ClientProgress::Unsupported(format!("server refused TLS: {}", failure_name(failure)))
            }
            Some((other, _, _)) => ClientProgress::Failed(format!("unexpected negotiation type {other} in the Connection Confirm")),
        }
    }

    fn protocol(&self) -> Option<Protocol> {
        Some(Protocol::Rdp)
    }
}

#[derive(Debug)]
pub(crate) struct Server;

impl Server {
    pub(crate) fn new() -> Self {
        Server
    }
}

/// Skips a `Cookie: mstshash=…\r\n` or routing token at the start of the variable part.
fn skip_token(variable: &[u8]) -> &[u8] {
    if variable.starts_with(b"Cookie:") || variable.starts_with(b"tsv:") {
        if let Some(end) = variable.windows(2).position(|w| w == b"\r\n") {
            return variable.get(end + 2..).unwrap_or_default();
        }
        return &[];
    }
    variable
}

impl ServerDialect for Server {
    fn start(&mut self, _session: &mut Session) -> Vec<u8> {
        Vec::new()
    }

    fn advance(&mut self, session: &mut Session) -> ServerProgress {
        let tpdu = match next_tpkt(session) {
            Ok(Some(tpdu)) => tpdu,
            Ok(None) => return ServerProgress::NeedMore,
            Err(reason) => return ServerProgress::Close { send_last: Vec::new(), reason },
        };
        let code = tpdu.get(1).copied().unwrap_or(0) & 0xf0;
        if code != TPDU_CONNECTION_REQUEST {
            return ServerProgress::Close { send_last: Vec::new(), reason: format!("expected an X.224 Connection Request, got code 0x{code:02x}") };
        }
        let variable = match variable_part(&tpdu) {
            Ok(variable) => skip_token(variable),
            Err(reason) => return ServerProgress::Close { send_last: Vec::new(), reason },
        };
        let requested = match negotiation(variable) {
            Some((TYPE_RDP_NEG_REQ, _, requested)) => requested,
            _ => PROTOCOL_RDP,
        };
        session.note(&format!("C: X.224 Connection Request, requestedProtocols 0x{requested:x}"));
        let selected = [PROTOCOL_SSL, PROTOCOL_HYBRID, PROTOCOL_HYBRID_EX].into_iter().find(|p| requested & p != 0);
        match selected {
            Some(selected) => {
                session.note(&format!("S: X.224 Connection Confirm, selectedProtocol {selected} ({})", protocol_name(selected)));
                ServerProgress::StartTls {
                    send_first: x224(TPDU_CONNECTION_CONFIRM, TYPE_RDP_NEG_RSP, EXTENDED_CLIENT_DATA_SUPPORTED, selected),
                }
            }
            None => {
                session.note("S: X.224 Connection Confirm, RDP_NEG_FAILURE SSL_REQUIRED_BY_SERVER");
                ServerProgress::Close {
                    send_last: x224(TPDU_CONNECTION_CONFIRM, TYPE_RDP_NEG_FAILURE, 0, 1),
                    reason: "client offered no TLS-based security protocol".to_string(),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{assert_all_cuts, client_result, kind, no_panic_on_garbage, server_result};
    use crate::{ClientParams, ServerStep, Step};

    #[test]
    fn request_bytes() {
        assert_eq!(
            connection_request(PROTOCOL_SSL | PROTOCOL_HYBRID),
            [3, 0, 0, 19, 14, 0xe0, 0, 0, 0, 0, 0, 1, 0, 8, 0, 3, 0, 0, 0]
        );
    }

    #[test]
    fn xrdp_confirm_selects_ssl() {
        // Recorded from xrdp 0.9.21 with security_layer=tls (tests/data/README.md).
        let confirm = include_bytes!("../tests/data/xrdp-confirm.bin");
        let step = assert_all_cuts(Protocol::Rdp, &ClientParams::default(), confirm);
        assert!(matches!(&step, Step::Ready { transcript, .. } if transcript.contains("PROTOCOL_SSL")), "{step:?}");
        let hybrid = [3, 0, 0, 19, 14, 0xd0, 0, 0, 0x12, 0x34, 0, 2, 0, 8, 0, 2, 0, 0, 0];
        assert_eq!(kind(&client_result(Protocol::Rdp, ClientParams::default(), &hybrid)), "ready");
    }

    #[test]
    fn refusals_and_malformed() {
        let cases: [(&[u8], &str); 8] = [
            (&[3, 0, 0, 19, 14, 0xd0, 0, 0, 0x12, 0x34, 0, 3, 0, 8, 0, 2, 0, 0, 0], "unsupported"),
            (&[3, 0, 0, 19, 14, 0xd0, 0, 0, 0x12, 0x34, 0, 2, 0, 8, 0, 0, 0, 0, 0], "unsupported"),
            (&[3, 0, 0, 11, 6, 0xd0, 0, 0, 0x12, 0x34, 0], "unsupported"),
            (&[3, 0, 0, 11, 6, 0x80, 0, 0, 0x12, 0x34, 0], "failed"),
            (&[3, 0, 0, 19, 14, 0xd0, 0, 0, 0x12, 0x34, 0, 2, 0, 8, 0, 4, 0, 0, 0], "failed"),
            (&[3, 0, 0, 5, 0], "failed"),
            (&[3, 0, 0, 19, 30, 0xd0, 0, 0, 0x12, 0x34, 0, 2, 0, 8, 0, 1, 0, 0, 0], "failed"),
            (b"SSH-2.0-OpenSSH\r\n", "failed"),
        ];
        for (input, want) in cases {
            assert_eq!(kind(&client_result(Protocol::Rdp, ClientParams::default(), input)), want, "{input:?}");
        }
        assert_eq!(kind(&client_result(Protocol::Rdp, ClientParams::default(), &[3, 0, 0xff, 0xff])), "failed");
    }

    #[test]
    fn server_role() {
        // mstsc-style request with a cookie, asking for SSL|HYBRID.
        let mut request = vec![3, 0, 0, 0];
        let cookie = b"Cookie: mstshash=user\r\n";
        let li = 6 + cookie.len() + 8;
        request.extend_from_slice(&[li as u8, 0xe0, 0, 0, 0, 0, 0]);
        request.extend_from_slice(cookie);
        request.extend_from_slice(&[1, 0, 8, 0, 3, 0, 0, 0]);
        let total = request.len() as u16;
        request[2..4].copy_from_slice(&total.to_be_bytes());
        let ServerStep::StartTls { send_first, .. } = server_result(Protocol::Rdp, &request) else { panic!() };
        assert_eq!(send_first[11], TYPE_RDP_NEG_RSP);
        assert_eq!(send_first[15], 1);
        // Standard RDP security only: refused.
        let plain = connection_request(PROTOCOL_RDP);
        assert!(matches!(server_result(Protocol::Rdp, &plain), ServerStep::Close { ref send_last, .. } if send_last[11] == TYPE_RDP_NEG_FAILURE));
    }

    #[test]
    fn garbage_never_panics() {
        no_panic_on_garbage(Protocol::Rdp);
    }
}
