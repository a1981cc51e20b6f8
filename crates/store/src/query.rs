//! Reading the inventory back: rows, histories, revocation checks, pins, alerts, and the
//! assessment of every endpoint.

use std::collections::{BTreeMap, HashMap};

use bleedwatch_assess::{
    assess_endpoint, Assessment, EndpointHistory, ExposureIndex, KeyPin, Leaf, Observation, RevocationFact,
    RevocationIndex, RevocationStatus, Verdict,
};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;

use crate::attacks::AttackEvidence;
use crate::input::CertificateRecord;
use crate::label::endpoint_label;
use crate::row::get;
use crate::run_id::RunId;
use crate::{now_ms, Result, Store, StoreError};

fn get_flag(row: &AnyRow, column: &str) -> Result<bool> {
    Ok(get::<i64>(row, column)? != 0)
}

fn json_column<T: serde::de::DeserializeOwned>(row: &AnyRow, column: &str) -> Result<T> {
    let text: String = get(row, column)?;
    serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}

/// A scan run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRow {
    pub id: RunId,
    pub command: String,
    pub arguments: Vec<String>,
    pub started_at_ms: i64,
    pub finished_at_ms: Option<i64>,
    /// `running`, `finished` or `failed`.
    pub status: String,
}

/// An asset from the owner's list (or an nmap/masscan import).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetRow {
    pub id: i64,
    pub host: String,
    pub owner: String,
    pub criticality: String,
    pub internet_facing: bool,
    pub notes: String,
    pub source: String,
    pub updated_at_ms: i64,
}

/// An endpoint: (address, port, transport, server name), with its asset when one matches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointRow {
    pub id: i64,
    pub address: String,
    pub port: u16,
    pub transport: String,
    /// Server name the endpoint is scanned under ('' for none).
    pub sni: String,
    pub host: Option<String>,
    pub service: String,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    pub asset: Option<AssetRow>,
}

impl EndpointRow {
    /// `192.0.2.1:443/tcp`, `[2001:db8::1]:443/tcp`, with ` (name)` when scanned under a server name.
    pub fn label(&self) -> String {
        endpoint_label(&self.address, self.port, &self.transport, &self.sni)
    }

    /// What to give `bleedwatch scan` to test this endpoint again: `name:port` when it is scanned
    /// under a server name (so the same SNI is sent), else `address:port`.
    pub fn scan_target(&self) -> String {
        if !self.sni.is_empty() {
            return format!("{}:{}", self.sni, self.port);
        }
        if self.address.contains(':') {
            format!("[{}]:{}", self.address, self.port)
        } else {
            format!("{}:{}", self.address, self.port)
        }
    }

    pub fn owner(&self) -> &str {
        self.asset.as_ref().map_or("", |a| a.owner.as_str())
    }

    pub fn internet_facing(&self) -> bool {
        self.asset.as_ref().is_some_and(|a| a.internet_facing)
    }
}

/// One observation (a scan of one endpoint in one run).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservationRow {
    pub id: i64,
    pub scan_run_id: i64,
    pub endpoint_id: i64,
    pub observed_at_ms: i64,
    pub duration_ms: i64,
    pub status: String,
    pub verdict: String,
    pub reason: Option<String>,
    pub versions: BTreeMap<String, String>,
    pub vulnerable_versions: Vec<String>,
    pub heartbeat_extension: bool,
    pub service: String,
    pub host: Option<String>,
    pub sni_used: Option<String>,
    pub leaf_cert_sha256: Option<String>,
    pub leaf_spki_sha256: Option<String>,
    pub leaked_bytes: Option<i64>,
    /// What the verdict stands on (typed), when the scan recorded it.
    pub evidence: Option<bleedwatch_verdict::Evidence>,
    /// The leaf's end of validity (from the certificates table), Unix seconds.
    pub leaf_not_after_unix: Option<i64>,
}

impl ObservationRow {
    /// The observation as the assessment sees it.
    pub fn to_assess(&self) -> Observation {
        let verdict = if self.status == "success" {
            Verdict::parse(&self.verdict).unwrap_or(Verdict::Inconclusive)
        } else {
            Verdict::Inconclusive
        };
        let leaf = match (&self.leaf_cert_sha256, &self.leaf_spki_sha256) {
            (Some(cert), Some(spki)) => Some(Leaf {
                cert_sha256: cert.clone(),
                spki_sha256: spki.clone(),
                not_after_unix: self.leaf_not_after_unix.unwrap_or(0),
            }),
            _ => None,
        };
        Observation {
            id: self.id,
            at_ms: self.observed_at_ms,
            verdict,
            vulnerable_versions: self.vulnerable_versions.iter().cloned().collect(),
            leaf,
        }
    }
}

/// A certificate seen in a scan (or loaded as an issuer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateRow {
    pub summary: CertificateRecord,
    #[serde(skip)]
    pub der: Option<Vec<u8>>,
    pub first_seen_ms: i64,
}

/// A revocation check to record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationInput {
    pub cert_sha256: String,
    /// `crl` or `ocsp`.
    pub method: String,
    /// The URL or file the answer came from.
    pub source: String,
    /// `good` or `revoked` (verified answers), or `unknown` (`error` in inventories older than
    /// schema 4). Only `revoked` counts in the response funnel.
    pub result: String,
    pub revoked_at_unix: Option<i64>,
    pub reason: Option<String>,
    /// Why the result is `unknown` (`no-issuer`, `signature`, `stale`, `nonce-missing`, …).
    #[serde(default)]
    pub unknown_reason: Option<String>,
    pub detail: String,
    pub checked_at_ms: i64,
}

/// A recorded revocation check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationRow {
    pub id: i64,
    #[serde(flatten)]
    pub check: RevocationInput,
}

/// A recorded watch alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertRow {
    pub id: i64,
    pub endpoint_id: i64,
    pub endpoint: String,
    pub observation_id: i64,
    pub kind: String,
    pub spki_sha256: Option<String>,
    pub detail: String,
    pub raised_at_ms: i64,
    pub recorded_at_ms: i64,
    pub acknowledged_at_ms: Option<i64>,
}

/// Which alerts to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlertFilter {
    pub kind: Option<String>,
    pub unacknowledged_only: bool,
    pub endpoint_id: Option<i64>,
    pub since_ms: Option<i64>,
}

/// An endpoint with its assessment, latest observation and the attacks seen against it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointAssessment {
    pub endpoint: EndpointRow,
    pub assessment: Assessment,
    pub latest: Option<ObservationRow>,
    /// Capture findings against the endpoint's address and port, against its exposure window.
    #[serde(default)]
    pub attacks: AttackEvidence,
}

fn label_from_row(row: &AnyRow) -> Result<String> {
    let port: i64 = get(row, "port")?;
    let port = u16::try_from(port).map_err(|_| StoreError::Corrupt(format!("port {port}")))?;
    Ok(endpoint_label(&get::<String>(row, "address")?, port, &get::<String>(row, "transport")?, &get::<String>(row, "sni")?))
}

const ENDPOINT_SELECT: &str = "SELECT e.id, e.address, e.port, e.transport, e.sni, e.host, e.service, e.first_seen_ms, e.last_seen_ms, \
       a.id AS asset_id, a.host AS asset_host, a.owner AS asset_owner, a.criticality AS asset_criticality, \
       a.internet_facing AS asset_internet_facing, a.notes AS asset_notes, a.source AS asset_source, a.updated_at_ms AS asset_updated_at_ms \
     FROM endpoints e LEFT JOIN endpoint_assets ea ON ea.endpoint_id = e.id LEFT JOIN assets a ON a.id = ea.asset_id";

const OBSERVATION_SELECT: &str = "SELECT o.id, o.scan_run_id, o.endpoint_id, o.observed_at_ms, o.duration_ms, o.status, o.verdict, o.reason, \
       o.versions, o.vulnerable_versions, o.heartbeat_extension, o.service, o.host, o.sni_used, o.leaf_cert_sha256, o.leaf_spki_sha256, \
       o.leaked_bytes, o.evidence, c.not_after_unix AS leaf_not_after_unix \
     FROM observations o LEFT JOIN certificates c ON c.cert_sha256 = o.leaf_cert_sha256";

const CERTIFICATE_SELECT: &str = "SELECT cert_sha256, spki_sha256, subject, issuer, serial, sans, not_before_unix, not_after_unix, key_type, \
       key_bits, signature_algorithm, self_signed, crl_urls, ocsp_urls, ca_issuer_urls, der, first_seen_ms FROM certificates";

pub(crate) fn asset_from_row(row: &AnyRow, prefix: &str) -> Result<Option<AssetRow>> {
    let column = |name: &str| format!("{prefix}{name}");
    let Some(id) = get::<Option<i64>>(row, &column("id"))? else { return Ok(None) };
    Ok(Some(AssetRow {
        id,
        host: get(row, &column("host"))?,
        owner: get(row, &column("owner"))?,
        criticality: get(row, &column("criticality"))?,
        internet_facing: get_flag(row, &column("internet_facing"))?,
        notes: get(row, &column("notes"))?,
        source: get(row, &column("source"))?,
        updated_at_ms: get(row, &column("updated_at_ms"))?,
    }))
}

fn endpoint_from_row(row: &AnyRow) -> Result<EndpointRow> {
    let port: i64 = get(row, "port")?;
    Ok(EndpointRow {
        id: get(row, "id")?,
        address: get(row, "address")?,
        port: u16::try_from(port).map_err(|_| StoreError::Corrupt(format!("port {port}")))?,
        transport: get(row, "transport")?,
        sni: get(row, "sni")?,
        host: get(row, "host")?,
        service: get(row, "service")?,
        first_seen_ms: get(row, "first_seen_ms")?,
        last_seen_ms: get(row, "last_seen_ms")?,
        asset: asset_from_row(row, "asset_")?,
    })
}

fn observation_from_row(row: &AnyRow) -> Result<ObservationRow> {
    Ok(ObservationRow {
        id: get(row, "id")?,
        scan_run_id: get(row, "scan_run_id")?,
        endpoint_id: get(row, "endpoint_id")?,
        observed_at_ms: get(row, "observed_at_ms")?,
        duration_ms: get(row, "duration_ms")?,
        status: get(row, "status")?,
        verdict: get(row, "verdict")?,
        reason: get(row, "reason")?,
        versions: json_column(row, "versions")?,
        vulnerable_versions: json_column(row, "vulnerable_versions")?,
        heartbeat_extension: get_flag(row, "heartbeat_extension")?,
        service: get(row, "service")?,
        host: get(row, "host")?,
        sni_used: get(row, "sni_used")?,
        leaf_cert_sha256: get(row, "leaf_cert_sha256")?,
        leaf_spki_sha256: get(row, "leaf_spki_sha256")?,
        leaked_bytes: get(row, "leaked_bytes")?,
        evidence: get::<Option<String>>(row, "evidence")?.and_then(|text| serde_json::from_str(&text).ok()),
        leaf_not_after_unix: get(row, "leaf_not_after_unix")?,
    })
}

fn certificate_from_row(row: &AnyRow) -> Result<CertificateRow> {
    let key_bits: Option<i64> = get(row, "key_bits")?;
    let (not_before_unix, not_after_unix): (i64, i64) = (get(row, "not_before_unix")?, get(row, "not_after_unix")?);
    Ok(CertificateRow {
        summary: CertificateRecord {
            subject: get(row, "subject")?,
            issuer: get(row, "issuer")?,
            serial: get(row, "serial")?,
            sans: json_column(row, "sans")?,
            // The table keeps the Unix times only; the RFC 3339 dates follow from them.
            not_before: crate::time::rfc3339_seconds(not_before_unix),
            not_after: crate::time::rfc3339_seconds(not_after_unix),
            not_before_unix,
            not_after_unix,
            spki_sha256: get(row, "spki_sha256")?,
            cert_sha256: get(row, "cert_sha256")?,
            key_type: get(row, "key_type")?,
            key_bits: key_bits.and_then(|b| u32::try_from(b).ok()),
            signature_algorithm: get(row, "signature_algorithm")?,
            self_signed: get_flag(row, "self_signed")?,
            crl_urls: json_column(row, "crl_urls")?,
            ocsp_urls: json_column(row, "ocsp_urls")?,
            ca_issuer_urls: json_column(row, "ca_issuer_urls")?,
            // The DER is the row's own column (`der`), not repeated in the summary.
            der: String::new(),
        },
        der: get(row, "der")?,
        first_seen_ms: get(row, "first_seen_ms")?,
    })
}

fn revocation_from_row(row: &AnyRow) -> Result<RevocationRow> {
    Ok(RevocationRow {
        id: get(row, "id")?,
        check: RevocationInput {
            cert_sha256: get(row, "cert_sha256")?,
            method: get(row, "method")?,
            source: get(row, "source")?,
            result: get(row, "result")?,
            revoked_at_unix: get(row, "revoked_at_unix")?,
            reason: get(row, "reason")?,
            unknown_reason: get(row, "unknown_reason")?,
            detail: get(row, "detail")?,
            checked_at_ms: get(row, "checked_at_ms")?,
        },
    })
}

impl Store {
    /// Every scan run, oldest first.
    pub async fn runs(&self) -> Result<Vec<RunRow>> {
        let rows = sqlx::query("SELECT id, command, arguments, started_at_ms, finished_at_ms, status FROM scan_runs ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(RunRow {
                    id: RunId(get(row, "id")?),
                    command: get(row, "command")?,
                    arguments: json_column(row, "arguments")?,
                    started_at_ms: get(row, "started_at_ms")?,
                    finished_at_ms: get(row, "finished_at_ms")?,
                    status: get(row, "status")?,
                })
            })
            .collect()
    }

    pub async fn run(&self, run: RunId) -> Result<RunRow> {
        self.runs().await?.into_iter().find(|r| r.id == run).ok_or_else(|| StoreError::NotFound(format!("no scan run {run}")))
    }

    /// Every endpoint, ordered by address, port, transport and name.
    pub async fn endpoints(&self) -> Result<Vec<EndpointRow>> {
        let sql = format!("{ENDPOINT_SELECT} ORDER BY e.address, e.port, e.transport, e.sni");
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        rows.iter().map(endpoint_from_row).collect()
    }

    pub async fn endpoint(&self, id: i64) -> Result<EndpointRow> {
        let sql = format!("{ENDPOINT_SELECT} WHERE e.id = $1");
        let row = sqlx::query(&sql).bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(endpoint_from_row).transpose()?.ok_or_else(|| StoreError::NotFound(format!("no endpoint {id}")))
    }

    /// Endpoints at `address` (and `port`, when given), any server name.
    pub async fn find_endpoints(&self, address: &str, port: Option<u16>) -> Result<Vec<EndpointRow>> {
        Ok(self
            .endpoints()
            .await?
            .into_iter()
            .filter(|e| e.address == address && matches(port.as_ref(), &e.port))
            .collect())
    }

    /// An endpoint's observations, oldest first.
    pub async fn history(&self, endpoint_id: i64) -> Result<Vec<ObservationRow>> {
        let sql = format!("{OBSERVATION_SELECT} WHERE o.endpoint_id = $1 ORDER BY o.observed_at_ms, o.id");
        let rows = sqlx::query(&sql).bind(endpoint_id).fetch_all(&self.pool).await?;
        rows.iter().map(observation_from_row).collect()
    }

    /// Every observation of a run.
    pub async fn run_observations(&self, run: RunId) -> Result<Vec<ObservationRow>> {
        let sql = format!("{OBSERVATION_SELECT} WHERE o.scan_run_id = $1 ORDER BY o.id");
        let rows = sqlx::query(&sql).bind(run.0).fetch_all(&self.pool).await?;
        rows.iter().map(observation_from_row).collect()
    }

    /// The scan result JSON an observation was recorded from.
    pub async fn observation_json(&self, observation_id: i64) -> Result<serde_json::Value> {
        let row = sqlx::query("SELECT result_json FROM observations WHERE id = $1")
            .bind(observation_id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("no observation {observation_id}")))?;
        json_column(&row, "result_json")
    }

    /// The chain an observation saw, leaf first.
    pub async fn observation_chain(&self, observation_id: i64) -> Result<Vec<CertificateRow>> {
        let sql = "SELECT c.cert_sha256, c.spki_sha256, c.subject, c.issuer, c.serial, c.sans, c.not_before_unix, c.not_after_unix, \
               c.key_type, c.key_bits, c.signature_algorithm, c.self_signed, c.crl_urls, c.ocsp_urls, c.ca_issuer_urls, c.der, c.first_seen_ms \
             FROM observation_certs oc JOIN certificates c ON c.cert_sha256 = oc.cert_sha256 \
             WHERE oc.observation_id = $1 ORDER BY oc.position";
        let rows = sqlx::query(sql).bind(observation_id).fetch_all(&self.pool).await?;
        rows.iter().map(certificate_from_row).collect()
    }

    /// Every certificate, ordered by subject.
    pub async fn certificates(&self) -> Result<Vec<CertificateRow>> {
        let sql = format!("{CERTIFICATE_SELECT} ORDER BY subject, cert_sha256");
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        rows.iter().map(certificate_from_row).collect()
    }

    pub async fn certificate(&self, cert_sha256: &str) -> Result<CertificateRow> {
        let sql = format!("{CERTIFICATE_SELECT} WHERE cert_sha256 = $1");
        let row = sqlx::query(&sql).bind(cert_sha256).fetch_optional(&self.pool).await?;
        row.as_ref()
            .map(certificate_from_row)
            .transpose()?
            .ok_or_else(|| StoreError::NotFound(format!("no certificate {cert_sha256}")))
    }

    /// Certificates whose subject is `subject` and whose DER is known (issuer candidates).
    pub async fn certificates_with_der_by_subject(&self, subject: &str) -> Result<Vec<CertificateRow>> {
        let sql = format!("{CERTIFICATE_SELECT} WHERE subject = $1 AND der IS NOT NULL");
        let rows = sqlx::query(&sql).bind(subject).fetch_all(&self.pool).await?;
        rows.iter().map(certificate_from_row).collect()
    }

    /// Records one revocation check of a known certificate.
    pub async fn record_revocation(&self, check: &RevocationInput) -> Result<i64> {
        if RevocationStatus::parse(&check.result).is_none() {
            return Err(StoreError::BadResult(format!("revocation result {:?}", check.result)));
        }
        if !matches!(check.method.as_str(), "crl" | "ocsp") {
            return Err(StoreError::BadResult(format!("revocation method {:?}", check.method)));
        }
        self.certificate(&check.cert_sha256).await?;
        let row = sqlx::query(
            "INSERT INTO revocation_checks (cert_sha256, method, source, result, revoked_at_unix, reason, unknown_reason, detail, checked_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
        )
        .bind(check.cert_sha256.clone())
        .bind(check.method.clone())
        .bind(check.source.clone())
        .bind(check.result.clone())
        .bind(check.revoked_at_unix)
        .bind(check.reason.clone())
        .bind(check.unknown_reason.clone())
        .bind(check.detail.clone())
        .bind(check.checked_at_ms)
        .fetch_one(&self.pool)
        .await?;
        get(&row, "id")
    }

    /// Revocation checks (of one certificate, or all), oldest first.
    pub async fn revocation_checks(&self, cert_sha256: Option<&str>) -> Result<Vec<RevocationRow>> {
        let base = "SELECT id, cert_sha256, method, source, result, revoked_at_unix, reason, unknown_reason, detail, checked_at_ms FROM revocation_checks";
        let rows = match cert_sha256 {
            Some(cert) => {
                let sql = format!("{base} WHERE cert_sha256 = $1 ORDER BY checked_at_ms, id");
                sqlx::query(&sql).bind(cert).fetch_all(&self.pool).await?
            }
            None => sqlx::query(&format!("{base} ORDER BY checked_at_ms, id")).fetch_all(&self.pool).await?,
        };
        rows.iter().map(revocation_from_row).collect()
    }

    /// Says the endpoint is expected to present this key (watch: any other key raises
    /// `unexpected-certificate` from now on).
    pub async fn pin_key(&self, endpoint_id: i64, spki_sha256: &str, note: &str) -> Result<()> {
        self.endpoint(endpoint_id).await?;
        sqlx::query(
            "INSERT INTO key_pins (endpoint_id, spki_sha256, since_ms, note) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (endpoint_id, spki_sha256) DO UPDATE SET note = excluded.note",
        )
        .bind(endpoint_id)
        .bind(spki_sha256.to_ascii_lowercase())
        .bind(now_ms())
        .bind(note)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn unpin_key(&self, endpoint_id: i64, spki_sha256: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM key_pins WHERE endpoint_id = $1 AND spki_sha256 = $2")
            .bind(endpoint_id)
            .bind(spki_sha256.to_ascii_lowercase())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn pins(&self, endpoint_id: i64) -> Result<Vec<KeyPin>> {
        Ok(self.all_pins().await?.remove(&endpoint_id).unwrap_or_default())
    }

    async fn all_pins(&self) -> Result<HashMap<i64, Vec<KeyPin>>> {
        let rows = sqlx::query("SELECT endpoint_id, spki_sha256, since_ms FROM key_pins ORDER BY since_ms").fetch_all(&self.pool).await?;
        let mut pins: HashMap<i64, Vec<KeyPin>> = HashMap::new();
        for row in &rows {
            pins.entry(get(row, "endpoint_id")?)
                .or_default()
                .push(KeyPin { spki_sha256: get(row, "spki_sha256")?, since_ms: get(row, "since_ms")? });
        }
        Ok(pins)
    }

    /// Recorded alerts, newest first.
    pub async fn alerts(&self, filter: &AlertFilter) -> Result<Vec<AlertRow>> {
        let rows = sqlx::query(
            "SELECT al.id, al.endpoint_id, al.observation_id, al.kind, al.spki_sha256, al.detail, al.raised_at_ms, al.recorded_at_ms, \
               al.acknowledged_at_ms, e.address, e.port, e.transport, e.sni \
             FROM alerts al JOIN endpoints e ON e.id = al.endpoint_id ORDER BY al.raised_at_ms DESC, al.id DESC",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut alerts = Vec::new();
        for row in &rows {
            let label = label_from_row(row)?;
            let alert = AlertRow {
                id: get(row, "id")?,
                endpoint_id: get(row, "endpoint_id")?,
                endpoint: label,
                observation_id: get(row, "observation_id")?,
                kind: get(row, "kind")?,
                spki_sha256: get(row, "spki_sha256")?,
                detail: get(row, "detail")?,
                raised_at_ms: get(row, "raised_at_ms")?,
                recorded_at_ms: get(row, "recorded_at_ms")?,
                acknowledged_at_ms: get(row, "acknowledged_at_ms")?,
            };
            let keep = matches(filter.kind.as_deref(), alert.kind.as_str())
                && !(filter.unacknowledged_only && alert.acknowledged_at_ms.is_some())
                && matches(filter.endpoint_id.as_ref(), &alert.endpoint_id)
                && filter.since_ms.is_none_or(|since| since <= alert.raised_at_ms);
            if keep {
                alerts.push(alert);
            }
        }
        Ok(alerts)
    }

    /// Marks an alert as seen. Returns whether it was open.
    pub async fn acknowledge_alert(&self, id: i64) -> Result<bool> {
        let done = sqlx::query("UPDATE alerts SET acknowledged_at_ms = $1 WHERE id = $2 AND acknowledged_at_ms IS NULL")
            .bind(now_ms())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Assesses every endpoint from its whole history (as of `now_ms`) and records any watch
    /// alert not recorded yet. Ordered like [`Store::endpoints`].
    pub async fn assess_all(&self, now_ms: i64) -> Result<Vec<EndpointAssessment>> {
        let endpoints = self.endpoints().await?;
        let sql = format!("{OBSERVATION_SELECT} ORDER BY o.endpoint_id, o.observed_at_ms, o.id");
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        let mut histories: HashMap<i64, Vec<ObservationRow>> = HashMap::new();
        for row in &rows {
            let observation = observation_from_row(row)?;
            histories.entry(observation.endpoint_id).or_default().push(observation);
        }
        let revocations = RevocationIndex::build(&self.revocation_facts().await?);
        let pins = self.all_pins().await?;
        let attack_times = self.attack_times_by_endpoint().await?;

        let labels: Vec<String> = endpoints.iter().map(EndpointRow::label).collect();
        let observations: Vec<Vec<Observation>> = endpoints
            .iter()
            .map(|e| histories.get(&e.id).map(|h| h.iter().map(ObservationRow::to_assess).collect()).unwrap_or_default())
            .collect();
        let exposure = ExposureIndex::build(labels.iter().map(String::as_str).zip(observations.iter().map(Vec::as_slice)));
        let mut assessed = Vec::with_capacity(endpoints.len());
        let mut raised = Vec::new();
        for ((endpoint, label), history) in endpoints.into_iter().zip(&labels).zip(&observations) {
            let endpoint_pins = pins.get(&endpoint.id).map(Vec::as_slice).unwrap_or_default();
            let input = EndpointHistory { label, observations: history, pins: endpoint_pins };
            let assessment = assess_endpoint(&input, &exposure, &revocations, now_ms);
            raised.extend(assessment.alerts.iter().map(|alert| (endpoint.id, alert.clone())));
            let latest = histories.get_mut(&endpoint.id).and_then(|h| h.pop());
            let attacks = AttackEvidence::build(attack_times.get(&endpoint.id).map(Vec::as_slice).unwrap_or_default(), &assessment.exposure);
            assessed.push(EndpointAssessment { endpoint, assessment, latest, attacks });
        }
        self.insert_alerts(&raised).await?;
        Ok(assessed)
    }

    /// Assesses one endpoint against the whole inventory's exposure.
    pub async fn assess_endpoint(&self, endpoint_id: i64, now_ms: i64) -> Result<EndpointAssessment> {
        let endpoint = self.endpoint(endpoint_id).await?;
        let mut history = self.history(endpoint_id).await?;
        let observations: Vec<Observation> = history.iter().map(ObservationRow::to_assess).collect();
        let exposure = self.exposure_index().await?;
        let revocations = RevocationIndex::build(&self.revocation_facts().await?);
        let pins = self.pins(endpoint_id).await?;
        let label = endpoint.label();
        let input = EndpointHistory { label: &label, observations: &observations, pins: &pins };
        let assessment = assess_endpoint(&input, &exposure, &revocations, now_ms);
        let raised: Vec<_> = assessment.alerts.iter().map(|a| (endpoint_id, a.clone())).collect();
        self.insert_alerts(&raised).await?;
        let attacks = AttackEvidence::build(&self.attack_times(endpoint_id).await?, &assessment.exposure);
        Ok(EndpointAssessment { endpoint, assessment, latest: history.pop(), attacks })
    }

    /// Records the alerts one endpoint's history raises (after a new observation).
    pub(crate) async fn sync_endpoint_alerts(&self, endpoint_id: i64, now_ms: i64) -> Result<()> {
        // Alerts depend on history, exposure and pins only: revocation checks are not loaded.
        let label = self.endpoint(endpoint_id).await?.label();
        let observations: Vec<Observation> = self.history(endpoint_id).await?.iter().map(ObservationRow::to_assess).collect();
        let exposure = self.exposure_index().await?;
        let pins = self.pins(endpoint_id).await?;
        let input = EndpointHistory { label: &label, observations: &observations, pins: &pins };
        let assessment = assess_endpoint(&input, &exposure, &RevocationIndex::default(), now_ms);
        let raised: Vec<_> = assessment.alerts.into_iter().map(|alert| (endpoint_id, alert)).collect();
        self.insert_alerts(&raised).await
    }

    /// Which keys are exposed, built only from the observations that matter: the vulnerable ones,
    /// and every observation presenting a key a vulnerable one presented.
    pub async fn exposure_index(&self) -> Result<ExposureIndex> {
        let sql = format!(
            "SELECT sub.*, e.address, e.port, e.transport, e.sni FROM ({OBSERVATION_SELECT} WHERE o.leaf_spki_sha256 IN \
               (SELECT leaf_spki_sha256 FROM observations WHERE verdict = 'vulnerable' AND status = 'success' AND leaf_spki_sha256 IS NOT NULL)) sub \
             JOIN endpoints e ON e.id = sub.endpoint_id"
        );
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        let mut by_endpoint: BTreeMap<String, Vec<Observation>> = BTreeMap::new();
        for row in &rows {
            by_endpoint.entry(label_from_row(row)?).or_default().push(observation_from_row(row)?.to_assess());
        }
        Ok(ExposureIndex::build(by_endpoint.iter().map(|(label, observations)| (label.as_str(), observations.as_slice()))))
    }

    async fn revocation_facts(&self) -> Result<Vec<RevocationFact>> {
        Ok(self
            .revocation_checks(None)
            .await?
            .into_iter()
            .filter_map(|row| {
                RevocationStatus::parse(&row.check.result).map(|status| RevocationFact {
                    cert_sha256: row.check.cert_sha256,
                    status,
                    checked_at_ms: row.check.checked_at_ms,
                })
            })
            .collect())
    }

    async fn insert_alerts(&self, alerts: &[(i64, bleedwatch_assess::Alert)]) -> Result<()> {
        if alerts.is_empty() {
            return Ok(());
        }
        let recorded = now_ms();
        let mut tx = self.begin().await?;
        for (endpoint_id, alert) in alerts {
            sqlx::query(
                "INSERT INTO alerts (endpoint_id, observation_id, kind, spki_sha256, detail, raised_at_ms, recorded_at_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (observation_id, kind) DO NOTHING",
            )
            .bind(*endpoint_id)
            .bind(alert.observation_id)
            .bind(alert.kind.as_str())
            .bind(alert.spki_sha256.clone())
            .bind(alert.detail.clone())
            .bind(alert.at_ms)
            .bind(recorded)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// `None` matches everything; `Some(x)` matches only `x`.
fn matches<T: PartialEq + ?Sized>(filter: Option<&T>, value: &T) -> bool {
    match filter {
        None => true,
        Some(own) => own == value,
    }
}
