//! A scan result as the inventory reads it: the contract's typed [`EndpointResult`] (README, "JSON
//! output"), and what the inventory derives from it: the server name an endpoint is kept under, and
//! when it was observed.

use bleedwatch_verdict::EndpointResult;

use crate::{Result, StoreError};

/// One certificate summary, as in the result's `certificate` and `chain` fields.
pub use bleedwatch_verdict::CertSummary as CertificateRecord;

/// A certificate's DER, when the summary carries it and it is this certificate (its SHA-256 is
/// `cert_sha256`).
pub fn certificate_der(certificate: &CertificateRecord) -> Option<Vec<u8>> {
    use base64::Engine as _;
    use sha2::{Digest, Sha256};
    if certificate.der.is_empty() {
        return None;
    }
    let der = base64::engine::general_purpose::STANDARD.decode(certificate.der.as_bytes()).ok()?;
    (hex::encode(Sha256::digest(&der)) == certificate.cert_sha256.to_ascii_lowercase()).then_some(der)
}

/// The result's address, checked: the inventory keys endpoints by IP address.
pub(crate) fn checked_address(result: &EndpointResult) -> Result<std::net::IpAddr> {
    result.address.parse().map_err(|_| StoreError::BadResult(format!("address {:?} is not an IP address", result.address)))
}

/// The server name the endpoint is scanned under: the SNI that worked, else the target's name
/// when it was one, else none (''). Stable across scans of the same target, so one endpoint
/// keeps one history whether or not the SNI retry was needed.
pub(crate) fn server_name(result: &EndpointResult) -> String {
    let name = result
        .sni
        .clone()
        .or_else(|| result.host.clone().filter(|h| h.parse::<std::net::IpAddr>().is_err()))
        .unwrap_or_default();
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// When the scan of the endpoint started (Unix ms); `fallback` if the time cannot be read.
pub(crate) fn started_at_ms(result: &EndpointResult, fallback: i64) -> i64 {
    humantime::parse_rfc3339(&result.started_at)
        .or_else(|_| humantime::parse_rfc3339_weak(&result.started_at))
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .and_then(|d| i64::try_from(d.as_millis()).ok())
        .unwrap_or(fallback)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cert(hash: &str) -> serde_json::Value {
        json!({"subject": "CN=x", "issuer": "CN=x", "serial": "01", "sans": ["x"], "not_before": "2026-01-01T00:00:00Z",
               "not_after": "2027-01-01T00:00:00Z", "not_before_unix": 1767225600, "not_after_unix": 1798761600,
               "spki_sha256": format!("k-{hash}"), "cert_sha256": hash, "key_type": "rsa", "key_bits": 2048,
               "signature_algorithm": "sha256WithRSAEncryption", "self_signed": true, "crl_urls": [], "ocsp_urls": [],
               "ca_issuer_urls": []})
    }

    fn detail(offered: &str, verdict: &str, kind: &str, extension: Option<&str>) -> serde_json::Value {
        json!({"offered": offered, "negotiated": offered, "cipher": null, "heartbeat_extension": extension, "verdict": verdict,
               "reason": null, "evidence": {"kind": kind}, "sni": true, "log": []})
    }

    fn result() -> EndpointResult {
        serde_json::from_value(json!({"address": "192.0.2.7", "port": 443, "transport": "tcp", "host": "Www.Example.org.",
               "service": "tls", "sni": null, "status": "success", "heartbleed": "vulnerable", "reason": null,
               "versions": {"tls1.2": "vulnerable", "tls1.1": "not-vulnerable", "ssl3": "not-supported"},
               "certificate": cert("c1"), "chain": [cert("c1"), cert("c2")],
               "details": [detail("tls1.1", "not-vulnerable", "honest-heartbeat-echoed", Some("peer-allowed-to-send")),
                           detail("tls1.2", "vulnerable", "test-heartbeat-echoed", Some("peer-allowed-to-send"))],
               "started_at": "2026-11-28T18:39:14.250Z", "duration_ms": 12, "future_field": 1}))
        .unwrap()
    }

    #[test]
    fn reads_the_contract() {
        let r = result();
        assert_eq!(server_name(&r), "www.example.org");
        assert_eq!(started_at_ms(&r, 0), 1_795_891_154_250);
        assert_eq!(r.vulnerable_versions(), ["tls1.2"]);
        assert!(r.heartbeat_extension());
        assert_eq!(r.leaf().unwrap().cert_sha256, "c1");
        assert_eq!(r.presented_chain().len(), 2);
        assert_eq!(r.deciding_evidence(), Some(&bleedwatch_verdict::Evidence::TestHeartbeatEchoed));
    }

    #[test]
    fn names_fall_back_and_broken_fields_are_errors() {
        let mut r = result();
        r.host = Some("192.0.2.7".into());
        assert_eq!(server_name(&r), "");
        r.address = "not-an-ip".into();
        assert!(checked_address(&r).is_err());
        r.started_at = "yesterday".into();
        assert_eq!(started_at_ms(&r, 42), 42);
    }
}
