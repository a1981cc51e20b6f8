#![forbid(unsafe_code)]
//! Pure assessment of bleedwatch endpoint histories: where each endpoint stands in the Heartbleed
//! response (vulnerable → fixed → re-keyed / revoked → notify-ready), when it was exposed, which
//! exposed keys and certificates it carries, and which events in its history need a human (watch
//! alerts). No I/O: the store feeds histories in and persists what comes out.
//!
//! # Rules
//!
//! Observations are ordered by time, then by id. An observation is *conclusive* when its verdict
//! is not `inconclusive`; callers map failed scans (refused, timeouts, errors) to inconclusive.
//! **Inconclusive observations never advance or regress the state, flags or exposure window**:
//! they are ignored except that a certificate they saw still counts as a sighting for watch alerts.
//!
//! * A key is **exposed** once any endpoint was seen vulnerable while presenting it
//!   ([`ExposureIndex`]). The server's private key is what Heartbleed leaks, so a shared or
//!   wildcard certificate is compromised on every endpoint that uses it.
//! * **vulnerable**: the latest conclusive observation is vulnerable.
//! * **fixed**: a conclusive observation later than the last vulnerable one is not vulnerable
//!   (`not-vulnerable`, `no-heartbeat` or `not-applicable`). An endpoint never seen vulnerable
//!   that presented an exposed key is fixed from that observation on: nothing to patch, but it must
//!   be re-keyed and revoked like the one that leaked the key. Otherwise it is
//!   **never-vulnerable**; with no conclusive observation at all it is **unknown**.
//! * **re-keyed**: fixed, and the latest conclusive observation since the fix that has a
//!   certificate presents a key that is not exposed. If an exposed key comes back, re-keyed stops
//!   holding (and the `exposed-key-returned` flag and alert say so).
//! * **revoked**: fixed, and every exposed certificate this endpoint presented (on any exposed key,
//!   reissues included) has a revocation check saying `revoked` (CRL or OCSP; revocation is final,
//!   so one such check is enough and the order of checks does not matter). Needs at least one
//!   exposed certificate.
//! * The state names the facts: fixed only → `fixed`; + re-keyed → `re-keyed`; + revoked (not
//!   re-keyed) → `revoked`; fixed ∧ re-keyed ∧ revoked → **notify-ready** (users can be told to
//!   change passwords). A vulnerable endpoint whose vulnerable observations carried no certificate
//!   cannot be re-keyed or revoked (`exposed-key-unknown`).
//!
//! Watch alerts replay the history in time order, judging exposure as it was known at each
//! observation, so an alert once raised stays raised as history grows: `regressed` (vulnerable
//! again after a fix), `exposed-key-returned` (a key exposed before the observation appears after
//! the endpoint had been presenting an unexposed key), `unexpected-certificate` (a new unexposed
//! key that is not pinned, or, without pins, not the key the endpoint was re-keyed to; once per key).

mod index;
mod model;

use std::collections::{BTreeMap, BTreeSet};

pub use index::{ExposedKey, ExposureIndex};
pub use model::{
    Alert, AlertKind, Assessment, Exposure, Flag, KeyPin, Leaf, Observation, RevocationFact,
    RevocationStatus, State, Verdict,
};

/// Revocation checks by certificate: a certificate is revoked once any check said so.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RevocationIndex {
    revoked: BTreeSet<String>,
    checked: BTreeSet<String>,
}

impl RevocationIndex {
    pub fn build<'a>(facts: impl IntoIterator<Item = &'a RevocationFact>) -> RevocationIndex {
        let mut index = RevocationIndex::default();
        for fact in facts {
            index.checked.insert(fact.cert_sha256.clone());
            if fact.status == RevocationStatus::Revoked {
                index.revoked.insert(fact.cert_sha256.clone());
            }
        }
        index
    }

    pub fn is_revoked(&self, cert_sha256: &str) -> bool {
        self.revoked.contains(cert_sha256)
    }

    /// Whether any check (of any outcome) was recorded for the certificate.
    pub fn was_checked(&self, cert_sha256: &str) -> bool {
        self.checked.contains(cert_sha256)
    }
}

/// One endpoint's history, as the caller has it.
#[derive(Debug, Clone, Copy)]
pub struct EndpointHistory<'a> {
    /// How other endpoints' flags name this one (e.g. `192.0.2.1:443/tcp`).
    pub label: &'a str,
    /// Observations in any order.
    pub observations: &'a [Observation],
    /// Keys the owner pinned for this endpoint.
    pub pins: &'a [KeyPin],
}

/// Assesses every endpoint against the exposure of the whole inventory.
pub fn assess_all(histories: &[EndpointHistory<'_>], revocations: &RevocationIndex, now_ms: i64) -> Vec<Assessment> {
    let exposure = ExposureIndex::build(histories.iter().map(|h| (h.label, h.observations)));
    histories.iter().map(|history| assess_endpoint(history, &exposure, revocations, now_ms)).collect()
}

/// Assesses one endpoint; `exposure` must be built from every endpoint's history (this one
/// included). `now_ms` decides which exposed certificates are still valid.
pub fn assess_endpoint(
    history: &EndpointHistory<'_>,
    exposure: &ExposureIndex,
    revocations: &RevocationIndex,
    now_ms: i64,
) -> Assessment {
    let mut ordered: Vec<&Observation> = history.observations.iter().collect();
    ordered.sort_by_key(|o| (o.at_ms, o.id));
    let conclusive: Vec<&Observation> = ordered.iter().copied().filter(|o| o.verdict.is_conclusive()).collect();
    let is_vulnerable = |o: &&Observation| o.verdict == Verdict::Vulnerable;
    let leaf_exposed = |o: &&Observation| o.leaf.as_ref().is_some_and(|l| exposure.is_exposed(&l.spki_sha256));

    let first_vulnerable = conclusive.iter().position(is_vulnerable);
    let last_vulnerable = conclusive.iter().rposition(is_vulnerable);
    let at = |index: Option<usize>| index.and_then(|i| conclusive.get(i)).map(|o| o.at_ms);
    let exposure_window = Exposure {
        first_vulnerable_ms: at(first_vulnerable),
        last_vulnerable_ms: at(last_vulnerable),
        first_fixed_ms: at(last_vulnerable.map(|i| i + 1)),
    };

    let mut spkis_seen = BTreeSet::new();
    let mut exposed_spkis = BTreeSet::new();
    let mut exposed_certs: BTreeMap<String, &Leaf> = BTreeMap::new();
    let mut vulnerable_versions = BTreeSet::new();
    for observation in &conclusive {
        vulnerable_versions.extend(observation.vulnerable_versions.iter().cloned());
        let Some(leaf) = &observation.leaf else { continue };
        spkis_seen.insert(leaf.spki_sha256.clone());
        if exposure.is_exposed(&leaf.spki_sha256) {
            exposed_spkis.insert(leaf.spki_sha256.clone());
            exposed_certs.insert(leaf.cert_sha256.clone(), leaf);
        }
    }

    // Whether we know which key leaked: a vulnerable observation must have carried a certificate.
    let exposure_known = first_vulnerable.is_none() || conclusive.iter().any(|o| is_vulnerable(o) && o.leaf.is_some());
    let currently_vulnerable = last_vulnerable.is_some_and(|i| i + 1 == conclusive.len());
    let fixed_from = match last_vulnerable {
        Some(i) if i + 1 < conclusive.len() => Some(i + 1),
        Some(_) => None,
        None => conclusive.iter().position(leaf_exposed),
    };

    let mut fixed = false;
    let mut rekeyed = false;
    let mut revoked = false;
    let mut key_returned = None;
    let state = if conclusive.is_empty() {
        State::Unknown
    } else if currently_vulnerable {
        State::Vulnerable
    } else if let Some(from) = fixed_from {
        fixed = true;
        let since_fix = conclusive.get(from..).unwrap_or_default();
        let latest_leaf = since_fix.iter().rev().find_map(|o| o.leaf.as_ref());
        let latest_exposed = latest_leaf.is_some_and(|l| exposure.is_exposed(&l.spki_sha256));
        rekeyed = exposure_known && latest_leaf.is_some() && !latest_exposed;
        revoked = exposure_known && !exposed_certs.is_empty() && exposed_certs.iter().all(|(c, leaf)| revocations.is_revoked(c) || is_expired(leaf.not_after_unix, now_ms));
        let was_rekeyed = since_fix.iter().any(|o| o.leaf.as_ref().is_some_and(|l| !exposure.is_exposed(&l.spki_sha256)));
        if exposure_known && was_rekeyed && latest_exposed {
            key_returned = latest_leaf.map(|l| l.spki_sha256.clone());
        }
        match (rekeyed, revoked) {
            (true, true) => State::NotifyReady,
            (true, false) => State::Rekeyed,
            (false, true) => State::Revoked,
            (false, false) => State::Fixed,
        }
    } else {
        State::NeverVulnerable
    };

    let replay = replay_alerts(&ordered, history.pins, exposure);

    let mut flags = BTreeSet::new();
    if first_vulnerable.is_some() && !exposure_known {
        flags.insert(Flag::ExposedKeyUnknown);
    }
    for spki in &exposed_spkis {
        let Some(key) = exposure.get(spki) else { continue };
        let others: Vec<String> =
            key.exposed_on.union(&key.presented_on).filter(|label| *label != history.label).cloned().collect();
        if !others.is_empty() {
            flags.insert(Flag::ExposedKeyShared { spki_sha256: spki.clone(), endpoints: others });
        }
    }
    for (cert, leaf) in &exposed_certs {
        let seen_while_vulnerable = exposure.get(&leaf.spki_sha256).is_some_and(|k| k.exposed_certs.contains(cert));
        if !seen_while_vulnerable {
            flags.insert(Flag::ReissuedSameKey { cert_sha256: cert.clone(), spki_sha256: leaf.spki_sha256.clone() });
        }
        if !revocations.is_revoked(cert) {
            let (cert_sha256, not_after_unix) = (cert.clone(), leaf.not_after_unix);
            flags.insert(if is_expired(not_after_unix, now_ms) {
                Flag::ExposedCertExpired { cert_sha256, not_after_unix }
            } else {
                Flag::ExposedCertValidUntil { cert_sha256, not_after_unix }
            });
        }
    }
    if let Some(spki) = key_returned {
        flags.insert(Flag::ExposedKeyReturned { spki_sha256: spki });
    }
    if let Some(spki) = replay.latest_unexpected {
        flags.insert(Flag::UnexpectedCertificate { spki_sha256: spki });
    }

    Assessment {
        state,
        fixed,
        rekeyed,
        revoked,
        flags: flags.into_iter().collect(),
        exposure: exposure_window,
        exposed_spkis,
        exposed_certs: exposed_certs.into_keys().collect(),
        spkis_seen,
        vulnerable_versions,
        alerts: replay.alerts,
        last_observed_ms: ordered.last().map(|o| o.at_ms),
        last_conclusive_ms: conclusive.last().map(|o| o.at_ms),
    }
}

/// Clock difference tolerated before a certificate counts as expired (as for CRL and OCSP times).
const EXPIRY_SKEW_MS: i64 = 300_000;

/// Whether a certificate valid until `not_after_unix` expired, beyond the clock-skew allowance, by
/// `now_ms`: then it counts as retired (flag `exposed-cert-expired`).
pub fn is_expired(not_after_unix: i64, now_ms: i64) -> bool {
    not_after_unix.saturating_mul(1000).saturating_add(EXPIRY_SKEW_MS) < now_ms
}

struct Replay {
    alerts: Vec<Alert>,
    /// The key of the latest conclusive observation with a certificate, when it was unexpected.
    latest_unexpected: Option<String>,
}

/// Walks the history in time order, judging exposure as it was known at each observation.
fn replay_alerts(ordered: &[&Observation], pins: &[KeyPin], exposure: &ExposureIndex) -> Replay {
    let mut alerts = Vec::new();
    let mut latest_unexpected = None;
    let mut ever_vulnerable = false;
    let mut vulnerable_now = false;
    // Vulnerable, or presented a key that was exposed by then: from here on a key change matters.
    let mut affected = false;
    // Without pins, the first unexposed key presented after the fix is the one to expect.
    let mut replacement_key: Option<&str> = None;
    let mut previous_leaf: Option<(&str, i64)> = None;
    let mut reported_unexpected: BTreeSet<&str> = BTreeSet::new();

    for observation in ordered {
        let conclusive = observation.verdict.is_conclusive();
        if observation.verdict == Verdict::Vulnerable {
            if ever_vulnerable && !vulnerable_now {
                alerts.push(Alert {
                    kind: AlertKind::Regressed,
                    observation_id: observation.id,
                    at_ms: observation.at_ms,
                    spki_sha256: observation.leaf.as_ref().map(|l| l.spki_sha256.clone()),
                    detail: "vulnerable again after having been fixed".to_owned(),
                });
            }
            ever_vulnerable = true;
            vulnerable_now = true;
            affected = true;
            replacement_key = None;
        } else if conclusive {
            vulnerable_now = false;
        }

        let Some(leaf) = &observation.leaf else { continue };
        let spki = leaf.spki_sha256.as_str();
        let exposed_before = exposure.get(spki).is_some_and(|k| k.first_exposed_ms < observation.at_ms);
        let exposed_now = exposure.exposed_by(spki, observation.at_ms);
        let came_from_unexposed_key =
            previous_leaf.is_some_and(|(previous, at)| previous != spki && !exposure.exposed_by(previous, at));
        let mut unexpected = false;
        if exposed_before && came_from_unexposed_key {
            alerts.push(Alert {
                kind: AlertKind::ExposedKeyReturned,
                observation_id: observation.id,
                at_ms: observation.at_ms,
                spki_sha256: Some(spki.to_owned()),
                detail: "a key exposed by Heartbleed is presented again (rollback, or a stolen key in use)".to_owned(),
            });
        } else if !exposed_now {
            let pinned: BTreeSet<&str> =
                pins.iter().filter(|p| p.since_ms <= observation.at_ms).map(|p| p.spki_sha256.as_str()).collect();
            let expected = if pinned.is_empty() { replacement_key.map(|k| BTreeSet::from([k])) } else { Some(pinned) };
            if let Some(expected) = expected {
                unexpected = !expected.contains(spki);
                if unexpected && reported_unexpected.insert(spki) {
                    alerts.push(Alert {
                        kind: AlertKind::UnexpectedCertificate,
                        observation_id: observation.id,
                        at_ms: observation.at_ms,
                        spki_sha256: Some(spki.to_owned()),
                        detail: "certificate key is not the expected one (possible man-in-the-middle, or an unannounced key change)"
                            .to_owned(),
                    });
                }
            }
        }
        if conclusive {
            if exposed_now {
                affected = true;
            } else if affected && !vulnerable_now && replacement_key.is_none() {
                replacement_key = Some(spki);
            }
            latest_unexpected = unexpected.then(|| spki.to_owned());
        }
        previous_leaf = Some((spki, observation.at_ms));
    }
    Replay { alerts, latest_unexpected }
}

#[cfg(test)]
mod tests;
