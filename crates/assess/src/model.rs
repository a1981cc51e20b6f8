//! The inputs and outputs of an assessment: plain data, serialisable, no I/O.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

/// An endpoint's overall Heartbleed verdict in one observation: the one verdict type of bleedwatch.
///
/// Callers map every observation whose scan did not get a verdict (connection refused, timeouts,
/// protocol errors) to [`Verdict::Inconclusive`]; only conclusive verdicts move an endpoint.
pub use bleedwatch_verdict::Verdict;

/// The leaf certificate an observation saw.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Leaf {
    /// SHA-256 of the certificate DER (lowercase hex).
    pub cert_sha256: String,
    /// SHA-256 of the SubjectPublicKeyInfo (lowercase hex): the key's identity.
    pub spki_sha256: String,
    /// End of validity, Unix seconds.
    pub not_after_unix: i64,
}

/// One scan of one endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observation {
    /// The caller's identifier (the store's observation id); alerts point back to it.
    pub id: i64,
    /// When the scan of the endpoint started, Unix milliseconds.
    pub at_ms: i64,
    pub verdict: Verdict,
    /// Protocol versions found vulnerable in this observation (`tls1.2`, ...).
    pub vulnerable_versions: BTreeSet<String>,
    pub leaf: Option<Leaf>,
}

/// What a revocation check (CRL or OCSP) said about one certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RevocationStatus {
    Good,
    Revoked,
    Unknown,
    /// The check could not be completed (fetch failed, bad signature, ...).
    Error,
}

impl RevocationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RevocationStatus::Good => "good",
            RevocationStatus::Revoked => "revoked",
            RevocationStatus::Unknown => "unknown",
            RevocationStatus::Error => "error",
        }
    }

    pub fn parse(text: &str) -> Option<RevocationStatus> {
        match text {
            "good" => Some(RevocationStatus::Good),
            "revoked" => Some(RevocationStatus::Revoked),
            "unknown" => Some(RevocationStatus::Unknown),
            "error" => Some(RevocationStatus::Error),
            _ => None,
        }
    }
}

impl fmt::Display for RevocationStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One recorded revocation check.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RevocationFact {
    pub cert_sha256: String,
    pub status: RevocationStatus,
    pub checked_at_ms: i64,
}

/// A key the owner says the endpoint should present (set with the inventory's "expect" command).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KeyPin {
    pub spki_sha256: String,
    /// Observations from this time on are checked against the pins.
    pub since_ms: i64,
}

/// Where an endpoint stands in the response funnel.
///
/// `fixed`, `re-keyed` and `revoked` are facts that can hold independently once an endpoint is
/// fixed; the state names which of them hold (see [`crate::assess_endpoint`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// The latest conclusive observation is vulnerable.
    Vulnerable,
    /// Not vulnerable any more, but the exposed key is still served and its certificates are not
    /// all revoked.
    Fixed,
    /// Fixed and serving a key that was never exposed; exposed certificates not all revoked.
    #[serde(rename = "re-keyed")]
    Rekeyed,
    /// Fixed and every exposed certificate revoked, but the exposed key is still served.
    Revoked,
    /// Fixed, re-keyed and revoked: users can now be told to change their passwords.
    NotifyReady,
    /// Never seen vulnerable and never presented an exposed key.
    NeverVulnerable,
    /// No conclusive observation yet.
    Unknown,
}

impl State {
    pub const ALL: [State; 7] = [
        State::Vulnerable,
        State::Fixed,
        State::Rekeyed,
        State::Revoked,
        State::NotifyReady,
        State::NeverVulnerable,
        State::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Vulnerable => "vulnerable",
            State::Fixed => "fixed",
            State::Rekeyed => "re-keyed",
            State::Revoked => "revoked",
            State::NotifyReady => "notify-ready",
            State::NeverVulnerable => "never-vulnerable",
            State::Unknown => "unknown",
        }
    }

    pub fn parse(text: &str) -> Option<State> {
        State::ALL.into_iter().find(|state| state.as_str() == text)
    }

    /// Whether the endpoint still needs work (anything between vulnerable and notify-ready).
    pub fn needs_action(self) -> bool {
        matches!(self, State::Vulnerable | State::Fixed | State::Rekeyed | State::Revoked)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something about an endpoint that needs attention now.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "flag", rename_all = "kebab-case")]
pub enum Flag {
    /// A certificate on an exposed key that was never itself seen while vulnerable: reissuing
    /// a certificate without a new key leaves the stolen key usable.
    ReissuedSameKey { cert_sha256: String, spki_sha256: String },
    /// An exposed key this endpoint presented is also exposed on, or presented by, other
    /// endpoints (shared or wildcard certificates are compromised everywhere they are used).
    ExposedKeyShared { spki_sha256: String, endpoints: Vec<String> },
    /// An exposed certificate is not revoked and stays valid until `not_after_unix`.
    ExposedCertValidUntil { cert_sha256: String, not_after_unix: i64 },
    /// An exposed certificate is not revoked but expired at `not_after_unix`: clients refuse it,
    /// so it counts as retired for the funnel's revocation step (CAs drop expired certificates
    /// from their CRLs, so its revocation could no longer be shown anyway).
    ExposedCertExpired { cert_sha256: String, not_after_unix: i64 },
    /// The endpoint was re-keyed, but its latest certificate is on an exposed key again.
    ExposedKeyReturned { spki_sha256: String },
    /// The latest certificate's key is neither expected (pinned, or the replacement key) nor
    /// exposed: possible man-in-the-middle, or an unannounced key change.
    UnexpectedCertificate { spki_sha256: String },
    /// The endpoint was vulnerable but no certificate was captured while it was, so the exposed
    /// key is unknown and re-keying or revocation cannot be established.
    ExposedKeyUnknown,
}

impl Flag {
    /// The flag's name as written in JSON and tables.
    pub fn name(&self) -> &'static str {
        match self {
            Flag::ReissuedSameKey { .. } => "reissued-same-key",
            Flag::ExposedKeyShared { .. } => "exposed-key-shared",
            Flag::ExposedCertValidUntil { .. } => "exposed-cert-valid-until",
            Flag::ExposedCertExpired { .. } => "exposed-cert-expired",
            Flag::ExposedKeyReturned { .. } => "exposed-key-returned",
            Flag::UnexpectedCertificate { .. } => "unexpected-certificate",
            Flag::ExposedKeyUnknown => "exposed-key-unknown",
        }
    }
}

/// Kinds of watch alerts: events in the history that someone must look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AlertKind {
    /// A key exposed before this observation appeared again on an endpoint that had been
    /// presenting a key that was not exposed (rollback, or a stolen key in use).
    ExposedKeyReturned,
    /// A key that is neither expected nor exposed (possible man-in-the-middle).
    UnexpectedCertificate,
    /// Vulnerable again after having been fixed.
    Regressed,
}

impl AlertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::ExposedKeyReturned => "exposed-key-returned",
            AlertKind::UnexpectedCertificate => "unexpected-certificate",
            AlertKind::Regressed => "regressed",
        }
    }

    pub fn parse(text: &str) -> Option<AlertKind> {
        [AlertKind::ExposedKeyReturned, AlertKind::UnexpectedCertificate, AlertKind::Regressed]
            .into_iter()
            .find(|kind| kind.as_str() == text)
    }
}

impl fmt::Display for AlertKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One watch alert, tied to the observation that raised it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Alert {
    pub kind: AlertKind,
    pub observation_id: i64,
    pub at_ms: i64,
    pub spki_sha256: Option<String>,
    pub detail: String,
}

/// When the endpoint was exposed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exposure {
    /// First observation seen vulnerable.
    pub first_vulnerable_ms: Option<i64>,
    /// Last observation seen vulnerable.
    pub last_vulnerable_ms: Option<i64>,
    /// First conclusive observation after the last vulnerable one (None while still vulnerable).
    pub first_fixed_ms: Option<i64>,
}

/// Everything derived from one endpoint's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assessment {
    pub state: State,
    /// Not vulnerable since the last vulnerable observation (or never vulnerable but presenting a
    /// key exposed elsewhere, which leaves nothing to patch).
    pub fixed: bool,
    /// Since the fix, the latest certificate is on a key that was never exposed.
    pub rekeyed: bool,
    /// Every exposed certificate this endpoint presented is revoked.
    pub revoked: bool,
    pub flags: Vec<Flag>,
    pub exposure: Exposure,
    /// Keys this endpoint presented that are exposed (here or elsewhere).
    pub exposed_spkis: BTreeSet<String>,
    /// Certificates this endpoint presented on exposed keys: all of them must be revoked.
    pub exposed_certs: BTreeSet<String>,
    /// Every leaf key seen in conclusive observations.
    pub spkis_seen: BTreeSet<String>,
    /// Versions seen vulnerable at any time.
    pub vulnerable_versions: BTreeSet<String>,
    /// Watch alerts raised by the history, oldest first.
    pub alerts: Vec<Alert>,
    /// Latest observation of any kind, and latest conclusive one.
    pub last_observed_ms: Option<i64>,
    pub last_conclusive_ms: Option<i64>,
}

impl Assessment {
    pub fn has_flag(&self, name: &str) -> bool {
        self.flags.iter().any(|flag| flag.name() == name)
    }
}
