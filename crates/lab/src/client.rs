//! A TLS client that behaves like OpenSSL 1.0.1f's `s_client` (or 1.0.1g's, or a build without
//! heartbeats) towards a server that sends heartbeats in the middle of the handshake — the
//! counterpart of the lab server, for testing `bleedwatch client-test`. It answers heartbeats right
//! after the ServerHello, as the real 1.0.1 clients in the shared captures do, through the same
//! emulated 4 KiB handshake write buffer, and returns canary bytes where 1.0.1f leaks memory.
//! It never completes a handshake.

use std::net::SocketAddr;

use bleedwatch_wire::alert::Alert;
use bleedwatch_wire::handshake::{HandshakeReassembler, ServerHello};
use bleedwatch_wire::hello::ClientHelloSpec;
use bleedwatch_wire::record::Deframer;
use bleedwatch_wire::{AlertDescription, ContentType, HandshakeType, ProtocolVersion};
use rand::RngCore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::session::{heartbeat_action, Behaviour, HandshakeWriteBuffer, HeartbeatAction, LabEvent};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    AwaitServerHello,
    AwaitCertificate,
    Closed,
}

pub struct LabClient {
    behaviour: Behaviour,
    state: State,
    version: ProtocolVersion,
    deframer: Deframer,
    handshake: HandshakeReassembler,
    out: HandshakeWriteBuffer,
    events: Vec<LabEvent>,
}

impl LabClient {
    /// A client offering `version` (and the heartbeat extension unless it has no heartbeat code).
    pub fn new(behaviour: Behaviour, version: ProtocolVersion) -> Self {
        let mut random = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut random);
        let mut hello = ClientHelloSpec::probe(version, random, None);
        if behaviour == Behaviour::NoHeartbeat {
            hello.heartbeat = None;
        }
        let mut out = HandshakeWriteBuffer::default();
        let record_version = if version == ProtocolVersion::SSL3 { ProtocolVersion::SSL3 } else { ProtocolVersion::TLS1_0 };
        out.write_records(ContentType::HANDSHAKE, record_version, &hello.encode());
        out.flush(); // end of the client's first flight
        LabClient {
            behaviour,
            state: State::AwaitServerHello,
            version,
            deframer: Deframer::new(),
            handshake: HandshakeReassembler::default(),
            out,
            events: Vec::new(),
        }
    }

    pub fn take_output(&mut self) -> Vec<u8> {
        self.out.take_wire()
    }

    pub fn take_events(&mut self) -> Vec<LabEvent> {
        std::mem::take(&mut self.events)
    }

    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    fn fatal(&mut self, description: AlertDescription) {
        let alert = Alert::fatal(description);
        self.out.write_records(ContentType::ALERT, self.version, &alert.encode());
        self.out.flush();
        self.events.push(LabEvent::Alert { sent: true, alert: alert.to_string() });
        self.state = State::Closed;
    }

    pub fn feed(&mut self, data: &[u8]) {
        if self.state == State::Closed {
            return;
        }
        if self.deframer.push(data).is_err() {
            return self.fatal(AlertDescription::RECORD_OVERFLOW);
        }
        while self.state != State::Closed {
            let (typ, fragment) = match self.deframer.next_record() {
                Ok(Some(r)) => (r.header.content_type, r.fragment.to_vec()),
                Ok(None) => return,
                Err(_) => return self.fatal(AlertDescription::DECODE_ERROR),
            };
            match typ {
                ContentType::HANDSHAKE => self.on_handshake(&fragment),
                ContentType::HEARTBEAT => {
                    let (action, event) = heartbeat_action(self.behaviour, self.version, &fragment);
                    let before = self.out.wire_len();
                    match action {
                        HeartbeatAction::Respond(r) => self.out.write_records(ContentType::HEARTBEAT, self.version, &r),
                        HeartbeatAction::Alert => self.fatal(AlertDescription::UNEXPECTED_MESSAGE),
                        HeartbeatAction::Drop | HeartbeatAction::Ignore => {}
                    }
                    if let Some(mut e) = event {
                        if let LabEvent::Heartbeat { flushed, .. } = &mut e {
                            *flushed = self.out.wire_len() > before;
                        }
                        self.events.push(e);
                    }
                }
                ContentType::ALERT => {
                    if let Ok(alert) = Alert::parse(&fragment) {
                        self.events.push(LabEvent::Alert { sent: false, alert: alert.to_string() });
                        if alert.is_fatal() {
                            self.state = State::Closed;
                        }
                    }
                }
                _ => self.fatal(AlertDescription::UNEXPECTED_MESSAGE),
            }
        }
    }

    fn on_handshake(&mut self, fragment: &[u8]) {
        self.handshake.push(fragment);
        while self.state != State::Closed {
            let (typ, body) = match self.handshake.next_message() {
                Ok(Some(m)) => (m.typ, m.body.to_vec()),
                Ok(None) => return,
                Err(_) => return self.fatal(AlertDescription::DECODE_ERROR),
            };
            match (self.state, typ) {
                (State::AwaitServerHello, HandshakeType::SERVER_HELLO) => match ServerHello::parse(&body) {
                    Ok(sh) if sh.version.0 <= self.version.0 && sh.version.0 >= ProtocolVersion::SSL3.0 => {
                        self.version = sh.version;
                        self.state = State::AwaitCertificate;
                    }
                    Ok(_) => return self.fatal(AlertDescription::PROTOCOL_VERSION),
                    Err(_) => return self.fatal(AlertDescription::DECODE_ERROR),
                },
                // The lab client stops at the certificate: it cannot complete a handshake.
                (State::AwaitCertificate, HandshakeType::CERTIFICATE) => return self.fatal(AlertDescription::HANDSHAKE_FAILURE),
                // ssl3_get_server_certificate: anything else where a Certificate must come.
                _ => return self.fatal(AlertDescription::UNEXPECTED_MESSAGE),
            }
        }
    }
}

/// Connects a lab client to `addr` and runs it until the server or the client gives up (bounded by
/// `limit`); returns what happened.
pub async fn run_lab_client(addr: SocketAddr, behaviour: Behaviour, version: ProtocolVersion, limit: std::time::Duration) -> std::io::Result<Vec<LabEvent>> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let mut client = LabClient::new(behaviour, version);
    let mut events = Vec::new();
    let mut buf = vec![0u8; 32 * 1024];
    let run = async {
        loop {
            let out = client.take_output();
            if !out.is_empty() {
                stream.write_all(&out).await?;
            }
            events.extend(client.take_events());
            if client.is_closed() {
                break;
            }
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            client.feed(&buf[..n]);
        }
        Ok::<(), std::io::Error>(())
    };
    let _ = tokio::time::timeout(limit, run).await;
    let _ = stream.shutdown().await;
    Ok(events)
}
