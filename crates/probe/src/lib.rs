//! Heartbleed probes for bleedwatch.
//!
//! [`heartbleed`] is the sans-IO probe for one connection; [`conn`] drives it over TCP with deadlines;
//! [`endpoint`] tests every version of one endpoint; [`scan`] schedules many endpoints; [`result`] is
//! the JSON contract.
#![forbid(unsafe_code)]

pub mod client_test;
pub mod certs;
pub mod conn;
pub mod dns;
pub mod dtls;
pub mod endpoint;
pub mod heartbleed;
pub mod prelude;
pub mod result;
pub mod scan;

pub use endpoint::{probe_endpoint, EndpointOptions, EndpointTarget};
pub use heartbleed::{ConnectionOutcome, ConnectionVerdict, HeartbleedProbe, ProbeConfig, ProbeMode};
pub use result::{EndpointResult, ScanStatus, Verdict};
