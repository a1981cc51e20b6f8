//! The per-endpoint result: the stable JSON-lines contract for pipelines (documented in README.md).

use std::collections::BTreeMap;

use bleedwatch_x509::CertSummary;
use serde::Serialize;

use crate::heartbleed::{ConnectionOutcome, ConnectionVerdict, LeakEvidence};

/// The Heartbleed verdict, per version and overall.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Vulnerable,
    NotVulnerable,
    NoHeartbeat,
    /// TLS 1.3 only: there is no heartbeat in TLS 1.3.
    NotApplicable,
    /// The server does not accept this version (per-version only).
    NotSupported,
    Inconclusive,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Vulnerable => "vulnerable",
            Verdict::NotVulnerable => "not-vulnerable",
            Verdict::NoHeartbeat => "no-heartbeat",
            Verdict::NotApplicable => "not-applicable",
            Verdict::NotSupported => "not-supported",
            Verdict::Inconclusive => "inconclusive",
        }
    }

    /// Which verdict wins when versions disagree: any vulnerable version makes the endpoint vulnerable,
    /// and a version we could not test outweighs every reassuring one.
    fn severity(self) -> u8 {
        match self {
            Verdict::Vulnerable => 5,
            Verdict::Inconclusive => 4,
            Verdict::NotVulnerable => 3,
            Verdict::NoHeartbeat => 2,
            Verdict::NotApplicable => 1,
            Verdict::NotSupported => 0,
        }
    }

    pub fn worst(a: Verdict, b: Verdict) -> Verdict {
        if a.severity() >= b.severity() {
            a
        } else {
            b
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

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
    /// Whether this connection sent SNI.
    pub sni: bool,
    pub log: Vec<String>,
}

impl VersionDetail {
    pub fn from_outcome(o: &ConnectionOutcome, sni: bool) -> VersionDetail {
        let (verdict, reason) = classify(o);
        VersionDetail {
            offered: o.offered.to_string(),
            negotiated: o.negotiated.map(|v| v.to_string()),
            cipher: o.cipher_suite.map(|c| c.to_string()),
            heartbeat_extension: o.heartbeat_extension.map(|m| m.name().to_string()),
            verdict,
            reason,
            sni,
            log: o.log.clone(),
        }
    }
}

/// Maps a connection's outcome to a version verdict and the reason a reader needs.
pub fn classify(o: &ConnectionOutcome) -> (Verdict, Option<String>) {
    match &o.verdict {
        ConnectionVerdict::Vulnerable => (Verdict::Vulnerable, None),
        ConnectionVerdict::NotVulnerable => (Verdict::NotVulnerable, Some("honest heartbeat answered, unpadded test heartbeat dropped".into())),
        ConnectionVerdict::HeartbeatRefused { alert } => {
            let how = alert.map(|a| format!("fatal alert {a}")).unwrap_or_else(|| "connection closed".into());
            if o.heartbeat_extension.is_some() {
                (Verdict::NotVulnerable, Some(format!("heartbeat extension negotiated but heartbeats refused ({how})")))
            } else {
                (Verdict::NoHeartbeat, Some(format!("no heartbeat extension; heartbeats refused ({how})")))
            }
        }
        ConnectionVerdict::VersionRejected { alert } => (
            Verdict::NotSupported,
            Some(alert.map(|a| format!("rejected with alert {a}")).unwrap_or_else(|| "closed before ServerHello".into())),
        ),
        ConnectionVerdict::Inconclusive(why) => (Verdict::Inconclusive, Some(why.to_string())),
    }
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
