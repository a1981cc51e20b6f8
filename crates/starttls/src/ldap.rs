//! LDAP StartTLS (RFC 4511 §4.14): the extended operation 1.3.6.1.4.1.1466.20037.
//!
//! Client (speaks first): send an ExtendedRequest with that OID as message 1; the server answers
//! an ExtendedResponse; resultCode 0 (success) means TLS starts now. BER is parsed with
//! `asn1-rs`; the few fixed messages we send are encoded here.

use asn1_rs::{nom, Any, Class, FromBer, Header, Length};

use crate::session::{printable_bytes, Session};
use crate::{ClientDialect, ClientProgress, CommandBudget, Protocol, ServerDialect, ServerProgress};

pub(crate) const START_TLS_OID: &[u8] = b"1.3.6.1.4.1.1466.20037";
/// Unsolicited "notice of disconnection" (RFC 4511 §4.4.1).
const NOTICE_OF_DISCONNECTION_OID: &[u8] = b"1.3.6.1.4.1.1466.20036";

const TAG_INTEGER: u32 = 2;
const TAG_OCTET_STRING: u32 = 4;
const TAG_ENUMERATED: u32 = 10;
const TAG_SEQUENCE: u32 = 16;

const OP_BIND_REQUEST: u32 = 0;
const OP_UNBIND_REQUEST: u32 = 2;
const OP_SEARCH_REQUEST: u32 = 3;
const OP_ABANDON_REQUEST: u32 = 16;
const OP_EXTENDED_REQUEST: u32 = 23;
const OP_EXTENDED_RESPONSE: u32 = 24;

const SUCCESS: i64 = 0;
const PROTOCOL_ERROR: i64 = 2;
const CONFIDENTIALITY_REQUIRED: i64 = 13;

fn result_name(code: i64) -> &'static str {
    match code {
        0 => "success",
        1 => "operationsError",
        2 => "protocolError",
        7 => "authMethodNotSupported",
        8 => "strongerAuthRequired",
        13 => "confidentialityRequired",
        51 => "busy",
        52 => "unavailable",
        53 => "unwillingToPerform",
        80 => "other",
        _ => "other result code",
    }
}

/// BER definite-length TLV.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else if len <= 0xff {
        out.extend_from_slice(&[0x81, len as u8]);
    } else if len <= 0xffff {
        out.push(0x82);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x84);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    }
    out.extend_from_slice(content);
    out
}

fn concat(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.concat()
}

/// The StartTLS ExtendedRequest as message `id`.
pub(crate) fn start_tls_request(id: u8) -> Vec<u8> {
    let request = tlv(0x77, &tlv(0x80, START_TLS_OID));
    tlv(0x30, &concat(&[tlv(0x02, &[id]), request]))
}

/// An LDAPResult-shaped response (`op` is the APPLICATION tag byte) with optional extra fields.
fn response(message_id: &[u8], op: u8, code: u8, diagnostic: &str, extra: &[u8]) -> Vec<u8> {
    let body = concat(&[tlv(0x0a, &[code]), tlv(0x04, b""), tlv(0x04, diagnostic.as_bytes()), extra.to_vec()]);
    tlv(0x30, &concat(&[tlv(0x02, message_id), tlv(op, &body)]))
}

fn integer(any: &Any) -> Option<i64> {
    let bytes = any.data;
    if bytes.is_empty() || bytes.len() > 4 {
        return None;
    }
    let negative = bytes.first().is_some_and(|b| b & 0x80 != 0);
    let start: i64 = if negative { -1 } else { 0 };
    Some(bytes.iter().fold(start, |acc, &b| (acc << 8) | i64::from(b)))
}

/// Parses one element from `input`, requiring definite lengths (RFC 4511 §5.1).
fn element(input: &[u8]) -> Result<(Any<'_>, &[u8]), String> {
    match Any::from_ber(input) {
        Ok((rest, any)) => {
            if matches!(any.header.length(), Length::Indefinite) {
                return Err("indefinite BER length (LDAP requires definite lengths)".to_string());
            }
            Ok((any, rest))
        }
        Err(err) => Err(format!("malformed BER: {err}")),
    }
}

/// The children of a constructed element.
fn children<'a>(any: &Any<'a>) -> Result<Vec<Any<'a>>, String> {
    let mut rest = any.data;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let (child, after) = element(rest)?;
        out.push(child);
        rest = after;
        if out.len() > 64 {
            return Err("too many elements".to_string());
        }
    }
    Ok(out)
}

/// One LDAPMessage: (message id raw bytes, protocolOp element).
struct Message<'a> {
    id_raw: &'a [u8],
    id: i64,
    op: Any<'a>,
}

fn parse_message<'a>(any: &Any<'a>) -> Result<Message<'a>, String> {
    if any.header.class() != Class::Universal || any.header.tag().0 != TAG_SEQUENCE || !any.header.is_constructed() {
        return Err(format!("LDAPMessage is not a SEQUENCE (tag {})", any.header.tag().0));
    }
    let parts = children(any)?;
    let mut parts = parts.into_iter();
    let id_any = parts.next().ok_or("empty LDAPMessage")?;
    if id_any.header.class() != Class::Universal || id_any.header.tag().0 != TAG_INTEGER {
        return Err("LDAPMessage does not start with a messageID INTEGER".to_string());
    }
    let id = integer(&id_any).ok_or("bad messageID")?;
    let op = parts.next().ok_or("LDAPMessage without protocolOp")?;
    if op.header.class() != Class::Application {
        return Err("protocolOp is not an APPLICATION element".to_string());
    }
    Ok(Message { id_raw: id_any.data, id, op })
}

/// Reads the next whole LDAPMessage from the session as an owned copy of its bytes.
fn next_message_bytes(session: &mut Session) -> Result<Option<Vec<u8>>, String> {
    let pending = session.pending();
    let Some(&first) = pending.first() else { return Ok(None) };
    if first != 0x30 {
        let excerpt = pending.get(..pending.len().min(32)).unwrap_or_default();
        return Err(format!("not an LDAP message (first byte 0x{first:02x}): {:?}", printable_bytes(excerpt)));
    }
    // Fail on an absurd announced length as soon as the header is in.
    match Header::from_ber(pending) {
        Ok((_, header)) => {
            if let Length::Definite(len) = header.length() {
                if len > session.limits.max_reply {
                    return Err(format!("LDAP message of {len} bytes exceeds the {}-byte cap", session.limits.max_reply));
                }
            }
        }
        Err(nom::Err::Incomplete(_)) => return Ok(None),
        Err(err) => return Err(format!("malformed BER header: {err}")),
    }
    match Any::from_ber(pending) {
        Ok((rest, _)) => {
            let used = pending.len() - rest.len();
            let bytes = pending.get(..used).unwrap_or_default().to_vec();
            session.consume(used);
            Ok(Some(bytes))
        }
        Err(nom::Err::Incomplete(_)) => {
            if pending.len() > session.limits.max_reply {
                Err(format!("LDAP message longer than {} bytes", session.limits.max_reply))
            } else {
                Ok(None)
            }
        }
        Err(err) => Err(format!("malformed BER: {err}")),
    }
}

/// `(resultCode, diagnosticMessage, responseName)` of an LDAPResult-based response.
fn ldap_result(op: &Any) -> Result<(i64, String, Option<Vec<u8>>), String> {
    let fields = children(op)?;
    let code_any = fields.first().ok_or("response without resultCode")?;
    if code_any.header.tag().0 != TAG_ENUMERATED {
        return Err("resultCode is not an ENUMERATED".to_string());
    }
    let code = integer(code_any).ok_or("bad resultCode")?;
    let diagnostic = fields
        .get(2)
        .filter(|f| f.header.tag().0 == TAG_OCTET_STRING)
        .map(|f| printable_bytes(f.data))
        .unwrap_or_default();
    let name = fields
        .iter()
        .skip(3)
        .find(|f| f.header.class() == Class::ContextSpecific && f.header.tag().0 == 10)
        .map(|f| f.data.to_vec());
    Ok((code, diagnostic, name))
}

#[derive(Debug)]
pub(crate) struct Client;

impl Client {
    pub(crate) fn new() -> Self {
        Client
    }
}

const REQUEST_ID: u8 = 1;

impl ClientDialect for Client {
    fn start(&mut self, session: &mut Session) -> Vec<u8> {
        session.note("C: ExtendedRequest 1.3.6.1.4.1.1466.20037 (StartTLS), messageID 1");
        start_tls_request(REQUEST_ID)
    }

    fn advance(&mut self, session: &mut Session) -> ClientProgress {
        let bytes = match next_message_bytes(session) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return ClientProgress::NeedMore,
            Err(reason) => return ClientProgress::Failed(reason),
        };
        let parsed = element(&bytes).and_then(|(any, _)| {
            let message = parse_message(&any)?;
            let op_tag = message.op.header.tag().0;
            let result = if op_tag == OP_EXTENDED_RESPONSE { Some(ldap_result(&message.op)?) } else { None };
            Ok((message.id, op_tag, result))
        });
        let (id, op_tag, result) = match parsed {
            Ok(parsed) => parsed,
            Err(reason) => return ClientProgress::Failed(reason),
        };
        let Some((code, diagnostic, name)) = result else {
            session.note(&format!("S: messageID {id}, protocolOp [APPLICATION {op_tag}]"));
            return ClientProgress::Failed(format!("expected an ExtendedResponse, got [APPLICATION {op_tag}]"));
        };
        session.note(&format!(
            "S: ExtendedResponse messageID {id}, resultCode {code} ({}){}",
            result_name(code),
            if diagnostic.is_empty() { String::new() } else { format!(", {diagnostic:?}") }
        ));
        if id == 0 && name.as_deref() == Some(NOTICE_OF_DISCONNECTION_OID) {
            return ClientProgress::Failed(format!("server sent a notice of disconnection: {} {diagnostic}", result_name(code)));
        }
        if id != i64::from(REQUEST_ID) {
            return ClientProgress::Failed(format!("response to messageID {id}, expected {REQUEST_ID}"));
        }
        match code {
            SUCCESS => ClientProgress::Ready { send_first: Vec::new() },
            // protocolError: the extended operation is unknown (slapd without TLS says so);
            // unavailable / unwillingToPerform: not offered.
            PROTOCOL_ERROR | 52 | 53 => {
                ClientProgress::Unsupported(format!("StartTLS refused: {code} ({}) {diagnostic}", result_name(code)).trim_end().to_string())
            }
            _ => ClientProgress::Failed(format!("StartTLS failed: {code} ({}) {diagnostic}", result_name(code)).trim_end().to_string()),
        }
    }

    fn protocol(&self) -> Option<Protocol> {
        Some(Protocol::Ldap)
    }
}

#[derive(Debug)]
pub(crate) struct Server {
    budget: CommandBudget,
}

impl Server {
    pub(crate) fn new() -> Self {
        Server { budget: CommandBudget::default() }
    }
}

/// The root DSE entry: what a client asks before StartTLS to see it is supported.
fn root_dse(message_id: &[u8]) -> Vec<u8> {
    let attribute = |name: &[u8], values: &[&[u8]]| {
        let set: Vec<u8> = values.iter().flat_map(|v| tlv(0x04, v)).collect();
        tlv(0x30, &concat(&[tlv(0x04, name), tlv(0x31, &set)]))
    };
    let attributes = concat(&[
        attribute(b"objectClass", &[b"top"]),
        attribute(b"supportedLDAPVersion", &[b"3"]),
        attribute(b"supportedExtension", &[START_TLS_OID]),
    ]);
    let entry = tlv(0x64, &concat(&[tlv(0x04, b""), tlv(0x30, &attributes)]));
    let mut out = tlv(0x30, &concat(&[tlv(0x02, message_id), entry]));
    out.extend(response(message_id, 0x65, 0, "", &[]));
    out
}

/// A SearchRequest for the root DSE (empty base, scope baseObject).
fn is_root_dse_search(op: &Any) -> bool {
    let Ok(fields) = children(op) else { return false };
    let base_empty = fields.first().is_some_and(|f| f.header.tag().0 == TAG_OCTET_STRING && f.data.is_empty());
    let scope_base = fields.get(1).and_then(integer) == Some(0);
    base_empty && scope_base
}

impl ServerDialect for Server {
    fn start(&mut self, _session: &mut Session) -> Vec<u8> {
        Vec::new()
    }

    fn advance(&mut self, session: &mut Session) -> ServerProgress {
        let bytes = match next_message_bytes(session) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return ServerProgress::NeedMore,
            Err(reason) => return ServerProgress::Close { send_last: Vec::new(), reason },
        };
        if !self.budget.spend(&session.limits) {
            return ServerProgress::Close { send_last: Vec::new(), reason: "too many requests before StartTLS".to_string() };
        }
        let any = match element(&bytes) {
            Ok((any, _)) => any,
            Err(reason) => return ServerProgress::Close { send_last: Vec::new(), reason },
        };
        let message = match parse_message(&any) {
            Ok(message) => message,
            Err(reason) => return ServerProgress::Close { send_last: Vec::new(), reason },
        };
        let id = message.id_raw.to_vec();
        let op = message.op;
        let op_tag = op.header.tag().0;
        session.note(&format!("C: request [APPLICATION {op_tag}]"));
        match op_tag {
            OP_EXTENDED_REQUEST => {
                let name = children(&op).ok().and_then(|f| f.into_iter().next()).map(|f| f.data.to_vec()).unwrap_or_default();
                if name == START_TLS_OID {
                    session.note("S: ExtendedResponse success (StartTLS)");
                    ServerProgress::StartTls { send_first: response(&id, 0x78, 0, "", &tlv(0x8a, START_TLS_OID)) }
                } else {
                    session.note("S: ExtendedResponse protocolError");
                    ServerProgress::Send(response(&id, 0x78, PROTOCOL_ERROR as u8, "unsupported extended operation", &[]))
                }
            }
            OP_BIND_REQUEST => ServerProgress::Send(response(&id, 0x61, CONFIDENTIALITY_REQUIRED as u8, "TLS confidentiality required", &[])),
            OP_SEARCH_REQUEST if is_root_dse_search(&op) => ServerProgress::Send(root_dse(&id)),
            OP_SEARCH_REQUEST => ServerProgress::Send(response(&id, 0x65, CONFIDENTIALITY_REQUIRED as u8, "TLS confidentiality required", &[])),
            OP_ABANDON_REQUEST => ServerProgress::Send(Vec::new()),
            OP_UNBIND_REQUEST => ServerProgress::Close { send_last: Vec::new(), reason: "client unbound".to_string() },
            other => ServerProgress::Close { send_last: Vec::new(), reason: format!("unsupported LDAP operation [APPLICATION {other}]") },
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
        let mut want = vec![0x30, 0x1d, 0x02, 0x01, 0x01, 0x77, 0x18, 0x80, 0x16];
        want.extend_from_slice(START_TLS_OID);
        assert_eq!(start_tls_request(1), want);
    }

    #[test]
    fn recorded_slapd_answers() {
        // Recorded from OpenLDAP slapd 2.5.13 with and without TLS (tests/data/README.md).
        let ok = include_bytes!("../tests/data/slapd-starttls.bin");
        let step = assert_all_cuts(Protocol::Ldap, &ClientParams::default(), ok);
        assert!(matches!(step, Step::Ready { .. }), "{step:?}");
        let no_tls = include_bytes!("../tests/data/slapd-no-tls.bin");
        let step = assert_all_cuts(Protocol::Ldap, &ClientParams::default(), no_tls);
        assert!(matches!(&step, Step::Unsupported { reason, .. } if reason.contains("protocolError")), "{step:?}");
    }

    #[test]
    fn openldap_success_and_refusals() {
        // Success with the optional responseName.
        let ok = response(&[1], 0x78, 0, "", &tlv(0x8a, START_TLS_OID));
        let step = assert_all_cuts(Protocol::Ldap, &ClientParams::default(), &ok);
        assert!(matches!(step, Step::Ready { .. }), "{step:?}");
        let no_tls = response(&[1], 0x78, 2, "unsupported extended operation", &[]);
        let step = client_result(Protocol::Ldap, ClientParams::default(), &no_tls);
        assert!(matches!(&step, Step::Unsupported { reason, .. } if reason.contains("unsupported extended operation")), "{step:?}");
        assert_eq!(kind(&client_result(Protocol::Ldap, ClientParams::default(), &response(&[1], 0x78, 1, "busy", &[]))), "failed");
        let notice = response(&[0], 0x78, 52, "shutting down", &tlv(0x8a, NOTICE_OF_DISCONNECTION_OID));
        let step = client_result(Protocol::Ldap, ClientParams::default(), &notice);
        assert!(matches!(&step, Step::Failed { reason, .. } if reason.contains("notice of disconnection")), "{step:?}");
        assert_eq!(kind(&client_result(Protocol::Ldap, ClientParams::default(), &response(&[7], 0x78, 0, "", &[]))), "failed");
        assert_eq!(kind(&client_result(Protocol::Ldap, ClientParams::default(), &response(&[1], 0x61, 0, "", &[]))), "failed");
    }

    #[test]
    fn malformed_and_oversized() {
        let cases: [&[u8]; 5] = [
            b"220 smtp\r\n",
            &[0x30, 0x03, 0x04, 0x01, 0x00],
            &[0x30, 0x84, 0x7f, 0xff, 0xff, 0xff],
            &[0x30, 0x80, 0x02, 0x01, 0x01, 0x78, 0x00, 0x00, 0x00],
            &[0x30, 0x05, 0x02, 0x01, 0x01, 0x04, 0x00],
        ];
        for input in cases {
            assert_eq!(kind(&client_result(Protocol::Ldap, ClientParams::default(), input)), "failed", "{input:02x?}");
        }
        assert_eq!(kind(&client_result(Protocol::Ldap, ClientParams::default(), &[0x30, 0x10, 0x02])), "need-more");
    }

    #[test]
    fn server_role() {
        let step = server_result(Protocol::Ldap, &start_tls_request(5));
        let ServerStep::StartTls { send_first, .. } = step else { panic!("{step:?}") };
        assert_eq!(send_first, response(&[5], 0x78, 0, "", &tlv(0x8a, START_TLS_OID)));
        // Root DSE search: entry listing the StartTLS OID, then success.
        let search = tlv(
            0x30,
            &concat(&[
                tlv(0x02, &[2]),
                tlv(0x63, &concat(&[tlv(0x04, b""), tlv(0x0a, &[0]), tlv(0x0a, &[0]), tlv(0x02, &[0]), tlv(0x02, &[0]), tlv(0x01, &[0]), tlv(0x87, b"objectClass"), tlv(0x30, b"")])),
            ]),
        );
        let ServerStep::Send(bytes) = server_result(Protocol::Ldap, &search) else { panic!() };
        assert!(bytes.windows(START_TLS_OID.len()).any(|w| w == START_TLS_OID));
        let bind = tlv(0x30, &concat(&[tlv(0x02, &[1]), tlv(0x60, &concat(&[tlv(0x02, &[3]), tlv(0x04, b""), tlv(0x80, b"")]))]));
        assert_eq!(server_result(Protocol::Ldap, &bind), ServerStep::Send(response(&[1], 0x61, 13, "TLS confidentiality required", &[])));
    }

    #[test]
    fn long_lengths_encode() {
        assert_eq!(&tlv(0x04, &[0; 200])[..3], &[0x04, 0x81, 200]);
        assert_eq!(&tlv(0x04, &[0; 300])[..4], &[0x04, 0x82, 1, 44]);
    }

    #[test]
    fn garbage_never_panics() {
        no_panic_on_garbage(Protocol::Ldap);
    }
}
