//! A scan result as the inventory reads it: the JSON-lines contract of `bleedwatch scan` (README),
//! taken as JSON so the store does not depend on the probe. Unknown fields are ignored; fields the
//! inventory relies on are required.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Result, StoreError};

/// One certificate summary, as in the result's `certificate` and `chain` fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateRecord {
    pub subject: String,
    pub issuer: String,
    pub serial: String,
    #[serde(default)]
    pub sans: Vec<String>,
    #[serde(default)]
    pub not_before: String,
    #[serde(default)]
    pub not_after: String,
    pub not_before_unix: i64,
    pub not_after_unix: i64,
    pub spki_sha256: String,
    pub cert_sha256: String,
    #[serde(default)]
    pub key_type: String,
    #[serde(default)]
    pub key_bits: Option<u32>,
    #[serde(default)]
    pub signature_algorithm: String,
    #[serde(default)]
    pub self_signed: bool,
    #[serde(default)]
    pub crl_urls: Vec<String>,
    #[serde(default)]
    pub ocsp_urls: Vec<String>,
    #[serde(default)]
    pub ca_issuer_urls: Vec<String>,
    /// The certificate's DER in standard base64, as the probe sends it (empty when unknown).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub der: String,
}

impl CertificateRecord {
    /// The DER, when given and it is this certificate (its SHA-256 is `cert_sha256`).
    pub fn der_bytes(&self) -> Option<Vec<u8>> {
        use base64::Engine as _;
        use sha2::{Digest, Sha256};
        if self.der.is_empty() {
            return None;
        }
        let der = base64::engine::general_purpose::STANDARD.decode(self.der.as_bytes()).ok()?;
        (hex::encode(Sha256::digest(&der)) == self.cert_sha256.to_ascii_lowercase()).then_some(der)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct LeakRecord {
    pub leaked_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DetailRecord {
    #[serde(default)]
    pub heartbeat_extension: Option<String>,
    /// The version's verdict (results from before typed evidence have it too).
    #[serde(default)]
    pub verdict: Option<String>,
    /// What the version's verdict stands on; `None` in results written before it existed, or with a
    /// kind this build does not know.
    #[serde(default, deserialize_with = "lenient_evidence")]
    pub evidence: Option<bleedwatch_verdict::Evidence>,
}

/// An evidence object this build cannot read (a newer kind) is kept out rather than failing the
/// whole result: the verdict and reason still say what happened.
fn lenient_evidence<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Option<bleedwatch_verdict::Evidence>, D::Error> {
    let value = Option::<serde_json::Value>::deserialize(d)?;
    Ok(value.and_then(|v| serde_json::from_value(v).ok()))
}

/// The fields of a scan result the inventory uses.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ScanResult {
    pub address: String,
    pub port: u16,
    pub transport: String,
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default = "default_service")]
    pub service: String,
    #[serde(default)]
    pub sni: Option<String>,
    pub status: String,
    pub heartbleed: String,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub versions: BTreeMap<String, String>,
    #[serde(default)]
    pub certificate: Option<CertificateRecord>,
    #[serde(default)]
    pub chain: Vec<CertificateRecord>,
    #[serde(default)]
    pub leak: Option<LeakRecord>,
    #[serde(default)]
    pub details: Vec<DetailRecord>,
    pub started_at: String,
    #[serde(default)]
    pub duration_ms: u64,
}

fn default_service() -> String {
    "tls".to_owned()
}

impl ScanResult {
    pub fn from_json(value: &serde_json::Value) -> Result<ScanResult> {
        let result: ScanResult =
            serde_json::from_value(value.clone()).map_err(|e| StoreError::BadResult(e.to_string()))?;
        if result.address.parse::<std::net::IpAddr>().is_err() {
            return Err(StoreError::BadResult(format!("address {:?} is not an IP address", result.address)));
        }
        Ok(result)
    }

    /// The server name the endpoint is scanned under: the SNI that worked, else the target's name
    /// when it was one, else none (''). Stable across scans of the same target, so one endpoint
    /// keeps one history whether or not the SNI retry was needed.
    pub fn server_name(&self) -> String {
        let name = self
            .sni
            .clone()
            .or_else(|| self.host.clone().filter(|h| h.parse::<std::net::IpAddr>().is_err()))
            .unwrap_or_default();
        name.trim_end_matches('.').to_ascii_lowercase()
    }

    /// When the scan of the endpoint started (Unix ms); `fallback` if the time cannot be read.
    pub fn started_at_ms(&self, fallback: i64) -> i64 {
        humantime::parse_rfc3339(&self.started_at)
            .or_else(|_| humantime::parse_rfc3339_weak(&self.started_at))
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .and_then(|d| i64::try_from(d.as_millis()).ok())
            .unwrap_or(fallback)
    }

    /// The overall verdict the assessment sees: a scan that did not get through is inconclusive
    /// whatever else it says.
    pub fn assessed_verdict(&self) -> bleedwatch_assess::Verdict {
        if self.status != "success" {
            return bleedwatch_assess::Verdict::Inconclusive;
        }
        bleedwatch_assess::Verdict::parse(&self.heartbleed).unwrap_or(bleedwatch_assess::Verdict::Inconclusive)
    }

    /// The evidence of the version that decided the endpoint's verdict (the first with that verdict).
    pub fn deciding_evidence(&self) -> Option<&bleedwatch_verdict::Evidence> {
        self.details.iter().filter(|d| d.verdict.as_deref() == Some(self.heartbleed.as_str())).find_map(|d| d.evidence.as_ref())
    }

    pub fn vulnerable_versions(&self) -> Vec<String> {
        self.versions.iter().filter(|(_, verdict)| *verdict == "vulnerable").map(|(version, _)| version.clone()).collect()
    }

    pub fn heartbeat_extension(&self) -> bool {
        self.details.iter().any(|d| d.heartbeat_extension.is_some())
    }

    /// The leaf certificate: the `certificate` field, else the first of the chain.
    pub fn leaf(&self) -> Option<&CertificateRecord> {
        self.certificate.as_ref().or_else(|| self.chain.first())
    }

    /// The chain as presented, leaf first (with the leaf added when only `certificate` is set).
    pub fn presented_chain(&self) -> Vec<&CertificateRecord> {
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
    use serde_json::json;

    fn cert(hash: &str) -> serde_json::Value {
        json!({"subject": "CN=x", "issuer": "CN=x", "serial": "01", "sans": ["x"], "not_before": "2026-01-01T00:00:00Z",
               "not_after": "2027-01-01T00:00:00Z", "not_before_unix": 1767225600, "not_after_unix": 1798761600,
               "spki_sha256": format!("k-{hash}"), "cert_sha256": hash, "key_type": "rsa", "key_bits": 2048,
               "signature_algorithm": "sha256WithRSAEncryption", "self_signed": true, "crl_urls": [], "ocsp_urls": [],
               "ca_issuer_urls": []})
    }

    fn result() -> serde_json::Value {
        json!({"address": "192.0.2.7", "port": 443, "transport": "tcp", "host": "Www.Example.org.", "service": "tls",
               "sni": null, "status": "success", "heartbleed": "vulnerable", "reason": null,
               "versions": {"tls1.2": "vulnerable", "tls1.1": "not-vulnerable", "ssl3": "not-supported"},
               "certificate": cert("c1"), "chain": [cert("c1"), cert("c2")],
               "details": [{"offered": "tls1.2", "heartbeat_extension": "peer-allowed-to-send", "verdict": "vulnerable"},
                           {"offered": "ssl3", "heartbeat_extension": null}],
               "started_at": "2026-11-28T18:39:14.250Z", "duration_ms": 12, "future_field": 1})
    }

    #[test]
    fn reads_the_json_contract() {
        let r = ScanResult::from_json(&result()).unwrap();
        assert_eq!(r.server_name(), "www.example.org");
        assert_eq!(r.started_at_ms(0), 1_795_891_154_250);
        assert_eq!(r.vulnerable_versions(), ["tls1.2"]);
        assert!(r.heartbeat_extension());
        assert_eq!(r.leaf().unwrap().cert_sha256, "c1");
        assert_eq!(r.presented_chain().len(), 2);
        assert_eq!(r.assessed_verdict(), bleedwatch_assess::Verdict::Vulnerable);
    }

    #[test]
    fn failed_scans_are_inconclusive_and_names_fall_back() {
        let mut v = result();
        v["status"] = json!("connection-refused");
        v["host"] = json!("192.0.2.7");
        v["sni"] = json!(null);
        let r = ScanResult::from_json(&v).unwrap();
        assert_eq!(r.assessed_verdict(), bleedwatch_assess::Verdict::Inconclusive);
        assert_eq!(r.server_name(), "");
        v["heartbleed"] = json!("something-new");
        v["status"] = json!("success");
        assert_eq!(ScanResult::from_json(&v).unwrap().assessed_verdict(), bleedwatch_assess::Verdict::Inconclusive);
    }

    #[test]
    fn broken_results_are_errors() {
        let mut v = result();
        v["address"] = json!("not-an-ip");
        assert!(ScanResult::from_json(&v).is_err());
        assert!(ScanResult::from_json(&json!({"port": 1})).is_err());
        let mut v = result();
        v["started_at"] = json!("yesterday");
        assert_eq!(ScanResult::from_json(&v).unwrap().started_at_ms(42), 42);
    }
}
