//! Testing one endpoint: every version from TLS 1.2 down to SSLv3 on its own connection, following
//! downgrades, retrying without SNI when SNI is refused, and falling back to a TLS 1.3 handshake for
//! the certificate when nothing older is accepted.

use std::collections::BTreeMap;
use std::time::{Instant, SystemTime};

use bleedwatch_wire::{AlertDescription, ProtocolVersion};

use crate::conn::{connect, connect_failure_outcome, run_probe, ConnectError, Timeouts};
use crate::heartbleed::{ConnectionOutcome, ConnectionVerdict, Inconclusive, LeakEvidence, ProbeConfig, ProbeMode, DEFAULT_PAYLOAD_LEN};
use crate::options::{EndpointOptions, EndpointTarget};
use crate::result::{classify, version_detail, EndpointResult, ScanStatus, Verdict, VersionDetail};

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// Alerts that mean "I don't speak this version (or nothing you offered)".
fn sni_may_be_the_problem(o: &ConnectionOutcome) -> bool {
    matches!(
        o.verdict,
        ConnectionVerdict::VersionRejected {
            alert: Some(AlertDescription::UNRECOGNIZED_NAME | AlertDescription::HANDSHAKE_FAILURE | AlertDescription::ILLEGAL_PARAMETER)
        }
    ) || matches!(&o.verdict, ConnectionVerdict::Inconclusive(Inconclusive::ProtocolError { .. }))
}

/// A connection for one version that could not be made (or upgraded): the scan status it means and
/// an outcome that says why, so results stay uniform.
pub struct AttemptFailure {
    pub status: ScanStatus,
    pub outcome: ConnectionOutcome,
}

impl AttemptFailure {
    pub fn connect(cfg: &ProbeConfig, err: &ConnectError) -> AttemptFailure {
        AttemptFailure {
            status: match err {
                ConnectError::Refused => ScanStatus::ConnectionRefused,
                ConnectError::Timeout => ScanStatus::ConnectionTimeout,
                ConnectError::Other(_) => ScanStatus::ConnectionFailed,
            },
            outcome: connect_failure_outcome(cfg, err),
        }
    }
}

/// What testing every version of an endpoint found, before it becomes an [`EndpointResult`].
pub struct VersionSweep {
    pub per_version: BTreeMap<ProtocolVersion, (Verdict, Option<String>)>,
    pub details: Vec<VersionDetail>,
    pub chain: Vec<Vec<u8>>,
    pub leak: Option<LeakEvidence>,
    /// The SNI name in use at the end (None once the retry without SNI was needed).
    pub sni: Option<String>,
    pub sni_worked: Option<bool>,
    pub status: ScanStatus,
    started: SystemTime,
    clock: Instant,
}

impl VersionSweep {
    pub fn accepted_any(&self) -> bool {
        self.per_version.values().any(|(v, _)| *v != Verdict::NotSupported)
    }
}

/// One connection the sweep asks a transport for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub version: ProtocolVersion,
    pub sni: Option<String>,
    /// A follow-up connection: the honest heartbeat alone (see [`sweep_versions`]).
    pub honest_only: bool,
}

impl Attempt {
    /// The probe configuration for this attempt, with fresh random payloads of `payload_len` bytes.
    pub fn probe_config(&self, mode: ProbeMode, payload_len: usize) -> ProbeConfig {
        let mut cfg = ProbeConfig::with_payload(self.version, self.sni.clone(), mode, payload_len);
        cfg.honest_only = self.honest_only;
        cfg
    }
}

/// Tests `versions` newest first, one connection each through `attempt`: follows downgrades (a lower
/// negotiated version answers for the versions in between), retries without SNI when SNI may be why a
/// hello was refused, and stops at an unreachable, non-TLS or silent endpoint. Shared by every
/// transport, so TLS, STARTTLS and DTLS reach verdicts the same way.
///
/// A connection that ends without a word after our records (a close, a dropped DTLS association) proves
/// nothing by itself. Two follow-up connections can still get evidence: the first sends the honest
/// heartbeat alone, the second repeats the whole test. If the honest heartbeat is answered (or draws a
/// fatal alert) and the repeat ends unanswered again, the server answers heartbeats in that place and
/// twice did not answer the test one: it checks bounds. A repeat that is answered decides by its answer;
/// anything else stays inconclusive.
pub async fn sweep_versions<F, Fut>(versions: &[ProtocolVersion], sni: Option<String>, sni_retry: bool, mut attempt: F) -> VersionSweep
where
    F: FnMut(Attempt) -> Fut,
    Fut: std::future::Future<Output = Result<ConnectionOutcome, AttemptFailure>>,
{
    let mut versions = versions.to_vec();
    versions.sort_by_key(|v| std::cmp::Reverse(v.rank()));
    versions.dedup();
    let mut sweep = VersionSweep {
        per_version: BTreeMap::new(),
        details: Vec::new(),
        chain: Vec::new(),
        leak: None,
        sni,
        sni_worked: None,
        status: ScanStatus::Success,
        started: SystemTime::now(),
        clock: Instant::now(),
    };
    for &version in &versions {
        if sweep.per_version.contains_key(&version) {
            continue;
        }
        let mut used_sni = sweep.sni.is_some();
        let mut outcome = match attempt(Attempt { version, sni: sweep.sni.clone(), honest_only: false }).await {
            Ok(o) => o,
            Err(failure) => {
                sweep.status = failure.status;
                sweep.details.push(version_detail(&failure.outcome, used_sni));
                sweep.per_version.insert(version, classify(&failure.outcome));
                break;
            }
        };
        if used_sni && sni_retry && sweep.sni_worked != Some(true) && sni_may_be_the_problem(&outcome) {
            if let Ok(retry) = attempt(Attempt { version, sni: None, honest_only: false }).await {
                if retry.negotiated.is_some() {
                    sweep.details.push(version_detail(&outcome, true));
                    outcome = retry;
                    used_sni = false;
                    sweep.sni = None;
                }
            }
        }
        if outcome.ended_unanswered().is_some() {
            outcome = follow_up(outcome, Attempt { version, sni: if used_sni { sweep.sni.clone() } else { None }, honest_only: true }, &mut attempt).await;
        }
        if outcome.negotiated.is_some() && sweep.sni_worked.is_none() {
            sweep.sni_worked = Some(used_sni);
        }
        if sweep.chain.is_empty() && !outcome.chain.is_empty() {
            sweep.chain = outcome.chain.clone();
        }
        if sweep.leak.is_none() {
            sweep.leak = outcome.leak.clone();
        }
        sweep.details.push(version_detail(&outcome, used_sni));
        let (verdict, reason) = classify(&outcome);
        match outcome.negotiated {
            // The server answered below what we offered: every version in between is not supported, and
            // this connection already tested the negotiated one.
            Some(negotiated) if negotiated != version => {
                for &v in versions.iter().filter(|v| v.rank() > negotiated.rank() && v.rank() <= version.rank()) {
                    sweep.per_version.entry(v).or_insert((Verdict::NotSupported, Some(format!("server negotiated {negotiated}"))));
                }
                sweep.per_version.insert(negotiated, (verdict, reason));
            }
            _ => {
                sweep.per_version.insert(version, (verdict, reason));
            }
        }
        match outcome.verdict {
            ConnectionVerdict::Inconclusive(Inconclusive::NotTls { .. }) => {
                sweep.status = ScanStatus::NotTls;
                break;
            }
            // A server that went mute (before its hello, mid-flight, or after our heartbeats) will not
            // answer the next version either: one timeout per endpoint, not one per version.
            ConnectionVerdict::Inconclusive(Inconclusive::Timeout { phase }) => {
                let untested: Vec<String> = versions.iter().filter(|v| !sweep.per_version.contains_key(v)).map(|v| v.to_string()).collect();
                if !untested.is_empty() {
                    if let Some(last) = sweep.details.last_mut() {
                        last.log.push(format!("timeout during {}: not testing {} on this endpoint", phase.as_str(), untested.join(", ")));
                    }
                }
                break;
            }
            _ => {}
        }
    }
    sweep
}

/// Runs the follow-up connections for `first`, which ended unanswered after our records (see
/// [`sweep_versions`]), and returns the outcome the version's verdict stands on. A follow-up that
/// could not connect counts as its (inconclusive) outcome; one that timed out makes the version's
/// outcome that timeout, so the sweep stops there (one timeout per endpoint).
async fn follow_up<F, Fut>(mut first: ConnectionOutcome, honest: Attempt, attempt: &mut F) -> ConnectionOutcome
where
    F: FnMut(Attempt) -> Fut,
    Fut: std::future::Future<Output = Result<ConnectionOutcome, AttemptFailure>>,
{
    let Some(ended) = first.ended_unanswered().cloned() else { return first };
    first.note(format!("{ended}: asking again on follow-up connections"));
    let second = attempt(honest.clone()).await.unwrap_or_else(|failure| failure.outcome);
    absorb_log(&mut first, "follow-up 1 (honest heartbeat alone)", &second);
    let answered = match second.verdict {
        ConnectionVerdict::NotVulnerable | ConnectionVerdict::HeartbeatRefused { alert: Some(_) } => second.verdict,
        other => return unanswered(first, other),
    };
    let mut repeat = attempt(Attempt { honest_only: false, ..honest }).await.unwrap_or_else(|failure| failure.outcome);
    if matches!(repeat.verdict, ConnectionVerdict::Vulnerable | ConnectionVerdict::NotVulnerable | ConnectionVerdict::HeartbeatRefused { .. }) {
        // The repeat was answered: its answer decides, with the whole story in its log.
        let own = std::mem::replace(&mut repeat.log, std::mem::take(&mut first.log));
        absorb_log_lines(&mut repeat, "follow-up 2 (the test again)", &own);
        return repeat;
    }
    absorb_log(&mut first, "follow-up 2 (the test again)", &repeat);
    if repeat.ended_unanswered().is_none() {
        return unanswered(first, repeat.verdict);
    }
    first.note("the test heartbeat went unanswered twice where the honest one is answered: bounds are checked");
    first.verdict = answered;
    first.first_connection = Some(ended);
    first
}

/// The first connection's outcome after follow-ups that settled nothing: still inconclusive, and a
/// follow-up that timed out leaves that timeout as the version's outcome.
fn unanswered(mut first: ConnectionOutcome, follow_up: ConnectionVerdict) -> ConnectionOutcome {
    first.note("the follow-ups settled nothing: inconclusive");
    if matches!(follow_up, ConnectionVerdict::Inconclusive(Inconclusive::Timeout { .. })) {
        first.verdict = follow_up;
    }
    first
}

fn absorb_log(into: &mut ConnectionOutcome, label: &str, from: &ConnectionOutcome) {
    absorb_log_lines(into, label, &from.log);
}

fn absorb_log_lines(into: &mut ConnectionOutcome, label: &str, lines: &[String]) {
    for line in lines {
        into.note(format!("{label}: {line}"));
    }
}

/// How an endpoint was reached, for the result.
pub struct ResultContext<'a> {
    pub target: &'a EndpointTarget,
    pub transport: &'static str,
    pub service: String,
    /// When no version up to TLS 1.2 was accepted: the TLS 1.3 handshake's chain, or why it failed.
    /// `None` when it was not tried (DTLS).
    pub tls13: Option<Result<Vec<Vec<u8>>, String>>,
    /// What to say when nothing was accepted and no TLS 1.3 fallback applies.
    pub none_accepted: &'static str,
}

/// Turns a sweep into the endpoint's result: the overall verdict (any vulnerable version wins, then
/// any inconclusive one), the TLS 1.3 fallback, and the certificate summaries.
pub fn build_result(mut sweep: VersionSweep, ctx: ResultContext<'_>) -> EndpointResult {
    let mut heartbleed = sweep.per_version.values().fold(Verdict::NotSupported, |acc, (v, _)| Verdict::worst(acc, *v));
    let mut reason = sweep.per_version.values().filter(|(v, _)| *v == heartbleed).find_map(|(_, r)| r.clone());
    if !sweep.accepted_any() && sweep.status == ScanStatus::Success {
        match ctx.tls13 {
            Some(Ok(chain13)) => {
                heartbleed = Verdict::NotApplicable;
                reason = Some("only TLS 1.3 is accepted; TLS 1.3 has no heartbeat".into());
                sweep.per_version.insert(ProtocolVersion::TLS1_3, (Verdict::NotApplicable, None));
                sweep.chain = chain13;
            }
            Some(Err(err)) => {
                heartbleed = Verdict::Inconclusive;
                reason = Some(format!("{}, and TLS 1.3 failed: {err}", ctx.none_accepted));
                sweep.status = ScanStatus::HandshakeError;
            }
            None => {
                heartbleed = Verdict::Inconclusive;
                reason = Some(ctx.none_accepted.into());
                sweep.status = ScanStatus::HandshakeError;
            }
        }
    }
    if sweep.status != ScanStatus::Success && heartbleed != Verdict::Vulnerable {
        heartbleed = Verdict::Inconclusive;
    }
    if heartbleed == Verdict::Inconclusive && sweep.status == ScanStatus::Success {
        sweep.status = status_for_inconclusive(&sweep.details);
    }
    let summaries = crate::certs::summarize_chain(&sweep.chain);
    EndpointResult {
        address: ctx.target.addr.ip().to_string(),
        port: ctx.target.addr.port(),
        transport: ctx.transport.to_owned(),
        host: ctx.target.host.clone(),
        service: ctx.service,
        sni: if sweep.sni_worked == Some(true) { sweep.sni } else { None },
        status: sweep.status,
        heartbleed,
        reason,
        versions: sweep.per_version.into_iter().map(|(v, (verdict, _))| (v.to_string(), verdict)).collect(),
        certificate: summaries.first().cloned(),
        chain: summaries,
        banner: None,
        leak: sweep.leak,
        details: sweep.details,
        started_at: rfc3339(sweep.started),
        duration_ms: sweep.clock.elapsed().as_millis() as u64,
    }
}

/// The SNI name for a target: the override, else the target's name unless it is an address.
pub fn initial_sni(target: &EndpointTarget, opts: &EndpointOptions) -> Option<String> {
    opts.sni_override.clone().or_else(|| target.host.clone().filter(|h| h.parse::<std::net::IpAddr>().is_err()))
}

/// The sweep over direct TLS.
pub async fn sweep_direct_tls(target: &EndpointTarget, opts: &EndpointOptions, versions: &[ProtocolVersion]) -> VersionSweep {
    sweep_versions(versions, initial_sni(target, opts), opts.sni_retry, |attempt| {
        let cfg = attempt.probe_config(opts.mode, DEFAULT_PAYLOAD_LEN);
        async move { run_probe(target.addr, cfg.clone(), &opts.timeouts).await.map_err(|e| AttemptFailure::connect(&cfg, &e)) }
    })
    .await
}

/// The result for a direct-TLS sweep, with the TLS 1.3 fallback when nothing older was accepted.
pub async fn direct_tls_result(target: &EndpointTarget, opts: &EndpointOptions, sweep: VersionSweep, service: String) -> EndpointResult {
    let tls13 = if !sweep.accepted_any() && sweep.status == ScanStatus::Success && opts.tls13_fallback {
        Some(fetch_tls13(target, sweep.sni.as_deref(), &opts.timeouts).await)
    } else {
        None
    };
    build_result(sweep, ResultContext { target, transport: "tcp", service, tls13, none_accepted: "no SSLv3-TLS 1.2 version accepted" })
}

/// The scan status of an endpoint whose verdict is inconclusive, from the typed reason of its last
/// inconclusive version.
pub(crate) fn status_for_inconclusive(details: &[VersionDetail]) -> ScanStatus {
    match details.iter().rev().find_map(|d| d.evidence.inconclusive()) {
        Some(Inconclusive::Timeout { .. }) => ScanStatus::IoTimeout,
        Some(Inconclusive::ProtocolError { .. } | Inconclusive::Alert { .. }) => ScanStatus::ProtocolError,
        _ => ScanStatus::HandshakeError,
    }
}

async fn fetch_tls13(target: &EndpointTarget, sni: Option<&str>, t: &Timeouts) -> Result<Vec<Vec<u8>>, String> {
    let stream = connect(target.addr, t.connect).await.map_err(|e| e.to_string())?;
    let deadline = tokio::time::Instant::now() + t.handshake;
    bleedwatch_tls13::fetch_tls13(stream, sni, deadline).await.map(|info| info.chain).map_err(|e| e.to_string())
}
