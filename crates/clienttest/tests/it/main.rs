//! The client test's integration tests, in one binary: replays of real recorded OpenSSL clients, the
//! lab's vulnerable, fixed and heartbeat-less clients over loopback, handshakes completed by the lab's
//! server (`--after-handshake`), real OpenSSL 1.0.1f / 1.0.1g / no-heartbeat `s_client`
//! (`openssl101`), and the fuzz corpus.
#![allow(clippy::unwrap_used, clippy::panic)] // tests fail loudly by design, helpers included

mod client_after_handshake;
mod client_lab;
mod client_replay;
mod fuzz_corpus;
mod openssl101;
