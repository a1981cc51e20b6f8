//! The per-endpoint result of `bleedwatch scan`: the JSON-lines contract for pipelines (README,
//! "JSON output"), and the typed value every room after the probe reads (the inventory records it,
//! the assessment and the report read what the inventory made of it). Fields are only ever added.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Evidence, Verdict};

/// What bleedwatch records about one certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertSummary {
    /// Subject distinguished name, RFC 4514-like (`CN=localhost, O=Example`).
    pub subject: String,
    /// Issuer distinguished name, same format as `subject`.
    pub issuer: String,
    /// Serial number as lowercase hex without separators, leading zero bytes
    /// removed (matches `openssl x509 -serial`, lowercased). A zero serial is `"00"`.
    pub serial: String,
    /// Subject alternative names: DNS names and IP addresses as bare text
    /// (`example.com`, `192.0.2.1`, `2001:db8::1`); e-mail addresses as
    /// `email:<addr>` and URIs as `uri:<uri>`. Other name forms are omitted.
    pub sans: Vec<String>,
    /// Start of validity, RFC 3339 UTC (`2026-11-28T18:39:14Z`).
    pub not_before: String,
    /// End of validity, RFC 3339 UTC.
    pub not_after: String,
    /// Start of validity as Unix seconds.
    pub not_before_unix: i64,
    /// End of validity as Unix seconds.
    pub not_after_unix: i64,
    /// Lowercase hex SHA-256 of the DER SubjectPublicKeyInfo; identical for
    /// every certificate that carries the same key (the usual key-pinning hash).
    pub spki_sha256: String,
    /// Lowercase hex SHA-256 of the whole certificate DER (its fingerprint).
    pub cert_sha256: String,
    /// `"rsa"`, `"rsa-pss"`, `"ec"`, `"ed25519"`, `"ed448"`, `"dsa"`, or the
    /// dotted OID of any other key algorithm.
    pub key_type: String,
    /// Key size in bits: RSA/DSA modulus bits, EC curve size (521 for P-521),
    /// 256 for Ed25519, 448 for Ed448. `None` when unknown.
    pub key_bits: Option<u32>,
    /// Signature algorithm short name (`sha256WithRSAEncryption`,
    /// `ecdsa-with-SHA256`, ...) or its dotted OID when the name is unknown.
    pub signature_algorithm: String,
    /// Issuer equals subject and the certificate's signature verifies with its
    /// own key. When the signature algorithm cannot be checked here (e.g.
    /// RSA-PSS, P-521), falls back to issuer == subject with a matching (or
    /// absent) authority key identifier.
    pub self_signed: bool,
    /// URIs from the CRL Distribution Points extension.
    pub crl_urls: Vec<String>,
    /// OCSP responder URIs from the Authority Information Access extension.
    pub ocsp_urls: Vec<String>,
    /// CA Issuers URIs from the Authority Information Access extension.
    pub ca_issuer_urls: Vec<String>,
    /// The certificate itself, DER in standard base64: the inventory keeps it so that revocation
    /// checks can verify the chain the server sent to a trust anchor.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub der: String,
}

/// How far the scan of an endpoint got, in the spirit of zgrab2's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

/// Only with `--prove`: how many bytes of server memory leaked, and their SHA-256. Never the bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeakEvidence {
    pub leaked_bytes: usize,
    pub sha256: String,
}

/// The JSON-lines record for one endpoint (address, port, transport).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointResult {
    pub address: String,
    pub port: u16,
    /// `tcp`, or `udp` for DTLS.
    pub transport: String,
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub banner: Option<String>,
    /// Only with --prove: how many bytes of server memory leaked, and their SHA-256. Never the bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leak: Option<LeakEvidence>,
    pub details: Vec<VersionDetail>,
    pub started_at: String,
    pub duration_ms: u64,
}

impl ScanStatus {
    /// The spelling of the JSON contract (`success`, `connection-refused`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ScanStatus::Success => "success",
            ScanStatus::ConnectionRefused => "connection-refused",
            ScanStatus::ConnectionTimeout => "connection-timeout",
            ScanStatus::ConnectionFailed => "connection-failed",
            ScanStatus::NotTls => "not-tls",
            ScanStatus::HandshakeError => "handshake-error",
            ScanStatus::IoTimeout => "io-timeout",
            ScanStatus::ProtocolError => "protocol-error",
            ScanStatus::StarttlsUnsupported => "starttls-unsupported",
            ScanStatus::StarttlsFailed => "starttls-failed",
        }
    }
}

impl EndpointResult {
    /// The evidence of the version that decided the endpoint's verdict (the first with that verdict).
    pub fn deciding_evidence(&self) -> Option<&Evidence> {
        self.details.iter().find(|d| d.verdict == self.heartbleed).map(|d| &d.evidence)
    }

    /// The versions found vulnerable, in the order of `versions`.
    pub fn vulnerable_versions(&self) -> Vec<String> {
        self.versions.iter().filter(|(_, verdict)| **verdict == Verdict::Vulnerable).map(|(version, _)| version.clone()).collect()
    }

    /// Whether some connection negotiated the heartbeat extension.
    pub fn heartbeat_extension(&self) -> bool {
        self.details.iter().any(|d| d.heartbeat_extension.is_some())
    }

    /// The leaf certificate: the `certificate` field, else the first of the chain.
    pub fn leaf(&self) -> Option<&CertSummary> {
        self.certificate.as_ref().or_else(|| self.chain.first())
    }

    /// The chain as presented, leaf first (with the leaf alone when only `certificate` is set).
    pub fn presented_chain(&self) -> Vec<&CertSummary> {
        if self.chain.is_empty() {
            self.certificate.iter().collect()
        } else {
            self.chain.iter().collect()
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn status_spellings_are_the_json_contract() {
        for status in [
            ScanStatus::Success,
            ScanStatus::ConnectionRefused,
            ScanStatus::ConnectionTimeout,
            ScanStatus::ConnectionFailed,
            ScanStatus::NotTls,
            ScanStatus::HandshakeError,
            ScanStatus::IoTimeout,
            ScanStatus::ProtocolError,
            ScanStatus::StarttlsUnsupported,
            ScanStatus::StarttlsFailed,
        ] {
            assert_eq!(serde_json::to_value(status).unwrap(), status.as_str());
        }
    }
}
