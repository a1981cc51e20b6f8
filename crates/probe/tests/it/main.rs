//! The probe crate's integration tests, in one binary: replays of real recorded OpenSSL streams, scans
//! of the lab servers over loopback TCP, and scans of real servers from Debian packages.
#![allow(clippy::unwrap_used, clippy::panic)] // tests fail loudly by design, helpers included

mod client_after_handshake;
mod client_lab;
mod client_replay;
mod detection;
mod dns;
mod dtls;
mod fuzz_corpus;
mod lab;
mod real_servers;
mod replay;
mod scheduler;
mod servers;
