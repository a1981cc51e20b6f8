//! TLS clients tested by `bleedwatch client-test`: one row per connecting client, read from the
//! command's JSON-lines contract (README, "Testing clients") so the store does not depend on the
//! probe.

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;

use crate::row::get;
use crate::run_id::RunId;
use crate::time::rfc3339_ms;
use crate::{Result, Store, StoreError};

/// Verdicts a client test can reach.
pub const CLIENT_VERDICTS: &[&str] = &["vulnerable", "not-vulnerable", "no-heartbeat", "inconclusive"];

/// One client test to record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientTestInput {
    /// The client-test run that saw the client, if one was started.
    pub run: Option<RunId>,
    /// `address:port` the client connected to.
    pub listener: String,
    pub tested_at_ms: i64,
    pub client_address: String,
    pub client_port: u16,
    /// `tls`, or the STARTTLS dialect the client spoke first.
    pub service: String,
    /// The version the test spoke (the client's offer, capped at TLS 1.2).
    pub tls_version: Option<String>,
    /// The version of the client's ClientHello.
    pub offered_version: Option<String>,
    /// The client's heartbeat extension mode; `None`: not offered.
    pub heartbeat_mode: Option<String>,
    pub server_name: Option<String>,
    pub verdict: String,
    pub reason: Option<String>,
    /// `--prove` only: how many bytes of the client's memory came back, and their SHA-256.
    pub leaked_bytes: Option<u64>,
    pub leak_sha256: Option<String>,
    /// The JSON line as written by the command.
    pub result_json: serde_json::Value,
}

#[derive(Deserialize)]
struct ClientHelloLine {
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    heartbeat_mode: Option<String>,
    #[serde(default)]
    server_name: Option<String>,
}

#[derive(Deserialize)]
struct LeakLine {
    leaked_bytes: u64,
    #[serde(default)]
    sha256: Option<String>,
}

/// The fields of a client-test JSON line the inventory uses.
#[derive(Deserialize)]
struct ClientTestLine {
    client: String,
    #[serde(default = "default_service")]
    service: String,
    time: String,
    #[serde(default)]
    tls_version: Option<String>,
    client_hello: ClientHelloLine,
    verdict: String,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    leak: Option<LeakLine>,
}

fn default_service() -> String {
    "tls".to_owned()
}

/// `host:port` (`[v6]:port`) → (address, port), the address normalised.
pub(crate) fn split_socket_address(text: &str, what: &str) -> Result<(String, u16)> {
    let address: std::net::SocketAddr =
        text.parse().map_err(|_| StoreError::BadResult(format!("{what} {text:?} is not ADDRESS:PORT")))?;
    Ok((address.ip().to_string(), address.port()))
}

/// RFC 3339 → Unix milliseconds.
pub(crate) fn parse_time_ms(text: &str, what: &str) -> Result<i64> {
    let time = humantime::parse_rfc3339_weak(text)
        .map_err(|e| StoreError::BadResult(format!("{what} {text:?}: {e}")))?;
    let since = time.duration_since(std::time::UNIX_EPOCH).map_err(|_| StoreError::BadResult(format!("{what} {text:?} is before 1970")))?;
    i64::try_from(since.as_millis()).map_err(|_| StoreError::BadResult(format!("{what} {text:?} is out of range")))
}

impl ClientTestInput {
    /// Reads one JSON line of `bleedwatch client-test` (fields `client`, `service`, `time`,
    /// `tls_version`, `client_hello`, `verdict`, `reason`, `leak`), tested on `listener`.
    pub fn from_json(line: &serde_json::Value, listener: &str, run: Option<RunId>) -> Result<ClientTestInput> {
        let parsed: ClientTestLine = serde_json::from_value(line.clone()).map_err(|e| StoreError::BadResult(e.to_string()))?;
        let (client_address, client_port) = split_socket_address(&parsed.client, "client")?;
        Ok(ClientTestInput {
            run,
            listener: listener.to_owned(),
            tested_at_ms: parse_time_ms(&parsed.time, "time")?,
            client_address,
            client_port,
            service: parsed.service,
            tls_version: parsed.tls_version,
            offered_version: parsed.client_hello.version,
            heartbeat_mode: parsed.client_hello.heartbeat_mode,
            server_name: parsed.client_hello.server_name,
            verdict: parsed.verdict,
            reason: parsed.reason,
            leaked_bytes: parsed.leak.as_ref().map(|l| l.leaked_bytes),
            leak_sha256: parsed.leak.and_then(|l| l.sha256),
            result_json: line.clone(),
        })
    }
}

/// A recorded client test.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientTestRow {
    pub id: i64,
    pub run: Option<RunId>,
    pub listener: String,
    pub tested_at_ms: i64,
    /// The same instant, RFC 3339.
    pub tested_at: String,
    pub client_address: String,
    pub client_port: u16,
    pub service: String,
    pub tls_version: Option<String>,
    pub offered_version: Option<String>,
    pub heartbeat_mode: Option<String>,
    pub server_name: Option<String>,
    pub verdict: String,
    pub reason: Option<String>,
    pub leaked_bytes: Option<i64>,
    pub leak_sha256: Option<String>,
}

/// Which client tests to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientTestFilter {
    pub client_address: Option<String>,
    pub verdict: Option<String>,
    pub run: Option<RunId>,
    pub since_ms: Option<i64>,
    /// Only the latest test of each (client address, service).
    pub latest_only: bool,
}

fn client_test_from_row(row: &AnyRow) -> Result<ClientTestRow> {
    let port: i64 = get(row, "client_port")?;
    let tested_at_ms: i64 = get(row, "tested_at_ms")?;
    Ok(ClientTestRow {
        id: get(row, "id")?,
        run: get::<Option<i64>>(row, "scan_run_id")?.map(RunId),
        listener: get(row, "listener")?,
        tested_at_ms,
        tested_at: rfc3339_ms(tested_at_ms),
        client_address: get(row, "client_address")?,
        client_port: u16::try_from(port).map_err(|_| StoreError::Corrupt(format!("client port {port}")))?,
        service: get(row, "service")?,
        tls_version: get(row, "tls_version")?,
        offered_version: get(row, "offered_version")?,
        heartbeat_mode: get(row, "heartbeat_mode")?,
        server_name: get(row, "server_name")?,
        verdict: get(row, "verdict")?,
        reason: get(row, "reason")?,
        leaked_bytes: get(row, "leaked_bytes")?,
        leak_sha256: get(row, "leak_sha256")?,
    })
}

impl Store {
    /// Records one client test; returns its id. Every connecting client is its own event: testing
    /// the same client again adds a row (its history), never replaces one.
    pub async fn record_client_test(&self, test: &ClientTestInput) -> Result<i64> {
        if !CLIENT_VERDICTS.contains(&test.verdict.as_str()) {
            return Err(StoreError::BadResult(format!("client verdict {:?}", test.verdict)));
        }
        let client_address = test
            .client_address
            .parse::<std::net::IpAddr>()
            .map_err(|_| StoreError::BadResult(format!("client address {:?} is not an IP address", test.client_address)))?
            .to_string();
        let json = serde_json::to_string(&test.result_json).map_err(|e| StoreError::BadResult(e.to_string()))?;
        let row = sqlx::query(
            "INSERT INTO client_tests (scan_run_id, listener, tested_at_ms, client_address, client_port, service, tls_version, \
               offered_version, heartbeat_mode, server_name, verdict, reason, leaked_bytes, leak_sha256, result_json) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) RETURNING id",
        )
        .bind(test.run.map(|r| r.0))
        .bind(test.listener.clone())
        .bind(test.tested_at_ms)
        .bind(client_address)
        .bind(i64::from(test.client_port))
        .bind(test.service.clone())
        .bind(test.tls_version.clone())
        .bind(test.offered_version.clone())
        .bind(test.heartbeat_mode.clone())
        .bind(test.server_name.clone())
        .bind(test.verdict.clone())
        .bind(test.reason.clone())
        .bind(test.leaked_bytes.map(|n| i64::try_from(n).unwrap_or(i64::MAX)))
        .bind(test.leak_sha256.clone())
        .bind(json)
        .fetch_one(&self.pool)
        .await?;
        get(&row, "id")
    }

    /// Recorded client tests, newest first.
    pub async fn client_tests(&self, filter: &ClientTestFilter) -> Result<Vec<ClientTestRow>> {
        let rows = sqlx::query(
            "SELECT id, scan_run_id, listener, tested_at_ms, client_address, client_port, service, tls_version, offered_version, \
               heartbeat_mode, server_name, verdict, reason, leaked_bytes, leak_sha256 \
             FROM client_tests ORDER BY tested_at_ms DESC, id DESC",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut latest_seen = std::collections::HashSet::new();
        let mut tests = Vec::new();
        for row in &rows {
            let test = client_test_from_row(row)?;
            // Newest first: the first row of a (client, service) is its latest test.
            if filter.latest_only && !latest_seen.insert((test.client_address.clone(), test.service.clone())) {
                continue;
            }
            let keep = filter.client_address.as_ref().is_none_or(|a| *a == test.client_address)
                && filter.verdict.as_ref().is_none_or(|v| *v == test.verdict)
                && filter.run.is_none_or(|r| Some(r) == test.run)
                && filter.since_ms.is_none_or(|since| since <= test.tested_at_ms);
            if keep {
                tests.push(test);
            }
        }
        Ok(tests)
    }

    /// The JSON line a client test was recorded from.
    pub async fn client_test_json(&self, id: i64) -> Result<serde_json::Value> {
        let row = sqlx::query("SELECT result_json FROM client_tests WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("no client test {id}")))?;
        let text: String = get(&row, "result_json")?;
        serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("result_json: {e}")))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn line() -> serde_json::Value {
        json!({"client": "[2001:db8::7]:50123", "service": "smtp", "time": "2026-11-28T18:39:14.250Z", "tls_version": "tls1.2",
               "client_hello": {"version": "tls1.2", "heartbeat_mode": "peer_allowed_to_send", "server_name": "mx.example",
                                "cipher_suites": 31},
               "verdict": "vulnerable", "reason": null, "leak": {"leaked_bytes": 16, "sha256": "ab"}, "log": ["x"]})
    }

    #[test]
    fn reads_the_client_test_contract() {
        let input = ClientTestInput::from_json(&line(), "0.0.0.0:2525", Some(RunId(3))).unwrap();
        assert_eq!(input.client_address, "2001:db8::7");
        assert_eq!(input.client_port, 50123);
        assert_eq!(input.tested_at_ms, 1_795_891_154_250);
        assert_eq!(input.service, "smtp");
        assert_eq!(input.offered_version.as_deref(), Some("tls1.2"));
        assert_eq!(input.heartbeat_mode.as_deref(), Some("peer_allowed_to_send"));
        assert_eq!(input.leaked_bytes, Some(16));
        assert_eq!(input.leak_sha256.as_deref(), Some("ab"));
        assert_eq!(input.run, Some(RunId(3)));
    }

    #[test]
    fn broken_lines_are_errors() {
        let mut bad = line();
        bad["client"] = json!("somewhere");
        assert!(ClientTestInput::from_json(&bad, "l", None).is_err());
        let mut bad = line();
        bad["time"] = json!("yesterday");
        assert!(ClientTestInput::from_json(&bad, "l", None).is_err());
        assert!(ClientTestInput::from_json(&json!({"client": "127.0.0.1:1"}), "l", None).is_err());
    }
}
