//! Heartbleed probes for bleedwatch.
//!
//! [`heartbleed`] is the sans-IO probe for one connection; [`conn`] drives it over TCP with deadlines;
//! [`endpoint`] tests every version of one endpoint; [`reach`] decides how a TCP endpoint is reached
//! (direct TLS, detection, STARTTLS) and tests it ([`probe_endpoint`]); [`dtls`] does the same over UDP;
//! [`options`] says what to test and how; [`scan`] schedules many endpoints; [`result`] is the JSON
//! contract.
#![forbid(unsafe_code)]

pub mod certs;
pub mod conn;
pub mod dns;
pub mod dtls;
pub mod endpoint;
pub mod heartbleed;
pub mod options;
pub mod pace;
pub mod reach;
pub mod result;
pub mod scan;

pub use heartbleed::{ConnectionOutcome, ConnectionVerdict, HeartbleedProbe, ProbeConfig, ProbeMode};
pub use options::{EndpointOptions, EndpointTarget, StarttlsMode};
pub use reach::probe_endpoint;
pub use result::{EndpointResult, ScanStatus, Verdict};
