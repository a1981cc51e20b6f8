//! The probe crate's integration tests, in one binary: replays of real recorded OpenSSL streams, scans
//! of the lab servers over loopback TCP, scans of real servers from Debian packages, and the scanner and
//! lab against real OpenSSL 1.0.1f / 1.0.1g / no-heartbeat builds (`openssl101`). The client test's
//! tests are in `crates/clienttest`.
#![allow(clippy::unwrap_used, clippy::panic)] // tests fail loudly by design, helpers included

mod closes;
mod detection;
mod dns;
mod dtls;
mod fuzz_corpus;
mod lab;
mod openssl101;
mod other_stacks;
mod real_servers;
mod replay;
mod scheduler;
mod servers;
