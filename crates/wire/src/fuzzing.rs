//! Fuzz entry points (used by `fuzz/` and by the corpus replay tests): each takes arbitrary bytes and
//! drives one parser entry point the way the tools do. They must never panic.

use crate::alert::Alert;
use crate::handshake::{parse_certificate_list, parse_hello_verify_request, ClientHello, HandshakeReassembler, ServerHello};
use crate::heartbeat::HeartbeatMessage;
use crate::record::Deframer;
use crate::types::{ContentType, HandshakeType};

/// Deframes `data` as a record stream and parses every record's content with the matching parser.
pub fn records(data: &[u8]) {
    let mut deframer = Deframer::new();
    let mut handshake = HandshakeReassembler::default();
    // Feed in two pieces so that partial-record paths are exercised too.
    let split = data.first().map(|b| *b as usize % (data.len() + 1)).unwrap_or(0);
    for piece in [&data[..split], &data[split..]] {
        if deframer.push(piece).is_err() {
            return;
        }
        while let Ok(Some(record)) = deframer.next_record() {
            match record.header.content_type {
                ContentType::HANDSHAKE => {
                    handshake.push(record.fragment);
                    while let Ok(Some(m)) = handshake.next_message() {
                        handshake_message(m.typ, m.body);
                    }
                }
                ContentType::HEARTBEAT => {
                    if let Ok(hb) = HeartbeatMessage::parse(record.fragment) {
                        let _ = (hb.payload(), hb.padding_len(), hb.missing_payload(), hb.passes_bounds_check());
                    }
                }
                ContentType::ALERT => {
                    let _ = Alert::parse(record.fragment);
                }
                _ => {}
            }
        }
    }
}

/// Parses `body` as the handshake message `typ`.
pub fn handshake_message(typ: HandshakeType, body: &[u8]) {
    match typ {
        HandshakeType::CLIENT_HELLO => {
            if let Ok(ch) = ClientHello::parse(body) {
                let _ = (ch.server_name(), ch.heartbeat_mode(), ch.supported_versions(), ch.signals_renegotiation_info());
            }
        }
        HandshakeType::SERVER_HELLO => {
            if let Ok(sh) = ServerHello::parse(body) {
                let _ = (sh.negotiated_version(), sh.heartbeat_mode());
            }
        }
        HandshakeType::CERTIFICATE => {
            let _ = parse_certificate_list(body);
        }
        HandshakeType::HELLO_VERIFY_REQUEST => {
            let _ = parse_hello_verify_request(body);
        }
        _ => {}
    }
}
