//! The notices `bleedwatch notify` sends users once an endpoint is notify-ready: who gets one (the
//! recipients file, matched to endpoints through the inventory's assets), why an endpoint is held
//! back (the missing step), and the record of every notice, written before and after its SMTP
//! transaction so that a killed run never sends anyone the same notice twice.
//!
//! A notice is one (incident, endpoint, recipient). Its states: `sending` (recorded, Message-ID
//! fixed, the SMTP transaction may have started), `sent` (the relay accepted it), `pending` (the
//! relay refused it for now, or could not be reached before the message: the next run sends it),
//! `failed` (a permanent refusal, with the reply). A `sending` notice that no run is finishing is
//! *uncertain*: the relay may have accepted it before the run was killed, so it is only sent again
//! when asked ([`ClaimPolicy::resend_uncertain`]).

use std::io::Read;

use bleedwatch_assess::{Assessment, Flag, State};
use serde::Serialize;
use sqlx::any::AnyRow;

use crate::query::EndpointAssessment;
use crate::row::get;
use crate::time::rfc3339_ms;
use crate::{Result, Store, StoreError};

/// The columns a recipients file may have (one of service, endpoint, owner per row).
pub const RECIPIENT_COLUMNS: &str = "service, endpoint, owner, address, name, locale";

/// What a recipients row is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "kebab-case")]
pub enum RecipientSelector {
    /// The endpoints of a service: a host name (the endpoint's name or server name) or an asset's
    /// host as the asset list spells it (`www.example.org`, `*.example.org`, `192.0.2.0/24`).
    Service(String),
    /// One endpoint: `address:port`, `[v6]:port` or `name:port`.
    Endpoint(String),
    /// Every endpoint of an asset owner.
    Owner(String),
}

/// One row of a recipients file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Recipient {
    /// The line of the file it came from.
    pub line: u64,
    pub selector: RecipientSelector,
    /// The address, lower-cased.
    pub address: String,
    pub name: String,
    /// `en`, `de`, `pt-BR`, …; empty for the default.
    pub locale: String,
}

/// Reads a recipients CSV (header row; columns in [`RECIPIENT_COLUMNS`], any order; one of
/// service, endpoint or owner filled per row). Errors name `origin` and the line.
pub fn parse_recipients_csv<R: Read>(reader: R, origin: &str) -> Result<Vec<Recipient>> {
    let mut csv = csv::ReaderBuilder::new().flexible(true).trim(csv::Trim::All).from_reader(reader);
    let error = |line: u64, message: String| StoreError::Import { origin: origin.to_owned(), line, message };
    let headers = csv.headers().map_err(|e| error(1, e.to_string()))?.clone();
    let mut columns: Vec<Option<&'static str>> = Vec::new();
    for name in headers.iter() {
        let normalized = name.trim_start_matches('\u{feff}').trim().to_ascii_lowercase().replace(['-', ' '], "_");
        let column = match normalized.as_str() {
            "service" => "service",
            "endpoint" => "endpoint",
            "owner" => "owner",
            "address" | "email" => "address",
            "name" => "name",
            "locale" => "locale",
            other => return Err(error(1, format!("unknown column {other:?} (expected {RECIPIENT_COLUMNS})"))),
        };
        if columns.contains(&Some(column)) {
            return Err(error(1, format!("column {column:?} appears twice")));
        }
        columns.push(Some(column));
    }
    if !columns.contains(&Some("address")) {
        return Err(error(1, format!("no \"address\" column (expected {RECIPIENT_COLUMNS})")));
    }
    if !["service", "endpoint", "owner"].iter().any(|c| columns.contains(&Some(c))) {
        return Err(error(1, "no \"service\", \"endpoint\" or \"owner\" column: nothing says which endpoints a row is for".to_owned()));
    }
    let mut recipients = Vec::new();
    for record in csv.records() {
        let record = record.map_err(|e| error(e.position().map_or(0, |p| p.line()), e.to_string()))?;
        let line = record.position().map_or(0, |p| p.line());
        if record.iter().all(str::is_empty) {
            continue;
        }
        if record.len() > columns.len() {
            return Err(error(line, format!("{} cells, the header has {}", record.len(), columns.len())));
        }
        let cell = |column: &str| {
            columns.iter().position(|c| *c == Some(column)).and_then(|i| record.get(i)).unwrap_or_default().to_owned()
        };
        let selectors: Vec<RecipientSelector> = [
            (cell("service"), RecipientSelector::Service as fn(String) -> RecipientSelector),
            (cell("endpoint"), RecipientSelector::Endpoint),
            (cell("owner"), RecipientSelector::Owner),
        ]
        .into_iter()
        .filter(|(value, _)| !value.is_empty())
        .map(|(value, make)| make(value))
        .collect();
        let selector = match <[RecipientSelector; 1]>::try_from(selectors) {
            Ok([selector]) => selector,
            Err(none) if none.is_empty() => return Err(error(line, "no service, endpoint or owner: give one".to_owned())),
            Err(_) => return Err(error(line, "more than one of service, endpoint and owner: give one per row".to_owned())),
        };
        let value = match &selector {
            RecipientSelector::Service(v) | RecipientSelector::Endpoint(v) | RecipientSelector::Owner(v) => v,
        };
        check_text(value, 255).map_err(|m| error(line, m))?;
        if let RecipientSelector::Endpoint(endpoint) = &selector {
            parse_endpoint_selector(endpoint).map_err(|m| error(line, m))?;
        }
        let address = check_address(&cell("address")).map_err(|m| error(line, m))?;
        let name = cell("name");
        check_text(&name, 200).map_err(|m| error(line, format!("name: {m}")))?;
        let locale = cell("locale");
        check_locale(&locale).map_err(|m| error(line, m))?;
        recipients.push(Recipient { line, selector, address, name, locale });
    }
    Ok(recipients)
}

/// Text that goes into mail headers: no control characters (a line break would add a header).
fn check_text(text: &str, max_chars: usize) -> std::result::Result<(), String> {
    if let Some(c) = text.chars().find(|c| c.is_control()) {
        return Err(format!("control character {c:?} in {text:?}"));
    }
    if text.chars().count() > max_chars {
        return Err(format!("longer than {max_chars} characters"));
    }
    Ok(())
}

/// A mailbox address `local@domain` (RFC 5321 limits), lower-cased.
fn check_address(address: &str) -> std::result::Result<String, String> {
    if address.is_empty() {
        return Err("no address".to_owned());
    }
    let invalid = |why: &str| Err(format!("address {address:?} is not valid: {why}"));
    if address.len() > 254 {
        return invalid("longer than 254 bytes");
    }
    if address.chars().any(|c| c.is_control() || c.is_whitespace() || "<>()[]\\,;:\"".contains(c)) {
        return invalid("spaces, control characters and <>()[]\\,;:\" are not allowed");
    }
    let Some((local, domain)) = address.rsplit_once('@') else { return invalid("no @") };
    if local.is_empty() || local.len() > 64 || local.contains('@') {
        return invalid("the part before @ must be 1 to 64 characters, without @");
    }
    if domain.is_empty() || domain.starts_with('.') || domain.ends_with('.') || domain.contains("..") {
        return invalid("no domain after @");
    }
    Ok(address.to_lowercase())
}

/// A locale tag: empty, or `ll`, `lll`, optionally followed by `-`/`_` subtags (`pt-BR`).
fn check_locale(locale: &str) -> std::result::Result<(), String> {
    if locale.is_empty() {
        return Ok(());
    }
    let mut parts = locale.split(['-', '_']);
    let language = parts.next().unwrap_or_default();
    let language_ok = (2..=3).contains(&language.len()) && language.chars().all(|c| c.is_ascii_alphabetic());
    let rest_ok = parts.all(|p| (1..=8).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphanumeric()));
    if language_ok && rest_ok {
        Ok(())
    } else {
        Err(format!("locale {locale:?} is not a language tag like en, de or pt-BR"))
    }
}

/// `host:port` or `[v6]:port` → (host lower-cased, port).
fn parse_endpoint_selector(text: &str) -> std::result::Result<(String, u16), String> {
    let bad = || format!("endpoint {text:?} is not host:port or [v6]:port");
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(bad)?;
        (host, after.strip_prefix(':').ok_or_else(bad)?)
    } else {
        text.rsplit_once(':').ok_or_else(bad)?
    };
    let port: u16 = port.parse().map_err(|_| bad())?;
    if host.is_empty() || port == 0 {
        return Err(bad());
    }
    Ok((host.trim_end_matches('.').to_ascii_lowercase(), port))
}

impl Recipient {
    /// Whether this row is about the endpoint.
    pub fn matches(&self, item: &EndpointAssessment) -> bool {
        let endpoint = &item.endpoint;
        let same = |a: &str, b: &str| a.trim_end_matches('.').eq_ignore_ascii_case(b.trim_end_matches('.'));
        match &self.selector {
            RecipientSelector::Owner(owner) => endpoint.asset.as_ref().is_some_and(|a| a.owner.eq_ignore_ascii_case(owner)),
            RecipientSelector::Service(service) => {
                endpoint.asset.as_ref().is_some_and(|a| same(&a.host, service))
                    || endpoint.host.as_deref().is_some_and(|h| same(h, service))
                    || (!endpoint.sni.is_empty() && same(&endpoint.sni, service))
            }
            RecipientSelector::Endpoint(text) => {
                let Ok((host, port)) = parse_endpoint_selector(text) else { return false };
                port == endpoint.port
                    && (same(&endpoint.address, &host)
                        || endpoint.host.as_deref().is_some_and(|h| same(h, &host))
                        || (!endpoint.sni.is_empty() && same(&endpoint.sni, &host)))
            }
        }
    }
}

/// Fuzzing entry point (`fuzz/fuzz_targets/store_recipients_csv.rs`): a recipients file as
/// `notify --recipients` reads it, every row matched against an endpoint.
pub fn fuzz_recipients_csv(data: &[u8]) {
    let Ok(recipients) = parse_recipients_csv(data, "fuzz.csv") else { return };
    let item = EndpointAssessment {
        endpoint: crate::EndpointRow {
            id: 1,
            address: "192.0.2.1".to_owned(),
            port: 443,
            transport: "tcp".to_owned(),
            sni: "www.example.org".to_owned(),
            host: Some("www.example.org".to_owned()),
            service: "https".to_owned(),
            first_seen_ms: 0,
            last_seen_ms: 0,
            asset: None,
        },
        assessment: blank_assessment(State::NotifyReady),
        latest: None,
        attacks: Default::default(),
    };
    for recipient in recipients.iter().take(256) {
        let _ = recipient.matches(&item);
    }
}

/// An assessment with nothing in it but its state.
fn blank_assessment(state: State) -> Assessment {
    Assessment {
        state,
        fixed: false,
        rekeyed: false,
        revoked: false,
        flags: Vec::new(),
        exposure: Default::default(),
        exposed_spkis: Default::default(),
        exposed_certs: Default::default(),
        spkis_seen: Default::default(),
        vulnerable_versions: Default::default(),
        alerts: Vec::new(),
        last_observed_ms: None,
        last_conclusive_ms: None,
    }
}

/// Why an endpoint gets no notice yet: the steps it still lacks, in funnel order (empty when it is
/// notify-ready).
pub fn held_back_reasons(assessment: &Assessment) -> Vec<&'static str> {
    match assessment.state {
        State::NotifyReady => return Vec::new(),
        State::Vulnerable => return vec!["not fixed (still vulnerable)"],
        State::Unknown => return vec!["no conclusive scan yet"],
        State::NeverVulnerable => return vec!["never vulnerable (nothing to tell users)"],
        State::Fixed | State::Rekeyed | State::Revoked => {}
    }
    let mut reasons = Vec::new();
    if assessment.flags.iter().any(|f| matches!(f, Flag::ExposedKeyUnknown)) {
        reasons.push("exposure unknown (no certificate seen while vulnerable)");
    }
    if !assessment.fixed {
        reasons.push("not fixed");
    }
    if !assessment.rekeyed {
        reasons.push("not re-keyed");
    }
    if !assessment.revoked {
        reasons.push("not revoked (verified) nor expired");
    }
    reasons
}

/// A notice's state in the inventory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NoticeState {
    /// Recorded, SMTP transaction under way; left so by a killed run: uncertain.
    Sending,
    Sent,
    /// Refused for now (4xx) or the relay was unreachable before the message: sent by the next run.
    Pending,
    /// Refused for good (5xx).
    Failed,
}

impl NoticeState {
    pub fn as_str(self) -> &'static str {
        match self {
            NoticeState::Sending => "sending",
            NoticeState::Sent => "sent",
            NoticeState::Pending => "pending",
            NoticeState::Failed => "failed",
        }
    }

    fn parse(text: &str) -> Result<NoticeState> {
        Ok(match text {
            "sending" => NoticeState::Sending,
            "sent" => NoticeState::Sent,
            "pending" => NoticeState::Pending,
            "failed" => NoticeState::Failed,
            other => return Err(StoreError::Corrupt(format!("notice state {other:?}"))),
        })
    }

    /// How a finished run reports it: a `sending` notice no run is finishing is `uncertain`.
    pub fn reported(self) -> &'static str {
        match self {
            NoticeState::Sending => "uncertain",
            other => other.as_str(),
        }
    }
}

/// One notice as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NoticeRow {
    pub id: i64,
    pub incident: String,
    pub endpoint_id: i64,
    pub recipient: String,
    pub recipient_name: String,
    pub locale: String,
    pub message_id: String,
    pub state: NoticeState,
    pub attempts: i64,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub sent_at_ms: Option<i64>,
    pub smtp_reply: Option<String>,
}

impl NoticeRow {
    /// Times as RFC 3339, for output.
    pub fn sent_at(&self) -> Option<String> {
        self.sent_at_ms.map(rfc3339_ms)
    }
}

/// A notice to record before its SMTP transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoticeInput {
    pub incident: String,
    pub endpoint_id: i64,
    pub recipient: String,
    pub recipient_name: String,
    pub locale: String,
    /// The Message-ID for a new notice (a notice sent again keeps its first one).
    pub message_id: String,
}

/// Which recorded notices may be (re)claimed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClaimPolicy {
    /// Send `sending` (uncertain) notices again: the user may get two.
    pub resend_uncertain: bool,
    /// Send `failed` notices again (after fixing an address).
    pub retry_failed: bool,
}

/// What [`Store::claim_notice`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Send it now: recorded as `sending`, with this row (its Message-ID is the one to use).
    Send(NoticeRow),
    /// Do not send: already recorded in this state.
    Skip(NoticeRow),
}

/// Notices per state (`sending` counted as uncertain).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct NoticeCounts {
    pub sent: u64,
    pub pending: u64,
    pub uncertain: u64,
    pub failed: u64,
}

impl NoticeCounts {
    pub fn total(&self) -> u64 {
        self.sent + self.pending + self.uncertain + self.failed
    }
}

const NOTICE_COLUMNS: &str = "id, incident, endpoint_id, recipient, recipient_name, locale, message_id, state, attempts, \
     created_at_ms, updated_at_ms, sent_at_ms, smtp_reply";

fn notice_from_row(row: &AnyRow) -> Result<NoticeRow> {
    Ok(NoticeRow {
        id: get(row, "id")?,
        incident: get(row, "incident")?,
        endpoint_id: get(row, "endpoint_id")?,
        recipient: get(row, "recipient")?,
        recipient_name: get(row, "recipient_name")?,
        locale: get(row, "locale")?,
        message_id: get(row, "message_id")?,
        state: NoticeState::parse(&get::<String>(row, "state")?)?,
        attempts: get(row, "attempts")?,
        created_at_ms: get(row, "created_at_ms")?,
        updated_at_ms: get(row, "updated_at_ms")?,
        sent_at_ms: get(row, "sent_at_ms")?,
        smtp_reply: get(row, "smtp_reply")?,
    })
}

impl Store {
    /// Records a notice as `sending` before its SMTP transaction, in its own committed transaction,
    /// unless it is recorded already in a state `policy` does not allow to send again. The caller
    /// sends only on [`Claim::Send`], with the returned row's Message-ID.
    pub async fn claim_notice(&self, input: &NoticeInput, policy: ClaimPolicy, now_ms: i64) -> Result<Claim> {
        let mut tx = self.begin().await?;
        let existing = sqlx::query(&format!(
            "SELECT {NOTICE_COLUMNS} FROM notices WHERE incident = $1 AND endpoint_id = $2 AND recipient = $3"
        ))
        .bind(&input.incident)
        .bind(input.endpoint_id)
        .bind(&input.recipient)
        .fetch_optional(&mut *tx)
        .await?;
        let id: i64 = match existing.as_ref().map(notice_from_row).transpose()? {
            Some(row) => {
                let again = match row.state {
                    NoticeState::Pending => true,
                    NoticeState::Sending => policy.resend_uncertain,
                    NoticeState::Failed => policy.retry_failed,
                    NoticeState::Sent => false,
                };
                if !again {
                    tx.rollback().await?;
                    return Ok(Claim::Skip(row));
                }
                sqlx::query("UPDATE notices SET state = 'sending', attempts = attempts + 1, updated_at_ms = $1 WHERE id = $2")
                    .bind(now_ms)
                    .bind(row.id)
                    .execute(&mut *tx)
                    .await?;
                row.id
            }
            None => {
                let row = sqlx::query(
                    "INSERT INTO notices (incident, endpoint_id, recipient, recipient_name, locale, message_id, state, attempts, \
                     created_at_ms, updated_at_ms) VALUES ($1, $2, $3, $4, $5, $6, 'sending', 1, $7, $7) RETURNING id",
                )
                .bind(&input.incident)
                .bind(input.endpoint_id)
                .bind(&input.recipient)
                .bind(&input.recipient_name)
                .bind(&input.locale)
                .bind(&input.message_id)
                .bind(now_ms)
                .fetch_one(&mut *tx)
                .await?;
                get(&row, "id")?
            }
        };
        let row = sqlx::query(&format!("SELECT {NOTICE_COLUMNS} FROM notices WHERE id = $1")).bind(id).fetch_one(&mut *tx).await?;
        let row = notice_from_row(&row)?;
        tx.commit().await?;
        Ok(Claim::Send(row))
    }

    /// Records how a claimed notice's SMTP transaction ended (`sent`, `pending` or `failed`, with
    /// the relay's reply or the error).
    pub async fn finish_notice(&self, id: i64, state: NoticeState, reply: &str, now_ms: i64) -> Result<()> {
        let sent_at = (state == NoticeState::Sent).then_some(now_ms);
        let result = sqlx::query(
            "UPDATE notices SET state = $1, smtp_reply = $2, updated_at_ms = $3, sent_at_ms = COALESCE($4, sent_at_ms) WHERE id = $5",
        )
        .bind(state.as_str())
        .bind(reply)
        .bind(now_ms)
        .bind(sent_at)
        .bind(id)
        .execute(&self.pool)
        .await?;
        if result.rows_affected() != 1 {
            return Err(StoreError::NotFound(format!("notice {id}")));
        }
        Ok(())
    }

    /// Every notice (of `incident`, or all), oldest first.
    pub async fn notices(&self, incident: Option<&str>) -> Result<Vec<NoticeRow>> {
        let rows = match incident {
            Some(incident) => {
                sqlx::query(&format!("SELECT {NOTICE_COLUMNS} FROM notices WHERE incident = $1 ORDER BY id"))
                    .bind(incident)
                    .fetch_all(&self.pool)
                    .await?
            }
            None => sqlx::query(&format!("SELECT {NOTICE_COLUMNS} FROM notices ORDER BY id")).fetch_all(&self.pool).await?,
        };
        rows.iter().map(notice_from_row).collect()
    }

    /// Notices per state, over the whole inventory.
    pub async fn notice_counts(&self) -> Result<NoticeCounts> {
        let rows = sqlx::query("SELECT state, COUNT(*) AS n FROM notices GROUP BY state").fetch_all(&self.pool).await?;
        let mut counts = NoticeCounts::default();
        for row in &rows {
            let n = u64::try_from(get::<i64>(row, "n")?).unwrap_or(0);
            match NoticeState::parse(&get::<String>(row, "state")?)? {
                NoticeState::Sending => counts.uncertain += n,
                NoticeState::Sent => counts.sent += n,
                NoticeState::Pending => counts.pending += n,
                NoticeState::Failed => counts.failed += n,
            }
        }
        Ok(counts)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<Recipient>> {
        parse_recipients_csv(text.as_bytes(), "recipients.csv")
    }

    #[test]
    fn rows_select_one_thing_and_name_an_address() {
        let rows = parse(
            "service,endpoint,owner,address,name,locale\n\
             www.example.org,,,Alice@Example.org,Alice,en\n\
             ,[::1]:443,,bob@example.org,Bob,\n\
             ,,Web team,carol@example.org,\"Carol, CISO\",pt-BR\n",
        )
        .unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].selector, RecipientSelector::Service("www.example.org".into()));
        assert_eq!(rows[0].address, "alice@example.org");
        assert_eq!((rows[1].line, rows[1].locale.as_str()), (3, ""));
        assert_eq!(rows[2].name, "Carol, CISO");
    }

    #[test]
    fn bad_rows_name_the_file_and_line() {
        let cases = [
            ("owner,address\nteam,alice@example.org\nteam,not-an-address\n", 3, "not valid"),
            ("owner,address\nteam,\"a@b.org\nBcc: x@y.org\"\n", 2, "not valid"),
            ("owner,address,name\nteam,a@b.org,\"Eve\r\nBcc: x@y.org\"\n", 2, "control character"),
            ("service,owner,address\nwww,team,a@b.org\n", 2, "more than one"),
            ("service,address\n,a@b.org\n", 2, "no service"),
            ("endpoint,address\nwww.example.org,a@b.org\n", 2, "host:port"),
            ("owner,address,locale\nt,a@b.org,english!\n", 2, "locale"),
            ("owner,mail\n", 1, "unknown column"),
            ("owner,name\n", 1, "no \"address\""),
            ("name,address\n", 1, "no \"service\""),
            ("owner,address\nt,a@b.org,extra\n", 2, "cells"),
        ];
        for (text, line, words) in cases {
            let error = parse(text).unwrap_err();
            let message = error.to_string();
            assert!(message.starts_with(&format!("recipients.csv, line {line}: ")), "{text:?}: {message}");
            assert!(message.contains(words), "{text:?}: {message}");
        }
    }

    #[test]
    fn held_back_names_the_missing_steps() {
        let mut assessment = Assessment { fixed: true, ..blank_assessment(State::Fixed) };
        assert_eq!(held_back_reasons(&assessment), ["not re-keyed", "not revoked (verified) nor expired"]);
        assessment.state = State::Rekeyed;
        assessment.rekeyed = true;
        assert_eq!(held_back_reasons(&assessment), ["not revoked (verified) nor expired"]);
        assessment.state = State::NotifyReady;
        assessment.revoked = true;
        assert!(held_back_reasons(&assessment).is_empty());
        let unknown = Assessment { fixed: true, flags: vec![Flag::ExposedKeyUnknown], ..blank_assessment(State::Fixed) };
        assert_eq!(held_back_reasons(&unknown)[0], "exposure unknown (no certificate seen while vulnerable)");
        assert_eq!(held_back_reasons(&blank_assessment(State::Vulnerable)), ["not fixed (still vulnerable)"]);
    }
}
