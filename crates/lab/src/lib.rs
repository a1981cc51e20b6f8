//! Lab servers for bleedwatch's demo and tests: they behave on the wire like OpenSSL 1.0.1f
//! (vulnerable), 1.0.1g (fixed) and 1.0.1f without heartbeats, but only ever leak canary bytes.
//!
//! [`session`] is the sans-IO server; [`server`] runs it on a TCP listener.
#![forbid(unsafe_code)]

pub mod client;
pub mod dtls;
pub mod identity;
pub mod kx;
pub mod server;
pub mod session;
pub mod suites;
pub mod tls12;

pub use identity::{LabCa, LabIdentity};
pub use server::{LabServer, LabServerHandle};
pub use session::{Behaviour, LabConfig, LabEvent, LabSession, CANARY};
