//! The sans-IO TLS core of bleedwatch.
//!
//! Everything here works on byte slices and owns no sockets, so that one implementation of records,
//! handshake messages, alerts and heartbeats serves the scanner, the test servers, the client test
//! server, the honeypot and the packet-capture detector, and so that each is testable on bytes.
//!
//! Parsers never trust a length from the peer: every read is bounds-checked first
//! ([`codec::Reader`]), every buffer has a cap, and wire values are open enums that keep
//! unknown values.
#![forbid(unsafe_code)]

pub mod alert;
pub mod codec;
pub mod dtls;
pub mod error;
pub mod fuzzing;
pub mod handshake;
pub mod heartbeat;
pub mod hello;
pub mod record;
pub mod types;

pub use error::WireError;
pub use types::{AlertDescription, CipherSuite, ContentType, ExtensionType, HandshakeType, ProtocolVersion};
