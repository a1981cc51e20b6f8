//! What to test and how: the endpoint, and the options that say how it is reached and probed. A leaf
//! shared by the sweeps over TCP and DTLS and by the reach logic, so that none of them needs another
//! for its types.

use std::net::SocketAddr;

use bleedwatch_starttls::Protocol;
use bleedwatch_wire::ProtocolVersion;

use crate::conn::Timeouts;
use crate::heartbleed::ProbeMode;

/// How the user asked to reach TLS on a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StarttlsMode {
    /// Find out: by the banner a server sends first, by the port as a hint, by trying.
    #[default]
    Auto,
    /// Direct TLS only.
    Off,
    /// Always this STARTTLS dialect.
    Force(Protocol),
}

/// How to test an endpoint.
#[derive(Debug, Clone)]
pub struct EndpointOptions {
    pub mode: ProbeMode,
    pub timeouts: Timeouts,
    /// Versions to test, any order; tested newest first.
    pub versions: Vec<ProtocolVersion>,
    /// Retry without SNI when the server refuses the hello with SNI (PEERS.md pitfall 4).
    pub sni_retry: bool,
    /// When no SSLv3–TLS 1.2 version is accepted, try a TLS 1.3 handshake for the certificate.
    pub tls13_fallback: bool,
    /// SNI to send instead of the target's own name.
    pub sni_override: Option<String>,
    /// Direct TLS, a given STARTTLS dialect, or find out.
    pub starttls: StarttlsMode,
    /// How long to wait for a server to speak first when finding out what a port speaks.
    pub banner_wait: std::time::Duration,
}

impl Default for EndpointOptions {
    fn default() -> Self {
        EndpointOptions {
            mode: ProbeMode::Safe,
            timeouts: Timeouts::default(),
            versions: ProtocolVersion::PROBEABLE_TLS.to_vec(),
            sni_retry: true,
            tls13_fallback: true,
            sni_override: None,
            starttls: StarttlsMode::Auto,
            banner_wait: std::time::Duration::from_secs(3),
        }
    }
}

/// One endpoint to test.
#[derive(Debug, Clone)]
pub struct EndpointTarget {
    pub addr: SocketAddr,
    /// The name the user gave, if any; sent as SNI.
    pub host: Option<String>,
}
