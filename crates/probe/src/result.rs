//! The per-endpoint result: the stable JSON-lines contract for pipelines (documented in README.md).

use std::collections::BTreeMap;

use bleedwatch_x509::CertSummary;
use serde::Serialize;

use crate::heartbleed::{ConnectionOutcome, LeakEvidence};

pub use bleedwatch_verdict::{Evidence, Verdict};

/// How far the scan of an endpoint got, in the spirit of zgrab2's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScanStatus {
    Success,
    ConnectionRefused,
    ConnectionTimeout,
    ConnectionFailed,
    NotTls,
    HandshakeError,
    IoTimeout,
    ProtocolError,
    /// The service speaks its protocol but does not offer STARTTLS.
    StarttlsUnsupported,
    /// The STARTTLS dialogue broke or timed out.
    StarttlsFailed,
}

/// What one version test saw.
#[derive(Debug, Clone, Serialize)]
pub struct VersionDetail {
    pub offered: String,
    pub negotiated: Option<String>,
    pub cipher: Option<String>,
    pub heartbeat_extension: Option<String>,
    pub verdict: Verdict,
    pub reason: Option<String>,
    /// What the verdict stands on (typed; `kind` names it): the contract every later room reads.
    pub evidence: Evidence,
    /// Whether this connection sent SNI.
    pub sni: bool,
    pub log: Vec<String>,
}

impl VersionDetail {
    pub fn from_outcome(o: &ConnectionOutcome, sni: bool) -> VersionDetail {
        let evidence = o.evidence();
        let extension = o.heartbeat_extension.is_some();
        let (verdict, reason) = (evidence.verdict(extension), evidence.reason(extension));
        VersionDetail {
            offered: o.offered.to_string(),
            negotiated: o.negotiated.map(|v| v.to_string()),
            cipher: o.cipher_suite.map(|c| c.to_string()),
            heartbeat_extension: o.heartbeat_extension.map(|m| m.name().to_string()),
            verdict,
            reason,
            evidence,
            sni,
            log: o.log.clone(),
        }
    }
}

/// Maps a connection's outcome to a version verdict and the reason a reader needs, through its
/// typed [`Evidence`].
pub fn classify(o: &ConnectionOutcome) -> (Verdict, Option<String>) {
    let evidence = o.evidence();
    let extension = o.heartbeat_extension.is_some();
    (evidence.verdict(extension), evidence.reason(extension))
}

/// The JSON-lines record for one endpoint (address, port, transport).
#[derive(Debug, Clone, Serialize)]
pub struct EndpointResult {
    pub address: String,
    pub port: u16,
    pub transport: &'static str,
    /// The name the target was given as, when it was a name.
    pub host: Option<String>,
    pub service: String,
    /// The SNI name that worked (None when none was sent or only the retry without SNI worked).
    pub sni: Option<String>,
    pub status: ScanStatus,
    pub heartbleed: Verdict,
    pub reason: Option<String>,
    /// Verdict per protocol version tested, e.g. {"tls1.2": "vulnerable", "ssl3": "not-supported"}.
    pub versions: BTreeMap<String, Verdict>,
    /// The leaf certificate the server presented.
    pub certificate: Option<CertSummary>,
    /// The whole chain as presented, leaf first.
    pub chain: Vec<CertSummary>,
    /// What the server said before TLS (STARTTLS greeting and capabilities), printable and capped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub banner: Option<String>,
    /// Only with --prove: how many bytes of server memory leaked, and their SHA-256. Never the bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leak: Option<LeakEvidence>,
    pub details: Vec<VersionDetail>,
    pub started_at: String,
    pub duration_ms: u64,
}
