//! Writing: scan runs, the targets a run plans (for `scan --resume`), and observations.

use sqlx::any::AnyRow;

use bleedwatch_verdict::EndpointResult;

use crate::input::{certificate_der, checked_address, server_name, started_at_ms, CertificateRecord};
use crate::query::RunRow;
use crate::row::get;
use crate::run_id::RunId;
use crate::{now_ms, Result, Store, StoreError};

/// What recording a result did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordOutcome {
    Inserted { observation_id: i64, endpoint_id: i64 },
    /// This run already has an observation of the endpoint (a resumed run re-testing it): the
    /// first one is kept.
    AlreadyRecorded { observation_id: i64, endpoint_id: i64 },
}

impl RecordOutcome {
    pub fn observation_id(self) -> i64 {
        match self {
            RecordOutcome::Inserted { observation_id, .. } | RecordOutcome::AlreadyRecorded { observation_id, .. } => {
                observation_id
            }
        }
    }

    pub fn endpoint_id(self) -> i64 {
        match self {
            RecordOutcome::Inserted { endpoint_id, .. } | RecordOutcome::AlreadyRecorded { endpoint_id, .. } => endpoint_id,
        }
    }
}

/// Planned targets are written in transactions of this many rows.
const PLAN_BATCH: usize = 1000;

impl Store {
    /// Starts a run of `command` (`scan`, `rescan`, ...) with its command-line words.
    pub async fn start_run(&self, command: &str, arguments: &[String]) -> Result<RunId> {
        let arguments = serde_json::to_string(arguments).map_err(|e| StoreError::BadResult(e.to_string()))?;
        let row: AnyRow = sqlx::query(
            "INSERT INTO scan_runs (command, arguments, started_at_ms, status) VALUES ($1, $2, $3, 'running') RETURNING id",
        )
        .bind(command)
        .bind(arguments)
        .bind(now_ms())
        .fetch_one(&self.pool)
        .await?;
        Ok(RunId(get(&row, "id")?))
    }

    /// Marks a run finished (`finished`) or failed (`failed`).
    pub async fn finish_run(&self, run: RunId, status: &str) -> Result<()> {
        let done = sqlx::query("UPDATE scan_runs SET finished_at_ms = $1, status = $2 WHERE id = $3")
            .bind(now_ms())
            .bind(status)
            .bind(run.0)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("no scan run {run}")));
        }
        Ok(())
    }

    /// Runs never finished, newest first (what `scan --resume` continues), of `command` if given.
    pub async fn unfinished_runs(&self, command: Option<&str>) -> Result<Vec<RunRow>> {
        Ok(self.runs().await?.into_iter().filter(|r| r.finished_at_ms.is_none() && command.is_none_or(|c| r.command == c)).collect())
    }

    /// Records the targets a run will test, in order, so a killed run can be resumed. Planning the
    /// same target twice (a resumed run planning again) does nothing. Returns how many were new.
    pub async fn plan_targets<I>(&self, run: RunId, targets: I) -> Result<u64>
    where
        I: IntoIterator<Item = String>,
    {
        let row: AnyRow = sqlx::query("SELECT MAX(seq) AS seq FROM scan_targets WHERE scan_run_id = $1")
            .bind(run.0)
            .fetch_one(&self.pool)
            .await?;
        let mut next_seq = get::<Option<i64>>(&row, "seq")?.map_or(0, |s| s + 1);
        let mut inserted = 0;
        let mut targets = targets.into_iter().peekable();
        while targets.peek().is_some() {
            let mut tx = self.begin().await?;
            for target in targets.by_ref().take(PLAN_BATCH) {
                let done = sqlx::query(
                    "INSERT INTO scan_targets (scan_run_id, seq, target, done) VALUES ($1, $2, $3, 0) \
                     ON CONFLICT (scan_run_id, target) DO NOTHING",
                )
                .bind(run.0)
                .bind(next_seq)
                .bind(target)
                .execute(&mut *tx)
                .await?;
                next_seq += 1;
                inserted += done.rows_affected();
            }
            tx.commit().await?;
        }
        Ok(inserted)
    }

    /// Marks a planned target done (all its endpoints recorded, or it produced none: excluded,
    /// unresolvable). Returns whether it was planned and pending.
    pub async fn mark_target_done(&self, run: RunId, target: &str) -> Result<bool> {
        let done = sqlx::query("UPDATE scan_targets SET done = 1 WHERE scan_run_id = $1 AND target = $2 AND done = 0")
            .bind(run.0)
            .bind(target)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Marks a target done that produced no endpoint because it could not be tested (a name that
    /// did not resolve): done, so a resumed run skips it, but counted by [`Store::untested_targets`].
    pub async fn mark_target_untested(&self, run: RunId, target: &str) -> Result<bool> {
        let done = sqlx::query("UPDATE scan_targets SET done = 2 WHERE scan_run_id = $1 AND target = $2 AND done = 0")
            .bind(run.0)
            .bind(target)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// How many of the run's targets were done without being tested ([`Store::mark_target_untested`]).
    pub async fn untested_targets(&self, run: RunId) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM scan_targets WHERE scan_run_id = $1 AND done = 2")
            .bind(run.0)
            .fetch_one(&self.pool)
            .await?;
        get(&row, "n")
    }

    /// The run's targets already done, for a resumed run to skip.
    pub async fn done_targets(&self, run: RunId) -> Result<std::collections::HashSet<String>> {
        let rows = sqlx::query("SELECT target FROM scan_targets WHERE scan_run_id = $1 AND done <> 0").bind(run.0).fetch_all(&self.pool).await?;
        rows.iter().map(|row| get(row, "target")).collect()
    }

    /// Which of `targets` the run has done: a resumed scan asks batch by batch, so its memory does
    /// not grow with the run (a /8 has 16 million targets).
    pub async fn done_among(&self, run: RunId, targets: &[String]) -> Result<std::collections::HashSet<String>> {
        let mut done = std::collections::HashSet::new();
        // Bounded statements: SQLite allows 32766 parameters, PostgreSQL 65535.
        for chunk in targets.chunks(500) {
            let placeholders: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 2)).collect();
            let sql = format!(
                "SELECT target FROM scan_targets WHERE scan_run_id = $1 AND done <> 0 AND target IN ({})",
                placeholders.join(", ")
            );
            let mut query = sqlx::query(&sql).bind(run.0);
            for target in chunk {
                query = query.bind(target.clone());
            }
            for row in query.fetch_all(&self.pool).await? {
                done.insert(get(&row, "target")?);
            }
        }
        Ok(done)
    }

    /// The run's observations counted by overall verdict (`vulnerable`, `inconclusive`, …): what a
    /// resumed scan found before it was stopped.
    pub async fn run_verdict_counts(&self, run: RunId) -> Result<std::collections::BTreeMap<String, i64>> {
        let rows = sqlx::query("SELECT verdict, COUNT(*) AS n FROM observations WHERE scan_run_id = $1 GROUP BY verdict")
            .bind(run.0)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|row| Ok((get(row, "verdict")?, get(row, "n")?))).collect()
    }

    /// The run's targets not yet done, in plan order.
    pub async fn pending_targets(&self, run: RunId) -> Result<Vec<String>> {
        let mut all = Vec::new();
        let mut after = -1;
        loop {
            let page = self.pending_targets_after(run, after, 10_000).await?;
            let Some((last, _)) = page.last() else { break };
            after = *last;
            all.extend(page.into_iter().map(|(_, target)| target));
        }
        Ok(all)
    }

    /// One page of pending targets with their sequence numbers, for runs too large to hold at once.
    pub async fn pending_targets_after(&self, run: RunId, after_seq: i64, limit: i64) -> Result<Vec<(i64, String)>> {
        let rows = sqlx::query(
            "SELECT seq, target FROM scan_targets WHERE scan_run_id = $1 AND done = 0 AND seq > $2 ORDER BY seq LIMIT $3",
        )
        .bind(run.0)
        .bind(after_seq)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|row| Ok((get(row, "seq")?, get(row, "target")?))).collect()
    }

    /// (planned, done) targets of a run.
    pub async fn target_counts(&self, run: RunId) -> Result<(i64, i64)> {
        let row = sqlx::query("SELECT COUNT(*) AS planned, COUNT(CASE WHEN done <> 0 THEN 1 END) AS done FROM scan_targets WHERE scan_run_id = $1")
            .bind(run.0)
            .fetch_one(&self.pool)
            .await?;
        Ok((get(&row, "planned")?, get(&row, "done")?))
    }

    /// Records one scan result (the typed contract behind `bleedwatch scan`'s JSON lines) in `run`, in one transaction:
    /// the endpoint, the certificates, the observation with its chain, the planned `target` marked
    /// done, and the endpoint's asset link. Recording the same endpoint twice in a run keeps the first
    /// observation. Watch alerts the new observation raises are recorded afterwards.
    pub async fn record(&self, run: RunId, result: &EndpointResult, target: Option<&str>) -> Result<RecordOutcome> {
        let address = checked_address(result)?.to_string();
        let json_text = serde_json::to_string(result).map_err(|e| StoreError::BadResult(e.to_string()))?;
        let matcher = self.asset_matcher().await?;
        let now = now_ms();
        let observed_at = started_at_ms(result, now);
        let server_name = server_name(result);
        let leaf = result.leaf();

        let mut tx = self.begin().await?;
        let row = sqlx::query(
            "INSERT INTO endpoints (address, port, transport, sni, host, service, first_seen_ms, last_seen_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7) \
             ON CONFLICT (address, port, transport, sni) DO UPDATE SET \
               host = COALESCE(excluded.host, endpoints.host), service = excluded.service, \
               first_seen_ms = CASE WHEN excluded.first_seen_ms < endpoints.first_seen_ms THEN excluded.first_seen_ms ELSE endpoints.first_seen_ms END, \
               last_seen_ms = CASE WHEN excluded.last_seen_ms > endpoints.last_seen_ms THEN excluded.last_seen_ms ELSE endpoints.last_seen_ms END \
             RETURNING id",
        )
        .bind(address.clone())
        .bind(i64::from(result.port))
        .bind(result.transport.clone())
        .bind(server_name.clone())
        .bind(result.host.clone())
        .bind(result.service.clone())
        .bind(observed_at)
        .fetch_one(&mut *tx)
        .await?;
        let endpoint_id: i64 = get(&row, "id")?;
        // Captures imported before the endpoint was first scanned: link their findings now.
        sqlx::query(
            "UPDATE attacks SET endpoint_id = $1 WHERE endpoint_id IS NULL AND origin = 'pcap' \
               AND target_address = $2 AND target_port = $3 AND transport = $4",
        )
        .bind(endpoint_id)
        .bind(address.clone())
        .bind(i64::from(result.port))
        .bind(result.transport.clone())
        .execute(&mut *tx)
        .await?;

        let chain = result.presented_chain();
        for certificate in chain.iter().copied().chain(leaf) {
            insert_certificate(&mut tx, certificate, certificate_der(certificate).as_deref(), now).await?;
        }
        let vulnerable_versions = serde_json::to_string(&result.vulnerable_versions()).unwrap_or_else(|_| "[]".into());
        let versions = serde_json::to_string(&result.versions).unwrap_or_else(|_| "{}".into());
        let inserted = sqlx::query(
            "INSERT INTO observations (scan_run_id, endpoint_id, observed_at_ms, duration_ms, status, verdict, reason, versions, \
               vulnerable_versions, heartbeat_extension, service, host, sni_used, leaf_cert_sha256, leaf_spki_sha256, leaked_bytes, result_json, \
               evidence) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18) \
             ON CONFLICT (scan_run_id, endpoint_id) DO NOTHING RETURNING id",
        )
        .bind(run.0)
        .bind(endpoint_id)
        .bind(observed_at)
        .bind(i64::try_from(result.duration_ms).unwrap_or(i64::MAX))
        .bind(result.status.as_str())
        .bind(result.heartbleed.as_str())
        .bind(result.reason.clone())
        .bind(versions)
        .bind(vulnerable_versions)
        .bind(i64::from(result.heartbeat_extension()))
        .bind(result.service.clone())
        .bind(result.host.clone())
        .bind(result.sni.clone())
        .bind(leaf.map(|c| c.cert_sha256.clone()))
        .bind(leaf.map(|c| c.spki_sha256.clone()))
        .bind(result.leak.as_ref().map(|l| i64::try_from(l.leaked_bytes).unwrap_or(i64::MAX)))
        .bind(json_text)
        .bind(result.deciding_evidence().and_then(|e| serde_json::to_string(e).ok()))
        .fetch_optional(&mut *tx)
        .await?;

        let outcome = match inserted {
            Some(row) => {
                let observation_id: i64 = get(&row, "id")?;
                for (position, certificate) in chain.iter().enumerate() {
                    sqlx::query("INSERT INTO observation_certs (observation_id, position, cert_sha256) VALUES ($1, $2, $3)")
                        .bind(observation_id)
                        .bind(i64::try_from(position).unwrap_or(i64::MAX))
                        .bind(certificate.cert_sha256.clone())
                        .execute(&mut *tx)
                        .await?;
                }
                RecordOutcome::Inserted { observation_id, endpoint_id }
            }
            None => {
                let row = sqlx::query("SELECT id FROM observations WHERE scan_run_id = $1 AND endpoint_id = $2")
                    .bind(run.0)
                    .bind(endpoint_id)
                    .fetch_one(&mut *tx)
                    .await?;
                RecordOutcome::AlreadyRecorded { observation_id: get(&row, "id")?, endpoint_id }
            }
        };
        if let Some(target) = target {
            sqlx::query("UPDATE scan_targets SET done = 1 WHERE scan_run_id = $1 AND target = $2")
                .bind(run.0)
                .bind(target)
                .execute(&mut *tx)
                .await?;
        }
        let names = [result.host.as_deref().unwrap_or(""), server_name.as_str()];
        if let Some(asset_id) = matcher.best_match(&address, &names) {
            sqlx::query("INSERT INTO endpoint_assets (endpoint_id, asset_id) VALUES ($1, $2) ON CONFLICT (endpoint_id) DO NOTHING")
                .bind(endpoint_id)
                .bind(asset_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;

        if matches!(outcome, RecordOutcome::Inserted { .. }) {
            self.sync_endpoint_alerts(endpoint_id, now_ms()).await?;
        }
        Ok(outcome)
    }

    /// Stores a certificate known from elsewhere (an issuer loaded for revocation checks), with its
    /// DER. An existing row keeps its fields and gains the DER if it had none.
    pub async fn store_certificate(&self, certificate: &CertificateRecord, der: Option<&[u8]>) -> Result<()> {
        let mut tx = self.begin().await?;
        insert_certificate(&mut tx, certificate, der, now_ms()).await?;
        tx.commit().await?;
        Ok(())
    }
}

async fn insert_certificate(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    certificate: &CertificateRecord,
    der: Option<&[u8]>,
    now: i64,
) -> Result<()> {
    let json = |list: &Vec<String>| serde_json::to_string(list).unwrap_or_else(|_| "[]".into());
    sqlx::query(
        "INSERT INTO certificates (cert_sha256, spki_sha256, subject, issuer, serial, sans, not_before_unix, not_after_unix, key_type, \
           key_bits, signature_algorithm, self_signed, crl_urls, ocsp_urls, ca_issuer_urls, der, first_seen_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) \
         ON CONFLICT (cert_sha256) DO NOTHING",
    )
    .bind(certificate.cert_sha256.clone())
    .bind(certificate.spki_sha256.clone())
    .bind(certificate.subject.clone())
    .bind(certificate.issuer.clone())
    .bind(certificate.serial.clone())
    .bind(json(&certificate.sans))
    .bind(certificate.not_before_unix)
    .bind(certificate.not_after_unix)
    .bind(certificate.key_type.clone())
    .bind(certificate.key_bits.map(i64::from))
    .bind(certificate.signature_algorithm.clone())
    .bind(i64::from(certificate.self_signed))
    .bind(json(&certificate.crl_urls))
    .bind(json(&certificate.ocsp_urls))
    .bind(json(&certificate.ca_issuer_urls))
    .bind(der.map(<[u8]>::to_vec))
    .bind(now)
    .execute(&mut **tx)
    .await?;
    // An existing row gains the DER if it had none.
    if let Some(der) = der {
        sqlx::query("UPDATE certificates SET der = $1 WHERE cert_sha256 = $2 AND der IS NULL")
            .bind(der.to_vec())
            .bind(certificate.cert_sha256.clone())
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}
