//! Heartbleed attempts: heartbeats the honeypot got, and findings of packet captures. Both are read
//! from their commands' JSON-lines contracts (README, "Watching attackers"; the pcap crate's
//! `Finding`), so the store depends on neither.
//!
//! Capture findings are evidence about the endpoints they hit: they are linked to the inventory
//! endpoint at the victim's address and port, and feed each endpoint's [`AttackEvidence`]. Honeypot
//! attempts are not: a honeypot serves canary bytes, so an attack on it exposes nothing; they make
//! the attackers list. Re-importing a capture adds nothing (see [`CaptureImport`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Read;

use bleedwatch_assess::Exposure;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;

use crate::clients::split_socket_address;
use crate::label::endpoint_label;
use crate::row::get;
use crate::run_id::RunId;
use crate::time::rfc3339_ms;
use crate::{now_ms, Result, Store, StoreError};

/// Where an attempt was seen.
pub const ORIGIN_HONEYPOT: &str = "honeypot";
pub const ORIGIN_PCAP: &str = "pcap";

/// Severities, weakest first (the pcap crate's scale; honeypot attempts are mapped onto it).
pub const SEVERITIES: &[&str] = &["info", "suspicious", "probe", "attack", "success"];

/// The capture a finding came from, and which of its findings this is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptureRef {
    /// The capture as named on the command line.
    pub file: String,
    /// SHA-256 of the capture's bytes, hex.
    pub sha256: String,
    /// Connection number within the capture.
    pub connection: u64,
    /// Findings of the same connection, time and kind before this one (several heartbeats in one
    /// packet): keeps them apart while staying the same on every import.
    pub occurrence: u32,
}

/// One Heartbleed attempt to record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttackInput {
    /// The honeypot or pcap run that recorded it.
    pub run: Option<RunId>,
    /// [`ORIGIN_HONEYPOT`] or [`ORIGIN_PCAP`].
    pub origin: String,
    /// When the heartbeat was seen, Unix microseconds (capture time for captures).
    pub at_us: i64,
    pub source_address: String,
    pub source_port: u16,
    pub target_address: String,
    pub target_port: u16,
    /// `tcp` or `udp`.
    pub transport: String,
    /// Honeypot: `over-read`, `memory-safe-probe`, `honest`. Captures: the finding's kind
    /// (`heartbeat_overflow`, `encrypted_heartbeat_success`, ...).
    pub kind: String,
    /// One of [`SEVERITIES`].
    pub severity: String,
    /// The Zeek notice the finding corresponds to (`Heartbleed::SSL_Heartbeat_Attack`, ...).
    pub notice: Option<String>,
    pub tls_version: Option<String>,
    pub encrypted: bool,
    pub record_length: Option<u64>,
    /// The heartbeat's claimed payload length.
    pub claimed_length: Option<u64>,
    /// Payload bytes it really carried.
    pub payload_length: Option<u64>,
    /// The target answered an over-reading or invalid request: it was vulnerable then.
    pub succeeded: bool,
    pub leaked_bytes: Option<u64>,
    pub capture: Option<CaptureRef>,
    /// The producer's JSON line (lengths and counts only, never payload bytes).
    pub details: serde_json::Value,
}

impl AttackInput {
    /// The key that makes recording idempotent: captures only (a honeypot attempt is a new event
    /// each time).
    pub fn evidence_key(&self) -> Option<String> {
        self.capture
            .as_ref()
            .map(|c| format!("{}/{}/{}/{}/{}", c.sha256, c.connection, self.at_us, self.kind, c.occurrence))
    }

    /// Whether this attempt is evidence about the inventory endpoint it hits.
    pub fn links_endpoints(&self) -> bool {
        self.origin == ORIGIN_PCAP
    }

    /// Reads one JSON line of `bleedwatch honeypot` (`source`, `listener`, `time`, `tls_version`,
    /// `kind`, `record_length`, `claimed_length`, `payload_sent`, `overread`, `encrypted`, ...).
    /// Severity: `over-read` is an attack, `memory-safe-probe` a probe, `honest` info. Never
    /// `succeeded`: the honeypot answers with canary bytes only.
    pub fn from_honeypot_attempt(line: &serde_json::Value, run: Option<RunId>) -> Result<AttackInput> {
        let attempt: HoneypotLine = serde_json::from_value(line.clone()).map_err(|e| StoreError::BadResult(e.to_string()))?;
        let (source_address, source_port) = split_socket_address(&attempt.source, "source")?;
        let (target_address, target_port) = split_socket_address(&attempt.listener, "listener")?;
        let severity = match attempt.kind.as_str() {
            "over-read" => "attack",
            "memory-safe-probe" => "probe",
            "honest" => "info",
            other => return Err(StoreError::BadResult(format!("honeypot attempt kind {other:?}"))),
        };
        Ok(AttackInput {
            run,
            origin: ORIGIN_HONEYPOT.to_owned(),
            at_us: parse_time_us(&attempt.time)?,
            source_address,
            source_port,
            target_address,
            target_port,
            transport: "tcp".to_owned(),
            kind: attempt.kind,
            severity: severity.to_owned(),
            notice: None,
            tls_version: attempt.tls_version,
            encrypted: attempt.encrypted,
            record_length: attempt.record_length,
            claimed_length: attempt.claimed_length,
            payload_length: attempt.payload_sent,
            succeeded: false,
            leaked_bytes: None,
            capture: None,
            details: line.clone(),
        })
    }
}

#[derive(Deserialize)]
struct HoneypotLine {
    source: String,
    listener: String,
    time: String,
    #[serde(default)]
    tls_version: Option<String>,
    kind: String,
    #[serde(default)]
    record_length: Option<u64>,
    #[serde(default)]
    claimed_length: Option<u64>,
    #[serde(default)]
    payload_sent: Option<u64>,
    #[serde(default)]
    encrypted: bool,
}

/// The fields of a pcap finding (JSON line of `bleedwatch pcap`) the inventory uses.
#[derive(Deserialize)]
struct FindingLine {
    ts: f64,
    connection: u64,
    transport: String,
    src_ip: String,
    src_port: u16,
    dst_ip: String,
    dst_port: u16,
    direction: String,
    kind: String,
    severity: String,
    #[serde(default)]
    notice: Option<String>,
    #[serde(default)]
    encrypted: bool,
    #[serde(default)]
    tls_version: Option<String>,
    #[serde(default)]
    record_length: Option<u64>,
    #[serde(default)]
    payload_length: Option<u64>,
    #[serde(default)]
    payload_present: Option<u64>,
    #[serde(default)]
    leaked_bytes: Option<u64>,
}

/// Turns the findings of one capture into attempts to record, numbering repeated findings the same
/// way on every import so that importing the capture again (under any name) adds nothing.
#[derive(Debug, Clone)]
pub struct CaptureImport {
    file: String,
    sha256: String,
    run: Option<RunId>,
    seen: HashMap<(u64, i64, String), u32>,
}

impl CaptureImport {
    /// `sha256`: of the capture's bytes ([`Sha256Reader`], [`sha256_hex`]).
    pub fn new(file: &str, sha256: &str, run: Option<RunId>) -> CaptureImport {
        CaptureImport { file: file.to_owned(), sha256: sha256.to_ascii_lowercase(), run, seen: HashMap::new() }
    }

    /// The attempt a finding records, or `None` for findings that are context, not an attempt
    /// (severity `info`: a benign heartbeat Zeek would notice).
    pub fn attack(&mut self, finding: &serde_json::Value) -> Result<Option<AttackInput>> {
        let f: FindingLine = serde_json::from_value(finding.clone()).map_err(|e| StoreError::BadResult(e.to_string()))?;
        if !SEVERITIES.contains(&f.severity.as_str()) {
            return Err(StoreError::BadResult(format!("finding severity {:?}", f.severity)));
        }
        if f.severity == "info" {
            return Ok(None);
        }
        if !f.ts.is_finite() || f.ts < 0.0 {
            return Err(StoreError::BadResult(format!("finding time {}", f.ts)));
        }
        // Microseconds: captures are that precise, and f64 holds them exactly for any real date.
        let at_us = (f.ts * 1_000_000.0).round() as i64;
        let occurrence = self.seen.entry((f.connection, at_us, f.kind.clone())).or_insert(0);
        let this_occurrence = *occurrence;
        *occurrence += 1;
        let (source, target) = match f.direction.as_str() {
            "server-to-client" => ((f.dst_ip, f.dst_port), (f.src_ip, f.src_port)),
            _ => ((f.src_ip, f.src_port), (f.dst_ip, f.dst_port)),
        };
        Ok(Some(AttackInput {
            run: self.run,
            origin: ORIGIN_PCAP.to_owned(),
            at_us,
            source_address: source.0,
            source_port: source.1,
            target_address: target.0,
            target_port: target.1,
            transport: f.transport,
            succeeded: f.severity == "success",
            severity: f.severity,
            kind: f.kind,
            notice: f.notice,
            tls_version: f.tls_version,
            encrypted: f.encrypted,
            record_length: f.record_length,
            claimed_length: f.payload_length,
            payload_length: f.payload_present,
            leaked_bytes: f.leaked_bytes,
            capture: Some(CaptureRef {
                file: self.file.clone(),
                sha256: self.sha256.clone(),
                connection: f.connection,
                occurrence: this_occurrence,
            }),
            details: finding.clone(),
        }))
    }
}

/// A reader that hashes (SHA-256) everything read through it: a capture is analysed and hashed in
/// one pass, standard input included.
#[derive(Debug)]
pub struct Sha256Reader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R> Sha256Reader<R> {
    pub fn new(inner: R) -> Sha256Reader<R> {
        Sha256Reader { inner, hasher: Sha256::new() }
    }

    /// The hash of everything read so far, hex.
    pub fn hex_digest(&self) -> String {
        hex::encode(self.hasher.clone().finalize())
    }
}

impl<R: Read> Read for Sha256Reader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(buf.get(..n).unwrap_or(buf));
        Ok(n)
    }
}

/// SHA-256 of everything `reader` yields, hex.
pub fn sha256_hex(reader: impl Read) -> std::io::Result<String> {
    let mut hashing = Sha256Reader::new(reader);
    std::io::copy(&mut hashing, &mut std::io::sink())?;
    Ok(hashing.hex_digest())
}

/// What recording an attempt did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttackOutcome {
    Inserted { attack_id: i64, endpoint_id: Option<i64> },
    /// The same capture finding was imported before: the first row is kept.
    AlreadyRecorded { attack_id: i64, endpoint_id: Option<i64> },
}

impl AttackOutcome {
    pub fn attack_id(self) -> i64 {
        match self {
            AttackOutcome::Inserted { attack_id, .. } | AttackOutcome::AlreadyRecorded { attack_id, .. } => attack_id,
        }
    }

    pub fn endpoint_id(self) -> Option<i64> {
        match self {
            AttackOutcome::Inserted { endpoint_id, .. } | AttackOutcome::AlreadyRecorded { endpoint_id, .. } => endpoint_id,
        }
    }

    pub fn inserted(self) -> bool {
        matches!(self, AttackOutcome::Inserted { .. })
    }
}

/// A recorded attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttackRow {
    pub id: i64,
    pub run: Option<RunId>,
    pub origin: String,
    pub observed_at_ms: i64,
    /// The same instant, RFC 3339.
    pub observed_at: String,
    pub source_address: String,
    pub source_port: u16,
    pub target_address: String,
    pub target_port: u16,
    pub transport: String,
    pub kind: String,
    pub severity: String,
    pub notice: Option<String>,
    pub tls_version: Option<String>,
    pub encrypted: bool,
    pub record_length: Option<i64>,
    pub claimed_length: Option<i64>,
    pub payload_length: Option<i64>,
    pub succeeded: bool,
    pub leaked_bytes: Option<i64>,
    pub file: Option<String>,
    pub file_sha256: Option<String>,
    pub connection: Option<i64>,
    /// The inventory endpoint at the target (captures only), once known.
    pub endpoint_id: Option<i64>,
    pub recorded_at_ms: i64,
}

/// Which attempts to list (and which `attackers` groups).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttackFilter {
    pub origin: Option<String>,
    pub source_address: Option<String>,
    pub target_address: Option<String>,
    pub endpoint_id: Option<i64>,
    pub file_sha256: Option<String>,
    pub since_ms: Option<i64>,
}

/// One source address and what it tried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttackerRow {
    pub source_address: String,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    pub first_seen: String,
    pub last_seen: String,
    /// Recorded attempts: one per heartbeat the honeypot got, one per capture finding.
    pub attempts: i64,
    /// Attempts that over-read (severity `attack`).
    pub over_reads: i64,
    /// Memory-safe probes (severity `probe`).
    pub probes: i64,
    /// Attempts the target answered (captures: it was vulnerable, memory may have leaked).
    pub successes: i64,
    /// `honeypot`, `pcap`.
    pub origins: Vec<String>,
    /// Targets as `address:port/transport`.
    pub targets: Vec<String>,
}

/// What the attack evidence says about one endpoint: the exposure picture. An endpoint attacked
/// while it was vulnerable is the most urgent: its memory (keys, passwords) may be in someone's
/// hands, not merely reachable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttackEvidence {
    /// Capture findings (attempts, not context) against the endpoint's address and port.
    pub attacks: u64,
    /// Those the endpoint answered: proof it was vulnerable at that moment.
    pub successes: u64,
    pub first_ms: Option<i64>,
    pub last_ms: Option<i64>,
    /// Attacks that succeeded, or came within the exposure window: at or after the first vulnerable
    /// observation and before the first fixed one (no end while still vulnerable). Attacks before
    /// the first scan that did not succeed prove nothing either way and are not counted.
    pub while_vulnerable: u64,
}

impl AttackEvidence {
    /// From the attacks' times (Unix ms) and success, and the endpoint's exposure window.
    pub fn build(attacks: &[(i64, bool)], exposure: &Exposure) -> AttackEvidence {
        let in_window = |at: i64| {
            exposure.first_vulnerable_ms.is_some_and(|from| from <= at) && exposure.first_fixed_ms.is_none_or(|until| at < until)
        };
        let mut evidence = AttackEvidence::default();
        for &(at, succeeded) in attacks {
            evidence.attacks += 1;
            evidence.successes += u64::from(succeeded);
            evidence.while_vulnerable += u64::from(succeeded || in_window(at));
            evidence.first_ms = Some(evidence.first_ms.map_or(at, |first| first.min(at)));
            evidence.last_ms = Some(evidence.last_ms.map_or(at, |last| last.max(at)));
        }
        evidence
    }

    pub fn attacked(&self) -> bool {
        self.attacks > 0
    }

    pub fn attacked_while_vulnerable(&self) -> bool {
        self.while_vulnerable > 0
    }
}

/// Microseconds since the epoch from RFC 3339.
fn parse_time_us(text: &str) -> Result<i64> {
    let time = humantime::parse_rfc3339_weak(text).map_err(|e| StoreError::BadResult(format!("time {text:?}: {e}")))?;
    let since = time
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| StoreError::BadResult(format!("time {text:?} is before 1970")))?;
    i64::try_from(since.as_micros()).map_err(|_| StoreError::BadResult(format!("time {text:?} is out of range")))
}

fn normalized_ip(text: &str, what: &str) -> Result<String> {
    text.parse::<std::net::IpAddr>()
        .map(|ip| ip.to_string())
        .map_err(|_| StoreError::BadResult(format!("{what} {text:?} is not an IP address")))
}

fn to_i64(value: Option<u64>) -> Option<i64> {
    value.map(|v| i64::try_from(v).unwrap_or(i64::MAX))
}

/// An attempt checked and normalised for insertion.
struct Prepared<'a> {
    input: &'a AttackInput,
    source_address: String,
    target_address: String,
    key: Option<String>,
    details: String,
}

fn prepare(input: &AttackInput) -> Result<Prepared<'_>> {
    if input.origin != ORIGIN_HONEYPOT && input.origin != ORIGIN_PCAP {
        return Err(StoreError::BadResult(format!("attack origin {:?}", input.origin)));
    }
    if !SEVERITIES.contains(&input.severity.as_str()) {
        return Err(StoreError::BadResult(format!("attack severity {:?}", input.severity)));
    }
    if input.kind.is_empty() || !matches!(input.transport.as_str(), "tcp" | "udp") {
        return Err(StoreError::BadResult(format!("attack kind {:?} over {:?}", input.kind, input.transport)));
    }
    Ok(Prepared {
        input,
        source_address: normalized_ip(&input.source_address, "source address")?,
        target_address: normalized_ip(&input.target_address, "target address")?,
        key: input.evidence_key(),
        details: serde_json::to_string(&input.details).map_err(|e| StoreError::BadResult(e.to_string()))?,
    })
}

const ATTACK_COLUMNS: &str = "id, scan_run_id, origin, observed_at_ms, source_address, source_port, target_address, target_port, \
     transport, kind, severity, notice, tls_version, encrypted, record_length, claimed_length, payload_length, succeeded, \
     leaked_bytes, file, file_sha256, connection, endpoint_id, recorded_at_ms";

fn port_from(row: &AnyRow, column: &str) -> Result<u16> {
    let port: i64 = get(row, column)?;
    u16::try_from(port).map_err(|_| StoreError::Corrupt(format!("{column} {port}")))
}

fn attack_from_row(row: &AnyRow) -> Result<AttackRow> {
    let observed_at_ms: i64 = get(row, "observed_at_ms")?;
    Ok(AttackRow {
        id: get(row, "id")?,
        run: get::<Option<i64>>(row, "scan_run_id")?.map(RunId),
        origin: get(row, "origin")?,
        observed_at_ms,
        observed_at: rfc3339_ms(observed_at_ms),
        source_address: get(row, "source_address")?,
        source_port: port_from(row, "source_port")?,
        target_address: get(row, "target_address")?,
        target_port: port_from(row, "target_port")?,
        transport: get(row, "transport")?,
        kind: get(row, "kind")?,
        severity: get(row, "severity")?,
        notice: get(row, "notice")?,
        tls_version: get(row, "tls_version")?,
        encrypted: get::<i64>(row, "encrypted")? != 0,
        record_length: get(row, "record_length")?,
        claimed_length: get(row, "claimed_length")?,
        payload_length: get(row, "payload_length")?,
        succeeded: get::<i64>(row, "succeeded")? != 0,
        leaked_bytes: get(row, "leaked_bytes")?,
        file: get(row, "file")?,
        file_sha256: get(row, "file_sha256")?,
        connection: get(row, "connection")?,
        endpoint_id: get(row, "endpoint_id")?,
        recorded_at_ms: get(row, "recorded_at_ms")?,
    })
}

/// A filter as SQL: ` WHERE ...` with `$n` placeholders, and the values in order.
enum Param {
    Text(String),
    Int(i64),
}

fn where_clause(filter: &AttackFilter) -> (String, Vec<Param>) {
    let mut clauses = Vec::new();
    let mut params = Vec::new();
    let mut add = |column: &str, op: &str, param: Param| {
        params.push(param);
        clauses.push(format!("{column} {op} ${}", params.len()));
    };
    if let Some(origin) = &filter.origin {
        add("origin", "=", Param::Text(origin.clone()));
    }
    if let Some(source) = &filter.source_address {
        add("source_address", "=", Param::Text(normalized_ip(source, "").unwrap_or_else(|_| source.clone())));
    }
    if let Some(target) = &filter.target_address {
        add("target_address", "=", Param::Text(normalized_ip(target, "").unwrap_or_else(|_| target.clone())));
    }
    if let Some(endpoint) = filter.endpoint_id {
        add("endpoint_id", "=", Param::Int(endpoint));
    }
    if let Some(sha) = &filter.file_sha256 {
        add("file_sha256", "=", Param::Text(sha.to_ascii_lowercase()));
    }
    if let Some(since) = filter.since_ms {
        add("observed_at_ms", ">=", Param::Int(since));
    }
    let sql = if clauses.is_empty() { String::new() } else { format!(" WHERE {}", clauses.join(" AND ")) };
    (sql, params)
}

fn bind_all<'q>(
    mut query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    params: Vec<Param>,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    for param in params {
        query = match param {
            Param::Text(text) => query.bind(text),
            Param::Int(value) => query.bind(value),
        };
    }
    query
}

/// Attacks that are evidence about endpoints: capture findings that are attempts.
const EVIDENCE_SELECT: &str = "SELECT e.id AS endpoint_id, a.observed_at_ms, a.succeeded FROM attacks a \
     JOIN endpoints e ON e.address = a.target_address AND e.port = a.target_port AND e.transport = a.transport \
     WHERE a.origin = 'pcap' AND a.severity <> 'info'";

impl Store {
    /// Records one attempt. A capture finding recorded before (same capture bytes, connection,
    /// time, kind and occurrence) is kept once.
    pub async fn record_attack(&self, attack: &AttackInput) -> Result<AttackOutcome> {
        let outcomes = self.record_attacks(std::slice::from_ref(attack)).await?;
        outcomes.into_iter().next().ok_or_else(|| StoreError::Corrupt("no outcome for a recorded attack".into()))
    }

    /// Records attempts in one transaction (a capture's findings in batches), each linked to the
    /// inventory endpoint at its target when it is capture evidence. Nothing is written if one is
    /// invalid.
    pub async fn record_attacks(&self, attacks: &[AttackInput]) -> Result<Vec<AttackOutcome>> {
        let prepared = attacks.iter().map(prepare).collect::<Result<Vec<_>>>()?;
        let recorded_at = now_ms();
        let mut outcomes = Vec::with_capacity(prepared.len());
        let mut tx = self.begin().await?;
        for item in &prepared {
            let attack = item.input;
            let endpoint_id: Option<i64> = if attack.links_endpoints() {
                let row = sqlx::query("SELECT MIN(id) AS id FROM endpoints WHERE address = $1 AND port = $2 AND transport = $3")
                    .bind(item.target_address.clone())
                    .bind(i64::from(attack.target_port))
                    .bind(attack.transport.clone())
                    .fetch_one(&mut *tx)
                    .await?;
                get(&row, "id")?
            } else {
                None
            };
            let capture = attack.capture.as_ref();
            let inserted = sqlx::query(
                "INSERT INTO attacks (scan_run_id, origin, observed_at_ms, source_address, source_port, target_address, target_port, \
                   transport, kind, severity, notice, tls_version, encrypted, record_length, claimed_length, payload_length, succeeded, \
                   leaked_bytes, file, file_sha256, connection, evidence_key, endpoint_id, details, recorded_at_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25) \
                 ON CONFLICT (evidence_key) DO NOTHING RETURNING id",
            )
            .bind(attack.run.map(|r| r.0))
            .bind(attack.origin.clone())
            .bind(attack.at_us.div_euclid(1000))
            .bind(item.source_address.clone())
            .bind(i64::from(attack.source_port))
            .bind(item.target_address.clone())
            .bind(i64::from(attack.target_port))
            .bind(attack.transport.clone())
            .bind(attack.kind.clone())
            .bind(attack.severity.clone())
            .bind(attack.notice.clone())
            .bind(attack.tls_version.clone())
            .bind(i64::from(attack.encrypted))
            .bind(to_i64(attack.record_length))
            .bind(to_i64(attack.claimed_length))
            .bind(to_i64(attack.payload_length))
            .bind(i64::from(attack.succeeded))
            .bind(to_i64(attack.leaked_bytes))
            .bind(capture.map(|c| c.file.clone()))
            .bind(capture.map(|c| c.sha256.clone()))
            .bind(capture.map(|c| i64::try_from(c.connection).unwrap_or(i64::MAX)))
            .bind(item.key.clone())
            .bind(endpoint_id)
            .bind(item.details.clone())
            .bind(recorded_at)
            .fetch_optional(&mut *tx)
            .await?;
            let outcome = match inserted {
                Some(row) => AttackOutcome::Inserted { attack_id: get(&row, "id")?, endpoint_id },
                None => {
                    let row = sqlx::query("SELECT id, endpoint_id FROM attacks WHERE evidence_key = $1")
                        .bind(item.key.clone())
                        .fetch_one(&mut *tx)
                        .await?;
                    AttackOutcome::AlreadyRecorded { attack_id: get(&row, "id")?, endpoint_id: get(&row, "endpoint_id")? }
                }
            };
            outcomes.push(outcome);
        }
        tx.commit().await?;
        Ok(outcomes)
    }

    /// Recorded attempts, oldest first.
    pub async fn attacks(&self, filter: &AttackFilter) -> Result<Vec<AttackRow>> {
        let (clause, params) = where_clause(filter);
        let sql = format!("SELECT {ATTACK_COLUMNS} FROM attacks{clause} ORDER BY observed_at_ms, id");
        let rows = bind_all(sqlx::query(&sql), params).fetch_all(&self.pool).await?;
        rows.iter().map(attack_from_row).collect()
    }

    /// The producer's JSON line an attempt was recorded from.
    pub async fn attack_details(&self, attack_id: i64) -> Result<serde_json::Value> {
        let row = sqlx::query("SELECT details FROM attacks WHERE id = $1")
            .bind(attack_id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("no attack {attack_id}")))?;
        let text: String = get(&row, "details")?;
        serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("details: {e}")))
    }

    /// Attempts grouped by source address: most successes first, then most attempts, then the
    /// most recent.
    pub async fn attackers(&self, filter: &AttackFilter) -> Result<Vec<AttackerRow>> {
        let (clause, params) = where_clause(filter);
        let sql = format!(
            "SELECT source_address, MIN(observed_at_ms) AS first_ms, MAX(observed_at_ms) AS last_ms, COUNT(*) AS attempts, \
               COUNT(CASE WHEN severity = 'attack' THEN 1 END) AS over_reads, COUNT(CASE WHEN severity = 'probe' THEN 1 END) AS probes, \
               COUNT(CASE WHEN succeeded = 1 THEN 1 END) AS successes \
             FROM attacks{clause} GROUP BY source_address"
        );
        let rows = bind_all(sqlx::query(&sql), params).fetch_all(&self.pool).await?;
        let (clause, params) = where_clause(filter);
        let sql = format!("SELECT DISTINCT source_address, origin, target_address, target_port, transport FROM attacks{clause}");
        let links = bind_all(sqlx::query(&sql), params).fetch_all(&self.pool).await?;
        let mut origins: HashMap<String, BTreeSet<String>> = HashMap::new();
        let mut targets: HashMap<String, BTreeSet<(String, u16, String)>> = HashMap::new();
        for row in &links {
            let source: String = get(row, "source_address")?;
            origins.entry(source.clone()).or_default().insert(get(row, "origin")?);
            targets.entry(source).or_default().insert((get(row, "target_address")?, port_from(row, "target_port")?, get(row, "transport")?));
        }
        let mut attackers = Vec::with_capacity(rows.len());
        for row in &rows {
            let source_address: String = get(row, "source_address")?;
            let first_seen_ms: i64 = get(row, "first_ms")?;
            let last_seen_ms: i64 = get(row, "last_ms")?;
            attackers.push(AttackerRow {
                first_seen: rfc3339_ms(first_seen_ms),
                last_seen: rfc3339_ms(last_seen_ms),
                first_seen_ms,
                last_seen_ms,
                attempts: get(row, "attempts")?,
                over_reads: get(row, "over_reads")?,
                probes: get(row, "probes")?,
                successes: get(row, "successes")?,
                origins: origins.remove(&source_address).unwrap_or_default().into_iter().collect(),
                targets: targets
                    .remove(&source_address)
                    .unwrap_or_default()
                    .iter()
                    .map(|(address, port, transport)| endpoint_label(address, *port, transport, ""))
                    .collect(),
                source_address,
            });
        }
        attackers.sort_by(|a, b| {
            (b.successes, b.attempts, b.last_seen_ms).cmp(&(a.successes, a.attempts, a.last_seen_ms)).then_with(|| a.source_address.cmp(&b.source_address))
        });
        Ok(attackers)
    }

    /// Attack times and success per endpoint, for every endpoint some capture finding hits.
    pub(crate) async fn attack_times_by_endpoint(&self) -> Result<BTreeMap<i64, Vec<(i64, bool)>>> {
        let rows = sqlx::query(EVIDENCE_SELECT).fetch_all(&self.pool).await?;
        let mut by_endpoint: BTreeMap<i64, Vec<(i64, bool)>> = BTreeMap::new();
        for row in &rows {
            by_endpoint
                .entry(get(row, "endpoint_id")?)
                .or_default()
                .push((get(row, "observed_at_ms")?, get::<i64>(row, "succeeded")? != 0));
        }
        Ok(by_endpoint)
    }

    /// Attack times and success for one endpoint.
    pub(crate) async fn attack_times(&self, endpoint_id: i64) -> Result<Vec<(i64, bool)>> {
        let sql = format!("{EVIDENCE_SELECT} AND e.id = $1");
        let rows = sqlx::query(&sql).bind(endpoint_id).fetch_all(&self.pool).await?;
        rows.iter().map(|row| Ok((get(row, "observed_at_ms")?, get::<i64>(row, "succeeded")? != 0))).collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn finding(kind: &str, severity: &str, ts: f64) -> serde_json::Value {
        json!({"file": "x.pcap", "time": "2014-04-08T16:57:00.863714Z", "ts": ts, "connection": 1, "transport": "tcp",
               "src_ip": "173.203.79.216", "src_port": 41459, "dst_ip": "107.170.241.107", "dst_port": 443,
               "attacker": "173.203.79.216:41459", "victim": "107.170.241.107:443", "direction": "client-to-server",
               "kind": kind, "severity": severity, "notice": "Heartbleed::SSL_Heartbeat_Attack", "notice_msg": "m",
               "notice_n": null, "encrypted": false, "tls_version": "tls1.2", "cipher": null, "record_length": 16368,
               "payload_length": 16365, "payload_present": 16365, "request_record_length": null, "response_records": null,
               "response_bytes": null, "leaked_bytes": null})
    }

    #[test]
    fn capture_findings_become_keyed_attempts() {
        let mut import = CaptureImport::new("x.pcap", "ABCD", Some(RunId(2)));
        let first = import.attack(&finding("heartbeat_overflow", "attack", 1_396_976_220.863_714)).unwrap().unwrap();
        assert_eq!(first.at_us, 1_396_976_220_863_714);
        assert_eq!((first.source_address.as_str(), first.target_address.as_str(), first.target_port), ("173.203.79.216", "107.170.241.107", 443));
        assert_eq!(first.claimed_length, Some(16365));
        assert!(!first.succeeded && first.links_endpoints());
        assert_eq!(first.evidence_key().unwrap(), "abcd/1/1396976220863714/heartbeat_overflow/0");
        // The same finding again in the same capture (two heartbeats in one packet) is another one.
        let second = import.attack(&finding("heartbeat_overflow", "attack", 1_396_976_220.863_714)).unwrap().unwrap();
        assert_eq!(second.evidence_key().unwrap(), "abcd/1/1396976220863714/heartbeat_overflow/1");
        // A fresh import numbers them the same way.
        let again = CaptureImport::new("renamed.pcap", "abcd", None).attack(&finding("heartbeat_overflow", "attack", 1_396_976_220.863_714)).unwrap().unwrap();
        assert_eq!(again.evidence_key(), first.evidence_key());
        let success = import.attack(&finding("heartbeat_response_to_invalid", "success", 1_396_976_220.918_017)).unwrap().unwrap();
        assert!(success.succeeded);
        assert!(import.attack(&finding("heartbeat_response", "info", 1.0)).unwrap().is_none(), "context, not an attempt");
        assert!(import.attack(&finding("heartbeat_response", "loud", 1.0)).is_err());
        let mut reversed = finding("heartbeat_response_leak", "success", 2.0);
        reversed["direction"] = json!("server-to-client");
        let leak = import.attack(&reversed).unwrap().unwrap();
        assert_eq!((leak.source_address.as_str(), leak.target_address.as_str(), leak.target_port), ("107.170.241.107", "173.203.79.216", 41459));
    }

    #[test]
    fn honeypot_attempts_are_never_evidence() {
        let line = json!({"source": "[::1]:40000", "listener": "127.0.0.1:4433", "time": "2026-11-28T18:39:14.250Z",
                          "tls_version": "tls1.2", "kind": "over-read", "record_length": 35, "claimed_length": 32,
                          "payload_sent": 16, "padding": 16, "overread": 16, "answered": true, "encrypted": false});
        let attempt = AttackInput::from_honeypot_attempt(&line, None).unwrap();
        assert_eq!(attempt.source_address, "::1");
        assert_eq!(attempt.severity, "attack");
        assert_eq!(attempt.at_us, 1_795_891_154_250_000);
        assert!(!attempt.succeeded && !attempt.links_endpoints());
        assert_eq!(attempt.evidence_key(), None);
        let mut bad = line.clone();
        bad["kind"] = json!("mystery");
        assert!(AttackInput::from_honeypot_attempt(&bad, None).is_err());
        let mut bad = line;
        bad["source"] = json!("nowhere");
        assert!(AttackInput::from_honeypot_attempt(&bad, None).is_err());
    }

    #[test]
    fn exposure_window_decides_urgency() {
        let window = Exposure { first_vulnerable_ms: Some(100), last_vulnerable_ms: Some(150), first_fixed_ms: Some(200) };
        let evidence = AttackEvidence::build(&[(50, false), (100, false), (199, false), (200, false), (300, true)], &window);
        assert_eq!(evidence.attacks, 5);
        assert_eq!(evidence.successes, 1);
        assert_eq!(evidence.while_vulnerable, 3, "100 and 199 in the window, 300 succeeded");
        assert_eq!((evidence.first_ms, evidence.last_ms), (Some(50), Some(300)));
        let still_open = Exposure { first_vulnerable_ms: Some(100), last_vulnerable_ms: Some(100), first_fixed_ms: None };
        assert_eq!(AttackEvidence::build(&[(10_000, false)], &still_open).while_vulnerable, 1);
        let never = Exposure::default();
        let evidence = AttackEvidence::build(&[(10, false)], &never);
        assert!(evidence.attacked() && !evidence.attacked_while_vulnerable());
        assert!(!AttackEvidence::build(&[], &window).attacked());
    }

    #[test]
    fn hashing_reader_sees_every_byte() {
        let data = b"abc".repeat(10_000);
        let mut reader = Sha256Reader::new(&data[..]);
        let mut sink = Vec::new();
        reader.read_to_end(&mut sink).unwrap();
        assert_eq!(reader.hex_digest(), sha256_hex(&data[..]).unwrap());
        assert_eq!(sha256_hex(&b"abc"[..]).unwrap(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
