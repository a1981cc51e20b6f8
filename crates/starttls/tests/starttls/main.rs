//! The STARTTLS crate's integration tests, in one binary, against real servers from Debian packages
//! (scripts/test-packages/starttls.txt) started on free loopback ports:
//!
//! - [`dialects`]: the sans-IO client and server roles over real connections;
//! - [`scanner`]: `bleedwatch_probe` (the scan command's engine) through every dialect, forced and
//!   auto-detected, and against the same servers without TLS;
//! - [`lab`]: the lab's vulnerable server behind every dialect, found by the scanner;
//! - [`hostile`]: scripted servers that misbehave, answered with a clear status in bounded time;
//! - [`fuzz_corpus`]: the client-role fuzz corpus, replayed.
//!
//! [`servers`] starts and stops them all; every wait is bounded.
#![allow(clippy::unwrap_used, clippy::panic)] // tests fail loudly by design

mod dialects;
mod fuzz_corpus;
mod hostile;
mod lab;
mod scanner;
mod servers;
