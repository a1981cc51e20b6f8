//! The lab's TLS server session as the after-handshake test's [`HandshakeServer`](crate::tester::HandshakeServer).

use bleedwatch_wire::{CipherSuite, ContentType, ProtocolVersion};

use crate::tester::{HandshakeServer, ServerFactory, SessionAlert};

/// The lab's TLS server session as the after-handshake test's server: it completes the handshake
/// like OpenSSL 1.0.1g (which answers only honest heartbeats from the client) and hands the
/// established session over.
struct LabHandshakeServer(bleedwatch_lab::LabSession);

/// The server factory `client-test --after-handshake` uses: the lab session with `identity`.
pub fn lab_server_factory(identity: std::sync::Arc<bleedwatch_lab::LabIdentity>) -> ServerFactory {
    let cfg = bleedwatch_lab::LabConfig::new(bleedwatch_lab::Behaviour::Fixed, identity);
    std::sync::Arc::new(move || {
        let mut session = bleedwatch_lab::LabSession::new(cfg.clone());
        session.hand_over_records();
        Box::new(LabHandshakeServer(session)) as Box<dyn HandshakeServer>
    })
}

impl HandshakeServer for LabHandshakeServer {
    fn feed(&mut self, data: &[u8]) {
        self.0.feed(data)
    }

    fn take_output(&mut self) -> Vec<u8> {
        self.0.take_output()
    }

    fn established(&self) -> Option<(ProtocolVersion, CipherSuite)> {
        self.0.established_version().zip(self.0.established_suite())
    }

    fn is_closed(&self) -> bool {
        self.0.is_closed()
    }

    fn send_encrypted(&mut self, typ: ContentType, data: &[u8]) -> bool {
        self.0.send_encrypted(typ, data).is_ok()
    }

    fn take_client_records(&mut self) -> Vec<(ContentType, Vec<u8>)> {
        self.0.take_peer_records().into_iter().map(|r| (r.content_type, r.plaintext)).collect()
    }

    fn take_alerts(&mut self) -> Vec<SessionAlert> {
        self.0
            .take_events()
            .into_iter()
            .filter_map(|e| match e {
                bleedwatch_lab::LabEvent::Alert { sent, alert } => Some(SessionAlert { sent, fatal: alert.starts_with("fatal"), alert }),
                _ => None,
            })
            .collect()
    }
}
