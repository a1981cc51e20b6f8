//! PostgreSQL SSLRequest (protocol 3.0, "SSL session encryption").
//!
//! Client: send `00 00 00 08 04 d2 16 2f`; the server answers one byte: `S` (start TLS) or `N`
//! (no SSL). Servers older than 7.1 answer an ErrorResponse (`E`).

use crate::session::{printable_bytes, Session};
use crate::{ClientDialect, ClientProgress, Protocol, ServerDialect, ServerProgress};

/// SSLRequest: length 8, code 80877103.
pub(crate) const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
/// GSSENCRequest: length 8, code 80877104.
const GSSENC_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30];
const CANCEL_REQUEST_CODE: [u8; 4] = [0x04, 0xd2, 0x16, 0x2e];
const PROTOCOL_3_0: [u8; 4] = [0, 3, 0, 0];

#[derive(Debug)]
pub(crate) struct Client;

impl Client {
    pub(crate) fn new() -> Self {
        Client
    }
}

/// The message text (`M` field) of an ErrorResponse body, if it has one.
fn error_message(fields: &[u8]) -> Option<String> {
    fields
        .split(|&b| b == 0)
        .find_map(|field| field.strip_prefix(b"M"))
        .map(printable_bytes)
}

impl ClientDialect for Client {
    fn start(&mut self, session: &mut Session) -> Vec<u8> {
        session.note("C: SSLRequest (00 00 00 08 04 d2 16 2f)");
        SSL_REQUEST.to_vec()
    }

    fn advance(&mut self, session: &mut Session) -> ClientProgress {
        let pending = session.pending();
        let Some(&first) = pending.first() else { return ClientProgress::NeedMore };
        match first {
            b'S' => {
                session.consume(1);
                session.note("S: S (willing to perform SSL)");
                ClientProgress::Ready { send_first: Vec::new() }
            }
            b'N' => {
                session.consume(1);
                session.note("S: N (unwilling to perform SSL)");
                ClientProgress::Unsupported("server answered N to SSLRequest: SSL is off".to_string())
            }
            b'E' => {
                // ErrorResponse: 'E', int32 length (including itself), fields. Pre-3.0 servers
                // send 'E' and a NUL-terminated text instead.
                let Some(header) = pending.get(1..5) else { return ClientProgress::NeedMore };
                let length = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
                let text = if (4..=session.limits.max_reply).contains(&length) {
                    let Some(body) = pending.get(5..1 + length) else { return ClientProgress::NeedMore };
                    error_message(body).unwrap_or_else(|| printable_bytes(body))
                } else {
                    let cut = pending.get(1..pending.len().min(200)).unwrap_or_default();
                    printable_bytes(cut.split(|&b| b == 0).next().unwrap_or_default())
                };
                session.note(&format!("S: ErrorResponse {text}"));
                ClientProgress::Unsupported(format!("server answered SSLRequest with an error: {text}"))
            }
            other => {
                let excerpt = pending.get(..pending.len().min(16)).unwrap_or_default();
                session.note(&format!("S: {excerpt:02x?}"));
                ClientProgress::Failed(format!("unexpected answer to SSLRequest: first byte 0x{other:02x}"))
            }
        }
    }

    fn protocol(&self) -> Option<Protocol> {
        Some(Protocol::Postgres)
    }
}

#[derive(Debug)]
pub(crate) struct Server {
    requests: usize,
}

impl Server {
    pub(crate) fn new() -> Self {
        Server { requests: 0 }
    }
}

/// A FATAL ErrorResponse with SQLSTATE 28000 (invalid authorization).
fn fatal_error(message: &str) -> Vec<u8> {
    let mut fields = Vec::new();
    for (code, value) in [(b'S', "FATAL"), (b'V', "FATAL"), (b'C', "28000"), (b'M', message)] {
        fields.push(code);
        fields.extend_from_slice(value.as_bytes());
        fields.push(0);
    }
    fields.push(0);
    let mut out = vec![b'E'];
    out.extend_from_slice(&(fields.len() as u32 + 4).to_be_bytes());
    out.extend(fields);
    out
}

impl ServerDialect for Server {
    fn start(&mut self, _session: &mut Session) -> Vec<u8> {
        Vec::new()
    }

    fn advance(&mut self, session: &mut Session) -> ServerProgress {
        let pending = session.pending();
        // PostgreSQL 17 `sslnegotiation=direct`: the client starts with a TLS ClientHello.
        if pending.first() == Some(&0x16) {
            session.note("C: TLS ClientHello without SSLRequest (direct SSL)");
            return ServerProgress::StartTls { send_first: Vec::new() };
        }
        let Some(head) = pending.get(..8) else { return ServerProgress::NeedMore };
        let mut message = [0u8; 8];
        message.copy_from_slice(head);
        self.requests += 1;
        if self.requests > 4 {
            return ServerProgress::Close { send_last: Vec::new(), reason: "too many negotiation requests".to_string() };
        }
        if message == SSL_REQUEST {
            session.consume(8);
            session.note("C: SSLRequest");
            session.note("S: S");
            return ServerProgress::StartTls { send_first: b"S".to_vec() };
        }
        if message == GSSENC_REQUEST {
            session.consume(8);
            session.note("C: GSSENCRequest");
            session.note("S: N");
            return ServerProgress::Send(b"N".to_vec());
        }
        if message[4..8] == CANCEL_REQUEST_CODE {
            return ServerProgress::Close { send_last: Vec::new(), reason: "cancel request".to_string() };
        }
        if message[4..8] == PROTOCOL_3_0 {
            session.note("C: StartupMessage without SSLRequest");
            return ServerProgress::Close {
                send_last: fatal_error("SSL required: connect with sslmode=require"),
                reason: "client sent a startup message without asking for SSL".to_string(),
            };
        }
        ServerProgress::Close { send_last: Vec::new(), reason: format!("not a PostgreSQL client: {message:02x?}") }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{assert_all_cuts, client_result, kind, no_panic_on_garbage, server_result};
    use crate::{ClientParams, ServerStep, Step};

    #[test]
    fn yes_no_and_errors() {
        let mut client = crate::ClientUpgrade::new(Protocol::Postgres, ClientParams::default());
        assert_eq!(client.start(), SSL_REQUEST);
        assert!(matches!(client.feed(b"S"), Step::Ready { ref leftover, .. } if leftover.is_empty()));
        assert_eq!(kind(&client_result(Protocol::Postgres, ClientParams::default(), b"N")), "unsupported");
        let error = fatal_error("unsupported frontend protocol 1234.5679");
        let step = assert_all_cuts(Protocol::Postgres, &ClientParams::default(), &error);
        assert!(matches!(&step, Step::Unsupported { reason, .. } if reason.contains("unsupported frontend protocol")), "{step:?}");
        assert_eq!(kind(&client_result(Protocol::Postgres, ClientParams::default(), b"HTTP/1.1 400")), "failed");
        assert_eq!(kind(&client_result(Protocol::Postgres, ClientParams::default(), b"")), "need-more");
        // Bytes after `S` are not ours to judge, but the shell gets them (CVE-2021-23214 style).
        let step = client_result(Protocol::Postgres, ClientParams::default(), b"Sxyz");
        assert!(matches!(step, Step::Ready { ref leftover, .. } if leftover == b"xyz"));
    }

    #[test]
    fn server_role() {
        assert_eq!(server_result(Protocol::Postgres, &SSL_REQUEST), ServerStep::StartTls { send_first: b"S".to_vec(), leftover: vec![] });
        let mut both = GSSENC_REQUEST.to_vec();
        both.extend(SSL_REQUEST);
        assert_eq!(server_result(Protocol::Postgres, &both), ServerStep::StartTls { send_first: b"NS".to_vec(), leftover: vec![] });
        assert!(matches!(server_result(Protocol::Postgres, &[0x16, 3, 1, 0, 5]), ServerStep::StartTls { ref leftover, .. } if leftover.len() == 5));
        assert!(matches!(server_result(Protocol::Postgres, &[0, 0, 0, 9, 0, 3, 0, 0, 0]), ServerStep::Close { ref send_last, .. } if send_last.first() == Some(&b'E')));
        assert_eq!(server_result(Protocol::Postgres, &SSL_REQUEST[..5]), ServerStep::NeedMore);
    }

    #[test]
    fn garbage_never_panics() {
        no_panic_on_garbage(Protocol::Postgres);
    }
}
