//! Fixtures the unit tests share.

use std::path::PathBuf;

/// A fresh directory under the system's temporary directory (the root crate has no tempfile).
#[allow(clippy::unwrap_used)]
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bleedwatch-unit-{name}-{}-{}", std::process::id(), crate::clock::now_ms()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A scan result as `scan` writes it (one JSON line): `key` names its certificate (`cert-KEY`) and
/// public key (`key-KEY`).
pub fn scan_result(address: &str, verdict: &str, subject: &str, key: &str) -> bleedwatch_probe::EndpointResult {
    let line = serde_json::json!({
        "address": address, "port": 443, "transport": "tcp", "host": null, "service": "tls", "sni": null,
        "status": "success", "heartbleed": verdict, "reason": null, "versions": {"tls1.2": verdict},
        "certificate": {"subject": subject, "issuer": "CN=ca", "serial": "01", "sans": [],
            "not_before": "2026-01-01T00:00:00Z", "not_after": "2099-01-01T00:00:00Z", "not_before_unix": 1_767_225_600_i64,
            "not_after_unix": 4_070_908_800_i64, "spki_sha256": format!("key-{key}"), "cert_sha256": format!("cert-{key}"),
            "key_type": "rsa", "key_bits": 2048, "signature_algorithm": "sha256WithRSAEncryption", "self_signed": false,
            "crl_urls": [], "ocsp_urls": [], "ca_issuer_urls": []},
        "chain": [], "details": [], "started_at": "2026-11-28T10:00:00.000Z", "duration_ms": 3
    });
    serde_json::from_value(line).expect("a result of the JSON contract")
}
