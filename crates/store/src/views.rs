//! What commands and reports show: endpoint and certificate views (one JSON line each), the
//! response funnel by owner and rescan selection (times as RFC 3339, from `time`). Built from [`Store::assess_all`]; no I/O beyond the store's queries.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use bleedwatch_assess::{Flag, State};
use serde::Serialize;

use crate::query::EndpointAssessment;
use crate::row::get;

pub use crate::time::{rfc3339_ms, rfc3339_seconds};
use crate::{Result, Store};

/// The exposure window, as RFC 3339 times.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExposureView {
    pub first_vulnerable: Option<String>,
    pub last_vulnerable: Option<String>,
    pub first_fixed: Option<String>,
}

/// One endpoint as `bleedwatch endpoints --json` writes it (one JSON line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EndpointView {
    pub id: i64,
    pub address: String,
    pub port: u16,
    pub transport: String,
    /// Server name the endpoint is scanned under.
    pub sni: Option<String>,
    pub host: Option<String>,
    pub service: String,
    /// The matching asset's host, owner, criticality and exposure to the internet.
    pub asset: Option<String>,
    pub owner: String,
    pub criticality: String,
    pub internet_facing: bool,
    pub state: State,
    pub fixed: bool,
    pub rekeyed: bool,
    pub revoked: bool,
    pub flags: Vec<Flag>,
    pub exposure: ExposureView,
    /// Every leaf key (SPKI SHA-256) seen on the endpoint.
    pub spkis_seen: Vec<String>,
    pub exposed_spkis: Vec<String>,
    pub exposed_certs: Vec<String>,
    pub vulnerable_versions: Vec<String>,
    pub last_observed: Option<String>,
    pub last_status: Option<String>,
    pub last_verdict: Option<String>,
    /// What the last verdict stands on (`kind` and its fields), when the scan recorded it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_evidence: Option<bleedwatch_verdict::Evidence>,
    pub alerts: usize,
    /// Capture findings against the endpoint's address and port (`pcap --db`).
    pub attacked: bool,
    pub attacks: u64,
    /// Attacks the endpoint answered: proof it was vulnerable then.
    pub attack_successes: u64,
    pub first_attack: Option<String>,
    pub last_attack: Option<String>,
    /// Attacked while vulnerable (an attack that succeeded, or one within the exposure window):
    /// the most urgent endpoints, as their memory may have been read.
    pub attacked_while_vulnerable: bool,
}

/// The words `flag_words` adds for attack evidence (also accepted by `endpoints --flag`).
pub const ATTACKED_FLAG: &str = "attacked";
pub const ATTACKED_WHILE_VULNERABLE_FLAG: &str = "attacked-while-vulnerable";

impl From<&EndpointAssessment> for EndpointView {
    fn from(item: &EndpointAssessment) -> EndpointView {
        let (endpoint, assessment) = (&item.endpoint, &item.assessment);
        let asset = endpoint.asset.as_ref();
        let window = assessment.exposure;
        EndpointView {
            id: endpoint.id,
            address: endpoint.address.clone(),
            port: endpoint.port,
            transport: endpoint.transport.clone(),
            sni: Some(endpoint.sni.clone()).filter(|s| !s.is_empty()),
            host: endpoint.host.clone(),
            service: endpoint.service.clone(),
            asset: asset.map(|a| a.host.clone()),
            owner: asset.map(|a| a.owner.clone()).unwrap_or_default(),
            criticality: asset.map(|a| a.criticality.clone()).unwrap_or_default(),
            internet_facing: asset.is_some_and(|a| a.internet_facing),
            state: assessment.state,
            fixed: assessment.fixed,
            rekeyed: assessment.rekeyed,
            revoked: assessment.revoked,
            flags: assessment.flags.clone(),
            exposure: ExposureView {
                first_vulnerable: window.first_vulnerable_ms.map(rfc3339_ms),
                last_vulnerable: window.last_vulnerable_ms.map(rfc3339_ms),
                first_fixed: window.first_fixed_ms.map(rfc3339_ms),
            },
            spkis_seen: assessment.spkis_seen.iter().cloned().collect(),
            exposed_spkis: assessment.exposed_spkis.iter().cloned().collect(),
            exposed_certs: assessment.exposed_certs.iter().cloned().collect(),
            vulnerable_versions: assessment.vulnerable_versions.iter().cloned().collect(),
            last_observed: assessment.last_observed_ms.map(rfc3339_ms),
            last_status: item.latest.as_ref().map(|o| o.status.clone()),
            last_verdict: item.latest.as_ref().map(|o| o.verdict.clone()),
            last_evidence: item.latest.as_ref().and_then(|o| o.evidence.clone()),
            alerts: assessment.alerts.len(),
            attacked: item.attacks.attacked(),
            attacks: item.attacks.attacks,
            attack_successes: item.attacks.successes,
            first_attack: item.attacks.first_ms.map(rfc3339_ms),
            last_attack: item.attacks.last_ms.map(rfc3339_ms),
            attacked_while_vulnerable: item.attacks.attacked_while_vulnerable(),
        }
    }
}

impl EndpointView {
    /// `192.0.2.1:443/tcp (name)`.
    pub fn label(&self) -> String {
        crate::label::endpoint_label(&self.address, self.port, &self.transport, self.sni.as_deref().unwrap_or(""))
    }

    /// Flags as short text (`reissued-same-key`, `exposed-cert-valid-until=2027-01-01T00:00:00Z`),
    /// then the attack evidence (`attacked-while-vulnerable(2)` or `attacked(1)`).
    pub fn flag_words(&self) -> Vec<String> {
        let mut words: Vec<String> = self
            .flags
            .iter()
            .map(|flag| match flag {
                Flag::ExposedCertValidUntil { not_after_unix, .. } | Flag::ExposedCertExpired { not_after_unix, .. } => {
                    format!("{}={}", flag.name(), rfc3339_seconds(*not_after_unix))
                }
                Flag::ExposedKeyShared { endpoints, .. } => format!("{}({})", flag.name(), endpoints.len()),
                other => other.name().to_owned(),
            })
            .collect();
        if let Some(name) = self.attack_flag() {
            words.push(format!("{name}({})", self.attacks));
        }
        words
    }

    /// `attacked-while-vulnerable`, `attacked`, or none.
    pub fn attack_flag(&self) -> Option<&'static str> {
        if self.attacked_while_vulnerable {
            Some(ATTACKED_WHILE_VULNERABLE_FLAG)
        } else if self.attacked {
            Some(ATTACKED_FLAG)
        } else {
            None
        }
    }

    /// Whether the endpoint carries the flag `name` (an assessment flag, `attacked` — any attack
    /// evidence — or `attacked-while-vulnerable`).
    pub fn has_flag(&self, name: &str) -> bool {
        self.flags.iter().any(|f| f.name() == name)
            || (name == ATTACKED_FLAG && self.attacked)
            || (name == ATTACKED_WHILE_VULNERABLE_FLAG && self.attacked_while_vulnerable)
    }
}

/// One line of the response funnel: an owner's endpoints by state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FunnelRow {
    pub owner: String,
    pub internet_facing: bool,
    pub counts: BTreeMap<State, u64>,
    pub total: u64,
}

/// Endpoints per state for each (internet-facing, owner), internet-facing first, then by owner
/// (no owner last).
pub fn funnel(assessments: &[EndpointAssessment]) -> Vec<FunnelRow> {
    let mut rows: BTreeMap<(bool, bool, String), FunnelRow> = BTreeMap::new();
    for item in assessments {
        let owner = item.endpoint.owner().to_owned();
        let internet_facing = item.endpoint.internet_facing();
        let row = rows.entry((!internet_facing, owner.is_empty(), owner.clone())).or_insert_with(|| FunnelRow {
            owner,
            internet_facing,
            counts: BTreeMap::new(),
            total: 0,
        });
        *row.counts.entry(item.assessment.state).or_default() += 1;
        row.total += 1;
    }
    rows.into_values().collect()
}

/// Endpoints per state over the whole inventory.
pub fn state_totals(assessments: &[EndpointAssessment]) -> BTreeMap<State, u64> {
    let mut totals = BTreeMap::new();
    for item in assessments {
        *totals.entry(item.assessment.state).or_default() += 1;
    }
    totals
}

/// A certificate as `bleedwatch certs` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertificateView {
    pub cert_sha256: String,
    pub spki_sha256: String,
    pub subject: String,
    pub issuer: String,
    pub serial: String,
    pub sans: Vec<String>,
    pub not_after: String,
    pub not_after_unix: i64,
    /// Its key was exposed (seen on a vulnerable endpoint, here or elsewhere).
    pub exposed: bool,
    /// Some revocation check said revoked.
    pub revoked: bool,
    /// Latest result per method (`crl`, `ocsp`).
    pub revocation: BTreeMap<String, String>,
    pub last_checked: Option<String>,
    /// Endpoints that presented it as their leaf.
    pub endpoints: Vec<String>,
    pub crl_urls: Vec<String>,
    pub ocsp_urls: Vec<String>,
}

/// What `rescan` should test, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RescanTarget {
    /// `address:port`, `[v6]:port`, or `name:port` for endpoints scanned under a server name.
    pub target: String,
    pub reason: String,
}

impl Store {
    /// Every certificate with its exposure, revocation status and the endpoints presenting it.
    pub async fn certificate_views(&self) -> Result<Vec<CertificateView>> {
        let exposure = self.exposure_index().await?;
        let mut presented: HashMap<String, BTreeSet<String>> = HashMap::new();
        let rows = sqlx::query("SELECT DISTINCT endpoint_id, leaf_cert_sha256 FROM observations WHERE leaf_cert_sha256 IS NOT NULL")
            .fetch_all(&self.pool)
            .await?;
        let labels: HashMap<i64, String> = self.endpoints().await?.into_iter().map(|e| (e.id, e.label())).collect();
        for row in &rows {
            let endpoint_id: i64 = get(row, "endpoint_id")?;
            let cert: String = get(row, "leaf_cert_sha256")?;
            if let Some(label) = labels.get(&endpoint_id) {
                presented.entry(cert).or_default().insert(label.clone());
            }
        }
        let mut checks: HashMap<String, Vec<crate::RevocationRow>> = HashMap::new();
        for check in self.revocation_checks(None).await? {
            checks.entry(check.check.cert_sha256.clone()).or_default().push(check);
        }
        Ok(self
            .certificates()
            .await?
            .into_iter()
            .map(|row| {
                let summary = row.summary;
                let own_checks = checks.remove(&summary.cert_sha256).unwrap_or_default();
                let mut revocation = BTreeMap::new();
                for check in &own_checks {
                    revocation.insert(check.check.method.clone(), check.check.result.clone());
                }
                CertificateView {
                    exposed: exposure.is_exposed(&summary.spki_sha256),
                    revoked: own_checks.iter().any(|c| c.check.result == "revoked"),
                    revocation,
                    last_checked: own_checks.iter().map(|c| c.check.checked_at_ms).max().map(rfc3339_ms),
                    endpoints: presented.remove(&summary.cert_sha256).unwrap_or_default().into_iter().collect(),
                    not_after: rfc3339_seconds(summary.not_after_unix),
                    not_after_unix: summary.not_after_unix,
                    cert_sha256: summary.cert_sha256,
                    spki_sha256: summary.spki_sha256,
                    subject: summary.subject,
                    issuer: summary.issuer,
                    serial: summary.serial,
                    sans: summary.sans,
                    crl_urls: summary.crl_urls,
                    ocsp_urls: summary.ocsp_urls,
                }
            })
            .collect())
    }

    /// What to test again: endpoints not yet fixed (vulnerable, or never conclusively tested),
    /// with `include_in_progress` also those fixed but not notify-ready (a new scan is how
    /// re-keying is seen), endpoints whose last observation is older than `stale_after_ms`, and
    /// imported targets never scanned. One entry per target, in inventory order.
    pub async fn rescan_targets(
        &self,
        now_ms: i64,
        stale_after_ms: Option<i64>,
        include_in_progress: bool,
    ) -> Result<Vec<RescanTarget>> {
        let assessed = self.assess_all(now_ms).await?;
        let mut seen = BTreeSet::new();
        let mut targets = Vec::new();
        let mut scanned = BTreeSet::new();
        for item in &assessed {
            scanned.insert((item.endpoint.address.clone(), item.endpoint.port, item.endpoint.transport.clone()));
            let state = item.assessment.state;
            let stale = stale_after_ms
                .zip(item.assessment.last_observed_ms)
                .is_some_and(|(limit, last)| now_ms.saturating_sub(last) > limit);
            let reason = match state {
                State::Vulnerable => Some("vulnerable".to_owned()),
                State::Unknown => Some("no conclusive result yet".to_owned()),
                State::Fixed | State::Rekeyed | State::Revoked if include_in_progress => Some(format!("{state}, not notify-ready")),
                _ if stale => Some("stale".to_owned()),
                _ => None,
            };
            let Some(reason) = reason else { continue };
            let target = item.endpoint.scan_target();
            if seen.insert(target.clone()) {
                targets.push(RescanTarget { target, reason });
            }
        }
        for known in self.known_targets().await? {
            if scanned.contains(&(known.address.clone(), known.port, known.transport.clone())) {
                continue;
            }
            let target = known.scan_target();
            if seen.insert(target.clone()) {
                targets.push(RescanTarget { target, reason: "imported, never scanned".to_owned() });
            }
        }
        Ok(targets)
    }
}
