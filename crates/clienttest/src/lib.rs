//! `bleedwatch client-test`: testing TLS clients for Heartbleed. This crate owns the dependency on
//! the lab's TLS server (for `--after-handshake`), so that the scanner does not link it; the verdict
//! logic it shares with the scanner (the heartbeat requests, `judge`, `ConnectionOutcome`, the stream
//! driver) comes from `bleedwatch-probe`.
//!
//! [`tester`] is the sans-IO client tester; [`serve`] runs it on accepted connections; [`lab_server`]
//! is the lab's TLS server for the after-handshake test.
#![forbid(unsafe_code)]

pub mod lab_server;
pub mod serve;
pub mod tester;

pub use lab_server::lab_server_factory;
pub use serve::{serve_client_tests, serve_client_tests_with, ClientTestOptions};
pub use tester::{fuzz_client_bytes, ClientHelloInfo, ClientTestResult, ClientTester, HandshakeServer, ServerFactory, SessionAlert};
