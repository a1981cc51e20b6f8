//! OpenSSL copies found on disk by `bleedwatch audit`: one audit per asset (a host's files, an
//! image) per run, its findings, and the products view that puts an asset's vulnerable copies
//! beside the endpoints it serves.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;

use crate::assets::normalize_name;
use crate::query::EndpointAssessment;
use crate::row::get;
use crate::run_id::RunId;
use crate::time::rfc3339_ms;
use crate::{Result, Store, StoreError};

/// Verdicts an OpenSSL copy on disk can have, worst first.
pub const DISK_VERDICTS: &[&str] = &["vulnerable", "unknown", "heartbeats-disabled", "fixed-by-distribution", "not-affected"];

/// Kinds of OpenSSL copy.
pub const DISK_KINDS: &[&str] = &["shared-libssl", "shared-libcrypto", "static", "openssl-tool"];

/// Whether heartbeats are compiled into a copy.
pub const HEARTBEAT_BUILDS: &[&str] = &["compiled-in", "disabled", "unknown"];

/// The package that owns a copy, and the advisory that decided its verdict.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageRecord {
    pub name: String,
    pub version: String,
    pub distribution: Option<String>,
    pub advisory: Option<String>,
}

/// One OpenSSL copy, as recorded and as read back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskFinding {
    /// Path inside path inside image, outermost first; unique within an audit.
    pub location: Vec<String>,
    pub image: Option<String>,
    pub kind: String,
    pub version: Option<String>,
    pub heartbeats: String,
    pub package: Option<PackageRecord>,
    pub verdict: String,
    pub reason: String,
}

/// One audit of an asset to record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskAuditInput {
    pub run: RunId,
    /// The host or image the files belong to.
    pub asset: String,
    pub audited_at_ms: i64,
    /// What could not be read, and why; empty when every file was read.
    pub unread: Vec<String>,
    pub findings: Vec<DiskFinding>,
}

/// An endpoint served by a product, with its response state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductEndpoint {
    pub label: String,
    pub state: String,
    pub verdict: Option<String>,
}

/// An asset's latest audit, with what it serves: where a copy on disk and the endpoint meet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductRow {
    pub asset: String,
    /// From the imported asset list, when the audited name falls under an asset.
    pub owner: String,
    pub criticality: String,
    pub audited_at_ms: i64,
    pub audited_at: String,
    pub run: RunId,
    pub complete: bool,
    pub unread: Vec<String>,
    pub findings: Vec<DiskFinding>,
    pub endpoints: Vec<ProductEndpoint>,
}

impl ProductRow {
    /// The worst verdict of the asset's copies (`DISK_VERDICTS` order), `None` when none was found.
    pub fn worst_verdict(&self) -> Option<&str> {
        DISK_VERDICTS.iter().copied().find(|v| self.findings.iter().any(|f| f.verdict == *v))
    }

    pub fn count(&self, verdict: &str) -> usize {
        self.findings.iter().filter(|f| f.verdict == verdict).count()
    }

    /// Vulnerable copies on disk, or (for an audit that could not read everything) a doubt.
    pub fn carries_vulnerable_openssl(&self) -> bool {
        self.count("vulnerable") > 0
    }
}

fn check_input(audit: &DiskAuditInput) -> Result<()> {
    if audit.asset.trim().is_empty() {
        return Err(StoreError::BadResult("audit without an asset name".into()));
    }
    let mut locations = std::collections::HashSet::new();
    for finding in &audit.findings {
        let checks = [
            (DISK_VERDICTS, finding.verdict.as_str(), "verdict"),
            (DISK_KINDS, finding.kind.as_str(), "kind"),
            (HEARTBEAT_BUILDS, finding.heartbeats.as_str(), "heartbeats"),
        ];
        for (allowed, value, what) in checks {
            if !allowed.contains(&value) {
                return Err(StoreError::BadResult(format!("disk finding {what} {value:?} (one of {})", allowed.join(", "))));
            }
        }
        if finding.location.is_empty() {
            return Err(StoreError::BadResult("disk finding without a location".into()));
        }
        if !locations.insert(&finding.location) {
            return Err(StoreError::BadResult(format!("disk finding {} twice in one audit", finding.location.join(" ▸ "))));
        }
    }
    Ok(())
}

fn to_json(value: &impl Serialize) -> Result<String> {
    serde_json::to_string(value).map_err(|e| StoreError::BadResult(e.to_string()))
}

fn from_json<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

fn finding_from_row(row: &AnyRow) -> Result<DiskFinding> {
    let package = match get::<Option<String>>(row, "package")? {
        Some(name) => Some(PackageRecord {
            name,
            version: get::<Option<String>>(row, "package_version")?.unwrap_or_default(),
            distribution: get(row, "distribution")?,
            advisory: get(row, "advisory")?,
        }),
        None => None,
    };
    Ok(DiskFinding {
        location: from_json(&get::<String>(row, "location")?, "disk finding location")?,
        image: get(row, "image")?,
        kind: get(row, "kind")?,
        version: get(row, "version")?,
        heartbeats: get(row, "heartbeats")?,
        package,
        verdict: get(row, "verdict")?,
        reason: get(row, "reason")?,
    })
}

impl Store {
    /// Records one audit of an asset and its findings in one transaction (all or nothing); returns
    /// the audit's id. Auditing the same asset in the same run again is an error, not a duplicate.
    pub async fn record_disk_audit(&self, audit: &DiskAuditInput) -> Result<i64> {
        check_input(audit)?;
        let mut tx = self.begin().await?;
        let row = sqlx::query(
            "INSERT INTO disk_audits (scan_run_id, asset, audited_at_ms, complete, unread) VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(audit.run.0)
        .bind(audit.asset.trim().to_owned())
        .bind(audit.audited_at_ms)
        .bind(i64::from(audit.unread.is_empty()))
        .bind(to_json(&audit.unread)?)
        .fetch_one(&mut *tx)
        .await?;
        let audit_id: i64 = get(&row, "id")?;
        for finding in &audit.findings {
            let package = finding.package.as_ref();
            sqlx::query(
                "INSERT INTO disk_findings (audit_id, location, image, kind, version, heartbeats, package, package_version, \
                   distribution, advisory, verdict, reason) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            )
            .bind(audit_id)
            .bind(to_json(&finding.location)?)
            .bind(finding.image.clone())
            .bind(finding.kind.clone())
            .bind(finding.version.clone())
            .bind(finding.heartbeats.clone())
            .bind(package.map(|p| p.name.clone()))
            .bind(package.map(|p| p.version.clone()))
            .bind(package.and_then(|p| p.distribution.clone()))
            .bind(package.and_then(|p| p.advisory.clone()))
            .bind(finding.verdict.clone())
            .bind(finding.reason.clone())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(audit_id)
    }

    /// Every audited asset's latest audit, worst first (vulnerable copies, then incomplete audits),
    /// with the endpoints the asset serves from `assessments`: those under the same imported asset,
    /// or whose address or server name is the audited name.
    pub async fn products(&self, assessments: &[EndpointAssessment]) -> Result<Vec<ProductRow>> {
        let audits = sqlx::query(
            "SELECT id, scan_run_id, asset, audited_at_ms, complete, unread FROM disk_audits ORDER BY audited_at_ms DESC, id DESC",
        )
        .fetch_all(&self.pool)
        .await?;
        let matcher = self.asset_matcher().await?;
        let assets: HashMap<i64, crate::query::AssetRow> = self.assets().await?.into_iter().map(|a| (a.id, a)).collect();
        let mut seen = std::collections::HashSet::new();
        let mut products = Vec::new();
        for audit in &audits {
            let asset: String = get(audit, "asset")?;
            // Newest first: the first audit of an asset is its latest.
            if !seen.insert(asset.clone()) {
                continue;
            }
            let audit_id: i64 = get(audit, "id")?;
            let findings = sqlx::query(
                "SELECT location, image, kind, version, heartbeats, package, package_version, distribution, advisory, verdict, reason \
                 FROM disk_findings WHERE audit_id = $1 ORDER BY id",
            )
            .bind(audit_id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(finding_from_row)
            .collect::<Result<Vec<_>>>()?;
            let name = normalize_name(&asset);
            let matched = matcher.best_match(&asset, &[asset.as_str()]).and_then(|id| assets.get(&id));
            let endpoints = assessments
                .iter()
                .filter(|a| {
                    let e = &a.endpoint;
                    let same_asset = matched.is_some_and(|m| e.asset.as_ref().is_some_and(|ea| ea.id == m.id));
                    let same_name = e.address == asset
                        || normalize_name(&e.sni) == name
                        || e.host.as_deref().is_some_and(|h| normalize_name(h) == name);
                    same_asset || same_name
                })
                .map(|a| ProductEndpoint {
                    label: a.endpoint.label(),
                    state: a.assessment.state.as_str().to_owned(),
                    verdict: a.latest.as_ref().map(|o| o.verdict.clone()),
                })
                .collect();
            let audited_at_ms: i64 = get(audit, "audited_at_ms")?;
            products.push(ProductRow {
                owner: matched.map(|m| m.owner.clone()).unwrap_or_default(),
                criticality: matched.map(|m| m.criticality.clone()).unwrap_or_default(),
                asset,
                audited_at_ms,
                audited_at: rfc3339_ms(audited_at_ms),
                run: RunId(get(audit, "scan_run_id")?),
                complete: get::<i64>(audit, "complete")? != 0,
                unread: from_json(&get::<String>(audit, "unread")?, "disk audit unread")?,
                findings,
                endpoints,
            });
        }
        products.sort_by_key(|p| (!p.carries_vulnerable_openssl(), p.complete, p.asset.clone()));
        Ok(products)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn finding(path: &str, verdict: &str) -> DiskFinding {
        DiskFinding {
            location: vec!["image.tar".into(), path.into()],
            image: Some("appliance:1.2".into()),
            kind: "shared-libssl".into(),
            version: Some("1.0.1f".into()),
            heartbeats: "compiled-in".into(),
            package: None,
            verdict: verdict.into(),
            reason: "1.0.1f with heartbeats".into(),
        }
    }

    fn audit(findings: Vec<DiskFinding>) -> DiskAuditInput {
        DiskAuditInput { run: RunId(1), asset: "appliance".into(), audited_at_ms: 1, unread: vec![], findings }
    }

    #[test]
    fn bad_findings_are_refused_by_name() {
        assert!(check_input(&audit(vec![finding("a", "vulnerable"), finding("b", "not-affected")])).is_ok());
        let error = check_input(&audit(vec![finding("a", "maybe")])).unwrap_err().to_string();
        assert!(error.contains("verdict \"maybe\""), "{error}");
        let error = check_input(&audit(vec![finding("a", "vulnerable"), finding("a", "vulnerable")])).unwrap_err().to_string();
        assert!(error.contains("twice"), "{error}");
        let mut nameless = audit(vec![]);
        nameless.asset = " ".into();
        assert!(check_input(&nameless).is_err());
    }
}
