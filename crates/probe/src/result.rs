//! The per-endpoint result: built here from what the probes saw; the type itself is the contract
//! in `bleedwatch-verdict` (README, "JSON output").

use crate::heartbleed::ConnectionOutcome;

pub use bleedwatch_verdict::{EndpointResult, Evidence, LeakEvidence, ScanStatus, Verdict, VersionDetail};

/// What one version test saw, from the connection's outcome.
pub fn version_detail(o: &ConnectionOutcome, sni: bool) -> VersionDetail {
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

/// Maps a connection's outcome to a version verdict and the reason a reader needs, through its
/// typed [`Evidence`].
pub fn classify(o: &ConnectionOutcome) -> (Verdict, Option<String>) {
    let evidence = o.evidence();
    let extension = o.heartbeat_extension.is_some();
    (evidence.verdict(extension), evidence.reason(extension))
}
